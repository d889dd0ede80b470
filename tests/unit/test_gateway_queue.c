/* custos-gateway's store-and-forward queue (tools/gateway/queue.c): what a
 * device hands over is stored once and survives a reopen; the same request
 * again is idempotent and another one under a known id is refused; the
 * forwarder's batches, the cloud's answers (states, profile, refusals,
 * receipts), the poll schedule, the uplink record, the status report and
 * pruning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue.h"
#include "support/testca.h"

#define OK(x) assert_int_equal((x), CUSTOS_OK)
#define NOW 1800000000
#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DEV_A "dddddddddddddddddddddddddd"

typedef struct st {
    char dir[256];
    gwq *q;
} st;

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(testca_tmpdir(s->dir, sizeof(s->dir)), 0);
    strncat(s->dir, "/queue", sizeof(s->dir) - strlen(s->dir) - 1);
    OK(gwq_open(&s->q, s->dir));
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;
    gwq_close(s->q);
    *strrchr(s->dir, '/') = '\0';
    assert_int_equal(testca_rmtree(s->dir), 0);
    free(s);
    return 0;
}

static void put(st *s, const char *id, const char *bytes, int want_created)
{
    gwq_new n = {id, "", "sys", "pump", "SN-1", (const uint8_t *)bytes, strlen(bytes)};
    gwq_item it;
    int created = -1;
    OK(gwq_put_request(&it, &created, s->q, &n, NOW));
    assert_int_equal(created, want_created);
    assert_string_equal(it.request_id, id);
}

static void update(st *s, const char *id, const char *state, long retry, const char *profile,
                   int64_t now)
{
    gwq_update u = {
        state, DEV_A, retry, NULL, (const uint8_t *)profile, profile != NULL ? strlen(profile) : 0};
    OK(gwq_begin(s->q));
    OK(gwq_update_state(s->q, id, &u, now));
    OK(gwq_commit(s->q));
}

static size_t polls_at(st *s, int64_t now)
{
    char ids[8][CUSTOS_ID_LEN + 1];
    size_t n = 0;
    OK(gwq_polls(ids, 8, &n, s->q, now));
    return n;
}

static void test_put_idempotent_and_durable(void **state)
{
    st *s = *state;
    gwq_new other = {ID_A, "", "sys", "pump", "SN-1", (const uint8_t *)"other", 5};
    gwq_item it;
    struct stat sb;
    char path[300];
    int created = 0;

    put(s, ID_A, "mcpr-bytes", 1);
    put(s, ID_A, "mcpr-bytes", 0); /* the same request again */
    assert_int_equal(gwq_put_request(&it, &created, s->q, &other, NOW), CUSTOS_ERR_DUPLICATE);
    assert_int_equal(created, 0);
    /* Reopened (a restart): still there, queued, nothing else. */
    gwq_close(s->q);
    OK(gwq_open(&s->q, s->dir));
    OK(gwq_get(&it, s->q, ID_A));
    assert_string_equal(it.state, "queued");
    assert_string_equal(it.serial, "SN-1");
    assert_string_equal(it.device_id, "");
    assert_int_equal(it.created, NOW);
    assert_int_equal(gwq_get(&it, s->q, ID_B), CUSTOS_ERR_NOT_FOUND);
    /* Private to the gateway. */
    snprintf(path, sizeof(path), "%s/%s", s->dir, GWQ_FILE);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(s->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

static void test_submissions_in_order(void **state)
{
    st *s = *state;
    gwq_blob b[4];
    size_t n = 0;
    int64_t due = 0;

    OK(gwq_next_due(&due, s->q));
    assert_true(due == INT64_MAX);
    put(s, ID_A, "first", 1);
    put(s, ID_B, "second", 1);
    OK(gwq_next_due(&due, s->q));
    assert_int_equal(due, 0);
    OK(gwq_submissions(b, 1, &n, s->q));
    assert_int_equal(n, 1);
    assert_string_equal(b[0].request_id, ID_A);
    assert_int_equal(b[0].len, 5);
    assert_memory_equal(b[0].data, "first", 5);
    gwq_blobs_free(b, n);
    OK(gwq_submissions(b, 4, &n, s->q));
    assert_int_equal(n, 2);
    gwq_blobs_free(b, n);
    /* Accepted by the cloud: no longer submitted, polled after its retry_after. */
    update(s, ID_A, "pending", 5, NULL, NOW);
    OK(gwq_submissions(b, 4, &n, s->q));
    assert_int_equal(n, 1);
    assert_string_equal(b[0].request_id, ID_B);
    gwq_blobs_free(b, n);
    assert_int_equal(polls_at(s, NOW + 4), 0);
    assert_int_equal(polls_at(s, NOW + 5), 1);
}

static void test_states_profile_and_polls(void **state)
{
    st *s = *state;
    gwq_item it;
    uint8_t *p = NULL;
    size_t len = 0;
    int64_t due = 0;

    put(s, ID_A, "req", 1);
    update(s, ID_A, "pending", 0, NULL, NOW); /* at least a second between polls */
    assert_int_equal(polls_at(s, NOW), 0);
    assert_int_equal(polls_at(s, NOW + 1), 1);
    OK(gwq_next_due(&due, s->q));
    assert_int_equal(due, NOW + 1);
    update(s, ID_A, "pending", 100000, NULL, NOW); /* at most 300 s */
    assert_int_equal(polls_at(s, NOW + 300), 1);
    OK(gwq_defer(s->q, ID_A, 30, NOW));
    assert_int_equal(polls_at(s, NOW + 29), 0);
    update(s, ID_A, "certified", 0, NULL, NOW); /* certified: its profile is fetched at once */
    assert_int_equal(polls_at(s, NOW), 1);
    OK(gwq_get(&it, s->q, ID_A));
    assert_false(it.has_profile);
    assert_string_equal(it.device_id, DEV_A);
    assert_int_equal(gwq_profile(&p, &len, s->q, ID_A), CUSTOS_ERR_NOT_FOUND);
    update(s, ID_A, "certified", -1, "PROFILE", NOW);
    OK(gwq_get(&it, s->q, ID_A));
    assert_true(it.has_profile);
    assert_int_equal(polls_at(s, NOW + 1000), 0); /* nothing more to ask */
    OK(gwq_profile(&p, &len, s->q, ID_A));
    assert_int_equal(len, 7);
    assert_memory_equal(p, "PROFILE", 7);
    free(p);
    OK(gwq_next_due(&due, s->q));
    assert_true(due == INT64_MAX);
}

static void test_rejected_refused_requeued(void **state)
{
    st *s = *state;
    gwq_update rej = {"rejected", "", -1, "not on the build sheet", NULL, 0};
    gwq_error e = {422, "bad_signature", "the signature does not verify", "signature"};
    gwq_item it;
    gwq_blob b[2];
    size_t n = 0;

    put(s, ID_A, "a", 1);
    put(s, ID_B, "b", 1);
    OK(gwq_begin(s->q));
    OK(gwq_update_state(s->q, ID_A, &rej, NOW));
    OK(gwq_refuse(s->q, ID_B, &e, NOW));
    OK(gwq_commit(s->q));
    OK(gwq_get(&it, s->q, ID_A));
    assert_string_equal(it.state, "rejected");
    assert_string_equal(it.reason, "not on the build sheet");
    OK(gwq_get(&it, s->q, ID_B));
    assert_string_equal(it.state, "refused");
    assert_int_equal(it.error.status, 422);
    assert_string_equal(it.error.code, "bad_signature");
    assert_string_equal(it.error.field, "signature");
    assert_int_equal(polls_at(s, NOW + 1000), 0);
    OK(gwq_submissions(b, 2, &n, s->q));
    assert_int_equal(n, 0);
    /* The cloud lost a request: it is submitted again. */
    update(s, ID_A, "pending", 1, NULL, NOW);
    OK(gwq_requeue(s->q, ID_A, NOW));
    OK(gwq_submissions(b, 2, &n, s->q));
    assert_int_equal(n, 1);
    gwq_blobs_free(b, n);
}

static void test_receipts(void **state)
{
    st *s = *state;
    gwq_error e = {422, "mismatch", "another profile", ""};
    gwq_item it;
    gwq_blob b[2];
    size_t n = 0;
    const uint8_t r1[] = "receipt-1", r2[] = "receipt-2";

    put(s, ID_A, "a", 1);
    update(s, ID_A, "certified", 0, "PROFILE", NOW);
    OK(gwq_put_receipt(&it, s->q, ID_A, r1, sizeof(r1), NOW));
    assert_int_equal(it.receipt_state, GWQ_RECEIPT_QUEUED);
    OK(gwq_receipts(b, 2, &n, s->q));
    assert_int_equal(n, 1);
    assert_memory_equal(b[0].data, r1, sizeof(r1));
    gwq_blobs_free(b, n);
    /* Refused by the cloud: the same bytes again get the refusal; new ones are queued. */
    OK(gwq_receipt_refused(s->q, ID_A, &e, NOW));
    OK(gwq_put_receipt(&it, s->q, ID_A, r1, sizeof(r1), NOW));
    assert_int_equal(it.receipt_state, GWQ_RECEIPT_REFUSED);
    assert_string_equal(it.receipt_error.code, "mismatch");
    OK(gwq_receipts(b, 2, &n, s->q));
    assert_int_equal(n, 0);
    OK(gwq_put_receipt(&it, s->q, ID_A, r2, sizeof(r2), NOW));
    assert_int_equal(it.receipt_state, GWQ_RECEIPT_QUEUED);
    OK(gwq_receipt_confirmed(s->q, ID_A, DEV_A, NOW));
    OK(gwq_get(&it, s->q, ID_A));
    assert_string_equal(it.state, "provisioned");
    assert_int_equal(it.receipt_state, GWQ_RECEIPT_CONFIRMED);
    /* Confirmed: later posts change nothing. */
    OK(gwq_put_receipt(&it, s->q, ID_A, r1, sizeof(r1), NOW));
    assert_int_equal(it.receipt_state, GWQ_RECEIPT_CONFIRMED);
    OK(gwq_receipts(b, 2, &n, s->q));
    assert_int_equal(n, 0);
    assert_int_equal(gwq_put_receipt(&it, s->q, ID_B, r1, sizeof(r1), NOW), CUSTOS_ERR_NOT_FOUND);
}

static void test_uplink_report_prune(void **state)
{
    st *s = *state;
    json_t *r = NULL;
    size_t pruned = 9;

    put(s, ID_A, "a", 1);
    put(s, ID_B, "b", 1);
    update(s, ID_B, "certified", 0, "P", NOW);
    OK(gwq_receipt_confirmed(s->q, ID_B, DEV_A, NOW));
    OK(gwq_uplink(s->q, 1, "ok", NOW));
    OK(gwq_uplink(s->q, 0, "io_error: connection refused", NOW + 10));
    OK(gwq_uplink(s->q, 0, "io_error: connection refused", NOW + 20));
    OK(gwq_report(&r, s->q, 10));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "queue"), "depth")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "queue"), "to_forward")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "queue"), "total")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "upstream"), "last_result")),
        "io_error: connection refused");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "upstream"), "down_since")),
        "2027-01-15T08:00:10Z");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "upstream"), "last_ok")),
        "2027-01-15T08:00:00Z");
    assert_int_equal(json_array_size(json_object_get(r, "devices")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "devices"), 0), "request_id")),
                        ID_A);
    json_decref(r);
    OK(gwq_uplink(s->q, 1, "ok", NOW + 30));
    OK(gwq_report(&r, s->q, 10));
    assert_true(json_is_null(json_object_get(json_object_get(r, "upstream"), "down_since")));
    json_decref(r);
    /* Only finished requests older than the cut go. */
    OK(gwq_prune(s->q, NOW, &pruned));
    assert_int_equal(pruned, 0);
    OK(gwq_prune(s->q, NOW + 1, &pruned));
    assert_int_equal(pruned, 1);
    assert_int_equal(gwq_get(&(gwq_item){0}, s->q, ID_B), CUSTOS_ERR_NOT_FOUND);
    OK(gwq_get(&(gwq_item){0}, s->q, ID_A));
}

/* Two connections (a worker and the forwarder) see each other's commits. */
static void test_two_connections(void **state)
{
    st *s = *state;
    gwq *other = NULL;
    gwq_item it;
    OK(gwq_open(&other, s->dir));
    put(s, ID_A, "a", 1);
    OK(gwq_get(&it, other, ID_A));
    OK(gwq_begin(other));
    OK(gwq_update_state(other, ID_A, &(gwq_update){"pending", DEV_A, 3, NULL, NULL, 0}, NOW));
    OK(gwq_commit(other));
    OK(gwq_get(&it, s->q, ID_A));
    assert_string_equal(it.state, "pending");
    assert_int_equal(it.retry_after, 3);
    gwq_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_idempotent_and_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submissions_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_states_profile_and_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_refused_requeued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uplink_report_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
