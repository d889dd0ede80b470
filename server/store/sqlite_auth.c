/* SQLite store backend: operators (users, sessions and API tokens) and
 * auto-approval policies. */
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

/* ---- users ---------------------------------------------------------------- */

custos_err custos_sq_user_insert(void *ctx, const custos_store_user *u)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_USER_INSERT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        custos_sq_bind_text(st, 1, u->username) | sqlite3_bind_int(st, 2, (int)u->role) |
            custos_sq_bind_text(st, 3, u->pw_hash) | sqlite3_bind_int64(st, 4, u->created) |
            sqlite3_bind_int(st, 5, u->disabled ? 1 : 0),
        CUSTOS_ERR_EXISTS, "user");
}

static void read_user(custos_store_user *u, sqlite3_stmt *st)
{
    memset(u, 0, sizeof(*u));
    custos_sq_col_text(u->username, sizeof(u->username), st, 0);
    u->role = (custos_role)sqlite3_column_int(st, 1);
    custos_sq_col_text(u->pw_hash, sizeof(u->pw_hash), st, 2);
    u->created = sqlite3_column_int64(st, 3);
    u->disabled = sqlite3_column_int(st, 4);
}

custos_err custos_sq_user_get(void *ctx, custos_store_user *out, const char *username)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_USER_GET));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, username) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, "username", "no operator '%s'",
                  username);
    CUSTOS_ENSURE(rc == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: user: %s",
                  sqlite3_errmsg(s->c.db));
    read_user(out, st);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_user_update(void *ctx, const char *username, const char *pw_hash, int disabled)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_OK;
    if (pw_hash != NULL) {
        CUSTOS_GUARD(custos_sq_stmt(&st, s, S_USER_SET_PW));
        CUSTOS_GUARD(custos_sq_exec_bound(
            s, st, custos_sq_bind_text(st, 1, username) | custos_sq_bind_text(st, 2, pw_hash),
            CUSTOS_ERR_EXISTS, "user"));
        CUSTOS_ENSURE(sqlite3_changes(s->c.db) == 1, CUSTOS_ERR_NOT_FOUND, "username",
                      "no operator '%s'", username);
    }
    if (disabled >= 0) {
        CUSTOS_GUARD(custos_sq_stmt(&st, s, S_USER_SET_DISABLED));
        CUSTOS_GUARD(custos_sq_exec_bound(
            s, st, custos_sq_bind_text(st, 1, username) | sqlite3_bind_int(st, 2, disabled ? 1 : 0),
            CUSTOS_ERR_EXISTS, "user"));
        CUSTOS_ENSURE(sqlite3_changes(s->c.db) == 1, CUSTOS_ERR_NOT_FOUND, "username",
                      "no operator '%s'", username);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_sq_user_list(void *ctx, custos_store_user_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_user u;
    int rc = SQLITE_DONE, r2 = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_USER_LIST));
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_user(&u, st);
        r2 = cb(&u, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "users");
out:
    return ret;
}

/* ---- credentials ---------------------------------------------------------- */

custos_err custos_sq_cred_insert(void *ctx, const custos_store_cred *c)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_CRED_INSERT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        custos_sq_bind_text(st, 1, c->id) | sqlite3_bind_int(st, 2, (int)c->kind) |
            custos_sq_bind_blob(st, 3, c->hash, 32) | custos_sq_bind_text(st, 4, c->username) |
            custos_sq_bind_text(st, 5, c->name) | custos_sq_bind_text(st, 6, c->csrf) |
            custos_sq_bind_text(st, 7, c->origin) | sqlite3_bind_int64(st, 8, c->created) |
            sqlite3_bind_int64(st, 9, c->expires) | sqlite3_bind_int64(st, 10, c->revoked),
        CUSTOS_ERR_EXISTS, "credential");
}

static void read_cred(custos_store_cred *c, sqlite3_stmt *st)
{
    const void *h;
    memset(c, 0, sizeof(*c));
    custos_sq_col_text(c->id, sizeof(c->id), st, 0);
    c->kind = (custos_store_cred_kind)sqlite3_column_int(st, 1);
    h = sqlite3_column_blob(st, 2);
    if (h != NULL && sqlite3_column_bytes(st, 2) == 32)
        memcpy(c->hash, h, 32);
    custos_sq_col_text(c->username, sizeof(c->username), st, 3);
    custos_sq_col_text(c->name, sizeof(c->name), st, 4);
    custos_sq_col_text(c->csrf, sizeof(c->csrf), st, 5);
    custos_sq_col_text(c->origin, sizeof(c->origin), st, 6);
    c->created = sqlite3_column_int64(st, 7);
    c->expires = sqlite3_column_int64(st, 8);
    c->revoked = sqlite3_column_int64(st, 9);
    c->role = (custos_role)sqlite3_column_int(st, 10);
    c->user_disabled = sqlite3_column_int(st, 11);
}

static custos_err get_cred(sq *s, enum stmt_id id, custos_store_cred *out, const void *key,
                           int key_is_hash)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, id));
    rc = key_is_hash ? custos_sq_bind_blob(st, 1, key, 32) : custos_sq_bind_text(st, 1, key);
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, "credential", "no such credential");
    CUSTOS_ENSURE(rc == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: credential: %s",
                  sqlite3_errmsg(s->c.db));
    read_cred(out, st);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_cred_get_by_hash(void *ctx, custos_store_cred *out, const uint8_t hash[32])
{
    return get_cred(ctx, S_CRED_GET_HASH, out, hash, 1);
}

custos_err custos_sq_cred_get(void *ctx, custos_store_cred *out, const char *id)
{
    return get_cred(ctx, S_CRED_GET, out, id, 0);
}

custos_err custos_sq_cred_revoke(void *ctx, const char *id, int64_t now)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_store_cred c;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_CRED_REVOKE));
    CUSTOS_GUARD(
        custos_sq_exec_bound(s, st, custos_sq_bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, now),
                             CUSTOS_ERR_EXISTS, "credential"));
    if (sqlite3_changes(s->c.db) == 0)
        CUSTOS_GUARD(custos_sq_cred_get(ctx, &c, id)); /* NOT_FOUND, or already revoked */
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_sq_cred_revoke_user(void *ctx, const char *username, custos_store_cred_kind kind,
                                      int64_t now)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_CRED_REVOKE_USER);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(s, st,
                                custos_sq_bind_text(st, 1, username) |
                                    sqlite3_bind_int(st, 2, (int)kind) |
                                    sqlite3_bind_int64(st, 3, now),
                                CUSTOS_ERR_EXISTS, "credential");
}

custos_err custos_sq_cred_purge(void *ctx, size_t *out, custos_store_cred_kind kind, int64_t before)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_CRED_PURGE);
    *out = 0;
    if (ret < 0)
        return ret;
    ret = custos_sq_exec_bound(
        s, st, sqlite3_bind_int(st, 1, (int)kind) | sqlite3_bind_int64(st, 2, before),
        CUSTOS_ERR_EXISTS, "credential");
    if (ret == CUSTOS_OK)
        *out = (size_t)sqlite3_changes(s->c.db);
    return ret;
}

custos_err custos_sq_cred_list(void *ctx, custos_store_cred_kind kind, custos_store_cred_cb cb,
                               void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cred c;
    int rc = SQLITE_DONE, r2 = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_CRED_LIST));
    CUSTOS_ENSURE(sqlite3_bind_int(st, 1, (int)kind) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_cred(&c, st);
        r2 = cb(&c, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "credentials");
out:
    custos_sq_done(st);
    return ret;
}

/* ---- policies ------------------------------------------------------------- */

static custos_err count_list(sq *s, size_t *out, const char *system, int list)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    *out = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_COUNT));
    CUSTOS_ENSURE((custos_sq_bind_text(st, 1, system) | sqlite3_bind_int(st, 2, list)) == SQLITE_OK,
                  CUSTOS_ERR_INTERNAL, "store", "bind");
    CUSTOS_ENSURE(sqlite3_step(st) == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: policy: %s",
                  sqlite3_errmsg(s->c.db));
    *out = (size_t)sqlite3_column_int64(st, 0);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_policy_get(void *ctx, custos_store_policy *out, const char *system,
                                int with_counts)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_GET));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, system) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->mode = sqlite3_column_int(st, 0);
        out->updated = sqlite3_column_int64(st, 1);
    } else {
        CUSTOS_ENSURE(rc == SQLITE_DONE, CUSTOS_ERR_IO, "store", "store: policy: %s",
                      sqlite3_errmsg(s->c.db));
    }
    custos_sq_done(st);
    st = NULL;
    if (!with_counts)
        return CUSTOS_OK;
    CUSTOS_GUARD(count_list(s, &out->n_allow, system, CUSTOS_STORE_ALLOW));
    CUSTOS_GUARD(count_list(s, &out->n_deny, system, CUSTOS_STORE_DENY));
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_policy_put(void *ctx, const char *system, int mode, int64_t now)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_POL_PUT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(s, st,
                                custos_sq_bind_text(st, 1, system) | sqlite3_bind_int(st, 2, mode) |
                                    sqlite3_bind_int64(st, 3, now),
                                CUSTOS_ERR_EXISTS, "policy");
}

custos_err custos_sq_policy_list_set(void *ctx, const char *system, int list,
                                     const char *const *serials, size_t n)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_CLEAR));
    CUSTOS_GUARD(custos_sq_exec_bound(
        s, st, custos_sq_bind_text(st, 1, system) | sqlite3_bind_int(st, 2, list),
        CUSTOS_ERR_EXISTS, "policy"));
    /* One prepared insert reused: 100,000 serials take well under a second. */
    for (i = 0; i < n; i++) {
        CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_ADD));
        CUSTOS_GUARD(custos_sq_exec_bound(s, st,
                                          custos_sq_bind_text(st, 1, system) |
                                              sqlite3_bind_int(st, 2, list) |
                                              custos_sq_bind_text(st, 3, serials[i]),
                                          CUSTOS_ERR_EXISTS, "policy"));
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_sq_policy_has(void *ctx, int *out, const char *system, int list,
                                const char *serial)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    *out = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_HAS));
    CUSTOS_ENSURE((custos_sq_bind_text(st, 1, system) | sqlite3_bind_int(st, 2, list) |
                   custos_sq_bind_text(st, 3, serial)) == SQLITE_OK,
                  CUSTOS_ERR_INTERNAL, "store", "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc == SQLITE_ROW || rc == SQLITE_DONE, CUSTOS_ERR_IO, "store",
                  "store: policy: %s", sqlite3_errmsg(s->c.db));
    *out = rc == SQLITE_ROW;
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_policy_list_iter(void *ctx, const char *system, int list,
                                      custos_store_blob_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc = SQLITE_DONE, r2 = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_POL_ITER));
    CUSTOS_ENSURE((custos_sq_bind_text(st, 1, system) | sqlite3_bind_int(st, 2, list)) == SQLITE_OK,
                  CUSTOS_ERR_INTERNAL, "store", "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *serial = (const char *)sqlite3_column_text(st, 0);
        r2 = cb(serial != NULL ? serial : "", NULL, 0, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "policy");
out:
    custos_sq_done(st);
    return ret;
}
