/* Unit tests: the CMS SignedData envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "internal/format.h"
#include "support/testca.h"

static const char content[] = "{\"hello\":\"custos\",\"n\":1}";

typedef struct pki {
    testca_cert root, ca, leaf;
    X509_STORE *store;
    STACK_OF(X509) *chain;
} pki;

static void pki_make(pki *p, custos_alg alg, int eku_nid)
{
    testca_opts o = {0};

    memset(p, 0, sizeof(*p));
    assert_int_equal(testca_root(&p->root, "Test Root"), 0);
    assert_int_equal(testca_intermediate(&p->ca, &p->root, "Test Issuing CA"), 0);
    o.cn = "Test Signer";
    o.alg = alg;
    o.eku_nid = eku_nid;
    assert_int_equal(testca_issue(&p->leaf, &p->ca, &o), 0);
    p->store = testca_store(&p->root);
    p->chain = testca_stack(&p->ca, &p->root, NULL);
    assert_non_null(p->store);
    assert_non_null(p->chain);
}

static void pki_free(pki *p)
{
    testca_cert_free(&p->root);
    testca_cert_free(&p->ca);
    testca_cert_free(&p->leaf);
    X509_STORE_free(p->store);
    sk_X509_pop_free(p->chain, X509_free);
}

static void sign(pki *p, uint8_t **der, size_t *len, custos_oid ct)
{
    custos_signer s = {p->leaf.cert, p->leaf.key, p->chain};

    assert_int_equal(custos_cms_sign(der, len, ct, (const uint8_t *)content, strlen(content), &s),
                     0);
}

static custos_trust trust_of(const pki *p, int eku)
{
    custos_trust t = {0};

    memset(&t, 0, sizeof(t));
    t.store = p->store;
    t.now = (int64_t)time(NULL);
    t.signer_eku_nid = eku;
    return t;
}

/* The chain cache skips re-verifying a known signer chain, but never past
 * the validity of that chain, and never for another signer. */
static void test_chain_cache(void **state)
{
    int eku = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    pki p, other;
    uint8_t *der = NULL, *der2 = NULL, *out = NULL;
    size_t len = 0, len2 = 0, out_len = 0;
    custos_trust t = {0};
    int64_t not_after = 0;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P256, eku);
    pki_make(&other, CUSTOS_ALG_ECDSA_P256, eku);
    t = trust_of(&p, eku);
    t.cache = custos_chain_cache_new();
    assert_non_null(t.cache);
    sign(&p, &der, &len, CUSTOS_OID_CT_PROFILE);
    sign(&other, &der2, &len2, CUSTOS_OID_CT_PROFILE);
    for (int round = 0; round < 2; round++) { /* miss, then hit */
        assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len,
                                           CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t,
                                           "certified profile"),
                         0);
        free(out);
        out = NULL;
    }
    /* Another signer with the same subject names does not hit. */
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der2, len2,
                                       CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t,
                                       "certified profile"),
                     CUSTOS_ERR_UNTRUSTED);
    /* After the signer expired the cache does not answer: full check, EXPIRED. */
    assert_int_equal(custos_asn1_time_to_unix(&not_after, X509_get0_notAfter(p.leaf.cert)), 0);
    t.now = not_after + 1;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len,
                                       CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t,
                                       "certified profile"),
                     CUSTOS_ERR_EXPIRED);
    assert_null(out);
    custos_chain_cache_free(t.cache);
    free(der);
    free(der2);
    pki_free(&p);
    pki_free(&other);
}

static void test_sign_verify_algs(void **state)
{
    static const custos_alg algs[] = {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384,
                                      CUSTOS_ALG_RSA_3072};
    int eku = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);

    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        pki p;
        uint8_t *der = NULL, *out = NULL;
        size_t len = 0, out_len = 0;
        X509 *signer = NULL;
        STACK_OF(X509) *certs = NULL;
        custos_trust t = {0};

        pki_make(&p, algs[i], eku);
        t = trust_of(&p, eku);
        sign(&p, &der, &len, CUSTOS_OID_CT_PROFILE);
        assert_int_equal(custos_cms_verify(&out, &out_len, &signer, &certs, der, len,
                                           CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t,
                                           "certified profile"),
                         0);
        assert_int_equal(out_len, strlen(content));
        assert_memory_equal(out, content, out_len);
        assert_int_equal(X509_cmp(signer, p.leaf.cert), 0);
        assert_int_equal(sk_X509_num(certs), 3);
        free(out);
        X509_free(signer);
        sk_X509_pop_free(certs, X509_free);
        /* outputs optional */
        assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len,
                                           CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t,
                                           "certified profile"),
                         0);
        free(out);
        free(der);
        pki_free(&p);
    }
}

static void test_ed25519_signer_unsupported(void **state)
{
    pki p;
    custos_signer s;
    uint8_t *der = NULL;
    size_t len = 0;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ED25519, 0);
    s.cert = p.leaf.cert;
    s.key = p.leaf.key;
    s.chain = NULL;
    assert_int_equal(custos_cms_sign(&der, &len, CUSTOS_OID_CT_REQUEST, (const uint8_t *)content,
                                     strlen(content), &s),
                     CUSTOS_ERR_UNSUPPORTED);
    assert_null(der);
    pki_free(&p);
}

static void test_sign_bad_args(void **state)
{
    pki p;
    custos_signer s;
    uint8_t *der = NULL;
    size_t len = 0;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P256, 0);
    s.cert = p.leaf.cert;
    s.key = p.ca.key; /* does not match */
    s.chain = NULL;
    assert_int_equal(custos_cms_sign(&der, &len, CUSTOS_OID_CT_REQUEST, (const uint8_t *)content,
                                     strlen(content), &s),
                     CUSTOS_ERR_ARG);
    s.key = p.leaf.key;
    assert_int_equal(custos_cms_sign(&der, &len, CUSTOS_OID_EKU_BOOTSTRAP, (const uint8_t *)content,
                                     strlen(content), &s),
                     CUSTOS_ERR_ARG);
    assert_int_equal(custos_cms_sign(&der, &len, CUSTOS_OID_CT_REQUEST, NULL, 0, &s),
                     CUSTOS_ERR_ARG);
    assert_null(der);
    pki_free(&p);
}

static size_t find(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);

    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(hay + i, needle, k) == 0)
            return i;
    }
    fail_msg("needle not found");
    return 0;
}

static void test_verify_negative(void **state)
{
    pki p, other;
    uint8_t *der = NULL, *out = NULL, *copy;
    size_t len = 0, out_len = 0;
    int eku = custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP);
    custos_trust t = {0};
    X509 *signer = (X509 *)1;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P256, eku);
    t = trust_of(&p, eku);
    sign(&p, &der, &len, CUSTOS_OID_CT_REQUEST);

    /* wrong content type */
    assert_int_equal(custos_cms_verify(&out, &out_len, &signer, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_PROFILE, &t, "certified profile"),
                     CUSTOS_ERR_MALFORMED);
    assert_null(out);
    assert_null(signer);
    /* too large */
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, len - 1,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_TOO_LARGE);
    assert_string_equal(custos_error_last()->field, "provisioning request");
    /* trailing byte, truncated, garbage */
    copy = malloc(len + 1);
    memcpy(copy, der, len);
    copy[len] = 0;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, copy, len + 1, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, copy, len - 1, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, (const uint8_t *)"{}", 2, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_MALFORMED);
    /* altered content */
    copy[find(copy, len, "custos")] ^= 1;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, copy, len, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_SIGNATURE);
    assert_null(out);
    free(copy);

    /* EKU required but absent */
    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING);
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_UNTRUSTED);
    assert_non_null(strstr(custos_error_last()->message, "not a package-signing certificate"));
    t.signer_eku_nid = eku;

    /* expired at verification time */
    t.now = (int64_t)time(NULL) + 400 * 86400;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_EXPIRED);
    assert_non_null(
        strstr(custos_error_last()->message, "signed this provisioning request expired at"));
    assert_string_equal(custos_error_last()->field, "signer");
    t.now = (int64_t)time(NULL) - 86400;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_NOT_YET_VALID);
    assert_non_null(strstr(custos_error_last()->message, "Test Signer certificate that signed"));
    t.now = (int64_t)time(NULL);

    /* another root */
    pki_make(&other, CUSTOS_ALG_ECDSA_P256, eku);
    t.store = other.store;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_REQUEST, &t, "provisioning request"),
                     CUSTOS_ERR_UNTRUSTED);
    assert_null(out);
    pki_free(&other);
    free(der);
    pki_free(&p);
}

static void test_untrusted_intermediates(void **state)
{
    pki p;
    custos_signer s;
    custos_trust t = {0};
    uint8_t *der = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    STACK_OF(X509) *inter;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P256, 0);
    s.cert = p.leaf.cert;
    s.key = p.leaf.key;
    s.chain = NULL; /* intermediate not embedded */
    assert_int_equal(custos_cms_sign(&der, &len, CUSTOS_OID_CT_RECEIPT, (const uint8_t *)content,
                                     strlen(content), &s),
                     0);
    t = trust_of(&p, 0);
    t.now = 0; /* current time */
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_RECEIPT, &t, "receipt"),
                     CUSTOS_ERR_UNTRUSTED);
    inter = testca_stack(&p.ca, NULL, NULL);
    t.untrusted = inter;
    assert_int_equal(custos_cms_verify(&out, &out_len, NULL, NULL, der, len, 65536,
                                       CUSTOS_OID_CT_RECEIPT, &t, "receipt"),
                     0);
    free(out);
    sk_X509_pop_free(inter, X509_free);
    free(der);
    pki_free(&p);
}

static void test_peek(void **state)
{
    pki p;
    uint8_t *der = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct = CUSTOS_OID_COUNT;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P384, 0);
    sign(&p, &der, &len, CUSTOS_OID_CT_PACKAGE);
    assert_int_equal(custos_cms_peek(&out, &out_len, &certs, &ct, der, len, 65536, "package"), 0);
    assert_int_equal(ct, CUSTOS_OID_CT_PACKAGE);
    assert_memory_equal(out, content, strlen(content));
    assert_int_equal(out_len, strlen(content));
    assert_int_equal(sk_X509_num(certs), 3);
    free(out);
    sk_X509_pop_free(certs, X509_free);
    assert_int_equal(custos_cms_peek(NULL, NULL, NULL, &ct, der, len, 65536, "package"), 0);
    assert_int_equal(custos_cms_peek(&out, &out_len, &certs, &ct, der, len, 10, "package"),
                     CUSTOS_ERR_TOO_LARGE);
    assert_null(out);
    assert_null(certs);
    free(der);
    pki_free(&p);
}

static void test_openssl_cli_verifies(void **state)
{
    pki p;
    uint8_t *der = NULL;
    size_t len = 0;
    char dir[64], path[128], root[128], cmd[512], outp[128];
    FILE *f;
    uint8_t *back = NULL;
    size_t back_len = 0;

    (void)state;
    pki_make(&p, CUSTOS_ALG_ECDSA_P256, custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING));
    sign(&p, &der, &len, CUSTOS_OID_CT_PACKAGE);
    assert_int_equal(testca_tmpdir(dir, sizeof(dir)), 0);
    (void)snprintf(path, sizeof(path), "%s/x.mcpp", dir);
    (void)snprintf(root, sizeof(root), "%s/root.pem", dir);
    (void)snprintf(outp, sizeof(outp), "%s/out.json", dir);
    assert_int_equal(testca_write_file(path, der, len), 0);
    f = fopen(root, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, p.root.cert), 1);
    assert_int_equal(fclose(f), 0);
    (void)snprintf(cmd, sizeof(cmd),
                   "openssl cms -verify -inform DER -in %s -CAfile %s -purpose any -binary "
                   "-out %s >/dev/null 2>&1",
                   path, root, outp);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(custos_file_read(&back, &back_len, outp, 4096), 0);
    assert_int_equal(back_len, strlen(content));
    assert_memory_equal(back, content, back_len);
    free(back);
    assert_int_equal(testca_rmtree(dir), 0);
    free(der);
    pki_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_algs),
        cmocka_unit_test(test_chain_cache),
        cmocka_unit_test(test_ed25519_signer_unsupported),
        cmocka_unit_test(test_sign_bad_args),
        cmocka_unit_test(test_verify_negative),
        cmocka_unit_test(test_untrusted_intermediates),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_openssl_cli_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
