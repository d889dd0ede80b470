/* CMS SignedData envelope (RFC 5652, DER): sign, verify with an explicit
 * chain check at a per-call time, and peek without verifying. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "internal/format.h"

static custos_err bio_to_buf(uint8_t **out, size_t *out_len, BIO *bio)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    uint8_t *buf = NULL;

    CUSTOS_ENSURE(n >= 0, CUSTOS_ERR_INTERNAL, NULL, "cannot read a memory BIO");
    buf = malloc((size_t)n + 1);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (n > 0)
        memcpy(buf, data, (size_t)n);
    buf[n] = 0;
    *out = buf;
    *out_len = (size_t)n;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    free(buf);
    return ret;
}

custos_err custos_cms_start(CMS_ContentInfo **out, X509 *cert, EVP_PKEY *key, int nid,
                            unsigned extra_flags)
{
    CMS_ContentInfo *cms;
    *out = NULL;
    ERR_clear_error();
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_BINARY | CMS_PARTIAL);
    if (cms == NULL ||
        CMS_add1_signer(cms, cert, key, custos_key_md(key), CMS_NOSMIMECAP | extra_flags) == NULL ||
        CMS_set1_eContentType(cms, OBJ_nid2obj(nid)) != 1) {
        custos_err ret =
            custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "signer", "cannot set up the CMS signer");
        CMS_ContentInfo_free(cms);
        return ret;
    }
    *out = cms;
    return CUSTOS_OK;
}

custos_err custos_cms_finish(uint8_t **out, size_t *out_len, CMS_ContentInfo *cms,
                             const uint8_t *content, size_t content_len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    BIO *in = NULL;
    unsigned char *der = NULL;
    uint8_t *buf = NULL;
    int len;

    in = BIO_new_mem_buf(content, (int)content_len);
    CUSTOS_ENSURE(in != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (CMS_final(cms, in, NULL, CMS_BINARY) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "signer", "CMS signing failed");
        goto out;
    }
    len = i2d_CMS_ContentInfo(cms, &der);
    if (len <= 0) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, NULL, "cannot encode the CMS");
        goto out;
    }
    buf = malloc((size_t)len);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    memcpy(buf, der, (size_t)len);
    *out = buf;
    *out_len = (size_t)len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    free(buf);
    OPENSSL_free(der);
    BIO_free(in);
    return ret;
}

custos_err custos_cms_sign(uint8_t **out, size_t *out_len, custos_oid ct, const uint8_t *content,
                           size_t content_len, const custos_signer *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    int nid = custos_oid_nid(ct);

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(signer != NULL && signer->cert != NULL && signer->key != NULL, CUSTOS_ERR_ARG,
                  "signer", "no signing certificate or key");
    CUSTOS_ENSURE(nid != NID_undef && ct <= CUSTOS_OID_CT_RECEIPT, CUSTOS_ERR_ARG, NULL,
                  "unknown content type");
    CUSTOS_ENSURE(content != NULL && content_len > 0 && content_len <= INT32_MAX, CUSTOS_ERR_ARG,
                  NULL, "no content to sign");
    /* OpenSSL 3.0's CMS cannot sign or verify with EdDSA (no RFC 8419 support). */
    CUSTOS_ENSURE(custos_key_alg(signer->key) != CUSTOS_ALG_ED25519, CUSTOS_ERR_UNSUPPORTED,
                  "signer", "Ed25519 keys cannot sign CMS with this OpenSSL; use ECDSA or RSA");
    CUSTOS_ENSURE(X509_check_private_key(signer->cert, signer->key) == 1, CUSTOS_ERR_ARG, "signer",
                  "the signing key does not match the signing certificate");
    CUSTOS_GUARD(custos_cms_start(&cms, signer->cert, signer->key, nid, 0));
    for (int i = 0; signer->chain != NULL && i < sk_X509_num(signer->chain); i++) {
        X509 *c = sk_X509_value(signer->chain, i);

        if (X509_cmp(c, signer->cert) == 0)
            continue;
        if (CMS_add1_cert(cms, c) != 1) {
            ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "signer",
                                       "cannot add a chain certificate");
            goto out;
        }
    }
    CUSTOS_GUARD(custos_cms_finish(out, out_len, cms, content, content_len));
    ret = CUSTOS_OK;
out:
    CMS_ContentInfo_free(cms);
    return ret;
}

/* Parse the DER SignedData: size bound, no trailing bytes, one signer,
 * embedded content. */
static custos_err cms_parse(CMS_ContentInfo **out, const uint8_t *der, size_t der_len, size_t max,
                            const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = NULL;
    ASN1_OCTET_STRING **content;

    *out = NULL;
    CUSTOS_ENSURE(der != NULL && der_len > 0, CUSTOS_ERR_MALFORMED, what, "the %s is empty", what);
    CUSTOS_ENSURE(der_len <= max, CUSTOS_ERR_TOO_LARGE, what,
                  "the %s is %zu bytes, over the limit of %zu bytes", what, der_len, max);
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
    if (cms == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_MALFORMED, what, "the %s is not a DER CMS message",
                                   what);
        goto out;
    }
    CUSTOS_ENSURE(p == der + der_len, CUSTOS_ERR_MALFORMED, what,
                  "the %s has %zu trailing bytes after the CMS message", what,
                  (size_t)(der + der_len - p));
    CUSTOS_ENSURE(OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed, CUSTOS_ERR_MALFORMED, what,
                  "the %s is not CMS SignedData", what);
    CUSTOS_ENSURE(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) == 1, CUSTOS_ERR_MALFORMED, what,
                  "the %s must have exactly one signer", what);
    content = CMS_get0_content(cms);
    CUSTOS_ENSURE(content != NULL && *content != NULL, CUSTOS_ERR_MALFORMED, what,
                  "the %s carries no content", what);
    *out = cms;
    cms = NULL;
    ret = CUSTOS_OK;
out:
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return ret;
}

static custos_err cms_content(uint8_t **out, size_t *out_len, CMS_ContentInfo *cms)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    ASN1_OCTET_STRING **content = CMS_get0_content(cms);
    uint8_t *buf = NULL;
    int n;

    CUSTOS_ENSURE(content != NULL && *content != NULL, CUSTOS_ERR_MALFORMED, NULL, "no content");
    n = ASN1_STRING_length(*content);
    CUSTOS_ENSURE(n >= 0, CUSTOS_ERR_MALFORMED, NULL, "no content");
    buf = malloc((size_t)n + 1);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (n > 0)
        memcpy(buf, ASN1_STRING_get0_data(*content), (size_t)n);
    buf[n] = 0;
    *out = buf;
    *out_len = (size_t)n;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    free(buf);
    return ret;
}

static custos_err cms_certs(STACK_OF(X509) **out, CMS_ContentInfo *cms)
{
    STACK_OF(X509) *certs = CMS_get1_certs(cms);

    if (certs == NULL)
        certs = sk_X509_new_null();
    *out = certs;
    if (certs == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    return CUSTOS_OK;
}

static const char *cert_cn(const X509 *x, char *buf, size_t cap)
{
    X509_NAME *name = X509_get_subject_name(x);

    if (name == NULL || X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)cap) <= 0)
        (void)snprintf(buf, cap, "%s", "unnamed");
    return buf;
}

static const char *role_name(int nid)
{
    if (nid == custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING))
        return "package-signing";
    if (nid == custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING))
        return "profile-signing";
    if (nid == custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP))
        return "bootstrap";
    return OBJ_nid2sn(nid) != NULL ? OBJ_nid2sn(nid) : "required";
}

/* ---- strictness: no unsigned byte may change without notice ---------------
 * CMS leaves a few bytes outside the signature: the version numbers, the
 * signatureAlgorithm identifier and any certificate the verifier does not
 * use. OpenSSL accepts changes to them, so a file with a flipped byte there
 * would still verify. We refuse any value other than what Custos writes. */

/* Read one TLV header at *p (OpenSSL's ASN1_get_object, bounded by end). */
static int tlv(const unsigned char **p, long *len, int *tag, int *cls, const unsigned char *end)
{
    int r = ASN1_get_object(p, len, tag, cls, (long)(end - *p));
    return (r & 0x80) == 0 && *len <= end - *p;
}

static int integer_is(const unsigned char *p, long len, unsigned char v)
{
    return len == 1 && p[0] == v;
}

/* SignedData version 3 (eContentType is not id-data, RFC 5652 5.1) and the
 * one SignerInfo's version 1 (issuerAndSerialNumber). */
static custos_err check_versions(const uint8_t *der, size_t der_len, const char *what)
{
    const unsigned char *p = der, *end = der + der_len, *sd_end;
    long len = 0;
    int tag = 0, cls = 0, ok;

    ok = tlv(&p, &len, &tag, &cls, end) && tag == V_ASN1_SEQUENCE; /* ContentInfo */
    ok = ok && tlv(&p, &len, &tag, &cls, end) && tag == V_ASN1_OBJECT;
    p += ok ? len : 0;
    ok = ok && tlv(&p, &len, &tag, &cls, end) && cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0;
    ok = ok && tlv(&p, &len, &tag, &cls, end) && tag == V_ASN1_SEQUENCE; /* SignedData */
    sd_end = ok ? p + len : end;
    ok = ok && tlv(&p, &len, &tag, &cls, sd_end) && tag == V_ASN1_INTEGER && integer_is(p, len, 3);
    if (!ok)
        return custos_error_set(CUSTOS_ERR_MALFORMED, what,
                                "the %s has an unexpected SignedData version", what);
    p += len;
    /* Skip digestAlgorithms, encapContentInfo, [0] certificates, [1] crls. */
    while (p < sd_end) {
        if (!tlv(&p, &len, &tag, &cls, sd_end))
            break;
        if (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SET && p + len == sd_end) {
            /* signerInfos: SET OF SignerInfo, exactly one. */
            ok = tlv(&p, &len, &tag, &cls, sd_end) && tag == V_ASN1_SEQUENCE &&
                 tlv(&p, &len, &tag, &cls, sd_end) && tag == V_ASN1_INTEGER &&
                 integer_is(p, len, 1);
            if (!ok)
                return custos_error_set(CUSTOS_ERR_MALFORMED, what,
                                        "the %s has an unexpected SignerInfo version", what);
            return CUSTOS_OK;
        }
        p += len;
    }
    return custos_error_set(CUSTOS_ERR_MALFORMED, what, "the %s has no SignerInfo", what);
}

/* The signatureAlgorithm must be the one Custos writes for the signer's key. */
static custos_err check_sig_alg(CMS_ContentInfo *cms, X509 *signer, const char *what)
{
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    X509_ALGOR *dig = NULL, *sig = NULL;
    const ASN1_OBJECT *dig_obj = NULL, *sig_obj = NULL;
    int ptype = V_ASN1_UNDEF, expected = NID_undef;
    const void *pval = NULL;
    EVP_PKEY *pub = X509_get0_pubkey(signer);

    if (si == NULL || pub == NULL)
        return custos_error_set(CUSTOS_ERR_MALFORMED, what, "the %s has no signer", what);
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
    X509_ALGOR_get0(&dig_obj, NULL, NULL, dig);
    X509_ALGOR_get0(&sig_obj, &ptype, &pval, sig);
    if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
        expected = NID_rsaEncryption;
        if (OBJ_obj2nid(sig_obj) == expected && (ptype == V_ASN1_NULL || ptype == V_ASN1_UNDEF))
            return CUSTOS_OK;
    } else if (OBJ_find_sigid_by_algs(&expected, OBJ_obj2nid(dig_obj), EVP_PKEY_get_base_id(pub)) ==
                   1 &&
               OBJ_obj2nid(sig_obj) == expected && ptype == V_ASN1_UNDEF) {
        return CUSTOS_OK;
    }
    return custos_error_set(CUSTOS_ERR_MALFORMED, what,
                            "the %s names an unexpected signature algorithm", what);
}

/* Every certificate the message carries must be one the verification used:
 * an altered spare certificate is as much a tampered file as any other. */
static custos_err check_carried(STACK_OF(X509) *carried, STACK_OF(X509) *chain, const char *what)
{
    for (int i = 0; i < sk_X509_num(carried); i++) {
        int found = 0;
        for (int j = 0; !found && j < sk_X509_num(chain); j++)
            found = X509_cmp(sk_X509_value(carried, i), sk_X509_value(chain, j)) == 0;
        if (!found)
            return custos_error_set(CUSTOS_ERR_MALFORMED, what,
                                    "the %s carries a certificate that is not in its signer's "
                                    "chain (certificate %d)",
                                    what, i + 1);
    }
    return CUSTOS_OK;
}

/* Chain @p signer to trust->store at trust->now, using the certificates the
 * message carries and trust->untrusted as intermediates. */
static custos_err verify_chain(STACK_OF(X509) **out_chain, X509 *signer, STACK_OF(X509) *carried,
                               const custos_trust *trust, const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    char cn[128], when[21];
    int64_t t = 0;
    int err;
    X509 *bad;

    untrusted = sk_X509_dup(carried);
    CUSTOS_ENSURE(untrusted != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; trust->untrusted != NULL && i < sk_X509_num(trust->untrusted); i++)
        CUSTOS_ENSURE(sk_X509_push(untrusted, sk_X509_value(trust->untrusted, i)) > 0,
                      CUSTOS_ERR_NOMEM, NULL, "out of memory");
    ctx = X509_STORE_CTX_new();
    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (X509_STORE_CTX_init(ctx, trust->store, signer, untrusted) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "signer", "cannot set up verification");
        goto out;
    }
    if (trust->now != 0)
        X509_STORE_CTX_set_time(ctx, 0, (time_t)trust->now);
    if (X509_verify_cert(ctx) == 1) {
        *out_chain = X509_STORE_CTX_get1_chain(ctx);
        ret = *out_chain != NULL ? CUSTOS_OK
                                 : custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    err = X509_STORE_CTX_get_error(ctx);
    bad = X509_STORE_CTX_get_current_cert(ctx);
    if (bad == NULL)
        bad = signer;
    (void)cert_cn(bad, cn, sizeof(cn));
    if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) {
        int expired = err == X509_V_ERR_CERT_HAS_EXPIRED;
        time_t at = trust->now != 0 ? (time_t)trust->now : time(NULL);

        /* OpenSSL reports the first bad certificate from the root down; the
         * signer's own validity is what a person needs to hear about. */
        if (X509_cmp_time(expired ? X509_get0_notAfter(signer) : X509_get0_notBefore(signer),
                          &at) == (expired ? -1 : 1))
            bad = signer;
        (void)cert_cn(bad, cn, sizeof(cn));

        if (custos_asn1_time_to_unix(&t, expired ? X509_get0_notAfter(bad)
                                                 : X509_get0_notBefore(bad)) < 0)
            t = 0;
        custos_time_format(when, t);
        ret = custos_error_set(expired ? CUSTOS_ERR_EXPIRED : CUSTOS_ERR_NOT_YET_VALID, "signer",
                               "the %s certificate %s this %s %s %s", cn,
                               bad == signer ? "that signed" : "in the chain of the signer of",
                               what, expired ? "expired at" : "is not valid before", when);
        goto out;
    }
    ret = custos_error_set(CUSTOS_ERR_UNTRUSTED, "signer",
                           "the signer of this %s is not trusted: %s (certificate %s)", what,
                           X509_verify_cert_error_string(err), cn);
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    ERR_clear_error();
    return ret;
}

custos_err custos_cms_verify(uint8_t **out_content, size_t *out_len, X509 **out_signer,
                             STACK_OF(X509) **out_certs, const uint8_t *der, size_t der_len,
                             size_t max, custos_oid ct, const custos_trust *trust, const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509) *signers = NULL;
    STACK_OF(X509) *chain = NULL;
    BIO *sink = NULL;
    X509 *signer;
    int nid = custos_oid_nid(ct);
    unsigned long e;

    *out_content = NULL;
    *out_len = 0;
    if (out_signer != NULL)
        *out_signer = NULL;
    if (out_certs != NULL)
        *out_certs = NULL;
    if (what == NULL)
        what = "signed file";
    CUSTOS_ENSURE(trust != NULL && trust->store != NULL, CUSTOS_ERR_ARG, NULL,
                  "no trust anchors to verify the %s", what);
    CUSTOS_ENSURE(nid != NID_undef, CUSTOS_ERR_ARG, NULL, "unknown content type");
    CUSTOS_GUARD(cms_parse(&cms, der, der_len, max, what));
    CUSTOS_ENSURE(OBJ_obj2nid(CMS_get0_eContentType(cms)) == nid, CUSTOS_ERR_MALFORMED, what,
                  "this is not a %s (content type is not %s)", what, custos_oid_text(ct));
    CUSTOS_GUARD(cms_certs(&certs, cms));
    sink = BIO_new(BIO_s_mem());
    CUSTOS_ENSURE(sink != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    ERR_clear_error();
    if (CMS_verify(cms, NULL, NULL, NULL, sink, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_CMS &&
            ERR_GET_REASON(e) == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND)
            ret = custos_error_set_ssl(CUSTOS_ERR_MALFORMED, "signer",
                                       "the %s does not carry its signer's certificate", what);
        else
            ret = custos_error_set_ssl(CUSTOS_ERR_SIGNATURE, "signature",
                                       "the signature on this %s does not verify", what);
        goto out;
    }
    signers = CMS_get0_signers(cms);
    CUSTOS_ENSURE(signers != NULL && sk_X509_num(signers) == 1, CUSTOS_ERR_MALFORMED, "signer",
                  "the %s does not carry its signer's certificate", what);
    signer = sk_X509_value(signers, 0);
    CUSTOS_GUARD(check_versions(der, der_len, what));
    CUSTOS_GUARD(check_sig_alg(cms, signer, what));
    if (!custos_chain_cache_get(&chain, trust->cache, signer,
                                trust->now != 0 ? trust->now : (int64_t)time(NULL))) {
        CUSTOS_GUARD(verify_chain(&chain, signer, certs, trust, what));
        custos_chain_cache_put(trust->cache, signer, chain);
    }
    CUSTOS_GUARD(check_carried(certs, chain, what));
    CUSTOS_ENSURE(trust->signer_eku_nid == 0 || custos_x509_has_eku(signer, trust->signer_eku_nid),
                  CUSTOS_ERR_UNTRUSTED, "signer", "the signer of this %s is not a %s certificate",
                  what, role_name(trust->signer_eku_nid));
    CUSTOS_GUARD(bio_to_buf(out_content, out_len, sink));
    if (out_signer != NULL) {
        CUSTOS_ENSURE(X509_up_ref(signer) == 1, CUSTOS_ERR_INTERNAL, NULL, "up_ref failed");
        *out_signer = signer;
    }
    if (out_certs != NULL) {
        *out_certs = certs;
        certs = NULL;
    }
    ret = CUSTOS_OK;
out:
    if (ret < 0) {
        free(*out_content);
        *out_content = NULL;
        *out_len = 0;
    }
    sk_X509_free(signers);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(certs, X509_free);
    BIO_free(sink);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return ret;
}

custos_err custos_cms_peek(uint8_t **out_content, size_t *out_len, STACK_OF(X509) **out_certs,
                           custos_oid *out_ct, const uint8_t *der, size_t der_len, size_t max,
                           const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    STACK_OF(X509) *certs = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    int nid;
    int found = -1;

    if (out_content != NULL)
        *out_content = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (out_certs != NULL)
        *out_certs = NULL;
    if (out_ct != NULL)
        *out_ct = CUSTOS_OID_COUNT;
    if (what == NULL)
        what = "signed file";
    /* Register our OIDs first so the parsed eContentType maps to their NIDs. */
    (void)custos_oid_nid(CUSTOS_OID_CT_PACKAGE);
    CUSTOS_GUARD(cms_parse(&cms, der, der_len, max, what));
    nid = OBJ_obj2nid(CMS_get0_eContentType(cms));
    for (int i = CUSTOS_OID_CT_PACKAGE; i <= CUSTOS_OID_CT_RECEIPT; i++) {
        if (nid != NID_undef && nid == custos_oid_nid((custos_oid)i))
            found = i;
    }
    CUSTOS_ENSURE(found >= 0, CUSTOS_ERR_MALFORMED, what,
                  "the %s does not hold a Custos content type", what);
    if (out_content != NULL) {
        CUSTOS_GUARD(cms_content(&content, &content_len, cms));
        CUSTOS_ENSURE(out_len != NULL, CUSTOS_ERR_ARG, NULL, "no length output");
    }
    if (out_certs != NULL)
        CUSTOS_GUARD(cms_certs(&certs, cms));
    if (out_content != NULL) {
        *out_content = content;
        *out_len = content_len;
        content = NULL;
    }
    if (out_certs != NULL) {
        *out_certs = certs;
        certs = NULL;
    }
    if (out_ct != NULL)
        *out_ct = (custos_oid)found;
    ret = CUSTOS_OK;
out:
    free(content);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    return ret;
}
