/* Proxy provisioning, the cloud side: a gateway (a provisioned device of a
 * "gateway": true component) forwards the requests and receipts of the
 * devices behind it. Its client certificate only says who is forwarding:
 * every request and receipt is verified on its own signatures exactly as on
 * the device protocol, so a gateway can delay or drop what it carries, not
 * forge it. Authorization, system scoping, the admin's switch, and what
 * system definitions must say for gateways and their server certificates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine_int.h"

/* ---- system definitions ----------------------------------------------------- */

static int has_usage(const custos_component_def *c, unsigned usage)
{
    size_t i;
    for (i = 0; i < c->n_templates; i++)
        if (c->templates[i].usage & usage)
            return 1;
    return 0;
}

static custos_err subject_has_cn(int *out, const custos_system_def *def,
                                 const custos_component_def *c, const custos_key_template *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_NAME *name = NULL;
    CUSTOS_GUARD(custos_subject_build(&name, t->subject, def->name, c->name, "serial", t->name));
    *out = X509_NAME_get_index_by_NID(name, NID_commonName, -1) >= 0;
    ret = CUSTOS_OK;
out:
    X509_NAME_free(name);
    return ret;
}

custos_err custos_engine_system_gateway_check(const custos_system_def *def)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    GENERAL_NAMES *names = NULL;
    char field[96];
    size_t i, k;
    int has_dns = 0, cn = 0, checked_hosts = 0;

    for (i = 0; i < def->n_components; i++) {
        const custos_component_def *c = &def->components[i];
        snprintf(field, sizeof(field), "components[%zu].templates", i);
        CUSTOS_ENSURE(!c->gateway || (has_usage(c, CUSTOS_USAGE_TLS_CLIENT) &&
                                      has_usage(c, CUSTOS_USAGE_TLS_SERVER)),
                      CUSTOS_ERR_MALFORMED, field,
                      "component %s is a gateway: it needs a template with usage tls-client (its "
                      "identity toward the cloud) and one with tls-server (toward its devices)",
                      c->name);
        for (k = 0; k < c->n_templates; k++) {
            const custos_key_template *t = &c->templates[k];
            if (!(t->usage & CUSTOS_USAGE_TLS_SERVER))
                continue;
            CUSTOS_ENSURE(def->services.n_gateways > 0, CUSTOS_ERR_MALFORMED, "services.gateways",
                          "services.gateways is required for a tls-server template (template %s "
                          "of component %s): its certificates name those hosts and no other",
                          t->name, c->name);
            if (!checked_hosts) {
                CUSTOS_GUARD(custos_ca_gateway_names(&names, &has_dns, &def->services));
                checked_hosts = 1;
            }
            CUSTOS_GUARD(subject_has_cn(&cn, def, c, t));
            snprintf(field, sizeof(field), "components[%zu].templates[%zu].subject", i, k);
            CUSTOS_ENSURE(has_dns || !cn, CUSTOS_ERR_MALFORMED, field,
                          "services.gateways names only IP addresses, so the subject of "
                          "tls-server template %s of component %s must have no CN (a client "
                          "matching a host name would read it): use serialNumber={serial}",
                          t->name, c->name);
        }
    }
    ret = CUSTOS_OK;
out:
    GENERAL_NAMES_free(names);
    return ret;
}

/* ---- gateway records ---------------------------------------------------------- */

static void info_from(custos_gateway_info *out, const custos_store_gateway *g)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->device_id, g->device_id, sizeof(out->device_id));
    memcpy(out->system, g->system, sizeof(out->system));
    memcpy(out->serial, g->serial, sizeof(out->serial));
    out->enabled = g->enabled;
    out->last_seen = g->last_seen;
    out->forwarded = g->forwarded;
}

static const custos_component_def *component_of(custos_engine *e, const char *system,
                                                const char *component)
{
    const engine_system *sys = custos_engine_system(e, system);
    return sys != NULL ? custos_system_component(sys->def, component) : NULL;
}

custos_err custos_engine_gateway_note(custos_engine *e, const custos_request_summary *r)
{
    const custos_component_def *c = component_of(e, r->system, r->component);
    custos_store_gateway g;

    custos_error_clear();
    if (c == NULL || !c->gateway)
        return CUSTOS_OK;
    memset(&g, 0, sizeof(g));
    memcpy(g.device_id, r->device_id, sizeof(g.device_id));
    memcpy(g.system, r->system, sizeof(g.system));
    memcpy(g.serial, r->serial, sizeof(g.serial));
    g.updated = custos_engine_now(e);
    return e->st->ops->gateway_put(e->st->ctx, &g);
}

/* The gateway row of a provisioned gateway device, made when missing (a
 * component marked gateway after its devices were provisioned). */
static custos_err gateway_row(custos_store_gateway *out, custos_engine *e,
                              const custos_request_summary *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_err got = e->st->ops->gateway_get(e->st->ctx, out, r->device_id);
    int in_tx = 0;

    if (got != CUSTOS_ERR_NOT_FOUND)
        return got;
    custos_error_clear();
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(custos_engine_gateway_note(e, r));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->gateway_get(e->st->ctx, out, r->device_id));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

#define NOT_A_GATEWAY(...) CUSTOS_ENSURE(0, CUSTOS_ERR_FORBIDDEN, "certificate", __VA_ARGS__)

/* The request whose certificate @p der is, when it is a current tls-client
 * certificate of a provisioned gateway device. */
static custos_err gateway_device(custos_request_summary *out, custos_engine *e, const uint8_t *der,
                                 size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cert c;
    custos_store_request latest;
    const custos_component_def *comp;
    const custos_key_template *t = NULL;
    X509 *x = NULL;
    char serial[41];
    size_t i;

    memset(&c, 0, sizeof(c));
    memset(&latest, 0, sizeof(latest));
    if (der == NULL || len == 0)
        NOT_A_GATEWAY("a gateway call needs the gateway's client certificate");
    if (custos_x509_from_der(&x, der, len, "certificate") != CUSTOS_OK ||
        custos_ca_serial_hex(serial, x) != CUSTOS_OK ||
        e->st->ops->cert_get(e->st->ctx, &c, serial) != CUSTOS_OK || c.der_len != len ||
        CRYPTO_memcmp(c.der, der, len) != 0 || c.mock || c.request_id[0] == '\0')
        NOT_A_GATEWAY("the client certificate is not one this service issued to a device");
    if (c.not_after <= custos_engine_now(e))
        NOT_A_GATEWAY("the client certificate has expired");
    if (e->st->ops->request_latest_provisioned(e->st->ctx, &latest, c.device_id) != CUSTOS_OK ||
        strcmp(latest.sum.request_id, c.request_id) != 0)
        NOT_A_GATEWAY("the client certificate is not the current identity of a provisioned "
                      "device");
    comp = component_of(e, latest.sum.system, latest.sum.component);
    for (i = 0; comp != NULL && i < comp->n_templates; i++)
        if (strcmp(comp->templates[i].name, c.template_name) == 0)
            t = &comp->templates[i];
    if (comp == NULL || !comp->gateway)
        NOT_A_GATEWAY("device %s is a %s of system %s, which is not a gateway component",
                      c.device_id, latest.sum.component, latest.sum.system);
    if (t == NULL || !(t->usage & CUSTOS_USAGE_TLS_CLIENT))
        NOT_A_GATEWAY("the client certificate is not of a tls-client template");
    *out = latest.sum;
    ret = CUSTOS_OK;
out:
    X509_free(x);
    custos_store_cert_clear(&c);
    custos_store_request_clear(&latest);
    return ret;
}

custos_err custos_engine_gateway_auth(custos_gateway_info *out, int *out_disabled, custos_engine *e,
                                      const uint8_t *cert_der, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_summary dev;
    custos_store_gateway g;

    CUSTOS_ENSURE(out != NULL && out_disabled != NULL && e != NULL, CUSTOS_ERR_ARG, "gateway",
                  "missing argument");
    memset(out, 0, sizeof(*out));
    *out_disabled = 0;
    CUSTOS_GUARD(gateway_device(&dev, e, cert_der, len));
    CUSTOS_GUARD(gateway_row(&g, e, &dev));
    if (!g.enabled) {
        *out_disabled = 1;
        CUSTOS_ENSURE(0, CUSTOS_ERR_FORBIDDEN, "gateway", "gateway %s (%s) is disabled",
                      g.device_id, g.serial);
    }
    info_from(out, &g);
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_engine_gateway_seen(custos_engine *e, const custos_gateway_info *gw,
                                      unsigned forwarded)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int in_tx = 0;
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->gateway_seen(e->st->ctx, gw->device_id, custos_engine_now(e),
                                          (int64_t)forwarded));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    return ret;
}

/* ---- what a gateway forwards --------------------------------------------------- */

custos_err custos_engine_gateway_submit(custos_request_summary *out, int *out_created,
                                        custos_engine *e, const custos_gateway_info *gw,
                                        const uint8_t *der, size_t len, const custos_actor *actor)
{
    if (gw == NULL || gw->device_id[0] == '\0') {
        if (out != NULL)
            memset(out, 0, sizeof(*out));
        return custos_error_set(CUSTOS_ERR_ARG, "gateway", "no gateway");
    }
    return custos_engine_request_submit_gw(out, out_created, e, der, len, "gateway", actor, gw);
}

custos_err custos_engine_gateway_request(custos_request_summary *out, custos_engine *e,
                                         const custos_gateway_info *gw, const char *request_id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_ENSURE(out != NULL && e != NULL && gw != NULL, CUSTOS_ERR_ARG, "gateway",
                  "missing argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(request_id != NULL && custos_id_valid(request_id), CUSTOS_ERR_NOT_FOUND,
                  "request_id", "no request with this id");
    ret = custos_engine_request_get(out, e, request_id);
    if (ret == CUSTOS_OK && strcmp(out->system, gw->system) != 0) {
        memset(out, 0, sizeof(*out));
        ret = custos_error_set(CUSTOS_ERR_NOT_FOUND, "request_id", "request '%s' not found",
                               request_id);
    }
    CUSTOS_GUARD(ret);
    /* Its signer expired while it waited: it can no longer be approved. */
    if ((out->state == CUSTOS_STATE_PENDING || out->state == CUSTOS_STATE_APPROVED) &&
        custos_engine_now(e) >= out->expires)
        out->state = CUSTOS_STATE_EXPIRED;
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_engine_gateway_receipt(custos_request_summary *out, custos_engine *e,
                                         const custos_gateway_info *gw, const uint8_t *der,
                                         size_t len, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_receipt_doc *d = NULL;
    custos_request_summary r;
    char id[CUSTOS_ID_LEN + 1];

    CUSTOS_ENSURE(out != NULL && e != NULL && gw != NULL && der != NULL, CUSTOS_ERR_ARG, "receipt",
                  "missing argument");
    memset(out, 0, sizeof(*out));
    /* The request id is inside; custos_engine_receipt_accept checks it all. */
    CUSTOS_GUARD(custos_receipt_decode(&d, der, len));
    snprintf(id, sizeof(id), "%s", d->request_id);
    CUSTOS_GUARD(custos_engine_gateway_request(&r, e, gw, id));
    CUSTOS_GUARD(custos_engine_receipt_accept(out, e, id, der, len, actor));
    ret = CUSTOS_OK;
out:
    custos_receipt_doc_free(d);
    return ret;
}

/* ---- the admin's view ----------------------------------------------------------- */

typedef struct list_ctx {
    custos_gateway_cb cb;
    void *ctx;
} list_ctx;

static int list_one(const custos_store_gateway *g, void *ctx)
{
    list_ctx *l = ctx;
    custos_gateway_info info;
    info_from(&info, g);
    return l->cb(&info, l->ctx);
}

custos_err custos_engine_gateway_list(custos_engine *e, custos_gateway_cb cb, void *ctx)
{
    list_ctx l;
    if (e == NULL || cb == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "gateway", "missing argument");
    l.cb = cb;
    l.ctx = ctx;
    return e->st->ops->gateway_list(e->st->ctx, list_one, &l);
}

custos_err custos_engine_gateway_set_enabled(custos_gateway_info *out, custos_engine *e,
                                             const char *device_id, int enabled,
                                             const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_gateway g;
    json_t *detail = NULL;
    char id[CUSTOS_ID_LEN + 1];
    int in_tx = 0;

    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "gateway", "missing argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(device_id != NULL && custos_id_valid(device_id), CUSTOS_ERR_NOT_FOUND,
                  "device_id", "no gateway with this device id");
    memcpy(id, device_id, sizeof(id));
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->gateway_get(e->st->ctx, &g, id));
    CUSTOS_GUARD(e->st->ops->gateway_set_enabled(e->st->ctx, id, enabled, custos_engine_now(e)));
    detail = json_pack("{s:s, s:s, s:b}", "system", g.system, "serial", g.serial, "was_enabled",
                       g.enabled != 0);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_audit(e, actor, enabled ? "gateway.enabled" : "gateway.disabled", id,
                                     detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    g.enabled = enabled != 0;
    info_from(out, &g);
    ret = CUSTOS_OK;
out:
    custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    return ret;
}
