/* The store of custosd: a table of operations over an opaque backend context
 * (like curl's vtls backends). SQLite implements it now (server/store/sqlite.c);
 * a PostgreSQL backend can fill the same table later without touching callers.
 *
 * Conventions: every operation returns custos_err; "get" of a missing row is
 * CUSTOS_ERR_NOT_FOUND; a UNIQUE conflict is CUSTOS_ERR_DUPLICATE (serials) or
 * CUSTOS_ERR_EXISTS (names, ids). Records returned by a get own their blobs:
 * release them with the matching *_clear(). List callbacks receive borrowed
 * records and return 0 to go on, > 0 to stop, < 0 to fail the list with that
 * code. */
#ifndef CUSTOS_SERVER_STORE_H
#define CUSTOS_SERVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Certificate serials as lowercase hex of the DER INTEGER content (<= 20 octets). */
#define CUSTOS_STORE_SERIAL_HEX_LEN 40

typedef struct custos_store_request {
    custos_request_summary sum;
    char package_id[CUSTOS_ID_LEN + 1]; /* initial: the package used */
    char signer_serial[CUSTOS_STORE_SERIAL_HEX_LEN + 1];
    uint8_t digest[32]; /* SHA-256 of der */
    uint8_t *der;       /* the .mcpr; not loaded by list */
    size_t der_len;
} custos_store_request;

typedef struct custos_store_cert {
    char serial[CUSTOS_STORE_SERIAL_HEX_LEN + 1];
    char request_id[CUSTOS_ID_LEN + 1]; /* empty for mock certificates */
    char device_id[CUSTOS_ID_LEN + 1];
    char template_name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    char issuer[CUSTOS_MAX_NAME_LEN + 16]; /* authority name */
    int mock;
    int64_t not_after;
    int64_t created;
    uint8_t *der;
    size_t der_len;
} custos_store_cert;

typedef struct custos_store_package {
    char id[CUSTOS_ID_LEN + 1];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    int64_t created;
    int64_t expires;
    uint8_t *cert_der; /* the bootstrap certificate */
    size_t cert_len;
} custos_store_package;

typedef struct custos_store_audit {
    int64_t seq;
    int64_t time;
    const char *actor;
    const char *from;
    const char *action;
    const char *object;
    const char *detail; /* canonical JSON object */
    uint8_t hash[32];
} custos_store_audit;

typedef struct custos_store_cursor {
    int64_t created;
    char id[CUSTOS_ID_LEN + 1];
} custos_store_cursor;

typedef int (*custos_store_request_cb)(const custos_store_request *r, void *ctx);
typedef int (*custos_store_cert_cb)(const custos_store_cert *c, void *ctx);
typedef int (*custos_store_audit_cb)(const custos_store_audit *a, void *ctx);
typedef int (*custos_store_blob_cb)(const char *name, const uint8_t *data, size_t len, void *ctx);

typedef struct custos_store_ops {
    const char *name;
    void (*close)(void *ctx);

    /* Transactions do not nest. rollback is safe without an open transaction. */
    custos_err (*begin)(void *ctx);
    custos_err (*commit)(void *ctx);
    void (*rollback)(void *ctx);

    /* CA certificates by name ("root", "system.<name>", ...). */
    custos_err (*authority_put)(void *ctx, const char *name, const uint8_t *der, size_t len,
                                int64_t now);
    custos_err (*authority_get)(void *ctx, uint8_t **out, size_t *out_len, const char *name);
    custos_err (*authority_list)(void *ctx, custos_store_blob_cb cb, void *cb_ctx);

    /* Systems: name -> canonical system.json. */
    custos_err (*system_put)(void *ctx, const char *name, const char *json, int64_t now);
    custos_err (*system_get)(void *ctx, char **out_json, const char *name);
    custos_err (*system_list)(void *ctx, custos_store_blob_cb cb, void *cb_ctx);

    custos_err (*package_put)(void *ctx, const custos_store_package *p);
    custos_err (*package_get)(void *ctx, custos_store_package *out, const char *id);
    custos_err (*package_list)(void *ctx, const char *system, custos_store_blob_cb cb,
                               void *cb_ctx); /* name = package id, data = bootstrap cert */

    custos_err (*request_insert)(void *ctx, const custos_store_request *r);
    custos_err (*request_get)(void *ctx, custos_store_request *out, const char *id);
    custos_err (*request_get_by_digest)(void *ctx, custos_store_request *out,
                                        const uint8_t digest[32]);
    /* Compare-and-set: CUSTOS_ERR_STATE if the row is not in @p expected. */
    custos_err (*request_set_state)(void *ctx, const char *id, custos_state expected,
                                    custos_state next, const char *reason, int64_t now);
    /* Newest first, ordered by (created desc, id asc); @p state 0 for all;
     * @p after NULL for the first page. */
    custos_err (*request_list)(void *ctx, custos_state state, const custos_store_cursor *after,
                               size_t limit, custos_store_request_cb cb, void *cb_ctx);
    /* Requests of @p system with @p serial from a device other than @p device_id. */
    custos_err (*request_count_serial)(void *ctx, size_t *out, const char *system,
                                       const char *serial, const char *device_id);
    /* The newest provisioned request of @p device_id; CUSTOS_ERR_NOT_FOUND if none. */
    custos_err (*request_latest_provisioned)(void *ctx, custos_store_request *out,
                                             const char *device_id);

    custos_err (*cert_insert)(void *ctx, const custos_store_cert *c);
    custos_err (*cert_get)(void *ctx, custos_store_cert *out, const char *serial);
    custos_err (*cert_list_by_request)(void *ctx, const char *request_id, custos_store_cert_cb cb,
                                       void *cb_ctx);

    custos_err (*profile_put)(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                              int64_t now);
    custos_err (*profile_get)(void *ctx, uint8_t **out, size_t *out_len, const char *request_id);

    /* Append-only: the backend refuses UPDATE and DELETE of audit rows. */
    custos_err (*audit_append)(void *ctx, const custos_store_audit *a);
    /* Last entry's seq and hash; seq 0 and a zero hash when empty. */
    custos_err (*audit_last)(void *ctx, int64_t *out_seq, uint8_t out_hash[32]);
    custos_err (*audit_iter)(void *ctx, custos_store_audit_cb cb, void *cb_ctx);
} custos_store_ops;

typedef struct custos_store {
    const custos_store_ops *ops;
    void *ctx;
} custos_store;

/* Open (or with @p create, create) the SQLite store at @p path. */
CUSTOS_NODISCARD custos_err custos_store_sqlite_open(custos_store **out, const char *path,
                                                     int create);
void custos_store_free(custos_store *s);

void custos_store_request_clear(custos_store_request *r);
void custos_store_cert_clear(custos_store_cert *c);
void custos_store_package_clear(custos_store_package *p);

#endif
