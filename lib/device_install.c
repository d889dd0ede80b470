/* Install a certified profile: verify it answers the pending request with
 * this device's keys, then commit it with one atomic replace of profile.mccp. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "custos/device.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

typedef struct install_ctx {
    const custos_port *port;
    uint8_t *request;
    size_t request_len;
    uint8_t *ident_bytes;
    size_t ident_len;
    custos_identity_doc *ident;
    custos_profile_doc *profile;
    X509_STORE *store;
    int64_t now;
    const custos_identity_gen *pending;
} install_ctx;

static void install_ctx_free(install_ctx *c)
{
    free(c->request);
    free(c->ident_bytes);
    custos_identity_doc_free(c->ident);
    custos_profile_doc_free(c->profile);
    X509_STORE_free(c->store);
}

static custos_err load_pending(install_ctx *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_err r = custos_dev_read(&c->request, &c->request_len, c->port, CUSTOS_OBJ_REQUEST,
                                   CUSTOS_MAX_REQUEST_SIZE);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_STATE, "request",
                  "no pending request on this device");
    CUSTOS_GUARD(r);
    r = custos_dev_read(&c->ident_bytes, &c->ident_len, c->port, CUSTOS_OBJ_IDENTITY,
                        CUSTOS_MAX_IDENTITY_SIZE);
    CUSTOS_ENSURE(r != CUSTOS_ERR_NOT_FOUND, CUSTOS_ERR_STATE, "identity",
                  "the pending request has no private identity (identity.mcpi is missing)");
    CUSTOS_GUARD(r);
    CUSTOS_GUARD(custos_dev_identity_load(&c->ident, c->port, c->ident_bytes, c->ident_len));
    CUSTOS_ENSURE(!c->ident->mock, CUSTOS_ERR_MOCK, "identity",
                  "mock device files are not accepted here");
    CUSTOS_ENSURE(c->ident->n_gens > 0, CUSTOS_ERR_STATE, "identity",
                  "the private identity holds no pending key generation");
    /* The newest generation is the one the pending request was made for. */
    c->pending = &c->ident->gens[c->ident->n_gens - 1];
    CUSTOS_GUARD(custos_dev_store(&c->store, c->ident->root_of_trust));
    CUSTOS_GUARD(custos_now(&c->now, c->port));
    ret = 0;
out:
    return ret;
}

static custos_err check_answer(const install_ctx *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const custos_profile_doc *p = c->profile;
    const custos_identity_doc *id = c->ident;
    uint8_t digest[32];

    CUSTOS_ENSURE(!p->mock, CUSTOS_ERR_MOCK, "profile", "mock device files are not accepted here");
    CUSTOS_ENSURE(strcmp(p->serial, id->serial) == 0, CUSTOS_ERR_MISMATCH, "serial",
                  "this profile was issued for another device (serial %s), this device is %s",
                  p->serial, id->serial);
    CUSTOS_ENSURE(strcmp(p->system, id->system) == 0 && strcmp(p->component, id->component) == 0,
                  CUSTOS_ERR_MISMATCH, "component",
                  "this profile is for %s/%s, this device is %s/%s", p->system, p->component,
                  id->system, id->component);
    CUSTOS_ENSURE(strcmp(p->request_id, c->pending->request_id) == 0, CUSTOS_ERR_MISMATCH,
                  "request_id", "this profile answers request %s, not the pending request %s",
                  p->request_id, c->pending->request_id);
    custos_sha256(digest, c->request, c->request_len);
    CUSTOS_ENSURE(CRYPTO_memcmp(digest, p->request_sha256, sizeof(digest)) == 0,
                  CUSTOS_ERR_MISMATCH, "request_sha256",
                  "this profile answers another version of request %s (SHA-256 of the request "
                  "differs)",
                  p->request_id);
    ret = 0;
out:
    return ret;
}

static custos_err check_certs(const install_ctx *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const custos_profile_doc *p = c->profile;
    const custos_identity_gen *g = c->pending;

    CUSTOS_ENSURE(p->n_certs == g->n_keys, CUSTOS_ERR_MISMATCH, "certificates",
                  "the profile has %zu certificates for %zu pending keys", p->n_certs, g->n_keys);
    for (size_t k = 0; k < g->n_keys; k++) {
        const char *name = g->keys[k].template_name;
        const custos_profile_cert *found = NULL;
        size_t count = 0;
        for (size_t i = 0; i < p->n_certs; i++) {
            if (strcmp(p->certs[i].template_name, name) == 0) {
                found = &p->certs[i];
                count++;
            }
        }
        CUSTOS_ENSURE(count == 1, CUSTOS_ERR_MISMATCH, name,
                      "the profile has %zu certificates for template %s (expected one)", count,
                      name);
        EVP_PKEY *pub = X509_get0_pubkey(found->cert);
        CUSTOS_ENSURE(pub != NULL && custos_key_public_equal(pub, g->keys[k].key),
                      CUSTOS_ERR_MISMATCH, name,
                      "the certificate for template %s does not hold this device's key", name);
        int64_t nb = 0, na = 0;
        CUSTOS_GUARD(custos_asn1_time_to_unix(&nb, X509_get0_notBefore(found->cert)));
        CUSTOS_GUARD(custos_asn1_time_to_unix(&na, X509_get0_notAfter(found->cert)));
        char when[21];
        custos_time_format(when, nb);
        CUSTOS_ENSURE(c->now >= nb, CUSTOS_ERR_NOT_YET_VALID, name,
                      "the certificate for template %s is valid only from %s (check the clock)",
                      name, when);
        custos_time_format(when, na);
        CUSTOS_ENSURE(c->now <= na, CUSTOS_ERR_EXPIRED, name,
                      "the certificate for template %s expired at %s", name, when);
    }
    ret = 0;
out:
    return ret;
}

/* The identity after install: the generation of the previous profile (the
 * one current until now, if any) and the new current one. */
static custos_err prune_identity(custos_identity_doc **out, const install_ctx *c,
                                 const char *previous_request_id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_identity_doc *d = NULL;
    const custos_identity_doc *src = c->ident;

    CUSTOS_GUARD(custos_dev_identity_clone_header(&d, src));
    for (size_t i = 0; i < src->n_gens; i++) {
        const custos_identity_gen *g = &src->gens[i];
        int keep = g == c->pending ||
                   (previous_request_id != NULL && strcmp(g->request_id, previous_request_id) == 0);
        if (keep)
            custos_dev_gen_copy(&d->gens[d->n_gens++], g);
    }
    *out = d;
    d = NULL;
    ret = 0;
out:
    custos_identity_doc_free(d);
    return ret;
}

/* Request id of the installed profile, if one exists; "" otherwise. The
 * profile was verified when installed; here we only need to know which
 * generation it used, so the identity's root of trust verifies it again. */
/* The profile that becomes the previous generation, and its request id.
 * Normally the installed profile.mccp; but when profile.mccp already answers
 * the pending request, an earlier install of this same profile stopped after
 * its commit point, and the previous generation is profile.previous.mccp,
 * which must be kept as it is. */
static custos_err current_profile(uint8_t **out, size_t *out_len, char rid[CUSTOS_ID_LEN + 1],
                                  int *out_resumed, const install_ctx *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_profile_doc *cur = NULL;
    const char *name = CUSTOS_OBJ_PROFILE;
    custos_err r;

    rid[0] = '\0';
    *out_resumed = 0;
    for (int pass = 0; pass < 2; pass++) {
        r = custos_dev_read(out, out_len, c->port, name, CUSTOS_MAX_PROFILE_SIZE);
        if (r == CUSTOS_ERR_NOT_FOUND) {
            custos_error_clear();
            ret = 0;
            goto out;
        }
        CUSTOS_GUARD(r);
        custos_trust trust = {c->store, NULL, c->now,
                              custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING), NULL};
        custos_profile_doc_free(cur);
        cur = NULL;
        if (custos_profile_decode(&cur, *out, *out_len, &trust) == 0) {
            memcpy(rid, cur->request_id, CUSTOS_ID_LEN + 1);
        } else {
            rid[0] = '\0';
            custos_error_clear(); /* an expired current profile is still replaced */
        }
        if (pass == 1 || strcmp(rid, c->profile->request_id) != 0)
            break;
        /* Resuming: look at the kept previous generation instead. */
        *out_resumed = 1;
        free(*out);
        *out = NULL;
        *out_len = 0;
        rid[0] = '\0';
        name = CUSTOS_OBJ_PROFILE_PREVIOUS;
    }
    ret = 0;
out:
    if (ret < 0 || (*out_resumed && *out == NULL)) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }
    custos_profile_doc_free(cur);
    return ret;
}
custos_err custos_device_install(custos_install_result *out, const custos_port *port,
                                 const uint8_t *profile, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    install_ctx c = {0};
    custos_identity_doc *pruned = NULL;
    uint8_t *cur = NULL;
    size_t cur_len = 0;
    char prev_rid[CUSTOS_ID_LEN + 1];
    int resumed = 0;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    memset(out, 0, sizeof(*out));
    CUSTOS_GUARD(custos_dev_port_check(port));
    CUSTOS_ENSURE(profile != NULL && len > 0, CUSTOS_ERR_ARG, "profile", "the profile is empty");
    CUSTOS_ENSURE(len <= CUSTOS_MAX_PROFILE_SIZE, CUSTOS_ERR_TOO_LARGE, "profile",
                  "the profile is %zu bytes; the limit is %u", len, CUSTOS_MAX_PROFILE_SIZE);
    c.port = port;
    CUSTOS_GUARD(load_pending(&c));
    custos_trust trust = {c.store, NULL, c.now, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING),
                          NULL};
    CUSTOS_GUARD(custos_profile_decode(&c.profile, profile, len, &trust));
    CUSTOS_GUARD(check_answer(&c));
    CUSTOS_GUARD(check_certs(&c));

    CUSTOS_GUARD(current_profile(&cur, &cur_len, prev_rid, &resumed, &c));
    CUSTOS_GUARD(prune_identity(&pruned, &c, prev_rid[0] != '\0' ? prev_rid : NULL));
    if (cur != NULL && !resumed)
        CUSTOS_GUARD(custos_dev_write(port, CUSTOS_OBJ_PROFILE_PREVIOUS, cur, cur_len));
    /* The commit point: from here the new generation is the current one. */
    CUSTOS_GUARD(custos_dev_write(port, CUSTOS_OBJ_PROFILE, profile, len));
    CUSTOS_GUARD(custos_dev_identity_save(port, pruned));
    CUSTOS_GUARD(custos_dev_remove(port, CUSTOS_OBJ_REQUEST));

    memcpy(out->device_id, c.profile->device_id, sizeof(out->device_id));
    memcpy(out->request_id, c.profile->request_id, sizeof(out->request_id));
    custos_sha256(out->profile_sha256, profile, len);
    out->rotated = prev_rid[0] != '\0';
    ret = 0;
out:
    free(cur);
    custos_identity_doc_free(pruned);
    install_ctx_free(&c);
    return ret;
}
