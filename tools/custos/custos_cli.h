/* custos: the operator CLI. A REST client of custosd's operator API
 * (docs/api.md) plus `custos inspect` (offline, libcustos's public API). */
#ifndef CUSTOS_TOOL_CLI_H
#define CUSTOS_TOOL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "custos/custos.h"
#include "http_client.h"
#include "jsonprint.h"
#include "tool_args.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

#define CLI_MAX_OPTS 64
#define CLI_MAX_POS 4096
#define CLI_TOKEN_MAX 4096
#define CLI_SECRET_FILE_MAX 1024     /* password and passphrase files */
#define CLI_LIST_FILE_MAX (4u << 20) /* --allow-file, --deny-file */
#define CLI_MAX_RESPONSE (16u << 20) /* a policy answer holds lists of up to 4 MiB */

/* custos inspect PATH [--json] [--secret-file PATH] */
int cmd_inspect(int argc, char **argv);

/* ---- arguments (args.c) ---------------------------------------------------- */

typedef tool_opt cli_opt;

typedef struct cli_args {
    cli_opt opts[CLI_MAX_OPTS];
    size_t n_opts;
    const char **pos; /* positional arguments (points into argv) */
    size_t n_pos;
    int help;
} cli_args;

typedef struct cli_ctx cli_ctx;

typedef struct cli_command {
    const char *group; /* "devices" */
    const char *verb;  /* "list", or NULL for a one-word command ("login") */
    /* Space-separated option names; a trailing '=' takes a value. "out=" also
     * answers to -o. The global options are always accepted. */
    const char *options;
    const char *required; /* space-separated option names */
    size_t min_pos;
    size_t max_pos; /* CLI_MAX_POS: unbounded */
    unsigned flags; /* CLI_NO_TOKEN */
    const char *synopsis;
    const char *help;
    int (*run)(cli_ctx *ctx, const cli_args *a);
    /* Usage checks beyond the spec, before any configuration is read: 0 or
     * EXIT_USAGE after printing why. May be NULL. */
    int (*check)(const struct cli_command *c, const cli_args *a);
} cli_command;

/* The command does not need a credential (login). */
#define CLI_NO_TOKEN 1u

/* 0, or EXIT_USAGE after printing why. */
int cli_parse(cli_args *out, const cli_command *c, int argc, char **argv);
void cli_args_free(cli_args *a);
/* The value of option @p name, or NULL. */
const char *cli_get(const cli_args *a, const char *name);
int cli_flag(const cli_args *a, const char *name);
int cli_usage_error(const cli_command *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parse the value of option @p name (if given) as an integer in [min, max]
 * into @p out; 0, or EXIT_USAGE after printing why. */
int cli_get_uint(unsigned long *out, int *given, const cli_args *a, const cli_command *c,
                 const char *name, unsigned long min, unsigned long max);

/* ---- errors (args.c) ------------------------------------------------------- */

/* A failure: the server's error body, or one the tool detected itself. */
typedef struct cli_failure {
    char code[64];
    char message[512];
    char field[128];
} cli_failure;

/* Fill @p out (code from custos_err_code(@p err)). Returns EXIT_REFUSED. */
int cli_failure_set(cli_failure *out, custos_err err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fill @p out from the library's last error (set by http_client, files). */
int cli_failure_from_lib(cli_failure *out, custos_err err);
/* Print "custos: error: CODE: [LABEL: ]MESSAGE [field: F]"; returns EXIT_REFUSED. */
int cli_failure_print(const cli_failure *f, const char *label);
/* Shorthand: build and print a failure detected by the tool. */
int cli_fail(custos_err err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write @p s with control characters replaced: server strings are untrusted
 * and must not drive the terminal. */
void cli_put_safe(FILE *f, const char *s);

/* ---- the connection (client.c) --------------------------------------------- */

struct cli_ctx {
    const cli_command *cmd;
    char server[1024]; /* https://host[:port], no trailing slash */
    const char *ca_file;
    char token[CLI_TOKEN_MAX + 1];
    char token_source[1200]; /* "CUSTOS_TOKEN", "--token-file F", "F" */
    char token_file[1024];   /* where login stores it and logout removes it */
    int token_from_env;
    char auth_header[CLI_TOKEN_MAX + 32];
    int json;
    int quiet;
    custos_hc *hc;
};

/* Resolve the global options and environment into @p ctx. Does no network
 * I/O. Returns 0, EXIT_USAGE or EXIT_REFUSED after printing why. */
int cli_ctx_open(cli_ctx *ctx, const cli_command *c, const cli_args *a);
void cli_ctx_close(cli_ctx *ctx);

/* An URL under the server's /api/v1, built piece by piece; path segments and
 * query values are percent-encoded. */
typedef struct cli_url {
    char buf[4096];
    size_t len;
    int bad; /* 1: too long; 2: an empty, "." or ".." segment */
    int has_query;
} cli_url;

void cli_url_init(cli_url *u, const cli_ctx *ctx, const char *path);
void cli_url_lit(cli_url *u, const char *literal);
void cli_url_seg(cli_url *u, const char *segment);
void cli_url_query(cli_url *u, const char *name, const char *value); /* skipped if NULL */

typedef struct cli_reply {
    custos_hc_response http;
    json_t *json; /* the body when it is JSON (an object), else NULL */
    cli_failure fail;
} cli_reply;

/* Send a request (retrying a few times on 429 rate_limited after its
 * Retry-After). Returns 0 when the server answered 2xx; else EXIT_REFUSED with
 * @p out->fail filled from the error body or the transport error (nothing
 * printed). @p body may be NULL. */
int cli_call(cli_reply *out, cli_ctx *ctx, const char *method, const cli_url *url,
             const char *content_type, const uint8_t *body, size_t body_len);
/* cli_call with a JSON body (not consumed). */
int cli_call_json(cli_reply *out, cli_ctx *ctx, const char *method, const cli_url *url,
                  const json_t *body);
void cli_reply_clear(cli_reply *r);
/* Wipe the answer (it held a secret), then cli_reply_clear. */
void cli_reply_clear_secret(cli_reply *r);
/* Print the failure of @p r (with a hint for unauthenticated). Returns EXIT_REFUSED. */
int cli_reply_fail(const cli_ctx *ctx, const cli_reply *r, const char *label);
/* cli_reply_fail, then cli_reply_clear; returns EXIT_REFUSED. */
int cli_reply_fail_clear(const cli_ctx *ctx, cli_reply *r);
/* A show command: GET @p url, print the answer as it is (--json) or through
 * @p render. Returns 0 or EXIT_REFUSED. */
int cli_show_command(cli_ctx *ctx, const cli_url *url, void (*render)(const json_t *obj));
/* GET @p url (a @p type answer) into the file @p path, written atomically
 * with @p mode; says "WHAT written to PATH" unless --quiet/--json. */
int cli_download(cli_ctx *ctx, const cli_url *url, const char *type, const char *path,
                 unsigned mode, const char *what);
/* 0 when the reply's Content-Type is @p expected; else EXIT_REFUSED, failure filled. */
int cli_reply_expect_type(cli_reply *r, const char *expected);

/* Fetch a list endpoint: one page, or every page when @p all (following
 * next_cursor). @p out gets the first page's object with "items" holding every
 * item fetched and next_cursor removed when all pages were read. */
int cli_fetch_list(json_t **out, cli_ctx *ctx, cli_url *url_without_cursor, int all);

/* cli_fetch_list with the command's --limit (1-500, the page size) and --all. */
int cli_list(json_t **out, cli_ctx *ctx, const cli_args *a, cli_url *url);

/* Print the server's answer as it is, one document on stdout (--json). */
void cli_print_body(const cli_reply *r);
/* Print a JSON value as one document on stdout (--json). */
void cli_print_json(const json_t *v);

/* ---- files (files.c) ------------------------------------------------------- */

/* Read a whole regular file of at most @p max bytes (size checked before reading). */
custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         cli_failure *fail, const char *field);
/* Write a file atomically: temp file with @p mode, fsync, rename, fsync dir. */
custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode,
                          cli_failure *fail);
/* A secret file (password, passphrase): at most 1 KiB, one trailing newline
 * stripped, not empty, no NUL. @p out holds CLI_SECRET_FILE_MAX + 1. */
custos_err cli_read_secret_file(char *out, const char *path, cli_failure *fail, const char *field);
/* Read the secret file @p path (option @p field) into @p body's string
 * member @p key ("password", "passphrase"). 0, or EXIT_REFUSED after printing why. */
int cli_body_add_secret(json_t *body, const char *key, const char *path, const char *field);
/* Wipe and free. */
void cli_free_secret(uint8_t *p, size_t len);
/* The default token file: $XDG_CONFIG_HOME/custos/token, else ~/.config/custos/token. */
int cli_default_token_path(char *out, size_t cap);
/* Store the token: create the directory (0700) if needed, then write atomically 0600. */
custos_err cli_store_token(const char *path, const char *token, int make_dir, cli_failure *fail);

/* ---- rendering (render.c) -------------------------------------------------- */

/* Readable rendering of a JSON object: scalars as aligned "key: value",
 * containers as indented sections. Untrusted strings are made safe. */
void cli_render_object(FILE *f, const json_t *obj, int indent);
/* A scalar as text into @p buf ("" for null; compact JSON for containers). */
const char *cli_scalar_text(char *buf, size_t cap, const json_t *v);
/* The string member @p key of @p obj, or "" */
const char *cli_str(const json_t *obj, const char *key);

#define CLI_MAX_COLUMNS 8
/* A table of the members @p keys (n <= CLI_MAX_COLUMNS) of every item in
 * @p list's "items": ids, states, serials and times are never cut. */
int cli_print_items(const json_t *list, const char *const *headers, const char *const *keys,
                    size_t n);
/* A list command: GET @p url with --limit/--all, print the table (or --json). */
int cli_list_command(cli_ctx *ctx, const cli_args *a, cli_url *url, const char *const *headers,
                     const char *const *keys, size_t n);

/* ---- the commands ---------------------------------------------------------- */

int cmd_login(cli_ctx *ctx, const cli_args *a);
int cmd_logout(cli_ctx *ctx, const cli_args *a);
int cmd_whoami(cli_ctx *ctx, const cli_args *a);

int cmd_systems_create(cli_ctx *ctx, const cli_args *a);
int cmd_systems_list(cli_ctx *ctx, const cli_args *a);
int cmd_systems_show(cli_ctx *ctx, const cli_args *a);
int cmd_packages_create(cli_ctx *ctx, const cli_args *a);
int cmd_packages_list(cli_ctx *ctx, const cli_args *a);
int cmd_packages_download(cli_ctx *ctx, const cli_args *a);
int cmd_policies_set(cli_ctx *ctx, const cli_args *a);
int check_policies_set(const cli_command *c, const cli_args *a);
int cmd_policies_show(cli_ctx *ctx, const cli_args *a);
int cmd_mock_create(cli_ctx *ctx, const cli_args *a);

int cmd_requests_upload(cli_ctx *ctx, const cli_args *a);
int cmd_devices_list(cli_ctx *ctx, const cli_args *a);
int cmd_devices_show(cli_ctx *ctx, const cli_args *a);
int cmd_devices_approve(cli_ctx *ctx, const cli_args *a);
int check_devices_approve(const cli_command *c, const cli_args *a);
int cmd_devices_reject(cli_ctx *ctx, const cli_args *a);
int cmd_devices_complete(cli_ctx *ctx, const cli_args *a);
int cmd_profiles_download(cli_ctx *ctx, const cli_args *a);

int cmd_users_create(cli_ctx *ctx, const cli_args *a);
int check_users_create(const cli_command *c, const cli_args *a);
int cmd_users_list(cli_ctx *ctx, const cli_args *a);
int cmd_tokens_create(cli_ctx *ctx, const cli_args *a);
int cmd_tokens_list(cli_ctx *ctx, const cli_args *a);
int cmd_tokens_revoke(cli_ctx *ctx, const cli_args *a);
int cmd_audit_list(cli_ctx *ctx, const cli_args *a);
int cmd_audit_verify(cli_ctx *ctx, const cli_args *a);

#endif
