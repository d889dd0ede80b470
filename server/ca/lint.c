/* RFC 5280 + Custos profile lint of device certificates. Each rule fails with
 * CUSTOS_ERR_LINT, field "lint:<rule>", so an operator (and a test) can tell
 * which rule broke. No certificate is stored or put in a profile unless it
 * passes. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "internal/util.h"

#define Y2050 INT64_C(2524608000) /* 2050-01-01T00:00:00Z */

#define LINT(cond, rule, ...)                                                                      \
    CUSTOS_ENSURE(cond, CUSTOS_ERR_LINT, "lint:" rule, "lint " rule ": " __VA_ARGS__)

static int sig_nid_for(const EVP_PKEY *issuer_key)
{
    const EVP_MD *md = custos_key_md(issuer_key);
    int sig = NID_undef;
    int pk = EVP_PKEY_get_base_id(issuer_key);
    if (pk == EVP_PKEY_ED25519)
        return NID_ED25519;
    if (md == NULL || OBJ_find_sigid_by_algs(&sig, EVP_MD_get_type(md), pk) != 1)
        return NID_undef;
    return sig;
}

static custos_err check_serial(const X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const ASN1_INTEGER *s = X509_get0_serialNumber(cert);
    const unsigned char *d;
    int n, der_len;

    LINT(s != NULL && ASN1_STRING_type(s) == V_ASN1_INTEGER, "serial",
         "serial number must be positive");
    n = ASN1_STRING_length(s);
    d = ASN1_STRING_get0_data(s);
    while (n > 0 && d[0] == 0) {
        d++;
        n--;
    }
    LINT(n > 0, "serial", "serial number must not be zero");
    der_len = n + ((d[0] & 0x80) ? 1 : 0);
    LINT(der_len <= 20, "serial", "serial number is %d octets (max 20)", der_len);
    LINT(n >= 15, "serial", "serial number has %d octets; at least 16 random bytes required", n);
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err check_time(const ASN1_TIME *t, int64_t *out, const char *which)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int want;
    LINT(t != NULL && custos_asn1_time_to_unix(out, t) == CUSTOS_OK, "time-encoding",
         "%s is not a valid time", which);
    want = *out < Y2050 ? V_ASN1_UTCTIME : V_ASN1_GENERALIZEDTIME;
    LINT(ASN1_STRING_type(t) == want, "time-encoding", "%s must be %s (RFC 5280 4.1.2.5)", which,
         want == V_ASN1_UTCTIME ? "UTCTime before 2050" : "GeneralizedTime from 2050");
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err check_validity(const X509 *cert, const X509 *issuer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int64_t nb = 0, na = 0, inb = 0, ina = 0;
    CUSTOS_GUARD(check_time(X509_get0_notBefore(cert), &nb, "notBefore"));
    CUSTOS_GUARD(check_time(X509_get0_notAfter(cert), &na, "notAfter"));
    LINT(custos_asn1_time_to_unix(&inb, X509_get0_notBefore(issuer)) == CUSTOS_OK &&
             custos_asn1_time_to_unix(&ina, X509_get0_notAfter(issuer)) == CUSTOS_OK,
         "validity", "issuer validity unreadable");
    LINT(nb < na, "validity", "notBefore must be before notAfter");
    LINT(nb >= inb, "validity", "notBefore is before the issuing CA's notBefore");
    LINT(na <= ina, "validity", "notAfter is after the issuing CA's notAfter");
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err check_key_ids(const X509 *cert, const X509 *issuer)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    ASN1_OCTET_STRING *ski = X509_get_ext_d2i(cert, NID_subject_key_identifier, NULL, NULL);
    ASN1_OCTET_STRING *iski = X509_get_ext_d2i(issuer, NID_subject_key_identifier, NULL, NULL);
    AUTHORITY_KEYID *aki = X509_get_ext_d2i(cert, NID_authority_key_identifier, NULL, NULL);

    LINT(ski != NULL && ASN1_STRING_length(ski) > 0, "ski", "subjectKeyIdentifier missing");
    LINT(aki != NULL && aki->keyid != NULL, "aki", "authorityKeyIdentifier keyid missing");
    LINT(iski != NULL && ASN1_OCTET_STRING_cmp(aki->keyid, iski) == 0, "aki",
         "authorityKeyIdentifier does not match the issuer's subjectKeyIdentifier");
    ret = CUSTOS_OK;
out:
    ASN1_OCTET_STRING_free(ski);
    ASN1_OCTET_STRING_free(iski);
    AUTHORITY_KEYID_free(aki);
    return ret;
}

static custos_err check_basic_constraints(const X509 *cert)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
    LINT(bc != NULL, "basic-constraints", "basicConstraints missing");
    LINT(crit == 1, "basic-constraints", "basicConstraints must be critical");
    LINT(!bc->ca, "basic-constraints", "device certificate must have CA:FALSE");
    ret = CUSTOS_OK;
out:
    BASIC_CONSTRAINTS_free(bc);
    return ret;
}

static custos_err check_key_usage(const X509 *cert, const custos_key_template *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int crit = -1, i;
    int tls = (t->usage & (CUSTOS_USAGE_TLS_CLIENT | CUSTOS_USAGE_TLS_SERVER)) != 0;
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(cert, NID_key_usage, &crit, NULL);
    int want[9] = {0};

    want[0] = 1;                                      /* digitalSignature */
    want[1] = (t->usage & CUSTOS_USAGE_SIGNING) != 0; /* nonRepudiation */
    want[2] = tls && t->alg == CUSTOS_ALG_RSA_3072;   /* keyEncipherment */
    LINT(ku != NULL, "key-usage", "keyUsage missing");
    LINT(crit == 1, "key-usage", "keyUsage must be critical");
    for (i = 0; i < 9; i++)
        LINT(ASN1_BIT_STRING_get_bit(ku, i) == want[i], "key-usage",
             "keyUsage bit %d is %s for template %s", i, want[i] ? "missing" : "not allowed",
             t->name);
    ret = CUSTOS_OK;
out:
    ASN1_BIT_STRING_free(ku);
    return ret;
}

static custos_err check_eku(const X509 *cert, const custos_key_template *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    int want_client = (t->usage & CUSTOS_USAGE_TLS_CLIENT) != 0;
    int want_server = (t->usage & CUSTOS_USAGE_TLS_SERVER) != 0;
    int client = 0, server = 0, other = 0, i;

    for (i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
        if (nid == NID_client_auth)
            client = 1;
        else if (nid == NID_server_auth)
            server = 1;
        else
            other = 1;
    }
    LINT(want_client || want_server || eku == NULL, "eku",
         "a signing-only certificate carries no extendedKeyUsage");
    LINT(client == want_client && server == want_server && !other, "eku",
         "extendedKeyUsage does not match the usage of template %s", t->name);
    ret = CUSTOS_OK;
out:
    EXTENDED_KEY_USAGE_free(eku);
    return ret;
}

static custos_err check_policy(const X509 *cert, int mock)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CERTIFICATEPOLICIES *pol = X509_get_ext_d2i(cert, NID_certificate_policies, NULL, NULL);
    int want = custos_oid_nid(mock ? CUSTOS_OID_POLICY_MOCK : CUSTOS_OID_POLICY_DEVICE);
    int not = custos_oid_nid(mock ? CUSTOS_OID_POLICY_DEVICE : CUSTOS_OID_POLICY_MOCK);
    int found = 0, wrong = 0, i;

    for (i = 0; pol != NULL && i < sk_POLICYINFO_num(pol); i++) {
        int nid = OBJ_obj2nid(sk_POLICYINFO_value(pol, i)->policyid);
        found |= nid == want;
        wrong |= nid == not ;
    }
    LINT(found, "policy", "certificatePolicies lacks the %s policy OID", mock ? "mock" : "device");
    LINT(!wrong, "policy", "certificatePolicies carries the %s policy OID",
         mock ? "device" : "mock");
    ret = CUSTOS_OK;
out:
    CERTIFICATEPOLICIES_free(pol);
    return ret;
}

static int contains(const unsigned char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle), i;
    for (i = 0; n <= len && i <= len - n; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

static int name_has(const X509_NAME *n, int nid, const char *value)
{
    int i;
    for (i = 0; i < X509_NAME_entry_count(n); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
        const ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        size_t len = (size_t)ASN1_STRING_length(d);
        if (nid != NID_undef && OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) != nid)
            continue;
        if (value == NULL)
            return 1;
        if (nid != NID_undef && len == strlen(value) &&
            memcmp(ASN1_STRING_get0_data(d), value, len) == 0)
            return 1;
        if (nid == NID_undef && contains(ASN1_STRING_get0_data(d), len, value))
            return 1;
    }
    return 0;
}

static custos_err check_subject(const X509 *cert, const char *serial, int mock)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const X509_NAME *n = X509_get_subject_name(cert);
    LINT(n != NULL && X509_NAME_entry_count(n) > 0, "subject", "subject is empty");
    if (serial != NULL)
        LINT(name_has(n, NID_undef, serial), "subject",
             "subject does not contain the device serial %s", serial);
    LINT(name_has(n, NID_organizationalUnitName, "mock") == mock, "mock-marker", "%s",
         mock ? "mock certificate lacks OU=mock" : "OU=mock on a real certificate");
    ret = CUSTOS_OK;
out:
    return ret;
}

static int dns_chars_ok(const unsigned char *d, int n)
{
    int i;
    if (n < 1 || n > 253)
        return 0;
    for (i = 0; i < n; i++)
        if (!((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= '0' && d[i] <= '9') || d[i] == '-' ||
              d[i] == '.'))
            return 0;
    return 1;
}

/* subjectAltName: only on a tls-server certificate, which must carry one
 * (the hosts of services.gateways, server/ca/san.c), of DNS names and IP
 * addresses only. Without a DNS name in it, clients that match host names
 * fall back to the subject's CN, which may hold a device-chosen serial: such
 * a certificate must then have no CN. */
static custos_err check_san(const X509 *cert, const custos_key_template *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int server = (t->usage & CUSTOS_USAGE_TLS_SERVER) != 0, dns = 0, i;

    LINT(san == NULL || server, "san", "subjectAltName on a certificate without tls-server usage");
    LINT(!server || (san != NULL && sk_GENERAL_NAME_num(san) > 0), "san",
         "a tls-server certificate must name its hosts in subjectAltName");
    for (i = 0; san != NULL && i < sk_GENERAL_NAME_num(san); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type == GEN_DNS) {
            LINT(
                dns_chars_ok(ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName)),
                "san", "subjectAltName entry %d is not a lowercase DNS name", i);
            dns = 1;
        } else {
            LINT(g->type == GEN_IPADD && (ASN1_STRING_length(g->d.iPAddress) == 4 ||
                                          ASN1_STRING_length(g->d.iPAddress) == 16),
                 "san", "subjectAltName entry %d is neither a DNS name nor an IP address", i);
        }
    }
    LINT(!server || dns ||
             X509_NAME_get_index_by_NID(X509_get_subject_name(cert), NID_commonName, -1) < 0,
         "server-cn",
         "a tls-server certificate whose subjectAltName has no DNS name must have no CN");
    ret = CUSTOS_OK;
out:
    GENERAL_NAMES_free(san);
    return ret;
}

static custos_err check_critical(const X509 *cert)
{
    static const int known[] = {NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
                                NID_subject_alt_name, NID_certificate_policies};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int i;
    size_t k;
    for (i = 0; i < X509_get_ext_count(cert); i++) {
        const X509_EXTENSION *e = X509_get_ext(cert, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object((X509_EXTENSION *)e)), ok = 0;
        if (!X509_EXTENSION_get_critical(e))
            continue;
        for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok |= nid == known[k];
        LINT(ok, "critical-extensions", "unknown critical extension %s",
             nid != NID_undef ? OBJ_nid2sn(nid) : "(unregistered OID)");
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

/* The subject key's algorithm, from the decoded key or, when the issuer
 * copied the SubjectPublicKeyInfo as encoded (server/ca/issue.c), from its
 * algorithm identifier. */
static custos_alg cert_key_alg(const X509 *cert)
{
    const X509_PUBKEY *spki = X509_get_X509_PUBKEY(cert);
    ASN1_OBJECT *alg = NULL;
    X509_ALGOR *pa = NULL;
    const ASN1_OBJECT *aobj = NULL;
    const void *pval = NULL;
    const unsigned char *pk = NULL;
    int ptype = V_ASN1_UNDEF, pklen = 0, curve;
    EVP_PKEY *pkey;

    ERR_set_mark();
    pkey = X509_get0_pubkey(cert);
    ERR_pop_to_mark();
    if (pkey != NULL)
        return custos_key_alg(pkey);
    if (spki == NULL || X509_PUBKEY_get0_param(&alg, &pk, &pklen, &pa, spki) != 1)
        return CUSTOS_ALG_NONE;
    X509_ALGOR_get0(&aobj, &ptype, &pval, pa);
    if (OBJ_obj2nid(aobj) == NID_ED25519)
        return ptype == V_ASN1_UNDEF && pklen == 32 ? CUSTOS_ALG_ED25519 : CUSTOS_ALG_NONE;
    if (OBJ_obj2nid(aobj) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT)
        return CUSTOS_ALG_NONE;
    curve = OBJ_obj2nid(pval);
    if (curve == NID_X9_62_prime256v1 && pklen == 65)
        return CUSTOS_ALG_ECDSA_P256;
    if (curve == NID_secp384r1 && pklen == 97)
        return CUSTOS_ALG_ECDSA_P384;
    return CUSTOS_ALG_NONE;
}

custos_err custos_lint_certificate_ex(const X509 *cert, const X509 *issuer,
                                      const custos_key_template *t, int mock, const char *serial)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_PKEY *ikey = NULL;
    int sig;

    CUSTOS_ENSURE(cert != NULL && issuer != NULL && t != NULL, CUSTOS_ERR_ARG, "lint",
                  "lint: missing argument");
    ikey = X509_get0_pubkey(issuer);
    LINT(ikey != NULL, "issuer", "issuer has no usable public key");
    LINT(X509_get_version(cert) == X509_VERSION_3, "version", "certificate must be X.509 v3");
    CUSTOS_GUARD(check_serial(cert));
    LINT(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)) == 0,
         "issuer-name", "issuer name differs from the issuing CA's subject");
    sig = sig_nid_for(ikey);
    LINT(sig != NID_undef && X509_get_signature_nid(cert) == sig, "signature-algorithm",
         "signature algorithm %s does not match the issuer key (want %s)",
         OBJ_nid2sn(X509_get_signature_nid(cert)), sig != NID_undef ? OBJ_nid2sn(sig) : "?");
    {
        const X509_ALGOR *outer = NULL;
        X509_get0_signature(NULL, &outer, cert);
        LINT(outer != NULL && X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(cert)) == 0,
             "signature-algorithm", "outer and TBS signature algorithms differ");
    }
    CUSTOS_GUARD(check_key_ids(cert, issuer));
    CUSTOS_GUARD(check_basic_constraints(cert));
    CUSTOS_GUARD(check_key_usage(cert, t));
    CUSTOS_GUARD(check_eku(cert, t));
    CUSTOS_GUARD(check_validity(cert, issuer));
    CUSTOS_GUARD(check_subject(cert, serial, mock ? 1 : 0));
    LINT(cert_key_alg(cert) == t->alg, "key-algorithm",
         "key algorithm is not %s as template %s requires", custos_alg_name(t->alg), t->name);
    CUSTOS_GUARD(check_policy(cert, mock));
    CUSTOS_GUARD(check_san(cert, t));
    CUSTOS_GUARD(check_critical(cert));
    LINT(X509_verify((X509 *)cert, ikey) == 1, "signature",
         "signature does not verify with the issuer key");
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_lint_certificate(const X509 *cert, const X509 *issuer,
                                   const custos_key_template *t, int mock)
{
    return custos_lint_certificate_ex(cert, issuer, t, mock, NULL);
}
