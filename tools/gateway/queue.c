/* custos-gateway: the store-and-forward queue on SQLite (queue.h). */
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sqlite3.h>

#include "custos/connect.h"

#define BUSY_TIMEOUT_MS 15000
#define POLL_MIN_S 1
#define POLL_MAX_S 300

struct gwq {
    sqlite3 *db;
    char path[4096];
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " request_id TEXT PRIMARY KEY,"
    " sha256 TEXT NOT NULL,"
    " mcpr BLOB NOT NULL,"
    " system TEXT NOT NULL, component TEXT NOT NULL, serial TEXT NOT NULL,"
    " device_id TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL,"
    " retry_after INTEGER NOT NULL DEFAULT -1,"
    " next_poll INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT NOT NULL DEFAULT '',"
    " err_status INTEGER NOT NULL DEFAULT 0, err_code TEXT NOT NULL DEFAULT '',"
    " err_message TEXT NOT NULL DEFAULT '', err_field TEXT NOT NULL DEFAULT '',"
    " profile BLOB,"
    " receipt BLOB, receipt_state INTEGER NOT NULL DEFAULT 0,"
    " rerr_status INTEGER NOT NULL DEFAULT 0, rerr_code TEXT NOT NULL DEFAULT '',"
    " rerr_message TEXT NOT NULL DEFAULT '', rerr_field TEXT NOT NULL DEFAULT '',"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS requests_queued ON requests(created) WHERE state = 'queued';"
    "CREATE INDEX IF NOT EXISTS requests_receipts ON requests(updated) WHERE receipt_state = 1;"
    "CREATE INDEX IF NOT EXISTS requests_polls ON requests(next_poll) WHERE profile IS NULL"
    " AND state IN ('pending', 'approved', 'certified', 'provisioned');"
    "CREATE TABLE IF NOT EXISTS uplink ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " last_contact INTEGER, last_result TEXT, last_ok INTEGER, down_since INTEGER);"
    "INSERT OR IGNORE INTO uplink (id) VALUES (1);";

/* The columns of a gwq_item, in the order row_item() reads them. */
#define ITEM_COLUMNS                                                                               \
    "request_id, device_id, system, component, serial, state, retry_after, reason,"                \
    " err_status, err_code, err_message, err_field, profile IS NOT NULL, receipt_state,"           \
    " rerr_status, rerr_code, rerr_message, rerr_field, created, updated"

static custos_err db_fail(const gwq *q, const char *what)
{
    char msg[768];
    snprintf(msg, sizeof(msg), "the queue database %.300s: %s: %.300s", q->path, what,
             q->db != NULL ? sqlite3_errmsg(q->db) : "cannot open");
    return custos_error_report(CUSTOS_ERR_IO, "queue", msg);
}

static custos_err exec(gwq *q, const char *sql)
{
    return sqlite3_exec(q->db, sql, NULL, NULL, NULL) == SQLITE_OK ? CUSTOS_OK : db_fail(q, "exec");
}

static custos_err prepare(sqlite3_stmt **out, gwq *q, const char *sql)
{
    return sqlite3_prepare_v2(q->db, sql, -1, out, NULL) == SQLITE_OK ? CUSTOS_OK
                                                                      : db_fail(q, "prepare");
}

/* Step a statement that returns no row. */
static custos_err step_done(gwq *q, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CUSTOS_OK : db_fail(q, "write");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v != NULL ? v : "", -1, SQLITE_TRANSIENT);
}

static void col_text(char *out, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", v != NULL ? (const char *)v : "");
}

static void row_error(gwq_error *e, sqlite3_stmt *st, int first)
{
    e->status = sqlite3_column_int(st, first);
    col_text(e->code, sizeof(e->code), st, first + 1);
    col_text(e->message, sizeof(e->message), st, first + 2);
    col_text(e->field, sizeof(e->field), st, first + 3);
}

static void row_item(gwq_item *it, sqlite3_stmt *st)
{
    memset(it, 0, sizeof(*it));
    col_text(it->request_id, sizeof(it->request_id), st, 0);
    col_text(it->device_id, sizeof(it->device_id), st, 1);
    col_text(it->system, sizeof(it->system), st, 2);
    col_text(it->component, sizeof(it->component), st, 3);
    col_text(it->serial, sizeof(it->serial), st, 4);
    col_text(it->state, sizeof(it->state), st, 5);
    it->retry_after = (long)sqlite3_column_int64(st, 6);
    col_text(it->reason, sizeof(it->reason), st, 7);
    row_error(&it->error, st, 8);
    it->has_profile = sqlite3_column_int(st, 12);
    it->receipt_state = sqlite3_column_int(st, 13);
    row_error(&it->receipt_error, st, 14);
    it->created = sqlite3_column_int64(st, 18);
    it->updated = sqlite3_column_int64(st, 19);
}

static void sha256_hex(char out[65], const uint8_t *data, size_t len)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- open ------------------------------------------------------------------- */

static custos_err make_dir(const char *dir)
{
    char msg[600];
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(msg, sizeof(msg), "cannot create the queue directory %.300s: %s", dir,
                 strerror(errno));
        return custos_error_report(CUSTOS_ERR_IO, "queue", msg);
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, sizeof(msg), "the queue directory %.300s is not a directory", dir);
        return custos_error_report(CUSTOS_ERR_IO, "queue", msg);
    }
    return CUSTOS_OK;
}

custos_err gwq_open(gwq **out, const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    gwq *q = NULL;
    *out = NULL;
    ret = make_dir(dir);
    if (ret < 0)
        return ret;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (snprintf(q->path, sizeof(q->path), "%s/%s", dir, GWQ_FILE) >= (int)sizeof(q->path)) {
        free(q);
        return custos_error_report(CUSTOS_ERR_ARG, "queue", "the queue directory path is too long");
    }
    if (sqlite3_open_v2(q->path, &q->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        ret = db_fail(q, "open");
        goto out;
    }
    /* 0600 before the first write (SQLite gives -wal and -shm the database's
     * mode). Never open() and close() the file here: closing any descriptor
     * of it drops every POSIX lock this process holds on it, SQLite's too. */
    (void)chmod(q->path, 0600);
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
    /* WAL, and every commit on disk before it returns: a device is told
     * "accepted" only after that. */
    ret = exec(q, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    if (ret == CUSTOS_OK)
        ret = exec(q, "BEGIN IMMEDIATE");
    if (ret == CUSTOS_OK) {
        ret = exec(q, SCHEMA);
        ret = ret == CUSTOS_OK ? exec(q, "COMMIT") : ret;
        if (ret < 0)
            (void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (ret < 0)
        goto out;
    *out = q;
    q = NULL;
    ret = CUSTOS_OK;
out:
    gwq_close(q);
    return ret;
}

void gwq_close(gwq *q)
{
    if (q == NULL)
        return;
    sqlite3_close(q->db);
    free(q);
}

custos_err gwq_begin(gwq *q)
{
    return exec(q, "BEGIN IMMEDIATE");
}

custos_err gwq_commit(gwq *q)
{
    custos_err r = exec(q, "COMMIT");
    if (r < 0)
        gwq_rollback(q);
    return r;
}

void gwq_rollback(gwq *q)
{
    if (!sqlite3_get_autocommit(q->db))
        (void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- downstream ---------------------------------------------------------------- */

/* The item of @p request_id inside the current transaction, or NOT_FOUND. */
static custos_err read_item(gwq_item *out, gwq *q, const char *request_id, char sha[65])
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "SELECT " ITEM_COLUMNS ", sha256 FROM requests"
                             " WHERE request_id = ?");
    int rc;
    if (ret < 0)
        return ret;
    bind_text(st, 1, request_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row_item(out, st);
        if (sha != NULL)
            col_text(sha, 65, st, 20);
        ret = CUSTOS_OK;
    } else if (rc == SQLITE_DONE) {
        char msg[128];
        snprintf(msg, sizeof(msg), "no request %.40s at this gateway", request_id);
        ret = custos_error_report(CUSTOS_ERR_NOT_FOUND, "request_id", msg);
    } else {
        ret = db_fail(q, "read");
    }
    sqlite3_finalize(st);
    return ret;
}

custos_err gwq_get(gwq_item *out, gwq *q, const char *request_id)
{
    return read_item(out, q, request_id, NULL);
}

static custos_err insert_request(gwq *q, const gwq_new *n, const char *sha, int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "INSERT INTO requests (request_id, sha256, mcpr, system, component,"
                             " serial, device_id, state, created, updated)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)");
    if (ret < 0)
        return ret;
    bind_text(st, 1, n->request_id);
    bind_text(st, 2, sha);
    sqlite3_bind_blob(st, 3, n->mcpr, (int)n->len, SQLITE_STATIC);
    bind_text(st, 4, n->system);
    bind_text(st, 5, n->component);
    bind_text(st, 6, n->serial);
    bind_text(st, 7, n->device_id);
    sqlite3_bind_int64(st, 8, now);
    sqlite3_bind_int64(st, 9, now);
    return step_done(q, st);
}

custos_err gwq_put_request(gwq_item *out, int *created, gwq *q, const gwq_new *n, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char sha[65], known[65] = "";
    char msg[200];

    *created = 0;
    memset(out, 0, sizeof(*out));
    sha256_hex(sha, n->mcpr, n->len);
    ret = gwq_begin(q);
    if (ret < 0)
        return ret;
    ret = read_item(out, q, n->request_id, known);
    if (ret == CUSTOS_ERR_NOT_FOUND) {
        custos_error_clear();
        ret = insert_request(q, n, sha, now);
        if (ret == CUSTOS_OK)
            ret = read_item(out, q, n->request_id, NULL);
        *created = ret == CUSTOS_OK;
    } else if (ret == CUSTOS_OK && strcmp(known, sha) != 0) {
        snprintf(msg, sizeof(msg),
                 "request %s was already accepted here with other content: a request id is "
                 "used once",
                 n->request_id);
        ret = custos_error_report(CUSTOS_ERR_DUPLICATE, "request_id", msg);
    }
    if (ret == CUSTOS_OK && *created)
        ret = gwq_commit(q);
    else
        gwq_rollback(q);
    if (ret < 0)
        *created = 0;
    return ret;
}

custos_err gwq_profile(uint8_t **out, size_t *out_len, gwq *q, const char *request_id)
{
    sqlite3_stmt *st = NULL;
    custos_err ret;
    const void *b;
    int n;

    *out = NULL;
    *out_len = 0;
    ret = prepare(&st, q,
                  "SELECT profile FROM requests WHERE request_id = ? AND profile"
                  " IS NOT NULL");
    if (ret < 0)
        return ret;
    bind_text(st, 1, request_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return custos_error_report(CUSTOS_ERR_NOT_FOUND, "profile", "no profile stored");
    }
    b = sqlite3_column_blob(st, 0);
    n = sqlite3_column_bytes(st, 0);
    *out = malloc(n > 0 ? (size_t)n : 1);
    if (*out == NULL) {
        sqlite3_finalize(st);
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    if (n > 0)
        memcpy(*out, b, (size_t)n);
    *out_len = (size_t)n;
    sqlite3_finalize(st);
    return CUSTOS_OK;
}

/* 1 when the stored receipt of @p request_id is @p receipt byte for byte. */
static int same_receipt(gwq *q, const char *request_id, const uint8_t *receipt, size_t len)
{
    sqlite3_stmt *st = NULL;
    int same = 0;
    if (prepare(&st, q, "SELECT receipt FROM requests WHERE request_id = ?") < 0)
        return 0;
    bind_text(st, 1, request_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        same = (size_t)sqlite3_column_bytes(st, 0) == len &&
               (len == 0 || memcmp(sqlite3_column_blob(st, 0), receipt, len) == 0);
    sqlite3_finalize(st);
    return same;
}

custos_err gwq_put_receipt(gwq_item *out, gwq *q, const char *request_id, const uint8_t *receipt,
                           size_t len, int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = gwq_begin(q);
    if (ret < 0)
        return ret;
    ret = read_item(out, q, request_id, NULL);
    if (ret < 0 || out->receipt_state == GWQ_RECEIPT_CONFIRMED ||
        (out->receipt_state != GWQ_RECEIPT_NONE && same_receipt(q, request_id, receipt, len))) {
        gwq_rollback(q);
        return ret;
    }
    ret = prepare(&st, q,
                  "UPDATE requests SET receipt = ?, receipt_state = 1, rerr_status = 0,"
                  " rerr_code = '', rerr_message = '', rerr_field = '', updated = ?"
                  " WHERE request_id = ?");
    if (ret == CUSTOS_OK) {
        sqlite3_bind_blob(st, 1, receipt, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        bind_text(st, 3, request_id);
        ret = step_done(q, st);
    }
    if (ret == CUSTOS_OK)
        ret = read_item(out, q, request_id, NULL);
    if (ret == CUSTOS_OK)
        return gwq_commit(q);
    gwq_rollback(q);
    return ret;
}

/* ---- upstream -------------------------------------------------------------------- */

void gwq_blobs_free(gwq_blob *b, size_t n)
{
    for (size_t i = 0; b != NULL && i < n; i++) {
        free(b[i].data);
        b[i].data = NULL;
    }
}

static custos_err read_blobs(gwq_blob *out, size_t cap, size_t *n, gwq *q, const char *sql)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q, sql);
    int rc = SQLITE_DONE;

    *n = 0;
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)cap);
    while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        gwq_blob *b = &out[*n];
        int len = sqlite3_column_bytes(st, 1);
        col_text(b->request_id, sizeof(b->request_id), st, 0);
        b->data = malloc(len > 0 ? (size_t)len : 1);
        if (b->data == NULL) {
            ret = custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        if (len > 0)
            memcpy(b->data, sqlite3_column_blob(st, 1), (size_t)len);
        b->len = (size_t)len;
        (*n)++;
    }
    if (ret == CUSTOS_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = db_fail(q, "read");
    sqlite3_finalize(st);
    if (ret < 0) {
        gwq_blobs_free(out, *n);
        *n = 0;
    }
    return ret;
}

custos_err gwq_submissions(gwq_blob *out, size_t cap, size_t *n, gwq *q)
{
    return read_blobs(out, cap, n, q,
                      "SELECT request_id, mcpr FROM requests WHERE state = 'queued'"
                      " ORDER BY created, rowid LIMIT ?");
}

custos_err gwq_receipts(gwq_blob *out, size_t cap, size_t *n, gwq *q)
{
    return read_blobs(out, cap, n, q,
                      "SELECT request_id, receipt FROM requests WHERE receipt_state = 1"
                      " ORDER BY updated, rowid LIMIT ?");
}

#define POLL_WHERE                                                                                 \
    " WHERE profile IS NULL AND state IN ('pending', 'approved', 'certified', 'provisioned')"

custos_err gwq_polls(char (*out)[CUSTOS_ID_LEN + 1], size_t cap, size_t *n, gwq *q, int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "SELECT request_id FROM requests" POLL_WHERE
                             " AND next_poll <= ? ORDER BY next_poll LIMIT ?");
    int rc = SQLITE_DONE;

    *n = 0;
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
    while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
        col_text(out[(*n)++], CUSTOS_ID_LEN + 1, st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CUSTOS_OK : db_fail(q, "read");
}

custos_err gwq_next_due(int64_t *out, gwq *q)
{
    sqlite3_stmt *st = NULL;
    custos_err ret =
        prepare(&st, q,
                "SELECT EXISTS (SELECT 1 FROM requests WHERE state = 'queued'"
                " OR receipt_state = 1), (SELECT MIN(next_poll) FROM requests" POLL_WHERE ")");
    *out = INT64_MAX;
    if (ret < 0)
        return ret;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return db_fail(q, "read");
    }
    if (sqlite3_column_int(st, 0))
        *out = 0;
    else if (sqlite3_column_type(st, 1) != SQLITE_NULL)
        *out = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return CUSTOS_OK;
}

static int waits_for_profile(const char *state)
{
    return strcmp(state, "pending") == 0 || strcmp(state, "approved") == 0 ||
           strcmp(state, "certified") == 0 || strcmp(state, "provisioned") == 0;
}

custos_err gwq_update_state(gwq *q, const char *request_id, const gwq_update *u, int64_t now)
{
    sqlite3_stmt *st = NULL;
    long wait = u->retry_after;
    custos_err ret;

    /* The cloud's pace for a request that waits for approval (at least a
     * second); a certified one is asked for its profile when the caller says. */
    if (wait < 0)
        wait = POLL_MIN_S;
    if (!strcmp(u->state, "pending") || !strcmp(u->state, "approved"))
        wait = wait < POLL_MIN_S ? POLL_MIN_S : wait;
    if (wait > POLL_MAX_S)
        wait = POLL_MAX_S;
    ret = prepare(&st, q,
                  "UPDATE requests SET state = ?,"
                  " device_id = CASE WHEN ?2 = '' THEN device_id ELSE ?2 END,"
                  " retry_after = CASE WHEN ?3 < 0 THEN retry_after ELSE ?3 END,"
                  " reason = CASE WHEN ?4 = '' THEN reason ELSE ?4 END,"
                  " profile = COALESCE(?5, profile), next_poll = ?6, updated = ?7"
                  " WHERE request_id = ?8");
    if (ret < 0)
        return ret;
    bind_text(st, 1, u->state);
    bind_text(st, 2, u->device_id);
    sqlite3_bind_int64(st, 3, u->retry_after);
    bind_text(st, 4, u->reason);
    if (u->profile != NULL && waits_for_profile(u->state))
        sqlite3_bind_blob(st, 5, u->profile, (int)u->profile_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, now + wait);
    sqlite3_bind_int64(st, 7, now);
    bind_text(st, 8, request_id);
    return step_done(q, st);
}

static custos_err set_error(gwq *q, const char *sql, const char *request_id, const gwq_error *e,
                            int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q, sql);
    if (ret < 0)
        return ret;
    sqlite3_bind_int(st, 1, e->status);
    bind_text(st, 2, e->code);
    bind_text(st, 3, e->message);
    bind_text(st, 4, e->field);
    sqlite3_bind_int64(st, 5, now);
    bind_text(st, 6, request_id);
    return step_done(q, st);
}

custos_err gwq_refuse(gwq *q, const char *request_id, const gwq_error *e, int64_t now)
{
    return set_error(q,
                     "UPDATE requests SET state = 'refused', err_status = ?, err_code = ?,"
                     " err_message = ?, err_field = ?, updated = ? WHERE request_id = ?",
                     request_id, e, now);
}

custos_err gwq_receipt_refused(gwq *q, const char *request_id, const gwq_error *e, int64_t now)
{
    return set_error(q,
                     "UPDATE requests SET receipt_state = 3, rerr_status = ?, rerr_code = ?,"
                     " rerr_message = ?, rerr_field = ?, updated = ? WHERE request_id = ?",
                     request_id, e, now);
}

static custos_err update_simple(gwq *q, const char *sql, const char *a, const char *b, int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q, sql);
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, now);
    bind_text(st, 2, a);
    if (b != NULL)
        bind_text(st, 3, b);
    return step_done(q, st);
}

custos_err gwq_defer(gwq *q, const char *request_id, long seconds, int64_t now)
{
    return update_simple(q, "UPDATE requests SET next_poll = ?1 WHERE request_id = ?2", request_id,
                         NULL, now + seconds);
}

custos_err gwq_requeue(gwq *q, const char *request_id, int64_t now)
{
    return update_simple(q,
                         "UPDATE requests SET state = 'queued', updated = ?1 WHERE request_id = ?2",
                         request_id, NULL, now);
}

custos_err gwq_receipt_confirmed(gwq *q, const char *request_id, const char *device_id, int64_t now)
{
    return update_simple(q,
                         "UPDATE requests SET receipt_state = 2, state = 'provisioned',"
                         " device_id = CASE WHEN ?3 = '' THEN device_id ELSE ?3 END, updated = ?1"
                         " WHERE request_id = ?2",
                         request_id, device_id != NULL ? device_id : "", now);
}

custos_err gwq_uplink(gwq *q, int ok, const char *result, int64_t now)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "UPDATE uplink SET last_contact = ?1, last_result = ?2,"
                             " last_ok = CASE WHEN ?3 THEN ?1 ELSE last_ok END,"
                             " down_since = CASE WHEN ?3 THEN NULL"
                             " ELSE COALESCE(down_since, ?1) END WHERE id = 1");
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, now);
    bind_text(st, 2, result);
    sqlite3_bind_int(st, 3, ok != 0);
    return step_done(q, st);
}

custos_err gwq_prune(gwq *q, int64_t before, size_t *n)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "DELETE FROM requests WHERE updated < ? AND receipt_state != 1 AND"
                             " (state IN ('rejected', 'expired', 'refused') OR"
                             " (state = 'provisioned' AND receipt_state = 2))");
    *n = 0;
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, before);
    ret = step_done(q, st);
    if (ret == CUSTOS_OK)
        *n = (size_t)sqlite3_changes(q->db);
    return ret;
}

/* ---- status report ------------------------------------------------------------ */

static json_t *time_json(sqlite3_stmt *st, int i)
{
    char buf[32];
    struct tm tm;
    time_t t;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    t = (time_t)sqlite3_column_int64(st, i);
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

static const char *receipt_name(int s)
{
    static const char *const names[] = {"none", "queued", "confirmed", "refused"};
    return s >= 0 && s <= 3 ? names[s] : "none";
}

static custos_err report_counts(json_t *queue, gwq *q)
{
    sqlite3_stmt *st = NULL;
    json_t *states = json_object();
    json_int_t total = 0, forward = 0, receipts = 0, waiting = 0;
    custos_err ret = prepare(&st, q,
                             "SELECT state, COUNT(*), SUM(receipt_state = 1),"
                             " SUM(state IN ('queued', 'pending', 'approved') OR"
                             " (state IN ('certified', 'provisioned') AND receipt_state != 2))"
                             " FROM requests GROUP BY state ORDER BY state");
    if (ret < 0 || states == NULL) {
        json_decref(states);
        sqlite3_finalize(st);
        return ret < 0 ? ret : custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        json_int_t c = sqlite3_column_int64(st, 1);
        json_object_set_new(states, s != NULL ? s : "", json_integer(c));
        total += c;
        if (s != NULL && strcmp(s, "queued") == 0)
            forward = c;
        receipts += sqlite3_column_int64(st, 2);
        waiting += sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    json_object_set_new(queue, "depth", json_integer(forward + receipts));
    json_object_set_new(queue, "to_forward", json_integer(forward));
    json_object_set_new(queue, "receipts_to_confirm", json_integer(receipts));
    json_object_set_new(queue, "waiting", json_integer(waiting));
    json_object_set_new(queue, "total", json_integer(total));
    json_object_set_new(queue, "states", states);
    return CUSTOS_OK;
}

static custos_err report_uplink(json_t *up, gwq *q)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "SELECT last_contact, last_result, last_ok, down_since"
                             " FROM uplink WHERE id = 1");
    if (ret < 0)
        return ret;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *res = sqlite3_column_text(st, 1);
        json_object_set_new(up, "last_contact", time_json(st, 0));
        json_object_set_new(up, "last_result",
                            res != NULL ? json_string((const char *)res) : json_null());
        json_object_set_new(up, "last_ok", time_json(st, 2));
        json_object_set_new(up, "down_since", time_json(st, 3));
    }
    sqlite3_finalize(st);
    return CUSTOS_OK;
}

static custos_err report_devices(json_t *list, gwq *q, size_t limit)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = prepare(&st, q,
                             "SELECT request_id, device_id, serial, component, state,"
                             " receipt_state, created, updated FROM requests"
                             " WHERE state IN ('queued', 'pending', 'approved') OR"
                             " (state IN ('certified', 'provisioned') AND receipt_state != 2)"
                             " ORDER BY created, rowid LIMIT ?");
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *d = json_object();
        if (d == NULL || json_array_append_new(list, d) != 0)
            break;
        for (int i = 0; i < 5; i++) {
            static const char *const keys[] = {"request_id", "device_id", "serial", "component",
                                               "state"};
            const unsigned char *v = sqlite3_column_text(st, i);
            json_object_set_new(d, keys[i], json_string(v != NULL ? (const char *)v : ""));
        }
        json_object_set_new(d, "receipt", json_string(receipt_name(sqlite3_column_int(st, 5))));
        json_object_set_new(d, "since", time_json(st, 6));
        json_object_set_new(d, "updated", time_json(st, 7));
    }
    sqlite3_finalize(st);
    return CUSTOS_OK;
}

custos_err gwq_report(json_t **out, gwq *q, size_t limit)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object(), *queue = json_object(), *up = json_object(), *dev = json_array();

    *out = NULL;
    if (o == NULL || queue == NULL || up == NULL || dev == NULL) {
        ret = custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    /* One read transaction: the counts and the list agree. */
    ret = exec(q, "BEGIN");
    if (ret == CUSTOS_OK)
        ret = report_counts(queue, q);
    if (ret == CUSTOS_OK)
        ret = report_uplink(up, q);
    if (ret == CUSTOS_OK)
        ret = report_devices(dev, q, limit);
    gwq_rollback(q);
    if (ret < 0)
        goto out;
    json_object_set_new(o, "queue", queue);
    json_object_set_new(o, "upstream", up);
    json_object_set_new(o, "devices", dev);
    queue = up = dev = NULL;
    *out = o;
    o = NULL;
out:
    json_decref(o);
    json_decref(queue);
    json_decref(up);
    json_decref(dev);
    return ret;
}
