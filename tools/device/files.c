/* custos-device: reading and writing the files the operator hands over. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    int fd = -1;
    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = cli_error(errno == ENOENT ? CUSTOS_ERR_NOT_FOUND : CUSTOS_ERR_IO, field,
                        "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = cli_error(CUSTOS_ERR_IO, field, "%s is not a regular file", path);
        goto out;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)max) {
        ret = cli_error(CUSTOS_ERR_TOO_LARGE, field, "%s is %jd bytes, over the limit of %zu bytes",
                        path, (intmax_t)st.st_size, max);
        goto out;
    }
    /* One byte more than the limit detects a file that grew after fstat. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        ret = cli_error(CUSTOS_ERR_NOMEM, field, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = cli_error(CUSTOS_ERR_IO, field, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            ret = cli_error(CUSTOS_ERR_TOO_LARGE, field, "%s is over the limit of %zu bytes", path,
                            max);
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
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

/* fsync the directory holding @p path (after a rename into it). */
static custos_err fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(dir))
        return cli_error(CUSTOS_ERR_ARG, "out", "path too long: %s", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        memcpy(dir, ".", 2);
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cli_error(CUSTOS_ERR_IO, "out", "cannot open directory %s to sync it: %s", dir,
                         strerror(errno));
    int r = fsync(fd);
    int err = errno;
    close(fd);
    if (r != 0)
        return cli_error(CUSTOS_ERR_IO, "out", "cannot sync directory %s: %s", dir, strerror(err));
    return CUSTOS_OK;
}

custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char tmp[PATH_MAX];
    int fd = -1;
    int have_tmp = 0;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
        ret = cli_error(CUSTOS_ERR_ARG, "out", "path too long: %s", path);
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        ret = cli_error(CUSTOS_ERR_IO, "out", "cannot create a file next to %s: %s", path,
                        strerror(errno));
        goto out;
    }
    have_tmp = 1;
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        ret = cli_error(CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = cli_error(CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ret = cli_error(CUSTOS_ERR_IO, "out", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    have_tmp = 0;
    /* The rename is durable only once the directory entry is on disk. */
    ret = fsync_dir_of(path);
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

custos_err cli_read_passphrase(char out[CLI_PASSPHRASE_MAX + 1], size_t *out_len, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0, used = 0;
    memset(out, 0, CLI_PASSPHRASE_MAX + 1);
    *out_len = 0;
    ret = cli_read_file(&buf, &len, path, CLI_PASSPHRASE_MAX, "passphrase-file");
    if (ret < 0)
        goto out;
    used = len;
    if (used > 0 && buf[used - 1] == '\n')
        used--;
    if (used == 0) {
        ret = cli_error(CUSTOS_ERR_ARG, "passphrase-file", "the passphrase file %s is empty", path);
        goto out;
    }
    if (memchr(buf, '\0', used) != NULL) {
        ret = cli_error(CUSTOS_ERR_MALFORMED, "passphrase-file",
                        "the passphrase file %s contains a NUL byte", path);
        goto out;
    }
    memcpy(out, buf, used);
    *out_len = used;
    ret = CUSTOS_OK;
out:
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
    return ret;
}
