/* The audit trail: hash chain verifies; triggers refuse UPDATE/DELETE; a row
 * altered or removed behind the triggers' back is found, naming its seq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "audit.h"
#include "internal/util.h"
#include "support/testca.h"

typedef struct fx {
    char dir[256];
    char path[300];
    custos_store *st;
} fx;

static const custos_actor ACTOR = {"user:alice", "127.0.0.1"};
static const uint8_t KEY[CUSTOS_AUDIT_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                                  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                  23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    json_t *d = NULL;
    int i;
    assert_non_null(f);
    assert_int_equal(testca_tmpdir(f->dir, sizeof(f->dir)), 0);
    snprintf(f->path, sizeof(f->path), "%s/custos.db", f->dir);
    assert_int_equal(custos_store_sqlite_open(&f->st, f->path, 1), 0);
    for (i = 1; i <= 4; i++) {
        d = json_pack("{s:i, s:s}", "n", i, "what", "thing");
        assert_int_equal(f->st->ops->begin(f->st->ctx), 0);
        assert_int_equal(custos_audit_append(f->st, KEY, 1000 + i, &ACTOR, "test.action", "obj", d),
                         0);
        assert_int_equal(f->st->ops->commit(f->st->ctx), 0);
        json_decref(d);
    }
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

static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static void test_chain_verifies(void **state)
{
    fx *f = *state;
    size_t n = 0;
    assert_int_equal(custos_audit_append(f->st, KEY, 2000, NULL, "null.actor", NULL, NULL), 0);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), 0);
    assert_int_equal(n, 5);
}

static void test_empty_chain(void **state)
{
    fx *f = *state;
    custos_store *st = NULL;
    char path[320];
    size_t n = 7;
    snprintf(path, sizeof(path), "%s/empty.db", f->dir);
    assert_int_equal(custos_store_sqlite_open(&st, path, 1), 0);
    assert_int_equal(custos_audit_verify(&n, st, KEY), 0);
    assert_int_equal(n, 0);
    custos_store_free(st);
}

static void test_triggers_refuse(void **state)
{
    fx *f = *state;
    size_t n = 0;
    assert_int_equal(raw_exec(f->path, "UPDATE audit SET actor = 'mallory' WHERE seq = 2"),
                     SQLITE_CONSTRAINT);
    assert_int_equal(raw_exec(f->path, "DELETE FROM audit WHERE seq = 4"), SQLITE_CONSTRAINT);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), 0);
    assert_int_equal(n, 4);
}

static void test_tamper_detected(void **state)
{
    fx *f = *state;
    size_t n = 0;
    assert_int_equal(raw_exec(f->path, "DROP TRIGGER audit_no_update;"
                                       "UPDATE audit SET detail = '{\"n\":99,\"what\":\"thing\"}'"
                                       " WHERE seq = 3"),
                     SQLITE_OK);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), CUSTOS_ERR_MALFORMED);
    assert_int_equal(n, 2);
    assert_non_null(strstr(custos_error_last()->message, "entry 3"));
    assert_string_equal(custos_error_last()->field, "audit");
}

static void test_deletion_detected(void **state)
{
    fx *f = *state;
    size_t n = 0;
    assert_int_equal(raw_exec(f->path, "DROP TRIGGER audit_no_delete;"
                                       "DELETE FROM audit WHERE seq = 2"),
                     SQLITE_OK);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), CUSTOS_ERR_MALFORMED);
    assert_int_equal(n, 1);
    assert_non_null(strstr(custos_error_last()->message, "entry 3"));
}

static void test_rewritten_hash_breaks_next(void **state)
{
    fx *f = *state;
    size_t n = 0;
    /* Rewriting an entry and its own hash still breaks the link to the next one. */
    assert_int_equal(raw_exec(f->path, "DROP TRIGGER audit_no_update;"
                                       "UPDATE audit SET actor = 'mallory', hash = zeroblob(32)"
                                       " WHERE seq = 1"),
                     SQLITE_OK);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), CUSTOS_ERR_MALFORMED);
    assert_int_equal(n, 0);
    assert_non_null(strstr(custos_error_last()->message, "entry 1"));
}

/* The chain is keyed: someone who can write the database but does not hold
 * the key cannot append or rewrite entries that verify. */
static void test_keyed(void **state)
{
    fx *f = *state;
    size_t n = 0;
    uint8_t other[CUSTOS_AUDIT_KEY_LEN];
    memcpy(other, KEY, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(custos_audit_verify(&n, f->st, other), CUSTOS_ERR_MALFORMED);
    assert_non_null(strstr(custos_error_last()->message, "entry 1"));
    /* An entry appended with another key breaks verification at that entry. */
    assert_int_equal(f->st->ops->begin(f->st->ctx), 0);
    assert_int_equal(custos_audit_append(f->st, other, 3000, &ACTOR, "forged", "obj", NULL), 0);
    assert_int_equal(f->st->ops->commit(f->st->ctx), 0);
    assert_int_equal(custos_audit_verify(&n, f->st, KEY), CUSTOS_ERR_MALFORMED);
    assert_int_equal(n, 4);
    assert_non_null(strstr(custos_error_last()->message, "entry 5"));
}

static void test_bad_arguments(void **state)
{
    fx *f = *state;
    json_t *arr = json_array();
    assert_int_equal(custos_audit_append(f->st, KEY, 1, &ACTOR, "x", "o", arr), CUSTOS_ERR_ARG);
    assert_int_equal(custos_audit_append(f->st, KEY, 1, &ACTOR, NULL, "o", NULL), CUSTOS_ERR_ARG);
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_triggers_refuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_hash_breaks_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
