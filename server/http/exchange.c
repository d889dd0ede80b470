/* The handler's view of a request: accessors, the answer with the headers
 * every response carries, the JSON error shape, and the access log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include <event2/keyvalq_struct.h>

#include "http_int.h"
#include "internal/util.h"
#include "log.h"

static const uint8_t empty_body[1];

double http_elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    double ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (double)(now.tv_sec - since->tv_sec) * 1e3 + (double)(now.tv_nsec - since->tv_nsec) / 1e6;
    /* Microsecond resolution is plenty and prints without binary noise. */
    return (double)(long long)(ms * 1e3 + 0.5) / 1e3;
}

void http_exchange_begin(struct custos_http_exchange *x, struct conn *c, struct evhttp_request *req)
{
    struct timespec start = x->start;

    http_exchange_finish(x, 0);
    memset(x, 0, sizeof(*x));
    x->conn = c;
    x->req = req;
    x->nquery = -1;
    x->active = 1;
    x->path = "-";
    if (start.tv_sec == 0 && start.tv_nsec == 0)
        clock_gettime(CLOCK_MONOTONIC, &start);
    x->start = start;
    if (custos_id_new(x->request_id, NULL) != 0)
        snprintf(x->request_id, sizeof(x->request_id), "-");
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        x->method = "GET";
        break;
    case EVHTTP_REQ_POST:
        x->method = "POST";
        break;
    case EVHTTP_REQ_PUT:
        x->method = "PUT";
        break;
    case EVHTTP_REQ_DELETE:
        x->method = "DELETE";
        break;
    case EVHTTP_REQ_HEAD:
        x->method = "HEAD";
        break;
    default:
        x->method = "-";
        break;
    }
}

void http_exchange_finish(struct custos_http_exchange *x, int completed)
{
    json_t *f;

    if (!x->active) {
        memset(&x->start, 0, sizeof(x->start));
        return;
    }
    if (!x->conn->w->srv->cfg.quiet && (f = json_object()) != NULL) {
        json_object_set_new(f, "method", json_string(x->method));
        json_object_set_new(f, "path", json_string(x->path));
        json_object_set_new(f, "status", json_integer(x->status));
        json_object_set_new(f, "duration_ms", json_real(http_elapsed_ms(&x->start)));
        json_object_set_new(f, "request_id", json_string(x->request_id));
        json_object_set_new(f, "client", json_string(x->conn->addr[0] ? x->conn->addr : "-"));
        if (!completed)
            json_object_set_new(f, "incomplete", json_true());
        if (x->log_fields != NULL)
            json_object_update_missing(f, x->log_fields);
        custos_log("info", "http", f);
        json_decref(f);
    }
    json_decref(x->log_fields);
    x->log_fields = NULL;
    free(x->path_heap);
    free(x->query_heap);
    x->path_heap = x->query_heap = NULL;
    x->path = "-";
    x->req = NULL;
    x->active = 0;
    memset(&x->start, 0, sizeof(x->start));
}

/* ---- target -------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode @p n bytes of @p in into @p out (room for n + 1). -1 on a
 * bad escape or a decoded NUL. */
static int pct_decode(char *out, const char *in, size_t n, int plus_is_space)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '%') {
            int hi = i + 1 < n ? hexval(in[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        out[j++] = ch;
    }
    out[j] = '\0';
    return 0;
}

static int path_segments_ok(const char *p)
{
    while (*p == '/') {
        const char *seg = ++p;
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        p = seg + len;
    }
    return *p == '\0';
}

int http_exchange_decode_path(struct custos_http_exchange *x)
{
    const struct evhttp_uri *u = x->req != NULL ? evhttp_request_get_evhttp_uri(x->req) : NULL;
    const char *raw = u != NULL ? evhttp_uri_get_path(u) : NULL;
    size_t n;
    char *out = x->pathbuf;

    if (raw == NULL || raw[0] != '/')
        return -1;
    n = strlen(raw);
    if (n >= sizeof(x->pathbuf)) {
        x->path_heap = malloc(n + 1);
        if (x->path_heap == NULL)
            return -1;
        out = x->path_heap;
    }
    if (pct_decode(out, raw, n, 0) != 0 || !path_segments_ok(out) || !custos_text_valid(out, n)) {
        x->path = "-";
        return -1;
    }
    x->path = out;
    return 0;
}

static int query_ok(const char *q)
{
    for (; q != NULL && *q != '\0'; q++) {
        if (*q != '%')
            continue;
        if (hexval(q[1]) < 0 || hexval(q[2]) < 0 || (q[1] == '0' && q[2] == '0'))
            return 0;
        q += 2;
    }
    return 1;
}

int http_exchange_parse_target(struct custos_http_exchange *x)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(x->req);

    if (strcmp(x->method, "-") == 0) {
        custos_http_set_header(x, "Allow", "GET, POST, PUT, DELETE, HEAD");
        custos_http_reply_error(x, 405, "method_not_allowed", "method not allowed", NULL);
        return -1;
    }
    if (http_exchange_decode_path(x) != 0) {
        custos_http_reply_error(x, 400, "malformed",
                                "the request path is not a plain absolute path", "path");
        return -1;
    }
    x->raw_query = u != NULL ? evhttp_uri_get_query(u) : NULL;
    if (!query_ok(x->raw_query)) {
        custos_http_reply_error(x, 400, "malformed", "the query string is not well encoded",
                                "query");
        return -1;
    }
    return 0;
}

/* ---- accessors ----------------------------------------------------------- */

const char *custos_http_method(const custos_http_exchange *x)
{
    return x != NULL ? x->method : "-";
}

const char *custos_http_path(const custos_http_exchange *x)
{
    return x != NULL ? x->path : "-";
}

static void parse_query(struct custos_http_exchange *x)
{
    char *p;

    x->nquery = 0;
    if (x->raw_query == NULL || x->raw_query[0] == '\0')
        return;
    x->query_heap = strdup(x->raw_query);
    if (x->query_heap == NULL)
        return;
    for (p = x->query_heap; p != NULL && x->nquery < HTTP_MAX_QUERY_PARAMS;) {
        char *amp = strchr(p, '&'), *eq;
        if (amp != NULL)
            *amp = '\0';
        eq = strchr(p, '=');
        if (eq != NULL)
            *eq = '\0';
        /* Decoding in place: never longer than the encoded text. */
        if (*p != '\0' && pct_decode(p, p, strlen(p), 1) == 0 &&
            (eq == NULL || pct_decode(eq + 1, eq + 1, strlen(eq + 1), 1) == 0)) {
            x->qkey[x->nquery] = p;
            x->qval[x->nquery] = eq != NULL ? eq + 1 : "";
            x->nquery++;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
}

const char *custos_http_query(const custos_http_exchange *xc, const char *name)
{
    struct custos_http_exchange *x = (struct custos_http_exchange *)xc;

    if (x == NULL || name == NULL || !x->active)
        return NULL;
    if (x->nquery < 0)
        parse_query(x);
    for (int i = 0; i < x->nquery; i++) {
        if (strcmp(x->qkey[i], name) == 0)
            return x->qval[i];
    }
    return NULL;
}

const char *custos_http_header(const custos_http_exchange *x, const char *name)
{
    if (x == NULL || x->req == NULL || name == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(x->req), name);
}

int custos_http_content_type_is(const custos_http_exchange *x, const char *want)
{
    const char *h = custos_http_header(x, "Content-Type");
    size_t n = strlen(want);
    if (h == NULL || strncasecmp(h, want, n) != 0)
        return 0;
    h += n;
    while (*h == ' ')
        h++;
    return *h == '\0' || *h == ';';
}

const uint8_t *custos_http_body(const custos_http_exchange *x, size_t *len)
{
    struct evbuffer *in;
    unsigned char *p;
    size_t n;

    if (len != NULL)
        *len = 0;
    if (x == NULL || x->req == NULL)
        return empty_body;
    in = evhttp_request_get_input_buffer(x->req);
    n = evbuffer_get_length(in);
    if (n == 0 || (p = evbuffer_pullup(in, -1)) == NULL)
        return empty_body;
    if (len != NULL)
        *len = n;
    return p;
}

const char *custos_http_client_addr(const custos_http_exchange *x)
{
    return x != NULL && x->conn->addr[0] ? x->conn->addr : "-";
}

X509 *custos_http_peer_cert(const custos_http_exchange *x)
{
    X509 *cert;

    if (x == NULL || x->conn->ssl == NULL)
        return NULL;
    cert = SSL_get0_peer_certificate(x->conn->ssl);
    /* Only a certificate the handshake verified, whatever verify callback the
     * caller's SSL_CTX has. */
    if (cert == NULL || SSL_get_verify_result(x->conn->ssl) != X509_V_OK)
        return NULL;
    return cert;
}

const char *custos_http_request_id(const custos_http_exchange *x)
{
    return x != NULL ? x->request_id : "-";
}

void custos_http_set_header(custos_http_exchange *x, const char *name, const char *value)
{
    if (x == NULL || x->req == NULL || x->replied || name == NULL || value == NULL)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(x->req), name, value);
}

void custos_http_log_field(custos_http_exchange *x, const char *key, const char *value)
{
    json_t *v;

    if (x == NULL || !x->active || key == NULL || x->conn->w->srv->cfg.quiet)
        return;
    if (x->log_fields == NULL && (x->log_fields = json_object()) == NULL)
        return;
    v = value != NULL ? json_string(value) : json_null();
    json_object_set_new(x->log_fields, key, v != NULL ? v : json_string("-"));
}

/* ---- answers ------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return NULL; /* evhttp names the class */
    }
}

static int begin_reply(struct custos_http_exchange *x)
{
    if (x == NULL || !x->active || x->req == NULL)
        return 0;
    if (x->replied) {
        json_t *f = json_object();
        if (f != NULL) {
            json_object_set_new(f, "request_id", json_string(x->request_id));
            custos_log("error", "handler_replied_twice", f);
            json_decref(f);
        }
        return 0;
    }
    x->replied = 1;
    return 1;
}

static void set_only(struct evkeyvalq *h, const char *name, const char *value)
{
    evhttp_remove_header(h, name);
    evhttp_add_header(h, name, value);
}

/* The handler is done with the request body once it answers: wipe it (a
 * sign-in body holds a password, a package request a passphrase) before
 * evhttp frees the buffer. */
static void wipe_body(struct custos_http_exchange *x)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(x->req);
    size_t n = in != NULL ? evbuffer_get_length(in) : 0;
    unsigned char *p;

    if (n == 0)
        return;
    p = evbuffer_pullup(in, -1);
    if (p != NULL)
        OPENSSL_cleanse(p, n);
    evbuffer_drain(in, n);
}

/* The body is in the request's output buffer already. */
static void send_reply(struct custos_http_exchange *x, int status, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(x->req);
    struct evbuffer *out = evhttp_request_get_output_buffer(x->req);
    size_t len = evbuffer_get_length(out);
    int nobody;

    if (status < 100 || status > 599)
        status = 500;
    wipe_body(x);
    nobody = status < 200 || status == 204 || status == 304;
    x->status = status;
    if (nobody) {
        evbuffer_drain(out, len);
    } else {
        if (content_type != NULL)
            set_only(h, "Content-Type", content_type);
        if (evhttp_request_get_command(x->req) == EVHTTP_REQ_HEAD) {
            /* evhttp 2.1 would send a HEAD answer's body and no length. */
            char n[24];
            snprintf(n, sizeof(n), "%zu", len);
            set_only(h, "Content-Length", n);
            evbuffer_drain(out, len);
        }
    }
    set_only(h, "X-Request-Id", x->request_id);
    if (evhttp_find_header(h, "Cache-Control") == NULL)
        evhttp_add_header(h, "Cache-Control", "no-store");
    set_only(h, "X-Content-Type-Options", "nosniff");
    set_only(h, "Strict-Transport-Security", "max-age=31536000");
    /* The server-wide flag: the worker's own stop event may still be queued
     * behind this very request. */
    if (x->conn->phase == PH_DISCARD || x->conn->w->stopping ||
        atomic_load(&x->conn->w->srv->stop_requested))
        set_only(h, "Connection", "close");
    evhttp_send_reply(x->req, status, reason_phrase(status), NULL);
}

void custos_http_reply(custos_http_exchange *x, int status, const char *content_type,
                       const void *body, size_t len)
{
    struct evbuffer *out;

    if (!begin_reply(x))
        return;
    out = evhttp_request_get_output_buffer(x->req);
    if (len > 0 && (body == NULL || evbuffer_add(out, body, len) != 0)) {
        static const char oops[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal "
                                   "error\"}}";
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add(out, oops, sizeof(oops) - 1);
        status = 500;
        content_type = "application/json";
    }
    send_reply(x, status, content_type);
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
    return evbuffer_add(data, buf, size) == 0 ? 0 : -1;
}

void custos_http_reply_json(custos_http_exchange *x, int status, const json_t *body)
{
    struct evbuffer *out;

    if (!begin_reply(x))
        return;
    out = evhttp_request_get_output_buffer(x->req);
    if (body == NULL || json_dump_callback(body, dump_to_evbuffer, out, JSON_COMPACT) != 0) {
        static const char oops[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal "
                                   "error\"}}";
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add(out, oops, sizeof(oops) - 1);
        status = 500;
    }
    send_reply(x, status, "application/json");
}

void custos_http_reply_error(custos_http_exchange *x, int status, const char *code,
                             const char *message, const char *field)
{
    json_t *root = json_object(), *err = json_object();
    json_t *m = json_string(message != NULL ? message : "");

    if (m == NULL) /* not UTF-8: say less rather than nothing */
        m = json_string("request refused");
    json_object_set_new(err, "code", json_string(code != NULL ? code : "internal"));
    json_object_set_new(err, "message", m);
    if (field != NULL && field[0] != '\0')
        json_object_set_new(err, "field", json_string(field));
    json_object_set_new(root, "error", err);
    custos_http_reply_json(x, status, root);
    json_decref(root);
}

int custos_http_status_for(custos_err err)
{
    switch (err) {
    case CUSTOS_ERR_ARG:
    case CUSTOS_ERR_MALFORMED:
        return 400;
    case CUSTOS_ERR_AUTH:
        return 401;
    case CUSTOS_ERR_FORBIDDEN:
        return 403;
    case CUSTOS_ERR_NOT_FOUND:
        return 404;
    case CUSTOS_ERR_STATE:
    case CUSTOS_ERR_EXISTS:
    case CUSTOS_ERR_DUPLICATE:
        return 409;
    case CUSTOS_ERR_EXPIRED:
        return 410;
    case CUSTOS_ERR_TOO_LARGE:
        return 413;
    case CUSTOS_ERR_SIGNATURE:
    case CUSTOS_ERR_UNTRUSTED:
    case CUSTOS_ERR_POP:
    case CUSTOS_ERR_TEMPLATE:
    case CUSTOS_ERR_UNKNOWN_COMPONENT:
    case CUSTOS_ERR_LIMIT:
    case CUSTOS_ERR_MISMATCH:
    case CUSTOS_ERR_MOCK:
    case CUSTOS_ERR_NOT_YET_VALID:
    case CUSTOS_ERR_UNSUPPORTED:
    case CUSTOS_ERR_PASSPHRASE:
        return 422;
    default:
        return 500;
    }
}

void custos_http_reply_err(custos_http_exchange *x, custos_err err)
{
    const custos_error *last = custos_error_last();
    int status = custos_http_status_for(err);
    int match = last != NULL && last->code == err && err != 0;
    const char *message = match && last->message[0] ? last->message : custos_strerror(err);
    const char *field = match && last->field[0] ? last->field : NULL;

    if (status == 500) {
        /* The detail is for the operator's log, not for the client. */
        json_t *f = json_object();
        if (f != NULL) {
            json_object_set_new(f, "request_id", json_string(x != NULL ? x->request_id : "-"));
            json_object_set_new(f, "code", json_string(custos_err_code(err)));
            json_object_set_new(f, "message", json_string(message));
            if (field != NULL)
                json_object_set_new(f, "field", json_string(field));
            custos_log("error", "internal_error", f);
            json_decref(f);
        }
        custos_http_reply_error(x, 500, "internal", "internal error", NULL);
        return;
    }
    custos_http_reply_error(x, status, custos_err_code(err), message, field);
}
