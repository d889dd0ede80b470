/* .mcpp provisioning package: JSON content in CMS SignedData, signed by the
 * package-signing key and carrying its own Root of Trust (docs/formats.md). */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "internal/format.h"

#define WHAT "provisioning package"

/* scrypt cost for the bootstrap key: N=2^14, r=8, p=1 (16 MiB). 2^15 with
 * r=8 needs just over OpenSSL's default 32 MiB scrypt memory cap, which
 * PKCS8_decrypt cannot raise, so a device could not open it. */
#define PKG_SCRYPT_N 16384u
#define PKG_SCRYPT_R 8u
#define PKG_SCRYPT_P 1u

custos_package_doc *custos_package_doc_new(void)
{
    return calloc(1, sizeof(custos_package_doc));
}

void custos_package_doc_free(custos_package_doc *d)
{
    if (d == NULL)
        return;
    sk_X509_pop_free(d->root_of_trust, X509_free);
    X509_free(d->bootstrap_cert);
    sk_X509_pop_free(d->bootstrap_chain, X509_free);
    if (d->bootstrap_key_enc != NULL)
        OPENSSL_cleanse(d->bootstrap_key_enc, d->bootstrap_key_enc_len);
    free(d->bootstrap_key_enc);
    free(d);
}

const custos_component_def *custos_package_doc_component(const custos_package_doc *d,
                                                         const char *name)
{
    if (d == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < d->n_components; i++)
        if (strcmp(d->components[i].name, name) == 0)
            return &d->components[i];
    return NULL;
}

/* ---- bootstrap key (PKCS#8 EncryptedPrivateKeyInfo) ---------------------- */

custos_err custos_package_key_encrypt(uint8_t **out, size_t *out_len, const EVP_PKEY *key,
                                      const char *pass, size_t pass_len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_ALGOR *pbe = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    X509_SIG *sig = NULL;
    unsigned char *der = NULL;
    int n = 0;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(key != NULL && pass != NULL, CUSTOS_ERR_ARG, "passphrase",
                  "no key or passphrase");
    CUSTOS_ENSURE(pass_len > 0 && pass_len <= 1024, CUSTOS_ERR_ARG, "passphrase",
                  "the passphrase must be 1 to 1024 bytes");
    pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL, PKG_SCRYPT_N, PKG_SCRYPT_R,
                                PKG_SCRYPT_P);
    if (pbe == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "passphrase", "cannot set up scrypt");
        goto out;
    }
    p8 = EVP_PKEY2PKCS8(key);
    if (p8 == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "bootstrap.encrypted_key",
                                   "cannot encode the bootstrap key");
        goto out;
    }
    sig = PKCS8_set0_pbe(pass, (int)pass_len, p8, pbe);
    if (sig == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "bootstrap.encrypted_key",
                                   "cannot encrypt the bootstrap key");
        goto out;
    }
    pbe = NULL; /* owned by sig now */
    n = i2d_X509_SIG(sig, &der);
    CUSTOS_ENSURE(n > 0, CUSTOS_ERR_INTERNAL, "bootstrap.encrypted_key",
                  "cannot encode the encrypted bootstrap key");
    *out = malloc((size_t)n);
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    memcpy(*out, der, (size_t)n);
    *out_len = (size_t)n;
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    X509_SIG_free(sig);
    X509_ALGOR_free(pbe);
    PKCS8_PRIV_KEY_INFO_free(p8); /* wipes the key material */
    ERR_clear_error();
    return ret;
}

custos_err custos_package_key_decrypt(EVP_PKEY **out, const uint8_t *enc, size_t enc_len,
                                      const char *pass, size_t pass_len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_SIG *sig = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    const unsigned char *p = enc;

    *out = NULL;
    CUSTOS_ENSURE(enc != NULL && pass != NULL, CUSTOS_ERR_ARG, "passphrase",
                  "no key or passphrase");
    CUSTOS_ENSURE(pass_len <= 1024, CUSTOS_ERR_PASSPHRASE, "passphrase",
                  "wrong passphrase for the provisioning package");
    CUSTOS_ENSURE(enc_len > 0 && enc_len <= CUSTOS_DOC_MAX_KEY_ENC, CUSTOS_ERR_TOO_LARGE,
                  "bootstrap.encrypted_key", "bootstrap.encrypted_key exceeds %u bytes",
                  (unsigned)CUSTOS_DOC_MAX_KEY_ENC);
    sig = d2i_X509_SIG(NULL, &p, (long)enc_len);
    CUSTOS_ENSURE(sig != NULL && p == enc + enc_len, CUSTOS_ERR_MALFORMED,
                  "bootstrap.encrypted_key",
                  "bootstrap.encrypted_key is not a DER PKCS#8 EncryptedPrivateKeyInfo");
    /* AES-CBC under a wrong key fails the padding check or yields garbage
     * that does not parse as PrivateKeyInfo: both are a wrong passphrase. */
    p8 = PKCS8_decrypt(sig, pass, (int)pass_len);
    CUSTOS_ENSURE(p8 != NULL, CUSTOS_ERR_PASSPHRASE, "passphrase",
                  "wrong passphrase for the provisioning package");
    *out = EVP_PKCS82PKEY(p8);
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_MALFORMED, "bootstrap.encrypted_key",
                  "the bootstrap key is not a supported private key");
    if (custos_key_alg(*out) == CUSTOS_ALG_NONE) {
        EVP_PKEY_free(*out);
        *out = NULL;
        ret = custos_error_set(CUSTOS_ERR_UNSUPPORTED, "bootstrap.encrypted_key",
                               "the bootstrap key's algorithm is not supported");
        goto out;
    }
    ret = CUSTOS_OK;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    X509_SIG_free(sig);
    ERR_clear_error();
    return ret;
}

/* ---- encode --------------------------------------------------------------- */

static custos_err build_bootstrap(json_t **out, const custos_package_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *chain = NULL;
    char *b64 = NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(d->bootstrap_cert != NULL && d->bootstrap_key_enc != NULL, CUSTOS_ERR_ARG,
                  "bootstrap", "the package has no bootstrap certificate or key");
    CUSTOS_GUARD(custos_x509_to_b64(&b64, d->bootstrap_cert));
    CUSTOS_GUARD(custos_doc_set_string(o, "certificate", b64));
    free(b64);
    b64 = NULL;
    CUSTOS_GUARD(custos_doc_certs_to_json(&chain, d->bootstrap_chain));
    CUSTOS_GUARD(custos_doc_set(o, "chain", chain));
    chain = NULL;
    CUSTOS_GUARD(custos_b64_encode(&b64, d->bootstrap_key_enc, d->bootstrap_key_enc_len));
    CUSTOS_GUARD(custos_doc_set_string(o, "encrypted_key", b64));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    free(b64);
    json_decref(chain);
    json_decref(o);
    return ret;
}

static custos_err build_json(json_t **out, const custos_package_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *comps = json_array();
    json_t *tmp = NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL && comps != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(custos_id_valid(d->package_id), CUSTOS_ERR_ARG, "package_id",
                  "package_id is not a valid id");
    CUSTOS_ENSURE(custos_name_valid(d->system, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG, "system",
                  "system is not a valid name");
    CUSTOS_ENSURE(d->n_components >= 1 && d->n_components <= CUSTOS_MAX_COMPONENTS,
                  CUSTOS_ERR_LIMIT, "components", "a package has 1 to %d components",
                  CUSTOS_MAX_COMPONENTS);
    CUSTOS_ENSURE(d->root_of_trust != NULL && sk_X509_num(d->root_of_trust) >= 1 &&
                      sk_X509_num(d->root_of_trust) <= CUSTOS_DOC_MAX_CERTS,
                  CUSTOS_ERR_ARG, "root_of_trust", "root_of_trust needs 1 to %d certificates",
                  CUSTOS_DOC_MAX_CERTS);
    CUSTOS_GUARD(custos_doc_set_string(o, "format", "custos-package"));
    CUSTOS_GUARD(custos_doc_set(o, "version", json_integer(1)));
    CUSTOS_GUARD(custos_doc_set_string(o, "package_id", d->package_id));
    CUSTOS_GUARD(custos_doc_set_string(o, "system", d->system));
    CUSTOS_GUARD(custos_doc_set_time(o, "created", d->created));
    CUSTOS_GUARD(custos_doc_set_time(o, "expires", d->expires));
    for (size_t i = 0; i < d->n_components; i++) {
        CUSTOS_GUARD(custos_component_to_json(&tmp, &d->components[i]));
        CUSTOS_ENSURE(json_array_append_new(comps, tmp) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
        tmp = NULL;
    }
    CUSTOS_GUARD(custos_doc_set(o, "components", comps));
    comps = NULL;
    CUSTOS_GUARD(custos_doc_services_to_json(&tmp, &d->services));
    CUSTOS_GUARD(custos_doc_set(o, "services", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_doc_certs_to_json(&tmp, d->root_of_trust));
    CUSTOS_GUARD(custos_doc_set(o, "root_of_trust", tmp));
    tmp = NULL;
    CUSTOS_GUARD(build_bootstrap(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(o, "bootstrap", tmp));
    tmp = NULL;
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(tmp);
    json_decref(comps);
    json_decref(o);
    return ret;
}

custos_err custos_package_encode(uint8_t **out, size_t *out_len, const custos_package_doc *d,
                                 const custos_signer *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(d != NULL && signer != NULL, CUSTOS_ERR_ARG, NULL, "no package or signer");
    CUSTOS_GUARD(build_json(&j, d));
    CUSTOS_GUARD(custos_doc_sign(out, out_len, j, CUSTOS_OID_CT_PACKAGE, CUSTOS_MAX_PACKAGE_SIZE,
                                 "provisioning package", signer));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

/* ---- decode --------------------------------------------------------------- */

/* The one self-signed certificate the CMS carries (or the pinned root, which
 * must be among them). */
static custos_err find_root(X509 **out, const STACK_OF(X509) *certs, X509 *pinned)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *root = NULL;

    *out = NULL;
    if (pinned != NULL) {
        CUSTOS_ENSURE(custos_doc_certs_contain(certs, pinned), CUSTOS_ERR_UNTRUSTED, "signer",
                      WHAT ": not signed under the pinned root certificate");
        root = pinned;
    } else {
        for (int i = 0; i < sk_X509_num(certs); i++) {
            X509 *x = sk_X509_value(certs, i);
            if (!custos_doc_cert_self_signed(x))
                continue;
            CUSTOS_ENSURE(root == NULL || X509_cmp(root, x) == 0, CUSTOS_ERR_UNTRUSTED, "signer",
                          WHAT ": carries more than one self-signed certificate");
            root = x;
        }
        CUSTOS_ENSURE(root != NULL, CUSTOS_ERR_UNTRUSTED, "signer",
                      WHAT ": carries no self-signed root certificate");
    }
    CUSTOS_ENSURE(X509_up_ref(root) == 1, CUSTOS_ERR_INTERNAL, NULL, "X509_up_ref failed");
    *out = root;
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err parse_components(custos_package_doc *d, const json_t *arr)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char f[48];

    CUSTOS_ENSURE(json_is_array(arr) && json_array_size(arr) >= 1, CUSTOS_ERR_MALFORMED,
                  "components", "components must be a non-empty array");
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_COMPONENTS, CUSTOS_ERR_LIMIT, "components",
                  "components has more than %d entries", CUSTOS_MAX_COMPONENTS);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        snprintf(f, sizeof(f), "components[%zu]", i);
        CUSTOS_GUARD(custos_component_from_json(&d->components[i], json_array_get(arr, i), f));
        CUSTOS_ENSURE(custos_package_doc_component(d, d->components[i].name) == NULL,
                      CUSTOS_ERR_DUPLICATE, f, "component \"%s\" appears twice",
                      d->components[i].name);
        d->n_components++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err parse_bootstrap(custos_package_doc *d, const json_t *j)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    const char *cert = NULL;
    const char *key = NULL;
    json_t *chain = NULL;
    X509_SIG *sig = NULL;
    const unsigned char *p = NULL;

    if (json_unpack_ex((json_t *)j, &jerr, JSON_STRICT, "{s:s, s:o, s:s !}", "certificate", &cert,
                       "chain", &chain, "encrypted_key", &key) != 0) {
        ret = custos_doc_unpack_error(&jerr, "bootstrap");
        goto out;
    }
    CUSTOS_GUARD(custos_x509_from_b64(&d->bootstrap_cert, cert, "bootstrap.certificate"));
    CUSTOS_GUARD(custos_doc_certs_from_json(&d->bootstrap_chain, chain, 0, CUSTOS_DOC_MAX_CERTS,
                                            "bootstrap.chain"));
    CUSTOS_GUARD(custos_b64_decode(&d->bootstrap_key_enc, &d->bootstrap_key_enc_len, key,
                                   CUSTOS_DOC_MAX_KEY_ENC, "bootstrap.encrypted_key"));
    p = d->bootstrap_key_enc;
    sig = d2i_X509_SIG(NULL, &p, (long)d->bootstrap_key_enc_len);
    CUSTOS_ENSURE(sig != NULL && p == d->bootstrap_key_enc + d->bootstrap_key_enc_len,
                  CUSTOS_ERR_MALFORMED, "bootstrap.encrypted_key",
                  "bootstrap.encrypted_key is not a DER PKCS#8 EncryptedPrivateKeyInfo");
    ret = CUSTOS_OK;
out:
    X509_SIG_free(sig);
    ERR_clear_error();
    return ret;
}

static custos_err parse_json(custos_package_doc *d, const uint8_t *content, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    json_error_t jerr;
    const char *format = NULL, *id = NULL, *system = NULL, *created = NULL, *expires = NULL;
    json_int_t version = 0;
    json_t *comps = NULL, *services = NULL, *roots = NULL, *bootstrap = NULL;

    CUSTOS_GUARD(custos_json_parse(&j, content, len, WHAT " content"));
    CUSTOS_GUARD(custos_doc_check_header_of(j, "custos-package", WHAT));
    if (json_unpack_ex(j, &jerr, JSON_STRICT,
                       "{s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o !}", "format", &format,
                       "version", &version, "package_id", &id, "system", &system, "created",
                       &created, "expires", &expires, "components", &comps, "services", &services,
                       "root_of_trust", &roots, "bootstrap", &bootstrap) != 0) {
        ret = custos_doc_unpack_error(&jerr, WHAT " content");
        goto out;
    }
    CUSTOS_GUARD(custos_doc_check_header(format, version, "custos-package", WHAT));
    CUSTOS_GUARD(
        custos_doc_copy(d->package_id, sizeof(d->package_id), id, CUSTOS_DOC_ID, "package_id"));
    CUSTOS_GUARD(custos_doc_copy(d->system, sizeof(d->system), system, CUSTOS_DOC_NAME, "system"));
    CUSTOS_GUARD(custos_doc_time(&d->created, created, "created"));
    CUSTOS_GUARD(custos_doc_time(&d->expires, expires, "expires"));
    CUSTOS_GUARD(parse_components(d, comps));
    CUSTOS_GUARD(custos_doc_services_from_json(&d->services, services, "services"));
    CUSTOS_GUARD(custos_doc_certs_from_json(&d->root_of_trust, roots, 1, CUSTOS_DOC_MAX_CERTS,
                                            "root_of_trust"));
    for (int i = 0; i < sk_X509_num(d->root_of_trust); i++)
        CUSTOS_ENSURE(custos_doc_cert_self_signed(sk_X509_value(d->root_of_trust, i)),
                      CUSTOS_ERR_MALFORMED, "root_of_trust",
                      "root_of_trust[%d] is not a self-signed certificate", i);
    CUSTOS_GUARD(parse_bootstrap(d, bootstrap));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

/* Semantic checks once the content is trusted: the root that verified the
 * signature is part of the Root of Trust, expiry is the bootstrap notAfter,
 * and the bootstrap certificate is a bootstrap credential under that root. */
static custos_err check_doc(const custos_package_doc *d, X509 *root, X509_STORE *store, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int64_t not_after = 0;
    char when[21];

    CUSTOS_ENSURE(custos_doc_certs_contain(d->root_of_trust, root), CUSTOS_ERR_UNTRUSTED,
                  "root_of_trust", WHAT ": the signing root is not in its root_of_trust");
    CUSTOS_GUARD(custos_asn1_time_to_unix(&not_after, X509_get0_notAfter(d->bootstrap_cert)));
    CUSTOS_ENSURE(d->expires == not_after, CUSTOS_ERR_MALFORMED, "expires",
                  WHAT ": expires does not match the bootstrap certificate's notAfter");
    custos_time_format(when, d->expires);
    CUSTOS_ENSURE(now <= d->expires, CUSTOS_ERR_EXPIRED, "expires",
                  "provisioning package expired at %s", when);
    CUSTOS_ENSURE(custos_x509_has_eku(d->bootstrap_cert, custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP)),
                  CUSTOS_ERR_UNTRUSTED, "bootstrap.certificate",
                  WHAT ": the bootstrap certificate lacks the bootstrap extended key usage");
    CUSTOS_GUARD(custos_doc_chain_verify(d->bootstrap_cert, d->bootstrap_chain, store, now,
                                         "bootstrap.certificate"));
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_package_decode(custos_package_doc **out, const uint8_t *der, size_t len,
                                 X509 *pinned_root, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_package_doc *d = NULL;
    STACK_OF(X509) *certs = NULL;
    X509 *root = NULL;
    X509 *signer = NULL;
    X509_STORE *store = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    custos_oid ct = CUSTOS_OID_COUNT;
    custos_trust trust = {0};

    *out = NULL;
    CUSTOS_ENSURE(der != NULL, CUSTOS_ERR_ARG, NULL, "no " WHAT);
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, der, len,
                                 CUSTOS_MAX_PACKAGE_SIZE, WHAT));
    free(content);
    content = NULL;
    CUSTOS_ENSURE(ct == CUSTOS_OID_CT_PACKAGE, CUSTOS_ERR_MALFORMED, "eContentType",
                  "not a " WHAT " (wrong eContentType)");
    CUSTOS_GUARD(find_root(&root, certs, pinned_root));
    store = X509_STORE_new();
    CUSTOS_ENSURE(store != NULL && X509_STORE_add_cert(store, root) == 1, CUSTOS_ERR_NOMEM, NULL,
                  "cannot build the trust store");
    trust.store = store;
    trust.untrusted = NULL;
    trust.now = now;
    trust.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING);
    CUSTOS_GUARD(custos_cms_verify(&content, &content_len, &signer, NULL, der, len,
                                   CUSTOS_MAX_PACKAGE_SIZE, CUSTOS_OID_CT_PACKAGE, &trust, WHAT));
    CUSTOS_ENSURE(custos_x509_has_eku(signer, trust.signer_eku_nid), CUSTOS_ERR_UNTRUSTED, "signer",
                  WHAT ": the signer lacks the package-signing extended key usage");
    d = custos_package_doc_new();
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(parse_json(d, content, content_len));
    CUSTOS_GUARD(check_doc(d, root, store, now));
    *out = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    custos_package_doc_free(d);
    free(content);
    X509_free(signer);
    X509_free(root);
    X509_STORE_free(store);
    sk_X509_pop_free(certs, X509_free);
    return ret;
}
