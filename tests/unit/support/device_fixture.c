/* Device-library fixture (see device_fixture.h). */
#include "support/device_fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "internal/format.h"
#include "internal/util.h"

static int port_new(dfx *f)
{
    custos_port_posix_options o = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    snprintf(f->device_dir, sizeof(f->device_dir), "%s/device", f->dir);
    snprintf(f->secret_file, sizeof(f->secret_file), "%s/secret/device-secret", f->dir);
    o.device_dir = f->device_dir;
    o.secret_file = f->secret_file;
    if (custos_port_posix_new(&f->posix, &o) != 0)
        return -1;
    f->port = custos_port_posix_get(f->posix);
    return 0;
}

int dfx_init(dfx *f)
{
    memset(f, 0, sizeof(*f));
    if (fx_pki_init(&f->pki, 0) != 0)
        return -1;
    if (testca_tmpdir(f->dir, sizeof(f->dir)) != 0 || port_new(f) != 0) {
        dfx_free(f);
        return -1;
    }
    return 0;
}

void dfx_free(dfx *f)
{
    fx_pki_free(&f->pki);
    dfx_free_peer(f);
}

int dfx_init_peer(dfx *peer, const dfx *f)
{
    memset(peer, 0, sizeof(*peer));
    peer->pki = f->pki; /* shared, not owned */
    if (testca_tmpdir(peer->dir, sizeof(peer->dir)) != 0 || port_new(peer) != 0) {
        dfx_free_peer(peer);
        return -1;
    }
    return 0;
}

void dfx_free_peer(dfx *peer)
{
    custos_port_posix_free(peer->posix);
    if (peer->dir[0] != '\0')
        (void)testca_rmtree(peer->dir);
    memset(peer, 0, sizeof(*peer));
}

static void fill_component(custos_component_def *c, const char *name, const custos_alg *algs,
                           size_t n)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    for (size_t i = 0; i < n && i < CUSTOS_MAX_TEMPLATES; i++) {
        custos_key_template *t = &c->templates[i];
        snprintf(t->name, sizeof(t->name), "t%zu", i);
        t->alg = algs[i];
        t->usage = i == 0 ? CUSTOS_USAGE_TLS_CLIENT : CUSTOS_USAGE_SIGNING;
        t->valid_days = 365;
        snprintf(t->subject, sizeof(t->subject), "CN={serial},OU={component},O={system}");
        c->n_templates++;
    }
}

int dfx_package(uint8_t **out, size_t *out_len, const dfx *f, const char *component,
                const custos_alg *algs, size_t n)
{
    static const custos_alg dock_alg = CUSTOS_ALG_ECDSA_P256;
    custos_package_doc *d = custos_package_doc_new();
    int64_t na = 0;
    int rc = -1;

    *out = NULL;
    if (d == NULL || custos_id_new(d->package_id, NULL) != 0)
        goto done;
    snprintf(d->system, sizeof(d->system), "pump-x2");
    d->created = f->pki.now - 60;
    if (custos_asn1_time_to_unix(&na, X509_get0_notAfter(f->pki.boot.cert)) != 0)
        goto done;
    d->expires = na;
    fill_component(&d->components[0], component, algs, n);
    fill_component(&d->components[1], "dock", &dock_alg, 1);
    d->n_components = 2;
    snprintf(d->services.cloud_url, sizeof(d->services.cloud_url), "https://custos.example");
    d->root_of_trust = testca_stack(&f->pki.root, NULL, NULL);
    d->bootstrap_chain = testca_stack(&f->pki.boot_ca, NULL, NULL);
    if (d->root_of_trust == NULL || d->bootstrap_chain == NULL ||
        X509_up_ref(f->pki.boot.cert) != 1)
        goto done;
    d->bootstrap_cert = f->pki.boot.cert;
    if (custos_package_key_encrypt(&d->bootstrap_key_enc, &d->bootstrap_key_enc_len,
                                   f->pki.boot.key, FX_PASSPHRASE, strlen(FX_PASSPHRASE)) != 0)
        goto done;
    custos_signer s = fx_signer(&f->pki.pkg_signer, f->pki.root_chain);
    if (custos_package_encode(out, out_len, d, &s) != 0)
        goto done;
    rc = 0;
done:
    custos_package_doc_free(d);
    return rc;
}

int dfx_package_open(custos_package **out, const dfx *f, const char *component,
                     const custos_alg *algs, size_t n)
{
    uint8_t *der = NULL;
    size_t len = 0;
    custos_package_options o = CUSTOS_PACKAGE_OPTIONS_INIT;
    int rc = -1;

    *out = NULL;
    o.port = f->port;
    if (dfx_package(&der, &len, f, component, algs, n) == 0 &&
        custos_package_open(out, der, len, FX_PASSPHRASE, strlen(FX_PASSPHRASE), &o) == 0)
        rc = 0;
    free(der);
    return rc;
}

static int certify(X509 **out, const testca_cert *ca, EVP_PKEY *pub, const char *cn, int eku,
                   const char *ou, int policy)
{
    testca_cert c = {0};
    testca_opts o = {0};
    o.cn = cn;
    o.ou = ou;
    o.key = pub;
    o.eku_nid = eku;
    o.policy_nid = policy;
    if (testca_issue(&c, ca, &o) != 0)
        return -1;
    *out = c.cert;
    c.cert = NULL;
    testca_cert_free(&c);
    return 0;
}

int dfx_profile(uint8_t **out, size_t *out_len, const dfx *f, const uint8_t *req, size_t req_len,
                const dfx_answer *a)
{
    dfx_answer none = {0};
    custos_request_doc *r = NULL;
    custos_profile_doc *p = custos_profile_doc_new();
    EVP_PKEY *other = NULL;
    custos_trust t = fx_trust(&f->pki);
    int rc = -1;

    *out = NULL;
    if (a == NULL)
        a = &none;
    if (p == NULL || custos_request_decode(&r, req, req_len, &t) != 0)
        goto done;
    if (a->device_id != NULL)
        snprintf(p->device_id, sizeof(p->device_id), "%s", a->device_id);
    else if (r->device_id[0] != '\0')
        memcpy(p->device_id, r->device_id, sizeof(p->device_id));
    else if (custos_id_new(p->device_id, NULL) != 0)
        goto done;
    snprintf(p->request_id, sizeof(p->request_id), "%s",
             a->request_id != NULL ? a->request_id : r->request_id);
    memcpy(p->request_sha256, r->digest, 32);
    memcpy(p->system, r->system, sizeof(p->system));
    memcpy(p->component, r->component, sizeof(p->component));
    snprintf(p->serial, sizeof(p->serial), "%s", a->serial != NULL ? a->serial : r->serial);
    p->mock = a->mock;
    for (size_t i = 0; i < r->n_keys; i++) {
        EVP_PKEY *pub = X509_REQ_get0_pubkey(r->keys[i].csr);
        if (i == 0 && a->wrong_key) {
            if (custos_key_generate(&other, custos_key_alg(pub)) != 0)
                goto done;
            pub = other;
        }
        memcpy(p->certs[i].template_name, r->keys[i].template_name,
               sizeof(p->certs[i].template_name));
        if (certify(&p->certs[i].cert, &f->pki.dev_ca, pub, p->serial, i == 0 ? NID_client_auth : 0,
                    NULL, 0) != 0)
            goto done;
        p->n_certs = i + 1;
    }
    p->chain = testca_stack(&f->pki.dev_ca, NULL, NULL);
    p->root_of_trust = testca_stack(&f->pki.root, NULL, NULL);
    if (p->chain == NULL || p->root_of_trust == NULL)
        goto done;
    snprintf(p->services.cloud_url, sizeof(p->services.cloud_url), "https://custos.example");
    p->renewal_window_days = 30;
    p->issued = f->pki.now;
    custos_signer s = fx_signer(&f->pki.prof_signer, f->pki.root_chain);
    if (custos_profile_encode(out, out_len, p, &s) != 0)
        goto done;
    rc = 0;
done:
    EVP_PKEY_free(other);
    custos_request_doc_free(r);
    custos_profile_doc_free(p);
    return rc;
}

int dfx_mock_files(const dfx *f, const char *serial)
{
    testca_cert root = {0}, ca = {0}, signer = {0};
    custos_identity_doc *id = custos_identity_doc_new();
    custos_profile_doc *p = custos_profile_doc_new();
    uint8_t *idb = NULL, *pb = NULL;
    size_t idl = 0, pl = 0;
    int rc = -1;

    if (id == NULL || p == NULL || testca_root(&root, "Mock Root") != 0 ||
        testca_intermediate(&ca, &root, "Mock Device CA") != 0 ||
        testca_leaf(&signer, &root, "Mock Profile Signing",
                    custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING)) != 0)
        goto done;
    snprintf(id->system, sizeof(id->system), "pump-x2");
    snprintf(id->component, sizeof(id->component), "controller");
    snprintf(id->serial, sizeof(id->serial), "%s", serial);
    id->mock = 1;
    id->root_of_trust = testca_stack(&root, NULL, NULL);
    if (id->root_of_trust == NULL || custos_id_new(id->gens[0].request_id, NULL) != 0 ||
        custos_key_generate(&id->gens[0].keys[0].key, CUSTOS_ALG_ECDSA_P256) != 0)
        goto done;
    snprintf(id->gens[0].keys[0].template_name, sizeof(id->gens[0].keys[0].template_name), "t0");
    id->gens[0].n_keys = 1;
    id->n_gens = 1;

    if (custos_id_new(p->device_id, NULL) != 0)
        goto done;
    memcpy(p->request_id, id->gens[0].request_id, sizeof(p->request_id));
    memcpy(p->system, id->system, sizeof(p->system));
    memcpy(p->component, id->component, sizeof(p->component));
    memcpy(p->serial, id->serial, sizeof(p->serial));
    p->mock = 1;
    snprintf(p->certs[0].template_name, sizeof(p->certs[0].template_name), "t0");
    if (certify(&p->certs[0].cert, &ca, id->gens[0].keys[0].key, serial, NID_client_auth, "mock",
                0) != 0)
        goto done;
    p->n_certs = 1;
    p->chain = testca_stack(&ca, NULL, NULL);
    p->root_of_trust = testca_stack(&root, NULL, NULL);
    p->issued = f->pki.now;
    STACK_OF(X509) *chain = testca_stack(&root, NULL, NULL);
    custos_signer s = fx_signer(&signer, chain);
    int enc = custos_profile_encode(&pb, &pl, p, &s);
    sk_X509_pop_free(chain, X509_free);
    if (enc != 0 || custos_identity_encode(&idb, &idl, id, NULL, 0, NULL) != 0)
        goto done;
    if (f->port->storage_write(CUSTOS_OBJ_IDENTITY, idb, idl, f->port->ctx) != 0 ||
        f->port->storage_write(CUSTOS_OBJ_PROFILE, pb, pl, f->port->ctx) != 0)
        goto done;
    rc = 0;
done:
    free(idb);
    free(pb);
    custos_identity_doc_free(id);
    custos_profile_doc_free(p);
    testca_cert_free(&root);
    testca_cert_free(&ca);
    testca_cert_free(&signer);
    return rc;
}

uint8_t *dfx_read(const char *path, size_t *out_len)
{
    uint8_t *buf = NULL;
    *out_len = 0;
    if (custos_file_read(&buf, out_len, path, 1024u * 1024u) != 0) {
        custos_error_clear();
        return NULL;
    }
    return buf;
}

int dfx_exists(const dfx *f, const char *name)
{
    char path[600];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", f->device_dir, name);
    uint8_t *b = dfx_read(path, &len);
    free(b);
    return b != NULL;
}

int dfx_snapshot_take(dfx_snapshot *s, const dfx *f)
{
    DIR *d = opendir(f->device_dir);
    struct dirent *e;
    char path[600];

    memset(s, 0, sizeof(*s));
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (s->n == 8) {
            closedir(d);
            return -1;
        }
        snprintf(s->names[s->n], sizeof(s->names[s->n]), "%s", e->d_name);
        snprintf(path, sizeof(path), "%s/%s", f->device_dir, e->d_name);
        s->data[s->n] = dfx_read(path, &s->len[s->n]);
        s->n++;
    }
    closedir(d);
    return 0;
}

int dfx_snapshot_same(const dfx_snapshot *s, const dfx *f)
{
    dfx_snapshot now;
    int same = 0;
    if (dfx_snapshot_take(&now, f) != 0)
        return 0;
    if (now.n != s->n)
        goto done;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < now.n && strcmp(now.names[j], s->names[i]) != 0)
            j++;
        if (j == now.n || now.len[j] != s->len[i] ||
            (s->len[i] > 0 && memcmp(now.data[j], s->data[i], s->len[i]) != 0))
            goto done;
    }
    same = 1;
done:
    dfx_snapshot_free(&now);
    return same;
}

void dfx_snapshot_free(dfx_snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->data[i]);
    memset(s, 0, sizeof(*s));
}
