/* custos: argument parsing and error reporting. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "custos_cli.h"

/* Accepted by every REST command, before or after the command words. */
#define GLOBAL_OPTIONS "server= ca-file= token-file= json quiet"

static int spec_kind(const cli_command *c, const char *name, size_t len)
{
    int kind = tool_option_kind(GLOBAL_OPTIONS, name, len);
    if (kind < 0 && c != NULL)
        kind = tool_option_kind(c->options, name, len);
    return kind;
}

int cli_usage_error(const cli_command *c, const char *fmt, ...)
{
    va_list ap;
    fputs("custos: usage error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c != NULL) {
        fprintf(stderr, "usage: %s\n", c->synopsis);
        if (c->verb != NULL)
            fprintf(stderr, "Run 'custos %s %s --help'.\n", c->group, c->verb);
        else
            fprintf(stderr, "Run 'custos %s --help'.\n", c->group);
    } else {
        fputs("Run 'custos --help' for the list of commands.\n", stderr);
    }
    return EXIT_USAGE;
}

/* One option at argv[*i]; advances *i past its value. */
static int parse_option(cli_args *out, const cli_command *c, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *name;
    size_t len;
    const char *eq = NULL;
    if (strcmp(arg, "-o") == 0) {
        name = "out";
        len = 3;
    } else {
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    }
    int kind = spec_kind(c, name, len);
    char why[TOOL_WHY_MAX];
    if (kind < 0 || len >= TOOL_OPT_NAME_MAX)
        return cli_usage_error(c, "unknown option '%s%.*s'", arg[1] == '-' ? "--" : "-", (int)len,
                               name);
    int took = tool_opt_add(out->opts, &out->n_opts, CLI_MAX_OPTS, name, len, kind, eq,
                            *i + 1 < argc ? argv[*i + 1] : NULL, why);
    if (took < 0)
        return cli_usage_error(c, "%s", why);
    *i += took;
    return 0;
}

static int check_required(const cli_args *a, const cli_command *c)
{
    size_t len;
    const char *missing = tool_opt_missing(a->opts, a->n_opts, c->required, &len);
    if (missing != NULL)
        return cli_usage_error(c, "option '--%.*s' is required", (int)len, missing);
    return 0;
}

int cli_parse(cli_args *out, const cli_command *c, int argc, char **argv)
{
    int only_pos = 0;
    memset(out, 0, sizeof(*out));
    out->pos = calloc((size_t)argc + 1, sizeof(*out->pos));
    if (out->pos == NULL) {
        fputs("custos: error: out_of_memory: parsing the arguments\n", stderr);
        return EXIT_REFUSED;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = 1;
        } else if (!only_pos && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            out->help = 1;
        } else if (!only_pos && (strncmp(arg, "--", 2) == 0 || strcmp(arg, "-o") == 0)) {
            int rc = parse_option(out, c, argc, argv, &i);
            if (rc != 0)
                return rc;
        } else if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error(c, "unknown option '%s'", arg);
        } else {
            out->pos[out->n_pos++] = arg;
        }
    }
    if (out->help)
        return 0;
    if (out->n_pos < c->min_pos)
        return cli_usage_error(c, "missing argument");
    if (out->n_pos > c->max_pos)
        return cli_usage_error(c, "unexpected argument '%s'", out->pos[c->max_pos]);
    for (size_t i = 0; i < out->n_pos; i++) {
        if (out->pos[i][0] == '\0')
            return cli_usage_error(c, "empty argument");
    }
    for (size_t i = 0; i < out->n_opts; i++) {
        const char *v = out->opts[i].value;
        if (v != NULL && v[0] == '\0')
            return cli_usage_error(c, "option '--%s' has an empty value", out->opts[i].name);
    }
    /* The numbers every command takes the same way. */
    unsigned long n;
    int given, rc = cli_get_uint(&n, &given, out, c, "limit", 1, 500);
    if (rc == 0)
        rc = cli_get_uint(&n, &given, out, c, "days", 1, CUSTOS_MAX_VALID_DAYS);
    if (rc != 0)
        return rc;
    return check_required(out, c);
}

void cli_args_free(cli_args *a)
{
    free(a->pos);
    a->pos = NULL;
    a->n_pos = 0;
}

const char *cli_get(const cli_args *a, const char *name)
{
    return tool_opt_get(a->opts, a->n_opts, name);
}

int cli_flag(const cli_args *a, const char *name)
{
    return tool_opt_has(a->opts, a->n_opts, name);
}

int cli_get_uint(unsigned long *out, int *given, const cli_args *a, const cli_command *c,
                 const char *name, unsigned long min, unsigned long max)
{
    const char *v = cli_get(a, name);
    char *end = NULL;
    *given = 0;
    if (v == NULL)
        return 0;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || errno != 0 || *end != '\0' || n < min || n > max)
        return cli_usage_error(c, "--%s must be a whole number from %lu to %lu, got '%s'", name,
                               min, max, v);
    *out = n;
    *given = 1;
    return 0;
}

/* ---- errors ---------------------------------------------------------------- */

int cli_failure_set(cli_failure *out, custos_err err, const char *field, const char *fmt, ...)
{
    va_list ap;
    memset(out, 0, sizeof(*out));
    snprintf(out->code, sizeof(out->code), "%s", custos_err_code(err));
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(out->field, sizeof(out->field), "%s", field);
    return EXIT_REFUSED;
}

int cli_failure_from_lib(cli_failure *out, custos_err err)
{
    const custos_error *e = custos_error_last();
    if (e->code == err && e->message[0] != '\0')
        return cli_failure_set(out, err, e->field, "%s", e->message);
    return cli_failure_set(out, err, NULL, "%s", custos_strerror(err));
}

void cli_put_safe(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

int cli_failure_print(const cli_failure *f, const char *label)
{
    fputs("custos: error: ", stderr);
    cli_put_safe(stderr, f->code[0] != '\0' ? f->code : "internal");
    fputs(": ", stderr);
    if (label != NULL) {
        cli_put_safe(stderr, label);
        fputs(": ", stderr);
    }
    cli_put_safe(stderr, f->message);
    if (f->field[0] != '\0') {
        fputs(" [field: ", stderr);
        cli_put_safe(stderr, f->field);
        fputc(']', stderr);
    }
    fputc('\n', stderr);
    return EXIT_REFUSED;
}

int cli_fail(custos_err err, const char *field, const char *fmt, ...)
{
    cli_failure f;
    va_list ap;
    memset(&f, 0, sizeof(f));
    snprintf(f.code, sizeof(f.code), "%s", custos_err_code(err));
    va_start(ap, fmt);
    vsnprintf(f.message, sizeof(f.message), fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(f.field, sizeof(f.field), "%s", field);
    return cli_failure_print(&f, NULL);
}
