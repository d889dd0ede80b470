/* custos-gateway: the device protocol toward the devices behind the hub
 * (docs/api.md "Device protocol", docs/gateway.md), answered from the queue.
 * A request or receipt is stored durably before the device hears "202". The
 * gateway reads a .mcpr with libcustos (custos_inspect: size bound, CMS
 * signature and proof of possession against what the file carries) only to
 * learn its ids, system and component; the cloud verifies it all again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "gateway.h"
#include "http/log.h"

#define PREFIX "/device/v1/requests"
#define RETRY_QUEUED_S 1
#define RETRY_QUEUED_DOWN_S 5
#define RETRY_PENDING_MAX_S 60
#define RECEIPT_HOLD_S 0.5 /* how long a receipt's answer may wait for the cloud */

typedef struct gw_worker {
    gw_app *app;
    gwq *q;
} gw_worker;

void *gw_worker_init(unsigned index, void *app)
{
    gw_worker *w = calloc(1, sizeof(*w));
    (void)index;
    if (w == NULL)
        return NULL;
    w->app = app;
    if (gwq_open(&w->q, w->app->cfg.queue_dir) < 0) {
        gw_log("error", "queue_open_failed",
               json_pack("{s:s}", "message", custos_error_last()->message));
        free(w);
        return NULL;
    }
    return w;
}

void gw_worker_free(void *wctx)
{
    gw_worker *w = wctx;
    if (w == NULL)
        return;
    gwq_close(w->q);
    free(w);
}

/* ---- answers ------------------------------------------------------------------ */

static void reply_error(custos_http_exchange *x, const gwq_error *e)
{
    custos_http_reply_error(x, e->status > 0 ? e->status : 422, e->code[0] ? e->code : "refused",
                            e->message[0] ? e->message : "refused by the cloud",
                            e->field[0] ? e->field : NULL);
}

static void reply_json(custos_http_exchange *x, int status, json_t *body)
{
    if (body == NULL) {
        custos_http_reply_error(x, 500, "out_of_memory", "out of memory", NULL);
        return;
    }
    custos_http_reply_json(x, status, body);
    json_decref(body);
}

static void reply_state(custos_http_exchange *x, const gwq_item *it, const char *state,
                        long retry_after)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "request_id", it->request_id, "state", state,
                          "retry_after", (json_int_t)retry_after);
    if (o != NULL && it->device_id[0] != '\0')
        json_object_set_new(o, "device_id", json_string(it->device_id));
    reply_json(x, 202, o);
}

static void reply_profile(custos_http_exchange *x, gw_worker *w, const gwq_item *it)
{
    uint8_t *mccp = NULL;
    size_t len = 0;
    char disp[96];
    custos_err r = gwq_profile(&mccp, &len, w->q, it->request_id);
    if (r < 0) {
        custos_http_reply_err(x, r);
        return;
    }
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s.mccp\"", it->request_id);
    custos_http_set_header(x, "Content-Disposition", disp);
    custos_http_reply(x, 200, CUSTOS_CT_PROFILE, mccp, len);
    free(mccp);
}

/* What a device hears of a request: its state as the cloud last said, from
 * the queue. @p poll: GET (200 with the profile once there) or a submission. */
static void reply_item(custos_http_exchange *x, gw_worker *w, const gwq_item *it, int poll)
{
    char msg[GWQ_MESSAGE_CAP + 96];
    const char *s = it->state;
    long wait = it->retry_after < 1 ? 1 : it->retry_after;

    if (strcmp(s, "queued") == 0) {
        reply_state(x, it, "pending",
                    atomic_load(&w->app->uplink_ok) ? RETRY_QUEUED_S : RETRY_QUEUED_DOWN_S);
    } else if (strcmp(s, "pending") == 0) {
        reply_state(x, it, s, wait > RETRY_PENDING_MAX_S ? RETRY_PENDING_MAX_S : wait);
    } else if (strcmp(s, "approved") == 0 ||
               ((strcmp(s, "certified") == 0 || strcmp(s, "provisioned") == 0) &&
                !it->has_profile)) {
        reply_state(x, it, "approved", 1); /* the profile is on its way to the gateway */
    } else if (strcmp(s, "certified") == 0 || strcmp(s, "provisioned") == 0) {
        if (poll)
            reply_profile(x, w, it);
        else
            reply_state(x, it, "certified", 0);
    } else if (strcmp(s, "rejected") == 0) {
        snprintf(msg, sizeof(msg), "request %s was rejected: %s", it->request_id,
                 it->reason[0] != '\0' ? it->reason : "no reason given");
        custos_http_reply_error(x, 403, "rejected", msg, NULL);
    } else if (strcmp(s, "expired") == 0) {
        snprintf(msg, sizeof(msg), "request %s expired before it was approved; make a new request",
                 it->request_id);
        custos_http_reply_error(x, 410, "expired", msg, "signer");
    } else {
        reply_error(x, &it->error);
    }
}

/* ---- checks ---------------------------------------------------------------------- */

/* The body, size first (413), then its type (415), then not empty (400). */
static const uint8_t *body_of(size_t *len, custos_http_exchange *x, const char *ctype, size_t max)
{
    const uint8_t *b = custos_http_body(x, len);
    char msg[160];
    if (*len > max) {
        snprintf(msg, sizeof(msg), "the body is %zu bytes; this endpoint takes at most %zu", *len,
                 max);
        custos_http_reply_error(x, 413, "too_large", msg, "body");
        return NULL;
    }
    if (!custos_http_content_type_is(x, ctype)) {
        snprintf(msg, sizeof(msg), "the body must be %s", ctype);
        custos_http_reply_error(x, 415, "unsupported_media_type", msg, "Content-Type");
        return NULL;
    }
    if (*len == 0) {
        custos_http_reply_error(x, 400, "malformed", "the body is empty", "body");
        return NULL;
    }
    return b;
}

static int rate_ok(custos_http_exchange *x, custos_ratelimit *rl, const char *key)
{
    unsigned retry = 0;
    char v[16];
    if (custos_ratelimit_take(rl, key, custos_ratelimit_now(), &retry))
        return 1;
    snprintf(v, sizeof(v), "%u", retry);
    custos_http_set_header(x, "Retry-After", v);
    custos_http_reply_error(x, 429, "rate_limited", "too many requests; retry later", NULL);
    return 0;
}

/* custos_inspect() of @p data: a file of @p kind whose signature verified,
 * as {"verified", "content"}; NULL after answering. */
static json_t *inspect(custos_http_exchange *x, const uint8_t *data, size_t len, const char *kind)
{
    char *text = NULL;
    json_t *j = NULL, *err;
    char msg[200];
    custos_err r = custos_inspect(&text, data, len);
    if (r < 0) {
        custos_http_reply_err(x, r);
        return NULL;
    }
    j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (j == NULL) {
        custos_http_reply_error(x, 500, "internal", "internal error", NULL);
        return NULL;
    }
    if (!json_is_string(json_object_get(j, "kind")) ||
        strcmp(json_string_value(json_object_get(j, "kind")), kind) != 0) {
        snprintf(msg, sizeof(msg), "the body is not a %s",
                 strcmp(kind, "request") == 0 ? "provisioning request" : "receipt");
        custos_http_reply_error(x, 400, "malformed", msg, "body");
        json_decref(j);
        return NULL;
    }
    if (!json_is_true(json_object_get(json_object_get(j, "verified"), "signature"))) {
        err = json_object_get(json_object_get(j, "verified"), "error");
        snprintf(msg, sizeof(msg), "%s",
                 json_is_string(err) ? json_string_value(err)
                 : json_is_string(json_object_get(err, "message"))
                     ? json_string_value(json_object_get(err, "message"))
                     : "the signature does not verify");
        custos_http_reply_error(x, 422, "bad_signature", msg, "signature");
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *content_str(const json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(j, "content"), key));
    return v != NULL ? v : "";
}

static void sha256_hex(char out[65], const uint8_t *data, size_t len)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- POST /device/v1/requests ------------------------------------------------------ */

/* A signer that is out of its validity now: expired 410, else 422. */
static int validity_refused(custos_http_exchange *x, const json_t *j)
{
    const json_t *v = json_object_get(j, "verified");
    const json_t *e = json_object_get(v, "validity_error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!json_is_false(json_object_get(v, "valid_now")))
        return 0;
    code = code != NULL ? code : "expired";
    custos_http_reply_error(x, strcmp(code, "expired") == 0 ? 410 : 422, code,
                            msg != NULL ? msg : "the certificate that signed it is not valid now",
                            "signer");
    return 1;
}

static void submit(custos_http_exchange *x, gw_worker *w)
{
    const char *own = custos_device_system(w->app->id->dev);
    char digest[65], msg[300];
    gwq_new n;
    gwq_item it;
    json_t *j = NULL;
    size_t len = 0;
    int created = 0;
    const uint8_t *b = body_of(&len, x, CUSTOS_CT_REQUEST, CUSTOS_MAX_REQUEST_SIZE);
    custos_err r;

    if (b == NULL)
        return;
    sha256_hex(digest, b, len);
    if (!rate_ok(x, w->app->rl_device, digest) || (j = inspect(x, b, len, "request")) == NULL ||
        validity_refused(x, j))
        goto out;
    memset(&n, 0, sizeof(n));
    n.request_id = content_str(j, "request_id");
    n.device_id = content_str(j, "device_id");
    n.system = content_str(j, "system");
    n.component = content_str(j, "component");
    n.serial = content_str(j, "serial");
    n.mcpr = b;
    n.len = len;
    custos_http_log_field(x, "request", n.request_id);
    if (strcmp(n.system, own) != 0) {
        snprintf(msg, sizeof(msg),
                 "the request is for system %.64s; this gateway forwards requests of system "
                 "%.64s only",
                 n.system, own);
        custos_http_reply_error(x, 403, "forbidden", msg, "system");
        goto out;
    }
    r = gwq_put_request(&it, &created, w->q, &n, time(NULL));
    if (r < 0) {
        custos_http_reply_err(x, r);
        goto out;
    }
    if (created) {
        gw_log("info", "accepted",
               json_pack("{s:s, s:s, s:s, s:s}", "request_id", it.request_id, "component",
                         it.component, "serial", it.serial, "client", custos_http_client_addr(x)));
        gw_wake(w->app);
    }
    reply_item(x, w, &it, 0);
out:
    json_decref(j);
}

/* ---- GET /device/v1/requests/{id} ----------------------------------------------------- */

static void poll_request(custos_http_exchange *x, gw_worker *w, const char *id)
{
    gwq_item it;
    custos_err r;
    if (!rate_ok(x, w->app->rl_device, id))
        return;
    r = gwq_get(&it, w->q, id);
    if (r < 0) {
        custos_http_reply_err(x, r);
        return;
    }
    reply_item(x, w, &it, 1);
}

/* ---- POST /device/v1/requests/{id}/receipt -------------------------------------------- */

/* The receipt is for @p it and for the profile the gateway handed out. */
static int receipt_matches(custos_http_exchange *x, gw_worker *w, const gwq_item *it,
                           const json_t *j)
{
    uint8_t *mccp = NULL;
    size_t len = 0;
    char digest[65], msg[200];
    custos_err r;

    if (strcmp(content_str(j, "request_id"), it->request_id) != 0) {
        snprintf(msg, sizeof(msg), "the receipt is for request %.40s, not %s",
                 content_str(j, "request_id"), it->request_id);
        custos_http_reply_error(x, 422, "mismatch", msg, "request_id");
        return 0;
    }
    r = gwq_profile(&mccp, &len, w->q, it->request_id);
    if (r < 0) {
        custos_http_reply_err(x, r);
        return 0;
    }
    sha256_hex(digest, mccp, len);
    free(mccp);
    if (strcmp(content_str(j, "profile_sha256"), digest) != 0) {
        snprintf(msg, sizeof(msg),
                 "the receipt is for another profile than the one issued for request %s",
                 it->request_id);
        custos_http_reply_error(x, 422, "mismatch", msg, "profile_sha256");
        return 0;
    }
    return 1;
}

/* A queued receipt: while the uplink works, the answer waits a moment for
 * the forwarder to have it confirmed, so that the device hears 200 now
 * rather than after another retry_after. */
static custos_err hold_for_cloud(gwq_item *it, gw_worker *w, const char *id)
{
    double deadline = gw_mono_now() + RECEIPT_HOLD_S;
    custos_err r = CUSTOS_OK;
    gw_wake(w->app);
    while (r == CUSTOS_OK && it->receipt_state == GWQ_RECEIPT_QUEUED &&
           atomic_load(&w->app->uplink_ok) && gw_wait_pass(w->app, deadline))
        r = gwq_get(it, w->q, id);
    return r;
}

static void receipt(custos_http_exchange *x, gw_worker *w, const char *id)
{
    gwq_item it;
    json_t *j = NULL;
    size_t len = 0;
    char msg[160];
    const uint8_t *b = body_of(&len, x, CUSTOS_CT_RECEIPT, CUSTOS_MAX_RECEIPT_SIZE);
    custos_err r;

    if (b == NULL || !rate_ok(x, w->app->rl_device, id))
        return;
    r = gwq_get(&it, w->q, id);
    if (r < 0) {
        custos_http_reply_err(x, r);
        return;
    }
    if (!it.has_profile) {
        snprintf(msg, sizeof(msg), "request %s is %s, not certified", id,
                 strcmp(it.state, "queued") == 0 ? "pending" : it.state);
        custos_http_reply_error(x, 409, "invalid_state", msg, NULL);
        return;
    }
    if ((j = inspect(x, b, len, "receipt")) == NULL || !receipt_matches(x, w, &it, j))
        goto out;
    r = gwq_put_receipt(&it, w->q, id, b, len, time(NULL));
    if (r == CUSTOS_OK && it.receipt_state == GWQ_RECEIPT_QUEUED)
        r = hold_for_cloud(&it, w, id);
    if (r < 0) {
        custos_http_reply_err(x, r);
        goto out;
    }
    if (it.receipt_state == GWQ_RECEIPT_CONFIRMED) {
        reply_json(x, 200,
                   json_pack("{s:s, s:s, s:s}", "request_id", it.request_id, "device_id",
                             it.device_id, "state", "provisioned"));
    } else if (it.receipt_state == GWQ_RECEIPT_REFUSED) {
        reply_error(x, &it.receipt_error);
    } else {
        reply_state(x, &it, "certified", atomic_load(&w->app->uplink_ok) ? 1 : RETRY_QUEUED_DOWN_S);
    }
out:
    json_decref(j);
}

/* ---- routing ------------------------------------------------------------------------ */

enum route { R_NONE, R_SUBMIT, R_POLL, R_RECEIPT };

static enum route route_of(char id[CUSTOS_ID_LEN + 1], const char *path)
{
    const char *rest, *slash;
    size_t n;
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return R_NONE;
    rest = path + strlen(PREFIX);
    if (*rest == '\0')
        return R_SUBMIT;
    if (*rest++ != '/')
        return R_NONE;
    slash = strchr(rest, '/');
    n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n > CUSTOS_ID_LEN || (slash != NULL && strcmp(slash, "/receipt") != 0))
        return R_NONE;
    memcpy(id, rest, n);
    id[n] = '\0';
    return slash != NULL ? R_RECEIPT : R_POLL;
}

void gw_handle(custos_http_exchange *x, void *wctx)
{
    gw_worker *w = wctx;
    char id[CUSTOS_ID_LEN + 1] = "";
    enum route r = route_of(id, custos_http_path(x));
    const char *method = custos_http_method(x);
    const char *want = r == R_POLL ? "GET" : "POST";

    custos_error_clear();
    if (r == R_NONE) {
        custos_http_reply_error(x, 404, "not_found",
                                "no such endpoint: a gateway serves the device protocol under "
                                "/device/v1/",
                                NULL);
        return;
    }
    if (strcmp(method, want) != 0) {
        custos_http_reply_error(x, 405, "method_not_allowed", "this method is not allowed here",
                                NULL);
        return;
    }
    if (!rate_ok(x, w->app->rl_addr, custos_http_client_addr(x)))
        return;
    if (id[0] != '\0')
        custos_http_log_field(x, "request", id);
    if (r == R_SUBMIT)
        submit(x, w);
    else if (r == R_POLL)
        poll_request(x, w, id);
    else
        receipt(x, w, id);
}
