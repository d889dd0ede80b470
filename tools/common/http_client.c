/* A small HTTPS client on libcurl (see http_client.h). */
#include "http_client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "custos/connect.h"
#include "custos/custos.h"

#define DEFAULT_TIMEOUT_S 30L
#define DEFAULT_MAX_RESPONSE (16u * 1024u * 1024u)
#define MAX_TRUST_CERTS 16
#define MAX_RETRY_AFTER 86400L

struct custos_hc {
    CURL *curl;
    /* What the kept-alive connection was made with (see ssl_ctx_hook). */
    custos_err (*last_hook)(void *, void *);
    void *last_hook_ctx;
    int used;
};

typedef struct sink {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t max;
    int too_large;
} sink;

typedef struct hook_call {
    const custos_hc_request *req;
    custos_err result;
} hook_call;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

custos_err custos_hc_new(custos_hc **out)
{
    custos_hc *hc;

    *out = NULL;
    if (pthread_once(&curl_once, curl_init) != 0 || curl_init_result != CURLE_OK)
        return custos_error_report(CUSTOS_ERR_INTERNAL, NULL, "cannot initialise libcurl");
    hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    hc->curl = curl_easy_init();
    if (hc->curl == NULL) {
        free(hc);
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "cannot create a curl handle");
    }
    *out = hc;
    return CUSTOS_OK;
}

void custos_hc_free(custos_hc *hc)
{
    if (hc == NULL)
        return;
    curl_easy_cleanup(hc->curl);
    free(hc);
}

void custos_hc_response_clear(custos_hc_response *r)
{
    if (r == NULL)
        return;
    free(r->body);
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    sink *s = ctx;
    size_t len = size * n;

    if (len > s->max - s->len) {
        s->too_large = 1;
        return 0;
    }
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap != 0 ? s->cap : 4096;
        uint8_t *nb;

        while (cap < s->len + len + 1)
            cap *= 2;
        nb = realloc(s->buf, cap);
        if (nb == NULL)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = 0;
    return len;
}

/* The DER certificates as one PEM blob (what CURLOPT_CAINFO_BLOB takes). */
static custos_err der_to_pem(char **out, size_t *out_len, const uint8_t *der, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const unsigned char *p = der, *end = der + len;
    BIO *bio = BIO_new(BIO_s_mem());
    X509 *x = NULL;
    char *data = NULL, *buf = NULL;
    long n;
    int count = 0;

    *out = NULL;
    *out_len = 0;
    if (bio == NULL) {
        ret = custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    while (p < end) {
        x = d2i_X509(NULL, &p, (long)(end - p));
        if (x == NULL || ++count > MAX_TRUST_CERTS) {
            ret = custos_error_report(CUSTOS_ERR_ARG, "trust",
                                      "the trust anchors are not a list of DER certificates");
            goto out;
        }
        if (PEM_write_bio_X509(bio, x) != 1) {
            ret = custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            goto out;
        }
        X509_free(x);
        x = NULL;
    }
    n = BIO_get_mem_data(bio, &data);
    if (count == 0 || n <= 0) {
        ret = custos_error_report(CUSTOS_ERR_ARG, "trust", "no trust anchors");
        goto out;
    }
    buf = malloc((size_t)n);
    if (buf == NULL) {
        ret = custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    memcpy(buf, data, (size_t)n);
    *out = buf;
    *out_len = (size_t)n;
    ret = CUSTOS_OK;
out:
    X509_free(x);
    BIO_free(bio);
    return ret;
}

static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *ctx)
{
    hook_call *h = ctx;

    (void)curl;
    h->result = h->req->ssl_ctx_hook(ssl_ctx, h->req->hook_ctx);
    return h->result < 0 ? CURLE_SSL_CERTPROBLEM : CURLE_OK;
}

/* Security options first: whatever else fails, these hold. */
static int set_tls(CURL *c, const custos_hc_request *req, const char *pem, size_t pem_len)
{
    struct curl_blob blob;
    int ok = 1;

    ok = ok && curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
    /* Only the given anchors: no default CA path, bundle or native store,
     * and no intermediate treated as an anchor. */
    ok = ok && curl_easy_setopt(c, CURLOPT_CAPATH, NULL) == CURLE_OK;
    ok = ok &&
         curl_easy_setopt(c, CURLOPT_SSL_OPTIONS, (long)CURLSSLOPT_NO_PARTIALCHAIN) == CURLE_OK;
    if (pem != NULL) {
        blob.data = (void *)pem;
        blob.len = pem_len;
        blob.flags = CURL_BLOB_COPY;
        ok = ok && curl_easy_setopt(c, CURLOPT_CAINFO, NULL) == CURLE_OK;
        ok = ok && curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK;
    } else {
        ok = ok && curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file) == CURLE_OK;
    }
    return ok;
}

static int set_method(CURL *c, const custos_hc_request *req)
{
    static const uint8_t empty[1] = {0};
    const void *body = req->body != NULL ? (const void *)req->body : (const void *)empty;
    int ok = 1;

    if (strcmp(req->method, "GET") == 0)
        return curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    if (strcmp(req->method, "POST") != 0)
        ok = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method) == CURLE_OK;
    if (strcmp(req->method, "POST") == 0 || req->body_len > 0 || req->content_type != NULL) {
        ok = ok && curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len) ==
                       CURLE_OK;
        ok = ok && curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK;
    }
    return ok;
}

static custos_err build_headers(struct curl_slist **out, const custos_hc_request *req)
{
    struct curl_slist *l = NULL, *n;
    char ct[256];

    *out = NULL;
    /* No "Expect: 100-continue" round trip for small bodies. */
    l = curl_slist_append(l, "Expect:");
    if (l == NULL)
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (req->content_type != NULL) {
        if (snprintf(ct, sizeof(ct), "Content-Type: %s", req->content_type) >= (int)sizeof(ct) ||
            strpbrk(req->content_type, "\r\n") != NULL) {
            curl_slist_free_all(l);
            return custos_error_report(CUSTOS_ERR_ARG, "content_type", "bad content type");
        }
        n = curl_slist_append(l, ct);
        if (n == NULL)
            goto nomem;
        l = n;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (req->headers[i] == NULL || strpbrk(req->headers[i], "\r\n") != NULL ||
            strchr(req->headers[i], ':') == NULL) {
            curl_slist_free_all(l);
            return custos_error_report(CUSTOS_ERR_ARG, "headers",
                                       "a header must be one 'Name: value' line");
        }
        n = curl_slist_append(l, req->headers[i]);
        if (n == NULL)
            goto nomem;
        l = n;
    }
    *out = l;
    return CUSTOS_OK;
nomem:
    curl_slist_free_all(l);
    return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
}

static const char *header_value(CURL *c, const char *name)
{
    struct curl_header *h = NULL;

    if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == NULL)
        return NULL;
    return h->value;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static long parse_retry_after(const char *v)
{
    long secs = 0;
    time_t when;

    if (v == NULL || *v == '\0')
        return -1;
    if (isdigit((unsigned char)*v)) {
        for (; isdigit((unsigned char)*v); v++) {
            secs = secs * 10 + (*v - '0');
            if (secs > MAX_RETRY_AFTER)
                secs = MAX_RETRY_AFTER;
        }
        return *v == '\0' ? secs : -1;
    }
    when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    secs = (long)(when - time(NULL));
    return secs < 0 ? 0 : secs > MAX_RETRY_AFTER ? MAX_RETRY_AFTER : secs;
}

static void copy_printable(char *dst, size_t cap, const char *src)
{
    size_t n = 0;

    for (; src != NULL && *src != '\0' && n + 1 < cap; src++)
        if (*src >= 0x20 && *src < 0x7f)
            dst[n++] = *src;
    dst[n] = '\0';
}

static custos_err check_request(const custos_hc_request *req)
{
    if (req == NULL || req->method == NULL || req->url == NULL)
        return custos_error_report(CUSTOS_ERR_ARG, NULL, "no method or URL");
    if (strncmp(req->url, "https://", 8) != 0)
        return custos_error_report(CUSTOS_ERR_ARG, "url", "only https:// URLs are supported");
    if ((req->ca_der != NULL && req->ca_der_len > 0) == (req->ca_file != NULL))
        return custos_error_report(CUSTOS_ERR_ARG, "trust",
                                   "give exactly one of the trust anchors (DER certificates) "
                                   "or a CA file: there is no insecure mode");
    if (req->body == NULL && req->body_len > 0)
        return custos_error_report(CUSTOS_ERR_ARG, "body", "no body bytes");
    return CUSTOS_OK;
}

custos_err custos_hc_perform(custos_hc_response *out, custos_hc *hc, const custos_hc_request *req)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char msg[512];
    char *pem = NULL;
    size_t pem_len = 0;
    struct curl_slist *headers = NULL;
    sink body = {0};
    hook_call hook = {req, CUSTOS_OK};
    const char *ctype = NULL;
    CURL *c;
    CURLcode rc;
    int ok = 1;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        out->retry_after = -1;
    }
    if (out == NULL || hc == NULL)
        return custos_error_report(CUSTOS_ERR_ARG, NULL, "no client or response");
    ret = check_request(req);
    if (ret < 0)
        goto out;
    if (req->ca_der != NULL && (ret = der_to_pem(&pem, &pem_len, req->ca_der, req->ca_der_len)) < 0)
        goto out;
    if ((ret = build_headers(&headers, req)) < 0)
        goto out;
    c = hc->curl;
    /* Keeps live connections, the DNS and TLS session caches. */
    curl_easy_reset(c);
    body.max = req->max_response != 0 ? req->max_response : DEFAULT_MAX_RESPONSE;
    ok = set_tls(c, req, pem, pem_len) && set_method(c, req);
    ok = ok && curl_easy_setopt(c, CURLOPT_URL, req->url) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok =
        ok && curl_easy_setopt(c, CURLOPT_TIMEOUT,
                               req->timeout_s > 0 ? req->timeout_s : DEFAULT_TIMEOUT_S) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_USERAGENT, "custos/" CUSTOS_VERSION_STRING) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_WRITEDATA, &body) == CURLE_OK;
    if (req->ssl_ctx_hook != NULL) {
        ok = ok && curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK;
        ok = ok && curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &hook) == CURLE_OK;
        ok = ok && curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L) == CURLE_OK;
    }
    /* curl matches kept connections by URL and TLS settings, not by what a
     * hook did to the SSL_CTX: a changed hook needs a new connection. */
    if (hc->used && (hc->last_hook != req->ssl_ctx_hook || hc->last_hook_ctx != req->hook_ctx))
        ok = ok && curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK;
    if (!ok) {
        ret = custos_error_report(CUSTOS_ERR_INTERNAL, NULL,
                                  "libcurl does not support a required option (needs 7.85 or "
                                  "later with OpenSSL)");
        goto out;
    }
    hc->used = 1;
    hc->last_hook = req->ssl_ctx_hook;
    hc->last_hook_ctx = req->hook_ctx;
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (body.too_large) {
            snprintf(msg, sizeof(msg), "the response from %s is larger than %zu bytes", req->url,
                     body.max);
            ret = custos_error_report(CUSTOS_ERR_TOO_LARGE, "response", msg);
        } else if (hook.result < 0) {
            ret = hook.result;
        } else {
            snprintf(msg, sizeof(msg), "%s %s: %s", req->method, req->url,
                     errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
            ret = custos_error_report(CUSTOS_ERR_IO, "url", msg);
        }
        goto out;
    }
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK)
        copy_printable(out->content_type, sizeof(out->content_type), ctype);
    out->retry_after = parse_retry_after(header_value(c, "Retry-After"));
    copy_printable(out->request_id, sizeof(out->request_id), header_value(c, "X-Request-Id"));
    out->body = body.buf;
    out->body_len = body.len;
    body.buf = NULL;
    ret = CUSTOS_OK;
out:
    /* The handle must not keep pointers to this call's memory. */
    (void)curl_easy_setopt(hc->curl, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(hc->curl, CURLOPT_ERRORBUFFER, NULL);
    (void)curl_easy_setopt(hc->curl, CURLOPT_SSL_CTX_DATA, NULL);
    curl_slist_free_all(headers);
    free(body.buf);
    free(pem);
    return ret;
}

custos_err custos_hc_error_from_response(const custos_hc_response *r)
{
    custos_http_response view;
    char code[32] = "";
    char msg[sizeof(((custos_error *)0)->message) + 48];
    char field[sizeof(((custos_error *)0)->field)];
    custos_err err;

    memset(&view, 0, sizeof(view));
    view.status = r->status;
    view.body = r->body;
    view.body_len = r->body_len;
    snprintf(view.content_type, sizeof(view.content_type), "%s", r->content_type);
    view.retry_after = r->retry_after;
    err = custos_http_error(code, sizeof(code), &view);
    if (code[0] != '\0' && strcmp(code, custos_err_code(err)) != 0) {
        const custos_error *e = custos_error_last();

        snprintf(field, sizeof(field), "%s", e->field);
        snprintf(msg, sizeof(msg), "%s: %s", code, e->message);
        err = custos_error_report(err, field[0] != '\0' ? field : NULL, msg);
    }
    return err;
}
