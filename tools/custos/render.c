/* custos: readable rendering of the server's JSON objects (show commands). */
#include <stdlib.h>
#include <string.h>

#include "custos_cli.h"
#include "table.h"

#define LONG_BLOB 72     /* base64 and hex longer than this are shortened */
#define ONE_LINE_MAX 160 /* an object of scalars up to this long is one line */

const char *cli_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

const char *cli_scalar_text(char *buf, size_t cap, const json_t *v)
{
    buf[0] = '\0';
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        /* Shorten blobs (base64, hex), never sentences. */
        if (len > LONG_BLOB && strchr(s, ' ') == NULL)
            snprintf(buf, cap, "%.40s… (%zu chars)", s, len);
        else
            snprintf(buf, cap, "%s", s);
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, cap, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, cap, "yes");
        break;
    case JSON_FALSE:
        snprintf(buf, cap, "no");
        break;
    case JSON_NULL:
        break;
    default: {
        char *text = json_dumps(v, JSON_COMPACT);
        if (text != NULL)
            snprintf(buf, cap, "%s", text);
        free(text);
        break;
    }
    }
    return buf;
}

static int is_container(const json_t *v)
{
    return json_is_object(v) || json_is_array(v);
}

static int is_empty(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

/* "k: v, k: v" into @p buf when @p obj has only scalars and it fits. */
static int one_line(char *buf, size_t cap, const json_t *obj)
{
    const char *key;
    const json_t *v;
    char text[1024];
    size_t len = 0;
    buf[0] = '\0';
    json_object_foreach((json_t *)obj, key, v)
    {
        if (is_container(v))
            return 0;
        int n = snprintf(buf + len, cap - len, "%s%s: %s", len > 0 ? ", " : "", key,
                         cli_scalar_text(text, sizeof(text), v));
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    return len <= ONE_LINE_MAX;
}

static void render_object(FILE *f, const json_t *obj, int indent, int skip_first_indent);

static void render_array(FILE *f, const json_t *arr, int indent)
{
    size_t i;
    const json_t *v;
    char text[2048];
    json_array_foreach(arr, i, v)
    {
        fprintf(f, "%*s- ", indent, "");
        if (json_is_object(v) && one_line(text, sizeof(text), v)) {
            cli_put_safe(f, text);
            fputc('\n', f);
        } else if (json_is_object(v)) {
            /* YAML-like: the first member on the dash's line. */
            render_object(f, v, indent + 2, 1);
        } else if (json_is_array(v)) {
            fputc('\n', f);
            render_array(f, v, indent + 2);
        } else {
            cli_put_safe(f, cli_scalar_text(text, sizeof(text), v));
            fputc('\n', f);
        }
    }
}

/* Print the indentation of a line, except the first one when it follows "- ". */
static void indent_line(FILE *f, int indent, int *skip)
{
    if (*skip)
        *skip = 0;
    else
        fprintf(f, "%*s", indent, "");
}

void cli_render_object(FILE *f, const json_t *obj, int indent)
{
    render_object(f, obj, indent, 0);
}

static void render_object(FILE *f, const json_t *obj, int indent, int skip_first_indent)
{
    const char *key;
    const json_t *v;
    char text[2048];
    int width = 0;
    json_object_foreach((json_t *)obj, key, v)
    {
        int len = (int)strlen(key);
        if (!is_container(v) && len > width && len < 40)
            width = len;
    }
    /* Scalars first, aligned; then the sections. */
    json_object_foreach((json_t *)obj, key, v)
    {
        if (is_container(v))
            continue;
        int pad = width - (int)strlen(key);
        indent_line(f, indent, &skip_first_indent);
        cli_put_safe(f, key);
        fprintf(f, ":%*s ", pad > 0 ? pad : 0, "");
        cli_put_safe(f, cli_scalar_text(text, sizeof(text), v));
        fputc('\n', f);
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!is_container(v))
            continue;
        indent_line(f, indent, &skip_first_indent);
        cli_put_safe(f, key);
        if (is_empty(v)) {
            fputs(": (none)\n", f);
        } else if (json_is_object(v)) {
            fputs(":\n", f);
            render_object(f, v, indent + 2, 0);
        } else {
            fputs(":\n", f);
            render_array(f, v, indent + 2);
        }
    }
}

/* Ids and times are never cut short: a cut one is useless. */
static int kept_column(const char *key)
{
    size_t n = strlen(key);
    return (n > 3 && strcmp(key + n - 3, "_id") == 0) || strcmp(key, "seq") == 0 ||
           strcmp(key, "time") == 0 || strcmp(key, "created") == 0 || strcmp(key, "updated") == 0 ||
           strcmp(key, "expires") == 0 || strcmp(key, "state") == 0 || strcmp(key, "serial") == 0;
}

int cli_print_items(const json_t *list, const char *const *headers, const char *const *keys,
                    size_t n)
{
    cli_table *t = n <= CLI_MAX_COLUMNS ? cli_table_new(n, headers) : NULL;
    size_t i;
    const json_t *item;
    if (t == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t c = 0; c < n; c++) {
        if (kept_column(keys[c]))
            cli_table_keep(t, c);
    }
    json_array_foreach(json_object_get(list, "items"), i, item)
    {
        const char *cells[CLI_MAX_COLUMNS];
        char text[CLI_MAX_COLUMNS][512];
        for (size_t c = 0; c < n; c++)
            cells[c] = cli_scalar_text(text[c], sizeof(text[c]), json_object_get(item, keys[c]));
        if (cli_table_add(t, cells) != 0) {
            cli_table_free(t);
            return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        }
    }
    cli_table_print(t, stdout, cli_terminal_width(stdout));
    cli_table_free(t);
    return 0;
}

int cli_list_command(cli_ctx *ctx, const cli_args *a, cli_url *url, const char *const *headers,
                     const char *const *keys, size_t n)
{
    json_t *list = NULL;
    int rc = cli_list(&list, ctx, a, url);
    if (rc != 0)
        return rc;
    if (ctx->json) {
        cli_print_json(list);
    } else {
        rc = cli_print_items(list, headers, keys, n);
        if (rc == 0 && !ctx->quiet && json_string_value(json_object_get(list, "next_cursor")))
            fprintf(stderr, "custos: more on the next pages: add --all\n");
    }
    json_decref(list);
    return rc;
}
