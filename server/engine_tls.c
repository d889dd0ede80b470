/* The TLS server context of custosd serve (docs/api.md "TLS"). */
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "engine_int.h"

#define SESSION_CACHE_SIZE 50000
#define SESSION_TIMEOUT 7200 /* seconds a session may be resumed */
#define VERIFY_DEPTH 4       /* device certificate, system CA, root (and slack) */

/* TLS 1.2 suites for the ECDSA server key, forward secret and AEAD only;
 * TLS 1.3 keeps OpenSSL's defaults (all AEAD). */
static const char TLS12_CIPHERS[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305";
static const char GROUPS[] = "X25519:P-256";
static const unsigned char SID_CTX[] = "custosd";

custos_err custos_engine_ssl_ctx(SSL_CTX **out, custos_engine *e)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    SSL_CTX *ctx = NULL;
    X509_STORE *verify = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "tls", "missing argument");
    *out = NULL;
    CUSTOS_GUARD(e->st->ops->authority_get(e->st->ctx, &der, &len, CUSTOS_AUTH_TLS_SERVER));
    CUSTOS_GUARD(custos_x509_from_der(&cert, der, len, CUSTOS_AUTH_TLS_SERVER));
    CUSTOS_GUARD(custos_keystore_get(&key, e->ks, CUSTOS_AUTH_TLS_SERVER));
    ctx = SSL_CTX_new(TLS_server_method());
    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, "tls", "out of memory");
    CUSTOS_ENSURE(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
                      SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) == 1 &&
                      SSL_CTX_set1_groups_list(ctx, GROUPS) == 1,
                  CUSTOS_ERR_INTERNAL, "tls", "cannot set the TLS versions, ciphers or groups");
    /* The server certificate is issued by the root directly: no intermediate
     * to send, and the root itself is the client's own trust anchor. */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    CUSTOS_ENSURE(SSL_CTX_use_certificate(ctx, cert) == 1 &&
                      SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1,
                  CUSTOS_ERR_MISMATCH, "tls", "the TLS server key does not match its certificate");
    /* Client certificates: asked for, optional, and when sent verified
     * against the Root of Trust alone (the device sends its system's issuing
     * CA). The mock root is not in this store: a mock identity ends the
     * handshake. */
    verify = X509_STORE_new();
    CUSTOS_ENSURE(verify != NULL && X509_STORE_add_cert(verify, e->root) == 1, CUSTOS_ERR_NOMEM,
                  "tls", "cannot build the client verification store");
    CUSTOS_ENSURE(SSL_CTX_set1_verify_cert_store(ctx, verify) == 1 &&
                      SSL_CTX_add_client_CA(ctx, e->root) == 1,
                  CUSTOS_ERR_INTERNAL, "tls", "cannot set the client verification store");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, VERIFY_DEPTH);
    /* Resumption (session cache for TLS 1.2 ids, tickets for both) keeps a
     * returning client off the full handshake; the session id context is
     * required when client certificates are verified. */
    CUSTOS_ENSURE(SSL_CTX_set_session_id_context(ctx, SID_CTX, sizeof(SID_CTX) - 1) == 1,
                  CUSTOS_ERR_INTERNAL, "tls", "cannot set the session id context");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT);
    (void)SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    *out = ctx;
    ctx = NULL;
    ret = CUSTOS_OK;
out:
    X509_STORE_free(verify);
    SSL_CTX_free(ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(der);
    return ret;
}
