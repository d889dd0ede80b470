/* Shared by the command-line tools (custos-device, custos, custos-gateway):
 * a small HTTPS client on libcurl for the device protocol and the operator
 * API (docs/api.md).
 *
 * HTTPS only, TLS 1.2 or later, the peer's certificate verified against the
 * caller's trust anchors only (never the system store) and its name against
 * the URL's host, no redirects. There is no insecure mode. */
#ifndef CUSTOS_TOOLS_HTTP_CLIENT_H
#define CUSTOS_TOOLS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"

/* One CURL easy handle, reused across requests (keep-alive). Not thread-safe:
 * one per thread. */
typedef struct custos_hc custos_hc;

CUSTOS_NODISCARD custos_err custos_hc_new(custos_hc **out);
/* NULL is a no-op. */
void custos_hc_free(custos_hc *hc);

typedef struct custos_hc_request {
    const char *method;       /* "GET", "POST", "PUT", "DELETE" */
    const char *url;          /* https://... */
    const char *content_type; /* of the body; NULL for none */
    const uint8_t *body;
    size_t body_len;
    const char *const *headers; /* "Name: value" */
    size_t n_headers;
    /* Trust anchors: concatenated DER certificates (the Root of Trust), or */
    const uint8_t *ca_der;
    size_t ca_der_len;
    /* a PEM file; exactly one of the two is required. */
    const char *ca_file;
    long timeout_s;      /* the whole exchange; 0 = 30 */
    size_t max_response; /* 0 = 16 MiB; a longer body is CUSTOS_ERR_TOO_LARGE */
    /* Optional, for mutual TLS: called with the connection's SSL_CTX (an
     * OpenSSL SSL_CTX *) after the trust anchors are in place, to add a
     * client certificate and key (SSL_CTX_use_certificate(),
     * SSL_CTX_use_PrivateKey(), or what custos_device_ssl_ctx() holds). A
     * connection is reused only by requests with the same hook and
     * hook_ctx; TLS session resumption is off while a hook is set. */
    custos_err (*ssl_ctx_hook)(void *ssl_ctx, void *hook_ctx);
    void *hook_ctx;
} custos_hc_request;

typedef struct custos_hc_response {
    long status;   /* HTTP status */
    uint8_t *body; /* malloc'd, NUL-terminated (not counted in body_len); NULL when empty */
    size_t body_len;
    char content_type[128]; /* "" when absent */
    long retry_after;       /* seconds from Retry-After; -1 if absent */
    char request_id[64];    /* X-Request-Id, "" when absent */
} custos_hc_response;

/* Perform one exchange. @p out is cleared first. Network and TLS failures
 * are CUSTOS_ERR_IO with curl's message naming the URL (custos_error_last());
 * a body over max_response is CUSTOS_ERR_TOO_LARGE; a missing or doubled
 * trust anchor, or a URL that is not https, CUSTOS_ERR_ARG. An HTTP error
 * status is NOT an error here: check out->status. */
CUSTOS_NODISCARD custos_err custos_hc_perform(custos_hc_response *out, custos_hc *hc,
                                              const custos_hc_request *req);
/* Free the body and clear @p r. */
void custos_hc_response_clear(custos_hc_response *r);

/* Parse a JSON error body {"error":{"code","message","field"}} into the
 * thread's error detail (custos_error_last()) with the custos_err named by
 * the code (for codes libcustos does not have, one chosen by the status,
 * and the message prefixed with the server's code: "rejected: <reason>");
 * without such a body: CUSTOS_ERR_IO "HTTP <status>". Returns the code. */
custos_err custos_hc_error_from_response(const custos_hc_response *r);

#endif
