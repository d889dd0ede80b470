/* custos_inspect: describe any Custos file for a person. Verifies what can be
 * verified offline (signatures against the root the file carries, proof of
 * possession) and says what cannot; never outputs key material. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "custos/device.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

#define IDENTITY_MAGIC "CUSTOSPI"
#define CARRIED_ROOT "carried root (not pinned)"

typedef custos_err (*decode_fn)(void **out, const uint8_t *der, size_t len, X509_STORE *store,
                                int64_t now);

static custos_err dec_package(void **out, const uint8_t *der, size_t len, X509_STORE *store,
                              int64_t now)
{
    (void)store;
    return custos_package_decode((custos_package_doc **)out, der, len, NULL, now);
}

static custos_err dec_request(void **out, const uint8_t *der, size_t len, X509_STORE *store,
                              int64_t now)
{
    custos_trust t = {store, NULL, now, 0, NULL};
    return custos_request_decode((custos_request_doc **)out, der, len, &t);
}

static custos_err dec_profile(void **out, const uint8_t *der, size_t len, X509_STORE *store,
                              int64_t now)
{
    custos_trust t = {store, NULL, now, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING), NULL};
    return custos_profile_decode((custos_profile_doc **)out, der, len, &t);
}

/* Verify now; when the only fault is validity, check the signatures again at
 * a time when every carried certificate was valid. Records the outcome in
 * @p verified; *out is NULL when nothing could be verified. */
/* The CA certificates among @p certs (up-refs). */
static custos_err carried_cas(STACK_OF(X509) **out, STACK_OF(X509) *certs)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *cas = sk_X509_new_null();

    *out = NULL;
    CUSTOS_ENSURE(cas != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++)
        if (X509_check_ca(sk_X509_value(certs, i)) > 0)
            CUSTOS_ENSURE(X509_add_cert(cas, sk_X509_value(certs, i), X509_ADD_FLAG_UP_REF) == 1,
                          CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(sk_X509_num(cas) > 0, CUSTOS_ERR_UNTRUSTED, "certificates",
                  "the file carries no certificate to anchor its signer");
    custos_error_clear();
    *out = cas;
    cas = NULL;
    ret = 0;
out:
    sk_X509_pop_free(cas, X509_free);
    return ret;
}

static custos_err verify(void **out, json_t *verified, decode_fn fn, const uint8_t *der, size_t len,
                         STACK_OF(X509) *certs, size_t max, const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *roots = NULL;
    X509_STORE *store = NULL;
    json_t *err = NULL;
    int64_t now = 0;

    *out = NULL;
    CUSTOS_GUARD(custos_now(&now, NULL));
    custos_err r = custos_dev_carried_roots(&roots, der, len, max, what);
    int partial = 0;
    if (r < 0) {
        /* No root carried (requests carry only the signer and its issuing
         * CA): anchor at the carried CA certificates, so the signature, the
         * signer's validity and proof of possession can still be shown. */
        r = carried_cas(&roots, certs);
        partial = 1;
    }
    if (r == 0)
        r = custos_dev_store(&store, roots);
    if (r == 0 && partial)
        r = X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) == 1 ? 0 : CUSTOS_ERR_INTERNAL;
    if (r == 0)
        r = fn(out, der, len, store, now);
    if (r == CUSTOS_ERR_EXPIRED || r == CUSTOS_ERR_NOT_YET_VALID) {
        CUSTOS_GUARD(custos_describe_error(&err, r));
        CUSTOS_GUARD(custos_describe_set(verified, "validity_error", err));
        r = fn(out, der, len, store, custos_describe_common_valid_time(certs));
        CUSTOS_GUARD(custos_describe_set(verified, "valid_now", json_false()));
    } else if (r == 0) {
        CUSTOS_GUARD(custos_describe_set(verified, "valid_now", json_true()));
    }
    CUSTOS_GUARD(custos_describe_set(verified, "signature", json_boolean(r == 0)));
    if (r < 0) {
        CUSTOS_GUARD(custos_describe_error(&err, r));
        CUSTOS_GUARD(custos_describe_set(verified, "error", err));
    }
    ret = 0;
out:
    sk_X509_pop_free(roots, X509_free);
    X509_STORE_free(store);
    return ret;
}

static custos_err meta_json(json_t **out, const custos_meta_entry *m, size_t n)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        CUSTOS_GUARD(custos_describe_set(o, m[i].key, json_string(m[i].value)));
    *out = o;
    o = NULL;
    ret = 0;
out:
    json_decref(o);
    return ret;
}

static custos_err hex_json(json_t **out, const uint8_t *b, size_t n)
{
    char hex[65];
    if (n > 32)
        return custos_error_set(CUSTOS_ERR_INTERNAL, NULL, "hex field too long");
    custos_hex_encode(hex, b, n);
    *out = json_string(hex);
    return *out != NULL ? 0 : custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
}

static custos_err package_content(json_t *c, const custos_package_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *v = NULL, *comps = json_array();

    CUSTOS_ENSURE(comps != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_describe_set(c, "package_id", json_string(d->package_id)));
    CUSTOS_GUARD(custos_describe_set(c, "system", json_string(d->system)));
    CUSTOS_GUARD(custos_describe_set(c, "created", custos_describe_time(d->created)));
    CUSTOS_GUARD(custos_describe_set(c, "expires", custos_describe_time(d->expires)));
    for (size_t i = 0; i < d->n_components; i++) {
        CUSTOS_GUARD(custos_component_to_json(&v, &d->components[i]));
        CUSTOS_ENSURE(json_array_append_new(comps, v) == 0, CUSTOS_ERR_NOMEM, NULL, "no memory");
        v = NULL;
    }
    CUSTOS_GUARD(custos_describe_set(c, "components", comps));
    comps = NULL;
    CUSTOS_GUARD(custos_doc_services_to_json(&v, &d->services));
    CUSTOS_GUARD(custos_describe_set(c, "services", v));
    v = NULL;
    CUSTOS_GUARD(custos_describe_certs(&v, d->root_of_trust));
    CUSTOS_GUARD(custos_describe_set(c, "root_of_trust", v));
    CUSTOS_GUARD(custos_describe_cert(&v, d->bootstrap_cert));
    CUSTOS_GUARD(custos_describe_set(c, "bootstrap_certificate", v));
    CUSTOS_GUARD(custos_describe_certs(&v, d->bootstrap_chain));
    CUSTOS_GUARD(custos_describe_set(c, "bootstrap_chain", v));
    CUSTOS_GUARD(custos_describe_set(c, "bootstrap_key",
                                     json_string("encrypted with the passphrase (not shown)")));
    ret = 0;
out:
    json_decref(comps);
    return ret;
}

static custos_err request_keys(json_t **out, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *a = json_array(), *k = NULL, *h = NULL;
    uint8_t spki[32];

    *out = NULL;
    CUSTOS_ENSURE(a != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < d->n_keys; i++) {
        EVP_PKEY *pub = X509_REQ_get0_pubkey(d->keys[i].csr);
        const char *alg = pub != NULL ? custos_alg_name(custos_key_alg(pub)) : NULL;
        CUSTOS_ENSURE(pub != NULL, CUSTOS_ERR_MALFORMED, d->keys[i].template_name,
                      "CSR without a public key");
        CUSTOS_GUARD(custos_key_spki_sha256(spki, pub));
        CUSTOS_GUARD(hex_json(&h, spki, sizeof(spki)));
        k = json_pack("{s:s, s:s, s:o, s:o}", "template", d->keys[i].template_name, "algorithm",
                      alg != NULL ? alg : "other", "subject",
                      custos_describe_name(X509_REQ_get_subject_name(d->keys[i].csr)),
                      "spki_sha256", h);
        h = NULL;
        CUSTOS_ENSURE(k != NULL && json_array_append_new(a, k) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
    }
    *out = a;
    a = NULL;
    ret = 0;
out:
    json_decref(h);
    json_decref(a);
    return ret;
}

static custos_err request_content(json_t *c, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *v = NULL;
    const char *kind = d->kind == CUSTOS_REQUEST_INITIAL ? "initial" : "reprovision";

    CUSTOS_GUARD(custos_describe_set(c, "request_id", json_string(d->request_id)));
    CUSTOS_GUARD(custos_describe_set(c, "kind", json_string(kind)));
    CUSTOS_GUARD(custos_describe_set(c, "system", json_string(d->system)));
    CUSTOS_GUARD(custos_describe_set(c, "component", json_string(d->component)));
    CUSTOS_GUARD(custos_describe_set(c, "package_id", json_string(d->package_id)));
    CUSTOS_GUARD(custos_describe_set(c, "device_id", json_string(d->device_id)));
    CUSTOS_GUARD(custos_describe_set(c, "serial", json_string(d->serial)));
    CUSTOS_GUARD(custos_describe_set(c, "hardware_id", json_string(d->hardware_id)));
    CUSTOS_GUARD(custos_describe_set(c, "model", json_string(d->model)));
    CUSTOS_GUARD(custos_describe_set(c, "firmware", json_string(d->firmware)));
    CUSTOS_GUARD(meta_json(&v, d->manufacturer, d->n_manufacturer));
    CUSTOS_GUARD(custos_describe_set(c, "manufacturer", v));
    CUSTOS_GUARD(meta_json(&v, d->metadata, d->n_metadata));
    CUSTOS_GUARD(custos_describe_set(c, "metadata", v));
    CUSTOS_GUARD(hex_json(&v, d->nonce, sizeof(d->nonce)));
    CUSTOS_GUARD(custos_describe_set(c, "nonce", v));
    CUSTOS_GUARD(custos_describe_set(c, "time", custos_describe_time(d->time)));
    CUSTOS_GUARD(request_keys(&v, d));
    CUSTOS_GUARD(custos_describe_set(c, "keys", v));
    CUSTOS_GUARD(hex_json(&v, d->digest, sizeof(d->digest)));
    CUSTOS_GUARD(custos_describe_set(c, "sha256", v));
    CUSTOS_GUARD(custos_describe_cert(&v, d->signer));
    CUSTOS_GUARD(custos_describe_set(c, "signer", v));
    CUSTOS_GUARD(custos_describe_set(c, "expires", custos_describe_time(d->signer_not_after)));
    ret = 0;
out:
    return ret;
}

static custos_err profile_content(json_t *c, const custos_profile_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *v = NULL, *certs = json_array();

    CUSTOS_ENSURE(certs != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_describe_set(c, "device_id", json_string(d->device_id)));
    CUSTOS_GUARD(custos_describe_set(c, "request_id", json_string(d->request_id)));
    CUSTOS_GUARD(hex_json(&v, d->request_sha256, sizeof(d->request_sha256)));
    CUSTOS_GUARD(custos_describe_set(c, "request_sha256", v));
    CUSTOS_GUARD(custos_describe_set(c, "system", json_string(d->system)));
    CUSTOS_GUARD(custos_describe_set(c, "component", json_string(d->component)));
    CUSTOS_GUARD(custos_describe_set(c, "serial", json_string(d->serial)));
    CUSTOS_GUARD(custos_describe_set(c, "mock", json_boolean(d->mock)));
    CUSTOS_GUARD(custos_describe_set(c, "issued", custos_describe_time(d->issued)));
    for (size_t i = 0; i < d->n_certs; i++) {
        CUSTOS_GUARD(custos_describe_cert(&v, d->certs[i].cert));
        CUSTOS_GUARD(custos_describe_set(v, "template", json_string(d->certs[i].template_name)));
        CUSTOS_ENSURE(json_array_append_new(certs, v) == 0, CUSTOS_ERR_NOMEM, NULL, "no memory");
        v = NULL;
    }
    CUSTOS_GUARD(custos_describe_set(c, "certificates", certs));
    certs = NULL;
    CUSTOS_GUARD(custos_describe_certs(&v, d->chain));
    CUSTOS_GUARD(custos_describe_set(c, "chain", v));
    CUSTOS_GUARD(custos_describe_certs(&v, d->root_of_trust));
    CUSTOS_GUARD(custos_describe_set(c, "root_of_trust", v));
    CUSTOS_GUARD(custos_doc_services_to_json(&v, &d->services));
    CUSTOS_GUARD(custos_describe_set(c, "services", v));
    v = NULL;
    CUSTOS_GUARD(custos_describe_set(c, "renewal_window_days",
                                     json_integer((json_int_t)d->renewal_window_days)));
    ret = 0;
out:
    json_decref(v);
    json_decref(certs);
    return ret;
}

static custos_err inspect_signed(json_t *o, const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct = CUSTOS_OID_COUNT;
    void *doc = NULL;
    json_t *verified = json_object(), *c = json_object(), *v = NULL;
    const char *kind = NULL;

    CUSTOS_ENSURE(verified != NULL && c != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, data, len,
                                 CUSTOS_MAX_PACKAGE_SIZE, "Custos file"));
    if (ct == CUSTOS_OID_CT_PACKAGE) {
        kind = "package";
        CUSTOS_GUARD(verify(&doc, verified, dec_package, data, len, certs, CUSTOS_MAX_PACKAGE_SIZE,
                            "provisioning package"));
        CUSTOS_GUARD(custos_describe_set(verified, "trust", json_string(CARRIED_ROOT)));
        if (doc != NULL)
            CUSTOS_GUARD(package_content(c, doc));
    } else if (ct == CUSTOS_OID_CT_REQUEST) {
        kind = "request";
        CUSTOS_GUARD(verify(&doc, verified, dec_request, data, len, certs, CUSTOS_MAX_REQUEST_SIZE,
                            "provisioning request"));
        CUSTOS_GUARD(custos_describe_set(
            verified, "trust",
            json_string(CARRIED_ROOT ": the chain to the system's Root of Trust cannot be "
                                     "checked offline without that root")));
        CUSTOS_GUARD(custos_describe_set(verified, "proof_of_possession",
                                         doc != NULL ? json_true() : json_null()));
        if (doc != NULL)
            CUSTOS_GUARD(request_content(c, doc));
    } else if (ct == CUSTOS_OID_CT_PROFILE) {
        kind = "profile";
        CUSTOS_GUARD(verify(&doc, verified, dec_profile, data, len, certs, CUSTOS_MAX_PROFILE_SIZE,
                            "certified profile"));
        CUSTOS_GUARD(custos_describe_set(verified, "trust", json_string(CARRIED_ROOT)));
        if (doc != NULL)
            CUSTOS_GUARD(profile_content(c, doc));
    } else {
        custos_receipt_doc *r = NULL;
        char hex[65], when[21];
        kind = "receipt";
        /* A receipt names its signer itself: the signature is checked against
         * the certificate it carries; that the certificate is the one issued
         * for the request only the server can tell. */
        if (custos_receipt_decode(&r, data, len) == CUSTOS_OK) {
            CUSTOS_GUARD(custos_describe_set(verified, "signature", json_true()));
            CUSTOS_GUARD(custos_describe_set(
                verified, "trust",
                json_string("signed by the certificate it carries; the server checks that it "
                            "issued that certificate for the request")));
            custos_hex_encode(hex, r->profile_sha256, sizeof(r->profile_sha256));
            custos_time_format(when, r->time);
            ret = custos_describe_set(c, "request_id", json_string(r->request_id));
            if (ret == CUSTOS_OK)
                ret = custos_describe_set(c, "device_id", json_string(r->device_id));
            if (ret == CUSTOS_OK)
                ret = custos_describe_set(c, "profile_sha256", json_string(hex));
            if (ret == CUSTOS_OK)
                ret = custos_describe_set(c, "time", json_string(when));
            custos_receipt_doc_free(r);
            CUSTOS_GUARD(ret);
        } else {
            CUSTOS_GUARD(custos_describe_set(verified, "signature", json_false()));
            CUSTOS_GUARD(
                custos_describe_set(verified, "error", json_string(custos_error_last()->message)));
            custos_error_clear();
        }
    }
    if (json_object_size(c) == 0) {
        /* Nothing verified: show only the certificates it carries. */
        CUSTOS_GUARD(custos_describe_certs(&v, certs));
        CUSTOS_GUARD(custos_describe_set(c, "certificates", v));
    }
    CUSTOS_GUARD(custos_describe_set(o, "kind", json_string(kind)));
    CUSTOS_GUARD(custos_describe_set(o, "verified", verified));
    verified = NULL;
    CUSTOS_GUARD(custos_describe_set(o, "content", c));
    c = NULL;
    ret = 0;
out:
    if (doc != NULL && ct == CUSTOS_OID_CT_PACKAGE)
        custos_package_doc_free(doc);
    else if (doc != NULL && ct == CUSTOS_OID_CT_REQUEST)
        custos_request_doc_free(doc);
    else if (doc != NULL && ct == CUSTOS_OID_CT_PROFILE)
        custos_profile_doc_free(doc);
    free(content);
    sk_X509_pop_free(certs, X509_free);
    json_decref(verified);
    json_decref(c);
    return ret;
}

/* Replace the base64 certificates of the header's root_of_trust by their
 * descriptions (fingerprints, validity), like the other kinds. */
static custos_err describe_header_roots(json_t *h)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *arr = json_object_get(h, "root_of_trust");
    STACK_OF(X509) *sk = NULL;
    X509 *x = NULL;
    json_t *v = NULL;
    size_t i;
    json_t *item;

    if (!json_is_array(arr))
        return 0;
    sk = sk_X509_new_null();
    CUSTOS_ENSURE(sk != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    json_array_foreach(arr, i, item)
    {
        CUSTOS_ENSURE(json_is_string(item), CUSTOS_ERR_MALFORMED, "root_of_trust",
                      "root_of_trust entries must be strings");
        CUSTOS_GUARD(custos_x509_from_b64(&x, json_string_value(item), "root_of_trust"));
        CUSTOS_ENSURE(sk_X509_push(sk, x) > 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        x = NULL;
    }
    CUSTOS_GUARD(custos_describe_certs(&v, sk));
    CUSTOS_GUARD(custos_describe_set(h, "root_of_trust", v));
    ret = 0;
out:
    X509_free(x);
    sk_X509_pop_free(sk, X509_free);
    return ret;
}

static custos_err inspect_identity(json_t *o, const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *h = NULL;

    CUSTOS_GUARD(custos_identity_header(&h, data, len));
    CUSTOS_GUARD(describe_header_roots(h));
    CUSTOS_GUARD(custos_describe_set(o, "kind", json_string("identity")));
    CUSTOS_GUARD(custos_describe_set(
        o, "verified",
        json_pack("{s:s}", "device_lock",
                  "not checked: opening it needs the device secret of the device it was made on")));
    CUSTOS_GUARD(custos_describe_set(o, "content", h));
    h = NULL;
    ret = 0;
out:
    json_decref(h);
    return ret;
}

custos_err custos_inspect(char **out_json, const uint8_t *data, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = NULL;
    size_t out_len = 0;

    CUSTOS_ENSURE(out_json != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out_json = NULL;
    CUSTOS_ENSURE(data != NULL && len > 0, CUSTOS_ERR_ARG, "file", "the file is empty");
    CUSTOS_ENSURE(len <= CUSTOS_MAX_PACKAGE_SIZE, CUSTOS_ERR_TOO_LARGE, "file",
                  "the file is %zu bytes; no Custos file is larger than %u", len,
                  CUSTOS_MAX_PACKAGE_SIZE);
    o = json_object();
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    custos_dev_oids_register();
    if (len >= 8 && memcmp(data, IDENTITY_MAGIC, 8) == 0)
        CUSTOS_GUARD(inspect_identity(o, data, len));
    else
        CUSTOS_GUARD(inspect_signed(o, data, len));
    CUSTOS_GUARD(custos_json_dump(out_json, &out_len, o));
    custos_error_clear();
    ret = 0;
out:
    json_decref(o);
    return ret;
}
