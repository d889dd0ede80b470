/* Connections of the HTTPS server: the TLS bufferevent evhttp reads from, the
 * connection limit, the request deadline, the head checks that run before
 * evhttp sees a request, and the dispatch to the handler.
 *
 * Notes on libevent 2.1.12 (http.c) that shape this file:
 * - evhttp_get_request_connection() calls the bevcb and, when it returns
 *   NULL, evhttp_connection_base_bufferevent_new() makes a plain socket
 *   bufferevent: a NULL here would serve plaintext HTTP. The bevcb never
 *   returns NULL, and the dispatch refuses any request on a connection
 *   without our TLS state (see http_conn_gencb()).
 * - 2.1 has no per-request hook before the body is read (no newreqcb; the
 *   header_cb can only be set on a request object the server never shows
 *   us), and evhttp answers an oversized body with an HTML page. So the head
 *   of each request is held back in conn.hold by a callback on the input
 *   evbuffer (which runs before evhttp's read callback) until it is complete;
 *   a head that breaks a limit is replaced by a synthetic body-less request
 *   that evhttp hands to us, and we answer it with a JSON error.
 * - The connection object is freed by evhttp on many paths we do not see;
 *   the one event we always see is SSL_free() of our SSL (bufferevent
 *   finalisation with BEV_OPT_CLOSE_ON_FREE), through the free callback of
 *   an SSL ex_data index. That is where the connection count is given back.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "http_int.h"
#include "internal/util.h"
#include "log.h"

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void conn_destroy(struct conn *c);

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr != NULL)
        conn_destroy(ptr);
}

static void ex_init(void)
{
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

int http_conn_index(void)
{
    pthread_once(&ex_once, ex_init);
    return ex_index;
}

static const custos_http_limits *limits_of(const struct conn *c)
{
    return &c->w->srv->cfg.limits;
}

void http_conn_shutdown(struct conn *c)
{
    evutil_socket_t fd = c->bev != NULL ? bufferevent_getfd(c->bev) : -1;

    /* Never touches the evhttp connection (it may already be gone); the fd
     * stays open until our SSL is freed, so it is still this connection's.
     * evhttp then reads EOF and frees the connection on its own path. */
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* ---- lifetime ------------------------------------------------------------ */

static size_t conn_event_offset(void)
{
    size_t a = alignof(max_align_t);
    return (sizeof(struct conn) + a - 1) / a * a;
}

enum { WARN_TLS = 0, WARN_TIMEOUT = 1 };

/* Log a per-connection warning unless one of this kind was logged by this
 * worker in the same second (a client must not be able to flood the log);
 * the next line carries how many were left out. Takes @p f. */
static void log_warn_throttled(struct worker *w, int kind, const char *event, json_t *f)
{
    time_t now = time(NULL);

    if (f == NULL)
        return;
    if (now == w->warn_logged_at[kind]) {
        w->warn_suppressed[kind]++;
        json_decref(f);
        return;
    }
    if (w->warn_suppressed[kind] > 0)
        json_object_set_new(f, "suppressed", json_integer((json_int_t)w->warn_suppressed[kind]));
    custos_log("warn", event, f);
    json_decref(f);
    w->warn_logged_at[kind] = now;
    w->warn_suppressed[kind] = 0;
}

static void log_tls_failure(struct conn *c)
{
    json_t *f = json_object();
    const char *reason = c->tls_err != 0 ? ERR_reason_error_string(c->tls_err) : NULL;

    if (f == NULL)
        return;
    json_object_set_new(f, "client", json_string(c->addr[0] ? c->addr : "-"));
    json_object_set_new(f, "reason", json_string(reason != NULL ? reason : "connection closed"));
    log_warn_throttled(c->w, WARN_TLS, "tls_handshake_failed", f);
}

static void conn_destroy(struct conn *c)
{
    struct worker *w = c->w;

    if (c->bev != NULL && c->in_cb != NULL)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->bev != NULL)
        event_del(c->timer);
    http_exchange_finish(&c->x, 0);
    if (!c->tls_done && c->phase != PH_REJECTED && c->tls_bytes > 0)
        log_tls_failure(c);
    if (c->hold != NULL)
        evbuffer_free(c->hold);
    free(c->synth);
    if (c->linked) {
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            w->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        w->nconns--;
    }
    atomic_fetch_sub(&w->srv->nconns, 1);
    free(c);
}

static void log_rejected(struct worker *w)
{
    time_t now = time(NULL);
    json_t *f;

    w->rejected++;
    if (now == w->reject_logged_at)
        return;
    /* At most one line a second per worker: a flood must not flood the log. */
    f = json_object();
    if (f != NULL) {
        json_object_set_new(f, "max_connections",
                            json_integer((json_int_t)w->srv->cfg.limits.max_connections));
        json_object_set_new(f, "rejected", json_integer((json_int_t)w->rejected));
        custos_log("warn", "connection_limit", f);
        json_decref(f);
    }
    w->reject_logged_at = now;
    w->rejected = 0;
}

static void peer_address(struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    evutil_socket_t fd = bufferevent_getfd(c->bev);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->addr, sizeof(c->addr));
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], c->addr, sizeof(c->addr));
        else
            inet_ntop(AF_INET6, a, c->addr, sizeof(c->addr));
    }
}

static void arm_deadline(struct conn *c)
{
    struct timeval tv = {(time_t)limits_of(c)->header_timeout_s, 0};

    if (event_add(c->timer, &tv) == 0)
        c->timer_armed = 1;
}

static void disarm_deadline(struct conn *c)
{
    if (c->timer_armed) {
        event_del(c->timer);
        c->timer_armed = 0;
    }
}

/* The connection's one event: first run (made active by the bevcb, so it runs
 * before any I/O of the connection) initialises or rejects; later runs are
 * the request deadline. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    const custos_http_limits *lim = limits_of(c);
    json_t *f;

    (void)fd;
    (void)what;
    if (c->phase == PH_REJECTED) {
        http_conn_shutdown(c);
        log_rejected(c->w);
        return;
    }
    if (!c->inited) {
        int one = 1;
        c->inited = 1;
        peer_address(c);
        /* evhttp writes head and body as separate TLS records: without
         * NODELAY the second waits for the client's delayed ACK (40 ms). */
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (lim->write_timeout_s != lim->idle_timeout_s) {
            /* evhttp 2.1 has one timeout for reads and writes; it set it
             * (idle) right after the bevcb. Give writes their own. */
            struct timeval rd = {(time_t)lim->idle_timeout_s, 0};
            struct timeval wr = {(time_t)lim->write_timeout_s, 0};
            bufferevent_set_timeouts(c->bev, &rd, &wr);
        }
        arm_deadline(c); /* the first request's deadline includes the handshake */
        return;
    }
    c->timer_armed = 0;
    f = json_object();
    if (f != NULL) {
        json_object_set_new(f, "client", json_string(c->addr[0] ? c->addr : "-"));
        json_object_set_new(f, "stage", json_string(c->tls_done ? "request" : "tls_handshake"));
        json_object_set_new(f, "timeout_s", json_integer((json_int_t)lim->header_timeout_s));
        log_warn_throttled(c->w, WARN_TIMEOUT, "http_timeout", f);
    }
    http_conn_shutdown(c);
}

static void tls_info_cb(const SSL *ssl, int where, int ret)
{
    struct conn *c = SSL_get_ex_data(ssl, ex_index);

    if (c == NULL)
        return;
    if (where & SSL_CB_HANDSHAKE_DONE) {
        c->tls_done = 1;
    } else if ((where & SSL_CB_EXIT) && ret <= 0 && !c->tls_done) {
        /* A would-block exit leaves the error queue empty; a failure names
         * its reason there (libevent drains the queue after we return). */
        unsigned long e = ERR_peek_last_error();
        if (e != 0)
            c->tls_err = e;
        c->tls_bytes = BIO_number_read(SSL_get_rbio(ssl));
    }
}

/* Never NULL: evhttp 2.1 would make a plaintext bufferevent of its own. This
 * one is plaintext too, but it carries no TLS state, so http_conn_gencb()
 * refuses every request on it; it only exists to close the connection when
 * allocation failed. */
static struct bufferevent *poison(struct event_base *base)
{
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

struct bufferevent *http_conn_bevcb(struct event_base *base, void *arg)
{
    struct worker *w = arg;
    custos_http_server *srv = w->srv;
    const custos_http_limits *lim = &srv->cfg.limits;
    size_t open = atomic_fetch_add(&srv->nconns, 1) + 1;
    struct bufferevent *bev;
    struct conn *c;
    SSL *ssl;

    c = calloc(1, conn_event_offset() + event_get_struct_event_size());
    if (c == NULL) {
        atomic_fetch_sub(&srv->nconns, 1);
        return poison(base);
    }
    c->w = w; /* from here on conn_destroy() gives the count back */
    c->timer = (struct event *)((char *)c + conn_event_offset());
    c->phase = open > lim->max_connections ? PH_REJECTED : PH_HEAD;
    c->x.nquery = -1;
    ssl = SSL_new(srv->ctx);
    if (ssl == NULL || SSL_set_ex_data(ssl, http_conn_index(), c) != 1) {
        SSL_free(ssl);
        conn_destroy(c);
        return poison(base);
    }
    c->ssl = ssl; /* SSL_free() now destroys c */
    if (c->phase != PH_REJECTED) {
        SSL_set_info_callback(ssl, tls_info_cb);
        SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
        SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    }
    /* On failure libevent frees the SSL (BEV_OPT_CLOSE_ON_FREE), and c with it. */
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return poison(base);
    c->bev = bev;
    event_assign(c->timer, base, -1, 0, timer_cb, c);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    c->linked = 1;
    if (c->phase != PH_REJECTED) {
        c->hold = evbuffer_new();
        if (c->hold != NULL)
            c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
        if (c->in_cb == NULL)
            c->phase = PH_REJECTED;
        /* evhttp keeps a whole body in the input buffer before it hands it
         * over; nothing legitimate needs more than head + body. */
        bufferevent_setwatermark(bev, EV_READ, 0,
                                 lim->max_body_bytes + lim->max_header_bytes + 16384);
    }
    event_active(c->timer, EV_TIMEOUT, 1);
    return bev;
}

/* ---- request heads ------------------------------------------------------- */

static int method_allowed(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "HEAD") == 0;
}

static int method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
}

/* Replace the held head (and any body after it) with a synthetic body-less
 * request, so evhttp dispatches it to us and we answer @p status in JSON. The
 * original target is kept when it is plain, for the access log. */
static void refuse(struct conn *c, struct evbuffer *in, int status, const char *code,
                   const char *msg)
{
    char first[2100], target[2049] = "/";
    size_t n = evbuffer_get_length(c->hold), m;
    char *sp;

    n = n < sizeof(first) - 1 ? n : sizeof(first) - 1;
    evbuffer_copyout(c->hold, first, n);
    first[n] = '\0';
    first[strcspn(first, "\r\n")] = '\0';
    m = strcspn(first, " ");
    if (m > 0 && m < sizeof(c->orig_method) && strspn(first, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == m)
        snprintf(c->orig_method, sizeof(c->orig_method), "%.*s", (int)m, first);
    else
        snprintf(c->orig_method, sizeof(c->orig_method), "-");
    if (first[m] == ' ') {
        size_t t;
        sp = first + m + 1;
        t = strcspn(sp, " ");
        int plain = t > 0 && t < sizeof(target) && sp[0] == '/';
        for (size_t i = 0; plain && i < t; i++)
            plain = sp[i] > 0x20 && sp[i] < 0x7f;
        if (plain) {
            memcpy(target, sp, t);
            target[t] = '\0';
        }
    }
    evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
    evbuffer_drain(in, evbuffer_get_length(in));
    c->scan_pos = 0;
    free(c->synth);
    c->synth_len = strlen(target) + 64;
    c->synth = malloc(c->synth_len);
    if (c->synth == NULL) {
        c->phase = PH_DISCARD;
        http_conn_shutdown(c);
        return;
    }
    c->synth_len = (size_t)snprintf(c->synth, c->synth_len,
                                    "GET %s HTTP/1.1\r\nConnection: close\r\n\r\n", target);
    evbuffer_add(in, c->synth, c->synth_len);
    c->phase = PH_ERROR;
    c->pending_status = status;
    c->pending_code = code;
    c->pending_msg = msg;
}

/* Empty lines before a request line are ignored (RFC 9112, 2.2): some
 * clients end a body with an extra CRLF. */
static void skip_empty_lines(struct conn *c)
{
    unsigned char b[2];

    while (c->scan_pos == 0 && evbuffer_copyout(c->hold, b, 2) >= 1) {
        if (b[0] == '\n')
            evbuffer_drain(c->hold, 1);
        else if (b[0] == '\r' && evbuffer_get_length(c->hold) >= 2 && b[1] == '\n')
            evbuffer_drain(c->hold, 2);
        else
            break;
    }
}

/* PH_HEAD: move what arrived into hold; release a complete head that passes
 * the limits to evhttp, or refuse it. */
static void take_head(struct conn *c, struct evbuffer *in)
{
    const custos_http_limits *lim = limits_of(c);
    custos_http_head hi;
    size_t head_len;

    if (evbuffer_get_length(in) == 0)
        return;
    if (evbuffer_get_length(c->hold) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &c->x.start);
        if (!c->timer_armed)
            arm_deadline(c);
    }
    evbuffer_add_buffer(c->hold, in);
    skip_empty_lines(c);
    head_len = custos_http_head_end(c->hold, &c->scan_pos);
    if (head_len == 0) {
        if (evbuffer_get_length(c->hold) > lim->max_header_bytes)
            refuse(c, in, 431, "too_large", "the request line and headers are too large");
        return;
    }
    if (head_len > lim->max_header_bytes) {
        refuse(c, in, 431, "too_large", "the request line and headers are too large");
        return;
    }
    custos_http_head_analyze(c->hold, head_len, &hi);
    if (!method_allowed(hi.method)) {
        refuse(c, in, 405, "method_not_allowed", "method not allowed");
    } else if (hi.te_seen) {
        refuse(c, in, 411, "length_required",
               "a request body needs Content-Length; Transfer-Encoding is not accepted");
    } else if (hi.cl_bad) {
        refuse(c, in, 400, "malformed", "invalid Content-Length");
    } else if (hi.cl_seen && hi.cl > lim->max_body_bytes) {
        refuse(c, in, 413, "too_large", "the request body is too large");
    } else if (hi.cl_seen && hi.cl > 0 && !method_has_body(hi.method)) {
        refuse(c, in, 400, "malformed", "this method takes no request body");
    } else {
        evbuffer_prepend_buffer(in, c->hold);
        c->phase = PH_REQUEST;
        c->scan_pos = 0;
    }
}

static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (info->n_added == 0 || c->in_input)
        return;
    c->in_input = 1;
    switch (c->phase) {
    case PH_HEAD:
        take_head(c, buf);
        break;
    case PH_ERROR:
        /* evhttp has not parsed the synthetic head yet (it does so in one
         * go, right after this callback): keep it and nothing else. */
        if (evbuffer_get_length(buf) > c->synth_len) {
            evbuffer_drain(buf, evbuffer_get_length(buf));
            evbuffer_add(buf, c->synth, c->synth_len);
        }
        break;
    case PH_DISCARD:
    case PH_REJECTED:
        evbuffer_drain(buf, evbuffer_get_length(buf));
        break;
    case PH_REQUEST:
        break;
    }
    c->in_input = 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static struct conn *conn_of_request(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

    return ssl != NULL ? SSL_get_ex_data(ssl, http_conn_index()) : NULL;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in;

    (void)req;
    http_exchange_finish(&c->x, 1);
    if (c->phase == PH_DISCARD)
        return; /* answered with Connection: close; evhttp frees it now */
    c->phase = PH_HEAD;
    c->scan_pos = 0;
    if (c->w->stopping) {
        http_conn_shutdown(c);
        return;
    }
    /* A pipelined request may already wait in the input buffer; evhttp reads
     * it right after this callback, so check its head now. */
    in = bufferevent_get_input(c->bev);
    if (evbuffer_get_length(in) > 0) {
        c->in_input = 1;
        take_head(c, in);
        c->in_input = 0;
    }
}

static void answer_refusal(struct conn *c, struct evhttp_request *req)
{
    struct custos_http_exchange *x = &c->x;
    const char *field = c->pending_status == 413   ? "body"
                        : c->pending_status == 431 ? "headers"
                                                   : NULL;

    x->method = c->orig_method;
    if (http_exchange_decode_path(x) != 0)
        x->path = "-";
    c->phase = PH_DISCARD;
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    free(c->synth);
    c->synth = NULL;
    c->synth_len = 0;
    if (c->pending_status == 405)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          "GET, POST, PUT, DELETE, HEAD");
    custos_http_reply_error(x, c->pending_status, c->pending_code, c->pending_msg, field);
}

void http_conn_gencb(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct conn *c = conn_of_request(req);
    struct custos_http_exchange *x;

    if (c == NULL || c->phase == PH_REJECTED) {
        /* Not a TLS connection of ours (see poison()): serve nothing. */
        evhttp_send_error(req, HTTP_BADREQUEST, NULL);
        return;
    }
    disarm_deadline(c);
    x = &c->x;
    http_exchange_begin(x, c, req);
    evhttp_request_set_on_complete_cb(req, on_complete, c);
    if (c->phase == PH_ERROR) {
        answer_refusal(c, req);
        return;
    }
    if (c->phase != PH_REQUEST) {
        /* evhttp parsed a head we did not release: cannot happen; fail closed. */
        c->phase = PH_DISCARD;
        custos_http_reply_error(x, 500, "internal", "internal error", NULL);
        return;
    }
    if (http_exchange_parse_target(x) != 0)
        return;
    w->srv->cfg.handle(x, w->wctx);
    if (!x->replied) {
        json_t *f = json_object();
        if (f != NULL) {
            json_object_set_new(f, "request_id", json_string(x->request_id));
            json_object_set_new(f, "path", json_string(x->path));
            custos_log("error", "handler_no_reply", f);
            json_decref(f);
        }
        custos_http_reply_error(x, 500, "internal", "internal error", NULL);
    }
}
