/* Unit tests: errors, ids, time, encodings, names, JSON, files, keys and X.509 helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/objects.h>

#include "internal/util.h"
#include "support/testca.h"

static void test_error(void **state)
{
    (void)state;
    custos_error_clear();
    assert_int_equal(custos_error_last()->code, 0);
    assert_int_equal(custos_error_set(CUSTOS_ERR_TOO_LARGE, "f", "limit %d", 7),
                     CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(custos_error_last()->code, CUSTOS_ERR_TOO_LARGE);
    assert_string_equal(custos_error_last()->message, "limit 7");
    assert_string_equal(custos_error_last()->field, "f");
    assert_string_equal(custos_err_code(CUSTOS_ERR_EXPIRED), "expired");
    assert_string_equal(custos_err_code(CUSTOS_ERR_LOCKED), "locked_to_another_device");
    assert_string_equal(custos_err_code(CUSTOS_ERR_LIMIT), "limit_exceeded");
    assert_string_equal(custos_err_code(-999), "internal");
    assert_non_null(custos_strerror(-999));
    assert_non_null(custos_strerror(CUSTOS_ERR_POP));
    /* set_ssl appends the first OpenSSL error and clears the queue. */
    assert_null(d2i_X509(NULL, &(const unsigned char *){(const unsigned char *)"xx"}, 2));
    assert_int_equal(custos_error_set_ssl(CUSTOS_ERR_MALFORMED, NULL, "bad cert"),
                     CUSTOS_ERR_MALFORMED);
    assert_true(strncmp(custos_error_last()->message, "bad cert (", 10) == 0);
    assert_int_equal(ERR_peek_error(), 0);
    assert_string_equal(custos_error_last()->field, "");
    custos_error_clear();
    assert_int_equal(custos_error_last()->code, 0);
}

static void test_ids(void **state)
{
    char id[CUSTOS_ID_LEN + 1], id2[CUSTOS_ID_LEN + 1];

    (void)state;
    assert_int_equal(custos_id_new(id, NULL), 0);
    assert_int_equal(custos_id_new(id2, NULL), 0);
    assert_int_equal(strlen(id), CUSTOS_ID_LEN);
    assert_true(custos_id_valid(id));
    assert_string_not_equal(id, id2);
    assert_false(custos_id_valid(NULL));
    assert_false(custos_id_valid(""));
    assert_false(custos_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaa"));   /* 25 */
    assert_false(custos_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 27 */
    assert_false(custos_id_valid("Aaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_false(custos_id_valid("1aaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_true(custos_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaae"));
    assert_false(custos_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaab")); /* non-zero pad bits */
}

static custos_err fixed_clock(int64_t *out, void *ctx)
{
    (void)ctx;
    *out = 1234;
    return 0;
}

static custos_err zero_entropy(uint8_t *out, size_t len, void *ctx)
{
    (void)ctx;
    memset(out, 0, len);
    return 0;
}

static void test_time_and_port(void **state)
{
    char buf[21];
    int64_t t;
    custos_port port;
    char id[CUSTOS_ID_LEN + 1];
    ASN1_TIME *at;

    (void)state;
    custos_time_format(buf, 1795953600);
    assert_string_equal(buf, "2026-11-29T12:00:00Z");
    custos_time_format(buf, -1);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_int_equal(custos_time_parse(&t, "2026-11-29T12:00:00Z"), 0);
    assert_int_equal(t, 1795953600);
    assert_int_equal(custos_time_parse(&t, "2000-02-29T23:59:59Z"), 0);
    assert_int_equal(t, 951868799);
    assert_int_equal(custos_time_parse(&t, "2001-02-29T00:00:00Z"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, "2026-11-29T12:00:00+01:00"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, "2026-11-29 12:00:00Z"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, "2026-11-29T24:00:00Z"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, "2026-1a-29T12:00:00Z"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, "2026-11-29T12:00:00.5Z"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_time_parse(&t, NULL), CUSTOS_ERR_MALFORMED);
    for (int64_t x = -86400 * 400; x < 4102444800; x += 86400 * 37 + 3671) {
        custos_time_format(buf, x);
        assert_int_equal(custos_time_parse(&t, buf), 0);
        assert_int_equal(t, x);
    }
    at = ASN1_TIME_set(NULL, (time_t)1795953600);
    assert_non_null(at);
    assert_int_equal(custos_asn1_time_to_unix(&t, at), 0);
    assert_int_equal(t, 1795953600);
    ASN1_TIME_free(at);

    memset(&port, 0, sizeof(port));
    port.clock = fixed_clock;
    port.entropy = zero_entropy;
    assert_int_equal(custos_now(&t, &port), 0);
    assert_int_equal(t, 1234);
    assert_int_equal(custos_now(&t, NULL), 0);
    assert_true(t > 1700000000);
    assert_int_equal(custos_id_new(id, &port), 0);
    assert_string_equal(id, "aaaaaaaaaaaaaaaaaaaaaaaaaa");
}

static void test_base64(void **state)
{
    const uint8_t data[] = {0xfb, 0xff, 0x00, 0x41, 0x42};
    char *enc = NULL;
    uint8_t *dec = NULL;
    size_t len = 0;
    static const char *const bad[] = {"QQ",   "QQ=",  "QR==", "QQ==\n",     " QQ==",   "Q===",
                                      "=QQ=", "QQ=A", "Q-==", "QUJD\nREVG", "QQ==QQ=="};

    (void)state;
    for (size_t n = 0; n <= sizeof(data); n++) {
        assert_int_equal(custos_b64_encode(&enc, data, n), 0);
        assert_int_equal(custos_b64_decode(&dec, &len, enc, 100, "x"), 0);
        assert_int_equal(len, n);
        if (n > 0)
            assert_memory_equal(dec, data, n);
        free(enc);
        free(dec);
    }
    assert_int_equal(custos_b64_encode(&enc, (const uint8_t *)"A", 1), 0);
    assert_string_equal(enc, "QQ==");
    free(enc);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(custos_b64_decode(&dec, &len, bad[i], 100, "x"), CUSTOS_ERR_MALFORMED);
        assert_null(dec);
        assert_int_equal(len, 0);
    }
    assert_string_equal(custos_error_last()->field, "x");
    assert_int_equal(custos_b64_decode(&dec, &len, "QUJD", 2, "x"), CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(custos_b64_decode(&dec, &len, "QUI=", 2, "x"), 0);
    assert_int_equal(len, 2);
    free(dec);
}

static void test_hex_sha(void **state)
{
    uint8_t d[32], back[32];
    char hex[65];

    (void)state;
    custos_sha256(d, (const uint8_t *)"abc", 3);
    custos_hex_encode(hex, d, 32);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(custos_hex_decode(back, 32, hex, "h"), 0);
    assert_memory_equal(back, d, 32);
    assert_int_equal(custos_hex_decode(back, 2, "abcd", "h"), 0);
    assert_int_equal(back[0], 0xab);
    /* one canonical spelling: uppercase is refused */
    assert_int_equal(custos_hex_decode(back, 2, "ABcd", "h"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_hex_decode(back, 2, "abc", "h"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_hex_decode(back, 2, "abcg", "h"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_hex_decode(back, 2, "abcdef", "h"), CUSTOS_ERR_MALFORMED);
}

static void test_strings(void **state)
{
    char buf[4];

    (void)state;
    assert_int_equal(custos_strlcpy_checked(buf, sizeof(buf), "abc", "f"), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(custos_strlcpy_checked(buf, sizeof(buf), "abcd", "f"), CUSTOS_ERR_TOO_LARGE);
    assert_string_equal(buf, "");
    assert_string_equal(custos_error_last()->field, "f");
    assert_int_equal(custos_strlcpy_checked(buf, sizeof(buf), NULL, "f"), CUSTOS_ERR_ARG);

    assert_true(custos_name_valid("pump-x2.ctl_1", 64));
    assert_true(custos_name_valid("0a", 64));
    assert_false(custos_name_valid("", 64));
    assert_false(custos_name_valid("-a", 64));
    assert_false(custos_name_valid("Pump", 64));
    assert_false(custos_name_valid("a b", 64));
    assert_false(custos_name_valid("a/b", 64));
    assert_false(custos_name_valid("abcde", 4));
    assert_false(custos_name_valid(NULL, 4));

    assert_true(custos_serial_valid("SN-0001:A.b_c"));
    assert_false(custos_serial_valid(".SN"));
    assert_false(custos_serial_valid("SN 1"));
    assert_false(custos_serial_valid(""));
    assert_false(
        custos_serial_valid("A1234567890123456789012345678901234567890123456789012345678901234"));

    assert_true(custos_text_valid("Pompe \xc3\xa0 perfusion \xe2\x82\xac \xf0\x9f\x92\x89", 64));
    assert_true(custos_text_valid("", 4));
    assert_false(custos_text_valid("abcde", 4));
    assert_false(custos_text_valid("a\x01", 8));
    assert_false(custos_text_valid("a\n", 8));
    assert_false(custos_text_valid("a\x7f", 8));
    assert_false(custos_text_valid("\xc3", 8));
    assert_false(custos_text_valid("\xc0\xaf", 8));
    assert_false(custos_text_valid("\xe0\x80\xaf", 8));
    assert_false(custos_text_valid("\xed\xa0\x80", 8));
    assert_false(custos_text_valid("\xf4\x90\x80\x80", 8));
    assert_false(custos_text_valid("\xc2\x85", 8)); /* C1 control */
    assert_false(custos_text_valid("\xff", 8));
}

static void test_json(void **state)
{
    json_t *j = NULL;
    char *s = NULL;
    size_t n = 0;
    const char ok[] = "{\"b\": 1, \"a\": [true, null]}";

    (void)state;
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)ok, strlen(ok), "doc"), 0);
    assert_int_equal(custos_json_dump(&s, &n, j), 0);
    assert_string_equal(s, "{\"a\":[true,null],\"b\":1}");
    assert_int_equal(n, strlen(s));
    free(s);
    json_decref(j);
    j = NULL;

    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"{\"a\":1,\"a\":2}", 13, "doc"),
                     CUSTOS_ERR_MALFORMED);
    assert_null(j);
    assert_string_equal(custos_error_last()->field, "doc");
    assert_non_null(strstr(custos_error_last()->message, "line"));
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"{\"a\":1} x", 9, "doc"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"{\"a\":1}\0", 8, "doc"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"{\"a\":\"\\u0000\"}", 14, "doc"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"", 0, "doc"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_json_parse(&j, (const uint8_t *)"{\"a\":", 5, "doc"),
                     CUSTOS_ERR_MALFORMED);
    assert_null(j);
}

static void test_files(void **state)
{
    char dir[64], path[128], other[160];
    uint8_t *data = NULL;
    size_t len = 0;
    struct stat st;

    (void)state;
    assert_int_equal(testca_tmpdir(dir, sizeof(dir)), 0);
    (void)snprintf(path, sizeof(path), "%s/f.bin", dir);
    assert_int_equal(custos_file_read(&data, &len, path, 100), CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_file_write_atomic(path, (const uint8_t *)"hello", 5, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(custos_file_read(&data, &len, path, 100), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    assert_int_equal(custos_file_write_atomic(path, (const uint8_t *)"hi", 2, 0600), 0);
    assert_int_equal(custos_file_read(&data, &len, path, 2), 0);
    assert_int_equal(len, 2);
    free(data);
    assert_int_equal(custos_file_read(&data, &len, path, 1), CUSTOS_ERR_TOO_LARGE);
    assert_null(data);
    assert_non_null(strstr(custos_error_last()->message, path));
    assert_int_equal(custos_file_read(&data, &len, dir, 100), CUSTOS_ERR_IO);
    (void)snprintf(other, sizeof(other), "%s/none/f", dir);
    assert_int_equal(custos_file_write_atomic(other, (const uint8_t *)"x", 1, 0600), CUSTOS_ERR_IO);
    assert_int_equal(custos_file_shred(path), 0);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(custos_file_shred(path), 0);
    assert_int_equal(testca_rmtree(dir), 0);
    assert_int_not_equal(stat(dir, &st), 0);
}

static void test_keys(void **state)
{
    static const custos_alg algs[] = {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384,
                                      CUSTOS_ALG_ED25519, CUSTOS_ALG_RSA_3072};
    EVP_PKEY *k = NULL, *k2 = NULL;
    uint8_t h1[32], h2[32];

    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        assert_int_equal(custos_key_generate(&k, algs[i]), 0);
        assert_int_equal(custos_key_alg(k), algs[i]);
        assert_int_equal(custos_alg_from_name(custos_alg_name(algs[i])), algs[i]);
        if (algs[i] == CUSTOS_ALG_ED25519)
            assert_null(custos_key_md(k));
        else
            assert_non_null(custos_key_md(k));
        assert_int_equal(custos_key_generate(&k2, algs[i]), 0);
        assert_true(custos_key_public_equal(k, k));
        assert_false(custos_key_public_equal(k, k2));
        assert_int_equal(custos_key_spki_sha256(h1, k), 0);
        assert_int_equal(custos_key_spki_sha256(h2, k2), 0);
        assert_memory_not_equal(h1, h2, 32);
        EVP_PKEY_free(k);
        EVP_PKEY_free(k2);
    }
    assert_int_equal(custos_key_generate(&k, CUSTOS_ALG_NONE), CUSTOS_ERR_UNSUPPORTED);
    assert_null(k);
    assert_int_equal(custos_alg_from_name("rsa-2048"), CUSTOS_ALG_NONE);
    assert_null(custos_alg_name(CUSTOS_ALG_NONE));
    assert_string_equal(custos_alg_name(CUSTOS_ALG_ECDSA_P256), "ecdsa-p256");
    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    assert_int_equal(custos_key_alg(k), CUSTOS_ALG_NONE);
    EVP_PKEY_free(k);
}

static void test_x509(void **state)
{
    testca_cert root = {0}, leaf = {0};
    uint8_t *der = NULL, *der2 = NULL;
    size_t len = 0;
    char *b64 = NULL;
    X509 *x = NULL;
    int nid = custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP);

    (void)state;
    assert_int_not_equal(nid, NID_undef);
    assert_int_equal(custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP), nid);
    assert_string_equal(custos_oid_text(CUSTOS_OID_CT_REQUEST), CUSTOS_OID_ARC ".1.2");
    assert_int_equal(OBJ_txt2nid(CUSTOS_OID_ARC ".3.2"), custos_oid_nid(CUSTOS_OID_POLICY_MOCK));
    assert_int_equal(custos_oid_nid(CUSTOS_OID_COUNT), NID_undef);

    assert_int_equal(testca_root(&root, "Root"), 0);
    assert_int_equal(testca_leaf(&leaf, &root, "Leaf", nid), 0);
    assert_true(custos_x509_has_eku(leaf.cert, nid));
    assert_false(custos_x509_has_eku(leaf.cert, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING)));
    assert_false(custos_x509_has_eku(root.cert, nid));

    assert_int_equal(custos_x509_to_der(&der, &len, leaf.cert), 0);
    assert_int_equal(custos_x509_from_der(&x, der, len, "cert"), 0);
    assert_int_equal(X509_cmp(x, leaf.cert), 0);
    X509_free(x);
    der2 = malloc(len + 1);
    memcpy(der2, der, len);
    der2[len] = 0;
    assert_int_equal(custos_x509_from_der(&x, der2, len + 1, "cert"), CUSTOS_ERR_MALFORMED);
    assert_non_null(strstr(custos_error_last()->message, "trailing"));
    assert_int_equal(custos_x509_from_der(&x, der2, len - 1, "cert"), CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_x509_from_der(&x, der2, CUSTOS_MAX_CERT_SIZE + 1, "cert"),
                     CUSTOS_ERR_TOO_LARGE);
    assert_null(x);
    free(der2);
    free(der);

    assert_int_equal(custos_x509_to_b64(&b64, leaf.cert), 0);
    assert_int_equal(custos_x509_from_b64(&x, b64, "cert"), 0);
    assert_int_equal(X509_cmp(x, leaf.cert), 0);
    X509_free(x);
    x = NULL;
    b64[0] = '!';
    assert_int_equal(custos_x509_from_b64(&x, b64, "cert"), CUSTOS_ERR_MALFORMED);
    free(b64);
    testca_cert_free(&leaf);
    testca_cert_free(&root);
    testca_cert_free(NULL);
}

static void test_subject(void **state)
{
    X509_NAME *n = NULL;
    char buf[256];
    static const char *const bad[] = {
        "",           "CN",    "XX=a",    "CN=a,",    "CN=", "CN=a,,O=b", "CN={nope}",
        "CN={serial", "CN=a}", "CN=a\\b", "CN=a\x01", "=a",  "CN=a,O=",
    };

    (void)state;
    assert_int_equal(custos_subject_build(&n,
                                          "CN={serial},OU={component},O=Acme\\, Inc.,"
                                          "serialNumber={serial},L={system}-{template}",
                                          "sys", "pump", "SN1", "tls"),
                     0);
    X509_NAME_oneline(n, buf, sizeof(buf));
    assert_string_equal(buf, "/CN=SN1/OU=pump/O=Acme, Inc./serialNumber=SN1/L=sys-tls");
    X509_NAME_free(n);
    assert_int_equal(custos_subject_pattern_check("CN={serial}, O=Acme Medical, C=DE", "s"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(custos_subject_pattern_check(bad[i], "tpl.subject"), 0);
        assert_string_equal(custos_error_last()->field, "tpl.subject");
    }
    /* C must be two letters: only known at build time. */
    assert_int_equal(custos_subject_build(&n, "C=DEU", "s", "c", "x", "t"), CUSTOS_ERR_LIMIT);
    assert_null(n);
    assert_int_equal(custos_subject_build(&n, "CN={serial}", "s", "c", "", "t"),
                     CUSTOS_ERR_MALFORMED);
}

static custos_err failing_entropy(uint8_t *out, size_t len, void *ctx)
{
    (void)out;
    (void)len;
    (void)ctx;
    return CUSTOS_ERR_NOT_PROVIDED;
}

static void test_check_keys_and_port_errors(void **state)
{
    static const char *const allowed[] = {"a", "b", NULL};
    json_t *j = json_pack("{s:i, s:i}", "a", 1, "c", 2);
    custos_port port;
    uint8_t buf[4];
    char id[CUSTOS_ID_LEN + 1];

    (void)state;
    assert_int_equal(custos_json_check_keys(j, allowed, "x.y"), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "x.y.c");
    assert_int_equal(custos_json_check_keys(j, allowed, ""), CUSTOS_ERR_MALFORMED);
    assert_string_equal(custos_error_last()->field, "c");
    json_object_del(j, "c");
    assert_int_equal(custos_json_check_keys(j, allowed, "x"), 0);
    json_decref(j);
    j = json_array();
    assert_int_equal(custos_json_check_keys(j, allowed, "x"), CUSTOS_ERR_MALFORMED);
    json_decref(j);

    memset(&port, 0, sizeof(port));
    port.entropy = failing_entropy;
    custos_error_clear();
    assert_int_equal(custos_random(&port, buf, sizeof(buf)), CUSTOS_ERR_NOT_PROVIDED);
    assert_string_equal(custos_error_last()->field, "entropy");
    assert_int_equal(custos_id_new(id, &port), CUSTOS_ERR_NOT_PROVIDED);
    assert_string_equal(id, "");
    assert_int_equal(custos_random(NULL, buf, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error),         cmocka_unit_test(test_ids),
        cmocka_unit_test(test_time_and_port), cmocka_unit_test(test_base64),
        cmocka_unit_test(test_hex_sha),       cmocka_unit_test(test_strings),
        cmocka_unit_test(test_json),          cmocka_unit_test(test_files),
        cmocka_unit_test(test_keys),          cmocka_unit_test(test_x509),
        cmocka_unit_test(test_subject),       cmocka_unit_test(test_check_keys_and_port_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
