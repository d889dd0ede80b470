/* custos-device: shared pieces of the subcommands (arguments, errors, files,
 * the port). The tool uses only libcustos's public API. */
#ifndef CUSTOS_DEVICE_CLI_H
#define CUSTOS_DEVICE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "custos/connect.h"
#include "custos/custos.h"
#include "http_client.h"
#include "jsonprint.h"
#include "tool_args.h"
#include "tool_device.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define CLI_MAX_OPTS 80
#define CLI_MAX_POS 2
#define CLI_PASSPHRASE_MAX 1024

/* ---- arguments ------------------------------------------------------------ */

typedef tool_opt cli_opt;

typedef struct cli_args {
    cli_opt opts[CLI_MAX_OPTS];
    size_t n_opts;
    const char *pos[CLI_MAX_POS];
    size_t n_pos;
    int help;
} cli_args;

typedef struct cli_command {
    const char *name;
    /* Space-separated option names; a trailing '=' takes a value, a trailing
     * '*' takes a value and may repeat: "package= meta* keep-package". */
    const char *options;
    const char *required; /* space-separated names */
    const char *synopsis;
    const char *help;
    int (*run)(const cli_args *a);
} cli_command;

/* The command named @p name (main.c). */
const cli_command *cli_find(const char *name);
/* 0, or EXIT_USAGE after printing why. */
int cli_parse(cli_args *out, const cli_command *c, int argc, char **argv);
/* The value of option @p name (the last one given), or NULL. */
const char *cli_get(const cli_args *a, const char *name);
int cli_flag(const cli_args *a, const char *name);
int cli_usage_error(const cli_command *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Collect the repeated option @p name ("meta" or "manufacturer") given as
 * KEY=VALUE into @p out (pointers into argv and a static key buffer).
 * Returns 0 or EXIT_USAGE. */
int cli_collect_meta(custos_meta *out, size_t cap, size_t *out_count, const cli_args *a,
                     const char *name, const cli_command *c);

/* ---- errors --------------------------------------------------------------- */

/* Record a failure detected by the tool itself (the library records its own). */
custos_err cli_error(custos_err code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Mark the last cli_error() as more precise than whatever the library
 * records when it passes the code on (errors raised inside port callbacks). */
void cli_error_prefer(void);
/* Print "custos-device: error: CODE: MESSAGE [field: F]" and return EXIT_REFUSED. */
int cli_fail(custos_err err);

/* ---- files ---------------------------------------------------------------- */

/* Read a whole regular file of at most @p max bytes (too_large names the limit). */
custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         const char *field);
/* Write a file atomically: temp file with @p mode, fsync, rename. */
custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode);
/* Passphrase file: at most 1 KiB, one trailing newline stripped, not empty. */
custos_err cli_read_passphrase(char out[CLI_PASSPHRASE_MAX + 1], size_t *out_len, const char *path);

/* ---- the device: posix port on --device-dir, device secret, clock ------- */

typedef struct cli_device {
    tool_device td;          /* td.port: the posix port (owner: this) */
    custos_hc *hc;           /* connected mode: the HTTPS client (cli_device_connect) */
    long exchange_timeout_s; /* connected mode: at most this long per exchange */
} cli_device;

/* Open the port on --device-dir with the secret file from --secret-file,
 * $CUSTOS_SECRET_FILE, or the default. Only @p may_create_secret commands
 * (request) create a missing device directory or secret; the others report
 * them missing. */
custos_err cli_device_open(cli_device *out, const cli_args *a, int may_create_secret);
void cli_device_close(cli_device *d);
/* Connected mode: give the port a transport (tools/device/transport.c). */
custos_err cli_device_connect(cli_device *d);
/* custos_device_open() with --allow-mock honoured. */
custos_err cli_device_load(custos_device **out, const cli_device *d, const cli_args *a);

/* ---- connected mode (cmd_connect.c) --------------------------------------- */

/* Identity generation from --package etc. (the core of 'request'): 0, a
 * negative custos_err, or EXIT_USAGE after printing why. */
int cli_request_identity(const cli_args *a, const cli_command *c);
/* 0, or EXIT_USAGE when --server is given and is not an https:// URL. */
int cli_check_server(const cli_args *a, const cli_command *c);
/* Run custos_connect_step() on @p d until the server confirms the device
 * provisioned or --timeout passes; prints progress to stderr. Returns the
 * exit status (errors printed). */
int cli_connect_run(cli_device *d, const cli_args *a);

/* ---- output --------------------------------------------------------------- */

/* The subcommands. */
int cmd_request(const cli_args *a);
int cmd_install(const cli_args *a);
int cmd_status(const cli_args *a);
int cmd_sign(const cli_args *a);
int cmd_rotate(const cli_args *a);
int cmd_export_cert(const cli_args *a);
int cmd_provision(const cli_args *a);

#endif
