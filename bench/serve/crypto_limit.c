/* bench_serve: the crypto-only limit of a provisioning: raw ECDSA rates and
 * the CPU cost of a TLS handshake with custosd's own SSL_CTX. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "serve.h"

/* Raw ECDSA rate on @p curve, measured like `openssl speed`: one initialised
 * EVP_PKEY_CTX on a 32-byte digest (48 for P-384). */
double ecdsa_rate(const char *curve, int verify, double secs)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(key, NULL), *vctx = EVP_PKEY_CTX_new(key, NULL);
    unsigned char dgst[48] = {1}, sig[160];
    size_t dlen = strcmp(curve, "P-384") == 0 ? 48 : 32, siglen = sizeof(sig);
    long n = 0;
    double t0, t;

    if (key == NULL || sctx == NULL || vctx == NULL || EVP_PKEY_sign_init(sctx) != 1 ||
        EVP_PKEY_verify_init(vctx) != 1 || EVP_PKEY_sign(sctx, sig, &siglen, dgst, dlen) != 1)
        fail("cannot set up ECDSA");
    t0 = now_s();
    do {
        int ok;
        if (verify) {
            ok = EVP_PKEY_verify(vctx, sig, siglen, dgst, dlen) == 1;
        } else {
            size_t l = sizeof(sig);
            ok = EVP_PKEY_sign(sctx, sig, &l, dgst, dlen) == 1;
        }
        if (!ok)
            fail("ECDSA failed");
        n++;
    } while ((t = now_s() - t0) < secs);
    EVP_PKEY_CTX_free(sctx);
    EVP_PKEY_CTX_free(vctx);
    EVP_PKEY_free(key);
    return (double)n / t;
}

/* Full TLS handshakes over a memory BIO pair with custosd's own SSL_CTX and a
 * client that verifies it against root.pem as libcurl does, no resumption.
 * CPU time of each side per handshake, in seconds. */
void tls_cost(double *out_server, double *out_client, SSL_CTX *sctx, const char *ca, double secs)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    double ts = 0, tc = 0, t0 = now_s();
    long n = 0;

    if (cctx == NULL || SSL_CTX_load_verify_locations(cctx, ca, NULL) != 1)
        fail("cannot set up the TLS client");
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    while (now_s() - t0 < secs) {
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        BIO *bc = NULL, *bs = NULL;
        int cdone = 0, sdone = 0, rounds = 0;
        if (c == NULL || s == NULL || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
            fail("cannot set up a TLS pair");
        SSL_set_bio(c, bc, bc);
        SSL_set_bio(s, bs, bs);
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c), "127.0.0.1");
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        while ((!cdone || !sdone) && rounds++ < 20) {
            double a = now_s();
            if (!cdone) {
                int r = SSL_do_handshake(c);
                if (r == 1)
                    cdone = 1;
                else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                    fail("TLS client handshake failed");
            }
            double b = now_s();
            if (!sdone) {
                int r = SSL_do_handshake(s);
                if (r == 1)
                    sdone = 1;
                else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                    fail("TLS server handshake failed");
            }
            tc += b - a;
            ts += now_s() - b;
        }
        if (!cdone || !sdone || SSL_get_verify_result(c) != X509_V_OK)
            fail("TLS handshake did not complete");
        SSL_free(c);
        SSL_free(s);
        n++;
    }
    SSL_CTX_free(cctx);
    *out_server = ts / (double)n;
    *out_client = tc / (double)n;
}
