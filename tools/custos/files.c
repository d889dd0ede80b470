/* custos: reading the operator's input files, writing downloads and the
 * token file (atomically: temp file, fsync, rename, fsync of the directory). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "custos_cli.h"

void cli_free_secret(uint8_t *p, size_t len)
{
    if (p != NULL)
        OPENSSL_cleanse(p, len);
    free(p);
}

custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         cli_failure *fail, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    int fd = -1;
    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        ret = errno == ENOENT ? CUSTOS_ERR_NOT_FOUND : CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, field, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, field, "%s is not a regular file", path);
        goto out;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)max) {
        ret = CUSTOS_ERR_TOO_LARGE;
        cli_failure_set(fail, ret, field, "%s is %jd bytes, over the limit of %zu bytes", path,
                        (intmax_t)st.st_size, max);
        goto out;
    }
    /* One byte more than the limit detects a file that grew after fstat. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        ret = CUSTOS_ERR_NOMEM;
        cli_failure_set(fail, ret, field, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = CUSTOS_ERR_IO;
            cli_failure_set(fail, ret, field, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            ret = CUSTOS_ERR_TOO_LARGE;
            cli_failure_set(fail, ret, field, "%s is over the limit of %zu bytes", path, max);
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    cli_free_secret(buf, len);
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

/* The directory part of @p path ("." when there is none). */
static int dir_of(char *out, size_t cap, const char *path)
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
static custos_err fsync_dir_of(const char *path, cli_failure *fail)
{
    char dir[PATH_MAX];
    if (dir_of(dir, sizeof(dir), path) != 0) {
        cli_failure_set(fail, CUSTOS_ERR_ARG, "out", "path too long: %s", path);
        return CUSTOS_ERR_ARG;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "out", "cannot open directory %s to sync it: %s", dir,
                        strerror(errno));
        return CUSTOS_ERR_IO;
    }
    int r = fsync(fd);
    int err = errno;
    close(fd);
    if (r != 0) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "out", "cannot sync directory %s: %s", dir,
                        strerror(err));
        return CUSTOS_ERR_IO;
    }
    return CUSTOS_OK;
}

custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode,
                          cli_failure *fail)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char tmp[PATH_MAX];
    int fd = -1;
    int have_tmp = 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        ret = CUSTOS_ERR_ARG;
        cli_failure_set(fail, ret, "out", "%s is a directory; name the file to write", path);
        goto out;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
        ret = CUSTOS_ERR_ARG;
        cli_failure_set(fail, ret, "out", "path too long: %s", path);
        goto out;
    }
    /* mkstemp creates the file 0600: a secret is never readable by others,
     * even for a moment. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, "out", "cannot create a file next to %s: %s", path,
                        strerror(errno));
        goto out;
    }
    have_tmp = 1;
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    have_tmp = 0;
    /* The rename is durable only once the directory entry is on disk. */
    ret = fsync_dir_of(path, fail);
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

custos_err cli_read_secret_file(char *out, const char *path, cli_failure *fail, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0, used = 0;
    memset(out, 0, CLI_SECRET_FILE_MAX + 1);
    ret = cli_read_file(&buf, &len, path, CLI_SECRET_FILE_MAX, fail, field);
    if (ret < 0)
        goto out;
    used = len;
    if (used > 0 && buf[used - 1] == '\n')
        used--;
    if (used > 0 && buf[used - 1] == '\r')
        used--;
    if (used == 0) {
        ret = CUSTOS_ERR_ARG;
        cli_failure_set(fail, ret, field, "%s is empty", path);
        goto out;
    }
    if (memchr(buf, '\0', used) != NULL) {
        ret = CUSTOS_ERR_MALFORMED;
        cli_failure_set(fail, ret, field, "%s contains a NUL byte", path);
        goto out;
    }
    memcpy(out, buf, used);
    ret = CUSTOS_OK;
out:
    cli_free_secret(buf, len);
    return ret;
}

int cli_default_token_path(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    /* The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored. */
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(out, cap, "%s/custos/token", xdg);
    else if (home != NULL && home[0] == '/')
        n = snprintf(out, cap, "%s/.config/custos/token", home);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* mkdir @p dir 0700 unless it exists; an existing custos directory we own is
 * tightened to 0700. */
static custos_err ensure_dir(const char *dir, int tighten, cli_failure *fail)
{
    struct stat st;
    if (mkdir(dir, 0700) == 0)
        return CUSTOS_OK;
    if (errno != EEXIST) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "token-file", "cannot create directory %s: %s", dir,
                        strerror(errno));
        return CUSTOS_ERR_IO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "token-file", "%s is not a directory", dir);
        return CUSTOS_ERR_IO;
    }
    if (tighten && st.st_uid == geteuid() && (st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "token-file", "cannot make %s private: %s", dir,
                        strerror(errno));
        return CUSTOS_ERR_IO;
    }
    return CUSTOS_OK;
}

custos_err cli_store_token(const char *path, const char *token, int make_dir, cli_failure *fail)
{
    char dir[PATH_MAX];
    char parent[PATH_MAX];
    custos_err ret;
    if (make_dir) {
        if (dir_of(dir, sizeof(dir), path) != 0 || dir_of(parent, sizeof(parent), dir) != 0) {
            cli_failure_set(fail, CUSTOS_ERR_ARG, "token-file", "path too long: %s", path);
            return CUSTOS_ERR_ARG;
        }
        ret = ensure_dir(parent, 0, fail);
        if (ret < 0)
            return ret;
        ret = ensure_dir(dir, 1, fail);
        if (ret < 0)
            return ret;
    }
    size_t len = strlen(token);
    char *line = malloc(len + 2);
    if (line == NULL) {
        cli_failure_set(fail, CUSTOS_ERR_NOMEM, "token-file", "out of memory");
        return CUSTOS_ERR_NOMEM;
    }
    memcpy(line, token, len);
    line[len] = '\n';
    line[len + 1] = '\0';
    ret = cli_write_file(path, (const uint8_t *)line, len + 1, 0600, fail);
    if (ret < 0)
        snprintf(fail->field, sizeof(fail->field), "token-file");
    cli_free_secret((uint8_t *)line, len + 2);
    return ret;
}
