/* .mcpr provisioning request: round trips for both kinds, signer roles,
 * proof of possession, field limits, strict JSON and tampering. */
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
    custos_request_doc *doc;
    uint8_t *der;
    size_t len;
} st;

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));
    custos_signer sg;

    if (s == NULL || fx_pki_init(&s->pki, 0) != 0 ||
        fx_request_doc(&s->doc, CUSTOS_REQUEST_INITIAL, 2) != 0)
        return -1;
    sg = fx_signer(&s->pki.boot, s->pki.boot_chain);
    if (custos_request_encode(&s->der, &s->len, s->doc, &sg) != 0)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;

    custos_request_doc_free(s->doc);
    free(s->der);
    fx_pki_free(&s->pki);
    free(s);
    return 0;
}

static custos_err decode(st *s, const uint8_t *der, size_t len)
{
    custos_trust t = fx_trust(&s->pki);
    custos_request_doc *d = NULL;
    custos_err rc = custos_request_decode(&d, der, len, &t);

    if (rc == 0)
        custos_request_doc_free(d);
    else
        assert_null(d);
    return rc;
}

static void test_round_trip_initial(void **state)
{
    st *s = *state;
    custos_trust t = fx_trust(&s->pki);
    custos_request_doc *d = NULL;
    uint8_t digest[32];
    int64_t na = 0;

    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP);
    assert_int_equal(custos_request_decode(&d, s->der, s->len, &t), 0);
    assert_string_equal(d->request_id, s->doc->request_id);
    assert_int_equal(d->kind, CUSTOS_REQUEST_INITIAL);
    assert_string_equal(d->system, "pump-x2");
    assert_string_equal(d->component, "controller");
    assert_string_equal(d->package_id, s->doc->package_id);
    assert_string_equal(d->device_id, "");
    assert_string_equal(d->serial, "SN-0001");
    assert_string_equal(d->hardware_id, "hw:00:11:22");
    assert_string_equal(d->model, "X2 Pump");
    assert_string_equal(d->firmware, "1.2.3");
    assert_int_equal(d->n_manufacturer, 1);
    assert_string_equal(d->manufacturer[0].key, "plant");
    assert_string_equal(d->manufacturer[0].value, "Lyon");
    assert_int_equal(d->n_metadata, 1);
    assert_string_equal(d->metadata[0].key, "location");
    assert_string_equal(d->metadata[0].value, "ward 3");
    assert_int_equal(d->n_keys, 2);
    assert_string_equal(d->keys[0].template_name, "tls");
    assert_string_equal(d->keys[1].template_name, "sign");
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(d->keys[1].csr),
                                 X509_REQ_get0_pubkey(s->doc->keys[1].csr)),
                     1);
    assert_memory_equal(d->nonce, s->doc->nonce, 16);
    assert_int_equal(d->time, s->doc->time);
    assert_int_equal(X509_cmp(d->signer, s->pki.boot.cert), 0);
    assert_int_equal(custos_asn1_time_to_unix(&na, X509_get0_notAfter(s->pki.boot.cert)), 0);
    assert_int_equal(d->signer_not_after, na);
    custos_sha256(digest, s->der, s->len);
    assert_memory_equal(d->digest, digest, 32);
    custos_request_doc_free(d);
}

static void test_round_trip_reprovision(void **state)
{
    st *s = *state;
    custos_request_doc *doc = NULL, *d = NULL;
    custos_signer sg = fx_signer(&s->pki.dev, s->pki.dev_chain);
    custos_trust t = fx_trust(&s->pki);
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(fx_request_doc(&doc, CUSTOS_REQUEST_REPROVISION, 1), 0);
    doc->hardware_id[0] = '\0';
    doc->model[0] = '\0';
    doc->firmware[0] = '\0';
    doc->n_manufacturer = 0;
    doc->n_metadata = 0;
    assert_int_equal(custos_request_encode(&der, &len, doc, &sg), 0);
    assert_int_equal(custos_request_decode(&d, der, len, &t), 0);
    assert_int_equal(d->kind, CUSTOS_REQUEST_REPROVISION);
    assert_string_equal(d->device_id, doc->device_id);
    assert_string_equal(d->package_id, "");
    assert_string_equal(d->model, "");
    assert_int_equal(d->n_metadata, 0);
    assert_int_equal(X509_cmp(d->signer, s->pki.dev.cert), 0);
    custos_request_doc_free(d);

    /* a reprovisioning request signed with the bootstrap key is refused */
    free(der);
    sg = fx_signer(&s->pki.boot, s->pki.boot_chain);
    assert_int_equal(custos_request_encode(&der, &len, doc, &sg), 0);
    assert_int_equal(decode(s, der, len), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "signer");
    free(der);
    custos_request_doc_free(doc);
}

static void test_initial_needs_bootstrap_signer(void **state)
{
    st *s = *state;
    custos_signer sg = fx_signer(&s->pki.dev, s->pki.dev_chain);
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(custos_request_encode(&der, &len, s->doc, &sg), 0);
    assert_int_equal(decode(s, der, len), CUSTOS_ERR_UNTRUSTED);
    assert_string_equal(custos_error_last()->field, "signer");
    free(der);
}

static void test_untrusted_root(void **state)
{
    st *s = *state;
    testca_cert other = {0};
    custos_trust t = fx_trust(&s->pki);
    custos_request_doc *d = NULL;

    assert_int_equal(testca_root(&other, "Other Root"), 0);
    t.store = testca_store(&other);
    assert_non_null(t.store);
    assert_int_equal(custos_request_decode(&d, s->der, s->len, &t), CUSTOS_ERR_UNTRUSTED);
    assert_null(d);
    X509_STORE_free(t.store);
    testca_cert_free(&other);
}

static void test_expired_signer(void **state)
{
    st *s = *state;
    custos_trust t = fx_trust(&s->pki);
    custos_request_doc *d = NULL;

    t.now = s->pki.now + 60 * 86400; /* past the bootstrap certificate's notAfter */
    assert_int_equal(custos_request_decode(&d, s->der, s->len, &t), CUSTOS_ERR_EXPIRED);
    assert_null(d);
}

static void test_pop(void **state)
{
    st *s = *state;
    custos_request_doc *doc = NULL;
    custos_signer sg = fx_signer(&s->pki.boot, s->pki.boot_chain);
    EVP_PKEY *other = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    assert_int_equal(fx_request_doc(&doc, CUSTOS_REQUEST_INITIAL, 2), 0);
    /* the CSR carries one key but is signed by another: no proof of possession */
    assert_int_equal(custos_key_generate(&other, CUSTOS_ALG_ECDSA_P256), 0);
    assert_true(X509_REQ_sign(doc->keys[0].csr, other, EVP_sha256()) > 0);
    assert_int_equal(custos_request_encode(&der, &len, doc, &sg), 0);
    assert_int_equal(decode(s, der, len), CUSTOS_ERR_POP);
    assert_string_equal(custos_error_last()->message, "proof of possession failed for key 'tls'");
    free(der);
    EVP_PKEY_free(other);
    custos_request_doc_free(doc);
}

static void test_csr_build(void **state)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    char cn[80];

    (void)state;
    assert_int_equal(custos_key_generate(&key, CUSTOS_ALG_ED25519), 0);
    assert_int_equal(custos_csr_build(&req, key, "pump-x2", "controller", "SN-9", "tls"), 0);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    assert_true(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
                                          (int)sizeof(cn)) > 0);
    assert_string_equal(cn, "SN-9");
    X509_REQ_free(req);
    req = NULL;
    assert_int_equal(custos_csr_build(&req, key, "pump-x2", "controller", "bad serial", "tls"),
                     CUSTOS_ERR_MALFORMED);
    assert_null(req);
    EVP_PKEY_free(key);
}

static void test_encode_limits(void **state)
{
    st *s = *state;
    custos_request_doc *d = s->doc;
    custos_signer sg = fx_signer(&s->pki.boot, s->pki.boot_chain);
    uint8_t *der = NULL;
    size_t len = 0;
    custos_meta_entry saved = d->metadata[0];

    /* metadata key charset */
    snprintf(d->metadata[0].key, sizeof(d->metadata[0].key), "Loc ation");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "metadata.Loc ation");
    d->metadata[0] = saved;
    /* metadata value: control characters */
    snprintf(d->metadata[0].value, sizeof(d->metadata[0].value), "a\tb");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "metadata.location");
    d->metadata[0] = saved;
    /* more than 16 entries */
    for (size_t i = 0; i < CUSTOS_MAX_META_ENTRIES; i++) {
        snprintf(d->metadata[i].key, sizeof(d->metadata[i].key), "k%zu", i);
        snprintf(d->metadata[i].value, sizeof(d->metadata[i].value), "v");
    }
    d->n_metadata = CUSTOS_MAX_META_ENTRIES + 1;
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_LIMIT);
    assert_string_equal(custos_error_last()->field, "metadata");
    d->n_metadata = 2;
    snprintf(d->metadata[1].key, sizeof(d->metadata[1].key), "k0");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_DUPLICATE);
    d->n_metadata = 1;
    d->metadata[0] = saved;
    /* serial */
    snprintf(d->serial, sizeof(d->serial), "-bad");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "device.serial");
    snprintf(d->serial, sizeof(d->serial), "SN-0001");
    /* keys: none, duplicate */
    d->n_keys = 0;
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_LIMIT);
    d->n_keys = 2;
    snprintf(d->keys[1].template_name, sizeof(d->keys[1].template_name), "tls");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_DUPLICATE);
    snprintf(d->keys[1].template_name, sizeof(d->keys[1].template_name), "sign");
    /* kind/ids */
    snprintf(d->device_id, sizeof(d->device_id), "ccccccccccccccccccccccccca");
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), CUSTOS_ERR_MALFORMED);
    d->device_id[0] = '\0';
    assert_null(der);
    assert_int_equal(custos_request_encode(&der, &len, d, &sg), 0);
    free(der);
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
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_REQUEST, edited,
                                 fx_signer(&s->pki.boot, s->pki.boot_chain)),
                     0);
    rc = decode(s, der, len);
    free(der);
    free(edited);
    free(content);
    return rc;
}

/* Replace keys[0].csr with @p b64 and re-sign with the bootstrap key. */
static custos_err decode_csr_replaced(st *s, const char *b64)
{
    char *content = fx_content(s->der, s->len);
    json_t *j = NULL;
    char *text = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_err rc;

    assert_non_null(content);
    j = json_loads(content, 0, NULL);
    assert_non_null(j);
    assert_int_equal(
        json_object_set_new(json_array_get(json_object_get(j, "keys"), 0), "csr", json_string(b64)),
        0);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    assert_int_equal(fx_sign_raw(&der, &len, CUSTOS_OID_CT_REQUEST, text,
                                 fx_signer(&s->pki.boot, s->pki.boot_chain)),
                     0);
    rc = decode(s, der, len);
    free(der);
    free(text);
    json_decref(j);
    free(content);
    return rc;
}

static void test_strict_json(void **state)
{
    st *s = *state;
    char big[400];
    char *csr = NULL;
    uint8_t *junk = calloc(1, CUSTOS_MAX_CSR_SIZE + 1);
    char *edit = NULL;

    assert_int_equal(decode_edited(s, "\"format\":", "\"format\":"), 0);
    assert_int_equal(decode_edited(s, "\"format\":", "\"extra\":true,\"format\":"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"serial\":", "\"colour\":\"red\",\"serial\":"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":2"), CUSTOS_ERR_UNSUPPORTED);
    /* a newer version with a field this version does not know: still "unsupported" */
    assert_int_equal(decode_edited(s, "\"version\":1", "\"version\":2,\"zz_new\":1"),
                     CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(decode_edited(s, "\"initial\"", "\"other\""), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_edited(s, "\"location\":", "\"Location\":"), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "metadata.Location");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    edit = malloc(sizeof(big) + 32);
    assert_non_null(edit);
    snprintf(edit, sizeof(big) + 32, "\"location\":\"%s", big);
    assert_int_equal(decode_edited(s, "\"location\":\"", edit), CUSTOS_ERR_LIMIT);
    assert_string_equal(custos_error_last()->field, "metadata.location");
    free(edit);
    /* 17 metadata entries */
    edit = calloc(1, 512);
    assert_non_null(edit);
    snprintf(edit, 512, "\"metadata\":{");
    for (int i = 0; i < CUSTOS_MAX_META_ENTRIES; i++)
        snprintf(edit + strlen(edit), 512 - strlen(edit), "\"k%d\":\"v\",", i);
    assert_int_equal(decode_edited(s, "\"metadata\":{", edit), CUSTOS_ERR_LIMIT);
    assert_string_equal(custos_error_last()->field, "metadata");
    free(edit);
    /* both ids on an initial request */
    assert_int_equal(
        decode_edited(s, "\"format\":", "\"device_id\":\"ccccccccccccccccccccccccca\",\"format\":"),
        CUSTOS_ERR_MALFORMED);
    /* nonce of the wrong length */
    assert_int_equal(decode_edited(s, "\"nonce\":\"", "\"nonce\":\"AAAA"), CUSTOS_ERR_MALFORMED);
    /* oversize CSR, and a CSR that is not DER PKCS#10 */
    assert_non_null(junk);
    assert_int_equal(custos_b64_encode(&csr, junk, CUSTOS_MAX_CSR_SIZE + 1), 0);
    assert_int_equal(decode_csr_replaced(s, csr), CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(decode_csr_replaced(s, "AAAA"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(decode_csr_replaced(s, "not base64!"), CUSTOS_ERR_MALFORMED);
    free(csr);
    free(junk);
}

/* One flipped copy for fx_count_accepted_flips: 0 when it is accepted. */
static int decode_flipped(const uint8_t *der, size_t len, void *ctx)
{
    st *s = ctx;
    custos_trust t = fx_trust(&s->pki);
    custos_request_doc *d = NULL;

    if (custos_request_decode(&d, der, len, &t) != 0) {
        assert_null(d);
        return -1;
    }
    assert_string_equal(d->request_id, s->doc->request_id);
    assert_memory_equal(d->nonce, s->doc->nonce, 16);
    custos_request_doc_free(d);
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
    uint8_t *big = calloc(1, CUSTOS_MAX_REQUEST_SIZE + 1);

    assert_non_null(big);
    memcpy(big, s->der, s->len);
    assert_true(decode(s, big, s->len + 1) < 0);
    assert_int_equal(decode(s, big, CUSTOS_MAX_REQUEST_SIZE + 1), CUSTOS_ERR_TOO_LARGE);
    assert_true(decode(s, s->der, s->len - 1) < 0);
    assert_true(decode(s, big, 0) < 0);
    free(big);
    custos_request_doc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_initial),
        cmocka_unit_test(test_round_trip_reprovision),
        cmocka_unit_test(test_initial_needs_bootstrap_signer),
        cmocka_unit_test(test_untrusted_root),
        cmocka_unit_test(test_expired_signer),
        cmocka_unit_test(test_pop),
        cmocka_unit_test(test_csr_build),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_trailing_and_size),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
