/* custosd command-line front end: what main.c, args.c and the cmd_*.c files share. */
#ifndef CUSTOS_SERVER_CLI_H
#define CUSTOS_SERVER_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "custos/custos.h"
#include "engine.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define PASSPHRASE_MAX 1024
#define MAX_POSITIONAL 2
#define CLI_MAX_REPEAT 16 /* values of a repeatable option */

/* ---- arguments and the command table -------------------------------------- */

typedef struct cli_args {
    const char *data;
    const char *file;
    const char *system;
    const char *passphrase_file;
    const char *out;
    const char *valid_days;
    const char *reason;
    const char *state;
    const char *component;
    const char *serial;
    const char *role;
    const char *user;
    const char *name;
    const char *days;
    const char *password_file;
    const char *server_names[CLI_MAX_REPEAT]; /* --server-name, repeatable */
    size_t n_server_names;
    int json;
    int help;
    const char *pos[MAX_POSITIONAL];
    size_t n_pos;
} cli_args;

typedef struct cli_command {
    const char *group;
    const char *verb;     /* NULL: the group is the whole command */
    const char *options;  /* space-separated names the command accepts */
    const char *required; /* space-separated names it requires */
    size_t n_pos;         /* exact number of positional arguments */
    const char *synopsis;
    const char *help;
    int (*run)(const cli_args *a);
} cli_command;

/* The command of the table in main.c, or NULL. */
const cli_command *cli_find_command(const char *group, const char *verb);

/* Prints "custosd: usage error: ..." and, with c, its synopsis; returns EXIT_USAGE. */
int cli_usage_error(const cli_command *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns 0, or EXIT_USAGE after printing why. */
int cli_parse_args(cli_args *a, const cli_command *c, int argc, char **argv);

/* ---- errors, actor, engine, output (args.c) -------------------------------- */

/* Prints "custosd: error: CODE: MESSAGE [field: FIELD]"; returns EXIT_REFUSED. */
int cli_fail(custos_err err);
custos_actor cli_actor(void);
/* Opens the engine on dir (its clock honours CUSTOS_FAKE_NOW in test builds). */
custos_err cli_engine_open(custos_engine **out, const char *dir);
custos_err cli_read_passphrase(char out[PASSPHRASE_MAX + 1], size_t *out_len, const char *path);

void cli_fmt_time(char out[21], int64_t t);
json_t *cli_summary_json(const custos_request_summary *r);
/* Prints and frees j (NULL: out of memory). */
int cli_print_json(json_t *j);
void cli_print_summary(const custos_request_summary *r);

/* ---- subcommands (cmd_setup.c, cmd_requests.c) ----------------------------- */

int cli_cmd_init(const cli_args *a);
int cli_cmd_system_create(const cli_args *a);
int cli_cmd_package_create(const cli_args *a);
int cli_cmd_mock_create(const cli_args *a);
int cli_cmd_audit_verify(const cli_args *a);
int cli_cmd_user_create(const cli_args *a);
int cli_cmd_user_password(const cli_args *a);
int cli_cmd_token_create(const cli_args *a);

int cli_cmd_request_import(const cli_args *a);
int cli_cmd_request_approve(const cli_args *a);
int cli_cmd_request_reject(const cli_args *a);
int cli_cmd_request_show(const cli_args *a);
int cli_cmd_profile_export(const cli_args *a);
int cli_cmd_device_complete(const cli_args *a);
int cli_cmd_device_list(const cli_args *a);

#endif
