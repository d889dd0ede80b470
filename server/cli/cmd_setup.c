/* custosd subcommands that set up the CA: init, system create, package create,
 * mock create, audit verify; operators for air-gapped administration: user
 * create, user password, token create. */
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
    custos_init_options o = CUSTOS_INIT_OPTIONS_INIT;
    char pw[CUSTOS_PASSWORD_GEN_LEN + 1];
    char root[PATH_MAX];
    struct stat st;
    custos_err ret;

    memset(pw, 0, sizeof(pw));
    o.server_names = a->server_names;
    o.n_server_names = a->n_server_names;
    o.admin_password = pw;
    o.admin_password_cap = sizeof(pw);
    ret = custos_engine_init_ex(a->data, &o);
    if (ret < 0) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return cli_fail(ret);
    }
    printf("initialised data directory %s\n", a->data);
    if (snprintf(root, sizeof(root), "%s/root.pem", a->data) < (int)sizeof(root) &&
        stat(root, &st) == 0)
        printf("Root of Trust certificate: %s\n", root);
    printf("TLS server certificate names: localhost, 127.0.0.1, ::1");
    for (size_t i = 0; i < a->n_server_names; i++)
        printf(", %s", a->server_names[i]);
    printf("\nfirst operator: %s, password: %s (shown once: keep it safe, and change it with "
           "'custosd user password' or after signing in)\n",
           CUSTOS_FIRST_ADMIN, pw);
    OPENSSL_cleanse(pw, sizeof(pw));
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

/* ---- operators ------------------------------------------------------------- */

/* The password in --password-file, or none (then one is generated). */
static custos_err password_arg(char out[PASSPHRASE_MAX + 1], int *given, const cli_args *a)
{
    size_t len = 0;
    *given = 0;
    memset(out, 0, PASSPHRASE_MAX + 1);
    if (a->password_file == NULL)
        return CUSTOS_OK;
    *given = 1;
    return cli_read_passphrase(out, &len, a->password_file);
}

int cli_cmd_user_create(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_actor actor = cli_actor();
    custos_role role = custos_role_from_name(a->role);
    char given[PASSPHRASE_MAX + 1], made[CUSTOS_PASSWORD_GEN_LEN + 1];
    int have = 0;

    memset(made, 0, sizeof(made));
    memset(given, 0, sizeof(given));
    if (role == 0)
        return cli_usage_error(cli_find_command("user", "create"),
                               "--role must be admin, approver, technician or auditor, got '%s'",
                               a->role);
    CUSTOS_GUARD(password_arg(given, &have, a));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_user_create(e, a->pos[0], role, have ? given : NULL, made,
                                           sizeof(made), &actor));
    printf("operator %s created with role %s\n", a->pos[0], custos_role_name(role));
    if (!have)
        printf("password: %s (shown once)\n", made);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(given, sizeof(given));
    OPENSSL_cleanse(made, sizeof(made));
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

int cli_cmd_user_password(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_actor actor = cli_actor();
    char given[PASSPHRASE_MAX + 1], made[CUSTOS_PASSWORD_GEN_LEN + 1];
    int have = 0;

    memset(made, 0, sizeof(made));
    memset(given, 0, sizeof(given));
    CUSTOS_GUARD(password_arg(given, &have, a));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_user_set_password(e, a->pos[0], have ? given : NULL, made,
                                                 sizeof(made), &actor));
    printf("new password set for operator %s; their sessions have ended\n", a->pos[0]);
    if (!have)
        printf("password: %s (shown once)\n", made);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(given, sizeof(given));
    OPENSSL_cleanse(made, sizeof(made));
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

int cli_cmd_token_create(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_actor actor = cli_actor();
    char id[CUSTOS_ID_LEN + 1], tok[CUSTOS_SECRET_TEXT_MAX];
    unsigned long days = 90;

    memset(tok, 0, sizeof(tok));
    if (a->days != NULL) {
        char *end = NULL;
        errno = 0;
        days = strtoul(a->days, &end, 10);
        if (errno != 0 || end == a->days || *end != '\0' || a->days[0] == '-' || days < 1 ||
            days > CUSTOS_TOKEN_MAX_DAYS)
            return cli_usage_error(cli_find_command("token", "create"),
                                   "--days must be 1..%d, got '%s'", CUSTOS_TOKEN_MAX_DAYS,
                                   a->days);
    }
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_token_create(id, tok, sizeof(tok), e, a->user, a->name,
                                            (unsigned)days, &actor));
    printf("API token %s created for operator %s (name %s), valid %lu days\n", id, a->user, a->name,
           days);
    printf("token: %s\n(shown once: send it as 'Authorization: Bearer <token>'; revoke it with "
           "DELETE /api/v1/tokens/%s)\n",
           tok, id);
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(tok, sizeof(tok));
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}
