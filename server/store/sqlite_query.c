/* SQLite store backend: the filtered, paged lists of the operator API
 * (requests, packages, audit), request counters, package files, receipts.
 *
 * A list's SQL depends on which filters are set; each shape is built once per
 * connection and kept prepared, so every filter is a plain equality or range
 * the planner can serve from an index ending in the sort order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

#define REQ_LIST_COLS CUSTOS_SQ_REQ_LIST_COLS

#define MAX_LIMIT 100000

/* ---- packages ------------------------------------------------------------- */

custos_err custos_sq_package_get_file(void *ctx, uint8_t **out, size_t *out_len, const char *id)
{
    return custos_sq_get_named(ctx, S_PKG_FILE, out, out_len, id, "package file");
}

custos_err custos_sq_package_query(void *ctx, const char *system, const custos_store_cursor *after,
                                   size_t limit, custos_store_package_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned shape = (system != NULL ? 1u : 0u) | (after != NULL ? 2u : 0u);
    char sql[512];
    int rc = SQLITE_DONE, r2 = 0;
    custos_store_package p;

    snprintf(sql, sizeof(sql),
             "SELECT id, system, created, expires, file IS NOT NULL FROM packages WHERE 1%s%s"
             " ORDER BY created DESC, id DESC LIMIT ?4",
             system != NULL ? " AND system = ?1" : "",
             after != NULL ? " AND (created < ?2 OR (created = ?2 AND id < ?3))" : "");
    CUSTOS_GUARD(custos_sq_stmt_dyn(&st, s, &s->c.pkg_query[shape], sql));
    rc = SQLITE_OK;
    if (system != NULL)
        rc |= custos_sq_bind_text(st, 1, system);
    if (after != NULL)
        rc |= sqlite3_bind_int64(st, 2, after->created) | custos_sq_bind_text(st, 3, after->id);
    rc |= sqlite3_bind_int64(st, 4, (sqlite3_int64)(limit > MAX_LIMIT ? MAX_LIMIT : limit));
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&p, 0, sizeof(p));
        custos_sq_col_text(p.id, sizeof(p.id), st, 0);
        custos_sq_col_text(p.system, sizeof(p.system), st, 1);
        p.created = sqlite3_column_int64(st, 2);
        p.expires = sqlite3_column_int64(st, 3);
        p.has_file = sqlite3_column_int(st, 4);
        r2 = cb(&p, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "packages");
out:
    custos_sq_done(st);
    return ret;
}

/* ---- requests ------------------------------------------------------------- */

/* The first string after every string that starts with @p prefix (bytewise,
 * as the BINARY collation compares): @p prefix with its last byte raised. No
 * byte of valid UTF-8 is 0xff, so the raised byte never overflows. */
static int prefix_end(char *out, size_t cap, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || n >= cap || (unsigned char)prefix[n - 1] == 0xff)
        return -1;
    memcpy(out, prefix, n + 1);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return 0;
}

enum {
    Q_STATE = 1,
    Q_SYSTEM = 2,
    Q_COMPONENT = 4,
    Q_PREFIX_SCAN = 8, /* a prefix too many rows match for sqlite_search.c: test it by date */
    Q_AFTER = 16,
};

static void request_sql(char *sql, size_t cap, unsigned shape)
{
    /* Parameters: ?1 state, ?2 system, ?3 component, ?4/?5 prefix range,
     * ?6/?7 cursor (created, id), ?8 limit. The unary + keeps the planner
     * from answering a dense prefix through its index. */
    snprintf(sql, cap,
             "SELECT " REQ_LIST_COLS " FROM requests WHERE 1%s%s%s%s%s"
             " ORDER BY created DESC, id DESC LIMIT ?8",
             (shape & Q_STATE) ? " AND state = ?1" : "",
             (shape & Q_SYSTEM) ? " AND system = ?2" : "",
             (shape & Q_COMPONENT) ? " AND component = ?3" : "",
             (shape & Q_PREFIX_SCAN) ? " AND ((+serial >= ?4 AND +serial < ?5)"
                                       " OR (+hardware_id >= ?4 AND +hardware_id < ?5))"
                                     : "",
             (shape & Q_AFTER) ? " AND (created < ?6 OR (created = ?6 AND id < ?7))" : "");
}

custos_err custos_sq_request_query(void *ctx, const custos_store_query *q,
                                   custos_store_request_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    unsigned shape = 0;
    char sql[1024], end[CUSTOS_MAX_HARDWARE_ID_LEN + 2];
    int rc = SQLITE_OK, r2 = 0;

    shape |= q->state != 0 ? Q_STATE : 0u;
    shape |= q->system != NULL ? Q_SYSTEM : 0u;
    shape |= q->component != NULL ? Q_COMPONENT : 0u;
    shape |= q->after != NULL ? Q_AFTER : 0u;
    if (q->prefix != NULL) {
        int dense = 0;
        CUSTOS_ENSURE(prefix_end(end, sizeof(end), q->prefix) == 0, CUSTOS_ERR_ARG, "q",
                      "the search text must be 1..%d bytes", CUSTOS_MAX_HARDWARE_ID_LEN);
        CUSTOS_GUARD(custos_sq_request_search(s, q, end, &dense, cb, cb_ctx));
        if (!dense)
            return CUSTOS_OK;
        shape |= Q_PREFIX_SCAN;
    }
    request_sql(sql, sizeof(sql), shape);
    CUSTOS_GUARD(custos_sq_stmt_dyn(&st, s, &s->c.req_query[shape], sql));
    if (shape & Q_STATE)
        rc |= sqlite3_bind_int(st, 1, (int)q->state);
    if (shape & Q_SYSTEM)
        rc |= custos_sq_bind_text(st, 2, q->system);
    if (shape & Q_COMPONENT)
        rc |= custos_sq_bind_text(st, 3, q->component);
    if (shape & Q_PREFIX_SCAN)
        rc |= custos_sq_bind_text(st, 4, q->prefix) | custos_sq_bind_text(st, 5, end);
    if (shape & Q_AFTER)
        rc |=
            sqlite3_bind_int64(st, 6, q->after->created) | custos_sq_bind_text(st, 7, q->after->id);
    rc |= sqlite3_bind_int64(st, 8, (sqlite3_int64)(q->limit > MAX_LIMIT ? MAX_LIMIT : q->limit));
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    while (r2 == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&r, 0, sizeof(r));
        custos_sq_read_request(&r, st);
        r2 = cb(&r, cb_ctx);
    }
    return custos_sq_rows_end(s, st, rc, r2, "requests");
out:
    custos_sq_done(st);
    return ret;
}

custos_err custos_sq_request_counts(void *ctx, size_t out[8], const char *system,
                                    const char *component)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    enum stmt_id id = system == NULL      ? S_COUNTS
                      : component == NULL ? S_COUNTS_SYSTEM
                                          : S_COUNTS_COMPONENT;
    int rc = SQLITE_OK;

    memset(out, 0, 8 * sizeof(out[0]));
    CUSTOS_GUARD(custos_sq_stmt(&st, s, id));
    if (system != NULL)
        rc |= custos_sq_bind_text(st, 1, system);
    if (system != NULL && component != NULL)
        rc |= custos_sq_bind_text(st, 2, component);
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        sqlite3_int64 n = sqlite3_column_int64(st, 1);
        if (state >= 1 && state <= 7 && n > 0) {
            out[state] = (size_t)n;
            out[0] += (size_t)n;
        }
    }
    CUSTOS_ENSURE(rc == SQLITE_DONE, CUSTOS_ERR_IO, "store", "store: counts: %s",
                  sqlite3_errmsg(s->c.db));
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

/* ---- receipts ------------------------------------------------------------- */

custos_err custos_sq_receipt_put(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                                 int64_t now)
{
    return custos_sq_put_named(ctx, S_RCPT_PUT, request_id, der, len, 0, now, "receipt");
}

/* ---- audit ---------------------------------------------------------------- */

enum {
    A_ACTOR = 1,
    A_ACTION = 2,
    A_OBJECT = 4,
    A_OBJECT2 = 8,
    A_SINCE = 16,
    A_UNTIL = 32,
    A_BEFORE = 64,
    A_ASC = 128,
};

static void audit_sql(char *sql, size_t cap, unsigned shape)
{
    const char *object = "";
    if ((shape & A_OBJECT) && (shape & A_OBJECT2))
        object = " AND object IN (?3, ?4)";
    else if (shape & A_OBJECT)
        object = " AND object = ?3";
    else if (shape & A_OBJECT2)
        object = " AND object = ?4";
    snprintf(sql, cap,
             "SELECT seq, time, actor, origin, action, object, detail, hash FROM audit"
             " WHERE 1%s%s%s%s%s%s ORDER BY seq %s LIMIT ?8",
             (shape & A_ACTOR) ? " AND actor = ?1" : "",
             (shape & A_ACTION) ? " AND action = ?2" : "", object,
             (shape & A_SINCE) ? " AND time >= ?5" : "", (shape & A_UNTIL) ? " AND time < ?6" : "",
             (shape & A_BEFORE) ? " AND seq < ?7" : "", (shape & A_ASC) ? "ASC" : "DESC");
}

custos_err custos_sq_audit_query(void *ctx, const custos_store_audit_query *q,
                                 custos_store_audit_cb cb, void *cb_ctx)
{
    sq *s = ctx;
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned shape = 0;
    char sql[512];
    int rc = SQLITE_OK, r2 = 0;

    shape |= q->actor != NULL ? A_ACTOR : 0u;
    shape |= q->action != NULL ? A_ACTION : 0u;
    shape |= q->object != NULL ? A_OBJECT : 0u;
    shape |= q->object2 != NULL ? A_OBJECT2 : 0u;
    shape |= q->since != 0 ? A_SINCE : 0u;
    shape |= q->until != 0 ? A_UNTIL : 0u;
    shape |= q->before_seq != 0 ? A_BEFORE : 0u;
    shape |= q->oldest_first ? A_ASC : 0u;
    audit_sql(sql, sizeof(sql), shape);
    CUSTOS_GUARD(custos_sq_stmt_dyn(&st, s, &s->c.audit_query[shape], sql));
    if (shape & A_ACTOR)
        rc |= custos_sq_bind_text(st, 1, q->actor);
    if (shape & A_ACTION)
        rc |= custos_sq_bind_text(st, 2, q->action);
    if (shape & A_OBJECT)
        rc |= custos_sq_bind_text(st, 3, q->object);
    if (shape & A_OBJECT2)
        rc |= custos_sq_bind_text(st, 4, q->object2);
    if (shape & A_SINCE)
        rc |= sqlite3_bind_int64(st, 5, q->since);
    if (shape & A_UNTIL)
        rc |= sqlite3_bind_int64(st, 6, q->until);
    if (shape & A_BEFORE)
        rc |= sqlite3_bind_int64(st, 7, q->before_seq);
    rc |= sqlite3_bind_int64(st, 8, (sqlite3_int64)(q->limit > MAX_LIMIT ? MAX_LIMIT : q->limit));
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
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
