/* Internals of the SQLite store backend shared by server/store/sqlite*.c. */
#ifndef CUSTOS_SERVER_STORE_SQLITE_INT_H
#define CUSTOS_SERVER_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "store/store.h"

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_AUTH_PUT,
    S_AUTH_GET,
    S_AUTH_LIST,
    S_SYS_PUT,
    S_SYS_GET,
    S_SYS_LIST,
    S_PKG_PUT,
    S_PKG_GET,
    S_PKG_LIST,
    S_REQ_INSERT,
    S_REQ_GET,
    S_REQ_DIGEST,
    S_REQ_STATE,
    S_REQ_LIST,
    S_REQ_LIST_STATE,
    S_REQ_COUNT_SERIAL,
    S_REQ_LATEST_PROVISIONED,
    S_CERT_INSERT,
    S_CERT_GET,
    S_CERT_LIST,
    S_PROF_PUT,
    S_PROF_GET,
    S_AUDIT_APPEND,
    S_AUDIT_LAST,
    S_AUDIT_ITER,
    S_COUNT
};

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *stmts[S_COUNT];
    int in_tx;
} sq;

/* The SQL of each statement (server/store/sqlite.c). */
extern const char *const custos_sq_sql[S_COUNT];

/* helpers (server/store/sqlite.c) */
custos_err custos_sq_error(const sq *s, custos_err code, const char *what);
custos_err custos_sq_stmt(sqlite3_stmt **out, sq *s, enum stmt_id id);
void custos_sq_done(sqlite3_stmt *st);
int custos_sq_bind_text(sqlite3_stmt *st, int i, const char *v);
int custos_sq_bind_blob(sqlite3_stmt *st, int i, const uint8_t *v, size_t len);
void custos_sq_col_text(char *dst, size_t cap, sqlite3_stmt *st, int i);
custos_err custos_sq_col_blob(uint8_t **out, size_t *out_len, sqlite3_stmt *st, int i);
custos_err custos_sq_exec(sq *s, sqlite3_stmt *st, custos_err on_conflict, const char *what);
custos_err custos_sq_put_named(sq *s, enum stmt_id id, const char *name, const uint8_t *data,
                               size_t len, int as_text, int64_t now, const char *what);
custos_err custos_sq_get_named(sq *s, enum stmt_id id, uint8_t **out, size_t *out_len,
                               const char *name, const char *what);

/* requests, certificates, profiles, audit (server/store/sqlite_records.c) */
custos_err custos_sq_request_insert(void *ctx, const custos_store_request *r);
custos_err custos_sq_request_get(void *ctx, custos_store_request *out, const char *id);
custos_err custos_sq_request_get_by_digest(void *ctx, custos_store_request *out,
                                           const uint8_t digest[32]);
custos_err custos_sq_request_set_state(void *ctx, const char *id, custos_state expected,
                                       custos_state next, const char *reason, int64_t now);
custos_err custos_sq_request_list(void *ctx, custos_state state, const custos_store_cursor *after,
                                  size_t limit, custos_store_request_cb cb, void *cb_ctx);
custos_err custos_sq_request_latest_provisioned(void *ctx, custos_store_request *out,
                                                const char *device_id);
custos_err custos_sq_request_count_serial(void *ctx, size_t *out, const char *system,
                                          const char *serial, const char *device_id);
custos_err custos_sq_cert_insert(void *ctx, const custos_store_cert *c);
custos_err custos_sq_cert_get(void *ctx, custos_store_cert *out, const char *serial);
custos_err custos_sq_cert_list_by_request(void *ctx, const char *request_id,
                                          custos_store_cert_cb cb, void *cb_ctx);
custos_err custos_sq_profile_put(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                                 int64_t now);
custos_err custos_sq_profile_get(void *ctx, uint8_t **out, size_t *out_len, const char *request_id);
custos_err custos_sq_audit_append(void *ctx, const custos_store_audit *a);
custos_err custos_sq_audit_last(void *ctx, int64_t *out_seq, uint8_t out_hash[32]);
custos_err custos_sq_audit_iter(void *ctx, custos_store_audit_cb cb, void *cb_ctx);

#endif
