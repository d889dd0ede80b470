/* Install receipt: what a device sends after installing a certified profile
 * (connected mode). JSON content in CMS SignedData, signed by a key of the
 * new generation with its certificate embedded (docs/formats.md).
 *
 * A receipt has no trust anchor of its own: the server compares the signer
 * with the certificate it issued. So that no byte of the embedded
 * certificate can change unnoticed (its own signature is not checked here),
 * the signer binds its certificate's SHA-256 into the signed attributes
 * (ESS signingCertificateV2, RFC 5035) and decode checks it. */
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/objects.h>

#include "internal/format.h"

#define WHAT "install receipt"
#define FORMAT "custos-receipt"

void custos_receipt_doc_free(custos_receipt_doc *d)
{
    if (d == NULL)
        return;
    X509_free(d->signer);
    free(d);
}

/* ---- encode --------------------------------------------------------------- */

static custos_err build_json(json_t **out, const char *request_id, const char *device_id,
                             const uint8_t sha[32], int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    char hex[65];

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(custos_id_valid(request_id), CUSTOS_ERR_MALFORMED, "request_id",
                  "request_id is not a valid id");
    CUSTOS_ENSURE(custos_id_valid(device_id), CUSTOS_ERR_MALFORMED, "device_id",
                  "device_id is not a valid id");
    custos_hex_encode(hex, sha, 32);
    CUSTOS_GUARD(custos_doc_set_string(o, "format", FORMAT));
    CUSTOS_GUARD(custos_doc_set(o, "version", json_integer(1)));
    CUSTOS_GUARD(custos_doc_set_string(o, "request_id", request_id));
    CUSTOS_GUARD(custos_doc_set_string(o, "device_id", device_id));
    CUSTOS_GUARD(custos_doc_set_string(o, "profile_sha256", hex));
    CUSTOS_GUARD(custos_doc_set_time(o, "time", now));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(o);
    return ret;
}

/* custos_cms_sign() plus the signingCertificateV2 attribute (CMS_CADES). */
static custos_err sign_cades(uint8_t **out, size_t *out_len, const char *text, size_t text_len,
                             EVP_PKEY *key, X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    CUSTOS_GUARD(
        custos_cms_start(&cms, cert, key, custos_oid_nid(CUSTOS_OID_CT_RECEIPT), CMS_CADES));
    CUSTOS_GUARD(custos_cms_finish(&buf, &len, cms, (const uint8_t *)text, text_len));
    CUSTOS_ENSURE(len <= CUSTOS_MAX_RECEIPT_SIZE, CUSTOS_ERR_TOO_LARGE, WHAT,
                  "the " WHAT " would exceed %u bytes", CUSTOS_MAX_RECEIPT_SIZE);
    *out = buf;
    *out_len = len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    free(buf);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return ret;
}

custos_err custos_receipt_encode(uint8_t **out, size_t *out_len, const char *request_id,
                                 const char *device_id, const uint8_t profile_sha256[32],
                                 int64_t now, EVP_PKEY *key, X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    char *text = NULL;
    size_t text_len = 0;

    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_ENSURE(out != NULL && out_len != NULL && request_id != NULL && device_id != NULL &&
                      profile_sha256 != NULL,
                  CUSTOS_ERR_ARG, NULL, "missing receipt output or field");
    CUSTOS_ENSURE(key != NULL && cert != NULL, CUSTOS_ERR_ARG, "signer",
                  "no signing certificate or key");
    /* OpenSSL 3.0's CMS cannot sign with EdDSA (no RFC 8419 support). */
    CUSTOS_ENSURE(custos_key_alg(key) != CUSTOS_ALG_NONE &&
                      custos_key_alg(key) != CUSTOS_ALG_ED25519,
                  CUSTOS_ERR_UNSUPPORTED, "signer",
                  "an " WHAT " is signed with an ECDSA or RSA key, not this one");
    ERR_clear_error();
    CUSTOS_ENSURE(X509_check_private_key(cert, key) == 1, CUSTOS_ERR_ARG, "signer",
                  "the signing key does not match the signing certificate");
    CUSTOS_GUARD(build_json(&j, request_id, device_id, profile_sha256, now));
    CUSTOS_GUARD(custos_json_dump(&text, &text_len, j));
    CUSTOS_GUARD(sign_cades(out, out_len, text, text_len, key, cert));
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    free(text);
    json_decref(j);
    return ret;
}

/* ---- decode --------------------------------------------------------------- */

/* The one certificate the receipt carries, as its own trust anchor: the
 * signature is checked against it and nothing else (no chain, no time). */
static custos_err self_trust(X509_STORE **out, X509 **out_cert, const uint8_t *der, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *certs = NULL;
    X509_STORE *store = NULL;
    custos_oid ct = CUSTOS_OID_COUNT;

    *out = NULL;
    *out_cert = NULL;
    CUSTOS_GUARD(custos_cms_peek(NULL, NULL, &certs, &ct, der, len, CUSTOS_MAX_RECEIPT_SIZE, WHAT));
    CUSTOS_ENSURE(ct == CUSTOS_OID_CT_RECEIPT, CUSTOS_ERR_MALFORMED, WHAT,
                  "this is not an " WHAT " (content type is not %s)",
                  custos_oid_text(CUSTOS_OID_CT_RECEIPT));
    CUSTOS_ENSURE(sk_X509_num(certs) == 1, CUSTOS_ERR_MALFORMED, "signer",
                  "an " WHAT " carries exactly one certificate, its signer's (this one has %d)",
                  sk_X509_num(certs));
    store = X509_STORE_new();
    CUSTOS_ENSURE(store != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(
        X509_STORE_add_cert(store, sk_X509_value(certs, 0)) == 1 &&
            X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME) == 1,
        CUSTOS_ERR_INTERNAL, NULL, "cannot set up the receipt's verification");
    *out_cert = sk_X509_shift(certs);
    *out = store;
    store = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    X509_STORE_free(store);
    sk_X509_pop_free(certs, X509_free);
    return ret;
}

/* The signed attributes must hold exactly one signingCertificateV2 that
 * names @p signer: this binds every byte of the embedded certificate. */
static custos_err check_signing_cert(const uint8_t *der, size_t len, X509 *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    ASN1_STRING *attr;
    ESS_SIGNING_CERT_V2 *sc = NULL;
    STACK_OF(X509) *chain = NULL;
    const unsigned char *ap;

    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    CUSTOS_ENSURE(cms != NULL, CUSTOS_ERR_MALFORMED, WHAT, "the " WHAT " is not a CMS message");
    si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    CUSTOS_ENSURE(si != NULL, CUSTOS_ERR_MALFORMED, "signer", "the " WHAT " has no signer");
    /* lastpos -3: the attribute must occur exactly once. */
    attr = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_id_smime_aa_signingCertificateV2), -3,
                                       V_ASN1_SEQUENCE);
    CUSTOS_ENSURE(attr != NULL, CUSTOS_ERR_MALFORMED, "signer",
                  "the " WHAT " does not name its signer's certificate in its signed attributes");
    ap = ASN1_STRING_get0_data(attr);
    sc = d2i_ESS_SIGNING_CERT_V2(NULL, &ap, ASN1_STRING_length(attr));
    CUSTOS_ENSURE(sc != NULL && ap == ASN1_STRING_get0_data(attr) + ASN1_STRING_length(attr),
                  CUSTOS_ERR_MALFORMED, "signer",
                  "the " WHAT "'s signingCertificateV2 attribute is not valid DER");
    chain = sk_X509_new_null();
    CUSTOS_ENSURE(chain != NULL && sk_X509_push(chain, signer) > 0, CUSTOS_ERR_NOMEM, NULL,
                  "out of memory");
    CUSTOS_ENSURE(OSSL_ESS_check_signing_certs(NULL, sc, chain, 1) == 1, CUSTOS_ERR_MALFORMED,
                  "signer",
                  "the certificate the " WHAT " carries is not the one it was signed with");
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    sk_X509_free(chain);
    ESS_SIGNING_CERT_V2_free(sc);
    CMS_ContentInfo_free(cms);
    return ret;
}

static custos_err parse_json(custos_receipt_doc *d, const uint8_t *content, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    json_error_t jerr;
    const char *format = NULL, *request_id = NULL, *device_id = NULL, *sha = NULL, *t = NULL;
    json_int_t version = 0;

    CUSTOS_GUARD(custos_json_parse(&j, content, len, WHAT " content"));
    CUSTOS_GUARD(custos_doc_check_header_of(j, FORMAT, WHAT));
    if (json_unpack_ex(j, &jerr, JSON_STRICT, "{s:s, s:I, s:s, s:s, s:s, s:s !}", "format", &format,
                       "version", &version, "request_id", &request_id, "device_id", &device_id,
                       "profile_sha256", &sha, "time", &t) != 0) {
        ret = custos_doc_unpack_error(&jerr, WHAT " content");
        goto out;
    }
    CUSTOS_GUARD(custos_doc_check_header(format, version, FORMAT, WHAT));
    CUSTOS_GUARD(custos_doc_copy(d->request_id, sizeof(d->request_id), request_id, CUSTOS_DOC_ID,
                                 "request_id"));
    CUSTOS_GUARD(
        custos_doc_copy(d->device_id, sizeof(d->device_id), device_id, CUSTOS_DOC_ID, "device_id"));
    CUSTOS_GUARD(
        custos_hex_decode(d->profile_sha256, sizeof(d->profile_sha256), sha, "profile_sha256"));
    CUSTOS_GUARD(custos_doc_time(&d->time, t, "time"));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

custos_err custos_receipt_decode(custos_receipt_doc **out, const uint8_t *der, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_receipt_doc *d = NULL;
    X509_STORE *store = NULL;
    X509 *carried = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    custos_trust trust = {0};

    if (out != NULL)
        *out = NULL;
    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, NULL, "no output for the " WHAT);
    CUSTOS_GUARD(self_trust(&store, &carried, der, len));
    trust.store = store;
    d = calloc(1, sizeof(*d));
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    /* Content type, signature, the pinned CMS versions and signature
     * algorithm, and that the carried certificate is the signer's. */
    CUSTOS_GUARD(custos_cms_verify(&content, &content_len, &d->signer, NULL, der, len,
                                   CUSTOS_MAX_RECEIPT_SIZE, CUSTOS_OID_CT_RECEIPT, &trust, WHAT));
    CUSTOS_ENSURE(X509_cmp(d->signer, carried) == 0, CUSTOS_ERR_MALFORMED, "signer",
                  "the " WHAT " was not signed with the certificate it carries");
    CUSTOS_GUARD(check_signing_cert(der, len, d->signer));
    CUSTOS_GUARD(parse_json(d, content, content_len));
    *out = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    free(content);
    X509_free(carried);
    X509_STORE_free(store);
    custos_receipt_doc_free(d);
    return ret;
}
