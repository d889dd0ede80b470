/* Device operations end to end: package -> request -> profile -> install ->
 * open -> sign / TLS -> rotate, and the refusals on the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "custos/custos.h"
#include "internal/format.h"
#include "internal/util.h"
#include "support/device_fixture.h"
#include "support/device_steps.h"

static void test_full_flow(void **state)
{
    dfx *f = *state;
    uint8_t *pkg_der = NULL;
    size_t pkg_len = 0, rl = 0, pl = 0;
    custos_install_result res;
    custos_device *dev = NULL;
    char *status = NULL;

    /* The package sits in storage until the request removes it. */
    assert_int_equal(dfx_package(&pkg_der, &pkg_len, f, "controller", DS_P256_2, 2), 0);
    assert_int_equal(f->port->storage_write(CUSTOS_OBJ_PACKAGE, pkg_der, pkg_len, f->port->ctx), 0);
    free(pkg_der);

    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"state\":\"empty\""));
    free(status);

    uint8_t *req = ds_do_request(f, &rl, DS_P256_2, 2, "SN-1001");
    assert_false(dfx_exists(f, CUSTOS_OBJ_PACKAGE));
    assert_true(dfx_exists(f, CUSTOS_OBJ_IDENTITY));
    assert_true(dfx_exists(f, CUSTOS_OBJ_REQUEST));
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", f->device_dir, CUSTOS_OBJ_IDENTITY);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"state\":\"pending\""));
    assert_non_null(strstr(status, "\"serial\":\"SN-1001\""));
    free(status);

    uint8_t *prof = NULL;
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    assert_int_equal(res.rotated, 0);
    char device_id[CUSTOS_ID_LEN + 1];
    memcpy(device_id, res.device_id, sizeof(device_id));
    assert_false(dfx_exists(f, CUSTOS_OBJ_REQUEST));
    assert_true(dfx_exists(f, CUSTOS_OBJ_PROFILE));
    assert_false(dfx_exists(f, CUSTOS_OBJ_PROFILE_PREVIOUS));
    /* Installing twice: no pending request any more. */
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), CUSTOS_ERR_STATE);
    free(req);
    free(prof);

    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"state\":\"provisioned\""));
    assert_non_null(strstr(status, "\"locked\":\"ok\""));
    assert_non_null(strstr(status, "\"template\":\"t0\""));
    assert_null(strstr(status, "PRIVATE"));
    free(status);

    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    assert_string_equal(custos_device_serial(dev), "SN-1001");
    assert_string_equal(custos_device_system(dev), "pump-x2");
    assert_string_equal(custos_device_component(dev), "controller");
    assert_string_equal(custos_device_id(dev), device_id);
    assert_false(custos_device_is_mock(dev));
    assert_int_equal(custos_device_key_count(dev), 2);
    custos_key_info ki;
    assert_int_equal(custos_device_key(&ki, dev, 0), 0);
    assert_string_equal(ki.template_name, "t0");
    assert_int_equal(ki.alg, CUSTOS_ALG_ECDSA_P256);
    assert_true(ki.usage & CUSTOS_USAGE_TLS_CLIENT);
    assert_true(ki.not_after > ki.not_before);
    assert_int_equal(custos_device_key(&ki, dev, 2), CUSTOS_ERR_ARG);
    assert_int_equal(custos_device_root_count(dev), 1);
    const uint8_t *root = NULL;
    size_t root_len = 0;
    assert_int_equal(custos_device_root(&root, &root_len, dev, 0), 0);
    assert_true(root_len > 0);
    ds_check_sign(dev, "t0");
    ds_check_sign(dev, "t1");
    uint8_t sig[8];
    size_t sig_len = 0;
    assert_int_equal(
        custos_device_sign(sig, sizeof(sig), &sig_len, dev, "t0", (const uint8_t *)"x", 1),
        CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(
        custos_device_sign(sig, sizeof(sig), &sig_len, dev, "nope", (const uint8_t *)"x", 1),
        CUSTOS_ERR_NOT_FOUND);

    SSL_CTX *ctx = NULL;
    assert_int_equal(custos_device_ssl_ctx(&ctx, dev, NULL), 0);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    assert_non_null(SSL_CTX_get0_certificate(ctx));
    SSL_CTX_free(ctx);
    assert_int_equal(custos_device_ssl_ctx(&ctx, dev, "nope"), CUSTOS_ERR_NOT_FOUND);
    assert_null(ctx);
    custos_device_free(dev);
    custos_device_free(NULL);

    /* A provisioned device refuses a new initial request. */
    custos_package *pkg = NULL;
    custos_request_options o = CUSTOS_REQUEST_OPTIONS_INIT;
    assert_int_equal(dfx_package_open(&pkg, f, "controller", DS_P256_2, 2), 0);
    o.component = "controller";
    o.identity.serial = "SN-1001";
    assert_int_equal(custos_device_request(NULL, NULL, f->port, pkg, &o), CUSTOS_ERR_STATE);
    assert_non_null(strstr(custos_error_last()->message, "use rotate"));
    custos_package_free(pkg);
}

/* Someone who can write the device directory but not read the device secret
 * plants an unlocked identity between open and rotate: rotate must refuse
 * rather than add the fresh keys to it in the clear. */
static void test_rotate_refuses_planted_identity(void **state)
{
    dfx *f = *state;
    dfx peer;
    custos_install_result res;
    custos_device *dev = NULL;
    custos_rotate_options ro = CUSTOS_ROTATE_OPTIONS_INIT;
    custos_identity_doc *forged = custos_identity_doc_new();
    uint8_t *enc = NULL, *req = NULL, back[CUSTOS_MAX_IDENTITY_SIZE];
    size_t enc_len = 0, rl = 0, back_len = 0;

    assert_int_equal(dfx_init_peer(&peer, f), 0);
    ds_provision(&peer, DS_P256_2, 2, "SN-PLANT", &res);
    assert_int_equal(custos_device_open(&dev, peer.port, NULL), 0);
    assert_non_null(forged);
    snprintf(forged->system, sizeof(forged->system), "%s", custos_device_system(dev));
    snprintf(forged->component, sizeof(forged->component), "%s", custos_device_component(dev));
    snprintf(forged->serial, sizeof(forged->serial), "%s", custos_device_serial(dev));
    forged->mock = 1;
    forged->n_gens = 1;
    memcpy(forged->gens[0].request_id, res.request_id, sizeof(res.request_id));
    for (size_t i = 0; i < 2; i++) {
        custos_identity_key *k = &forged->gens[0].keys[i];
        snprintf(k->template_name, sizeof(k->template_name), "t%zu", i);
        assert_int_equal(custos_key_generate(&k->key, CUSTOS_ALG_ECDSA_P256), 0);
        forged->gens[0].n_keys++;
    }
    assert_int_equal(custos_identity_encode(&enc, &enc_len, forged, NULL, 0, NULL), 0);
    assert_int_equal(peer.port->storage_write(CUSTOS_OBJ_IDENTITY, enc, enc_len, peer.port->ctx),
                     0);

    assert_int_equal(custos_device_rotate(&req, &rl, dev, &ro), CUSTOS_ERR_MOCK);
    assert_null(req);
    /* Nothing was added to the planted file. */
    assert_int_equal(
        peer.port->storage_read(back, sizeof(back), &back_len, CUSTOS_OBJ_IDENTITY, peer.port->ctx),
        0);
    assert_int_equal(back_len, enc_len);
    assert_memory_equal(back, enc, enc_len);

    free(enc);
    custos_identity_doc_free(forged);
    custos_device_free(dev);
    dfx_free_peer(&peer);
}

static void test_algorithms(void **state)
{
    dfx *f = *state;
    static const custos_alg algs[][2] = {
        {CUSTOS_ALG_ECDSA_P384, CUSTOS_ALG_ECDSA_P384},
        {CUSTOS_ALG_ED25519, CUSTOS_ALG_ECDSA_P256}, /* all-Ed25519 is refused: see test_system */
        {CUSTOS_ALG_RSA_3072, CUSTOS_ALG_ECDSA_P256},
    };
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        dfx peer;
        custos_install_result res;
        custos_device *dev = NULL;
        custos_key_info ki;
        SSL_CTX *ctx = NULL;
        assert_int_equal(dfx_init_peer(&peer, f), 0);
        ds_provision(&peer, algs[i], 2, "SN-ALG", &res);
        assert_int_equal(custos_device_open(&dev, peer.port, NULL), 0);
        assert_int_equal(custos_device_key(&ki, dev, 0), 0);
        assert_int_equal(ki.alg, algs[i][0]);
        ds_check_sign(dev, "t0");
        ds_check_sign(dev, "t1");
        assert_int_equal(custos_device_ssl_ctx(&ctx, dev, "t0"), 0);
        SSL_CTX_free(ctx);
        custos_device_free(dev);
        dfx_free_peer(&peer);
    }
}

static void test_request_refusals(void **state)
{
    dfx *f = *state;
    custos_package *pkg = NULL;
    custos_request_options o = CUSTOS_REQUEST_OPTIONS_INIT;
    uint8_t *req = (uint8_t *)1;
    size_t len = 1;
    char long_model[80];

    assert_int_equal(dfx_package_open(&pkg, f, "controller", DS_P256_2, 2), 0);
    o.component = "pump";
    o.identity.serial = "SN-1";
    assert_int_equal(custos_device_request(&req, &len, f->port, pkg, &o),
                     CUSTOS_ERR_UNKNOWN_COMPONENT);
    assert_null(req);
    assert_int_equal(len, 0);
    assert_non_null(strstr(custos_error_last()->message, "pump"));
    assert_non_null(strstr(custos_error_last()->message, "controller, dock"));

    o.component = "controller";
    o.identity.serial = NULL;
    assert_int_equal(custos_device_request(&req, &len, f->port, pkg, &o), CUSTOS_ERR_ARG);
    assert_string_equal(custos_error_last()->field, "serial");
    o.identity.serial = "bad serial/1";
    assert_int_equal(custos_device_request(&req, &len, f->port, pkg, &o), CUSTOS_ERR_ARG);
    o.identity.serial = "SN-1";
    memset(long_model, 'm', sizeof(long_model) - 1);
    long_model[sizeof(long_model) - 1] = '\0';
    o.identity.model = long_model;
    assert_int_equal(custos_device_request(&req, &len, f->port, pkg, &o), CUSTOS_ERR_LIMIT);
    assert_false(dfx_exists(f, CUSTOS_OBJ_IDENTITY));
    assert_false(dfx_exists(f, CUSTOS_OBJ_REQUEST));

    /* KEEP_PACKAGE leaves the package; a second request replaces the first. */
    o.identity.model = NULL;
    o.flags = CUSTOS_REQUEST_KEEP_PACKAGE;
    assert_int_equal(
        f->port->storage_write(CUSTOS_OBJ_PACKAGE, (const uint8_t *)"p", 1, f->port->ctx), 0);
    assert_int_equal(custos_device_request(NULL, NULL, f->port, pkg, &o), 0);
    assert_true(dfx_exists(f, CUSTOS_OBJ_PACKAGE));
    uint8_t *req2 = NULL;
    size_t len2 = 0;
    assert_int_equal(custos_device_request(&req2, &len2, f->port, pkg, &o), 0);
    custos_install_result res;
    uint8_t *prof = NULL;
    size_t pl = 0;
    assert_int_equal(dfx_profile(&prof, &pl, f, req2, len2, NULL), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    free(prof);
    free(req2);
    custos_package_free(pkg);

    /* Wrong passphrase. */
    uint8_t *der = NULL;
    size_t dl = 0;
    custos_package *p2 = (custos_package *)1;
    assert_int_equal(dfx_package(&der, &dl, f, "controller", DS_P256_2, 2), 0);
    assert_int_equal(custos_package_open(&p2, der, dl, "wrong", 5, NULL), CUSTOS_ERR_PASSPHRASE);
    assert_null(p2);
    assert_int_equal(custos_package_open(&p2, der, dl, FX_PASSPHRASE, strlen(FX_PASSPHRASE), NULL),
                     0);
    assert_string_equal(custos_package_system(p2), "pump-x2");
    assert_int_equal(custos_package_component_count(p2), 2);
    assert_string_equal(custos_package_component_name(p2, 1), "dock");
    assert_null(custos_package_component_name(p2, 2));
    const custos_key_template *t = NULL;
    size_t nt = 0;
    assert_int_equal(custos_package_templates(&t, &nt, p2, "controller"), 0);
    assert_int_equal(nt, 2);
    assert_string_equal(t[1].name, "t1");
    assert_int_equal(custos_package_templates(&t, &nt, p2, "x"), CUSTOS_ERR_UNKNOWN_COMPONENT);
    assert_string_equal(custos_package_cloud_url(p2), "https://custos.example");
    assert_true(custos_package_expires(p2) > f->pki.now);
    assert_int_equal(custos_package_root_count(p2), 1);
    const uint8_t *cd = NULL;
    size_t cl = 0;
    assert_int_equal(custos_package_bootstrap_cert(&cd, &cl, p2), 0);
    assert_true(cl > 0);
    custos_package_free(p2);
    free(der);
}

/* A bad profile changes nothing, byte for byte. */
static void expect_refused(const dfx *f, const uint8_t *prof, size_t pl, custos_err want,
                           const char *needle)
{
    dfx_snapshot before;
    custos_install_result res;
    assert_int_equal(dfx_snapshot_take(&before, f), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), want);
    if (needle != NULL)
        assert_non_null(strstr(custos_error_last()->message, needle));
    assert_true(dfx_snapshot_same(&before, f));
    dfx_snapshot_free(&before);
}

static void test_install_mismatch(void **state)
{
    dfx *f = *state;
    dfx peer;
    size_t rl = 0, pl = 0, prl = 0;
    uint8_t *prof = NULL;

    /* Nothing pending. */
    expect_refused(f, (const uint8_t *)"x", 1, CUSTOS_ERR_STATE, "no pending request");

    uint8_t *req = ds_do_request(f, &rl, DS_P256_2, 2, "SN-2001");
    /* Another device's request and profile (same system, other serial). */
    assert_int_equal(dfx_init_peer(&peer, f), 0);
    uint8_t *preq = ds_do_request(&peer, &prl, DS_P256_2, 2, "SN-2002");
    assert_int_equal(dfx_profile(&prof, &pl, f, preq, prl, NULL), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MISMATCH, "another device (serial SN-2002)");
    free(prof);
    /* Same serial, other request. */
    custos_install_result res;
    dfx_free_peer(&peer);
    assert_int_equal(dfx_init_peer(&peer, f), 0);
    free(preq);
    preq = ds_do_request(&peer, &prl, DS_P256_2, 2, "SN-2001");
    assert_int_equal(dfx_profile(&prof, &pl, f, preq, prl, NULL), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MISMATCH, "not the pending request");
    free(prof);
    /* Serial overridden in an answer to our own request. */
    dfx_answer a = {0};
    a.serial = "SN-9999";
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, &a), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MISMATCH, "serial");
    free(prof);
    /* A certificate for another key. */
    memset(&a, 0, sizeof(a));
    a.wrong_key = 1;
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, &a), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MISMATCH, "template t0");
    free(prof);
    /* A mock profile. */
    memset(&a, 0, sizeof(a));
    a.mock = 1;
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, &a), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MOCK, NULL);
    free(prof);
    /* Garbage and a tampered profile. */
    expect_refused(f, (const uint8_t *)"garbage", 7, CUSTOS_ERR_MALFORMED, NULL);
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    prof[pl - 5] ^= 0x01;
    dfx_snapshot before;
    assert_int_equal(dfx_snapshot_take(&before, f), 0);
    assert_true(custos_device_install(&res, f->port, prof, pl) < 0);
    assert_true(dfx_snapshot_same(&before, f));
    dfx_snapshot_free(&before);
    prof[pl - 5] ^= 0x01;
    /* And the right one still installs. */
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    free(prof);
    free(preq);
    free(req);
    dfx_free_peer(&peer);
}

static void test_locked_to_device(void **state)
{
    dfx *f = *state;
    custos_install_result res;
    custos_device *dev = NULL;
    uint8_t other[32];
    char *status = NULL;

    ds_provision(f, DS_P256_2, 2, "SN-3001", &res);
    /* Another device secret: the identity no longer opens. */
    assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
    assert_int_equal(unlink(f->secret_file), 0);
    assert_int_equal(testca_write_file(f->secret_file, other, sizeof(other)), 0);
    assert_int_equal(chmod(f->secret_file, 0600), 0);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), CUSTOS_ERR_LOCKED);
    assert_null(dev);
    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"locked\":\"locked_to_another_device\""));
    assert_non_null(strstr(status, "\"state\":\"provisioned\""));
    free(status);
}

static void test_mock(void **state)
{
    dfx *f = *state;
    custos_device *dev = NULL;
    custos_device_options o = CUSTOS_DEVICE_OPTIONS_INIT;
    char *status = NULL;

    int mr = dfx_mock_files(f, "MOCK-1");
    if (mr != 0)
        print_message("mock files: %s\n", custos_error_last()->message);
    assert_int_equal(mr, 0);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), CUSTOS_ERR_MOCK);
    assert_non_null(strstr(custos_error_last()->message, "mock device files are not accepted"));
    assert_int_equal(custos_device_open(&dev, f->port, &o), CUSTOS_ERR_MOCK);
    assert_null(dev);
    o.allow_mock = 1;
    assert_int_equal(custos_device_open(&dev, f->port, &o), 0);
    assert_true(custos_device_is_mock(dev));
    ds_check_sign(dev, "t0");
    uint8_t *req = NULL;
    size_t rl = 0;
    assert_int_equal(custos_device_rotate(&req, &rl, dev, NULL), CUSTOS_ERR_MOCK);
    custos_device_free(dev);
    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"mock\":true"));
    free(status);
}

static void rotate_once(const dfx *f, int same_keys)
{
    custos_device *dev = NULL, *dev2 = NULL;
    custos_rotate_options ro = CUSTOS_ROTATE_OPTIONS_INIT;
    custos_install_result res;
    uint8_t *req = NULL, *prof = NULL;
    size_t rl = 0, pl = 0;
    char *status = NULL;
    custos_key_info before, after;

    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    assert_int_equal(custos_device_key(&before, dev, 0), 0);
    uint8_t *old_cert = malloc(before.cert_der_len);
    size_t old_len = before.cert_der_len;
    memcpy(old_cert, before.cert_der, old_len);
    ro.same_keys = same_keys;
    ro.firmware = "2.0.0";
    assert_int_equal(custos_device_rotate(&req, &rl, dev, &ro), 0);
    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"state\":\"rotating\""));
    free(status);
    /* The current identity keeps working while the request is pending. */
    ds_check_sign(dev, "t0");
    custos_device_free(dev);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    ds_check_sign(dev, "t0");

    custos_request_doc *rd = NULL;
    custos_trust t = fx_trust(&f->pki);
    assert_int_equal(custos_request_decode(&rd, req, rl, &t), 0);
    assert_int_equal(rd->kind, CUSTOS_REQUEST_REPROVISION);
    assert_string_equal(rd->device_id, custos_device_id(dev));
    assert_string_equal(rd->firmware, "2.0.0");
    custos_request_doc_free(rd);

    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    assert_int_equal(res.rotated, 1);
    assert_true(dfx_exists(f, CUSTOS_OBJ_PROFILE_PREVIOUS));
    assert_int_equal(custos_device_open(&dev2, f->port, NULL), 0);
    assert_string_equal(custos_device_id(dev2), custos_device_id(dev));
    assert_int_equal(custos_device_key(&after, dev2, 0), 0);
    ds_check_sign(dev2, "t0");
    ds_check_sign(dev2, "t1");

    const unsigned char *p1 = old_cert, *p2 = after.cert_der;
    X509 *c1 = d2i_X509(NULL, &p1, (long)old_len);
    X509 *c2 = d2i_X509(NULL, &p2, (long)after.cert_der_len);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(custos_key_public_equal(X509_get0_pubkey(c1), X509_get0_pubkey(c2)),
                     same_keys ? 1 : 0);
    X509_free(c1);
    X509_free(c2);
    free(old_cert);

    assert_int_equal(custos_device_status(&status, f->port), 0);
    assert_non_null(strstr(status, "\"state\":\"provisioned\""));
    assert_non_null(strstr(status, "\"previous\":true"));
    free(status);
    custos_device_free(dev);
    custos_device_free(dev2);
    free(req);
    free(prof);
}

/* An install stopped right after its commit point (profile.mccp written,
 * identity not yet pruned, request not yet removed) is run again: it must
 * finish and keep the real previous generation, not the new profile. */
static void test_install_resumes(void **state)
{
    dfx *f = *state;
    custos_install_result res;
    custos_device *dev = NULL;
    uint8_t *req = NULL, *prof = NULL, old[CUSTOS_MAX_PROFILE_SIZE], prev[CUSTOS_MAX_PROFILE_SIZE];
    size_t rl = 0, pl = 0, old_len = 0, prev_len = 0;
    const custos_port *port = f->port;

    ds_provision(f, DS_P256_2, 2, "SN-RESUME", &res);
    assert_int_equal(port->storage_read(old, sizeof(old), &old_len, CUSTOS_OBJ_PROFILE, port->ctx),
                     0);
    assert_int_equal(custos_device_open(&dev, port, NULL), 0);
    assert_int_equal(custos_device_rotate(&req, &rl, dev, NULL), 0);
    custos_device_free(dev);
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    /* What the first attempt got done before it stopped. */
    assert_int_equal(port->storage_write(CUSTOS_OBJ_PROFILE_PREVIOUS, old, old_len, port->ctx), 0);
    assert_int_equal(port->storage_write(CUSTOS_OBJ_PROFILE, prof, pl, port->ctx), 0);

    assert_int_equal(custos_device_install(&res, port, prof, pl), 0);
    assert_int_equal(res.rotated, 1);
    assert_int_equal(
        port->storage_read(prev, sizeof(prev), &prev_len, CUSTOS_OBJ_PROFILE_PREVIOUS, port->ctx),
        0);
    assert_int_equal(prev_len, old_len);
    assert_memory_equal(prev, old, old_len); /* the real previous generation */
    assert_int_equal(custos_device_open(&dev, port, NULL), 0);
    ds_check_sign(dev, "t0");
    custos_device_free(dev);
    free(req);
    free(prof);
}

static void test_rotation(void **state)
{
    dfx *f = *state;
    custos_install_result res;
    ds_provision(f, DS_P256_2, 2, "SN-4001", &res);
    rotate_once(f, 0);
    rotate_once(f, 1);
    rotate_once(f, 0);

    /* A second rotation while one is pending replaces the pending one. */
    custos_device *dev = NULL;
    uint8_t *r1 = NULL, *r2 = NULL, *prof = NULL;
    size_t l1 = 0, l2 = 0, pl = 0;
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    assert_int_equal(custos_device_rotate(&r1, &l1, dev, NULL), 0);
    assert_int_equal(custos_device_rotate(&r2, &l2, dev, NULL), 0);
    assert_int_equal(dfx_profile(&prof, &pl, f, r1, l1, NULL), 0);
    expect_refused(f, prof, pl, CUSTOS_ERR_MISMATCH, "not the pending request");
    free(prof);
    assert_int_equal(dfx_profile(&prof, &pl, f, r2, l2, NULL), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    custos_device_free(dev);
    free(r1);
    free(r2);
    free(prof);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    ds_check_sign(dev, "t1");

    /* Two handles: the later rotation replaces the earlier pending one and
     * its answer installs; the previous generation still opens. */
    custos_device *other = NULL;
    assert_int_equal(custos_device_open(&other, f->port, NULL), 0);
    assert_int_equal(custos_device_rotate(&r1, &l1, other, NULL), 0);
    assert_int_equal(custos_device_rotate(&r2, &l2, dev, NULL), 0);
    assert_int_equal(dfx_profile(&prof, &pl, f, r2, l2, NULL), 0);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    assert_int_equal(res.rotated, 1);
    custos_device_free(other);
    custos_device_free(dev);
    free(r1);
    free(r2);
    free(prof);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    ds_check_sign(dev, "t0");
    custos_device_free(dev);
}

static void test_inspect(void **state)
{
    dfx *f = *state;
    uint8_t *pkg = NULL, *req = NULL, *prof = NULL, *ident = NULL;
    size_t pkl = 0, rl = 0, pl = 0, il = 0;
    char *json = NULL;
    custos_package_doc *doc = NULL;
    char *b64 = NULL;

    assert_int_equal(dfx_package(&pkg, &pkl, f, "controller", DS_P256_2, 2), 0);
    assert_int_equal(custos_inspect(&json, pkg, pkl), 0);
    assert_non_null(strstr(json, "\"kind\":\"package\""));
    assert_non_null(strstr(json, "\"signature\":true"));
    assert_non_null(strstr(json, "not pinned"));
    assert_non_null(strstr(json, "\"sha256\""));
    /* Never the encrypted bootstrap key. */
    assert_int_equal(custos_package_decode(&doc, pkg, pkl, NULL, f->pki.now), 0);
    assert_int_equal(custos_b64_encode(&b64, doc->bootstrap_key_enc, doc->bootstrap_key_enc_len),
                     0);
    assert_null(strstr(json, b64));
    assert_null(strstr(json, "encrypted_key\":\""));
    free(b64);
    custos_package_doc_free(doc);
    free(json);

    req = ds_do_request(f, &rl, DS_P256_2, 2, "SN-5001");
    assert_int_equal(custos_inspect(&json, req, rl), 0);
    assert_non_null(strstr(json, "\"kind\":\"request\""));
    assert_non_null(strstr(json, "\"proof_of_possession\":true"));
    assert_non_null(strstr(json, "offline"));
    assert_non_null(strstr(json, "\"serial\":\"SN-5001\""));
    free(json);

    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    assert_int_equal(custos_inspect(&json, prof, pl), 0);
    assert_non_null(strstr(json, "\"kind\":\"profile\""));
    assert_non_null(strstr(json, "\"request_sha256\""));
    assert_non_null(strstr(json, "\"signature\":true"));
    free(json);

    char path[600];
    snprintf(path, sizeof(path), "%s/%s", f->device_dir, CUSTOS_OBJ_IDENTITY);
    ident = dfx_read(path, &il);
    assert_non_null(ident);
    assert_int_equal(custos_inspect(&json, ident, il), 0);
    assert_non_null(strstr(json, "\"kind\":\"identity\""));
    assert_null(strstr(json, "PRIVATE"));
    free(json);

    /* Tampered package: signature false, content limited to certificates. */
    pkg[pkl - 3] ^= 0x01;
    assert_int_equal(custos_inspect(&json, pkg, pkl), 0);
    assert_non_null(strstr(json, "\"signature\":false"));
    free(json);
    assert_int_equal(custos_inspect(&json, (const uint8_t *)"junk", 4), CUSTOS_ERR_MALFORMED);
    assert_null(json);
    free(pkg);
    free(req);
    free(prof);
    free(ident);
}

/* A server-like certificate under @p ca: CN @p cn, EKU @p eku (0: none) and,
 * when @p san is not NULL, a subjectAltName such as "DNS:custos.example"
 * (testca has no SAN option: add it and re-sign). */
#ifdef CUSTOS_TEST_HOOKS
static void test_expiry(void **state)
{
    dfx *f = *state;
    char fake[32];
    uint8_t *der = NULL, *req = NULL, *prof = NULL;
    size_t dl = 0, rl = 0, pl = 0;
    custos_package *pkg = NULL;
    custos_package_options po = CUSTOS_PACKAGE_OPTIONS_INIT;
    custos_install_result res;
    char *json = NULL;

    /* The port's clock decides: a year later the package has expired. */
    snprintf(fake, sizeof(fake), "%lld", (long long)(f->pki.now + 400 * 86400));
    assert_int_equal(dfx_package(&der, &dl, f, "controller", DS_P256_2, 2), 0);
    po.port = f->port;
    setenv("CUSTOS_FAKE_NOW", fake, 1);
    assert_int_equal(custos_package_open(&pkg, der, dl, FX_PASSPHRASE, strlen(FX_PASSPHRASE), &po),
                     CUSTOS_ERR_EXPIRED);
    unsetenv("CUSTOS_FAKE_NOW");
    free(der);

    /* A profile whose certificates are not valid at the device's time changes nothing. */
    req = ds_do_request(f, &rl, DS_P256_2, 2, "SN-7001");
    assert_int_equal(dfx_profile(&prof, &pl, f, req, rl, NULL), 0);
    snprintf(fake, sizeof(fake), "%lld", (long long)(f->pki.now - 86400));
    setenv("CUSTOS_FAKE_NOW", fake, 1);
    dfx_snapshot before;
    assert_int_equal(dfx_snapshot_take(&before, f), 0);
    custos_err r = custos_device_install(&res, f->port, prof, pl);
    unsetenv("CUSTOS_FAKE_NOW");
    assert_int_equal(r, CUSTOS_ERR_NOT_YET_VALID);
    assert_true(dfx_snapshot_same(&before, f));
    dfx_snapshot_free(&before);
    assert_int_equal(custos_device_install(&res, f->port, prof, pl), 0);
    free(req);
    free(prof);

    /* No reprovisioning request once the signing certificate has expired. */
    custos_device *dev = NULL;
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    snprintf(fake, sizeof(fake), "%lld", (long long)(f->pki.now + 3 * 365 * 86400));
    setenv("CUSTOS_FAKE_NOW", fake, 1);
    r = custos_device_rotate(&req, &rl, dev, NULL);
    unsetenv("CUSTOS_FAKE_NOW");
    assert_int_equal(r, CUSTOS_ERR_EXPIRED);
    assert_null(req);
    assert_false(dfx_exists(f, CUSTOS_OBJ_REQUEST));
    custos_device_free(dev);

    /* Inspect of an expired package: signatures still checked, valid_now false. */
    fx_pki_free(&f->pki);
    assert_int_equal(fx_pki_init(&f->pki, (int64_t)time(NULL) - 60), 0);
    assert_int_equal(dfx_package(&der, &dl, f, "controller", DS_P256_2, 2), 0);
    assert_int_equal(custos_inspect(&json, der, dl), 0);
    assert_non_null(strstr(json, "\"valid_now\":false"));
    assert_non_null(strstr(json, "\"signature\":true"));
    assert_non_null(strstr(json, "\"code\":\"expired\""));
    free(json);
    free(der);
}
#endif

/* A port that fails writes of one object with a bare code and no detail. */
typedef struct failing_port {
    custos_port port;
    const custos_port *inner;
    const char *fail_name;
} failing_port;

static custos_err failing_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    failing_port *fp = ctx;
    if (strcmp(name, fp->fail_name) == 0)
        return CUSTOS_ERR_IO;
    return fp->inner->storage_write(name, data, len, fp->inner->ctx);
}

#define FWD(name, sig, args)                                                                       \
    static custos_err failing_##name sig                                                           \
    {                                                                                              \
        failing_port *fp = ctx;                                                                    \
        return fp->inner->name args;                                                               \
    }
FWD(device_secret, (uint8_t * out, size_t cap, size_t *out_len, void *ctx),
    (out, cap, out_len, fp->inner->ctx))
FWD(entropy, (uint8_t * out, size_t len, void *ctx), (out, len, fp->inner->ctx))
FWD(storage_read, (uint8_t * out, size_t cap, size_t *out_len, const char *name, void *ctx),
    (out, cap, out_len, name, fp->inner->ctx))
FWD(storage_remove, (const char *name, void *ctx), (name, fp->inner->ctx))
FWD(clock, (int64_t * out, void *ctx), (out, fp->inner->ctx))

static void test_port_failure_named(void **state)
{
    dfx *f = *state;
    failing_port fp;
    custos_package *pkg = NULL;
    custos_request_options o = CUSTOS_REQUEST_OPTIONS_INIT;

    memset(&fp, 0, sizeof(fp));
    fp.inner = f->port;
    fp.fail_name = CUSTOS_OBJ_REQUEST;
    fp.port.version = CUSTOS_PORT_VERSION;
    fp.port.device_secret = failing_device_secret;
    fp.port.entropy = failing_entropy;
    fp.port.storage_read = failing_storage_read;
    fp.port.storage_write = failing_write;
    fp.port.storage_remove = failing_storage_remove;
    fp.port.clock = failing_clock;
    fp.port.ctx = &fp;
    assert_int_equal(dfx_package_open(&pkg, f, "controller", DS_P256_2, 2), 0);
    o.component = "controller";
    o.identity.serial = "SN-8001";
    assert_int_equal(custos_device_request(NULL, NULL, &fp.port, pkg, &o), CUSTOS_ERR_IO);
    assert_non_null(strstr(custos_error_last()->message, "storage_write failed for request.mcpr"));
    assert_false(dfx_exists(f, CUSTOS_OBJ_REQUEST));
    /* A port without a required callback is refused up front. */
    fp.port.clock = NULL;
    assert_int_equal(custos_device_request(NULL, NULL, &fp.port, pkg, &o), CUSTOS_ERR_ARG);
    custos_package_free(pkg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_flow, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_refuses_planted_identity, ds_setup,
                                        ds_teardown),
        cmocka_unit_test_setup_teardown(test_algorithms, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_request_refusals, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_install_mismatch, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_locked_to_device, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_mock, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_rotation, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_install_resumes, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_inspect, ds_setup, ds_teardown),
#ifdef CUSTOS_TEST_HOOKS /* moves the clock with CUSTOS_FAKE_NOW */
        cmocka_unit_test_setup_teardown(test_expiry, ds_setup, ds_teardown),
#endif
        cmocka_unit_test_setup_teardown(test_port_failure_named, ds_setup, ds_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
