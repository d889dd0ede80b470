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
#include "tool_files.h"

static custos_err to_failure(custos_err code, const char *field, const char *message, void *ctx)
{
    cli_failure_set(ctx, code, field, "%s", message);
    return code;
}

void cli_free_secret(uint8_t *p, size_t len)
{
    tool_free_secret(p, len);
}

custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         cli_failure *fail, const char *field)
{
    const tool_report r = {to_failure, fail};
    return tool_read_file(out, out_len, path, max, O_NONBLOCK, field, &r);
}

custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode,
                          cli_failure *fail)
{
    const tool_report r = {to_failure, fail};
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_failure_set(fail, CUSTOS_ERR_ARG, "out", "%s is a directory; name the file to write",
                        path);
        return CUSTOS_ERR_ARG;
    }
    return tool_write_file(path, data, len, mode, &r);
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

int cli_body_add_secret(json_t *body, const char *key, const char *path, const char *field)
{
    char secret[CLI_SECRET_FILE_MAX + 1];
    cli_failure fail;
    if (cli_read_secret_file(secret, path, &fail, field) < 0)
        return cli_failure_print(&fail, NULL);
    json_t *v = json_string(secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (v == NULL)
        return cli_fail(CUSTOS_ERR_MALFORMED, field, "the %s in %s is not UTF-8 text", key, path);
    json_object_set_new(body, key, v);
    return 0;
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
        if (tool_dir_of(dir, sizeof(dir), path) != 0 ||
            tool_dir_of(parent, sizeof(parent), dir) != 0) {
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
