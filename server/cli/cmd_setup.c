/* custosd subcommands that set up the CA: init, system create, package create,
 * mock create, audit verify. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "custos/custos.h"
#include "engine.h"
#include "internal/util.h"

int cli_cmd_init(const cli_args *a)
{
    custos_err ret = custos_engine_init(a->data);
    if (ret < 0)
        return cli_fail(ret);
    printf("initialised data directory %s\n", a->data);
    char root[PATH_MAX];
    struct stat st;
    if (snprintf(root, sizeof(root), "%s/root.pem", a->data) < (int)sizeof(root) &&
        stat(root, &st) == 0)
        printf("Root of Trust certificate: %s\n", root);
    return 0;
}

int cli_cmd_system_create(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *json = NULL;
    size_t len = 0;
    custos_actor actor = cli_actor();
    CUSTOS_GUARD(custos_file_read(&json, &len, a->file, CUSTOS_MAX_SYSTEM_JSON_SIZE));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_system_create(e, json, len, &actor));
    printf("system created from %s\n", a->file);
    ret = CUSTOS_OK;
out:
    free(json);
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

static custos_err out_dir_writable(const char *path)
{
    char copy[PATH_MAX];
    const char *dir;

    if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "out", "the path %s is too long", path);
    dir = dirname(copy);
    if (access(dir, W_OK) != 0)
        return custos_error_set(CUSTOS_ERR_IO, "out", "cannot write %s: directory %s: %s", path,
                                dir, strerror(errno));
    return CUSTOS_OK;
}

int cli_cmd_package_create(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *pkg = NULL;
    size_t pkg_len = 0;
    char pass[PASSPHRASE_MAX + 1];
    size_t pass_len = 0;
    unsigned long days = 365;
    custos_actor actor = cli_actor();
    memset(pass, 0, sizeof(pass));
    if (a->valid_days != NULL) {
        char *end = NULL;
        errno = 0;
        days = strtoul(a->valid_days, &end, 10);
        if (errno != 0 || end == a->valid_days || *end != '\0' || a->valid_days[0] == '-' ||
            days < 1 || days > CUSTOS_MAX_VALID_DAYS)
            return cli_usage_error(cli_find_command("package", "create"),
                                   "--valid-days must be 1..%u, got '%s'", CUSTOS_MAX_VALID_DAYS,
                                   a->valid_days);
    }
    CUSTOS_GUARD(cli_read_passphrase(pass, &pass_len, a->passphrase_file));
    /* The package is recorded (and audited) when it is made: check first that
     * it can be written where asked, so a typo does not leave a package on
     * record that nobody received. */
    CUSTOS_GUARD(out_dir_writable(a->out));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_package_create(&pkg, &pkg_len, e, a->system, pass, pass_len,
                                              (unsigned)days, &actor));
    /* The package holds the passphrase-encrypted bootstrap key: keep it private. */
    CUSTOS_GUARD(custos_file_write_atomic(a->out, pkg, pkg_len, 0600));
    printf("provisioning package for system %s written to %s (%zu bytes, valid %lu days)\n",
           a->system, a->out, pkg_len, days);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(pass, sizeof(pass));
    free(pkg);
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

int cli_cmd_mock_create(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_actor actor = cli_actor();
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_mock_create(e, a->system, a->component, a->serial, a->out, &actor));
    printf("mock device files for %s/%s serial %s written to %s (test only: chained to the mock "
           "root, refused where a real identity is required)\n",
           a->system, a->component, a->serial, a->out);
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

int cli_cmd_audit_verify(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    size_t count = 0;
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_audit_verify(&count, e));
    printf("audit trail ok: %zu entries, hash chain intact\n", count);
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}
