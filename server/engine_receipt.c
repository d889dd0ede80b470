/* Install receipts (connected mode): a device proves it installed the
 * certified profile by signing {request_id, device_id, profile_sha256} with
 * a key of the new generation; the request becomes provisioned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine_int.h"

typedef struct issued_ctx {
    const X509 *signer;
    uint8_t *der;
    size_t len;
    int found;
} issued_ctx;

static int is_issued(const custos_store_cert *c, void *ctx)
{
    issued_ctx *m = ctx;
    if (c->der_len == m->len && CRYPTO_memcmp(c->der, m->der, m->len) == 0) {
        m->found = 1;
        return 1;
    }
    return 0;
}

/* Everything but the state: the receipt is this request's, signed by one of
 * its certificates, over the profile the engine issued. */
static custos_err receipt_check(custos_engine *e, const custos_request_summary *r,
                                const custos_receipt_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    issued_ctx m;
    uint8_t *profile = NULL, digest[32];
    size_t profile_len = 0;

    memset(&m, 0, sizeof(m));
    CUSTOS_ENSURE(strcmp(d->request_id, r->request_id) == 0, CUSTOS_ERR_MISMATCH, "request_id",
                  "the receipt is for request %s, not %s", d->request_id, r->request_id);
    CUSTOS_ENSURE(strcmp(d->device_id, r->device_id) == 0, CUSTOS_ERR_MISMATCH, "device_id",
                  "the receipt is from device %s, not %s", d->device_id, r->device_id);
    CUSTOS_GUARD(custos_x509_to_der(&m.der, &m.len, d->signer));
    CUSTOS_GUARD(e->st->ops->cert_list_by_request(e->st->ctx, r->request_id, is_issued, &m));
    CUSTOS_ENSURE(m.found, CUSTOS_ERR_MISMATCH, "signer",
                  "the receipt is not signed by a certificate issued for request %s",
                  r->request_id);
    CUSTOS_GUARD(e->st->ops->profile_get(e->st->ctx, &profile, &profile_len, r->request_id));
    custos_sha256(digest, profile, profile_len);
    CUSTOS_ENSURE(CRYPTO_memcmp(digest, d->profile_sha256, 32) == 0, CUSTOS_ERR_MISMATCH,
                  "profile_sha256",
                  "the receipt is for another profile than the one issued for "
                  "request %s",
                  r->request_id);
    ret = CUSTOS_OK;
out:
    free(m.der);
    free(profile);
    return ret;
}

custos_err custos_engine_receipt_accept(custos_request_summary *out, custos_engine *e,
                                        const char *request_id, const uint8_t *der, size_t len,
                                        const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_receipt_doc *d = NULL;
    custos_request_summary r;
    json_t *detail = NULL;
    char idbuf[CUSTOS_ID_LEN + 1];
    int in_tx = 0;
    custos_err set;

    CUSTOS_ENSURE(out != NULL && e != NULL && der != NULL, CUSTOS_ERR_ARG, "receipt",
                  "missing argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(request_id != NULL && custos_id_valid(request_id), CUSTOS_ERR_NOT_FOUND, "id",
                  "no request with this id");
    memcpy(idbuf, request_id, sizeof(idbuf));
    CUSTOS_GUARD(custos_engine_request_get(&r, e, idbuf));
    CUSTOS_ENSURE(r.state == CUSTOS_STATE_CERTIFIED || r.state == CUSTOS_STATE_PROVISIONED,
                  CUSTOS_ERR_STATE, "state", "request %s is %s, not certified", idbuf,
                  custos_state_name(r.state));
    CUSTOS_GUARD(custos_receipt_decode(&d, der, len));
    CUSTOS_GUARD(receipt_check(e, &r, d));
    if (r.state == CUSTOS_STATE_PROVISIONED) { /* the same receipt again, or completed by hand */
        *out = r;
        ret = CUSTOS_OK;
        goto out;
    }
    detail = json_pack("{s:s, s:s, s:s, s:s}", "from", "certified", "to", "provisioned", "via",
                       "receipt", "device_id", r.device_id);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    set = e->st->ops->request_set_state(e->st->ctx, idbuf, CUSTOS_STATE_CERTIFIED,
                                        CUSTOS_STATE_PROVISIONED, NULL, custos_engine_now(e));
    if (set == CUSTOS_ERR_STATE) {
        /* Another engine moved it since we read it: provisioned is fine. */
        custos_engine_tx_end(e, &in_tx);
        custos_error_clear();
        CUSTOS_GUARD(custos_engine_request_get(&r, e, idbuf));
        CUSTOS_ENSURE(r.state == CUSTOS_STATE_PROVISIONED, CUSTOS_ERR_STATE, "state",
                      "request %s is %s, not certified", idbuf, custos_state_name(r.state));
        *out = r;
        ret = CUSTOS_OK;
        goto out;
    }
    CUSTOS_GUARD(set);
    CUSTOS_GUARD(custos_engine_gateway_note(e, &r));
    CUSTOS_GUARD(e->st->ops->receipt_put(e->st->ctx, idbuf, der, len, custos_engine_now(e)));
    CUSTOS_GUARD(custos_engine_audit(e, actor, "device.provisioned", idbuf, detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    CUSTOS_GUARD(custos_engine_request_get(out, e, idbuf));
    ret = CUSTOS_OK;
out:
    if (e != NULL)
        custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    custos_receipt_doc_free(d);
    return ret;
}
