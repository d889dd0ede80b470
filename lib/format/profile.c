/* .mccp certified profile: JSON content in CMS SignedData, signed by the
 * profile-signing key; one certificate per key template, the issuing chain,
 * the Root of Trust and the device configuration (docs/formats.md). */
#include <string.h>

#include <openssl/err.h>

#include "internal/format.h"

#define WHAT "certified profile"

custos_profile_doc *custos_profile_doc_new(void)
{
    return calloc(1, sizeof(custos_profile_doc));
}

void custos_profile_doc_free(custos_profile_doc *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < CUSTOS_MAX_TEMPLATES; i++)
        X509_free(d->certs[i].cert);
    sk_X509_pop_free(d->chain, X509_free);
    sk_X509_pop_free(d->root_of_trust, X509_free);
    free(d);
}

static custos_err check_doc(const custos_profile_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    CUSTOS_ENSURE(custos_id_valid(d->device_id), CUSTOS_ERR_MALFORMED, "device_id",
                  "device_id is not a valid id");
    CUSTOS_ENSURE(custos_id_valid(d->request_id), CUSTOS_ERR_MALFORMED, "request_id",
                  "request_id is not a valid id");
    CUSTOS_ENSURE(custos_name_valid(d->system, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_MALFORMED, "system",
                  "system is not a valid name");
    CUSTOS_ENSURE(custos_name_valid(d->component, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_MALFORMED,
                  "component", "component is not a valid name");
    CUSTOS_ENSURE(custos_serial_valid(d->serial), CUSTOS_ERR_MALFORMED, "serial",
                  "serial is not a valid serial number");
    CUSTOS_ENSURE(d->n_certs >= 1 && d->n_certs <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT,
                  "certificates", "a profile carries 1 to %d certificates", CUSTOS_MAX_TEMPLATES);
    for (size_t i = 0; i < d->n_certs; i++) {
        CUSTOS_ENSURE(custos_name_valid(d->certs[i].template_name, CUSTOS_MAX_TEMPLATE_NAME_LEN),
                      CUSTOS_ERR_MALFORMED, "certificates",
                      "certificates[%zu].template is not "
                      "a valid template name",
                      i);
        CUSTOS_ENSURE(d->certs[i].cert != NULL, CUSTOS_ERR_ARG, "certificates",
                      "no certificate for template '%s'", d->certs[i].template_name);
        for (size_t k = 0; k < i; k++)
            CUSTOS_ENSURE(strcmp(d->certs[k].template_name, d->certs[i].template_name) != 0,
                          CUSTOS_ERR_DUPLICATE, "certificates", "template '%s' appears twice",
                          d->certs[i].template_name);
    }
    CUSTOS_ENSURE(d->chain == NULL || sk_X509_num(d->chain) <= CUSTOS_DOC_MAX_CERTS,
                  CUSTOS_ERR_LIMIT, "chain", "chain has more than %d certificates",
                  CUSTOS_DOC_MAX_CERTS);
    CUSTOS_ENSURE(d->root_of_trust != NULL && sk_X509_num(d->root_of_trust) >= 1 &&
                      sk_X509_num(d->root_of_trust) <= CUSTOS_DOC_MAX_CERTS,
                  CUSTOS_ERR_LIMIT, "root_of_trust", "root_of_trust needs 1 to %d certificates",
                  CUSTOS_DOC_MAX_CERTS);
    CUSTOS_ENSURE(d->renewal_window_days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_LIMIT,
                  "configuration.renewal_window_days",
                  "configuration.renewal_window_days exceeds %d", CUSTOS_MAX_VALID_DAYS);
    ret = CUSTOS_OK;
out:
    return ret;
}

/* ---- encode --------------------------------------------------------------- */

static custos_err certs_to_json(json_t **out, const custos_profile_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *arr = json_array();
    json_t *c = NULL;
    char *b64 = NULL;

    *out = NULL;
    CUSTOS_ENSURE(arr != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < d->n_certs; i++) {
        CUSTOS_GUARD(custos_x509_to_b64(&b64, d->certs[i].cert));
        c = json_object();
        CUSTOS_ENSURE(c != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        CUSTOS_GUARD(custos_doc_set_string(c, "template", d->certs[i].template_name));
        CUSTOS_GUARD(custos_doc_set_string(c, "certificate", b64));
        CUSTOS_ENSURE(json_array_append_new(arr, c) == 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        c = NULL;
        free(b64);
        b64 = NULL;
    }
    *out = arr;
    arr = NULL;
    ret = CUSTOS_OK;
out:
    free(b64);
    json_decref(c);
    json_decref(arr);
    return ret;
}

static custos_err config_to_json(json_t **out, const custos_profile_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *s = NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(custos_doc_services_to_json(&s, &d->services));
    CUSTOS_GUARD(custos_doc_set(o, "services", s));
    s = NULL;
    CUSTOS_GUARD(
        custos_doc_set(o, "renewal_window_days", json_integer((json_int_t)d->renewal_window_days)));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(s);
    json_decref(o);
    return ret;
}

static custos_err build_json(json_t **out, const custos_profile_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *tmp = NULL;
    char hex[65];

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    custos_hex_encode(hex, d->request_sha256, sizeof(d->request_sha256));
    CUSTOS_GUARD(custos_doc_set_string(o, "format", "custos-profile"));
    CUSTOS_GUARD(custos_doc_set(o, "version", json_integer(1)));
    CUSTOS_GUARD(custos_doc_set_string(o, "device_id", d->device_id));
    CUSTOS_GUARD(custos_doc_set_string(o, "request_id", d->request_id));
    CUSTOS_GUARD(custos_doc_set_string(o, "request_sha256", hex));
    CUSTOS_GUARD(custos_doc_set_string(o, "system", d->system));
    CUSTOS_GUARD(custos_doc_set_string(o, "component", d->component));
    CUSTOS_GUARD(custos_doc_set_string(o, "serial", d->serial));
    CUSTOS_GUARD(custos_doc_set(o, "mock", json_boolean(d->mock)));
    CUSTOS_GUARD(certs_to_json(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(o, "certificates", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_doc_certs_to_json(&tmp, d->chain));
    CUSTOS_GUARD(custos_doc_set(o, "chain", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_doc_certs_to_json(&tmp, d->root_of_trust));
    CUSTOS_GUARD(custos_doc_set(o, "root_of_trust", tmp));
    tmp = NULL;
    CUSTOS_GUARD(config_to_json(&tmp, d));
    CUSTOS_GUARD(custos_doc_set(o, "configuration", tmp));
    tmp = NULL;
    CUSTOS_GUARD(custos_doc_set_time(o, "issued", d->issued));
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(tmp);
    json_decref(o);
    return ret;
}

custos_err custos_profile_encode(uint8_t **out, size_t *out_len, const custos_profile_doc *d,
                                 const custos_signer *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(d != NULL && signer != NULL, CUSTOS_ERR_ARG, NULL, "no profile or signer");
    CUSTOS_GUARD(check_doc(d));
    CUSTOS_GUARD(build_json(&j, d));
    CUSTOS_GUARD(custos_doc_sign(out, out_len, j, CUSTOS_OID_CT_PROFILE, CUSTOS_MAX_PROFILE_SIZE,
                                 "certified profile", signer));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

/* ---- decode --------------------------------------------------------------- */

static custos_err certs_from_json(custos_profile_doc *d, const json_t *arr)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    const char *tmpl = NULL, *cert = NULL;
    char f[64];

    CUSTOS_ENSURE(json_is_array(arr) && json_array_size(arr) >= 1, CUSTOS_ERR_MALFORMED,
                  "certificates", "certificates must be a non-empty array");
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT, "certificates",
                  "a profile carries at most %d certificates", CUSTOS_MAX_TEMPLATES);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        custos_profile_cert *c = &d->certs[i];
        snprintf(f, sizeof(f), "certificates[%zu]", i);
        if (json_unpack_ex(json_array_get(arr, i), &jerr, JSON_STRICT, "{s:s, s:s !}", "template",
                           &tmpl, "certificate", &cert) != 0) {
            ret = custos_doc_unpack_error(&jerr, f);
            goto out;
        }
        snprintf(f, sizeof(f), "certificates[%zu].template", i);
        CUSTOS_GUARD(
            custos_doc_copy(c->template_name, sizeof(c->template_name), tmpl, CUSTOS_DOC_NAME, f));
        snprintf(f, sizeof(f), "certificates.%s", c->template_name);
        CUSTOS_GUARD(custos_x509_from_b64(&c->cert, cert, f));
        d->n_certs++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err config_from_json(custos_profile_doc *d, const json_t *j)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    json_t *services = NULL;
    json_int_t days = 0;

    if (json_unpack_ex((json_t *)j, &jerr, JSON_STRICT, "{s:o, s:I !}", "services", &services,
                       "renewal_window_days", &days) != 0) {
        ret = custos_doc_unpack_error(&jerr, "configuration");
        goto out;
    }
    CUSTOS_ENSURE(days >= 0 && days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_LIMIT,
                  "configuration.renewal_window_days",
                  "configuration.renewal_window_days must be 0 to %d", CUSTOS_MAX_VALID_DAYS);
    d->renewal_window_days = (unsigned)days;
    CUSTOS_GUARD(custos_doc_services_from_json(&d->services, services, "configuration.services"));
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err parse_json(custos_profile_doc *d, const uint8_t *content, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    json_error_t jerr;
    const char *format = NULL, *device_id = NULL, *request_id = NULL, *sha = NULL;
    const char *system = NULL, *component = NULL, *serial = NULL, *issued = NULL;
    json_int_t version = 0;
    int mock = 0;
    json_t *certs = NULL, *chain = NULL, *roots = NULL, *config = NULL;

    CUSTOS_GUARD(custos_json_parse(&j, content, len, WHAT " content"));
    CUSTOS_GUARD(custos_doc_check_header_of(j, "custos-profile", WHAT));
    if (json_unpack_ex(j, &jerr, JSON_STRICT,
                       "{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:s !}",
                       "format", &format, "version", &version, "device_id", &device_id,
                       "request_id", &request_id, "request_sha256", &sha, "system", &system,
                       "component", &component, "serial", &serial, "mock", &mock, "certificates",
                       &certs, "chain", &chain, "root_of_trust", &roots, "configuration", &config,
                       "issued", &issued) != 0) {
        ret = custos_doc_unpack_error(&jerr, WHAT " content");
        goto out;
    }
    CUSTOS_GUARD(custos_doc_check_header(format, version, "custos-profile", WHAT));
    CUSTOS_GUARD(
        custos_doc_copy(d->device_id, sizeof(d->device_id), device_id, CUSTOS_DOC_ID, "device_id"));
    CUSTOS_GUARD(custos_doc_copy(d->request_id, sizeof(d->request_id), request_id, CUSTOS_DOC_ID,
                                 "request_id"));
    CUSTOS_ENSURE(strlen(sha) == 64, CUSTOS_ERR_MALFORMED, "request_sha256",
                  "request_sha256 must be 64 hex digits");
    CUSTOS_GUARD(
        custos_hex_decode(d->request_sha256, sizeof(d->request_sha256), sha, "request_sha256"));
    CUSTOS_GUARD(custos_doc_copy(d->system, sizeof(d->system), system, CUSTOS_DOC_NAME, "system"));
    CUSTOS_GUARD(custos_doc_copy(d->component, sizeof(d->component), component, CUSTOS_DOC_NAME,
                                 "component"));
    CUSTOS_GUARD(
        custos_doc_copy(d->serial, sizeof(d->serial), serial, CUSTOS_DOC_SERIAL, "serial"));
    d->mock = mock ? 1 : 0;
    CUSTOS_GUARD(certs_from_json(d, certs));
    CUSTOS_GUARD(custos_doc_certs_from_json(&d->chain, chain, 0, CUSTOS_DOC_MAX_CERTS, "chain"));
    CUSTOS_GUARD(custos_doc_certs_from_json(&d->root_of_trust, roots, 1, CUSTOS_DOC_MAX_CERTS,
                                            "root_of_trust"));
    CUSTOS_GUARD(config_from_json(d, config));
    CUSTOS_GUARD(custos_doc_time(&d->issued, issued, "issued"));
    CUSTOS_GUARD(check_doc(d));
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

/* Every certificate chains through the profile's chain (and the caller's
 * extra intermediates) to the caller's trust anchors. */
static custos_err check_chains(const custos_profile_doc *d, const custos_trust *trust)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *untrusted = NULL;
    char f[64];

    CUSTOS_GUARD(custos_doc_certs_dup(&untrusted, d->chain));
    for (int i = 0; trust->untrusted != NULL && i < sk_X509_num(trust->untrusted); i++) {
        X509 *x = sk_X509_value(trust->untrusted, i);
        CUSTOS_ENSURE(X509_up_ref(x) == 1, CUSTOS_ERR_INTERNAL, NULL, "X509_up_ref failed");
        if (sk_X509_push(untrusted, x) <= 0) {
            X509_free(x);
            ret = custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < d->n_certs; i++) {
        snprintf(f, sizeof(f), "certificates.%s", d->certs[i].template_name);
        CUSTOS_GUARD(
            custos_doc_chain_verify(d->certs[i].cert, untrusted, trust->store, trust->now, f));
    }
    ret = CUSTOS_OK;
out:
    sk_X509_pop_free(untrusted, X509_free);
    return ret;
}

custos_err custos_profile_decode(custos_profile_doc **out, const uint8_t *der, size_t len,
                                 const custos_trust *trust)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_profile_doc *d = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    X509 *signer = NULL;
    custos_trust t = {0};

    *out = NULL;
    CUSTOS_ENSURE(der != NULL && trust != NULL && trust->store != NULL, CUSTOS_ERR_ARG, NULL,
                  "no " WHAT " or trust");
    t = *trust;
    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    CUSTOS_GUARD(custos_cms_verify(&content, &content_len, &signer, NULL, der, len,
                                   CUSTOS_MAX_PROFILE_SIZE, CUSTOS_OID_CT_PROFILE, &t, WHAT));
    CUSTOS_ENSURE(custos_x509_has_eku(signer, t.signer_eku_nid), CUSTOS_ERR_UNTRUSTED, "signer",
                  WHAT ": the signer lacks the profile-signing extended key usage");
    d = custos_profile_doc_new();
    CUSTOS_ENSURE(d != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(parse_json(d, content, content_len));
    CUSTOS_GUARD(check_chains(d, trust));
    *out = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    X509_free(signer);
    free(content);
    custos_profile_doc_free(d);
    return ret;
}
