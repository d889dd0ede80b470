/* custosd serve's TLS: init with extra server names and the first admin;
 * the server certificate's names; an in-memory handshake against the
 * engine's SSL_CTX with no client certificate, a device certificate, a mock
 * identity and a foreign one (both refused), TLS 1.1 (refused), and session
 * resumption (TLS 1.2 session ids and TLS 1.3 tickets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "support/engine_fixture.h"

static X509 *tls_server_cert(const char *dir)
{
    char path[400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    X509 *x = NULL;
    snprintf(path, sizeof(path), "%s/custos.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT der FROM authorities WHERE name='tls-server'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    OK(custos_x509_from_der(&x, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                            "tls"));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return x;
}

static X509 *read_pem(const char *dir, const char *file)
{
    char path[400];
    FILE *fp;
    X509 *x;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fp = fopen(path, "r");
    assert_non_null(fp);
    x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static void test_init_options(void **state)
{
    char tmp[256], dir[300], pw[64];
    const char *names[] = {"Custos.Example.org", "10.1.2.3", "fd00::1"};
    const char *bad[] = {"not a name"};
    custos_init_options o = CUSTOS_INIT_OPTIONS_INIT;
    custos_engine *e = NULL;
    custos_principal p;
    char tok[CUSTOS_SECRET_TEXT_MAX];
    X509 *x;

    (void)state;
    assert_int_equal(testca_tmpdir(tmp, sizeof(tmp)), 0);
    snprintf(dir, sizeof(dir), "%s/data", tmp);
    o.server_names = bad;
    o.n_server_names = 1;
    assert_int_equal(custos_engine_init_ex(dir, &o), CUSTOS_ERR_ARG);
    assert_string_equal(custos_error_last()->field, "server-name");
    o.server_names = names;
    o.n_server_names = 3;
    o.admin_password = pw;
    o.admin_password_cap = sizeof(pw);
    OK(custos_engine_init_ex(dir, &o));
    assert_int_equal(strlen(pw), CUSTOS_PASSWORD_GEN_LEN);
    x = tls_server_cert(dir);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "custos.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example.org", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "fd00::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.4", 0), 0);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
    X509_free(x);
    /* the first operator signs in with the password shown once */
    OK(custos_engine_open(&e, dir));
    OK(custos_engine_login(&p, tok, sizeof(tok), e, CUSTOS_FIRST_ADMIN, pw, "local", 0));
    assert_int_equal(p.role, CUSTOS_ROLE_ADMIN);
    custos_engine_free(e);
    testca_rmtree(tmp);
}

/* ---- handshakes ----------------------------------------------------------- */

static int pump(SSL *ssl, int *done)
{
    int rc;
    if (*done)
        return 1;
    rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        *done = 1;
        return 1;
    }
    rc = SSL_get_error(ssl, rc);
    return rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Run a handshake between @p c and @p s over a BIO pair: 1 ok, 0 failed. */
static int handshake(SSL *c, SSL *s)
{
    BIO *bc = NULL, *bs = NULL;
    int cd = 0, sd = 0, i;
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    for (i = 0; i < 64; i++) {
        int a = pump(c, &cd), b = pump(s, &sd);
        if (a < 0 || b < 0) {
            ERR_clear_error();
            return 0;
        }
        if (cd && sd)
            return 1;
    }
    return 0;
}

/* Let the client read what the server sent after the handshake (TLS 1.3
 * session tickets). */
static void exchange(SSL *c, SSL *s)
{
    char b = 'x';
    assert_int_equal(SSL_write(s, &b, 1), 1);
    assert_int_equal(SSL_read(c, &b, 1), 1);
}

typedef struct tls_fx {
    ef_fx *f;
    SSL_CTX *server;
    SSL_CTX *client;
} tls_fx;

static SSL_CTX *client_ctx(ef_fx *f, int max_version)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    X509 *root = read_pem(f->dir, "root.pem");
    assert_non_null(c);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(c), root), 1);
    X509_free(root);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    if (max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(c, max_version), 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    return c;
}

static SSL *client_ssl(SSL_CTX *c)
{
    SSL *ssl = SSL_new(c);
    assert_non_null(ssl);
    assert_int_equal(SSL_set1_host(ssl, "localhost"), 1);
    assert_int_equal(SSL_set_tlsext_host_name(ssl, "localhost"), 1);
    SSL_set_connect_state(ssl);
    return ssl;
}

static SSL *server_ssl(SSL_CTX *s)
{
    SSL *ssl = SSL_new(s);
    assert_non_null(ssl);
    SSL_set_accept_state(ssl);
    return ssl;
}

static void test_handshake_no_client_cert(void **state)
{
    ef_fx *f = *state;
    SSL_CTX *sctx = NULL, *cctx = client_ctx(f, 0);
    SSL *c, *s;

    OK(custos_engine_ssl_ctx(&sctx, f->e));
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    assert_int_equal(handshake(c, s), 1);
    assert_int_equal(SSL_get_verify_result(c), X509_V_OK);
    assert_int_equal(SSL_version(s), TLS1_3_VERSION);
    assert_null(SSL_get0_peer_certificate(s));
    SSL_free(c);
    SSL_free(s);
    /* TLS 1.1 is refused */
    SSL_CTX_free(cctx);
    cctx = client_ctx(f, TLS1_1_VERSION);
    SSL_CTX_set_security_level(cctx, 0);
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    assert_int_equal(handshake(c, s), 0);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void use_identity(SSL *c, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain)
{
    int i;
    assert_int_equal(SSL_use_certificate(c, cert), 1);
    assert_int_equal(SSL_use_PrivateKey(c, key), 1);
    for (i = 0; chain != NULL && i < sk_X509_num(chain); i++)
        assert_int_equal(SSL_add1_chain_cert(c, sk_X509_value(chain, i)), 1);
}

static void test_handshake_device_cert(void **state)
{
    ef_fx *f = *state;
    SSL_CTX *sctx = NULL, *cctx = client_ctx(f, 0);
    SSL *c, *s;
    custos_request_summary r;
    custos_profile_doc *p;
    EVP_PKEY *keys[4] = {0};
    X509 *tls = NULL;
    size_t i;

    OK(custos_engine_ssl_ctx(&sctx, f->e));
    p = ef_provision(f, "SN-TLS", keys, &r);
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            tls = p->certs[i].cert;
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    use_identity(c, tls, keys[0], p->chain);
    assert_int_equal(handshake(c, s), 1);
    assert_non_null(SSL_get0_peer_certificate(s));
    assert_int_equal(SSL_get_verify_result(s), X509_V_OK);
    assert_int_equal(X509_cmp(SSL_get0_peer_certificate(s), tls), 0);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    custos_profile_doc_free(p);
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

static void test_handshake_untrusted_refused(void **state)
{
    ef_fx *f = *state;
    SSL_CTX *sctx = NULL, *cctx = client_ctx(f, 0);
    SSL *c, *s;
    testca_cert root = {0}, leaf = {0};
    char out[400], path[450];
    uint8_t *data = NULL;
    size_t len = 0, i;
    custos_identity_doc *id = NULL;
    custos_profile_doc *p = NULL;
    custos_trust t;
    X509_STORE *mock;

    OK(custos_engine_ssl_ctx(&sctx, f->e));
    /* a foreign CA */
    assert_int_equal(testca_root(&root, "Foreign Root"), 0);
    assert_int_equal(testca_leaf(&leaf, &root, "SN-X", NID_client_auth), 0);
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    use_identity(c, leaf.cert, leaf.key, NULL);
    assert_int_equal(handshake(c, s), 0);
    SSL_free(c);
    SSL_free(s);

    /* mock device files: chained to the mock root, which is not trusted */
    snprintf(out, sizeof(out), "%s/mock", f->tmp);
    OK(custos_engine_mock_create(f->e, "pump", "ctl", "MOCK-1", out, &EF_ACTOR));
    snprintf(path, sizeof(path), "%s/identity.mcpi", out);
    OK(custos_file_read(&data, &len, path, CUSTOS_MAX_IDENTITY_SIZE));
    OK(custos_identity_decode(&id, data, len, NULL, 0));
    free(data);
    snprintf(path, sizeof(path), "%s/profile.mccp", out);
    OK(custos_file_read(&data, &len, path, CUSTOS_MAX_PROFILE_SIZE));
    mock = X509_STORE_new();
    t = ef_profile_trust(f, mock);
    X509_STORE_free(mock);
    mock = X509_STORE_new();
    assert_int_equal(X509_STORE_add_cert(mock, sk_X509_value(id->root_of_trust, 0)), 1);
    t.store = mock;
    OK(custos_profile_decode(&p, data, len, &t));
    free(data);
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            for (size_t j = 0; j < id->gens[0].n_keys; j++)
                if (strcmp(id->gens[0].keys[j].template_name, "tls") == 0)
                    use_identity(c, p->certs[i].cert, id->gens[0].keys[j].key, p->chain);
    assert_int_equal(handshake(c, s), 0);
    SSL_free(c);
    SSL_free(s);
    X509_STORE_free(mock);
    custos_profile_doc_free(p);
    custos_identity_doc_free(id);
    testca_cert_free(&leaf);
    testca_cert_free(&root);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Close both ends cleanly: OpenSSL drops a session from the caches (and
 * marks it not resumable) when its connection is freed without a shutdown. */
static void close_both(SSL *c, SSL *s)
{
    (void)SSL_shutdown(c);
    (void)SSL_shutdown(s);
    (void)SSL_shutdown(c);
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
}

static void resume(ef_fx *f, SSL_CTX *sctx, int max_version)
{
    SSL_CTX *cctx = client_ctx(f, max_version);
    SSL *c, *s;
    SSL_SESSION *sess;

    c = client_ssl(cctx);
    s = server_ssl(sctx);
    assert_int_equal(handshake(c, s), 1);
    exchange(c, s);
    assert_int_equal(SSL_session_reused(c), 0);
    sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    close_both(c, s);
    c = client_ssl(cctx);
    s = server_ssl(sctx);
    assert_int_equal(SSL_set_session(c, sess), 1);
    assert_int_equal(handshake(c, s), 1);
    assert_int_equal(SSL_session_reused(c), 1);
    assert_int_equal(SSL_session_reused(s), 1);
    SSL_SESSION_free(sess);
    close_both(c, s);
    SSL_CTX_free(cctx);
}

static void test_resumption(void **state)
{
    ef_fx *f = *state;
    SSL_CTX *sctx = NULL;
    OK(custos_engine_ssl_ctx(&sctx, f->e));
    resume(f, sctx, TLS1_2_VERSION);
    resume(f, sctx, 0);
    SSL_CTX_free(sctx);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_options),
        T(test_handshake_no_client_cert),
        T(test_handshake_device_cert),
        T(test_handshake_untrusted_refused),
        T(test_resumption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
