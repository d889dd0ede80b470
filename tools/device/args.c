/* custos-device: argument parsing and error reporting. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static custos_error tool_error;
static int tool_error_preferred;

/* The spec of @p name in @p options: 0 flag, '=' value, '*' repeatable value;
 * -1 when the command does not take it. */
static int option_kind(const char *options, const char *name, size_t len)
{
    const char *p = options;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t wlen = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t nlen = wlen;
        int kind = 0;
        if (wlen > 0 && (p[wlen - 1] == '=' || p[wlen - 1] == '*')) {
            kind = p[wlen - 1];
            nlen--;
        }
        if (nlen == len && strncmp(p, name, len) == 0)
            return kind;
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

int cli_usage_error(const cli_command *c, const char *fmt, ...)
{
    va_list ap;
    fputs("custos-device: usage error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c != NULL)
        fprintf(stderr, "usage: %s\n", c->synopsis);
    fputs("Run 'custos-device --help' for the list of commands.\n", stderr);
    return EXIT_USAGE;
}

static int is_repeated(const cli_args *a, const char *name)
{
    for (size_t i = 0; i < a->n_opts; i++) {
        if (strcmp(a->opts[i].name, name) == 0)
            return 1;
    }
    return 0;
}

int cli_parse(cli_args *out, const cli_command *c, int argc, char **argv)
{
    static char names[CLI_MAX_OPTS][40];
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            out->help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return cli_usage_error(c, "unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int kind = option_kind(c->options, name, len);
        if (kind < 0 || len >= sizeof(names[0]))
            return cli_usage_error(c, "unknown option '--%.*s'", (int)len, name);
        if (out->n_opts >= CLI_MAX_OPTS)
            return cli_usage_error(c, "too many options");
        char *stored = names[out->n_opts];
        memcpy(stored, name, len);
        stored[len] = '\0';
        const char *value = NULL;
        if (kind == 0) {
            if (eq != NULL)
                return cli_usage_error(c, "option '--%s' takes no value", stored);
        } else if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return cli_usage_error(c, "option '--%s' needs a value", stored);
        }
        if (kind != '*' && is_repeated(out, stored))
            return cli_usage_error(c, "option '--%s' given twice", stored);
        out->opts[out->n_opts].name = stored;
        out->opts[out->n_opts].value = value;
        out->n_opts++;
    }
    if (out->help)
        return 0;
    const char *p = c->required;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int found = 0;
        for (size_t i = 0; i < out->n_opts; i++) {
            if (strlen(out->opts[i].name) == len && strncmp(out->opts[i].name, p, len) == 0)
                found = 1;
        }
        if (!found)
            return cli_usage_error(c, "option '--%.*s' is required", (int)len, p);
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

const char *cli_get(const cli_args *a, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < a->n_opts; i++) {
        if (strcmp(a->opts[i].name, name) == 0)
            v = a->opts[i].value;
    }
    return v;
}

int cli_flag(const cli_args *a, const char *name)
{
    return is_repeated(a, name);
}

custos_err cli_error(custos_err code, const char *field, const char *fmt, ...)
{
    va_list ap;
    custos_error_clear();
    memset(&tool_error, 0, sizeof(tool_error));
    tool_error_preferred = 0;
    tool_error.code = code;
    va_start(ap, fmt);
    vsnprintf(tool_error.message, sizeof(tool_error.message), fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(tool_error.field, sizeof(tool_error.field), "%s", field);
    return code;
}

void cli_error_prefer(void)
{
    tool_error_preferred = 1;
}

int cli_fail(custos_err err)
{
    const custos_error *lib = custos_error_last();
    const custos_error *e = NULL;
    if (tool_error_preferred && tool_error.code == err)
        e = &tool_error;
    else if (lib->code == err && lib->message[0] != '\0')
        e = lib;
    else if (tool_error.code == err && tool_error.message[0] != '\0')
        e = &tool_error;
    fprintf(stderr, "custos-device: error: %s: %s", custos_err_code(err),
            e != NULL ? e->message : custos_strerror(err));
    if (e != NULL && e->field[0] != '\0')
        fprintf(stderr, " [field: %s]", e->field);
    fputc('\n', stderr);
    return EXIT_REFUSED;
}
