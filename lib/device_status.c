/* custos_device_status: what is on the device, for people and scripts.
 * Reads the cleartext identity header and the profile; never key material. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "custos/device.h"
#include "custos/connect.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

typedef struct status_files {
    uint8_t *ident;
    size_t ident_len;
    uint8_t *request;
    size_t request_len;
    uint8_t *profile;
    size_t profile_len;
    int previous;
    int receipt_pending; /* connected mode: an install receipt not yet accepted */
} status_files;

static custos_err load_files(status_files *f, const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    CUSTOS_GUARD(custos_dev_read_optional(&f->ident, &f->ident_len, port, CUSTOS_OBJ_IDENTITY,
                                          CUSTOS_MAX_IDENTITY_SIZE));
    CUSTOS_GUARD(custos_dev_read_optional(&f->request, &f->request_len, port, CUSTOS_OBJ_REQUEST,
                                          CUSTOS_MAX_REQUEST_SIZE));
    CUSTOS_GUARD(custos_dev_read_optional(&f->profile, &f->profile_len, port, CUSTOS_OBJ_PROFILE,
                                          CUSTOS_MAX_PROFILE_SIZE));
    custos_err prev = custos_dev_exists(port, CUSTOS_OBJ_PROFILE_PREVIOUS);
    CUSTOS_GUARD(prev);
    f->previous = prev == 1;
    custos_err rp = custos_dev_exists(port, CUSTOS_OBJ_RECEIPT_PENDING);
    CUSTOS_GUARD(rp);
    f->receipt_pending = rp == 1;
    ret = 0;
out:
    return ret;
}

static void free_files(status_files *f)
{
    if (f->ident != NULL)
        OPENSSL_cleanse(f->ident, f->ident_len);
    free(f->ident);
    free(f->request);
    free(f->profile);
}

/* The request id of the pending request, read from its content (display only). */
static json_t *pending_id(const status_files *f)
{
    uint8_t *content = NULL;
    size_t len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct;
    json_t *j = NULL, *id = NULL;

    if (custos_cms_peek(&content, &len, &certs, &ct, f->request, f->request_len,
                        CUSTOS_MAX_REQUEST_SIZE, "provisioning request") == 0 &&
        custos_json_parse(&j, content, len, "request content") == 0) {
        json_t *v = json_object_get(j, "request_id");
        if (json_is_string(v))
            id = json_string(json_string_value(v));
    }
    custos_error_clear();
    json_decref(j);
    free(content);
    sk_X509_pop_free(certs, X509_free);
    return id != NULL ? id : json_null();
}

static custos_err certs_json(json_t **out, const custos_profile_doc *p)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *a = json_array();
    json_t *c = NULL;

    *out = NULL;
    CUSTOS_ENSURE(a != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < p->n_certs; i++) {
        CUSTOS_GUARD(custos_describe_cert(&c, p->certs[i].cert));
        json_object_del(c, "issuer");
        CUSTOS_GUARD(custos_describe_set(c, "template", json_string(p->certs[i].template_name)));
        CUSTOS_ENSURE(json_array_append_new(a, c) == 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        c = NULL;
    }
    *out = a;
    a = NULL;
    ret = 0;
out:
    json_decref(c);
    json_decref(a);
    return ret;
}

/* Decode the profile against the identity's Root of Trust, or, when the
 * identity cannot be opened (or is mock), against the root it carries. */
static custos_err profile_decode(custos_profile_doc **out, json_t *o, const status_files *f,
                                 const custos_identity_doc *ident, int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    STACK_OF(X509) *roots = NULL;
    X509_STORE *store = NULL;
    const char *trust_name = "identity root of trust";

    if (ident != NULL && sk_X509_num(ident->root_of_trust) > 0) {
        if (ident->mock)
            trust_name = "mock root of the identity";
        CUSTOS_GUARD(custos_dev_store(&store, ident->root_of_trust));
    } else {
        trust_name = "carried root (not pinned)";
        CUSTOS_GUARD(custos_dev_carried_roots(&roots, f->profile, f->profile_len,
                                              CUSTOS_MAX_PROFILE_SIZE, "certified profile"));
        CUSTOS_GUARD(custos_dev_store(&store, roots));
    }
    CUSTOS_GUARD(custos_describe_set(o, "profile_trust", json_string(trust_name)));
    custos_trust t = {store, NULL, now, custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING), NULL};
    CUSTOS_GUARD(custos_profile_decode(out, f->profile, f->profile_len, &t));
    ret = 0;
out:
    sk_X509_pop_free(roots, X509_free);
    X509_STORE_free(store);
    return ret;
}

static custos_err add_profile(json_t *o, const status_files *f, const custos_identity_doc *ident,
                              int64_t now)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_profile_doc *p = NULL;
    json_t *err = NULL, *certs = NULL;

    custos_err r = profile_decode(&p, o, f, ident, now);
    CUSTOS_GUARD(custos_describe_set(o, "profile_verified", json_boolean(r == 0)));
    if (r < 0) {
        CUSTOS_GUARD(custos_describe_error(&err, r));
        CUSTOS_GUARD(custos_describe_set(o, "profile_error", err));
        ret = 0;
        goto out;
    }
    CUSTOS_GUARD(custos_describe_set(o, "device_id", json_string(p->device_id)));
    CUSTOS_GUARD(custos_describe_set(o, "request_id", json_string(p->request_id)));
    CUSTOS_GUARD(custos_describe_set(o, "system", json_string(p->system)));
    CUSTOS_GUARD(custos_describe_set(o, "component", json_string(p->component)));
    CUSTOS_GUARD(custos_describe_set(o, "serial", json_string(p->serial)));
    CUSTOS_GUARD(custos_describe_set(o, "mock", json_boolean(p->mock)));
    CUSTOS_GUARD(certs_json(&certs, p));
    CUSTOS_GUARD(custos_describe_set(o, "certificates", certs));
    ret = 0;
out:
    custos_profile_doc_free(p);
    return ret;
}

/* system/component/serial/mock from the cleartext identity header. */
static void add_header(json_t *o, const status_files *f)
{
    json_t *h = NULL;
    static const char *const keys[] = {"system", "component", "serial"};
    if (custos_identity_header(&h, f->ident, f->ident_len) < 0) {
        custos_error_clear();
        return;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(h, keys[i]);
        if (json_is_string(v))
            json_object_set(o, keys[i], v);
    }
    json_object_set_new(o, "mock", json_boolean(json_is_true(json_object_get(h, "mock"))));
    json_decref(h);
}

custos_err custos_device_status(char **out_json, const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    status_files f = {0};
    custos_identity_doc *ident = NULL;
    json_t *o = NULL;
    size_t len = 0;
    int64_t now = 0;
    const char *state = "empty";

    CUSTOS_ENSURE(out_json != NULL, CUSTOS_ERR_ARG, "out", "NULL argument");
    *out_json = NULL;
    CUSTOS_GUARD(custos_dev_port_check(port));
    CUSTOS_GUARD(custos_now(&now, port));
    CUSTOS_GUARD(load_files(&f, port));
    if (f.profile != NULL)
        state = f.request != NULL ? "rotating" : "provisioned";
    else if (f.request != NULL)
        state = "pending";
    o = json_pack("{s:s, s:n, s:n, s:n, s:n, s:n, s:n, s:b, s:[], s:b, s:n}", "state", state,
                  "system", "component", "serial", "device_id", "request_id", "pending_request_id",
                  "mock", 0, "certificates", "previous", f.previous, "locked");
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (f.ident != NULL) {
        add_header(o, &f);
        custos_err r = custos_dev_identity_load(&ident, port, f.ident, f.ident_len);
        if (r == 0) {
            CUSTOS_GUARD(custos_describe_set(o, "locked", json_string("ok")));
        } else if (r == CUSTOS_ERR_LOCKED) {
            CUSTOS_GUARD(custos_describe_set(o, "locked", json_string("locked_to_another_device")));
        } else {
            json_t *err = NULL;
            CUSTOS_GUARD(custos_describe_error(&err, r));
            CUSTOS_GUARD(custos_describe_set(o, "identity_error", err));
        }
    }
    if (f.request != NULL)
        CUSTOS_GUARD(custos_describe_set(o, "pending_request_id", pending_id(&f)));
    if (f.receipt_pending)
        CUSTOS_GUARD(custos_describe_set(o, "receipt_pending", json_true()));
    if (f.profile != NULL)
        CUSTOS_GUARD(add_profile(o, &f, ident, now));
    CUSTOS_GUARD(custos_json_dump(out_json, &len, o));
    ret = 0;
out:
    if (ret == 0)
        custos_error_clear();
    json_decref(o);
    custos_identity_doc_free(ident);
    free_files(&f);
    return ret;
}
