/* Shared by the command-line tools: the options of a command line, checked
 * against a spec of space-separated names where a trailing '=' takes a value
 * and a trailing '*' takes a value that may repeat ("out= json meta*"). Each
 * tool prints its own usage errors; these helpers say why in @p why. */
#ifndef CUSTOS_TOOLS_ARGS_H
#define CUSTOS_TOOLS_ARGS_H

#include <stddef.h>

#define TOOL_MAX_OPTS 80     /* options on one command line, at the most */
#define TOOL_OPT_NAME_MAX 40 /* an option's name, with its NUL */
#define TOOL_WHY_MAX 128     /* a usage error, with its NUL */

typedef struct tool_opt {
    const char *name;
    const char *value; /* NULL for flags */
} tool_opt;

/* The spec of @p name (@p len bytes) in @p options: 0 flag, '=' value, '*'
 * repeatable value; -1 when @p options does not name it. */
int tool_option_kind(const char *options, const char *name, size_t len);

/* Append the option @p name (@p len bytes, less than TOOL_OPT_NAME_MAX) of
 * spec @p kind to @p opts (*@p n_opts of @p cap <= TOOL_MAX_OPTS used; the
 * stored name lives in a static buffer). Its value is "=VALUE" at @p eq, else
 * @p next (the following argument, NULL when none). Returns 1 when @p next was
 * taken, 0 when not, -1 with the usage error in @p why. */
int tool_opt_add(tool_opt *opts, size_t *n_opts, size_t cap, const char *name, size_t len, int kind,
                 const char *eq, const char *next, char why[TOOL_WHY_MAX]);

/* Whether the option @p name was given. */
int tool_opt_has(const tool_opt *opts, size_t n_opts, const char *name);
/* The value of the option @p name (the last one given), or NULL. */
const char *tool_opt_get(const tool_opt *opts, size_t n_opts, const char *name);
/* The first name in the space-separated @p required not given, its length in
 * *@p out_len; NULL when all are. */
const char *tool_opt_missing(const tool_opt *opts, size_t n_opts, const char *required,
                             size_t *out_len);

/* Parse a command line of options only ("--name", "--name=VALUE",
 * "--name VALUE"; --help or -h sets *@p help and skips the check of
 * @p required) against @p options into @p opts (*@p n_opts of @p cap used).
 * Returns 0, or -1 with the usage error in @p why. */
int tool_args_parse(tool_opt *opts, size_t *n_opts, size_t cap, int *help, const char *options,
                    const char *required, int argc, char **argv, char why[TOOL_WHY_MAX]);

#endif
