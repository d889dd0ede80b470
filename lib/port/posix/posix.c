/* The posix port: storage objects are files in one directory, the device
 * secret is a 0600 file, entropy is OpenSSL's DRBG, the clock is time(). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "custos/port.h"
#include "internal/util.h"

#define POSIX_SECRET_LEN 32
#define POSIX_NAME_MAX 64

struct custos_port_posix {
    custos_port port;
    char *dir;
    char *secret_file;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* Storage names: [a-z0-9][a-z0-9._-]{0,63}, never "/" or "..". */
static int object_name_ok(const char *name)
{
    size_t n;
    if (name == NULL || name[0] == '\0')
        return 0;
    n = strlen(name);
    if (n > POSIX_NAME_MAX || strchr(name, '/') != NULL || strstr(name, "..") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i > 0)
            ok = ok || c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static custos_err object_path(char *out, size_t cap, const struct custos_port_posix *p,
                              const char *name)
{
    int n;
    if (!object_name_ok(name))
        return custos_error_set(CUSTOS_ERR_ARG, "name",
                                "invalid storage object name (allowed: [a-z0-9][a-z0-9._-]{0,63})");
    n = snprintf(out, cap, "%s/%s", p->dir, name);
    if (n < 0 || (size_t)n >= cap)
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "device_dir", "path of %s is too long", name);
    return 0;
}

/* Create @p dir and missing parents with mode 0700. */
static custos_err make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf))
        return custos_error_set(CUSTOS_ERR_ARG, "device_dir",
                                "directory path is empty or too long");
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return custos_error_set(CUSTOS_ERR_IO, "device_dir", "cannot create directory %s: %s",
                                    buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return custos_error_set(CUSTOS_ERR_IO, "device_dir", "%s is not a directory", dir);
    return 0;
}

static custos_err fsync_parent(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "secret_file", "path too long");
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (slash == NULL) {
        buf[0] = '.';
        buf[1] = '\0';
    } else if (slash == buf) {
        buf[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return custos_error_set(CUSTOS_ERR_IO, "secret_file", "cannot open directory %s: %s", buf,
                                strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r != 0)
        return custos_error_set(CUSTOS_ERR_IO, "secret_file", "fsync of %s failed", buf);
    return 0;
}

static custos_err read_fd(uint8_t *out, size_t cap, size_t *out_len, int fd, const char *path)
{
    size_t total = 0;
    for (;;) {
        uint8_t probe;
        uint8_t *dst = total < cap ? out + total : &probe;
        size_t want = total < cap ? cap - total : 1;
        ssize_t r = read(fd, dst, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return custos_error_set(CUSTOS_ERR_IO, path, "cannot read %s: %s", path,
                                    strerror(errno));
        if (r == 0)
            break;
        if (total >= cap)
            return custos_error_set(CUSTOS_ERR_TOO_LARGE, path, "%s is larger than %zu bytes", path,
                                    cap);
        total += (size_t)r;
    }
    *out_len = total;
    return 0;
}

static custos_err write_all(int fd, const uint8_t *data, size_t len, const char *path)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return custos_error_set(CUSTOS_ERR_IO, path, "cannot write %s: %s", path,
                                    strerror(errno));
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static custos_err secret_create(const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t secret[POSIX_SECRET_LEN];
    char dir[PATH_MAX];
    int fd = -1;
    int created = 0;
    size_t n = strlen(path);

    CUSTOS_ENSURE(n < sizeof(dir), CUSTOS_ERR_TOO_LARGE, "secret_file", "path too long");
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        CUSTOS_GUARD(make_dirs(dir));
    }
    CUSTOS_ENSURE(RAND_bytes(secret, sizeof(secret)) == 1, CUSTOS_ERR_INTERNAL, "entropy",
                  "RAND_bytes failed");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        ret = 0; /* another process created it first: use theirs */
        goto out;
    }
    CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, "secret_file", "cannot create device secret %s: %s", path,
                  strerror(errno));
    created = 1;
    CUSTOS_GUARD(write_all(fd, secret, sizeof(secret), path));
    CUSTOS_ENSURE(fsync(fd) == 0, CUSTOS_ERR_IO, "secret_file", "fsync of %s failed", path);
    CUSTOS_ENSURE(close(fd) == 0, CUSTOS_ERR_IO, "secret_file", "close of %s failed", path);
    fd = -1;
    CUSTOS_GUARD(fsync_parent(path));
    created = 0;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(path);
    OPENSSL_cleanse(secret, sizeof(secret));
    return ret;
}

static custos_err posix_device_secret(uint8_t *out, size_t cap, size_t *out_len, void *ctx)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const struct custos_port_posix *p = ctx;
    uint8_t buf[CUSTOS_DEVICE_SECRET_MAX];
    size_t len = 0;
    struct stat st;
    int fd = -1;

    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_ENSURE(out != NULL && out_len != NULL && p != NULL, CUSTOS_ERR_ARG, "device_secret",
                  "NULL argument");
    fd = open(p->secret_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        CUSTOS_GUARD(secret_create(p->secret_file));
        fd = open(p->secret_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, "secret_file", "cannot open device secret %s: %s",
                  p->secret_file, strerror(errno));
    CUSTOS_ENSURE(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), CUSTOS_ERR_IO, "secret_file",
                  "device secret %s is not a regular file", p->secret_file);
    CUSTOS_ENSURE((st.st_mode & 077) == 0, CUSTOS_ERR_IO, "secret_file",
                  "device secret %s has mode %04o: it must not be accessible to group or "
                  "others (chmod 600)",
                  p->secret_file, (unsigned)(st.st_mode & 07777));
    CUSTOS_GUARD(read_fd(buf, sizeof(buf), &len, fd, p->secret_file));
    CUSTOS_ENSURE(len >= CUSTOS_DEVICE_SECRET_MIN, CUSTOS_ERR_MALFORMED, "secret_file",
                  "device secret %s holds %zu bytes; at least %d are required", p->secret_file, len,
                  CUSTOS_DEVICE_SECRET_MIN);
    CUSTOS_ENSURE(len <= cap, CUSTOS_ERR_TOO_LARGE, "device_secret",
                  "device secret (%zu bytes) does not fit the buffer (%zu)", len, cap);
    memcpy(out, buf, len);
    *out_len = len;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(buf, sizeof(buf));
    return ret;
}

static custos_err posix_entropy(uint8_t *out, size_t len, void *ctx)
{
    (void)ctx;
    if (out == NULL && len > 0)
        return custos_error_set(CUSTOS_ERR_ARG, "entropy", "NULL buffer");
    while (len > 0) {
        int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(out, chunk) != 1)
            return custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "entropy", "RAND_bytes failed");
        out += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

static custos_err posix_storage_read(uint8_t *out, size_t cap, size_t *out_len, const char *name,
                                     void *ctx)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const struct custos_port_posix *p = ctx;
    char path[PATH_MAX];
    struct stat st;
    int fd = -1;

    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_ENSURE(out_len != NULL && (out != NULL || cap == 0), CUSTOS_ERR_ARG, "storage_read",
                  "NULL argument");
    CUSTOS_GUARD(object_path(path, sizeof(path), p, name));
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    CUSTOS_ENSURE(fd >= 0 || errno != ENOENT, CUSTOS_ERR_NOT_FOUND, name, "%s does not exist",
                  path);
    CUSTOS_ENSURE(fd >= 0, CUSTOS_ERR_IO, name, "cannot open %s: %s", path, strerror(errno));
    CUSTOS_ENSURE(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), CUSTOS_ERR_IO, name,
                  "%s is not a regular file", path);
    CUSTOS_ENSURE((uint64_t)st.st_size <= (uint64_t)cap, CUSTOS_ERR_TOO_LARGE, name,
                  "%s is %lld bytes; the limit is %zu", path, (long long)st.st_size, cap);
    CUSTOS_GUARD(read_fd(out, cap, out_len, fd, path));
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    return ret;
}

static custos_err posix_storage_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    char path[PATH_MAX];
    custos_err r = object_path(path, sizeof(path), ctx, name);
    if (r < 0)
        return r;
    return custos_file_write_atomic(path, data, len, 0600);
}

static custos_err posix_storage_remove(const char *name, void *ctx)
{
    char path[PATH_MAX];
    custos_err r = object_path(path, sizeof(path), ctx, name);
    if (r < 0)
        return r;
    return custos_file_shred(path);
}

/* The system clock; in test builds CUSTOS_FAKE_NOW overrides it
 * (custos_now, lib/util.c). */
static custos_err posix_clock(int64_t *out, void *ctx)
{
    (void)ctx;
    if (out == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "clock", "NULL argument");
    return custos_now(out, NULL);
}

custos_err custos_port_posix_new(custos_port_posix **out, const custos_port_posix_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct custos_port_posix *p = NULL;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    CUSTOS_ENSURE(opts != NULL && opts->version == CUSTOS_PORT_POSIX_OPTIONS_VERSION,
                  CUSTOS_ERR_ARG, "options", "missing options or unknown options version");
    CUSTOS_ENSURE(opts->device_dir != NULL && opts->device_dir[0] != '\0', CUSTOS_ERR_ARG,
                  "device_dir", "device_dir is required");
    CUSTOS_ENSURE(strlen(opts->device_dir) < PATH_MAX - POSIX_NAME_MAX - 2, CUSTOS_ERR_TOO_LARGE,
                  "device_dir", "device_dir is too long");
    p = calloc(1, sizeof(*p));
    CUSTOS_ENSURE(p != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    p->dir = dup_str(opts->device_dir);
    p->secret_file =
        dup_str(opts->secret_file != NULL ? opts->secret_file : CUSTOS_DEFAULT_SECRET_FILE);
    CUSTOS_ENSURE(p->dir != NULL && p->secret_file != NULL, CUSTOS_ERR_NOMEM, NULL,
                  "out of memory");
    CUSTOS_GUARD(make_dirs(p->dir));
    p->port.version = CUSTOS_PORT_VERSION;
    p->port.device_secret = posix_device_secret;
    p->port.entropy = posix_entropy;
    p->port.storage_read = posix_storage_read;
    p->port.storage_write = posix_storage_write;
    p->port.storage_remove = posix_storage_remove;
    p->port.clock = posix_clock;
    p->port.transport = NULL;
    p->port.ctx = p;
    *out = p;
    p = NULL;
    ret = 0;
out:
    custos_port_posix_free(p);
    return ret;
}

const custos_port *custos_port_posix_get(const custos_port_posix *posix)
{
    return posix != NULL ? &posix->port : NULL;
}

void custos_port_posix_free(custos_port_posix *posix)
{
    if (posix == NULL)
        return;
    free(posix->dir);
    free(posix->secret_file);
    free(posix);
}

custos_err custos_port_posix_shred(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return custos_error_set(CUSTOS_ERR_ARG, "path", "path is required");
    return custos_file_shred(path);
}
