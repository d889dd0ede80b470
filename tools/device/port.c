/* custos-device: the posix port on --device-dir, with the device secret file
 * resolved the documented way (the test clock, in test builds, is the
 * library's: see custos_now). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static custos_err fwd_secret(uint8_t *out, size_t cap, size_t *out_len, void *ctx)
{
    const cli_device *d = ctx;
    struct stat st;
    /* Only `request` may create the device secret: anywhere else a missing
     * secret means the wrong --secret-file, and a fresh one would hide that. */
    if (!d->may_create_secret && stat(d->secret_file, &st) != 0 && errno == ENOENT) {
        custos_err r = cli_error(CUSTOS_ERR_NOT_FOUND, "secret-file",
                                 "the device secret file %s does not exist (it is created by "
                                 "'custos-device request')",
                                 d->secret_file);
        cli_error_prefer();
        return r;
    }
    return d->inner->device_secret(out, cap, out_len, d->inner->ctx);
}

static custos_err fwd_entropy(uint8_t *out, size_t len, void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->entropy(out, len, d->inner->ctx);
}

static custos_err fwd_read(uint8_t *out, size_t cap, size_t *out_len, const char *name, void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->storage_read(out, cap, out_len, name, d->inner->ctx);
}

static custos_err fwd_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->storage_write(name, data, len, d->inner->ctx);
}

static custos_err fwd_remove(const char *name, void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->storage_remove(name, d->inner->ctx);
}

static custos_err fwd_clock(int64_t *out, void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->clock(out, d->inner->ctx);
}

static custos_err fwd_transport(custos_http_response *out, const custos_http_request *req,
                                void *ctx)
{
    const cli_device *d = ctx;
    return d->inner->transport(out, req, d->inner->ctx);
}

static custos_err resolve_secret_file(char *out, size_t cap, const char *given)
{
    const char *env = getenv("CUSTOS_SECRET_FILE");
    int n;
    if (given != NULL)
        n = snprintf(out, cap, "%s", given);
    else if (env != NULL && env[0] != '\0')
        n = snprintf(out, cap, "%s", env);
    else if (geteuid() == 0)
        n = snprintf(out, cap, "%s", CUSTOS_DEFAULT_SECRET_FILE);
    else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] != '/')
            return cli_error(CUSTOS_ERR_ARG, "secret-file",
                             "HOME is not set: give --secret-file or CUSTOS_SECRET_FILE");
        n = snprintf(out, cap, "%s/.local/share/custos/device-secret", home);
    }
    if (n < 0 || (size_t)n >= cap || out[0] == '\0')
        return cli_error(CUSTOS_ERR_ARG, "secret-file",
                         "the device secret path is empty or too long");
    return CUSTOS_OK;
}

/* mkdir -p the directory holding @p file, 0700 for the parts it creates. */
static custos_err make_parent_dirs(const char *file)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", file) >= (int)sizeof(dir))
        return cli_error(CUSTOS_ERR_ARG, "secret-file", "path too long: %s", file);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return CUSTOS_OK;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return cli_error(CUSTOS_ERR_IO, "secret-file", "cannot create directory %s: %s", dir,
                             strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    return CUSTOS_OK;
}

custos_err cli_device_open(cli_device *out, const cli_args *a, int may_create_secret)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_port_posix_options opts = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    struct stat st;
    memset(out, 0, sizeof(*out));
    out->may_create_secret = may_create_secret;
    ret =
        resolve_secret_file(out->secret_file, sizeof(out->secret_file), cli_get(a, "secret-file"));
    if (ret < 0)
        goto out;
    /* Only `request` starts a device; elsewhere a missing directory is a typo
     * that the port would otherwise paper over by creating it. */
    if (!may_create_secret && (stat(cli_get(a, "device-dir"), &st) != 0 || !S_ISDIR(st.st_mode))) {
        ret = cli_error(CUSTOS_ERR_NOT_FOUND, "device-dir",
                        "the device directory %s does not exist", cli_get(a, "device-dir"));
        goto out;
    }
    if (may_create_secret && stat(out->secret_file, &st) != 0) {
        ret = make_parent_dirs(out->secret_file);
        if (ret < 0)
            goto out;
    }
    opts.device_dir = cli_get(a, "device-dir");
    opts.secret_file = out->secret_file;
    ret = custos_port_posix_new(&out->posix, &opts);
    if (ret < 0)
        goto out;
    out->inner = custos_port_posix_get(out->posix);
    out->port.version = CUSTOS_PORT_VERSION;
    out->port.device_secret = fwd_secret;
    out->port.entropy = fwd_entropy;
    out->port.storage_read = fwd_read;
    out->port.storage_write = fwd_write;
    out->port.storage_remove = fwd_remove;
    out->port.clock = fwd_clock;
    out->port.transport = out->inner->transport != NULL ? fwd_transport : NULL;
    out->port.ctx = out;
    ret = CUSTOS_OK;
out:
    if (ret < 0)
        cli_device_close(out);
    return ret;
}

void cli_device_close(cli_device *d)
{
    custos_hc_free(d->hc);
    d->hc = NULL;
    custos_port_posix_free(d->posix);
    d->posix = NULL;
    d->inner = NULL;
}

custos_err cli_device_load(custos_device **out, const cli_device *d, const cli_args *a)
{
    custos_device_options opts = CUSTOS_DEVICE_OPTIONS_INIT;
    opts.allow_mock = cli_flag(a, "allow-mock");
    return custos_device_open(out, &d->port, &opts);
}
