/* SQLite store backend: requests, certificates, profiles, audit rows. */
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

/* End of a row loop over @p st, which @p r2 (a callback's nonzero answer) or
 * @p rc (the last step) ended: the callback's error, a step's error, or
 * CUSTOS_OK. Finalizes @p st. */
custos_err custos_sq_rows_end(sq *s, sqlite3_stmt *st, int rc, int r2, const char *what)
{
    custos_err ret = CUSTOS_OK;
    if (r2 != 0)
        ret = r2 < 0 ? r2 : CUSTOS_OK;
    else if (rc != SQLITE_DONE)
        ret =
            custos_error_set(CUSTOS_ERR_IO, "store", "store: %s: %s", what, sqlite3_errmsg(s->c.db));
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_request_insert(void *ctx, const custos_store_request *r)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    const custos_request_summary *m = &r->sum;
    custos_err ret = custos_sq_stmt(&st, s, S_REQ_INSERT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        custos_sq_bind_text(st, 1, m->request_id) || custos_sq_bind_text(st, 2, m->device_id) ||
            sqlite3_bind_int(st, 3, (int)m->state) || custos_sq_bind_text(st, 4, m->kind) ||
            custos_sq_bind_text(st, 5, m->via) || custos_sq_bind_text(st, 6, m->system) ||
            custos_sq_bind_text(st, 7, m->component) || custos_sq_bind_text(st, 8, m->serial) ||
            custos_sq_bind_text(st, 9, m->model) || custos_sq_bind_text(st, 10, m->firmware) ||
            custos_sq_bind_text(st, 11, r->package_id) ||
            custos_sq_bind_text(st, 12, r->signer_serial) ||
            sqlite3_bind_int(st, 13, m->duplicate_serial ? 1 : 0) ||
            custos_sq_bind_text(st, 14, m->reason) || sqlite3_bind_int64(st, 15, m->expires) ||
            sqlite3_bind_int64(st, 16, m->created) || sqlite3_bind_int64(st, 17, m->updated) ||
            custos_sq_bind_blob(st, 18, r->digest, 32) ||
            custos_sq_bind_text(st, 19, r->hardware_id) ||
            custos_sq_bind_text(st, 20, m->gateway_id) ||
            custos_sq_bind_text(st, 21, m->gateway_serial) ||
            custos_sq_bind_blob(st, 22, r->der, r->der_len),
        CUSTOS_ERR_EXISTS, "request");
}

void custos_sq_read_request(custos_store_request *r, sqlite3_stmt *st)
{
    custos_request_summary *m = &r->sum;
    const void *d;
    custos_sq_col_text(m->request_id, sizeof(m->request_id), st, 0);
    custos_sq_col_text(m->device_id, sizeof(m->device_id), st, 1);
    m->state = (custos_state)sqlite3_column_int(st, 2);
    custos_sq_col_text(m->kind, sizeof(m->kind), st, 3);
    custos_sq_col_text(m->via, sizeof(m->via), st, 4);
    custos_sq_col_text(m->system, sizeof(m->system), st, 5);
    custos_sq_col_text(m->component, sizeof(m->component), st, 6);
    custos_sq_col_text(m->serial, sizeof(m->serial), st, 7);
    custos_sq_col_text(m->model, sizeof(m->model), st, 8);
    custos_sq_col_text(m->firmware, sizeof(m->firmware), st, 9);
    custos_sq_col_text(r->package_id, sizeof(r->package_id), st, 10);
    custos_sq_col_text(r->signer_serial, sizeof(r->signer_serial), st, 11);
    m->duplicate_serial = sqlite3_column_int(st, 12);
    custos_sq_col_text(m->reason, sizeof(m->reason), st, 13);
    m->expires = sqlite3_column_int64(st, 14);
    m->created = sqlite3_column_int64(st, 15);
    m->updated = sqlite3_column_int64(st, 16);
    d = sqlite3_column_blob(st, 17);
    if (d != NULL && sqlite3_column_bytes(st, 17) == 32)
        memcpy(r->digest, d, 32);
    custos_sq_col_text(r->hardware_id, sizeof(r->hardware_id), st, 18);
    custos_sq_col_text(m->gateway_id, sizeof(m->gateway_id), st, 19);
    custos_sq_col_text(m->gateway_serial, sizeof(m->gateway_serial), st, 20);
}

static custos_err get_request(sq *s, enum stmt_id id, custos_store_request *out, const void *key,
                              int key_is_blob)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, id));
    rc = key_is_blob ? custos_sq_bind_blob(st, 1, key, 32) : custos_sq_bind_text(st, 1, key);
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        if (key_is_blob)
            ret = custos_error_set(CUSTOS_ERR_NOT_FOUND, "request", "no request with this digest");
        else
            ret = custos_error_set(CUSTOS_ERR_NOT_FOUND, "request", "request '%s' not found",
                                   (const char *)key);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = custos_sq_error(s, CUSTOS_ERR_IO, "request");
        goto out;
    }
    custos_sq_read_request(out, st);
    CUSTOS_GUARD(custos_sq_col_blob(&out->der, &out->der_len, st, 21));
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_request_get(void *ctx, custos_store_request *out, const char *id)
{
    return get_request(ctx, S_REQ_GET, out, id, 0);
}

custos_err custos_sq_request_latest_provisioned(void *ctx, custos_store_request *out,
                                                const char *device_id)
{
    return get_request(ctx, S_REQ_LATEST_PROVISIONED, out, device_id, 0);
}

custos_err custos_sq_request_get_by_digest(void *ctx, custos_store_request *out,
                                           const uint8_t digest[32])
{
    return get_request(ctx, S_REQ_DIGEST, out, digest, 1);
}

custos_err custos_sq_request_set_state(void *ctx, const char *id, custos_state expected,
                                       custos_state next, const char *reason, int64_t now)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_REQ_STATE);
    if (ret < 0)
        return ret;
    ret = custos_sq_exec_bound(s, st,
                               custos_sq_bind_text(st, 1, id) ||
                                   sqlite3_bind_int(st, 2, (int)expected) ||
                                   sqlite3_bind_int(st, 3, (int)next) ||
                                   custos_sq_bind_text(st, 4, reason != NULL ? reason : "") ||
                                   sqlite3_bind_int64(st, 5, now),
                               CUSTOS_ERR_EXISTS, "request state");
    if (ret == CUSTOS_OK && sqlite3_changes(s->c.db) != 1)
        ret = custos_error_set(CUSTOS_ERR_STATE, "state", "request '%s' is not %s", id,
                               custos_state_name(expected));
    return ret;
}

custos_err custos_sq_request_list(void *ctx, custos_state state, const custos_store_cursor *after,
                                  size_t limit, custos_store_request_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    int rc, r2 = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, state != 0 ? S_REQ_LIST_STATE : S_REQ_LIST));
    rc = sqlite3_bind_int(st, 1, after != NULL) |
         sqlite3_bind_int64(st, 2, after != NULL ? after->created : 0) |
         custos_sq_bind_text(st, 3, after != NULL ? after->id : "") |
         sqlite3_bind_int64(st, 4, limit > 1000000 ? 1000000 : (sqlite3_int64)limit);
    if (state != 0)
        rc |= sqlite3_bind_int(st, 5, (int)state);
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&r, 0, sizeof(r));
        custos_sq_read_request(&r, st);
        r2 = cb(&r, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "list");
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_request_count_serial(void *ctx, size_t *out, const char *system,
                                          const char *serial, const char *device_id)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    *out = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_REQ_COUNT_SERIAL));
    CUSTOS_ENSURE((custos_sq_bind_text(st, 1, system) | custos_sq_bind_text(st, 2, serial) |
                   custos_sq_bind_text(st, 3, device_id)) == SQLITE_OK,
                  CUSTOS_ERR_INTERNAL, "store", "bind");
    CUSTOS_ENSURE(sqlite3_step(st) == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: count: %s",
                  sqlite3_errmsg(s->c.db));
    *out = (size_t)sqlite3_column_int64(st, 0);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

/* ---- certificates and profiles ------------------------------------------- */

custos_err custos_sq_cert_insert(void *ctx, const custos_store_cert *c)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    custos_err ret = custos_sq_stmt(&st, s, S_CERT_INSERT);
    if (ret < 0)
        return ret;
    rc = custos_sq_bind_text(st, 1, c->serial);
    rc |= c->request_id[0] != '\0' ? custos_sq_bind_text(st, 2, c->request_id)
                                   : sqlite3_bind_null(st, 2);
    rc |= custos_sq_bind_text(st, 3, c->device_id) | custos_sq_bind_text(st, 4, c->template_name) |
          custos_sq_bind_text(st, 5, c->issuer) | sqlite3_bind_int(st, 6, c->mock ? 1 : 0) |
          sqlite3_bind_int64(st, 7, c->not_after) | sqlite3_bind_int64(st, 8, c->created) |
          custos_sq_bind_blob(st, 9, c->der, c->der_len);
    return custos_sq_exec_bound(s, st, rc, CUSTOS_ERR_DUPLICATE, "certificate");
}

static custos_err read_cert(custos_store_cert *c, sqlite3_stmt *st)
{
    custos_sq_col_text(c->serial, sizeof(c->serial), st, 0);
    custos_sq_col_text(c->request_id, sizeof(c->request_id), st, 1);
    custos_sq_col_text(c->device_id, sizeof(c->device_id), st, 2);
    custos_sq_col_text(c->template_name, sizeof(c->template_name), st, 3);
    custos_sq_col_text(c->issuer, sizeof(c->issuer), st, 4);
    c->mock = sqlite3_column_int(st, 5);
    c->not_after = sqlite3_column_int64(st, 6);
    c->created = sqlite3_column_int64(st, 7);
    return custos_sq_col_blob(&c->der, &c->der_len, st, 8);
}

custos_err custos_sq_cert_get(void *ctx, custos_store_cert *out, const char *serial)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_CERT_GET));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, serial) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, "certificate",
                  "no certificate with serial %s", serial);
    CUSTOS_ENSURE(rc == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: certificate: %s",
                  sqlite3_errmsg(s->c.db));
    CUSTOS_GUARD(read_cert(out, st));
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_cert_list_by_request(void *ctx, const char *request_id,
                                          custos_store_cert_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cert c;
    int rc = SQLITE_DONE, r2 = 0;
    memset(&c, 0, sizeof(c));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_CERT_LIST));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, request_id) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r2 = read_cert(&c, st);
        if (r2 >= 0)
            r2 = cb(&c, cb_ctx);
        custos_store_cert_clear(&c);
    }
    return custos_sq_rows_end(s, st, rc, r2, "certificates");
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_profile_put(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                                 int64_t now)
{
    return custos_sq_put_named(ctx, S_PROF_PUT, request_id, der, len, 0, now, "profile");
}

custos_err custos_sq_profile_get(void *ctx, uint8_t **out, size_t *out_len, const char *request_id)
{
    return custos_sq_get_named(ctx, S_PROF_GET, out, out_len, request_id, "profile");
}

/* ---- audit ---------------------------------------------------------------- */

custos_err custos_sq_audit_append(void *ctx, const custos_store_audit *a)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_AUDIT_APPEND);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        sqlite3_bind_int64(st, 1, a->seq) | sqlite3_bind_int64(st, 2, a->time) |
            custos_sq_bind_text(st, 3, a->actor) | custos_sq_bind_text(st, 4, a->from) |
            custos_sq_bind_text(st, 5, a->action) | custos_sq_bind_text(st, 6, a->object) |
            custos_sq_bind_text(st, 7, a->detail) | custos_sq_bind_blob(st, 8, a->hash, 32),
        CUSTOS_ERR_EXISTS, "audit");
}

custos_err custos_sq_audit_last(void *ctx, int64_t *out_seq, uint8_t out_hash[32])
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;
    *out_seq = 0;
    memset(out_hash, 0, 32);
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_AUDIT_LAST));
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out_seq = sqlite3_column_int64(st, 0);
        CUSTOS_ENSURE(sqlite3_column_bytes(st, 1) == 32, CUSTOS_ERR_MALFORMED, "audit",
                      "audit entry %lld has a malformed hash", (long long)*out_seq);
        memcpy(out_hash, sqlite3_column_blob(st, 1), 32);
    } else {
        CUSTOS_ENSURE(rc == SQLITE_DONE, CUSTOS_ERR_IO, "store", "store: audit: %s",
                      sqlite3_errmsg(s->c.db));
    }
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

/* One audit row (seq, time, actor, origin, action, object, detail, hash) into
 * @p a; its strings point into @p st until the next step. */
void custos_sq_read_audit(custos_store_audit *a, sqlite3_stmt *st)
{
    memset(a, 0, sizeof(*a));
    a->seq = sqlite3_column_int64(st, 0);
    a->time = sqlite3_column_int64(st, 1);
    a->actor = (const char *)sqlite3_column_text(st, 2);
    a->from = (const char *)sqlite3_column_text(st, 3);
    a->action = (const char *)sqlite3_column_text(st, 4);
    a->object = (const char *)sqlite3_column_text(st, 5);
    a->detail = (const char *)sqlite3_column_text(st, 6);
    if (sqlite3_column_bytes(st, 7) == 32)
        memcpy(a->hash, sqlite3_column_blob(st, 7), 32);
}

custos_err custos_sq_audit_iter(void *ctx, custos_store_audit_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc = SQLITE_DONE, r2 = 0;
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_AUDIT_ITER));
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        custos_store_audit a;
        custos_sq_read_audit(&a, st);
        r2 = cb(&a, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "audit");
out:
    custos_sq_done(st);
    return ret;
}
