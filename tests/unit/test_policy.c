/* Auto-approval policies: manual by default; package approves requests that
 * passed import (a renewal only from a provisioned device); allow_list only
 * listed serials; the deny-list and duplicate serials always wait for a
 * person; a failed auto-approval leaves the request pending, on record; the
 * lists are set (or kept) in one transaction, up to 100,000 serials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "support/engine_fixture.h"

static const custos_actor ADMIN = {"user:admin", "192.0.2.1"};
static const custos_actor DEVICE = {"device", "203.0.113.9"};

static custos_err submit(ef_fx *f, const ef_req_spec *s, custos_request_summary *out, int *created)
{
    size_t len = 0;
    int ignored = 0;
    uint8_t *der = ef_make_request(&len, f, s, NULL);
    custos_err r = custos_engine_request_submit(out, created != NULL ? created : &ignored, f->e,
                                                der, len, "connected", &DEVICE);
    free(der);
    return r;
}

static void submit_initial(ef_fx *f, const char *serial, custos_request_summary *out)
{
    ef_req_spec s = ef_initial_spec(serial);
    OK(submit(f, &s, out, NULL));
}

static void set_mode(ef_fx *f, custos_policy_mode mode)
{
    OK(custos_engine_policy_set(f->e, "pump", mode, NULL, 0, NULL, 0, &ADMIN));
}

static void test_modes_names(void **state)
{
    (void)state;
    assert_string_equal(custos_policy_mode_name(CUSTOS_POLICY_MANUAL), "manual");
    assert_string_equal(custos_policy_mode_name(CUSTOS_POLICY_PACKAGE), "package");
    assert_string_equal(custos_policy_mode_name(CUSTOS_POLICY_ALLOW_LIST), "allow_list");
    assert_int_equal(custos_policy_mode_from_name("allow_list"), CUSTOS_POLICY_ALLOW_LIST);
    assert_int_equal(custos_policy_mode_from_name("auto"), 0);
}

static void test_manual_default(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    json_t *j = NULL;

    OK(custos_engine_policy_get(&j, f->e, "pump", 1));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "manual");
    assert_int_equal(json_integer_value(json_object_get(j, "allow_count")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "allow")), 0);
    json_decref(j);
    submit_initial(f, "SN-1", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    assert_int_equal(ef_count_audit(f, "policy.hold", NULL), 0);
    /* manual, set explicitly */
    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_MANUAL, NULL, 0, NULL, 0, &ADMIN));
    submit_initial(f, "SN-2", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
}

static void test_package_mode(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r, again;
    ef_req_spec s = ef_initial_spec("SN-1");
    size_t len = 0;
    uint8_t *der;
    int created = -1;

    set_mode(f, CUSTOS_POLICY_PACKAGE);
    der = ef_make_request(&len, f, &s, NULL);
    OK(custos_engine_request_submit(&r, &created, f->e, der, len, "connected", &DEVICE));
    assert_int_equal(created, 1);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    assert_int_equal(ef_count_audit(f, "request.approve", "policy:package"), 1);
    assert_int_equal(ef_count_audit(f, "request.issue", "policy:package"), 1);
    assert_int_equal(ef_count_rows(f, "certificates"), 2);
    /* the same bytes again: the existing record, nothing approved twice */
    OK(custos_engine_request_submit(&again, &created, f->e, der, len, "connected", &DEVICE));
    assert_int_equal(created, 0);
    assert_int_equal(again.state, CUSTOS_STATE_CERTIFIED);
    assert_int_equal(ef_count_rows(f, "certificates"), 2);
    free(der);
    /* import alone never auto-approves (custosd request import) */
    ef_import_initial(f, "SN-2", "import", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
}

static void test_deny_wins(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    const char *deny[] = {"SN-BAD"};
    const char *allow[] = {"SN-BAD", "SN-OK"};

    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_PACKAGE, NULL, 0, deny, 1, &ADMIN));
    submit_initial(f, "SN-BAD", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    assert_int_equal(ef_count_audit(f, "policy.hold", "policy:package"), 1);
    submit_initial(f, "SN-GOOD", &r);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    /* on both lists: deny wins */
    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_ALLOW_LIST, allow, 2, NULL, 0, &ADMIN));
    submit_initial(f, "SN-BAD", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    submit_initial(f, "SN-OK", &r);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    assert_int_equal(ef_count_audit(f, "request.approve", "policy:allow_list"), 1);
}

static void test_allow_list(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    const char *allow[] = {"SN-A", "SN-B", "SN-A"};
    json_t *j = NULL;

    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_ALLOW_LIST, allow, 3, NULL, 0, &ADMIN));
    OK(custos_engine_policy_get(&j, f->e, "pump", 1));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "allow_list");
    assert_int_equal(json_integer_value(json_object_get(j, "allow_count")), 2); /* folded */
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "allow"), 1)), "SN-B");
    json_decref(j);
    submit_initial(f, "SN-A", &r);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    submit_initial(f, "SN-C", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    assert_int_equal(ef_count_audit(f, "policy.hold", "policy:allow_list"), 1);
}

static void test_duplicate_waits(void **state)
{
    ef_fx *f = *state;
    custos_request_summary a, b;

    set_mode(f, CUSTOS_POLICY_PACKAGE);
    submit_initial(f, "SN-DUP", &a);
    assert_int_equal(a.state, CUSTOS_STATE_CERTIFIED);
    submit_initial(f, "SN-DUP", &b); /* another device, same serial */
    assert_int_equal(b.duplicate_serial, 1);
    assert_int_equal(b.state, CUSTOS_STATE_PENDING);
    assert_int_equal(ef_count_audit(f, "policy.hold", NULL), 1);
}

static void test_reprovision_needs_provisioned_device(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r, r2;
    custos_profile_doc *p;
    EVP_PKEY *keys[4] = {0};
    ef_req_spec s = ef_initial_spec("SN-R");
    size_t i;

    p = ef_provision(f, "SN-R", keys, &r); /* certified, never confirmed */
    set_mode(f, CUSTOS_POLICY_PACKAGE);
    ef_sign_as_device(&s, p, keys, r.device_id);
    OK(submit(f, &s, &r2, NULL));
    assert_string_equal(r2.kind, "reprovision");
    assert_int_equal(r2.state, CUSTOS_STATE_PENDING);
    OK(custos_engine_request_reject(&r2, f->e, r2.request_id, "test", &ADMIN));
    /* once provisioned, its renewals are approved */
    OK(custos_engine_device_complete(&r, f->e, r.request_id, &ADMIN));
    OK(submit(f, &s, &r2, NULL));
    assert_int_equal(r2.state, CUSTOS_STATE_CERTIFIED);
    custos_profile_doc_free(p);
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

static void test_failed_auto_approval_stays_pending(void **state)
{
    ef_fx *f = *state;
    ef_req_spec s = ef_initial_spec("SN-LONG");
    custos_request_summary r;
    int created = 0;

    set_mode(f, CUSTOS_POLICY_PACKAGE);
    s.component = "longlived"; /* its certificates fail the lint */
    s.n = 1;
    OK(submit(f, &s, &r, &created));
    assert_int_equal(created, 1);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    assert_int_equal(ef_count_audit(f, "policy.approve_failed", "policy:package"), 1);
    assert_int_equal(ef_count_rows(f, "certificates"), 0);
    {
        size_t n = 0;
        OK(custos_engine_audit_verify(&n, f->e));
    }
}

static void test_lists_kept_and_replaced(void **state)
{
    ef_fx *f = *state;
    const char *allow[] = {"SN-1", "SN-2"};
    const char *deny[] = {"SN-9"};
    const char *bad[] = {"SN-1", "bad serial"};
    json_t *j = NULL;

    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_ALLOW_LIST, allow, 2, deny, 1, &ADMIN));
    /* NULL keeps a list */
    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_PACKAGE, NULL, 0, NULL, 0, &ADMIN));
    OK(custos_engine_policy_get(&j, f->e, "pump", 0));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "package");
    assert_int_equal(json_integer_value(json_object_get(j, "allow_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "deny_count")), 1);
    assert_null(json_object_get(j, "allow"));
    json_decref(j);
    /* an empty array empties it */
    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_PACKAGE, allow, 0, NULL, 0, &ADMIN));
    OK(custos_engine_policy_get(&j, f->e, "pump", 1));
    assert_int_equal(json_integer_value(json_object_get(j, "allow_count")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "deny_count")), 1);
    json_decref(j);
    /* a bad serial changes nothing */
    assert_int_equal(
        custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_MANUAL, bad, 2, NULL, 0, &ADMIN),
        CUSTOS_ERR_ARG);
    assert_string_equal(custos_error_last()->field, "allow");
    OK(custos_engine_policy_get(&j, f->e, "pump", 0));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "package");
    json_decref(j);
    assert_int_equal(
        custos_engine_policy_set(f->e, "pump", (custos_policy_mode)0, NULL, 0, NULL, 0, &ADMIN),
        CUSTOS_ERR_ARG);
    assert_int_equal(
        custos_engine_policy_set(f->e, "nope", CUSTOS_POLICY_MANUAL, NULL, 0, NULL, 0, &ADMIN),
        CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_policy_get(&j, f->e, "nope", 0), CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(ef_count_audit(f, "policy.set", "user:admin"), 3);
}

static void test_large_lists(void **state)
{
    ef_fx *f = *state;
    enum { N = CUSTOS_POLICY_MAX_SERIALS };
    char(*buf)[16] = calloc(N + 1, sizeof(*buf));
    const char **list = calloc(N + 1, sizeof(*list));
    custos_request_summary r;
    json_t *j = NULL;
    struct timespec t0, t1;
    size_t i;

    assert_non_null(buf);
    assert_non_null(list);
    for (i = 0; i <= N; i++) {
        snprintf(buf[i], sizeof(buf[i]), "SN-%06zu", i);
        list[i] = buf[i];
    }
    assert_int_equal(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_ALLOW_LIST, list, N + 1,
                                              NULL, 0, &ADMIN),
                     CUSTOS_ERR_LIMIT);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    OK(custos_engine_policy_set(f->e, "pump", CUSTOS_POLICY_ALLOW_LIST, list, N, NULL, 0, &ADMIN));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("policy_set of %d serials: %.0f ms\n", N,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    OK(custos_engine_policy_get(&j, f->e, "pump", 0));
    assert_int_equal(json_integer_value(json_object_get(j, "allow_count")), N);
    json_decref(j);
    submit_initial(f, "SN-099999", &r);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    submit_initial(f, "SN-100000", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    free(list);
    free(buf);
}

/* Another engine on the same data directory changes the policy: the next
 * submission sees it (no stale cache). */
static void test_policy_seen_across_engines(void **state)
{
    ef_fx *f = *state;
    custos_engine *other = NULL;
    custos_request_summary r;

    OK(custos_engine_open(&other, f->dir));
    submit_initial(f, "SN-X1", &r);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    OK(custos_engine_policy_set(other, "pump", CUSTOS_POLICY_PACKAGE, NULL, 0, NULL, 0, &ADMIN));
    submit_initial(f, "SN-X2", &r);
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    custos_engine_free(other);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_names),
        T(test_manual_default),
        T(test_package_mode),
        T(test_deny_wins),
        T(test_allow_list),
        T(test_duplicate_waits),
        T(test_reprovision_needs_provisioned_device),
        T(test_failed_auto_approval_stays_pending),
        T(test_lists_kept_and_replaced),
        T(test_large_lists),
        T(test_policy_seen_across_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
