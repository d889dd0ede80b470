/* Device certificate issuance: one X.509 v3 certificate per CSR key, shaped
 * by the key template. The caller lints before storing (server/ca/lint.c). */
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "internal/util.h"

#define DAY 86400

/* certificatePolicies with one policy OID (no qualifiers). */
static custos_err add_policy(X509 *x, int nid)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CERTIFICATEPOLICIES *pol = sk_POLICYINFO_new_null();
    POLICYINFO *pi = POLICYINFO_new();

    CUSTOS_ENSURE(pol != NULL && pi != NULL && nid != NID_undef, CUSTOS_ERR_NOMEM, "policy",
                  "out of memory");
    ASN1_OBJECT_free(pi->policyid);
    pi->policyid = OBJ_nid2obj(nid);
    CUSTOS_ENSURE(pi->policyid != NULL && sk_POLICYINFO_push(pol, pi) > 0, CUSTOS_ERR_NOMEM,
                  "policy", "out of memory");
    pi = NULL;
    CUSTOS_ENSURE(X509_add1_ext_i2d(x, NID_certificate_policies, pol, 0, X509V3_ADD_APPEND) == 1,
                  CUSTOS_ERR_INTERNAL, "policy", "cannot add certificatePolicies");
    ret = CUSTOS_OK;
out:
    POLICYINFO_free(pi);
    CERTIFICATEPOLICIES_free(pol);
    return ret;
}

/* keyUsage and extendedKeyUsage values for a template's usage bits. */
static void usage_values(char *ku, size_t ku_cap, char *eku, size_t eku_cap, unsigned usage,
                         custos_alg alg)
{
    int tls = (usage & (CUSTOS_USAGE_TLS_CLIENT | CUSTOS_USAGE_TLS_SERVER)) != 0;
    snprintf(ku, ku_cap, "critical,digitalSignature%s%s",
             (usage & CUSTOS_USAGE_SIGNING) ? ",nonRepudiation" : "",
             tls && alg == CUSTOS_ALG_RSA_3072 ? ",keyEncipherment" : "");
    snprintf(eku, eku_cap, "%s%s%s", (usage & CUSTOS_USAGE_TLS_CLIENT) ? "clientAuth" : "",
             (usage & CUSTOS_USAGE_TLS_CLIENT) && (usage & CUSTOS_USAGE_TLS_SERVER) ? "," : "",
             (usage & CUSTOS_USAGE_TLS_SERVER) ? "serverAuth" : "");
}

/* Copy an EC or Ed25519 SubjectPublicKeyInfo into @p x as encoded. */
static int copy_spki(X509 *x, const X509_PUBKEY *src)
{
    ASN1_OBJECT *alg = NULL;
    const unsigned char *pk = NULL;
    unsigned char *penc = NULL;
    int pklen = 0, ptype = V_ASN1_UNDEF;
    X509_ALGOR *pa = NULL;
    const ASN1_OBJECT *aobj = NULL;
    const void *pval = NULL;
    void *pdup = NULL;

    if (X509_PUBKEY_get0_param(&alg, &pk, &pklen, &pa, src) != 1 || pklen <= 0)
        return 0;
    X509_ALGOR_get0(&aobj, &ptype, &pval, pa);
    if (OBJ_obj2nid(aobj) == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT)
        pdup = OBJ_dup(pval);
    else if (OBJ_obj2nid(aobj) != NID_ED25519 || ptype != V_ASN1_UNDEF)
        return 0; /* RSA and the rest: the caller re-encodes */
    penc = OPENSSL_memdup(pk, (size_t)pklen);
    if ((ptype == V_ASN1_OBJECT && pdup == NULL) || penc == NULL ||
        X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_dup(aobj), ptype, pdup, penc, pklen) !=
            1) {
        ASN1_OBJECT_free(pdup);
        OPENSSL_free(penc);
        return 0;
    }
    return 1;
}

custos_err custos_ca_issue(X509 **out, EVP_PKEY *pub, const X509_PUBKEY *spki,
                           const custos_key_template *t, const char *system, const char *component,
                           const char *serial, X509 *ca, EVP_PKEY *ca_key, int64_t now, int mock)
{
    return custos_ca_issue_ex(out, pub, spki, t, system, component, serial, ca, ca_key, now, mock,
                              NULL);
}

custos_err custos_ca_issue_ex(X509 **out, EVP_PKEY *pub, const X509_PUBKEY *spki,
                              const custos_key_template *t, const char *system,
                              const char *component, const char *serial, X509 *ca, EVP_PKEY *ca_key,
                              int64_t now, int mock, const GENERAL_NAMES *san)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    ASN1_INTEGER *sn = NULL;
    X509V3_CTX ctx;
    char ku[96], eku[64];

    CUSTOS_ENSURE(out != NULL && pub != NULL && t != NULL && ca != NULL && ca_key != NULL,
                  CUSTOS_ERR_ARG, "issue", "issue: missing argument");
    *out = NULL;
    CUSTOS_ENSURE(t->valid_days > 0 && t->valid_days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_ARG,
                  "valid_days", "template %s: valid_days %u out of range", t->name, t->valid_days);
    CUSTOS_GUARD(custos_subject_build(&name, t->subject, system, component, serial, t->name));
    if (mock)
        CUSTOS_ENSURE(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                                 (const unsigned char *)"mock", -1, -1, 0) == 1,
                      CUSTOS_ERR_INTERNAL, "subject", "cannot add OU=mock");
    x = X509_new();
    CUSTOS_ENSURE(x != NULL, CUSTOS_ERR_NOMEM, "certificate", "out of memory");
    CUSTOS_GUARD(custos_ca_serial(&sn));
    CUSTOS_ENSURE(
        X509_set_version(x, 2) == 1 && X509_set_serialNumber(x, sn) == 1 &&
            X509_set_subject_name(x, name) == 1 &&
            X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1 &&
            ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - CUSTOS_CA_BACKDATE)) != NULL &&
            ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now + (int64_t)t->valid_days * DAY)) !=
                NULL &&
            ((spki != NULL && copy_spki(x, spki)) || X509_set_pubkey(x, pub) == 1),
        CUSTOS_ERR_INTERNAL, "certificate", "cannot fill certificate for template %s", t->name);
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    usage_values(ku, sizeof(ku), eku, sizeof(eku), t->usage, t->alg);
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_key_usage, ku));
    if (eku[0] != '\0')
        CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_ext_key_usage, eku));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    CUSTOS_GUARD(custos_ca_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
    if ((t->usage & CUSTOS_USAGE_TLS_SERVER) && san != NULL && sk_GENERAL_NAME_num(san) > 0)
        CUSTOS_ENSURE(
            X509_add1_ext_i2d(x, NID_subject_alt_name, (void *)san, 0, X509V3_ADD_APPEND) == 1,
            CUSTOS_ERR_INTERNAL, "certificate", "cannot add subjectAltName");
    CUSTOS_GUARD(
        add_policy(x, custos_oid_nid(mock ? CUSTOS_OID_POLICY_MOCK : CUSTOS_OID_POLICY_DEVICE)));
    CUSTOS_ENSURE(X509_sign(x, ca_key, custos_key_md(ca_key)) > 0, CUSTOS_ERR_INTERNAL,
                  "certificate", "cannot sign certificate for template %s", t->name);
    *out = x;
    x = NULL;
    ret = CUSTOS_OK;
out:
    ASN1_INTEGER_free(sn);
    X509_NAME_free(name);
    X509_free(x);
    return ret;
}
