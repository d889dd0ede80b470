/* .mccp certified profile: round trip, signer role, certificate chains and
 * validity, strict JSON and tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/formats_fixture.h"

typedef struct st {
    fx_pki pki;
    custos_profile_doc *doc;
    uint8_t *der;
    size_t len;
} st;

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));
    custos_signer sg;

    if (s == NULL || fx_pki_init(&s->pki, 0) != 0 || fx_profile_doc(&s->doc, &s->pki, 2) != 0)
        return -1;
    sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    if (custos_profile_encode(&s->der, &s->len, s->doc, &sg) != 0)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;

    custos_profile_doc_free(s->doc);
    free(s->der);
    fx_pki_free(&s->pki);
    free(s);
    return 0;
}

static custos_err decode_at(st *s, const uint8_t *der, size_t len, int64_t now)
{
    custos_trust t = fx_trust(&s->pki);
    custos_profile_doc *d = NULL;
    custos_err rc;

    t.now = now;
    rc = custos_profile_decode(&d, der, len, &t);
    if (rc == 0)
        custos_profile_doc_free(d);
    else
        assert_null(d);
    return rc;
}

static custos_err decode(st *s, const uint8_t *der, size_t len)
{
    return decode_at(s, der, len, s->pki.now);
}

static void test_round_trip(void **state)
{
    st *s = *state;
    custos_trust t = fx_trust(&s->pki);
    custos_profile_doc *d = NULL;

    assert_int_equal(custos_profile_decode(&d, s->der, s->len, &t), 0);
    assert_string_equal(d->device_id, s->doc->device_id);
    assert_string_equal(d->request_id, s->doc->request_id);
    assert_memory_equal(d->request_sha256, s->doc->request_sha256, 32);
    assert_string_equal(d->system, "pump-x2");
    assert_string_equal(d->component, "controller");
    assert_string_equal(d->serial, "SN-0001");
    assert_int_equal(d->mock, 0);
    assert_int_equal(d->n_certs, 2);
    assert_string_equal(d->certs[0].template_name, "tls");
    assert_string_equal(d->certs[1].template_name, "sign");
    assert_int_equal(X509_cmp(d->certs[1].cert, s->doc->certs[1].cert), 0);
    assert_int_equal(sk_X509_num(d->chain), 1);
    assert_int_equal(X509_cmp(sk_X509_value(d->chain, 0), s->pki.dev_ca.cert), 0);
    assert_int_equal(sk_X509_num(d->root_of_trust), 1);
    assert_string_equal(d->services.cloud_url, "https://custos.example");
    assert_int_equal(d->services.n_gateways, 0);
    assert_int_equal(d->renewal_window_days, 30);
    assert_int_equal(d->issued, s->doc->issued);
    custos_profile_doc_free(d);
    assert_int_equal(fx_write_all_corpus(&s->pki), 0);
}

static void test_mock_flag(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    custos_trust t = fx_trust(&s->pki);
    custos_profile_doc *d = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    s->doc->mock = 1;
    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), 0);
    s->doc->mock = 0;
    assert_int_equal(custos_profile_decode(&d, der, len, &t), 0);
    assert_int_equal(d->mock, 1);
    custos_profile_doc_free(d);
    free(der);
}

static void test_wrong_signer_eku(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.pkg_signer, s->pki.root_chain);
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), 0);
    assert_true(decode(s, der, len) < 0);
    assert_int_equal(custos_error_last()->code, CUSTOS_ERR_UNTRUSTED);
    free(der);
}

static void test_foreign_device_cert(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    testca_cert root = {0}, ca = {0}, leaf = {0};
    X509 *saved = s->doc->certs[1].cert;
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(testca_root(&root, "Other Root"), 0);
    assert_int_equal(testca_intermediate(&ca, &root, "Device CA"), 0);
    assert_int_equal(testca_leaf(&leaf, &ca, "SN-0001", NID_client_auth), 0);
    s->doc->certs[1].cert = leaf.cert;
    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), 0);
    s->doc->certs[1].cert = saved;
    assert_int_equal(decode(s, der, len), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "certificates.sign");
    free(der);
    testca_cert_free(&leaf);
    testca_cert_free(&ca);
    testca_cert_free(&root);
}

static void test_missing_chain(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    STACK_OF(X509) *saved = s->doc->chain;
    uint8_t *der = NULL;
    size_t len = 0;

    s->doc->chain = NULL;
    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), 0);
    s->doc->chain = saved;
    assert_int_equal(decode(s, der, len), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "certificates.tls");
    free(der);
}

static void test_expired_device_cert(void **state)
{
    st *s = *state;

    /* device certificates live one year, the signer two */
    assert_int_equal(decode_at(s, s->der, s->len, s->pki.now + 400 * 86400), CUSTOS_ERR_EXPIRED);
    assert_string_equal(custos_error_last()->field, "certificates.tls");
    assert_int_equal(decode_at(s, s->der, s->len, s->pki.now - 86400), CUSTOS_ERR_NOT_YET_VALID);
}

static void test_untrusted_root(void **state)
{
    st *s = *state;
    testca_cert other = {0};
    custos_trust t = fx_trust(&s->pki);
    custos_profile_doc *d = NULL;

    assert_int_equal(testca_root(&other, "Other Root"), 0);
    t.store = testca_store(&other);
    assert_non_null(t.store);
    assert_int_equal(custos_profile_decode(&d, s->der, s->len, &t), CUSTOS_ERR_UNTRUSTED);
    assert_null(d);
    X509_STORE_free(t.store);
    testca_cert_free(&other);
}

static void test_encode_refuses_bad_doc(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    uint8_t *der = NULL;
    size_t len = 0;

    snprintf(s->doc->certs[1].template_name, sizeof(s->doc->certs[1].template_name), "tls");
    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), CUSTOS_ERR_DUPLICATE);
    snprintf(s->doc->certs[1].template_name, sizeof(s->doc->certs[1].template_name), "sign");
    s->doc->n_certs = 0;
    assert_int_equal(custos_profile_encode(&der, &len, s->doc, &sg), CUSTOS_ERR_LIMIT);
    s->doc->n_certs = 2;
    assert_null(der);
    custos_profile_doc_free(NULL);
}

static custos_err decode_edited(st *s, const char *from, const char *to)
{
    char *content = fx_content(s->der, s->len);
    char *edited = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_err rc;

    assert_non_null(content);
    edited = fx_replace(content, from, to);
    assert_non_null(edited);
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_PROFILE, edited,
                                 fx_signer(&s->pki.prof_signer, s->pki.root_chain)),
                     0);
    rc = decode(s, der, len);
    free(der);
    free(edited);
    free(content);
    return rc;
}

static void test_strict_json(void **state)
{
    st *s = *state;

    assert_int_equal(decode_edited(s, "\"format\":", "\"format\":"), 0);
    assert_int_equal(decode_edited(s, "\"format\":", "\"extra\":null,\"format\":"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(
        decode_edited(s, "\"renewal_window_days\":", "\"policy\":1,\"renewal_window_days\":"),
        CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":7"), CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(decode_edited(s, "\"mock\":false", "\"mock\":0"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"request_sha256\":\"ab", "\"request_sha256\":\"zz"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"request_sha256\":\"ab", "\"request_sha256\":\""),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"renewal_window_days\":30", "\"renewal_window_days\":-1"),
                     CUSTOS_ERR_LIMIT);
    assert_int_equal(decode_edited(s, "\"root_of_trust\":[", "\"root_of_trust\":[\"AAAA\","),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"issued\":\"", "\"issued\":\"yesterday"),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "issued");
}

/* One flipped copy for fx_count_accepted_flips: 0 when it is accepted. */
static int decode_flipped(const uint8_t *der, size_t len, void *ctx)
{
    st *s = ctx;
    custos_trust t = fx_trust(&s->pki);
    custos_profile_doc *d = NULL;

    if (custos_profile_decode(&d, der, len, &t) != 0) {
        assert_null(d);
        return -1;
    }
    assert_string_equal(d->device_id, s->doc->device_id);
    assert_memory_equal(d->request_sha256, s->doc->request_sha256, 32);
    custos_profile_doc_free(d);
    return 0;
}

static void test_flipped_bytes(void **state)
{
    st *s = *state;

    /* Not one byte may change unnoticed: the verifier also pins the
     * CMS version numbers and signatureAlgorithm and refuses carried
     * certificates that its verification did not use. */
    assert_int_equal(fx_count_accepted_flips(s->der, s->len, decode_flipped, s), 0);
}

static void test_trailing_and_size(void **state)
{
    st *s = *state;
    uint8_t *big = calloc(1, CUSTOS_MAX_PROFILE_SIZE + 1);

    assert_non_null(big);
    memcpy(big, s->der, s->len);
    assert_true(decode(s, big, s->len + 1) < 0);
    assert_int_equal(decode(s, big, CUSTOS_MAX_PROFILE_SIZE + 1), CUSTOS_ERR_TOO_LARGE);
    assert_true(decode(s, s->der, s->len - 1) < 0);
    assert_true(decode(s, big, 0) < 0);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_mock_flag),
        cmocka_unit_test(test_wrong_signer_eku),  cmocka_unit_test(test_foreign_device_cert),
        cmocka_unit_test(test_missing_chain),     cmocka_unit_test(test_expired_device_cert),
        cmocka_unit_test(test_untrusted_root),    cmocka_unit_test(test_encode_refuses_bad_doc),
        cmocka_unit_test(test_strict_json),       cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_trailing_and_size),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
