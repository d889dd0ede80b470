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
    custos_system_def *def; /* parsed once */
    X509 *ca;               /* its issuing CA */
    EVP_PKEY *key;
} engine_system;

struct custos_engine {
    char dir[PATH_MAX];
    custos_store *st;
    custos_keystore *ks;
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
    X509_STORE *trust;               /* the root: verifies requests */
    custos_chain_cache *signers;     /* request signer chains verified against trust */
    STACK_OF(X509) *bootstrap_chain; /* [bootstrap CA] */
    STACK_OF(X509) *system_cas;      /* every system's issuing CA (borrowed refs) */
    engine_system *systems;
    size_t n_systems;
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
    uint8_t audit_key[32]; /* HMAC key of the audit chain (from the master key) */
    engine_doc_slot doc_cache[ENGINE_DOC_CACHE];
    size_t doc_cache_next;
};

int64_t custos_engine_now(const custos_engine *e);
const engine_system *custos_engine_system(const custos_engine *e, const char *name);
/* Audit through the engine's store and clock. */
CUSTOS_NODISCARD custos_err custos_engine_audit(custos_engine *e, const custos_actor *actor,
                                                const char *action, const char *object,
                                                const json_t *detail);

/* server/ca/hierarchy.c */
CUSTOS_NODISCARD custos_err custos_ca_hierarchy_create(custos_store *st, custos_keystore *ks,
                                                       const char *dir, int64_t now);
CUSTOS_NODISCARD custos_err custos_ca_system_create(X509 **out_cert, EVP_PKEY **out_key,
                                                    const char *system, X509 *root,
                                                    EVP_PKEY *root_key, int64_t now);
CUSTOS_NODISCARD custos_err custos_ca_bootstrap_cert(X509 **out, EVP_PKEY *key, const char *system,
                                                     const char *package_id, unsigned valid_days,
                                                     X509 *ca, EVP_PKEY *ca_key, int64_t now);

/* server/engine_request.c: issue + lint every certificate of a request; on
 * success *out_certs holds n certificates (caller frees). */
CUSTOS_NODISCARD custos_err custos_engine_issue_all(
    X509 *out_certs[CUSTOS_MAX_TEMPLATES], const custos_component_def *comp,
    EVP_PKEY *const pubs[CUSTOS_MAX_TEMPLATES], const X509_PUBKEY *const *spkis, const char *system,
    const char *serial, X509 *ca, EVP_PKEY *ca_key, int64_t now, int mock);

#endif
