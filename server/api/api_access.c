/* The operator API's access and accountability endpoints (docs/api.md):
 * sessions, users, API tokens and the audit trail. The route table that
 * names their roles is in api_operator.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api_int.h"
#include "internal/util.h"

/* ---- sessions ----------------------------------------------------------------- */

void api_session_create(api_call *c)
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

void api_session_show(api_call *c)
{
    char expires[21];
    json_t *j;
    custos_time_format(expires, c->who.expires);
    j = json_pack("{s:s, s:s, s:s, s:s}", "username", c->who.username, "role",
                  custos_role_name(c->who.role), "kind", c->who.kind, "expires", expires);
    /* A console tab that signed in elsewhere (another tab, a reload) reads the
     * session's CSRF value here: only a caller holding the cookie gets it,
     * and the same-origin policy keeps other sites from reading it. */
    if (j != NULL && strcmp(c->who.kind, "session") == 0 &&
        custos_http_header(c->x, "Authorization") == NULL && c->who.csrf[0] != '\0')
        json_object_set_new(j, "csrf", json_string(c->who.csrf));
    api_json(c, 200, j);
}

void api_session_delete(api_call *c)
{
    char token[256];
    custos_err err;

    if (strcmp(c->who.kind, "session") != 0) {
        api_error(c, 400, "malformed",
                  "an API token is not a session: revoke it with DELETE /api/v1/tokens/{id}", NULL);
        return;
    }
    if (!api_call_secret(c, token, sizeof(token))) {
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

/* ---- users and tokens ---------------------------------------------------------- */

static int user_item(const custos_user_info *u, void *ctx)
{
    return api_push_json(ctx, json_pack("{s:s, s:s, s:o, s:b}", "username", u->username, "role",
                                        custos_role_name(u->role), "created",
                                        api_time_json(u->created), "disabled", u->disabled != 0));
}

void api_users_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err =
        items != NULL ? custos_engine_user_list(c->e, user_item, items) : CUSTOS_ERR_NOMEM;
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_page(items, NULL));
}

void api_user_create(api_call *c)
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
    return api_push_json(
        ctx, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "token_id", t->token_id, "name", t->name,
                       "username", t->username, "created", api_time_json(t->created), "expires",
                       api_time_json(t->expires), "revoked", api_time_json(t->revoked)));
}

void api_tokens_list(api_call *c)
{
    json_t *items = json_array();
    custos_err err =
        items != NULL ? custos_engine_token_list(c->e, token_item, items) : CUSTOS_ERR_NOMEM;
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_page(items, NULL));
}

void api_token_create(api_call *c)
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

void api_token_revoke(api_call *c)
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
    return api_push_json(ctx, j);
}

static int query_time(api_call *c, const char *name, int64_t *out)
{
    const char *v = api_query_nonempty(c, name);
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

void api_audit_list(api_call *c)
{
    custos_audit_filter f = CUSTOS_AUDIT_FILTER_INIT;
    json_t *items = json_array();
    char next[CUSTOS_CURSOR_MAX];
    custos_err err;

    next[0] = '\0';
    if (items == NULL || !api_query_limit(c, &f.limit) || !query_time(c, "since", &f.since) ||
        !query_time(c, "until", &f.until)) {
        json_decref(items);
        return;
    }
    f.actor = api_query_nonempty(c, "actor");
    f.action = api_query_nonempty(c, "action");
    f.object = api_query_nonempty(c, "object");
    f.cursor = api_query_nonempty(c, "cursor");
    err = custos_engine_audit_list(c->e, &f, audit_item, items, next, sizeof(next));
    if (err != CUSTOS_OK) {
        json_decref(items);
        api_fail(c, err);
        return;
    }
    api_json(c, 200, api_page(items, next));
}

void api_audit_verify(api_call *c)
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
