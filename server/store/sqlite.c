/* SQLite backend of the store (server/store/store.h). WAL, synchronous=FULL
 * (CA data must survive a crash once acknowledged), foreign keys on, a busy
 * timeout, prepared statements cached per connection, schema versioned with
 * user_version. The audit table refuses UPDATE and DELETE by trigger.
 * Connections and transactions (group commit) are in sqlite_group.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

_Static_assert(CUSTOS_STATE_PROVISIONED == 4, "S_REQ_LATEST_PROVISIONED hard-codes the state");

#define REQ_COLS                                                                                   \
    "id, device_id, state, kind, via, system, component, serial, model, firmware,"                 \
    " package_id, signer_serial, duplicate_serial, reason, expires, created, updated, digest,"     \
    " hardware_id, gateway_id, gateway_serial"

#define GW_COLS "device_id, system, serial, enabled, last_seen, forwarded, created, updated"

const char *const custos_sq_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT op",
    [S_RELEASE] = "RELEASE op",
    [S_ROLLBACK_TO] = "ROLLBACK TO op",
    [S_CRED_PURGE] = "DELETE FROM credentials WHERE kind = ?1 AND expires < ?2",
    [S_AUTH_PUT] = "INSERT INTO authorities(name, der, created) VALUES(?1, ?2, ?3)",
    [S_AUTH_GET] = "SELECT der FROM authorities WHERE name = ?1",
    [S_AUTH_LIST] = "SELECT name, der FROM authorities ORDER BY name",
    [S_SYS_PUT] = "INSERT INTO systems(name, json, created) VALUES(?1, ?2, ?3)",
    [S_SYS_GET] = "SELECT json FROM systems WHERE name = ?1",
    [S_SYS_LIST] = "SELECT name, json FROM systems ORDER BY name",
    [S_SYS_SET] = "UPDATE systems SET json = ?2 WHERE name = ?1",
    [S_PKG_PUT] = "INSERT INTO packages(id, system, created, expires, cert, file)"
                  " VALUES(?1,?2,?3,?4,?5,?6)",
    [S_PKG_GET] = "SELECT id, system, created, expires, cert, file IS NOT NULL FROM packages"
                  " WHERE id = ?1",
    [S_PKG_LIST] = "SELECT id, cert FROM packages WHERE system = ?1 ORDER BY created DESC, id",
    [S_REQ_INSERT] = "INSERT INTO requests(" REQ_COLS ", der) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
                     "?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)",
    [S_REQ_GET] = "SELECT " REQ_COLS ", der FROM requests WHERE id = ?1",
    [S_REQ_DIGEST] = "SELECT " REQ_COLS ", der FROM requests WHERE digest = ?1",
    [S_REQ_STATE] = "UPDATE requests SET state = ?3, reason = ?4, updated = ?5"
                    " WHERE id = ?1 AND state = ?2",
    [S_REQ_LIST] = "SELECT " REQ_COLS " FROM requests WHERE ?1 = 0 OR created < ?2"
                   " OR (created = ?2 AND id > ?3) ORDER BY created DESC, id LIMIT ?4",
    [S_REQ_LIST_STATE] = "SELECT " REQ_COLS " FROM requests WHERE state = ?5 AND (?1 = 0"
                         " OR created < ?2 OR (created = ?2 AND id > ?3))"
                         " ORDER BY created DESC, id LIMIT ?4",
    /* 4 = CUSTOS_STATE_PROVISIONED (checked below). */
    [S_REQ_LATEST_PROVISIONED] = "SELECT " REQ_COLS ", der FROM requests WHERE device_id = ?1"
                                 " AND state = 4 ORDER BY created DESC, rowid DESC LIMIT 1",
    [S_REQ_COUNT_SERIAL] = "SELECT count(*) FROM requests WHERE serial = ?2 AND system = ?1"
                           " AND device_id <> ?3",
    [S_CERT_INSERT] = "INSERT INTO certificates(serial, request_id, device_id, template, issuer,"
                      " mock, not_after, created, der) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [S_CERT_GET] = "SELECT serial, request_id, device_id, template, issuer, mock, not_after,"
                   " created, der FROM certificates WHERE serial = ?1",
    [S_CERT_LIST] = "SELECT serial, request_id, device_id, template, issuer, mock, not_after,"
                    " created, der FROM certificates WHERE request_id = ?1 ORDER BY rowid",
    [S_PROF_PUT] = "INSERT INTO profiles(request_id, der, created) VALUES(?1, ?2, ?3)",
    [S_PROF_GET] = "SELECT der FROM profiles WHERE request_id = ?1",
    [S_AUDIT_APPEND] = "INSERT INTO audit(seq, time, actor, origin, action, object, detail, hash)"
                       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [S_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [S_AUDIT_ITER] = "SELECT seq, time, actor, origin, action, object, detail, hash FROM audit"
                     " ORDER BY seq",
    [S_USER_INSERT] = "INSERT INTO users(username, role, pw_hash, created, disabled)"
                      " VALUES(?1,?2,?3,?4,?5)",
    [S_USER_GET] = "SELECT username, role, pw_hash, created, disabled FROM users"
                   " WHERE username = ?1",
    [S_USER_SET_PW] = "UPDATE users SET pw_hash = ?2 WHERE username = ?1",
    [S_USER_SET_DISABLED] = "UPDATE users SET disabled = ?2 WHERE username = ?1",
    [S_USER_LIST] = "SELECT username, role, pw_hash, created, disabled FROM users"
                    " ORDER BY username",
    [S_CRED_INSERT] = "INSERT INTO credentials(id, kind, hash, username, name, csrf, origin,"
                      " created, expires, revoked) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [S_CRED_GET_HASH] = "SELECT c.id, c.kind, c.hash, c.username, c.name, c.csrf, c.origin,"
                        " c.created, c.expires, c.revoked, u.role, u.disabled"
                        " FROM credentials c JOIN users u ON u.username = c.username"
                        " WHERE c.hash = ?1",
    [S_CRED_GET] = "SELECT c.id, c.kind, c.hash, c.username, c.name, c.csrf, c.origin,"
                   " c.created, c.expires, c.revoked, u.role, u.disabled"
                   " FROM credentials c JOIN users u ON u.username = c.username"
                   " WHERE c.id = ?1",
    [S_CRED_REVOKE] = "UPDATE credentials SET revoked = ?2 WHERE id = ?1 AND revoked = 0",
    [S_CRED_REVOKE_USER] = "UPDATE credentials SET revoked = ?3"
                           " WHERE username = ?1 AND kind = ?2 AND revoked = 0",
    [S_CRED_LIST] = "SELECT c.id, c.kind, c.hash, c.username, c.name, c.csrf, c.origin,"
                    " c.created, c.expires, c.revoked, u.role, u.disabled"
                    " FROM credentials c JOIN users u ON u.username = c.username"
                    " WHERE c.kind = ?1 ORDER BY c.created DESC, c.id DESC",
    [S_POL_GET] = "SELECT mode, updated FROM policies WHERE system = ?1",
    [S_POL_COUNT] = "SELECT count(*) FROM policy_serials WHERE system = ?1 AND list = ?2",
    [S_POL_PUT] = "INSERT INTO policies(system, mode, updated) VALUES(?1, ?2, ?3)"
                  " ON CONFLICT(system) DO UPDATE SET mode = excluded.mode,"
                  " updated = excluded.updated",
    [S_POL_CLEAR] = "DELETE FROM policy_serials WHERE system = ?1 AND list = ?2",
    [S_POL_ADD] = "INSERT OR IGNORE INTO policy_serials(system, list, serial) VALUES(?1, ?2, ?3)",
    [S_POL_HAS] = "SELECT 1 FROM policy_serials WHERE system = ?1 AND list = ?2 AND serial = ?3",
    [S_POL_ITER] = "SELECT serial FROM policy_serials WHERE system = ?1 AND list = ?2"
                   " ORDER BY serial",
    [S_PKG_FILE] = "SELECT file FROM packages WHERE id = ?1 AND file IS NOT NULL",
    [S_RCPT_PUT] = "INSERT INTO receipts(request_id, der, created) VALUES(?1, ?2, ?3)",
    [S_COUNTS] = "SELECT state, sum(n) FROM request_counts GROUP BY state",
    [S_COUNTS_SYSTEM] = "SELECT state, sum(n) FROM request_counts WHERE system = ?1"
                        " GROUP BY state",
    [S_COUNTS_COMPONENT] = "SELECT state, sum(n) FROM request_counts WHERE system = ?1"
                           " AND component = ?2 GROUP BY state",
    /* schema 3: gateways */
    [S_GW_GET] = "SELECT " GW_COLS " FROM gateways WHERE device_id = ?1",
    [S_GW_PUT] = "INSERT INTO gateways(device_id, system, serial, enabled, last_seen, forwarded,"
                 " created, updated) VALUES(?1, ?2, ?3, 1, 0, 0, ?4, ?4)"
                 " ON CONFLICT(device_id) DO UPDATE SET system = excluded.system,"
                 " serial = excluded.serial, updated = excluded.updated",
    [S_GW_ENABLE] = "UPDATE gateways SET enabled = ?2, updated = ?3 WHERE device_id = ?1",
    [S_GW_SEEN] = "UPDATE gateways SET last_seen = max(last_seen, ?2), forwarded = forwarded + ?3"
                  " WHERE device_id = ?1",
    [S_GW_LIST] = "SELECT " GW_COLS " FROM gateways ORDER BY system, serial, device_id",
};

custos_err custos_sq_error(const sq *s, custos_err code, const char *what)
{
    return custos_error_set(code, "store", "store: %s: %s", what, sqlite3_errmsg(s->c.db));
}

/* Prepared once per connection, reset before reuse. */
custos_err custos_sq_stmt(sqlite3_stmt **out, sq *s, enum stmt_id id)
{
    *out = NULL;
    if (s->c.stmts[id] == NULL) {
        if (sqlite3_prepare_v3(s->c.db, custos_sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->c.stmts[id], NULL) != SQLITE_OK)
            return custos_sq_error(s, CUSTOS_ERR_INTERNAL, "prepare");
    }
    sqlite3_reset(s->c.stmts[id]);
    sqlite3_clear_bindings(s->c.stmts[id]);
    *out = s->c.stmts[id];
    return CUSTOS_OK;
}

custos_err custos_sq_stmt_dyn(sqlite3_stmt **out, sq *s, sqlite3_stmt **slot, const char *sql)
{
    *out = NULL;
    if (*slot == NULL) {
        if (sqlite3_prepare_v3(s->c.db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK)
            return custos_sq_error(s, CUSTOS_ERR_INTERNAL, "prepare");
    }
    sqlite3_reset(*slot);
    sqlite3_clear_bindings(*slot);
    *out = *slot;
    return CUSTOS_OK;
}

void custos_sq_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

int custos_sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

int custos_sq_bind_blob(sqlite3_stmt *st, int i, const uint8_t *v, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return SQLITE_TOOBIG;
    return sqlite3_bind_blob(st, i, v, (int)len, SQLITE_TRANSIENT);
}

void custos_sq_col_text(char *dst, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t != NULL ? strlen((const char *)t) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

custos_err custos_sq_col_blob(uint8_t **out, size_t *out_len, sqlite3_stmt *st, int i)
{
    const void *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    *out = NULL;
    *out_len = 0;
    *out = malloc(n > 0 ? (size_t)n : 1);
    if (*out == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, "store", "out of memory");
    if (n > 0)
        memcpy(*out, b, (size_t)n);
    *out_len = (size_t)n;
    return CUSTOS_OK;
}

/* Runs a statement that returns no rows; maps constraint failures. */
custos_err custos_sq_exec(sq *s, sqlite3_stmt *st, custos_err on_conflict, const char *what)
{
    int rc = sqlite3_step(st);
    custos_err ret = CUSTOS_OK;
    if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT) {
        int ext = sqlite3_extended_errcode(s->c.db);
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            ret = custos_sq_error(s, on_conflict, what);
        else
            ret = custos_sq_error(s, CUSTOS_ERR_ARG, what);
    } else if (rc != SQLITE_DONE) {
        ret = custos_sq_error(s, CUSTOS_ERR_IO, what);
    }
    custos_sq_done(st);
    return ret;
}

/* Runs @p sql (one or more statements, no rows) outside the prepared set. */
custos_err custos_sq_exec_sql(sq *s, const char *sql, const char *what)
{
    char *msg = NULL;
    custos_err ret = CUSTOS_OK;
    if (sqlite3_exec(s->c.db, sql, NULL, NULL, &msg) != SQLITE_OK)
        ret = custos_error_set(CUSTOS_ERR_IO, "store", "store: %s: %s", what,
                               msg != NULL ? msg : sqlite3_errmsg(s->c.db));
    sqlite3_free(msg);
    return ret;
}

/* Finish a write whose parameters @p bind_rc reports (nonzero: a bind failed):
 * run it, @p on_conflict when a constraint refuses it. Finalizes @p st. */
custos_err custos_sq_exec_bound(sq *s, sqlite3_stmt *st, int bind_rc, custos_err on_conflict,
                                const char *what)
{
    if (bind_rc != SQLITE_OK) {
        custos_sq_done(st);
        return custos_sq_error(s, CUSTOS_ERR_INTERNAL, what);
    }
    return custos_sq_exec(s, st, on_conflict, what);
}

custos_err custos_sq_exec_id(sq *s, enum stmt_id id, const char *what)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, id);
    if (ret < 0)
        return ret;
    return custos_sq_exec(s, st, CUSTOS_ERR_EXISTS, what);
}

/* ---- blobs by name -------------------------------------------------------- */

custos_err custos_sq_put_named(sq *s, enum stmt_id id, const char *name, const uint8_t *data,
                               size_t len, int as_text, int64_t now, const char *what)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, id);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(s, st,
                                custos_sq_bind_text(st, 1, name) != SQLITE_OK ||
                                    (as_text
                                         ? custos_sq_bind_text(st, 2, (const char *)data)
                                         : custos_sq_bind_blob(st, 2, data, len)) != SQLITE_OK ||
                                    sqlite3_bind_int64(st, 3, now) != SQLITE_OK,
                                CUSTOS_ERR_EXISTS, what);
}

custos_err custos_sq_get_named(sq *s, enum stmt_id id, uint8_t **out, size_t *out_len,
                               const char *name, const char *what)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, id));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, name) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, what, "%s '%s' not found", what, name);
    if (rc != SQLITE_ROW) {
        ret = custos_sq_error(s, CUSTOS_ERR_IO, what);
        goto out;
    }
    if (out_len != NULL) {
        CUSTOS_GUARD(custos_sq_col_blob(out, out_len, st, 0));
    } else {
        const unsigned char *t = sqlite3_column_text(st, 0);
        *out = (uint8_t *)strdup(t != NULL ? (const char *)t : "");
        CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_NOMEM, "store", "out of memory");
    }
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

static custos_err list_named(sq *s, sqlite3_stmt *st, int as_text, custos_store_blob_cb cb,
                             void *cb_ctx)
{
    custos_err ret = CUSTOS_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const uint8_t *data = as_text ? sqlite3_column_text(st, 1) : sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        int r = cb(name != NULL ? name : "", data, n > 0 ? (size_t)n : 0, cb_ctx);
        if (r != 0) {
            ret = r < 0 ? r : CUSTOS_OK;
            custos_sq_done(st);
            return ret;
        }
    }
    if (rc != SQLITE_DONE)
        ret = custos_sq_error(s, CUSTOS_ERR_IO, "list");
    custos_sq_done(st);
    return ret;
}

static custos_err sq_authority_put(void *ctx, const char *name, const uint8_t *der, size_t len,
                                   int64_t now)
{
    return custos_sq_put_named(ctx, S_AUTH_PUT, name, der, len, 0, now, "authority");
}

static custos_err sq_authority_get(void *ctx, uint8_t **out, size_t *out_len, const char *name)
{
    return custos_sq_get_named(ctx, S_AUTH_GET, out, out_len, name, "authority");
}

static custos_err sq_authority_list(void *ctx, custos_store_blob_cb cb, void *cb_ctx)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, ctx, S_AUTH_LIST);
    if (ret < 0)
        return ret;
    return list_named(ctx, st, 0, cb, cb_ctx);
}

static custos_err sq_system_put(void *ctx, const char *name, const char *json, int64_t now)
{
    return custos_sq_put_named(ctx, S_SYS_PUT, name, (const uint8_t *)json, 0, 1, now, "system");
}

static custos_err sq_system_get(void *ctx, char **out_json, const char *name)
{
    return custos_sq_get_named(ctx, S_SYS_GET, (uint8_t **)out_json, NULL, name, "system");
}

static custos_err sq_system_set(void *ctx, const char *name, const char *json)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_OK;

    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_SYS_SET));
    CUSTOS_GUARD(custos_sq_exec_bound(
        s, st, custos_sq_bind_text(st, 1, name) | custos_sq_bind_text(st, 2, json),
        CUSTOS_ERR_EXISTS, "system"));
    CUSTOS_ENSURE(sqlite3_changes(s->c.db) == 1, CUSTOS_ERR_NOT_FOUND, "system",
                  "unknown system %s", name);
out:
    return ret;
}

static custos_err sq_system_list(void *ctx, custos_store_blob_cb cb, void *cb_ctx)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, ctx, S_SYS_LIST);
    if (ret < 0)
        return ret;
    return list_named(ctx, st, 1, cb, cb_ctx);
}

/* ---- packages ------------------------------------------------------------- */

static custos_err sq_package_put(void *ctx, const custos_store_package *p)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_PKG_PUT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        custos_sq_bind_text(st, 1, p->id) || custos_sq_bind_text(st, 2, p->system) ||
            sqlite3_bind_int64(st, 3, p->created) || sqlite3_bind_int64(st, 4, p->expires) ||
            custos_sq_bind_blob(st, 5, p->cert_der, p->cert_len) ||
            (p->file != NULL ? custos_sq_bind_blob(st, 6, p->file, p->file_len)
                             : sqlite3_bind_null(st, 6)),
        CUSTOS_ERR_EXISTS, "package");
}

static custos_err sq_package_get(void *ctx, custos_store_package *out, const char *id)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_PKG_GET));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, id) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, "package_id", "unknown package '%s'",
                  id);
    if (rc != SQLITE_ROW) {
        ret = custos_sq_error(s, CUSTOS_ERR_IO, "package");
        goto out;
    }
    custos_sq_col_text(out->id, sizeof(out->id), st, 0);
    custos_sq_col_text(out->system, sizeof(out->system), st, 1);
    out->created = sqlite3_column_int64(st, 2);
    out->expires = sqlite3_column_int64(st, 3);
    CUSTOS_GUARD(custos_sq_col_blob(&out->cert_der, &out->cert_len, st, 4));
    out->has_file = sqlite3_column_int(st, 5);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

static custos_err sq_package_list(void *ctx, const char *system, custos_store_blob_cb cb,
                                  void *cb_ctx)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, ctx, S_PKG_LIST);
    if (ret < 0)
        return ret;
    if (custos_sq_bind_text(st, 1, system) != SQLITE_OK) {
        custos_sq_done(st);
        return custos_sq_error(ctx, CUSTOS_ERR_INTERNAL, "package list");
    }
    return list_named(ctx, st, 0, cb, cb_ctx);
}

/* ---- requests ------------------------------------------------------------- */
/* ---- open / close --------------------------------------------------------- */

static void sq_close(void *ctx)
{
    sq *s = ctx;
    if (s == NULL)
        return;
    if (s->in_tx)
        custos_sq_rollback(s);
    custos_sq_conn_close(&s->c);
    custos_sq_group_put(s->group);
    free(s);
}

static const custos_store_ops SQLITE_OPS = {
    .name = "sqlite",
    .close = sq_close,
    .begin = custos_sq_begin,
    .commit = custos_sq_commit,
    .rollback = custos_sq_rollback,
    .in_tx = custos_sq_in_tx,
    .authority_put = sq_authority_put,
    .authority_get = sq_authority_get,
    .authority_list = sq_authority_list,
    .system_put = sq_system_put,
    .system_get = sq_system_get,
    .system_set = sq_system_set,
    .system_list = sq_system_list,
    .package_put = sq_package_put,
    .package_get = sq_package_get,
    .package_list = sq_package_list,
    .request_insert = custos_sq_request_insert,
    .request_get = custos_sq_request_get,
    .request_get_by_digest = custos_sq_request_get_by_digest,
    .request_set_state = custos_sq_request_set_state,
    .request_list = custos_sq_request_list,
    .request_count_serial = custos_sq_request_count_serial,
    .request_latest_provisioned = custos_sq_request_latest_provisioned,
    .cert_insert = custos_sq_cert_insert,
    .cert_get = custos_sq_cert_get,
    .cert_list_by_request = custos_sq_cert_list_by_request,
    .profile_put = custos_sq_profile_put,
    .profile_get = custos_sq_profile_get,
    .audit_append = custos_sq_audit_append,
    .audit_last = custos_sq_audit_last,
    .audit_iter = custos_sq_audit_iter,
    .user_insert = custos_sq_user_insert,
    .user_get = custos_sq_user_get,
    .user_update = custos_sq_user_update,
    .user_list = custos_sq_user_list,
    .cred_insert = custos_sq_cred_insert,
    .cred_get_by_hash = custos_sq_cred_get_by_hash,
    .cred_get = custos_sq_cred_get,
    .cred_revoke = custos_sq_cred_revoke,
    .cred_revoke_user = custos_sq_cred_revoke_user,
    .cred_list = custos_sq_cred_list,
    .cred_purge = custos_sq_cred_purge,
    .policy_get = custos_sq_policy_get,
    .policy_put = custos_sq_policy_put,
    .policy_list_set = custos_sq_policy_list_set,
    .policy_has = custos_sq_policy_has,
    .policy_list_iter = custos_sq_policy_list_iter,
    .package_get_file = custos_sq_package_get_file,
    .package_query = custos_sq_package_query,
    .request_query = custos_sq_request_query,
    .request_counts = custos_sq_request_counts,
    .receipt_put = custos_sq_receipt_put,
    .audit_query = custos_sq_audit_query,
    .gateway_get = custos_sq_gateway_get,
    .gateway_put = custos_sq_gateway_put,
    .gateway_set_enabled = custos_sq_gateway_set_enabled,
    .gateway_seen = custos_sq_gateway_seen,
    .gateway_list = custos_sq_gateway_list,
};

custos_err custos_store_sqlite_open(custos_store **out, const char *path, int create)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store *store = NULL;
    sq *s = NULL;

    CUSTOS_ENSURE(out != NULL && path != NULL, CUSTOS_ERR_ARG, "store", "store: no path");
    *out = NULL;
    s = calloc(1, sizeof(*s));
    store = calloc(1, sizeof(*store));
    CUSTOS_ENSURE(s != NULL && store != NULL, CUSTOS_ERR_NOMEM, "store", "out of memory");
    if (create) {
        /* SQLite creates files with the umask and gives its -wal/-shm files
         * the database's mode: create it 0600 first. */
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, "store", "store: cannot create %s: %s", path,
                      strerror(errno));
        close(fd);
    }
    CUSTOS_GUARD(custos_sq_conn_open(s, path, create));
    CUSTOS_GUARD(custos_sq_migrate(s, create, path));
    CUSTOS_GUARD(custos_sq_group_get(&s->group, path));
    store->ops = &SQLITE_OPS;
    store->ctx = s;
    s = NULL;
    *out = store;
    store = NULL;
    ret = CUSTOS_OK;
out:
    sq_close(s);
    free(store);
    return ret;
}

void custos_store_free(custos_store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s->ctx);
    free(s);
}

void custos_store_request_clear(custos_store_request *r)
{
    if (r == NULL)
        return;
    free(r->der);
    memset(r, 0, sizeof(*r));
}

void custos_store_cert_clear(custos_store_cert *c)
{
    if (c == NULL)
        return;
    free(c->der);
    memset(c, 0, sizeof(*c));
}

void custos_store_package_clear(custos_store_package *p)
{
    if (p == NULL)
        return;
    free(p->cert_der);
    free(p->file);
    memset(p, 0, sizeof(*p));
}
