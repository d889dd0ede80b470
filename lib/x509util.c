/* Keys, X.509 DER/base64 helpers, subject patterns and the project's OIDs. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "internal/util.h"

/* ---- algorithms ------------------------------------------------------------ */

static const struct {
    custos_alg alg;
    const char *name;
} alg_names[] = {
    {CUSTOS_ALG_ECDSA_P256, "ecdsa-p256"},
    {CUSTOS_ALG_ECDSA_P384, "ecdsa-p384"},
    {CUSTOS_ALG_ED25519, "ed25519"},
    {CUSTOS_ALG_RSA_3072, "rsa-3072"},
};

const char *custos_alg_name(custos_alg alg)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    }
    return NULL;
}

custos_alg custos_alg_from_name(const char *name)
{
    if (name == NULL)
        return CUSTOS_ALG_NONE;
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (strcmp(alg_names[i].name, name) == 0)
            return alg_names[i].alg;
    }
    return CUSTOS_ALG_NONE;
}

/* ---- keys ---------------------------------------------------------------- */

custos_err custos_key_generate(EVP_PKEY **out, custos_alg alg)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    EVP_PKEY *key = NULL;

    *out = NULL;
    switch (alg) {
    case CUSTOS_ALG_ECDSA_P256:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case CUSTOS_ALG_ECDSA_P384:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case CUSTOS_ALG_ED25519:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    case CUSTOS_ALG_RSA_3072:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
        break;
    default:
        ret = custos_error_set(CUSTOS_ERR_UNSUPPORTED, "algorithm",
                               "key algorithm %d is not supported", (int)alg);
        goto out;
    }
    if (key == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "algorithm", "%s key generation failed",
                                   custos_alg_name(alg));
        goto out;
    }
    *out = key;
    key = NULL;
    ret = CUSTOS_OK;
out:
    EVP_PKEY_free(key);
    return ret;
}

custos_alg custos_key_alg(const EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;
    int nid;

    if (key == NULL)
        return CUSTOS_ALG_NONE;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return CUSTOS_ALG_ED25519;
    if (EVP_PKEY_is_a(key, "RSA"))
        return EVP_PKEY_get_bits(key) == 3072 ? CUSTOS_ALG_RSA_3072 : CUSTOS_ALG_NONE;
    if (!EVP_PKEY_is_a(key, "EC"))
        return CUSTOS_ALG_NONE;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1)
        return CUSTOS_ALG_NONE;
    nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    if (nid == NID_X9_62_prime256v1)
        return CUSTOS_ALG_ECDSA_P256;
    if (nid == NID_secp384r1)
        return CUSTOS_ALG_ECDSA_P384;
    return CUSTOS_ALG_NONE;
}

const EVP_MD *custos_key_md(const EVP_PKEY *key)
{
    switch (custos_key_alg(key)) {
    case CUSTOS_ALG_ED25519:
        return NULL;
    case CUSTOS_ALG_ECDSA_P384:
        return EVP_sha384();
    default:
        return EVP_sha256();
    }
}

int custos_key_public_equal(const EVP_PKEY *a, const EVP_PKEY *b)
{
    if (a == NULL || b == NULL)
        return 0;
    return EVP_PKEY_eq(a, b) == 1;
}

custos_err custos_key_spki_sha256(uint8_t out[32], const EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned char *der = NULL;
    int len;

    memset(out, 0, 32);
    CUSTOS_ENSURE(key != NULL, CUSTOS_ERR_ARG, "key", "no key given");
    len = i2d_PUBKEY(key, &der);
    if (len <= 0) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "key", "cannot encode the public key");
        goto out;
    }
    custos_sha256(out, der, (size_t)len);
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    return ret;
}

int custos_x509_has_eku(const X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku;
    int found = 0;

    if (x == NULL || nid == NID_undef)
        return 0;
    eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    if (eku == NULL)
        return 0;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
        if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == nid) {
            found = 1;
            break;
        }
    }
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

/* ---- certificates -------------------------------------------------------- */

custos_err custos_x509_from_der(X509 **out, const uint8_t *der, size_t len, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const unsigned char *p = der;
    X509 *x = NULL;

    *out = NULL;
    if (field == NULL)
        field = "certificate";
    CUSTOS_ENSURE(der != NULL && len > 0, CUSTOS_ERR_MALFORMED, field, "%s is empty", field);
    CUSTOS_ENSURE(len <= CUSTOS_MAX_CERT_SIZE, CUSTOS_ERR_TOO_LARGE, field,
                  "%s is %zu bytes, over the limit of %u bytes", field, len,
                  (unsigned)CUSTOS_MAX_CERT_SIZE);
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        ret = custos_error_set_ssl(CUSTOS_ERR_MALFORMED, field, "%s is not a DER X.509 certificate",
                                   field);
        goto out;
    }
    CUSTOS_ENSURE(p == der + len, CUSTOS_ERR_MALFORMED, field,
                  "%s has %zu trailing bytes after the certificate", field,
                  (size_t)(der + len - p));
    *out = x;
    x = NULL;
    ret = CUSTOS_OK;
out:
    X509_free(x);
    return ret;
}

custos_err custos_x509_to_der(uint8_t **out, size_t *out_len, const X509 *x)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned char *der = NULL;
    uint8_t *buf = NULL;
    int len;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(x != NULL, CUSTOS_ERR_ARG, "certificate", "no certificate given");
    len = i2d_X509(x, &der);
    if (len <= 0) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "certificate",
                                   "cannot encode the certificate");
        goto out;
    }
    /* Hand back plain malloc'd memory so callers free() it. */
    buf = malloc((size_t)len);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, "certificate", "out of memory");
    memcpy(buf, der, (size_t)len);
    *out = buf;
    *out_len = (size_t)len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    free(buf);
    return ret;
}

custos_err custos_x509_from_b64(X509 **out, const char *b64, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t len = 0;

    *out = NULL;
    CUSTOS_GUARD(custos_b64_decode(&der, &len, b64, CUSTOS_MAX_CERT_SIZE,
                                   field != NULL ? field : "certificate"));
    CUSTOS_GUARD(custos_x509_from_der(out, der, len, field));
    ret = CUSTOS_OK;
out:
    free(der);
    return ret;
}

custos_err custos_x509_to_b64(char **out, const X509 *x)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t len = 0;

    *out = NULL;
    CUSTOS_GUARD(custos_x509_to_der(&der, &len, x));
    CUSTOS_GUARD(custos_b64_encode(out, der, len));
    ret = CUSTOS_OK;
out:
    free(der);
    return ret;
}

/* ---- subject patterns -------------------------------------------------------- */

static const char *const subject_attrs[] = {"CN", "O", "OU", "C", "L", "ST", "serialNumber"};

struct subject_vars {
    const char *system, *component, *serial, *tmpl;
};

static const char *placeholder_value(const struct subject_vars *v, const char *name, size_t n)
{
    static const char *const names[] = {"serial", "component", "system", "template"};
    const char *vals[4];

    vals[0] = v != NULL ? v->serial : "";
    vals[1] = v != NULL ? v->component : "";
    vals[2] = v != NULL ? v->system : "";
    vals[3] = v != NULL ? v->tmpl : "";
    for (size_t i = 0; i < 4; i++) {
        if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
            return vals[i] != NULL ? vals[i] : "";
    }
    return NULL;
}

static int attr_known(const char *a)
{
    for (size_t i = 0; i < sizeof(subject_attrs) / sizeof(subject_attrs[0]); i++) {
        if (strcmp(subject_attrs[i], a) == 0)
            return 1;
    }
    return 0;
}

/* Parse one RDN "ATTR=value" starting at *pp, expanding placeholders with @p v
 * (NULL: only check) into value; advances *pp past the separating comma. */
static custos_err subject_rdn(char *attr, size_t attr_cap, char *value, size_t value_cap,
                              const char **pp, const struct subject_vars *v, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *p = *pp;
    size_t an = 0, vn = 0;
    int any = 0;

    while (*p == ' ')
        p++;
    while (*p != '\0' && *p != '=' && *p != ',') {
        CUSTOS_ENSURE(an + 1 < attr_cap, CUSTOS_ERR_MALFORMED, field,
                      "subject attribute name is too long");
        attr[an++] = *p++;
    }
    attr[an] = '\0';
    CUSTOS_ENSURE(*p == '=', CUSTOS_ERR_MALFORMED, field, "subject part \"%s\" is not ATTR=value",
                  attr);
    CUSTOS_ENSURE(attr_known(attr), CUSTOS_ERR_MALFORMED, field,
                  "subject attribute \"%s\" is not one of CN O OU C L ST serialNumber", attr);
    p++;
    while (*p != '\0' && *p != ',') {
        const char *piece = p;
        size_t pn = 1;
        char esc;

        any = 1;
        if (*p == '\\') {
            esc = p[1];
            CUSTOS_ENSURE(esc == ',' || esc == '\\', CUSTOS_ERR_MALFORMED, field,
                          "subject has an unknown escape (only \\, and \\\\)");
            piece = p + 1;
            p += 2;
        } else if (*p == '{') {
            const char *end = strchr(p, '}');
            const char *val;

            CUSTOS_ENSURE(end != NULL, CUSTOS_ERR_MALFORMED, field,
                          "subject has an unclosed placeholder");
            val = placeholder_value(v, p + 1, (size_t)(end - p - 1));
            CUSTOS_ENSURE(val != NULL, CUSTOS_ERR_MALFORMED, field,
                          "subject placeholder \"%.*s\" is not one of {serial} {component} "
                          "{system} {template}",
                          (int)(end - p + 1), p);
            piece = val;
            pn = strlen(val);
            p = end + 1;
        } else {
            CUSTOS_ENSURE(*p != '}', CUSTOS_ERR_MALFORMED, field, "subject has a stray '}'");
            p++;
        }
        CUSTOS_ENSURE(vn + pn < value_cap, CUSTOS_ERR_LIMIT, field,
                      "subject attribute %s is longer than %zu bytes", attr, value_cap - 1);
        memcpy(value + vn, piece, pn);
        vn += pn;
    }
    value[vn] = '\0';
    CUSTOS_ENSURE(any && (vn > 0 || v == NULL), CUSTOS_ERR_MALFORMED, field,
                  "subject attribute %s is empty", attr);
    if (*p == ',') {
        p++;
        CUSTOS_ENSURE(*p != '\0', CUSTOS_ERR_MALFORMED, field, "subject pattern ends with a comma");
    }
    *pp = p;
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err subject_walk(X509_NAME *name, const char *pattern, const struct subject_vars *v,
                               const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *p = pattern;
    char attr[16];
    char value[CUSTOS_MAX_SUBJECT_LEN + 1];
    int count = 0;

    CUSTOS_ENSURE(pattern != NULL && pattern[0] != '\0', CUSTOS_ERR_MALFORMED, field,
                  "subject pattern is empty");
    CUSTOS_ENSURE(strlen(pattern) <= CUSTOS_MAX_SUBJECT_LEN, CUSTOS_ERR_LIMIT, field,
                  "subject pattern is longer than %d bytes", CUSTOS_MAX_SUBJECT_LEN);
    CUSTOS_ENSURE(custos_text_valid(pattern, CUSTOS_MAX_SUBJECT_LEN), CUSTOS_ERR_MALFORMED, field,
                  "subject pattern has control characters or invalid UTF-8");
    while (*p != '\0') {
        const char *before = p;

        CUSTOS_GUARD(subject_rdn(attr, sizeof(attr), value, sizeof(value), &p, v, field));
        CUSTOS_ENSURE(p != before, CUSTOS_ERR_MALFORMED, field, "subject pattern is malformed");
        if (name != NULL &&
            X509_NAME_add_entry_by_txt(name, attr, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                       -1, 0) != 1) {
            ret = custos_error_set_ssl(CUSTOS_ERR_LIMIT, field,
                                       "subject attribute %s=\"%s\" is not allowed", attr, value);
            goto out;
        }
        count++;
    }
    CUSTOS_ENSURE(count > 0, CUSTOS_ERR_MALFORMED, field, "subject pattern is empty");
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_subject_pattern_check(const char *pattern, const char *field)
{
    return subject_walk(NULL, pattern, NULL, field != NULL ? field : "subject");
}

custos_err custos_subject_build(X509_NAME **out, const char *pattern, const char *system,
                                const char *component, const char *serial, const char *tmpl)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct subject_vars v = {system, component, serial, tmpl};
    X509_NAME *name = NULL;

    *out = NULL;
    name = X509_NAME_new();
    CUSTOS_ENSURE(name != NULL, CUSTOS_ERR_NOMEM, "subject", "out of memory");
    CUSTOS_GUARD(subject_walk(name, pattern, &v, "subject"));
    *out = name;
    name = NULL;
    ret = CUSTOS_OK;
out:
    X509_NAME_free(name);
    return ret;
}

/* ---- object identifiers ----------------------------------------------------- */

static const struct {
    const char *oid;
    const char *sn;
    const char *ln;
} oid_table[CUSTOS_OID_COUNT] = {
    [CUSTOS_OID_CT_PACKAGE] = {CUSTOS_OID_ARC ".1.1", "custosPackage",
                               "Custos provisioning package"},
    [CUSTOS_OID_CT_REQUEST] = {CUSTOS_OID_ARC ".1.2", "custosRequest",
                               "Custos provisioning request"},
    [CUSTOS_OID_CT_PROFILE] = {CUSTOS_OID_ARC ".1.3", "custosProfile", "Custos certified profile"},
    [CUSTOS_OID_CT_RECEIPT] = {CUSTOS_OID_ARC ".1.4", "custosReceipt", "Custos receipt"},
    [CUSTOS_OID_EKU_PACKAGE_SIGNING] = {CUSTOS_OID_ARC ".2.1", "custosPackageSigning",
                                        "Custos package signing"},
    [CUSTOS_OID_EKU_PROFILE_SIGNING] = {CUSTOS_OID_ARC ".2.2", "custosProfileSigning",
                                        "Custos profile signing"},
    [CUSTOS_OID_EKU_BOOTSTRAP] = {CUSTOS_OID_ARC ".2.3", "custosBootstrap",
                                  "Custos bootstrap request signing"},
    [CUSTOS_OID_POLICY_DEVICE] = {CUSTOS_OID_ARC ".3.1", "custosDevicePolicy",
                                  "Custos device certificate policy"},
    [CUSTOS_OID_POLICY_MOCK] = {CUSTOS_OID_ARC ".3.2", "custosMockPolicy",
                                "Custos mock identity policy"},
};

static int oid_nids[CUSTOS_OID_COUNT];
static CRYPTO_ONCE oid_once = CRYPTO_ONCE_STATIC_INIT;

static void oid_register(void)
{
    for (size_t i = 0; i < CUSTOS_OID_COUNT; i++) {
        int nid = OBJ_txt2nid(oid_table[i].oid);

        if (nid == NID_undef)
            nid = OBJ_create(oid_table[i].oid, oid_table[i].sn, oid_table[i].ln);
        oid_nids[i] = nid;
    }
    ERR_clear_error();
}

int custos_oid_nid(custos_oid oid)
{
    if ((unsigned)oid >= CUSTOS_OID_COUNT)
        return NID_undef;
    if (!CRYPTO_THREAD_run_once(&oid_once, oid_register))
        return NID_undef;
    return oid_nids[oid];
}

const char *custos_oid_text(custos_oid oid)
{
    if ((unsigned)oid >= CUSTOS_OID_COUNT)
        return NULL;
    return oid_table[oid].oid;
}
