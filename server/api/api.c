/* server/api: routing, credentials, roles, rate limits and the answers every
 * handler shares. The handlers are in api_device.c (device protocol) and
 * api_*.c (operator API). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "api_int.h"
#include "http/log.h"
#include "internal/util.h"

double custos_api_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- answers ---------------------------------------------------------------- */

void api_error(api_call *c, int status, const char *code, const char *message, const char *field)
{
    custos_http_reply_error(c->x, status, code, message, field);
}

void api_fail(api_call *c, custos_err err)
{
    custos_http_reply_err(c->x, err);
}

void api_json(api_call *c, int status, json_t *body)
{
    if (body == NULL) {
        api_error(c, 500, "out_of_memory", "out of memory", NULL);
        return;
    }
    custos_http_reply_json(c->x, status, body);
    json_decref(body);
}

void api_file(api_call *c, const char *ctype, const char *filename, const uint8_t *data, size_t len)
{
    char disp[160];
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", filename);
    custos_http_set_header(c->x, "Content-Disposition", disp);
    custos_http_reply(c->x, 200, ctype, data, len);
}

void api_rate_limited(api_call *c, unsigned retry_after)
{
    char v[16];
    snprintf(v, sizeof(v), "%u", retry_after);
    custos_http_set_header(c->x, "Retry-After", v);
    api_error(c, 429, "rate_limited", "too many requests; retry later", NULL);
}

json_t *api_body_json(api_call *c)
{
    json_error_t jerr;
    json_t *j;
    char msg[300];

    j = json_loadb((const char *)c->body, c->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        snprintf(msg, sizeof(msg), "the body is not JSON: %s (line %d)", jerr.text, jerr.line);
        api_error(c, 400, "malformed", msg, "body");
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(c, 400, "malformed", "the body must be a JSON object", "body");
        return NULL;
    }
    return j;
}

int api_only_keys(api_call *c, const json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    char msg[200];
    size_t i;

    json_object_foreach((json_t *)o, k, v)
    {
        int known = 0;
        (void)v;
        for (i = 0; keys[i] != NULL && !known; i++)
            known = strcmp(keys[i], k) == 0;
        if (!known) {
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", k);
            api_error(c, 400, "malformed", msg, k);
            return 0;
        }
    }
    return 1;
}

const char *api_str(api_call *c, const json_t *o, const char *key, int required, int *bad)
{
    const json_t *v = json_object_get(o, key);
    char msg[160];

    if (*bad)
        return NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            snprintf(msg, sizeof(msg), "\"%s\" is required", key);
            api_error(c, 400, "malformed", msg, key);
            *bad = 1;
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        snprintf(msg, sizeof(msg), "\"%s\" must be a string", key);
        api_error(c, 400, "malformed", msg, key);
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

json_t *api_summary_json(const custos_request_summary *s)
{
    char created[21], updated[21], expires[21];
    json_t *o;
    custos_time_format(created, s->created);
    custos_time_format(updated, s->updated);
    custos_time_format(expires, s->expires);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s}",
                  "request_id", s->request_id, "device_id", s->device_id, "state",
                  custos_state_name(s->state), "kind", s->kind, "system", s->system, "component",
                  s->component, "serial", s->serial, "model", s->model, "firmware", s->firmware,
                  "via", s->via, "duplicate_serial", s->duplicate_serial != 0, "created", created,
                  "updated", updated, "expires", expires, "reason", s->reason);
    if (o != NULL && s->gateway_id[0] != '\0' &&
        json_object_set_new(o, "gateway",
                            json_pack("{s:s, s:s}", "device_id", s->gateway_id, "serial",
                                      s->gateway_serial)) != 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* ---- helpers the handlers share ------------------------------------------------------------ */

/* ?limit=: 1..CUSTOS_LIST_MAX, default 50; answers 400 and returns 0 when bad. */
int api_query_limit(api_call *c, size_t *out)
{
    const char *v = custos_http_query(c->x, "limit");
    char *end = NULL;
    unsigned long n;

    *out = 50;
    if (v == NULL)
        return 1;
    n = strtoul(v, &end, 10);
    if (end == v || *end != '\0' || n < 1 || n > CUSTOS_LIST_MAX) {
        api_error(c, 400, "malformed", "limit must be a number from 1 to 500", "limit");
        return 0;
    }
    *out = (size_t)n;
    return 1;
}

const char *api_query_nonempty(api_call *c, const char *name)
{
    const char *v = custos_http_query(c->x, name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

json_t *api_page(json_t *items, const char *next)
{
    json_t *o = json_pack("{s:o}", "items", items);
    if (o != NULL && next != NULL && next[0] != '\0')
        json_object_set_new(o, "next_cursor", json_string(next));
    return o;
}

int api_push_json(json_t *arr, json_t *item)
{
    if (item == NULL)
        return -1;
    return json_array_append_new(arr, item) == 0 ? 0 : -1;
}

json_t *api_time_json(int64_t t)
{
    char buf[21];
    if (t == 0)
        return json_null();
    custos_time_format(buf, t);
    return json_string(buf);
}

/* The secret bearer token or session cookie the call came with. */
int api_call_secret(api_call *c, char *out, size_t cap)
{
    const char *auth = custos_http_header(c->x, "Authorization");
    const char *cookies = custos_http_header(c->x, "Cookie");
    const char *p;
    size_t n;

    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0) {
        n = strlen(auth + 7);
        if (n == 0 || n >= cap)
            return 0;
        memcpy(out, auth + 7, n + 1);
        return 1;
    }
    for (p = cookies; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, "custos_session=", 15) == 0) {
            n = strcspn(p + 15, ";");
            if (n == 0 || n >= cap)
                return 0;
            memcpy(out, p + 15, n);
            out[n] = '\0';
            return 1;
        }
        p = strchr(p, ';');
    }
    return 0;
}

/* ---- routing ---------------------------------------------------------------- */

static int segment_ok(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || n >= API_MAX_PARAM_LEN)
        return 0;
    for (i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return !(n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.'));
}

/* 1 when @p path matches @p pattern, with the {} segments copied to c->params. */
static int route_match(api_call *c, const char *pattern, const char *path)
{
    size_t np = 0;
    while (*pattern != '\0' && *path != '\0') {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *end = strchr(path, '/');
            size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
            if (np >= API_MAX_PARAMS || !segment_ok(path, n))
                return 0;
            memcpy(c->params[np], path, n);
            c->params[np][n] = '\0';
            np++;
            path += n;
            pattern += 2;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

static const api_route *route_find(api_call *c, const char *path, int *path_known)
{
    const api_route *tables[3] = {custos_api_device_routes, custos_api_operator_routes,
                                  custos_api_gateway_routes};
    const size_t counts[3] = {custos_api_device_route_count, custos_api_operator_route_count,
                              custos_api_gateway_route_count};
    size_t t, i;
    const char *method = c->method;

    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    *path_known = 0;
    for (t = 0; t < 3; t++)
        for (i = 0; i < counts[t]; i++) {
            const api_route *r = &tables[t][i];
            if (!route_match(c, r->pattern, path))
                continue;
            *path_known = 1;
            if (strcmp(r->method, method) == 0)
                return r;
        }
    return NULL;
}

/* ---- credentials -------------------------------------------------------------- */

/* The value of cookie @p name in a Cookie header, copied into @p out. */
static int cookie_get(char *out, size_t cap, const char *header, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t n = strcspn(v, ";");
            if (n == 0 || n >= cap)
                return 0;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = strchr(p, ';');
    }
    return 0;
}

static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && la > 0 && CRYPTO_memcmp(a, b, la) == 0;
}

/* Authenticate and authorize an operator call; answers and returns 0 when refused. */
static int authorize(api_call *c, const api_route *r)
{
    const char *auth = custos_http_header(c->x, "Authorization");
    const char *cookies = custos_http_header(c->x, "Cookie");
    char token[256];
    custos_err err = CUSTOS_ERR_AUTH;
    int from_cookie = 0;

    memset(&c->who, 0, sizeof(c->who));
    if (auth != NULL) {
        if (strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) >= sizeof(token)) {
            api_error(c, 401, "unauthenticated",
                      "the Authorization header must be \"Bearer TOKEN\"", "Authorization");
            return 0;
        }
        snprintf(token, sizeof(token), "%s", auth + 7);
        if (strncmp(token, "cst_", 4) == 0)
            err = custos_engine_token_check(&c->who, c->e, token);
        else
            err = custos_engine_session_check(&c->who, c->e, token);
    } else if (cookies != NULL && cookie_get(token, sizeof(token), cookies, "custos_session")) {
        from_cookie = 1;
        err = custos_engine_session_check(&c->who, c->e, token);
    } else {
        custos_http_set_header(c->x, "WWW-Authenticate", "Bearer realm=\"custos\"");
        api_error(c, 401, "unauthenticated", "sign in (POST /api/v1/session) or send an API token",
                  NULL);
        return 0;
    }
    OPENSSL_cleanse(token, sizeof(token));
    if (err != CUSTOS_OK) {
        custos_http_set_header(c->x, "WWW-Authenticate", "Bearer realm=\"custos\"");
        api_error(c, 401, "unauthenticated", "the credential is unknown, expired or revoked", NULL);
        return 0;
    }
    snprintf(c->actor_who, sizeof(c->actor_who), "user:%s", c->who.username);
    custos_http_log_field(c->x, "actor", c->actor_who);
    if (from_cookie && strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0) {
        const char *csrf = custos_http_header(c->x, "X-Custos-CSRF");
        if (csrf == NULL || !ct_equal(csrf, c->who.csrf)) {
            api_error(c, 403, "csrf",
                      "a state-changing call with a session cookie needs the X-Custos-CSRF header",
                      "X-Custos-CSRF");
            return 0;
        }
    }
    if ((r->roles & API_ROLE(c->who.role)) == 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the %s role may not do this", custos_role_name(c->who.role));
        api_error(c, 403, "forbidden", msg, NULL);
        return 0;
    }
    return 1;
}

/* ---- body checks -------------------------------------------------------------- */

static int body_ok(api_call *c, const api_route *r)
{
    char msg[200];
    if (r->ctype == NULL) {
        if (c->body_len > 0 && strcmp(c->method, "GET") != 0) {
            /* Action endpoints take no body, or an empty JSON object. */
            if (!custos_http_content_type_is(c->x, "application/json") ||
                c->body_len > API_MAX_JSON) {
                api_error(c, 415, "unsupported_media_type", "this endpoint takes no body", "body");
                return 0;
            }
        }
        return 1;
    }
    if (c->body_len > r->max_body) {
        snprintf(msg, sizeof(msg), "the body is %zu bytes; this endpoint takes at most %zu",
                 c->body_len, r->max_body);
        api_error(c, 413, "too_large", msg, "body");
        return 0;
    }
    if (!custos_http_content_type_is(c->x, r->ctype)) {
        snprintf(msg, sizeof(msg), "the body must be %s", r->ctype);
        api_error(c, 415, "unsupported_media_type", msg, "Content-Type");
        return 0;
    }
    if (c->body_len == 0) {
        api_error(c, 400, "malformed", "the body is empty", "body");
        return 0;
    }
    return 1;
}

/* ---- dispatch ----------------------------------------------------------------- */

void custos_api_handle(custos_http_exchange *x, void *wctx)
{
    api_worker *w = wctx;
    api_call c;
    const api_route *r;
    const char *path = custos_http_path(x);
    int known;
    unsigned retry = 0;

    memset(&c, 0, sizeof(c));
    c.x = x;
    c.w = w;
    c.e = w->e;
    c.method = custos_http_method(x);
    c.body = custos_http_body(x, &c.body_len);
    snprintf(c.actor_from, sizeof(c.actor_from), "%s", custos_http_client_addr(x));
    c.actor.from = c.actor_from;
    c.actor.who = c.actor_who;
    custos_error_clear();

    if (custos_api_is_static_path(path)) {
        custos_api_static(x, w->api);
        return;
    }
    r = route_find(&c, path, &known);
    if (r == NULL) {
        if (known)
            api_error(&c, 405, "method_not_allowed", "this method is not allowed here", NULL);
        else
            api_error(&c, 404, "not_found", "no such endpoint", NULL);
        return;
    }
    if (r->roles == 0) {
        snprintf(c.actor_who, sizeof(c.actor_who), "device");
        if (!custos_ratelimit_take(w->api->device_addr, c.actor_from, custos_api_now_s(), &retry)) {
            api_rate_limited(&c, retry);
            return;
        }
    } else if (r->roles == API_PUBLIC) {
        snprintf(c.actor_who, sizeof(c.actor_who), "anonymous");
    } else if (r->roles == API_GATEWAY) {
        if (!api_gateway_authorize(&c))
            return;
    } else if (!authorize(&c, r)) {
        return;
    }
    if (!body_ok(&c, r))
        return;
    r->fn(&c);
}

/* ---- expiry sweep --------------------------------------------------------------- */

#define SWEEP_INTERVAL_S 30

static void sweep_once(custos_engine *e)
{
    size_t n = 0;
    json_t *f;
    if (custos_engine_expire(&n, e) != CUSTOS_OK) {
        f = json_pack("{s:s}", "message", custos_error_last()->message);
        custos_log("error", "expiry_sweep_failed", f);
        json_decref(f);
        custos_error_clear();
        return;
    }
    if (n > 0) {
        f = json_pack("{s:I}", "expired", (json_int_t)n);
        custos_log("info", "expiry_sweep", f);
        json_decref(f);
    }
    /* Sessions over for more than a day: refused anyway, no need to keep them. */
    n = 0;
    if (custos_engine_sessions_purge(&n, e) != CUSTOS_OK) {
        f = json_pack("{s:s}", "message", custos_error_last()->message);
        custos_log("error", "session_purge_failed", f);
        json_decref(f);
        custos_error_clear();
    } else if (n > 0) {
        f = json_pack("{s:I}", "sessions_purged", (json_int_t)n);
        custos_log("info", "session_purge", f);
        json_decref(f);
    }
}

/* A request whose signer expired while it waited can no longer be approved:
 * mark it expired so the Devices page and the counts say so; and drop
 * sessions long over. At start and every SWEEP_INTERVAL_S seconds, on its own
 * engine (store connection). */
static void *sweep_main(void *arg)
{
    custos_api *api = arg;
    struct timespec until;

    pthread_mutex_lock(&api->sweep_lock);
    while (!api->sweep_stop) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SWEEP_INTERVAL_S;
        if (pthread_cond_timedwait(&api->sweep_cond, &api->sweep_lock, &until) == 0 &&
            api->sweep_stop)
            break;
        if (api->sweep_stop)
            break;
        pthread_mutex_unlock(&api->sweep_lock);
        sweep_once(api->sweep_engine);
        pthread_mutex_lock(&api->sweep_lock);
    }
    pthread_mutex_unlock(&api->sweep_lock);
    return NULL;
}

static custos_err sweep_start(custos_api *api)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_engine_open_shared(&api->sweep_engine, api->parent));
    sweep_once(api->sweep_engine);
    CUSTOS_ENSURE(pthread_mutex_init(&api->sweep_lock, NULL) == 0 &&
                      pthread_cond_init(&api->sweep_cond, NULL) == 0,
                  CUSTOS_ERR_INTERNAL, "api", "cannot make a lock");
    CUSTOS_ENSURE(pthread_create(&api->sweep_thread, NULL, sweep_main, api) == 0,
                  CUSTOS_ERR_INTERNAL, "api", "cannot start the expiry sweep");
    api->sweep_started = 1;
    ret = CUSTOS_OK;
out:
    return ret;
}

static void sweep_stop(custos_api *api)
{
    if (api->sweep_started) {
        pthread_mutex_lock(&api->sweep_lock);
        api->sweep_stop = 1;
        pthread_cond_signal(&api->sweep_cond);
        pthread_mutex_unlock(&api->sweep_lock);
        pthread_join(api->sweep_thread, NULL);
        pthread_mutex_destroy(&api->sweep_lock);
        pthread_cond_destroy(&api->sweep_cond);
        api->sweep_started = 0;
    }
    custos_engine_free(api->sweep_engine);
    api->sweep_engine = NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

custos_err custos_api_new(custos_api **out, const custos_api_config *cfg)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_api *api = NULL;

    CUSTOS_ENSURE(out != NULL && cfg != NULL && cfg->data_dir != NULL, CUSTOS_ERR_ARG, "data",
                  "no data directory");
    *out = NULL;
    api = calloc(1, sizeof(*api));
    CUSTOS_ENSURE(api != NULL, CUSTOS_ERR_NOMEM, "api", "out of memory");
    api->cfg = *cfg;
    CUSTOS_ENSURE(strlen(cfg->data_dir) < sizeof(api->data_dir), CUSTOS_ERR_TOO_LARGE, "data",
                  "data directory path too long");
    snprintf(api->data_dir, sizeof(api->data_dir), "%s", cfg->data_dir);
    api->cfg.data_dir = api->data_dir;
    CUSTOS_GUARD(custos_engine_open(&api->parent, api->data_dir));
    CUSTOS_GUARD(
        custos_ratelimit_new(&api->device_addr, cfg->device_rate, cfg->device_burst, 100000));
    CUSTOS_GUARD(custos_ratelimit_new(&api->device_key, cfg->device_rate / 4.0 + 0.5,
                                      cfg->device_burst / 4.0 + 4.0, 100000));
    CUSTOS_GUARD(custos_ratelimit_new(&api->login_addr, cfg->login_rate * 5.0, 10.0, 10000));
    CUSTOS_GUARD(custos_ratelimit_new(&api->login_user, cfg->login_rate, 5.0, 10000));
    CUSTOS_GUARD(
        custos_ratelimit_new(&api->gateway_rl, cfg->device_rate, cfg->device_burst, 10000));
    CUSTOS_GUARD(sweep_start(api));
    *out = api;
    api = NULL;
    ret = CUSTOS_OK;
out:
    custos_api_free(api);
    return ret;
}

void custos_api_free(custos_api *api)
{
    if (api == NULL)
        return;
    sweep_stop(api);
    custos_ratelimit_free(api->device_addr);
    custos_ratelimit_free(api->device_key);
    custos_ratelimit_free(api->login_addr);
    custos_ratelimit_free(api->login_user);
    custos_ratelimit_free(api->gateway_rl);
    custos_engine_free(api->parent);
    free(api);
}

custos_err custos_api_ssl_ctx(SSL_CTX **out, custos_api *api)
{
    return custos_engine_ssl_ctx(out, api->parent);
}

void *custos_api_worker_new(unsigned index, void *app)
{
    custos_api *api = app;
    api_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->api = api;
    w->index = index;
    if (custos_engine_open_shared(&w->e, api->parent) != CUSTOS_OK) {
        json_t *f = json_pack("{s:s}", "message", custos_error_last()->message);
        custos_log("error", "worker_open_failed", f);
        json_decref(f);
        free(w);
        return NULL;
    }
    return w;
}

void custos_api_worker_free(void *wctx)
{
    api_worker *w = wctx;
    if (w == NULL)
        return;
    custos_engine_free(w->e);
    free(w);
}
