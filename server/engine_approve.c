/* Provisioning requests after import: approve (issue + lint + certified
 * profile, one transaction), reject, complete, get, export, expire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "engine_request_int.h"

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

/* ---- approve -------------------------------------------------------------- */

custos_err custos_engine_issue_all(X509 *out_certs[CUSTOS_MAX_TEMPLATES],
                                   const custos_component_def *comp,
                                   EVP_PKEY *const pubs[CUSTOS_MAX_TEMPLATES],
                                   const X509_PUBKEY *const *spkis, const char *system,
                                   const custos_services *services, const char *serial, X509 *ca,
                                   EVP_PKEY *ca_key, int64_t now, int mock)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    GENERAL_NAMES *san = NULL;
    size_t i;
    for (i = 0; i < CUSTOS_MAX_TEMPLATES; i++)
        out_certs[i] = NULL;
    for (i = 0; i < comp->n_templates; i++) {
        const custos_key_template *t = &comp->templates[i];
        if ((t->usage & CUSTOS_USAGE_TLS_SERVER) && san == NULL)
            CUSTOS_GUARD(custos_ca_gateway_names(&san, NULL, services));
        CUSTOS_GUARD(custos_ca_issue_ex(&out_certs[i], pubs[i], spkis != NULL ? spkis[i] : NULL, t,
                                        system, comp->name, serial, ca, ca_key, now, mock, san));
        CUSTOS_GUARD(custos_lint_certificate_ex(out_certs[i], ca, t, mock, serial));
    }
    ret = CUSTOS_OK;
out:
    GENERAL_NAMES_free(san);
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
custos_err custos_engine_write_issued(custos_engine *e, const custos_store_request *r,
                                      const custos_component_def *comp,
                                      X509 *const certs[CUSTOS_MAX_TEMPLATES],
                                      const uint8_t *profile, size_t profile_len,
                                      const custos_actor *actor, int64_t now)
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
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(custos_engine_write_issued(e, r, comp, certs, profile, profile_len, actor, now));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

static custos_err expire_now(custos_engine *e, const custos_store_request *r,
                             const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(transition(e, r->sum.request_id, r->sum.state, CUSTOS_STATE_EXPIRED,
                            "signer certificate expired", actor, "request.expire"));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

custos_err custos_engine_plan_issue(engine_issue_plan *p, custos_engine *e,
                                    const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t i;

    memset(p, 0, sizeof(*p));
    p->sys = custos_engine_system(e, d->system);
    CUSTOS_ENSURE(p->sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", d->system);
    p->comp = custos_system_component(p->sys->def, d->component);
    CUSTOS_ENSURE(p->comp != NULL, CUSTOS_ERR_UNKNOWN_COMPONENT, "component",
                  "system %s has no component %s", d->system, d->component);
    CUSTOS_GUARD(custos_engine_check_templates(p->comp, d));
    for (i = 0; i < p->comp->n_templates; i++) {
        X509_REQ *csr = custos_engine_find_key(d, p->comp->templates[i].name)->csr;
        p->pubs[i] = X509_REQ_get0_pubkey(csr);
        p->spkis[i] = X509_REQ_get_X509_PUBKEY(csr);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

/* Issue + lint the certificates and sign the certified profile (no write). */
custos_err custos_engine_issue(X509 *certs[CUSTOS_MAX_TEMPLATES], uint8_t **profile,
                               size_t *profile_len, custos_engine *e, const engine_issue_plan *p,
                               const custos_request_doc *d, const custos_store_request *r,
                               int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_engine_issue_all(certs, p->comp, p->pubs, p->spkis, d->system,
                                         &p->sys->def->services, d->serial, p->sys->ca, p->sys->key,
                                         now, 0));
    CUSTOS_GUARD(build_profile(profile, profile_len, e, p->sys, r, p->comp, certs, now));
    ret = CUSTOS_OK;
out:
    return ret;
}

void custos_engine_issued_free(X509 *certs[CUSTOS_MAX_TEMPLATES], uint8_t **profile)
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
    engine_issue_plan plan;
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
    CUSTOS_GUARD(custos_engine_plan_issue(&plan, e, d));
    /* A serial collision (UNIQUE) rolls the whole transaction back; issue again. */
    for (attempt = 0; attempt < ENGINE_SERIAL_RETRIES; attempt++) {
        CUSTOS_GUARD(custos_engine_issue(certs, &profile, &profile_len, e, &plan, d, r, now));
        ret = store_issued(e, r, plan.comp, certs, profile, profile_len, actor, now);
        custos_engine_issued_free(certs, &profile);
        if (ret != CUSTOS_ERR_DUPLICATE)
            break;
    }
    CUSTOS_GUARD(ret);
    ret = CUSTOS_OK;
out:
    custos_engine_issued_free(certs, &profile);
    custos_request_doc_free(d);
    return ret;
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
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    for (i = 0; i < n_from; i++)
        allowed |= r.sum.state == from[i];
    CUSTOS_ENSURE(allowed, CUSTOS_ERR_STATE, "state", "request %s is %s; cannot %s", id,
                  custos_state_name(r.sum.state), action);
    CUSTOS_GUARD(transition(e, id, r.sum.state, to, reason, actor, action));
    if (to == CUSTOS_STATE_PROVISIONED)
        CUSTOS_GUARD(custos_engine_gateway_note(e, &r.sum));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    custos_store_request_clear(&r);
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, id));
    *out = r.sum;
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
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
