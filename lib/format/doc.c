/* Pieces shared by the three signed documents (package, request, profile):
 * bounded field copies, strict-JSON helpers, services, certificate arrays,
 * EKU and chain checks. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "internal/format.h"

custos_err custos_doc_copy(char *dst, size_t cap, const char *src, custos_doc_kind kind,
                           const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t len = 0;
    int ok = 0;

    if (dst != NULL && cap > 0)
        dst[0] = '\0';
    CUSTOS_ENSURE(dst != NULL && cap > 1 && src != NULL, CUSTOS_ERR_ARG, field, "%s is missing",
                  field);
    len = strlen(src);
    CUSTOS_ENSURE(len <= cap - 1, CUSTOS_ERR_LIMIT, field, "%s is longer than %zu bytes", field,
                  cap - 1);
    switch (kind) {
    case CUSTOS_DOC_NAME:
        ok = custos_name_valid(src, cap - 1);
        break;
    case CUSTOS_DOC_ID:
        ok = custos_id_valid(src);
        break;
    case CUSTOS_DOC_SERIAL:
        ok = custos_serial_valid(src);
        break;
    case CUSTOS_DOC_TEXT:
        ok = custos_text_valid(src, cap - 1);
        break;
    }
    CUSTOS_ENSURE(ok, CUSTOS_ERR_MALFORMED, field, "%s has characters that are not allowed", field);
    memcpy(dst, src, len + 1);
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_doc_set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, key, "cannot build JSON field %s", key);
    if (json_object_set_new(o, key, v) != 0)
        return custos_error_set(CUSTOS_ERR_NOMEM, key, "cannot build JSON field %s", key);
    return CUSTOS_OK;
}

custos_err custos_doc_set_string(json_t *o, const char *key, const char *v)
{
    /* json_string refuses invalid UTF-8 by returning NULL. */
    json_t *s = json_string(v);
    if (s == NULL)
        return custos_error_set(CUSTOS_ERR_MALFORMED, key, "%s is not valid UTF-8", key);
    return custos_doc_set(o, key, s);
}

custos_err custos_doc_set_time(json_t *o, const char *key, int64_t t)
{
    char buf[21];
    custos_time_format(buf, t);
    return custos_doc_set_string(o, key, buf);
}

custos_err custos_doc_time(int64_t *out, const char *s, const char *field)
{
    *out = 0;
    if (custos_time_parse(out, s) < 0) {
        *out = 0;
        return custos_error_set(CUSTOS_ERR_MALFORMED, field,
                                "%s is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)", field);
    }
    return CUSTOS_OK;
}

custos_err custos_doc_unpack_error(const json_error_t *e, const char *what)
{
    return custos_error_set(CUSTOS_ERR_MALFORMED, what, "%s: %s", what, e->text);
}

custos_err custos_doc_check_header_of(const json_t *j, const char *want, const char *what)
{
    const json_t *format = json_object_get(j, "format"), *version = json_object_get(j, "version");

    if (!json_is_string(format))
        return custos_error_set(CUSTOS_ERR_MALFORMED, "format", "%s: \"format\" is required", what);
    if (!json_is_integer(version))
        return custos_error_set(CUSTOS_ERR_MALFORMED, "version",
                                "%s: \"version\" is required (an integer)", what);
    return custos_doc_check_header(json_string_value(format), json_integer_value(version), want,
                                   what);
}

custos_err custos_doc_check_header(const char *format, json_int_t version, const char *want,
                                   const char *what)
{
    if (strcmp(format, want) != 0)
        return custos_error_set(CUSTOS_ERR_MALFORMED, "format",
                                "%s: format is \"%.64s\", expected \"%s\"", what, format, want);
    if (version != 1)
        return custos_error_set(CUSTOS_ERR_UNSUPPORTED, "version",
                                "%s: version %lld is not supported (only 1)", what,
                                (long long)version);
    return CUSTOS_OK;
}

/* Empty, or an http(s) URL of printable text without spaces (as system.json). */
static custos_err url_copy(char *dst, size_t cap, const char *url, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    dst[0] = '\0';
    if (url[0] == '\0')
        return CUSTOS_OK;
    CUSTOS_ENSURE(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0,
                  CUSTOS_ERR_MALFORMED, field, "%s must be an http(s) URL", field);
    CUSTOS_ENSURE(strchr(url, ' ') == NULL, CUSTOS_ERR_MALFORMED, field,
                  "%s must not contain spaces", field);
    CUSTOS_GUARD(custos_doc_copy(dst, cap, url, CUSTOS_DOC_TEXT, field));
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_doc_services_from_json(custos_services *out, const json_t *j, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    const char *url = NULL;
    json_t *gws = NULL;
    char f[64];

    memset(out, 0, sizeof(*out));
    if (json_unpack_ex((json_t *)j, &jerr, JSON_STRICT, "{s:s, s:o !}", "cloud_url", &url,
                       "gateways", &gws) != 0) {
        ret = custos_doc_unpack_error(&jerr, field);
        goto out;
    }
    snprintf(f, sizeof(f), "%s.cloud_url", field);
    CUSTOS_GUARD(url_copy(out->cloud_url, sizeof(out->cloud_url), url, f));
    snprintf(f, sizeof(f), "%s.gateways", field);
    CUSTOS_ENSURE(json_is_array(gws), CUSTOS_ERR_MALFORMED, f, "%s must be an array", f);
    CUSTOS_ENSURE(json_array_size(gws) <= CUSTOS_MAX_GATEWAYS, CUSTOS_ERR_LIMIT, f,
                  "%s has more than %d entries", f, CUSTOS_MAX_GATEWAYS);
    for (size_t i = 0; i < json_array_size(gws); i++) {
        const json_t *g = json_array_get(gws, i);
        snprintf(f, sizeof(f), "%s.gateways[%zu]", field, i);
        CUSTOS_ENSURE(json_is_string(g) && json_string_length(g) > 0, CUSTOS_ERR_MALFORMED, f,
                      "%s must be a non-empty string", f);
        CUSTOS_GUARD(url_copy(out->gateways[i], sizeof(out->gateways[i]), json_string_value(g), f));
        out->n_gateways++;
    }
    ret = CUSTOS_OK;
out:
    if (ret < 0)
        memset(out, 0, sizeof(*out));
    return ret;
}

custos_err custos_doc_services_to_json(json_t **out, const custos_services *s)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    json_t *arr = json_array();

    *out = NULL;
    CUSTOS_ENSURE(o != NULL && arr != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(s->n_gateways <= CUSTOS_MAX_GATEWAYS, CUSTOS_ERR_LIMIT, "services.gateways",
                  "services.gateways has more than %d entries", CUSTOS_MAX_GATEWAYS);
    CUSTOS_GUARD(custos_doc_set_string(o, "cloud_url", s->cloud_url));
    for (size_t i = 0; i < s->n_gateways; i++) {
        json_t *g = json_string(s->gateways[i]);
        CUSTOS_ENSURE(g != NULL && json_array_append_new(arr, g) == 0, CUSTOS_ERR_MALFORMED,
                      "services.gateways", "services.gateways[%zu] is not valid UTF-8", i);
    }
    CUSTOS_GUARD(custos_doc_set(o, "gateways", arr));
    arr = NULL;
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(arr);
    json_decref(o);
    return ret;
}

custos_err custos_doc_certs_from_json(STACK_OF(X509) **out, const json_t *j, size_t min, size_t max,
                                      const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *sk = NULL;
    X509 *x = NULL;
    char f[64];

    *out = NULL;
    CUSTOS_ENSURE(json_is_array(j), CUSTOS_ERR_MALFORMED, field, "%s must be an array", field);
    CUSTOS_ENSURE(json_array_size(j) >= min, CUSTOS_ERR_MALFORMED, field,
                  "%s needs at least %zu certificate(s)", field, min);
    CUSTOS_ENSURE(json_array_size(j) <= max, CUSTOS_ERR_LIMIT, field,
                  "%s has more than %zu certificates", field, max);
    sk = sk_X509_new_null();
    CUSTOS_ENSURE(sk != NULL, CUSTOS_ERR_NOMEM, field, "out of memory");
    for (size_t i = 0; i < json_array_size(j); i++) {
        const json_t *e = json_array_get(j, i);
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        CUSTOS_ENSURE(json_is_string(e), CUSTOS_ERR_MALFORMED, f, "%s must be a string", f);
        CUSTOS_GUARD(custos_x509_from_b64(&x, json_string_value(e), f));
        CUSTOS_ENSURE(sk_X509_push(sk, x) > 0, CUSTOS_ERR_NOMEM, f, "out of memory");
        x = NULL;
    }
    *out = sk;
    sk = NULL;
    ret = CUSTOS_OK;
out:
    X509_free(x);
    sk_X509_pop_free(sk, X509_free);
    return ret;
}

custos_err custos_doc_certs_to_json(json_t **out, const STACK_OF(X509) *certs)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *arr = json_array();
    char *b64 = NULL;

    *out = NULL;
    CUSTOS_ENSURE(arr != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        CUSTOS_GUARD(custos_x509_to_b64(&b64, sk_X509_value(certs, i)));
        CUSTOS_ENSURE(json_array_append_new(arr, json_string(b64)) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
        free(b64);
        b64 = NULL;
    }
    *out = arr;
    arr = NULL;
    ret = CUSTOS_OK;
out:
    free(b64);
    json_decref(arr);
    return ret;
}

custos_err custos_doc_certs_dup(STACK_OF(X509) **out, const STACK_OF(X509) *in)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *sk = sk_X509_new_null();

    *out = NULL;
    CUSTOS_ENSURE(sk != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; in != NULL && i < sk_X509_num(in); i++) {
        X509 *x = sk_X509_value(in, i);
        CUSTOS_ENSURE(X509_up_ref(x) == 1, CUSTOS_ERR_INTERNAL, NULL, "X509_up_ref failed");
        if (sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            ret = custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
            goto out;
        }
    }
    *out = sk;
    sk = NULL;
    ret = CUSTOS_OK;
out:
    sk_X509_pop_free(sk, X509_free);
    return ret;
}

int custos_doc_cert_self_signed(X509 *x)
{
    int r = X509_self_signed(x, 1);
    ERR_clear_error();
    return r == 1;
}

int custos_doc_certs_contain(const STACK_OF(X509) *certs, const X509 *x)
{
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++)
        if (X509_cmp(sk_X509_value(certs, i), x) == 0)
            return 1;
    return 0;
}

static void cert_label(char *out, size_t cap, const X509 *x)
{
    char cn[128] = "";
    const X509_NAME *n = x != NULL ? X509_get_subject_name(x) : NULL;

    if (n == NULL ||
        X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, cn, (int)sizeof(cn)) < 0)
        snprintf(cn, sizeof(cn), "(no common name)");
    snprintf(out, cap, "\"%s\"", cn);
}

custos_err custos_doc_chain_verify(X509 *leaf, STACK_OF(X509) *untrusted, X509_STORE *store,
                                   int64_t now, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    char label[160];
    char when[21];
    int64_t t = 0;

    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, field, "out of memory");
    CUSTOS_ENSURE(leaf != NULL && store != NULL, CUSTOS_ERR_ARG, field, "%s: nothing to verify",
                  field);
    CUSTOS_ENSURE(X509_STORE_CTX_init(ctx, store, leaf, untrusted) == 1, CUSTOS_ERR_INTERNAL, field,
                  "X509_STORE_CTX_init failed");
    X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
        cert_label(label, sizeof(label), bad != NULL ? bad : leaf);
        if (bad == NULL)
            bad = leaf;
        if (err == X509_V_ERR_CERT_HAS_EXPIRED &&
            custos_asn1_time_to_unix(&t, X509_get0_notAfter(bad)) == 0) {
            custos_time_format(when, t);
            ret = custos_error_set(CUSTOS_ERR_EXPIRED, field, "%s: certificate %s expired at %s",
                                   field, label, when);
        } else if (err == X509_V_ERR_CERT_NOT_YET_VALID &&
                   custos_asn1_time_to_unix(&t, X509_get0_notBefore(bad)) == 0) {
            custos_time_format(when, t);
            ret = custos_error_set(CUSTOS_ERR_NOT_YET_VALID, field,
                                   "%s: certificate %s is not valid before %s", field, label, when);
        } else {
            ret = custos_error_set(CUSTOS_ERR_UNTRUSTED, field,
                                   "%s: certificate %s does not chain to the Root of Trust: %s",
                                   field, label, X509_verify_cert_error_string(err));
        }
        goto out;
    }
    ret = CUSTOS_OK;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    return ret;
}

custos_err custos_doc_sign(uint8_t **out, size_t *out_len, const json_t *j, custos_oid ct,
                           size_t max, const char *what, const custos_signer *signer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char *text = NULL;
    size_t text_len = 0;

    *out = NULL;
    *out_len = 0;
    CUSTOS_GUARD(custos_json_dump(&text, &text_len, j));
    CUSTOS_GUARD(custos_cms_sign(out, out_len, ct, (const uint8_t *)text, text_len, signer));
    CUSTOS_ENSURE(*out_len <= max, CUSTOS_ERR_TOO_LARGE, what, "the %s would exceed %zu bytes",
                  what, max);
    ret = CUSTOS_OK;
out:
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }
    free(text);
    return ret;
}
