/* The CA engine of custosd: data directory, CA hierarchy, systems, packages,
 * request verification, approval, issuance (with lint), certified profiles,
 * mock device files, the audit trail. No HTTP here; custosd's subcommands and
 * (later) its HTTPS API both call this. */
#ifndef CUSTOS_SERVER_ENGINE_H
#define CUSTOS_SERVER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "custos/error.h"
#include "custos/types.h"

typedef struct custos_engine custos_engine;

/* Device/request states (DESIGN §1). Names: "pending" "approved" "certified"
 * "provisioned" "rejected" "expired" "revoked". */
typedef enum custos_state {
    CUSTOS_STATE_PENDING = 1,
    CUSTOS_STATE_APPROVED,
    CUSTOS_STATE_CERTIFIED,
    CUSTOS_STATE_PROVISIONED,
    CUSTOS_STATE_REJECTED,
    CUSTOS_STATE_EXPIRED,
    CUSTOS_STATE_REVOKED,
} custos_state;

const char *custos_state_name(custos_state s);
custos_state custos_state_from_name(const char *name); /* 0 if unknown */

/* Create a new data directory (must not exist or be empty): store (SQLite,
 * WAL), root CA, bootstrap CA, package-signing and profile-signing keys, TLS
 * server certificate, mock root; key files encrypted at rest (AES-256 PKCS#8
 * under a master key in DIR/master.key, 0600), all 0600. */
CUSTOS_NODISCARD custos_err custos_engine_init(const char *dir);

CUSTOS_NODISCARD custos_err custos_engine_open(custos_engine **out, const char *dir);
void custos_engine_free(custos_engine *e);

/* Override the engine's clock (unix seconds) for tests and services; @p now
 * NULL restores time(NULL). */
void custos_engine_set_clock(custos_engine *e, int64_t (*now)(void *ctx), void *ctx);

/* Who did it, for the audit trail ("cli:root", "user:alice"), and from where. */
typedef struct custos_actor {
    const char *who;
    const char *from;
} custos_actor;

/* Define a system from system.json (docs/formats.md): creates its issuing CA.
 * CUSTOS_ERR_EXISTS if the name is taken. */
CUSTOS_NODISCARD custos_err custos_engine_system_create(custos_engine *e, const uint8_t *json,
                                                        size_t len, const custos_actor *actor);

/*
 * Edit system @p name with a whole new system.json (same name). Components
 * may be added; validity, subject patterns, services and names may change;
 * an existing component keeps its key templates (name, algorithm, usage,
 * same set): devices in the field hold keys made from them and packages
 * already handed out carry them. Audited "system.update".
 */
CUSTOS_NODISCARD custos_err custos_engine_system_update(custos_engine *e, const char *name,
                                                        const uint8_t *json, size_t len,
                                                        const custos_actor *actor);

/* Build a provisioning package for @p system: bootstrap key + certificate
 * valid @p valid_days, signed by the package-signing key. *out malloc'd. */
CUSTOS_NODISCARD custos_err custos_engine_package_create(uint8_t **out, size_t *out_len,
                                                         custos_engine *e, const char *system,
                                                         const char *passphrase,
                                                         size_t passphrase_len, unsigned valid_days,
                                                         const custos_actor *actor);

typedef struct custos_request_summary {
    char request_id[CUSTOS_ID_LEN + 1];
    char device_id[CUSTOS_ID_LEN + 1];
    custos_state state;
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    char model[CUSTOS_MAX_MODEL_LEN + 1];
    char firmware[CUSTOS_MAX_FIRMWARE_LEN + 1];
    char kind[16];        /* "initial" | "reprovision" */
    char via[16];         /* "import" | "connected" | "upload" | "gateway" */
    int duplicate_serial; /* another device of the system has this serial */
    int64_t created;
    int64_t updated;
    int64_t expires;                            /* notAfter of the signer */
    char reason[CUSTOS_MAX_META_VALUE_LEN + 1]; /* rejection reason */
    /* via "gateway": the gateway device it came through, and its serial */
    char gateway_id[CUSTOS_ID_LEN + 1];
    char gateway_serial[CUSTOS_MAX_SERIAL_LEN + 1];
} custos_request_summary;

/* Verify a .mcpr fully (CMS, signer chain and expiry, proof of possession,
 * template conformance against the stored system, limits), flag duplicate
 * serials, store it as pending. An identical resubmission returns the
 * existing record (*out_created = 0). Nothing is stored on failure. */
CUSTOS_NODISCARD custos_err custos_engine_request_import(custos_request_summary *out,
                                                         int *out_created, custos_engine *e,
                                                         const uint8_t *der, size_t len,
                                                         const char *via,
                                                         const custos_actor *actor);

/* pending -> approved -> (issue + lint + profile) certified. */
CUSTOS_NODISCARD custos_err custos_engine_request_approve(custos_request_summary *out,
                                                          custos_engine *e, const char *id,
                                                          const custos_actor *actor);
CUSTOS_NODISCARD custos_err custos_engine_request_reject(custos_request_summary *out,
                                                         custos_engine *e, const char *id,
                                                         const char *reason,
                                                         const custos_actor *actor);
CUSTOS_NODISCARD custos_err custos_engine_request_get(custos_request_summary *out, custos_engine *e,
                                                      const char *id);

/* The .mccp of a certified/provisioned request. *out malloc'd. */
CUSTOS_NODISCARD custos_err custos_engine_profile_export(uint8_t **out, size_t *out_len,
                                                         custos_engine *e, const char *id);

/* certified -> provisioned (disconnected: "Complete provisioning"). */
CUSTOS_NODISCARD custos_err custos_engine_device_complete(custos_request_summary *out,
                                                          custos_engine *e, const char *id,
                                                          const custos_actor *actor);

/* List requests, newest first; @p state 0 for all. @p cb returns nonzero to stop. */
typedef int (*custos_request_cb)(const custos_request_summary *r, void *ctx);
CUSTOS_NODISCARD custos_err custos_engine_request_list(custos_engine *e, custos_state state,
                                                       custos_request_cb cb, void *ctx);

/* Mock device files for a component into @p out_dir (identity.mcpi with
 * keys in the clear marked mock, profile.mccp under the mock root). */
CUSTOS_NODISCARD custos_err custos_engine_mock_create(custos_engine *e, const char *system,
                                                      const char *component, const char *serial,
                                                      const char *out_dir,
                                                      const custos_actor *actor);

/* Recompute the audit hash chain. *out_count entries checked; on a break,
 * CUSTOS_ERR_MALFORMED naming the first bad entry. */
CUSTOS_NODISCARD custos_err custos_engine_audit_verify(size_t *out_count, custos_engine *e);

/* Mark pending/approved requests whose signer has expired as expired. */
CUSTOS_NODISCARD custos_err custos_engine_expire(size_t *out_count, custos_engine *e);

/* ==== custosd serve: concurrency ========================================== *
 *
 * An engine is used by one thread at a time. custosd serve gives each worker
 * thread its own engine on the same data directory, each with its own SQLite
 * connection (WAL; every write in one BEGIN IMMEDIATE transaction; a busy
 * timeout). What an engine caches that another can change is re-read: a
 * system another engine created is loaded on the first lookup that misses,
 * policies are read from the store on every submission. */

/* A second engine on @p parent's data directory that shares its immutable
 * loaded state (CA certificates and keys, the verified trust anchors and the
 * signer-chain cache; all reference counted, thread-safe to share) and opens
 * its own store connection: no key file is decrypted again. @p parent may be
 * freed before or after the child (nothing is borrowed). Do not call it while
 * another thread uses @p parent. */
CUSTOS_NODISCARD custos_err custos_engine_open_shared(custos_engine **out,
                                                      const custos_engine *parent);

/* custosd init with options: extra names in the TLS server certificate and
 * the first operator. */
typedef struct custos_init_options {
    unsigned version; /* 1 */
    /* Extra subjectAltNames of the TLS server certificate besides localhost,
     * 127.0.0.1 and ::1: DNS names or IPv4/IPv6 addresses (at most 16). */
    const char *const *server_names;
    size_t n_server_names;
    /* The first operator (role admin) is created when this is not NULL: its
     * generated password (>= 20 characters) is written here, shown once. */
    char *admin_password;
    size_t admin_password_cap; /* >= CUSTOS_PASSWORD_GEN_LEN + 1 */
} custos_init_options;
#define CUSTOS_INIT_OPTIONS_INIT                                                                   \
    {                                                                                              \
        1, NULL, 0, NULL, 0                                                                        \
    }
#define CUSTOS_INIT_MAX_SERVER_NAMES 16
#define CUSTOS_FIRST_ADMIN "admin"

/* custos_engine_init() plus @p opts (NULL: as custos_engine_init). */
CUSTOS_NODISCARD custos_err custos_engine_init_ex(const char *dir, const custos_init_options *opts);

/* ==== operators: users, sessions, API tokens ============================== */

typedef enum custos_role {
    CUSTOS_ROLE_ADMIN = 1,
    CUSTOS_ROLE_APPROVER,
    CUSTOS_ROLE_TECHNICIAN,
    CUSTOS_ROLE_AUDITOR,
} custos_role;

/* "admin" "approver" "technician" "auditor"; "unknown" for anything else. */
const char *custos_role_name(custos_role r);
custos_role custos_role_from_name(const char *name); /* 0 if unknown */

#define CUSTOS_USERNAME_MAX 64     /* [a-z0-9._-]{1,64} */
#define CUSTOS_PASSWORD_MIN 12     /* bytes, for a password an operator chooses */
#define CUSTOS_PASSWORD_MAX 1024   /* bytes */
#define CUSTOS_PASSWORD_GEN_LEN 32 /* generated: base64url of 24 random bytes */
#define CUSTOS_SECRET_TEXT_MAX 64  /* a session or token secret as text, + NUL */
#define CUSTOS_SESSION_TTL (12 * 3600)
#define CUSTOS_TOKEN_MAX_DAYS 3650

/* Who an operator credential belongs to (a session or an API token). */
typedef struct custos_principal {
    char username[CUSTOS_USERNAME_MAX + 1];
    custos_role role;
    char kind[16];                         /* "session" | "token" */
    char credential_id[CUSTOS_ID_LEN + 1]; /* session id or token id (never the secret) */
    char csrf[64]; /* sessions only: the expected X-Custos-CSRF value; "" for tokens */
    int64_t expires;
} custos_principal;

/* The audit actor of @p p: "user:NAME" for a session, "token:ID" for a token. */
void custos_principal_who(char out[CUSTOS_USERNAME_MAX + 8], const custos_principal *p);

typedef struct custos_user_info {
    char username[CUSTOS_USERNAME_MAX + 1];
    custos_role role;
    int64_t created;
    int disabled;
} custos_user_info;
typedef int (*custos_user_cb)(const custos_user_info *u, void *ctx);

/* Create an operator. @p password NULL: one is generated (base64url of 24
 * random bytes, CUSTOS_PASSWORD_GEN_LEN characters) and written to
 * @p out_password (capacity @p cap; may be NULL when @p password is given).
 * Passwords are stored as "scrypt$N$r$p$salt$hash" (N=2^15, r=8, p=1,
 * 16-byte salt, 32-byte hash, base64url). CUSTOS_ERR_ARG for a bad username
 * or role, CUSTOS_ERR_LIMIT for a password shorter than CUSTOS_PASSWORD_MIN
 * or longer than CUSTOS_PASSWORD_MAX, CUSTOS_ERR_EXISTS for a taken name.
 * Audited as "user.create". */
CUSTOS_NODISCARD custos_err custos_engine_user_create(custos_engine *e, const char *username,
                                                      custos_role role, const char *password,
                                                      char *out_password, size_t cap,
                                                      const custos_actor *actor);
/* Set a new password (NULL: generate one into @p out_password). Ends every
 * session of the user. Audited as "user.password". */
CUSTOS_NODISCARD custos_err custos_engine_user_set_password(custos_engine *e, const char *username,
                                                            const char *password,
                                                            char *out_password, size_t cap,
                                                            const custos_actor *actor);
/* Disable (1) or enable (0) an operator: a disabled operator's sessions and
 * tokens stop working at once. Audited as "user.disable" / "user.enable". */
CUSTOS_NODISCARD custos_err custos_engine_user_set_disabled(custos_engine *e, const char *username,
                                                            int disabled,
                                                            const custos_actor *actor);
CUSTOS_NODISCARD custos_err custos_engine_user_get(custos_user_info *out, custos_engine *e,
                                                   const char *username);
/* Every operator, by username. */
CUSTOS_NODISCARD custos_err custos_engine_user_list(custos_engine *e, custos_user_cb cb, void *ctx);

/* Sign in with a password: a new session valid @p ttl_seconds (0: 12 hours;
 * at most 30 days). The session secret (32 random bytes, base64url, 43
 * characters) goes to @p out_token (capacity @p cap >= CUSTOS_SECRET_TEXT_MAX)
 * and is shown only here: the store keeps SHA-256 of it. Unknown user,
 * disabled user and wrong password are all CUSTOS_ERR_AUTH with the same
 * message and the same cost (scrypt runs either way). Audited as
 * "session.login" (and failures as "session.login_failed"), with @p from. */
CUSTOS_NODISCARD custos_err custos_engine_login(custos_principal *out, char *out_token, size_t cap,
                                                custos_engine *e, const char *username,
                                                const char *password, const char *from,
                                                int64_t ttl_seconds);
/* The principal of a session secret; CUSTOS_ERR_AUTH if unknown, expired,
 * ended, or its user is disabled. One indexed lookup, no scrypt. */
CUSTOS_NODISCARD custos_err custos_engine_session_check(custos_principal *out, custos_engine *e,
                                                        const char *token);
/* Sign out: the session ends (CUSTOS_ERR_AUTH if it was not valid).
 * Audited as "session.logout". */
CUSTOS_NODISCARD custos_err custos_engine_session_end(custos_engine *e, const char *token,
                                                      const char *from);
/* Housekeeping (the service's sweep): delete the sessions that expired more
 * than a day ago, ended or not; *out: how many. API tokens are kept (an
 * expired or revoked token stays listed). Not audited: the sessions were
 * already unusable. */
#define CUSTOS_SESSION_PURGE_AFTER 86400
CUSTOS_NODISCARD custos_err custos_engine_sessions_purge(size_t *out, custos_engine *e);

typedef struct custos_token_info {
    char token_id[CUSTOS_ID_LEN + 1];
    char name[CUSTOS_MAX_NAME_LEN + 1];
    char username[CUSTOS_USERNAME_MAX + 1];
    int64_t created;
    int64_t expires;
    int64_t revoked; /* when, or 0 */
} custos_token_info;
typedef int (*custos_token_cb)(const custos_token_info *t, void *ctx);

/* A long-lived API token for @p username, valid @p valid_days
 * (1..CUSTOS_TOKEN_MAX_DAYS): "cst_" + base64url(32 random bytes) (47
 * characters) into @p out_token (cap >= CUSTOS_SECRET_TEXT_MAX), its id into
 * @p out_id; the store keeps SHA-256 of the text. @p name: a label,
 * custos_name_valid. Audited as "token.create". */
CUSTOS_NODISCARD custos_err custos_engine_token_create(char out_id[CUSTOS_ID_LEN + 1],
                                                       char *out_token, size_t cap,
                                                       custos_engine *e, const char *username,
                                                       const char *name, unsigned valid_days,
                                                       const custos_actor *actor);
/* The principal of an API token; CUSTOS_ERR_AUTH if unknown, expired,
 * revoked, or its user is disabled. */
CUSTOS_NODISCARD custos_err custos_engine_token_check(custos_principal *out, custos_engine *e,
                                                      const char *token);
/* Revoke by id (CUSTOS_ERR_NOT_FOUND if unknown; revoking twice is OK).
 * Audited as "token.revoke". */
CUSTOS_NODISCARD custos_err custos_engine_token_revoke(custos_engine *e, const char *token_id,
                                                       const custos_actor *actor);
/* Every token (never the secret), newest first. */
CUSTOS_NODISCARD custos_err custos_engine_token_list(custos_engine *e, custos_token_cb cb,
                                                     void *ctx);

/* ==== auto-approval policies ============================================== */

typedef enum custos_policy_mode {
    CUSTOS_POLICY_MANUAL = 1, /* every request waits for a person (default) */
    CUSTOS_POLICY_PACKAGE,    /* approve initial requests signed by a valid package of the
                                 system, and reprovisioning requests of a provisioned device */
    CUSTOS_POLICY_ALLOW_LIST, /* approve only serials on the system's allow-list */
} custos_policy_mode;

/* "manual" "package" "allow_list"; "unknown" otherwise. */
const char *custos_policy_mode_name(custos_policy_mode m);
custos_policy_mode custos_policy_mode_from_name(const char *name); /* 0 if unknown */

#define CUSTOS_POLICY_MAX_SERIALS 100000 /* per list */

/* Set the policy of @p system in one transaction. @p allow / @p deny NULL:
 * keep that list as it is; not NULL: replace it by these @p n_allow /
 * @p n_deny serials (0 empties it; duplicates are folded). Serials must be
 * custos_serial_valid (CUSTOS_ERR_ARG naming the index), at most
 * CUSTOS_POLICY_MAX_SERIALS per list (CUSTOS_ERR_LIMIT). Whatever the mode,
 * a serial on the deny-list and a duplicate serial always wait for a person.
 * Audited as "policy.set" with the mode and list sizes. */
CUSTOS_NODISCARD custos_err custos_engine_policy_set(custos_engine *e, const char *system,
                                                     custos_policy_mode mode,
                                                     const char *const *allow, size_t n_allow,
                                                     const char *const *deny, size_t n_deny,
                                                     const custos_actor *actor);
/* {"system", "mode", "allow_count", "deny_count"} plus, with
 * @p include_lists, "allow" and "deny" (sorted arrays). *out owned by the
 * caller (json_decref). CUSTOS_ERR_NOT_FOUND for an unknown system. */
CUSTOS_NODISCARD custos_err custos_engine_policy_get(json_t **out, custos_engine *e,
                                                     const char *system, int include_lists);

/* Import (exactly as custos_engine_request_import) and, when the request is
 * new and the system's policy approves it, approve it at once as actor
 * {"policy:<mode>", actor->from}. *out is the final state (certified when
 * auto-approved). A failed auto-approval leaves the request pending, is
 * recorded in the audit trail ("policy.approve_failed") and is not an error:
 * the import succeeded. */
CUSTOS_NODISCARD custos_err custos_engine_request_submit(custos_request_summary *out,
                                                         int *out_created, custos_engine *e,
                                                         const uint8_t *der, size_t len,
                                                         const char *via,
                                                         const custos_actor *actor);

/* ==== install receipts ==================================================== */

/* A device's install receipt for request @p request_id (connected mode):
 * certified -> provisioned (audit "device.provisioned", via "receipt"), the
 * receipt kept. Checks: it decodes and its signature verifies
 * (CUSTOS_ERR_MALFORMED / SIGNATURE), request_id and device_id are this
 * request's, the signer certificate is byte for byte one issued for this
 * request, profile_sha256 is SHA-256 of the stored profile (all
 * CUSTOS_ERR_MISMATCH). Not certified: CUSTOS_ERR_STATE, except already
 * provisioned (OK, idempotent). */
CUSTOS_NODISCARD custos_err custos_engine_receipt_accept(custos_request_summary *out,
                                                         custos_engine *e, const char *request_id,
                                                         const uint8_t *der, size_t len,
                                                         const custos_actor *actor);

/* ==== queries for the operator API ======================================== */

#define CUSTOS_CURSOR_MAX 128 /* capacity for any next_cursor below */
#define CUSTOS_LIST_MAX 500

/* The request as the API shows it everywhere (docs/api.md): RFC 3339 times,
 * state name, duplicate_serial as a bool, reason always present. */
CUSTOS_NODISCARD custos_err custos_request_summary_json(json_t **out,
                                                        const custos_request_summary *r);

typedef struct custos_request_filter {
    custos_state state;    /* 0: any */
    const char *system;    /* NULL: any */
    const char *component; /* NULL: any (needs system to be fast) */
    const char *q;         /* NULL: any; else a prefix of the serial or the hardware id */
    size_t limit;          /* 1..CUSTOS_LIST_MAX; 0: 50 */
    const char *cursor;    /* NULL: first page; else a next_cursor of the same filter */
} custos_request_filter;
#define CUSTOS_REQUEST_FILTER_INIT                                                                 \
    {                                                                                              \
        (custos_state)0, NULL, NULL, NULL, 50, NULL                                                \
    }

/* One page of requests, newest first (created, then id, descending), filtered
 * in the store through its indexes. @p next_cursor (capacity @p cap >=
 * CUSTOS_CURSOR_MAX) gets the opaque cursor of the next page, "" on the last.
 * CUSTOS_ERR_MALFORMED (field "cursor") for a cursor this did not make;
 * CUSTOS_ERR_ARG for a bad limit or filter value. */
CUSTOS_NODISCARD custos_err custos_engine_request_query(custos_engine *e,
                                                        const custos_request_filter *f,
                                                        custos_request_cb cb, void *ctx,
                                                        char *next_cursor, size_t cap);
/* Requests per state: out[state] for each custos_state, out[0] the total;
 * @p system / @p component NULL for all. Kept by the store as counters, so
 * constant time whatever the number of requests. */
CUSTOS_NODISCARD custos_err custos_engine_request_counts(size_t out[8], custos_engine *e,
                                                         const char *system, const char *component);
/* The request as custos_request_summary_json plus "hardware_id",
 * "identity" {serial, hardware_id, model, firmware, manufacturer{}},
 * "metadata" {}, "keys" [{name, alg, usage[]}], "signer" {subject, serial,
 * not_after, kind "bootstrap"|"device"}, "certificates" [{template, serial,
 * subject, not_before, not_after, sha256}], "history" [audit entries whose
 * object is this request or its device, oldest first, as custos_audit_entry
 * JSON]. */
CUSTOS_NODISCARD custos_err custos_engine_request_detail(json_t **out, custos_engine *e,
                                                         const char *id);

/* Systems: @p cb gets the name and its canonical system.json, by name. */
typedef int (*custos_system_cb)(const char *name, const char *json, void *ctx);
CUSTOS_NODISCARD custos_err custos_engine_system_list(custos_engine *e, custos_system_cb cb,
                                                      void *ctx);
/* The canonical system.json of @p name (malloc'd). CUSTOS_ERR_NOT_FOUND. */
CUSTOS_NODISCARD custos_err custos_engine_system_get(char **out_json, custos_engine *e,
                                                     const char *name);

typedef struct custos_package_info {
    char package_id[CUSTOS_ID_LEN + 1];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    int64_t created;
    int64_t expires;
    int has_file; /* the .mcpp is stored (packages made by this version) */
} custos_package_info;
typedef int (*custos_package_cb)(const custos_package_info *p, void *ctx);

/* custos_engine_package_create, also telling what was made. The .mcpp
 * (passphrase-protected) is stored with the record for later download. */
CUSTOS_NODISCARD custos_err custos_engine_package_create_ex(
    custos_package_info *out_info, uint8_t **out, size_t *out_len, custos_engine *e,
    const char *system, const char *passphrase, size_t passphrase_len, unsigned valid_days,
    const custos_actor *actor);
/* One page of packages, newest first; @p system NULL for all; @p limit
 * 1..CUSTOS_LIST_MAX (0: 50); cursors as for request_query. */
CUSTOS_NODISCARD custos_err custos_engine_package_list(custos_engine *e, const char *system,
                                                       size_t limit, const char *cursor,
                                                       custos_package_cb cb, void *ctx,
                                                       char *next_cursor, size_t cap);
/* The stored .mcpp of package @p id (malloc'd). CUSTOS_ERR_NOT_FOUND for an
 * unknown package or one made before packages were stored. */
CUSTOS_NODISCARD custos_err custos_engine_package_get_file(uint8_t **out, size_t *out_len,
                                                           custos_engine *e, const char *id);

/* The audit trail for the API. */
typedef struct custos_audit_entry {
    int64_t seq;
    int64_t time;
    const char *actor;
    const char *from;
    const char *action;
    const char *object;
    const char *detail; /* JSON object text */
} custos_audit_entry;
typedef int (*custos_audit_cb)(const custos_audit_entry *a, void *ctx);

typedef struct custos_audit_filter {
    const char *actor;  /* NULL: any; else exact */
    const char *action; /* NULL: any; else exact */
    const char *object; /* NULL: any; else exact */
    int64_t since;      /* 0: any; else time >= since */
    int64_t until;      /* 0: any; else time < until */
    size_t limit;       /* 1..CUSTOS_LIST_MAX; 0: 50 */
    const char *cursor; /* NULL: newest first; else a next_cursor */
} custos_audit_filter;
#define CUSTOS_AUDIT_FILTER_INIT                                                                   \
    {                                                                                              \
        NULL, NULL, NULL, 0, 0, 50, NULL                                                           \
    }

/* {"seq", "time" (RFC 3339), "actor", "from", "action", "object", "detail" {}}. */
CUSTOS_NODISCARD custos_err custos_audit_entry_json(json_t **out, const custos_audit_entry *a);
/* One page of audit entries, newest first. Borrowed strings live for the call. */
CUSTOS_NODISCARD custos_err custos_engine_audit_list(custos_engine *e, const custos_audit_filter *f,
                                                     custos_audit_cb cb, void *ctx,
                                                     char *next_cursor, size_t cap);

/* ==== TLS for custosd serve ============================================== */

/* A server SSL_CTX (caller frees): TLS 1.2 minimum; the TLS server
 * certificate made by init (ECDSA P-256) with its key from the keystore and
 * its chain below the root; groups X25519:P-256; client certificates
 * requested but optional (SSL_VERIFY_PEER), verified against the Root of
 * Trust only (device certificates chain to it through their system's issuing
 * CA, which the client sends; the mock root is not trusted); a server-side
 * session cache and session tickets, so resumed handshakes are cheap. One
 * SSL_CTX serves every worker thread. */
CUSTOS_NODISCARD custos_err custos_engine_ssl_ctx(SSL_CTX **out, custos_engine *e);

/* ==== gateways (proxy provisioning) ======================================== *
 *
 * A gateway is a provisioned device of a "gateway": true component. It calls
 * /gateway/v1 over mutual TLS with its own device certificate and forwards
 * the requests and receipts of the devices behind it; every one of those is
 * verified on its own signatures exactly as if the device had sent it. */

typedef struct custos_gateway_info {
    char device_id[CUSTOS_ID_LEN + 1];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    int enabled;
    int64_t last_seen; /* the last authorized call; 0: never */
    int64_t forwarded; /* requests and receipts it forwarded that were accepted */
} custos_gateway_info;
typedef int (*custos_gateway_cb)(const custos_gateway_info *g, void *ctx);

/* Authorize a call to /gateway/v1. @p cert_der: the client certificate the
 * TLS handshake verified (NULL: none). OK when it is byte for byte a
 * certificate this store issued for a tls-client template, unexpired, of the
 * latest provisioned request of its device, the device's component is
 * "gateway": true, and the gateway is enabled: *out is the gateway (listed
 * now if it was not). CUSTOS_ERR_FORBIDDEN otherwise, with *out_disabled = 1
 * when it is a gateway an admin disabled. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_auth(custos_gateway_info *out, int *out_disabled,
                                                       custos_engine *e, const uint8_t *cert_der,
                                                       size_t len);
/* custos_engine_request_submit of a .mcpr forwarded by @p gw: via "gateway",
 * the gateway recorded with the request and in its audit entry; a request of
 * another system than the gateway's is CUSTOS_ERR_FORBIDDEN (field
 * "system") and nothing is stored. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_submit(custos_request_summary *out,
                                                         int *out_created, custos_engine *e,
                                                         const custos_gateway_info *gw,
                                                         const uint8_t *der, size_t len,
                                                         const custos_actor *actor);
/* custos_engine_request_get, for a request of @p gw's system only: any other
 * is CUSTOS_ERR_NOT_FOUND, as if there were none. A pending or approved
 * request whose signer has expired is shown expired. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_request(custos_request_summary *out,
                                                          custos_engine *e,
                                                          const custos_gateway_info *gw,
                                                          const char *request_id);
/* custos_engine_receipt_accept of a receipt forwarded by @p gw, for the
 * request named inside it (CUSTOS_ERR_NOT_FOUND when that request is not of
 * the gateway's system). */
CUSTOS_NODISCARD custos_err custos_engine_gateway_receipt(custos_request_summary *out,
                                                          custos_engine *e,
                                                          const custos_gateway_info *gw,
                                                          const uint8_t *der, size_t len,
                                                          const custos_actor *actor);
/* After an authorized call: last_seen = now, forwarded += @p forwarded. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_seen(custos_engine *e,
                                                       const custos_gateway_info *gw,
                                                       unsigned forwarded);
/* Every gateway, by system and serial. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_list(custos_engine *e, custos_gateway_cb cb,
                                                       void *ctx);
/* Disable (0) or enable (1) gateway @p device_id: a disabled gateway's calls
 * are refused from its next call on. CUSTOS_ERR_NOT_FOUND for a device that
 * is not a gateway. Audited "gateway.disabled" / "gateway.enabled". */
CUSTOS_NODISCARD custos_err custos_engine_gateway_set_enabled(custos_gateway_info *out,
                                                              custos_engine *e,
                                                              const char *device_id, int enabled,
                                                              const custos_actor *actor);

#endif
