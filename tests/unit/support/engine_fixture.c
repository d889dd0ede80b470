/* The CA engine test fixture (see engine_fixture.h). */
#include "support/engine_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

const char EF_SYSTEM_JSON[] =
    "{\"name\":\"pump\",\"display_name\":\"Pump X2\","
    "\"services\":{\"cloud_url\":\"https://custos.example\"},\"renewal_window_days\":30,"
    "\"components\":["
    "{\"name\":\"ctl\",\"templates\":["
    "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],\"valid_days\":365,"
    "\"subject\":\"CN={serial},OU={component},O=Acme Medical\"},"
    "{\"name\":\"sign\",\"algorithm\":\"ecdsa-p384\",\"usage\":[\"signing\"],\"valid_days\":365,"
    "\"subject\":\"CN={serial} {template},OU={component}\"}]},"
    "{\"name\":\"longlived\",\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"],\"valid_days\":36500,"
    "\"subject\":\"CN={serial}\"}]}]}";

const custos_actor EF_ACTOR = {"user:test", "127.0.0.1"};

int64_t ef_fake_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

int ef_setup(void **state)
{
    ef_fx *f = calloc(1, sizeof(*f));
    uint8_t *der = NULL;
    size_t len = 0;
    assert_non_null(f);
    assert_int_equal(testca_tmpdir(f->tmp, sizeof(f->tmp)), 0);
    snprintf(f->dir, sizeof(f->dir), "%s/data", f->tmp);
    OK(custos_engine_init(f->dir));
    OK(custos_engine_open(&f->e, f->dir));
    f->now = (int64_t)time(NULL);
    custos_engine_set_clock(f->e, ef_fake_clock, &f->now);
    OK(custos_engine_system_create(f->e, (const uint8_t *)EF_SYSTEM_JSON, strlen(EF_SYSTEM_JSON),
                                   &EF_ACTOR));
    OK(custos_engine_package_create(&der, &len, f->e, "pump", PASS, strlen(PASS), 30, &EF_ACTOR));
    OK(custos_package_decode(&f->pkg, der, len, NULL, f->now));
    OK(custos_package_key_decrypt(&f->boot_key, f->pkg->bootstrap_key_enc,
                                  f->pkg->bootstrap_key_enc_len, PASS, strlen(PASS)));
    free(der);
    *state = f;
    return 0;
}

int ef_teardown(void **state)
{
    ef_fx *f = *state;
    custos_engine_free(f->e);
    custos_package_doc_free(f->pkg);
    EVP_PKEY_free(f->boot_key);
    testca_rmtree(f->tmp);
    free(f);
    return 0;
}

ef_req_spec ef_initial_spec(const char *serial)
{
    ef_req_spec s = {CUSTOS_REQUEST_INITIAL,
                     "ctl",
                     serial,
                     {"tls", "sign"},
                     {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384},
                     2,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     NULL};
    return s;
}

uint8_t *ef_make_request(size_t *len, ef_fx *f, const ef_req_spec *s, EVP_PKEY *keys[4])
{
    custos_request_doc *d = custos_request_doc_new();
    custos_signer sg;
    uint8_t *der = NULL;
    size_t i;

    assert_non_null(d);
    if (s->request_id != NULL)
        snprintf(d->request_id, sizeof(d->request_id), "%s", s->request_id);
    else
        OK(custos_id_new(d->request_id, NULL));
    d->kind = s->kind;
    snprintf(d->system, sizeof(d->system), "pump");
    snprintf(d->component, sizeof(d->component), "%s", s->component);
    if (s->kind == CUSTOS_REQUEST_INITIAL)
        snprintf(d->package_id, sizeof(d->package_id), "%s",
                 s->package_id != NULL ? s->package_id : f->pkg->package_id);
    else
        snprintf(d->device_id, sizeof(d->device_id), "%s", s->device_id);
    snprintf(d->serial, sizeof(d->serial), "%s", s->serial);
    snprintf(d->hardware_id, sizeof(d->hardware_id), "%s",
             s->hardware_id != NULL ? s->hardware_id : "hw-1");
    snprintf(d->model, sizeof(d->model), "X2");
    snprintf(d->firmware, sizeof(d->firmware), "1.0");
    for (i = 0; i < s->n; i++) {
        EVP_PKEY *k = NULL;
        snprintf(d->keys[i].template_name, sizeof(d->keys[i].template_name), "%s", s->names[i]);
        OK(custos_key_generate(&k, s->algs[i]));
        OK(custos_csr_build(&d->keys[i].csr, k, d->system, d->component, d->serial, s->names[i]));
        if (keys != NULL)
            keys[i] = k;
        else
            EVP_PKEY_free(k);
        d->n_keys++;
    }
    OK(custos_random(NULL, d->nonce, sizeof(d->nonce)));
    d->time = f->now;
    sg.cert = s->signer != NULL ? s->signer : f->pkg->bootstrap_cert;
    sg.key = s->signer_key != NULL ? s->signer_key : f->boot_key;
    sg.chain = s->chain != NULL ? s->chain : f->pkg->bootstrap_chain;
    OK(custos_request_encode(&der, len, d, &sg));
    custos_request_doc_free(d);
    return der;
}

uint8_t *ef_initial_request(size_t *len, ef_fx *f, const char *serial, EVP_PKEY *keys[4])
{
    ef_req_spec s = ef_initial_spec(serial);
    return ef_make_request(len, f, &s, keys);
}

custos_err ef_import(ef_fx *f, const ef_req_spec *s, const char *via, custos_request_summary *out,
                     int *created)
{
    size_t len = 0;
    int ignored = -1;
    uint8_t *der = ef_make_request(&len, f, s, NULL);
    custos_err r = custos_engine_request_import(out, created != NULL ? created : &ignored, f->e,
                                                der, len, via, &EF_ACTOR);
    free(der);
    return r;
}

void ef_import_initial(ef_fx *f, const char *serial, const char *via, custos_request_summary *out)
{
    ef_req_spec s = ef_initial_spec(serial);
    OK(ef_import(f, &s, via, out, NULL));
}

long long ef_count_rows(ef_fx *f, const char *table)
{
    char path[400], sql[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

ef_counts ef_snapshot(ef_fx *f)
{
    ef_counts c = {ef_count_rows(f, "requests"), ef_count_rows(f, "certificates"),
                   ef_count_rows(f, "profiles"), ef_count_rows(f, "audit")};
    return c;
}

void ef_assert_unchanged(ef_fx *f, ef_counts before)
{
    ef_counts now = ef_snapshot(f);
    assert_int_equal(now.requests, before.requests);
    assert_int_equal(now.certificates, before.certificates);
    assert_int_equal(now.profiles, before.profiles);
    assert_int_equal(now.audit, before.audit);
}

custos_trust ef_profile_trust(ef_fx *f, X509_STORE *store)
{
    custos_trust t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(X509_STORE_add_cert(store, sk_X509_value(f->pkg->root_of_trust, 0)), 1);
    t.store = store;
    t.now = f->now;
    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    return t;
}

custos_profile_doc *ef_decode_profile(ef_fx *f, const uint8_t *der, size_t len)
{
    custos_profile_doc *p = NULL;
    X509_STORE *store = X509_STORE_new();
    custos_trust t = ef_profile_trust(f, store);
    OK(custos_profile_decode(&p, der, len, &t));
    X509_STORE_free(store);
    return p;
}

custos_profile_doc *ef_provision(ef_fx *f, const char *serial, EVP_PKEY *keys[4],
                                 custos_request_summary *out)
{
    uint8_t *der = NULL, *prof = NULL;
    size_t len = 0, prof_len = 0;
    int created = 0;
    custos_profile_doc *p;

    der = ef_initial_request(&len, f, serial, keys);
    OK(custos_engine_request_import(out, &created, f->e, der, len, "import", &EF_ACTOR));
    assert_int_equal(created, 1);
    OK(custos_engine_request_approve(out, f->e, out->request_id, &EF_ACTOR));
    OK(custos_engine_profile_export(&prof, &prof_len, f->e, out->request_id));
    p = ef_decode_profile(f, prof, prof_len);
    free(prof);
    free(der);
    return p;
}

uint8_t *ef_receipt(size_t *len, ef_fx *f, const custos_request_summary *r,
                    const custos_profile_doc *p, EVP_PKEY *key, X509 *cert,
                    const uint8_t *profile_sha)
{
    uint8_t *prof = NULL, *der = NULL, sha[32];
    size_t prof_len = 0, i;
    X509 *tls = NULL;

    for (i = 0; p != NULL && i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            tls = p->certs[i].cert;
    if (profile_sha == NULL) {
        OK(custos_engine_profile_export(&prof, &prof_len, f->e, r->request_id));
        custos_sha256(sha, prof, prof_len);
        free(prof);
        profile_sha = sha;
    }
    OK(custos_receipt_encode(&der, len, r->request_id, r->device_id, profile_sha, f->now, key,
                             cert != NULL ? cert : tls));
    return der;
}

static int file_contains(const char *path, const void *needle, size_t n)
{
    uint8_t *data = NULL;
    size_t len = 0, i;
    int found = 0;
    if (custos_file_read(&data, &len, path, 512u * 1024u * 1024u) != CUSTOS_OK) {
        custos_error_clear();
        return 0;
    }
    for (i = 0; !found && n > 0 && i + n <= len; i++)
        found = memcmp(data + i, needle, n) == 0;
    free(data);
    return found;
}

int ef_db_contains(ef_fx *f, const void *needle, size_t n)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    if (file_contains(path, needle, n))
        return 1;
    snprintf(path, sizeof(path), "%s/custos.db-wal", f->dir);
    return file_contains(path, needle, n);
}

void ef_sign_as_device(ef_req_spec *s, const custos_profile_doc *p, EVP_PKEY *keys[4],
                       const char *device_id)
{
    size_t i;
    s->kind = CUSTOS_REQUEST_REPROVISION;
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            s->signer = p->certs[i].cert;
    s->signer_key = keys[0];
    s->chain = p->chain;
    s->device_id = device_id;
}

long long ef_count_audit(ef_fx *f, const char *action, const char *actor)
{
    char path[400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM audit WHERE action = ?1"
                                        " AND (?2 IS NULL OR actor = ?2)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, action, -1, SQLITE_TRANSIENT);
    if (actor != NULL)
        sqlite3_bind_text(st, 2, actor, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}
