/* The SQLite store: transactions, systems, packages, requests (CAS, cursor,
 * digest, duplicate serial count), certificates (UNIQUE serial), profiles,
 * audit rows, schema version; schema 2's counters, credentials and policy
 * lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "internal/util.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "support/testca.h"

typedef struct fx {
    char dir[256];
    char path[300];
    custos_store *st;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(testca_tmpdir(f->dir, sizeof(f->dir)), 0);
    snprintf(f->path, sizeof(f->path), "%s/custos.db", f->dir);
    assert_int_equal(custos_store_sqlite_open(&f->st, f->path, 1), 0);
    assert_int_equal(f->st->ops->system_put(f->st->ctx, "pump", "{}", 100), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    custos_store_free(f->st);
    testca_rmtree(f->dir);
    free(f);
    return 0;
}

static void make_request(custos_store_request *r, const char *id, const char *device,
                         const char *serial, int64_t created, uint8_t tag)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->sum.request_id, sizeof(r->sum.request_id), "%s", id);
    snprintf(r->sum.device_id, sizeof(r->sum.device_id), "%s", device);
    r->sum.state = CUSTOS_STATE_PENDING;
    snprintf(r->sum.system, sizeof(r->sum.system), "pump");
    snprintf(r->sum.component, sizeof(r->sum.component), "ctl");
    snprintf(r->sum.serial, sizeof(r->sum.serial), "%s", serial);
    snprintf(r->sum.kind, sizeof(r->sum.kind), "initial");
    snprintf(r->sum.via, sizeof(r->sum.via), "import");
    r->sum.created = created;
    r->sum.updated = created;
    r->sum.expires = created + 1000;
    memset(r->digest, tag, 32);
    r->der = (uint8_t *)"mcpr-bytes";
    r->der_len = 10;
}

static void test_system_and_authority(void **state)
{
    fx *f = *state;
    char *json = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(f->st->ops->system_put(f->st->ctx, "pump", "{}", 1), CUSTOS_ERR_EXISTS);
    assert_int_equal(f->st->ops->system_get(f->st->ctx, &json, "pump"), 0);
    assert_string_equal(json, "{}");
    free(json);
    assert_int_equal(f->st->ops->system_get(f->st->ctx, &json, "nope"), CUSTOS_ERR_NOT_FOUND);
    assert_null(json);
    assert_int_equal(
        f->st->ops->authority_put(f->st->ctx, "root", (const uint8_t *)"\x30\x00", 2, 1), 0);
    assert_int_equal(f->st->ops->authority_get(f->st->ctx, &der, &len, "root"), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(der, "\x30\x00", 2);
    free(der);
}

static void test_transaction_rollback(void **state)
{
    fx *f = *state;
    char *json = NULL;
    assert_int_equal(f->st->ops->begin(f->st->ctx), 0);
    assert_int_equal(f->st->ops->begin(f->st->ctx), CUSTOS_ERR_INTERNAL); /* no nesting */
    assert_int_equal(f->st->ops->system_put(f->st->ctx, "gone", "{}", 1), 0);
    f->st->ops->rollback(f->st->ctx);
    assert_int_equal(f->st->ops->system_get(f->st->ctx, &json, "gone"), CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(f->st->ops->begin(f->st->ctx), 0);
    assert_int_equal(f->st->ops->system_put(f->st->ctx, "kept", "{}", 1), 0);
    assert_int_equal(f->st->ops->commit(f->st->ctx), 0);
    assert_int_equal(f->st->ops->system_get(f->st->ctx, &json, "kept"), 0);
    free(json);
}

static void test_request_cas_and_digest(void **state)
{
    fx *f = *state;
    custos_store_request r, got;
    uint8_t digest[32];

    make_request(&r, "aaaaaaaaaaaaaaaaaaaaaaaaaa", "dddddddddddddddddddddddddd", "SN1", 10, 1);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), CUSTOS_ERR_EXISTS);
    assert_int_equal(f->st->ops->request_get(f->st->ctx, &got, r.sum.request_id), 0);
    assert_string_equal(got.sum.serial, "SN1");
    assert_int_equal(got.sum.state, CUSTOS_STATE_PENDING);
    assert_int_equal(got.der_len, 10);
    custos_store_request_clear(&got);
    memset(digest, 1, 32);
    assert_int_equal(f->st->ops->request_get_by_digest(f->st->ctx, &got, digest), 0);
    assert_string_equal(got.sum.request_id, r.sum.request_id);
    custos_store_request_clear(&got);
    memset(digest, 2, 32);
    assert_int_equal(f->st->ops->request_get_by_digest(f->st->ctx, &got, digest),
                     CUSTOS_ERR_NOT_FOUND);

    assert_int_equal(f->st->ops->request_set_state(f->st->ctx, r.sum.request_id,
                                                   CUSTOS_STATE_APPROVED, CUSTOS_STATE_CERTIFIED,
                                                   NULL, 11),
                     CUSTOS_ERR_STATE);
    assert_int_equal(f->st->ops->request_set_state(f->st->ctx, r.sum.request_id,
                                                   CUSTOS_STATE_PENDING, CUSTOS_STATE_REJECTED,
                                                   "bad", 12),
                     0);
    assert_int_equal(f->st->ops->request_get(f->st->ctx, &got, r.sum.request_id), 0);
    assert_int_equal(got.sum.state, CUSTOS_STATE_REJECTED);
    assert_string_equal(got.sum.reason, "bad");
    assert_int_equal(got.sum.updated, 12);
    custos_store_request_clear(&got);
}

typedef struct collect {
    char ids[16][CUSTOS_ID_LEN + 1];
    size_t n;
    custos_store_cursor last;
} collect;

static int collect_cb(const custos_store_request *r, void *ctx)
{
    collect *c = ctx;
    snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", r->sum.request_id);
    c->last.created = r->sum.created;
    snprintf(c->last.id, sizeof(c->last.id), "%s", r->sum.request_id);
    return 0;
}

static void test_request_list_cursor(void **state)
{
    fx *f = *state;
    custos_store_request r;
    collect c;
    size_t dup = 9;

    make_request(&r, "aaaaaaaaaaaaaaaaaaaaaaaaaa", "d1", "SN1", 10, 1);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    make_request(&r, "bbbbbbbbbbbbbbbbbbbbbbbbbb", "d2", "SN1", 20, 2);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    make_request(&r, "cccccccccccccccccccccccccc", "d3", "SN2", 20, 3);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    assert_int_equal(f->st->ops->request_set_state(f->st->ctx, "cccccccccccccccccccccccccc",
                                                   CUSTOS_STATE_PENDING, CUSTOS_STATE_APPROVED,
                                                   NULL, 21),
                     0);

    memset(&c, 0, sizeof(c));
    assert_int_equal(f->st->ops->request_list(f->st->ctx, 0, NULL, 2, collect_cb, &c), 0);
    assert_int_equal(c.n, 2); /* created desc, id asc */
    assert_string_equal(c.ids[0], "bbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_string_equal(c.ids[1], "cccccccccccccccccccccccccc");
    c.n = 0;
    assert_int_equal(f->st->ops->request_list(f->st->ctx, 0, &c.last, 2, collect_cb, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "aaaaaaaaaaaaaaaaaaaaaaaaaa");
    c.n = 0;
    assert_int_equal(
        f->st->ops->request_list(f->st->ctx, CUSTOS_STATE_PENDING, NULL, 10, collect_cb, &c), 0);
    assert_int_equal(c.n, 2);

    assert_int_equal(f->st->ops->request_count_serial(f->st->ctx, &dup, "pump", "SN1", "d1"), 0);
    assert_int_equal(dup, 1);
    assert_int_equal(f->st->ops->request_count_serial(f->st->ctx, &dup, "pump", "SN2", "d3"), 0);
    assert_int_equal(dup, 0);
}

static void test_certificates_and_profiles(void **state)
{
    fx *f = *state;
    custos_store_request r;
    custos_store_cert c, got;
    uint8_t *der = NULL;
    size_t len = 0;

    make_request(&r, "aaaaaaaaaaaaaaaaaaaaaaaaaa", "d1", "SN1", 10, 1);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    memset(&c, 0, sizeof(c));
    snprintf(c.serial, sizeof(c.serial), "0102");
    snprintf(c.request_id, sizeof(c.request_id), "aaaaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(c.device_id, sizeof(c.device_id), "d1");
    snprintf(c.template_name, sizeof(c.template_name), "tls");
    snprintf(c.issuer, sizeof(c.issuer), "system.pump");
    c.der = (uint8_t *)"cert";
    c.der_len = 4;
    assert_int_equal(f->st->ops->cert_insert(f->st->ctx, &c), 0);
    assert_int_equal(f->st->ops->cert_insert(f->st->ctx, &c), CUSTOS_ERR_DUPLICATE);
    snprintf(c.serial, sizeof(c.serial), "0103");
    snprintf(c.request_id, sizeof(c.request_id), "zzzzzzzzzzzzzzzzzzzzzzzzzz");
    assert_int_not_equal(f->st->ops->cert_insert(f->st->ctx, &c), 0); /* foreign key */
    assert_int_equal(f->st->ops->cert_get(f->st->ctx, &got, "0102"), 0);
    assert_string_equal(got.device_id, "d1");
    assert_int_equal(got.der_len, 4);
    custos_store_cert_clear(&got);
    assert_int_equal(f->st->ops->cert_get(f->st->ctx, &got, "ffff"), CUSTOS_ERR_NOT_FOUND);

    assert_int_equal(f->st->ops->profile_put(f->st->ctx, "aaaaaaaaaaaaaaaaaaaaaaaaaa",
                                             (const uint8_t *)"prof", 4, 1),
                     0);
    assert_int_equal(f->st->ops->profile_get(f->st->ctx, &der, &len, "aaaaaaaaaaaaaaaaaaaaaaaaaa"),
                     0);
    assert_int_equal(len, 4);
    free(der);
}

static void test_packages(void **state)
{
    fx *f = *state;
    custos_store_package p, got;
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "pppppppppppppppppppppppppp");
    snprintf(p.system, sizeof(p.system), "pump");
    p.cert_der = (uint8_t *)"c";
    p.cert_len = 1;
    p.expires = 5;
    assert_int_equal(f->st->ops->package_put(f->st->ctx, &p), 0);
    assert_int_equal(f->st->ops->package_get(f->st->ctx, &got, p.id), 0);
    assert_int_equal(got.expires, 5);
    assert_string_equal(got.system, "pump");
    custos_store_package_clear(&got);
    assert_int_equal(f->st->ops->package_get(f->st->ctx, &got, "nope"), CUSTOS_ERR_NOT_FOUND);
    snprintf(p.id, sizeof(p.id), "qqqqqqqqqqqqqqqqqqqqqqqqqq");
    snprintf(p.system, sizeof(p.system), "unknown-system");
    assert_int_not_equal(f->st->ops->package_put(f->st->ctx, &p), 0);
}

static void test_schema_version_checked(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    custos_store *st = NULL;
    custos_store_free(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(custos_store_sqlite_open(&st, f->path, 0), CUSTOS_ERR_UNSUPPORTED);
    assert_null(st);
    assert_int_equal(custos_store_sqlite_open(&st, "/nonexistent/dir/x.db", 0), CUSTOS_ERR_IO);
    assert_int_equal(custos_store_sqlite_open(&f->st, f->path, 1), CUSTOS_ERR_UNSUPPORTED);
}

/* Schema 2: the version, the per-state counters the triggers keep, the
 * transaction flag the audit trail relies on, credentials by hash (joined
 * with their user), policy lists folded and replaced. */
static void test_schema2(void **state)
{
    fx *f = *state;
    custos_store_request r;
    custos_store_user u;
    custos_store_cred c, got;
    size_t n[8];
    int has = 0;
    const char *serials[] = {"SN1", "SN2", "SN1"};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), CUSTOS_SQ_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(db);

    make_request(&r, "aaaaaaaaaaaaaaaaaaaaaaaaaa", "dddddddddddddddddddddddddd", "SN1", 10, 1);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    make_request(&r, "bbbbbbbbbbbbbbbbbbbbbbbbba", "eeeeeeeeeeeeeeeeeeeeeeeeee", "SN2", 11, 2);
    assert_int_equal(f->st->ops->request_insert(f->st->ctx, &r), 0);
    assert_int_equal(f->st->ops->request_set_state(f->st->ctx, r.sum.request_id,
                                                   CUSTOS_STATE_PENDING, CUSTOS_STATE_REJECTED,
                                                   "no", 12),
                     0);
    assert_int_equal(f->st->ops->request_counts(f->st->ctx, n, "pump", "ctl"), 0);
    assert_int_equal(n[0], 2);
    assert_int_equal(n[CUSTOS_STATE_PENDING], 1);
    assert_int_equal(n[CUSTOS_STATE_REJECTED], 1);

    assert_int_equal(f->st->ops->in_tx(f->st->ctx), 0);
    assert_int_equal(f->st->ops->begin(f->st->ctx), 0);
    assert_int_equal(f->st->ops->in_tx(f->st->ctx), 1);
    f->st->ops->rollback(f->st->ctx);
    assert_int_equal(f->st->ops->in_tx(f->st->ctx), 0);

    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "alice");
    u.role = CUSTOS_ROLE_AUDITOR;
    snprintf(u.pw_hash, sizeof(u.pw_hash), "scrypt$x");
    assert_int_equal(f->st->ops->user_insert(f->st->ctx, &u), 0);
    assert_int_equal(f->st->ops->user_insert(f->st->ctx, &u), CUSTOS_ERR_EXISTS);
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "cccccccccccccccccccccccccc");
    c.kind = CUSTOS_CRED_TOKEN;
    memset(c.hash, 7, 32);
    snprintf(c.username, sizeof(c.username), "alice");
    c.expires = 100;
    assert_int_equal(f->st->ops->cred_insert(f->st->ctx, &c), 0);
    assert_int_equal(f->st->ops->cred_get_by_hash(f->st->ctx, &got, c.hash), 0);
    assert_string_equal(got.id, c.id);
    assert_int_equal(got.role, CUSTOS_ROLE_AUDITOR);
    assert_int_equal(f->st->ops->user_update(f->st->ctx, "alice", NULL, 1), 0);
    assert_int_equal(f->st->ops->cred_get(f->st->ctx, &got, c.id), 0);
    assert_int_equal(got.user_disabled, 1);
    assert_int_equal(f->st->ops->cred_revoke(f->st->ctx, c.id, 50), 0);
    assert_int_equal(f->st->ops->cred_revoke(f->st->ctx, c.id, 60), 0);
    assert_int_equal(f->st->ops->cred_get(f->st->ctx, &got, c.id), 0);
    assert_int_equal(got.revoked, 50);
    assert_int_equal(f->st->ops->cred_revoke(f->st->ctx, "zzzzzzzzzzzzzzzzzzzzzzzzzz", 1),
                     CUSTOS_ERR_NOT_FOUND);
    memset(c.hash, 8, 32);
    assert_int_equal(f->st->ops->cred_insert(f->st->ctx, &c), CUSTOS_ERR_EXISTS); /* same id */

    assert_int_equal(
        f->st->ops->policy_list_set(f->st->ctx, "pump", CUSTOS_STORE_ALLOW, serials, 3), 0);
    assert_int_equal(f->st->ops->policy_has(f->st->ctx, &has, "pump", CUSTOS_STORE_ALLOW, "SN2"),
                     0);
    assert_int_equal(has, 1);
    assert_int_equal(f->st->ops->policy_has(f->st->ctx, &has, "pump", CUSTOS_STORE_DENY, "SN2"), 0);
    assert_int_equal(has, 0);
    {
        custos_store_policy p;
        assert_int_equal(f->st->ops->policy_get(f->st->ctx, &p, "pump", 1), 0);
        assert_int_equal(p.mode, 0);
        assert_int_equal(p.n_allow, 2);
        assert_int_equal(
            f->st->ops->policy_list_set(f->st->ctx, "pump", CUSTOS_STORE_ALLOW, serials + 1, 1), 0);
        assert_int_equal(f->st->ops->policy_get(f->st->ctx, &p, "pump", 1), 0);
        assert_int_equal(p.n_allow, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_system_and_authority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_cas_and_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_list_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificates_and_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_version_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
