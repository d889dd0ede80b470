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

/* ---- systems, policies -------------------------------------------------------- */

static int system_item(const char *name, const char *json, void *ctx)
{
    (void)name;
    return api_push_json(ctx, json_loads(json, JSON_REJECT_DUPLICATES, NULL));
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
    api_json(c, 200, api_page(items, NULL));
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

static void system_update(api_call *c)
{
    custos_err err = custos_engine_system_update(c->e, c->params[0], c->body, c->body_len,
                                                 &c->actor);
    if (err != CUSTOS_OK) {
        api_fail(c, err);
        return;
    }
    system_answer(c, 200, c->params[0]);
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
    return api_push_json(ctx, json_pack("{s:s, s:s, s:o, s:o, s:b}", "package_id", p->package_id,
                                        "system", p->system, "created", api_time_json(p->created),
                                        "expires", api_time_json(p->expires), "downloadable",
                                        p->has_file != 0));
}

static void packages_list(api_call *c)
{
    json_t *items = json_array();
    char next[CUSTOS_CURSOR_MAX];
    size_t limit;
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !api_query_limit(c, &limit)) {
        json_decref(items);
        return;
    }
    err = custos_engine_package_list(c->e, api_query_nonempty(c, "system"), limit,
                                     api_query_nonempty(c, "cursor"), package_item, items, next,
                                     sizeof(next));
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_page(items, next));
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
    return api_push_json(ctx, api_summary_json(r));
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
    const char *state = api_query_nonempty(c, "state");
    size_t counts[8] = {0};
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !api_query_limit(c, &f.limit)) {
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
    f.system = api_query_nonempty(c, "system");
    f.component = api_query_nonempty(c, "component");
    f.q = api_query_nonempty(c, "q");
    f.cursor = api_query_nonempty(c, "cursor");
    err = custos_engine_request_query(c->e, &f, request_item, items, next, sizeof(next));
    if (err == CUSTOS_OK)
        err = custos_engine_request_counts(counts, c->e, f.system, f.component);
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    out = api_page(items, next);
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

/* ---- the table ------------------------------------------------------------------ */

#define ADM API_ADMIN
#define APR (API_ADMIN | API_APPROVER)
#define TEC (API_ADMIN | API_TECHNICIAN)

const api_route custos_api_operator_routes[] = {
    {"POST", "/api/v1/session", API_PUBLIC, CT_JSON, API_MAX_JSON, api_session_create},
    {"GET", "/api/v1/session", API_ANY, NULL, 0, api_session_show},
    {"DELETE", "/api/v1/session", API_ANY, NULL, 0, api_session_delete},

    {"GET", "/api/v1/systems", API_ANY, NULL, 0, systems_list},
    {"POST", "/api/v1/systems", ADM, CT_JSON, CUSTOS_MAX_SYSTEM_JSON_SIZE, system_create},
    {"GET", "/api/v1/systems/{}", API_ANY, NULL, 0, system_show},
    {"PUT", "/api/v1/systems/{}", ADM, CT_JSON, CUSTOS_MAX_SYSTEM_JSON_SIZE, system_update},
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

    {"GET", "/api/v1/users", ADM, NULL, 0, api_users_list},
    {"POST", "/api/v1/users", ADM, CT_JSON, API_MAX_JSON, api_user_create},
    {"GET", "/api/v1/tokens", ADM, NULL, 0, api_tokens_list},
    {"POST", "/api/v1/tokens", ADM, CT_JSON, API_MAX_JSON, api_token_create},
    {"DELETE", "/api/v1/tokens/{}", ADM, NULL, 0, api_token_revoke},

    {"GET", "/api/v1/audit", API_ANY, NULL, 0, api_audit_list},
    {"GET", "/api/v1/audit/verify", API_ANY, NULL, 0, api_audit_verify},
};
const size_t custos_api_operator_route_count =
    sizeof(custos_api_operator_routes) / sizeof(custos_api_operator_routes[0]);
