/* Whole-file reads with a size bound, atomic durable writes, and shredding. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "internal/util.h"

custos_err custos_file_read(uint8_t **out, size_t *out_len, const char *path, size_t max)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct stat st;
    uint8_t *buf = NULL;
    size_t size = 0, got = 0;
    int fd = -1;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(path != NULL, CUSTOS_ERR_ARG, "path", "no file path given");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = custos_error_set(errno == ENOENT ? CUSTOS_ERR_NOT_FOUND : CUSTOS_ERR_IO, path,
                               "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    CUSTOS_ENSURE(fstat(fd, &st) == 0, CUSTOS_ERR_IO, path, "cannot stat %s: %s", path,
                  strerror(errno));
    CUSTOS_ENSURE(S_ISREG(st.st_mode), CUSTOS_ERR_IO, path, "%s is not a regular file", path);
    CUSTOS_ENSURE(st.st_size >= 0 && (unsigned long long)st.st_size <= max, CUSTOS_ERR_TOO_LARGE,
                  path, "%s is %lld bytes, over the limit of %zu bytes", path,
                  (long long)st.st_size, max);
    size = (size_t)st.st_size;
    buf = malloc(size + 1);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, path, "out of memory reading %s", path);
    /* Read one byte past the stat size to notice a file that grew meanwhile. */
    for (;;) {
        ssize_t r = read(fd, buf + got, size + 1 - got);

        if (r < 0 && errno == EINTR)
            continue;
        CUSTOS_ENSURE(r >= 0, CUSTOS_ERR_IO, path, "cannot read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
        CUSTOS_ENSURE(got <= size, CUSTOS_ERR_TOO_LARGE, path, "%s changed size while it was read",
                      path);
    }
    buf[got] = 0;
    *out = buf;
    *out_len = got;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    if (fd >= 0)
        (void)close(fd);
    if (buf != NULL) /* it may hold part of a key or passphrase file */
        OPENSSL_cleanse(buf, size + 1);
    free(buf);
    return ret;
}

static custos_err write_all(int fd, const uint8_t *data, size_t len, const char *path)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return custos_error_set(CUSTOS_ERR_IO, path, "cannot write %s: %s", path,
                                    w < 0 ? strerror(errno) : "short write");
        data += w;
        len -= (size_t)w;
    }
    return CUSTOS_OK;
}

/* Split @p path into its directory ("." when none). */
static custos_err dir_of(char *out, size_t cap, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL)
        return custos_strlcpy_checked(out, cap, ".", "path");
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, path, "path %s is too long", path);
    memcpy(out, path, n);
    out[n] = '\0';
    return CUSTOS_OK;
}

static custos_err fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    int ok;

    if (fd < 0)
        return custos_error_set(CUSTOS_ERR_IO, dir, "cannot open directory %s: %s", dir,
                                strerror(errno));
    ok = fsync(fd) == 0;
    (void)close(fd);
    if (!ok)
        return custos_error_set(CUSTOS_ERR_IO, dir, "cannot sync directory %s: %s", dir,
                                strerror(errno));
    return CUSTOS_OK;
}

custos_err custos_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                                    unsigned mode)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    uint8_t rnd[8];
    char rnd_hex[17];
    int fd = -1;
    int created = 0;

    CUSTOS_ENSURE(path != NULL && path[0] != '\0' && (data != NULL || len == 0), CUSTOS_ERR_ARG,
                  "path", "no file path or data given");
    CUSTOS_GUARD(dir_of(dir, sizeof(dir), path));
    for (int attempt = 0; fd < 0; attempt++) {
        int n;

        CUSTOS_GUARD(custos_random(NULL, rnd, sizeof(rnd)));
        custos_hex_encode(rnd_hex, rnd, sizeof(rnd));
        n = snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, rnd_hex);
        CUSTOS_ENSURE(n > 0 && (size_t)n < sizeof(tmp), CUSTOS_ERR_TOO_LARGE, path,
                      "path %s is too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd < 0 && errno == EEXIST && attempt < 8)
            continue;
        CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, path, "cannot create a temporary file for %s: %s",
                      path, strerror(errno));
    }
    created = 1;
    CUSTOS_GUARD(write_all(fd, data, len, path));
    CUSTOS_ENSURE(fsync(fd) == 0, CUSTOS_ERR_IO, path, "cannot sync %s: %s", path, strerror(errno));
    CUSTOS_ENSURE(close(fd) == 0, CUSTOS_ERR_IO, path, "cannot close %s: %s", path,
                  strerror(errno));
    fd = -1;
    CUSTOS_ENSURE(rename(tmp, path) == 0, CUSTOS_ERR_IO, path, "cannot replace %s: %s", path,
                  strerror(errno));
    created = 0;
    CUSTOS_GUARD(fsync_dir(dir));
    ret = CUSTOS_OK;
out:
    if (fd >= 0)
        (void)close(fd);
    if (created)
        (void)unlink(tmp);
    return ret;
}

custos_err custos_file_shred(const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char dir[PATH_MAX];
    uint8_t zeros[4096];
    struct stat st;
    size_t left;
    int fd = -1;

    CUSTOS_ENSURE(path != NULL && path[0] != '\0', CUSTOS_ERR_ARG, "path", "no file path given");
    CUSTOS_GUARD(dir_of(dir, sizeof(dir), path));
    fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        ret = CUSTOS_OK;
        goto out;
    }
    CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, path, "cannot open %s: %s", path, strerror(errno));
    CUSTOS_ENSURE(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), CUSTOS_ERR_IO, path,
                  "%s is not a regular file", path);
    memset(zeros, 0, sizeof(zeros));
    for (left = (size_t)st.st_size; left > 0;) {
        size_t n = left < sizeof(zeros) ? left : sizeof(zeros);

        CUSTOS_GUARD(write_all(fd, zeros, n, path));
        left -= n;
    }
    CUSTOS_ENSURE(fsync(fd) == 0, CUSTOS_ERR_IO, path, "cannot sync %s: %s", path, strerror(errno));
    (void)close(fd);
    fd = -1;
    CUSTOS_ENSURE(unlink(path) == 0 || errno == ENOENT, CUSTOS_ERR_IO, path, "cannot remove %s: %s",
                  path, strerror(errno));
    CUSTOS_GUARD(fsync_dir(dir));
    ret = CUSTOS_OK;
out:
    if (fd >= 0)
        (void)close(fd);
    return ret;
}
