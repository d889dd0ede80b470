/* The CA engine: creating a data directory (custosd init): the store, the CA
 * hierarchy, the TLS server certificate's names, the first operator. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "engine_int.h"

/* ---- init ----------------------------------------------------------------- */

static custos_err prepare_dir(const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    DIR *d = NULL;
    struct dirent *de;

    if (mkdir(dir, 0700) != 0) {
        CUSTOS_ENSURE(errno == EEXIST, CUSTOS_ERR_IO, "dir", "cannot create %s: %s", dir,
                      strerror(errno));
        d = opendir(dir);
        CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_IO, "dir", "cannot open %s: %s", dir, strerror(errno));
        while ((de = readdir(d)) != NULL)
            CUSTOS_ENSURE(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0,
                          CUSTOS_ERR_EXISTS, "dir", "%s is not empty", dir);
    }
    CUSTOS_ENSURE(chmod(dir, 0700) == 0, CUSTOS_ERR_IO, "dir", "cannot chmod %s: %s", dir,
                  strerror(errno));
    ret = CUSTOS_OK;
out:
    if (d != NULL)
        closedir(d);
    return ret;
}

/* The TLS server certificate's subjectAltName: the defaults plus @p names
 * (IP addresses as IP:, the rest as lowercase DNS:). */
static custos_err server_san(char *out, size_t cap, const custos_init_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i, used;
    int n = snprintf(out, cap, "%s", CUSTOS_CA_TLS_SAN_DEFAULT);
    CUSTOS_ENSURE(n > 0 && (size_t)n < cap, CUSTOS_ERR_INTERNAL, "server-name", "SAN buffer");
    used = (size_t)n;
    if (opts == NULL)
        return CUSTOS_OK;
    CUSTOS_ENSURE(opts->n_server_names <= CUSTOS_INIT_MAX_SERVER_NAMES, CUSTOS_ERR_LIMIT,
                  "server-name", "at most %d server names", CUSTOS_INIT_MAX_SERVER_NAMES);
    for (i = 0; i < opts->n_server_names; i++) {
        const char *name = opts->server_names[i];
        unsigned char addr[16];
        char lower[254];
        size_t k, len = name != NULL ? strlen(name) : 0;
        CUSTOS_ENSURE(len > 0 && len < sizeof(lower), CUSTOS_ERR_ARG, "server-name",
                      "server name %zu is empty or longer than 253 characters", i + 1);
        if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
            n = snprintf(out + used, cap - used, ",IP:%s", name);
        } else {
            for (k = 0; k <= len; k++)
                lower[k] = (char)tolower((unsigned char)name[k]);
            CUSTOS_ENSURE(custos_ca_dns_name_valid(lower, strlen(lower)), CUSTOS_ERR_ARG, "server-name",
                          "'%s' is neither a DNS name nor an IP address", name);
            n = snprintf(out + used, cap - used, ",DNS:%s", lower);
        }
        CUSTOS_ENSURE(n > 0 && (size_t)n < cap - used, CUSTOS_ERR_LIMIT, "server-name",
                      "too many server names");
        used += (size_t)n;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err first_admin(const char *dir, const custos_init_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    const custos_actor actor = {"custosd:init", "local"};
    CUSTOS_ENSURE(opts->admin_password_cap > CUSTOS_PASSWORD_GEN_LEN, CUSTOS_ERR_ARG, "password",
                  "the password buffer is too small");
    CUSTOS_GUARD(custos_engine_open(&e, dir));
    CUSTOS_GUARD(custos_engine_user_create(e, CUSTOS_FIRST_ADMIN, CUSTOS_ROLE_ADMIN, NULL,
                                           opts->admin_password, opts->admin_password_cap, &actor));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret;
}

custos_err custos_engine_init(const char *dir)
{
    return custos_engine_init_ex(dir, NULL);
}

custos_err custos_engine_init_ex(const char *dir, const custos_init_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_keystore *ks = NULL;
    custos_store *st = NULL;
    char path[PATH_MAX];
    const custos_actor actor = {"custosd:init", "local"};
    int64_t now = (int64_t)time(NULL);
    json_t *detail = NULL;
    uint8_t audit_key[32];
    char san[CUSTOS_INIT_MAX_SERVER_NAMES * 260 + 64];

    memset(audit_key, 0, sizeof(audit_key));
    CUSTOS_ENSURE(dir != NULL && dir[0] != '\0', CUSTOS_ERR_ARG, "dir", "no data directory");
    CUSTOS_ENSURE(opts == NULL || opts->version == 1, CUSTOS_ERR_ARG, "options",
                  "unknown options version");
    if (opts != NULL && opts->admin_password != NULL && opts->admin_password_cap > 0)
        opts->admin_password[0] = '\0';
    CUSTOS_GUARD(server_san(san, sizeof(san), opts));
    CUSTOS_GUARD(prepare_dir(dir));
    CUSTOS_GUARD(custos_keystore_create(dir));
    CUSTOS_GUARD(custos_keystore_open(&ks, dir));
    CUSTOS_GUARD(custos_engine_db_path(path, sizeof(path), dir));
    CUSTOS_GUARD(custos_store_sqlite_open(&st, path, 1));
    CUSTOS_GUARD(st->ops->begin(st->ctx));
    CUSTOS_GUARD(custos_ca_hierarchy_create(st, ks, dir, san, now));
    detail = json_pack("{s:s, s:s}", "root", "root.pem", "tls_san", san);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_keystore_derive(audit_key, ks, CUSTOS_AUDIT_KEY_LABEL));
    CUSTOS_GUARD(custos_audit_append(st, audit_key, now, &actor, "init", dir, detail));
    CUSTOS_GUARD(st->ops->commit(st->ctx));
    if (opts != NULL && opts->admin_password != NULL)
        CUSTOS_GUARD(first_admin(dir, opts));
    ret = CUSTOS_OK;
out:
    if (st != NULL)
        st->ops->rollback(st->ctx);
    OPENSSL_cleanse(audit_key, sizeof(audit_key));
    json_decref(detail);
    custos_store_free(st);
    custos_keystore_free(ks);
    return ret;
}
