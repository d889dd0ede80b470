/* custos-gateway: the calls to the cloud's gateway API (docs/api.md "Gateway
 * API") over mutual TLS with the hub's tls-client key, and what their
 * results mean for the queue. Every item of a batch is answered on its own;
 * a call fails as a whole only when there is no sensible answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "gateway.h"
#include "http/http.h"

#define CALL_TIMEOUT_S 20L
#define STATUS_RETRY_S 30                     /* after a status the gateway could not use */
#define MAX_ITEM_ANSWER (64u * 1024u * 1024u) /* 16 MiB of profiles in base64, and slack */

/* ---- base64 (standard, padded) ------------------------------------------------ */

static char *b64_encode(const uint8_t *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* Canonical base64 of at most @p max bytes; NULL when it is not. */
static uint8_t *b64_decode(size_t *out_len, const char *s, size_t max)
{
    size_t n = strlen(s), pad = 0;
    uint8_t *out;
    int got;
    *out_len = 0;
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > max + 2 ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
        return NULL;
    pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    if (strchr(s, '=') != (pad > 0 ? s + n - pad : NULL) || n / 4 * 3 - pad > max)
        return NULL;
    out = malloc(n / 4 * 3);
    if (out == NULL)
        return NULL;
    got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (got < 0 || (size_t)got < pad) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)got - pad;
    return out;
}

/* ---- codes --------------------------------------------------------------------- */

int gw_status_for_code(const char *code)
{
    int s;
    for (custos_err c = CUSTOS_ERR_INTERNAL; c >= -64; c--) {
        if (strcmp(custos_err_code(c), code) == 0 &&
            (c == CUSTOS_ERR_INTERNAL || strcmp(code, "internal") != 0)) {
            s = custos_http_status_for(c);
            return s == 500 ? 503 : s;
        }
    }
    if (strcmp(code, "rejected") == 0 || strcmp(code, "gateway_disabled") == 0 ||
        strcmp(code, "revoked") == 0)
        return 403;
    return 422;
}

/* Codes after which the same item may succeed later: keep it. */
static int transient(const char *code)
{
    static const char *const codes[] = {"internal",     "out_of_memory", "io_error",
                                        "rate_limited", "unavailable",   NULL};
    for (size_t i = 0; codes[i] != NULL; i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

/* {"error": {"code", "message", "field"?}} of an item or an answer. */
static int item_error(gwq_error *out, const json_t *item)
{
    const json_t *e = json_object_get(item, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return 0;
    snprintf(out->code, sizeof(out->code), "%s", code != NULL ? code : "refused");
    snprintf(out->message, sizeof(out->message), "%s", msg != NULL ? msg : out->code);
    snprintf(out->field, sizeof(out->field), "%s", field != NULL ? field : "");
    for (char *p = out->message; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    out->status = gw_status_for_code(out->code);
    return 1;
}

static const char *str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "";
}

static long retry_of(const json_t *o)
{
    const json_t *v = json_object_get(o, "retry_after");
    return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 86400
               ? (long)json_integer_value(v)
               : -1;
}

/* ---- one call -------------------------------------------------------------------- */

static gw_call down(gw_upstream *u, const char *code, const char *message)
{
    snprintf(u->result, sizeof(u->result), "%s: %s", code, message);
    return GW_CALL_DOWN;
}

/* POST @p body (taken) to /gateway/v1/@p what: GW_CALL_OK with the array
 * "results" of @p n entries in *@p out (a reference the caller drops). */
static gw_call call(json_t **out, gw_upstream *u, const char *what, json_t *body, size_t n)
{
    char url[CUSTOS_MAX_URL_LEN + 64], *text = NULL;
    custos_hc_request rq;
    custos_hc_response rs;
    json_t *answer = NULL, *results;
    gwq_error e;
    gw_call c = GW_CALL_DOWN;
    custos_err r;

    *out = NULL;
    u->retry_after = -1;
    memset(&rs, 0, sizeof(rs));
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return down(u, "out_of_memory", "cannot make the request body");
    snprintf(url, sizeof(url), "%s/gateway/v1/%s", u->app->cfg.upstream, what);
    memset(&rq, 0, sizeof(rq));
    rq.method = "POST";
    rq.url = url;
    rq.content_type = "application/json";
    rq.body = (const uint8_t *)text;
    rq.body_len = strlen(text);
    rq.ca_der = u->app->id->roots_der;
    rq.ca_der_len = u->app->id->roots_len;
    rq.timeout_s = CALL_TIMEOUT_S;
    rq.max_response = MAX_ITEM_ANSWER;
    rq.ssl_ctx_hook = gw_identity_client_hook;
    rq.hook_ctx = u->app->id;
    r = custos_hc_perform(&rs, u->hc, &rq);
    free(text);
    if (r < 0) {
        c = down(u, custos_err_code(r), custos_error_last()->message);
        goto out;
    }
    u->retry_after = rs.retry_after;
    answer = rs.body != NULL
                 ? json_loadb((const char *)rs.body, rs.body_len, JSON_REJECT_DUPLICATES, NULL)
                 : NULL;
    if (rs.status != 200) {
        if (!item_error(&e, answer)) {
            snprintf(e.code, sizeof(e.code), "%s",
                     rs.status == 429 ? "rate_limited" : "http_error");
            snprintf(e.message, sizeof(e.message), "HTTP %ld from %s", rs.status, url);
        }
        snprintf(u->result, sizeof(u->result), "%s: %s", e.code, e.message);
        c = rs.status == 403 ? GW_CALL_REFUSED : GW_CALL_DOWN;
        goto out;
    }
    results = json_object_get(answer, "results");
    if (!json_is_array(results) || json_array_size(results) != n) {
        c = down(u, "malformed", "the cloud's answer has no results array of the batch's size");
        goto out;
    }
    *out = json_incref(results);
    snprintf(u->result, sizeof(u->result), "ok");
    c = GW_CALL_OK;
out:
    json_decref(answer);
    custos_hc_response_clear(&rs);
    return c;
}

static json_t *blob_array(const gwq_blob *items, size_t n, int tamper)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        char *b;
#ifdef CUSTOS_TEST_HOOKS
        /* Test hook: one byte of what goes upstream changed, as a gateway that
         * tried to alter a request would (the cloud must refuse it). */
        uint8_t saved = 0;
        if (tamper && items[i].len > 16) {
            saved = items[i].data[items[i].len - 12];
            items[i].data[items[i].len - 12] ^= 0x01;
        }
        b = b64_encode(items[i].data, items[i].len);
        if (tamper && items[i].len > 16)
            items[i].data[items[i].len - 12] = saved;
#else
        (void)tamper;
        b = b64_encode(items[i].data, items[i].len);
#endif
        if (b == NULL || json_array_append_new(a, json_string(b)) != 0) {
            free(b);
            json_decref(a);
            return NULL;
        }
        free(b);
    }
    return a;
}

static void log_item(const char *level, const char *event, const char *rid, const char *k1,
                     const char *v1, const char *k2, const char *v2)
{
    json_t *f = json_pack("{s:s}", "request_id", rid);
    if (f != NULL && k1 != NULL)
        json_object_set_new(f, k1, json_string(v1));
    if (f != NULL && k2 != NULL)
        json_object_set_new(f, k2, json_string(v2));
    gw_log(level, event, f);
}

/* Record the @p n results of a call (taken) in one transaction, with the
 * uplink's "ok". Not recorded (the database failed): sent again later,
 * which the cloud answers the same way. */
typedef custos_err (*record_fn)(gw_upstream *u, const char *rid, const json_t *res, int64_t now);

static gw_call record_all(gw_upstream *u, json_t *results, const char *const *ids, size_t n,
                          record_fn fn)
{
    int64_t now = time(NULL);
    custos_err r = gwq_begin(u->q);
    for (size_t i = 0; r == CUSTOS_OK && i < n; i++)
        r = fn(u, ids[i], json_array_get(results, i), now);
    if (r == CUSTOS_OK)
        r = gwq_uplink(u->q, 1, "ok", now);
    if (r == CUSTOS_OK)
        r = gwq_commit(u->q);
    else
        gwq_rollback(u->q);
    json_decref(results);
    return r == CUSTOS_OK ? GW_CALL_OK : down(u, "io_error", custos_error_last()->message);
}

/* ---- POST /gateway/v1/requests ---------------------------------------------------------- */

static int tamper_requested(void)
{
#ifdef CUSTOS_TEST_HOOKS
    const char *v = getenv("CUSTOS_TEST_GATEWAY_TAMPER");
    return v != NULL && strcmp(v, "1") == 0;
#else
    return 0;
#endif
}

static custos_err record_submission(gw_upstream *u, const char *rid, const json_t *res, int64_t now)
{
    gwq_error e;
    gwq_update up;
    const char *state;

    if (item_error(&e, res)) {
        if (transient(e.code)) {
            log_item("warn", "forward_deferred", rid, "code", e.code, "message", e.message);
            u->deferred++;
            return CUSTOS_OK;
        }
        log_item("warn", "refused", rid, "code", e.code, "message", e.message);
        return gwq_refuse(u->q, rid, &e, now);
    }
    state = str(res, "state");
    if (strcmp(str(res, "request_id"), rid) != 0 || state[0] == '\0') {
        log_item("warn", "forward_deferred", rid, "code", "malformed", "message",
                 "the cloud answered for another request, or without a state");
        u->deferred++;
        return CUSTOS_OK;
    }
    memset(&up, 0, sizeof(up));
    up.state = state;
    up.device_id = str(res, "device_id");
    up.retry_after = retry_of(res);
    /* Approved by a policy at once: fetch the profile at once. */
    if (strcmp(state, "certified") == 0 || strcmp(state, "provisioned") == 0)
        up.retry_after = 0;
    log_item("info", "forwarded", rid, "state", state, "device_id", up.device_id);
    return gwq_update_state(u->q, rid, &up, now);
}

gw_call gw_upstream_requests(gw_upstream *u, const gwq_blob *items, size_t n)
{
    const char *ids[GW_BATCH_ITEMS];
    json_t *results = NULL;
    gw_call c = call(&results, u, "requests",
                     json_pack("{s:o}", "requests", blob_array(items, n, tamper_requested())), n);
    for (size_t i = 0; i < n && i < GW_BATCH_ITEMS; i++)
        ids[i] = items[i].request_id;
    return c != GW_CALL_OK ? c : record_all(u, results, ids, n, record_submission);
}

/* ---- POST /gateway/v1/receipts ---------------------------------------------------------- */

static custos_err record_receipt(gw_upstream *u, const char *rid, const json_t *res, int64_t now)
{
    gwq_error e;
    if (item_error(&e, res)) {
        if (transient(e.code)) {
            log_item("warn", "receipt_deferred", rid, "code", e.code, "message", e.message);
            u->deferred++;
            return CUSTOS_OK;
        }
        log_item("warn", "receipt_refused", rid, "code", e.code, "message", e.message);
        return gwq_receipt_refused(u->q, rid, &e, now);
    }
    if (strcmp(str(res, "request_id"), rid) != 0 || strcmp(str(res, "state"), "provisioned") != 0) {
        log_item("warn", "receipt_deferred", rid, "code", "malformed", "message",
                 "the cloud answered for another request, or not provisioned");
        u->deferred++;
        return CUSTOS_OK;
    }
    log_item("info", "receipt_confirmed", rid, "device_id", str(res, "device_id"), NULL, NULL);
    return gwq_receipt_confirmed(u->q, rid, str(res, "device_id"), now);
}

gw_call gw_upstream_receipts(gw_upstream *u, const gwq_blob *items, size_t n)
{
    const char *ids[GW_BATCH_ITEMS];
    json_t *results = NULL;
    gw_call c =
        call(&results, u, "receipts", json_pack("{s:o}", "receipts", blob_array(items, n, 0)), n);
    for (size_t i = 0; i < n && i < GW_BATCH_ITEMS; i++)
        ids[i] = items[i].request_id;
    return c != GW_CALL_OK ? c : record_all(u, results, ids, n, record_receipt);
}

/* ---- POST /gateway/v1/status -------------------------------------------------------------- */

static custos_err record_status(gw_upstream *u, const char *rid, const json_t *res, int64_t now)
{
    gwq_error e;
    gwq_update up;
    uint8_t *profile = NULL;
    const char *b64 = json_string_value(json_object_get(res, "profile"));
    custos_err r;

    if (item_error(&e, res)) {
        if (strcmp(e.code, "not_found") == 0) {
            /* The cloud does not know it (any more): submit it again. */
            log_item("warn", "resubmit", rid, "code", e.code, "message", e.message);
            return gwq_requeue(u->q, rid, now);
        }
        log_item("warn", "status_failed", rid, "code", e.code, "message", e.message);
        /* Asked again later; the device keeps waiting. */
        return transient(e.code) ? gwq_defer(u->q, rid, STATUS_RETRY_S, now)
                                 : gwq_refuse(u->q, rid, &e, now);
    }
    memset(&up, 0, sizeof(up));
    up.state = str(res, "state");
    up.retry_after = retry_of(res);
    up.reason = str(res, "reason");
    if (up.state[0] == '\0')
        return gwq_defer(u->q, rid, STATUS_RETRY_S, now);
    if (b64 != NULL) {
        profile = b64_decode(&up.profile_len, b64, CUSTOS_MAX_PROFILE_SIZE);
        if (profile == NULL) {
            log_item("warn", "status_failed", rid, "code", "malformed", "message",
                     "the profile is not base64 of at most 256 KiB");
            up.retry_after = STATUS_RETRY_S;
        }
        up.profile = profile;
    }
    if (profile != NULL)
        log_item("info", "profile_fetched", rid, "state", up.state, NULL, NULL);
    else if (strcmp(up.state, "rejected") == 0 || strcmp(up.state, "expired") == 0)
        log_item("info", up.state, rid, "reason", up.reason, NULL, NULL);
    r = gwq_update_state(u->q, rid, &up, now);
    free(profile);
    return r;
}

/* Each result names its request; one that does not is asked again later. */
static custos_err record_status_of(gw_upstream *u, const char *rid, const json_t *res, int64_t now)
{
    return strcmp(str(res, "request_id"), rid) == 0 ? record_status(u, rid, res, now)
                                                    : gwq_defer(u->q, rid, STATUS_RETRY_S, now);
}

gw_call gw_upstream_status(gw_upstream *u, char (*ids)[CUSTOS_ID_LEN + 1], size_t n)
{
    const char *names[GW_BATCH_STATUS];
    json_t *results = NULL, *arr = json_array();
    gw_call c;

    for (size_t i = 0; i < n && i < GW_BATCH_STATUS; i++) {
        names[i] = ids[i];
        if (arr != NULL && json_array_append_new(arr, json_string(ids[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    c = call(&results, u, "status", json_pack("{s:o}", "request_ids", arr), n);
    return c != GW_CALL_OK ? c : record_all(u, results, names, n, record_status_of);
}
