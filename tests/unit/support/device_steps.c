/* Steps shared by the device unit tests (tests/unit/test_device*.c): a
 * fixture per test, a request, a full provisioning, a signature check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "custos/custos.h"
#include "internal/util.h"
#include "support/device_steps.h"

const custos_alg DS_P256_2[2] = {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P256};

int ds_setup(void **state)
{
    dfx *f = calloc(1, sizeof(*f));
    if (f == NULL || dfx_init(f) != 0)
        return -1;
    *state = f;
    return 0;
}

int ds_teardown(void **state)
{
    dfx *f = *state;
    dfx_free(f);
    free(f);
    return 0;
}

/* Make the initial request on @p f's device; returns the .mcpr. */
uint8_t *ds_do_request(const dfx *f, size_t *len, const custos_alg *algs, size_t n,
                       const char *serial)
{
    custos_package *pkg = NULL;
    custos_request_options o = CUSTOS_REQUEST_OPTIONS_INIT;
    uint8_t *req = NULL;
    static const custos_meta meta[] = {{"site", "line 3"}};

    assert_int_equal(dfx_package_open(&pkg, f, "controller", algs, n), 0);
    o.component = "controller";
    o.identity.serial = serial;
    o.identity.model = "X2";
    o.identity.firmware = "1.0.0";
    o.identity.metadata = meta;
    o.identity.metadata_count = 1;
    assert_int_equal(custos_device_request(&req, len, f->port, pkg, &o), 0);
    assert_non_null(req);
    custos_package_free(pkg);
    return req;
}

/* Request + answer + install; returns the install result. */
void ds_provision(const dfx *f, const custos_alg *algs, size_t n, const char *serial,
                  custos_install_result *res)
{
    size_t rl = 0, pl = 0;
    uint8_t *req = ds_do_request(f, &rl, algs, n, serial);
    uint8_t *prof = NULL;
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    assert_int_equal(custos_device_install(res, f->port, prof, pl), 0);
    uint8_t digest[32];
    custos_sha256(digest, prof, pl);
    assert_memory_equal(digest, res->profile_sha256, 32);
    free(req);
    free(prof);
}

void ds_check_sign(const custos_device *dev, const char *tmpl)
{
    static const uint8_t msg[] = "infusion rate 5 ml/h";
    uint8_t sig[512];
    size_t sig_len = 0;
    custos_key_info ki;
    const unsigned char *p = NULL;
    X509 *cert = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    assert_int_equal(custos_device_sign(sig, sizeof(sig), &sig_len, dev, tmpl, msg, sizeof(msg)),
                     0);
    assert_true(sig_len > 0);
    for (size_t i = 0; i < custos_device_key_count(dev); i++) {
        assert_int_equal(custos_device_key(&ki, dev, i), 0);
        if (strcmp(ki.template_name, tmpl) == 0)
            break;
    }
    p = ki.cert_der;
    cert = d2i_X509(NULL, &p, (long)ki.cert_der_len);
    assert_non_null(cert);
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    /* SHA-256 for every curve and RSA (what `openssl dgst -sha256` checks). */
    const EVP_MD *h = custos_key_alg(pub) == CUSTOS_ALG_ED25519 ? NULL : EVP_sha256();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, h, NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)), 1);
    /* A changed message does not verify. */
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, h, NULL, pub), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg) - 2), 1);
    EVP_MD_CTX_free(md);
    X509_free(cert);
}
