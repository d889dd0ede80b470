/* bench_serve devices: genuine requests made on posix ports, and the install
 * receipt a device sends once it has its certified profile (client side). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "custos/connect.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

#include "serve.h"

/* The receipt key of the pending generation, read back from identity.mcpi. */
static void device_key(device *d, const custos_port *port)
{
    uint8_t *data = NULL;
    size_t len = 0;
    custos_identity_doc *id = NULL;
    custos_err r;

    if ((r = custos_dev_read(&data, &len, port, CUSTOS_OBJ_IDENTITY, CUSTOS_MAX_IDENTITY_SIZE)) < 0)
        die("read identity", r);
    if ((r = custos_dev_identity_load(&id, port, data, len)) < 0)
        die("load identity", r);
    const custos_identity_gen *g = &id->gens[id->n_gens - 1];
    for (size_t i = 0; i < g->n_keys && d->key == NULL; i++) {
        if (custos_key_alg(g->keys[i].key) != CUSTOS_ALG_ED25519 &&
            EVP_PKEY_up_ref(g->keys[i].key) == 1)
            d->key = g->keys[i].key;
    }
    if (d->key == NULL)
        fail("the component has no key that can sign a receipt");
    snprintf(d->request_id, sizeof(d->request_id), "%s", g->request_id);
    custos_identity_doc_free(id);
    OPENSSL_cleanse(data, len);
    free(data);
}

/* @p n genuine requests for @p pkg, each device on its own posix port. */
device *devices_make(size_t n, const custos_package *pkg, const char *component, const char *root,
                     const char *tag, double *out_ms)
{
    device *devs = calloc(n, sizeof(*devs));
    char secret[600];
    double t0 = now_s();

    if (devs == NULL)
        fail("out of memory");
    snprintf(secret, sizeof(secret), "%s/secret", root);
    for (size_t i = 0; i < n; i++) {
        char dir[600], serial[40];
        custos_port_posix_options po = CUSTOS_PORT_POSIX_OPTIONS_INIT;
        custos_request_options ro = CUSTOS_REQUEST_OPTIONS_INIT;
        custos_port_posix *posix = NULL;
        custos_err r;

        snprintf(dir, sizeof(dir), "%s/%s%zu", root, tag, i);
        snprintf(serial, sizeof(serial), "SN-%s-%06zu", tag, i);
        po.device_dir = dir;
        po.secret_file = secret;
        if ((r = custos_port_posix_new(&posix, &po)) < 0)
            die("port", r);
        ro.component = component;
        ro.identity.serial = serial;
        ro.identity.model = "X2";
        ro.identity.firmware = "1.0.0";
        ro.flags = CUSTOS_REQUEST_KEEP_PACKAGE;
        if ((r = custos_device_request(&devs[i].req, &devs[i].req_len, custos_port_posix_get(posix),
                                       pkg, &ro)) < 0)
            die("device request", r);
        device_key(&devs[i], custos_port_posix_get(posix));
        custos_port_posix_free(posix);
    }
    *out_ms = 1e3 * (now_s() - t0) / (double)n;
    return devs;
}

void devices_free(device *devs, size_t n)
{
    for (size_t i = 0; devs != NULL && i < n; i++) {
        free(devs[i].req);
        EVP_PKEY_free(devs[i].key);
    }
    free(devs);
}

/* The certificate of @p key in a certified profile, parsed without verifying
 * (a device that installs verifies; this one only answers). */
static custos_err profile_cert(X509 **out, const uint8_t *der, size_t len, EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct;
    json_t *j = NULL, *arr;

    *out = NULL;
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, der, len,
                                 CUSTOS_MAX_PROFILE_SIZE, "certified profile"));
    CUSTOS_GUARD(custos_json_parse(&j, content, content_len, "certified profile"));
    arr = json_object_get(j, "certificates");
    for (size_t i = 0; i < json_array_size(arr) && *out == NULL; i++) {
        X509 *x = NULL;
        const char *b64 = json_string_value(json_object_get(json_array_get(arr, i), "certificate"));
        CUSTOS_ENSURE(b64 != NULL, CUSTOS_ERR_MALFORMED, "certificates", "no certificate");
        CUSTOS_GUARD(custos_x509_from_b64(&x, b64, "certificates"));
        if (EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1)
            *out = x;
        else
            X509_free(x);
    }
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_MISMATCH, "certificates",
                  "the profile has no certificate for the device's key");
    ret = CUSTOS_OK;
out:
    json_decref(j);
    sk_X509_pop_free(certs, X509_free);
    free(content);
    return ret;
}

custos_err receipt_make(uint8_t **out, size_t *out_len, const device *d, const char *device_id,
                        const uint8_t *profile, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *cert = NULL;
    uint8_t sha[32];
    int64_t now = 0;

    CUSTOS_GUARD(profile_cert(&cert, profile, len, d->key));
    custos_sha256(sha, profile, len);
    CUSTOS_GUARD(custos_now(&now, NULL));
    CUSTOS_GUARD(
        custos_receipt_encode(out, out_len, d->request_id, device_id, sha, now, d->key, cert));
    ret = CUSTOS_OK;
out:
    X509_free(cert);
    return ret;
}
