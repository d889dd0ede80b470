/* Provisioning requests: import (verify fully, store pending, or with
 * auto-approval issue and store in one transaction). Approval, issuance and
 * the later transitions are in engine_approve.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "engine_int.h"
#include "engine_request_int.h"

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

const custos_request_key *custos_engine_find_key(const custos_request_doc *d, const char *name)
{
    size_t i;
    for (i = 0; i < d->n_keys; i++)
        if (strcmp(d->keys[i].template_name, name) == 0)
            return &d->keys[i];
    return NULL;
}

custos_err custos_engine_check_templates(const custos_component_def *c, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;
    for (i = 0; i < c->n_templates; i++) {
        const custos_key_template *t = &c->templates[i];
        const custos_request_key *k = custos_engine_find_key(d, t->name);
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
    if (m->gateway_id[0] != '\0')
        CUSTOS_ENSURE(json_object_set_new(detail, "gateway", json_string(m->gateway_id)) == 0,
                      CUSTOS_ERR_NOMEM, "audit", "out of memory");
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

    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(write_request(e, r, actor));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

static custos_err get_by_digest_committed(custos_engine *e, custos_store_request *r,
                                          const uint8_t digest[32])
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->request_get_by_digest(e->st->ctx, r, digest));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

/* Everything import does before its write: look the bytes up (*existing: an
 * identical request is stored, in *r), verify them fully (*out_doc) and fill
 * the record to store (*r, pending, r->der borrowed from @p der). */
static custos_err import_prepare(custos_store_request *r, custos_request_doc **out_doc,
                                 int *existing, custos_engine *e, const uint8_t *der, size_t len,
                                 const char *via, const custos_gateway_info *gw, int64_t now)
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
        CUSTOS_ENSURE(gw == NULL || strcmp(r->sum.system, gw->system) == 0, CUSTOS_ERR_FORBIDDEN,
                      "system", "gateway %s serves system %s; this request is for system %s",
                      gw->device_id, gw->system, r->sum.system);
        return CUSTOS_OK;
    }
    CUSTOS_ENSURE(got == CUSTOS_ERR_NOT_FOUND, got, "store", "store lookup failed");
    custos_error_clear();
    custos_store_request_clear(r);
    memcpy(r->digest, digest, sizeof(digest));
    CUSTOS_GUARD(request_decode(&d, e, der, len, now));
    CUSTOS_ENSURE(gw == NULL || strcmp(d->system, gw->system) == 0, CUSTOS_ERR_FORBIDDEN, "system",
                  "gateway %s serves system %s; this request is for system %s", gw->device_id,
                  gw->system, d->system);
    sys = custos_engine_system(e, d->system);
    CUSTOS_ENSURE(sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", d->system);
    comp = custos_system_component(sys->def, d->component);
    CUSTOS_ENSURE(comp != NULL, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                  "system %s has no component %s", d->system, d->component);
    CUSTOS_GUARD(custos_engine_check_templates(comp, d));
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
    if (gw != NULL) {
        memcpy(r->sum.gateway_id, gw->device_id, sizeof(r->sum.gateway_id));
        memcpy(r->sum.gateway_serial, gw->serial, sizeof(r->sum.gateway_serial));
    }
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

/* ---- import (+ auto-approval in the same transaction) --------------------- */

/* The request, and when @p certs is not NULL its approval and issuance, in
 * one transaction. *certified: whether the approval was written (not when
 * the serial turned out to be a duplicate inside the transaction: then only
 * the import is, as the policy would hold it). */
static custos_err store_request_issued(int *certified, custos_engine *e, custos_store_request *r,
                                       const custos_actor *actor, const engine_issue_plan *p,
                                       X509 *const certs[CUSTOS_MAX_TEMPLATES],
                                       const uint8_t *profile, size_t profile_len,
                                       const custos_actor *approver, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;

    *certified = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(write_request(e, r, actor));
    if (!r->sum.duplicate_serial) {
        CUSTOS_GUARD(
            custos_engine_write_issued(e, r, p->comp, certs, profile, profile_len, approver, now));
        *certified = 1;
    }
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (ret != CUSTOS_OK)
        *certified = 0;
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

/* Issue for a request that is not stored yet and store it with its import;
 * a failure of issuance (in @p a) stores the import alone, pending. */
static custos_err import_certify(custos_request_summary *out, int *out_created, custos_engine *e,
                                 custos_store_request *r, custos_request_doc *d,
                                 const custos_actor *actor, engine_auto *a, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    engine_issue_plan plan;
    X509 *certs[CUSTOS_MAX_TEMPLATES] = {0};
    uint8_t *profile = NULL;
    size_t profile_len = 0;
    int attempt, certified = 0;

    ret = custos_engine_plan_issue(&plan, e, d);
    /* A serial collision (UNIQUE) rolls the whole transaction back; issue again. */
    for (attempt = 0; ret == CUSTOS_OK && attempt < ENGINE_SERIAL_RETRIES; attempt++) {
        ret = custos_engine_issue(certs, &profile, &profile_len, e, &plan, d, r, now);
        if (ret != CUSTOS_OK)
            break;
        ret = store_request_issued(&certified, e, r, actor, &plan, certs, profile, profile_len,
                                   a->approver, now);
        custos_engine_issued_free(certs, &profile);
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
    custos_engine_issued_free(certs, &profile);
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
    CUSTOS_GUARD(
        import_prepare(&r, &d, &existing, e, der, len, via, a != NULL ? a->gateway : NULL, now));
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
