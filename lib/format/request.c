/* .mcpr provisioning request: JSON content in CMS SignedData, signed by the
 * bootstrap key (initial) or the device's current key (reprovision); one
 * PKCS#10 per key template, whose own signature is the proof of possession
 * (docs/formats.md). */
#include <string.h>

#include <openssl/err.h>

#include "internal/format.h"

#define WHAT "provisioning request"

custos_request_doc *custos_request_doc_new(void)
{
    return calloc(1, sizeof(custos_request_doc));
}

void custos_request_doc_free(custos_request_doc *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < CUSTOS_MAX_TEMPLATES; i++)
        X509_REQ_free(d->keys[i].csr);
    X509_free(d->signer);
    free(d);
}

custos_err custos_csr_build(X509_REQ **out, EVP_PKEY *key, const char *system,
                            const char *component, const char *serial, const char *tmpl)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;

    *out = NULL;
    CUSTOS_ENSURE(key != NULL && system != NULL && component != NULL && serial != NULL &&
                      tmpl != NULL,
                  CUSTOS_ERR_ARG, "csr", "missing key, system, component, serial or template");
    CUSTOS_ENSURE(custos_serial_valid(serial), CUSTOS_ERR_MALFORMED, "device.serial",
                  "device.serial has characters that are not allowed");
    CUSTOS_ENSURE(custos_key_alg(key) != CUSTOS_ALG_NONE, CUSTOS_ERR_UNSUPPORTED, tmpl,
                  "the key for template '%s' has an unsupported algorithm", tmpl);
    CUSTOS_GUARD(custos_subject_build(&name, "CN={serial}", system, component, serial, tmpl));
    req = X509_REQ_new();
    CUSTOS_ENSURE(req != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(X509_REQ_set_version(req, 0) == 1 && X509_REQ_set_subject_name(req, name) == 1 &&
                      X509_REQ_set_pubkey(req, key) == 1,
                  CUSTOS_ERR_INTERNAL, tmpl, "cannot build the CSR for template '%s'", tmpl);
    if (X509_REQ_sign(req, key, custos_key_md(key)) <= 0) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, tmpl,
                                   "cannot sign the CSR for template '%s'", tmpl);
        goto out;
    }
    *out = req;
    req = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    X509_NAME_free(name);
    X509_REQ_free(req);
    return ret;
}

/* ---- limits, shared by encode (caller input) and decode (after parse) ---- */

static custos_err check_meta(const custos_meta_entry *m, size_t n, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char f[96];

    CUSTOS_ENSURE(n <= CUSTOS_MAX_META_ENTRIES, CUSTOS_ERR_LIMIT, field,
                  "%s has more than %d entries", field, CUSTOS_MAX_META_ENTRIES);
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof(f), "%s.%.32s", field, m[i].key);
        CUSTOS_ENSURE(custos_name_valid(m[i].key, CUSTOS_MAX_META_KEY_LEN), CUSTOS_ERR_MALFORMED, f,
                      "%s: keys are 1 to %d characters of [a-z0-9_.-], starting with a letter "
                      "or digit",
                      f, CUSTOS_MAX_META_KEY_LEN);
        CUSTOS_ENSURE(strlen(m[i].value) <= CUSTOS_MAX_META_VALUE_LEN, CUSTOS_ERR_LIMIT, f,
                      "%s is longer than %d bytes", f, CUSTOS_MAX_META_VALUE_LEN);
        CUSTOS_ENSURE(custos_text_valid(m[i].value, CUSTOS_MAX_META_VALUE_LEN),
                      CUSTOS_ERR_MALFORMED, f, "%s has characters that are not allowed", f);
        for (size_t k = 0; k < i; k++)
            CUSTOS_ENSURE(strcmp(m[k].key, m[i].key) != 0, CUSTOS_ERR_DUPLICATE, f,
                          "%s appears twice", f);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err check_doc(const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char f[64];

    CUSTOS_ENSURE(custos_id_valid(d->request_id), CUSTOS_ERR_MALFORMED, "request_id",
                  "request_id is not a valid id");
    CUSTOS_ENSURE(d->kind == CUSTOS_REQUEST_INITIAL || d->kind == CUSTOS_REQUEST_REPROVISION,
                  CUSTOS_ERR_MALFORMED, "kind", "kind must be initial or reprovision");
    CUSTOS_ENSURE(custos_name_valid(d->system, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_MALFORMED, "system",
                  "system is not a valid name");
    CUSTOS_ENSURE(custos_name_valid(d->component, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_MALFORMED,
                  "component", "component is not a valid name");
    if (d->kind == CUSTOS_REQUEST_INITIAL) {
        CUSTOS_ENSURE(custos_id_valid(d->package_id), CUSTOS_ERR_MALFORMED, "package_id",
                      "an initial request needs the package_id of its package");
        CUSTOS_ENSURE(d->device_id[0] == '\0', CUSTOS_ERR_MALFORMED, "device_id",
                      "an initial request has no device_id");
    } else {
        CUSTOS_ENSURE(custos_id_valid(d->device_id), CUSTOS_ERR_MALFORMED, "device_id",
                      "a reprovisioning request needs the device_id being renewed");
        CUSTOS_ENSURE(d->package_id[0] == '\0', CUSTOS_ERR_MALFORMED, "package_id",
                      "a reprovisioning request has no package_id");
    }
    CUSTOS_ENSURE(custos_serial_valid(d->serial), CUSTOS_ERR_MALFORMED, "device.serial",
                  "device.serial must be 1 to %d characters of [A-Za-z0-9._:-]",
                  CUSTOS_MAX_SERIAL_LEN);
    CUSTOS_ENSURE(custos_text_valid(d->hardware_id, CUSTOS_MAX_HARDWARE_ID_LEN),
                  CUSTOS_ERR_MALFORMED, "device.hardware_id",
                  "device.hardware_id is not printable text");
    CUSTOS_ENSURE(custos_text_valid(d->model, CUSTOS_MAX_MODEL_LEN), CUSTOS_ERR_MALFORMED,
                  "device.model", "device.model is not printable text");
    CUSTOS_ENSURE(custos_text_valid(d->firmware, CUSTOS_MAX_FIRMWARE_LEN), CUSTOS_ERR_MALFORMED,
                  "device.firmware", "device.firmware is not printable text");
    CUSTOS_GUARD(check_meta(d->manufacturer, d->n_manufacturer, "device.manufacturer"));
    CUSTOS_GUARD(check_meta(d->metadata, d->n_metadata, "metadata"));
    CUSTOS_ENSURE(d->n_keys >= 1 && d->n_keys <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT, "keys",
                  "a request carries 1 to %d keys", CUSTOS_MAX_TEMPLATES);
    for (size_t i = 0; i < d->n_keys; i++) {
        snprintf(f, sizeof(f), "keys[%zu].template", i);
        CUSTOS_ENSURE(custos_name_valid(d->keys[i].template_name, CUSTOS_MAX_TEMPLATE_NAME_LEN),
                      CUSTOS_ERR_MALFORMED, f, "%s is not a valid template name", f);
        CUSTOS_ENSURE(d->keys[i].csr != NULL, CUSTOS_ERR_ARG, f, "no CSR for key '%s'",
                      d->keys[i].template_name);
        for (size_t k = 0; k < i; k++)
            CUSTOS_ENSURE(strcmp(d->keys[k].template_name, d->keys[i].template_name) != 0,
                          CUSTOS_ERR_DUPLICATE, f, "key template '%s' appears twice",
                          d->keys[i].template_name);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

/* ---- encode --------------------------------------------------------------- */

static custos_err meta_to_json(json_t **out, const custos_meta_entry *m, size_t n)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        CUSTOS_GUARD(custos_doc_set_string(o, m[i].key, m[i].value));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(o);
    return ret;
}

static custos_err device_to_json(json_t **out, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *m = NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_doc_set_string(o, "serial", d->serial));
    if (d->hardware_id[0] != '\0')
        CUSTOS_GUARD(custos_doc_set_string(o, "hardware_id", d->hardware_id));
    if (d->model[0] != '\0')
        CUSTOS_GUARD(custos_doc_set_string(o, "model", d->model));
    if (d->firmware[0] != '\0')
        CUSTOS_GUARD(custos_doc_set_string(o, "firmware", d->firmware));
    if (d->n_manufacturer > 0) {
        CUSTOS_GUARD(meta_to_json(&m, d->manufacturer, d->n_manufacturer));
        CUSTOS_GUARD(custos_doc_set(o, "manufacturer", m));
        m = NULL;
    }
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(m);
    json_decref(o);
    return ret;
}

static custos_err keys_to_json(json_t **out, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *arr = json_array();
    json_t *k = NULL;
    unsigned char *der = NULL;
    char *b64 = NULL;
    int n = 0;

    *out = NULL;
    CUSTOS_ENSURE(arr != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < d->n_keys; i++) {
        n = i2d_X509_REQ(d->keys[i].csr, &der);
        CUSTOS_ENSURE(n > 0, CUSTOS_ERR_INTERNAL, "keys", "cannot encode the CSR for key '%s'",
                      d->keys[i].template_name);
        CUSTOS_ENSURE((size_t)n <= CUSTOS_MAX_CSR_SIZE, CUSTOS_ERR_TOO_LARGE, "keys",
                      "the CSR for key '%s' exceeds %d bytes", d->keys[i].template_name,
                      CUSTOS_MAX_CSR_SIZE);
        CUSTOS_GUARD(custos_b64_encode(&b64, der, (size_t)n));
        k = json_object();
        CUSTOS_ENSURE(k != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        CUSTOS_GUARD(custos_doc_set_string(k, "template", d->keys[i].template_name));
        CUSTOS_GUARD(custos_doc_set_string(k, "csr", b64));
        CUSTOS_ENSURE(json_array_append_new(arr, k) == 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        k = NULL;
        OPENSSL_free(der);
        der = NULL;
        free(b64);
        b64 = NULL;
    }
    *out = arr;
    arr = NULL;
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    free(b64);
    json_decref(k);
    json_decref(arr);
    return ret;
}

static custos_err build_json(json_t **out, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *tmp = NULL;
    char *nonce = NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_doc_set_string(o, "format", "custos-request"));
    CUSTOS_GUARD(custos_doc_set(o, "version", json_integer(1)));
    CUSTOS_GUARD(custos_doc_set_string(o, "request_id", d->request_id));
    CUSTOS_GUARD(custos_doc_set_string(
        o, "kind", d->kind == CUSTOS_REQUEST_INITIAL ? "initial" : "reprovision"));
    CUSTOS_GUARD(custos_doc_set_string(o, "system", d->system));
    CUSTOS_GUARD(custos_doc_set_string(o, "component", d->component));
    if (d->kind == CUSTOS_REQUEST_INITIAL)
        CUSTOS_GUARD(custos_doc_set_string(o, "package_id", d->package_id));
    else
        CUSTOS_GUARD(custos_doc_set_string(o, "device_id", d->device_id));
    CUSTOS_GUARD(device_to_json(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(o, "device", tmp));
    tmp = NULL;
    CUSTOS_GUARD(meta_to_json(&tmp, d->metadata, d->n_metadata));
    CUSTOS_GUARD(custos_doc_set(o, "metadata", tmp));
    tmp = NULL;
    CUSTOS_GUARD(keys_to_json(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(o, "keys", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_b64_encode(&nonce, d->nonce, sizeof(d->nonce)));
    CUSTOS_GUARD(custos_doc_set_string(o, "nonce", nonce));
    CUSTOS_GUARD(custos_doc_set_time(o, "time", d->time));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    free(nonce);
    json_decref(tmp);
    json_decref(o);
    return ret;
}

custos_err custos_request_encode(uint8_t **out, size_t *out_len, const custos_request_doc *d,
                                 const custos_signer *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(d != NULL && signer != NULL, CUSTOS_ERR_ARG, NULL, "no request or signer");
    CUSTOS_GUARD(check_doc(d));
    CUSTOS_GUARD(build_json(&j, d));
    CUSTOS_GUARD(custos_doc_sign(out, out_len, j, CUSTOS_OID_CT_REQUEST, CUSTOS_MAX_REQUEST_SIZE,
                                 "provisioning request", signer));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

/* ---- decode --------------------------------------------------------------- */

static custos_err meta_from_json(custos_meta_entry *m, size_t *n, const json_t *o,
                                 const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *key = NULL;
    json_t *v = NULL;
    char f[96];

    *n = 0;
    CUSTOS_ENSURE(json_is_object(o), CUSTOS_ERR_MALFORMED, field, "%s must be an object", field);
    CUSTOS_ENSURE(json_object_size(o) <= CUSTOS_MAX_META_ENTRIES, CUSTOS_ERR_LIMIT, field,
                  "%s has more than %d entries", field, CUSTOS_MAX_META_ENTRIES);
    json_object_foreach((json_t *)o, key, v)
    {
        snprintf(f, sizeof(f), "%s.%.40s", field, key);
        CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, f, "%s must be a string", f);
        CUSTOS_GUARD(custos_doc_copy(m[*n].key, sizeof(m[*n].key), key, CUSTOS_DOC_NAME, f));
        CUSTOS_GUARD(custos_doc_copy(m[*n].value, sizeof(m[*n].value), json_string_value(v),
                                     CUSTOS_DOC_TEXT, f));
        (*n)++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err device_from_json(custos_request_doc *d, const json_t *j)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    const char *serial = NULL, *hw = "", *model = "", *fw = "";
    json_t *man = NULL;

    if (json_unpack_ex((json_t *)j, &jerr, JSON_STRICT, "{s:s, s?s, s?s, s?s, s?o !}", "serial",
                       &serial, "hardware_id", &hw, "model", &model, "firmware", &fw,
                       "manufacturer", &man) != 0) {
        ret = custos_doc_unpack_error(&jerr, "device");
        goto out;
    }
    CUSTOS_GUARD(
        custos_doc_copy(d->serial, sizeof(d->serial), serial, CUSTOS_DOC_SERIAL, "device.serial"));
    if (hw[0] != '\0')
        CUSTOS_GUARD(custos_doc_copy(d->hardware_id, sizeof(d->hardware_id), hw, CUSTOS_DOC_TEXT,
                                     "device.hardware_id"));
    if (model[0] != '\0')
        CUSTOS_GUARD(
            custos_doc_copy(d->model, sizeof(d->model), model, CUSTOS_DOC_TEXT, "device.model"));
    if (fw[0] != '\0')
        CUSTOS_GUARD(custos_doc_copy(d->firmware, sizeof(d->firmware), fw, CUSTOS_DOC_TEXT,
                                     "device.firmware"));
    if (man != NULL)
        CUSTOS_GUARD(
            meta_from_json(d->manufacturer, &d->n_manufacturer, man, "device.manufacturer"));
    ret = CUSTOS_OK;
out:
    return ret;
}

/* One CSR: strict DER, and its own signature verifies with its own key. */
static custos_err csr_from_b64(X509_REQ **out, const char *b64, const char *tmpl, int pop)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t len = 0;
    const unsigned char *p = NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *pub = NULL;
    char f[64];

    *out = NULL;
    snprintf(f, sizeof(f), "keys.%s.csr", tmpl);
    CUSTOS_GUARD(custos_b64_decode(&der, &len, b64, CUSTOS_MAX_CSR_SIZE, f));
    p = der;
    req = d2i_X509_REQ(NULL, &p, (long)len);
    CUSTOS_ENSURE(req != NULL && p == der + len, CUSTOS_ERR_MALFORMED, f,
                  "%s is not a DER PKCS#10 request", f);
    pub = X509_REQ_get0_pubkey(req);
    CUSTOS_ENSURE(pub != NULL, CUSTOS_ERR_MALFORMED, f, "%s has no usable public key", f);
    CUSTOS_ENSURE(!pop || X509_REQ_verify(req, pub) == 1, CUSTOS_ERR_POP, f,
                  "proof of possession failed for key '%s'", tmpl);
    *out = req;
    req = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    X509_REQ_free(req);
    free(der);
    return ret;
}

static custos_err keys_from_json(custos_request_doc *d, const json_t *arr, int pop)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    const char *tmpl = NULL, *csr = NULL;
    char f[48];

    CUSTOS_ENSURE(json_is_array(arr) && json_array_size(arr) >= 1, CUSTOS_ERR_MALFORMED, "keys",
                  "keys must be a non-empty array");
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT, "keys",
                  "a request carries at most %d keys", CUSTOS_MAX_TEMPLATES);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        custos_request_key *k = &d->keys[i];
        snprintf(f, sizeof(f), "keys[%zu]", i);
        if (json_unpack_ex(json_array_get(arr, i), &jerr, JSON_STRICT, "{s:s, s:s !}", "template",
                           &tmpl, "csr", &csr) != 0) {
            ret = custos_doc_unpack_error(&jerr, f);
            goto out;
        }
        snprintf(f, sizeof(f), "keys[%zu].template", i);
        CUSTOS_GUARD(
            custos_doc_copy(k->template_name, sizeof(k->template_name), tmpl, CUSTOS_DOC_NAME, f));
        for (size_t j = 0; j < i; j++)
            CUSTOS_ENSURE(strcmp(d->keys[j].template_name, k->template_name) != 0,
                          CUSTOS_ERR_DUPLICATE, f, "key template '%s' appears twice",
                          k->template_name);
        CUSTOS_GUARD(csr_from_b64(&k->csr, csr, k->template_name, pop));
        d->n_keys++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err parse_json(custos_request_doc *d, const uint8_t *content, size_t len, int pop)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    json_error_t jerr;
    const char *format = NULL, *id = NULL, *kind = NULL, *system = NULL, *component = NULL;
    const char *package_id = NULL, *device_id = NULL, *nonce = NULL, *time = NULL;
    json_int_t version = 0;
    json_t *device = NULL, *metadata = NULL, *keys = NULL;
    uint8_t *nb = NULL;
    size_t nlen = 0;

    CUSTOS_GUARD(custos_json_parse(&j, content, len, WHAT " content"));
    CUSTOS_GUARD(custos_doc_check_header_of(j, "custos-request", WHAT));
    if (json_unpack_ex(j, &jerr, JSON_STRICT,
                       "{s:s, s:I, s:s, s:s, s:s, s:s, s?s, s?s, s:o, s:o, s:o, s:s, s:s !}",
                       "format", &format, "version", &version, "request_id", &id, "kind", &kind,
                       "system", &system, "component", &component, "package_id", &package_id,
                       "device_id", &device_id, "device", &device, "metadata", &metadata, "keys",
                       &keys, "nonce", &nonce, "time", &time) != 0) {
        ret = custos_doc_unpack_error(&jerr, WHAT " content");
        goto out;
    }
    CUSTOS_GUARD(custos_doc_check_header(format, version, "custos-request", WHAT));
    CUSTOS_GUARD(
        custos_doc_copy(d->request_id, sizeof(d->request_id), id, CUSTOS_DOC_ID, "request_id"));
    if (strcmp(kind, "initial") == 0)
        d->kind = CUSTOS_REQUEST_INITIAL;
    else if (strcmp(kind, "reprovision") == 0)
        d->kind = CUSTOS_REQUEST_REPROVISION;
    else
        CUSTOS_ENSURE(0, CUSTOS_ERR_MALFORMED, "kind", "kind must be initial or reprovision");
    CUSTOS_GUARD(custos_doc_copy(d->system, sizeof(d->system), system, CUSTOS_DOC_NAME, "system"));
    CUSTOS_GUARD(custos_doc_copy(d->component, sizeof(d->component), component, CUSTOS_DOC_NAME,
                                 "component"));
    if (package_id != NULL)
        CUSTOS_GUARD(custos_doc_copy(d->package_id, sizeof(d->package_id), package_id,
                                     CUSTOS_DOC_ID, "package_id"));
    if (device_id != NULL)
        CUSTOS_GUARD(custos_doc_copy(d->device_id, sizeof(d->device_id), device_id, CUSTOS_DOC_ID,
                                     "device_id"));
    CUSTOS_GUARD(device_from_json(d, device));
    CUSTOS_GUARD(meta_from_json(d->metadata, &d->n_metadata, metadata, "metadata"));
    CUSTOS_GUARD(keys_from_json(d, keys, pop));
    CUSTOS_GUARD(custos_b64_decode(&nb, &nlen, nonce, 64, "nonce"));
    CUSTOS_ENSURE(nlen == sizeof(d->nonce), CUSTOS_ERR_MALFORMED, "nonce",
                  "nonce must be %zu bytes", sizeof(d->nonce));
    memcpy(d->nonce, nb, sizeof(d->nonce));
    CUSTOS_GUARD(custos_doc_time(&d->time, time, "time"));
    CUSTOS_GUARD(check_doc(d));
    ret = CUSTOS_OK;
out:
    free(nb);
    json_decref(j);
    return ret;
}

/* The signer's role must match the kind: only a bootstrap credential may
 * sign an initial request, and a bootstrap credential may sign nothing else. */
static custos_err check_signer(const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int boot = custos_x509_has_eku(d->signer, custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP));

    if (d->kind == CUSTOS_REQUEST_INITIAL)
        CUSTOS_ENSURE(boot, CUSTOS_ERR_UNTRUSTED, "signer",
                      "an initial " WHAT " must be signed by a bootstrap certificate");
    else
        CUSTOS_ENSURE(!boot, CUSTOS_ERR_UNTRUSTED, "signer",
                      "a reprovisioning request must be signed by the device's current key, "
                      "not a bootstrap certificate");
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_request_decode(custos_request_doc **out, const uint8_t *der, size_t len,
                                 const custos_trust *trust)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_doc *d = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;

    *out = NULL;
    CUSTOS_ENSURE(der != NULL && trust != NULL, CUSTOS_ERR_ARG, NULL, "no " WHAT " or trust");
    d = custos_request_doc_new();
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_cms_verify(&content, &content_len, &d->signer, NULL, der, len,
                                   CUSTOS_MAX_REQUEST_SIZE, CUSTOS_OID_CT_REQUEST, trust, WHAT));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&d->signer_not_after, X509_get0_notAfter(d->signer)));
    custos_sha256(d->digest, der, len);
    CUSTOS_GUARD(parse_json(d, content, content_len, 1));
    CUSTOS_GUARD(check_signer(d));
    *out = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    free(content);
    custos_request_doc_free(d);
    return ret;
}

custos_err custos_request_decode_stored(custos_request_doc **out, const uint8_t *der, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_doc *d = NULL;
    STACK_OF(X509) *certs = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    custos_oid ct = CUSTOS_OID_COUNT;

    *out = NULL;
    CUSTOS_ENSURE(der != NULL, CUSTOS_ERR_ARG, NULL, "no " WHAT);
    d = custos_request_doc_new();
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, der, len,
                                 CUSTOS_MAX_REQUEST_SIZE, WHAT));
    CUSTOS_ENSURE(ct == CUSTOS_OID_CT_REQUEST, CUSTOS_ERR_MALFORMED, NULL,
                  "stored " WHAT " is not a provisioning request");
    custos_sha256(d->digest, der, len);
    CUSTOS_GUARD(parse_json(d, content, content_len, 0));
    ret = CUSTOS_OK;
    *out = d;
    d = NULL;
out:
    free(content);
    sk_X509_pop_free(certs, X509_free);
    custos_request_doc_free(d);
    return ret;
}
