/* custos-device: argument parsing and error reporting. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static custos_error tool_error;
static int tool_error_preferred;

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

int cli_parse(cli_args *out, const cli_command *c, int argc, char **argv)
{
    char why[TOOL_WHY_MAX];
    memset(out, 0, sizeof(*out));
    if (tool_args_parse(out->opts, &out->n_opts, CLI_MAX_OPTS, &out->help, c->options, c->required,
                        argc, argv, why) != 0)
        return cli_usage_error(c, "%s", why);
    return 0;
}

const char *cli_get(const cli_args *a, const char *name)
{
    return tool_opt_get(a->opts, a->n_opts, name);
}

int cli_flag(const cli_args *a, const char *name)
{
    return tool_opt_has(a->opts, a->n_opts, name);
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
