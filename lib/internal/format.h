/* The four file formats (docs/formats.md): one implementation shared by the
 * device library, custosd and the tools. Not installed.
 *
 * Every *_decode() verifies before it trusts: size bound first, then the CMS
 * signature and the signer's chain and role, then strict JSON. Every field is
 * bounded; nothing is half-filled on failure (*out stays NULL). */
#ifndef CUSTOS_INTERNAL_FORMAT_H
#define CUSTOS_INTERNAL_FORMAT_H

#include <stdint.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "custos/types.h"
#include "internal/util.h"

/* ---- CMS SignedData envelope (lib/format/cms.c) --------------------------- */

typedef struct custos_signer {
    X509 *cert;            /* borrowed */
    EVP_PKEY *key;         /* borrowed */
    STACK_OF(X509) *chain; /* borrowed, may be NULL: extra certs to embed (issuers, root) */
} custos_signer;

/* Signer chains already verified against one trust store
 * (lib/format/chain_cache.c). Thread-safe. */
typedef struct custos_chain_cache custos_chain_cache;
custos_chain_cache *custos_chain_cache_new(void);
void custos_chain_cache_free(custos_chain_cache *c);
/* Forget everything (after the trust store changed or a revocation). */
void custos_chain_cache_clear(custos_chain_cache *c);
/* 1 with an up-ref'd copy of the chain when @p signer verified before and
 * every certificate of its chain is valid at @p now; else 0. */
int custos_chain_cache_get(STACK_OF(X509) **out_chain, custos_chain_cache *c, X509 *signer,
                           int64_t now);
void custos_chain_cache_put(custos_chain_cache *c, X509 *signer, STACK_OF(X509) *chain);

/* What a verifier trusts. Build once and reuse (X509_STORE is the cache of
 * parsed trust anchors). */
typedef struct custos_trust {
    X509_STORE *store;         /* trust anchors (roots); borrowed */
    STACK_OF(X509) *untrusted; /* extra intermediates; borrowed, may be NULL */
    int64_t now;               /* verification time (unix seconds) */
    int signer_eku_nid;        /* required EKU on the signer, or 0 for none */
    custos_chain_cache *cache; /* optional: skip re-verifying known signer chains */
} custos_trust;

/* Sign @p content (JSON bytes) as CMS SignedData, DER, with eContentType
 * @p ct (one of CUSTOS_OID_CT_*), signer cert + chain embedded, SHA-256
 * (SHA-384 for P-384), signed attributes with signingTime. */
CUSTOS_NODISCARD custos_err custos_cms_sign(uint8_t **out, size_t *out_len, custos_oid ct,
                                            const uint8_t *content, size_t content_len,
                                            const custos_signer *signer);

/* The steps of custos_cms_sign(), for a caller that needs more: a partial
 * SignedData of eContentType @p nid with one signer (@p extra_flags added to
 * CMS_NOSMIMECAP, e.g. CMS_CADES); then sign @p content and encode it (DER,
 * malloc'd). */
CUSTOS_NODISCARD custos_err custos_cms_start(CMS_ContentInfo **out, X509 *cert, EVP_PKEY *key,
                                             int nid, unsigned extra_flags);
CUSTOS_NODISCARD custos_err custos_cms_finish(uint8_t **out, size_t *out_len, CMS_ContentInfo *cms,
                                              const uint8_t *content, size_t content_len);

/* Verify: size <= @p max (TOO_LARGE), DER CMS SignedData with exactly one
 * signer and eContentType @p ct (MALFORMED), signature (SIGNATURE), chain to
 * @p trust at trust->now (UNTRUSTED; EXPIRED / NOT_YET_VALID for validity,
 * naming the certificate and its notAfter), signer EKU. Returns the content
 * (malloc'd) and the signer certificate (up-ref'd); @p out_certs (optional)
 * receives all certificates carried in the CMS. @p what names the file kind
 * in errors ("provisioning request"). */
CUSTOS_NODISCARD custos_err custos_cms_verify(uint8_t **out_content, size_t *out_len,
                                              X509 **out_signer, STACK_OF(X509) **out_certs,
                                              const uint8_t *der, size_t der_len, size_t max,
                                              custos_oid ct, const custos_trust *trust,
                                              const char *what);

/* Parse without verifying (for `custos inspect` of untrusted files and for
 * finding a self-signed root inside a package): content + certs. */
CUSTOS_NODISCARD custos_err custos_cms_peek(uint8_t **out_content, size_t *out_len,
                                            STACK_OF(X509) **out_certs, custos_oid *out_ct,
                                            const uint8_t *der, size_t der_len, size_t max,
                                            const char *what);

/* ---- shared pieces -------------------------------------------------------- */

typedef struct custos_component_def {
    char name[CUSTOS_MAX_NAME_LEN + 1];
    custos_key_template templates[CUSTOS_MAX_TEMPLATES];
    size_t n_templates;
    int gateway; /* "gateway": true: a hub that forwards for devices behind it */
} custos_component_def;

typedef struct custos_services {
    char cloud_url[CUSTOS_MAX_URL_LEN + 1]; /* may be empty */
    char gateways[CUSTOS_MAX_GATEWAYS][CUSTOS_MAX_URL_LEN + 1];
    size_t n_gateways;
} custos_services;

typedef struct custos_meta_entry {
    char key[CUSTOS_MAX_META_KEY_LEN + 1];
    char value[CUSTOS_MAX_META_VALUE_LEN + 1];
} custos_meta_entry;

/* Templates JSON <-> struct (used by the package and by system.json). */
CUSTOS_NODISCARD custos_err custos_template_from_json(custos_key_template *out, const json_t *j,
                                                      const char *field);
CUSTOS_NODISCARD custos_err custos_template_to_json(json_t **out, const custos_key_template *t);
CUSTOS_NODISCARD custos_err custos_component_from_json(custos_component_def *out, const json_t *j,
                                                       const char *field);
CUSTOS_NODISCARD custos_err custos_component_to_json(json_t **out, const custos_component_def *c);
/* usage bit set <-> JSON array of names */
CUSTOS_NODISCARD custos_err custos_usage_from_json(unsigned *out, const json_t *j,
                                                   const char *field);

/* ---- system definition (system.json, lib/format/system.c) ---------------- */

typedef struct custos_system_def {
    char name[CUSTOS_MAX_NAME_LEN + 1];
    char display_name[CUSTOS_MAX_META_VALUE_LEN + 1];
    custos_services services;
    unsigned renewal_window_days;
    custos_component_def components[CUSTOS_MAX_COMPONENTS];
    size_t n_components;
} custos_system_def;

CUSTOS_NODISCARD custos_err custos_system_parse(custos_system_def **out, const uint8_t *json,
                                                size_t len);
CUSTOS_NODISCARD custos_err custos_system_to_json(json_t **out, const custos_system_def *s);
void custos_system_free(custos_system_def *s);
const custos_component_def *custos_system_component(const custos_system_def *s, const char *name);

/* ---- .mcpp provisioning package (lib/format/package.c) ------------------- */

typedef struct custos_package_doc {
    char package_id[CUSTOS_ID_LEN + 1];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    int64_t created;
    int64_t expires; /* == bootstrap cert notAfter */
    custos_component_def components[CUSTOS_MAX_COMPONENTS];
    size_t n_components;
    custos_services services;
    STACK_OF(X509) *root_of_trust;   /* owned, >= 1 self-signed */
    X509 *bootstrap_cert;            /* owned */
    STACK_OF(X509) *bootstrap_chain; /* owned: bootstrap CA up to (excluding) the root */
    uint8_t *bootstrap_key_enc;      /* owned: DER EncryptedPrivateKeyInfo (PKCS#8) */
    size_t bootstrap_key_enc_len;
} custos_package_doc;

custos_package_doc *custos_package_doc_new(void);
void custos_package_doc_free(custos_package_doc *d);
CUSTOS_NODISCARD custos_err custos_package_encode(uint8_t **out, size_t *out_len,
                                                  const custos_package_doc *d,
                                                  const custos_signer *signer);
/* Verify and decode. Trust: the self-signed root carried in the CMS, which
 * must equal @p pinned_root when that is not NULL and must appear in
 * root_of_trust; the signer must carry the package-signing EKU. */
CUSTOS_NODISCARD custos_err custos_package_decode(custos_package_doc **out, const uint8_t *der,
                                                  size_t len, X509 *pinned_root, int64_t now);
/* Encrypt / decrypt the bootstrap key with the passphrase (PKCS#8, scrypt + AES-256-CBC via
 * PKCS5_pbe2_set_scrypt / PKCS8_decrypt). Wrong passphrase -> CUSTOS_ERR_PASSPHRASE. */
CUSTOS_NODISCARD custos_err custos_package_key_encrypt(uint8_t **out, size_t *out_len,
                                                       const EVP_PKEY *key, const char *pass,
                                                       size_t pass_len);
CUSTOS_NODISCARD custos_err custos_package_key_decrypt(EVP_PKEY **out, const uint8_t *enc,
                                                       size_t enc_len, const char *pass,
                                                       size_t pass_len);
const custos_component_def *custos_package_doc_component(const custos_package_doc *d,
                                                         const char *name);

/* ---- .mcpr provisioning request (lib/format/request.c) ------------------- */

typedef enum custos_request_kind {
    CUSTOS_REQUEST_INITIAL = 1,
    CUSTOS_REQUEST_REPROVISION = 2,
} custos_request_kind;

typedef struct custos_request_key {
    char template_name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    X509_REQ *csr; /* owned */
} custos_request_key;

typedef struct custos_request_doc {
    char request_id[CUSTOS_ID_LEN + 1];
    custos_request_kind kind;
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char package_id[CUSTOS_ID_LEN + 1]; /* initial: the package used; else empty */
    char device_id[CUSTOS_ID_LEN + 1];  /* reprovision: the device being renewed; else empty */
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    char hardware_id[CUSTOS_MAX_HARDWARE_ID_LEN + 1];
    char model[CUSTOS_MAX_MODEL_LEN + 1];
    char firmware[CUSTOS_MAX_FIRMWARE_LEN + 1];
    custos_meta_entry manufacturer[CUSTOS_MAX_META_ENTRIES];
    size_t n_manufacturer;
    custos_meta_entry metadata[CUSTOS_MAX_META_ENTRIES];
    size_t n_metadata;
    custos_request_key keys[CUSTOS_MAX_TEMPLATES];
    size_t n_keys;
    uint8_t nonce[16];
    int64_t time;
    /* filled by decode */
    X509 *signer;             /* owned: the certificate that signed the PR */
    int64_t signer_not_after; /* = when this request expires */
    uint8_t digest[32];       /* SHA-256 of the whole .mcpr DER */
} custos_request_doc;

custos_request_doc *custos_request_doc_new(void);
void custos_request_doc_free(custos_request_doc *d);
CUSTOS_NODISCARD custos_err custos_request_encode(uint8_t **out, size_t *out_len,
                                                  const custos_request_doc *d,
                                                  const custos_signer *signer);
/* Verify (CMS + chain per @p trust: bootstrap CA for initial, device CA for
 * reprovision; the caller picks @p trust from a peek or from both) and decode;
 * checks every CSR's own signature (CUSTOS_ERR_POP naming the template), all
 * field limits, and that kind matches the signer role (bootstrap EKU for
 * initial). Does NOT check templates (the engine does, against the system). */
CUSTOS_NODISCARD custos_err custos_request_decode(custos_request_doc **out, const uint8_t *der,
                                                  size_t len, const custos_trust *trust);

/* Decode a request that custos_request_decode() verified earlier and the
 * caller stored (the engine's approve step): parses the content and the CSRs
 * but checks neither the CMS signature nor proof of possession again.
 * signer and signer_not_after are not filled. Never use on untrusted input. */
CUSTOS_NODISCARD custos_err custos_request_decode_stored(custos_request_doc **out,
                                                         const uint8_t *der, size_t len);

/* ---- .mccp certified profile (lib/format/profile.c) ---------------------- */

typedef struct custos_profile_cert {
    char template_name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    X509 *cert; /* owned */
} custos_profile_cert;

typedef struct custos_profile_doc {
    char device_id[CUSTOS_ID_LEN + 1];
    char request_id[CUSTOS_ID_LEN + 1];
    uint8_t request_sha256[32];
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    int mock;
    custos_profile_cert certs[CUSTOS_MAX_TEMPLATES];
    size_t n_certs;
    STACK_OF(X509) *chain;         /* owned: issuing CA(s), excluding the root */
    STACK_OF(X509) *root_of_trust; /* owned */
    custos_services services;
    unsigned renewal_window_days;
    int64_t issued;
} custos_profile_doc;

custos_profile_doc *custos_profile_doc_new(void);
void custos_profile_doc_free(custos_profile_doc *d);
CUSTOS_NODISCARD custos_err custos_profile_encode(uint8_t **out, size_t *out_len,
                                                  const custos_profile_doc *d,
                                                  const custos_signer *signer);
/* Verify against @p trust (the device's Root of Trust; signer must carry the
 * profile-signing EKU) and decode; also checks every certificate chains via
 * `chain` to a root in @p trust at trust->now. */
CUSTOS_NODISCARD custos_err custos_profile_decode(custos_profile_doc **out, const uint8_t *der,
                                                  size_t len, const custos_trust *trust);

/* ---- .mcpi private identity (lib/format/identity.c) ---------------------- */

typedef struct custos_identity_key {
    char template_name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    EVP_PKEY *key; /* owned; freed (wiped) by doc_free */
} custos_identity_key;

typedef struct custos_identity_gen {
    char request_id[CUSTOS_ID_LEN + 1];
    custos_identity_key keys[CUSTOS_MAX_TEMPLATES];
    size_t n_keys;
} custos_identity_gen;

typedef struct custos_identity_doc {
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    int mock; /* 1: keys in the clear, not device-locked */
    /* From the package at request time (the package is removed afterwards):
     * the Root of Trust that profiles must chain to, and the services. Kept
     * in the authenticated cleartext header. */
    STACK_OF(X509) *root_of_trust; /* owned */
    custos_services services;
    custos_identity_gen gens[CUSTOS_MAX_GENERATIONS];
    size_t n_gens;
} custos_identity_doc;

custos_identity_doc *custos_identity_doc_new(void);
void custos_identity_doc_free(custos_identity_doc *d);
/* Encode; device-locked with AES-256-GCM under HKDF-SHA256(@p secret, salt,
 * "custos identity v1") unless d->mock (then @p secret must be NULL).
 * Salt and IV come from @p port entropy (or OpenSSL when NULL). */
CUSTOS_NODISCARD custos_err custos_identity_encode(uint8_t **out, size_t *out_len,
                                                   const custos_identity_doc *d,
                                                   const uint8_t *secret, size_t secret_len,
                                                   const custos_port *port);
/* Decode; CUSTOS_ERR_LOCKED ("locked to another device") when the lock id in
 * the header does not match @p secret; MALFORMED when the tag fails
 * otherwise. A mock identity decodes with @p secret NULL. */
CUSTOS_NODISCARD custos_err custos_identity_decode(custos_identity_doc **out, const uint8_t *data,
                                                   size_t len, const uint8_t *secret,
                                                   size_t secret_len);
/* The cleartext header as JSON (never key material), for inspect/status. */
CUSTOS_NODISCARD custos_err custos_identity_header(json_t **out, const uint8_t *data, size_t len);
const custos_identity_gen *custos_identity_doc_gen(const custos_identity_doc *d,
                                                   const char *request_id);

/* ---- helpers shared by the signed documents (lib/format/doc.c) ----------- */

/* Most certificates in a root_of_trust or chain array of any document. */
#define CUSTOS_DOC_MAX_CERTS 8
/* Largest DER EncryptedPrivateKeyInfo accepted for the bootstrap key. */
#define CUSTOS_DOC_MAX_KEY_ENC 8192

/* What a fixed-size text field must look like (custos_doc_copy). */
typedef enum custos_doc_kind {
    CUSTOS_DOC_NAME,   /* custos_name_valid */
    CUSTOS_DOC_ID,     /* custos_id_valid */
    CUSTOS_DOC_SERIAL, /* custos_serial_valid */
    CUSTOS_DOC_TEXT,   /* custos_text_valid */
} custos_doc_kind;

/* Copy @p src into @p dst (capacity @p cap incl. NUL): LIMIT when longer than
 * cap - 1, MALFORMED when it is not a valid @p kind; errors name @p field. */
CUSTOS_NODISCARD custos_err custos_doc_copy(char *dst, size_t cap, const char *src,
                                            custos_doc_kind kind, const char *field);
/* Set o[key] = v, taking v (also on failure). */
CUSTOS_NODISCARD custos_err custos_doc_set(json_t *o, const char *key, json_t *v);
/* Serialize @p j (compact, sorted keys), sign it as CMS with content type
 * @p ct, and refuse a result over @p max bytes (naming @p what). */
CUSTOS_NODISCARD custos_err custos_doc_sign(uint8_t **out, size_t *out_len, const json_t *j,
                                            custos_oid ct, size_t max, const char *what,
                                            const custos_signer *signer);
CUSTOS_NODISCARD custos_err custos_doc_set_string(json_t *o, const char *key, const char *v);
CUSTOS_NODISCARD custos_err custos_doc_set_time(json_t *o, const char *key, int64_t t);
CUSTOS_NODISCARD custos_err custos_doc_time(int64_t *out, const char *s, const char *field);
/* MALFORMED "<what>: <jansson text>" for a failed strict unpack. */
custos_err custos_doc_unpack_error(const json_error_t *e, const char *what);
/* Check "format" == @p format (MALFORMED) and "version" == 1 (UNSUPPORTED). */
/* format and version of a parsed document, checked before its strict field
 * check: a newer version is "unsupported", not "malformed" for its new fields. */
CUSTOS_NODISCARD custos_err custos_doc_check_header_of(const json_t *j, const char *want,
                                                       const char *what);
CUSTOS_NODISCARD custos_err custos_doc_check_header(const char *format, json_int_t version,
                                                    const char *want, const char *what);
/* {"cloud_url": "", "gateways": []} */
CUSTOS_NODISCARD custos_err custos_doc_services_from_json(custos_services *out, const json_t *j,
                                                          const char *field);
CUSTOS_NODISCARD custos_err custos_doc_services_to_json(json_t **out, const custos_services *s);
/* JSON array of base64 DER certificates, between @p min and @p max entries. */
CUSTOS_NODISCARD custos_err custos_doc_certs_from_json(STACK_OF(X509) **out, const json_t *j,
                                                       size_t min, size_t max, const char *field);
CUSTOS_NODISCARD custos_err custos_doc_certs_to_json(json_t **out, const STACK_OF(X509) *certs);
/* Deep copy of a certificate stack (up-refs each certificate); NULL gives an empty stack. */
CUSTOS_NODISCARD custos_err custos_doc_certs_dup(STACK_OF(X509) **out, const STACK_OF(X509) *in);
/* 1 if @p x is self-signed (issuer == subject and its signature verifies with its own key). */
int custos_doc_cert_self_signed(X509 *x);
/* 1 if @p x (compared by DER) is in @p certs. */
int custos_doc_certs_contain(const STACK_OF(X509) *certs, const X509 *x);
/* Verify @p leaf chains via @p untrusted to a root in @p store at @p now:
 * EXPIRED / NOT_YET_VALID naming the certificate and date, else UNTRUSTED.
 * Errors name @p field. */
CUSTOS_NODISCARD custos_err custos_doc_chain_verify(X509 *leaf, STACK_OF(X509) *untrusted,
                                                    X509_STORE *store, int64_t now,
                                                    const char *field);

/* Build the PKCS#10 request a device makes for one key: subject CN={serial},
 * signed with @p key (custos_key_md). lib/format/request.c. */
CUSTOS_NODISCARD custos_err custos_csr_build(X509_REQ **out, EVP_PKEY *key, const char *system,
                                             const char *component, const char *serial,
                                             const char *tmpl);

/* ---- install receipt (lib/format/receipt.c) ------------------------------ */

/* What a device sends after installing a certified profile (connected mode):
 * CMS SignedData, eContentType CUSTOS_OID_CT_RECEIPT (ARC.1.4), JSON
 * {"format":"custos-receipt","version":1,"request_id","device_id",
 *  "profile_sha256" (lowercase hex),"time"}, signed by a key of the NEW
 * generation (the first non-Ed25519 key of the profile: CMS cannot carry
 * Ed25519 here), its certificate embedded. */
typedef struct custos_receipt_doc {
    char request_id[CUSTOS_ID_LEN + 1];
    char device_id[CUSTOS_ID_LEN + 1];
    uint8_t profile_sha256[32];
    int64_t time;
    X509 *signer; /* owned: the certificate that signed */
} custos_receipt_doc;

CUSTOS_NODISCARD custos_err custos_receipt_encode(uint8_t **out, size_t *out_len,
                                                  const char *request_id, const char *device_id,
                                                  const uint8_t profile_sha256[32], int64_t now,
                                                  EVP_PKEY *key, X509 *cert);
/* Size bound (CUSTOS_MAX_RECEIPT_SIZE), strict DER CMS with one signer and
 * the receipt content type, the signature verified with the embedded signer
 * certificate (no chain: the caller compares the signer with the certificate
 * it issued for the request, by DER), strict JSON. */
CUSTOS_NODISCARD custos_err custos_receipt_decode(custos_receipt_doc **out, const uint8_t *der,
                                                  size_t len);
void custos_receipt_doc_free(custos_receipt_doc *d);

#endif
