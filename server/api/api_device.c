/* The device protocol (docs/api.md "Device protocol"): no operator
 * credential; every request is authenticated by the signatures on what it
 * carries, verified by the engine exactly as `custosd request import` does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "internal/util.h"

#define CT_MCPR "application/vnd.custos.mcpr"
#define CT_MCCP "application/vnd.custos.mccp"
#define CT_RECEIPT "application/vnd.custos.receipt"

/* Seconds a device should wait before it asks again. */
static unsigned retry_after_for(const api_call *c, custos_state s)
{
    switch (s) {
    case CUSTOS_STATE_PENDING:
        return c->w->api->cfg.poll_interval;
    case CUSTOS_STATE_APPROVED:
        return 1;
    default:
        return 0;
    }
}

/* Per-device limit: keyed by the request id (polls, receipts) or the
 * request's digest (submissions), on top of the per-address limit. */
static int device_rate_ok(api_call *c, const char *key)
{
    unsigned retry = 0;
    if (custos_ratelimit_take(c->w->api->device_key, key, custos_api_now_s(), &retry))
        return 1;
    api_rate_limited(c, retry);
    return 0;
}

static void answer_state(api_call *c, int status, const custos_request_summary *s)
{
    api_json(c, status,
             json_pack("{s:s, s:s, s:s, s:I}", "request_id", s->request_id, "device_id",
                       s->device_id, "state", custos_state_name(s->state), "retry_after",
                       (json_int_t)retry_after_for(c, s->state)));
}

static void submit(api_call *c)
{
    custos_request_summary s;
    uint8_t digest[32];
    char key[65];
    int created = 0;
    custos_err err;

    custos_sha256(digest, c->body, c->body_len);
    custos_hex_encode(key, digest, sizeof(digest));
    if (!device_rate_ok(c, key))
        return;
    err = custos_engine_request_submit(&s, &created, c->e, c->body, c->body_len, "connected",
                                       &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    custos_http_log_field(c->x, "request", s.request_id);
    answer_state(c, 202, &s);
}

static void poll_request(api_call *c)
{
    custos_request_summary s;
    uint8_t *mccp = NULL;
    size_t len = 0;
    char name[CUSTOS_ID_LEN + 16], msg[CUSTOS_MAX_META_VALUE_LEN + 64], when[21];
    int64_t now = 0;
    custos_err err;

    if (!device_rate_ok(c, c->params[0]))
        return;
    err = custos_engine_request_get(&s, c->e, c->params[0]);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    if ((s.state == CUSTOS_STATE_PENDING || s.state == CUSTOS_STATE_APPROVED) &&
        custos_now(&now, NULL) == CUSTOS_OK && now >= s.expires) {
        /* The signer expired while it waited: it can no longer be approved
         * (the engine marks it expired on the next approve or sweep). */
        custos_time_format(when, s.expires);
        snprintf(msg, sizeof(msg),
                 "the certificate that signed request %s expired at %s; make a new request",
                 s.request_id, when);
        api_error(c, 410, "expired", msg, "signer");
        return;
    }
    switch (s.state) {
    case CUSTOS_STATE_PENDING:
    case CUSTOS_STATE_APPROVED:
        answer_state(c, 202, &s);
        return;
    case CUSTOS_STATE_CERTIFIED:
    case CUSTOS_STATE_PROVISIONED:
        err = custos_engine_profile_export(&mccp, &len, c->e, s.request_id);
        if (err != CUSTOS_OK) {
            api_fail(c, err);
            return;
        }
        snprintf(name, sizeof(name), "%s.mccp", s.request_id);
        api_file(c, CT_MCCP, name, mccp, len);
        free(mccp);
        return;
    case CUSTOS_STATE_REJECTED:
        snprintf(msg, sizeof(msg), "request %s was rejected: %s", s.request_id,
                 s.reason[0] != '\0' ? s.reason : "no reason given");
        api_error(c, 403, "rejected", msg, NULL);
        return;
    case CUSTOS_STATE_EXPIRED:
        snprintf(msg, sizeof(msg), "request %s expired before it was approved; make a new request",
                 s.request_id);
        api_error(c, 410, "expired", msg, "signer");
        return;
    default:
        snprintf(msg, sizeof(msg), "request %s is %s", s.request_id, custos_state_name(s.state));
        api_error(c, 403, "revoked", msg, NULL);
        return;
    }
}

static void receipt(api_call *c)
{
    custos_request_summary s;
    custos_err err;

    if (!device_rate_ok(c, c->params[0]))
        return;
    err = custos_engine_receipt_accept(&s, c->e, c->params[0], c->body, c->body_len, &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200,
             json_pack("{s:s, s:s, s:s}", "request_id", s.request_id, "device_id", s.device_id,
                       "state", custos_state_name(s.state)));
}

const api_route custos_api_device_routes[] = {
    {"POST", "/device/v1/requests", 0, CT_MCPR, CUSTOS_MAX_REQUEST_SIZE, submit},
    {"GET", "/device/v1/requests/{}", 0, NULL, 0, poll_request},
    {"POST", "/device/v1/requests/{}/receipt", 0, CT_RECEIPT, CUSTOS_MAX_RECEIPT_SIZE, receipt},
};
const size_t custos_api_device_route_count =
    sizeof(custos_api_device_routes) / sizeof(custos_api_device_routes[0]);
