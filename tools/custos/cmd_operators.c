/* custos users, tokens, audit: operators, their credentials and the trail. */
#include <string.h>

#include "custos_cli.h"

/* ---- users ----------------------------------------------------------------- */

int check_users_create(const cli_command *c, const cli_args *a)
{
    const char *role = cli_get(a, "role");
    if (strcmp(role, "admin") != 0 && strcmp(role, "approver") != 0 &&
        strcmp(role, "technician") != 0 && strcmp(role, "auditor") != 0)
        return cli_usage_error(c, "--role must be admin, approver, technician or auditor, got '%s'",
                               role);
    return 0;
}

int cmd_users_create(cli_ctx *ctx, const cli_args *a)
{
    const char *role = cli_get(a, "role");
    const char *pw_file = cli_get(a, "password-file");
    cli_reply r;
    cli_url url;
    json_t *body = json_pack("{s:s, s:s}", "username", a->pos[0], "role", role);
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_ARG, "username", "the user name is not UTF-8 text");
    if (pw_file != NULL) {
        int rc = cli_body_add_secret(body, "password", pw_file, "password-file");
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
    }
    cli_url_init(&url, ctx, "/users");
    int rc = cli_call_json(&r, ctx, "POST", &url, body);
    json_decref(body);
    if (rc != 0)
        return cli_reply_fail_clear(ctx, &r);
    const char *generated = json_string_value(json_object_get(r.json, "password"));
    if (ctx->json) {
        cli_print_body(&r);
    } else if (ctx->quiet) {
        if (generated != NULL) {
            cli_put_safe(stdout, generated);
            putchar('\n');
        }
    } else {
        printf("user ");
        cli_put_safe(stdout, cli_str(r.json, "username"));
        printf(" created (role ");
        cli_put_safe(stdout, cli_str(r.json, "role"));
        printf(")\n");
        if (generated != NULL) {
            printf("password: ");
            cli_put_safe(stdout, generated);
            printf("\n(generated; shown once: hand it over now, it is not shown again)\n");
        }
    }
    cli_reply_clear_secret(&r);
    return 0;
}

int cmd_users_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"USERNAME", "ROLE", "CREATED"};
    static const char *const keys[] = {"username", "role", "created"};
    cli_url url;
    cli_url_init(&url, ctx, "/users");
    return cli_list_command(ctx, a, &url, headers, keys, 3);
}

/* ---- API tokens ------------------------------------------------------------ */

int cmd_tokens_create(cli_ctx *ctx, const cli_args *a)
{
    unsigned long days = 0;
    int given = 0;
    cli_reply r;
    cli_url url;
    int rc = cli_get_uint(&days, &given, a, ctx->cmd, "days", 1, CUSTOS_MAX_VALID_DAYS);
    if (rc != 0)
        return rc;
    json_t *body =
        json_pack("{s:s, s:s}", "name", cli_get(a, "name"), "username", cli_get(a, "user"));
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_ARG, "name", "the name or user is not UTF-8 text");
    if (given)
        json_object_set_new(body, "valid_days", json_integer((json_int_t)days));
    cli_url_init(&url, ctx, "/tokens");
    rc = cli_call_json(&r, ctx, "POST", &url, body);
    json_decref(body);
    if (rc != 0)
        return cli_reply_fail_clear(ctx, &r);
    const char *token = json_string_value(json_object_get(r.json, "token"));
    if (token == NULL) {
        cli_reply_clear_secret(&r);
        return cli_fail(CUSTOS_ERR_MALFORMED, "token", "the server's answer holds no token");
    }
    if (ctx->json) {
        cli_print_body(&r); /* the purpose of the command: the token, once */
    } else if (ctx->quiet) {
        cli_put_safe(stdout, token);
        putchar('\n');
    } else {
        printf("token ");
        cli_put_safe(stdout, cli_str(r.json, "token_id"));
        printf(" created for user ");
        cli_put_safe(stdout, cli_get(a, "user"));
        printf("\ntoken: ");
        cli_put_safe(stdout, token);
        printf("\n(shown once: store it now, e.g. in a 0600 file for --token-file)\n");
    }
    cli_reply_clear_secret(&r);
    return 0;
}

int cmd_tokens_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"TOKEN ID", "NAME",    "USER",
                                          "CREATED",  "EXPIRES", "REVOKED"};
    static const char *const keys[] = {"token_id", "name",    "username",
                                       "created",  "expires", "revoked"};
    cli_url url;
    cli_url_init(&url, ctx, "/tokens");
    return cli_list_command(ctx, a, &url, headers, keys, 6);
}

int cmd_tokens_revoke(cli_ctx *ctx, const cli_args *a)
{
    cli_reply r;
    cli_url url;
    cli_url_init(&url, ctx, "/tokens");
    cli_url_seg(&url, a->pos[0]);
    if (cli_call(&r, ctx, "DELETE", &url, NULL, NULL, 0) != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (ctx->json) {
        if (r.json != NULL)
            cli_print_body(&r);
        else
            printf("{}\n");
    } else if (!ctx->quiet) {
        printf("token ");
        cli_put_safe(stdout, a->pos[0]);
        printf(" revoked\n");
    }
    cli_reply_clear(&r);
    return 0;
}

/* ---- audit ----------------------------------------------------------------- */

int cmd_audit_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"SEQ",    "TIME",   "ACTOR", "FROM",
                                          "ACTION", "OBJECT", "DETAIL"};
    static const char *const keys[] = {"seq",    "time",   "actor", "from",
                                       "action", "object", "detail"};
    cli_url url;
    cli_url_init(&url, ctx, "/audit");
    cli_url_query(&url, "actor", cli_get(a, "actor"));
    cli_url_query(&url, "action", cli_get(a, "action"));
    cli_url_query(&url, "object", cli_get(a, "object"));
    cli_url_query(&url, "since", cli_get(a, "since"));
    cli_url_query(&url, "until", cli_get(a, "until"));
    return cli_list_command(ctx, a, &url, headers, keys, 7);
}

int cmd_audit_verify(cli_ctx *ctx, const cli_args *a)
{
    cli_reply r;
    cli_url url;
    (void)a;
    cli_url_init(&url, ctx, "/audit/verify");
    if (cli_call(&r, ctx, "GET", &url, NULL, NULL, 0) != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (!json_is_true(json_object_get(r.json, "ok"))) {
        if (ctx->json)
            cli_print_body(&r);
        cli_reply_clear(&r);
        return cli_fail(CUSTOS_ERR_MISMATCH, "audit",
                        "the server did not report the audit trail as verified");
    }
    if (ctx->json)
        cli_print_body(&r);
    else if (!ctx->quiet)
        printf("audit trail verified: %" JSON_INTEGER_FORMAT " entries\n",
               json_integer_value(json_object_get(r.json, "entries")));
    cli_reply_clear(&r);
    return 0;
}
