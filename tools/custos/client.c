/* custos: the connection to custosd's operator API: server, trust anchor,
 * credential, URLs, requests and the server's error bodies. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "custos_cli.h"

#define MAX_ATTEMPTS 5    /* on 429 rate_limited */
#define MAX_RETRY_WAIT 60 /* seconds */
#define MAX_LIST_ITEMS 1000000u

/* ---- configuration --------------------------------------------------------- */

static int resolve_server(cli_ctx *ctx, const cli_command *c, const cli_args *a)
{
    const char *s = cli_get(a, "server");
    const char *from = "--server";
    if (s == NULL) {
        s = getenv("CUSTOS_SERVER");
        from = "CUSTOS_SERVER";
    }
    if (s == NULL || s[0] == '\0')
        return cli_usage_error(c, "no server: pass --server https://HOST:PORT or set "
                                  "CUSTOS_SERVER");
    if (strncasecmp(s, "https://", 8) != 0 || s[8] == '\0' || s[8] == '/')
        return cli_usage_error(c, "%s must be an https:// URL (the API is TLS only), got '%s'",
                               from, s);
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
            return cli_usage_error(c, "%s '%s': no spaces, query or fragment allowed", from, s);
    }
    size_t len = strlen(s);
    while (len > 8 && s[len - 1] == '/')
        len--;
    if (len >= sizeof(ctx->server))
        return cli_usage_error(c, "%s is too long", from);
    memcpy(ctx->server, s, len);
    ctx->server[len] = '\0';
    return 0;
}

static int resolve_ca(cli_ctx *ctx, const cli_command *c, const cli_args *a)
{
    const char *f = cli_get(a, "ca-file");
    if (f == NULL)
        f = getenv("CUSTOS_CA_FILE");
    if (f == NULL || f[0] == '\0')
        return cli_usage_error(c, "no trust anchor for the server: pass --ca-file ROOT.pem (the "
                                  "data directory's root.pem, written by 'custosd init') or set "
                                  "CUSTOS_CA_FILE");
    if (access(f, R_OK) != 0)
        return cli_fail(CUSTOS_ERR_NOT_FOUND, "ca-file", "cannot read the CA file %s", f);
    ctx->ca_file = f;
    return 0;
}

/* A token is a header value: printable ASCII, no spaces. */
static int token_ok(const char *t, size_t len)
{
    if (len == 0 || len > CLI_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    }
    return 1;
}

static int not_signed_in(const char *why)
{
    fprintf(stderr,
            "custos: error: unauthenticated: %s; sign in with 'custos login --user NAME', set "
            "CUSTOS_TOKEN or pass --token-file FILE\n",
            why);
    return EXIT_REFUSED;
}

static int read_token_file(cli_ctx *ctx, const char *path)
{
    char why[1400];
    cli_failure fail;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    custos_err err = cli_read_file(&buf, &len, path, CLI_TOKEN_MAX + 2, &fail, "token-file");
    if (err == CUSTOS_ERR_NOT_FOUND) {
        snprintf(why, sizeof(why), "not signed in (no token file %s)", path);
        return not_signed_in(why);
    }
    if (err < 0)
        return cli_failure_print(&fail, NULL);
    size_t used = len;
    if (used > 0 && buf[used - 1] == '\n')
        used--;
    if (used > 0 && buf[used - 1] == '\r')
        used--;
    if (!token_ok((const char *)buf, used)) {
        cli_free_secret(buf, len);
        snprintf(why, sizeof(why), "the token file %s does not hold a token", path);
        return not_signed_in(why);
    }
    memcpy(ctx->token, buf, used);
    ctx->token[used] = '\0';
    cli_free_secret(buf, len);
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        fprintf(stderr,
                "custos: warning: the token file %s is readable by others (mode %04o); "
                "run 'chmod 600 %s'\n",
                path, (unsigned)(st.st_mode & 0777), path);
    return 0;
}

static int resolve_token(cli_ctx *ctx, const cli_command *c, const cli_args *a)
{
    const char *file = cli_get(a, "token-file");
    const char *env = getenv("CUSTOS_TOKEN");
    if (file != NULL) {
        if (strlen(file) >= sizeof(ctx->token_file))
            return cli_usage_error(c, "--token-file is too long");
        snprintf(ctx->token_file, sizeof(ctx->token_file), "%s", file);
        snprintf(ctx->token_source, sizeof(ctx->token_source), "--token-file %s", file);
    } else if (cli_default_token_path(ctx->token_file, sizeof(ctx->token_file)) != 0) {
        ctx->token_file[0] = '\0';
    } else {
        snprintf(ctx->token_source, sizeof(ctx->token_source), "%s", ctx->token_file);
    }
    if (c->flags & CLI_NO_TOKEN) {
        if (ctx->token_file[0] == '\0')
            return cli_usage_error(c, "no place for the token file: set HOME or XDG_CONFIG_HOME, "
                                      "or pass --token-file FILE");
        return 0;
    }
    if (file == NULL && env != NULL && env[0] != '\0') {
        if (!token_ok(env, strlen(env)))
            return not_signed_in("CUSTOS_TOKEN does not hold a token");
        snprintf(ctx->token, sizeof(ctx->token), "%s", env);
        snprintf(ctx->token_source, sizeof(ctx->token_source), "CUSTOS_TOKEN");
        ctx->token_from_env = 1;
    } else if (ctx->token_file[0] == '\0') {
        return not_signed_in("not signed in (no HOME for the token file)");
    } else {
        int rc = read_token_file(ctx, ctx->token_file);
        if (rc != 0)
            return rc;
    }
    snprintf(ctx->auth_header, sizeof(ctx->auth_header), "Authorization: Bearer %s", ctx->token);
    return 0;
}

int cli_ctx_open(cli_ctx *ctx, const cli_command *c, const cli_args *a)
{
    int rc;
    memset(ctx, 0, sizeof(*ctx));
    ctx->cmd = c;
    ctx->json = cli_flag(a, "json");
    ctx->quiet = cli_flag(a, "quiet");
    rc = resolve_server(ctx, c, a);
    if (rc == 0)
        rc = resolve_ca(ctx, c, a);
    if (rc == 0)
        rc = resolve_token(ctx, c, a);
    return rc;
}

void cli_ctx_close(cli_ctx *ctx)
{
    custos_hc_free(ctx->hc);
    ctx->hc = NULL;
    OPENSSL_cleanse(ctx->token, sizeof(ctx->token));
    OPENSSL_cleanse(ctx->auth_header, sizeof(ctx->auth_header));
}

/* ---- URLs ------------------------------------------------------------------ */

static void url_append(cli_url *u, const char *s, size_t n)
{
    if (u->bad)
        return;
    if (n >= sizeof(u->buf) - u->len) {
        u->bad = 1;
        return;
    }
    memcpy(u->buf + u->len, s, n);
    u->len += n;
    u->buf[u->len] = '\0';
}

static void url_escaped(cli_url *u, const char *s)
{
    /* Everything but RFC 3986's unreserved characters is percent-encoded. */
    char *e = curl_easy_escape(NULL, s, 0);
    if (e == NULL) {
        u->bad = 1;
        return;
    }
    url_append(u, e, strlen(e));
    curl_free(e);
}

void cli_url_init(cli_url *u, const cli_ctx *ctx, const char *path)
{
    memset(u, 0, sizeof(*u));
    url_append(u, ctx->server, strlen(ctx->server));
    url_append(u, "/api/v1", 7);
    cli_url_lit(u, path);
}

void cli_url_lit(cli_url *u, const char *literal)
{
    url_append(u, literal, strlen(literal));
}

void cli_url_seg(cli_url *u, const char *segment)
{
    /* "." and ".." would be removed by URL normalisation: not a name. */
    if (segment[0] == '\0' || strcmp(segment, ".") == 0 || strcmp(segment, "..") == 0) {
        u->bad = 2;
        return;
    }
    url_append(u, "/", 1);
    url_escaped(u, segment);
}

void cli_url_query(cli_url *u, const char *name, const char *value)
{
    if (value == NULL)
        return;
    url_append(u, u->has_query ? "&" : "?", 1);
    u->has_query = 1;
    url_append(u, name, strlen(name));
    url_append(u, "=", 1);
    url_escaped(u, value);
}

/* ---- requests -------------------------------------------------------------- */

static const char *status_code_name(long status)
{
    switch (status) {
    case 400:
        return "malformed";
    case 401:
        return "unauthenticated";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "invalid_state";
    case 410:
        return "expired";
    case 413:
        return "too_large";
    case 415:
        return "unsupported_media_type";
    case 429:
        return "rate_limited";
    case 500:
        return "internal";
    case 503:
        return "unavailable";
    default:
        return "http_error";
    }
}

static int type_is(const char *content_type, const char *expected)
{
    size_t n = strlen(expected);
    return strncasecmp(content_type, expected, n) == 0 &&
           (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

/* The server's {"error": {"code", "message", "field"}} into @p out; a body
 * that is not one gives a failure named after the status. */
static void failure_from_body(cli_failure *out, const cli_reply *r)
{
    const json_t *e = r->json != NULL ? json_object_get(r->json, "error") : NULL;
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    memset(out, 0, sizeof(*out));
    int code_ok = code != NULL && code[0] != '\0' && strlen(code) < sizeof(out->code);
    for (const char *p = code_ok ? code : ""; *p != '\0'; p++) {
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            code_ok = 0;
    }
    snprintf(out->code, sizeof(out->code), "%s", code_ok ? code : status_code_name(r->http.status));
    if (message != NULL && message[0] != '\0')
        snprintf(out->message, sizeof(out->message), "%s", message);
    else
        snprintf(out->message, sizeof(out->message), "the server answered HTTP %ld",
                 r->http.status);
    if (field != NULL)
        snprintf(out->field, sizeof(out->field), "%s", field);
}

static void wait_seconds(long s)
{
    struct timespec ts = {.tv_sec = s, .tv_nsec = 0};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int cli_call(cli_reply *out, cli_ctx *ctx, const char *method, const cli_url *url,
             const char *content_type, const uint8_t *body, size_t body_len)
{
    const char *headers[2];
    custos_hc_request req;
    custos_err err;
    memset(out, 0, sizeof(*out));
    if (url->bad)
        return cli_failure_set(
            &out->fail, url->bad == 2 ? CUSTOS_ERR_ARG : CUSTOS_ERR_TOO_LARGE, "url",
            url->bad == 2 ? "an empty, '.' or '..' name or id" : "the URL is too long");
    if (ctx->hc == NULL) {
        custos_error_clear();
        err = custos_hc_new(&ctx->hc);
        if (err < 0)
            return cli_failure_from_lib(&out->fail, err);
    }
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url->buf;
    req.content_type = content_type;
    req.body = body;
    req.body_len = body_len;
    req.headers = headers;
    if (ctx->auth_header[0] != '\0')
        headers[req.n_headers++] = ctx->auth_header;
    /* A POST without a body (approve, complete) carries no Content-Type:
     * libcurl would otherwise send its form default. */
    if (body == NULL && content_type == NULL && strcmp(method, "GET") != 0)
        headers[req.n_headers++] = "Content-Type:";
    req.ca_file = ctx->ca_file;
    req.max_response = CLI_MAX_RESPONSE;
    for (int attempt = 1;; attempt++) {
        custos_error_clear();
        err = custos_hc_perform(&out->http, ctx->hc, &req);
        if (err < 0) {
            const custos_error *e = custos_error_last();
            const char *detail =
                e->code == err && e->message[0] != '\0' ? e->message : custos_strerror(err);
            const char *field = e->code == err && e->field[0] != '\0' ? e->field : "server";
            /* The library's message names the method and URL. */
            if (err == CUSTOS_ERR_IO)
                return cli_failure_set(&out->fail, err, field, "cannot reach the server: %s",
                                       detail);
            return cli_failure_set(&out->fail, err, field, "%s", detail);
        }
        if (out->http.status != 429 || attempt >= MAX_ATTEMPTS)
            break;
        long wait = out->http.retry_after;
        if (wait < 1)
            wait = 1;
        if (wait > MAX_RETRY_WAIT)
            wait = MAX_RETRY_WAIT;
        if (!ctx->quiet)
            fprintf(stderr, "custos: rate limited by the server; retrying in %ld s\n", wait);
        custos_hc_response_clear(&out->http);
        wait_seconds(wait);
    }
    if (out->http.body_len > 0 && type_is(out->http.content_type, "application/json")) {
        json_error_t jerr;
        out->json = json_loadb((const char *)out->http.body, out->http.body_len,
                               JSON_REJECT_DUPLICATES, &jerr);
        if (out->json == NULL || !json_is_object(out->json)) {
            json_decref(out->json);
            out->json = NULL;
            if (out->http.status >= 200 && out->http.status < 300)
                return cli_failure_set(&out->fail, CUSTOS_ERR_MALFORMED, "response",
                                       "the server's answer (HTTP %ld) is not a JSON object",
                                       out->http.status);
        }
    }
    if (out->http.status >= 200 && out->http.status < 300)
        return 0;
    failure_from_body(&out->fail, out);
    return EXIT_REFUSED;
}

int cli_call_json(cli_reply *out, cli_ctx *ctx, const char *method, const cli_url *url,
                  const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        memset(out, 0, sizeof(*out));
        return cli_failure_set(&out->fail, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    size_t len = strlen(text);
    int rc = cli_call(out, ctx, method, url, "application/json", (const uint8_t *)text, len);
    /* The body may hold a password or passphrase. */
    cli_free_secret((uint8_t *)text, len);
    return rc;
}

void cli_reply_clear(cli_reply *r)
{
    json_decref(r->json);
    r->json = NULL;
    custos_hc_response_clear(&r->http);
}

void cli_reply_clear_secret(cli_reply *r)
{
    if (r->http.body != NULL)
        OPENSSL_cleanse(r->http.body, r->http.body_len);
    cli_reply_clear(r);
}

int cli_reply_fail(const cli_ctx *ctx, const cli_reply *r, const char *label)
{
    cli_failure_print(&r->fail, label);
    if (strcmp(r->fail.code, "unauthenticated") == 0 && r->http.status == 401 &&
        ctx->token_source[0] != '\0' && ctx->token[0] != '\0')
        fprintf(stderr,
                "custos: the credential from %s was refused; sign in again with "
                "'custos login --user NAME'\n",
                ctx->token_source);
    if (r->http.status >= 500 && r->http.request_id[0] != '\0') {
        fputs("custos: the server's request id (in its log): ", stderr);
        cli_put_safe(stderr, r->http.request_id);
        fputc('\n', stderr);
    }
    return EXIT_REFUSED;
}

int cli_reply_fail_clear(const cli_ctx *ctx, cli_reply *r)
{
    cli_reply_fail(ctx, r, NULL);
    cli_reply_clear(r);
    return EXIT_REFUSED;
}

int cli_show_command(cli_ctx *ctx, const cli_url *url, void (*render)(const json_t *obj))
{
    cli_reply r;
    if (cli_call(&r, ctx, "GET", url, NULL, NULL, 0) != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (ctx->json)
        cli_print_body(&r);
    else
        render(r.json);
    cli_reply_clear(&r);
    return 0;
}

int cli_download(cli_ctx *ctx, const cli_url *url, const char *type, const char *path,
                 unsigned mode, const char *what)
{
    cli_reply r;
    if (cli_call(&r, ctx, "GET", url, NULL, NULL, 0) != 0 || cli_reply_expect_type(&r, type) != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (cli_write_file(path, r.http.body, r.http.body_len, mode, &r.fail) < 0) {
        cli_failure_print(&r.fail, NULL);
        cli_reply_clear(&r);
        return EXIT_REFUSED;
    }
    if (!ctx->quiet && !ctx->json)
        printf("%s written to %s (%zu bytes)\n", what, path, r.http.body_len);
    cli_reply_clear(&r);
    return 0;
}

int cli_reply_expect_type(cli_reply *r, const char *expected)
{
    if (type_is(r->http.content_type, expected))
        return 0;
    return cli_failure_set(&r->fail, CUSTOS_ERR_MALFORMED, "response",
                           "the server answered with '%s', not %s", r->http.content_type, expected);
}

int cli_fetch_list(json_t **out, cli_ctx *ctx, cli_url *base, int all)
{
    json_t *result = NULL;
    char cursor[1024] = "";
    int rc = EXIT_REFUSED;
    *out = NULL;
    for (;;) {
        cli_url url = *base;
        cli_reply r;
        if (cursor[0] != '\0')
            cli_url_query(&url, "cursor", cursor);
        if (cli_call(&r, ctx, "GET", &url, NULL, NULL, 0) != 0) {
            rc = cli_reply_fail_clear(ctx, &r);
            goto out;
        }
        json_t *items = json_object_get(r.json, "items");
        if (!json_is_array(items)) {
            cli_reply_clear(&r);
            rc = cli_fail(CUSTOS_ERR_MALFORMED, "items", "the server's list has no items array");
            goto out;
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        int more = all && next != NULL && next[0] != '\0' && strcmp(next, cursor) != 0 &&
                   strlen(next) < sizeof(cursor);
        if (more)
            snprintf(cursor, sizeof(cursor), "%s", next);
        if (result == NULL) {
            result = json_incref(r.json);
        } else if (json_array_extend(json_object_get(result, "items"), items) != 0) {
            cli_reply_clear(&r);
            rc = cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            goto out;
        }
        cli_reply_clear(&r);
        if (json_array_size(json_object_get(result, "items")) > MAX_LIST_ITEMS) {
            rc = cli_fail(CUSTOS_ERR_TOO_LARGE, "items", "more than %u items", MAX_LIST_ITEMS);
            goto out;
        }
        if (!more)
            break;
    }
    if (all)
        json_object_del(result, "next_cursor");
    *out = result;
    result = NULL;
    rc = 0;
out:
    json_decref(result);
    return rc;
}

int cli_list(json_t **out, cli_ctx *ctx, const cli_args *a, cli_url *url)
{
    unsigned long limit = 0;
    int given = 0;
    char buf[24];
    *out = NULL;
    int rc = cli_get_uint(&limit, &given, a, ctx->cmd, "limit", 1, 500);
    if (rc != 0)
        return rc;
    if (given) {
        snprintf(buf, sizeof(buf), "%lu", limit);
        cli_url_query(url, "limit", buf);
    }
    return cli_fetch_list(out, ctx, url, cli_flag(a, "all"));
}

void cli_print_body(const cli_reply *r)
{
    fwrite(r->http.body, 1, r->http.body_len, stdout);
    if (r->http.body_len == 0 || r->http.body[r->http.body_len - 1] != '\n')
        fputc('\n', stdout);
}

void cli_print_json(const json_t *v)
{
    if (json_dumpf(v, stdout, JSON_COMPACT) == 0)
        fputc('\n', stdout);
}
