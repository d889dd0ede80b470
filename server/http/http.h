/**
 * @file http.h
 * @brief The HTTPS server core of `custosd serve`: libevent evhttp over
 * bufferevent_openssl, one event loop per worker thread, limits, graceful
 * stop, and the request/answer interface the API handlers use.
 *
 * A handler runs synchronously in its worker thread and answers with exactly
 * one custos_http_reply* call; the exchange is valid only during that call.
 * Every answer carries X-Request-Id, `X-Content-Type-Options: nosniff`,
 * `Strict-Transport-Security: max-age=31536000` and `Cache-Control: no-store`
 * (unless the handler set a Cache-Control of its own with
 * custos_http_set_header()); `Connection: close` while the server stops.
 * Errors the core answers itself (oversized headers 431, body 413, chunked
 * bodies 411, methods 405, bad paths 400, a handler that did not answer 500)
 * have the JSON error shape of docs/api.md.
 */
#ifndef CUSTOS_HTTP_H
#define CUSTOS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "custos/error.h"

typedef struct custos_http_server custos_http_server;
typedef struct custos_http_exchange custos_http_exchange; /* one request and its answer */

/** Limits; a zero field takes its default. */
typedef struct custos_http_limits {
    size_t max_header_bytes;   /**< request line + headers, bytes with line ends; 16384 -> 431 */
    size_t max_body_bytes;     /**< any body; 8 MiB -> 413 before the body is read */
    unsigned header_timeout_s; /**< the whole request (TLS handshake for the first one, line,
                                    headers, body) must arrive within: 10 (slowloris) */
    unsigned idle_timeout_s;   /**< keep-alive idle, and any read stall: 30 */
    unsigned write_timeout_s;  /**< a write stall: 30 */
    size_t max_connections;    /**< open connections, all workers: 4096; beyond it a new
                                    connection is closed at once, before any TLS byte */
} custos_http_limits;

typedef struct custos_http_config {
    /** "127.0.0.1:8443", "[::1]:8443", "0.0.0.0:8443", "localhost:0" (port 0 = any) */
    const char *listen;
    /** Configured by the caller (cert, key, chain, verify mode, TLS >= 1.2); the
     *  server takes a reference (SSL_CTX_up_ref). */
    SSL_CTX *ssl_ctx;
    unsigned workers;          /**< threads; 4 when 0 */
    custos_http_limits limits; /**< zero fields take the defaults */
    /** Per-worker context, called in the worker thread before it serves; NULL is
     *  a failure and custos_http_server_run() fails. May be NULL (context NULL). */
    void *(*worker_init)(unsigned index, void *app);
    void (*worker_free)(void *wctx); /**< may be NULL */
    /** Answers synchronously with exactly one custos_http_reply* call. */
    void (*handle)(custos_http_exchange *x, void *wctx);
    void *app;
    int quiet; /**< 1: no access log lines (benchmarks) */
} custos_http_config;

/**
 * Create a server and bind its listening socket (so custos_http_server_port()
 * is known before run). Errors name the address.
 */
CUSTOS_NODISCARD custos_err custos_http_server_new(custos_http_server **out,
                                                   const custos_http_config *cfg);
/** @return the bound port. */
int custos_http_server_port(const custos_http_server *s);
/**
 * Serve until custos_http_server_stop() or, when @p handle_signals, SIGTERM or
 * SIGINT. Graceful: stop accepting, close idle connections, let in-flight
 * requests finish (at most 10 s), close the rest, call worker_free in each
 * worker, return. Call it once per server.
 */
CUSTOS_NODISCARD custos_err custos_http_server_run(custos_http_server *s, int handle_signals);
/** Thread-safe, callable from any thread, also before run (run then returns at once). */
void custos_http_server_stop(custos_http_server *s);
/** Frees a server that is not running. NULL is a no-op. */
void custos_http_server_free(custos_http_server *s);

/* ---- the exchange: valid only inside the handle callback ----------------- */

/** "GET" "POST" "PUT" "DELETE" "HEAD" (the only methods that reach a handler). */
const char *custos_http_method(const custos_http_exchange *x);
/** Percent-decoded path without the query. Paths that decode to a NUL or a
 *  "." / ".." segment are refused 400 before the handler. */
const char *custos_http_path(const custos_http_exchange *x);
/** Decoded value of the first query parameter @p name ('+' is a space), or NULL. */
const char *custos_http_query(const custos_http_exchange *x, const char *name);
/** Case-insensitive; NULL if absent. */
const char *custos_http_header(const custos_http_exchange *x, const char *name);
/** Whether the Content-Type is the media type @p want (any case; parameters
 *  such as "; charset=utf-8" after it are allowed). */
int custos_http_content_type_is(const custos_http_exchange *x, const char *want);
/** Contiguous; never NULL (an empty body has *len 0). */
const uint8_t *custos_http_body(const custos_http_exchange *x, size_t *len);
/** "127.0.0.1" / "::1" (an IPv4-mapped IPv6 address is shown as IPv4). */
const char *custos_http_client_addr(const custos_http_exchange *x);
/** The client certificate when one was presented and verified in the handshake,
 *  else NULL. Borrowed. */
X509 *custos_http_peer_cert(const custos_http_exchange *x);
/** Random id (26 characters of base32), also sent as X-Request-Id. */
const char *custos_http_request_id(const custos_http_exchange *x);
/** Add a response header; call before the reply. Values with CR/LF are dropped. */
void custos_http_set_header(custos_http_exchange *x, const char *name, const char *value);
/** Extra field of this request's access log line, e.g. "actor". Never secrets. */
void custos_http_log_field(custos_http_exchange *x, const char *key, const char *value);
/** Answer. @p content_type may be NULL when @p len is 0. Later calls are ignored. */
void custos_http_reply(custos_http_exchange *x, int status, const char *content_type,
                       const void *body, size_t len);
/** Compact JSON, application/json. */
void custos_http_reply_json(custos_http_exchange *x, int status, const json_t *body);
/** {"error":{"code","message","field"?}} per docs/api.md; @p field may be NULL. */
void custos_http_reply_error(custos_http_exchange *x, int status, const char *code,
                             const char *message, const char *field);
/**
 * Status from @p err and the thread's custos_error_last() (code name, message,
 * field), per docs/api.md: ARG/MALFORMED 400, AUTH 401, FORBIDDEN 403,
 * NOT_FOUND 404, STATE/EXISTS/DUPLICATE 409, EXPIRED 410, TOO_LARGE 413,
 * SIGNATURE/UNTRUSTED/POP/TEMPLATE/UNKNOWN_COMPONENT/LIMIT/MISMATCH/MOCK/
 * NOT_YET_VALID/UNSUPPORTED/PASSPHRASE 422; others 500 "internal" with a
 * generic message (the detail is logged with the request id, not sent).
 */
void custos_http_reply_err(custos_http_exchange *x, custos_err err);
/** The HTTP status custos_http_reply_err() uses for @p err. */
int custos_http_status_for(custos_err err);

#endif
