/* .mcpp provisioning package: encode/decode round trip, bootstrap key
 * encryption, and the refusals (tampering, expiry, wrong roles, strict JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "support/formats_fixture.h"

typedef struct st {
    fx_pki pki;
    custos_package_doc *doc;
    uint8_t *der;
    size_t len;
} st;

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));
    custos_signer sg;

    if (s == NULL || fx_pki_init(&s->pki, 0) != 0 || fx_package_doc(&s->doc, &s->pki) != 0)
        return -1;
    sg = fx_signer(&s->pki.pkg_signer, s->pki.root_chain);
    if (custos_package_encode(&s->der, &s->len, s->doc, &sg) != 0)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;

    custos_package_doc_free(s->doc);
    free(s->der);
    fx_pki_free(&s->pki);
    free(s);
    return 0;
}

static void test_round_trip(void **state)
{
    st *s = *state;
    custos_package_doc *d = NULL;
    const custos_component_def *c;
    EVP_PKEY *key = NULL;

    assert_int_equal(custos_package_decode(&d, s->der, s->len, NULL, s->pki.now), 0);
    assert_non_null(d);
    assert_string_equal(d->package_id, s->doc->package_id);
    assert_string_equal(d->system, "pump-x2");
    assert_int_equal(d->created, s->doc->created);
    assert_int_equal(d->expires, s->doc->expires);
    assert_int_equal(d->n_components, 2);
    c = custos_package_doc_component(d, "controller");
    assert_non_null(c);
    assert_int_equal(c->n_templates, 2);
    assert_string_equal(c->templates[1].name, "sign");
    assert_null(custos_package_doc_component(d, "nope"));
    assert_string_equal(d->services.cloud_url, "https://custos.example");
    assert_int_equal(d->services.n_gateways, 1);
    assert_string_equal(d->services.gateways[0], "https://gw.example");
    assert_int_equal(sk_X509_num(d->root_of_trust), 1);
    assert_int_equal(X509_cmp(sk_X509_value(d->root_of_trust, 0), s->pki.root.cert), 0);
    assert_int_equal(X509_cmp(d->bootstrap_cert, s->pki.boot.cert), 0);
    assert_int_equal(sk_X509_num(d->bootstrap_chain), 1);
    assert_int_equal(custos_package_key_decrypt(&key, d->bootstrap_key_enc,
                                                d->bootstrap_key_enc_len, FX_PASSPHRASE,
                                                strlen(FX_PASSPHRASE)),
                     0);
    assert_int_equal(custos_key_public_equal(key, s->pki.boot.key), 1);
    EVP_PKEY_free(key);
    custos_package_doc_free(d);
}

static void test_pinned_root(void **state)
{
    st *s = *state;
    custos_package_doc *d = NULL;
    testca_cert other = {0};

    assert_int_equal(custos_package_decode(&d, s->der, s->len, s->pki.root.cert, s->pki.now), 0);
    custos_package_doc_free(d);
    d = NULL;
    assert_int_equal(testca_root(&other, "Other Root"), 0);
    assert_int_equal(custos_package_decode(&d, s->der, s->len, other.cert, s->pki.now),
                     CUSTOS_ERR_UNTRUSTED);
    assert_null(d);
    testca_cert_free(&other);
}

static void test_wrong_passphrase(void **state)
{
    st *s = *state;
    EVP_PKEY *key = NULL;

    assert_int_equal(custos_package_key_decrypt(&key, s->doc->bootstrap_key_enc,
                                                s->doc->bootstrap_key_enc_len, "wrong", 5),
                     CUSTOS_ERR_PASSPHRASE);
    assert_null(key);
    assert_string_equal(custos_error_last()->message,
                        "wrong passphrase for the provisioning package");
    assert_int_equal(custos_package_key_decrypt(&key, s->doc->bootstrap_key_enc,
                                                s->doc->bootstrap_key_enc_len, "", 0),
                     CUSTOS_ERR_PASSPHRASE);
    /* not PKCS#8 at all */
    assert_int_equal(
        custos_package_key_decrypt(&key, (const uint8_t *)"\x30\x03\x02\x01\x01", 5, "x", 1),
        CUSTOS_ERR_MALFORMED);
    assert_null(key);
}

static void test_expired(void **state)
{
    fx_pki p;
    custos_package_doc *doc = NULL, *d = NULL;
    custos_signer sg;
    uint8_t *der = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(fx_pki_init(&p, (int64_t)time(NULL) + 600), 0);
    assert_int_equal(fx_package_doc(&doc, &p), 0);
    sg = fx_signer(&p.pkg_signer, p.root_chain);
    assert_int_equal(custos_package_encode(&der, &len, doc, &sg), 0);
    assert_int_equal(custos_package_decode(&d, der, len, NULL, p.now), 0);
    custos_package_doc_free(d);
    d = NULL;
    assert_int_equal(custos_package_decode(&d, der, len, NULL, p.now + 3600), CUSTOS_ERR_EXPIRED);
    assert_null(d);
    assert_non_null(strstr(custos_error_last()->message, "provisioning package expired at "));
    free(der);
    custos_package_doc_free(doc);
    fx_pki_free(&p);
}

static void test_wrong_signer_eku(void **state)
{
    st *s = *state;
    custos_package_doc *d = NULL;
    custos_signer sg = fx_signer(&s->pki.prof_signer, s->pki.root_chain);
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), 0);
    assert_true(custos_package_decode(&d, der, len, NULL, s->pki.now) < 0);
    assert_int_equal(custos_error_last()->code, CUSTOS_ERR_UNTRUSTED);
    assert_null(d);
    free(der);
}

/* A package signed under a root that is not in its own root_of_trust. */
static void test_foreign_root(void **state)
{
    st *s = *state;
    testca_cert root = {0}, signer = {0};
    STACK_OF(X509) *chain = NULL;
    custos_package_doc *d = NULL;
    custos_signer sg;
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(testca_root(&root, "Attacker Root"), 0);
    assert_int_equal(testca_leaf(&signer, &root, "Attacker Signing",
                                 custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING)),
                     0);
    chain = testca_stack(&root, NULL, NULL);
    sg = fx_signer(&signer, chain);
    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), 0);
    assert_int_equal(custos_package_decode(&d, der, len, NULL, s->pki.now), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "root_of_trust");
    assert_null(d);
    free(der);
    sk_X509_pop_free(chain, X509_free);
    testca_cert_free(&signer);
    testca_cert_free(&root);
}

static void test_bootstrap_checks(void **state)
{
    st *s = *state;
    custos_package_doc *d = NULL;
    custos_signer sg = fx_signer(&s->pki.pkg_signer, s->pki.root_chain);
    uint8_t *der = NULL;
    size_t len = 0;
    X509 *saved = s->doc->bootstrap_cert;
    int64_t expires = s->doc->expires;

    /* expires must equal the bootstrap notAfter */
    s->doc->expires = expires + 1;
    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), 0);
    assert_int_equal(custos_package_decode(&d, der, len, NULL, s->pki.now), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "expires");
    free(der);
    der = NULL;

    /* the bootstrap certificate must carry the bootstrap EKU */
    s->doc->bootstrap_cert = s->pki.dev.cert;
    assert_int_equal(
        custos_asn1_time_to_unix(&s->doc->expires, X509_get0_notAfter(s->pki.dev.cert)), 0);
    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), 0);
    assert_int_equal(custos_package_decode(&d, der, len, NULL, s->pki.now), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "bootstrap.certificate");
    free(der);
    der = NULL;
    s->doc->bootstrap_cert = saved;
    s->doc->expires = expires;
    assert_null(d);
}

static void test_bootstrap_chain_broken(void **state)
{
    st *s = *state;
    custos_package_doc *d = NULL;
    custos_signer sg = fx_signer(&s->pki.pkg_signer, s->pki.root_chain);
    STACK_OF(X509) *saved = s->doc->bootstrap_chain;
    uint8_t *der = NULL;
    size_t len = 0;

    s->doc->bootstrap_chain = NULL; /* the bootstrap CA is missing */
    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), 0);
    s->doc->bootstrap_chain = saved;
    assert_int_equal(custos_package_decode(&d, der, len, NULL, s->pki.now), CUSTOS_ERR_UNTRUSTED);
    assert_null(d);
    free(der);
}

/* One flipped copy for fx_count_accepted_flips: 0 when it is accepted. */
static int decode_flipped(const uint8_t *der, size_t len, void *ctx)
{
    st *s = ctx;
    custos_package_doc *d = NULL;

    if (custos_package_decode(&d, der, len, NULL, s->pki.now) != 0) {
        assert_null(d);
        return -1;
    }
    assert_string_equal(d->package_id, s->doc->package_id);
    assert_int_equal(X509_cmp(d->bootstrap_cert, s->pki.boot.cert), 0);
    custos_package_doc_free(d);
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
    custos_package_doc *d = NULL;
    uint8_t *big = calloc(1, CUSTOS_MAX_PACKAGE_SIZE + 1);

    assert_non_null(big);
    memcpy(big, s->der, s->len);
    assert_true(custos_package_decode(&d, big, s->len + 1, NULL, s->pki.now) < 0);
    assert_null(d);
    assert_int_equal(custos_package_decode(&d, big, CUSTOS_MAX_PACKAGE_SIZE + 1, NULL, s->pki.now),
                     CUSTOS_ERR_TOO_LARGE);
    assert_true(custos_package_decode(&d, s->der, s->len - 1, NULL, s->pki.now) < 0);
    assert_true(custos_package_decode(&d, big, 0, NULL, s->pki.now) < 0);
    assert_null(d);
    free(big);
}

/* Re-sign edited content with the real key: the strict parser must refuse it. */
static custos_err decode_edited(st *s, const char *from, const char *to)
{
    char *content = fx_content(s->der, s->len);
    char *edited = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_package_doc *d = NULL;
    custos_err rc;

    assert_non_null(content);
    edited = fx_replace(content, from, to);
    assert_non_null(edited);
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_PACKAGE, edited,
                                 fx_signer(&s->pki.pkg_signer, s->pki.root_chain)),
                     0);
    rc = custos_package_decode(&d, der, len, NULL, s->pki.now);
    if (rc == 0)
        custos_package_doc_free(d);
    else
        assert_null(d);
    free(der);
    free(edited);
    free(content);
    return rc;
}

static void test_strict_json(void **state)
{
    st *s = *state;

    /* unchanged re-sign still decodes */
    assert_int_equal(decode_edited(s, "\"format\":", "\"format\":"), 0);
    assert_int_equal(decode_edited(s, "\"format\":", "\"extra\":1,\"format\":"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":2"), CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(decode_edited(s, "\"custos-package\"", "\"custos-profile\""),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"system\":\"pump-x2\"", "\"system\":\"Pump X2\""),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "system");
    assert_int_equal(decode_edited(s, "\"cloud_url\":", "\"cloud\":"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"https://custos.example\"", "\"ftp://custos.example\""),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "services.cloud_url");
    assert_int_equal(decode_edited(s, "\"https://gw.example\"", "\"\""), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"created\":\"", "\"created\":\"x"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"encrypted_key\":\"", "\"encrypted_key\":\"AAAA"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "{", "{\"format\":\"custos-package\","),
                     CUSTOS_ERR_MALFORMED);
}

static void test_wrong_content_type(void **state)
{
    st *s = *state;
    char *content = fx_content(s->der, s->len);
    uint8_t *der = NULL;
    size_t len = 0;
    custos_package_doc *d = NULL;

    assert_non_null(content);
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_PROFILE, content,
                                 fx_signer(&s->pki.pkg_signer, s->pki.root_chain)),
                     0);
    assert_int_equal(custos_package_decode(&d, der, len, NULL, s->pki.now), CUSTOS_ERR_MALFORMED);
    assert_null(d);
    free(der);
    free(content);
}

static void test_encode_refuses_bad_doc(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.pkg_signer, s->pki.root_chain);
    uint8_t *der = NULL;
    size_t len = 0;
    size_t n = s->doc->n_components;

    s->doc->n_components = 0;
    assert_int_equal(custos_package_encode(&der, &len, s->doc, &sg), CUSTOS_ERR_LIMIT);
    assert_null(der);
    s->doc->n_components = n;
    custos_package_doc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_pinned_root),
        cmocka_unit_test(test_wrong_passphrase),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_wrong_signer_eku),
        cmocka_unit_test(test_foreign_root),
        cmocka_unit_test(test_bootstrap_checks),
        cmocka_unit_test(test_bootstrap_chain_broken),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_trailing_and_size),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_wrong_content_type),
        cmocka_unit_test(test_encode_refuses_bad_doc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
