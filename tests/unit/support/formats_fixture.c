/* A PKI and valid documents for the format tests (see formats_fixture.h). */
#include "support/formats_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int issue(testca_cert *out, const testca_cert *issuer, const char *cn, int is_ca, int eku,
                 int64_t nb, int64_t na)
{
    testca_opts o = {0};

    o.cn = cn;
    o.is_ca = is_ca;
    o.eku_nid = eku;
    o.not_before = nb;
    o.not_after = na;
    return testca_issue(out, issuer, &o);
}

int fx_pki_init(fx_pki *p, int64_t boot_not_after)
{
    int64_t nb, na;

    memset(p, 0, sizeof(*p));
    p->now = (int64_t)time(NULL);
    nb = p->now - 3600;
    na = p->now + 2 * 365 * 86400;
    if (boot_not_after == 0)
        boot_not_after = p->now + 30 * 86400;
    if (issue(&p->root, NULL, "Test Root", 1, 0, nb, na) != 0 ||
        issue(&p->pkg_signer, &p->root, "Package Signing", 0,
              custos_oid_nid(CUSTOS_OID_EKU_PACKAGE_SIGNING), nb, na) != 0 ||
        issue(&p->boot_ca, &p->root, "Bootstrap CA", 1, 0, nb, na) != 0 ||
        issue(&p->boot, &p->boot_ca, "Bootstrap", 0, custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP), nb,
              boot_not_after) != 0 ||
        issue(&p->dev_ca, &p->root, "Device CA", 1, 0, nb, na) != 0 ||
        issue(&p->dev, &p->dev_ca, "SN-0001", 0, NID_client_auth, nb, na) != 0 ||
        issue(&p->prof_signer, &p->root, "Profile Signing", 0,
              custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING), nb, na) != 0)
        goto fail;
    p->store = testca_store(&p->root);
    p->root_chain = testca_stack(&p->root, NULL, NULL);
    p->boot_chain = testca_stack(&p->boot_ca, &p->root, NULL);
    p->dev_chain = testca_stack(&p->dev_ca, &p->root, NULL);
    if (p->store == NULL || p->root_chain == NULL || p->boot_chain == NULL || p->dev_chain == NULL)
        goto fail;
    return 0;
fail:
    fx_pki_free(p);
    return -1;
}

void fx_pki_free(fx_pki *p)
{
    testca_cert_free(&p->root);
    testca_cert_free(&p->pkg_signer);
    testca_cert_free(&p->boot_ca);
    testca_cert_free(&p->boot);
    testca_cert_free(&p->dev_ca);
    testca_cert_free(&p->dev);
    testca_cert_free(&p->prof_signer);
    X509_STORE_free(p->store);
    sk_X509_pop_free(p->root_chain, X509_free);
    sk_X509_pop_free(p->boot_chain, X509_free);
    sk_X509_pop_free(p->dev_chain, X509_free);
    memset(p, 0, sizeof(*p));
}

custos_signer fx_signer(const testca_cert *leaf, STACK_OF(X509) *chain)
{
    custos_signer s;

    s.cert = leaf->cert;
    s.key = leaf->key;
    s.chain = chain;
    return s;
}

custos_trust fx_trust(const fx_pki *p)
{
    custos_trust t = {0};

    t.store = p->store;
    t.untrusted = NULL;
    t.now = p->now;
    t.signer_eku_nid = 0;
    return t;
}

static void fill_component(custos_component_def *c, const char *name, size_t n_templates)
{
    static const char *const names[] = {"tls", "sign", "t3", "t4", "t5", "t6", "t7", "t8"};

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    for (size_t i = 0; i < n_templates && i < CUSTOS_MAX_TEMPLATES; i++) {
        custos_key_template *t = &c->templates[i];
        snprintf(t->name, sizeof(t->name), "%s", names[i]);
        t->alg = CUSTOS_ALG_ECDSA_P256;
        t->usage = i == 1 ? CUSTOS_USAGE_SIGNING : CUSTOS_USAGE_TLS_CLIENT;
        t->valid_days = 365;
        snprintf(t->subject, sizeof(t->subject), "CN={serial},OU={component},O={system}");
        c->n_templates++;
    }
}

int fx_package_doc(custos_package_doc **out, const fx_pki *p)
{
    custos_package_doc *d = custos_package_doc_new();
    int64_t na = 0;

    *out = NULL;
    if (d == NULL)
        return -1;
    snprintf(d->package_id, sizeof(d->package_id), "aaaaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(d->system, sizeof(d->system), "pump-x2");
    d->created = p->now - 60;
    if (custos_asn1_time_to_unix(&na, X509_get0_notAfter(p->boot.cert)) != 0)
        goto fail;
    d->expires = na;
    fill_component(&d->components[0], "controller", 2);
    fill_component(&d->components[1], "dock", 1);
    d->n_components = 2;
    snprintf(d->services.cloud_url, sizeof(d->services.cloud_url), "https://custos.example");
    snprintf(d->services.gateways[0], sizeof(d->services.gateways[0]), "https://gw.example");
    d->services.n_gateways = 1;
    d->root_of_trust = testca_stack(&p->root, NULL, NULL);
    d->bootstrap_chain = testca_stack(&p->boot_ca, NULL, NULL);
    if (d->root_of_trust == NULL || d->bootstrap_chain == NULL || X509_up_ref(p->boot.cert) != 1)
        goto fail;
    d->bootstrap_cert = p->boot.cert;
    if (custos_package_key_encrypt(&d->bootstrap_key_enc, &d->bootstrap_key_enc_len, p->boot.key,
                                   FX_PASSPHRASE, strlen(FX_PASSPHRASE)) != 0)
        goto fail;
    *out = d;
    return 0;
fail:
    custos_package_doc_free(d);
    return -1;
}

int fx_request_doc(custos_request_doc **out, custos_request_kind kind, size_t n_keys)
{
    static const char *const names[] = {"tls", "sign", "t3", "t4", "t5", "t6", "t7", "t8"};
    custos_request_doc *d = custos_request_doc_new();
    EVP_PKEY *key = NULL;

    *out = NULL;
    if (d == NULL)
        return -1;
    snprintf(d->request_id, sizeof(d->request_id), "bbbbbbbbbbbbbbbbbbbbbbbbba");
    d->kind = kind;
    snprintf(d->system, sizeof(d->system), "pump-x2");
    snprintf(d->component, sizeof(d->component), "controller");
    if (kind == CUSTOS_REQUEST_INITIAL)
        snprintf(d->package_id, sizeof(d->package_id), "aaaaaaaaaaaaaaaaaaaaaaaaaa");
    else
        snprintf(d->device_id, sizeof(d->device_id), "ccccccccccccccccccccccccca");
    snprintf(d->serial, sizeof(d->serial), "SN-0001");
    snprintf(d->hardware_id, sizeof(d->hardware_id), "hw:00:11:22");
    snprintf(d->model, sizeof(d->model), "X2 Pump");
    snprintf(d->firmware, sizeof(d->firmware), "1.2.3");
    snprintf(d->manufacturer[0].key, sizeof(d->manufacturer[0].key), "plant");
    snprintf(d->manufacturer[0].value, sizeof(d->manufacturer[0].value), "Lyon");
    d->n_manufacturer = 1;
    snprintf(d->metadata[0].key, sizeof(d->metadata[0].key), "location");
    snprintf(d->metadata[0].value, sizeof(d->metadata[0].value), "ward 3");
    d->n_metadata = 1;
    for (size_t i = 0; i < n_keys && i < CUSTOS_MAX_TEMPLATES; i++) {
        snprintf(d->keys[i].template_name, sizeof(d->keys[i].template_name), "%s", names[i]);
        if (custos_key_generate(&key, CUSTOS_ALG_ECDSA_P256) != 0 ||
            custos_csr_build(&d->keys[i].csr, key, d->system, d->component, d->serial, names[i]) !=
                0)
            goto fail;
        EVP_PKEY_free(key);
        key = NULL;
        d->n_keys++;
    }
    memset(d->nonce, 0x5a, sizeof(d->nonce));
    d->time = (int64_t)time(NULL);
    *out = d;
    return 0;
fail:
    EVP_PKEY_free(key);
    custos_request_doc_free(d);
    return -1;
}

int fx_profile_doc(custos_profile_doc **out, const fx_pki *p, size_t n_certs)
{
    static const char *const names[] = {"tls", "sign", "t3", "t4", "t5", "t6", "t7", "t8"};
    custos_profile_doc *d = custos_profile_doc_new();
    testca_cert c = {0};

    *out = NULL;
    if (d == NULL)
        return -1;
    snprintf(d->device_id, sizeof(d->device_id), "ccccccccccccccccccccccccca");
    snprintf(d->request_id, sizeof(d->request_id), "bbbbbbbbbbbbbbbbbbbbbbbbba");
    memset(d->request_sha256, 0xab, sizeof(d->request_sha256));
    snprintf(d->system, sizeof(d->system), "pump-x2");
    snprintf(d->component, sizeof(d->component), "controller");
    snprintf(d->serial, sizeof(d->serial), "SN-0001");
    for (size_t i = 0; i < n_certs && i < CUSTOS_MAX_TEMPLATES; i++) {
        if (issue(&c, &p->dev_ca, "SN-0001", 0, NID_client_auth, p->now - 300,
                  p->now + 365 * 86400) != 0)
            goto fail;
        snprintf(d->certs[i].template_name, sizeof(d->certs[i].template_name), "%s", names[i]);
        d->certs[i].cert = c.cert;
        c.cert = NULL;
        testca_cert_free(&c);
        d->n_certs++;
    }
    d->chain = testca_stack(&p->dev_ca, NULL, NULL);
    d->root_of_trust = testca_stack(&p->root, NULL, NULL);
    if (d->chain == NULL || d->root_of_trust == NULL)
        goto fail;
    snprintf(d->services.cloud_url, sizeof(d->services.cloud_url), "https://custos.example");
    d->renewal_window_days = 30;
    d->issued = p->now;
    *out = d;
    return 0;
fail:
    testca_cert_free(&c);
    custos_profile_doc_free(d);
    return -1;
}

int fx_sign_raw(uint8_t **out, size_t *out_len, custos_oid ct, const char *content,
                custos_signer signer)
{
    return custos_cms_sign(out, out_len, ct, (const uint8_t *)content, strlen(content), &signer);
}

char *fx_content(const uint8_t *der, size_t len)
{
    uint8_t *c = NULL;
    size_t n = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct;
    char *s = NULL;

    if (custos_cms_peek(&c, &n, &certs, &ct, der, len, 1u << 20, "test") != 0)
        return NULL;
    s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, c, n);
        s[n] = '\0';
    }
    free(c);
    sk_X509_pop_free(certs, X509_free);
    return s;
}

char *fx_replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    size_t a, b, c;
    char *r;

    if (at == NULL)
        return NULL;
    a = (size_t)(at - s);
    b = strlen(to);
    c = strlen(at + strlen(from));
    r = malloc(a + b + c + 1);
    if (r == NULL)
        return NULL;
    memcpy(r, s, a);
    memcpy(r + a, to, b);
    memcpy(r + a + b, at + strlen(from), c + 1);
    return r;
}

size_t fx_count_accepted_flips(const uint8_t *der, size_t len, fx_decode_fn decode, void *ctx)
{
    uint8_t *copy = malloc(len);
    size_t accepted = 0;

    if (copy == NULL)
        return SIZE_MAX;
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, der, len);
        copy[i] ^= 0x41;
        if (decode(copy, len, ctx) == 0)
            accepted++;
    }
    free(copy);
    return accepted;
}

int fx_find_cert(size_t *off, size_t *len, const uint8_t *der, size_t der_len, const X509 *x)
{
    unsigned char *c = NULL;
    int n = i2d_X509(x, &c);
    int rc = -1;

    for (size_t i = 0; n > 0 && i + (size_t)n <= der_len; i++) {
        if (memcmp(der + i, c, (size_t)n) == 0) {
            *off = i;
            *len = (size_t)n;
            rc = 0;
            break;
        }
    }
    OPENSSL_free(c);
    return rc;
}

void fx_write_corpus(const char *kind, const char *name, const uint8_t *data, size_t len)
{
    const char *dir = getenv("CUSTOS_WRITE_CORPUS");
    char path[1024];

    if (dir == NULL || dir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, kind);
    (void)mkdir(dir, 0755);
    (void)mkdir(path, 0755);
    if (snprintf(path, sizeof(path), "%s/%s/%s", dir, kind, name) < (int)sizeof(path))
        (void)testca_write_file(path, data, len);
}

static int write_identity_seed(const fx_pki *p)
{
    custos_identity_doc *d = custos_identity_doc_new();
    uint8_t secret[32];
    uint8_t *der = NULL;
    size_t len = 0;
    int rc = -1;

    memset(secret, FX_FUZZ_SECRET_BYTE, sizeof(secret));
    if (d == NULL)
        return -1;
    snprintf(d->system, sizeof(d->system), "pump-x2");
    snprintf(d->component, sizeof(d->component), "controller");
    snprintf(d->serial, sizeof(d->serial), "SN-0001");
    snprintf(d->services.cloud_url, sizeof(d->services.cloud_url), "https://custos.example");
    d->root_of_trust = testca_stack(&p->root, NULL, NULL);
    snprintf(d->gens[0].request_id, sizeof(d->gens[0].request_id), "bbbbbbbbbbbbbbbbbbbbbbbbba");
    snprintf(d->gens[0].keys[0].template_name, sizeof(d->gens[0].keys[0].template_name), "tls");
    d->gens[0].n_keys = 1;
    d->n_gens = 1;
    if (d->root_of_trust == NULL ||
        custos_key_generate(&d->gens[0].keys[0].key, CUSTOS_ALG_ECDSA_P256) != 0 ||
        custos_identity_encode(&der, &len, d, secret, sizeof(secret), NULL) != 0)
        goto out;
    fx_write_corpus("identity", "locked.mcpi", der, len);
    free(der);
    der = NULL;
    d->mock = 1;
    if (custos_identity_encode(&der, &len, d, NULL, 0, NULL) != 0)
        goto out;
    fx_write_corpus("identity", "mock.mcpi", der, len);
    rc = 0;
out:
    free(der);
    custos_identity_doc_free(d);
    return rc;
}

int fx_write_all_corpus(const fx_pki *p)
{
    const char *dir = getenv("CUSTOS_WRITE_CORPUS");
    custos_package_doc *pkg = NULL;
    custos_request_doc *req = NULL, *rep = NULL;
    custos_profile_doc *prof = NULL;
    custos_signer sg;
    uint8_t *der = NULL;
    size_t len = 0;
    char path[1024], now[32];
    int rc = -1;

    if (dir == NULL || dir[0] == '\0')
        return 0;
    if (fx_package_doc(&pkg, p) != 0 || fx_request_doc(&req, CUSTOS_REQUEST_INITIAL, 2) != 0 ||
        fx_request_doc(&rep, CUSTOS_REQUEST_REPROVISION, 1) != 0 ||
        fx_profile_doc(&prof, p, 2) != 0)
        goto out;
    sg = fx_signer(&p->pkg_signer, p->root_chain);
    if (custos_package_encode(&der, &len, pkg, &sg) != 0)
        goto out;
    fx_write_corpus("package", "valid.mcpp", der, len);
    free(der);
    der = NULL;
    sg = fx_signer(&p->boot, p->boot_chain);
    if (custos_request_encode(&der, &len, req, &sg) != 0)
        goto out;
    fx_write_corpus("request", "initial.mcpr", der, len);
    free(der);
    der = NULL;
    sg = fx_signer(&p->dev, p->dev_chain);
    if (custos_request_encode(&der, &len, rep, &sg) != 0)
        goto out;
    fx_write_corpus("request", "reprovision.mcpr", der, len);
    free(der);
    der = NULL;
    sg = fx_signer(&p->prof_signer, p->root_chain);
    if (custos_profile_encode(&der, &len, prof, &sg) != 0)
        goto out;
    fx_write_corpus("profile", "valid.mccp", der, len);
    free(der);
    der = NULL;
    if (write_identity_seed(p) != 0 || custos_x509_to_der(&der, &len, p->root.cert) != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/trust-root.der", dir);
    if (testca_write_file(path, der, len) != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/trust-now.txt", dir);
    snprintf(now, sizeof(now), "%lld\n", (long long)p->now);
    if (testca_write_file(path, now, strlen(now)) != 0)
        goto out;
    rc = 0;
out:
    free(der);
    custos_package_doc_free(pkg);
    custos_request_doc_free(req);
    custos_request_doc_free(rep);
    custos_profile_doc_free(prof);
    return rc;
}
