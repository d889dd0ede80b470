/* The CA engine: open (and shared open), systems, packages, audit. Creating
 * a data directory is in engine_init.c. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "engine_int.h"

static const char *const STATE_NAMES[] = {
    NULL, "pending", "approved", "certified", "provisioned", "rejected", "expired", "revoked",
};

const char *custos_engine_name_of(const char *const *names, int first, int last, int i)
{
    if (i < first || i > last)
        return "unknown";
    return names[i];
}

int custos_engine_name_find(const char *const *names, int first, int last, const char *name)
{
    int i;
    for (i = first; name != NULL && i <= last; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return 0;
}

const char *custos_state_name(custos_state s)
{
    return custos_engine_name_of(STATE_NAMES, CUSTOS_STATE_PENDING, CUSTOS_STATE_REVOKED, (int)s);
}

custos_state custos_state_from_name(const char *name)
{
    return (custos_state)custos_engine_name_find(STATE_NAMES, CUSTOS_STATE_PENDING,
                                                 CUSTOS_STATE_REVOKED, name);
}

int64_t custos_engine_now(const custos_engine *e)
{
    int64_t t = 0;
    if (e != NULL && e->clock != NULL)
        return e->clock(e->clock_ctx);
    /* The system clock, or the test clock in test builds (custosd checks
     * that a CUSTOS_FAKE_NOW it was given is well formed). */
    if (custos_now(&t, NULL) < 0) {
        custos_error_clear();
        t = (int64_t)time(NULL);
    }
    return t;
}

void custos_engine_set_clock(custos_engine *e, int64_t (*now)(void *ctx), void *ctx)
{
    if (e == NULL)
        return;
    e->clock = now;
    e->clock_ctx = ctx;
}

custos_err custos_engine_audit(custos_engine *e, const custos_actor *actor, const char *action,
                               const char *object, const json_t *detail)
{
    return custos_audit_append(e->st, e->audit_key, custos_engine_now(e), actor, action, object,
                               detail);
}

struct engine_shared {
    atomic_int refs;
    custos_chain_cache *signers;
};

static engine_shared *shared_new(void)
{
    engine_shared *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    sh->signers = custos_chain_cache_new();
    if (sh->signers == NULL) {
        free(sh);
        return NULL;
    }
    atomic_init(&sh->refs, 1);
    return sh;
}

static void shared_unref(engine_shared *sh)
{
    if (sh != NULL && atomic_fetch_sub(&sh->refs, 1) == 1) {
        custos_chain_cache_free(sh->signers);
        free(sh);
    }
}

custos_err custos_engine_tx_begin(custos_engine *e, int *in_tx)
{
    custos_err ret = e->st->ops->begin(e->st->ctx);
    *in_tx = ret == CUSTOS_OK;
    return ret;
}

void custos_engine_tx_end(custos_engine *e, int *in_tx)
{
    if (*in_tx)
        e->st->ops->rollback(e->st->ctx);
    *in_tx = 0;
}

custos_err custos_engine_tx_commit(custos_engine *e, int *in_tx)
{
    custos_err ret = e->st->ops->commit(e->st->ctx);
    if (ret == CUSTOS_OK)
        *in_tx = 0;
    return ret;
}

static custos_err load_system(custos_engine *e, const char *name, const uint8_t *json, size_t len);

const engine_system *custos_engine_system(custos_engine *e, const char *name)
{
    size_t i;
    char *json = NULL;
    custos_err r;

    if (e == NULL || name == NULL) {
        custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "no system given");
        return NULL;
    }
    for (i = 0; i < e->n_systems; i++) {
        if (strcmp(e->systems[i]->def->name, name) == 0) {
            /* An admin may have edited it through another engine. */
            if (e->st->ops->system_get(e->st->ctx, &json, name) == CUSTOS_OK &&
                strcmp(json, e->systems[i]->json) != 0 &&
                engine_system_refresh(e->systems[i], json) != CUSTOS_OK) {
                free(json);
                return NULL;
            }
            free(json);
            custos_error_clear();
            return e->systems[i];
        }
    }
    /* Not loaded here: another engine (worker, process) may have created it. */
    r = e->st->ops->system_get(e->st->ctx, &json, name);
    if (r == CUSTOS_ERR_NOT_FOUND)
        custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", name);
    if (r == CUSTOS_OK)
        r = load_system(e, name, (const uint8_t *)json, strlen(json));
    free(json);
    return r == CUSTOS_OK ? e->systems[e->n_systems - 1] : NULL;
}

custos_err custos_engine_db_path(char *out, size_t cap, const char *dir)
{
    int n = snprintf(out, cap, "%s/%s", dir, CUSTOS_ENGINE_DB);
    if (n < 0 || (size_t)n >= cap)
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "dir", "path too long under %s", dir);
    return CUSTOS_OK;
}

/* ---- open ----------------------------------------------------------------- */

static custos_err load_authority(X509 **out_cert, EVP_PKEY **out_key, custos_engine *e,
                                 const char *name)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *der = NULL;
    size_t len = 0;
    CUSTOS_GUARD(e->st->ops->authority_get(e->st->ctx, &der, &len, name));
    CUSTOS_GUARD(custos_x509_from_der(out_cert, der, len, name));
    if (out_key != NULL) {
        CUSTOS_GUARD(custos_keystore_get(out_key, e->ks, name));
        CUSTOS_ENSURE(X509_check_private_key(*out_cert, *out_key) == 1, CUSTOS_ERR_MISMATCH, name,
                      "key file of %s does not match its certificate", name);
    }
    ret = CUSTOS_OK;
out:
    free(der);
    return ret;
}

static void system_free(engine_system *s)
{
    if (s == NULL)
        return;
    custos_system_free(s->def);
    for (size_t i = 0; i < s->n_retired; i++)
        custos_system_free(s->retired[i]);
    free(s->retired);
    free(s->json);
    X509_free(s->ca);
    EVP_PKEY_free(s->key);
    free(s);
}

/* Verify an issuing CA against the root once, then make it a trust anchor
 * of e->trust (X509_V_FLAG_PARTIAL_CHAIN): every request's chain then stops
 * at an already-verified CA instead of re-checking the root's P-384
 * signature on it each time. */
static custos_err trust_anchor_add(custos_engine *e, X509 *ca)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509_STORE *roots = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    CUSTOS_ENSURE(roots != NULL && ctx != NULL, CUSTOS_ERR_NOMEM, "engine", "out of memory");
    CUSTOS_ENSURE(X509_STORE_add_cert(roots, e->root) == 1, CUSTOS_ERR_INTERNAL, "engine",
                  "cannot build the root store");
    CUSTOS_ENSURE(X509_STORE_CTX_init(ctx, roots, ca, NULL) == 1, CUSTOS_ERR_NOMEM, "engine",
                  "out of memory");
    X509_STORE_CTX_set_time(ctx, 0, (time_t)custos_engine_now(e));
    CUSTOS_ENSURE(X509_verify_cert(ctx) == 1, CUSTOS_ERR_UNTRUSTED, "engine",
                  "issuing CA does not chain to the root: %s",
                  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    CUSTOS_ENSURE(X509_STORE_add_cert(e->trust, ca) == 1, CUSTOS_ERR_INTERNAL, "engine",
                  "cannot add the issuing CA to the trust store");
    ret = CUSTOS_OK;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(roots);
    return ret;
}

/* Append a loaded system (taken, also on failure). */
static custos_err push_system(custos_engine *e, engine_system *s)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    engine_system **grown = realloc(e->systems, (e->n_systems + 1) * sizeof(*grown));
    CUSTOS_ENSURE(grown != NULL, CUSTOS_ERR_NOMEM, "system", "out of memory");
    e->systems = grown;
    e->systems[e->n_systems++] = s;
    s = NULL;
    ret = CUSTOS_OK;
out:
    system_free(s);
    return ret;
}

/* Takes ownership of def, ca and key (even on failure). */
static custos_err add_system(custos_engine *e, custos_system_def *def, const char *json,
                             size_t json_len, X509 *ca, EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    engine_system *s = calloc(1, sizeof(*s));
    char *copy = strndup(json, json_len);
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        custos_system_free(def);
        X509_free(ca);
        EVP_PKEY_free(key);
        return custos_error_set(CUSTOS_ERR_NOMEM, "system", "out of memory");
    }
    s->def = def;
    s->json = copy;
    s->ca = ca;
    s->key = key;
    CUSTOS_GUARD(trust_anchor_add(e, ca));
    ret = push_system(e, s);
    s = NULL;
out:
    system_free(s);
    return ret;
}

static custos_err load_system(custos_engine *e, const char *name, const uint8_t *json, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_system_def *def = NULL;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    char auth[CUSTOS_MAX_NAME_LEN + 16];

    CUSTOS_GUARD(custos_system_parse(&def, json, len));
    CUSTOS_ENSURE(strcmp(def->name, name) == 0, CUSTOS_ERR_MALFORMED, "system",
                  "stored system %s has name %s", name, def->name);
    snprintf(auth, sizeof(auth), "%s%s", CUSTOS_AUTH_SYSTEM_PREFIX, name);
    CUSTOS_GUARD(load_authority(&ca, &key, e, auth));
    ret = add_system(e, def, (const char *)json, len, ca, key);
    def = NULL;
    ca = NULL;
    key = NULL;
out:
    custos_system_free(def);
    X509_free(ca);
    EVP_PKEY_free(key);
    return ret;
}

static int load_system_cb(const char *name, const uint8_t *json, size_t len, void *ctx)
{
    custos_err r = load_system(ctx, name, json, len);
    return r < 0 ? r : 0;
}

custos_err custos_engine_open(custos_engine **out, const char *dir)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    char path[PATH_MAX];

    CUSTOS_ENSURE(out != NULL && dir != NULL, CUSTOS_ERR_ARG, "dir", "no data directory");
    *out = NULL;
    /* Register the Custos OIDs before any DER is parsed, so parsed objects
     * resolve to their NIDs. */
    CUSTOS_ENSURE(custos_oid_nid(CUSTOS_OID_CT_PACKAGE) != NID_undef, CUSTOS_ERR_INTERNAL, "oid",
                  "cannot register the Custos object identifiers");
    e = calloc(1, sizeof(*e));
    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_NOMEM, "engine", "out of memory");
    CUSTOS_GUARD(custos_strlcpy_checked(e->dir, sizeof(e->dir), dir, "dir"));
    CUSTOS_GUARD(custos_engine_db_path(path, sizeof(path), dir));
    CUSTOS_GUARD(custos_store_sqlite_open(&e->st, path, 0));
    CUSTOS_GUARD(custos_keystore_open(&e->ks, dir));
    CUSTOS_GUARD(custos_keystore_derive(e->audit_key, e->ks, CUSTOS_AUDIT_KEY_LABEL));
    CUSTOS_GUARD(load_authority(&e->root, &e->root_key, e, CUSTOS_AUTH_ROOT));
    CUSTOS_GUARD(load_authority(&e->bootstrap_ca, &e->bootstrap_key, e, CUSTOS_AUTH_BOOTSTRAP));
    CUSTOS_GUARD(load_authority(&e->pkg_cert, &e->pkg_key, e, CUSTOS_AUTH_PACKAGE_SIGNING));
    CUSTOS_GUARD(load_authority(&e->prof_cert, &e->prof_key, e, CUSTOS_AUTH_PROFILE_SIGNING));
    CUSTOS_GUARD(load_authority(&e->mock_root, &e->mock_root_key, e, CUSTOS_AUTH_MOCK_ROOT));
    CUSTOS_GUARD(
        load_authority(&e->mock_prof_cert, &e->mock_prof_key, e, CUSTOS_AUTH_MOCK_PROFILE_SIGNING));
    e->trust = X509_STORE_new();
    e->shared = shared_new();
    e->signers = e->shared != NULL ? e->shared->signers : NULL;
    e->bootstrap_chain = sk_X509_new_null();
    CUSTOS_ENSURE(e->trust != NULL && e->signers != NULL && e->bootstrap_chain != NULL,
                  CUSTOS_ERR_NOMEM, "engine", "out of memory");
    CUSTOS_ENSURE(X509_STORE_add_cert(e->trust, e->root) == 1 &&
                      X509_STORE_set_flags(e->trust, X509_V_FLAG_PARTIAL_CHAIN) == 1 &&
                      sk_X509_push(e->bootstrap_chain, e->bootstrap_ca) > 0,
                  CUSTOS_ERR_INTERNAL, "engine", "cannot build the trust store");
    CUSTOS_GUARD(trust_anchor_add(e, e->bootstrap_ca));
    CUSTOS_GUARD(e->st->ops->system_list(e->st->ctx, load_system_cb, e));
    *out = e;
    e = NULL;
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret;
}

/* ---- shared open ---------------------------------------------------------- */

static int ref_x509(X509 **dst, X509 *src)
{
    *dst = NULL;
    if (src == NULL || X509_up_ref(src) != 1)
        return 0;
    *dst = src;
    return 1;
}

static int ref_key(EVP_PKEY **dst, EVP_PKEY *src)
{
    *dst = NULL;
    if (src == NULL || EVP_PKEY_up_ref(src) != 1)
        return 0;
    *dst = src;
    return 1;
}

static custos_err share_system(custos_engine *e, const engine_system *from)
{
    engine_system *s = calloc(1, sizeof(*s));
    custos_system_def *def = malloc(sizeof(*def));
    if (s == NULL || def == NULL) {
        free(s);
        free(def);
        return custos_error_set(CUSTOS_ERR_NOMEM, "system", "out of memory");
    }
    memcpy(def, from->def, sizeof(*def)); /* plain data, no pointers */
    s->def = def;
    s->json = from->json != NULL ? strdup(from->json) : NULL;
    if (s->json == NULL || !ref_x509(&s->ca, from->ca) || !ref_key(&s->key, from->key)) {
        system_free(s);
        return custos_error_set(CUSTOS_ERR_INTERNAL, "system", "cannot share a system");
    }
    return push_system(e, s); /* its CA is already an anchor of the shared store */
}

custos_err custos_engine_open_shared(custos_engine **out, const custos_engine *parent)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    char path[PATH_MAX];
    size_t i;

    CUSTOS_ENSURE(out != NULL && parent != NULL, CUSTOS_ERR_ARG, "engine", "no parent engine");
    *out = NULL;
    e = calloc(1, sizeof(*e));
    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_NOMEM, "engine", "out of memory");
    memcpy(e->dir, parent->dir, sizeof(e->dir));
    CUSTOS_GUARD(custos_engine_db_path(path, sizeof(path), e->dir));
    CUSTOS_GUARD(custos_store_sqlite_open(&e->st, path, 0));
    CUSTOS_GUARD(custos_keystore_open(&e->ks, e->dir));
    memcpy(e->audit_key, parent->audit_key, sizeof(e->audit_key));
    CUSTOS_ENSURE(
        ref_x509(&e->root, parent->root) && ref_key(&e->root_key, parent->root_key) &&
            ref_x509(&e->bootstrap_ca, parent->bootstrap_ca) &&
            ref_key(&e->bootstrap_key, parent->bootstrap_key) &&
            ref_x509(&e->pkg_cert, parent->pkg_cert) && ref_key(&e->pkg_key, parent->pkg_key) &&
            ref_x509(&e->prof_cert, parent->prof_cert) && ref_key(&e->prof_key, parent->prof_key) &&
            ref_x509(&e->mock_root, parent->mock_root) &&
            ref_key(&e->mock_root_key, parent->mock_root_key) &&
            ref_x509(&e->mock_prof_cert, parent->mock_prof_cert) &&
            ref_key(&e->mock_prof_key, parent->mock_prof_key),
        CUSTOS_ERR_INTERNAL, "engine", "cannot share the CA keys");
    CUSTOS_ENSURE(X509_STORE_up_ref(parent->trust) == 1, CUSTOS_ERR_INTERNAL, "engine",
                  "cannot share the trust store");
    e->trust = parent->trust;
    e->shared = parent->shared;
    atomic_fetch_add(&e->shared->refs, 1);
    e->signers = e->shared->signers;
    e->bootstrap_chain = sk_X509_new_null();
    CUSTOS_ENSURE(e->bootstrap_chain != NULL &&
                      sk_X509_push(e->bootstrap_chain, e->bootstrap_ca) > 0,
                  CUSTOS_ERR_NOMEM, "engine", "out of memory");
    for (i = 0; i < parent->n_systems; i++)
        CUSTOS_GUARD(share_system(e, parent->systems[i]));
    e->clock = parent->clock;
    e->clock_ctx = parent->clock_ctx;
    *out = e;
    e = NULL;
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    return ret;
}

void custos_engine_free(custos_engine *e)
{
    size_t i;
    if (e == NULL)
        return;
    for (i = 0; i < e->n_systems; i++)
        system_free(e->systems[i]);
    for (i = 0; i < ENGINE_DOC_CACHE; i++)
        custos_request_doc_free(e->doc_cache[i].doc);
    OPENSSL_cleanse(e->audit_key, sizeof(e->audit_key));
    free(e->systems);
    sk_X509_free(e->bootstrap_chain);
    X509_STORE_free(e->trust);
    shared_unref(e->shared);
    X509_free(e->root);
    X509_free(e->bootstrap_ca);
    X509_free(e->pkg_cert);
    X509_free(e->prof_cert);
    X509_free(e->mock_root);
    X509_free(e->mock_prof_cert);
    EVP_PKEY_free(e->root_key);
    EVP_PKEY_free(e->bootstrap_key);
    EVP_PKEY_free(e->pkg_key);
    EVP_PKEY_free(e->prof_key);
    EVP_PKEY_free(e->mock_root_key);
    EVP_PKEY_free(e->mock_prof_key);
    custos_keystore_free(e->ks);
    custos_store_free(e->st);
    free(e);
}

/* ---- systems -------------------------------------------------------------- */

custos_err custos_engine_system_create(custos_engine *e, const uint8_t *json, size_t len,
                                       const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_system_def *def = NULL;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    json_t *j = NULL, *detail = NULL;
    char *canon = NULL;
    size_t canon_len = 0;
    uint8_t *der = NULL;
    size_t der_len = 0;
    char auth[CUSTOS_MAX_NAME_LEN + 16], serial[41];
    int key_written = 0, in_tx = 0;
    int64_t now = custos_engine_now(e);

    CUSTOS_ENSURE(e != NULL && json != NULL, CUSTOS_ERR_ARG, "system", "no system definition");
    CUSTOS_GUARD(custos_system_parse(&def, json, len));
    CUSTOS_GUARD(custos_engine_system_gateway_check(def));
    CUSTOS_ENSURE(custos_engine_system(e, def->name) == NULL, CUSTOS_ERR_EXISTS, "name",
                  "system %s already exists", def->name);
    custos_error_clear();
    CUSTOS_GUARD(custos_system_to_json(&j, def));
    CUSTOS_GUARD(custos_json_dump(&canon, &canon_len, j));
    CUSTOS_GUARD(custos_ca_system_create(&ca, &key, def->name, e->root, e->root_key, now));
    CUSTOS_GUARD(custos_x509_to_der(&der, &der_len, ca));
    CUSTOS_GUARD(custos_ca_serial_hex(serial, ca));
    snprintf(auth, sizeof(auth), "%s%s", CUSTOS_AUTH_SYSTEM_PREFIX, def->name);
    /* The write transaction first (BEGIN IMMEDIATE: one writer at a time,
     * across processes), then the check against the store itself, and only
     * then the key file: a concurrent create of the same name waits here and
     * finds the committed system, never touching the winner's key file. */
    CUSTOS_GUARD(e->st->ops->begin(e->st->ctx));
    in_tx = 1;
    {
        char *existing = NULL;
        custos_err r = e->st->ops->system_get(e->st->ctx, &existing, def->name);
        free(existing);
        CUSTOS_ENSURE(r == CUSTOS_ERR_NOT_FOUND, r == CUSTOS_OK ? CUSTOS_ERR_EXISTS : r, "name",
                      "system %s already exists", def->name);
        custos_error_clear();
    }
    CUSTOS_GUARD(custos_keystore_put(e->ks, auth, key));
    key_written = 1;
    CUSTOS_GUARD(e->st->ops->system_put(e->st->ctx, def->name, canon, now));
    CUSTOS_GUARD(e->st->ops->authority_put(e->st->ctx, auth, der, der_len, now));
    detail =
        json_pack("{s:s, s:I}", "ca_serial", serial, "components", (json_int_t)def->n_components);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_audit(e, actor, "system.create", def->name, detail));
    CUSTOS_GUARD(e->st->ops->commit(e->st->ctx));
    in_tx = 0;
    key_written = 0;
    ret = add_system(e, def, canon, canon_len, ca, key);
    def = NULL;
    ca = NULL;
    key = NULL;
out:
    if (in_tx)
        e->st->ops->rollback(e->st->ctx);
    if (key_written)
        custos_keystore_remove(e->ks, auth);
    json_decref(detail);
    json_decref(j);
    free(canon);
    free(der);
    custos_system_free(def);
    X509_free(ca);
    EVP_PKEY_free(key);
    return ret;
}

/* ---- packages ------------------------------------------------------------- */

static custos_err record_package(custos_engine *e, const custos_package_doc *d, const uint8_t *file,
                                 size_t file_len, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_package p;
    json_t *detail = NULL;
    char serial[41];
    int in_tx = 0;

    memset(&p, 0, sizeof(p));
    memcpy(p.id, d->package_id, sizeof(p.id));
    memcpy(p.system, d->system, sizeof(p.system));
    p.created = d->created;
    p.expires = d->expires;
    CUSTOS_GUARD(custos_x509_to_der(&p.cert_der, &p.cert_len, d->bootstrap_cert));
    CUSTOS_GUARD(custos_ca_serial_hex(serial, d->bootstrap_cert));
    /* The .mcpp is kept for download (GET /api/v1/packages/{id}/file): its
     * bootstrap key is encrypted under the package passphrase, which is not
     * stored. */
    p.file = (uint8_t *)file;
    p.file_len = file_len;
    detail = json_pack("{s:s, s:s, s:I}", "system", d->system, "bootstrap_serial", serial,
                       "expires", (json_int_t)d->expires);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(e->st->ops->begin(e->st->ctx));
    in_tx = 1;
    CUSTOS_GUARD(e->st->ops->package_put(e->st->ctx, &p));
    CUSTOS_GUARD(custos_engine_audit(e, actor, "package.create", d->package_id, detail));
    CUSTOS_GUARD(e->st->ops->commit(e->st->ctx));
    in_tx = 0;
    ret = CUSTOS_OK;
out:
    if (in_tx)
        e->st->ops->rollback(e->st->ctx);
    json_decref(detail);
    p.file = NULL; /* borrowed */
    custos_store_package_clear(&p);
    return ret;
}

custos_err custos_engine_package_create(uint8_t **out, size_t *out_len, custos_engine *e,
                                        const char *system, const char *passphrase,
                                        size_t passphrase_len, unsigned valid_days,
                                        const custos_actor *actor)
{
    custos_package_info info;
    return custos_engine_package_create_ex(&info, out, out_len, e, system, passphrase,
                                           passphrase_len, valid_days, actor);
}

custos_err custos_engine_package_create_ex(custos_package_info *out_info, uint8_t **out,
                                           size_t *out_len, custos_engine *e, const char *system,
                                           const char *passphrase, size_t passphrase_len,
                                           unsigned valid_days, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const engine_system *sys;
    custos_package_doc *d = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    custos_signer signer;
    uint8_t *der = NULL;
    size_t der_len = 0, i;
    int64_t now = custos_engine_now(e);

    CUSTOS_ENSURE(out_info != NULL && out != NULL && out_len != NULL && e != NULL, CUSTOS_ERR_ARG,
                  "package", "missing argument");
    memset(out_info, 0, sizeof(*out_info));
    *out = NULL;
    *out_len = 0;
    sys = custos_engine_system(e, system);
    CUSTOS_ENSURE(sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s",
                  system != NULL ? system : "(null)");
    CUSTOS_ENSURE(passphrase != NULL && passphrase_len > 0, CUSTOS_ERR_ARG, "passphrase",
                  "the package needs a passphrase");
    CUSTOS_ENSURE(valid_days >= 1 && valid_days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_ARG,
                  "valid_days", "valid_days %u out of range 1..%d", valid_days,
                  CUSTOS_MAX_VALID_DAYS);
    d = custos_package_doc_new();
    chain = sk_X509_new_null();
    CUSTOS_ENSURE(d != NULL && chain != NULL, CUSTOS_ERR_NOMEM, "package", "out of memory");
    CUSTOS_GUARD(custos_id_new(d->package_id, NULL));
    memcpy(d->system, sys->def->name, sizeof(d->system));
    d->created = now;
    for (i = 0; i < sys->def->n_components; i++)
        d->components[i] = sys->def->components[i];
    d->n_components = sys->def->n_components;
    d->services = sys->def->services;
    CUSTOS_GUARD(custos_key_generate(&key, CUSTOS_ALG_ECDSA_P256));
    CUSTOS_GUARD(custos_ca_bootstrap_cert(&d->bootstrap_cert, key, d->system, d->package_id,
                                          valid_days, e->bootstrap_ca, e->bootstrap_key, now));
    CUSTOS_GUARD(custos_asn1_time_to_unix(&d->expires, X509_get0_notAfter(d->bootstrap_cert)));
    if (d->root_of_trust == NULL)
        d->root_of_trust = sk_X509_new_null();
    if (d->bootstrap_chain == NULL)
        d->bootstrap_chain = sk_X509_new_null();
    CUSTOS_ENSURE(d->root_of_trust != NULL && d->bootstrap_chain != NULL &&
                      X509_up_ref(e->root) == 1,
                  CUSTOS_ERR_NOMEM, "package", "out of memory");
    if (sk_X509_push(d->root_of_trust, e->root) <= 0) {
        X509_free(e->root);
        ret = custos_error_set(CUSTOS_ERR_NOMEM, "package", "out of memory");
        goto out;
    }
    CUSTOS_ENSURE(X509_up_ref(e->bootstrap_ca) == 1, CUSTOS_ERR_INTERNAL, "package", "up_ref");
    if (sk_X509_push(d->bootstrap_chain, e->bootstrap_ca) <= 0) {
        X509_free(e->bootstrap_ca);
        ret = custos_error_set(CUSTOS_ERR_NOMEM, "package", "out of memory");
        goto out;
    }
    CUSTOS_GUARD(custos_package_key_encrypt(&d->bootstrap_key_enc, &d->bootstrap_key_enc_len, key,
                                            passphrase, passphrase_len));
    CUSTOS_ENSURE(sk_X509_push(chain, e->root) > 0, CUSTOS_ERR_NOMEM, "package", "out of memory");
    signer.cert = e->pkg_cert;
    signer.key = e->pkg_key;
    signer.chain = chain;
    CUSTOS_GUARD(custos_package_encode(&der, &der_len, d, &signer));
    CUSTOS_GUARD(record_package(e, d, der, der_len, actor));
    memcpy(out_info->package_id, d->package_id, sizeof(out_info->package_id));
    memcpy(out_info->system, d->system, sizeof(out_info->system));
    out_info->created = d->created;
    out_info->expires = d->expires;
    out_info->has_file = 1;
    *out = der;
    *out_len = der_len;
    der = NULL;
    ret = CUSTOS_OK;
out:
    free(der);
    sk_X509_free(chain);
    EVP_PKEY_free(key);
    custos_package_doc_free(d);
    return ret;
}

/* ---- audit and listing ---------------------------------------------------- */

custos_err custos_engine_audit_verify(size_t *out_count, custos_engine *e)
{
    if (out_count != NULL)
        *out_count = 0;
    if (out_count == NULL || e == NULL)
        return custos_error_set(CUSTOS_ERR_ARG, "audit", "missing argument");
    return custos_audit_verify(out_count, e->st, e->audit_key);
}

typedef struct list_ctx {
    custos_request_cb cb;
    void *ctx;
    custos_store_cursor cursor;
    size_t seen;
    int stopped;
} list_ctx;

static int list_one(const custos_store_request *r, void *ctx)
{
    list_ctx *l = ctx;
    l->seen++;
    l->cursor.created = r->sum.created;
    memcpy(l->cursor.id, r->sum.request_id, sizeof(l->cursor.id));
    if (l->cb(&r->sum, l->ctx) != 0) {
        l->stopped = 1;
        return 1;
    }
    return 0;
}

custos_err custos_engine_request_list(custos_engine *e, custos_state state, custos_request_cb cb,
                                      void *ctx)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    list_ctx l;
    const size_t page = 100;
    int first = 1;

    memset(&l, 0, sizeof(l));
    CUSTOS_ENSURE(e != NULL && cb != NULL, CUSTOS_ERR_ARG, "list", "missing argument");
    l.cb = cb;
    l.ctx = ctx;
    do {
        l.seen = 0;
        CUSTOS_GUARD(e->st->ops->request_list(e->st->ctx, state, first ? NULL : &l.cursor, page,
                                              list_one, &l));
        first = 0;
    } while (!l.stopped && l.seen == page);
    ret = CUSTOS_OK;
out:
    return ret;
}
