/* A provisioned device: open the device files, its keys and certificates,
 * signing and the mutual-TLS client context. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "custos/device.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

void custos_device_free(custos_device *dev)
{
    if (dev == NULL)
        return;
    for (size_t i = 0; i < dev->n_keys; i++) {
        EVP_PKEY_free(dev->keys[i].key);
        free(dev->keys[i].cert_der);
    }
    for (size_t i = 0; i < dev->n_roots; i++)
        free(dev->root_der[i]);
    free(dev->root_der);
    free(dev->root_der_len);
    custos_identity_doc_free(dev->identity);
    custos_profile_doc_free(dev->profile);
    OPENSSL_cleanse(dev, sizeof(*dev));
    free(dev);
}

/* Trust for the profile: the identity's Root of Trust (for mock device files
 * the mock root written with them), or for a mock identity without one, the
 * root the profile itself carries. */
static custos_err profile_trust(X509_STORE **out, const custos_identity_doc *ident,
                                const uint8_t *profile, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *roots = NULL;

    if (!ident->mock || sk_X509_num(ident->root_of_trust) > 0) {
        CUSTOS_GUARD(custos_dev_store(out, ident->root_of_trust));
        ret = 0;
        goto out;
    }
    CUSTOS_GUARD(custos_dev_carried_roots(&roots, profile, len, CUSTOS_MAX_PROFILE_SIZE,
                                          "certified profile"));
    CUSTOS_GUARD(custos_dev_store(out, roots));
    ret = 0;
out:
    sk_X509_pop_free(roots, X509_free);
    return ret;
}

static custos_err bind_keys(custos_device *dev)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const custos_profile_doc *p = dev->profile;
    const custos_identity_gen *g = custos_identity_doc_gen(dev->identity, p->request_id);

    CUSTOS_ENSURE(g != NULL, CUSTOS_ERR_MISMATCH, "identity",
                  "the private identity holds no keys for the installed profile (request %s)",
                  p->request_id);
    for (size_t i = 0; i < p->n_certs; i++) {
        const custos_profile_cert *pc = &p->certs[i];
        custos_device_key_entry *e = &dev->keys[i];
        EVP_PKEY *key = NULL;
        for (size_t k = 0; k < g->n_keys; k++)
            if (strcmp(g->keys[k].template_name, pc->template_name) == 0)
                key = g->keys[k].key;
        CUSTOS_ENSURE(key != NULL, CUSTOS_ERR_MISMATCH, pc->template_name,
                      "the private identity has no key for template %s", pc->template_name);
        EVP_PKEY *pub = X509_get0_pubkey(pc->cert);
        CUSTOS_ENSURE(pub != NULL && custos_key_public_equal(pub, key), CUSTOS_ERR_MISMATCH,
                      pc->template_name,
                      "the certificate for template %s does not hold this device's key",
                      pc->template_name);
        CUSTOS_ENSURE(EVP_PKEY_up_ref(key) == 1, CUSTOS_ERR_INTERNAL, NULL, "up_ref failed");
        e->key = key;
        dev->n_keys = i + 1;
        memcpy(e->template_name, pc->template_name, sizeof(e->template_name));
        e->alg = custos_key_alg(key);
        e->usage = custos_dev_cert_usage(pc->cert);
        e->cert = pc->cert;
        CUSTOS_GUARD(custos_x509_to_der(&e->cert_der, &e->cert_der_len, pc->cert));
        CUSTOS_GUARD(custos_asn1_time_to_unix(&e->not_before, X509_get0_notBefore(pc->cert)));
        CUSTOS_GUARD(custos_asn1_time_to_unix(&e->not_after, X509_get0_notAfter(pc->cert)));
    }
    int n = sk_X509_num(p->root_of_trust);
    CUSTOS_ENSURE(n > 0, CUSTOS_ERR_MALFORMED, "root_of_trust", "the profile has no Root of Trust");
    dev->root_der = calloc((size_t)n, sizeof(*dev->root_der));
    dev->root_der_len = calloc((size_t)n, sizeof(*dev->root_der_len));
    CUSTOS_ENSURE(dev->root_der != NULL && dev->root_der_len != NULL, CUSTOS_ERR_NOMEM, NULL,
                  "out of memory");
    for (int i = 0; i < n; i++) {
        CUSTOS_GUARD(custos_x509_to_der(&dev->root_der[i], &dev->root_der_len[i],
                                        sk_X509_value(p->root_of_trust, i)));
        dev->n_roots++;
    }
    ret = 0;
out:
    return ret;
}

custos_err custos_device_open(custos_device **out, const custos_port *port,
                              const custos_device_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_device *dev = NULL;
    uint8_t *prof = NULL, *ident = NULL;
    size_t prof_len = 0, ident_len = 0;
    X509_STORE *store = NULL;
    int64_t now = 0;
    int allow_mock = 0;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    CUSTOS_GUARD(custos_dev_port_check(port));
    CUSTOS_ENSURE(opts == NULL || opts->version == CUSTOS_DEVICE_OPTIONS_VERSION, CUSTOS_ERR_ARG,
                  "options", "unknown device options version %u",
                  opts != NULL ? opts->version : 0u);
    allow_mock = opts != NULL && opts->allow_mock;
    custos_err r =
        custos_dev_read(&prof, &prof_len, port, CUSTOS_OBJ_PROFILE, CUSTOS_MAX_PROFILE_SIZE);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_STATE, "profile",
                  "the device is not provisioned (no installed profile)");
    CUSTOS_GUARD(r);
    r = custos_dev_read(&ident, &ident_len, port, CUSTOS_OBJ_IDENTITY, CUSTOS_MAX_IDENTITY_SIZE);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_STATE, "identity",
                  "the device has a profile but no private identity (identity.mcpi is missing)");
    CUSTOS_GUARD(r);
    CUSTOS_ENSURE(allow_mock || !custos_dev_identity_is_mock(ident, ident_len), CUSTOS_ERR_MOCK,
                  "identity", "mock device files are not accepted here");

    dev = calloc(1, sizeof(*dev));
    CUSTOS_ENSURE(dev != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    dev->port = *port;
    CUSTOS_GUARD(custos_dev_identity_load(&dev->identity, port, ident, ident_len));
    CUSTOS_ENSURE(allow_mock || !dev->identity->mock, CUSTOS_ERR_MOCK, "identity",
                  "mock device files are not accepted here");
    CUSTOS_GUARD(custos_now(&now, port));
    CUSTOS_GUARD(profile_trust(&store, dev->identity, prof, prof_len));
    custos_trust trust = {store, NULL, now, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING), NULL};
    CUSTOS_GUARD(custos_profile_decode(&dev->profile, prof, prof_len, &trust));
    CUSTOS_ENSURE(dev->profile->mock == dev->identity->mock, CUSTOS_ERR_MOCK, "profile",
                  "mock device files are not accepted here (profile and identity disagree "
                  "on mock)");
    CUSTOS_ENSURE(strcmp(dev->profile->serial, dev->identity->serial) == 0, CUSTOS_ERR_MISMATCH,
                  "serial", "the profile (serial %s) belongs to another device (serial %s)",
                  dev->profile->serial, dev->identity->serial);
    CUSTOS_GUARD(bind_keys(dev));
    *out = dev;
    dev = NULL;
    ret = 0;
out:
    X509_STORE_free(store);
    free(prof);
    if (ident != NULL)
        OPENSSL_cleanse(ident, ident_len);
    free(ident);
    custos_device_free(dev);
    return ret;
}

const char *custos_device_id(const custos_device *dev)
{
    return dev != NULL ? dev->profile->device_id : NULL;
}

const char *custos_device_serial(const custos_device *dev)
{
    return dev != NULL ? dev->profile->serial : NULL;
}

const char *custos_device_system(const custos_device *dev)
{
    return dev != NULL ? dev->profile->system : NULL;
}

const char *custos_device_component(const custos_device *dev)
{
    return dev != NULL ? dev->profile->component : NULL;
}

int custos_device_is_mock(const custos_device *dev)
{
    return dev != NULL && dev->profile->mock;
}

size_t custos_device_key_count(const custos_device *dev)
{
    return dev != NULL ? dev->n_keys : 0;
}

custos_err custos_device_key(custos_key_info *out, const custos_device *dev, size_t i)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(dev != NULL && i < dev->n_keys, CUSTOS_ERR_ARG, "index",
                  "key index %zu out of range (%zu keys)", i, dev != NULL ? dev->n_keys : 0u);
    const custos_device_key_entry *e = &dev->keys[i];
    out->template_name = e->template_name;
    out->alg = e->alg;
    out->usage = e->usage;
    out->cert_der = e->cert_der;
    out->cert_der_len = e->cert_der_len;
    out->not_before = e->not_before;
    out->not_after = e->not_after;
    ret = 0;
out:
    return ret;
}

size_t custos_device_root_count(const custos_device *dev)
{
    return dev != NULL ? dev->n_roots : 0;
}

custos_err custos_device_root(const uint8_t **out, size_t *out_len, const custos_device *dev,
                              size_t i)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(out != NULL && out_len != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(dev != NULL && i < dev->n_roots, CUSTOS_ERR_ARG, "index",
                  "Root of Trust index %zu out of range", i);
    *out = dev->root_der[i];
    *out_len = dev->root_der_len[i];
    ret = 0;
out:
    return ret;
}

static const custos_device_key_entry *find_key(const custos_device *dev, const char *tmpl,
                                               unsigned usage)
{
    for (size_t i = 0; i < dev->n_keys; i++) {
        if (tmpl != NULL && strcmp(dev->keys[i].template_name, tmpl) == 0)
            return &dev->keys[i];
        if (tmpl == NULL && (dev->keys[i].usage & usage))
            return &dev->keys[i];
    }
    return NULL;
}

custos_err custos_device_sign(uint8_t *out, size_t cap, size_t *out_len, const custos_device *dev,
                              const char *tmpl, const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_MD_CTX *md = NULL;
    const custos_device_key_entry *e = NULL;
    size_t sig_len = 0;

    CUSTOS_ENSURE(out_len != NULL, CUSTOS_ERR_ARG, "out_len", "NULL argument");
    *out_len = 0;
    CUSTOS_ENSURE(out != NULL && dev != NULL && tmpl != NULL && (data != NULL || len == 0),
                  CUSTOS_ERR_ARG, "sign", "NULL argument");
    e = find_key(dev, tmpl, 0);
    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_NOT_FOUND, "template",
                  "the device has no key for template %s", tmpl);
    md = EVP_MD_CTX_new();
    CUSTOS_ENSURE(md != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    /* SHA-256 for every key but Ed25519 (which hashes internally), P-384
     * included: the signature is then what `openssl dgst -sha256 -verify`
     * checks, whatever the template's curve. */
    CUSTOS_ENSURE(EVP_DigestSignInit(md, NULL, e->alg == CUSTOS_ALG_ED25519 ? NULL : EVP_sha256(),
                                     NULL, e->key) == 1,
                  CUSTOS_ERR_INTERNAL, "sign", "cannot start signing with %s", tmpl);
    CUSTOS_ENSURE(EVP_DigestSign(md, NULL, &sig_len, data, len) == 1, CUSTOS_ERR_INTERNAL, "sign",
                  "cannot size the signature");
    CUSTOS_ENSURE(sig_len <= cap, CUSTOS_ERR_TOO_LARGE, "out",
                  "the signature needs up to %zu bytes; the buffer has %zu", sig_len, cap);
    sig_len = cap;
    CUSTOS_ENSURE(EVP_DigestSign(md, out, &sig_len, data, len) == 1, CUSTOS_ERR_INTERNAL, "sign",
                  "signing with %s failed", tmpl);
    *out_len = sig_len;
    ret = 0;
out:
    EVP_MD_CTX_free(md);
    return ret;
}

/* Who the server must be: any certificate chaining to the Root of Trust is
 * not enough (another device's would do). The certificate must be fit for a
 * TLS server (no EKU, or one with serverAuth) and, when the profile names a
 * cloud URL, issued to that URL's host. */
static custos_err expect_server(SSL_CTX *ctx, const custos_services *svc)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    char host[CUSTOS_MAX_URL_LEN + 1];
    int is_ip = 0;

    CUSTOS_ENSURE(X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) == 1,
                  CUSTOS_ERR_INTERNAL, "tls", "cannot require a TLS server certificate");
    if (svc->cloud_url[0] != '\0') {
        CUSTOS_GUARD(
            custos_url_host(host, sizeof(host), &is_ip, svc->cloud_url, "services.cloud_url"));
        if (is_ip)
            CUSTOS_ENSURE(X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1, CUSTOS_ERR_INTERNAL,
                          "services.cloud_url", "cannot expect the server address %s", host);
        else
            CUSTOS_ENSURE(X509_VERIFY_PARAM_set1_host(param, host, 0) == 1, CUSTOS_ERR_INTERNAL,
                          "services.cloud_url", "cannot expect the server name %s", host);
    }
    ret = 0;
out:
    return ret;
}

custos_err custos_device_ssl_ctx(struct ssl_ctx_st **out, const custos_device *dev,
                                 const char *tmpl)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    SSL_CTX *ctx = NULL;
    X509_STORE *store = NULL;
    const custos_device_key_entry *e = NULL;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    CUSTOS_ENSURE(dev != NULL, CUSTOS_ERR_ARG, "dev", "NULL device");
    e = find_key(dev, tmpl, CUSTOS_USAGE_TLS_CLIENT);
    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_NOT_FOUND, "template",
                  tmpl != NULL ? "the device has no key for template %s"
                               : "the device has no key with usage tls-client%s",
                  tmpl != NULL ? tmpl : "");
    ctx = SSL_CTX_new(TLS_client_method());
    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, NULL, "SSL_CTX_new failed");
    CUSTOS_ENSURE(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1, CUSTOS_ERR_INTERNAL,
                  "tls", "cannot set TLS 1.2 minimum");
    CUSTOS_ENSURE(SSL_CTX_use_certificate(ctx, e->cert) == 1, CUSTOS_ERR_INTERNAL, "tls",
                  "cannot use the certificate of %s", e->template_name);
    for (int i = 0; i < sk_X509_num(dev->profile->chain); i++)
        CUSTOS_ENSURE(SSL_CTX_add1_chain_cert(ctx, sk_X509_value(dev->profile->chain, i)) == 1,
                      CUSTOS_ERR_INTERNAL, "tls", "cannot add the certificate chain");
    CUSTOS_ENSURE(SSL_CTX_use_PrivateKey(ctx, e->key) == 1, CUSTOS_ERR_INTERNAL, "tls",
                  "cannot use the key of %s", e->template_name);
    CUSTOS_ENSURE(SSL_CTX_check_private_key(ctx) == 1, CUSTOS_ERR_MISMATCH, "tls",
                  "the key of %s does not match its certificate", e->template_name);
    CUSTOS_GUARD(custos_dev_store(&store, dev->profile->root_of_trust));
    SSL_CTX_set_cert_store(ctx, store); /* takes ownership */
    store = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    CUSTOS_GUARD(expect_server(ctx, &dev->profile->services));
    *out = ctx;
    ctx = NULL;
    ret = 0;
out:
    X509_STORE_free(store);
    SSL_CTX_free(ctx);
    return ret;
}
