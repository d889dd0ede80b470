/* Device library plumbing: storage objects and the device secret through the
 * port, identity load/save, trust stores, field checks. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

void custos_dev_oids_register(void)
{
    for (int i = 0; i < CUSTOS_OID_COUNT; i++)
        (void)custos_oid_nid((custos_oid)i);
}

custos_err custos_dev_port_check(const custos_port *port)
{
    if (port == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "port", "a port is required");
    if (port->version != CUSTOS_PORT_VERSION)
        return custos_error_set(CUSTOS_ERR_UNSUPPORTED, "port",
                                "port version %u is not supported (expected %d)", port->version,
                                CUSTOS_PORT_VERSION);
    if (port->device_secret == NULL || port->entropy == NULL || port->storage_read == NULL ||
        port->storage_write == NULL || port->storage_remove == NULL || port->clock == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "port",
                                "the port lacks a required callback (device_secret, entropy, "
                                "storage_read, storage_write, storage_remove, clock)");
    custos_dev_oids_register();
    return 0;
}

/* A port may return a bare code without detail (it cannot reach the
 * library's internal error helper): name the callback for the operator. */
static custos_err port_failed(custos_err r, const char *callback, const char *name)
{
    const custos_error *e = custos_error_last();
    if (r >= 0 || (e != NULL && e->code == r && e->message[0] != '\0'))
        return r;
    return custos_error_set(r, name, "the port's %s failed for %s", callback,
                            name != NULL ? name : "(none)");
}

custos_err custos_dev_read(uint8_t **out, size_t *out_len, const custos_port *port,
                           const char *name, size_t max)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;

    *out = NULL;
    *out_len = 0;
    buf = malloc(max);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, name, "out of memory reading %s", name);
    custos_error_clear();
    CUSTOS_GUARD(
        port_failed(port->storage_read(buf, max, &len, name, port->ctx), "storage_read", name));
    CUSTOS_ENSURE(len <= max, CUSTOS_ERR_INTERNAL, name, "the port returned too many bytes");
    *out = buf;
    *out_len = len;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    return ret;
}

custos_err custos_dev_read_optional(uint8_t **out, size_t *out_len, const custos_port *port,
                                    const char *name, size_t max)
{
    custos_err r = custos_dev_read(out, out_len, port, name, max);
    if (r == CUSTOS_ERR_NOT_FOUND) {
        custos_error_clear();
        return 0;
    }
    return r;
}

custos_err custos_dev_exists(const custos_port *port, const char *name)
{
    uint8_t probe[1];
    size_t len = 0;
    custos_error_clear();
    custos_err r = port->storage_read(probe, sizeof(probe), &len, name, port->ctx);
    if (r == 0 || r == CUSTOS_ERR_TOO_LARGE) {
        custos_error_clear();
        return 1;
    }
    if (r == CUSTOS_ERR_NOT_FOUND) {
        custos_error_clear();
        return 0;
    }
    return port_failed(r, "storage_read", name);
}

custos_err custos_dev_write(const custos_port *port, const char *name, const uint8_t *data,
                            size_t len)
{
    custos_error_clear();
    return port_failed(port->storage_write(name, data, len, port->ctx), "storage_write", name);
}

custos_err custos_dev_remove(const custos_port *port, const char *name)
{
    custos_error_clear();
    return port_failed(port->storage_remove(name, port->ctx), "storage_remove", name);
}

custos_err custos_dev_secret(uint8_t out[CUSTOS_DEVICE_SECRET_MAX], size_t *out_len,
                             const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    *out_len = 0;
    custos_error_clear();
    CUSTOS_GUARD(port_failed(port->device_secret(out, CUSTOS_DEVICE_SECRET_MAX, out_len, port->ctx),
                             "device_secret", "device_secret"));
    CUSTOS_ENSURE(*out_len >= CUSTOS_DEVICE_SECRET_MIN && *out_len <= CUSTOS_DEVICE_SECRET_MAX,
                  CUSTOS_ERR_MALFORMED, "device_secret",
                  "the port's device secret is %zu bytes; %d to %d are required", *out_len,
                  CUSTOS_DEVICE_SECRET_MIN, CUSTOS_DEVICE_SECRET_MAX);
    ret = 0;
out:
    if (ret < 0) {
        OPENSSL_cleanse(out, CUSTOS_DEVICE_SECRET_MAX);
        *out_len = 0;
    }
    return ret;
}

int custos_dev_identity_is_mock(const uint8_t *data, size_t len)
{
    json_t *h = NULL;
    int mock = 0;
    if (custos_identity_header(&h, data, len) < 0) {
        custos_error_clear();
        return 0;
    }
    mock = json_is_true(json_object_get(h, "mock"));
    json_decref(h);
    return mock;
}

custos_err custos_dev_identity_load(custos_identity_doc **out, const custos_port *port,
                                    const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t secret[CUSTOS_DEVICE_SECRET_MAX];
    size_t secret_len = 0;

    *out = NULL;
    if (custos_dev_identity_is_mock(data, len)) {
        CUSTOS_GUARD(custos_identity_decode(out, data, len, NULL, 0));
    } else {
        CUSTOS_GUARD(custos_dev_secret(secret, &secret_len, port));
        CUSTOS_GUARD(custos_identity_decode(out, data, len, secret, secret_len));
    }
    ret = 0;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    return ret;
}

custos_err custos_dev_identity_save(const custos_port *port, const custos_identity_doc *doc)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t secret[CUSTOS_DEVICE_SECRET_MAX];
    size_t secret_len = 0;
    uint8_t *enc = NULL;
    size_t enc_len = 0;

    /* The device never writes an unlocked identity: mock device files are
     * made by the cloud (custosd mock create), not by the library. */
    CUSTOS_ENSURE(!doc->mock, CUSTOS_ERR_MOCK, "identity",
                  "refusing to write an identity that is not device-locked");
    {
        CUSTOS_GUARD(custos_dev_secret(secret, &secret_len, port));
        CUSTOS_GUARD(custos_identity_encode(&enc, &enc_len, doc, secret, secret_len, port));
    }
    CUSTOS_GUARD(custos_dev_write(port, CUSTOS_OBJ_IDENTITY, enc, enc_len));
    ret = 0;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    if (enc != NULL)
        OPENSSL_cleanse(enc, enc_len);
    free(enc);
    return ret;
}

void custos_dev_gen_copy(custos_identity_gen *dst, const custos_identity_gen *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->request_id, src->request_id, sizeof(dst->request_id));
    for (size_t i = 0; i < src->n_keys; i++) {
        memcpy(dst->keys[i].template_name, src->keys[i].template_name,
               sizeof(dst->keys[i].template_name));
        if (EVP_PKEY_up_ref(src->keys[i].key) == 1)
            dst->keys[i].key = src->keys[i].key;
    }
    dst->n_keys = src->n_keys;
}

custos_err custos_dev_identity_clone_header(custos_identity_doc **out,
                                            const custos_identity_doc *src)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *d = custos_identity_doc_new();

    *out = NULL;
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    memcpy(d->system, src->system, sizeof(d->system));
    memcpy(d->component, src->component, sizeof(d->component));
    memcpy(d->serial, src->serial, sizeof(d->serial));
    d->mock = src->mock;
    d->services = src->services;
    if (src->root_of_trust != NULL) {
        d->root_of_trust = X509_chain_up_ref(src->root_of_trust);
        CUSTOS_ENSURE(d->root_of_trust != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    *out = d;
    d = NULL;
    ret = 0;
out:
    custos_identity_doc_free(d);
    return ret;
}

custos_err custos_dev_store(X509_STORE **out, STACK_OF(X509) *roots)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_STORE *st = X509_STORE_new();

    *out = NULL;
    CUSTOS_ENSURE(st != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(roots != NULL && sk_X509_num(roots) > 0, CUSTOS_ERR_MALFORMED, "root_of_trust",
                  "no Root of Trust certificate");
    for (int i = 0; i < sk_X509_num(roots); i++)
        CUSTOS_ENSURE(X509_STORE_add_cert(st, sk_X509_value(roots, i)) == 1, CUSTOS_ERR_INTERNAL,
                      "root_of_trust", "cannot add a Root of Trust certificate");
    *out = st;
    st = NULL;
    ret = 0;
out:
    X509_STORE_free(st);
    return ret;
}

custos_err custos_dev_self_signed(STACK_OF(X509) **out, STACK_OF(X509) *certs)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *sk = sk_X509_new_null();

    *out = NULL;
    CUSTOS_ENSURE(sk != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        if (X509_self_signed(c, 1) != 1)
            continue;
        CUSTOS_ENSURE(X509_add_cert(sk, c, X509_ADD_FLAG_UP_REF) == 1, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
    }
    CUSTOS_ENSURE(sk_X509_num(sk) > 0, CUSTOS_ERR_UNTRUSTED, "root_of_trust",
                  "the file carries no self-signed root certificate");
    *out = sk;
    sk = NULL;
    ret = 0;
out:
    sk_X509_pop_free(sk, X509_free);
    return ret;
}

custos_err custos_dev_carried_roots(STACK_OF(X509) **out, const uint8_t *der, size_t len,
                                    size_t max, const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    STACK_OF(X509) *certs = NULL;
    json_t *j = NULL;
    X509 *x = NULL;
    custos_oid ct;
    size_t i;
    json_t *item;

    *out = NULL;
    custos_dev_oids_register();
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, der, len, max, what));
    if (certs == NULL) {
        certs = sk_X509_new_null();
        CUSTOS_ENSURE(certs != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    if (custos_json_parse(&j, content, content_len, what) == 0 &&
        json_is_array(json_object_get(j, "root_of_trust"))) {
        json_array_foreach(json_object_get(j, "root_of_trust"), i, item)
        {
            if (i >= CUSTOS_DOC_MAX_CERTS || !json_is_string(item))
                break;
            if (custos_x509_from_b64(&x, json_string_value(item), "root_of_trust") < 0)
                break;
            CUSTOS_ENSURE(sk_X509_push(certs, x) > 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
            x = NULL;
        }
    }
    custos_error_clear();
    CUSTOS_GUARD(custos_dev_self_signed(out, certs));
    ret = 0;
out:
    X509_free(x);
    json_decref(j);
    free(content);
    sk_X509_pop_free(certs, X509_free);
    return ret;
}

unsigned custos_dev_cert_usage(X509 *cert)
{
    uint32_t xku = X509_get_extended_key_usage(cert);
    uint32_t ku = X509_get_key_usage(cert);
    unsigned u = 0;

    if (xku != UINT32_MAX) {
        if (xku & XKU_SSL_CLIENT)
            u |= CUSTOS_USAGE_TLS_CLIENT;
        if (xku & XKU_SSL_SERVER)
            u |= CUSTOS_USAGE_TLS_SERVER;
        if (xku & (XKU_CODE_SIGN | XKU_SMIME | XKU_TIMESTAMP))
            u |= CUSTOS_USAGE_SIGNING;
    }
    if (ku != UINT32_MAX && (ku & KU_NON_REPUDIATION))
        u |= CUSTOS_USAGE_SIGNING;
    if (u == 0)
        u = CUSTOS_USAGE_SIGNING;
    return u;
}

static custos_err text_field(const char *s, size_t max, const char *field)
{
    if (s == NULL)
        return 0;
    if (strlen(s) > max)
        return custos_error_set(CUSTOS_ERR_LIMIT, field, "%s is longer than %zu bytes", field, max);
    if (!custos_text_valid(s, max))
        return custos_error_set(CUSTOS_ERR_ARG, field,
                                "%s must be printable UTF-8 without control characters", field);
    return 0;
}

static custos_err meta_check(const custos_meta *m, size_t n, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(n <= CUSTOS_MAX_META_ENTRIES, CUSTOS_ERR_LIMIT, field,
                  "%zu %s entries; the limit is %d", n, field, CUSTOS_MAX_META_ENTRIES);
    CUSTOS_ENSURE(n == 0 || m != NULL, CUSTOS_ERR_ARG, field, "NULL %s", field);
    for (size_t i = 0; i < n; i++) {
        CUSTOS_ENSURE(m[i].key != NULL && m[i].key[0] != '\0' && m[i].value != NULL, CUSTOS_ERR_ARG,
                      field, "%s entry %zu has no key or value", field, i);
        for (size_t j = 0; j < i; j++)
            CUSTOS_ENSURE(strcmp(m[i].key, m[j].key) != 0, CUSTOS_ERR_DUPLICATE, field,
                          "%s key %s appears twice", field, m[i].key);
        CUSTOS_GUARD(text_field(m[i].key, CUSTOS_MAX_META_KEY_LEN, field));
        CUSTOS_GUARD(text_field(m[i].value, CUSTOS_MAX_META_VALUE_LEN, field));
    }
    ret = 0;
out:
    return ret;
}

custos_err custos_dev_identity_fields_check(const custos_device_identity *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(id->serial != NULL && id->serial[0] != '\0', CUSTOS_ERR_ARG, "serial",
                  "the device serial number is required");
    CUSTOS_ENSURE(strlen(id->serial) <= CUSTOS_MAX_SERIAL_LEN, CUSTOS_ERR_LIMIT, "serial",
                  "the serial number is longer than %d characters", CUSTOS_MAX_SERIAL_LEN);
    CUSTOS_ENSURE(custos_serial_valid(id->serial), CUSTOS_ERR_ARG, "serial",
                  "the serial number may contain only A-Z a-z 0-9 . _ : - and must start "
                  "with a letter or digit");
    CUSTOS_GUARD(text_field(id->hardware_id, CUSTOS_MAX_HARDWARE_ID_LEN, "hardware_id"));
    CUSTOS_GUARD(text_field(id->model, CUSTOS_MAX_MODEL_LEN, "model"));
    CUSTOS_GUARD(text_field(id->firmware, CUSTOS_MAX_FIRMWARE_LEN, "firmware"));
    CUSTOS_GUARD(meta_check(id->manufacturer, id->manufacturer_count, "manufacturer"));
    CUSTOS_GUARD(meta_check(id->metadata, id->metadata_count, "metadata"));
    ret = 0;
out:
    return ret;
}

static custos_err meta_fill(custos_meta_entry *dst, size_t *n, const custos_meta *m, size_t count)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        CUSTOS_GUARD(custos_strlcpy_checked(dst[i].key, sizeof(dst[i].key), m[i].key, "key"));
        CUSTOS_GUARD(
            custos_strlcpy_checked(dst[i].value, sizeof(dst[i].value), m[i].value, "value"));
        (*n)++;
    }
    ret = 0;
out:
    return ret;
}

custos_err custos_dev_request_fill(custos_request_doc *req, const custos_device_identity *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_strlcpy_checked(req->serial, sizeof(req->serial), id->serial, "serial"));
    if (id->hardware_id != NULL)
        CUSTOS_GUARD(custos_strlcpy_checked(req->hardware_id, sizeof(req->hardware_id),
                                            id->hardware_id, "hardware_id"));
    if (id->model != NULL)
        CUSTOS_GUARD(custos_strlcpy_checked(req->model, sizeof(req->model), id->model, "model"));
    if (id->firmware != NULL)
        CUSTOS_GUARD(
            custos_strlcpy_checked(req->firmware, sizeof(req->firmware), id->firmware, "firmware"));
    CUSTOS_GUARD(meta_fill(req->manufacturer, &req->n_manufacturer, id->manufacturer,
                           id->manufacturer_count));
    CUSTOS_GUARD(meta_fill(req->metadata, &req->n_metadata, id->metadata, id->metadata_count));
    ret = 0;
out:
    return ret;
}
