/* The certificate lint: a certificate from the issuer passes; each rule
 * broken by a hand-altered certificate fails naming that rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "internal/format.h"
#include "internal/util.h"

/* assert success, printing the error detail when it fails */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        custos_err ok_r_ = (expr);                                                                 \
        if (ok_r_ != 0)                                                                            \
            print_error("%s: %d %s [%s]\n", #expr, ok_r_, custos_error_last()->message,            \
                        custos_error_last()->field);                                               \
        assert_int_equal(ok_r_, 0);                                                                \
    } while (0)

typedef struct fx {
    int64_t now;
    X509 *ca;
    EVP_PKEY *ca_key;
    X509 *other_ca;
    EVP_PKEY *other_key;
    EVP_PKEY *dev_key;
    custos_key_template t;
    X509 *cert; /* fresh good certificate per test */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    custos_ca_spec spec = {"Test Device CA", 1, 0, 3650, NULL, NULL, NULL};
    custos_ca_spec other = {"Other CA", 1, 0, 3650, NULL, NULL, NULL};
    assert_non_null(f);
    f->now = (int64_t)time(NULL);
    OK(custos_key_generate(&f->ca_key, CUSTOS_ALG_ECDSA_P384));
    OK(custos_ca_make_cert(&f->ca, f->ca_key, &spec, NULL, NULL, f->now));
    OK(custos_key_generate(&f->other_key, CUSTOS_ALG_ECDSA_P384));
    OK(custos_ca_make_cert(&f->other_ca, f->other_key, &other, NULL, NULL, f->now));
    OK(custos_key_generate(&f->dev_key, CUSTOS_ALG_ECDSA_P256));
    snprintf(f->t.name, sizeof(f->t.name), "tls");
    f->t.alg = CUSTOS_ALG_ECDSA_P256;
    f->t.usage = CUSTOS_USAGE_TLS_CLIENT;
    f->t.valid_days = 365;
    snprintf(f->t.subject, sizeof(f->t.subject), "CN={serial},OU={component},O=Acme Medical");
    OK(custos_ca_issue(&f->cert, f->dev_key, NULL, &f->t, "pump", "ctl", "SN-0001", f->ca,
                       f->ca_key, f->now, 0));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    X509_free(f->cert);
    X509_free(f->ca);
    X509_free(f->other_ca);
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->other_key);
    EVP_PKEY_free(f->dev_key);
    free(f);
    return 0;
}

static void expect_rule(fx *f, const char *rule)
{
    char field[64];
    snprintf(field, sizeof(field), "lint:%s", rule);
    assert_int_equal(custos_lint_certificate_ex(f->cert, f->ca, &f->t, 0, "SN-0001"),
                     CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, field);
    assert_non_null(strstr(custos_error_last()->message, rule));
}

static void resign(fx *f, EVP_PKEY *key, const EVP_MD *md)
{
    assert_true(X509_sign(f->cert, key != NULL ? key : f->ca_key, md != NULL ? md : EVP_sha384()) >
                0);
}

static void del_ext(X509 *x, int nid)
{
    int idx = X509_get_ext_by_NID(x, nid, -1);
    assert_true(idx >= 0);
    X509_EXTENSION_free(X509_delete_ext(x, idx));
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void replace_ext(fx *f, int nid, const char *value)
{
    del_ext(f->cert, nid);
    add_ext(f->cert, f->ca, nid, value);
    resign(f, NULL, NULL);
}

static void test_good_certificate_passes(void **state)
{
    fx *f = *state;
    OK(custos_lint_certificate(f->cert, f->ca, &f->t, 0));
    OK(custos_lint_certificate_ex(f->cert, f->ca, &f->t, 0, "SN-0001"));
}

static void test_other_usages_pass(void **state)
{
    fx *f = *state;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    custos_key_template t = f->t;

    t.alg = CUSTOS_ALG_ED25519;
    t.usage = CUSTOS_USAGE_SIGNING;
    OK(custos_key_generate(&k, t.alg));
    OK(custos_ca_issue(&x, k, NULL, &t, "pump", "ctl", "SN-0001", f->ca, f->ca_key, f->now, 0));
    OK(custos_lint_certificate(x, f->ca, &t, 0));
    assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
    X509_free(x);
    x = NULL;
    /* the same certificate against a TLS template fails on keyUsage/EKU */
    t.usage = CUSTOS_USAGE_TLS_CLIENT;
    OK(custos_ca_issue(&x, k, NULL, &t, "pump", "ctl", "SN-0001", f->ca, f->ca_key, f->now, 0));
    t.usage = CUSTOS_USAGE_SIGNING;
    assert_int_equal(custos_lint_certificate(x, f->ca, &t, 0), CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:key-usage");
    X509_free(x);
    x = NULL;
    /* mock certificate: OU=mock and the mock policy (a tls-server one names its hosts) */
    t.usage = CUSTOS_USAGE_TLS_CLIENT | CUSTOS_USAGE_TLS_SERVER;
    {
        custos_services sv;
        GENERAL_NAMES *san = NULL;
        memset(&sv, 0, sizeof(sv));
        snprintf(sv.gateways[0], sizeof(sv.gateways[0]), "https://gw.example:9443");
        sv.n_gateways = 1;
        OK(custos_ca_gateway_names(&san, NULL, &sv));
        OK(custos_ca_issue_ex(&x, k, NULL, &t, "pump", "ctl", "SN-0001", f->ca, f->ca_key, f->now,
                              1, san));
        GENERAL_NAMES_free(san);
    }
    OK(custos_lint_certificate(x, f->ca, &t, 1));
    assert_int_equal(custos_lint_certificate(x, f->ca, &t, 0), CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:mock-marker");
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_version(void **state)
{
    fx *f = *state;
    assert_int_equal(X509_set_version(f->cert, X509_VERSION_1), 1);
    resign(f, NULL, NULL);
    expect_rule(f, "version");
}

static void test_serial_short(void **state)
{
    fx *f = *state;
    ASN1_INTEGER *s = ASN1_INTEGER_new();
    assert_int_equal(ASN1_INTEGER_set(s, 123456), 1);
    assert_int_equal(X509_set_serialNumber(f->cert, s), 1);
    ASN1_INTEGER_free(s);
    resign(f, NULL, NULL);
    expect_rule(f, "serial");
}

static void test_serial_negative(void **state)
{
    fx *f = *state;
    ASN1_INTEGER *s = ASN1_INTEGER_new();
    assert_int_equal(ASN1_INTEGER_set(s, -5), 1);
    assert_int_equal(X509_set_serialNumber(f->cert, s), 1);
    ASN1_INTEGER_free(s);
    resign(f, NULL, NULL);
    expect_rule(f, "serial");
}

static void test_serial_too_long(void **state)
{
    fx *f = *state;
    uint8_t b[21];
    BIGNUM *bn;
    ASN1_INTEGER *s;
    memset(b, 0x11, sizeof(b));
    bn = BN_bin2bn(b, sizeof(b), NULL);
    s = BN_to_ASN1_INTEGER(bn, NULL);
    assert_int_equal(X509_set_serialNumber(f->cert, s), 1);
    ASN1_INTEGER_free(s);
    BN_free(bn);
    resign(f, NULL, NULL);
    expect_rule(f, "serial");
}

static void test_issuer_name(void **state)
{
    fx *f = *state;
    assert_int_equal(X509_set_issuer_name(f->cert, X509_get_subject_name(f->other_ca)), 1);
    resign(f, NULL, NULL);
    expect_rule(f, "issuer-name");
}

static void test_signature_algorithm(void **state)
{
    fx *f = *state;
    resign(f, NULL, EVP_sha256()); /* P-384 CA must sign with SHA-384 */
    expect_rule(f, "signature-algorithm");
}

static void test_aki(void **state)
{
    fx *f = *state;
    del_ext(f->cert, NID_authority_key_identifier);
    add_ext(f->cert, f->other_ca, NID_authority_key_identifier, "keyid:always");
    resign(f, NULL, NULL);
    expect_rule(f, "aki");
}

static void test_aki_missing(void **state)
{
    fx *f = *state;
    del_ext(f->cert, NID_authority_key_identifier);
    resign(f, NULL, NULL);
    expect_rule(f, "aki");
}

static void test_ski(void **state)
{
    fx *f = *state;
    del_ext(f->cert, NID_subject_key_identifier);
    resign(f, NULL, NULL);
    expect_rule(f, "ski");
}

static void test_basic_constraints(void **state)
{
    fx *f = *state;
    replace_ext(f, NID_basic_constraints, "CA:FALSE"); /* not critical */
    expect_rule(f, "basic-constraints");
    replace_ext(f, NID_basic_constraints, "critical,CA:TRUE");
    expect_rule(f, "basic-constraints");
    del_ext(f->cert, NID_basic_constraints);
    resign(f, NULL, NULL);
    expect_rule(f, "basic-constraints");
}

static void test_key_usage(void **state)
{
    fx *f = *state;
    replace_ext(f, NID_key_usage, "digitalSignature"); /* not critical */
    expect_rule(f, "key-usage");
    replace_ext(f, NID_key_usage, "critical,digitalSignature,keyCertSign");
    expect_rule(f, "key-usage");
    del_ext(f->cert, NID_key_usage);
    resign(f, NULL, NULL);
    expect_rule(f, "key-usage");
}

static void test_eku(void **state)
{
    fx *f = *state;
    replace_ext(f, NID_ext_key_usage, "serverAuth");
    expect_rule(f, "eku");
    replace_ext(f, NID_ext_key_usage, "clientAuth,codeSigning");
    expect_rule(f, "eku");
    del_ext(f->cert, NID_ext_key_usage);
    resign(f, NULL, NULL);
    expect_rule(f, "eku");
}

static void test_validity_beyond_ca(void **state)
{
    fx *f = *state;
    assert_non_null(
        ASN1_TIME_set(X509_getm_notAfter(f->cert), (time_t)(f->now + 20 * 365 * 86400LL)));
    resign(f, NULL, NULL);
    expect_rule(f, "validity");
}

static void test_validity_reversed(void **state)
{
    fx *f = *state;
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(f->cert), (time_t)(f->now - 600)));
    resign(f, NULL, NULL);
    expect_rule(f, "validity");
}

static void test_time_encoding(void **state)
{
    fx *f = *state;
    ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_set(NULL, (time_t)(f->now + 86400));
    assert_non_null(g);
    assert_int_equal(X509_set1_notAfter(f->cert, g), 1);
    ASN1_GENERALIZEDTIME_free(g);
    resign(f, NULL, NULL);
    expect_rule(f, "time-encoding");
}

static void test_subject_empty(void **state)
{
    fx *f = *state;
    X509_NAME *n = X509_NAME_new();
    assert_int_equal(X509_set_subject_name(f->cert, n), 1);
    X509_NAME_free(n);
    resign(f, NULL, NULL);
    expect_rule(f, "subject");
}

static void test_subject_without_serial(void **state)
{
    fx *f = *state;
    assert_int_equal(custos_lint_certificate_ex(f->cert, f->ca, &f->t, 0, "SN-9999"),
                     CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:subject");
}

static void test_key_algorithm(void **state)
{
    fx *f = *state;
    f->t.alg = CUSTOS_ALG_ECDSA_P384;
    expect_rule(f, "key-algorithm");
}

static void test_policy(void **state)
{
    fx *f = *state;
    del_ext(f->cert, NID_certificate_policies);
    resign(f, NULL, NULL);
    expect_rule(f, "policy");
}

static void test_unknown_critical_extension(void **state)
{
    fx *f = *state;
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.55555.1", 1);
    ASN1_OCTET_STRING *data = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext;
    assert_int_equal(ASN1_OCTET_STRING_set(data, (const unsigned char *)"\x05\x00", 2), 1);
    ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, data);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(f->cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(obj);
    resign(f, NULL, NULL);
    expect_rule(f, "critical-extensions");
}

static void test_signature(void **state)
{
    fx *f = *state;
    resign(f, f->other_key, NULL);
    expect_rule(f, "signature");
}

/* A tls-server certificate names the hosts of services.gateways, and only
 * those: DNS names lowercased, IP literals (IPv6 without brackets) as
 * iPAddress, one entry per host. */
static GENERAL_NAMES *gateway_names(const char *const *urls, size_t n, int *has_dns)
{
    custos_services sv;
    GENERAL_NAMES *san = NULL;
    size_t i;
    memset(&sv, 0, sizeof(sv));
    for (i = 0; i < n; i++)
        snprintf(sv.gateways[i], sizeof(sv.gateways[i]), "%s", urls[i]);
    sv.n_gateways = n;
    OK(custos_ca_gateway_names(&san, has_dns, &sv));
    return san;
}

static void test_san_server(void **state)
{
    static const char *const urls[] = {"https://GW1.Example.org:9443/custos", "http://10.1.2.3",
                                       "https://[::1]:8443", "https://gw1.example.org/other"};
    fx *f = *state;
    GENERAL_NAMES *san = gateway_names(urls, 4, NULL), *got;
    custos_key_template t = f->t;
    X509 *x = NULL;
    char *text;

    assert_int_equal(sk_GENERAL_NAME_num(san), 3);
    t.usage = CUSTOS_USAGE_TLS_SERVER;
    OK(custos_ca_issue_ex(&x, f->dev_key, NULL, &t, "pump", "hub", "SN-0001", f->ca, f->ca_key,
                          f->now, 0, san));
    OK(custos_lint_certificate_ex(x, f->ca, &t, 0, "SN-0001"));
    got = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(got);
    assert_int_equal(sk_GENERAL_NAME_num(got), 3);
    text = (char *)ASN1_STRING_get0_data(sk_GENERAL_NAME_value(got, 0)->d.dNSName);
    assert_string_equal(text, "gw1.example.org");
    assert_int_equal(sk_GENERAL_NAME_value(got, 1)->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(got, 1)->d.iPAddress), 4);
    assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(got, 2)->d.iPAddress), 16);
    assert_int_equal(X509_check_host(x, "gw1.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_host(x, "custos.example.org", 0, 0, NULL), 0);
    GENERAL_NAMES_free(got);
    X509_free(x);
    x = NULL;
    /* the same names on a tls-client template: none */
    OK(custos_ca_issue_ex(&x, f->dev_key, NULL, &f->t, "pump", "hub", "SN-0001", f->ca, f->ca_key,
                          f->now, 0, san));
    assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
    X509_free(x);
    GENERAL_NAMES_free(san);
}

static void test_san_rules(void **state)
{
    static const char *const ip_only[] = {"https://10.1.2.3:9443"};
    fx *f = *state;
    GENERAL_NAMES *san = gateway_names(ip_only, 1, NULL);
    custos_key_template t = f->t;
    X509 *x = NULL;

    /* a subjectAltName on a certificate without tls-server usage */
    add_ext(f->cert, f->ca, NID_subject_alt_name, "DNS:gw.example.org");
    resign(f, NULL, NULL);
    expect_rule(f, "san");
    /* a tls-server certificate without one */
    t.usage = CUSTOS_USAGE_TLS_SERVER;
    OK(custos_ca_issue(&x, f->dev_key, NULL, &t, "pump", "hub", "SN-0001", f->ca, f->ca_key, f->now,
                       0));
    assert_int_equal(custos_lint_certificate(x, f->ca, &t, 0), CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:san");
    X509_free(x);
    x = NULL;
    /* IP addresses only: a CN would be read as a host name */
    OK(custos_ca_issue_ex(&x, f->dev_key, NULL, &t, "pump", "hub", "SN-0001", f->ca, f->ca_key,
                          f->now, 0, san));
    assert_int_equal(custos_lint_certificate(x, f->ca, &t, 0), CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:server-cn");
    X509_free(x);
    x = NULL;
    snprintf(t.subject, sizeof(t.subject), "serialNumber={serial},OU={component}");
    OK(custos_ca_issue_ex(&x, f->dev_key, NULL, &t, "pump", "hub", "SN-0001", f->ca, f->ca_key,
                          f->now, 0, san));
    OK(custos_lint_certificate_ex(x, f->ca, &t, 0, "SN-0001"));
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
    X509_free(x);
    GENERAL_NAMES_free(san);
}

static void test_url_hosts(void **state)
{
    static const struct {
        const char *url, *host;
        int ip;
    } ok[] = {
        {"https://gw.example.org", "gw.example.org", 0},
        {"https://GW-2.Example.org:1/x?y#z", "gw-2.example.org", 0},
        {"http://hub", "hub", 0},
        {"https://192.168.0.1:65535", "192.168.0.1", 1},
        {"https://[FD00::7]/p", "fd00::7", 1},
    };
    static const char *const bad[] = {
        "https://",
        "https://:443",
        "https://user@gw.example.org",
        "https://gw.example.org:0",
        "https://gw.example.org:65536",
        "https://gw.example.org:x",
        "https://[::1",
        "https://[gw]",
        "https://gw_1.example.org",
        "https://-gw.example.org",
        "https://gw-.example.org",
        "https://gw..example.org",
        "https://*.example.org",
        "https://10.0.0.300",
        "ftp://gw.example.org",
        "https://gw.example.org.",
    };
    char host[300];
    size_t i;
    int ip = 0;
    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        OK(custos_ca_url_host(host, sizeof(host), &ip, ok[i].url, "services.gateways[0]"));
        assert_string_equal(host, ok[i].host);
        assert_int_equal(ip, ok[i].ip);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (custos_ca_url_host(host, sizeof(host), &ip, bad[i], "services.gateways[0]") !=
            CUSTOS_ERR_MALFORMED)
            fail_msg("%s was accepted as a gateway URL", bad[i]);
        assert_string_equal(custos_error_last()->field, "services.gateways[0]");
    }
}

/* Every serial the CA makes is positive and 17 octets long, whatever its
 * random bytes (a leading zero octet would otherwise be dropped by DER and,
 * once in 32,768 certificates, fail the lint's length rule), and distinct. */
static void test_serial_generator(void **state)
{
    enum { N = 20000 };
    static uint8_t seen[N][17];
    size_t i;
    (void)state;
    for (i = 0; i < N; i++) {
        ASN1_INTEGER *a = NULL;
        assert_int_equal(custos_ca_serial(&a), 0);
        assert_int_equal(ASN1_STRING_type(a), V_ASN1_INTEGER);
        assert_int_equal(ASN1_STRING_length(a), 17);
        assert_true(ASN1_STRING_get0_data(a)[0] >= 0x01 && ASN1_STRING_get0_data(a)[0] <= 0x7f);
        memcpy(seen[i], ASN1_STRING_get0_data(a), 17);
        ASN1_INTEGER_free(a);
    }
    for (i = 1; i < N; i++)
        assert_memory_not_equal(seen[i], seen[i - 1], 17);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_good_certificate_passes),
        T(test_other_usages_pass),
        T(test_version),
        T(test_serial_short),
        T(test_serial_negative),
        T(test_serial_too_long),
        T(test_issuer_name),
        T(test_signature_algorithm),
        T(test_aki),
        T(test_aki_missing),
        T(test_ski),
        T(test_basic_constraints),
        T(test_key_usage),
        T(test_eku),
        T(test_validity_beyond_ca),
        T(test_validity_reversed),
        T(test_time_encoding),
        T(test_subject_empty),
        T(test_subject_without_serial),
        T(test_key_algorithm),
        T(test_policy),
        T(test_unknown_critical_extension),
        T(test_signature),
        T(test_san_server),
        T(test_san_rules),
        cmocka_unit_test(test_url_hosts),
        cmocka_unit_test(test_serial_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
