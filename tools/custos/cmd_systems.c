/* custos systems, packages, policies, mock: what a security admin sets up. */
#include <stdlib.h>
#include <string.h>

#include "custos_cli.h"
#include "table.h"

/* ---- shared by the commands ------------------------------------------------ */

static void render_object(const json_t *obj)
{
    cli_render_object(stdout, obj, 0);
}

/* ---- systems --------------------------------------------------------------- */

int cmd_systems_create(cli_ctx *ctx, const cli_args *a)
{
    const char *path = a->pos[0];
    uint8_t *buf = NULL;
    size_t len = 0;
    cli_failure fail;
    json_error_t jerr;
    cli_reply r;
    cli_url url;
    if (cli_read_file(&buf, &len, path, CUSTOS_MAX_SYSTEM_JSON_SIZE, &fail, "file") < 0)
        return cli_failure_print(&fail, NULL);
    /* Caught here with the line number rather than by the server. */
    json_t *doc = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        free(buf);
        json_decref(doc);
        if (doc != NULL)
            return cli_fail(CUSTOS_ERR_MALFORMED, "file", "%s is not a JSON object", path);
        return cli_fail(CUSTOS_ERR_MALFORMED, "file", "%s: line %d: %s", path, jerr.line,
                        jerr.text);
    }
    json_decref(doc);
    cli_url_init(&url, ctx, "/systems");
    int rc = cli_call(&r, ctx, "POST", &url, "application/json", buf, len);
    free(buf);
    if (rc != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (ctx->json) {
        cli_print_body(&r);
    } else if (!ctx->quiet) {
        printf("system ");
        cli_put_safe(stdout, cli_str(r.json, "name"));
        printf(" created\n");
    }
    cli_reply_clear(&r);
    return 0;
}

/* The component names of a system, comma-separated. */
static void component_names(char *out, size_t cap, const json_t *system)
{
    size_t i, len = 0;
    const json_t *c;
    out[0] = '\0';
    json_array_foreach(json_object_get(system, "components"), i, c)
    {
        int n = snprintf(out + len, cap - len, "%s%s", i > 0 ? "," : "", cli_str(c, "name"));
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

int cmd_systems_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"NAME", "DISPLAY NAME", "COMPONENTS", "CLOUD URL"};
    json_t *list = NULL;
    cli_url url;
    cli_url_init(&url, ctx, "/systems");
    int rc = cli_list(&list, ctx, a, &url);
    if (rc != 0)
        return rc;
    if (ctx->json) {
        cli_print_json(list);
        json_decref(list);
        return 0;
    }
    cli_table *t = cli_table_new(4, headers);
    if (t != NULL)
        cli_table_keep(t, 0);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(list, "items"), i, s)
    {
        char comps[1024];
        component_names(comps, sizeof(comps), s);
        const char *cells[4] = {cli_str(s, "name"), cli_str(s, "display_name"), comps,
                                cli_str(json_object_get(s, "services"), "cloud_url")};
        if (t == NULL || cli_table_add(t, cells) != 0) {
            rc = cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            break;
        }
    }
    if (rc == 0)
        cli_table_print(t, stdout, cli_terminal_width(stdout));
    cli_table_free(t);
    json_decref(list);
    return rc;
}

int cmd_systems_show(cli_ctx *ctx, const cli_args *a)
{
    cli_url url;
    cli_url_init(&url, ctx, "/systems");
    cli_url_seg(&url, a->pos[0]);
    return cli_show_command(ctx, &url, render_object);
}

/* ---- packages -------------------------------------------------------------- */

int cmd_packages_create(cli_ctx *ctx, const cli_args *a)
{
    const char *pass_file = cli_get(a, "passphrase-file");
    const char *out_path = cli_get(a, "out");
    unsigned long days = 0;
    int given = 0, rc;
    cli_reply r;
    cli_url url;
    rc = cli_get_uint(&days, &given, a, ctx->cmd, "days", 1, CUSTOS_MAX_VALID_DAYS);
    if (rc != 0)
        return rc;
    json_t *body = json_object();
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (given)
        json_object_set_new(body, "valid_days", json_integer((json_int_t)days));
    if (pass_file != NULL) {
        rc = cli_body_add_secret(body, "passphrase", pass_file, "passphrase-file");
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
    }
    cli_url_init(&url, ctx, "/systems");
    cli_url_seg(&url, cli_get(a, "system"));
    cli_url_lit(&url, "/packages");
    rc = cli_call_json(&r, ctx, "POST", &url, body);
    json_decref(body);
    if (rc != 0)
        return cli_reply_fail_clear(ctx, &r);
    const char *id = cli_str(r.json, "package_id");
    const char *generated = json_string_value(json_object_get(r.json, "passphrase"));
    if (ctx->json) {
        cli_print_body(&r);
    } else if (ctx->quiet) {
        if (generated != NULL) {
            cli_put_safe(stdout, generated);
            putchar('\n');
        }
    } else {
        printf("package ");
        cli_put_safe(stdout, id);
        printf(" for system ");
        cli_put_safe(stdout, cli_str(r.json, "system"));
        printf(", expires ");
        cli_put_safe(stdout, cli_str(r.json, "expires"));
        putchar('\n');
        if (generated != NULL) {
            printf("passphrase: ");
            cli_put_safe(stdout, generated);
            printf("\n(generated; shown once: keep it with the package, it is not shown again)\n");
        }
    }
    fflush(stdout);
    rc = 0;
    if (out_path != NULL) {
        cli_url_init(&url, ctx, "/packages");
        cli_url_seg(&url, id);
        cli_url_lit(&url, "/file");
        rc = cli_download(ctx, &url, "application/vnd.custos.mcpp", out_path, 0600, "package");
    }
    cli_reply_clear_secret(&r);
    return rc;
}

int cmd_packages_list(cli_ctx *ctx, const cli_args *a)
{
    static const char *const headers[] = {"PACKAGE ID", "SYSTEM", "CREATED", "EXPIRES"};
    static const char *const keys[] = {"package_id", "system", "created", "expires"};
    cli_url url;
    cli_url_init(&url, ctx, "/packages");
    cli_url_query(&url, "system", cli_get(a, "system"));
    return cli_list_command(ctx, a, &url, headers, keys, 4);
}

int cmd_packages_download(cli_ctx *ctx, const cli_args *a)
{
    cli_url url;
    cli_url_init(&url, ctx, "/packages");
    cli_url_seg(&url, a->pos[0]);
    cli_url_lit(&url, "/file");
    /* 0600: it holds the (passphrase-encrypted) bootstrap key. */
    return cli_download(ctx, &url, "application/vnd.custos.mcpp", cli_get(a, "out"), 0600,
                        "package");
}

/* ---- policies -------------------------------------------------------------- */

/* One serial per line of @p path into a JSON array (blank lines skipped). */
static int read_serials(json_t **out, const char *path, const char *field)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cli_failure fail;
    *out = NULL;
    if (cli_read_file(&buf, &len, path, CLI_LIST_FILE_MAX, &fail, field) < 0)
        return cli_failure_print(&fail, NULL);
    json_t *arr = json_array();
    size_t line = 0;
    const char *p = (const char *)buf, *end = p + len;
    int rc = 0;
    while (arr != NULL && p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        const char *s = p;
        line++;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s) {
            json_t *v =
                memchr(s, '\0', (size_t)(e - s)) == NULL ? json_stringn(s, (size_t)(e - s)) : NULL;
            if (v == NULL)
                rc = cli_fail(CUSTOS_ERR_MALFORMED, field, "%s: line %zu is not UTF-8 text", path,
                              line);
            else
                json_array_append_new(arr, v);
        }
        p = nl != NULL ? nl + 1 : end;
    }
    free(buf);
    if (arr == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

static void print_policy(const json_t *p)
{
    printf("system: ");
    cli_put_safe(stdout, cli_str(p, "system"));
    printf("\nmode:   ");
    cli_put_safe(stdout, cli_str(p, "mode"));
    putchar('\n');
    static const char *const lists[] = {"allow", "deny"};
    for (size_t l = 0; l < 2; l++) {
        char count_key[16];
        const json_t *arr = json_object_get(p, lists[l]);
        snprintf(count_key, sizeof(count_key), "%s_count", lists[l]);
        json_int_t count = json_integer_value(json_object_get(p, count_key));
        if (!json_is_integer(json_object_get(p, count_key)))
            count = (json_int_t)json_array_size(arr);
        printf("%s list: %" JSON_INTEGER_FORMAT " serial%s\n", lists[l], count,
               count == 1 ? "" : "s");
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v)
        {
            printf("  ");
            cli_put_safe(stdout, json_string_value(v) != NULL ? json_string_value(v) : "?");
            putchar('\n');
        }
    }
}

int check_policies_set(const cli_command *c, const cli_args *a)
{
    const char *mode = cli_get(a, "mode");
    if (strcmp(mode, "manual") != 0 && strcmp(mode, "package") != 0 &&
        strcmp(mode, "allow_list") != 0)
        return cli_usage_error(c, "--mode must be manual, package or allow_list, got '%s'", mode);
    return 0;
}

int cmd_policies_set(cli_ctx *ctx, const cli_args *a)
{
    const char *mode = cli_get(a, "mode");
    const char *allow = cli_get(a, "allow-file");
    const char *deny = cli_get(a, "deny-file");
    json_t *list = NULL;
    cli_reply r;
    cli_url url;
    int rc;
    json_t *body = json_pack("{s:s}", "mode", mode);
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (allow != NULL) {
        rc = read_serials(&list, allow, "allow-file");
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "allow", list);
    }
    if (deny != NULL) {
        rc = read_serials(&list, deny, "deny-file");
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "deny", list);
    }
    cli_url_init(&url, ctx, "/systems");
    cli_url_seg(&url, cli_get(a, "system"));
    cli_url_lit(&url, "/policy");
    rc = cli_call_json(&r, ctx, "PUT", &url, body);
    json_decref(body);
    if (rc != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (ctx->json) {
        cli_print_body(&r);
    } else if (!ctx->quiet) {
        printf("policy of system ");
        cli_put_safe(stdout, cli_str(r.json, "system"));
        printf(" set: mode ");
        cli_put_safe(stdout, cli_str(r.json, "mode"));
        printf(", %" JSON_INTEGER_FORMAT " allowed, %" JSON_INTEGER_FORMAT " denied\n",
               json_integer_value(json_object_get(r.json, "allow_count")),
               json_integer_value(json_object_get(r.json, "deny_count")));
    }
    cli_reply_clear(&r);
    return 0;
}

int cmd_policies_show(cli_ctx *ctx, const cli_args *a)
{
    cli_url url;
    cli_url_init(&url, ctx, "/systems");
    cli_url_seg(&url, cli_get(a, "system"));
    cli_url_lit(&url, "/policy");
    return cli_show_command(ctx, &url, print_policy);
}

/* ---- mock device files ----------------------------------------------------- */

int cmd_mock_create(cli_ctx *ctx, const cli_args *a)
{
    const char *out_path = cli_get(a, "out");
    cli_reply r;
    cli_url url;
    json_t *body = json_pack("{s:s}", "serial", cli_get(a, "serial"));
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_ARG, "serial", "the serial is not UTF-8 text");
    cli_url_init(&url, ctx, "/systems");
    cli_url_seg(&url, cli_get(a, "system"));
    cli_url_lit(&url, "/components");
    cli_url_seg(&url, cli_get(a, "component"));
    cli_url_lit(&url, "/mock");
    int rc = cli_call_json(&r, ctx, "POST", &url, body);
    json_decref(body);
    if (rc != 0 || cli_reply_expect_type(&r, "application/x-tar") != 0)
        return cli_reply_fail_clear(ctx, &r);
    /* 0600: the archive holds unencrypted (mock) private keys. */
    if (cli_write_file(out_path, r.http.body, r.http.body_len, 0600, &r.fail) < 0) {
        cli_failure_print(&r.fail, NULL);
        cli_reply_clear(&r);
        return EXIT_REFUSED;
    }
    if (!ctx->quiet && !ctx->json) {
        printf("mock device files written to %s (%zu bytes)\n", out_path, r.http.body_len);
        printf("tip: mkdir DIR && tar -xf %s -C DIR  (identity.mcpi, profile.mccp); they chain "
               "to the mock root only\n",
               out_path);
    }
    cli_reply_clear(&r);
    return 0;
}
