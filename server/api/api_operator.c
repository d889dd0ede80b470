/* The operator API (docs/api.md "Operator API"): sessions, systems,
 * policies, packages, mock device files, requests, users, tokens, audit.
 * Roles are checked by the router (api.c) from the table at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api_int.h"
#include "internal/util.h"

#define CT_JSON "application/json"
#define CT_MCPR "application/vnd.custos.mcpr"
#define CT_MCCP "application/vnd.custos.mccp"
#define CT_MCPP "application/vnd.custos.mcpp"

/* ---- small helpers ------------------------------------------------------------ */

/* ?limit=: 1..CUSTOS_LIST_MAX, default 50; answers 400 and returns 0 when bad. */
static int query_limit(api_call *c, size_t *out)
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

static const char *query_nonempty(api_call *c, const char *name)
{
    const char *v = custos_http_query(c->x, name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static json_t *page(json_t *items, const char *next)
{
    json_t *o = json_pack("{s:o}", "items", items);
    if (o != NULL && next != NULL && next[0] != '\0')
        json_object_set_new(o, "next_cursor", json_string(next));
    return o;
}

static int push_json(json_t *arr, json_t *item)
{
    if (item == NULL)
        return -1;
    return json_array_append_new(arr, item) == 0 ? 0 : -1;
}

static json_t *time_json(int64_t t)
{
    char buf[21];
    if (t == 0)
        return json_null();
    custos_time_format(buf, t);
    return json_string(buf);
}

/* The secret bearer token or session cookie the call came with. */
static int call_secret(api_call *c, char *out, size_t cap)
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

/* ---- sessions ----------------------------------------------------------------- */

static void session_create(api_call *c)
{
    json_t *b = api_body_json(c), *out = NULL;
    const char *user, *pw, *kind;
    char token[CUSTOS_SECRET_TEXT_MAX], cookie[CUSTOS_SECRET_TEXT_MAX + 128], expires[21];
    custos_principal p;
    unsigned retry = 0;
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"username", "password", "kind", NULL})) {
        json_decref(b);
        return;
    }
    user = api_str(c, b, "username", 1, &bad);
    pw = api_str(c, b, "password", 1, &bad);
    kind = api_str(c, b, "kind", 0, &bad);
    if (bad)
        goto out;
    if (kind != NULL && strcmp(kind, "bearer") != 0 && strcmp(kind, "cookie") != 0) {
        api_error(c, 400, "malformed", "kind must be \"cookie\" or \"bearer\"", "kind");
        goto out;
    }
    if (!custos_ratelimit_take(c->w->api->login_addr, c->actor_from, custos_api_now_s(), &retry) ||
        !custos_ratelimit_take(c->w->api->login_user, user, custos_api_now_s(), &retry)) {
        api_rate_limited(c, retry);
        goto out;
    }
    err = custos_engine_login(&p, token, sizeof(token), c->e, user, pw, c->actor_from, 0);
    if (err != CUSTOS_OK) {
        if (err == CUSTOS_ERR_AUTH)
            api_error(c, 401, "unauthenticated", "wrong username or password", NULL);
        else
            api_fail(c, err);
        goto out;
    }
    custos_http_log_field(c->x, "actor", p.username);
    custos_time_format(expires, p.expires);
    if (kind != NULL && strcmp(kind, "bearer") == 0) {
        out = json_pack("{s:s, s:s, s:s, s:s}", "username", p.username, "role",
                        custos_role_name(p.role), "token", token, "expires", expires);
    } else {
        snprintf(cookie, sizeof(cookie),
                 "custos_session=%s; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=%lld",
                 token, (long long)CUSTOS_SESSION_TTL);
        custos_http_set_header(c->x, "Set-Cookie", cookie);
        OPENSSL_cleanse(cookie, sizeof(cookie));
        out = json_pack("{s:s, s:s, s:s, s:s}", "username", p.username, "role",
                        custos_role_name(p.role), "csrf", p.csrf, "expires", expires);
    }
    OPENSSL_cleanse(token, sizeof(token));
    api_json(c, 200, out);
out:
    json_decref(b);
}

static void session_show(api_call *c)
{
    char expires[21];
    custos_time_format(expires, c->who.expires);
    api_json(c, 200,
             json_pack("{s:s, s:s, s:s, s:s}", "username", c->who.username, "role",
                       custos_role_name(c->who.role), "kind", c->who.kind, "expires", expires));
}

static void session_delete(api_call *c)
{
    char token[256];
    custos_err err;

    if (strcmp(c->who.kind, "session") != 0) {
        api_error(c, 400, "malformed",
                  "an API token is not a session: revoke it with DELETE /api/v1/tokens/{id}", NULL);
        return;
    }
    if (!call_secret(c, token, sizeof(token))) {
        api_error(c, 401, "unauthenticated", "no session", NULL);
        return;
    }
    err = custos_engine_session_end(c->e, token, c->actor_from);
    OPENSSL_cleanse(token, sizeof(token));
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    custos_http_set_header(c->x, "Set-Cookie",
                           "custos_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    custos_http_reply(c->x, 204, NULL, NULL, 0);
}

/* ---- systems, policies -------------------------------------------------------- */

static int system_item(const char *name, const char *json, void *ctx)
{
    (void)name;
    return push_json(ctx, json_loads(json, JSON_REJECT_DUPLICATES, NULL));
}

static void systems_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err;
    if (items == NULL) {
        api_error(c, 500, "out_of_memory", "out of memory", NULL);
        return;
    }
    err = custos_engine_system_list(c->e, system_item, items);
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, page(items, NULL));
}

static void system_answer(api_call *c, int status, const char *name)
{
    char *json = NULL;
    custos_err err = custos_engine_system_get(&json, c->e, name);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, status, json_loads(json, JSON_REJECT_DUPLICATES, NULL));
    free(json);
}

static void system_create(api_call *c)
{
    json_t *b = api_body_json(c);
    const char *name;
    char namebuf[CUSTOS_MAX_NAME_LEN + 1];
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    name = api_str(c, b, "name", 1, &bad);
    if (bad) {
        json_decref(b);
        return;
    }
    snprintf(namebuf, sizeof(namebuf), "%s", name);
    json_decref(b);
    err = custos_engine_system_create(c->e, c->body, c->body_len, &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    system_answer(c, 201, namebuf);
}

static void system_show(api_call *c)
{
    system_answer(c, 200, c->params[0]);
}

static void policy_show(api_call *c)
{
    json_t *out = NULL;
    custos_err err = custos_engine_policy_get(&out, c->e, c->params[0], 1);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200, out);
}

/* A JSON array of strings as a C array (borrowed from @p arr); 0 after answering. */
static int string_list(api_call *c, const json_t *arr, const char *key, const char ***out,
                       size_t *n)
{
    size_t i;
    char msg[120];
    *out = NULL;
    *n = 0;
    if (arr == NULL)
        return 1;
    if (!json_is_array(arr) || json_array_size(arr) > CUSTOS_POLICY_MAX_SERIALS) {
        snprintf(msg, sizeof(msg), "\"%s\" must be an array of at most %u serials", key,
                 (unsigned)CUSTOS_POLICY_MAX_SERIALS);
        api_error(c, json_is_array(arr) ? 413 : 400, json_is_array(arr) ? "too_large" : "malformed",
                  msg, key);
        return 0;
    }
    *out = calloc(json_array_size(arr) + 1, sizeof(char *));
    if (*out == NULL) {
        api_error(c, 500, "out_of_memory", "out of memory", NULL);
        return 0;
    }
    for (i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_string(v)) {
            snprintf(msg, sizeof(msg), "\"%s\"[%zu] must be a string", key, i);
            api_error(c, 400, "malformed", msg, key);
            free(*out);
            *out = NULL;
            return 0;
        }
        (*out)[i] = json_string_value(v);
    }
    *n = json_array_size(arr);
    return 1;
}

static void policy_set(api_call *c)
{
    json_t *b = api_body_json(c), *out = NULL;
    const char *mode_name, **allow = NULL, **deny = NULL;
    const json_t *ja, *jd;
    size_t n_allow = 0, n_deny = 0;
    custos_policy_mode mode;
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"mode", "allow", "deny", NULL})) {
        json_decref(b);
        return;
    }
    mode_name = api_str(c, b, "mode", 1, &bad);
    if (bad)
        goto out;
    mode = custos_policy_mode_from_name(mode_name);
    if (mode == 0) {
        api_error(c, 400, "malformed", "mode must be manual, package or allow_list", "mode");
        goto out;
    }
    ja = json_object_get(b, "allow");
    jd = json_object_get(b, "deny");
    if (!string_list(c, ja, "allow", &allow, &n_allow) ||
        !string_list(c, jd, "deny", &deny, &n_deny))
        goto out;
    err = custos_engine_policy_set(c->e, c->params[0], mode, ja != NULL ? allow : NULL, n_allow,
                                   jd != NULL ? deny : NULL, n_deny, &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        goto out;
    }
    err = custos_engine_policy_get(&out, c->e, c->params[0], 0);
    if (err != CUSTOS_OK)
        api_fail(c, err);
    else
        api_json(c, 200, out);
out:
    free(allow);
    free(deny);
    json_decref(b);
}

/* ---- packages ----------------------------------------------------------------- */

static void package_create(api_call *c)
{
    json_t *b = api_body_json(c), *out = NULL;
    const json_t *jd;
    const char *pass;
    char gen[64], expires[21];
    uint8_t rnd[18], *pkg = NULL;
    size_t pkg_len = 0;
    custos_package_info info;
    json_int_t days = 365;
    int bad = 0, generated = 0;
    custos_err err;
    char *b64 = NULL;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"valid_days", "passphrase", NULL})) {
        json_decref(b);
        return;
    }
    jd = json_object_get(b, "valid_days");
    if (jd != NULL) {
        if (!json_is_integer(jd) || json_integer_value(jd) < 1 ||
            json_integer_value(jd) > CUSTOS_MAX_VALID_DAYS) {
            api_error(c, 400, "malformed", "valid_days must be a whole number from 1 to 36500",
                      "valid_days");
            goto out;
        }
        days = json_integer_value(jd);
    }
    pass = api_str(c, b, "passphrase", 0, &bad);
    if (bad)
        goto out;
    if (pass == NULL) {
        /* 144 random bits as 24 characters a technician can type. */
        err = custos_random(NULL, rnd, sizeof(rnd));
        if (err == CUSTOS_OK)
            err = custos_b64_encode(&b64, rnd, sizeof(rnd));
        OPENSSL_cleanse(rnd, sizeof(rnd));
        if (err != CUSTOS_OK) {
            api_fail(c, err);
            goto out;
        }
        for (size_t i = 0; b64[i] != '\0'; i++)
            b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
        snprintf(gen, sizeof(gen), "%s", b64);
        OPENSSL_cleanse(b64, strlen(b64));
        pass = gen;
        generated = 1;
    } else if (pass[0] == '\0' || strlen(pass) > 1024) {
        api_error(c, 400, "malformed", "passphrase must be 1 to 1024 bytes", "passphrase");
        goto out;
    }
    err = custos_engine_package_create_ex(&info, &pkg, &pkg_len, c->e, c->params[0], pass,
                                          strlen(pass), (unsigned)days, &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        goto out;
    }
    custos_time_format(expires, info.expires);
    out = json_pack("{s:s, s:s, s:s, s:s}", "package_id", info.package_id, "system", info.system,
                    "expires", expires, "download", "GET /api/v1/packages/{package_id}/file");
    if (out != NULL) {
        json_object_set_new(out, "download",
                            json_sprintf("/api/v1/packages/%s/file", info.package_id));
        if (generated)
            json_object_set_new(out, "passphrase", json_string(gen));
    }
    api_json(c, 201, out);
out:
    OPENSSL_cleanse(gen, sizeof(gen));
    free(b64);
    free(pkg);
    json_decref(b);
}

static int package_item(const custos_package_info *p, void *ctx)
{
    return push_json(ctx,
                     json_pack("{s:s, s:s, s:o, s:o, s:b}", "package_id", p->package_id, "system",
                               p->system, "created", time_json(p->created), "expires",
                               time_json(p->expires), "downloadable", p->has_file != 0));
}

static void packages_list(api_call *c)
{
    json_t *items = json_array();
    char next[CUSTOS_CURSOR_MAX];
    size_t limit;
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !query_limit(c, &limit)) {
        json_decref(items);
        return;
    }
    err = custos_engine_package_list(c->e, query_nonempty(c, "system"), limit,
                                     query_nonempty(c, "cursor"), package_item, items, next,
                                     sizeof(next));
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, page(items, next));
}

static void package_file(api_call *c)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char name[API_MAX_PARAM_LEN + 8];
    custos_err err = custos_engine_package_get_file(&data, &len, c->e, c->params[0]);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    snprintf(name, sizeof(name), "%s.mcpp", c->params[0]);
    api_file(c, CT_MCPP, name, data, len);
    free(data);
}

/* ---- mock device files ---------------------------------------------------------- */

static void mock_create(api_call *c)
{
    json_t *b = api_body_json(c);
    const char *serial;
    uint8_t *tar = NULL;
    size_t tar_len = 0;
    char name[CUSTOS_MAX_SERIAL_LEN + 16];
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"serial", NULL})) {
        json_decref(b);
        return;
    }
    serial = api_str(c, b, "serial", 1, &bad);
    if (bad)
        goto out;
    err = custos_api_mock_tar(&tar, &tar_len, c, c->params[0], c->params[1], serial);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        goto out;
    }
    snprintf(name, sizeof(name), "mock-%s.tar", serial);
    api_file(c, "application/x-tar", name, tar, tar_len);
out:
    free(tar);
    json_decref(b);
}

/* ---- requests ------------------------------------------------------------------- */

static int request_item(const custos_request_summary *r, void *ctx)
{
    return push_json(ctx, api_summary_json(r));
}

static json_t *counts_json(const size_t counts[8])
{
    json_t *o = json_object();
    int s;
    for (s = CUSTOS_STATE_PENDING; o != NULL && s <= CUSTOS_STATE_REVOKED; s++)
        json_object_set_new(o, custos_state_name((custos_state)s),
                            json_integer((json_int_t)counts[s]));
    if (o != NULL)
        json_object_set_new(o, "total", json_integer((json_int_t)counts[0]));
    return o;
}

static void requests_list(api_call *c)
{
    custos_request_filter f = CUSTOS_REQUEST_FILTER_INIT;
    json_t *items = json_array(), *out;
    char next[CUSTOS_CURSOR_MAX];
    const char *state = query_nonempty(c, "state");
    size_t counts[8] = {0};
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !query_limit(c, &f.limit)) {
        json_decref(items);
        return;
    }
    if (state != NULL && (f.state = custos_state_from_name(state)) == 0) {
        json_decref(items);
        api_error(c, 400, "malformed",
                  "state must be pending, approved, certified, provisioned, rejected, expired or "
                  "revoked",
                  "state");
        return;
    }
    f.system = query_nonempty(c, "system");
    f.component = query_nonempty(c, "component");
    f.q = query_nonempty(c, "q");
    f.cursor = query_nonempty(c, "cursor");
    err = custos_engine_request_query(c->e, &f, request_item, items, next, sizeof(next));
    if (err == CUSTOS_OK)
        err = custos_engine_request_counts(counts, c->e, f.system, f.component);
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    out = page(items, next);
    if (out != NULL)
        json_object_set_new(out, "counts", counts_json(counts));
    api_json(c, 200, out);
}

static void request_upload(api_call *c)
{
    custos_request_summary s;
    int created = 0;
    custos_err err =
        custos_engine_request_submit(&s, &created, c->e, c->body, c->body_len, "upload", &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    custos_http_log_field(c->x, "request", s.request_id);
    api_json(c, created ? 201 : 200, api_summary_json(&s));
}

static void request_show(api_call *c)
{
    json_t *out = NULL;
    custos_err err = custos_engine_request_detail(&out, c->e, c->params[0]);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200, out);
}

static void request_approve(api_call *c)
{
    custos_request_summary s;
    custos_err err = custos_engine_request_approve(&s, c->e, c->params[0], &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_summary_json(&s));
}

static void request_reject(api_call *c)
{
    custos_request_summary s;
    json_t *b = api_body_json(c);
    const char *reason;
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"reason", NULL})) {
        json_decref(b);
        return;
    }
    reason = api_str(c, b, "reason", 1, &bad);
    if (!bad) {
        err = custos_engine_request_reject(&s, c->e, c->params[0], reason, &c->actor);
        if (err != CUSTOS_OK)
            api_fail(c, err);
        else
            api_json(c, 200, api_summary_json(&s));
    }
    json_decref(b);
}

static void request_complete(api_call *c)
{
    custos_request_summary s;
    custos_err err = custos_engine_device_complete(&s, c->e, c->params[0], &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_summary_json(&s));
}

static void request_profile(api_call *c)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char name[API_MAX_PARAM_LEN + 8];
    custos_err err = custos_engine_profile_export(&data, &len, c->e, c->params[0]);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    snprintf(name, sizeof(name), "%s.mccp", c->params[0]);
    api_file(c, CT_MCCP, name, data, len);
    free(data);
}

/* ---- users and tokens ---------------------------------------------------------- */

static int user_item(const custos_user_info *u, void *ctx)
{
    return push_json(ctx, json_pack("{s:s, s:s, s:o, s:b}", "username", u->username, "role",
                                    custos_role_name(u->role), "created", time_json(u->created),
                                    "disabled", u->disabled != 0));
}

static void users_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err =
        items != NULL ? custos_engine_user_list(c->e, user_item, items) : CUSTOS_ERR_NOMEM;
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, page(items, NULL));
}

static void user_create(api_call *c)
{
    json_t *b = api_body_json(c), *out;
    const char *user, *role_name, *pw;
    char gen[CUSTOS_PASSWORD_GEN_LEN + 1];
    custos_role role;
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"username", "role", "password", NULL})) {
        json_decref(b);
        return;
    }
    user = api_str(c, b, "username", 1, &bad);
    role_name = api_str(c, b, "role", 1, &bad);
    pw = api_str(c, b, "password", 0, &bad);
    if (bad)
        goto out;
    role = custos_role_from_name(role_name);
    if (role == 0) {
        api_error(c, 400, "malformed", "role must be admin, approver, technician or auditor",
                  "role");
        goto out;
    }
    err = custos_engine_user_create(c->e, user, role, pw, gen, sizeof(gen), &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        goto out;
    }
    out = json_pack("{s:s, s:s}", "username", user, "role", custos_role_name(role));
    if (out != NULL && pw == NULL)
        json_object_set_new(out, "password", json_string(gen));
    api_json(c, 201, out);
out:
    OPENSSL_cleanse(gen, sizeof(gen));
    json_decref(b);
}

static int token_item(const custos_token_info *t, void *ctx)
{
    return push_json(ctx,
                     json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "token_id", t->token_id, "name",
                               t->name, "username", t->username, "created", time_json(t->created),
                               "expires", time_json(t->expires), "revoked", time_json(t->revoked)));
}

static void tokens_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err =
        items != NULL ? custos_engine_token_list(c->e, token_item, items) : CUSTOS_ERR_NOMEM;
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, page(items, NULL));
}

static void token_create(api_call *c)
{
    json_t *b = api_body_json(c);
    const json_t *jd;
    const char *name, *user;
    char id[CUSTOS_ID_LEN + 1], token[CUSTOS_SECRET_TEXT_MAX];
    json_int_t days = 90;
    int bad = 0;
    custos_err err;

    if (b == NULL)
        return;
    if (!api_only_keys(c, b, (const char *const[]){"name", "username", "valid_days", NULL})) {
        json_decref(b);
        return;
    }
    name = api_str(c, b, "name", 1, &bad);
    user = api_str(c, b, "username", 1, &bad);
    if (bad)
        goto out;
    jd = json_object_get(b, "valid_days");
    if (jd != NULL) {
        if (!json_is_integer(jd) || json_integer_value(jd) < 1 ||
            json_integer_value(jd) > CUSTOS_TOKEN_MAX_DAYS) {
            api_error(c, 400, "malformed", "valid_days must be a whole number from 1 to 3650",
                      "valid_days");
            goto out;
        }
        days = json_integer_value(jd);
    }
    err = custos_engine_token_create(id, token, sizeof(token), c->e, user, name, (unsigned)days,
                                     &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        goto out;
    }
    api_json(c, 201,
             json_pack("{s:s, s:s, s:s, s:s}", "token_id", id, "name", name, "username", user,
                       "token", token));
    OPENSSL_cleanse(token, sizeof(token));
out:
    json_decref(b);
}

static void token_revoke(api_call *c)
{
    custos_err err = custos_engine_token_revoke(c->e, c->params[0], &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    custos_http_reply(c->x, 204, NULL, NULL, 0);
}

/* ---- audit ---------------------------------------------------------------------- */

static int audit_item(const custos_audit_entry *a, void *ctx)
{
    json_t *j = NULL;
    if (custos_audit_entry_json(&j, a) != CUSTOS_OK)
        return -1;
    return push_json(ctx, j);
}

static int query_time(api_call *c, const char *name, int64_t *out)
{
    const char *v = query_nonempty(c, name);
    char msg[120];
    *out = 0;
    if (v == NULL)
        return 1;
    if (custos_time_parse(out, v) != CUSTOS_OK) {
        snprintf(msg, sizeof(msg), "%s must be an RFC 3339 UTC time (2026-11-29T15:00:00Z)", name);
        api_error(c, 400, "malformed", msg, name);
        return 0;
    }
    return 1;
}

static void audit_list(api_call *c)
{
    custos_audit_filter f = CUSTOS_AUDIT_FILTER_INIT;
    json_t *items = json_array();
    char next[CUSTOS_CURSOR_MAX];
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !query_limit(c, &f.limit) || !query_time(c, "since", &f.since) ||
        !query_time(c, "until", &f.until)) {
        json_decref(items);
        return;
    }
    f.actor = query_nonempty(c, "actor");
    f.action = query_nonempty(c, "action");
    f.object = query_nonempty(c, "object");
    f.cursor = query_nonempty(c, "cursor");
    err = custos_engine_audit_list(c->e, &f, audit_item, items, next, sizeof(next));
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, page(items, next));
}

static void audit_verify(api_call *c)
{
    size_t n = 0;
    custos_err err = custos_engine_audit_verify(&n, c->e);
    if (err != CUSTOS_OK) {
        const custos_error *le = custos_error_last();
        api_json(c, 409,
                 json_pack("{s:b, s:I, s:{s:s, s:s, s:s}}", "ok", 0, "entries", (json_int_t)n,
                           "error", "code", custos_err_code(err), "message", le->message, "field",
                           le->field));
        return;
    }
    api_json(c, 200, json_pack("{s:b, s:I}", "ok", 1, "entries", (json_int_t)n));
}

/* ---- the table ------------------------------------------------------------------ */

#define ADM API_ADMIN
#define APR (API_ADMIN | API_APPROVER)
#define TEC (API_ADMIN | API_TECHNICIAN)

const api_route custos_api_operator_routes[] = {
    {"POST", "/api/v1/session", API_PUBLIC, CT_JSON, API_MAX_JSON, session_create},
    {"GET", "/api/v1/session", API_ANY, NULL, 0, session_show},
    {"DELETE", "/api/v1/session", API_ANY, NULL, 0, session_delete},

    {"GET", "/api/v1/systems", API_ANY, NULL, 0, systems_list},
    {"POST", "/api/v1/systems", ADM, CT_JSON, CUSTOS_MAX_SYSTEM_JSON_SIZE, system_create},
    {"GET", "/api/v1/systems/{}", API_ANY, NULL, 0, system_show},
    {"GET", "/api/v1/systems/{}/policy", API_ANY, NULL, 0, policy_show},
    {"PUT", "/api/v1/systems/{}/policy", ADM, CT_JSON, API_MAX_POLICY, policy_set},
    {"POST", "/api/v1/systems/{}/packages", ADM, CT_JSON, API_MAX_JSON, package_create},
    {"POST", "/api/v1/systems/{}/components/{}/mock", TEC, CT_JSON, API_MAX_JSON, mock_create},

    {"GET", "/api/v1/packages", ADM, NULL, 0, packages_list},
    {"GET", "/api/v1/packages/{}/file", ADM, NULL, 0, package_file},

    {"GET", "/api/v1/requests", API_ANY, NULL, 0, requests_list},
    {"POST", "/api/v1/requests", TEC, CT_MCPR, CUSTOS_MAX_REQUEST_SIZE, request_upload},
    {"GET", "/api/v1/requests/{}", API_ANY, NULL, 0, request_show},
    {"POST", "/api/v1/requests/{}/approve", APR, NULL, 0, request_approve},
    {"POST", "/api/v1/requests/{}/reject", APR, CT_JSON, API_MAX_JSON, request_reject},
    {"POST", "/api/v1/requests/{}/complete", TEC, NULL, 0, request_complete},
    {"GET", "/api/v1/requests/{}/profile", TEC, NULL, 0, request_profile},

    {"GET", "/api/v1/users", ADM, NULL, 0, users_list},
    {"POST", "/api/v1/users", ADM, CT_JSON, API_MAX_JSON, user_create},
    {"GET", "/api/v1/tokens", ADM, NULL, 0, tokens_list},
    {"POST", "/api/v1/tokens", ADM, CT_JSON, API_MAX_JSON, token_create},
    {"DELETE", "/api/v1/tokens/{}", ADM, NULL, 0, token_revoke},

    {"GET", "/api/v1/audit", API_ANY, NULL, 0, audit_list},
    {"GET", "/api/v1/audit/verify", API_ANY, NULL, 0, audit_verify},
};
const size_t custos_api_operator_route_count =
    sizeof(custos_api_operator_routes) / sizeof(custos_api_operator_routes[0]);
