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
    S_SYS_SET,
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
    S_USER_INSERT,
    S_USER_GET,
    S_USER_SET_PW,
    S_USER_SET_DISABLED,
    S_USER_LIST,
    S_CRED_INSERT,
    S_CRED_GET_HASH,
    S_CRED_GET,
    S_CRED_REVOKE,
    S_CRED_REVOKE_USER,
    S_CRED_LIST,
    S_POL_GET,
    S_POL_COUNT,
    S_POL_PUT,
    S_POL_CLEAR,
    S_POL_ADD,
    S_POL_HAS,
    S_POL_ITER,
    S_PKG_FILE,
    S_RCPT_PUT,
    S_COUNTS,
    S_COUNTS_SYSTEM,
    S_COUNTS_COMPONENT,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_CRED_PURGE,
    S_GW_GET, /* schema 3: gateways (sqlite_gateway.c) */
    S_GW_PUT,
    S_GW_ENABLE,
    S_GW_SEEN,
    S_GW_LIST,
    S_COUNT
};

#define CUSTOS_SQ_SCHEMA_VERSION 4

/* Statements built from a filter's shape (which fields are set), prepared
 * once per shape and connection. */
#define SQ_REQ_SHAPES 64
#define SQ_PKG_SHAPES 4
#define SQ_AUDIT_SHAPES 256

/* One SQLite connection and the statements prepared on it. */
typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[S_COUNT];
    sqlite3_stmt *req_query[SQ_REQ_SHAPES];
    sqlite3_stmt *pkg_query[SQ_PKG_SHAPES];
    sqlite3_stmt *audit_query[SQ_AUDIT_SHAPES];
    sqlite3_stmt *search[3]; /* sqlite_search.c */
} sq_conn;

typedef struct sq_group sq_group;

/* A store handle: its own connection for reads outside transactions; inside
 * a transaction, the connection of its group's writer (swapped in by begin,
 * back by commit/rollback), so that transactions of every handle on one
 * database in this process commit together (group commit, sqlite.c). */
typedef struct sq {
    sq_conn c;
    sq_group *group;
    int in_tx;
    uint64_t gen; /* the batch this handle's transaction joined */
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
/* sqlite3_exec() of @p sql; CUSTOS_ERR_IO naming @p what on failure. */
custos_err custos_sq_exec_sql(sq *s, const char *sql, const char *what);
/* custos_sq_exec() of a write whose binds @p bind_rc reports (nonzero: a bind
 * failed, CUSTOS_ERR_INTERNAL). Finalizes @p st. */
custos_err custos_sq_exec_bound(sq *s, sqlite3_stmt *st, int bind_rc, custos_err on_conflict,
                                const char *what);
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

/* schema and migrations (server/store/sqlite_schema.c): bring the database
 * to CUSTOS_SQ_SCHEMA_VERSION (an empty one only when @p create). */
custos_err custos_sq_migrate(sq *s, int create, const char *path);
/* Prepare (once) a statement of a dynamic shape into @p slot. */
custos_err custos_sq_stmt_dyn(sqlite3_stmt **out, sq *s, sqlite3_stmt **slot, const char *sql);
/* Finish a row loop (server/store/sqlite_records.c). */
custos_err custos_sq_rows_end(sq *s, sqlite3_stmt *st, int rc, int r2, const char *what);
void custos_sq_read_request(custos_store_request *r, sqlite3_stmt *st);
/* The columns custos_sq_read_request reads, in its order. */
#define CUSTOS_SQ_REQ_LIST_COLS                                                                    \
    "id, device_id, state, kind, via, system, component, serial, model, firmware,"                 \
    " package_id, signer_serial, duplicate_serial, reason, expires, created, updated, digest,"     \
    " hardware_id, gateway_id, gateway_serial"
/* A search by serial or hardware-id prefix (sqlite_search.c): the newest
 * q->limit matches through the covering prefix indexes. *out_dense is set,
 * and nothing reported, when the prefix matches too many rows for that; the
 * caller then walks the rows by date instead. */
custos_err custos_sq_request_search(sq *s, const custos_store_query *q, const char *end,
                                    int *out_dense, custos_store_request_cb cb, void *cb_ctx);
void custos_sq_read_audit(custos_store_audit *a, sqlite3_stmt *st);

/* operators and policies (server/store/sqlite_auth.c) */
custos_err custos_sq_user_insert(void *ctx, const custos_store_user *u);
custos_err custos_sq_user_get(void *ctx, custos_store_user *out, const char *username);
custos_err custos_sq_user_update(void *ctx, const char *username, const char *pw_hash,
                                 int disabled);
custos_err custos_sq_user_list(void *ctx, custos_store_user_cb cb, void *cb_ctx);
custos_err custos_sq_cred_insert(void *ctx, const custos_store_cred *c);
custos_err custos_sq_cred_get_by_hash(void *ctx, custos_store_cred *out, const uint8_t hash[32]);
custos_err custos_sq_cred_get(void *ctx, custos_store_cred *out, const char *id);
custos_err custos_sq_cred_revoke(void *ctx, const char *id, int64_t now);
custos_err custos_sq_cred_revoke_user(void *ctx, const char *username, custos_store_cred_kind kind,
                                      int64_t now);
custos_err custos_sq_cred_list(void *ctx, custos_store_cred_kind kind, custos_store_cred_cb cb,
                               void *cb_ctx);
custos_err custos_sq_cred_purge(void *ctx, size_t *out, custos_store_cred_kind kind,
                                int64_t before);
custos_err custos_sq_policy_get(void *ctx, custos_store_policy *out, const char *system,
                                int with_counts);
custos_err custos_sq_policy_put(void *ctx, const char *system, int mode, int64_t now);
custos_err custos_sq_policy_list_set(void *ctx, const char *system, int list,
                                     const char *const *serials, size_t n);
custos_err custos_sq_policy_has(void *ctx, int *out, const char *system, int list,
                                const char *serial);
custos_err custos_sq_policy_list_iter(void *ctx, const char *system, int list,
                                      custos_store_blob_cb cb, void *cb_ctx);

/* queries (server/store/sqlite_query.c) */
custos_err custos_sq_package_get_file(void *ctx, uint8_t **out, size_t *out_len, const char *id);
custos_err custos_sq_package_query(void *ctx, const char *system, const custos_store_cursor *after,
                                   size_t limit, custos_store_package_cb cb, void *cb_ctx);
custos_err custos_sq_request_query(void *ctx, const custos_store_query *q,
                                   custos_store_request_cb cb, void *cb_ctx);
custos_err custos_sq_request_counts(void *ctx, size_t out[8], const char *system,
                                    const char *component);
custos_err custos_sq_receipt_put(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                                 int64_t now);
custos_err custos_sq_audit_query(void *ctx, const custos_store_audit_query *q,
                                 custos_store_audit_cb cb, void *cb_ctx);

/* gateways (server/store/sqlite_gateway.c) */
custos_err custos_sq_gateway_get(void *ctx, custos_store_gateway *out, const char *device_id);
custos_err custos_sq_gateway_put(void *ctx, const custos_store_gateway *g);
custos_err custos_sq_gateway_set_enabled(void *ctx, const char *device_id, int enabled,
                                         int64_t now);
custos_err custos_sq_gateway_seen(void *ctx, const char *device_id, int64_t now, int64_t n);
custos_err custos_sq_gateway_list(void *ctx, custos_store_gateway_cb cb, void *cb_ctx);

/* connections and group commit (server/store/sqlite_group.c) */
custos_err custos_sq_exec_id(sq *s, enum stmt_id id, const char *what);
custos_err custos_sq_conn_open(sq *s, const char *path, int create);
void custos_sq_conn_close(sq_conn *c);
custos_err custos_sq_group_get(sq_group **out, const char *path);
void custos_sq_group_put(sq_group *g);
custos_err custos_sq_begin(void *ctx);
custos_err custos_sq_commit(void *ctx);
void custos_sq_rollback(void *ctx);
int custos_sq_in_tx(void *ctx);

#endif
