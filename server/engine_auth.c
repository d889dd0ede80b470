/* Operators: users with scrypt-hashed passwords, sessions and API tokens
 * (stored as SHA-256 of their random secret), and roles.
 *
 * Password hashes are self-describing, "scrypt$N$r$p$salt$hash" (salt and
 * hash base64url), so the cost can be raised later without breaking stored
 * hashes. A sign-in runs scrypt whether or not the user exists, so an
 * unknown name and a wrong password cost the same and answer the same. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "engine_int.h"

#define SCRYPT_N 32768u
#define SCRYPT_R 8u
#define SCRYPT_P 1u
#define SCRYPT_MAXMEM (64u * 1024u * 1024u)
#define SALT_LEN 16
#define HASH_LEN 32
#define SECRET_LEN 32
#define TOKEN_PREFIX "cst_"
#define MAX_TTL (30 * 86400)
#define SECRET_INPUT_MAX 256 /* longest credential text worth hashing */

static const char *const ROLE_NAMES[] = {NULL, "admin", "approver", "technician", "auditor"};

const char *custos_role_name(custos_role r)
{
    return custos_engine_name_of(ROLE_NAMES, CUSTOS_ROLE_ADMIN, CUSTOS_ROLE_AUDITOR, (int)r);
}

custos_role custos_role_from_name(const char *name)
{
    return (custos_role)custos_engine_name_find(ROLE_NAMES, CUSTOS_ROLE_ADMIN, CUSTOS_ROLE_AUDITOR,
                                                name);
}

void custos_principal_who(char out[CUSTOS_USERNAME_MAX + 8], const custos_principal *p)
{
    if (strcmp(p->kind, "token") == 0)
        snprintf(out, CUSTOS_USERNAME_MAX + 8, "token:%s", p->credential_id);
    else
        snprintf(out, CUSTOS_USERNAME_MAX + 8, "user:%s", p->username);
}

static int username_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0, i;
    if (n == 0 || n > CUSTOS_USERNAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- password hashing ----------------------------------------------------- */

static custos_err scrypt(uint8_t out[HASH_LEN], const char *password, const uint8_t *salt,
                         size_t salt_len, uint64_t n, uint64_t r, uint64_t p)
{
    if (EVP_PBE_scrypt(password, strlen(password), salt, salt_len, n, r, p, SCRYPT_MAXMEM, out,
                       HASH_LEN) != 1)
        return custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "password", "scrypt failed");
    return CUSTOS_OK;
}

static custos_err password_hash(char *out, size_t cap, const char *password)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t salt[SALT_LEN], hash[HASH_LEN];
    char salt_text[32], hash_text[48];
    int n;

    CUSTOS_GUARD(custos_random(NULL, salt, sizeof(salt)));
    CUSTOS_GUARD(scrypt(hash, password, salt, sizeof(salt), SCRYPT_N, SCRYPT_R, SCRYPT_P));
    CUSTOS_GUARD(custos_engine_b64url(salt_text, sizeof(salt_text), salt, sizeof(salt)));
    CUSTOS_GUARD(custos_engine_b64url(hash_text, sizeof(hash_text), hash, sizeof(hash)));
    n = snprintf(out, cap, "scrypt$%u$%u$%u$%s$%s", SCRYPT_N, SCRYPT_R, SCRYPT_P, salt_text,
                 hash_text);
    CUSTOS_ENSURE(n > 0 && (size_t)n < cap, CUSTOS_ERR_INTERNAL, "password", "hash too long");
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(hash, sizeof(hash));
    return ret;
}

static int parse_u64(uint64_t *out, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* 1 when @p password matches @p stored; 0 otherwise (also for a malformed
 * hash, after spending the same scrypt cost). */
static custos_err password_verify(int *out, const char *stored, const char *password)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char copy[192];
    char *f[6], *save = NULL, *tok;
    uint64_t n = SCRYPT_N, r = SCRYPT_R, p = SCRYPT_P;
    uint8_t salt[SALT_LEN] = {0}, want[HASH_LEN] = {0}, got[HASH_LEN];
    size_t salt_len = sizeof(salt), want_len = 0, k = 0;
    int ok = stored != NULL && strlen(stored) < sizeof(copy);

    *out = 0;
    if (ok) {
        memcpy(copy, stored, strlen(stored) + 1);
        for (tok = strtok_r(copy, "$", &save); tok != NULL && k < 6;
             tok = strtok_r(NULL, "$", &save))
            f[k++] = tok;
        ok = k == 6 && tok == NULL && strcmp(f[0], "scrypt") == 0 &&
             parse_u64(&n, f[1], 1024, 1u << 20) && (n & (n - 1)) == 0 &&
             parse_u64(&r, f[2], 1, 32) && parse_u64(&p, f[3], 1, 16) &&
             custos_engine_b64url_decode(salt, sizeof(salt), &salt_len, f[4], "salt") == 0 &&
             custos_engine_b64url_decode(want, sizeof(want), &want_len, f[5], "hash") == 0 &&
             want_len == HASH_LEN;
        custos_error_clear();
    }
    if (!ok) { /* the same work as a real check */
        n = SCRYPT_N;
        r = SCRYPT_R;
        p = SCRYPT_P;
        salt_len = sizeof(salt);
    }
    CUSTOS_GUARD(scrypt(got, password, salt, salt_len, n, r, p));
    *out = ok && CRYPTO_memcmp(got, want, HASH_LEN) == 0;
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(got, sizeof(got));
    return ret;
}

static custos_err password_check(const char *password)
{
    size_t n = password != NULL ? strlen(password) : 0;
    if (n < CUSTOS_PASSWORD_MIN || n > CUSTOS_PASSWORD_MAX)
        return custos_error_set(CUSTOS_ERR_LIMIT, "password",
                                "a password must be %d to %d bytes long", CUSTOS_PASSWORD_MIN,
                                CUSTOS_PASSWORD_MAX);
    return CUSTOS_OK;
}

/* A random secret as base64url text into @p out (@p prefix first). */
static custos_err secret_new(char *out, size_t cap, const char *prefix, size_t n_bytes)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t raw[SECRET_LEN];
    size_t pre = strlen(prefix);
    CUSTOS_ENSURE(n_bytes <= sizeof(raw) && cap > pre, CUSTOS_ERR_ARG, "secret",
                  "buffer too small");
    memcpy(out, prefix, pre);
    CUSTOS_GUARD(custos_random(NULL, raw, n_bytes));
    CUSTOS_GUARD(custos_engine_b64url(out + pre, cap - pre, raw, n_bytes));
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    if (ret < 0 && cap > 0)
        OPENSSL_cleanse(out, cap);
    return ret;
}

/* The password to set: @p given, or a generated one written to @p out. */
static custos_err password_choose(const char **use, const char *given, char *out, size_t cap)
{
    *use = NULL;
    if (given != NULL) {
        custos_err r = password_check(given);
        if (r == CUSTOS_OK)
            *use = given;
        return r;
    }
    if (out == NULL || cap <= CUSTOS_PASSWORD_GEN_LEN)
        return custos_error_set(CUSTOS_ERR_ARG, "password",
                                "no room for the generated password (%d characters)",
                                CUSTOS_PASSWORD_GEN_LEN);
    /* 24 random bytes: 32 base64url characters, 192 bits. */
    if (secret_new(out, cap, "", 24) < 0)
        return custos_error_last()->code;
    *use = out;
    return CUSTOS_OK;
}

/* ---- users ---------------------------------------------------------------- */

custos_err custos_engine_user_create(custos_engine *e, const char *username, custos_role role,
                                     const char *password, char *out_password, size_t cap,
                                     const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_user u;
    const char *pw = NULL;
    json_t *detail = NULL;
    int in_tx = 0;

    memset(&u, 0, sizeof(u));
    if (out_password != NULL && cap > 0)
        out_password[0] = '\0';
    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_ARG, "engine", "no engine");
    CUSTOS_ENSURE(username_valid(username), CUSTOS_ERR_ARG, "username",
                  "a username is 1 to %d characters of a-z 0-9 . _ -", CUSTOS_USERNAME_MAX);
    CUSTOS_ENSURE(role >= CUSTOS_ROLE_ADMIN && role <= CUSTOS_ROLE_AUDITOR, CUSTOS_ERR_ARG, "role",
                  "unknown role");
    CUSTOS_GUARD(password_choose(&pw, password, out_password, cap));
    memcpy(u.username, username, strlen(username) + 1);
    u.role = role;
    u.created = custos_engine_now(e);
    CUSTOS_GUARD(password_hash(u.pw_hash, sizeof(u.pw_hash), pw));
    detail = json_pack("{s:s, s:b}", "role", custos_role_name(role), "password_generated",
                       password == NULL);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    ret = e->st->ops->user_insert(e->st->ctx, &u);
    CUSTOS_ENSURE(ret != CUSTOS_ERR_EXISTS, CUSTOS_ERR_EXISTS, "username",
                  "operator %s already exists", username);
    CUSTOS_GUARD(ret);
    CUSTOS_GUARD(custos_engine_audit(e, actor, "user.create", username, detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    OPENSSL_cleanse(&u, sizeof(u));
    if (ret < 0 && out_password != NULL && cap > 0)
        OPENSSL_cleanse(out_password, cap);
    return ret;
}

custos_err custos_engine_user_set_password(custos_engine *e, const char *username,
                                           const char *password, char *out_password, size_t cap,
                                           const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *pw = NULL;
    char hash[192];
    json_t *detail = NULL;
    int in_tx = 0;
    int64_t now;

    if (out_password != NULL && cap > 0)
        out_password[0] = '\0';
    CUSTOS_ENSURE(e != NULL && username_valid(username), CUSTOS_ERR_NOT_FOUND, "username",
                  "no such operator");
    CUSTOS_GUARD(password_choose(&pw, password, out_password, cap));
    CUSTOS_GUARD(password_hash(hash, sizeof(hash), pw));
    detail = json_pack("{s:b}", "password_generated", password == NULL);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    now = custos_engine_now(e);
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->user_update(e->st->ctx, username, hash, -1));
    /* A new password ends every session made with the old one. */
    CUSTOS_GUARD(e->st->ops->cred_revoke_user(e->st->ctx, username, CUSTOS_CRED_SESSION, now));
    CUSTOS_GUARD(custos_engine_audit(e, actor, "user.password", username, detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    OPENSSL_cleanse(hash, sizeof(hash));
    if (ret < 0 && out_password != NULL && cap > 0)
        OPENSSL_cleanse(out_password, cap);
    return ret;
}

custos_err custos_engine_user_set_disabled(custos_engine *e, const char *username, int disabled,
                                           const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_ENSURE(e != NULL && username_valid(username), CUSTOS_ERR_NOT_FOUND, "username",
                  "no such operator");
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->user_update(e->st->ctx, username, NULL, disabled ? 1 : 0));
    CUSTOS_GUARD(
        custos_engine_audit(e, actor, disabled ? "user.disable" : "user.enable", username, NULL));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

static void user_info(custos_user_info *out, const custos_store_user *u)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->username, u->username, sizeof(out->username));
    out->role = u->role;
    out->created = u->created;
    out->disabled = u->disabled;
}

custos_err custos_engine_user_get(custos_user_info *out, custos_engine *e, const char *username)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_user u;
    memset(&u, 0, sizeof(u));
    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "username", "missing argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(username_valid(username), CUSTOS_ERR_NOT_FOUND, "username", "no such operator");
    CUSTOS_GUARD(e->st->ops->user_get(e->st->ctx, &u, username));
    user_info(out, &u);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(&u, sizeof(u));
    return ret;
}

typedef struct user_list_ctx {
    custos_user_cb cb;
    void *ctx;
} user_list_ctx;

static int user_list_one(const custos_store_user *u, void *ctx)
{
    user_list_ctx *l = ctx;
    custos_user_info info;
    user_info(&info, u);
    return l->cb(&info, l->ctx) != 0 ? 1 : 0;
}

custos_err custos_engine_user_list(custos_engine *e, custos_user_cb cb, void *ctx)
{
    user_list_ctx l = {cb, ctx};
    if (e == NULL || cb == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "users", "missing argument");
    return e->st->ops->user_list(e->st->ctx, user_list_one, &l);
}

/* ---- sessions ------------------------------------------------------------- */

static custos_err unauthenticated(void)
{
    return custos_error_set(CUSTOS_ERR_AUTH, "credential",
                            "unknown, expired or revoked credential");
}

static void secret_hash(uint8_t out[32], const char *secret)
{
    custos_sha256(out, (const uint8_t *)secret, strlen(secret));
}

static void principal_from(custos_principal *out, const custos_store_cred *c)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->username, c->username, sizeof(out->username));
    out->role = c->role;
    snprintf(out->kind, sizeof(out->kind), "%s",
             c->kind == CUSTOS_CRED_SESSION ? "session" : "token");
    memcpy(out->credential_id, c->id, sizeof(out->credential_id));
    if (c->kind == CUSTOS_CRED_SESSION)
        memcpy(out->csrf, c->csrf, sizeof(out->csrf));
    out->expires = c->expires;
}

/* The live credential of @p kind whose secret is @p secret, else AUTH. */
static custos_err cred_check(custos_store_cred *out, custos_engine *e, const char *secret,
                             custos_store_cred_kind kind)
{
    uint8_t h[32];
    custos_err r;
    size_t n = secret != NULL ? strnlen(secret, SECRET_INPUT_MAX + 1) : 0;
    memset(out, 0, sizeof(*out));
    if (e == NULL || n == 0 || n > SECRET_INPUT_MAX)
        return unauthenticated();
    secret_hash(h, secret);
    r = e->st->ops->cred_get_by_hash(e->st->ctx, out, h);
    if (r == CUSTOS_ERR_NOT_FOUND)
        return unauthenticated();
    if (r < 0)
        return r;
    if (out->kind != kind || out->revoked != 0 || out->expires <= custos_engine_now(e) ||
        out->user_disabled) {
        memset(out, 0, sizeof(*out));
        return unauthenticated();
    }
    return CUSTOS_OK;
}

/* The principal of @p token, a live credential of @p kind. */
static custos_err principal_of(custos_principal *out, custos_engine *e, const char *token,
                               custos_store_cred_kind kind)
{
    custos_store_cred c;
    custos_err r = cred_check(&c, e, token, kind);
    if (r == CUSTOS_OK)
        principal_from(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
    return r;
}

/* Store the new credential @p c and audit @p action on @p object, in one
 * transaction. */
static custos_err cred_insert_audited(custos_engine *e, const custos_store_cred *c,
                                      const custos_actor *actor, const char *action,
                                      const char *object, json_t *detail)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->cred_insert(e->st->ctx, c));
    CUSTOS_GUARD(custos_engine_audit(e, actor, action, object, detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

static custos_err login_failed(custos_engine *e, const char *username, const char *from)
{
    const custos_actor actor = {"anonymous", from};
    json_t *detail = json_pack("{s:s}", "username", username_valid(username) ? username : "");
    custos_err r = detail != NULL
                       ? custos_engine_audit(e, &actor, "session.login_failed", "", detail)
                       : CUSTOS_ERR_NOMEM;
    json_decref(detail);
    if (r < 0)
        return r;
    return custos_error_set(CUSTOS_ERR_AUTH, "password", "wrong username or password");
}

custos_err custos_engine_login(custos_principal *out, char *out_token, size_t cap, custos_engine *e,
                               const char *username, const char *password, const char *from,
                               int64_t ttl_seconds)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_user u;
    custos_store_cred c;
    char who[CUSTOS_USERNAME_MAX + 8];
    custos_actor actor;
    json_t *detail = NULL;
    int known, match = 0;
    int64_t now;

    memset(&u, 0, sizeof(u));
    memset(&c, 0, sizeof(c));
    CUSTOS_ENSURE(out != NULL && out_token != NULL && cap >= CUSTOS_SECRET_TEXT_MAX && e != NULL,
                  CUSTOS_ERR_ARG, "login", "missing argument");
    memset(out, 0, sizeof(*out));
    out_token[0] = '\0';
    CUSTOS_ENSURE(ttl_seconds >= 0 && ttl_seconds <= MAX_TTL, CUSTOS_ERR_ARG, "ttl",
                  "a session lasts at most %d seconds", MAX_TTL);
    if (ttl_seconds == 0)
        ttl_seconds = CUSTOS_SESSION_TTL;
    if (from == NULL)
        from = "";
    known = username_valid(username) && password != NULL &&
            strlen(password) <= CUSTOS_PASSWORD_MAX &&
            e->st->ops->user_get(e->st->ctx, &u, username) == CUSTOS_OK;
    custos_error_clear();
    /* scrypt runs either way: an unknown name costs what a wrong password does. */
    CUSTOS_GUARD(password_verify(
        &match, known ? u.pw_hash : NULL,
        password != NULL && strlen(password) <= CUSTOS_PASSWORD_MAX ? password : ""));
    if (!known || !match || u.disabled) {
        ret = login_failed(e, username, from);
        goto out;
    }
    now = custos_engine_now(e);
    CUSTOS_GUARD(custos_id_new(c.id, NULL));
    c.kind = CUSTOS_CRED_SESSION;
    CUSTOS_GUARD(secret_new(out_token, cap, "", SECRET_LEN));
    secret_hash(c.hash, out_token);
    memcpy(c.username, u.username, sizeof(c.username));
    CUSTOS_GUARD(secret_new(c.csrf, sizeof(c.csrf), "", SECRET_LEN));
    snprintf(c.origin, sizeof(c.origin), "%s", from);
    c.created = now;
    c.expires = now + ttl_seconds;
    c.role = u.role;
    detail = json_pack("{s:s, s:I}", "session", c.id, "expires", (json_int_t)c.expires);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    snprintf(who, sizeof(who), "user:%s", u.username);
    actor.who = who;
    actor.from = from;
    CUSTOS_GUARD(cred_insert_audited(e, &c, &actor, "session.login", u.username, detail));
    principal_from(out, &c);
    ret = CUSTOS_OK;
out:
    json_decref(detail);
    OPENSSL_cleanse(&u, sizeof(u));
    OPENSSL_cleanse(&c, sizeof(c));
    if (ret < 0 && out_token != NULL && cap > 0)
        OPENSSL_cleanse(out_token, cap);
    return ret;
}

custos_err custos_engine_session_check(custos_principal *out, custos_engine *e, const char *token)
{
    if (out == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "session", "missing argument");
    memset(out, 0, sizeof(*out));
    return principal_of(out, e, token, CUSTOS_CRED_SESSION);
}

custos_err custos_engine_session_end(custos_engine *e, const char *token, const char *from)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cred c;
    char who[CUSTOS_USERNAME_MAX + 8];
    custos_actor actor;
    int in_tx = 0;

    CUSTOS_GUARD(cred_check(&c, e, token, CUSTOS_CRED_SESSION));
    snprintf(who, sizeof(who), "user:%s", c.username);
    actor.who = who;
    actor.from = from != NULL ? from : "";
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->cred_revoke(e->st->ctx, c.id, custos_engine_now(e)));
    CUSTOS_GUARD(custos_engine_audit(e, &actor, "session.logout", c.username, NULL));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (e != NULL)
        custos_engine_tx_end(e, &in_tx);
    OPENSSL_cleanse(&c, sizeof(c));
    return ret;
}

custos_err custos_engine_sessions_purge(size_t *out, custos_engine *e)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;

    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "session", "missing argument");
    *out = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->cred_purge(e->st->ctx, out, CUSTOS_CRED_SESSION,
                                        custos_engine_now(e) - CUSTOS_SESSION_PURGE_AFTER));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (ret != CUSTOS_OK && out != NULL)
        *out = 0;
    if (e != NULL)
        custos_engine_tx_end(e, &in_tx);
    return ret;
}

/* ---- API tokens ----------------------------------------------------------- */

custos_err custos_engine_token_create(char out_id[CUSTOS_ID_LEN + 1], char *out_token, size_t cap,
                                      custos_engine *e, const char *username, const char *name,
                                      unsigned valid_days, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_user u;
    custos_store_cred c;
    json_t *detail = NULL;
    int64_t now;

    memset(&u, 0, sizeof(u));
    memset(&c, 0, sizeof(c));
    CUSTOS_ENSURE(out_id != NULL && out_token != NULL && cap >= CUSTOS_SECRET_TEXT_MAX && e != NULL,
                  CUSTOS_ERR_ARG, "token", "missing argument");
    out_id[0] = '\0';
    out_token[0] = '\0';
    CUSTOS_ENSURE(name != NULL && custos_name_valid(name, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG,
                  "name", "a token name is 1 to %d characters of a-z 0-9 . _ -",
                  CUSTOS_MAX_NAME_LEN);
    CUSTOS_ENSURE(valid_days >= 1 && valid_days <= CUSTOS_TOKEN_MAX_DAYS, CUSTOS_ERR_ARG,
                  "valid_days", "valid_days %u out of range 1..%d", valid_days,
                  CUSTOS_TOKEN_MAX_DAYS);
    CUSTOS_ENSURE(username_valid(username), CUSTOS_ERR_NOT_FOUND, "username", "no such operator");
    CUSTOS_GUARD(e->st->ops->user_get(e->st->ctx, &u, username));
    now = custos_engine_now(e);
    CUSTOS_GUARD(custos_id_new(c.id, NULL));
    c.kind = CUSTOS_CRED_TOKEN;
    CUSTOS_GUARD(secret_new(out_token, cap, TOKEN_PREFIX, SECRET_LEN));
    secret_hash(c.hash, out_token);
    memcpy(c.username, u.username, sizeof(c.username));
    memcpy(c.name, name, strlen(name) + 1);
    snprintf(c.origin, sizeof(c.origin), "%s",
             actor != NULL && actor->from != NULL ? actor->from : "");
    c.created = now;
    c.expires = now + (int64_t)valid_days * 86400;
    detail = json_pack("{s:s, s:s, s:I}", "username", c.username, "name", c.name, "expires",
                       (json_int_t)c.expires);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(cred_insert_audited(e, &c, actor, "token.create", c.id, detail));
    memcpy(out_id, c.id, CUSTOS_ID_LEN + 1);
    ret = CUSTOS_OK;
out:
    json_decref(detail);
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(&u, sizeof(u));
    if (ret < 0 && out_token != NULL && cap > 0)
        OPENSSL_cleanse(out_token, cap);
    return ret;
}

custos_err custos_engine_token_check(custos_principal *out, custos_engine *e, const char *token)
{
    if (out == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "token", "missing argument");
    memset(out, 0, sizeof(*out));
    if (token == NULL || strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return unauthenticated();
    return principal_of(out, e, token, CUSTOS_CRED_TOKEN);
}

custos_err custos_engine_token_revoke(custos_engine *e, const char *token_id,
                                      const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cred c;
    json_t *detail = NULL;
    int in_tx = 0;

    memset(&c, 0, sizeof(c));
    CUSTOS_ENSURE(e != NULL && token_id != NULL && custos_id_valid(token_id), CUSTOS_ERR_NOT_FOUND,
                  "token_id", "no such token");
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    ret = e->st->ops->cred_get(e->st->ctx, &c, token_id);
    CUSTOS_ENSURE(ret != CUSTOS_ERR_NOT_FOUND && (ret < 0 || c.kind == CUSTOS_CRED_TOKEN),
                  CUSTOS_ERR_NOT_FOUND, "token_id", "no token %s", token_id);
    CUSTOS_GUARD(ret);
    if (c.revoked == 0) {
        detail = json_pack("{s:s, s:s}", "username", c.username, "name", c.name);
        CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
        CUSTOS_GUARD(e->st->ops->cred_revoke(e->st->ctx, c.id, custos_engine_now(e)));
        CUSTOS_GUARD(custos_engine_audit(e, actor, "token.revoke", c.id, detail));
    }
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (e != NULL)
        custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    OPENSSL_cleanse(&c, sizeof(c));
    return ret;
}

typedef struct token_list_ctx {
    custos_token_cb cb;
    void *ctx;
} token_list_ctx;

static int token_list_one(const custos_store_cred *c, void *ctx)
{
    token_list_ctx *l = ctx;
    custos_token_info t;
    memset(&t, 0, sizeof(t));
    memcpy(t.token_id, c->id, sizeof(t.token_id));
    memcpy(t.name, c->name, sizeof(t.name));
    memcpy(t.username, c->username, sizeof(t.username));
    t.created = c->created;
    t.expires = c->expires;
    t.revoked = c->revoked;
    return l->cb(&t, l->ctx) != 0 ? 1 : 0;
}

custos_err custos_engine_token_list(custos_engine *e, custos_token_cb cb, void *ctx)
{
    token_list_ctx l = {cb, ctx};
    if (e == NULL || cb == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "tokens", "missing argument");
    return e->st->ops->cred_list(e->st->ctx, CUSTOS_CRED_TOKEN, token_list_one, &l);
}
