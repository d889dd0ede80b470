/* The posix port on a device directory (see tool_device.h). The test clock,
 * in test builds, is the library's own (custos_now). */
#include "tool_device.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 4, 5))) static custos_err
fail(const tool_device *d, custos_err code, const char *field, const char *fmt, ...)
{
    char msg[TOOL_REPORT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return d->report->fn(code, field, msg, d->report->ctx);
}

static custos_err fwd_secret(uint8_t *out, size_t cap, size_t *out_len, void *ctx)
{
    const tool_device *d = ctx;
    struct stat st;
    /* Only identity generation may create the device secret: anywhere else a
     * missing secret means the wrong --secret-file, and a fresh one would hide that. */
    if (!d->may_create_secret && stat(d->secret_file, &st) != 0 && errno == ENOENT)
        return fail(d, CUSTOS_ERR_NOT_FOUND, "secret-file",
                    "the device secret file %s does not exist (it is created by "
                    "'custos-device request')",
                    d->secret_file);
    return d->inner->device_secret(out, cap, out_len, d->inner->ctx);
}

static custos_err fwd_entropy(uint8_t *out, size_t len, void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->entropy(out, len, d->inner->ctx);
}

static custos_err fwd_read(uint8_t *out, size_t cap, size_t *out_len, const char *name, void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->storage_read(out, cap, out_len, name, d->inner->ctx);
}

static custos_err fwd_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->storage_write(name, data, len, d->inner->ctx);
}

static custos_err fwd_remove(const char *name, void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->storage_remove(name, d->inner->ctx);
}

static custos_err fwd_clock(int64_t *out, void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->clock(out, d->inner->ctx);
}

static custos_err fwd_transport(custos_http_response *out, const custos_http_request *req,
                                void *ctx)
{
    const tool_device *d = ctx;
    return d->inner->transport(out, req, d->inner->ctx);
}

static custos_err resolve_secret_file(tool_device *d, const char *given)
{
    const char *env = getenv("CUSTOS_SECRET_FILE");
    char *out = d->secret_file;
    size_t cap = sizeof(d->secret_file);
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
            return fail(d, CUSTOS_ERR_ARG, "secret-file",
                        "HOME is not set: give --secret-file or CUSTOS_SECRET_FILE");
        n = snprintf(out, cap, "%s/.local/share/custos/device-secret", home);
    }
    if (n < 0 || (size_t)n >= cap || out[0] == '\0')
        return fail(d, CUSTOS_ERR_ARG, "secret-file",
                    "the device secret path is empty or too long");
    return CUSTOS_OK;
}

/* mkdir -p the directory holding the secret file, 0700 for the parts it creates. */
static custos_err make_parent_dirs(const tool_device *d)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", d->secret_file) >= (int)sizeof(dir))
        return fail(d, CUSTOS_ERR_ARG, "secret-file", "path too long: %s", d->secret_file);
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
            return fail(d, CUSTOS_ERR_IO, "secret-file", "cannot create directory %s: %s", dir,
                        strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    return CUSTOS_OK;
}

custos_err tool_device_open(tool_device *out, const char *device_dir, const char *secret_file,
                            int may_create_secret, const tool_report *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_port_posix_options opts = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    struct stat st;
    memset(out, 0, sizeof(*out));
    out->may_create_secret = may_create_secret;
    out->report = r;
    ret = resolve_secret_file(out, secret_file);
    if (ret < 0)
        goto out;
    /* Only identity generation starts a device; elsewhere a missing
     * directory is a typo that the port would otherwise paper over by creating it. */
    if (!may_create_secret && (stat(device_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        ret = fail(out, CUSTOS_ERR_NOT_FOUND, "device-dir",
                   "the device directory %s does not exist", device_dir);
        goto out;
    }
    if (may_create_secret && stat(out->secret_file, &st) != 0) {
        ret = make_parent_dirs(out);
        if (ret < 0)
            goto out;
    }
    opts.device_dir = device_dir;
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
        tool_device_close(out);
    return ret;
}

void tool_device_close(tool_device *d)
{
    if (d == NULL)
        return;
    custos_port_posix_free(d->posix);
    d->posix = NULL;
    d->inner = NULL;
}
