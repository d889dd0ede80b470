/* Unit tests: the .mcpi private identity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "internal/format.h"
#include "support/testca.h"

static const uint8_t secret[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static custos_identity_doc *make_doc(int mock, size_t n_gens)
{
    static const custos_alg algs[] = {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384,
                                      CUSTOS_ALG_ED25519, CUSTOS_ALG_RSA_3072};
    static const char *const names[] = {"tls", "p384", "sign", "rsa"};
    custos_identity_doc *d = custos_identity_doc_new();
    testca_cert root = {0};

    assert_non_null(d);
    memcpy(d->system, "pump-x2", 8);
    memcpy(d->component, "pump", 5);
    memcpy(d->serial, "SN-0001", 8);
    d->mock = mock;
    memcpy(d->services.cloud_url, "https://cloud.example", 22);
    assert_int_equal(testca_root(&root, "Root"), 0);
    d->root_of_trust = testca_stack(&root, NULL, NULL);
    testca_cert_free(&root);
    for (size_t g = 0; g < n_gens; g++) {
        assert_int_equal(custos_id_new(d->gens[g].request_id, NULL), 0);
        /* the RSA key only in the first generation keeps the test fast */
        for (size_t i = 0; i < (g == 0 ? 4u : 2u); i++) {
            memcpy(d->gens[g].keys[i].template_name, names[i], strlen(names[i]) + 1);
            assert_int_equal(custos_key_generate(&d->gens[g].keys[i].key, algs[i]), 0);
            d->gens[g].n_keys++;
        }
        d->n_gens++;
    }
    return d;
}

static void assert_same(const custos_identity_doc *a, const custos_identity_doc *b)
{
    assert_string_equal(a->system, b->system);
    assert_string_equal(a->component, b->component);
    assert_string_equal(a->serial, b->serial);
    assert_int_equal(a->mock, b->mock);
    assert_string_equal(a->services.cloud_url, b->services.cloud_url);
    assert_int_equal(sk_X509_num(a->root_of_trust), sk_X509_num(b->root_of_trust));
    assert_int_equal(
        X509_cmp(sk_X509_value(a->root_of_trust, 0), sk_X509_value(b->root_of_trust, 0)), 0);
    assert_int_equal(a->n_gens, b->n_gens);
    for (size_t g = 0; g < a->n_gens; g++) {
        assert_string_equal(a->gens[g].request_id, b->gens[g].request_id);
        assert_int_equal(a->gens[g].n_keys, b->gens[g].n_keys);
        for (size_t i = 0; i < a->gens[g].n_keys; i++) {
            assert_string_equal(a->gens[g].keys[i].template_name, b->gens[g].keys[i].template_name);
            assert_true(custos_key_public_equal(a->gens[g].keys[i].key, b->gens[g].keys[i].key));
            assert_int_equal(EVP_PKEY_eq(a->gens[g].keys[i].key, b->gens[g].keys[i].key), 1);
        }
    }
}

static void test_locked_roundtrip(void **state)
{
    custos_identity_doc *d = make_doc(0, 2), *back = NULL;
    uint8_t *enc = NULL;
    size_t len = 0;
    json_t *h = NULL;

    (void)state;
    assert_int_equal(custos_identity_encode(&enc, &len, d, secret, sizeof(secret), NULL), 0);
    assert_memory_equal(enc, "CUSTOSPI\x01", 9);
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)), 0);
    assert_same(d, back);
    assert_non_null(custos_identity_doc_gen(back, d->gens[1].request_id));
    assert_null(custos_identity_doc_gen(back, "nope"));

    assert_int_equal(custos_identity_header(&h, enc, len), 0);
    assert_string_equal(json_string_value(json_object_get(h, "lock")), "hkdf-sha256/aes-256-gcm");
    assert_string_equal(json_string_value(json_object_get(h, "serial")), "SN-0001");
    assert_false(json_is_true(json_object_get(h, "mock")));
    assert_int_equal(json_array_size(json_object_get(h, "generations")), 2);
    json_decref(h);

    /* The private keys never appear in the clear. */
    for (size_t i = 0; i + 5 < len; i++)
        assert_false(memcmp(enc + i, "pkcs8", 5) == 0);
    free(enc);
    custos_identity_doc_free(back);
    custos_identity_doc_free(d);
    custos_identity_doc_free(NULL);
}

static void test_mock_roundtrip(void **state)
{
    custos_identity_doc *d = make_doc(1, 1), *back = NULL;
    uint8_t *enc = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(custos_identity_encode(&enc, &len, d, secret, sizeof(secret), NULL),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_identity_encode(&enc, &len, d, NULL, 0, NULL), 0);
    assert_int_equal(custos_identity_decode(&back, enc, len, NULL, 0), 0);
    assert_same(d, back);
    assert_true(back->mock);
    custos_identity_doc_free(back);
    free(enc);
    custos_identity_doc_free(d);
}

static void test_wrong_secret_and_tamper(void **state)
{
    custos_identity_doc *d = make_doc(0, 1), *back = NULL;
    uint8_t *enc = NULL;
    size_t len = 0;
    uint8_t other[32];
    uint32_t hlen;

    (void)state;
    assert_int_equal(custos_identity_encode(&enc, &len, d, secret, sizeof(secret), NULL), 0);
    memcpy(other, secret, sizeof(other));
    other[0] ^= 0xff;
    assert_int_equal(custos_identity_decode(&back, enc, len, other, sizeof(other)),
                     CUSTOS_ERR_LOCKED);
    assert_non_null(strstr(custos_error_last()->message, "locked to another device"));
    assert_null(back);
    assert_int_equal(custos_identity_decode(&back, enc, len, NULL, 0), CUSTOS_ERR_ARG);
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, 16), CUSTOS_ERR_ARG);

    /* flip a byte in the ciphertext, in the tag, in the header */
    enc[len - 20] ^= 1;
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->message, "identity file was altered");
    enc[len - 20] ^= 1;
    enc[len - 1] ^= 1;
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_MALFORMED);
    enc[len - 1] ^= 1;
    hlen = (uint32_t)enc[9] << 24 | (uint32_t)enc[10] << 16 | (uint32_t)enc[11] << 8 | enc[12];
    for (size_t i = 13; i < 13 + hlen; i++) {
        if (memcmp(enc + i, "SN-0001", 7) == 0) {
            enc[i + 6] = '2'; /* still valid JSON and a valid serial */
            break;
        }
    }
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->message, "identity file was altered");
    /* truncated, trailing byte, bad magic, bad version, oversize header length */
    assert_int_not_equal(custos_identity_decode(&back, enc, len - 1, secret, sizeof(secret)), 0);
    assert_int_not_equal(custos_identity_decode(&back, enc, 12, secret, sizeof(secret)), 0);
    enc[0] = 'X';
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_MALFORMED);
    enc[0] = 'C';
    enc[8] = 2;
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_UNSUPPORTED);
    enc[8] = 1;
    enc[10] = 0xff;
    assert_int_equal(custos_identity_decode(&back, enc, len, secret, sizeof(secret)),
                     CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(
        custos_identity_decode(&back, enc, CUSTOS_MAX_IDENTITY_SIZE + 1, secret, sizeof(secret)),
        CUSTOS_ERR_TOO_LARGE);
    assert_null(back);
    free(enc);
    custos_identity_doc_free(d);
}

static uint8_t *forge(size_t *out_len, const char *header, const char *body)
{
    size_t hl = strlen(header), bl = strlen(body);
    uint8_t *b = malloc(13 + hl + bl);

    memcpy(b, "CUSTOSPI\x01", 9);
    b[9] = 0;
    b[10] = 0;
    b[11] = (uint8_t)(hl >> 8);
    b[12] = (uint8_t)hl;
    memcpy(b + 13, header, hl);
    memcpy(b + 13 + hl, body, bl);
    *out_len = 13 + hl + bl;
    return b;
}

static void test_forged_headers(void **state)
{
    custos_identity_doc *back = NULL;
    uint8_t *b;
    size_t len;
    json_t *h = NULL;
    static const char hdr_ok[] =
        "{\"format\":\"custos-identity\",\"version\":1,\"lock\":\"none\",\"system\":\"s\","
        "\"component\":\"c\",\"serial\":\"x\",\"mock\":true,\"root_of_trust\":[],"
        "\"services\":{\"cloud_url\":\"\",\"gateways\":[]},\"generations\":[]}";
    static const char *const bad[] = {
        /* unmocked identity in the clear */
        "{\"format\":\"custos-identity\",\"version\":1,\"lock\":\"none\",\"system\":\"s\","
        "\"component\":\"c\",\"serial\":\"x\",\"mock\":false,\"root_of_trust\":[],"
        "\"services\":{\"cloud_url\":\"\",\"gateways\":[]},\"generations\":[]}",
        /* unknown field */
        "{\"format\":\"custos-identity\",\"version\":1,\"lock\":\"none\",\"system\":\"s\","
        "\"component\":\"c\",\"serial\":\"x\",\"mock\":true,\"root_of_trust\":[],\"x\":1,"
        "\"services\":{\"cloud_url\":\"\",\"gateways\":[]},\"generations\":[]}",
        /* duplicate key */
        "{\"format\":\"custos-identity\",\"version\":1,\"lock\":\"none\",\"system\":\"s\","
        "\"system\":\"t\",\"component\":\"c\",\"serial\":\"x\",\"mock\":true,"
        "\"root_of_trust\":[],\"services\":{\"cloud_url\":\"\",\"gateways\":[]},"
        "\"generations\":[]}",
        /* version 2 */
        "{\"format\":\"custos-identity\",\"version\":2,\"lock\":\"none\",\"system\":\"s\","
        "\"component\":\"c\",\"serial\":\"x\",\"mock\":true,\"root_of_trust\":[],"
        "\"services\":{\"cloud_url\":\"\",\"gateways\":[]},\"generations\":[]}",
    };

    (void)state;
    b = forge(&len, hdr_ok, "{\"generations\":[]}");
    assert_int_equal(custos_identity_decode(&back, b, len, NULL, 0), 0);
    assert_int_equal(back->n_gens, 0);
    custos_identity_doc_free(back);
    back = NULL;
    free(b);
    b = forge(&len, hdr_ok, "{\"generations\":[],\"extra\":1}");
    assert_int_equal(custos_identity_decode(&back, b, len, NULL, 0), CUSTOS_ERR_MALFORMED);
    free(b);
    b = forge(&len, hdr_ok, "{\"generations\":[{}]}");
    assert_int_equal(custos_identity_decode(&back, b, len, NULL, 0), CUSTOS_ERR_MALFORMED);
    free(b);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = forge(&len, bad[i], "{\"generations\":[]}");
        assert_int_not_equal(custos_identity_decode(&back, b, len, NULL, 0), 0);
        assert_int_not_equal(custos_identity_header(&h, b, len), 0);
        assert_null(back);
        assert_null(h);
        free(b);
    }
}

static void test_mock_key_swap_detected(void **state)
{
    custos_identity_doc *d = make_doc(1, 1), *d2 = make_doc(1, 1), *back = NULL;
    uint8_t *a = NULL, *b = NULL, *mix;
    size_t alen = 0, blen = 0;
    uint32_t ah, bh;

    (void)state;
    memcpy(d2->gens[0].request_id, d->gens[0].request_id, sizeof(d->gens[0].request_id));
    assert_int_equal(custos_identity_encode(&a, &alen, d, NULL, 0, NULL), 0);
    assert_int_equal(custos_identity_encode(&b, &blen, d2, NULL, 0, NULL), 0);
    ah = (uint32_t)a[11] << 8 | a[12];
    bh = (uint32_t)b[11] << 8 | b[12];
    /* a's header with b's keys */
    mix = malloc(13 + ah + (blen - 13 - bh));
    memcpy(mix, a, 13 + ah);
    memcpy(mix + 13 + ah, b + 13 + bh, blen - 13 - bh);
    assert_int_equal(custos_identity_decode(&back, mix, 13 + ah + (blen - 13 - bh), NULL, 0),
                     CUSTOS_ERR_MALFORMED);
    assert_non_null(strstr(custos_error_last()->message, "does not match its header"));
    free(mix);
    free(a);
    free(b);
    custos_identity_doc_free(d);
    custos_identity_doc_free(d2);
}

static void test_encode_args(void **state)
{
    custos_identity_doc *d = make_doc(0, 1);
    uint8_t *enc = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(custos_identity_encode(&enc, &len, d, NULL, 0, NULL), CUSTOS_ERR_ARG);
    d->serial[0] = '\0';
    assert_int_equal(custos_identity_encode(&enc, &len, d, secret, sizeof(secret), NULL),
                     CUSTOS_ERR_ARG);
    assert_null(enc);
    custos_identity_doc_free(d);
}

/* Parsing a decrypted body leaves key text in jansson's freed buffers unless
 * jansson frees through a wiping function: custos_json_parse installs one. */
static void test_json_wipes_on_free(void **state)
{
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_t *j = NULL;
    static const char doc[] = "{\"pkcs8\":\"c2VjcmV0IGtleSB0ZXh0\"}";

    (void)state;
    /* Allocated before the switch (this test runs first): freed by the wiping
     * free later, which must cope with a plain malloc() block. */
    json_t *before = json_string("allocated before");
    assert_non_null(before);
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)doc, sizeof(doc) - 1, "body"), 0);
    json_get_alloc_funcs(&m, &f);
#if defined(__linux__) || defined(__GLIBC__)
    assert_true(m != malloc);
    assert_true(f != free);
#endif
    assert_non_null(m);
    assert_non_null(f);
    /* jansson's contract: json_dumps() output is released with free(). */
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_string_equal(text, doc);
    free(text);
    json_decref(before);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_wipes_on_free), cmocka_unit_test(test_locked_roundtrip),
        cmocka_unit_test(test_mock_roundtrip),     cmocka_unit_test(test_wrong_secret_and_tamper),
        cmocka_unit_test(test_forged_headers),     cmocka_unit_test(test_mock_key_swap_detected),
        cmocka_unit_test(test_encode_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
