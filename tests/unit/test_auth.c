/* Operators: users and scrypt passwords, sign-in, sessions (expiry by the
 * engine clock, sign-out, a new password ends them, a disabled user), API
 * tokens (expiry, revocation, never interchangeable with sessions), the
 * audit trail of each change, and that no secret reaches the database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/engine_fixture.h"

#define PW "correct horse battery"

static const custos_actor ADMIN = {"user:admin", "192.0.2.1"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The newest audit entry's fields, by SQL on the database. */
static void last_audit(ef_fx *f, char *actor, char *from, char *action, char *object, size_t cap)
{
    char path[400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT actor, origin, action, object FROM audit"
                                        " ORDER BY seq DESC LIMIT 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(actor, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(from, cap, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(action, cap, "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(object, cap, "%s", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void assert_last_audit(ef_fx *f, const char *actor, const char *from, const char *action,
                              const char *object)
{
    char a[128], fr[128], ac[128], ob[128];
    last_audit(f, a, fr, ac, ob, sizeof(a));
    assert_string_equal(a, actor);
    assert_string_equal(fr, from);
    assert_string_equal(ac, action);
    if (object != NULL)
        assert_string_equal(ob, object);
}

static void test_roles(void **state)
{
    (void)state;
    assert_string_equal(custos_role_name(CUSTOS_ROLE_ADMIN), "admin");
    assert_string_equal(custos_role_name(CUSTOS_ROLE_AUDITOR), "auditor");
    assert_int_equal(custos_role_from_name("technician"), CUSTOS_ROLE_TECHNICIAN);
    assert_int_equal(custos_role_from_name("approver"), CUSTOS_ROLE_APPROVER);
    assert_int_equal(custos_role_from_name("root"), 0);
    assert_int_equal(custos_role_from_name(NULL), 0);
    assert_string_equal(custos_role_name((custos_role)9), "unknown");
    assert_string_equal(custos_err_code(CUSTOS_ERR_AUTH), "unauthenticated");
    assert_string_equal(custos_err_code(CUSTOS_ERR_FORBIDDEN), "forbidden");
}

static int count_user(const custos_user_info *u, void *ctx)
{
    (void)u;
    (*(int *)ctx)++;
    return 0;
}

static void test_user_create(void **state)
{
    ef_fx *f = *state;
    char pw[64];
    custos_user_info u;
    int n = 0;

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_APPROVER, PW, NULL, 0, &ADMIN));
    assert_last_audit(f, "user:admin", "192.0.2.1", "user.create", "alice");
    OK(custos_engine_user_get(&u, f->e, "alice"));
    assert_string_equal(u.username, "alice");
    assert_int_equal(u.role, CUSTOS_ROLE_APPROVER);
    assert_int_equal(u.created, f->now);
    assert_int_equal(u.disabled, 0);
    /* generated password: 32 base64url characters, shown once */
    OK(custos_engine_user_create(f->e, "bob.t-1_x", CUSTOS_ROLE_TECHNICIAN, NULL, pw, sizeof(pw),
                                 &ADMIN));
    assert_int_equal(strlen(pw), CUSTOS_PASSWORD_GEN_LEN);
    assert_true(strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                strlen(pw));
    OK(custos_engine_user_list(f->e, count_user, &n));
    assert_int_equal(n, 2);

    assert_int_equal(
        custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_ADMIN, PW, NULL, 0, &ADMIN),
        CUSTOS_ERR_EXISTS);
    assert_int_equal(
        custos_engine_user_create(f->e, "Alice", CUSTOS_ROLE_ADMIN, PW, NULL, 0, &ADMIN),
        CUSTOS_ERR_ARG);
    assert_int_equal(custos_engine_user_create(f->e, "", CUSTOS_ROLE_ADMIN, PW, NULL, 0, &ADMIN),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_engine_user_create(f->e, "eve", (custos_role)7, PW, NULL, 0, &ADMIN),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_engine_user_create(f->e, "eve", (custos_role)0, PW, NULL, 0, &ADMIN),
                     CUSTOS_ERR_ARG);
    assert_int_equal(
        custos_engine_user_create(f->e, "eve", CUSTOS_ROLE_ADMIN, "short", NULL, 0, &ADMIN),
        CUSTOS_ERR_LIMIT);
    /* no room for a generated password */
    assert_int_equal(custos_engine_user_create(f->e, "eve", CUSTOS_ROLE_ADMIN, NULL, pw, 8, &ADMIN),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_engine_user_get(&u, f->e, "eve"), CUSTOS_ERR_NOT_FOUND);
}

static void test_login_and_session(void **state)
{
    ef_fx *f = *state;
    custos_principal p, q;
    char tok[CUSTOS_SECRET_TEXT_MAX], msg1[512], msg2[512];
    double t0, ms;

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_APPROVER, PW, NULL, 0, &ADMIN));
    t0 = now_ms();
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "198.51.100.7", 0));
    ms = now_ms() - t0;
    print_message("login (scrypt N=2^15 r=8 p=1): %.1f ms\n", ms);
    assert_int_equal(strlen(tok), 43);
    assert_string_equal(p.username, "alice");
    assert_int_equal(p.role, CUSTOS_ROLE_APPROVER);
    assert_string_equal(p.kind, "session");
    assert_true(custos_id_valid(p.credential_id));
    assert_int_equal(strlen(p.csrf), 43);
    assert_int_equal(p.expires, f->now + CUSTOS_SESSION_TTL);
    assert_last_audit(f, "user:alice", "198.51.100.7", "session.login", "alice");

    OK(custos_engine_session_check(&q, f->e, tok));
    assert_string_equal(q.username, "alice");
    assert_string_equal(q.credential_id, p.credential_id);
    assert_string_equal(q.csrf, p.csrf);
    {
        char who[CUSTOS_USERNAME_MAX + 8];
        custos_principal_who(who, &q);
        assert_string_equal(who, "user:alice");
    }

    /* wrong password and unknown user: the same code and message */
    assert_int_equal(custos_engine_login(&q, tok + 0, sizeof(tok), f->e, "alice", "wrong password!",
                                         "198.51.100.7", 0),
                     CUSTOS_ERR_AUTH);
    snprintf(msg1, sizeof(msg1), "%s", custos_error_last()->message);
    assert_last_audit(f, "anonymous", "198.51.100.7", "session.login_failed", "");
    {
        char tok2[CUSTOS_SECRET_TEXT_MAX];
        assert_int_equal(
            custos_engine_login(&q, tok2, sizeof(tok2), f->e, "mallory", PW, "198.51.100.7", 0),
            CUSTOS_ERR_AUTH);
        snprintf(msg2, sizeof(msg2), "%s", custos_error_last()->message);
        assert_string_equal(msg1, msg2);
        assert_string_equal(tok2, "");
        assert_int_equal(custos_engine_login(&q, tok2, sizeof(tok2), f->e, "../etc", PW, "x", 0),
                         CUSTOS_ERR_AUTH);
        assert_int_equal(custos_engine_login(&q, tok2, sizeof(tok2), f->e, "alice", "", "x", 0),
                         CUSTOS_ERR_AUTH);
    }
}

static void test_session_expiry_and_end(void **state)
{
    ef_fx *f = *state;
    custos_principal p;
    char tok[CUSTOS_SECRET_TEXT_MAX], tok2[CUSTOS_SECRET_TEXT_MAX];
    int64_t start = f->now;

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_AUDITOR, PW, NULL, 0, &ADMIN));
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 600));
    OK(custos_engine_login(&p, tok2, sizeof(tok2), f->e, "alice", PW, "b", 0));
    assert_string_not_equal(tok, tok2);
    f->now = start + 599;
    OK(custos_engine_session_check(&p, f->e, tok));
    f->now = start + 600; /* expired by the engine clock */
    assert_int_equal(custos_engine_session_check(&p, f->e, tok), CUSTOS_ERR_AUTH);
    assert_string_equal(p.username, "");
    OK(custos_engine_session_check(&p, f->e, tok2));

    OK(custos_engine_session_end(f->e, tok2, "b"));
    assert_last_audit(f, "user:alice", "b", "session.logout", "alice");
    assert_int_equal(custos_engine_session_check(&p, f->e, tok2), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_session_end(f->e, tok2, "b"), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_session_check(&p, f->e, "garbage"), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_session_check(&p, f->e, ""), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_session_check(&p, f->e, NULL), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 31 * 86400),
                     CUSTOS_ERR_ARG);
}

static void test_password_change_and_disable(void **state)
{
    ef_fx *f = *state;
    custos_principal p;
    char tok[CUSTOS_SECRET_TEXT_MAX], api[CUSTOS_SECRET_TEXT_MAX], id[CUSTOS_ID_LEN + 1];
    char pw[64];

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_ADMIN, PW, NULL, 0, &ADMIN));
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 0));
    OK(custos_engine_token_create(id, api, sizeof(api), f->e, "alice", "ci", 30, &ADMIN));

    /* disabled: neither sessions nor tokens work, nor a new sign-in */
    OK(custos_engine_user_set_disabled(f->e, "alice", 1, &ADMIN));
    assert_last_audit(f, "user:admin", "192.0.2.1", "user.disable", "alice");
    assert_int_equal(custos_engine_session_check(&p, f->e, tok), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_token_check(&p, f->e, api), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_login(&p, tok + 0, sizeof(tok), f->e, "alice", PW, "a", 0),
                     CUSTOS_ERR_AUTH);
    OK(custos_engine_user_set_disabled(f->e, "alice", 0, &ADMIN));
    OK(custos_engine_token_check(&p, f->e, api));
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 0));

    /* a new password ends the sessions; the old one stops working */
    OK(custos_engine_user_set_password(f->e, "alice", NULL, pw, sizeof(pw), &ADMIN));
    assert_last_audit(f, "user:admin", "192.0.2.1", "user.password", "alice");
    assert_int_equal(custos_engine_session_check(&p, f->e, tok), CUSTOS_ERR_AUTH);
    OK(custos_engine_token_check(&p, f->e, api)); /* tokens are revoked on their own */
    assert_int_equal(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 0),
                     CUSTOS_ERR_AUTH);
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", pw, "a", 0));
    assert_int_equal(custos_engine_user_set_password(f->e, "nobody", PW, NULL, 0, &ADMIN),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_user_set_disabled(f->e, "nobody", 1, &ADMIN),
                     CUSTOS_ERR_NOT_FOUND);
}

typedef struct tok_seen {
    int n;
    int64_t revoked;
    char name[160];
} tok_seen;

static int see_token(const custos_token_info *t, void *ctx)
{
    tok_seen *s = ctx;
    s->n++;
    s->revoked = t->revoked;
    snprintf(s->name, sizeof(s->name), "%s/%s", t->username, t->name);
    return 0;
}

static void test_tokens(void **state)
{
    ef_fx *f = *state;
    custos_principal p;
    char api[CUSTOS_SECRET_TEXT_MAX], id[CUSTOS_ID_LEN + 1], tok[CUSTOS_SECRET_TEXT_MAX];
    tok_seen seen;
    int64_t start = f->now;

    OK(custos_engine_user_create(f->e, "ci", CUSTOS_ROLE_TECHNICIAN, PW, NULL, 0, &ADMIN));
    OK(custos_engine_token_create(id, api, sizeof(api), f->e, "ci", "nightly", 2, &ADMIN));
    assert_last_audit(f, "user:admin", "192.0.2.1", "token.create", id);
    assert_int_equal(strlen(api), 47);
    assert_memory_equal(api, "cst_", 4);
    assert_true(custos_id_valid(id));
    OK(custos_engine_token_check(&p, f->e, api));
    assert_string_equal(p.kind, "token");
    assert_string_equal(p.username, "ci");
    assert_int_equal(p.role, CUSTOS_ROLE_TECHNICIAN);
    assert_string_equal(p.credential_id, id);
    assert_string_equal(p.csrf, "");
    {
        char who[CUSTOS_USERNAME_MAX + 8], want[64];
        custos_principal_who(who, &p);
        snprintf(want, sizeof(want), "token:%s", id);
        assert_string_equal(who, want);
    }
    /* a token is not a session and a session is not a token */
    assert_int_equal(custos_engine_session_check(&p, f->e, api), CUSTOS_ERR_AUTH);
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "ci", PW, "a", 0));
    assert_int_equal(custos_engine_token_check(&p, f->e, tok), CUSTOS_ERR_AUTH);
    {
        char forged[CUSTOS_SECRET_TEXT_MAX + 8];
        snprintf(forged, sizeof(forged), "cst_%s", tok);
        assert_int_equal(custos_engine_token_check(&p, f->e, forged), CUSTOS_ERR_AUTH);
    }

    /* expiry by the engine clock */
    f->now = start + 2 * 86400;
    assert_int_equal(custos_engine_token_check(&p, f->e, api), CUSTOS_ERR_AUTH);
    f->now = start;
    OK(custos_engine_token_check(&p, f->e, api));

    /* revocation: immediate, idempotent, listed */
    OK(custos_engine_token_revoke(f->e, id, &ADMIN));
    assert_last_audit(f, "user:admin", "192.0.2.1", "token.revoke", id);
    assert_int_equal(custos_engine_token_check(&p, f->e, api), CUSTOS_ERR_AUTH);
    OK(custos_engine_token_revoke(f->e, id, &ADMIN));
    memset(&seen, 0, sizeof(seen));
    OK(custos_engine_token_list(f->e, see_token, &seen));
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.revoked, start);
    assert_string_equal(seen.name, "ci/nightly");

    assert_int_equal(custos_engine_token_revoke(f->e, "aaaaaaaaaaaaaaaaaaaaaaaaaa", &ADMIN),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_token_revoke(f->e, p.credential_id, &ADMIN),
                     CUSTOS_ERR_NOT_FOUND); /* a session id is not a token id */
    assert_int_equal(
        custos_engine_token_create(id, api, sizeof(api), f->e, "nobody", "x", 2, &ADMIN),
        CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_token_create(id, api, sizeof(api), f->e, "ci", "x", 0, &ADMIN),
                     CUSTOS_ERR_ARG);
    assert_int_equal(
        custos_engine_token_create(id, api, sizeof(api), f->e, "ci", "Bad Name", 2, &ADMIN),
        CUSTOS_ERR_ARG);
    assert_int_equal(custos_engine_token_create(id, api, 16, f->e, "ci", "x", 2, &ADMIN),
                     CUSTOS_ERR_ARG);
}

/* Sessions expired for more than a day are deleted by the sweep; tokens,
 * expired or revoked, stay listed. */
static void test_sessions_purge(void **state)
{
    ef_fx *f = *state;
    custos_principal p;
    char a[CUSTOS_SECRET_TEXT_MAX], b[CUSTOS_SECRET_TEXT_MAX], c[CUSTOS_SECRET_TEXT_MAX];
    char api[CUSTOS_SECRET_TEXT_MAX], id[CUSTOS_ID_LEN + 1];
    tok_seen seen;
    size_t n = 99;
    int64_t start = f->now;

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_AUDITOR, PW, NULL, 0, &ADMIN));
    OK(custos_engine_login(&p, a, sizeof(a), f->e, "alice", PW, "a", 600));
    OK(custos_engine_login(&p, b, sizeof(b), f->e, "alice", PW, "b", 0)); /* 12 hours */
    OK(custos_engine_login(&p, c, sizeof(c), f->e, "alice", PW, "c", 600));
    OK(custos_engine_session_end(f->e, c, "c"));
    OK(custos_engine_token_create(id, api, sizeof(api), f->e, "alice", "ci", 1, &ADMIN));
    OK(custos_engine_token_revoke(f->e, id, &ADMIN));

    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 0);
    OK(custos_engine_session_check(&p, f->e, b));
    f->now = start + 600 + 86400; /* a and c expired exactly a day ago: kept */
    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 0);
    f->now = start + 601 + 86400;
    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 2);
    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 0);
    f->now = start; /* b is still valid; a and c are gone */
    OK(custos_engine_session_check(&p, f->e, b));
    assert_int_equal(custos_engine_session_check(&p, f->e, a), CUSTOS_ERR_AUTH);
    assert_int_equal(custos_engine_session_end(f->e, c, "c"), CUSTOS_ERR_AUTH);
    f->now = start + CUSTOS_SESSION_TTL + 86400 + 1;
    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 1);
    f->now = start;
    assert_int_equal(custos_engine_session_check(&p, f->e, b), CUSTOS_ERR_AUTH);
    /* the expired, revoked token stays listed */
    f->now = start + 30 * 86400;
    OK(custos_engine_sessions_purge(&n, f->e));
    assert_int_equal(n, 0);
    memset(&seen, 0, sizeof(seen));
    OK(custos_engine_token_list(f->e, see_token, &seen));
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.revoked, start);
    assert_int_equal(custos_engine_sessions_purge(NULL, f->e), CUSTOS_ERR_ARG);
}

/* The store keeps hashes only: no password, session secret, CSRF-free
 * secret or token text appears in the database files. */
static void test_only_hashes_stored(void **state)
{
    ef_fx *f = *state;
    custos_principal p;
    char tok[CUSTOS_SECRET_TEXT_MAX], api[CUSTOS_SECRET_TEXT_MAX], id[CUSTOS_ID_LEN + 1];
    char pw[64];
    uint8_t h[32];

    OK(custos_engine_user_create(f->e, "alice", CUSTOS_ROLE_ADMIN, PW, NULL, 0, &ADMIN));
    OK(custos_engine_user_create(f->e, "bob", CUSTOS_ROLE_ADMIN, NULL, pw, sizeof(pw), &ADMIN));
    OK(custos_engine_login(&p, tok, sizeof(tok), f->e, "alice", PW, "a", 0));
    OK(custos_engine_token_create(id, api, sizeof(api), f->e, "alice", "ci", 30, &ADMIN));
    assert_false(ef_db_contains(f, PW, strlen(PW)));
    assert_false(ef_db_contains(f, pw, strlen(pw)));
    assert_false(ef_db_contains(f, tok, strlen(tok)));
    assert_false(ef_db_contains(f, api, strlen(api)));
    assert_false(ef_db_contains(f, api + 4, strlen(api) - 4));
    /* what is there instead: SHA-256 of the secret, and a scrypt hash */
    custos_sha256(h, (const uint8_t *)tok, strlen(tok));
    assert_true(ef_db_contains(f, h, sizeof(h)));
    custos_sha256(h, (const uint8_t *)api, strlen(api));
    assert_true(ef_db_contains(f, h, sizeof(h)));
    assert_true(ef_db_contains(f, "scrypt$32768$8$1$", 17));
    /* the needle is findable when present (the check itself works) */
    assert_true(ef_db_contains(f, "alice", 5));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),        T(test_user_create),
        T(test_login_and_session),           T(test_session_expiry_and_end),
        T(test_password_change_and_disable), T(test_tokens),
        T(test_only_hashes_stored),          T(test_sessions_purge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
