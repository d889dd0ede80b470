/* Device library: the mutual-TLS client context (the server's identity is
 * checked over a real in-memory handshake) and the cloud URL host parser. */
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

static void issue_server(testca_cert *out, const testca_cert *ca, const char *cn, int eku,
                         const char *san)
{
    testca_opts o;
    memset(&o, 0, sizeof(o));
    o.cn = cn;
    o.eku_nid = eku;
    assert_int_equal(testca_issue(out, ca, &o), 0);
    if (san == NULL)
        return;
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca->cert, out->cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(out->cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(out->cert, ca->key, EVP_sha256()) > 0);
    /* Re-parse so that no extension data cached before the edit survives. */
    unsigned char *der = NULL;
    int n = i2d_X509(out->cert, &der);
    assert_true(n > 0);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, n);
    OPENSSL_free(der);
    assert_non_null(x);
    X509_free(out->cert);
    out->cert = x;
}

/* One in-memory handshake: the device's SSL_CTX against a server that
 * requires a client certificate chaining to the fixture root. @p host, when
 * not NULL, overrides the expected server name on the client's SSL. */
static int handshake_to(SSL_CTX *client_ctx, const dfx *f, const testca_cert *srv, const char *host,
                        int *client_ok)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL *c = NULL, *s = NULL;
    BIO *cb = NULL, *sb = NULL;
    int done_c = 0, done_s = 0;

    assert_non_null(sctx);
    assert_int_equal(SSL_CTX_use_certificate(sctx, srv->cert), 1);
    assert_int_equal(SSL_CTX_add1_chain_cert(sctx, f->pki.dev_ca.cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(sctx, srv->key), 1);
    X509_STORE *st = testca_store(&f->pki.root);
    SSL_CTX_set_cert_store(sctx, st);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    c = SSL_new(client_ctx);
    s = SSL_new(sctx);
    assert_non_null(c);
    if (host != NULL)
        assert_int_equal(SSL_set1_host(c, host), 1);
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 50 && !(done_c && done_s); i++) {
        if (!done_c) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                done_c = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                break;
        }
        if (!done_s) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                done_s = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                break;
        }
    }
    *client_ok = done_c;
    int ok = done_c && done_s && SSL_get_verify_result(s) == X509_V_OK;
    if (ok) {
        X509 *peer = SSL_get1_peer_certificate(s);
        ok = peer != NULL;
        X509_free(peer);
    }
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
    ERR_clear_error();
    return ok;
}

static int handshake(SSL_CTX *client_ctx, const dfx *f, const testca_cert *srv, int *client_ok)
{
    return handshake_to(client_ctx, f, srv, NULL, client_ok);
}

static void test_mutual_tls(void **state)
{
    dfx *f = *state;
    custos_install_result res;
    custos_device *dev = NULL;
    SSL_CTX *ctx = NULL;
    testca_cert srv = {0}, foreign_root = {0}, foreign = {0};
    int client_ok = 0;

    ds_provision(f, DS_P256_2, 2, "SN-6001", &res);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    assert_int_equal(custos_device_ssl_ctx(&ctx, dev, NULL), 0);
    /* The profile's cloud URL is https://custos.example: the server's
     * certificate must name that host (subjectAltName). */
    issue_server(&srv, &f->pki.dev_ca, "Custos Cloud", NID_server_auth, "DNS:custos.example");
    assert_true(handshake(ctx, f, &srv, &client_ok));
    /* A server outside the Root of Trust is refused by the device. */
    assert_int_equal(testca_root(&foreign_root, "Other Root"), 0);
    assert_int_equal(testca_leaf(&foreign, &foreign_root, "evil.example", NID_server_auth), 0);
    assert_false(handshake(ctx, f, &foreign, &client_ok));
    assert_false(client_ok);
    SSL_CTX_free(ctx);
    custos_device_free(dev);
    testca_cert_free(&srv);
    testca_cert_free(&foreign);
    testca_cert_free(&foreign_root);
}

/* The device's TLS context trusts the Root of Trust only for the cloud: a
 * certificate under the same root for another name, or without the server
 * purpose, does not pass as the server. */
static void test_tls_server_identity(void **state)
{
    dfx *f = *state;
    custos_install_result res;
    custos_device *dev = NULL;
    SSL_CTX *ctx = NULL;
    testca_cert good = {0}, peer = {0}, client_only = {0}, gw = {0};
    int client_ok = 0;

    ds_provision(f, DS_P256_2, 2, "SN-6101", &res);
    assert_int_equal(custos_device_open(&dev, f->port, NULL), 0);
    assert_int_equal(custos_device_ssl_ctx(&ctx, dev, NULL), 0);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    assert_string_equal(X509_VERIFY_PARAM_get0_host(param, 0), "custos.example");

    /* (a) the right host name under the root: accepted. */
    issue_server(&good, &f->pki.dev_ca, "Custos Cloud", 0, "DNS:custos.example");
    assert_true(handshake(ctx, f, &good, &client_ok));
    assert_true(client_ok);
    /* (b) another device-like certificate under the same root, no EKU, another
     * name: refused by the device. */
    issue_server(&peer, &f->pki.dev_ca, "SN-9999", 0, NULL);
    assert_false(handshake(ctx, f, &peer, &client_ok));
    assert_false(client_ok);
    /* The right name but a client-only certificate (EKU clientAuth): refused. */
    issue_server(&client_only, &f->pki.dev_ca, "custos.example", NID_client_auth,
                 "DNS:custos.example");
    assert_false(handshake(ctx, f, &client_only, &client_ok));
    assert_false(client_ok);
    /* A gateway: refused by default, accepted once the caller names it. */
    issue_server(&gw, &f->pki.dev_ca, "Gateway", NID_server_auth, "DNS:gw.example");
    assert_false(handshake(ctx, f, &gw, &client_ok));
    assert_false(client_ok);
    assert_true(handshake_to(ctx, f, &gw, "gw.example", &client_ok));
    assert_true(client_ok);

    SSL_CTX_free(ctx);
    custos_device_free(dev);
    testca_cert_free(&good);
    testca_cert_free(&peer);
    testca_cert_free(&client_only);
    testca_cert_free(&gw);
}

static void check_host(const char *url, const char *want, int want_ip)
{
    char host[64];
    int is_ip = -1;
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, url, "url"), 0);
    assert_string_equal(host, want);
    assert_int_equal(is_ip, want_ip);
}

static void test_url_host(void **state)
{
    (void)state;
    char host[16];
    int is_ip = 0;

    check_host("https://custos.example", "custos.example", 0);
    check_host("https://custos.example:8443/api/v1?x=1", "custos.example", 0);
    check_host("http://custos.example/", "custos.example", 0);
    check_host("https://user:pw@custos.example:1/p", "custos.example", 0);
    check_host("https://custos.example#frag", "custos.example", 0);
    check_host("https://192.0.2.7:8443/x", "192.0.2.7", 1);
    check_host("https://[2001:db8::1]:8443/x", "2001:db8::1", 1);
    check_host("https://[::1]", "::1", 1);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "custos.example", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "https://", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "https://:443/x", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "https://[::1/x", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "https://[::1]x/", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip, "https://[gw.example]/", "url"),
                     CUSTOS_ERR_MALFORMED);
    assert_int_equal(custos_url_host(host, sizeof(host), &is_ip,
                                     "https://a-much-too-long-host-name.example/", "url"),
                     CUSTOS_ERR_TOO_LARGE);
    assert_string_equal(host, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mutual_tls, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_tls_server_identity, ds_setup, ds_teardown),
        cmocka_unit_test_setup_teardown(test_url_host, ds_setup, ds_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
