/* In-memory test PKI and temporary directories for the unit tests. */
#include "support/testca.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "internal/util.h"

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (ext == NULL)
        return 0;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = 0;

    if (bn != NULL && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1)
        ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int oid_of(char *out, size_t cap, int nid)
{
    const ASN1_OBJECT *obj = OBJ_nid2obj(nid);

    return obj != NULL && OBJ_obj2txt(out, (int)cap, obj, 1) > 0;
}

int testca_issue(testca_cert *out, const testca_cert *issuer, const testca_opts *o)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    X509_NAME *name = NULL;
    X509V3_CTX ctx;
    char eku[256], oid[128];
    int64_t now = (int64_t)time(NULL);
    int64_t nb = o->not_before != 0 ? o->not_before : now - 300;
    int64_t na = o->not_after != 0 ? o->not_after : now + 365 * 86400;

    memset(out, 0, sizeof(*out));
    if (o->key != NULL) {
        CUSTOS_ENSURE(EVP_PKEY_up_ref(o->key) == 1, CUSTOS_ERR_INTERNAL, NULL, "up_ref");
        key = o->key;
    } else {
        CUSTOS_GUARD(
            custos_key_generate(&key, o->alg != CUSTOS_ALG_NONE ? o->alg : CUSTOS_ALG_ECDSA_P256));
    }
    x = X509_new();
    name = X509_NAME_new();
    CUSTOS_ENSURE(x != NULL && name != NULL, CUSTOS_ERR_NOMEM, NULL, "oom");
    CUSTOS_ENSURE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                             (const unsigned char *)o->cn, -1, -1, 0) == 1 &&
                      (o->ou == NULL ||
                       X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                                  (const unsigned char *)o->ou, -1, -1, 0) == 1),
                  CUSTOS_ERR_INTERNAL, NULL, "name");
    CUSTOS_ENSURE(X509_set_version(x, 2) == 1 && set_serial(x) &&
                      X509_set_subject_name(x, name) == 1 &&
                      X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert)
                                                             : name) == 1 &&
                      X509_time_adj_ex(X509_getm_notBefore(x), 0, (long)nb, &(time_t){0}) != NULL &&
                      X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)na, &(time_t){0}) != NULL &&
                      X509_set_pubkey(x, key) == 1,
                  CUSTOS_ERR_INTERNAL, NULL, "set fields");
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer->cert : x, x, NULL, NULL, 0);
    CUSTOS_ENSURE(
        add_ext(x, &ctx, NID_basic_constraints,
                o->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
            add_ext(x, &ctx, NID_key_usage,
                    o->is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") &&
            add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
            add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"),
        CUSTOS_ERR_INTERNAL, NULL, "extensions");
    if (o->eku_nid != 0) {
        CUSTOS_ENSURE(oid_of(eku, sizeof(eku), o->eku_nid), CUSTOS_ERR_ARG, NULL, "eku");
        if (o->eku_nid2 != 0) {
            CUSTOS_ENSURE(oid_of(oid, sizeof(oid), o->eku_nid2), CUSTOS_ERR_ARG, NULL, "eku2");
            CUSTOS_ENSURE(strlen(eku) + strlen(oid) + 2 < sizeof(eku), CUSTOS_ERR_ARG, NULL, "eku");
            memcpy(eku + strlen(eku), ",", 2);
            memcpy(eku + strlen(eku), oid, strlen(oid) + 1);
        }
        CUSTOS_ENSURE(add_ext(x, &ctx, NID_ext_key_usage, eku), CUSTOS_ERR_INTERNAL, NULL, "eku");
    }
    if (o->policy_nid != 0) {
        CUSTOS_ENSURE(oid_of(oid, sizeof(oid), o->policy_nid) &&
                          add_ext(x, &ctx, NID_certificate_policies, oid),
                      CUSTOS_ERR_INTERNAL, NULL, "policy");
    }
    CUSTOS_ENSURE(X509_sign(x, issuer != NULL ? issuer->key : key,
                            custos_key_md(issuer != NULL ? issuer->key : key)) > 0,
                  CUSTOS_ERR_INTERNAL, NULL, "sign");
    out->cert = x;
    out->key = key;
    x = NULL;
    key = NULL;
    ret = CUSTOS_OK;
out:
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return ret;
}

int testca_root(testca_cert *out, const char *cn)
{
    testca_opts o = {0};

    o.cn = cn;
    o.is_ca = 1;
    return testca_issue(out, NULL, &o);
}

int testca_intermediate(testca_cert *out, const testca_cert *issuer, const char *cn)
{
    testca_opts o = {0};

    o.cn = cn;
    o.is_ca = 1;
    return testca_issue(out, issuer, &o);
}

int testca_leaf(testca_cert *out, const testca_cert *issuer, const char *cn, int eku_nid)
{
    testca_opts o = {0};

    o.cn = cn;
    o.eku_nid = eku_nid;
    return testca_issue(out, issuer, &o);
}

void testca_cert_free(testca_cert *c)
{
    if (c == NULL)
        return;
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

X509_STORE *testca_store(const testca_cert *root)
{
    X509_STORE *s = X509_STORE_new();

    if (s != NULL && X509_STORE_add_cert(s, root->cert) != 1) {
        X509_STORE_free(s);
        s = NULL;
    }
    return s;
}

STACK_OF(X509) *testca_stack(const testca_cert *a, const testca_cert *b, const testca_cert *c)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    const testca_cert *all[3] = {a, b, c};

    for (size_t i = 0; s != NULL && i < 3; i++) {
        if (all[i] == NULL || all[i]->cert == NULL)
            continue;
        if (X509_up_ref(all[i]->cert) != 1 || sk_X509_push(s, all[i]->cert) <= 0) {
            sk_X509_pop_free(s, X509_free);
            s = NULL;
        }
    }
    return s;
}

int testca_tmpdir(char *out, size_t cap)
{
    const char tmpl[] = "/tmp/custos-test-XXXXXX";

    if (cap < sizeof(tmpl))
        return -1;
    memcpy(out, tmpl, sizeof(tmpl));
    return mkdtemp(out) != NULL ? 0 : -1;
}

int testca_rmtree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char child[4096];
    int rc = 0;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -1;
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child) ||
            testca_rmtree(child) != 0)
            rc = -1;
    }
    (void)closedir(d);
    if (rmdir(path) != 0)
        rc = -1;
    return rc;
}

int testca_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL)
        return -1;
    ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}
