/* Provisioning requests: import (verify fully, store pending), approve
 * (issue + lint + certified profile, one transaction), reject, complete,
 * export, expire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "engine_int.h"

#define SERIAL_RETRIES 3

static custos_err tx_begin(custos_engine *e, int *in_tx)
{
    custos_err ret = e->st->ops->begin(e->st->ctx);
    *in_tx = ret == CUSTOS_OK;
    return ret;
}

static void tx_end(custos_engine *e, int *in_tx)
{
    if (*in_tx)
        e->st->ops->rollback(e->st->ctx);
    *in_tx = 0;
}

static custos_err tx_commit(custos_engine *e, int *in_tx)
{
    custos_err ret = e->st->ops->commit(e->st->ctx);
    if (ret == CUSTOS_OK)
        *in_tx = 0;
    return ret;
}

/* State change + its audit entry; inside the caller's transaction. */
static custos_err transition(custos_engine *e, const char *id, custos_state from, custos_state to,
                             const char *reason, const custos_actor *actor, const char *action)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *detail = json_pack("{s:s, s:s, s:s}", "from", custos_state_name(from), "to",
                               custos_state_name(to), "reason", reason != NULL ? reason : "");
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(
        e->st->ops->request_set_state(e->st->ctx, id, from, to, reason, custos_engine_now(e)));
    CUSTOS_GUARD(custos_engine_audit(e, actor, action, id, detail));
    ret = CUSTOS_OK;
out:
    json_decref(detail);
    return ret;
}

/* Verify a request against the engine's trust store, where the bootstrap CA
 * and every system's issuing CA are anchors verified once against the root.
 * custos_request_decode() ties the signer's role to the kind (bootstrap EKU
 * for initial requests only); check_initial()/check_reprovision() then tie
 * the signer to the package or to the device's own certificate. */
static custos_err request_decode(custos_request_doc **out, custos_engine *e, const uint8_t *der,
                                 size_t len, int64_t at)
{
    custos_trust trust = {0};

    memset(&trust, 0, sizeof(trust));
    trust.store = e->trust;
    trust.now = at;
    trust.cache = e->signers;
    return custos_request_decode(out, der, len, &trust);
}

static const custos_request_key *find_key(const custos_request_doc *d, const char *name)
{
    size_t i;
    for (i = 0; i < d->n_keys; i++)
        if (strcmp(d->keys[i].template_name, name) == 0)
            return &d->keys[i];
    return NULL;
}

static custos_err check_templates(const custos_component_def *c, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;
    for (i = 0; i < c->n_templates; i++) {
        const custos_key_template *t = &c->templates[i];
        const custos_request_key *k = find_key(d, t->name);
        custos_alg alg;
        CUSTOS_ENSURE(k != NULL, CUSTOS_ERR_TEMPLATE, t->name,
                      "template %s of component %s: no key in the request", t->name, c->name);
        alg = custos_key_alg(X509_REQ_get0_pubkey(k->csr));
        CUSTOS_ENSURE(alg == t->alg, CUSTOS_ERR_TEMPLATE, t->name,
                      "template %s: expected a %s key, got %s", t->name, custos_alg_name(t->alg),
                      alg != CUSTOS_ALG_NONE ? custos_alg_name(alg) : "an unsupported key");
    }
    CUSTOS_ENSURE(d->n_keys == c->n_templates, CUSTOS_ERR_TEMPLATE, "keys",
                  "component %s has %zu key templates, the request carries %zu keys", c->name,
                  c->n_templates, d->n_keys);
    ret = CUSTOS_OK;
out:
    return ret;
}

static int same_cert(const X509 *a, const uint8_t *der, size_t len)
{
    uint8_t *mine = NULL;
    size_t n = 0;
    int eq = custos_x509_to_der(&mine, &n, a) == CUSTOS_OK && n == len && memcmp(mine, der, n) == 0;
    free(mine);
    return eq;
}

static custos_err check_initial(custos_engine *e, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_package p;
    custos_err r;

    memset(&p, 0, sizeof(p));
    r = e->st->ops->package_get(e->st->ctx, &p, d->package_id);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_UNTRUSTED, "package_id",
                  "unknown package %s", d->package_id);
    CUSTOS_GUARD(r);
    CUSTOS_ENSURE(strcmp(p.system, d->system) == 0, CUSTOS_ERR_UNTRUSTED, "package_id",
                  "package %s belongs to system %s, not %s", d->package_id, p.system, d->system);
    CUSTOS_ENSURE(same_cert(d->signer, p.cert_der, p.cert_len), CUSTOS_ERR_UNTRUSTED, "signer",
                  "the request is not signed by the bootstrap certificate of package %s",
                  d->package_id);
    ret = CUSTOS_OK;
out:
    custos_store_package_clear(&p);
    return ret;
}

static custos_err check_reprovision(custos_engine *e, const custos_request_doc *d,
                                    const engine_system *sys)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cert c;
    custos_store_request prev, latest;
    char serial[41], auth[CUSTOS_MAX_NAME_LEN + 16];
    custos_err r;

    memset(&c, 0, sizeof(c));
    memset(&prev, 0, sizeof(prev));
    memset(&latest, 0, sizeof(latest));
    CUSTOS_GUARD(custos_ca_serial_hex(serial, d->signer));
    r = e->st->ops->cert_get(e->st->ctx, &c, serial);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_UNTRUSTED, "signer",
                  "the signer %s is not a certificate issued to a device", serial);
    CUSTOS_GUARD(r);
    CUSTOS_ENSURE(!c.mock, CUSTOS_ERR_MOCK, "signer", "a mock certificate signed the request");
    snprintf(auth, sizeof(auth), "%s%s", CUSTOS_AUTH_SYSTEM_PREFIX, d->system);
    CUSTOS_ENSURE(strcmp(c.device_id, d->device_id) == 0 && strcmp(c.issuer, auth) == 0 &&
                      same_cert(d->signer, c.der, c.der_len),
                  CUSTOS_ERR_UNTRUSTED, "signer",
                  "the signer is not a certificate of device %s in system %s", d->device_id,
                  d->system);
    CUSTOS_ENSURE(X509_check_issued(sys->ca, d->signer) == X509_V_OK, CUSTOS_ERR_UNTRUSTED,
                  "signer", "the signer was not issued by the CA of system %s", d->system);
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &prev, c.request_id));
    CUSTOS_ENSURE(prev.sum.state == CUSTOS_STATE_CERTIFIED ||
                      prev.sum.state == CUSTOS_STATE_PROVISIONED,
                  CUSTOS_ERR_UNTRUSTED, "signer", "device %s is %s, not certified or provisioned",
                  d->device_id, custos_state_name(prev.sum.state));
    /* Once a newer identity of the device is provisioned, the older one's
     * certificates are superseded: a key rotated away (perhaps because it
     * leaked) must not obtain new certificates. A certified but unconfirmed
     * newer profile does not supersede yet (the device may never have got it). */
    r = e->st->ops->request_latest_provisioned(e->st->ctx, &latest, d->device_id);
    CUSTOS_ENSURE(r == CUSTOS_OK || r == CUSTOS_ERR_NOT_FOUND, r, "store", "store lookup failed");
    custos_error_clear();
    CUSTOS_ENSURE(r == CUSTOS_ERR_NOT_FOUND ||
                      strcmp(latest.sum.request_id, prev.sum.request_id) == 0 ||
                      prev.sum.created > latest.sum.created,
                  CUSTOS_ERR_UNTRUSTED, "signer",
                  "the signer's certificate was superseded: device %s has provisioned a newer "
                  "identity (request %s)",
                  d->device_id, latest.sum.request_id);
    /* A device renews its own identity; it cannot take another one. */
    CUSTOS_ENSURE(strcmp(prev.sum.serial, d->serial) == 0, CUSTOS_ERR_MISMATCH, "device.serial",
                  "device %s has serial %s; a reprovisioning request cannot change it to %s",
                  d->device_id, prev.sum.serial, d->serial);
    CUSTOS_ENSURE(strcmp(prev.sum.system, d->system) == 0 &&
                      strcmp(prev.sum.component, d->component) == 0,
                  CUSTOS_ERR_MISMATCH, "component",
                  "device %s is a %s of system %s; a reprovisioning request cannot make it a %s "
                  "of %s",
                  d->device_id, prev.sum.component, prev.sum.system, d->component, d->system);
    ret = CUSTOS_OK;
out:
    custos_store_request_clear(&latest);
    custos_store_request_clear(&prev);
    custos_store_cert_clear(&c);
    return ret;
}

/* Keep a verified, stored request decoded for its approval (takes ownership). */
static void doc_cache_put(custos_engine *e, custos_request_doc *d)
{
    engine_doc_slot *slot = &e->doc_cache[e->doc_cache_next];
    custos_request_doc_free(slot->doc);
    memcpy(slot->digest, d->digest, sizeof(slot->digest));
    slot->doc = d;
    e->doc_cache_next = (e->doc_cache_next + 1) % ENGINE_DOC_CACHE;
}

/* The decoded request with this digest, removed from the cache, or NULL. */
static custos_request_doc *doc_cache_take(custos_engine *e, const uint8_t digest[32])
{
    for (size_t i = 0; i < ENGINE_DOC_CACHE; i++) {
        engine_doc_slot *slot = &e->doc_cache[i];
        if (slot->doc != NULL && memcmp(slot->digest, digest, sizeof(slot->digest)) == 0) {
            custos_request_doc *d = slot->doc;
            slot->doc = NULL;
            return d;
        }
    }
    return NULL;
}

/* Callers may pass an id that lives inside the summary they want filled. */
static custos_err copy_id(char out[CUSTOS_ID_LEN + 1], const char *id)
{
    if (id == NULL || strlen(id) > CUSTOS_ID_LEN)
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "id", "no request with this id");
    memcpy(out, id, strlen(id) + 1);
    return CUSTOS_OK;
}

static int via_valid(const char *via)
{
    static const char *const ok[] = {"import", "connected", "upload", "gateway"};
    size_t i;
    for (i = 0; via != NULL && i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(via, ok[i]) == 0)
            return 1;
    return 0;
}

/* The request and its "request.import" audit entry, inside the caller's
 * transaction: two imports of one serial at once cannot both miss each other. */
static custos_err write_request(custos_engine *e, custos_store_request *r,
                                const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *detail = NULL;
    size_t dups = 0;
    const custos_request_summary *m = &r->sum;

    CUSTOS_GUARD(
        e->st->ops->request_count_serial(e->st->ctx, &dups, m->system, m->serial, m->device_id));
    r->sum.duplicate_serial = dups > 0;
    detail = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "device_id", m->device_id, "kind",
                       m->kind, "via", m->via, "system", m->system, "component", m->component,
                       "serial", m->serial, "duplicate_serial", m->duplicate_serial);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(e->st->ops->request_insert(e->st->ctx, r));
    CUSTOS_GUARD(custos_engine_audit(e, actor, "request.import", m->request_id, detail));
    ret = CUSTOS_OK;
out:
    json_decref(detail);
    return ret;
}

static custos_err store_request(custos_engine *e, custos_store_request *r,
                                const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;

    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(write_request(e, r, actor));
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    tx_end(e, &in_tx);
    return ret;
}

static custos_err get_by_digest_committed(custos_engine *e, custos_store_request *r,
                                          const uint8_t digest[32])
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->request_get_by_digest(e->st->ctx, r, digest));
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    tx_end(e, &in_tx);
    return ret;
}

/* Everything import does before its write: look the bytes up (*existing: an
 * identical request is stored, in *r), verify them fully (*out_doc) and fill
 * the record to store (*r, pending, r->der borrowed from @p der). */
static custos_err import_prepare(custos_store_request *r, custos_request_doc **out_doc,
                                 int *existing, custos_engine *e, const uint8_t *der, size_t len,
                                 const char *via, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_doc *d = NULL;
    const engine_system *sys;
    const custos_component_def *comp;
    uint8_t digest[32];
    custos_err got;

    *out_doc = NULL;
    *existing = 0;
    CUSTOS_ENSURE(len <= CUSTOS_MAX_REQUEST_SIZE, CUSTOS_ERR_TOO_LARGE, "request",
                  "provisioning request is %zu bytes (max %u)", len, CUSTOS_MAX_REQUEST_SIZE);
    CUSTOS_ENSURE(via_valid(via), CUSTOS_ERR_ARG, "via", "unknown submission channel");
    custos_sha256(digest, der, len);
    got = e->st->ops->request_get_by_digest(e->st->ctx, r, digest);
    if (got == CUSTOS_OK) {
        *existing = 1;
        return CUSTOS_OK;
    }
    CUSTOS_ENSURE(got == CUSTOS_ERR_NOT_FOUND, got, "store", "store lookup failed");
    custos_error_clear();
    custos_store_request_clear(r);
    memcpy(r->digest, digest, sizeof(digest));
    CUSTOS_GUARD(request_decode(&d, e, der, len, now));
    sys = custos_engine_system(e, d->system);
    CUSTOS_ENSURE(sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", d->system);
    comp = custos_system_component(sys->def, d->component);
    CUSTOS_ENSURE(comp != NULL, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                  "system %s has no component %s", d->system, d->component);
    CUSTOS_GUARD(check_templates(comp, d));
    if (d->kind == CUSTOS_REQUEST_INITIAL) {
        CUSTOS_GUARD(check_initial(e, d));
        CUSTOS_GUARD(custos_id_new(r->sum.device_id, NULL));
        snprintf(r->sum.kind, sizeof(r->sum.kind), "initial");
        memcpy(r->package_id, d->package_id, sizeof(r->package_id));
    } else {
        CUSTOS_ENSURE(d->kind == CUSTOS_REQUEST_REPROVISION, CUSTOS_ERR_UNSUPPORTED, "kind",
                      "unknown request kind");
        CUSTOS_GUARD(check_reprovision(e, d, sys));
        memcpy(r->sum.device_id, d->device_id, sizeof(r->sum.device_id));
        snprintf(r->sum.kind, sizeof(r->sum.kind), "reprovision");
    }
    memcpy(r->sum.request_id, d->request_id, sizeof(r->sum.request_id));
    r->sum.state = CUSTOS_STATE_PENDING;
    memcpy(r->sum.system, d->system, sizeof(r->sum.system));
    memcpy(r->sum.component, d->component, sizeof(r->sum.component));
    memcpy(r->sum.serial, d->serial, sizeof(r->sum.serial));
    memcpy(r->sum.model, d->model, sizeof(r->sum.model));
    memcpy(r->sum.firmware, d->firmware, sizeof(r->sum.firmware));
    memcpy(r->hardware_id, d->hardware_id, sizeof(r->hardware_id));
    snprintf(r->sum.via, sizeof(r->sum.via), "%s", via);
    r->sum.created = now;
    r->sum.updated = now;
    r->sum.expires = d->signer_not_after;
    CUSTOS_GUARD(custos_ca_serial_hex(r->signer_serial, d->signer));
    r->der = (uint8_t *)der;
    r->der_len = len;
    *out_doc = d;
    d = NULL;
    ret = CUSTOS_OK;
out:
    custos_request_doc_free(d);
    return ret;
}

/* A write of a new request that failed with @p ret: CUSTOS_ERR_EXISTS when a
 * concurrent import of the same bytes won the race, answered with it (read
 * inside a transaction: it may still be in a batch the store has not
 * committed, and commit() returns once that batch is durable). */
static custos_err import_lost_race(custos_request_summary *out, custos_engine *e,
                                   const custos_store_request *r, custos_err ret)
{
    custos_store_request w;
    if (ret != CUSTOS_ERR_EXISTS)
        return ret;
    memset(&w, 0, sizeof(w));
    ret = get_by_digest_committed(e, &w, r->digest);
    if (ret == CUSTOS_OK)
        *out = w.sum;
    custos_store_request_clear(&w);
    if (ret == CUSTOS_OK)
        return CUSTOS_OK;
    return custos_error_set(CUSTOS_ERR_EXISTS, "request_id",
                            "request id %s is already used by another request", r->sum.request_id);
}

/* ---- approve -------------------------------------------------------------- */

custos_err custos_engine_issue_all(X509 *out_certs[CUSTOS_MAX_TEMPLATES],
                                   const custos_component_def *comp,
                                   EVP_PKEY *const pubs[CUSTOS_MAX_TEMPLATES],
                                   const X509_PUBKEY *const *spkis, const char *system,
                                   const char *serial, X509 *ca, EVP_PKEY *ca_key, int64_t now,
                                   int mock)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;
    for (i = 0; i < CUSTOS_MAX_TEMPLATES; i++)
        out_certs[i] = NULL;
    for (i = 0; i < comp->n_templates; i++) {
        const custos_key_template *t = &comp->templates[i];
        CUSTOS_GUARD(custos_ca_issue(&out_certs[i], pubs[i], spkis != NULL ? spkis[i] : NULL, t,
                                     system, comp->name, serial, ca, ca_key, now, mock));
        CUSTOS_GUARD(custos_lint_certificate_ex(out_certs[i], ca, t, mock, serial));
    }
    ret = CUSTOS_OK;
out:
    if (ret < 0)
        for (i = 0; i < CUSTOS_MAX_TEMPLATES; i++) {
            X509_free(out_certs[i]);
            out_certs[i] = NULL;
        }
    return ret;
}

static custos_err build_profile(uint8_t **out, size_t *out_len, custos_engine *e,
                                const engine_system *sys, const custos_store_request *r,
                                const custos_component_def *comp,
                                X509 *const certs[CUSTOS_MAX_TEMPLATES], int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_profile_doc *p = custos_profile_doc_new();
    custos_signer signer;
    size_t i;

    CUSTOS_ENSURE(p != NULL, CUSTOS_ERR_NOMEM, "profile", "out of memory");
    memcpy(p->device_id, r->sum.device_id, sizeof(p->device_id));
    memcpy(p->request_id, r->sum.request_id, sizeof(p->request_id));
    memcpy(p->request_sha256, r->digest, 32);
    memcpy(p->system, r->sum.system, sizeof(p->system));
    memcpy(p->component, r->sum.component, sizeof(p->component));
    memcpy(p->serial, r->sum.serial, sizeof(p->serial));
    p->mock = 0;
    for (i = 0; i < comp->n_templates; i++) {
        memcpy(p->certs[i].template_name, comp->templates[i].name,
               sizeof(p->certs[i].template_name));
        CUSTOS_ENSURE(X509_up_ref(certs[i]) == 1, CUSTOS_ERR_INTERNAL, "profile", "up_ref");
        p->certs[i].cert = certs[i];
        p->n_certs = i + 1;
    }
    if (p->chain == NULL)
        p->chain = sk_X509_new_null();
    if (p->root_of_trust == NULL)
        p->root_of_trust = sk_X509_new_null();
    CUSTOS_ENSURE(p->chain != NULL && p->root_of_trust != NULL, CUSTOS_ERR_NOMEM, "profile",
                  "out of memory");
    CUSTOS_ENSURE(X509_up_ref(sys->ca) == 1 && sk_X509_push(p->chain, sys->ca) > 0,
                  CUSTOS_ERR_NOMEM, "profile", "out of memory");
    CUSTOS_ENSURE(X509_up_ref(e->root) == 1 && sk_X509_push(p->root_of_trust, e->root) > 0,
                  CUSTOS_ERR_NOMEM, "profile", "out of memory");
    p->services = sys->def->services;
    p->renewal_window_days = sys->def->renewal_window_days;
    p->issued = now;
    signer.cert = e->prof_cert;
    signer.key = e->prof_key;
    signer.chain = NULL;
    CUSTOS_GUARD(custos_profile_encode(out, out_len, p, &signer));
    ret = CUSTOS_OK;
out:
    custos_profile_doc_free(p);
    return ret;
}

/* pending -> approved -> certified with the certificates and the profile,
 * and their audit entries, inside the caller's transaction. */
static custos_err write_issued(custos_engine *e, const custos_store_request *r,
                               const custos_component_def *comp,
                               X509 *const certs[CUSTOS_MAX_TEMPLATES], const uint8_t *profile,
                               size_t profile_len, const custos_actor *actor, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cert c;
    json_t *detail = NULL, *serials = json_array();
    size_t i;

    memset(&c, 0, sizeof(c));
    CUSTOS_ENSURE(serials != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(transition(e, r->sum.request_id, CUSTOS_STATE_PENDING, CUSTOS_STATE_APPROVED, NULL,
                            actor, "request.approve"));
    for (i = 0; i < comp->n_templates; i++) {
        memset(&c, 0, sizeof(c));
        CUSTOS_GUARD(custos_ca_serial_hex(c.serial, certs[i]));
        memcpy(c.request_id, r->sum.request_id, sizeof(c.request_id));
        memcpy(c.device_id, r->sum.device_id, sizeof(c.device_id));
        memcpy(c.template_name, comp->templates[i].name, sizeof(c.template_name));
        snprintf(c.issuer, sizeof(c.issuer), "%s%s", CUSTOS_AUTH_SYSTEM_PREFIX, r->sum.system);
        c.created = now;
        CUSTOS_GUARD(custos_asn1_time_to_unix(&c.not_after, X509_get0_notAfter(certs[i])));
        CUSTOS_GUARD(custos_x509_to_der(&c.der, &c.der_len, certs[i]));
        CUSTOS_GUARD(e->st->ops->cert_insert(e->st->ctx, &c));
        CUSTOS_ENSURE(json_array_append_new(serials, json_string(c.serial)) == 0, CUSTOS_ERR_NOMEM,
                      "audit", "out of memory");
        custos_store_cert_clear(&c);
    }
    CUSTOS_GUARD(e->st->ops->profile_put(e->st->ctx, r->sum.request_id, profile, profile_len, now));
    CUSTOS_GUARD(e->st->ops->request_set_state(e->st->ctx, r->sum.request_id, CUSTOS_STATE_APPROVED,
                                               CUSTOS_STATE_CERTIFIED, NULL, now));
    detail = json_pack("{s:s, s:s, s:s, s:O}", "from", "approved", "to", "certified", "device_id",
                       r->sum.device_id, "serials", serials);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_audit(e, actor, "request.issue", r->sum.request_id, detail));
    ret = CUSTOS_OK;
out:
    custos_store_cert_clear(&c);
    json_decref(detail);
    json_decref(serials);
    return ret;
}

static custos_err store_issued(custos_engine *e, const custos_store_request *r,
                               const custos_component_def *comp,
                               X509 *const certs[CUSTOS_MAX_TEMPLATES], const uint8_t *profile,
                               size_t profile_len, const custos_actor *actor, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(write_issued(e, r, comp, certs, profile, profile_len, actor, now));
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    tx_end(e, &in_tx);
    return ret;
}

static custos_err expire_now(custos_engine *e, const custos_store_request *r,
                             const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(transition(e, r->sum.request_id, r->sum.state, CUSTOS_STATE_EXPIRED,
                            "signer certificate expired", actor, "request.expire"));
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    tx_end(e, &in_tx);
    return ret;
}

/* What approving a verified request issues from: its system, component and
 * the public key of each template. Borrows from @p d. */
typedef struct issue_plan {
    const engine_system *sys;
    const custos_component_def *comp;
    EVP_PKEY *pubs[CUSTOS_MAX_TEMPLATES];
    const X509_PUBKEY *spkis[CUSTOS_MAX_TEMPLATES];
} issue_plan;

static custos_err plan_issue(issue_plan *p, custos_engine *e, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;

    memset(p, 0, sizeof(*p));
    p->sys = custos_engine_system(e, d->system);
    CUSTOS_ENSURE(p->sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", d->system);
    p->comp = custos_system_component(p->sys->def, d->component);
    CUSTOS_ENSURE(p->comp != NULL, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                  "system %s has no component %s", d->system, d->component);
    CUSTOS_GUARD(check_templates(p->comp, d));
    for (i = 0; i < p->comp->n_templates; i++) {
        X509_REQ *csr = find_key(d, p->comp->templates[i].name)->csr;
        p->pubs[i] = X509_REQ_get0_pubkey(csr);
        p->spkis[i] = X509_REQ_get_X509_PUBKEY(csr);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

/* Issue + lint the certificates and sign the certified profile (no write). */
static custos_err issue(X509 *certs[CUSTOS_MAX_TEMPLATES], uint8_t **profile, size_t *profile_len,
                        custos_engine *e, const issue_plan *p, const custos_request_doc *d,
                        const custos_store_request *r, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_engine_issue_all(certs, p->comp, p->pubs, p->spkis, d->system, d->serial,
                                         p->sys->ca, p->sys->key, now, 0));
    CUSTOS_GUARD(build_profile(profile, profile_len, e, p->sys, r, p->comp, certs, now));
    ret = CUSTOS_OK;
out:
    return ret;
}

static void issued_free(X509 *certs[CUSTOS_MAX_TEMPLATES], uint8_t **profile)
{
    size_t i;
    free(*profile);
    *profile = NULL;
    for (i = 0; i < CUSTOS_MAX_TEMPLATES; i++) {
        X509_free(certs[i]);
        certs[i] = NULL;
    }
}

static custos_err approve_inner(custos_engine *e, const custos_store_request *r,
                                const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_doc *d = NULL;
    issue_plan plan;
    X509 *certs[CUSTOS_MAX_TEMPLATES] = {0};
    uint8_t *profile = NULL;
    size_t profile_len = 0;
    int attempt;
    int64_t now = custos_engine_now(e);

    /* Verified at import and unchanged since (same digest): reuse the decoded
     * request when import left it in the cache, else parse the stored bytes. */
    d = doc_cache_take(e, r->digest);
    if (d == NULL)
        CUSTOS_GUARD(custos_request_decode_stored(&d, r->der, r->der_len));
    CUSTOS_GUARD(plan_issue(&plan, e, d));
    /* A serial collision (UNIQUE) rolls the whole transaction back; issue again. */
    for (attempt = 0; attempt < SERIAL_RETRIES; attempt++) {
        CUSTOS_GUARD(issue(certs, &profile, &profile_len, e, &plan, d, r, now));
        ret = store_issued(e, r, plan.comp, certs, profile, profile_len, actor, now);
        issued_free(certs, &profile);
        if (ret != CUSTOS_ERR_DUPLICATE)
            break;
    }
    CUSTOS_GUARD(ret);
    ret = CUSTOS_OK;
out:
    issued_free(certs, &profile);
    custos_request_doc_free(d);
    return ret;
}

/* ---- import (+ auto-approval in the same transaction) --------------------- */

/* The request, and when @p certs is not NULL its approval and issuance, in
 * one transaction. *certified: whether the approval was written (not when
 * the serial turned out to be a duplicate inside the transaction: then only
 * the import is, as the policy would hold it). */
static custos_err store_request_issued(int *certified, custos_engine *e, custos_store_request *r,
                                       const custos_actor *actor, const issue_plan *p,
                                       X509 *const certs[CUSTOS_MAX_TEMPLATES],
                                       const uint8_t *profile, size_t profile_len,
                                       const custos_actor *approver, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;

    *certified = 0;
    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(write_request(e, r, actor));
    if (!r->sum.duplicate_serial) {
        CUSTOS_GUARD(write_issued(e, r, p->comp, certs, profile, profile_len, approver, now));
        *certified = 1;
    }
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (ret != CUSTOS_OK)
        *certified = 0;
    tx_end(e, &in_tx);
    return ret;
}

/* Issue for a request that is not stored yet and store it with its import;
 * a failure of issuance (in @p a) stores the import alone, pending. */
static custos_err import_certify(custos_request_summary *out, int *out_created, custos_engine *e,
                                 custos_store_request *r, custos_request_doc *d,
                                 const custos_actor *actor, engine_auto *a, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    issue_plan plan;
    X509 *certs[CUSTOS_MAX_TEMPLATES] = {0};
    uint8_t *profile = NULL;
    size_t profile_len = 0;
    int attempt, certified = 0;

    ret = plan_issue(&plan, e, d);
    /* A serial collision (UNIQUE) rolls the whole transaction back; issue again. */
    for (attempt = 0; ret == CUSTOS_OK && attempt < SERIAL_RETRIES; attempt++) {
        ret = issue(certs, &profile, &profile_len, e, &plan, d, r, now);
        if (ret != CUSTOS_OK)
            break;
        ret = store_request_issued(&certified, e, r, actor, &plan, certs, profile, profile_len,
                                   a->approver, now);
        issued_free(certs, &profile);
        if (ret != CUSTOS_ERR_DUPLICATE)
            break;
    }
    if (ret == CUSTOS_OK) {
        *out = r->sum;
        *out_created = 1;
        if (certified) {
            a->certified = 1;
            out->state = CUSTOS_STATE_CERTIFIED;
            out->updated = now;
            out->reason[0] = '\0';
        }
        goto out;
    }
    if (ret == CUSTOS_ERR_EXISTS) {
        ret = import_lost_race(out, e, r, ret);
        goto out;
    }
    /* Issuance failed (or kept colliding): the import stands alone, pending. */
    a->failed = ret;
    a->failure = *custos_error_last();
    custos_error_clear();
    ret = store_request(e, r, actor);
    if (ret == CUSTOS_OK) {
        *out = r->sum;
        *out_created = 1;
    } else {
        a->failed = CUSTOS_OK;
        ret = import_lost_race(out, e, r, ret);
    }
out:
    issued_free(certs, &profile);
    return ret;
}

custos_err custos_engine_request_import_auto(custos_request_summary *out, int *out_created,
                                             custos_engine *e, const uint8_t *der, size_t len,
                                             const char *via, const custos_actor *actor,
                                             engine_auto *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    custos_request_doc *d = NULL;
    int existing = 0, approve = 0;
    size_t dups = 0;
    int64_t now;

    memset(&r, 0, sizeof(r));
    if (a != NULL) {
        a->certified = 0;
        a->failed = CUSTOS_OK;
    }
    CUSTOS_ENSURE(out != NULL && out_created != NULL && e != NULL && der != NULL, CUSTOS_ERR_ARG,
                  "request", "missing argument");
    memset(out, 0, sizeof(*out));
    *out_created = 0;
    now = custos_engine_now(e);
    CUSTOS_GUARD(import_prepare(&r, &d, &existing, e, der, len, via, now));
    if (existing) {
        *out = r.sum;
        ret = CUSTOS_OK;
        goto out;
    }
    if (a != NULL && now < r.sum.expires) {
        /* Would the policy approve it? The duplicate count is read again
         * inside the transaction, where it decides. */
        CUSTOS_GUARD(e->st->ops->request_count_serial(e->st->ctx, &dups, r.sum.system, r.sum.serial,
                                                      r.sum.device_id));
        r.sum.duplicate_serial = dups > 0;
        CUSTOS_GUARD(a->decide(&approve, a, e, &r.sum));
        r.sum.duplicate_serial = 0;
    }
    if (approve) {
        CUSTOS_GUARD(import_certify(out, out_created, e, &r, d, actor, a, now));
        if (a->certified || !*out_created) {
            ret = CUSTOS_OK;
            goto out;
        }
    } else {
        ret = store_request(e, &r, actor);
        if (ret != CUSTOS_OK) {
            ret = import_lost_race(out, e, &r, ret);
            goto out;
        }
        *out = r.sum;
        *out_created = 1;
    }
    /* Stored pending: keep it decoded for its approval. */
    doc_cache_put(e, d);
    d = NULL;
    ret = CUSTOS_OK;
out:
    if (!existing)
        r.der = NULL; /* borrowed from der */
    custos_request_doc_free(d);
    custos_store_request_clear(&r);
    return ret;
}

custos_err custos_engine_request_import(custos_request_summary *out, int *out_created,
                                        custos_engine *e, const uint8_t *der, size_t len,
                                        const char *via, const custos_actor *actor)
{
    return custos_engine_request_import_auto(out, out_created, e, der, len, via, actor, NULL);
}

custos_err custos_engine_request_approve(custos_request_summary *out, custos_engine *e,
                                         const char *id, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    char when[21], idbuf[CUSTOS_ID_LEN + 1];

    memset(&r, 0, sizeof(r));
    CUSTOS_ENSURE(out != NULL && e != NULL && id != NULL, CUSTOS_ERR_ARG, "id", "missing argument");
    CUSTOS_GUARD(copy_id(idbuf, id));
    id = idbuf;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    if (r.sum.state == CUSTOS_STATE_EXPIRED) {
        custos_time_format(when, r.sum.expires);
        ret = custos_error_set(CUSTOS_ERR_EXPIRED, "signer",
                               "request %s expired: the certificate that signed it expired at %s; "
                               "the device must make a new request",
                               id, when);
        goto out;
    }
    CUSTOS_ENSURE(r.sum.state == CUSTOS_STATE_PENDING, CUSTOS_ERR_STATE, "state",
                  "request %s is %s, not pending", id, custos_state_name(r.sum.state));
    if (custos_engine_now(e) >= r.sum.expires) {
        CUSTOS_GUARD(expire_now(e, &r, actor));
        custos_time_format(when, r.sum.expires);
        ret = custos_error_set(CUSTOS_ERR_EXPIRED, "signer",
                               "the certificate that signed request %s expired at %s", id, when);
        goto out;
    }
    CUSTOS_GUARD(approve_inner(e, &r, actor));
    custos_store_request_clear(&r);
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    *out = r.sum;
    ret = CUSTOS_OK;
out:
    custos_store_request_clear(&r);
    return ret;
}

/* ---- reject, complete, get, export, expire -------------------------------- */

static custos_err simple_transition(custos_request_summary *out, custos_engine *e, const char *id,
                                    const custos_state *from, size_t n_from, custos_state to,
                                    const char *reason, const custos_actor *actor,
                                    const char *action)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    int in_tx = 0, allowed = 0;
    size_t i;
    char idbuf[CUSTOS_ID_LEN + 1];

    memset(&r, 0, sizeof(r));
    CUSTOS_ENSURE(out != NULL && e != NULL && id != NULL, CUSTOS_ERR_ARG, "id", "missing argument");
    CUSTOS_GUARD(copy_id(idbuf, id));
    id = idbuf;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    for (i = 0; i < n_from; i++)
        allowed |= r.sum.state == from[i];
    CUSTOS_ENSURE(allowed, CUSTOS_ERR_STATE, "state", "request %s is %s; cannot %s", id,
                  custos_state_name(r.sum.state), action);
    CUSTOS_GUARD(transition(e, id, r.sum.state, to, reason, actor, action));
    CUSTOS_GUARD(tx_commit(e, &in_tx));
    custos_store_request_clear(&r);
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    *out = r.sum;
    ret = CUSTOS_OK;
out:
    tx_end(e, &in_tx);
    custos_store_request_clear(&r);
    return ret;
}

custos_err custos_engine_request_reject(custos_request_summary *out, custos_engine *e,
                                        const char *id, const char *reason,
                                        const custos_actor *actor)
{
    static const custos_state from[] = {CUSTOS_STATE_PENDING, CUSTOS_STATE_APPROVED};
    if (reason == NULL)
        reason = "";
    if (!custos_text_valid(reason, CUSTOS_MAX_META_VALUE_LEN)) {
        if (out != NULL)
            memset(out, 0, sizeof(*out));
        return custos_error_set(CUSTOS_ERR_LIMIT, "reason",
                                "reason must be printable text of at most %d bytes",
                                CUSTOS_MAX_META_VALUE_LEN);
    }
    return simple_transition(out, e, id, from, 2, CUSTOS_STATE_REJECTED, reason, actor,
                             "request.reject");
}

custos_err custos_engine_device_complete(custos_request_summary *out, custos_engine *e,
                                         const char *id, const custos_actor *actor)
{
    static const custos_state from[] = {CUSTOS_STATE_CERTIFIED};
    return simple_transition(out, e, id, from, 1, CUSTOS_STATE_PROVISIONED, NULL, actor,
                             "device.complete");
}

custos_err custos_engine_request_get(custos_request_summary *out, custos_engine *e, const char *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    char idbuf[CUSTOS_ID_LEN + 1];
    memset(&r, 0, sizeof(r));
    CUSTOS_ENSURE(out != NULL && e != NULL && id != NULL, CUSTOS_ERR_ARG, "id", "missing argument");
    CUSTOS_GUARD(copy_id(idbuf, id));
    id = idbuf;
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    *out = r.sum;
    ret = CUSTOS_OK;
out:
    custos_store_request_clear(&r);
    return ret;
}

custos_err custos_engine_profile_export(uint8_t **out, size_t *out_len, custos_engine *e,
                                        const char *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_summary s;
    CUSTOS_ENSURE(out != NULL && out_len != NULL, CUSTOS_ERR_ARG, "id", "missing argument");
    *out = NULL;
    *out_len = 0;
    CUSTOS_GUARD(custos_engine_request_get(&s, e, id));
    CUSTOS_ENSURE(s.state == CUSTOS_STATE_CERTIFIED || s.state == CUSTOS_STATE_PROVISIONED,
                  CUSTOS_ERR_STATE, "state", "request %s is %s; no profile yet", id,
                  custos_state_name(s.state));
    CUSTOS_GUARD(e->st->ops->profile_get(e->st->ctx, out, out_len, id));
    ret = CUSTOS_OK;
out:
    return ret;
}

typedef struct expire_ctx {
    int64_t now;
    custos_store_request *due;
    size_t n, cap;
    custos_err err;
} expire_ctx;

static int collect_due(const custos_store_request *r, void *ctx)
{
    expire_ctx *x = ctx;
    if (r->sum.expires > x->now)
        return 0;
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 16;
        custos_store_request *g = realloc(x->due, cap * sizeof(*g));
        if (g == NULL) {
            x->err = custos_error_set(CUSTOS_ERR_NOMEM, "expire", "out of memory");
            return x->err;
        }
        x->due = g;
        x->cap = cap;
    }
    x->due[x->n] = *r;
    x->due[x->n].der = NULL;
    x->n++;
    return 0;
}

custos_err custos_engine_expire(size_t *out_count, custos_engine *e)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const custos_actor actor = {"custosd:expire", "local"};
    expire_ctx x;
    size_t i;

    memset(&x, 0, sizeof(x));
    CUSTOS_ENSURE(out_count != NULL && e != NULL, CUSTOS_ERR_ARG, "expire", "missing argument");
    *out_count = 0;
    x.now = custos_engine_now(e);
    CUSTOS_GUARD(e->st->ops->request_list(e->st->ctx, CUSTOS_STATE_PENDING, NULL, SIZE_MAX,
                                          collect_due, &x));
    CUSTOS_GUARD(e->st->ops->request_list(e->st->ctx, CUSTOS_STATE_APPROVED, NULL, SIZE_MAX,
                                          collect_due, &x));
    for (i = 0; i < x.n; i++) {
        CUSTOS_GUARD(expire_now(e, &x.due[i], &actor));
        (*out_count)++;
    }
    ret = CUSTOS_OK;
out:
    free(x.due);
    return ret;
}
