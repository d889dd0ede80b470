/* The public package API: a verified .mcpp with its bootstrap key decrypted. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "custos/package.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

void custos_package_free(custos_package *pkg)
{
    if (pkg == NULL)
        return;
    EVP_PKEY_free(pkg->bootstrap_key); /* OpenSSL wipes private key material on free */
    custos_package_doc_free(pkg->doc);
    free(pkg->bootstrap_der);
    for (size_t i = 0; i < pkg->n_roots; i++)
        free(pkg->root_der[i]);
    free(pkg->root_der);
    free(pkg->root_der_len);
    OPENSSL_cleanse(pkg, sizeof(*pkg));
    free(pkg);
}

static custos_err cache_der(custos_package *pkg)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int n = sk_X509_num(pkg->doc->root_of_trust);

    CUSTOS_ENSURE(n > 0, CUSTOS_ERR_MALFORMED, "root_of_trust",
                  "the package carries no Root of Trust");
    CUSTOS_GUARD(
        custos_x509_to_der(&pkg->bootstrap_der, &pkg->bootstrap_der_len, pkg->doc->bootstrap_cert));
    pkg->root_der = calloc((size_t)n, sizeof(*pkg->root_der));
    pkg->root_der_len = calloc((size_t)n, sizeof(*pkg->root_der_len));
    CUSTOS_ENSURE(pkg->root_der != NULL && pkg->root_der_len != NULL, CUSTOS_ERR_NOMEM, NULL,
                  "out of memory");
    for (int i = 0; i < n; i++) {
        CUSTOS_GUARD(custos_x509_to_der(&pkg->root_der[i], &pkg->root_der_len[i],
                                        sk_X509_value(pkg->doc->root_of_trust, i)));
        pkg->n_roots++;
    }
    ret = 0;
out:
    return ret;
}

custos_err custos_package_open(custos_package **out, const uint8_t *data, size_t len,
                               const char *passphrase, size_t passphrase_len,
                               const custos_package_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_package *pkg = NULL;
    X509 *pinned = NULL;
    int64_t now = 0;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    CUSTOS_ENSURE(data != NULL && len > 0, CUSTOS_ERR_ARG, "package", "the package is empty");
    CUSTOS_ENSURE(passphrase != NULL || passphrase_len == 0, CUSTOS_ERR_ARG, "passphrase",
                  "NULL passphrase");
    CUSTOS_ENSURE(opts == NULL || opts->version == CUSTOS_PACKAGE_OPTIONS_VERSION, CUSTOS_ERR_ARG,
                  "options", "unknown package options version %u",
                  opts != NULL ? opts->version : 0u);
    CUSTOS_ENSURE(len <= CUSTOS_MAX_PACKAGE_SIZE, CUSTOS_ERR_TOO_LARGE, "package",
                  "the package is %zu bytes; the limit is %u", len, CUSTOS_MAX_PACKAGE_SIZE);
    if (opts != NULL && opts->pinned_root_der != NULL)
        CUSTOS_GUARD(custos_x509_from_der(&pinned, opts->pinned_root_der, opts->pinned_root_der_len,
                                          "pinned_root"));
    CUSTOS_GUARD(custos_now(&now, opts != NULL ? opts->port : NULL));

    pkg = calloc(1, sizeof(*pkg));
    CUSTOS_ENSURE(pkg != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_package_decode(&pkg->doc, data, len, pinned, now));
    CUSTOS_GUARD(custos_package_key_decrypt(&pkg->bootstrap_key, pkg->doc->bootstrap_key_enc,
                                            pkg->doc->bootstrap_key_enc_len, passphrase,
                                            passphrase_len));
    EVP_PKEY *cert_key = X509_get0_pubkey(pkg->doc->bootstrap_cert);
    CUSTOS_ENSURE(cert_key != NULL && custos_key_public_equal(cert_key, pkg->bootstrap_key),
                  CUSTOS_ERR_MISMATCH, "bootstrap_key",
                  "the bootstrap key does not match the bootstrap certificate");
    CUSTOS_GUARD(cache_der(pkg));
    *out = pkg;
    pkg = NULL;
    ret = 0;
out:
    X509_free(pinned);
    custos_package_free(pkg);
    return ret;
}

const char *custos_package_id(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->package_id : NULL;
}

const char *custos_package_system(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->system : NULL;
}

int64_t custos_package_expires(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->expires : 0;
}

size_t custos_package_component_count(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->n_components : 0;
}

const char *custos_package_component_name(const custos_package *pkg, size_t i)
{
    if (pkg == NULL || i >= pkg->doc->n_components)
        return NULL;
    return pkg->doc->components[i].name;
}

custos_err custos_package_templates(const custos_key_template **out, size_t *out_count,
                                    const custos_package *pkg, const char *component)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const custos_component_def *c = NULL;

    CUSTOS_ENSURE(out != NULL && out_count != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    *out_count = 0;
    CUSTOS_ENSURE(pkg != NULL && component != NULL, CUSTOS_ERR_ARG, "component", "NULL argument");
    c = custos_package_doc_component(pkg->doc, component);
    CUSTOS_ENSURE(c != NULL, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                  "the package for system %s has no component %s", pkg->doc->system, component);
    *out = c->templates;
    *out_count = c->n_templates;
    ret = 0;
out:
    return ret;
}

const char *custos_package_cloud_url(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->services.cloud_url : "";
}

size_t custos_package_gateway_count(const custos_package *pkg)
{
    return pkg != NULL ? pkg->doc->services.n_gateways : 0;
}

const char *custos_package_gateway(const custos_package *pkg, size_t i)
{
    if (pkg == NULL || i >= pkg->doc->services.n_gateways)
        return NULL;
    return pkg->doc->services.gateways[i];
}

custos_err custos_package_bootstrap_cert(const uint8_t **out, size_t *out_len,
                                         const custos_package *pkg)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(out != NULL && out_len != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(pkg != NULL, CUSTOS_ERR_ARG, "pkg", "NULL package");
    *out = pkg->bootstrap_der;
    *out_len = pkg->bootstrap_der_len;
    ret = 0;
out:
    return ret;
}

size_t custos_package_root_count(const custos_package *pkg)
{
    return pkg != NULL ? pkg->n_roots : 0;
}

custos_err custos_package_root(const uint8_t **out, size_t *out_len, const custos_package *pkg,
                               size_t i)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(out != NULL && out_len != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(pkg != NULL && i < pkg->n_roots, CUSTOS_ERR_ARG, "index",
                  "Root of Trust index %zu out of range (%zu certificates)", i,
                  pkg != NULL ? pkg->n_roots : 0u);
    *out = pkg->root_der[i];
    *out_len = pkg->root_der_len[i];
    ret = 0;
out:
    return ret;
}
