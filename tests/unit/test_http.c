/* Unit tests: the HTTPS server core (server/http) over real sockets on
 * 127.0.0.1 and real TLS, with OpenSSL's own client writing raw HTTP/1.1, so
 * that slow, oversized and plaintext requests can be sent on purpose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http/http.h"
#include "http/log.h"
#include "internal/util.h"

/* ---- shared state -------------------------------------------------------- */

static EVP_PKEY *g_key;
static X509 *g_cert;
static SSL_CTX *g_server_ctx, *g_client_ctx, *g_client_cert_ctx;
static char g_log_path[64];
static int g_log_fd = -1;
static atomic_int g_handled, g_inits, g_frees, g_fail_init_index;
static atomic_int g_bad_wctx;
static int g_app;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the toy application ------------------------------------------------- */

static void *toy_init(unsigned index, void *app)
{
    if (app != &g_app || (int)index == atomic_load(&g_fail_init_index))
        return NULL;
    atomic_fetch_add(&g_inits, 1);
    return &g_app;
}

static void toy_free(void *wctx)
{
    if (wctx != &g_app)
        atomic_store(&g_bad_wctx, 1);
    atomic_fetch_add(&g_frees, 1);
}

static void toy_echo(custos_http_exchange *x)
{
    size_t len;
    const uint8_t *body = custos_http_body(x, &len);
    json_t *o =
        json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:s%,s:s,s:s,s:b}", "method", custos_http_method(x),
                  "path", custos_http_path(x), "q", custos_http_query(x, "q"), "x",
                  custos_http_query(x, "x"), "hdr", custos_http_header(x, "x-test"), "body",
                  (const char *)body, len, "client", custos_http_client_addr(x), "request_id",
                  custos_http_request_id(x), "peer", custos_http_peer_cert(x) != NULL);

    custos_http_log_field(x, "actor", "tester");
    custos_http_set_header(x, "X-Extra", "1");
    custos_http_reply_json(x, 200, o);
    json_decref(o);
}

static void toy_handle(custos_http_exchange *x, void *wctx)
{
    const char *path = custos_http_path(x);

    if (wctx != &g_app)
        atomic_store(&g_bad_wctx, 1);
    atomic_fetch_add(&g_handled, 1);
    if (strcmp(path, "/echo") == 0) {
        toy_echo(x);
    } else if (strcmp(path, "/slow") == 0) {
        sleep_ms(600);
        custos_http_reply(x, 200, "text/plain", "slow", 4);
    } else if (strcmp(path, "/noreply") == 0) {
        /* a bug: no answer */
    } else if (strcmp(path, "/notfound") == 0) {
        custos_http_reply_err(x, custos_error_set(CUSTOS_ERR_NOT_FOUND, "id", "no request k3"));
    } else if (strcmp(path, "/internal") == 0) {
        custos_http_reply_err(x, custos_error_set(CUSTOS_ERR_IO, "db", "disk /secret/x failed"));
    } else if (strcmp(path, "/twice") == 0) {
        custos_http_reply(x, 201, "text/plain", "first", 5);
        custos_http_reply(x, 202, "text/plain", "second", 6);
    } else if (strcmp(path, "/nocontent") == 0) {
        custos_http_reply(x, 204, NULL, "ignored", 7);
    } else {
        custos_http_reply_error(x, 404, "not_found", "no route", NULL);
    }
}

/* ---- TLS material -------------------------------------------------------- */

static void make_cert(void)
{
    X509_NAME *name;

    g_key = EVP_EC_gen("P-256");
    assert_non_null(g_key);
    g_cert = X509_new();
    assert_non_null(g_cert);
    assert_int_equal(X509_set_version(g_cert, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 4242);
    X509_gmtime_adj(X509_getm_notBefore(g_cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(g_cert), 3600);
    name = X509_get_subject_name(g_cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(g_cert, name);
    X509_set_pubkey(g_cert, g_key);
    assert_true(X509_sign(g_cert, g_key, EVP_sha256()) > 0);
}

static SSL_CTX *client_ctx(int with_cert)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (with_cert) {
        assert_int_equal(SSL_CTX_use_certificate(ctx, g_cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, g_key), 1);
    }
    return ctx;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    make_cert();
    g_server_ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(g_server_ctx);
    SSL_CTX_set_min_proto_version(g_server_ctx, TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_use_certificate(g_server_ctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(g_server_ctx, g_key), 1);
    /* Client certificates are optional; one that is presented must verify. */
    SSL_CTX_set_verify(g_server_ctx, SSL_VERIFY_PEER, NULL);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(g_server_ctx), g_cert), 1);
    g_client_ctx = client_ctx(0);
    g_client_cert_ctx = client_ctx(1);
    snprintf(g_log_path, sizeof(g_log_path), "/tmp/custos_test_http_log_XXXXXX");
    g_log_fd = mkstemp(g_log_path);
    assert_true(g_log_fd >= 0);
    custos_log_set_fd(g_log_fd);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    custos_log_set_fd(-1);
    close(g_log_fd);
    if (getenv("CUSTOS_TEST_KEEP_LOG") != NULL)
        fprintf(stderr, "server log kept in %s\n", g_log_path);
    else
        unlink(g_log_path);
    SSL_CTX_free(g_server_ctx);
    SSL_CTX_free(g_client_ctx);
    SSL_CTX_free(g_client_cert_ctx);
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
    return 0;
}

/* ---- the server under test ----------------------------------------------- */

struct server {
    custos_http_server *srv;
    pthread_t thread;
    custos_err run_ret;
    int port;
    unsigned workers;
};

static void *run_thread(void *arg)
{
    struct server *s = arg;
    s->run_ret = custos_http_server_run(s->srv, 0);
    return NULL;
}

static void server_start(struct server *s, const custos_http_limits *lim, unsigned workers)
{
    custos_http_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    memset(s, 0, sizeof(*s));
    cfg.listen = "127.0.0.1:0";
    cfg.ssl_ctx = g_server_ctx;
    cfg.workers = workers;
    if (lim != NULL)
        cfg.limits = *lim;
    cfg.worker_init = toy_init;
    cfg.worker_free = toy_free;
    cfg.handle = toy_handle;
    cfg.app = &g_app;
    atomic_store(&g_inits, 0);
    atomic_store(&g_frees, 0);
    atomic_store(&g_fail_init_index, -1);
    assert_int_equal(custos_http_server_new(&s->srv, &cfg), 0);
    s->port = custos_http_server_port(s->srv);
    s->workers = workers;
    assert_true(s->port > 0);
    assert_int_equal(pthread_create(&s->thread, NULL, run_thread, s), 0);
}

static void server_stop(struct server *s)
{
    custos_http_server_stop(s->srv);
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    assert_int_equal(s->run_ret, 0);
    assert_int_equal(atomic_load(&g_frees), (int)s->workers);
    assert_int_equal(atomic_load(&g_bad_wctx), 0);
    custos_http_server_free(s->srv);
}

/* ---- a raw HTTP/1.1 client over OpenSSL ---------------------------------- */

struct client {
    int fd;
    SSL *ssl;
    char *buf;
    size_t len, cap;
};

struct resp {
    int status;
    char head[16384];
    char *body;
    size_t body_len;
};

static int tcp_connect(int port)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* 0 and a connected client, or -1 when the handshake fails. */
static int client_open_ctx(struct client *c, int port, SSL_CTX *ctx)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port);
    c->cap = 1 << 18;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    c->ssl = SSL_new(ctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static void client_open(struct client *c, int port)
{
    assert_int_equal(client_open_ctx(c, port, g_client_ctx), 0);
}

static void client_close(struct client *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static int client_send(struct client *c, const char *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write(c->ssl, data, (int)(len > 65536 ? 65536 : len));
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int client_send_str(struct client *c, const char *s)
{
    return client_send(c, s, strlen(s));
}

static int client_fill(struct client *c)
{
    int n;

    if (c->len == c->cap)
        return -1;
    n = SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len));
    if (n <= 0) {
        ERR_clear_error();
        return -1;
    }
    c->len += (size_t)n;
    return 0;
}

static const char *resp_header(const struct resp *r, const char *name)
{
    static _Thread_local char value[1024];
    size_t nlen = strlen(name);

    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *end;
            while (*v == ' ')
                v++;
            end = strstr(v, "\r\n");
            snprintf(value, sizeof(value), "%.*s", (int)(end != NULL ? end - v : 0), v);
            return value;
        }
    }
    return NULL;
}

static char *find_blank_line(char *buf, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    }
    return NULL;
}

/* Read one response; -1 when the connection ends first. */
static int client_read(struct client *c, struct resp *r, int head_request)
{
    char *end;
    size_t head_len, need;
    const char *cl;

    memset(r, 0, sizeof(*r));
    for (;;) {
        if (c->len > 0 && (end = find_blank_line(c->buf, c->len)) != NULL)
            break;
        if (client_fill(c) != 0)
            return -1;
    }
    head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    cl = resp_header(r, "Content-Length");
    r->body_len = head_request || cl == NULL ? 0 : (size_t)strtoul(cl, NULL, 10);
    need = head_len + r->body_len;
    while (c->len < need) {
        if (client_fill(c) != 0)
            return -1;
    }
    r->body = malloc(r->body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf + head_len, r->body_len);
    r->body[r->body_len] = '\0';
    memmove(c->buf, c->buf + need, c->len - need);
    c->len -= need;
    return 0;
}

static int client_request(struct client *c, const char *req, struct resp *r)
{
    if (client_send(c, req, strlen(req)) != 0)
        return -1;
    return client_read(c, r, strncmp(req, "HEAD ", 5) == 0);
}

/* 1 when the server closed the connection (EOF or reset) within @p ms. */
static int client_sees_close(struct client *c, unsigned ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    double until = now_ms() + ms;
    char tmp[256];

    while (now_ms() < until) {
        int n;
        if (poll(&p, 1, 50) <= 0)
            continue;
        n = SSL_read(c->ssl, tmp, sizeof(tmp));
        if (n <= 0) {
            ERR_clear_error();
            return 1;
        }
    }
    return 0;
}

static void assert_header(const struct resp *r, const char *name, const char *value)
{
    const char *v = resp_header(r, name);

    assert_non_null(v);
    assert_string_equal(v, value);
}

static json_t *resp_json(const struct resp *r)
{
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    assert_non_null(j);
    return j;
}

static void assert_error_body(const struct resp *r, int status, const char *code)
{
    json_t *j;

    assert_int_equal(r->status, status);
    assert_non_null(resp_header(r, "X-Request-Id"));
    assert_header(r, "Content-Type", "application/json");
    j = resp_json(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        code);
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* ---- tests --------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct server s;
    struct client c;
    struct resp r;
    json_t *j;
    const char *post = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 11\r\n\r\nhello world";

    (void)state;
    server_start(&s, NULL, 2);
    client_open(&c, s.port);
    assert_int_equal(client_request(&c,
                                    "GET /echo?q=hello%20world+2&x=&y=1 HTTP/1.1\r\nHost: t\r\n"
                                    "X-Test: abc\r\n\r\n",
                                    &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&g_inits), 2); /* all workers were up before any served */
    assert_header(&r, "Cache-Control", "no-store");
    assert_header(&r, "X-Content-Type-Options", "nosniff");
    assert_header(&r, "Strict-Transport-Security", "max-age=31536000");
    assert_header(&r, "X-Extra", "1");
    assert_header(&r, "Content-Type", "application/json");
    assert_non_null(resp_header(&r, "X-Request-Id"));
    assert_int_equal(strlen(resp_header(&r, "X-Request-Id")), CUSTOS_ID_LEN);
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "hello world 2");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "");
    assert_string_equal(json_string_value(json_object_get(j, "hdr")), "abc");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "");
    assert_string_equal(json_string_value(json_object_get(j, "client")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")),
                        resp_header(&r, "X-Request-Id"));
    assert_false(json_is_true(json_object_get(j, "peer")));
    json_decref(j);
    resp_free(&r);

    /* Same connection (keep-alive), with a body. */
    assert_int_equal(client_request(&c, post, &r), 0);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
    assert_true(json_is_null(json_object_get(j, "q")));
    json_decref(j);
    resp_free(&r);

    /* Two pipelined requests in one write: two answers, in order. */
    {
        char two[512];
        snprintf(two, sizeof(two), "%sGET /echo?q=second HTTP/1.1\r\nHost: t\r\n\r\n", post);
        assert_int_equal(client_send(&c, two, strlen(two)), 0);
        assert_int_equal(client_read(&c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        assert_int_equal(client_read(&c, &r, 0), 0);
        j = resp_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "q")), "second");
        json_decref(j);
        resp_free(&r);
    }

    /* A head that arrives in pieces, after a stray empty line. */
    assert_int_equal(client_send_str(&c, "\r\nGET /ec"), 0);
    sleep_ms(30);
    assert_int_equal(client_send_str(&c, "ho?q=split HTTP/1.1\r\nHo"), 0);
    sleep_ms(30);
    assert_int_equal(client_send_str(&c, "st: t\r\n\r"), 0);
    sleep_ms(30);
    assert_int_equal(client_send_str(&c, "\n"), 0);
    assert_int_equal(client_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "q")), "split");
    json_decref(j);
    resp_free(&r);

    /* HEAD: the length of what GET would send, no body; the connection goes on. */
    assert_int_equal(client_request(&c, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(resp_header(&r, "Content-Length"));
    assert_true(strtol(resp_header(&r, "Content-Length"), NULL, 10) > 10);
    resp_free(&r);
    assert_int_equal(client_request(&c, "GET /nocontent HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 204);
    assert_non_null(resp_header(&r, "X-Request-Id"));
    resp_free(&r);
    assert_int_equal(client_request(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(&c);
    server_stop(&s);
}

static void test_errors_from_handlers(void **state)
{
    struct server s;
    struct client c;
    struct resp r;
    json_t *j;

    (void)state;
    server_start(&s, NULL, 1);
    client_open(&c, s.port);

    assert_int_equal(client_request(&c, "GET /noreply HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_error_body(&r, 500, "internal");
    resp_free(&r);

    assert_int_equal(client_request(&c, "GET /notfound HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_error_body(&r, 404, "not_found");
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                        "no request k3");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "field")),
                        "id");
    json_decref(j);
    resp_free(&r);

    /* Internal errors: generic to the client, the detail only in the log. */
    assert_int_equal(client_request(&c, "GET /internal HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_error_body(&r, 500, "internal");
    assert_null(strstr(r.body, "secret"));
    assert_null(strstr(r.body, "field"));
    resp_free(&r);

    assert_int_equal(client_request(&c, "GET /twice HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "first");
    resp_free(&r);

    assert_int_equal(client_request(&c, "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_error_body(&r, 404, "not_found");
    resp_free(&r);
    client_close(&c);
    server_stop(&s);

    assert_int_equal(custos_http_status_for(CUSTOS_ERR_MALFORMED), 400);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_EXISTS), 409);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_EXPIRED), 410);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_TOO_LARGE), 413);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_POP), 422);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_PASSPHRASE), 422);
    assert_int_equal(custos_http_status_for(CUSTOS_ERR_NOMEM), 500);
}

static void expect_refused(int port, const char *req, int status, const char *code)
{
    struct client c;
    struct resp r;

    client_open(&c, port);
    assert_int_equal(client_request(&c, req, &r), 0);
    assert_error_body(&r, status, code);
    resp_free(&r);
    client_close(&c);
}

static void test_refused_before_handler(void **state)
{
    struct server s;
    int before;

    (void)state;
    server_start(&s, NULL, 1);
    before = atomic_load(&g_handled);
    expect_refused(s.port, "GET /a/../echo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "GET /a/%2e%2E/echo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "GET /./echo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "GET /ec%00ho HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "GET /ec%zzho HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "GET /echo?q=a%00b HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed");
    expect_refused(s.port, "PATCH /echo HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method_not_allowed");
    expect_refused(s.port, "BREW /echo HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method_not_allowed");
    expect_refused(s.port, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                   411, "length_required");
    expect_refused(s.port,
                   "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                   "Content-Length: 2\r\n\r\nab",
                   400, "malformed");
    expect_refused(s.port, "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nGET ", 400,
                   "malformed");
    assert_int_equal(atomic_load(&g_handled), before);
    server_stop(&s);
}

static void test_body_too_large(void **state)
{
    custos_http_limits lim = {0};
    struct server s;
    struct client c;
    struct resp r;
    char req[256], *body;
    size_t big = 64 * 1024, head;

    (void)state;
    lim.max_body_bytes = big;
    server_start(&s, &lim, 1);

    /* Just at the limit: served. */
    body = malloc(big + 256);
    assert_non_null(body);
    snprintf(body, 256, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    head = strlen(body);
    memset(body + head, 'a', big);
    client_open(&c, s.port);
    assert_int_equal(client_send(&c, body, head + big), 0);
    assert_int_equal(client_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* One byte over, announced: 413 in JSON before the body is read, then close. */
    snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             big + 1);
    assert_int_equal(client_request(&c, req, &r), 0);
    assert_error_body(&r, 413, "too_large");
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    assert_true(client_sees_close(&c, 2000));
    client_close(&c);

    /* Expect: 100-continue with a huge length, and some body sent anyway. */
    client_open(&c, s.port);
    assert_int_equal(client_send(&c,
                                 "PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 999999999999\r\n\r\naaaaaaaaaa",
                                 strlen("PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                        "Content-Length: 999999999999\r\n\r\naaaaaaaaaa")),
                     0);
    assert_int_equal(client_read(&c, &r, 0), 0);
    assert_error_body(&r, 413, "too_large");
    resp_free(&r);
    client_close(&c);
    free(body);
    server_stop(&s);
}

static void test_headers_too_large(void **state)
{
    struct server s;
    struct client c;
    struct resp r;
    char *req = malloc(40000);

    (void)state;
    assert_non_null(req);
    server_start(&s, NULL, 1);

    /* 8 KiB of headers: fine. */
    snprintf(req, 40000, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %08000d\r\n\r\n", 7);
    client_open(&c, s.port);
    assert_int_equal(client_request(&c, req, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(&c);

    /* 20 KiB, complete: refused. */
    snprintf(req, 40000, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %020000d\r\n\r\n", 7);
    client_open(&c, s.port);
    assert_int_equal(client_request(&c, req, &r), 0);
    assert_error_body(&r, 431, "too_large");
    resp_free(&r);
    client_close(&c);

    /* 20 KiB and no end of headers: refused without waiting for the end. */
    snprintf(req, 40000, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %020000d", 7);
    client_open(&c, s.port);
    assert_int_equal(client_request(&c, req, &r), 0);
    assert_error_body(&r, 431, "too_large");
    resp_free(&r);
    client_close(&c);
    free(req);
    server_stop(&s);
}

static void test_slow_request_cut(void **state)
{
    custos_http_limits lim = {0};
    struct server s;
    struct client c;
    double t0, elapsed;
    int closed = 0;

    (void)state;
    lim.header_timeout_s = 1;
    lim.idle_timeout_s = 30;
    server_start(&s, &lim, 1);
    client_open(&c, s.port);
    t0 = now_ms();
    assert_int_equal(client_send_str(&c, "GET /echo HTTP/1.1\r\n"), 0);
    /* Slowloris: a header line every 200 ms keeps any idle timeout happy. */
    while (now_ms() - t0 < 5000) {
        if (client_send_str(&c, "X-Drip: 1\r\n") != 0 || client_sees_close(&c, 200)) {
            closed = 1;
            break;
        }
    }
    elapsed = now_ms() - t0;
    assert_true(closed);
    assert_true(elapsed > 700 && elapsed < 2500);
    client_close(&c);

    /* A silent connection (no TLS handshake at all) is cut too. */
    {
        int fd = tcp_connect(s.port);
        char b;
        t0 = now_ms();
        assert_true(read(fd, &b, 1) <= 0);
        elapsed = now_ms() - t0;
        assert_true(elapsed < 2500);
        close(fd);
    }
    server_stop(&s);
}

static void test_max_connections(void **state)
{
    custos_http_limits lim = {0};
    struct server s;
    struct client c[5], extra;
    struct resp r;
    double t0;
    int ok = 0;

    (void)state;
    lim.max_connections = 5;
    server_start(&s, &lim, 2);
    for (int i = 0; i < 5; i++) {
        client_open(&c[i], s.port);
        assert_int_equal(client_request(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    /* The sixth is closed at once: no TLS handshake. */
    t0 = now_ms();
    assert_int_equal(client_open_ctx(&extra, s.port, g_client_ctx), -1);
    assert_true(now_ms() - t0 < 2000);
    client_close(&extra);
    /* The five are still served. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(client_request(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    /* One leaves: a new one gets in (once the server has noticed). */
    client_close(&c[0]);
    for (int tries = 0; tries < 40 && !ok; tries++) {
        sleep_ms(50);
        if (client_open_ctx(&extra, s.port, g_client_ctx) == 0) {
            assert_int_equal(client_request(&extra, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                             0);
            assert_int_equal(r.status, 200);
            resp_free(&r);
            ok = 1;
        }
        client_close(&extra);
    }
    assert_true(ok);
    for (int i = 1; i < 5; i++)
        client_close(&c[i]);
    server_stop(&s);
}

static void test_plaintext_refused(void **state)
{
    struct server s;
    char buf[512];
    const char *req = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n";
    ssize_t n, total = 0;
    int fd, before;

    (void)state;
    server_start(&s, NULL, 1);
    before = atomic_load(&g_handled);
    fd = tcp_connect(s.port);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
        total += n;
    buf[total] = '\0';
    /* Whatever comes back (a TLS alert or nothing) is not HTTP. */
    assert_true(total == 0 || strncmp(buf, "HTTP/", 5) != 0);
    assert_int_equal(atomic_load(&g_handled), before);
    close(fd);
    server_stop(&s);
}

static void test_peer_cert(void **state)
{
    struct server s;
    struct client c;
    struct resp r;
    json_t *j;

    (void)state;
    server_start(&s, NULL, 1);
    assert_int_equal(client_open_ctx(&c, s.port, g_client_cert_ctx), 0);
    assert_int_equal(client_request(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    j = resp_json(&r);
    assert_true(json_is_true(json_object_get(j, "peer")));
    json_decref(j);
    resp_free(&r);
    client_close(&c);
    server_stop(&s);
}

static void test_stop_completes_inflight(void **state)
{
    struct server s;
    struct client idle, busy;
    struct resp r;
    double t0;

    (void)state;
    server_start(&s, NULL, 2);
    client_open(&idle, s.port);
    assert_int_equal(client_request(&idle, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    resp_free(&r);
    client_open(&busy, s.port);
    assert_int_equal(client_send_str(&busy, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    sleep_ms(150); /* the handler is sleeping now */
    t0 = now_ms();
    custos_http_server_stop(s.srv);
    assert_int_equal(client_read(&busy, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow");
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    assert_true(client_sees_close(&idle, 2000));
    assert_int_equal(pthread_join(s.thread, NULL), 0);
    assert_int_equal(s.run_ret, 0);
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(atomic_load(&g_frees), 2);
    custos_http_server_free(s.srv);
    client_close(&idle);
    client_close(&busy);
}

static void *signal_run_thread(void *arg)
{
    struct server *s = arg;
    s->run_ret = custos_http_server_run(s->srv, 1);
    return NULL;
}

static void test_signal_stops(void **state)
{
    struct server s;
    struct client c;
    struct resp r;

    (void)state;
    memset(&s, 0, sizeof(s));
    {
        custos_http_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.listen = "127.0.0.1:0";
        cfg.ssl_ctx = g_server_ctx;
        cfg.workers = 2;
        cfg.worker_init = toy_init;
        cfg.worker_free = toy_free;
        cfg.handle = toy_handle;
        cfg.app = &g_app;
        atomic_store(&g_frees, 0);
        assert_int_equal(custos_http_server_new(&s.srv, &cfg), 0);
        s.port = custos_http_server_port(s.srv);
        assert_int_equal(pthread_create(&s.thread, NULL, signal_run_thread, &s), 0);
    }
    /* Once a request is answered the handlers are installed. */
    client_open(&c, s.port);
    assert_int_equal(client_request(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(pthread_join(s.thread, NULL), 0);
    assert_int_equal(s.run_ret, 0);
    assert_int_equal(atomic_load(&g_frees), 2);
    assert_true(client_sees_close(&c, 2000));
    client_close(&c);
    custos_http_server_free(s.srv);
}

static void test_stop_before_run(void **state)
{
    custos_http_config cfg;
    custos_http_server *srv = NULL;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "localhost:0";
    cfg.ssl_ctx = g_server_ctx;
    cfg.workers = 1;
    cfg.handle = toy_handle;
    assert_int_equal(custos_http_server_new(&srv, &cfg), 0);
    custos_http_server_stop(srv);
    assert_int_equal(custos_http_server_run(srv, 0), 0);
    assert_int_equal(custos_http_server_run(srv, 0), CUSTOS_ERR_STATE);
    custos_http_server_free(srv);
}

static void test_worker_init_failure(void **state)
{
    custos_http_config cfg;
    custos_http_server *srv = NULL;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "127.0.0.1:0";
    cfg.ssl_ctx = g_server_ctx;
    cfg.workers = 3;
    cfg.worker_init = toy_init;
    cfg.worker_free = toy_free;
    cfg.handle = toy_handle;
    cfg.app = &g_app;
    atomic_store(&g_inits, 0);
    atomic_store(&g_frees, 0);
    atomic_store(&g_fail_init_index, 1);
    assert_int_equal(custos_http_server_new(&srv, &cfg), 0);
    assert_int_equal(custos_http_server_run(srv, 0), CUSTOS_ERR_INTERNAL);
    assert_int_equal(atomic_load(&g_inits), 2);
    assert_int_equal(atomic_load(&g_frees), 2);
    custos_http_server_free(srv);
    atomic_store(&g_fail_init_index, -1);
}

static void test_listen_errors(void **state)
{
    custos_http_config cfg;
    custos_http_server *a = NULL, *b = NULL;
    char addr[64];

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.ssl_ctx = g_server_ctx;
    cfg.handle = toy_handle;
    cfg.listen = "127.0.0.1:http";
    assert_int_equal(custos_http_server_new(&a, &cfg), CUSTOS_ERR_ARG);
    cfg.listen = "::1:8443";
    assert_int_equal(custos_http_server_new(&a, &cfg), CUSTOS_ERR_ARG);
    cfg.listen = "127.0.0.1:70000";
    assert_int_equal(custos_http_server_new(&a, &cfg), CUSTOS_ERR_ARG);
    cfg.listen = "127.0.0.1:0";
    cfg.ssl_ctx = NULL;
    assert_int_equal(custos_http_server_new(&a, &cfg), CUSTOS_ERR_ARG);
    cfg.ssl_ctx = g_server_ctx;
    assert_int_equal(custos_http_server_new(&a, &cfg), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", custos_http_server_port(a));
    cfg.listen = addr;
    assert_int_equal(custos_http_server_new(&b, &cfg), CUSTOS_ERR_IO);
    assert_non_null(strstr(custos_error_last()->message, addr));
    assert_null(b);
    custos_http_server_free(a);
    cfg.listen = "[::1]:0";
    if (custos_http_server_new(&a, &cfg) == 0) /* hosts without IPv6 skip this */
        custos_http_server_free(a);
}

static void test_access_log(void **state)
{
    struct server s;
    struct client c;
    struct resp r;
    char *log;
    off_t size;
    const char *line;

    (void)state;
    server_start(&s, NULL, 1);
    client_open(&c, s.port);
    assert_int_equal(client_request(&c,
                                    "GET /echo?q=topsecret HTTP/1.1\r\nHost: t\r\n"
                                    "Authorization: Bearer cst_hidden\r\n\r\n",
                                    &r),
                     0);
    resp_free(&r);
    client_close(&c);
    server_stop(&s);
    size = lseek(g_log_fd, 0, SEEK_END);
    log = malloc((size_t)size + 1);
    assert_non_null(log);
    assert_int_equal(pread(g_log_fd, log, (size_t)size, 0), size);
    log[size] = '\0';
    line = strstr(log, "\"actor\":\"tester\"");
    assert_non_null(line);
    while (line > log && line[-1] != '\n')
        line--;
    assert_true(strncmp(line, "{\"time\":\"", 9) == 0);
    assert_non_null(strstr(line, "\"level\":\"info\",\"event\":\"http\",\"method\":\"GET\","
                                 "\"path\":\"/echo\",\"status\":200,\"duration_ms\":"));
    assert_non_null(strstr(line, "\"client\":\"127.0.0.1\""));
    assert_non_null(strstr(line, "\"request_id\":\""));
    assert_null(strstr(log, "topsecret"));
    assert_null(strstr(log, "cst_hidden"));
    /* The detail of an internal error went to the log (earlier test). */
    assert_non_null(strstr(log, "disk /secret/x failed"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_errors_from_handlers),
        cmocka_unit_test(test_refused_before_handler),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_slow_request_cut),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_plaintext_refused),
        cmocka_unit_test(test_peer_cert),
        cmocka_unit_test(test_stop_completes_inflight),
        cmocka_unit_test(test_signal_stops),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_worker_init_failure),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_access_log),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
