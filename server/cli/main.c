/* custosd: the CA daemon. For now its admin subcommands, which work directly on
 * the data directory (air-gapped installations); the HTTPS API comes later. */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "custos/custos.h"
#include "engine.h"
#include "internal/util.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define PASSPHRASE_MAX 1024
#define MAX_POSITIONAL 2

/* ---- arguments ------------------------------------------------------------ */

typedef struct args {
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
    int json;
    int help;
    const char *pos[MAX_POSITIONAL];
    size_t n_pos;
} args;

typedef struct option_def {
    const char *name;
    size_t offset;  /* of the const char * field; SIZE_MAX for flags */
} option_def;

static const option_def option_defs[] = {
    {"data", offsetof(args, data)},
    {"file", offsetof(args, file)},
    {"system", offsetof(args, system)},
    {"passphrase-file", offsetof(args, passphrase_file)},
    {"out", offsetof(args, out)},
    {"valid-days", offsetof(args, valid_days)},
    {"reason", offsetof(args, reason)},
    {"state", offsetof(args, state)},
    {"component", offsetof(args, component)},
    {"serial", offsetof(args, serial)},
    {"json", SIZE_MAX},
};

typedef struct command {
    const char *group;
    const char *verb;          /* NULL: the group is the whole command */
    const char *options;       /* space-separated names the command accepts */
    const char *required;      /* space-separated names it requires */
    size_t n_pos;              /* exact number of positional arguments */
    const char *synopsis;
    const char *help;
    int (*run)(const args *a);
} command;

static const command *find_command(const char *group, const char *verb);
static void print_command_help(FILE *f, const command *c);

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

static int usage_error(const command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const command *c, const char *fmt, ...)
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

/* Returns 0, or EXIT_USAGE after printing why. */
static int parse_args(args *a, const command *c, int argc, char **argv)
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
                return usage_error(c, "unexpected argument '%s'", arg);
            a->pos[a->n_pos++] = arg;
            continue;
        }
        char name[32];
        const char *value = NULL;
        const char *eq = strchr(arg + 2, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        if (name_len >= sizeof(name))
            return usage_error(c, "unknown option '%s'", arg);
        memcpy(name, arg + 2, name_len);
        name[name_len] = '\0';
        const option_def *def = NULL;
        for (size_t k = 0; k < sizeof(option_defs) / sizeof(option_defs[0]); k++) {
            if (strcmp(option_defs[k].name, name) == 0)
                def = &option_defs[k];
        }
        if (def == NULL || !word_in(c->options, name))
            return usage_error(c, "unknown option '--%s'", name);
        if (def->offset == SIZE_MAX) {
            if (eq != NULL)
                return usage_error(c, "option '--%s' takes no value", name);
            a->json = 1;
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return usage_error(c, "option '--%s' needs a value", name);
            value = argv[++i];
        }
        const char **slot = (const char **)(void *)((char *)a + def->offset);
        if (*slot != NULL)
            return usage_error(c, "option '--%s' given twice", name);
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
            if (strlen(d->name) != len || strncmp(d->name, p, len) != 0)
                continue;
            if (*(const char *const *)(const void *)((const char *)a + d->offset) == NULL)
                return usage_error(c, "option '--%s' is required", d->name);
        }
        p = end != NULL ? end + 1 : NULL;
    }
    if (a->n_pos != c->n_pos)
        return usage_error(c, "expected %zu argument%s", c->n_pos, c->n_pos == 1 ? "" : "s");
    return 0;
}

/* ---- errors, actor, clock ------------------------------------------------- */

static int fail(custos_err err)
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

static custos_actor cli_actor(void)
{
    const struct passwd *pw = getpwuid(geteuid());
    if (pw != NULL && pw->pw_name != NULL)
        snprintf(actor_name, sizeof(actor_name), "cli:%s", pw->pw_name);
    else
        snprintf(actor_name, sizeof(actor_name), "cli:uid-%lu", (unsigned long)geteuid());
    custos_actor actor = {actor_name, "local"};
    return actor;
}

static int64_t fake_now;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

/* Test hook: CUSTOS_FAKE_NOW=<unix seconds> makes the engine use that time. */
static custos_err apply_fake_clock(custos_engine *e)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *s = getenv("CUSTOS_FAKE_NOW");
    char *end = NULL;
    if (s == NULL)
        return CUSTOS_OK;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    CUSTOS_ENSURE(errno == 0 && end != s && *end == '\0' && v > 0, CUSTOS_ERR_ARG,
                  "CUSTOS_FAKE_NOW", "CUSTOS_FAKE_NOW must be Unix seconds, got '%s'", s);
    fake_now = (int64_t)v;
    custos_engine_set_clock(e, fake_clock, NULL);
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err engine_open(custos_engine **out, const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    *out = NULL;
    CUSTOS_GUARD(custos_engine_open(&e, dir));
    CUSTOS_GUARD(apply_fake_clock(e));
    *out = e;
    e = NULL;
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret;
}

/* ---- output helpers ------------------------------------------------------- */

static void fmt_time(char out[21], int64_t t)
{
    if (t <= 0)
        snprintf(out, 21, "-");
    else
        custos_time_format(out, t);
}

static json_t *summary_json(const custos_request_summary *r)
{
    char created[21], updated[21], expires[21];
    fmt_time(created, r->created);
    fmt_time(updated, r->updated);
    fmt_time(expires, r->expires);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}",
                          "request_id", r->request_id, "device_id", r->device_id, "state",
                          custos_state_name(r->state), "system", r->system, "component",
                          r->component, "serial", r->serial, "model", r->model, "firmware",
                          r->firmware, "kind", r->kind, "via", r->via, "duplicate_serial",
                          r->duplicate_serial != 0, "created", created, "updated", updated,
                          "expires", expires);
    if (j != NULL && r->reason[0] != '\0')
        json_object_set_new(j, "reason", json_string(r->reason));
    return j;
}

static int print_json(json_t *j)
{
    if (j == NULL)
        return fail(custos_error_set(CUSTOS_ERR_NOMEM, NULL, "cannot build the JSON output"));
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    fputc('\n', stdout);
    return rc == 0 ? 0 : EXIT_REFUSED;
}

static void print_summary(const custos_request_summary *r)
{
    char created[21], expires[21];
    fmt_time(created, r->created);
    fmt_time(expires, r->expires);
    printf("  state      %s\n", custos_state_name(r->state));
    if (r->device_id[0] != '\0')
        printf("  device     %s\n", r->device_id);
    printf("  system     %s\n  component  %s\n  serial     %s\n", r->system, r->component,
           r->serial);
    printf("  kind       %s (via %s)\n  created    %s\n  expires    %s\n", r->kind, r->via,
           created, expires);
    if (r->reason[0] != '\0')
        printf("  reason     %s\n", r->reason);
    if (r->duplicate_serial)
        printf("warning: duplicate serial: another device of system %s already has serial %s\n",
               r->system, r->serial);
}

static custos_err read_passphrase(char out[PASSPHRASE_MAX + 1], size_t *out_len, const char *path)
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

/* ---- subcommands ---------------------------------------------------------- */

static int cmd_init(const args *a)
{
    custos_err ret = custos_engine_init(a->data);
    if (ret < 0)
        return fail(ret);
    printf("initialised data directory %s\n", a->data);
    char root[PATH_MAX];
    struct stat st;
    if (snprintf(root, sizeof(root), "%s/root.pem", a->data) < (int)sizeof(root) &&
        stat(root, &st) == 0)
        printf("Root of Trust certificate: %s\n", root);
    return 0;
}

static int cmd_system_create(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *json = NULL;
    size_t len = 0;
    custos_actor actor = cli_actor();
    CUSTOS_GUARD(custos_file_read(&json, &len, a->file, CUSTOS_MAX_SYSTEM_JSON_SIZE));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_system_create(e, json, len, &actor));
    printf("system created from %s\n", a->file);
    ret = CUSTOS_OK;
out:
    free(json);
    custos_engine_free(e);
    return ret < 0 ? fail(ret) : 0;
}

static int cmd_package_create(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *pkg = NULL;
    size_t pkg_len = 0;
    char pass[PASSPHRASE_MAX + 1];
    size_t pass_len = 0;
    unsigned long days = 365;
    custos_actor actor = cli_actor();
    memset(pass, 0, sizeof(pass));
    if (a->valid_days != NULL) {
        char *end = NULL;
        errno = 0;
        days = strtoul(a->valid_days, &end, 10);
        if (errno != 0 || end == a->valid_days || *end != '\0' || a->valid_days[0] == '-' ||
            days < 1 || days > CUSTOS_MAX_VALID_DAYS)
            return usage_error(find_command("package", "create"),
                               "--valid-days must be 1..%u, got '%s'", CUSTOS_MAX_VALID_DAYS,
                               a->valid_days);
    }
    CUSTOS_GUARD(read_passphrase(pass, &pass_len, a->passphrase_file));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_package_create(&pkg, &pkg_len, e, a->system, pass, pass_len,
                                              (unsigned)days, &actor));
    /* The package holds the passphrase-encrypted bootstrap key: keep it private. */
    CUSTOS_GUARD(custos_file_write_atomic(a->out, pkg, pkg_len, 0600));
    printf("provisioning package for system %s written to %s (%zu bytes, valid %lu days)\n",
           a->system, a->out, pkg_len, days);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(pass, sizeof(pass));
    free(pkg);
    custos_engine_free(e);
    return ret < 0 ? fail(ret) : 0;
}

static int cmd_request_import(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_request_summary r;
    int created = 0;
    custos_actor actor = cli_actor();
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(custos_file_read(&der, &len, a->pos[0], CUSTOS_MAX_REQUEST_SIZE));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_import(&r, &created, e, der, len, "import", &actor));
    ret = CUSTOS_OK;
out:
    free(der);
    custos_engine_free(e);
    if (ret < 0)
        return fail(ret);
    if (a->json) {
        json_t *j = summary_json(&r);
        if (j != NULL)
            json_object_set_new(j, "created", json_boolean(created));
        return print_json(j);
    }
    printf("%s request %s\n", created ? "imported" : "already imported:", r.request_id);
    print_summary(&r);
    return 0;
}

static int cmd_request_approve(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_request_summary r;
    custos_actor actor = cli_actor();
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_approve(&r, e, a->pos[0], &actor));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0)
        return fail(ret);
    if (a->json)
        return print_json(summary_json(&r));
    printf("approved request %s: certificates issued, certified profile ready\n", r.request_id);
    print_summary(&r);
    return 0;
}

static int cmd_request_reject(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_request_summary r;
    custos_actor actor = cli_actor();
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_reject(&r, e, a->pos[0], a->reason, &actor));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0)
        return fail(ret);
    if (a->json)
        return print_json(summary_json(&r));
    printf("rejected request %s\n", r.request_id);
    print_summary(&r);
    return 0;
}

static int cmd_request_show(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_request_summary r;
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_get(&r, e, a->pos[0]));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0)
        return fail(ret);
    if (a->json)
        return print_json(summary_json(&r));
    printf("request %s\n", r.request_id);
    print_summary(&r);
    return 0;
}

static int cmd_profile_export(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *cp = NULL;
    size_t len = 0;
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_profile_export(&cp, &len, e, a->pos[0]));
    /* A certified profile holds no secret. */
    CUSTOS_GUARD(custos_file_write_atomic(a->out, cp, len, 0644));
    printf("certified profile of request %s written to %s (%zu bytes)\n", a->pos[0], a->out, len);
    ret = CUSTOS_OK;
out:
    free(cp);
    custos_engine_free(e);
    return ret < 0 ? fail(ret) : 0;
}

static int cmd_device_complete(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_request_summary r;
    custos_actor actor = cli_actor();
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_device_complete(&r, e, a->pos[0], &actor));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0)
        return fail(ret);
    if (a->json)
        return print_json(summary_json(&r));
    printf("provisioning of request %s completed: device %s is provisioned\n", r.request_id,
           r.device_id);
    return 0;
}

typedef struct list_ctx {
    json_t *array;
    size_t count;
    int failed;
} list_ctx;

static int list_row(const custos_request_summary *r, void *ctx)
{
    list_ctx *l = ctx;
    char created[21];
    l->count++;
    if (l->array != NULL) {
        json_t *j = summary_json(r);
        if (j == NULL || json_array_append_new(l->array, j) != 0) {
            l->failed = 1;
            return 1;
        }
        return 0;
    }
    fmt_time(created, r->created);
    printf("%-26s  %-11s  %-16s  %-12s  %-20s  %-11s  %-9s  %s%s\n", r->request_id,
           custos_state_name(r->state), r->system, r->component, r->serial, r->kind, r->via,
           created, r->duplicate_serial ? "  (duplicate serial)" : "");
    return 0;
}

static int cmd_device_list(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_state state = 0;
    list_ctx l = {NULL, 0, 0};
    if (a->state != NULL) {
        state = custos_state_from_name(a->state);
        if (state == 0)
            return usage_error(find_command("device", "list"),
                               "unknown state '%s' (pending, approved, certified, provisioned, "
                               "rejected, expired, revoked)",
                               a->state);
    }
    if (a->json) {
        l.array = json_array();
        CUSTOS_ENSURE(l.array != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    } else {
        printf("%-26s  %-11s  %-16s  %-12s  %-20s  %-11s  %-9s  %s\n", "ID", "STATE", "SYSTEM",
               "COMPONENT", "SERIAL", "KIND", "VIA", "CREATED");
    }
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_list(e, state, list_row, &l));
    CUSTOS_ENSURE(!l.failed, CUSTOS_ERR_NOMEM, NULL, "cannot build the JSON output");
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0) {
        json_decref(l.array);
        return fail(ret);
    }
    if (l.array != NULL)
        return print_json(l.array);
    return 0;
}

static int cmd_mock_create(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_actor actor = cli_actor();
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_mock_create(e, a->system, a->component, a->serial, a->out, &actor));
    printf("mock device files for %s/%s serial %s written to %s (test only: chained to the mock "
           "root, refused where a real identity is required)\n",
           a->system, a->component, a->serial, a->out);
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret < 0 ? fail(ret) : 0;
}

static int cmd_audit_verify(const args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    size_t count = 0;
    CUSTOS_GUARD(engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_audit_verify(&count, e));
    printf("audit trail ok: %zu entries, hash chain intact\n", count);
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret < 0 ? fail(ret) : 0;
}

/* ---- command table and help ----------------------------------------------- */

static const command commands[] = {
    {"init", NULL, "data", "data", 0, "custosd init --data DIR",
     "Create a new data directory: the store, the root CA, the bootstrap CA, the package- and\n"
     "profile-signing keys, the server TLS certificate and the mock root. DIR must not exist\n"
     "or must be empty. DIR/root.pem is the Root of Trust certificate.",
     cmd_init},
    {"system", "create", "data file", "data file", 0,
     "custosd system create --data DIR --file SYSTEM.json",
     "Define a system (product) with its components and key templates from a JSON file\n"
     "(docs/formats.md); creates the system's issuing CA. A taken name is refused.",
     cmd_system_create},
    {"package", "create", "data system passphrase-file out valid-days",
     "data system passphrase-file out", 0,
     "custosd package create --data DIR --system NAME --passphrase-file FILE --out PKG.mcpp "
     "[--valid-days N]",
     "Make the system's provisioning package (.mcpp): key templates, services, Root of Trust\n"
     "and a bootstrap credential valid N days (default 365). The bootstrap key inside is\n"
     "encrypted with the passphrase read from FILE (at most 1 KiB, one trailing newline\n"
     "stripped, must not be empty). The package is written with mode 0600.",
     cmd_package_create},
    {"request", "import", "data json", "data", 1, "custosd request import --data DIR [--json] FILE.mcpr",
     "Verify a provisioning request (.mcpr) copied off a device (signature, signer chain and\n"
     "expiry, proof of possession, key templates, limits) and store it as pending. Prints the\n"
     "request id and state, and warns when another device of the system has the same serial.\n"
     "Importing the same file again shows the existing request.",
     cmd_request_import},
    {"request", "approve", "data json", "data", 1, "custosd request approve --data DIR [--json] ID",
     "Approve a pending request: issue one certificate per key and build the certified\n"
     "profile (state certified).",
     cmd_request_approve},
    {"request", "reject", "data reason json", "data reason", 1,
     "custosd request reject --data DIR --reason TEXT [--json] ID",
     "Reject a pending request; the reason is kept in the audit trail.", cmd_request_reject},
    {"request", "show", "data json", "data", 1, "custosd request show --data DIR [--json] ID",
     "Show one request and its state.", cmd_request_show},
    {"profile", "export", "data out", "data out", 1, "custosd profile export --data DIR --out FILE.mccp ID",
     "Write the certified profile (.mccp) of a certified or provisioned request, for the\n"
     "technician to install on the device.",
     cmd_profile_export},
    {"device", "complete", "data json", "data", 1, "custosd device complete --data DIR [--json] ID",
     "Complete provisioning (disconnected mode): after the technician installed the certified\n"
     "profile on the device, mark it provisioned.",
     cmd_device_complete},
    {"device", "list", "data state json", "data", 0,
     "custosd device list --data DIR [--state STATE] [--json]",
     "List requests and devices, newest first: id, state, system, component, serial, kind,\n"
     "via, created. STATE is one of pending, approved, certified, provisioned, rejected,\n"
     "expired, revoked.",
     cmd_device_list},
    {"mock", "create", "data system component serial out",
     "data system component serial out", 0,
     "custosd mock create --data DIR --system S --component C --serial X --out DIR",
     "Generate mock device files (test artifacts): keys in the clear, certificates under the\n"
     "separate mock root, marked mock so no verifier accepts them as a real device.",
     cmd_mock_create},
    {"audit", "verify", "data", "data", 0, "custosd audit verify --data DIR",
     "Recompute the hash chain of the audit trail and report the first broken entry, if any.",
     cmd_audit_verify},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command *find_command(const char *group, const char *verb)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) != 0)
            continue;
        if (commands[i].verb == NULL || (verb != NULL && strcmp(commands[i].verb, verb) == 0))
            return &commands[i];
    }
    return NULL;
}

static int group_exists(const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) == 0)
            return 1;
    }
    return 0;
}

static void print_command_help(FILE *f, const command *c)
{
    fprintf(f, "usage: %s\n\n%s\n", c->synopsis, c->help);
}

static void print_help(FILE *f)
{
    fputs("custosd " CUSTOS_VERSION_STRING " - the Custos CA: systems, provisioning packages,\n"
          "requests, certified profiles and the audit trail.\n\n"
          "Admin subcommands work directly on the data directory (air-gapped installations).\n"
          "The HTTPS API and the web console come in a later release.\n\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].synopsis);
    fputs("\n  custosd help COMMAND [SUBCOMMAND]   help on one command\n\n"
          "exit status: 0 success, 1 refused or failed (error on stderr as\n"
          "'custosd: error: CODE: MESSAGE [field: FIELD]'), 2 usage error.\n\n"
          "environment:\n"
          "  CUSTOS_FAKE_NOW=SECONDS  test hook: the engine uses this Unix time instead of the\n"
          "                           system clock (expiry tests). Never set it in production.\n",
          f);
}

static int cmd_help(int argc, char **argv)
{
    if (argc == 0) {
        print_help(stdout);
        return 0;
    }
    int found = 0;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &commands[i];
        if (strcmp(c->group, argv[0]) != 0)
            continue;
        if (argc > 1 && c->verb != NULL && strcmp(c->verb, argv[1]) != 0)
            continue;
        if (found)
            fputc('\n', stdout);
        print_command_help(stdout, c);
        found = 1;
    }
    if (!found)
        return usage_error(NULL, "no such command '%s%s%s'", argv[0], argc > 1 ? " " : "",
                           argc > 1 ? argv[1] : "");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error(NULL, "no command given");
    const char *group = argv[1];
    if (strcmp(group, "--help") == 0 || strcmp(group, "-h") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(group, "--version") == 0) {
        printf("custosd %s\n", CUSTOS_VERSION_STRING);
        return 0;
    }
    if (strcmp(group, "help") == 0)
        return cmd_help(argc - 2, argv + 2);
    if (!group_exists(group))
        return usage_error(NULL, "unknown command '%s'", group);
    const command *c = find_command(group, NULL);
    int first = 2;
    if (c == NULL || c->verb != NULL) {
        const char *verb = argc > 2 ? argv[2] : NULL;
        if (verb != NULL && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)) {
            char *hargv[1] = {argv[1]};
            return cmd_help(1, hargv);
        }
        c = verb != NULL ? find_command(group, verb) : NULL;
        if (c == NULL || c->verb == NULL) {
            fprintf(stderr, "custosd: usage error: %s '%s'\n",
                    verb == NULL ? "missing subcommand for" : "unknown subcommand of", group);
            for (size_t i = 0; i < N_COMMANDS; i++) {
                if (strcmp(commands[i].group, group) == 0)
                    fprintf(stderr, "usage: %s\n", commands[i].synopsis);
            }
            return EXIT_USAGE;
        }
        first = 3;
    }
    args a;
    int rc = parse_args(&a, c, argc - first, argv + first);
    if (rc != 0)
        return rc;
    if (a.help) {
        print_command_help(stdout, c);
        return 0;
    }
    custos_error_clear();
    return c->run(&a);
}
