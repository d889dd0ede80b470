/* JSON descriptions of certificates and errors for status and inspect.
 * Public data only: subjects, serials, validity, fingerprints. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>

#include "internal/device.h"
#include "internal/util.h"

custos_err custos_describe_set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, key, "cannot build JSON field %s", key);
    if (json_object_set_new(o, key, v) != 0)
        return custos_error_set(CUSTOS_ERR_NOMEM, key, "cannot build JSON field %s", key);
    return 0;
}

json_t *custos_describe_time(int64_t t)
{
    char buf[21];
    custos_time_format(buf, t);
    return json_string(buf);
}

json_t *custos_describe_name(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    json_t *j = NULL;
    char *p = NULL;
    long n = 0;
    if (b == NULL)
        return NULL;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        n = BIO_get_mem_data(b, &p);
        if (n >= 0)
            j = json_stringn(p != NULL ? p : "", (size_t)n);
    }
    BIO_free(b);
    return j;
}

static json_t *serial_json(const X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    json_t *j = NULL;
    if (hex != NULL) {
        for (char *c = hex; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
        j = json_string(hex);
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return j;
}

custos_err custos_describe_cert(json_t **out, X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = json_object();
    uint8_t md[32];
    unsigned md_len = 0;
    char hex[65];
    int64_t nb = 0, na = 0;
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    const char *alg = pub != NULL ? custos_alg_name(custos_key_alg(pub)) : NULL;

    *out = NULL;
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(X509_digest(cert, EVP_sha256(), md, &md_len) == 1 && md_len == 32,
                  CUSTOS_ERR_INTERNAL, "certificate", "cannot hash a certificate");
    custos_hex_encode(hex, md, sizeof(md));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&nb, X509_get0_notBefore(cert)));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&na, X509_get0_notAfter(cert)));
    CUSTOS_GUARD(
        custos_describe_set(o, "subject", custos_describe_name(X509_get_subject_name(cert))));
    CUSTOS_GUARD(
        custos_describe_set(o, "issuer", custos_describe_name(X509_get_issuer_name(cert))));
    CUSTOS_GUARD(custos_describe_set(o, "serial", serial_json(cert)));
    CUSTOS_GUARD(custos_describe_set(o, "not_before", custos_describe_time(nb)));
    CUSTOS_GUARD(custos_describe_set(o, "not_after", custos_describe_time(na)));
    CUSTOS_GUARD(custos_describe_set(o, "sha256", json_string(hex)));
    CUSTOS_GUARD(
        custos_describe_set(o, "algorithm", alg != NULL ? json_string(alg) : json_string("other")));
    *out = o;
    o = NULL;
    ret = 0;
out:
    json_decref(o);
    return ret;
}

custos_err custos_describe_certs(json_t **out, STACK_OF(X509) *certs)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *a = json_array();
    json_t *c = NULL;

    *out = NULL;
    CUSTOS_ENSURE(a != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        CUSTOS_GUARD(custos_describe_cert(&c, sk_X509_value(certs, i)));
        CUSTOS_ENSURE(json_array_append_new(a, c) == 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        c = NULL;
    }
    *out = a;
    a = NULL;
    ret = 0;
out:
    json_decref(a);
    return ret;
}

custos_err custos_describe_error(json_t **out, custos_err err)
{
    const custos_error *e = custos_error_last();
    *out = json_pack("{s:s, s:s, s:s}", "code", custos_err_code(err), "message",
                     (e != NULL && e->code == err && e->message[0] != '\0') ? e->message
                                                                            : custos_strerror(err),
                     "field", (e != NULL && e->code == err) ? e->field : "");
    if (*out == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    return 0;
}

int64_t custos_describe_common_valid_time(STACK_OF(X509) *certs)
{
    int64_t t = 0;
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        int64_t nb = 0;
        if (custos_asn1_time_to_unix(&nb, X509_get0_notBefore(sk_X509_value(certs, i))) == 0 &&
            nb > t)
            t = nb;
    }
    custos_error_clear();
    return t + 1;
}
