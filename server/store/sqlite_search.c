/* SQLite store backend: searching requests by serial or hardware-id prefix,
 * newest first, on a million rows.
 *
 * Both prefix indexes cover what a page needs to choose its rows: the key,
 * then created, id, state, system and component (and the serial, in the
 * hardware-id index, to skip a row both ranges hold). The matches of both
 * ranges are read from the indexes alone, filtered, and the newest `limit`
 * kept in a bounded heap; only those rows are then read from the table. A
 * page costs one index entry per match (about 0.6 ms per 1,000 here), never
 * a sort of the matches or a walk of the table.
 *
 * A prefix many rows match ("SN-") is cheaper the other way round: walk the
 * rows newest first and test each. So past SEARCH_QUICK matches the search
 * stops and looks at the newest SEARCH_WINDOW rows: when they hold a page of
 * matches, the caller walks by date (and stops within that window); when
 * not, the matches are old and the index search runs to the end. Worst case,
 * a prefix that matches many rows none of them recent, costs one index entry
 * per match. */
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

#define SEARCH_QUICK 20000
#define SEARCH_WINDOW 5000

enum { SS_SERIAL, SS_HARDWARE, SS_FETCH };

static const char *const SEARCH_SQL[] = {
    /* Backwards through the range: where serials grow with time, as fleets'
     * do, the newest rows come first and every later one is passed over on
     * its creation time alone. */
    [SS_SERIAL] = "SELECT rowid, created, id, state, system, component FROM requests"
                  " INDEXED BY requests_serial WHERE serial >= ?1 AND serial < ?2"
                  " ORDER BY serial DESC",
    [SS_HARDWARE] = "SELECT rowid, created, id, state, system, component, serial FROM requests"
                    " INDEXED BY requests_hardware WHERE hardware_id >= ?1 AND hardware_id < ?2"
                    " ORDER BY hardware_id DESC",
    [SS_FETCH] = "SELECT " CUSTOS_SQ_REQ_LIST_COLS " FROM requests WHERE rowid = ?1",
};

typedef struct hit {
    int64_t created;
    char id[CUSTOS_ID_LEN + 1];
    sqlite3_int64 rowid;
} hit;

/* Newest first: created, then id, descending (the API's list order). */
static int newer(const hit *a, const hit *b)
{
    if (a->created != b->created)
        return a->created > b->created;
    return strcmp(a->id, b->id) > 0;
}

/* A min-heap of the newest @p cap hits seen: h[0] is the oldest kept. */
typedef struct heap {
    hit *h;
    size_t n, cap;
} heap;

static void sift_down(heap *hp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < hp->n && newer(&hp->h[m], &hp->h[l]))
            m = l;
        if (r < hp->n && newer(&hp->h[m], &hp->h[r]))
            m = r;
        if (m == i)
            return;
        hit t = hp->h[i];
        hp->h[i] = hp->h[m];
        hp->h[m] = t;
        i = m;
    }
}

static void heap_offer(heap *hp, const hit *x)
{
    size_t i;
    if (hp->cap == 0)
        return;
    if (hp->n == hp->cap) {
        if (!newer(x, &hp->h[0]))
            return;
        hp->h[0] = *x;
        sift_down(hp, 0);
        return;
    }
    i = hp->n++;
    hp->h[i] = *x;
    while (i > 0 && newer(&hp->h[(i - 1) / 2], &hp->h[i])) {
        size_t p = (i - 1) / 2;
        hit t = hp->h[i];
        hp->h[i] = hp->h[p];
        hp->h[p] = t;
        i = p;
    }
}

static int cmp_newest_first(const void *a, const void *b)
{
    return newer(a, b) ? -1 : newer(b, a) ? 1 : 0;
}

static int text_is(sqlite3_stmt *st, int col, const char *want)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return want == NULL || (v != NULL && strcmp((const char *)v, want) == 0);
}

/* One index range into the heap. The hardware-id range skips rows whose
 * serial is in the range too (the serial range has them). */
static custos_err scan(sq *s, int which, const custos_store_query *q, const char *end, heap *hp,
                       size_t *seen, size_t max_seen)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int rc;

    CUSTOS_GUARD(custos_sq_stmt_dyn(&st, s, &s->c.search[which], SEARCH_SQL[which]));
    CUSTOS_ENSURE((custos_sq_bind_text(st, 1, q->prefix) | custos_sq_bind_text(st, 2, end)) ==
                      SQLITE_OK,
                  CUSTOS_ERR_INTERNAL, "store", "bind");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hit x;
        if (++*seen > max_seen)
            break;
        x.created = sqlite3_column_int64(st, 1);
        /* Older than every row kept: nothing more to read of it. */
        if (hp->n == hp->cap && x.created < hp->h[0].created)
            continue;
        if (which == SS_HARDWARE) {
            const char *serial = (const char *)sqlite3_column_text(st, 6);
            if (serial != NULL && strcmp(serial, q->prefix) >= 0 && strcmp(serial, end) < 0)
                continue;
        }
        if ((q->state != 0 && sqlite3_column_int(st, 3) != (int)q->state) ||
            !text_is(st, 4, q->system) || !text_is(st, 5, q->component))
            continue;
        x.rowid = sqlite3_column_int64(st, 0);
        custos_sq_col_text(x.id, sizeof(x.id), st, 2);
        if (q->after != NULL &&
            !(x.created < q->after->created ||
              (x.created == q->after->created && strcmp(x.id, q->after->id) < 0)))
            continue;
        heap_offer(hp, &x);
    }
    CUSTOS_ENSURE(rc == SQLITE_ROW || rc == SQLITE_DONE, CUSTOS_ERR_IO, "store",
                  "store: search: %s", sqlite3_errmsg(s->c.db));
    ret = CUSTOS_OK;
out:
    custos_sq_done(st);
    return ret;
}

/* Whether the newest SEARCH_WINDOW rows that pass the other filters hold a
 * page of matches of the prefix. */
static custos_err window_has_page(int *out, sq *s, const custos_store_query *q, const char *end)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    char sql[768];
    int rc = SQLITE_OK;

    *out = 0;
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT serial, hardware_id FROM requests WHERE 1%s%s%s%s"
             " ORDER BY created DESC, id DESC LIMIT ?8) WHERE (serial >= ?4 AND serial < ?5)"
             " OR (hardware_id >= ?4 AND hardware_id < ?5)",
             q->state != 0 ? " AND state = ?1" : "", q->system != NULL ? " AND system = ?2" : "",
             q->component != NULL ? " AND component = ?3" : "",
             q->after != NULL ? " AND (created < ?6 OR (created = ?6 AND id < ?7))" : "");
    CUSTOS_ENSURE(sqlite3_prepare_v2(s->c.db, sql, -1, &st, NULL) == SQLITE_OK, CUSTOS_ERR_INTERNAL,
                  "store", "store: search: %s", sqlite3_errmsg(s->c.db));
    if (q->state != 0)
        rc |= sqlite3_bind_int(st, 1, (int)q->state);
    if (q->system != NULL)
        rc |= custos_sq_bind_text(st, 2, q->system);
    if (q->component != NULL)
        rc |= custos_sq_bind_text(st, 3, q->component);
    rc |= custos_sq_bind_text(st, 4, q->prefix) | custos_sq_bind_text(st, 5, end);
    if (q->after != NULL)
        rc |=
            sqlite3_bind_int64(st, 6, q->after->created) | custos_sq_bind_text(st, 7, q->after->id);
    rc |= sqlite3_bind_int(st, 8, SEARCH_WINDOW);
    CUSTOS_ENSURE(rc == SQLITE_OK, CUSTOS_ERR_INTERNAL, "store", "bind");
    CUSTOS_ENSURE(sqlite3_step(st) == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: search: %s",
                  sqlite3_errmsg(s->c.db));
    *out = (size_t)sqlite3_column_int64(st, 0) >= q->limit;
    ret = CUSTOS_OK;
out:
    sqlite3_finalize(st);
    return ret;
}

/* The matches of both index ranges, up to @p max_seen, into @p hp. */
static custos_err collect(sq *s, const custos_store_query *q, const char *end, heap *hp,
                          size_t max_seen, int *over)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t seen = 0;

    hp->n = 0;
    CUSTOS_GUARD(scan(s, SS_SERIAL, q, end, hp, &seen, max_seen));
    if (seen <= max_seen)
        CUSTOS_GUARD(scan(s, SS_HARDWARE, q, end, hp, &seen, max_seen));
    *over = seen > max_seen;
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_sq_request_search(sq *s, const custos_store_query *q, const char *end,
                                    int *out_dense, custos_store_request_cb cb, void *cb_ctx)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    heap hp = {NULL, 0, 0};
    int r2 = 0, over = 0, recent = 0;

    *out_dense = 0;
    hp.cap = q->limit;
    if (hp.cap > 0) {
        hp.h = calloc(hp.cap, sizeof(*hp.h));
        CUSTOS_ENSURE(hp.h != NULL, CUSTOS_ERR_NOMEM, "store", "out of memory");
    }
    CUSTOS_GUARD(collect(s, q, end, &hp, SEARCH_QUICK, &over));
    if (over) {
        CUSTOS_GUARD(window_has_page(&recent, s, q, end));
        if (recent) {
            *out_dense = 1;
            ret = CUSTOS_OK;
            goto out;
        }
        CUSTOS_GUARD(collect(s, q, end, &hp, (size_t)-1, &over));
    }
    qsort(hp.h, hp.n, sizeof(*hp.h), cmp_newest_first);
    for (size_t i = 0; i < hp.n && r2 == 0; i++) {
        custos_store_request r;
        int rc;
        CUSTOS_GUARD(custos_sq_stmt_dyn(&st, s, &s->c.search[SS_FETCH], SEARCH_SQL[SS_FETCH]));
        CUSTOS_ENSURE(sqlite3_bind_int64(st, 1, hp.h[i].rowid) == SQLITE_OK, CUSTOS_ERR_INTERNAL,
                      "store", "bind");
        rc = sqlite3_step(st);
        CUSTOS_ENSURE(rc == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: search: %s",
                      rc == SQLITE_DONE ? "a row went away" : sqlite3_errmsg(s->c.db));
        memset(&r, 0, sizeof(r));
        custos_sq_read_request(&r, st);
        r2 = cb(&r, cb_ctx);
        custos_sq_done(st);
        st = NULL;
    }
    ret = r2 < 0 ? (custos_err)r2 : CUSTOS_OK;
out:
    custos_sq_done(st);
    free(hp.h);
    return ret;
}
