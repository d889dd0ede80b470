/* The .mcpi private identity: a cleartext, authenticated JSON header and the
 * private keys, sealed with AES-256-GCM under a key derived (HKDF-SHA256) from
 * the device secret, or in the clear for mock identities.
 *
 * Layout: "CUSTOSPI" | version (1 byte) | header length N (4 bytes, big
 * endian) | N bytes header JSON | body. The 13 + N leading bytes are the GCM
 * additional data, so the header cannot be changed without the secret. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "internal/format.h"

#define MAGIC "CUSTOSPI"
#define MAGIC_LEN 8
#define FILE_VERSION 1
#define PREFIX_LEN 13
#define MAX_HEADER_LEN 16384
#define SALT_LEN 32
#define IV_LEN 12
#define TAG_LEN 16
#define LOCK_ID_LEN 16
#define KEY_LEN 32
#define MAX_PKCS8_LEN 8192
#define LOCK_GCM "hkdf-sha256/aes-256-gcm"
#define LOCK_NONE "none"
#define FORMAT_NAME "custos-identity"
#define INFO_KEY "custos identity v1"
#define INFO_LOCK_ID "custos lock id v1"

/* What the header says beyond the document itself. */
typedef struct header_info {
    int locked;
    uint8_t salt[SALT_LEN];
    uint8_t iv[IV_LEN];
    uint8_t lock_id[LOCK_ID_LEN];
    custos_alg alg[CUSTOS_MAX_GENERATIONS][CUSTOS_MAX_TEMPLATES];
    uint8_t spki[CUSTOS_MAX_GENERATIONS][CUSTOS_MAX_TEMPLATES][32];
} header_info;

custos_identity_doc *custos_identity_doc_new(void)
{
    return calloc(1, sizeof(custos_identity_doc));
}

void custos_identity_doc_free(custos_identity_doc *d)
{
    if (d == NULL)
        return;
    for (size_t g = 0; g < CUSTOS_MAX_GENERATIONS; g++) {
        for (size_t k = 0; k < CUSTOS_MAX_TEMPLATES; k++)
            EVP_PKEY_free(d->gens[g].keys[k].key);
    }
    sk_X509_pop_free(d->root_of_trust, X509_free);
    OPENSSL_cleanse(d, sizeof(*d));
    free(d);
}

const custos_identity_gen *custos_identity_doc_gen(const custos_identity_doc *d,
                                                   const char *request_id)
{
    if (d == NULL || request_id == NULL)
        return NULL;
    for (size_t g = 0; g < d->n_gens && g < CUSTOS_MAX_GENERATIONS; g++) {
        if (strcmp(d->gens[g].request_id, request_id) == 0)
            return &d->gens[g];
    }
    return NULL;
}

/* ---- crypto ---------------------------------------------------------------- */

static custos_err hkdf(uint8_t *out, size_t out_len, const uint8_t *secret, size_t secret_len,
                       const uint8_t *salt, const char *info)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[5];

    CUSTOS_ENSURE(kdf != NULL && (ctx = EVP_KDF_CTX_new(kdf)) != NULL, CUSTOS_ERR_INTERNAL, NULL,
                  "HKDF is not available");
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, out_len, params) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, NULL, "HKDF failed");
        goto out;
    }
    ret = CUSTOS_OK;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ret;
}

/* AES-256-GCM; @p out receives in_len bytes (plus the tag when sealing). */
static custos_err gcm(uint8_t *out, const uint8_t key[KEY_LEN], const uint8_t iv[IV_LEN],
                      const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                      uint8_t tag[TAG_LEN], int seal)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;

    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(aad_len <= INT32_MAX && in_len <= INT32_MAX, CUSTOS_ERR_TOO_LARGE, NULL,
                  "identity too large");
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, seal) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        (in_len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) != 1) ||
        (!seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, NULL, "AES-GCM setup failed");
        goto out;
    }
    if (EVP_CipherFinal_ex(ctx, out + (in_len > 0 ? n : 0), &fin) != 1) {
        ERR_clear_error();
        ret = custos_error_set(CUSTOS_ERR_MALFORMED, "identity", "identity file was altered");
        goto out;
    }
    if (seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, NULL, "AES-GCM tag failed");
        goto out;
    }
    ret = CUSTOS_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

/* Overwrite every string in @p j (jansson owns them; they may hold key material). */
static void json_wipe(json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_string(j)) {
        OPENSSL_cleanse((void *)(uintptr_t)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, key, v) json_wipe(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) json_wipe(v);
    }
}

static custos_err key_to_b64(char **out, EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    int len = 0;

    *out = NULL;
    p8 = EVP_PKEY2PKCS8(key);
    if (p8 == NULL || (len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "key", "cannot encode a private key");
        goto out;
    }
    CUSTOS_GUARD(custos_b64_encode(out, der, (size_t)len));
    ret = CUSTOS_OK;
out:
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return ret;
}

static custos_err key_from_b64(EVP_PKEY **out, const char *b64, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    const unsigned char *p;

    *out = NULL;
    CUSTOS_GUARD(custos_b64_decode(&der, &len, b64, MAX_PKCS8_LEN, field));
    p = der;
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    CUSTOS_ENSURE(p8 != NULL && p == der + len, CUSTOS_ERR_MALFORMED, field,
                  "%s is not a PKCS#8 private key", field);
    *out = EVP_PKCS82PKEY(p8);
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_MALFORMED, field, "%s is not a usable private key",
                  field);
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (der != NULL)
        OPENSSL_clear_free(der, len);
    return ret;
}

/* ---- header ---------------------------------------------------------------- */

static custos_err set_b64(json_t *o, const char *key, const uint8_t *in, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char *s = NULL;

    CUSTOS_GUARD(custos_b64_encode(&s, in, len));
    CUSTOS_GUARD(custos_doc_set_string(o, key, s));
    ret = CUSTOS_OK;
out:
    free(s);
    return ret;
}

static custos_err header_gens_to_json(json_t **out, const custos_identity_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *gens = json_array(), *keys = NULL, *k = NULL;
    uint8_t h[32];
    char hex[65];

    *out = NULL;
    CUSTOS_ENSURE(gens != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t g = 0; g < d->n_gens; g++) {
        const custos_identity_gen *gen = &d->gens[g];

        CUSTOS_ENSURE(custos_id_valid(gen->request_id), CUSTOS_ERR_ARG, "request_id",
                      "generation %zu has no valid request id", g);
        CUSTOS_ENSURE(gen->n_keys >= 1 && gen->n_keys <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_ARG,
                      "keys", "generation %s must have 1 to %d keys", gen->request_id,
                      CUSTOS_MAX_TEMPLATES);
        keys = json_array();
        CUSTOS_ENSURE(keys != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        for (size_t i = 0; i < gen->n_keys; i++) {
            const custos_identity_key *key = &gen->keys[i];
            custos_alg alg = custos_key_alg(key->key);

            CUSTOS_ENSURE(alg != CUSTOS_ALG_NONE, CUSTOS_ERR_UNSUPPORTED, "keys",
                          "key %s has an unsupported algorithm", key->template_name);
            CUSTOS_ENSURE(custos_name_valid(key->template_name, CUSTOS_MAX_TEMPLATE_NAME_LEN),
                          CUSTOS_ERR_ARG, "keys", "invalid template name");
            CUSTOS_GUARD(custos_key_spki_sha256(h, key->key));
            custos_hex_encode(hex, h, sizeof(h));
            k = json_pack("{s:s, s:s, s:s}", "template", key->template_name, "algorithm",
                          custos_alg_name(alg), "public_key_sha256", hex);
            CUSTOS_ENSURE(k != NULL && json_array_append_new(keys, k) == 0, CUSTOS_ERR_NOMEM, NULL,
                          "out of memory");
            k = NULL;
        }
        k = json_pack("{s:s, s:o}", "request_id", gen->request_id, "keys", keys);
        keys = NULL;
        CUSTOS_ENSURE(k != NULL && json_array_append_new(gens, k) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
        k = NULL;
    }
    *out = gens;
    gens = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(k);
    json_decref(keys);
    json_decref(gens);
    return ret;
}

static custos_err header_build(char **out, size_t *out_len, const custos_identity_doc *d,
                               const header_info *hi)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *h = NULL, *tmp = NULL;

    *out = NULL;
    h = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:b}", "format", FORMAT_NAME, "version",
                  FILE_VERSION, "lock", hi->locked ? LOCK_GCM : LOCK_NONE, "system", d->system,
                  "component", d->component, "serial", d->serial, "mock", d->mock ? 1 : 0);
    CUSTOS_ENSURE(h != NULL, CUSTOS_ERR_MALFORMED, "identity",
                  "identity system, component or serial is not valid UTF-8");
    if (hi->locked) {
        CUSTOS_GUARD(set_b64(h, "salt", hi->salt, SALT_LEN));
        CUSTOS_GUARD(set_b64(h, "iv", hi->iv, IV_LEN));
        CUSTOS_GUARD(set_b64(h, "lock_id", hi->lock_id, LOCK_ID_LEN));
    }
    CUSTOS_GUARD(custos_doc_certs_to_json(&tmp, d->root_of_trust));
    CUSTOS_GUARD(custos_doc_set(h, "root_of_trust", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_doc_services_to_json(&tmp, &d->services));
    CUSTOS_GUARD(custos_doc_set(h, "services", tmp));
    tmp = NULL;
    CUSTOS_GUARD(header_gens_to_json(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(h, "generations", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_json_dump(out, out_len, h));
    CUSTOS_ENSURE(*out_len <= MAX_HEADER_LEN, CUSTOS_ERR_TOO_LARGE, "identity",
                  "identity header is %zu bytes, over the limit of %d bytes", *out_len,
                  MAX_HEADER_LEN);
    ret = CUSTOS_OK;
out:
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }
    json_decref(tmp);
    json_decref(h);
    return ret;
}

static custos_err b64_fixed(uint8_t *out, size_t len, const json_t *v, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t n = 0;

    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, field, "%s is required", field);
    CUSTOS_GUARD(custos_b64_decode(&buf, &n, json_string_value(v), len, field));
    CUSTOS_ENSURE(n == len, CUSTOS_ERR_MALFORMED, field, "%s must be %zu bytes", field, len);
    memcpy(out, buf, len);
    ret = CUSTOS_OK;
out:
    free(buf);
    return ret;
}

static custos_err header_gens_parse(custos_identity_doc *d, header_info *hi, const json_t *arr)
{
    static const char *const gen_keys[] = {"request_id", "keys", NULL};
    static const char *const key_keys[] = {"template", "algorithm", "public_key_sha256", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char f[96];

    CUSTOS_ENSURE(json_is_array(arr), CUSTOS_ERR_MALFORMED, "generations",
                  "generations must be an array");
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_GENERATIONS, CUSTOS_ERR_LIMIT, "generations",
                  "an identity holds at most %d generations", CUSTOS_MAX_GENERATIONS);
    for (size_t g = 0; g < json_array_size(arr); g++) {
        const json_t *jg = json_array_get(arr, g), *keys, *v;
        custos_identity_gen *gen = &d->gens[g];

        (void)snprintf(f, sizeof(f), "generations[%zu]", g);
        CUSTOS_GUARD(custos_json_check_keys(jg, gen_keys, f));
        (void)snprintf(f, sizeof(f), "generations[%zu].request_id", g);
        v = json_object_get(jg, "request_id");
        CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, f, "%s is required", f);
        CUSTOS_GUARD(custos_doc_copy(gen->request_id, sizeof(gen->request_id), json_string_value(v),
                                     CUSTOS_DOC_ID, f));
        CUSTOS_ENSURE(custos_identity_doc_gen(d, gen->request_id) == NULL, CUSTOS_ERR_DUPLICATE, f,
                      "%s: request id listed twice", f);
        keys = json_object_get(jg, "keys");
        (void)snprintf(f, sizeof(f), "generations[%zu].keys", g);
        CUSTOS_ENSURE(json_is_array(keys) && json_array_size(keys) >= 1, CUSTOS_ERR_MALFORMED, f,
                      "%s must be a non-empty array", f);
        CUSTOS_ENSURE(json_array_size(keys) <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT, f,
                      "%s has more than %d keys", f, CUSTOS_MAX_TEMPLATES);
        for (size_t i = 0; i < json_array_size(keys); i++) {
            const json_t *jk = json_array_get(keys, i);

            (void)snprintf(f, sizeof(f), "generations[%zu].keys[%zu]", g, i);
            CUSTOS_GUARD(custos_json_check_keys(jk, key_keys, f));
            v = json_object_get(jk, "template");
            CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, f, "%s.template is required", f);
            CUSTOS_GUARD(custos_doc_copy(gen->keys[i].template_name,
                                         sizeof(gen->keys[i].template_name), json_string_value(v),
                                         CUSTOS_DOC_NAME, f));
            for (size_t k = 0; k < i; k++)
                CUSTOS_ENSURE(strcmp(gen->keys[k].template_name, gen->keys[i].template_name) != 0,
                              CUSTOS_ERR_DUPLICATE, f, "%s: template listed twice", f);
            v = json_object_get(jk, "algorithm");
            hi->alg[g][i] = custos_alg_from_name(json_string_value(v));
            CUSTOS_ENSURE(hi->alg[g][i] != CUSTOS_ALG_NONE, CUSTOS_ERR_UNSUPPORTED, f,
                          "%s.algorithm is missing or not supported", f);
            v = json_object_get(jk, "public_key_sha256");
            CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, f,
                          "%s.public_key_sha256 is required", f);
            CUSTOS_GUARD(custos_hex_decode(hi->spki[g][i], 32, json_string_value(v), f));
            gen->n_keys++;
        }
        d->n_gens++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err header_parse(custos_identity_doc *d, header_info *hi, const json_t *h)
{
    static const char *const keys[] = {"format",        "version",  "lock",        "salt",   "iv",
                                       "lock_id",       "system",   "component",   "serial", "mock",
                                       "root_of_trust", "services", "generations", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const json_t *v;
    const char *lock;

    CUSTOS_GUARD(custos_json_check_keys(h, keys, "identity header"));
    v = json_object_get(h, "format");
    CUSTOS_ENSURE(json_is_string(v) && strcmp(json_string_value(v), FORMAT_NAME) == 0,
                  CUSTOS_ERR_MALFORMED, "format", "this is not a Custos identity file");
    v = json_object_get(h, "version");
    CUSTOS_ENSURE(json_is_integer(v), CUSTOS_ERR_MALFORMED, "version", "version is required");
    CUSTOS_ENSURE(json_integer_value(v) == FILE_VERSION, CUSTOS_ERR_UNSUPPORTED, "version",
                  "identity version %lld is not supported (only 1)",
                  (long long)json_integer_value(v));
    v = json_object_get(h, "mock");
    CUSTOS_ENSURE(json_is_boolean(v), CUSTOS_ERR_MALFORMED, "mock", "mock must be true or false");
    d->mock = json_is_true(v);
    v = json_object_get(h, "lock");
    lock = json_string_value(v);
    CUSTOS_ENSURE(lock != NULL && (strcmp(lock, LOCK_GCM) == 0 || strcmp(lock, LOCK_NONE) == 0),
                  CUSTOS_ERR_UNSUPPORTED, "lock", "identity lock \"%.40s\" is not supported",
                  lock != NULL ? lock : "");
    hi->locked = strcmp(lock, LOCK_GCM) == 0;
    /* A real identity is always device-locked; only mock identities are in the clear. */
    CUSTOS_ENSURE(hi->locked == !d->mock, CUSTOS_ERR_MALFORMED, "lock",
                  d->mock ? "a mock identity must not be device-locked"
                          : "a device identity must be device-locked");
    if (hi->locked) {
        CUSTOS_GUARD(b64_fixed(hi->salt, SALT_LEN, json_object_get(h, "salt"), "salt"));
        CUSTOS_GUARD(b64_fixed(hi->iv, IV_LEN, json_object_get(h, "iv"), "iv"));
        CUSTOS_GUARD(b64_fixed(hi->lock_id, LOCK_ID_LEN, json_object_get(h, "lock_id"), "lock_id"));
    } else {
        CUSTOS_ENSURE(json_object_get(h, "salt") == NULL && json_object_get(h, "iv") == NULL &&
                          json_object_get(h, "lock_id") == NULL,
                      CUSTOS_ERR_MALFORMED, "lock", "an unlocked identity has no lock parameters");
    }
    v = json_object_get(h, "system");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, "system", "system is required");
    CUSTOS_GUARD(custos_doc_copy(d->system, sizeof(d->system), json_string_value(v),
                                 CUSTOS_DOC_NAME, "system"));
    v = json_object_get(h, "component");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, "component", "component is required");
    CUSTOS_GUARD(custos_doc_copy(d->component, sizeof(d->component), json_string_value(v),
                                 CUSTOS_DOC_NAME, "component"));
    v = json_object_get(h, "serial");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, "serial", "serial is required");
    CUSTOS_GUARD(custos_doc_copy(d->serial, sizeof(d->serial), json_string_value(v),
                                 CUSTOS_DOC_SERIAL, "serial"));
    CUSTOS_GUARD(custos_doc_certs_from_json(&d->root_of_trust, json_object_get(h, "root_of_trust"),
                                            0, CUSTOS_DOC_MAX_CERTS, "root_of_trust"));
    v = json_object_get(h, "services");
    CUSTOS_ENSURE(v != NULL, CUSTOS_ERR_MALFORMED, "services", "services is required");
    CUSTOS_GUARD(custos_doc_services_from_json(&d->services, v, "services"));
    CUSTOS_GUARD(header_gens_parse(d, hi, json_object_get(h, "generations")));
    ret = CUSTOS_OK;
out:
    return ret;
}

/* Check the fixed prefix and parse the header JSON; *out_header_len = N. */
static custos_err prefix_parse(json_t **out, size_t *out_header_len, const uint8_t *data,
                               size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t n;

    *out = NULL;
    *out_header_len = 0;
    CUSTOS_ENSURE(data != NULL, CUSTOS_ERR_ARG, "identity", "no identity data");
    CUSTOS_ENSURE(len <= CUSTOS_MAX_IDENTITY_SIZE, CUSTOS_ERR_TOO_LARGE, "identity",
                  "identity file is %zu bytes, over the limit of %u bytes", len,
                  (unsigned)CUSTOS_MAX_IDENTITY_SIZE);
    CUSTOS_ENSURE(len >= PREFIX_LEN && memcmp(data, MAGIC, MAGIC_LEN) == 0, CUSTOS_ERR_MALFORMED,
                  "identity", "this is not a Custos identity file");
    CUSTOS_ENSURE(data[MAGIC_LEN] == FILE_VERSION, CUSTOS_ERR_UNSUPPORTED, "identity",
                  "identity file version %u is not supported (only 1)", data[MAGIC_LEN]);
    n = (size_t)data[9] << 24 | (size_t)data[10] << 16 | (size_t)data[11] << 8 | data[12];
    CUSTOS_ENSURE(n <= MAX_HEADER_LEN, CUSTOS_ERR_TOO_LARGE, "identity header",
                  "identity header is %zu bytes, over the limit of %d bytes", n, MAX_HEADER_LEN);
    CUSTOS_ENSURE(n <= len - PREFIX_LEN, CUSTOS_ERR_MALFORMED, "identity",
                  "identity file is truncated");
    CUSTOS_GUARD(custos_json_parse(out, data + PREFIX_LEN, n, "identity header"));
    *out_header_len = n;
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_identity_header(json_t **out, const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *d = NULL;
    header_info *hi = NULL;
    json_t *h = NULL;
    size_t n = 0;

    *out = NULL;
    CUSTOS_GUARD(prefix_parse(&h, &n, data, len));
    d = custos_identity_doc_new();
    hi = calloc(1, sizeof(*hi));
    CUSTOS_ENSURE(d != NULL && hi != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(header_parse(d, hi, h));
    *out = h;
    h = NULL;
    ret = CUSTOS_OK;
out:
    free(hi);
    custos_identity_doc_free(d);
    json_decref(h);
    return ret;
}

/* ---- body ------------------------------------------------------------------ */

/* {"generations":[{"request_id","keys":[{"template","pkcs8"}]}]}: key material,
 * serialized into a buffer we own so that it can be wiped. */
static custos_err body_build(uint8_t **out, size_t *out_len, const custos_identity_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS;
    json_t *root = NULL, *gens = json_array(), *keys = NULL, *k = NULL;
    char *b64 = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(gens != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    custos_json_wipe_init(); /* json_pack copies the key text */
    root = json_pack("{s:O}", "generations", gens);
    CUSTOS_ENSURE(root != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t g = 0; g < d->n_gens; g++) {
        keys = json_array();
        CUSTOS_ENSURE(keys != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        for (size_t i = 0; i < d->gens[g].n_keys; i++) {
            CUSTOS_GUARD(key_to_b64(&b64, d->gens[g].keys[i].key));
            k = json_pack("{s:s, s:s}", "template", d->gens[g].keys[i].template_name, "pkcs8", b64);
            OPENSSL_cleanse(b64, strlen(b64));
            free(b64);
            b64 = NULL;
            CUSTOS_ENSURE(k != NULL && json_array_append_new(keys, k) == 0, CUSTOS_ERR_NOMEM, NULL,
                          "out of memory");
            k = NULL;
        }
        k = json_pack("{s:s, s:o}", "request_id", d->gens[g].request_id, "keys", keys);
        keys = NULL;
        CUSTOS_ENSURE(k != NULL && json_array_append_new(gens, k) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
        k = NULL;
    }
    size = json_dumpb(root, NULL, 0, flags);
    CUSTOS_ENSURE(size > 0, CUSTOS_ERR_INTERNAL, NULL, "cannot serialize the identity");
    buf = malloc(size);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(json_dumpb(root, (char *)buf, size, flags) == size, CUSTOS_ERR_INTERNAL, NULL,
                  "cannot serialize the identity");
    *out = buf;
    *out_len = size;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    if (buf != NULL)
        OPENSSL_clear_free(buf, size);
    json_wipe(k);
    json_decref(k);
    json_wipe(keys);
    json_decref(keys);
    json_wipe(root);
    json_decref(root);
    json_decref(gens);
    return ret;
}

static custos_err body_parse(custos_identity_doc *d, const header_info *hi, const uint8_t *pt,
                             size_t pt_len)
{
    static const char *const root_keys[] = {"generations", NULL};
    static const char *const gen_keys[] = {"request_id", "keys", NULL};
    static const char *const key_keys[] = {"template", "pkcs8", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    const json_t *gens;
    char f[96];
    uint8_t h[32];

    CUSTOS_GUARD(custos_json_parse(&j, pt, pt_len, "identity body"));
    CUSTOS_GUARD(custos_json_check_keys(j, root_keys, "identity body"));
    gens = json_object_get(j, "generations");
    CUSTOS_ENSURE(json_is_array(gens) && json_array_size(gens) == d->n_gens, CUSTOS_ERR_MALFORMED,
                  "generations", "identity header and body list different generations");
    for (size_t g = 0; g < d->n_gens; g++) {
        const json_t *jg = json_array_get(gens, g), *keys;
        custos_identity_gen *gen = &d->gens[g];

        (void)snprintf(f, sizeof(f), "generations[%zu]", g);
        CUSTOS_GUARD(custos_json_check_keys(jg, gen_keys, f));
        keys = json_object_get(jg, "keys");
        CUSTOS_ENSURE(json_is_string(json_object_get(jg, "request_id")) &&
                          strcmp(json_string_value(json_object_get(jg, "request_id")),
                                 gen->request_id) == 0 &&
                          json_is_array(keys) && json_array_size(keys) == gen->n_keys,
                      CUSTOS_ERR_MALFORMED, f, "identity header and body disagree on %s", f);
        for (size_t i = 0; i < gen->n_keys; i++) {
            const json_t *jk = json_array_get(keys, i), *v;

            (void)snprintf(f, sizeof(f), "generations[%zu].keys[%zu]", g, i);
            CUSTOS_GUARD(custos_json_check_keys(jk, key_keys, f));
            v = json_object_get(jk, "template");
            CUSTOS_ENSURE(json_is_string(v) &&
                              strcmp(json_string_value(v), gen->keys[i].template_name) == 0,
                          CUSTOS_ERR_MALFORMED, f, "identity header and body disagree on %s", f);
            v = json_object_get(jk, "pkcs8");
            CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, f, "%s.pkcs8 is required", f);
            CUSTOS_GUARD(key_from_b64(&gen->keys[i].key, json_string_value(v), f));
            CUSTOS_GUARD(custos_key_spki_sha256(h, gen->keys[i].key));
            CUSTOS_ENSURE(custos_key_alg(gen->keys[i].key) == hi->alg[g][i] &&
                              memcmp(h, hi->spki[g][i], sizeof(h)) == 0,
                          CUSTOS_ERR_MALFORMED, f,
                          "identity file was altered (key %s of request %s does not match its "
                          "header)",
                          gen->keys[i].template_name, gen->request_id);
        }
    }
    ret = CUSTOS_OK;
out:
    json_wipe(j);
    json_decref(j);
    return ret;
}

/* ---- encode / decode --------------------------------------------------------- */

static custos_err check_secret(const uint8_t *secret, size_t secret_len)
{
    if (secret == NULL || secret_len < CUSTOS_DEVICE_SECRET_MIN ||
        secret_len > CUSTOS_DEVICE_SECRET_MAX)
        return custos_error_set(CUSTOS_ERR_ARG, "device_secret",
                                "a device identity needs a device secret of %d to %d bytes",
                                CUSTOS_DEVICE_SECRET_MIN, CUSTOS_DEVICE_SECRET_MAX);
    return CUSTOS_OK;
}

static custos_err doc_check(const custos_identity_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_ARG, "identity", "no identity to encode");
    CUSTOS_ENSURE(custos_name_valid(d->system, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG, "system",
                  "identity has no valid system name");
    CUSTOS_ENSURE(custos_name_valid(d->component, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG, "component",
                  "identity has no valid component name");
    CUSTOS_ENSURE(custos_serial_valid(d->serial), CUSTOS_ERR_ARG, "serial",
                  "identity has no valid serial number");
    CUSTOS_ENSURE(d->n_gens <= CUSTOS_MAX_GENERATIONS, CUSTOS_ERR_LIMIT, "generations",
                  "an identity holds at most %d generations", CUSTOS_MAX_GENERATIONS);
    for (size_t g = 0; g < d->n_gens; g++) {
        for (size_t i = 0; i < d->gens[g].n_keys && i < CUSTOS_MAX_TEMPLATES; i++)
            CUSTOS_ENSURE(d->gens[g].keys[i].key != NULL, CUSTOS_ERR_ARG, "keys",
                          "generation %zu key %zu has no private key", g, i);
        for (size_t k = 0; k < g; k++)
            CUSTOS_ENSURE(strcmp(d->gens[k].request_id, d->gens[g].request_id) != 0,
                          CUSTOS_ERR_DUPLICATE, "generations", "request id %s listed twice",
                          d->gens[g].request_id);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_identity_encode(uint8_t **out, size_t *out_len, const custos_identity_doc *d,
                                  const uint8_t *secret, size_t secret_len, const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    header_info hi;
    uint8_t key[KEY_LEN];
    uint8_t tag[TAG_LEN];
    char *hdr = NULL;
    size_t hdr_len = 0, pt_len = 0, total = 0;
    uint8_t *pt = NULL, *buf = NULL;

    *out = NULL;
    *out_len = 0;
    memset(&hi, 0, sizeof(hi));
    CUSTOS_GUARD(doc_check(d));
    hi.locked = !d->mock;
    if (hi.locked) {
        CUSTOS_GUARD(check_secret(secret, secret_len));
        CUSTOS_GUARD(custos_random(port, hi.salt, SALT_LEN));
        CUSTOS_GUARD(custos_random(port, hi.iv, IV_LEN));
        CUSTOS_GUARD(hkdf(hi.lock_id, LOCK_ID_LEN, secret, secret_len, hi.salt, INFO_LOCK_ID));
        CUSTOS_GUARD(hkdf(key, KEY_LEN, secret, secret_len, hi.salt, INFO_KEY));
    } else {
        CUSTOS_ENSURE(secret == NULL, CUSTOS_ERR_ARG, "device_secret",
                      "a mock identity is not device-locked: pass no device secret");
    }
    CUSTOS_GUARD(header_build(&hdr, &hdr_len, d, &hi));
    CUSTOS_GUARD(body_build(&pt, &pt_len, d));
    total = PREFIX_LEN + hdr_len + pt_len + (hi.locked ? TAG_LEN : 0);
    CUSTOS_ENSURE(total <= CUSTOS_MAX_IDENTITY_SIZE, CUSTOS_ERR_TOO_LARGE, "identity",
                  "identity file would be %zu bytes, over the limit of %u bytes", total,
                  (unsigned)CUSTOS_MAX_IDENTITY_SIZE);
    buf = malloc(total);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    memcpy(buf, MAGIC, MAGIC_LEN);
    buf[MAGIC_LEN] = FILE_VERSION;
    buf[9] = (uint8_t)(hdr_len >> 24);
    buf[10] = (uint8_t)(hdr_len >> 16);
    buf[11] = (uint8_t)(hdr_len >> 8);
    buf[12] = (uint8_t)hdr_len;
    memcpy(buf + PREFIX_LEN, hdr, hdr_len);
    if (hi.locked) {
        CUSTOS_GUARD(gcm(buf + PREFIX_LEN + hdr_len, key, hi.iv, buf, PREFIX_LEN + hdr_len, pt,
                         pt_len, tag, 1));
        memcpy(buf + PREFIX_LEN + hdr_len + pt_len, tag, TAG_LEN);
    } else {
        memcpy(buf + PREFIX_LEN + hdr_len, pt, pt_len);
    }
    *out = buf;
    *out_len = total;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(key, sizeof(key));
    if (pt != NULL)
        OPENSSL_clear_free(pt, pt_len);
    if (buf != NULL)
        OPENSSL_clear_free(buf, total);
    free(hdr);
    return ret;
}

custos_err custos_identity_decode(custos_identity_doc **out, const uint8_t *data, size_t len,
                                  const uint8_t *secret, size_t secret_len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *d = NULL;
    header_info *hi = NULL;
    json_t *h = NULL;
    size_t n = 0, body_len = 0, pt_len = 0;
    const uint8_t *body;
    uint8_t key[KEY_LEN];
    uint8_t lock_id[LOCK_ID_LEN];
    uint8_t tag[TAG_LEN];
    uint8_t *pt = NULL;

    *out = NULL;
    OPENSSL_cleanse(key, sizeof(key));
    CUSTOS_GUARD(prefix_parse(&h, &n, data, len));
    d = custos_identity_doc_new();
    hi = calloc(1, sizeof(*hi));
    CUSTOS_ENSURE(d != NULL && hi != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(header_parse(d, hi, h));
    body = data + PREFIX_LEN + n;
    body_len = len - PREFIX_LEN - n;
    if (hi->locked) {
        CUSTOS_GUARD(check_secret(secret, secret_len));
        CUSTOS_GUARD(hkdf(lock_id, LOCK_ID_LEN, secret, secret_len, hi->salt, INFO_LOCK_ID));
        CUSTOS_ENSURE(CRYPTO_memcmp(lock_id, hi->lock_id, LOCK_ID_LEN) == 0, CUSTOS_ERR_LOCKED,
                      "identity",
                      "identity file is locked to another device (it was created with a "
                      "different device secret)");
        CUSTOS_ENSURE(body_len > TAG_LEN, CUSTOS_ERR_MALFORMED, "identity",
                      "identity file was altered");
        pt_len = body_len - TAG_LEN;
        pt = malloc(pt_len);
        CUSTOS_ENSURE(pt != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        memcpy(tag, body + pt_len, TAG_LEN);
        CUSTOS_GUARD(hkdf(key, KEY_LEN, secret, secret_len, hi->salt, INFO_KEY));
        CUSTOS_GUARD(gcm(pt, key, hi->iv, data, PREFIX_LEN + n, body, pt_len, tag, 0));
    } else {
        CUSTOS_ENSURE(body_len > 0, CUSTOS_ERR_MALFORMED, "identity", "identity file is truncated");
        pt_len = body_len;
        pt = malloc(pt_len);
        CUSTOS_ENSURE(pt != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        memcpy(pt, body, pt_len);
    }
    CUSTOS_GUARD(body_parse(d, hi, pt, pt_len));
    *out = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(key, sizeof(key));
    if (pt != NULL)
        OPENSSL_clear_free(pt, pt_len);
    free(hi);
    json_decref(h);
    custos_identity_doc_free(d);
    return ret;
}
