/* custos inspect: describe a Custos file, or the device files in a directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "custos_cli.h"

/* The largest Custos file kind. */
#define INSPECT_MAX                                                                                \
    (CUSTOS_MAX_PACKAGE_SIZE > CUSTOS_MAX_PROFILE_SIZE ? CUSTOS_MAX_PACKAGE_SIZE                   \
                                                       : CUSTOS_MAX_PROFILE_SIZE)

static int fail_msg(custos_err err, const char *field, const char *msg)
{
    fprintf(stderr, "custos: error: %s: %s", custos_err_code(err), msg);
    if (field != NULL && field[0] != '\0')
        fprintf(stderr, " [field: %s]", field);
    fputc('\n', stderr);
    return EXIT_REFUSED;
}

static int fail_lib(custos_err err)
{
    const custos_error *e = custos_error_last();
    if (e->code == err && e->message[0] != '\0')
        return fail_msg(err, e->field, e->message);
    return fail_msg(err, NULL, custos_strerror(err));
}

/* Returns 0 or an exit status after printing the error. */
static int read_file(uint8_t **out, size_t *out_len, const char *path)
{
    char msg[512];
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = EXIT_REFUSED;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = NULL;
    *out_len = 0;
    if (fd < 0) {
        snprintf(msg, sizeof(msg), "cannot open %s: %s", path, strerror(errno));
        return fail_msg(errno == ENOENT ? CUSTOS_ERR_NOT_FOUND : CUSTOS_ERR_IO, "file", msg);
    }
    if (fstat(fd, &st) != 0 || (uintmax_t)st.st_size > (uintmax_t)INSPECT_MAX) {
        snprintf(msg, sizeof(msg), "%s is %jd bytes, over the largest Custos file (%u bytes)", path,
                 (intmax_t)st.st_size, (unsigned)INSPECT_MAX);
        rc = fail_msg(CUSTOS_ERR_TOO_LARGE, "file", msg);
        goto out;
    }
    buf = malloc(INSPECT_MAX + 1);
    if (buf == NULL) {
        rc = fail_msg(CUSTOS_ERR_NOMEM, "file", "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, INSPECT_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(msg, sizeof(msg), "cannot read %s: %s", path, strerror(errno));
            rc = fail_msg(CUSTOS_ERR_IO, "file", msg);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > INSPECT_MAX) {
            snprintf(msg, sizeof(msg), "%s is over the largest Custos file (%u bytes)", path,
                     (unsigned)INSPECT_MAX);
            rc = fail_msg(CUSTOS_ERR_TOO_LARGE, "file", msg);
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/* The device secret is only ever read here: a missing one must not be created. */
typedef struct inspect_port {
    const custos_port *inner;
    custos_port port;
    const char *secret_file;
    int secret_missing;
} inspect_port;

static custos_err p_secret(uint8_t *out, size_t cap, size_t *out_len, void *ctx)
{
    inspect_port *p = ctx;
    if (access(p->secret_file, R_OK) != 0) {
        p->secret_missing = 1;
        return CUSTOS_ERR_NOT_PROVIDED;
    }
    return p->inner->device_secret(out, cap, out_len, p->inner->ctx);
}

static custos_err p_entropy(uint8_t *out, size_t len, void *ctx)
{
    inspect_port *p = ctx;
    return p->inner->entropy(out, len, p->inner->ctx);
}

static custos_err p_read(uint8_t *out, size_t cap, size_t *out_len, const char *name, void *ctx)
{
    inspect_port *p = ctx;
    return p->inner->storage_read(out, cap, out_len, name, p->inner->ctx);
}

static custos_err p_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    (void)name;
    (void)data;
    (void)len;
    (void)ctx;
    return CUSTOS_ERR_NOT_PROVIDED; /* inspect changes nothing */
}

static custos_err p_remove(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return CUSTOS_ERR_NOT_PROVIDED;
}

static custos_err p_clock(int64_t *out, void *ctx)
{
    inspect_port *p = ctx;
    return p->inner->clock(out, p->inner->ctx);
}

static const char *secret_path(char *buf, size_t cap, const char *given)
{
    const char *env = getenv("CUSTOS_SECRET_FILE");
    const char *home = getenv("HOME");
    if (given != NULL)
        return given;
    if (env != NULL && env[0] != '\0')
        return env;
    if (geteuid() == 0 || home == NULL)
        return CUSTOS_DEFAULT_SECRET_FILE;
    snprintf(buf, cap, "%s/.local/share/custos/device-secret", home);
    return buf;
}

static int inspect_dir(const char *dir, int json, const char *secret_opt)
{
    char buf[4096];
    custos_port_posix_options opts = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    custos_port_posix *posix = NULL;
    inspect_port p;
    char *out = NULL;
    int rc = EXIT_REFUSED;
    memset(&p, 0, sizeof(p));
    p.secret_file = secret_path(buf, sizeof(buf), secret_opt);
    opts.device_dir = dir;
    opts.secret_file = p.secret_file;
    custos_err ret = custos_port_posix_new(&posix, &opts);
    if (ret < 0)
        return fail_lib(ret);
    p.inner = custos_port_posix_get(posix);
    p.port.version = CUSTOS_PORT_VERSION;
    p.port.device_secret = p_secret;
    p.port.entropy = p_entropy;
    p.port.storage_read = p_read;
    p.port.storage_write = p_write;
    p.port.storage_remove = p_remove;
    p.port.clock = p_clock;
    p.port.ctx = &p;
    ret = custos_device_status(&out, &p.port);
    if (ret < 0) {
        rc = fail_lib(ret);
        goto out;
    }
    if (json) {
        fputs(out, stdout);
        fputc('\n', stdout);
    } else {
        printf("device directory %s\n", dir);
        cli_print_json_human(stdout, out);
    }
    if (p.secret_missing || access(p.secret_file, R_OK) != 0)
        fprintf(stderr,
                "custos: note: the device secret %s is not available: the private identity "
                "was not opened (its header is shown)\n",
                p.secret_file);
    rc = 0;
out:
    free(out);
    custos_port_posix_free(posix);
    return rc;
}

static int inspect_file(const char *path, int json)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char *out = NULL;
    int rc = read_file(&data, &len, path);
    if (rc != 0)
        return rc;
    custos_err ret = custos_inspect(&out, data, len);
    free(data);
    if (ret < 0)
        return fail_lib(ret);
    if (json) {
        fputs(out, stdout);
        fputc('\n', stdout);
    } else {
        printf("%s\n", path);
        cli_print_json_human(stdout, out);
    }
    free(out);
    return 0;
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL, *secret = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs("usage: custos inspect FILE|DIR [--json] [--secret-file PATH]\n", stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
            secret = argv[++i];
        } else if (strncmp(argv[i], "--", 2) == 0 || path != NULL) {
            fprintf(stderr,
                    "custos: usage error: unexpected argument '%s'\n"
                    "usage: custos inspect FILE|DIR [--json] [--secret-file PATH]\n",
                    argv[i]);
            return EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        fputs("custos: usage error: inspect needs a FILE or DIR\n"
              "usage: custos inspect FILE|DIR [--json] [--secret-file PATH]\n",
              stderr);
        return EXIT_USAGE;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return inspect_dir(path, json, secret);
    return inspect_file(path, json);
}
