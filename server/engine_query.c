/* What the operator API reads: requests (pages, counts, detail), systems,
 * packages, the audit trail, in the JSON shapes of docs/api.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/x509.h>

#include "engine_int.h"

#define DEFAULT_LIMIT 50
#define HISTORY_MAX 500

static custos_err set_new(json_t *o, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        return custos_error_set(CUSTOS_ERR_NOMEM, key, "out of memory");
    return CUSTOS_OK;
}

static json_t *time_json(int64_t t)
{
    char when[21];
    if (t <= 0)
        return json_null();
    custos_time_format(when, t);
    return json_string(when);
}

static custos_err limit_of(size_t *out, size_t limit)
{
    *out = limit == 0 ? DEFAULT_LIMIT : limit;
    if (*out > CUSTOS_LIST_MAX)
        return custos_error_set(CUSTOS_ERR_ARG, "limit", "limit must be 1..%d", CUSTOS_LIST_MAX);
    return CUSTOS_OK;
}

/* ---- requests ------------------------------------------------------------- */

custos_err custos_request_summary_json(json_t **out, const custos_request_summary *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    CUSTOS_ENSURE(out != NULL && r != NULL, CUSTOS_ERR_ARG, "request", "missing argument");
    *out = NULL;
    j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "request_id",
                  r->request_id, "device_id", r->device_id, "state", custos_state_name(r->state),
                  "kind", r->kind, "system", r->system, "component", r->component, "serial",
                  r->serial, "model", r->model, "firmware", r->firmware, "via", r->via,
                  "duplicate_serial", r->duplicate_serial != 0, "reason", r->reason);
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_NOMEM, "request", "out of memory");
    CUSTOS_GUARD(set_new(j, "created", time_json(r->created)));
    CUSTOS_GUARD(set_new(j, "updated", time_json(r->updated)));
    CUSTOS_GUARD(set_new(j, "expires", time_json(r->expires)));
    if (r->gateway_id[0] != '\0')
        CUSTOS_GUARD(set_new(
            j, "gateway",
            json_pack("{s:s, s:s}", "device_id", r->gateway_id, "serial", r->gateway_serial)));
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

typedef struct page_ctx {
    custos_request_cb cb;
    void *ctx;
    size_t limit, seen;
    int stopped, more;
    int64_t last_created;
    char last_id[CUSTOS_ID_LEN + 1];
} page_ctx;

static int page_one(const custos_store_request *r, void *ctx)
{
    page_ctx *p = ctx;
    if (p->seen == p->limit) {
        p->more = 1; /* the extra row: there is a next page */
        return 1;
    }
    p->seen++;
    p->last_created = r->sum.created;
    memcpy(p->last_id, r->sum.request_id, sizeof(p->last_id));
    if (p->cb(&r->sum, p->ctx) != 0) {
        p->stopped = 1;
        return 1;
    }
    return 0;
}

custos_err custos_engine_request_query(custos_engine *e, const custos_request_filter *f,
                                       custos_request_cb cb, void *ctx, char *next_cursor,
                                       size_t cap)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_query q;
    custos_store_cursor after;
    page_ctx p;

    memset(&q, 0, sizeof(q));
    memset(&p, 0, sizeof(p));
    CUSTOS_ENSURE(e != NULL && f != NULL && cb != NULL && next_cursor != NULL &&
                      cap >= CUSTOS_CURSOR_MAX,
                  CUSTOS_ERR_ARG, "query", "missing argument");
    next_cursor[0] = '\0';
    CUSTOS_GUARD(limit_of(&p.limit, f->limit));
    CUSTOS_ENSURE(f->state == 0 ||
                      (f->state >= CUSTOS_STATE_PENDING && f->state <= CUSTOS_STATE_REVOKED),
                  CUSTOS_ERR_ARG, "state", "unknown state");
    CUSTOS_ENSURE(f->component == NULL || f->system != NULL, CUSTOS_ERR_ARG, "component",
                  "a component filter needs a system filter");
    CUSTOS_ENSURE(f->system == NULL || custos_name_valid(f->system, CUSTOS_MAX_NAME_LEN),
                  CUSTOS_ERR_ARG, "system", "not a system name");
    CUSTOS_ENSURE(f->component == NULL || custos_name_valid(f->component, CUSTOS_MAX_NAME_LEN),
                  CUSTOS_ERR_ARG, "component", "not a component name");
    CUSTOS_ENSURE(f->q == NULL ||
                      (f->q[0] != '\0' && custos_text_valid(f->q, CUSTOS_MAX_HARDWARE_ID_LEN)),
                  CUSTOS_ERR_ARG, "q", "the search text must be 1..%d printable bytes",
                  CUSTOS_MAX_HARDWARE_ID_LEN);
    if (f->cursor != NULL && f->cursor[0] != '\0') {
        CUSTOS_GUARD(custos_engine_cursor_decode(&after, f->cursor));
        q.after = &after;
    }
    q.state = f->state;
    q.system = f->system;
    q.component = f->component;
    q.prefix = f->q;
    q.limit = p.limit + 1;
    p.cb = cb;
    p.ctx = ctx;
    CUSTOS_GUARD(e->st->ops->request_query(e->st->ctx, &q, page_one, &p));
    if (p.more && !p.stopped)
        CUSTOS_GUARD(custos_engine_cursor_encode(next_cursor, cap, p.last_created, p.last_id));
    /* a page cut short by the callback has no defined next page */
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_engine_request_counts(size_t out[8], custos_engine *e, const char *system,
                                        const char *component)
{
    if (out != NULL)
        memset(out, 0, 8 * sizeof(out[0]));
    if (out == NULL || e == NULL || (component != NULL && system == NULL))
        return custos_error_set(CUSTOS_ERR_ARG, "counts", "missing argument");
    return e->st->ops->request_counts(e->st->ctx, out, system, component);
}

/* ---- request detail ------------------------------------------------------- */

static custos_err meta_json(json_t **out, const custos_meta_entry *m, size_t n)
{
    size_t i;
    *out = json_object();
    if (*out == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, "metadata", "out of memory");
    for (i = 0; i < n; i++)
        if (json_object_set_new(*out, m[i].key, json_string(m[i].value)) != 0)
            return custos_error_set(CUSTOS_ERR_NOMEM, "metadata", "out of memory");
    return CUSTOS_OK;
}

static custos_err subject_text(char *out, size_t cap, const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    out[0] = '\0';
    if (b == NULL || X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) < 0) {
        BIO_free(b);
        return custos_error_set(CUSTOS_ERR_NOMEM, "subject", "out of memory");
    }
    n = BIO_get_mem_data(b, &data);
    if (n > 0)
        snprintf(out, cap, "%.*s", (int)(n < (long)cap ? n : (long)cap - 1), data);
    BIO_free(b);
    return CUSTOS_OK;
}

static custos_err cert_json(json_t **out, const uint8_t *der, size_t len, const char *tmpl)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *x = NULL;
    json_t *j = NULL;
    char serial[41], subject[512], hex[65];
    uint8_t digest[32];
    int64_t nb = 0, na = 0;

    *out = NULL;
    CUSTOS_GUARD(custos_x509_from_der(&x, der, len, "certificate"));
    CUSTOS_GUARD(custos_ca_serial_hex(serial, x));
    CUSTOS_GUARD(subject_text(subject, sizeof(subject), X509_get_subject_name(x)));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&nb, X509_get0_notBefore(x)));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&na, X509_get0_notAfter(x)));
    custos_sha256(digest, der, len);
    custos_hex_encode(hex, digest, sizeof(digest));
    j = json_pack("{s:s, s:s, s:s}", "serial", serial, "subject", subject, "sha256", hex);
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_NOMEM, "certificate", "out of memory");
    if (tmpl != NULL)
        CUSTOS_GUARD(set_new(j, "template", json_string(tmpl)));
    CUSTOS_GUARD(set_new(j, "not_before", time_json(nb)));
    CUSTOS_GUARD(set_new(j, "not_after", time_json(na)));
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(j);
    X509_free(x);
    return ret;
}

static int cert_append(const custos_store_cert *c, void *ctx)
{
    json_t *j = NULL;
    custos_err r = cert_json(&j, c->der, c->der_len, c->template_name);
    if (r < 0)
        return r;
    return json_array_append_new(ctx, j) == 0 ? 0 : CUSTOS_ERR_NOMEM;
}

static custos_err signer_json(json_t **out, custos_engine *e, const custos_store_request *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_package p;
    custos_store_cert c;
    int initial = strcmp(r->sum.kind, "initial") == 0;

    memset(&p, 0, sizeof(p));
    memset(&c, 0, sizeof(c));
    *out = NULL;
    if (initial) {
        CUSTOS_GUARD(e->st->ops->package_get(e->st->ctx, &p, r->package_id));
        CUSTOS_GUARD(cert_json(out, p.cert_der, p.cert_len, NULL));
    } else {
        CUSTOS_GUARD(e->st->ops->cert_get(e->st->ctx, &c, r->signer_serial));
        CUSTOS_GUARD(cert_json(out, c.der, c.der_len, NULL));
    }
    json_object_del(*out, "sha256");
    CUSTOS_GUARD(set_new(*out, "kind", json_string(initial ? "bootstrap" : "device")));
    if (initial)
        CUSTOS_GUARD(set_new(*out, "package_id", json_string(r->package_id)));
    ret = CUSTOS_OK;
out:
    if (ret < 0) {
        json_decref(*out);
        *out = NULL;
    }
    custos_store_package_clear(&p);
    custos_store_cert_clear(&c);
    return ret;
}

static custos_err keys_json(json_t **out, custos_engine *e, const custos_request_doc *d)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const engine_system *sys = custos_engine_system(e, d->system);
    const custos_component_def *comp =
        sys != NULL ? custos_system_component(sys->def, d->component) : NULL;
    json_t *t = NULL, *k = NULL;
    size_t i, j;

    custos_error_clear();
    *out = json_array();
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_NOMEM, "keys", "out of memory");
    for (i = 0; i < d->n_keys; i++) {
        custos_alg alg = custos_key_alg(X509_REQ_get0_pubkey(d->keys[i].csr));
        const char *alg_name = alg != CUSTOS_ALG_NONE ? custos_alg_name(alg) : "unknown";
        json_t *usage = NULL;
        for (j = 0; comp != NULL && j < comp->n_templates; j++) {
            if (strcmp(comp->templates[j].name, d->keys[i].template_name) != 0)
                continue;
            CUSTOS_GUARD(custos_template_to_json(&t, &comp->templates[j]));
            usage = json_incref(json_object_get(t, "usage"));
            json_decref(t);
            t = NULL;
        }
        k = json_pack("{s:s, s:s, s:o}", "name", d->keys[i].template_name, "alg", alg_name, "usage",
                      usage != NULL ? usage : json_array());
        CUSTOS_ENSURE(k != NULL && json_array_append_new(*out, k) == 0, CUSTOS_ERR_NOMEM, "keys",
                      "out of memory");
        k = NULL;
    }
    ret = CUSTOS_OK;
out:
    json_decref(t);
    return ret;
}

static int history_append(const custos_store_audit *a, void *ctx)
{
    custos_audit_entry en = {a->seq, a->time, a->actor, a->from, a->action, a->object, a->detail};
    json_t *j = NULL;
    custos_err r = custos_audit_entry_json(&j, &en);
    if (r < 0)
        return r;
    return json_array_append_new(ctx, j) == 0 ? 0 : CUSTOS_ERR_NOMEM;
}

custos_err custos_engine_request_detail(json_t **out, custos_engine *e, const char *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_request r;
    custos_request_doc *d = NULL;
    custos_store_audit_query hq;
    json_t *j = NULL, *v = NULL, *ident = NULL;
    char idbuf[CUSTOS_ID_LEN + 1];

    memset(&r, 0, sizeof(r));
    memset(&hq, 0, sizeof(hq));
    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "id", "missing argument");
    *out = NULL;
    CUSTOS_ENSURE(id != NULL && custos_id_valid(id), CUSTOS_ERR_NOT_FOUND, "id",
                  "no request with this id");
    memcpy(idbuf, id, sizeof(idbuf));
    CUSTOS_GUARD(e->st->ops->request_get(e->st->ctx, &r, idbuf));
    CUSTOS_GUARD(custos_request_decode_stored(&d, r.der, r.der_len));
    CUSTOS_GUARD(custos_request_summary_json(&j, &r.sum));
    CUSTOS_GUARD(set_new(j, "hardware_id", json_string(d->hardware_id)));
    ident = json_pack("{s:s, s:s, s:s, s:s}", "serial", d->serial, "hardware_id", d->hardware_id,
                      "model", d->model, "firmware", d->firmware);
    CUSTOS_ENSURE(ident != NULL, CUSTOS_ERR_NOMEM, "identity", "out of memory");
    CUSTOS_GUARD(meta_json(&v, d->manufacturer, d->n_manufacturer));
    CUSTOS_GUARD(set_new(ident, "manufacturer", v));
    v = NULL;
    CUSTOS_GUARD(set_new(j, "identity", ident));
    ident = NULL;
    CUSTOS_GUARD(meta_json(&v, d->metadata, d->n_metadata));
    CUSTOS_GUARD(set_new(j, "metadata", v));
    v = NULL;
    CUSTOS_GUARD(keys_json(&v, e, d));
    CUSTOS_GUARD(set_new(j, "keys", v));
    v = NULL;
    CUSTOS_GUARD(signer_json(&v, e, &r));
    CUSTOS_GUARD(set_new(j, "signer", v));
    v = json_array();
    CUSTOS_ENSURE(v != NULL, CUSTOS_ERR_NOMEM, "certificates", "out of memory");
    CUSTOS_GUARD(e->st->ops->cert_list_by_request(e->st->ctx, idbuf, cert_append, v));
    CUSTOS_GUARD(set_new(j, "certificates", v));
    v = json_array();
    CUSTOS_ENSURE(v != NULL, CUSTOS_ERR_NOMEM, "history", "out of memory");
    hq.object = idbuf;
    hq.object2 = r.sum.device_id[0] != '\0' ? r.sum.device_id : NULL;
    hq.oldest_first = 1;
    hq.limit = HISTORY_MAX;
    CUSTOS_GUARD(e->st->ops->audit_query(e->st->ctx, &hq, history_append, v));
    CUSTOS_GUARD(set_new(j, "history", v));
    v = NULL;
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(v);
    json_decref(ident);
    json_decref(j);
    custos_request_doc_free(d);
    custos_store_request_clear(&r);
    return ret;
}

/* ---- systems -------------------------------------------------------------- */

typedef struct system_list_ctx {
    custos_system_cb cb;
    void *ctx;
} system_list_ctx;

static int system_one(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    system_list_ctx *l = ctx;
    (void)len;
    return l->cb(name, (const char *)data, l->ctx) != 0 ? 1 : 0;
}

custos_err custos_engine_system_list(custos_engine *e, custos_system_cb cb, void *ctx)
{
    system_list_ctx l = {cb, ctx};
    if (e == NULL || cb == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "systems", "missing argument");
    return e->st->ops->system_list(e->st->ctx, system_one, &l);
}

custos_err custos_engine_system_get(char **out_json, custos_engine *e, const char *name)
{
    custos_err r;
    if (out_json != NULL)
        *out_json = NULL;
    if (out_json == NULL || e == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "system", "missing argument");
    if (name == NULL || !custos_name_valid(name, CUSTOS_MAX_NAME_LEN))
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "unknown system");
    r = e->st->ops->system_get(e->st->ctx, out_json, name);
    if (r == CUSTOS_ERR_NOT_FOUND)
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", name);
    return r;
}

/* ---- packages ------------------------------------------------------------- */

typedef struct pkg_page_ctx {
    custos_package_cb cb;
    void *ctx;
    size_t limit, seen;
    int stopped, more;
    custos_store_cursor last;
} pkg_page_ctx;

static int pkg_one(const custos_store_package *p, void *ctx)
{
    pkg_page_ctx *l = ctx;
    custos_package_info info;
    if (l->seen == l->limit) {
        l->more = 1;
        return 1;
    }
    l->seen++;
    l->last.created = p->created;
    memcpy(l->last.id, p->id, sizeof(l->last.id));
    memset(&info, 0, sizeof(info));
    memcpy(info.package_id, p->id, sizeof(info.package_id));
    memcpy(info.system, p->system, sizeof(info.system));
    info.created = p->created;
    info.expires = p->expires;
    info.has_file = p->has_file;
    if (l->cb(&info, l->ctx) != 0) {
        l->stopped = 1;
        return 1;
    }
    return 0;
}

custos_err custos_engine_package_list(custos_engine *e, const char *system, size_t limit,
                                      const char *cursor, custos_package_cb cb, void *ctx,
                                      char *next_cursor, size_t cap)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_cursor after;
    pkg_page_ctx l;

    memset(&l, 0, sizeof(l));
    CUSTOS_ENSURE(e != NULL && cb != NULL && next_cursor != NULL && cap >= CUSTOS_CURSOR_MAX,
                  CUSTOS_ERR_ARG, "packages", "missing argument");
    next_cursor[0] = '\0';
    CUSTOS_GUARD(limit_of(&l.limit, limit));
    CUSTOS_ENSURE(system == NULL || custos_name_valid(system, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG,
                  "system", "not a system name");
    if (cursor != NULL && cursor[0] != '\0')
        CUSTOS_GUARD(custos_engine_cursor_decode(&after, cursor));
    l.cb = cb;
    l.ctx = ctx;
    CUSTOS_GUARD(e->st->ops->package_query(e->st->ctx, system,
                                           cursor != NULL && cursor[0] != '\0' ? &after : NULL,
                                           l.limit + 1, pkg_one, &l));
    if (l.more && !l.stopped)
        CUSTOS_GUARD(custos_engine_cursor_encode(next_cursor, cap, l.last.created, l.last.id));
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_engine_package_get_file(uint8_t **out, size_t *out_len, custos_engine *e,
                                          const char *id)
{
    custos_err r;
    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL || out_len == NULL || e == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "package_id", "missing argument");
    if (id == NULL || !custos_id_valid(id))
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "package_id", "no such package");
    r = e->st->ops->package_get_file(e->st->ctx, out, out_len, id);
    if (r == CUSTOS_ERR_NOT_FOUND)
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "package_id",
                                "no stored file for package %s (unknown, or made before "
                                "packages were kept)",
                                id);
    return r;
}

/* ---- audit ---------------------------------------------------------------- */

custos_err custos_audit_entry_json(json_t **out, const custos_audit_entry *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL, *detail = NULL;
    CUSTOS_ENSURE(out != NULL && a != NULL, CUSTOS_ERR_ARG, "audit", "missing argument");
    *out = NULL;
    if (a->detail == NULL ||
        custos_json_parse(&detail, (const uint8_t *)a->detail, strlen(a->detail), "detail") < 0) {
        custos_error_clear();
        detail = json_object();
    }
    j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:o}", "seq", (json_int_t)a->seq, "actor",
                  a->actor != NULL ? a->actor : "", "from", a->from != NULL ? a->from : "",
                  "action", a->action != NULL ? a->action : "", "object",
                  a->object != NULL ? a->object : "", "detail", detail);
    detail = NULL; /* "o" took it, also on failure */
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(set_new(j, "time", time_json(a->time)));
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

static custos_err audit_cursor_decode(int64_t *out, const char *cursor)
{
    uint8_t text[32];
    size_t n = 0;
    char *end = NULL;
    long long v;
    *out = 0;
    if (strlen(cursor) >= CUSTOS_CURSOR_MAX ||
        custos_engine_b64url_decode(text, sizeof(text) - 1, &n, cursor, "cursor") < 0)
        goto bad;
    text[n] = '\0';
    if (n < 2 || text[0] != 'a' || text[1] != '.' || memchr(text, '\0', n) != NULL)
        goto bad;
    errno = 0;
    v = strtoll((const char *)text + 2, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        goto bad;
    *out = (int64_t)v;
    return CUSTOS_OK;
bad:
    return custos_error_set(CUSTOS_ERR_MALFORMED, "cursor", "not a cursor this server made");
}

typedef struct audit_page_ctx {
    custos_audit_cb cb;
    void *ctx;
    size_t limit, seen;
    int stopped, more;
    int64_t last_seq;
} audit_page_ctx;

static int audit_one(const custos_store_audit *a, void *ctx)
{
    audit_page_ctx *l = ctx;
    custos_audit_entry en = {a->seq, a->time, a->actor, a->from, a->action, a->object, a->detail};
    if (l->seen == l->limit) {
        l->more = 1;
        return 1;
    }
    l->seen++;
    l->last_seq = a->seq;
    if (l->cb(&en, l->ctx) != 0) {
        l->stopped = 1;
        return 1;
    }
    return 0;
}

custos_err custos_engine_audit_list(custos_engine *e, const custos_audit_filter *f,
                                    custos_audit_cb cb, void *ctx, char *next_cursor, size_t cap)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_audit_query q;
    audit_page_ctx l;
    char text[32];

    memset(&q, 0, sizeof(q));
    memset(&l, 0, sizeof(l));
    CUSTOS_ENSURE(e != NULL && f != NULL && cb != NULL && next_cursor != NULL &&
                      cap >= CUSTOS_CURSOR_MAX,
                  CUSTOS_ERR_ARG, "audit", "missing argument");
    next_cursor[0] = '\0';
    CUSTOS_GUARD(limit_of(&l.limit, f->limit));
    CUSTOS_ENSURE(f->since >= 0 && f->until >= 0, CUSTOS_ERR_ARG, "since",
                  "times must not be negative");
    if (f->cursor != NULL && f->cursor[0] != '\0')
        CUSTOS_GUARD(audit_cursor_decode(&q.before_seq, f->cursor));
    q.actor = f->actor;
    q.action = f->action;
    q.object = f->object;
    q.since = f->since;
    q.until = f->until;
    q.limit = l.limit + 1;
    l.cb = cb;
    l.ctx = ctx;
    CUSTOS_GUARD(e->st->ops->audit_query(e->st->ctx, &q, audit_one, &l));
    if (l.more && !l.stopped) {
        snprintf(text, sizeof(text), "a.%lld", (long long)l.last_seq);
        CUSTOS_GUARD(custos_engine_b64url(next_cursor, cap, (const uint8_t *)text, strlen(text)));
    }
    ret = CUSTOS_OK;
out:
    return ret;
}
