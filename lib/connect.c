/* Connected mode (include/custos/connect.h): one exchange of the device
 * protocol per step, through the port's transport; progress in storage so
 * that a device killed at any point resumes. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "custos/connect.h"
#include "custos/device.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

#define API_PREFIX "/device/v1/requests"
#define MAX_JSON_ANSWER (64u * 1024u)
#define URL_CAP (CUSTOS_MAX_URL_LEN + 128)

/* What the device holds, read at the start of a step. */
typedef struct conn {
    const custos_port *port;
    custos_identity_doc *ident;
    uint8_t *request; /* pending request.mcpr, or NULL */
    size_t request_len;
    uint8_t *profile; /* installed profile.mccp, or NULL */
    size_t profile_len;
    custos_profile_doc *profile_doc; /* verified, or NULL */
    custos_err profile_err;          /* why profile_doc is NULL although profile is not */
    uint8_t *receipt;                /* receipt.pending, or NULL */
    size_t receipt_len;
    custos_receipt_doc *receipt_doc;
    int submitted; /* request.submitted names the pending request */
    uint8_t *trust;
    size_t trust_len;
    char base[CUSTOS_MAX_URL_LEN + 1];
    int64_t now;
} conn;

static void conn_free(conn *c)
{
    custos_identity_doc_free(c->ident);
    free(c->request);
    free(c->profile);
    custos_profile_doc_free(c->profile_doc);
    free(c->receipt);
    custos_receipt_doc_free(c->receipt_doc);
    free(c->trust);
}

/* ---- errors from the server ---------------------------------------------- */

custos_err custos_error_report(custos_err code, const char *field, const char *message)
{
    return custos_error_set(code, field, "%s", message != NULL ? message : "");
}

static custos_err code_by_name(const char *name)
{
    for (custos_err c = CUSTOS_ERR_INTERNAL; c >= -64; c--) {
        const char *n = custos_err_code(c);
        if ((c == CUSTOS_ERR_INTERNAL || strcmp(n, "internal") != 0) && strcmp(n, name) == 0)
            return c;
    }
    return 0;
}

static custos_err code_by_status(long status)
{
    switch (status) {
    case 400:
    case 422:
        return CUSTOS_ERR_MALFORMED;
    case 401:
        return CUSTOS_ERR_AUTH;
    case 403:
        return CUSTOS_ERR_FORBIDDEN;
    case 404:
        return CUSTOS_ERR_NOT_FOUND;
    case 405:
    case 415:
        return CUSTOS_ERR_UNSUPPORTED;
    case 409:
        return CUSTOS_ERR_STATE;
    case 410:
        return CUSTOS_ERR_EXPIRED;
    case 413:
        return CUSTOS_ERR_TOO_LARGE;
    default:
        return CUSTOS_ERR_IO; /* 429, 5xx, anything unexpected */
    }
}

/* Printable ASCII and UTF-8 only, bounded: the text comes from the network. */
static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t n = 0;

    for (; src != NULL && *src != '\0' && n + 1 < cap; src++) {
        unsigned char ch = (unsigned char)*src;
        dst[n++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    dst[n] = '\0';
}

custos_err custos_http_error(char *out_code, size_t code_cap, const custos_http_response *r)
{
    json_t *j = NULL;
    json_error_t jerr;
    const char *code = NULL, *message = NULL, *field = NULL;
    char msg[400], fld[96], name[32];
    custos_err err;

    if (out_code != NULL && code_cap > 0)
        out_code[0] = '\0';
    if (r == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, NULL, "no HTTP response");
    err = code_by_status(r->status);
    if (r->body != NULL && r->body_len > 0 && r->body_len <= MAX_JSON_ANSWER &&
        custos_json_parse(&j, r->body, r->body_len, "error answer") == 0 &&
        json_unpack_ex(j, &jerr, 0, "{s:{s:s, s?s, s?s}}", "error", "code", &code, "message",
                       &message, "field", &field) == 0) {
        sanitize(name, sizeof(name), code);
        sanitize(msg, sizeof(msg), message != NULL && message[0] != '\0' ? message : name);
        sanitize(fld, sizeof(fld), field);
        if (code_by_name(name) != 0)
            err = code_by_name(name);
        if (out_code != NULL && code_cap > 0)
            snprintf(out_code, code_cap, "%s", name);
        json_decref(j);
        return custos_error_set(err, fld[0] != '\0' ? fld : NULL, "%s", msg);
    }
    json_decref(j);
    return custos_error_set(err, NULL, "HTTP %ld", r->status);
}

/* ---- loading what the device holds ---------------------------------------- */

static custos_err load_profile(conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_STORE *store = NULL;

    CUSTOS_GUARD(custos_dev_read_optional(&c->profile, &c->profile_len, c->port, CUSTOS_OBJ_PROFILE,
                                          CUSTOS_MAX_PROFILE_SIZE));
    if (c->profile != NULL) {
        CUSTOS_GUARD(custos_dev_store(&store, c->ident->root_of_trust));
        custos_trust t = {store, NULL, c->now, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING),
                          NULL};
        /* A profile that no longer verifies (expired) still lets a pending
         * reprovisioning request go out; it only cannot be confirmed. */
        c->profile_err = custos_profile_decode(&c->profile_doc, c->profile, c->profile_len, &t);
        custos_error_clear();
    }
    ret = 0;
out:
    X509_STORE_free(store);
    return ret;
}

/* request.submitted holds the hex SHA-256 of the request the server accepted. */
static custos_err load_submitted(conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *m = NULL;
    size_t m_len = 0;
    uint8_t digest[32];
    char hex[65];

    c->submitted = 0;
    if (c->request == NULL)
        return 0;
    CUSTOS_GUARD(custos_dev_read_optional(&m, &m_len, c->port, CUSTOS_OBJ_REQUEST_SUBMITTED, 128));
    custos_sha256(digest, c->request, c->request_len);
    custos_hex_encode(hex, digest, sizeof(digest));
    c->submitted = m != NULL && m_len == 64 && CRYPTO_memcmp(m, hex, 64) == 0;
    ret = 0;
out:
    free(m);
    return ret;
}

/* A stored receipt that does not decode, or answers a profile other than
 * the installed one, is dropped: step 4 makes a fresh one when needed. */
static custos_err load_receipt(conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int stale;

    CUSTOS_GUARD(custos_dev_read_optional(&c->receipt, &c->receipt_len, c->port,
                                          CUSTOS_OBJ_RECEIPT_PENDING, CUSTOS_MAX_RECEIPT_SIZE));
    if (c->receipt == NULL)
        return 0;
    stale = custos_receipt_decode(&c->receipt_doc, c->receipt, c->receipt_len) < 0;
    custos_error_clear();
    if (!stale && c->profile_doc != NULL)
        stale = strcmp(c->receipt_doc->request_id, c->profile_doc->request_id) != 0;
    if (stale) {
        custos_receipt_doc_free(c->receipt_doc);
        c->receipt_doc = NULL;
        free(c->receipt);
        c->receipt = NULL;
        c->receipt_len = 0;
        CUSTOS_GUARD(custos_dev_remove(c->port, CUSTOS_OBJ_RECEIPT_PENDING));
    }
    ret = 0;
out:
    return ret;
}

/* The Root of Trust as concatenated DER: the installed profile's, else the
 * one the identity kept from the package. */
static custos_err load_trust(conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *roots =
        c->profile_doc != NULL ? c->profile_doc->root_of_trust : c->ident->root_of_trust;
    uint8_t *der = NULL, *grown;
    size_t der_len = 0;

    CUSTOS_ENSURE(sk_X509_num(roots) > 0, CUSTOS_ERR_STATE, "root_of_trust",
                  "the device holds no Root of Trust to verify the server with");
    for (int i = 0; i < sk_X509_num(roots); i++) {
        CUSTOS_GUARD(custos_x509_to_der(&der, &der_len, sk_X509_value(roots, i)));
        grown = realloc(c->trust, c->trust_len + der_len);
        CUSTOS_ENSURE(grown != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        c->trust = grown;
        memcpy(c->trust + c->trust_len, der, der_len);
        c->trust_len += der_len;
        free(der);
        der = NULL;
    }
    ret = 0;
out:
    free(der);
    return ret;
}

static custos_err load_base(conn *c, const char *server_url)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *url = server_url;
    size_t len;

    if (url == NULL || url[0] == '\0')
        url = c->profile_doc != NULL && c->profile_doc->services.cloud_url[0] != '\0'
                  ? c->profile_doc->services.cloud_url
                  : c->ident->services.cloud_url;
    CUSTOS_ENSURE(url[0] != '\0', CUSTOS_ERR_ARG, "server",
                  "no server URL given, and the device's package names no cloud URL");
    CUSTOS_ENSURE(strncmp(url, "https://", 8) == 0 && url[8] != '\0', CUSTOS_ERR_UNSUPPORTED,
                  "server", "connected mode needs an https:// server URL, not %.300s", url);
    len = strlen(url);
    while (len > 8 && url[len - 1] == '/')
        len--;
    CUSTOS_ENSURE(len <= CUSTOS_MAX_URL_LEN && strchr(url, '?') == NULL &&
                      strchr(url, '#') == NULL && strpbrk(url, " \r\n") == NULL,
                  CUSTOS_ERR_ARG, "server",
                  "the server URL must be at most %d bytes, without spaces, query or fragment",
                  CUSTOS_MAX_URL_LEN);
    memcpy(c->base, url, len);
    c->base[len] = '\0';
    ret = 0;
out:
    return ret;
}

static custos_err conn_load(conn *c, const custos_port *port, const char *server_url)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *ident = NULL;
    size_t ident_len = 0;
    custos_err r;

    c->port = port;
    CUSTOS_GUARD(custos_dev_port_check(port));
    CUSTOS_ENSURE(port->transport != NULL, CUSTOS_ERR_NOT_PROVIDED, "transport",
                  "this port has no transport: connected mode needs one (docs/porting.md)");
    CUSTOS_GUARD(custos_now(&c->now, port));
    r = custos_dev_read(&ident, &ident_len, port, CUSTOS_OBJ_IDENTITY, CUSTOS_MAX_IDENTITY_SIZE);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_STATE, "identity",
                  "nothing to provision: this device has no identity (make a request first)");
    CUSTOS_GUARD(r);
    CUSTOS_ENSURE(!custos_dev_identity_is_mock(ident, ident_len), CUSTOS_ERR_MOCK, "identity",
                  "mock device files are never provisioned");
    CUSTOS_GUARD(custos_dev_identity_load(&c->ident, port, ident, ident_len));
    CUSTOS_GUARD(custos_dev_read_optional(&c->request, &c->request_len, port, CUSTOS_OBJ_REQUEST,
                                          CUSTOS_MAX_REQUEST_SIZE));
    CUSTOS_GUARD(load_profile(c));
    CUSTOS_GUARD(load_submitted(c));
    CUSTOS_GUARD(load_receipt(c));
    CUSTOS_GUARD(load_trust(c));
    CUSTOS_GUARD(load_base(c, server_url));
    ret = 0;
out:
    if (ident != NULL)
        OPENSSL_cleanse(ident, ident_len);
    free(ident);
    return ret;
}

/* ---- one exchange ------------------------------------------------------------ */

static void response_free(custos_http_response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Send and receive. Fails only when there is no HTTP answer; an error
 * status is for the caller. */
static custos_err exchange(custos_http_response *resp, custos_connect_status *st, const conn *c,
                           const char *method, const char *url, const char *content_type,
                           const uint8_t *body, size_t body_len, size_t max)
{
    custos_http_request req;
    custos_err r;

    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.content_type = content_type;
    req.body = body;
    req.body_len = body_len;
    req.trust_der = c->trust;
    req.trust_der_len = c->trust_len;
    req.max_response = max;
    custos_error_clear();
    r = c->port->transport(resp, &req, c->port->ctx);
    resp->error[sizeof(resp->error) - 1] = '\0';
    resp->content_type[sizeof(resp->content_type) - 1] = '\0';
    resp->request_id[sizeof(resp->request_id) - 1] = '\0';
    if (r >= 0 && (resp->status < 100 || resp->status > 599))
        r = CUSTOS_ERR_IO;
    if (r < 0) {
        char why[512];

        sanitize(why, sizeof(why), resp->error[0] != '\0' ? resp->error : custos_strerror(r));
        response_free(resp);
        st->retryable = r == CUSTOS_ERR_IO;
        return custos_error_set(r, "server", "%s %s failed: %s", method, url, why);
    }
    st->http_status = resp->status;
    if (resp->body_len > max) {
        response_free(resp);
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "server",
                                "the answer to %s %s is over %zu bytes", method, url, max);
    }
    return 0;
}

/* An error answer: the server's code and message; 429 and 5xx may pass. */
static custos_err http_failed(custos_connect_status *st, const custos_http_response *resp)
{
    custos_err r = custos_http_error(st->server_code, sizeof(st->server_code), resp);

    st->retryable = resp->status == 429 || resp->status >= 500;
    st->retry_after = resp->retry_after;
    return r;
}

/* {"request_id", "device_id"?, "state", "retry_after"?}: the JSON answers of
 * the device protocol. Unknown fields are allowed (a newer server). */
static custos_err parse_answer(custos_connect_status *st, const conn *c,
                               const custos_http_response *resp, const char *expect_id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    json_error_t jerr;
    const char *rid = NULL, *did = NULL, *state = NULL;
    json_int_t retry = -1;

    (void)c;
    CUSTOS_GUARD(custos_json_parse(&j, resp->body, resp->body_len, "server answer"));
    if (json_unpack_ex(j, &jerr, 0, "{s:s, s?s, s:s, s?I}", "request_id", &rid, "device_id", &did,
                       "state", &state, "retry_after", &retry) != 0) {
        ret =
            custos_error_set(CUSTOS_ERR_MALFORMED, "server", "the server's answer: %s", jerr.text);
        goto out;
    }
    CUSTOS_ENSURE(strcmp(rid, expect_id) == 0, CUSTOS_ERR_MISMATCH, "request_id",
                  "the server answered for request %.40s, not %s", rid, expect_id);
    CUSTOS_ENSURE(did == NULL || did[0] == '\0' || custos_id_valid(did), CUSTOS_ERR_MALFORMED,
                  "device_id", "the server's answer has a malformed device_id");
    if (did != NULL && did[0] != '\0')
        snprintf(st->device_id, sizeof(st->device_id), "%s", did);
    sanitize(st->state, sizeof(st->state), state);
    if (retry < 0)
        retry = resp->retry_after;
    st->retry_after = retry < 0 ? -1 : retry > 86400 ? 86400 : (long)retry;
    ret = 0;
out:
    json_decref(j);
    return ret;
}

static custos_err request_url(char *out, const conn *c, const char *rid, const char *suffix)
{
    int n = snprintf(out, URL_CAP, "%s" API_PREFIX "%s%s%s", c->base, rid[0] != '\0' ? "/" : "",
                     rid, suffix);

    if (n < 0 || n >= URL_CAP)
        return custos_error_set(CUSTOS_ERR_ARG, "server", "the server URL is too long");
    return 0;
}

/* The id of the pending request: the newest key generation's. */
static const char *pending_id(const conn *c)
{
    return c->ident->n_gens > 0 ? c->ident->gens[c->ident->n_gens - 1].request_id : "";
}

/* ---- the steps ------------------------------------------------------------------ */

static custos_err step_submit(custos_connect_status *st, conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_http_response resp;
    char url[URL_CAP];
    uint8_t digest[32];
    char hex[65];

    memset(&resp, 0, sizeof(resp));
    CUSTOS_GUARD(request_url(url, c, "", ""));
    CUSTOS_GUARD(exchange(&resp, st, c, "POST", url, CUSTOS_CT_REQUEST, c->request, c->request_len,
                          MAX_JSON_ANSWER));
    if (resp.status != 200 && resp.status != 201 && resp.status != 202) {
        ret = http_failed(st, &resp);
        goto out;
    }
    CUSTOS_GUARD(parse_answer(st, c, &resp, pending_id(c)));
    custos_sha256(digest, c->request, c->request_len);
    custos_hex_encode(hex, digest, sizeof(digest));
    CUSTOS_GUARD(custos_dev_write(c->port, CUSTOS_OBJ_REQUEST_SUBMITTED, (const uint8_t *)hex, 64));
    st->phase = CUSTOS_CONNECT_SUBMITTED;
    if (strcmp(st->state, "certified") == 0 || strcmp(st->state, "provisioned") == 0)
        st->retry_after = 0;
    ret = 0;
out:
    response_free(&resp);
    return ret;
}

/* The first non-Ed25519 key of the current (just installed) generation, in
 * the profile's template order, signs the receipt (CMS cannot use Ed25519). */
static custos_err make_receipt(uint8_t **out, size_t *out_len, custos_connect_status *st,
                               const conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_device *dev = NULL;
    uint8_t *prof = NULL;
    size_t prof_len = 0;
    uint8_t digest[32];
    const custos_device_key_entry *k = NULL;
    int64_t now = 0;

    *out = NULL;
    *out_len = 0;
    CUSTOS_GUARD(custos_device_open(&dev, c->port, NULL));
    for (size_t i = 0; k == NULL && i < dev->n_keys; i++)
        if (dev->keys[i].alg != CUSTOS_ALG_ED25519)
            k = &dev->keys[i];
    CUSTOS_ENSURE(k != NULL, CUSTOS_ERR_UNSUPPORTED, "profile",
                  "the installed profile has no ECDSA or RSA key to sign the install receipt");
    CUSTOS_GUARD(
        custos_dev_read(&prof, &prof_len, c->port, CUSTOS_OBJ_PROFILE, CUSTOS_MAX_PROFILE_SIZE));
    custos_sha256(digest, prof, prof_len);
    CUSTOS_GUARD(custos_now(&now, c->port));
    CUSTOS_GUARD(custos_receipt_encode(out, out_len, dev->profile->request_id,
                                       dev->profile->device_id, digest, now, k->key, k->cert));
    snprintf(st->request_id, sizeof(st->request_id), "%s", dev->profile->request_id);
    snprintf(st->device_id, sizeof(st->device_id), "%s", dev->profile->device_id);
    ret = 0;
out:
    free(prof);
    custos_device_free(dev);
    return ret;
}

static custos_err step_poll(custos_connect_status *st, conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_http_response resp;
    custos_install_result res;
    uint8_t *receipt = NULL;
    size_t receipt_len = 0;
    char url[URL_CAP];

    memset(&resp, 0, sizeof(resp));
    CUSTOS_GUARD(request_url(url, c, pending_id(c), ""));
    CUSTOS_GUARD(exchange(&resp, st, c, "GET", url, NULL, NULL, 0, CUSTOS_MAX_PROFILE_SIZE));
    if (resp.status == 202) {
        CUSTOS_GUARD(parse_answer(st, c, &resp, pending_id(c)));
        st->phase = CUSTOS_CONNECT_WAITING;
        if (strcmp(st->state, "certified") == 0)
            st->retry_after = 0;
        ret = 0;
        goto out;
    }
    if (resp.status != 200) {
        if (resp.status == 403)
            snprintf(st->state, sizeof(st->state), "rejected");
        else if (resp.status == 410)
            snprintf(st->state, sizeof(st->state), "expired");
        ret = http_failed(st, &resp);
        if (resp.status == 404) {
            /* The server does not know the request (any more): submit it
             * again on the next step. */
            CUSTOS_GUARD(custos_dev_remove(c->port, CUSTOS_OBJ_REQUEST_SUBMITTED));
            st->retryable = 1;
            st->retry_after = 0;
        }
        goto out;
    }
    CUSTOS_ENSURE(strncmp(resp.content_type, CUSTOS_CT_PROFILE, strlen(CUSTOS_CT_PROFILE)) == 0,
                  CUSTOS_ERR_MALFORMED, "server",
                  "the server answered %s with %.100s, not a certified profile", url,
                  resp.content_type[0] != '\0' ? resp.content_type : "no content type");
    /* Verified against the pending request and this device's keys, then
     * committed atomically; a crash after the commit is resumed by the
     * same install on the next poll, or by step 4. */
    CUSTOS_GUARD(custos_device_install(&res, c->port, resp.body, resp.body_len));
    snprintf(st->state, sizeof(st->state), "certified");
    CUSTOS_GUARD(make_receipt(&receipt, &receipt_len, st, c));
    CUSTOS_GUARD(custos_dev_write(c->port, CUSTOS_OBJ_RECEIPT_PENDING, receipt, receipt_len));
    st->phase = CUSTOS_CONNECT_INSTALLED;
    st->retry_after = 0;
    ret = 0;
out:
    free(receipt);
    response_free(&resp);
    return ret;
}

/* Send @p receipt (stored or fresh); on acceptance forget what was pending. */
static custos_err step_receipt(custos_connect_status *st, conn *c, const uint8_t *receipt,
                               size_t receipt_len, const char *rid)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_http_response resp;
    char url[URL_CAP];

    memset(&resp, 0, sizeof(resp));
    snprintf(st->request_id, sizeof(st->request_id), "%s", rid);
    CUSTOS_GUARD(request_url(url, c, rid, "/receipt"));
    CUSTOS_GUARD(exchange(&resp, st, c, "POST", url, CUSTOS_CT_RECEIPT, receipt, receipt_len,
                          MAX_JSON_ANSWER));
    if (resp.status == 202) {
        /* Queued, not confirmed (a gateway forwards it later): keep the
         * receipt and send the same bytes again when asked to. */
        CUSTOS_GUARD(parse_answer(st, c, &resp, rid));
        if (c->receipt == NULL)
            CUSTOS_GUARD(
                custos_dev_write(c->port, CUSTOS_OBJ_RECEIPT_PENDING, receipt, receipt_len));
        st->phase = CUSTOS_CONNECT_INSTALLED;
        ret = 0;
        goto out;
    }
    if (resp.status != 200) {
        ret = http_failed(st, &resp);
        goto out;
    }
    CUSTOS_GUARD(parse_answer(st, c, &resp, rid));
    CUSTOS_ENSURE(strcmp(st->state, "provisioned") == 0, CUSTOS_ERR_MALFORMED, "state",
                  "the server accepted the receipt but says the request is %s", st->state);
    if (c->receipt != NULL)
        CUSTOS_GUARD(custos_dev_remove(c->port, CUSTOS_OBJ_RECEIPT_PENDING));
    CUSTOS_GUARD(custos_dev_remove(c->port, CUSTOS_OBJ_REQUEST_SUBMITTED));
    st->phase = CUSTOS_CONNECT_PROVISIONED;
    st->retry_after = 0;
    ret = 0;
out:
    response_free(&resp);
    return ret;
}

/* Nothing pending: confirm the installed profile with a fresh receipt. */
static custos_err step_confirm(custos_connect_status *st, conn *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *receipt = NULL;
    size_t receipt_len = 0;
    char rid[CUSTOS_ID_LEN + 1];

    if (c->profile_doc == NULL) {
        ret = custos_error_set(c->profile_err < 0 ? c->profile_err : CUSTOS_ERR_INTERNAL, "profile",
                               "the installed profile does not verify");
        goto out;
    }
    CUSTOS_GUARD(make_receipt(&receipt, &receipt_len, st, c));
    memcpy(rid, st->request_id, sizeof(rid));
    CUSTOS_GUARD(step_receipt(st, c, receipt, receipt_len, rid));
    ret = 0;
out:
    free(receipt);
    return ret;
}

custos_err custos_connect_step(custos_connect_status *out, const custos_port *port,
                               const char *server_url)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    conn c;

    memset(&c, 0, sizeof(c));
    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    memset(out, 0, sizeof(*out));
    out->retry_after = -1;
    CUSTOS_GUARD(conn_load(&c, port, server_url));
    if (c.request != NULL)
        snprintf(out->request_id, sizeof(out->request_id), "%s", pending_id(&c));
    if (c.profile_doc != NULL)
        snprintf(out->device_id, sizeof(out->device_id), "%s", c.profile_doc->device_id);
    if (c.receipt != NULL) {
        ret = step_receipt(out, &c, c.receipt, c.receipt_len, c.receipt_doc->request_id);
    } else if (c.request != NULL) {
        ret = c.submitted ? step_poll(out, &c) : step_submit(out, &c);
    } else if (c.profile != NULL) {
        ret = step_confirm(out, &c);
    } else {
        ret = custos_error_set(CUSTOS_ERR_STATE, "request",
                               "nothing to provision: no pending request and no installed "
                               "profile");
    }
out:
    if (ret < 0 && out != NULL)
        out->phase = CUSTOS_CONNECT_NONE;
    conn_free(&c);
    return ret;
}
