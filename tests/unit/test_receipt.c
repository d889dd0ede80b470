/* Install receipt: round trip, the signer's certificate bound into the
 * signature, strict JSON, content type, size and tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/cms.h>

#include "custos/device.h"
#include "support/formats_fixture.h"

#define REQ_ID "bbbbbbbbbbbbbbbbbbbbbbbbba"
#define DEV_ID "ccccccccccccccccccccccccca"

typedef struct st {
    fx_pki pki;
    uint8_t sha[32];
    uint8_t *der;
    size_t len;
} st;

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));

    if (s == NULL || fx_pki_init(&s->pki, 0) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(s->sha); i++)
        s->sha[i] = (uint8_t)(0xa0 + i);
    if (custos_receipt_encode(&s->der, &s->len, REQ_ID, DEV_ID, s->sha, s->pki.now, s->pki.dev.key,
                              s->pki.dev.cert) != 0)
        return -1;
    fx_write_corpus("receipt", "valid.receipt", s->der, s->len);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;

    free(s->der);
    fx_pki_free(&s->pki);
    free(s);
    return 0;
}

static custos_err decode(const uint8_t *der, size_t len)
{
    custos_receipt_doc *d = NULL;
    custos_err rc = custos_receipt_decode(&d, der, len);

    if (rc == 0)
        custos_receipt_doc_free(d);
    else
        assert_null(d);
    return rc;
}

/* Sign @p content as a receipt would be (CAdES signingCertificateV2), so
 * that only the JSON differs. */
static int sign_like_receipt(uint8_t **out, size_t *out_len, custos_oid ct, const char *content,
                             const testca_cert *signer, X509 *extra)
{
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_BINARY | CMS_PARTIAL);
    BIO *in = BIO_new_mem_buf(content, (int)strlen(content));
    unsigned char *der = NULL;
    int len = -1;

    if (cms != NULL && in != NULL &&
        CMS_add1_signer(cms, signer->cert, signer->key, EVP_sha256(), CMS_NOSMIMECAP | CMS_CADES) !=
            NULL &&
        CMS_set1_eContentType(cms, OBJ_nid2obj(custos_oid_nid(ct))) == 1 &&
        (extra == NULL || CMS_add1_cert(cms, extra) == 1) && CMS_final(cms, in, NULL, CMS_BINARY))
        len = i2d_CMS_ContentInfo(cms, &der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    if (len <= 0)
        return -1;
    *out = malloc((size_t)len);
    if (*out != NULL)
        memcpy(*out, der, (size_t)len);
    *out_len = (size_t)len;
    OPENSSL_free(der);
    return *out != NULL ? 0 : -1;
}

/* The receipt's JSON with @p from replaced by @p to, signed again. */
static custos_err decode_edited(st *s, const char *from, const char *to)
{
    char *content = fx_content(s->der, s->len);
    char *edited = content != NULL ? fx_replace(content, from, to) : NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_err rc;

    assert_non_null(edited);
    assert_int_equal(
        sign_like_receipt(&der, &len, CUSTOS_OID_CT_RECEIPT, edited, &s->pki.dev, NULL), 0);
    rc = decode(der, len);
    free(der);
    free(edited);
    free(content);
    return rc;
}

static void test_round_trip(void **state)
{
    st *s = *state;
    custos_receipt_doc *d = NULL;
    char *content = fx_content(s->der, s->len);

    assert_int_equal(custos_receipt_decode(&d, s->der, s->len), 0);
    assert_string_equal(d->request_id, REQ_ID);
    assert_string_equal(d->device_id, DEV_ID);
    assert_memory_equal(d->profile_sha256, s->sha, 32);
    assert_int_equal(d->time, s->pki.now);
    assert_int_equal(X509_cmp(d->signer, s->pki.dev.cert), 0);
    custos_receipt_doc_free(d);
    custos_receipt_doc_free(NULL);
    /* compact, sorted, lowercase hex */
    assert_non_null(content);
    assert_non_null(strstr(content, "{\"device_id\":\"" DEV_ID "\",\"format\":\"custos-receipt\","
                                    "\"profile_sha256\":\"a0a1a2a3"));
    free(content);
}

/* custos inspect shows a receipt: what it answers and that its signature holds. */
static void test_inspect(void **state)
{
    st *s = *state;
    char *out = NULL;
    uint8_t *bad = malloc(s->len);

    assert_int_equal(custos_inspect(&out, s->der, s->len), 0);
    assert_non_null(strstr(out, "\"kind\":\"receipt\""));
    assert_non_null(strstr(out, "\"request_id\":\"" REQ_ID "\""));
    assert_non_null(strstr(out, "\"profile_sha256\":\"a0a1a2a3"));
    assert_non_null(strstr(out, "\"signature\":true"));
    free(out);
    /* The last byte is in the signature value: still a receipt, signature false. */
    assert_non_null(bad);
    memcpy(bad, s->der, s->len);
    bad[s->len - 1] ^= 0x01;
    assert_int_equal(custos_inspect(&out, bad, s->len), 0);
    assert_non_null(strstr(out, "\"signature\":false"));
    free(out);
    free(bad);
}

static void test_other_algorithms(void **state)
{
    st *s = *state;
    static const custos_alg algs[] = {CUSTOS_ALG_ECDSA_P384, CUSTOS_ALG_RSA_3072};
    custos_receipt_doc *d = NULL;

    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        testca_cert c = {0};
        testca_opts o = {0};
        uint8_t *der = NULL;
        size_t len = 0;

        o.cn = "SN-0001";
        o.alg = algs[i];
        assert_int_equal(testca_issue(&c, &s->pki.dev_ca, &o), 0);
        assert_int_equal(
            custos_receipt_encode(&der, &len, REQ_ID, DEV_ID, s->sha, s->pki.now, c.key, c.cert),
            0);
        assert_int_equal(custos_receipt_decode(&d, der, len), 0);
        assert_int_equal(X509_cmp(d->signer, c.cert), 0);
        custos_receipt_doc_free(d);
        d = NULL;
        free(der);
        testca_cert_free(&c);
    }
}

static void test_encode_refuses(void **state)
{
    st *s = *state;
    testca_cert ed = {0};
    testca_opts o = {0};
    uint8_t *der = (uint8_t *)1;
    size_t len = 1;

    o.cn = "SN-0001";
    o.alg = CUSTOS_ALG_ED25519;
    assert_int_equal(testca_issue(&ed, &s->pki.dev_ca, &o), 0);
    assert_int_equal(
        custos_receipt_encode(&der, &len, REQ_ID, DEV_ID, s->sha, s->pki.now, ed.key, ed.cert),
        CUSTOS_ERR_UNSUPPORTED);
    assert_null(der);
    assert_int_equal(len, 0);
    /* key and certificate that do not match */
    assert_int_equal(custos_receipt_encode(&der, &len, REQ_ID, DEV_ID, s->sha, s->pki.now,
                                           s->pki.boot.key, s->pki.dev.cert),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_receipt_encode(&der, &len, "not-an-id", DEV_ID, s->sha, s->pki.now,
                                           s->pki.dev.key, s->pki.dev.cert),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_receipt_encode(&der, &len, REQ_ID, DEV_ID, s->sha, s->pki.now, NULL,
                                           s->pki.dev.cert),
                     CUSTOS_ERR_ARG);
    assert_null(der);
    testca_cert_free(&ed);
}

static void test_wrong_content_type(void **state)
{
    st *s = *state;
    char *content = fx_content(s->der, s->len);
    uint8_t *der = NULL;
    size_t len = 0;

    assert_non_null(content);
    assert_int_equal(
        sign_like_receipt(&der, &len, CUSTOS_OID_CT_PROFILE, content, &s->pki.dev, NULL), 0);
    assert_int_equal(decode(der, len), CUSTOS_ERR_MALFORMED);
    assert_non_null(strstr(custos_error_last()->message, "not an install receipt"));
    free(der);
    free(content);
}

static void test_signer_binding(void **state)
{
    st *s = *state;
    char *content = fx_content(s->der, s->len);
    custos_signer sg = fx_signer(&s->pki.dev, NULL);
    custos_receipt_doc *d = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    assert_non_null(content);
    /* signed without signingCertificateV2 */
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_RECEIPT, content, sg), 0);
    assert_int_equal(decode(der, len), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "signer");
    free(der);
    der = NULL;
    /* a chain carried along: only the signer's certificate is allowed */
    assert_int_equal(sign_like_receipt(&der, &len, CUSTOS_OID_CT_RECEIPT, content, &s->pki.dev,
                                       s->pki.dev_ca.cert),
                     0);
    assert_int_equal(decode(der, len), CUSTOS_ERR_MALFORMED);
    free(der);
    der = NULL;
    /* decode trusts no issuer: any signer verifies, and the caller compares
     * it with the certificate it issued */
    assert_int_equal(
        sign_like_receipt(&der, &len, CUSTOS_OID_CT_RECEIPT, content, &s->pki.boot, NULL), 0);
    assert_int_equal(custos_receipt_decode(&d, der, len), 0);
    assert_int_equal(X509_cmp(d->signer, s->pki.boot.cert), 0);
    assert_int_not_equal(X509_cmp(d->signer, s->pki.dev.cert), 0);
    custos_receipt_doc_free(d);
    free(der);
    free(content);
}

static void test_strict_json(void **state)
{
    st *s = *state;

    assert_int_equal(decode_edited(s, "\"format\":", "\"format\":"), 0);
    assert_int_equal(decode_edited(s, "\"format\":", "\"extra\":true,\"format\":"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":2"), CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":2,\"zz\":1"),
                     CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(decode_edited(s, "custos-receipt", "custos-profile"), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "format");
    assert_int_equal(decode_edited(s, "\"profile_sha256\":\"a0", "\"profile_sha256\":\"A0"),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "profile_sha256");
    assert_int_equal(decode_edited(s, "\"profile_sha256\":\"a0", "\"profile_sha256\":\""),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"request_id\":\"b", "\"request_id\":\"B"),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "request_id");
    assert_int_equal(decode_edited(s, "\"device_id\":\"", "\"device_id\":\"x"), CUSTOS_ERR_LIMIT);
    assert_int_equal(decode_edited(s, "\"time\":\"", "\"time\":\"now"), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "time");
    assert_int_equal(decode_edited(s, "\"time\":", "\"time\":1,\"time\":"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"device_id\":\"" DEV_ID "\",", ""), CUSTOS_ERR_MALFORMED);
}

/* One flipped copy for fx_count_accepted_flips: 0 when it is accepted. */
static int decode_flipped(const uint8_t *der, size_t len, void *ctx)
{
    st *s = ctx;
    custos_receipt_doc *d = NULL;

    if (custos_receipt_decode(&d, der, len) != 0) {
        assert_null(d);
        return -1;
    }
    assert_string_equal(d->request_id, REQ_ID);
    assert_memory_equal(d->profile_sha256, s->sha, 32);
    custos_receipt_doc_free(d);
    return 0;
}

static void test_flipped_bytes(void **state)
{
    st *s = *state;

    /* Not one byte may change unnoticed, the embedded certificate
     * included: its hash is in the signed attributes. */
    assert_int_equal(fx_count_accepted_flips(s->der, s->len, decode_flipped, s), 0);
}

static void test_trailing_and_size(void **state)
{
    st *s = *state;
    uint8_t *big = calloc(1, CUSTOS_MAX_RECEIPT_SIZE + 1);

    assert_non_null(big);
    memcpy(big, s->der, s->len);
    assert_int_equal(decode(big, s->len + 1), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode(big, CUSTOS_MAX_RECEIPT_SIZE + 1), CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(decode(s->der, s->len - 1), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode(big, 0), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode(NULL, 0), CUSTOS_ERR_MALFORMED);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_other_algorithms),   cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_wrong_content_type), cmocka_unit_test(test_signer_binding),
        cmocka_unit_test(test_strict_json),        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_trailing_and_size),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
