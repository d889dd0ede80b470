/* Shared by the command-line tools: reading input files, writing files
 * atomically. */
#include "tool_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

__attribute__((format(printf, 4, 5))) static custos_err
report(const tool_report *r, custos_err code, const char *field, const char *fmt, ...)
{
    char message[TOOL_REPORT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return r->fn(code, field, message, r->ctx);
}

void tool_free_secret(uint8_t *p, size_t len)
{
    if (p != NULL)
        OPENSSL_cleanse(p, len);
    free(p);
}

custos_err tool_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                          int open_flags, const char *field, const tool_report *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    int fd = -1;
    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | open_flags);
    if (fd < 0) {
        ret = report(r, errno == ENOENT ? CUSTOS_ERR_NOT_FOUND : CUSTOS_ERR_IO, field,
                     "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = report(r, CUSTOS_ERR_IO, field, "%s is not a regular file", path);
        goto out;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)max) {
        ret = report(r, CUSTOS_ERR_TOO_LARGE, field, "%s is %jd bytes, over the limit of %zu bytes",
                     path, (intmax_t)st.st_size, max);
        goto out;
    }
    /* One byte more than the limit detects a file that grew after fstat. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        ret = report(r, CUSTOS_ERR_NOMEM, field, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = report(r, CUSTOS_ERR_IO, field, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            ret = report(r, CUSTOS_ERR_TOO_LARGE, field, "%s is over the limit of %zu bytes", path,
                         max);
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    tool_free_secret(buf, len);
    if (fd >= 0)
        close(fd);
    return ret;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int tool_dir_of(char *out, size_t cap, const char *path)
{
    size_t n = strlen(path);
    if (n >= cap)
        return -1;
    memcpy(out, path, n + 1);
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        memcpy(out, ".", 2);
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

/* fsync the directory holding @p path (after a rename into it). */
static custos_err fsync_dir_of(const char *path, const tool_report *r)
{
    char dir[PATH_MAX];
    if (tool_dir_of(dir, sizeof(dir), path) != 0)
        return report(r, CUSTOS_ERR_ARG, "out", "path too long: %s", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return report(r, CUSTOS_ERR_IO, "out", "cannot open directory %s to sync it: %s", dir,
                      strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return report(r, CUSTOS_ERR_IO, "out", "cannot sync directory %s: %s", dir, strerror(err));
    return CUSTOS_OK;
}

custos_err tool_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode,
                           const tool_report *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char tmp[PATH_MAX];
    int fd = -1;
    int have_tmp = 0;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
        ret = report(r, CUSTOS_ERR_ARG, "out", "path too long: %s", path);
        goto out;
    }
    /* mkstemp creates the file 0600: a secret is never readable by others,
     * even for a moment. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        ret = report(r, CUSTOS_ERR_IO, "out", "cannot create a file next to %s: %s", path,
                     strerror(errno));
        goto out;
    }
    have_tmp = 1;
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        ret = report(r, CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = report(r, CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ret = report(r, CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    have_tmp = 0;
    /* The rename is durable only once the directory entry is on disk. */
    ret = fsync_dir_of(path, r);
    if (ret < 0)
        goto out;
    ret = CUSTOS_OK;
out:
    if (fd >= 0)
        close(fd);
    if (have_tmp)
        unlink(tmp);
    return ret;
}
