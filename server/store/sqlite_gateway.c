/* SQLite store backend: gateways (schema 3, proxy provisioning). */
#include <string.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

/* device_id, system, serial, enabled, last_seen, forwarded, created, updated */
static void read_gateway(custos_store_gateway *g, sqlite3_stmt *st)
{
    memset(g, 0, sizeof(*g));
    custos_sq_col_text(g->device_id, sizeof(g->device_id), st, 0);
    custos_sq_col_text(g->system, sizeof(g->system), st, 1);
    custos_sq_col_text(g->serial, sizeof(g->serial), st, 2);
    g->enabled = sqlite3_column_int(st, 3) != 0;
    g->last_seen = sqlite3_column_int64(st, 4);
    g->forwarded = sqlite3_column_int64(st, 5);
    g->created = sqlite3_column_int64(st, 6);
    g->updated = sqlite3_column_int64(st, 7);
}

custos_err custos_sq_gateway_get(void *ctx, custos_store_gateway *out, const char *device_id)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;

    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_GW_GET));
    CUSTOS_ENSURE(custos_sq_bind_text(st, 1, device_id) == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store",
                  "bind");
    rc = sqlite3_step(st);
    CUSTOS_ENSURE(rc != SQLITE_DONE, CUSTOS_ERR_NOT_FOUND, "device_id", "no gateway %s", device_id);
    CUSTOS_ENSURE(rc == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: gateway: %s",
                  sqlite3_errmsg(s->c.db));
    read_gateway(out, st);
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_gateway_put(void *ctx, const custos_store_gateway *g)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_GW_PUT);
    if (ret < 0)
        return ret;
    return custos_sq_exec_bound(
        s, st,
        custos_sq_bind_text(st, 1, g->device_id) | custos_sq_bind_text(st, 2, g->system) |
            custos_sq_bind_text(st, 3, g->serial) | sqlite3_bind_int64(st, 4, g->updated),
        CUSTOS_ERR_EXISTS, "gateway");
}

static custos_err changed_one(sq *s, custos_err ret, const char *device_id)
{
    if (ret == CUSTOS_OK && sqlite3_changes(s->c.db) != 1)
        ret = custos_error_set(CUSTOS_ERR_NOT_FOUND, "device_id", "no gateway %s", device_id);
    return ret;
}

custos_err custos_sq_gateway_set_enabled(void *ctx, const char *device_id, int enabled, int64_t now)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_GW_ENABLE);
    if (ret < 0)
        return ret;
    ret = custos_sq_exec_bound(s, st,
                               custos_sq_bind_text(st, 1, device_id) |
                                   sqlite3_bind_int(st, 2, enabled ? 1 : 0) |
                                   sqlite3_bind_int64(st, 3, now),
                               CUSTOS_ERR_EXISTS, "gateway");
    return changed_one(s, ret, device_id);
}

custos_err custos_sq_gateway_seen(void *ctx, const char *device_id, int64_t now, int64_t n)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = custos_sq_stmt(&st, s, S_GW_SEEN);
    if (ret < 0)
        return ret;
    ret = custos_sq_exec_bound(s, st,
                               custos_sq_bind_text(st, 1, device_id) |
                                   sqlite3_bind_int64(st, 2, now) | sqlite3_bind_int64(st, 3, n),
                               CUSTOS_ERR_EXISTS, "gateway");
    return changed_one(s, ret, device_id);
}

custos_err custos_sq_gateway_list(void *ctx, custos_store_gateway_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_gateway g;
    int rc = SQLITE_DONE, r2 = 0;

    CUSTOS_GUARD(custos_sq_stmt(&st, s, S_GW_LIST));
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_gateway(&g, st);
        r2 = cb(&g, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "gateways");
out:
    custos_sq_done(st);
    return ret;
}
