/* Internals of the CA engine shared by the server/engine and server/ca sources. */
#ifndef CUSTOS_SERVER_ENGINE_INT_H
#define CUSTOS_SERVER_ENGINE_INT_H

#include <limits.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "ca/keystore.h"
#include "engine.h"
#include "internal/format.h"
#include "internal/util.h"
#include "store/store.h"

#define CUSTOS_ENGINE_DB "custos.db"

/* Requests verified by import, kept decoded for the approve that usually
 * follows in the same process (policy auto-approval, a busy approver):
 * parsing CMS and certificates costs OpenSSL 3.0 more than the signatures. */
#define ENGINE_DOC_CACHE 64
typedef struct engine_doc_slot {
    uint8_t digest[32];
    custos_request_doc *doc;
} engine_doc_slot;

typedef struct engine_system {
    custos_system_def *def; /* parsed once, again when edited */
    X509 *ca;               /* its issuing CA */
    EVP_PKEY *key;
    char *json;             /* the stored system.json def was parsed from */
    /* Definitions replaced by an edit, kept until the engine closes: a caller
     * may still hold one from earlier in the same call. */
    custos_system_def **retired;
    size_t n_retired;
} engine_system;

/* What engines opened from one another share (custos_engine_open_shared):
 * the signer-chain cache, verified against the trust store they also share.
 * Reference counted; the cache and X509_STORE are thread-safe. */
typedef struct engine_shared engine_shared;

struct custos_engine {
    char dir[PATH_MAX];
    custos_store *st;
    custos_keystore *ks;
    engine_shared *shared;
    X509 *root;
    EVP_PKEY *root_key;
    X509 *bootstrap_ca;
    EVP_PKEY *bootstrap_key;
    X509 *pkg_cert;
    EVP_PKEY *pkg_key;
    X509 *prof_cert;
    EVP_PKEY *prof_key;
    X509 *mock_root;
    EVP_PKEY *mock_root_key;
    X509 *mock_prof_cert;
    EVP_PKEY *mock_prof_key;
    /* Every certificate and key above is a reference this engine holds. */
    X509_STORE *trust;               /* the root + verified CAs as anchors (shared) */
    custos_chain_cache *signers;     /* request signer chains verified against trust (shared) */
    STACK_OF(X509) *bootstrap_chain; /* [bootstrap CA] */
    /* Systems loaded so far: another engine may create more at any time, so
     * a lookup that misses asks the store (custos_engine_system). Entries
     * never move (an array of pointers) and are never removed. */
    engine_system **systems;
    size_t n_systems;
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
    uint8_t audit_key[32]; /* HMAC key of the audit chain (from the master key) */
    engine_doc_slot doc_cache[ENGINE_DOC_CACHE];
    size_t doc_cache_next;
};

int64_t custos_engine_now(const custos_engine *e);
/* DIR/custos.db, or TOO_LARGE when the path does not fit. */
CUSTOS_NODISCARD custos_err custos_engine_db_path(char *out, size_t cap, const char *dir);
/* The system @p name, loaded from the store when this engine has not seen
 * it yet; NULL (with the error set: CUSTOS_ERR_NOT_FOUND, or the load's
 * failure) when there is none. */
const engine_system *custos_engine_system(custos_engine *e, const char *name);
/* Re-parse an edited system's stored @p json into @p s (engine_system.c). */
custos_err engine_system_refresh(engine_system *s, const char *json);

/* base64url without padding of @p in into @p out (capacity @p cap, NUL
 * included); CUSTOS_ERR_TOO_LARGE when it does not fit. */
CUSTOS_NODISCARD custos_err custos_engine_b64url(char *out, size_t cap, const uint8_t *in,
                                                 size_t len);
/* Decode base64url without padding; CUSTOS_ERR_MALFORMED naming @p field. */
CUSTOS_NODISCARD custos_err custos_engine_b64url_decode(uint8_t *out, size_t cap, size_t *out_len,
                                                        const char *in, const char *field);

/* Enum names held in a table indexed @p first..@p last (entries below @p first
 * unused): the name of @p i, or "unknown"; the index of @p name, or 0. */
const char *custos_engine_name_of(const char *const *names, int first, int last, int i);
int custos_engine_name_find(const char *const *names, int first, int last, const char *name);

/* The opaque list cursor for (created, id) and back. */
CUSTOS_NODISCARD custos_err custos_engine_cursor_encode(char *out, size_t cap, int64_t created,
                                                        const char *id);
CUSTOS_NODISCARD custos_err custos_engine_cursor_decode(custos_store_cursor *out,
                                                        const char *cursor);

/* Store transactions for the engine sources. */
CUSTOS_NODISCARD custos_err custos_engine_tx_begin(custos_engine *e, int *in_tx);
CUSTOS_NODISCARD custos_err custos_engine_tx_commit(custos_engine *e, int *in_tx);
void custos_engine_tx_end(custos_engine *e, int *in_tx);
/* Audit through the engine's store and clock. */
CUSTOS_NODISCARD custos_err custos_engine_audit(custos_engine *e, const custos_actor *actor,
                                                const char *action, const char *object,
                                                const json_t *detail);

/* server/ca/hierarchy.c */
/* @p tls_san: the TLS server certificate's subjectAltName (OpenSSL config
 * syntax), NULL for CUSTOS_CA_TLS_SAN_DEFAULT. */
CUSTOS_NODISCARD custos_err custos_ca_hierarchy_create(custos_store *st, custos_keystore *ks,
                                                       const char *dir, const char *tls_san,
                                                       int64_t now);
CUSTOS_NODISCARD custos_err custos_ca_system_create(X509 **out_cert, EVP_PKEY **out_key,
                                                    const char *system, X509 *root,
                                                    EVP_PKEY *root_key, int64_t now);
CUSTOS_NODISCARD custos_err custos_ca_bootstrap_cert(X509 **out, EVP_PKEY *key, const char *system,
                                                     const char *package_id, unsigned valid_days,
                                                     X509 *ca, EVP_PKEY *ca_key, int64_t now);

/* server/engine_approve.c: issue + lint every certificate of a request; on
 * success *out_certs holds n certificates (caller frees). A tls-server
 * template's certificate names the hosts of @p services->gateways in its
 * subjectAltName. */
CUSTOS_NODISCARD custos_err
custos_engine_issue_all(X509 *out_certs[CUSTOS_MAX_TEMPLATES], const custos_component_def *comp,
                        EVP_PKEY *const pubs[CUSTOS_MAX_TEMPLATES], const X509_PUBKEY *const *spkis,
                        const char *system, const custos_services *services, const char *serial,
                        X509 *ca, EVP_PKEY *ca_key, int64_t now, int mock);

/* server/engine_request.c: import with auto-approval in the same
 * transaction (custos_engine_request_submit). decide() is asked, before
 * anything is written, whether the policy approves @p r (duplicate_serial
 * read outside the transaction) and sets approver; on approval the
 * certificates and profile are issued first, then the request, its
 * approval, certificates, profile and audit entries are stored in one
 * transaction. Results: certified (all of it stored); failed/failure
 * (issuance failed: the request was stored alone, pending). Neither: the
 * request was stored pending (or was already stored, or the transaction
 * found a duplicate serial) and the caller applies the policy as after a
 * plain import. a == NULL: custos_engine_request_import(). */
typedef struct engine_auto engine_auto;
struct engine_auto {
    custos_err (*decide)(int *approve, engine_auto *a, custos_engine *e,
                         const custos_request_summary *r);
    void *ctx;
    const custos_actor *approver;
    int certified;
    custos_err failed;
    custos_error failure;
    /* via "gateway": the gateway it came through (engine_gateway.c); the
     * request must be of its system (CUSTOS_ERR_FORBIDDEN, field "system"). */
    const custos_gateway_info *gateway;
};
CUSTOS_NODISCARD custos_err custos_engine_request_import_auto(
    custos_request_summary *out, int *out_created, custos_engine *e, const uint8_t *der, size_t len,
    const char *via, const custos_actor *actor, engine_auto *a);

/* server/engine_policy.c: custos_engine_request_submit of a request that
 * came through gateway @p gw (NULL: it did not). */
CUSTOS_NODISCARD custos_err custos_engine_request_submit_gw(
    custos_request_summary *out, int *out_created, custos_engine *e, const uint8_t *der, size_t len,
    const char *via, const custos_actor *actor, const custos_gateway_info *gw);

/* server/engine_gateway.c */
/* What system create (and edit) require of gateways and tls-server
 * templates: a "gateway": true component has a tls-client and a tls-server
 * template; a tls-server template needs services.gateways, each with a usable
 * host; when none of those hosts is a DNS name, a tls-server template's
 * subject has no CN (a client matching host names would read it).
 * CUSTOS_ERR_MALFORMED naming the field. */
CUSTOS_NODISCARD custos_err custos_engine_system_gateway_check(const custos_system_def *def);
/* Inside the caller's transaction, when request @p r has just become
 * provisioned: a device of a gateway component is listed as a gateway. */
CUSTOS_NODISCARD custos_err custos_engine_gateway_note(custos_engine *e,
                                                       const custos_request_summary *r);

#endif
