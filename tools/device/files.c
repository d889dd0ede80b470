/* custos-device: reading and writing the files the operator hands over. */
#include <string.h>

#include "cli.h"
#include "tool_files.h"

static custos_err to_tool_error(custos_err code, const char *field, const char *message, void *ctx)
{
    (void)ctx;
    return cli_error(code, field, "%s", message);
}

static const tool_report REPORT = {to_tool_error, NULL};

custos_err cli_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                         const char *field)
{
    return tool_read_file(out, out_len, path, max, 0, field, &REPORT);
}

custos_err cli_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode)
{
    return tool_write_file(path, data, len, mode, &REPORT);
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
    tool_free_secret(buf, len);
    return ret;
}
