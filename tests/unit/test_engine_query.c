/* What the operator API reads: the request summary JSON, filtered pages of
 * requests with cursors (ties on the creation time included), counts per
 * state, the request detail, systems, packages and their stored files, the
 * audit trail by filter and page, and a data directory of schema 1 opening
 * (migrated) with its requests searchable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/engine_fixture.h"

typedef struct collected {
    char ids[64][CUSTOS_ID_LEN + 1];
    char serials[64][CUSTOS_MAX_SERIAL_LEN + 1];
    int64_t created[64];
    size_t n;
} collected;

static int collect(const custos_request_summary *r, void *ctx)
{
    collected *c = ctx;
    if (c->n < 64) {
        memcpy(c->ids[c->n], r->request_id, sizeof(c->ids[0]));
        memcpy(c->serials[c->n], r->serial, sizeof(c->serials[0]));
        c->created[c->n] = r->created;
        c->n++;
    }
    return 0;
}

/* One page of @p f into @p c (appending); the next cursor into @p next. */
static void page(ef_fx *f, custos_request_filter *flt, collected *c, char next[CUSTOS_CURSOR_MAX])
{
    OK(custos_engine_request_query(f->e, flt, collect, c, next, CUSTOS_CURSOR_MAX));
}

static size_t query_count(ef_fx *f, custos_request_filter flt)
{
    collected c;
    char next[CUSTOS_CURSOR_MAX];
    memset(&c, 0, sizeof(c));
    flt.limit = 500;
    page(f, &flt, &c, next);
    assert_string_equal(next, "");
    return c.n;
}

/* 12 requests: SN-0001..SN-0012, created one second apart except 5..7
 * (one second for three); SN-0003 approved, SN-0004 rejected; SN-0010..12
 * of component "longlived" with hardware ids HW-L*. */
static void populate(ef_fx *f, char ids[12][CUSTOS_ID_LEN + 1])
{
    custos_request_summary r;
    char serial[16], hw[16];
    size_t i;
    for (i = 1; i <= 12; i++) {
        ef_req_spec s = ef_initial_spec(NULL);
        snprintf(serial, sizeof(serial), "SN-%04zu", i);
        s.serial = serial;
        if (i >= 10) {
            snprintf(hw, sizeof(hw), "HW-L%zu", i);
            s.component = "longlived";
            s.n = 1;
            s.hardware_id = hw;
        }
        if (i != 6 && i != 7)
            f->now++;
        OK(ef_import(f, &s, "import", &r, NULL));
        memcpy(ids[i - 1], r.request_id, CUSTOS_ID_LEN + 1);
    }
    OK(custos_engine_request_approve(&r, f->e, ids[2], &EF_ACTOR));
    OK(custos_engine_request_reject(&r, f->e, ids[3], "bad", &EF_ACTOR));
}

static void test_summary_json(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    json_t *j = NULL;
    char when[21];

    ef_import_initial(f, "SN-1", "upload", &r);
    OK(custos_request_summary_json(&j, &r));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(j, "via")), "upload");
    assert_string_equal(json_string_value(json_object_get(j, "serial")), "SN-1");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "X2");
    assert_true(json_is_false(json_object_get(j, "duplicate_serial")));
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "");
    custos_time_format(when, r.created);
    assert_string_equal(json_string_value(json_object_get(j, "created")), when);
    assert_int_equal(json_object_size(j), 15);
    json_decref(j);
}

static void test_query_filters(void **state)
{
    ef_fx *f = *state;
    char ids[12][CUSTOS_ID_LEN + 1];
    custos_request_filter flt = CUSTOS_REQUEST_FILTER_INIT;
    collected c;
    char next[CUSTOS_CURSOR_MAX];

    populate(f, ids);
    assert_int_equal(query_count(f, flt), 12);
    flt.state = CUSTOS_STATE_PENDING;
    assert_int_equal(query_count(f, flt), 10);
    flt.state = CUSTOS_STATE_CERTIFIED;
    assert_int_equal(query_count(f, flt), 1);
    flt.state = CUSTOS_STATE_REJECTED;
    assert_int_equal(query_count(f, flt), 1);
    flt.state = (custos_state)0;
    flt.system = "pump";
    assert_int_equal(query_count(f, flt), 12);
    flt.component = "longlived";
    assert_int_equal(query_count(f, flt), 3);
    flt.state = CUSTOS_STATE_PENDING;
    assert_int_equal(query_count(f, flt), 3);
    flt.component = "ctl";
    assert_int_equal(query_count(f, flt), 7);
    flt.system = "other";
    flt.component = NULL;
    assert_int_equal(query_count(f, flt), 0);
    flt.system = NULL;
    flt.state = (custos_state)0;
    /* prefix of the serial or of the hardware id */
    flt.q = "SN-001";
    assert_int_equal(query_count(f, flt), 3); /* 0010, 0011, 0012 */
    flt.q = "SN-0001";
    assert_int_equal(query_count(f, flt), 1);
    flt.q = "HW-L1";
    assert_int_equal(query_count(f, flt), 3);
    flt.q = "hw-";
    assert_int_equal(query_count(f, flt), 9); /* the fixture's hw-1 */
    flt.q = "SN-0000";
    assert_int_equal(query_count(f, flt), 0);
    flt.q = "S";
    flt.state = CUSTOS_STATE_CERTIFIED;
    memset(&c, 0, sizeof(c));
    page(f, &flt, &c, next);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.serials[0], "SN-0003");

    /* refused filters */
    flt = (custos_request_filter)CUSTOS_REQUEST_FILTER_INIT;
    flt.limit = CUSTOS_LIST_MAX + 1;
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_ARG);
    flt.limit = 10;
    flt.component = "ctl";
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_ARG);
    flt.component = NULL;
    flt.state = (custos_state)99;
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_ARG);
    flt.state = (custos_state)0;
    flt.q = "";
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_ARG);
    flt.q = NULL;
    flt.cursor = "not-a-cursor!";
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "cursor");
    flt.cursor = "MTIzNDU"; /* base64url of "12345": no id */
    assert_int_equal(custos_engine_request_query(f->e, &flt, collect, &c, next, sizeof(next)),
                     CUSTOS_ERR_MALFORMED);
}

static void test_query_paging(void **state)
{
    ef_fx *f = *state;
    char ids[12][CUSTOS_ID_LEN + 1];
    custos_request_filter flt = CUSTOS_REQUEST_FILTER_INIT;
    collected all, c;
    char next[CUSTOS_CURSOR_MAX], cur[CUSTOS_CURSOR_MAX];
    size_t i, j, pages = 0;

    populate(f, ids);
    memset(&all, 0, sizeof(all));
    flt.limit = 500;
    page(f, &flt, &all, next);
    assert_int_equal(all.n, 12);
    assert_string_equal(all.serials[0], "SN-0012"); /* newest first */
    assert_string_equal(all.serials[11], "SN-0001");
    for (i = 1; i < all.n; i++)
        assert_true(
            all.created[i - 1] > all.created[i] ||
            (all.created[i - 1] == all.created[i] && strcmp(all.ids[i - 1], all.ids[i]) > 0));

    /* pages of 5 (the tie of three created in one second across a page
     * boundary): the same rows, in the same order, each once */
    memset(&c, 0, sizeof(c));
    flt.limit = 5;
    flt.cursor = NULL;
    do {
        size_t before = c.n;
        page(f, &flt, &c, next);
        pages++;
        assert_true(c.n - before <= 5);
        snprintf(cur, sizeof(cur), "%s", next);
        flt.cursor = cur;
    } while (next[0] != '\0');
    assert_int_equal(pages, 3);
    assert_int_equal(c.n, 12);
    for (i = 0; i < 12; i++)
        assert_string_equal(c.ids[i], all.ids[i]);
    for (i = 0; i < 12; i++)
        for (j = i + 1; j < 12; j++)
            assert_string_not_equal(c.ids[i], c.ids[j]);
    /* pages of 4 (exactly three full pages): the last has no next cursor */
    memset(&c, 0, sizeof(c));
    flt.limit = 4;
    flt.cursor = NULL;
    pages = 0;
    do {
        page(f, &flt, &c, next);
        pages++;
        snprintf(cur, sizeof(cur), "%s", next);
        flt.cursor = cur;
    } while (next[0] != '\0');
    assert_int_equal(pages, 3);
    assert_int_equal(c.n, 12);
    /* with a filter */
    memset(&c, 0, sizeof(c));
    flt.limit = 2;
    flt.cursor = NULL;
    flt.state = CUSTOS_STATE_PENDING;
    flt.system = "pump";
    flt.component = "ctl";
    pages = 0;
    do {
        page(f, &flt, &c, next);
        pages++;
        snprintf(cur, sizeof(cur), "%s", next);
        flt.cursor = cur;
    } while (next[0] != '\0');
    assert_int_equal(c.n, 7);
    assert_int_equal(pages, 4);
}

static void test_counts(void **state)
{
    ef_fx *f = *state;
    char ids[12][CUSTOS_ID_LEN + 1];
    size_t n[8];
    custos_request_summary r;

    OK(custos_engine_request_counts(n, f->e, NULL, NULL));
    assert_int_equal(n[0], 0);
    populate(f, ids);
    OK(custos_engine_request_counts(n, f->e, NULL, NULL));
    assert_int_equal(n[0], 12);
    assert_int_equal(n[CUSTOS_STATE_PENDING], 10);
    assert_int_equal(n[CUSTOS_STATE_CERTIFIED], 1);
    assert_int_equal(n[CUSTOS_STATE_REJECTED], 1);
    assert_int_equal(n[CUSTOS_STATE_APPROVED], 0);
    OK(custos_engine_request_counts(n, f->e, "pump", "longlived"));
    assert_int_equal(n[0], 3);
    assert_int_equal(n[CUSTOS_STATE_PENDING], 3);
    OK(custos_engine_request_counts(n, f->e, "pump", NULL));
    assert_int_equal(n[0], 12);
    OK(custos_engine_device_complete(&r, f->e, ids[2], &EF_ACTOR));
    OK(custos_engine_request_counts(n, f->e, "pump", "ctl"));
    assert_int_equal(n[CUSTOS_STATE_CERTIFIED], 0);
    assert_int_equal(n[CUSTOS_STATE_PROVISIONED], 1);
    assert_int_equal(n[0], 9);
    OK(custos_engine_request_counts(n, f->e, "nope", NULL));
    assert_int_equal(n[0], 0);
    assert_int_equal(custos_engine_request_counts(n, f->e, NULL, "ctl"), CUSTOS_ERR_ARG);
}

static void test_detail(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    custos_profile_doc *p;
    EVP_PKEY *keys[4] = {0};
    json_t *j = NULL, *v;
    size_t i;

    p = ef_provision(f, "SN-D", keys, &r);
    OK(custos_engine_request_detail(&j, f->e, r.request_id));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "certified");
    assert_string_equal(json_string_value(json_object_get(j, "hardware_id")), "hw-1");
    v = json_object_get(j, "identity");
    assert_string_equal(json_string_value(json_object_get(v, "serial")), "SN-D");
    assert_string_equal(json_string_value(json_object_get(v, "firmware")), "1.0");
    assert_true(json_is_object(json_object_get(v, "manufacturer")));
    assert_true(json_is_object(json_object_get(j, "metadata")));
    v = json_object_get(j, "keys");
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "name")), "tls");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "alg")),
                        "ecdsa-p256");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(json_array_get(v, 0), "usage"), 0)),
        "tls-client");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 1), "alg")),
                        "ecdsa-p384");
    v = json_object_get(j, "signer");
    assert_string_equal(json_string_value(json_object_get(v, "kind")), "bootstrap");
    assert_string_equal(json_string_value(json_object_get(v, "package_id")), f->pkg->package_id);
    assert_non_null(strstr(json_string_value(json_object_get(v, "subject")), "bootstrap"));
    assert_true(json_is_string(json_object_get(v, "not_after")));
    v = json_object_get(j, "certificates");
    assert_int_equal(json_array_size(v), 2);
    for (i = 0; i < 2; i++) {
        json_t *c = json_array_get(v, i);
        assert_int_equal(strlen(json_string_value(json_object_get(c, "sha256"))), 64);
        assert_non_null(strstr(json_string_value(json_object_get(c, "subject")), "SN-D"));
        assert_true(json_is_string(json_object_get(c, "not_before")));
        assert_true(json_is_string(json_object_get(c, "template")));
    }
    v = json_object_get(j, "history");
    assert_int_equal(json_array_size(v), 3); /* import, approve, issue */
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "action")),
                        "request.import");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 2), "action")),
                        "request.issue");
    assert_true(json_is_object(json_object_get(json_array_get(v, 0), "detail")));
    json_decref(j);

    assert_int_equal(custos_engine_request_detail(&j, f->e, "aaaaaaaaaaaaaaaaaaaaaaaaaa"),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_request_detail(&j, f->e, "../x"), CUSTOS_ERR_NOT_FOUND);
    custos_profile_doc_free(p);
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

static int count_system(const char *name, const char *json, void *ctx)
{
    assert_string_equal(name, "pump");
    assert_non_null(strstr(json, "\"components\""));
    (*(int *)ctx)++;
    return 0;
}

static void test_systems(void **state)
{
    ef_fx *f = *state;
    char *json = NULL;
    int n = 0;
    OK(custos_engine_system_list(f->e, count_system, &n));
    assert_int_equal(n, 1);
    OK(custos_engine_system_get(&json, f->e, "pump"));
    assert_non_null(strstr(json, "\"name\":\"pump\""));
    free(json);
    assert_int_equal(custos_engine_system_get(&json, f->e, "nope"), CUSTOS_ERR_NOT_FOUND);
    assert_null(json);
}

typedef struct pkgs {
    char ids[8][CUSTOS_ID_LEN + 1];
    size_t n;
} pkgs;

static int collect_pkg(const custos_package_info *p, void *ctx)
{
    pkgs *c = ctx;
    assert_string_equal(p->system, "pump");
    assert_true(p->expires > p->created);
    if (c->n < 8)
        memcpy(c->ids[c->n++], p->package_id, CUSTOS_ID_LEN + 1);
    return 0;
}

static void test_packages(void **state)
{
    ef_fx *f = *state;
    custos_package_info info;
    uint8_t *der = NULL, *file = NULL;
    size_t len = 0, file_len = 0;
    pkgs c;
    char next[CUSTOS_CURSOR_MAX], cur[CUSTOS_CURSOR_MAX];

    f->now += 10;
    OK(custos_engine_package_create_ex(&info, &der, &len, f->e, "pump", PASS, strlen(PASS), 7,
                                       &EF_ACTOR));
    assert_true(custos_id_valid(info.package_id));
    assert_string_equal(info.system, "pump");
    assert_int_equal(info.created, f->now);
    assert_int_equal(info.has_file, 1);
    OK(custos_engine_package_get_file(&file, &file_len, f->e, info.package_id));
    assert_int_equal(file_len, len);
    assert_memory_equal(file, der, len);
    free(file);
    free(der);
    /* the fixture's package too: two, newest first, one per page */
    memset(&c, 0, sizeof(c));
    OK(custos_engine_package_list(f->e, "pump", 1, NULL, collect_pkg, &c, next, sizeof(next)));
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], info.package_id);
    assert_string_not_equal(next, "");
    snprintf(cur, sizeof(cur), "%s", next);
    OK(custos_engine_package_list(f->e, NULL, 1, cur, collect_pkg, &c, next, sizeof(next)));
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[1], f->pkg->package_id);
    assert_string_equal(next, "");
    OK(custos_engine_package_list(f->e, "other", 0, NULL, collect_pkg, &c, next, sizeof(next)));
    assert_int_equal(c.n, 2);
    assert_int_equal(
        custos_engine_package_get_file(&file, &file_len, f->e, "aaaaaaaaaaaaaaaaaaaaaaaaaa"),
        CUSTOS_ERR_NOT_FOUND);
}

typedef struct audits {
    int64_t seqs[64];
    char actions[64][32];
    size_t n;
} audits;

static int collect_audit(const custos_audit_entry *a, void *ctx)
{
    audits *c = ctx;
    json_t *j = NULL;
    OK(custos_audit_entry_json(&j, a));
    assert_true(json_is_object(json_object_get(j, "detail")));
    assert_true(json_is_string(json_object_get(j, "time")));
    json_decref(j);
    if (c->n < 64) {
        c->seqs[c->n] = a->seq;
        snprintf(c->actions[c->n], sizeof(c->actions[0]), "%s", a->action);
        c->n++;
    }
    return 0;
}

static void test_audit_list(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    custos_audit_filter flt = CUSTOS_AUDIT_FILTER_INIT;
    audits c;
    char next[CUSTOS_CURSOR_MAX], cur[CUSTOS_CURSOR_MAX];
    int64_t t_mid;
    size_t pages = 0, i;

    /* init, system.create, package.create so far */
    f->now += 100;
    ef_import_initial(f, "SN-1", "import", &r);
    t_mid = f->now + 50;
    f->now += 100;
    OK(custos_engine_request_approve(&r, f->e, r.request_id, &EF_ACTOR));
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 6);
    assert_string_equal(c.actions[0], "request.issue"); /* newest first */
    assert_string_equal(c.actions[5], "init");
    assert_string_equal(next, "");
    /* paging by 4 */
    memset(&c, 0, sizeof(c));
    flt.limit = 4;
    do {
        OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
        pages++;
        snprintf(cur, sizeof(cur), "%s", next);
        flt.cursor = cur;
    } while (next[0] != '\0');
    assert_int_equal(pages, 2);
    assert_int_equal(c.n, 6);
    for (i = 1; i < c.n; i++)
        assert_true(c.seqs[i - 1] == c.seqs[i] + 1);
    /* filters */
    flt = (custos_audit_filter)CUSTOS_AUDIT_FILTER_INIT;
    flt.object = r.request_id;
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 3);
    flt.action = "request.approve";
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 1);
    flt = (custos_audit_filter)CUSTOS_AUDIT_FILTER_INIT;
    flt.actor = EF_ACTOR.who;
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 5); /* all but init */
    flt.since = t_mid;
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 2); /* approve, issue */
    flt.since = 0;
    flt.until = t_mid;
    memset(&c, 0, sizeof(c));
    OK(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)));
    assert_int_equal(c.n, 3);
    flt.cursor = "bm9wZQ";
    assert_int_equal(custos_engine_audit_list(f->e, &flt, collect_audit, &c, next, sizeof(next)),
                     CUSTOS_ERR_MALFORMED);
}

/* ---- migration from schema 1 ---------------------------------------------- */

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg != NULL ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* Turn the fixture's store back into what version 1 wrote. */
static void downgrade_to_v1(ef_fx *f)
{
    char path[400];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec(db, "BEGIN;"
             "DROP TABLE gateways; ALTER TABLE requests DROP COLUMN gateway_id;" /* schema 3 */
             "ALTER TABLE requests DROP COLUMN gateway_serial;"
             "DROP TRIGGER requests_count_insert; DROP TRIGGER requests_count_state;"
             "DROP TRIGGER requests_count_delete;"
             "DROP TABLE request_counts; DROP TABLE receipts; DROP TABLE policy_serials;"
             "DROP TABLE policies; DROP TABLE credentials; DROP TABLE users;"
             "DROP INDEX requests_state; DROP INDEX requests_system;"
             "DROP INDEX requests_system_state; DROP INDEX requests_component;"
             "DROP INDEX requests_hardware; DROP INDEX packages_created;"
             "DROP INDEX audit_actor; DROP INDEX audit_action; DROP INDEX audit_object;"
             "DROP INDEX audit_time;"
             "ALTER TABLE requests DROP COLUMN hardware_id;"
             "ALTER TABLE packages DROP COLUMN file;"
             "CREATE INDEX requests_state ON requests(state, created);"
             "CREATE INDEX requests_component ON requests(system, component, created);"
             "PRAGMA user_version = 1; COMMIT;");
    sqlite3_close(db);
}

static void test_migration_from_v1(void **state)
{
    ef_fx *f = *state;
    char ids[12][CUSTOS_ID_LEN + 1];
    custos_request_filter flt = CUSTOS_REQUEST_FILTER_INIT;
    custos_request_summary r;
    size_t n[8], count = 0;
    char pw[64];

    populate(f, ids);
    custos_engine_free(f->e);
    f->e = NULL;
    downgrade_to_v1(f);
    OK(custos_engine_open(&f->e, f->dir));
    custos_engine_set_clock(f->e, ef_fake_clock, &f->now);
    /* the counters are rebuilt, the hardware ids read back from the requests */
    OK(custos_engine_request_counts(n, f->e, NULL, NULL));
    assert_int_equal(n[0], 12);
    assert_int_equal(n[CUSTOS_STATE_PENDING], 10);
    flt.q = "HW-L";
    assert_int_equal(query_count(f, flt), 3);
    /* and everything new works on it */
    OK(custos_engine_user_create(f->e, "admin", CUSTOS_ROLE_ADMIN, NULL, pw, sizeof(pw),
                                 &EF_ACTOR));
    OK(custos_engine_request_approve(&r, f->e, ids[0], &EF_ACTOR));
    OK(custos_engine_request_counts(n, f->e, NULL, NULL));
    assert_int_equal(n[CUSTOS_STATE_CERTIFIED], 2);
    OK(custos_engine_audit_verify(&count, f->e));
    assert_true(count > 12);
    assert_int_equal(ef_count_rows(f, "requests"), 12);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_summary_json), T(test_query_filters), T(test_query_paging),
        T(test_counts),       T(test_detail),        T(test_systems),
        T(test_packages),     T(test_audit_list),    T(test_migration_from_v1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
