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
    char hardware_id[CUSTOS_MAX_HARDWARE_ID_LEN + 1];
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
    uint8_t *cert_der; /* the bootstrap certificate; not loaded by package_query */
    size_t cert_len;
    uint8_t *file; /* the .mcpp; may be NULL (put: not stored; get: never loaded) */
    size_t file_len;
    int has_file; /* filled by package_query and package_get */
} custos_store_package;

typedef struct custos_store_cursor {
    int64_t created;
    char id[CUSTOS_ID_LEN + 1];
} custos_store_cursor;

typedef struct custos_store_user {
    char username[CUSTOS_USERNAME_MAX + 1];
    custos_role role;
    char pw_hash[192]; /* "scrypt$N$r$p$salt$hash" */
    int64_t created;
    int disabled;
} custos_store_user;

/* Sessions and API tokens: one table of operator credentials, keyed by the
 * SHA-256 of their secret (the secret itself is never stored). */
typedef enum custos_store_cred_kind {
    CUSTOS_CRED_SESSION = 1,
    CUSTOS_CRED_TOKEN = 2,
} custos_store_cred_kind;

typedef struct custos_store_cred {
    char id[CUSTOS_ID_LEN + 1];
    custos_store_cred_kind kind;
    uint8_t hash[32];
    char username[CUSTOS_USERNAME_MAX + 1];
    char name[CUSTOS_MAX_NAME_LEN + 1]; /* tokens: the label */
    char csrf[64];                      /* sessions: the CSRF value */
    char origin[64];                    /* where it was made */
    int64_t created;
    int64_t expires;
    int64_t revoked; /* 0: live */
    /* filled by cred_get_by_hash from the owner's row */
    custos_role role;
    int user_disabled;
} custos_store_cred;

typedef struct custos_store_policy {
    int mode; /* custos_policy_mode; 0 when the system has no policy row */
    size_t n_allow;
    size_t n_deny;
    int64_t updated;
} custos_store_policy;

/* Policy lists. */
#define CUSTOS_STORE_ALLOW 1
#define CUSTOS_STORE_DENY 2

typedef struct custos_store_query {
    custos_state state;               /* 0: any */
    const char *system;               /* NULL: any */
    const char *component;            /* NULL: any */
    const char *prefix;               /* NULL: any; else serial or hardware_id starts with it */
    const custos_store_cursor *after; /* NULL: first page */
    size_t limit;
} custos_store_query;

typedef struct custos_store_audit_query {
    const char *actor;
    const char *action;
    const char *object;
    const char *object2; /* also this object (request detail: request and device) */
    int64_t since;       /* 0: any */
    int64_t until;       /* 0: any */
    int64_t before_seq;  /* 0: any; else seq < before_seq */
    size_t limit;
    int oldest_first;
} custos_store_audit_query;

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

/* A gateway (proxy provisioning, schema 3): a provisioned device of a
 * "gateway": true component, keyed by its device id. */
typedef struct custos_store_gateway {
    char device_id[CUSTOS_ID_LEN + 1];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    int enabled;
    int64_t last_seen; /* 0: never called */
    int64_t forwarded;
    int64_t created;
    int64_t updated;
} custos_store_gateway;

typedef int (*custos_store_gateway_cb)(const custos_store_gateway *g, void *ctx);
typedef int (*custos_store_request_cb)(const custos_store_request *r, void *ctx);
typedef int (*custos_store_cert_cb)(const custos_store_cert *c, void *ctx);
typedef int (*custos_store_audit_cb)(const custos_store_audit *a, void *ctx);
typedef int (*custos_store_blob_cb)(const char *name, const uint8_t *data, size_t len, void *ctx);
typedef int (*custos_store_user_cb)(const custos_store_user *u, void *ctx);
typedef int (*custos_store_cred_cb)(const custos_store_cred *c, void *ctx);
typedef int (*custos_store_package_cb)(const custos_store_package *p, void *ctx);

typedef struct custos_store_ops {
    const char *name;
    void (*close)(void *ctx);

    /* Transactions do not nest. rollback is safe without an open transaction. */
    custos_err (*begin)(void *ctx);
    custos_err (*commit)(void *ctx);
    void (*rollback)(void *ctx);
    /* 1 inside a transaction begin() opened. */
    int (*in_tx)(void *ctx);

    /* CA certificates by name ("root", "system.<name>", ...). */
    custos_err (*authority_put)(void *ctx, const char *name, const uint8_t *der, size_t len,
                                int64_t now);
    custos_err (*authority_get)(void *ctx, uint8_t **out, size_t *out_len, const char *name);
    custos_err (*authority_list)(void *ctx, custos_store_blob_cb cb, void *cb_ctx);

    /* Systems: name -> canonical system.json. */
    custos_err (*system_put)(void *ctx, const char *name, const char *json, int64_t now);
    custos_err (*system_get)(void *ctx, char **out_json, const char *name);
    custos_err (*system_list)(void *ctx, custos_store_blob_cb cb, void *cb_ctx);
    /* Replace the definition of an existing system (custos_engine_system_update). */
    custos_err (*system_set)(void *ctx, const char *name, const char *json);

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

    /* ---- schema 2 ---- */

    /* Operators. user_update: @p pw_hash NULL keeps it, @p disabled < 0 keeps it. */
    custos_err (*user_insert)(void *ctx, const custos_store_user *u);
    custos_err (*user_get)(void *ctx, custos_store_user *out, const char *username);
    custos_err (*user_update)(void *ctx, const char *username, const char *pw_hash, int disabled);
    custos_err (*user_list)(void *ctx, custos_store_user_cb cb, void *cb_ctx);

    /* Sessions and tokens. cred_revoke: CUSTOS_ERR_NOT_FOUND for an unknown
     * id; an already revoked one keeps its first revocation time.
     * cred_revoke_user: every live credential of @p kind of @p username. */
    custos_err (*cred_insert)(void *ctx, const custos_store_cred *c);
    custos_err (*cred_get_by_hash)(void *ctx, custos_store_cred *out, const uint8_t hash[32]);
    custos_err (*cred_get)(void *ctx, custos_store_cred *out, const char *id);
    custos_err (*cred_revoke)(void *ctx, const char *id, int64_t now);
    custos_err (*cred_revoke_user)(void *ctx, const char *username, custos_store_cred_kind kind,
                                   int64_t now);
    /* Newest first. */
    custos_err (*cred_list)(void *ctx, custos_store_cred_kind kind, custos_store_cred_cb cb,
                            void *cb_ctx);
    /* Delete the credentials of @p kind that expired before @p before
     * (revoked or not); *out: how many. */
    custos_err (*cred_purge)(void *ctx, size_t *out, custos_store_cred_kind kind, int64_t before);

    /* Auto-approval policies. policy_get of a system without one: mode 0;
     * the list sizes only @p with_counts (they cost a count each).
     * policy_list_set replaces list @p list (CUSTOS_STORE_ALLOW/DENY) of the
     * system (duplicates folded); inside the caller's transaction. */
    custos_err (*policy_get)(void *ctx, custos_store_policy *out, const char *system,
                             int with_counts);
    custos_err (*policy_put)(void *ctx, const char *system, int mode, int64_t now);
    custos_err (*policy_list_set)(void *ctx, const char *system, int list,
                                  const char *const *serials, size_t n);
    custos_err (*policy_has)(void *ctx, int *out, const char *system, int list, const char *serial);
    /* Sorted by serial; data NULL. */
    custos_err (*policy_list_iter)(void *ctx, const char *system, int list, custos_store_blob_cb cb,
                                   void *cb_ctx);

    /* Packages: the stored .mcpp; pages newest first (created, id desc);
     * @p system NULL for all. */
    custos_err (*package_get_file)(void *ctx, uint8_t **out, size_t *out_len, const char *id);
    custos_err (*package_query)(void *ctx, const char *system, const custos_store_cursor *after,
                                size_t limit, custos_store_package_cb cb, void *cb_ctx);

    /* Requests: filtered pages newest first (created desc, id desc), no der;
     * counts per state (out[0] total) from counters the store keeps. */
    custos_err (*request_query)(void *ctx, const custos_store_query *q, custos_store_request_cb cb,
                                void *cb_ctx);
    custos_err (*request_counts)(void *ctx, size_t out[8], const char *system,
                                 const char *component);

    /* Install receipts: one per request. */
    custos_err (*receipt_put)(void *ctx, const char *request_id, const uint8_t *der, size_t len,
                              int64_t now);

    /* Audit entries by filter, newest first unless q->oldest_first. */
    custos_err (*audit_query)(void *ctx, const custos_store_audit_query *q,
                              custos_store_audit_cb cb, void *cb_ctx);

    /* ---- schema 3: gateways ---- */

    /* gateway_put: insert (enabled, never seen) or, for a known device id,
     * update system and serial only. gateway_set_enabled and gateway_seen
     * (last_seen = @p now, forwarded += @p n): CUSTOS_ERR_NOT_FOUND for an
     * unknown device id. gateway_list: by system, serial, device id. */
    custos_err (*gateway_get)(void *ctx, custos_store_gateway *out, const char *device_id);
    custos_err (*gateway_put)(void *ctx, const custos_store_gateway *g);
    custos_err (*gateway_set_enabled)(void *ctx, const char *device_id, int enabled, int64_t now);
    custos_err (*gateway_seen)(void *ctx, const char *device_id, int64_t now, int64_t n);
    custos_err (*gateway_list)(void *ctx, custos_store_gateway_cb cb, void *cb_ctx);
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
