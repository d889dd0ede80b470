/* custosd: argument parsing and the helpers the subcommands share (errors,
 * actor, engine with the test clock, passphrase file, output). */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "custos/custos.h"
#include "engine.h"
#include "internal/util.h"

/* ---- arguments ------------------------------------------------------------ */

typedef struct option_def {
    const char *name;
    size_t offset; /* of the const char * field; SIZE_MAX for flags, OPT_REPEAT */
} option_def;

/* --server-name: repeatable, collected into a->server_names. */
#define OPT_REPEAT (SIZE_MAX - 1)

static const option_def option_defs[] = {
    {"data", offsetof(cli_args, data)},
    {"file", offsetof(cli_args, file)},
    {"system", offsetof(cli_args, system)},
    {"passphrase-file", offsetof(cli_args, passphrase_file)},
    {"out", offsetof(cli_args, out)},
    {"valid-days", offsetof(cli_args, valid_days)},
    {"reason", offsetof(cli_args, reason)},
    {"state", offsetof(cli_args, state)},
    {"component", offsetof(cli_args, component)},
    {"serial", offsetof(cli_args, serial)},
    {"role", offsetof(cli_args, role)},
    {"user", offsetof(cli_args, user)},
    {"name", offsetof(cli_args, name)},
    {"days", offsetof(cli_args, days)},
    {"password-file", offsetof(cli_args, password_file)},
    {"server-name", OPT_REPEAT},
    {"json", SIZE_MAX},
};

static int word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

int cli_usage_error(const cli_command *c, const char *fmt, ...)
{
    va_list ap;
    fputs("custosd: usage error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c != NULL)
        fprintf(stderr, "usage: %s\n", c->synopsis);
    fputs("Run 'custosd --help' for the list of commands.\n", stderr);
    return EXIT_USAGE;
}

int cli_parse_args(cli_args *a, const cli_command *c, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (a->n_pos >= c->n_pos)
                return cli_usage_error(c, "unexpected argument '%s'", arg);
            a->pos[a->n_pos++] = arg;
            continue;
        }
        char name[32];
        const char *value = NULL;
        const char *eq = strchr(arg + 2, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        if (name_len >= sizeof(name))
            return cli_usage_error(c, "unknown option '%s'", arg);
        memcpy(name, arg + 2, name_len);
        name[name_len] = '\0';
        const option_def *def = NULL;
        for (size_t k = 0; k < sizeof(option_defs) / sizeof(option_defs[0]); k++) {
            if (strcmp(option_defs[k].name, name) == 0)
                def = &option_defs[k];
        }
        if (def == NULL || !word_in(c->options, name))
            return cli_usage_error(c, "unknown option '--%s'", name);
        if (def->offset == SIZE_MAX) {
            if (eq != NULL)
                return cli_usage_error(c, "option '--%s' takes no value", name);
            a->json = 1;
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return cli_usage_error(c, "option '--%s' needs a value", name);
            value = argv[++i];
        }
        if (def->offset == OPT_REPEAT) {
            if (a->n_server_names >= CLI_MAX_REPEAT)
                return cli_usage_error(c, "option '--%s' given more than %d times", name,
                                       CLI_MAX_REPEAT);
            a->server_names[a->n_server_names++] = value;
            continue;
        }
        const char **slot = (const char **)(void *)((char *)a + def->offset);
        if (*slot != NULL)
            return cli_usage_error(c, "option '--%s' given twice", name);
        *slot = value;
    }
    if (a->help)
        return 0;
    const char *p = c->required;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        for (size_t k = 0; k < sizeof(option_defs) / sizeof(option_defs[0]); k++) {
            const option_def *d = &option_defs[k];
            if (strlen(d->name) != len || strncmp(d->name, p, len) != 0 ||
                d->offset == OPT_REPEAT || d->offset == SIZE_MAX)
                continue;
            if (*(const char *const *)(const void *)((const char *)a + d->offset) == NULL)
                return cli_usage_error(c, "option '--%s' is required", d->name);
        }
        p = end != NULL ? end + 1 : NULL;
    }
    if (a->n_pos != c->n_pos)
        return cli_usage_error(c, "expected %zu argument%s", c->n_pos, c->n_pos == 1 ? "" : "s");
    return 0;
}

/* ---- errors, actor, clock ------------------------------------------------- */

int cli_fail(custos_err err)
{
    const custos_error *e = custos_error_last();
    const char *msg = e->code == err && e->message[0] != '\0' ? e->message : custos_strerror(err);
    fprintf(stderr, "custosd: error: %s: %s", custos_err_code(err), msg);
    if (e->code == err && e->field[0] != '\0')
        fprintf(stderr, " [field: %s]", e->field);
    fputc('\n', stderr);
    return EXIT_REFUSED;
}

static char actor_name[96];

custos_actor cli_actor(void)
{
    const struct passwd *pw = getpwuid(geteuid());
    if (pw != NULL && pw->pw_name != NULL)
        snprintf(actor_name, sizeof(actor_name), "cli:%s", pw->pw_name);
    else
        snprintf(actor_name, sizeof(actor_name), "cli:uid-%lu", (unsigned long)geteuid());
    custos_actor actor = {actor_name, "local"};
    return actor;
}

custos_err cli_engine_open(custos_engine **out, const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    int64_t test_now = 0;
    *out = NULL;
    /* A malformed CUSTOS_FAKE_NOW (test builds) is an error, not ignored. */
    CUSTOS_GUARD(custos_test_clock(&test_now));
    CUSTOS_GUARD(custos_engine_open(&e, dir));
    *out = e;
    e = NULL;
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret;
}

custos_err cli_read_passphrase(char out[PASSPHRASE_MAX + 1], size_t *out_len, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(out, 0, PASSPHRASE_MAX + 1);
    *out_len = 0;
    CUSTOS_GUARD(custos_file_read(&buf, &len, path, PASSPHRASE_MAX));
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    CUSTOS_ENSURE(len > 0, CUSTOS_ERR_ARG, "passphrase-file", "the passphrase file %s is empty",
                  path);
    CUSTOS_ENSURE(memchr(buf, '\0', len) == NULL, CUSTOS_ERR_MALFORMED, "passphrase-file",
                  "the passphrase file %s contains a NUL byte", path);
    memcpy(out, buf, len);
    *out_len = len;
    ret = CUSTOS_OK;
out:
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
    return ret;
}

/* ---- output helpers ------------------------------------------------------- */

void cli_fmt_time(char out[21], int64_t t)
{
    if (t <= 0)
        snprintf(out, 21, "-");
    else
        custos_time_format(out, t);
}

json_t *cli_summary_json(const custos_request_summary *r)
{
    char created[21], updated[21], expires[21];
    cli_fmt_time(created, r->created);
    cli_fmt_time(updated, r->updated);
    cli_fmt_time(expires, r->expires);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "request_id",
        r->request_id, "device_id", r->device_id, "state", custos_state_name(r->state), "system",
        r->system, "component", r->component, "serial", r->serial, "model", r->model, "firmware",
        r->firmware, "kind", r->kind, "via", r->via, "duplicate_serial", r->duplicate_serial != 0,
        "created", created, "updated", updated, "expires", expires);
    if (j != NULL && r->reason[0] != '\0')
        json_object_set_new(j, "reason", json_string(r->reason));
    return j;
}

int cli_print_json(json_t *j)
{
    if (j == NULL)
        return cli_fail(custos_error_set(CUSTOS_ERR_NOMEM, NULL, "cannot build the JSON output"));
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    fputc('\n', stdout);
    return rc == 0 ? 0 : EXIT_REFUSED;
}

void cli_print_summary(const custos_request_summary *r)
{
    char created[21], expires[21];
    cli_fmt_time(created, r->created);
    cli_fmt_time(expires, r->expires);
    printf("  state      %s\n", custos_state_name(r->state));
    if (r->device_id[0] != '\0')
        printf("  device     %s\n", r->device_id);
    printf("  system     %s\n  component  %s\n  serial     %s\n", r->system, r->component,
           r->serial);
    printf("  kind       %s (via %s)\n  created    %s\n  expires    %s\n", r->kind, r->via, created,
           expires);
    if (r->reason[0] != '\0')
        printf("  reason     %s\n", r->reason);
    if (r->duplicate_serial)
        printf("warning: duplicate serial: another device of system %s already has serial %s\n",
               r->system, r->serial);
}
