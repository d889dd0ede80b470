/* Identity generation: the initial request (signed with the package's
 * bootstrap key) and reprovisioning requests (signed with the device's
 * current key). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "custos/device.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

/* "a, b, c" of the package's component names, for error messages. */
static void component_list(char *out, size_t cap, const custos_package_doc *d)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n_components && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i > 0 ? ", " : "", d->components[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* One CSR per key of @p gen into @p req (template names copied). */
static custos_err make_csrs(custos_request_doc *req, const custos_identity_gen *gen)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    for (size_t i = 0; i < gen->n_keys; i++) {
        memcpy(req->keys[i].template_name, gen->keys[i].template_name,
               sizeof(req->keys[i].template_name));
        CUSTOS_GUARD(custos_csr_build(&req->keys[i].csr, gen->keys[i].key, req->system,
                                      req->component, req->serial, gen->keys[i].template_name));
        req->n_keys = i + 1;
    }
    ret = 0;
out:
    return ret;
}

/* request_id, nonce and time of a new request from the port. */
static custos_err request_start(custos_request_doc *req, const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_id_new(req->request_id, port));
    CUSTOS_GUARD(custos_random(port, req->nonce, sizeof(req->nonce)));
    CUSTOS_GUARD(custos_now(&req->time, port));
    ret = 0;
out:
    return ret;
}

/* Stack of up-refs of @p a then @p b (either may be NULL). */
static custos_err chain_join(STACK_OF(X509) **out, STACK_OF(X509) *a, STACK_OF(X509) *b)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *sk = NULL;
    CUSTOS_GUARD(custos_doc_certs_dup(&sk, a));
    for (int i = 0; b != NULL && i < sk_X509_num(b); i++)
        CUSTOS_ENSURE(X509_add_cert(sk, sk_X509_value(b, i), X509_ADD_FLAG_UP_REF) == 1,
                      CUSTOS_ERR_NOMEM, NULL, "out of memory");
    *out = sk;
    sk = NULL;
    ret = 0;
out:
    sk_X509_pop_free(sk, X509_free);
    return ret;
}

/* Encode @p req, then write the identity FIRST and the request second: a
 * crash in between leaves a pending generation without a request, which the
 * next request replaces. */
static custos_err commit_request(uint8_t **out_request, size_t *out_len, const custos_port *port,
                                 const custos_request_doc *req, const custos_signer *signer,
                                 const custos_identity_doc *ident)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t der_len = 0;

    CUSTOS_GUARD(custos_request_encode(&der, &der_len, req, signer));
    CUSTOS_GUARD(custos_dev_identity_save(port, ident));
    CUSTOS_GUARD(custos_dev_write(port, CUSTOS_OBJ_REQUEST, der, der_len));
    if (out_request != NULL) {
        *out_request = der;
        der = NULL;
    }
    if (out_len != NULL)
        *out_len = der_len;
    ret = 0;
out:
    free(der);
    return ret;
}

custos_err custos_device_request(uint8_t **out_request, size_t *out_len, const custos_port *port,
                                 const custos_package *pkg, const custos_request_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *ident = NULL;
    custos_request_doc *req = NULL;
    STACK_OF(X509) *chain = NULL;
    const custos_component_def *comp = NULL;
    char names[512];

    if (out_request != NULL)
        *out_request = NULL;
    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_GUARD(custos_dev_port_check(port));
    CUSTOS_ENSURE(pkg != NULL && opts != NULL, CUSTOS_ERR_ARG, "options",
                  "a package and options are required");
    CUSTOS_ENSURE(opts->version == CUSTOS_REQUEST_OPTIONS_VERSION, CUSTOS_ERR_ARG, "options",
                  "unknown request options version %u", opts->version);
    CUSTOS_ENSURE(opts->component != NULL && opts->component[0] != '\0', CUSTOS_ERR_ARG,
                  "component", "the component is required");
    custos_err exists = custos_dev_exists(port, CUSTOS_OBJ_PROFILE);
    CUSTOS_GUARD(exists);
    CUSTOS_ENSURE(exists == 0, CUSTOS_ERR_STATE, "profile",
                  "device is already provisioned; use rotate");
    comp = custos_package_doc_component(pkg->doc, opts->component);
    if (comp == NULL) {
        component_list(names, sizeof(names), pkg->doc);
        CUSTOS_ENSURE(0, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                      "the package for system %s has no component %.64s (it has: %s)",
                      pkg->doc->system, opts->component, names);
    }
    CUSTOS_ENSURE(comp->n_templates > 0 && comp->n_templates <= CUSTOS_MAX_TEMPLATES,
                  CUSTOS_ERR_TEMPLATE, "component", "component %s has no key templates",
                  comp->name);
    CUSTOS_GUARD(custos_dev_identity_fields_check(&opts->identity));

    req = custos_request_doc_new();
    ident = custos_identity_doc_new();
    CUSTOS_ENSURE(req != NULL && ident != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    req->kind = CUSTOS_REQUEST_INITIAL;
    memcpy(req->system, pkg->doc->system, sizeof(req->system));
    memcpy(req->component, comp->name, sizeof(req->component));
    memcpy(req->package_id, pkg->doc->package_id, sizeof(req->package_id));
    CUSTOS_GUARD(custos_dev_request_fill(req, &opts->identity));
    CUSTOS_GUARD(request_start(req, port));

    memcpy(ident->system, req->system, sizeof(ident->system));
    memcpy(ident->component, req->component, sizeof(ident->component));
    memcpy(ident->serial, req->serial, sizeof(ident->serial));
    ident->services = pkg->doc->services;
    CUSTOS_GUARD(custos_doc_certs_dup(&ident->root_of_trust, pkg->doc->root_of_trust));
    custos_identity_gen *gen = &ident->gens[0];
    ident->n_gens = 1;
    memcpy(gen->request_id, req->request_id, sizeof(gen->request_id));
    for (size_t i = 0; i < comp->n_templates; i++) {
        memcpy(gen->keys[i].template_name, comp->templates[i].name,
               sizeof(gen->keys[i].template_name));
        CUSTOS_GUARD(custos_key_generate(&gen->keys[i].key, comp->templates[i].alg));
        gen->n_keys = i + 1;
    }
    CUSTOS_GUARD(make_csrs(req, gen));

    /* The signer and its issuing CA only: every verifier holds the root as its
     * trust anchor, and each carried certificate costs the server a parse. */
    CUSTOS_GUARD(chain_join(&chain, pkg->doc->bootstrap_chain, NULL));
    custos_signer signer = {pkg->doc->bootstrap_cert, pkg->bootstrap_key, chain};
    CUSTOS_GUARD(commit_request(out_request, out_len, port, req, &signer, ident));
    if (!(opts->flags & CUSTOS_REQUEST_KEEP_PACKAGE))
        CUSTOS_GUARD(custos_dev_remove(port, CUSTOS_OBJ_PACKAGE));
    ret = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    custos_request_doc_free(req);
    custos_identity_doc_free(ident);
    return ret;
}

/* The key that signs a reprovisioning request: first tls-client, else first
 * signing, else any. Never Ed25519: OpenSSL 3's CMS cannot sign with it
 * (system definitions therefore require one non-Ed25519 key per component). */
static const custos_device_key_entry *rotate_signer(const custos_device *dev)
{
    static const unsigned prefer[] = {CUSTOS_USAGE_TLS_CLIENT, CUSTOS_USAGE_SIGNING, ~0u};
    for (size_t p = 0; p < sizeof(prefer) / sizeof(prefer[0]); p++)
        for (size_t i = 0; i < dev->n_keys; i++)
            if ((dev->keys[i].usage & prefer[p]) && dev->keys[i].alg != CUSTOS_ALG_ED25519)
                return &dev->keys[i];
    return NULL;
}

/* The identity for a rotation, from the identity in storage (another handle
 * may have rotated since @p dev was opened): the previous generation (if
 * kept), the current one, and room for the new pending one. A stale pending
 * generation of an earlier unanswered rotation is dropped. */
/* 1 if generation @p g holds exactly the keys @p dev operates with. */
static int same_keys(const custos_identity_gen *g, const custos_device *dev)
{
    if (g->n_keys != dev->n_keys)
        return 0;
    for (size_t i = 0; i < dev->n_keys; i++) {
        int found = 0;
        for (size_t j = 0; !found && j < g->n_keys; j++)
            found = strcmp(g->keys[j].template_name, dev->keys[i].template_name) == 0 &&
                    custos_key_public_equal(g->keys[j].key, dev->keys[i].key);
        if (!found)
            return 0;
    }
    return 1;
}

static custos_err rotate_identity(custos_identity_doc **out, const custos_device *dev,
                                  int request_pending)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *src = NULL, *d = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0, previous = SIZE_MAX;
    const char *cur = dev->profile->request_id;

    *out = NULL;
    CUSTOS_GUARD(
        custos_dev_read(&bytes, &len, &dev->port, CUSTOS_OBJ_IDENTITY, CUSTOS_MAX_IDENTITY_SIZE));
    CUSTOS_GUARD(custos_dev_identity_load(&src, &dev->port, bytes, len));
    /* The file was read again: it must still be the device-locked identity
     * that was opened (a planted unlocked "mock" file would otherwise make
     * the new keys be written in the clear). */
    CUSTOS_ENSURE(!src->mock, CUSTOS_ERR_MOCK, "identity",
                  "the identity file is no longer device-locked; refusing to add keys to it");
    CUSTOS_ENSURE(custos_identity_doc_gen(src, cur) != NULL &&
                      strcmp(src->serial, dev->profile->serial) == 0 &&
                      same_keys(custos_identity_doc_gen(src, cur), dev),
                  CUSTOS_ERR_STATE, "identity",
                  "the device files changed since the device was opened; open it again");
    for (size_t i = 0; i < src->n_gens; i++) {
        int current = strcmp(src->gens[i].request_id, cur) == 0;
        if (!current && !(request_pending && i == src->n_gens - 1))
            previous = i;
    }
    CUSTOS_GUARD(custos_dev_identity_clone_header(&d, src));
    for (size_t i = 0; i < src->n_gens; i++) {
        if (strcmp(src->gens[i].request_id, cur) == 0 || i == previous)
            custos_dev_gen_copy(&d->gens[d->n_gens++], &src->gens[i]);
    }
    *out = d;
    d = NULL;
    ret = 0;
out:
    if (bytes != NULL)
        OPENSSL_cleanse(bytes, len);
    free(bytes);
    custos_identity_doc_free(src);
    custos_identity_doc_free(d);
    return ret;
}

custos_err custos_device_rotate(uint8_t **out_request, size_t *out_len, custos_device *dev,
                                const custos_rotate_options *opts)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_rotate_options defaults = CUSTOS_ROTATE_OPTIONS_INIT;
    custos_identity_doc *ident = NULL;
    custos_request_doc *req = NULL;
    STACK_OF(X509) *chain = NULL;
    const custos_device_key_entry *sk = NULL;

    if (out_request != NULL)
        *out_request = NULL;
    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_ENSURE(dev != NULL, CUSTOS_ERR_ARG, "dev", "NULL device");
    if (opts == NULL)
        opts = &defaults;
    CUSTOS_ENSURE(opts->version == CUSTOS_ROTATE_OPTIONS_VERSION, CUSTOS_ERR_ARG, "options",
                  "unknown rotate options version %u", opts->version);
    CUSTOS_ENSURE(!dev->identity->mock, CUSTOS_ERR_MOCK, "identity",
                  "mock device files cannot be reprovisioned");
    custos_device_identity fields = {0};
    fields.serial = dev->profile->serial;
    fields.firmware = opts->firmware;
    fields.metadata = opts->metadata;
    fields.metadata_count = opts->metadata_count;
    CUSTOS_GUARD(custos_dev_identity_fields_check(&fields));
    sk = rotate_signer(dev);
    CUSTOS_ENSURE(sk != NULL, CUSTOS_ERR_STATE, "profile", "the device has no key to sign with");
    /* A request expires with the certificate that signs it: refuse to make
     * one the server would reject. */
    int64_t now = 0;
    char when[21];
    CUSTOS_GUARD(custos_now(&now, &dev->port));
    custos_time_format(when, sk->not_after);
    CUSTOS_ENSURE(now <= sk->not_after, CUSTOS_ERR_EXPIRED, sk->template_name,
                  "the certificate of template %s that signs reprovisioning requests expired "
                  "at %s; provision the device again with a package",
                  sk->template_name, when);
    custos_err pending = custos_dev_exists(&dev->port, CUSTOS_OBJ_REQUEST);
    CUSTOS_GUARD(pending);

    req = custos_request_doc_new();
    CUSTOS_ENSURE(req != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    req->kind = CUSTOS_REQUEST_REPROVISION;
    memcpy(req->system, dev->profile->system, sizeof(req->system));
    memcpy(req->component, dev->profile->component, sizeof(req->component));
    memcpy(req->device_id, dev->profile->device_id, sizeof(req->device_id));
    CUSTOS_GUARD(custos_dev_request_fill(req, &fields));
    CUSTOS_GUARD(request_start(req, &dev->port));

    CUSTOS_GUARD(rotate_identity(&ident, dev, pending == 1));
    CUSTOS_ENSURE(ident->n_gens < CUSTOS_MAX_GENERATIONS, CUSTOS_ERR_INTERNAL, "identity",
                  "no room for a new key generation");
    custos_identity_gen *gen = &ident->gens[ident->n_gens++];
    memcpy(gen->request_id, req->request_id, sizeof(gen->request_id));
    for (size_t i = 0; i < dev->n_keys; i++) {
        memcpy(gen->keys[i].template_name, dev->keys[i].template_name,
               sizeof(gen->keys[i].template_name));
        if (opts->same_keys) {
            CUSTOS_ENSURE(EVP_PKEY_up_ref(dev->keys[i].key) == 1, CUSTOS_ERR_INTERNAL, "key",
                          "EVP_PKEY_up_ref failed");
            gen->keys[i].key = dev->keys[i].key;
        } else {
            CUSTOS_GUARD(custos_key_generate(&gen->keys[i].key, dev->keys[i].alg));
        }
        gen->n_keys = i + 1;
    }
    CUSTOS_GUARD(make_csrs(req, gen));

    CUSTOS_GUARD(chain_join(&chain, dev->profile->chain, NULL));
    custos_signer signer = {sk->cert, sk->key, chain};
    CUSTOS_GUARD(commit_request(out_request, out_len, &dev->port, req, &signer, ident));
    custos_identity_doc_free(dev->identity);
    dev->identity = ident;
    ident = NULL;
    ret = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    custos_request_doc_free(req);
    custos_identity_doc_free(ident);
    return ret;
}
