/* The upstream gateway API (docs/api.md "Gateway API"): a gateway device,
 * authenticated by its own client certificate, forwards batches of the
 * requests, polls and receipts of the devices behind it; and the operator
 * endpoints that list, disable and enable gateways. Each forwarded item goes
 * through the same engine path as on the device protocol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "api_int.h"
#include "http/log.h"
#include "internal/util.h"

#define CT_JSON "application/json"

#define GW_MAX_ITEMS 64                       /* requests or receipts per call */
#define GW_MAX_STATUS 256                     /* request ids per status call */
#define GW_MAX_PROFILES (16u * 1024u * 1024u) /* profile bytes in one status answer */
#define B64_LEN(n) ((((n) + 2u) / 3u) * 4u)
/* Body limits: every item at its maximum, quoted, with a comma. */
#define GW_MAX_REQUESTS_BODY (GW_MAX_ITEMS * (B64_LEN(CUSTOS_MAX_REQUEST_SIZE) + 8u) + 1024u)
#define GW_MAX_RECEIPTS_BODY (GW_MAX_ITEMS * (B64_LEN(CUSTOS_MAX_RECEIPT_SIZE) + 8u) + 1024u)

/* ---- authorization (called by the router for API_GATEWAY routes) ---------------- */

int api_gateway_authorize(api_call *c)
{
    X509 *peer = custos_http_peer_cert(c->x);
    unsigned char *der = NULL;
    int len = 0, disabled = 0;
    unsigned retry = 0;
    custos_err err;

    snprintf(c->actor_who, sizeof(c->actor_who), "gateway");
    if (!custos_ratelimit_take(c->w->api->device_addr, c->actor_from, custos_api_now_s(), &retry)) {
        api_rate_limited(c, retry);
        return 0;
    }
    if (peer != NULL && (len = i2d_X509(peer, &der)) <= 0) {
        api_error(c, 500, "internal", "internal error", NULL);
        return 0;
    }
    err = custos_engine_gateway_auth(&c->gw, &disabled, c->e, der, len > 0 ? (size_t)len : 0);
    OPENSSL_free(der);
    if (err != CUSTOS_OK) {
        if (err == CUSTOS_ERR_FORBIDDEN)
            api_error(c, 403, disabled ? "gateway_disabled" : "forbidden",
                      custos_error_last()->message, disabled ? "gateway" : "certificate");
        else
            api_fail(c, err);
        return 0;
    }
    snprintf(c->actor_who, sizeof(c->actor_who), "gateway:%s", c->gw.device_id);
    custos_http_log_field(c->x, "actor", c->actor_who);
    if (!custos_ratelimit_take(c->w->api->gateway_rl, c->gw.device_id, custos_api_now_s(),
                               &retry)) {
        api_rate_limited(c, retry);
        return 0;
    }
    return 1;
}

/* ---- shared pieces ------------------------------------------------------------------ */

/* The error of a failed item, shaped like an answer's error (a failure the
 * client cannot act on is "internal", its detail logged, not sent). */
static json_t *item_error(api_call *c, custos_err err)
{
    const custos_error *last = custos_error_last();
    int match = last->code == err && err != 0;
    json_t *e;

    if (custos_http_status_for(err) == 500) {
        json_t *f = json_pack("{s:s, s:s, s:s}", "request_id", custos_http_request_id(c->x), "code",
                              custos_err_code(err), "message",
                              match ? last->message : custos_strerror(err));
        custos_log("error", "internal_error", f);
        json_decref(f);
        e = json_pack("{s:s, s:s}", "code", "internal", "message", "internal error");
    } else {
        e = json_pack("{s:s, s:s}", "code", custos_err_code(err), "message",
                      match && last->message[0] ? last->message : custos_strerror(err));
        if (e != NULL && match && last->field[0] != '\0')
            json_object_set_new(e, "field", json_string(last->field));
    }
    custos_error_clear();
    return e != NULL ? json_pack("{s:o}", "error", e) : NULL;
}

static json_t *item_error_msg(const char *code, const char *message, const char *field)
{
    return json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code, "message", message, "field",
                     field);
}

/* The array @p key of the body: at most @p max entries; NULL after answering. */
static json_t *body_array(api_call *c, json_t **body, const char *key, size_t max)
{
    const char *keys[] = {key, NULL};
    json_t *arr;
    char msg[120];

    *body = api_body_json(c);
    if (*body == NULL)
        return NULL;
    if (!api_only_keys(c, *body, keys))
        goto bad;
    arr = json_object_get(*body, key);
    if (!json_is_array(arr)) {
        snprintf(msg, sizeof(msg), "\"%s\" is required (an array)", key);
        api_error(c, 400, "malformed", msg, key);
        goto bad;
    }
    if (json_array_size(arr) > max) {
        snprintf(msg, sizeof(msg), "\"%s\" has %zu entries; at most %zu per call", key,
                 json_array_size(arr), max);
        api_error(c, 413, "too_large", msg, key);
        goto bad;
    }
    return arr;
bad:
    json_decref(*body);
    *body = NULL;
    return NULL;
}

/* Item @p i of @p arr decoded from base64 (at most @p max bytes); NULL with
 * *err_item set when it is not. */
static uint8_t *item_bytes(size_t *len, json_t **err_item, api_call *c, const json_t *arr,
                           const char *key, size_t i, size_t max)
{
    const json_t *v = json_array_get(arr, i);
    uint8_t *der = NULL;
    char field[48];
    custos_err err;

    *len = 0;
    *err_item = NULL;
    snprintf(field, sizeof(field), "%s[%zu]", key, i);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *err_item = item_error_msg("malformed", "each item must be a base64 string", field);
        return NULL;
    }
    err = custos_b64_decode(&der, len, json_string_value(v), max, field);
    if (err != CUSTOS_OK) {
        *err_item = item_error(c, err);
        return NULL;
    }
    return der;
}

static unsigned retry_after_for(const api_call *c, custos_state s)
{
    return s == CUSTOS_STATE_PENDING    ? c->w->api->cfg.poll_interval
           : s == CUSTOS_STATE_APPROVED ? 1u
                                        : 0u;
}

/* Record the call (last_seen, forwarded) and answer {"results": [...]}. */
static void answer_results(api_call *c, json_t *results, unsigned forwarded)
{
    if (custos_engine_gateway_seen(c->e, &c->gw, forwarded) != CUSTOS_OK) {
        json_t *f = json_pack("{s:s, s:s}", "gateway", c->gw.device_id, "message",
                              custos_error_last()->message);
        custos_log("error", "gateway_seen_failed", f);
        json_decref(f);
        custos_error_clear();
    }
    api_json(c, 200, json_pack("{s:o}", "results", results));
}

/* ---- POST /gateway/v1/requests ---------------------------------------------------- */

static json_t *request_item(api_call *c, const json_t *arr, size_t i, void *state)
{
    unsigned *accepted = state;
    custos_request_summary s;
    json_t *err_item = NULL;
    size_t len = 0;
    int created = 0;
    uint8_t *der = item_bytes(&len, &err_item, c, arr, "requests", i, CUSTOS_MAX_REQUEST_SIZE);
    custos_err err;

    if (der == NULL)
        return err_item;
    err = custos_engine_gateway_submit(&s, &created, c->e, &c->gw, der, len, &c->actor);
    free(der);
    if (err != CUSTOS_OK)
        return item_error(c, err);
    (*accepted)++;
    return json_pack("{s:s, s:s, s:s, s:I}", "request_id", s.request_id, "device_id", s.device_id,
                     "state", custos_state_name(s.state), "retry_after",
                     (json_int_t)retry_after_for(c, s.state));
}

/* One answer per item of the body's array @p key, in order (item errors
 * included); the batch fails as a whole only when memory runs out. */
typedef json_t *(*gw_item_fn)(api_call *c, const json_t *arr, size_t i, void *state);

static void gw_batch(api_call *c, const char *key, size_t max, gw_item_fn item, void *state,
                     const unsigned *forwarded)
{
    json_t *body = NULL, *results = json_array();
    const json_t *arr = body_array(c, &body, key, max);
    size_t i;

    if (arr == NULL || results == NULL) {
        if (arr != NULL)
            api_error(c, 500, "out_of_memory", "out of memory", NULL);
        json_decref(results);
        json_decref(body);
        return;
    }
    for (i = 0; i < json_array_size(arr); i++)
        if (api_push_json(results, item(c, arr, i, state)) != 0)
            break;
    json_decref(body);
    if (i < json_array_size(arr)) {
        json_decref(results);
        api_error(c, 500, "out_of_memory", "out of memory", NULL);
        return;
    }
    answer_results(c, results, forwarded != NULL ? *forwarded : 0);
}

static void gw_requests(api_call *c)
{
    unsigned accepted = 0;
    gw_batch(c, "requests", GW_MAX_ITEMS, request_item, &accepted, &accepted);
}

/* ---- POST /gateway/v1/status -------------------------------------------------------- */

static json_t *status_item(api_call *c, const json_t *v, size_t i, size_t *profile_bytes)
{
    custos_request_summary s;
    uint8_t *mccp = NULL;
    size_t len = 0;
    char field[48], *b64 = NULL;
    const char *id = json_string_value(v);
    json_t *o;
    custos_err err;

    snprintf(field, sizeof(field), "request_ids[%zu]", i);
    if (id == NULL)
        return item_error_msg("malformed", "each request id must be a string", field);
    err = custos_engine_gateway_request(&s, c->e, &c->gw, id);
    if (err != CUSTOS_OK) {
        o = item_error(c, err);
        if (o != NULL && strlen(id) <= API_MAX_PARAM_LEN)
            json_object_set_new(o, "request_id", json_string(id));
        return o;
    }
    o = json_pack("{s:s, s:s}", "request_id", s.request_id, "state", custos_state_name(s.state));
    if (o == NULL)
        return NULL;
    if (s.state == CUSTOS_STATE_PENDING || s.state == CUSTOS_STATE_APPROVED)
        json_object_set_new(o, "retry_after", json_integer(retry_after_for(c, s.state)));
    if (s.state == CUSTOS_STATE_REJECTED && s.reason[0] != '\0')
        json_object_set_new(o, "reason", json_string(s.reason));
    if (s.state != CUSTOS_STATE_CERTIFIED && s.state != CUSTOS_STATE_PROVISIONED)
        return o;
    err = custos_engine_profile_export(&mccp, &len, c->e, s.request_id);
    if (err == CUSTOS_OK && *profile_bytes + len > GW_MAX_PROFILES) {
        /* The answer is full: this one comes with the next call. */
        json_object_set_new(o, "retry_after", json_integer(0));
    } else if (err == CUSTOS_OK && custos_b64_encode(&b64, mccp, len) == CUSTOS_OK) {
        *profile_bytes += len;
        json_object_set_new(o, "profile", json_string(b64));
    } else {
        json_decref(o);
        o = item_error(c, err != CUSTOS_OK ? err : CUSTOS_ERR_NOMEM);
        if (o != NULL)
            json_object_set_new(o, "request_id", json_string(s.request_id));
    }
    free(b64);
    free(mccp);
    return o;
}

static json_t *status_at(api_call *c, const json_t *arr, size_t i, void *state)
{
    return status_item(c, json_array_get(arr, i), i, state);
}

static void gw_status(api_call *c)
{
    size_t profile_bytes = 0;
    gw_batch(c, "request_ids", GW_MAX_STATUS, status_at, &profile_bytes, NULL);
}

/* ---- POST /gateway/v1/receipts ------------------------------------------------------- */

static json_t *receipt_item(api_call *c, const json_t *arr, size_t i, void *state)
{
    unsigned *accepted = state;
    custos_request_summary s;
    json_t *err_item = NULL;
    size_t len = 0;
    uint8_t *der = item_bytes(&len, &err_item, c, arr, "receipts", i, CUSTOS_MAX_RECEIPT_SIZE);
    custos_err err;

    if (der == NULL)
        return err_item;
    err = custos_engine_gateway_receipt(&s, c->e, &c->gw, der, len, &c->actor);
    free(der);
    if (err != CUSTOS_OK)
        return item_error(c, err);
    (*accepted)++;
    return json_pack("{s:s, s:s, s:s}", "request_id", s.request_id, "device_id", s.device_id,
                     "state", custos_state_name(s.state));
}

static void gw_receipts(api_call *c)
{
    unsigned accepted = 0;
    gw_batch(c, "receipts", GW_MAX_ITEMS, receipt_item, &accepted, &accepted);
}

/* ---- the operator's view -------------------------------------------------------------- */

static json_t *gateway_json(const custos_gateway_info *g)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:o, s:I}", "device_id", g->device_id, "system",
                     g->system, "serial", g->serial, "enabled", g->enabled != 0, "last_seen",
                     api_time_json(g->last_seen), "forwarded", (json_int_t)g->forwarded);
}

static int gateway_item(const custos_gateway_info *g, void *ctx)
{
    return api_push_json(ctx, gateway_json(g));
}

static void gateways_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err;
    if (items == NULL) {
        api_error(c, 500, "out_of_memory", "out of memory", NULL);
        return;
    }
    err = custos_engine_gateway_list(c->e, gateway_item, items);
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_page(items, NULL));
}

static void gateway_switch(api_call *c, int enabled)
{
    custos_gateway_info g;
    custos_err err = custos_engine_gateway_set_enabled(&g, c->e, c->params[0], enabled, &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200, gateway_json(&g));
}

static void gateway_disable(api_call *c)
{
    gateway_switch(c, 0);
}

static void gateway_enable(api_call *c)
{
    gateway_switch(c, 1);
}

const api_route custos_api_gateway_routes[] = {
    {"POST", "/gateway/v1/requests", API_GATEWAY, CT_JSON, GW_MAX_REQUESTS_BODY, gw_requests},
    {"POST", "/gateway/v1/status", API_GATEWAY, CT_JSON, API_MAX_JSON, gw_status},
    {"POST", "/gateway/v1/receipts", API_GATEWAY, CT_JSON, GW_MAX_RECEIPTS_BODY, gw_receipts},
    {"GET", "/api/v1/gateways", API_ANY, NULL, 0, gateways_list},
    {"POST", "/api/v1/gateways/{}/disable", API_ADMIN, NULL, 0, gateway_disable},
    {"POST", "/api/v1/gateways/{}/enable", API_ADMIN, NULL, 0, gateway_enable},
};
const size_t custos_api_gateway_route_count =
    sizeof(custos_api_gateway_routes) / sizeof(custos_api_gateway_routes[0]);
