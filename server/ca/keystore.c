/* Key files encrypted under the master key (server/ca/keystore.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/kdf.h>
#include <openssl/crypto.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "ca/keystore.h"
#include "internal/util.h"

#define MASTER_LEN 32
#define KEY_FILE_MAX (16u * 1024u)
#define SCRYPT_N 1024
#define SCRYPT_R 8
#define SCRYPT_P 1

struct custos_keystore {
    char dir[PATH_MAX];
    char pass[2 * MASTER_LEN + 1]; /* hex of the master key */
};

static custos_err join(char *out, size_t cap, const char *dir, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, a, b != NULL ? b : "");
    if (n < 0 || (size_t)n >= cap)
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "dir", "path too long under %s", dir);
    return CUSTOS_OK;
}

custos_err custos_keystore_create(const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t master[MASTER_LEN];
    char path[PATH_MAX];
    struct stat sb;

    CUSTOS_ENSURE(dir != NULL, CUSTOS_ERR_ARG, "dir", "no data directory");
    CUSTOS_GUARD(join(path, sizeof(path), dir, "master.key", NULL));
    CUSTOS_ENSURE(stat(path, &sb) != 0, CUSTOS_ERR_EXISTS, "master.key", "%s already exists", path);
    CUSTOS_GUARD(join(path, sizeof(path), dir, "keys", NULL));
    CUSTOS_ENSURE(mkdir(path, 0700) == 0 || errno == EEXIST, CUSTOS_ERR_IO, "dir",
                  "cannot create %s: %s", path, strerror(errno));
    CUSTOS_ENSURE(chmod(path, 0700) == 0, CUSTOS_ERR_IO, "dir", "cannot chmod %s: %s", path,
                  strerror(errno));
    CUSTOS_GUARD(custos_random(NULL, master, sizeof(master)));
    CUSTOS_GUARD(join(path, sizeof(path), dir, "master.key", NULL));
    CUSTOS_GUARD(custos_file_write_atomic(path, master, sizeof(master), 0600));
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(master, sizeof(master));
    return ret;
}

custos_err custos_keystore_open(custos_keystore **out, const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_keystore *ks = NULL;
    uint8_t *master = NULL;
    size_t master_len = 0;
    char path[PATH_MAX];

    CUSTOS_ENSURE(out != NULL && dir != NULL, CUSTOS_ERR_ARG, "dir", "no data directory");
    *out = NULL;
    ks = calloc(1, sizeof(*ks));
    CUSTOS_ENSURE(ks != NULL, CUSTOS_ERR_NOMEM, "keystore", "out of memory");
    CUSTOS_GUARD(custos_strlcpy_checked(ks->dir, sizeof(ks->dir), dir, "dir"));
    CUSTOS_GUARD(join(path, sizeof(path), dir, "master.key", NULL));
    CUSTOS_GUARD(custos_file_read(&master, &master_len, path, 64));
    CUSTOS_ENSURE(master_len == MASTER_LEN, CUSTOS_ERR_MALFORMED, "master.key",
                  "%s must hold %d bytes, has %zu", path, MASTER_LEN, master_len);
    custos_hex_encode(ks->pass, master, MASTER_LEN);
    *out = ks;
    ks = NULL;
    ret = CUSTOS_OK;
out:
    if (master != NULL) {
        OPENSSL_cleanse(master, master_len);
        free(master);
    }
    custos_keystore_free(ks);
    return ret;
}

void custos_keystore_free(custos_keystore *ks)
{
    if (ks == NULL)
        return;
    OPENSSL_cleanse(ks, sizeof(*ks));
    free(ks);
}

static custos_err key_path(char *out, size_t cap, const custos_keystore *ks, const char *name)
{
    char sub[PATH_MAX];
    if (!custos_name_valid(name, CUSTOS_MAX_NAME_LEN + 16))
        return custos_error_set(CUSTOS_ERR_ARG, "key", "invalid key name");
    if (join(sub, sizeof(sub), ks->dir, "keys", NULL) < 0)
        return CUSTOS_ERR_TOO_LARGE;
    return join(out, cap, sub, name, ".key");
}

custos_err custos_keystore_put(custos_keystore *ks, const char *name, const EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char path[PATH_MAX];
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    X509_ALGOR *pbe = NULL;
    X509_SIG *enc = NULL;
    unsigned char *der = NULL;
    int der_len;

    CUSTOS_ENSURE(ks != NULL && key != NULL, CUSTOS_ERR_ARG, "key", "no key");
    CUSTOS_GUARD(key_path(path, sizeof(path), ks, name));
    p8 = EVP_PKEY2PKCS8(key);
    CUSTOS_ENSURE(p8 != NULL, CUSTOS_ERR_INTERNAL, "key", "cannot encode key %s", name);
    pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 16, NULL, SCRYPT_N, SCRYPT_R, SCRYPT_P);
    CUSTOS_ENSURE(pbe != NULL, CUSTOS_ERR_INTERNAL, "key", "scrypt parameters refused");
    enc = PKCS8_set0_pbe(ks->pass, (int)strlen(ks->pass), p8, pbe);
    CUSTOS_ENSURE(enc != NULL, CUSTOS_ERR_INTERNAL, "key", "cannot encrypt key %s", name);
    pbe = NULL; /* owned by enc now */
    der_len = i2d_X509_SIG(enc, &der);
    CUSTOS_ENSURE(der_len > 0, CUSTOS_ERR_INTERNAL, "key", "cannot encode key %s", name);
    CUSTOS_GUARD(custos_file_write_atomic(path, der, (size_t)der_len, 0600));
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    X509_SIG_free(enc);
    X509_ALGOR_free(pbe);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return ret;
}

custos_err custos_keystore_get(EVP_PKEY **out, custos_keystore *ks, const char *name)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char path[PATH_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    const unsigned char *p;
    X509_SIG *enc = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;

    CUSTOS_ENSURE(out != NULL && ks != NULL, CUSTOS_ERR_ARG, "key", "no key");
    *out = NULL;
    CUSTOS_GUARD(key_path(path, sizeof(path), ks, name));
    CUSTOS_GUARD(custos_file_read(&data, &len, path, KEY_FILE_MAX));
    p = data;
    enc = d2i_X509_SIG(NULL, &p, (long)len);
    CUSTOS_ENSURE(enc != NULL && p == data + len, CUSTOS_ERR_MALFORMED, "key",
                  "%s is not an encrypted PKCS#8 key", path);
    p8 = PKCS8_decrypt(enc, ks->pass, (int)strlen(ks->pass));
    CUSTOS_ENSURE(p8 != NULL, CUSTOS_ERR_PASSPHRASE, "key", "%s does not decrypt under master.key",
                  path);
    *out = EVP_PKCS82PKEY(p8);
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_MALFORMED, "key", "%s: bad key", path);
    ret = CUSTOS_OK;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    X509_SIG_free(enc);
    if (data != NULL) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return ret;
}

void custos_keystore_remove(custos_keystore *ks, const char *name)
{
    char path[PATH_MAX];
    if (ks == NULL || key_path(path, sizeof(path), ks, name) < 0)
        return;
    (void)unlink(path);
}

custos_err custos_keystore_derive(uint8_t out[32], const custos_keystore *ks, const char *label)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = 32;

    CUSTOS_ENSURE(ctx != NULL && ks != NULL && label != NULL, CUSTOS_ERR_NOMEM, "keystore",
                  "cannot derive a key");
    CUSTOS_ENSURE(EVP_PKEY_derive_init(ctx) == 1 &&
                      EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
                      EVP_PKEY_CTX_set1_hkdf_key(ctx, (const unsigned char *)ks->pass,
                                                 (int)strlen(ks->pass)) == 1 &&
                      EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)label,
                                                  (int)strlen(label)) == 1 &&
                      EVP_PKEY_derive(ctx, out, &n) == 1 && n == 32,
                  CUSTOS_ERR_INTERNAL, "keystore", "HKDF failed");
    ret = CUSTOS_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return ret;
}
