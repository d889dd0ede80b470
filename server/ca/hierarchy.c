/* The CA hierarchy of a data directory: root, bootstrap CA, package- and
 * profile-signing certificates, TLS server certificate, mock root and mock
 * profile-signing certificate, and per-system issuing CAs. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "engine_int.h"
#include "internal/util.h"

#define DAY 86400
#define ROOT_DAYS (20u * 365u + 5u)
#define CA_DAYS (10u * 365u + 2u)
#define SIGNER_DAYS (5u * 365u + 1u)

custos_err custos_ca_serial(ASN1_INTEGER **out)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    /* 16 random bytes behind a random non-zero first octet with the top bit
     * clear: always 17 octets in DER (positive, no leading zero to strip), so
     * never shorter than the lint's minimum, whatever the random bytes. */
    uint8_t b[17];
    BIGNUM *bn = NULL;

    *out = NULL;
    do {
        CUSTOS_GUARD(custos_random(NULL, b, sizeof(b)));
        b[0] &= 0x7f;
    } while (b[0] == 0);
    bn = BN_bin2bn(b, (int)sizeof(b), NULL);
    CUSTOS_ENSURE(bn != NULL, CUSTOS_ERR_NOMEM, "serial", "out of memory");
    *out = BN_to_ASN1_INTEGER(bn, NULL);
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_NOMEM, "serial", "out of memory");
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(b, sizeof(b));
    BN_free(bn);
    return ret;
}

custos_err custos_ca_serial_hex(char out[41], const X509 *cert)
{
    const ASN1_INTEGER *s = X509_get0_serialNumber(cert);
    int n = s != NULL ? ASN1_STRING_length(s) : 0;
    out[0] = '\0';
    if (n <= 0 || n > 20)
        return custos_error_set(CUSTOS_ERR_MALFORMED, "serial",
                                "certificate serial has %d octets (1..20 allowed)", n);
    custos_hex_encode(out, ASN1_STRING_get0_data(s), (size_t)n);
    return CUSTOS_OK;
}

custos_err custos_ca_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    custos_err ret = CUSTOS_OK;
    if (ext == NULL)
        return custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "extension", "cannot build %s = %s",
                                    OBJ_nid2sn(nid), value);
    if (X509_add_ext(x, ext, -1) != 1)
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "extension", "cannot add %s",
                                   OBJ_nid2sn(nid));
    X509_EXTENSION_free(ext);
    return ret;
}

custos_err custos_ca_make_cert(X509 **out, EVP_PKEY *key, const custos_ca_spec *spec, X509 *issuer,
                               EVP_PKEY *issuer_key, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    ASN1_INTEGER *serial = NULL;
    X509V3_CTX ctx;
    EVP_PKEY *signer = issuer_key != NULL ? issuer_key : key;
    int64_t not_after = now + (int64_t)spec->days * DAY;
    char bc[64];

    *out = NULL;
    x = X509_new();
    name = X509_NAME_new();
    CUSTOS_ENSURE(x != NULL && name != NULL, CUSTOS_ERR_NOMEM, "certificate", "out of memory");
    CUSTOS_ENSURE(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                             (const unsigned char *)"Custos", -1, -1, 0) == 1 &&
                      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                 (const unsigned char *)spec->cn, -1, -1, 0) == 1,
                  CUSTOS_ERR_INTERNAL, "subject", "cannot build subject CN=%s", spec->cn);
    if (issuer != NULL) {
        int64_t cap = 0;
        CUSTOS_GUARD(custos_asn1_time_to_unix(&cap, X509_get0_notAfter(issuer)));
        if (not_after > cap)
            not_after = cap;
    }
    CUSTOS_GUARD(custos_ca_serial(&serial));
    CUSTOS_ENSURE(
        X509_set_version(x, 2) == 1 && X509_set_serialNumber(x, serial) == 1 &&
            X509_set_subject_name(x, name) == 1 &&
            X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1 &&
            ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - CUSTOS_CA_BACKDATE)) != NULL &&
            ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) != NULL &&
            X509_set_pubkey(x, key) == 1,
        CUSTOS_ERR_INTERNAL, "certificate", "cannot fill certificate %s", spec->cn);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    if (spec->is_ca) {
        if (spec->pathlen >= 0)
            snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", spec->pathlen);
        else
            snprintf(bc, sizeof(bc), "critical,CA:TRUE");
    } else {
        snprintf(bc, sizeof(bc), "critical,CA:FALSE");
    }
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_basic_constraints, bc));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_key_usage,
                                   spec->key_usage != NULL ? spec->key_usage
                                   : spec->is_ca           ? "critical,keyCertSign,cRLSign"
                                                           : "critical,digitalSignature"));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (spec->eku != NULL)
        CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_ext_key_usage, spec->eku));
    if (spec->san != NULL)
        CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_subject_alt_name, spec->san));
    CUSTOS_ENSURE(X509_sign(x, signer, custos_key_md(signer)) > 0, CUSTOS_ERR_INTERNAL,
                  "certificate", "cannot sign certificate %s", spec->cn);
    *out = x;
    x = NULL;
    ret = CUSTOS_OK;
out:
    ASN1_INTEGER_free(serial);
    X509_NAME_free(name);
    X509_free(x);
    return ret;
}

/* ---- data directory hierarchy -------------------------------------------- */

typedef struct authority_def {
    const char *name;
    custos_alg alg;
    const char *issuer; /* NULL: self-signed */
    custos_ca_spec spec;
} authority_def;

static custos_err store_authority(custos_store *st, custos_keystore *ks, const char *name,
                                  X509 *cert, EVP_PKEY *key, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t len = 0;
    CUSTOS_GUARD(custos_x509_to_der(&der, &len, cert));
    CUSTOS_GUARD(custos_keystore_put(ks, name, key));
    CUSTOS_GUARD(st->ops->authority_put(st->ctx, name, der, len, now));
    ret = CUSTOS_OK;
out:
    free(der);
    return ret;
}

static custos_err write_pem(const char *dir, const char *file, X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    BIO *bio = BIO_new(BIO_s_mem());
    char path[PATH_MAX];
    char *data = NULL;
    long len;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, file);

    CUSTOS_ENSURE(n > 0 && (size_t)n < sizeof(path), CUSTOS_ERR_TOO_LARGE, "dir",
                  "path too long under %s", dir);
    CUSTOS_ENSURE(bio != NULL && PEM_write_bio_X509(bio, cert) == 1, CUSTOS_ERR_INTERNAL, file,
                  "cannot encode %s", file);
    len = BIO_get_mem_data(bio, &data);
    CUSTOS_ENSURE(len > 0, CUSTOS_ERR_INTERNAL, file, "cannot encode %s", file);
    CUSTOS_GUARD(custos_file_write_atomic(path, (const uint8_t *)data, (size_t)len, 0644));
    ret = CUSTOS_OK;
out:
    BIO_free(bio);
    return ret;
}

custos_err custos_ca_hierarchy_create(custos_store *st, custos_keystore *ks, const char *dir,
                                      const char *tls_san, int64_t now)
{
    char eku_pkg[128], eku_prof[128];
    const authority_def defs[] = {
        {CUSTOS_AUTH_ROOT,
         CUSTOS_ALG_ECDSA_P384,
         NULL,
         {"Custos Root CA", 1, -1, ROOT_DAYS, NULL, NULL, NULL}},
        /* Issuing CAs are P-256: they sign and are verified once per request,
         * and P-384 costs 25-40x more than P-256 in OpenSSL 3.0 (no
         * constant-time assembly for P-384). The root stays P-384. */
        {CUSTOS_AUTH_BOOTSTRAP,
         CUSTOS_ALG_ECDSA_P256,
         CUSTOS_AUTH_ROOT,
         {"Custos Bootstrap CA", 1, 0, CA_DAYS, NULL, NULL, NULL}},
        {CUSTOS_AUTH_PACKAGE_SIGNING,
         CUSTOS_ALG_ECDSA_P256,
         CUSTOS_AUTH_ROOT,
         {"Custos Package Signing", 0, -1, SIGNER_DAYS, eku_pkg, NULL, NULL}},
        {CUSTOS_AUTH_PROFILE_SIGNING,
         CUSTOS_ALG_ECDSA_P256,
         CUSTOS_AUTH_ROOT,
         {"Custos Profile Signing", 0, -1, SIGNER_DAYS, eku_prof, NULL, NULL}},
        {CUSTOS_AUTH_TLS_SERVER,
         CUSTOS_ALG_ECDSA_P256,
         CUSTOS_AUTH_ROOT,
         {"localhost", 0, -1, 825, "serverAuth",
          tls_san != NULL ? tls_san : CUSTOS_CA_TLS_SAN_DEFAULT, NULL}},
        {CUSTOS_AUTH_MOCK_ROOT,
         CUSTOS_ALG_ECDSA_P256,
         NULL,
         {"Custos MOCK Root", 1, -1, ROOT_DAYS, NULL, NULL, NULL}},
        {CUSTOS_AUTH_MOCK_PROFILE_SIGNING,
         CUSTOS_ALG_ECDSA_P256,
         CUSTOS_AUTH_MOCK_ROOT,
         {"Custos MOCK Profile Signing", 0, -1, SIGNER_DAYS, eku_prof, NULL, NULL}},
    };
    enum { N = sizeof(defs) / sizeof(defs[0]) };
    X509 *certs[N] = {0};
    EVP_PKEY *keys[N] = {0};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i, j;

    snprintf(eku_pkg, sizeof(eku_pkg), "%s", custos_oid_text(CUSTOS_OID_EKU_PACKAGE_SIGNING));
    snprintf(eku_prof, sizeof(eku_prof), "%s", custos_oid_text(CUSTOS_OID_EKU_PROFILE_SIGNING));
    (void)custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING);
    (void)custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    for (i = 0; i < N; i++) {
        X509 *issuer = NULL;
        EVP_PKEY *issuer_key = NULL;
        for (j = 0; j < i && defs[i].issuer != NULL; j++) {
            if (strcmp(defs[j].name, defs[i].issuer) == 0) {
                issuer = certs[j];
                issuer_key = keys[j];
            }
        }
        CUSTOS_GUARD(custos_key_generate(&keys[i], defs[i].alg));
        CUSTOS_GUARD(
            custos_ca_make_cert(&certs[i], keys[i], &defs[i].spec, issuer, issuer_key, now));
        CUSTOS_GUARD(store_authority(st, ks, defs[i].name, certs[i], keys[i], now));
    }
    CUSTOS_GUARD(write_pem(dir, "root.pem", certs[0]));
    CUSTOS_GUARD(write_pem(dir, "mock-root.pem", certs[5]));
    ret = CUSTOS_OK;
out:
    for (i = 0; i < N; i++) {
        X509_free(certs[i]);
        EVP_PKEY_free(keys[i]);
    }
    return ret;
}

custos_err custos_ca_system_create(X509 **out_cert, EVP_PKEY **out_key, const char *system,
                                   X509 *root, EVP_PKEY *root_key, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char cn[CUSTOS_MAX_NAME_LEN + 16];
    custos_ca_spec spec = {cn, 1, 0, CA_DAYS, NULL, NULL, NULL};
    EVP_PKEY *key = NULL;

    *out_cert = NULL;
    *out_key = NULL;
    snprintf(cn, sizeof(cn), "%s Device CA", system);
    CUSTOS_GUARD(custos_key_generate(&key, CUSTOS_ALG_ECDSA_P256));
    CUSTOS_GUARD(custos_ca_make_cert(out_cert, key, &spec, root, root_key, now));
    *out_key = key;
    key = NULL;
    ret = CUSTOS_OK;
out:
    EVP_PKEY_free(key);
    return ret;
}

custos_err custos_ca_bootstrap_cert(X509 **out, EVP_PKEY *key, const char *system,
                                    const char *package_id, unsigned valid_days, X509 *ca,
                                    EVP_PKEY *ca_key, int64_t now)
{
    char cn[CUSTOS_MAX_NAME_LEN + CUSTOS_ID_LEN + 16];
    char eku[128];
    custos_ca_spec spec = {cn, 0, -1, valid_days, eku, NULL, NULL};
    snprintf(cn, sizeof(cn), "%s bootstrap %s", system, package_id);
    snprintf(eku, sizeof(eku), "%s", custos_oid_text(CUSTOS_OID_EKU_BOOTSTRAP));
    (void)custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP);
    return custos_ca_make_cert(out, key, &spec, ca, ca_key, now);
}
