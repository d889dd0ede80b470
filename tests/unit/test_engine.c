/* The CA engine end to end: init, system, package, import -> approve ->
 * export -> complete; idempotent re-import; expired bootstrap; template
 * mismatch changes nothing; duplicate serials flagged; a lint failure stores
 * nothing; reprovisioning by the device key, refused with a foreign one;
 * mock device files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine.h"
#include "internal/format.h"
#include "internal/util.h"

/* assert success, printing the error detail when it fails */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        custos_err ok_r_ = (expr);                                                                 \
        if (ok_r_ != 0)                                                                            \
            print_error("%s: %d %s [%s]\n", #expr, ok_r_, custos_error_last()->message,            \
                        custos_error_last()->field);                                               \
        assert_int_equal(ok_r_, 0);                                                                \
    } while (0)
#include "support/testca.h"

#define DAY 86400
#define PASS "open sesame"

static const char SYSTEM_JSON[] =
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

static const custos_actor ACTOR = {"user:test", "127.0.0.1"};

typedef struct fx {
    char tmp[256];
    char dir[300];
    int64_t now;
    custos_engine *e;
    custos_package_doc *pkg;
    EVP_PKEY *boot_key;
} fx;

static int64_t fake_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    uint8_t *der = NULL;
    size_t len = 0;
    assert_non_null(f);
    assert_int_equal(testca_tmpdir(f->tmp, sizeof(f->tmp)), 0);
    snprintf(f->dir, sizeof(f->dir), "%s/data", f->tmp);
    OK(custos_engine_init(f->dir));
    OK(custos_engine_open(&f->e, f->dir));
    f->now = (int64_t)time(NULL);
    custos_engine_set_clock(f->e, fake_clock, &f->now);
    OK(custos_engine_system_create(f->e, (const uint8_t *)SYSTEM_JSON, strlen(SYSTEM_JSON),
                                   &ACTOR));
    OK(custos_engine_package_create(&der, &len, f->e, "pump", PASS, strlen(PASS), 30, &ACTOR));
    OK(custos_package_decode(&f->pkg, der, len, NULL, f->now));
    OK(custos_package_key_decrypt(&f->boot_key, f->pkg->bootstrap_key_enc,
                                  f->pkg->bootstrap_key_enc_len, PASS, strlen(PASS)));
    free(der);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    custos_engine_free(f->e);
    custos_package_doc_free(f->pkg);
    EVP_PKEY_free(f->boot_key);
    testca_rmtree(f->tmp);
    free(f);
    return 0;
}

/* A request for @p component with one key per (name, alg); keys kept in @p keys. */
typedef struct req_spec {
    custos_request_kind kind;
    const char *component;
    const char *serial;
    const char *names[4];
    custos_alg algs[4];
    size_t n;
    const char *package_id;
    const char *device_id;
    X509 *signer;
    EVP_PKEY *signer_key;
    STACK_OF(X509) *chain;
    const char *request_id; /* NULL: a fresh one */
} req_spec;

static uint8_t *make_request(size_t *len, fx *f, const req_spec *s, EVP_PKEY *keys[4])
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
    snprintf(d->hardware_id, sizeof(d->hardware_id), "hw-1");
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

static uint8_t *initial_request(size_t *len, fx *f, const char *serial, EVP_PKEY *keys[4])
{
    req_spec s = {CUSTOS_REQUEST_INITIAL,
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
    return make_request(len, f, &s, keys);
}

static long long count_rows(fx *f, const char *table)
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

typedef struct counts {
    long long requests, certificates, profiles, audit;
} counts;

static counts snapshot(fx *f)
{
    counts c = {count_rows(f, "requests"), count_rows(f, "certificates"), count_rows(f, "profiles"),
                count_rows(f, "audit")};
    return c;
}

static void assert_unchanged(fx *f, counts before)
{
    counts now = snapshot(f);
    assert_int_equal(now.requests, before.requests);
    assert_int_equal(now.certificates, before.certificates);
    assert_int_equal(now.profiles, before.profiles);
    assert_int_equal(now.audit, before.audit);
}

static custos_profile_doc *decode_profile(fx *f, const uint8_t *der, size_t len)
{
    custos_profile_doc *p = NULL;
    custos_trust t = {0};
    X509_STORE *store = X509_STORE_new();
    memset(&t, 0, sizeof(t));
    assert_int_equal(X509_STORE_add_cert(store, sk_X509_value(f->pkg->root_of_trust, 0)), 1);
    t.store = store;
    t.now = f->now;
    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    OK(custos_profile_decode(&p, der, len, &t));
    X509_STORE_free(store);
    return p;
}

/* Import + approve + export: returns the decoded profile. */
static custos_profile_doc *provision(fx *f, const char *serial, EVP_PKEY *keys[4],
                                     custos_request_summary *out)
{
    uint8_t *der = NULL, *prof = NULL;
    size_t len = 0, prof_len = 0;
    int created = 0;
    custos_profile_doc *p;

    der = initial_request(&len, f, serial, keys);
    OK(custos_engine_request_import(out, &created, f->e, der, len, "import", &ACTOR));
    assert_int_equal(created, 1);
    OK(custos_engine_request_approve(out, f->e, out->request_id, &ACTOR));
    OK(custos_engine_profile_export(&prof, &prof_len, f->e, out->request_id));
    p = decode_profile(f, prof, prof_len);
    free(prof);
    free(der);
    return p;
}

static void test_full_flow(void **state)
{
    fx *f = *state;
    uint8_t *der = NULL, *prof = NULL;
    size_t len = 0, prof_len = 0, n = 0;
    int created = -1;
    custos_request_summary r, again;
    custos_profile_doc *p;
    uint8_t digest[32];
    EVP_PKEY *keys[4] = {0};
    char id[CUSTOS_ID_LEN + 1];

    der = initial_request(&len, f, "SN-0001", keys);
    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
    assert_int_equal(created, 1);
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    assert_string_equal(r.kind, "initial");
    assert_string_equal(r.via, "import");
    assert_string_equal(r.serial, "SN-0001");
    assert_int_equal(r.duplicate_serial, 0);
    assert_true(custos_id_valid(r.device_id));
    assert_int_equal(r.expires, f->pkg->expires);

    /* no profile before approval */
    assert_int_equal(custos_engine_profile_export(&prof, &prof_len, f->e, r.request_id),
                     CUSTOS_ERR_STATE);
    /* idempotent: same bytes, same record */
    OK(custos_engine_request_import(&again, &created, f->e, der, len, "upload", &ACTOR));
    assert_int_equal(created, 0);
    assert_string_equal(again.request_id, r.request_id);
    assert_string_equal(again.device_id, r.device_id);
    assert_int_equal(count_rows(f, "requests"), 1);

    OK(custos_engine_request_approve(&r, f->e, r.request_id, &ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    assert_int_equal(custos_engine_request_approve(&again, f->e, r.request_id, &ACTOR),
                     CUSTOS_ERR_STATE);
    assert_int_equal(count_rows(f, "certificates"), 2);

    OK(custos_engine_profile_export(&prof, &prof_len, f->e, r.request_id));
    p = decode_profile(f, prof, prof_len);
    custos_sha256(digest, der, len);
    assert_memory_equal(p->request_sha256, digest, 32);
    assert_string_equal(p->device_id, r.device_id);
    assert_string_equal(p->request_id, r.request_id);
    assert_int_equal(p->n_certs, 2);
    assert_int_equal(p->mock, 0);
    assert_string_equal(p->services.cloud_url, "https://custos.example");
    assert_int_equal(p->renewal_window_days, 30);
    for (size_t i = 0; i < 2; i++) {
        int tls = strcmp(p->certs[i].template_name, "tls") == 0;
        EVP_PKEY *k = tls ? keys[0] : keys[1];
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        assert_true(custos_key_public_equal(X509_get0_pubkey(p->certs[i].cert), k));
        /* OpenSSL's own verifier accepts the chain (and the TLS client purpose) */
        assert_int_equal(X509_STORE_add_cert(store, sk_X509_value(p->root_of_trust, 0)), 1);
        assert_int_equal(X509_STORE_CTX_init(ctx, store, p->certs[i].cert, p->chain), 1);
        X509_STORE_CTX_set_time(ctx, 0, (time_t)f->now);
        if (tls)
            assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), 1);
        assert_int_equal(X509_verify_cert(ctx), 1);
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
    }
    custos_profile_doc_free(p);
    free(prof);

    snprintf(id, sizeof(id), "%s", r.request_id);
    OK(custos_engine_device_complete(&r, f->e, id, &ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(custos_engine_device_complete(&r, f->e, id, &ACTOR), CUSTOS_ERR_STATE);
    assert_int_equal(custos_engine_request_reject(&r, f->e, id, "late", &ACTOR), CUSTOS_ERR_STATE);
    OK(custos_engine_request_get(&r, f->e, id));
    assert_int_equal(r.state, CUSTOS_STATE_PROVISIONED);
    /* export still works once provisioned */
    OK(custos_engine_profile_export(&prof, &prof_len, f->e, id));
    free(prof);

    /* init, system.create, package.create, import, approve, issue, complete */
    OK(custos_engine_audit_verify(&n, f->e));
    assert_int_equal(n, 7);
    assert_int_equal(custos_engine_request_get(&r, f->e, "nosuchrequest"), CUSTOS_ERR_NOT_FOUND);
    for (size_t i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
    free(der);
}

static void test_template_mismatch_changes_nothing(void **state)
{
    fx *f = *state;
    req_spec wrong_curve = {CUSTOS_REQUEST_INITIAL,
                            "ctl",
                            "SN-1",
                            {"tls", "sign"},
                            {CUSTOS_ALG_ECDSA_P384, CUSTOS_ALG_ECDSA_P384},
                            2,
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                            NULL};
    req_spec missing = {CUSTOS_REQUEST_INITIAL,
                        "ctl",
                        "SN-1",
                        {"tls"},
                        {CUSTOS_ALG_ECDSA_P256},
                        1,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL};
    req_spec renamed = {CUSTOS_REQUEST_INITIAL,
                        "ctl",
                        "SN-1",
                        {"tls", "other"},
                        {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384},
                        2,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL};
    req_spec component = {CUSTOS_REQUEST_INITIAL,
                          "nosuch",
                          "SN-1",
                          {"tls"},
                          {CUSTOS_ALG_ECDSA_P256},
                          1,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    custos_request_summary r;
    counts before = snapshot(f);
    uint8_t *der;
    size_t len = 0;
    int created = -1;

    der = make_request(&len, f, &wrong_curve, NULL);
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_TEMPLATE);
    assert_string_equal(custos_error_last()->field, "tls");
    assert_non_null(strstr(custos_error_last()->message, "ecdsa-p256"));
    assert_int_equal(created, 0);
    free(der);
    der = make_request(&len, f, &missing, NULL);
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_TEMPLATE);
    assert_string_equal(custos_error_last()->field, "sign");
    free(der);
    der = make_request(&len, f, &renamed, NULL);
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_TEMPLATE);
    free(der);
    der = make_request(&len, f, &component, NULL);
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_UNKNOWN_COMPONENT);
    free(der);
    assert_unchanged(f, before);
}

static void test_bad_input(void **state)
{
    fx *f = *state;
    custos_request_summary r;
    counts before = snapshot(f);
    static const uint8_t junk[] = "not a request";
    uint8_t *der;
    size_t len = 0;
    int created = -1;

    assert_true(
        custos_engine_request_import(&r, &created, f->e, junk, sizeof(junk), "import", &ACTOR) < 0);
    der = initial_request(&len, f, "SN-1", NULL);
    assert_int_equal(
        custos_engine_request_import(&r, &created, f->e, der, len, "carrier-pigeon", &ACTOR),
        CUSTOS_ERR_ARG);
    der[len - 5] ^= 0x01; /* signature bytes */
    assert_true(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR) < 0);
    free(der);
    assert_unchanged(f, before);
    assert_int_equal(custos_engine_system_create(f->e, (const uint8_t *)SYSTEM_JSON,
                                                 strlen(SYSTEM_JSON), &ACTOR),
                     CUSTOS_ERR_EXISTS);
    assert_int_equal(custos_engine_system_create(f->e, (const uint8_t *)"{}", 2, &ACTOR) < 0, 1);
    assert_int_equal(custos_engine_request_approve(&r, f->e, "nosuch", &ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    assert_unchanged(f, before);
}

static void test_unknown_package(void **state)
{
    fx *f = *state;
    req_spec s = {CUSTOS_REQUEST_INITIAL,
                  "ctl",
                  "SN-1",
                  {"tls", "sign"},
                  {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384},
                  2,
                  "aaaaaaaaaaaaaaaaaaaaaaaaaa",
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    custos_request_summary r;
    counts before = snapshot(f);
    size_t len = 0;
    int created = -1;
    uint8_t *der = make_request(&len, f, &s, NULL);
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_UNTRUSTED);
    assert_non_null(strstr(custos_error_last()->message, "unknown package"));
    free(der);
    assert_unchanged(f, before);
}

static void test_request_id_reuse_refused(void **state)
{
    fx *f = *state;
    req_spec s = {CUSTOS_REQUEST_INITIAL,
                  "ctl",
                  "SN-1",
                  {"tls", "sign"},
                  {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384},
                  2,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    custos_request_summary a, b;
    counts before;
    uint8_t *der;
    size_t len = 0;
    int created = -1;

    der = make_request(&len, f, &s, NULL);
    OK(custos_engine_request_import(&a, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    before = snapshot(f);
    s.request_id = a.request_id;
    der = make_request(&len, f, &s, NULL);
    assert_int_equal(custos_engine_request_import(&b, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_EXISTS);
    assert_int_equal(created, 0);
    free(der);
    assert_unchanged(f, before);
}

static void test_duplicate_serial_flagged(void **state)
{
    fx *f = *state;
    custos_request_summary a, b;
    uint8_t *der;
    size_t len = 0;
    int created = 0;

    der = initial_request(&len, f, "SN-DUP", NULL);
    OK(custos_engine_request_import(&a, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    der = initial_request(&len, f, "SN-DUP", NULL);
    OK(custos_engine_request_import(&b, &created, f->e, der, len, "gateway", &ACTOR));
    free(der);
    assert_int_equal(a.duplicate_serial, 0);
    assert_int_equal(b.duplicate_serial, 1);
    assert_string_not_equal(a.device_id, b.device_id);
    assert_string_equal(b.via, "gateway");
}

static void test_expired_bootstrap_refused(void **state)
{
    fx *f = *state;
    custos_request_summary r;
    counts before = snapshot(f);
    size_t len = 0;
    int created = -1;
    uint8_t *der = initial_request(&len, f, "SN-1", NULL);

    f->now += 31 * DAY; /* the package was valid 30 days */
    assert_int_equal(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR),
                     CUSTOS_ERR_EXPIRED);
    free(der);
    assert_unchanged(f, before);
}

static void test_approve_after_expiry(void **state)
{
    fx *f = *state;
    custos_request_summary r, got;
    size_t len = 0, n = 0;
    int created = -1;
    uint8_t *der = initial_request(&len, f, "SN-1", NULL);

    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    f->now += 31 * DAY;
    assert_int_equal(custos_engine_request_approve(&got, f->e, r.request_id, &ACTOR),
                     CUSTOS_ERR_EXPIRED);
    OK(custos_engine_request_get(&got, f->e, r.request_id));
    assert_int_equal(got.state, CUSTOS_STATE_EXPIRED);
    assert_int_equal(count_rows(f, "certificates"), 0);
    OK(custos_engine_audit_verify(&n, f->e));
}

static void test_expire_sweep(void **state)
{
    fx *f = *state;
    custos_request_summary r;
    size_t len = 0, n = 9;
    int created = -1;
    uint8_t *der = initial_request(&len, f, "SN-1", NULL);
    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    OK(custos_engine_expire(&n, f->e));
    assert_int_equal(n, 0);
    f->now += 31 * DAY;
    OK(custos_engine_expire(&n, f->e));
    assert_int_equal(n, 1);
    OK(custos_engine_request_get(&r, f->e, r.request_id));
    assert_int_equal(r.state, CUSTOS_STATE_EXPIRED);
}

static void test_lint_failure_stores_nothing(void **state)
{
    fx *f = *state;
    req_spec s = {CUSTOS_REQUEST_INITIAL,
                  "longlived",
                  "SN-LONG",
                  {"tls"},
                  {CUSTOS_ALG_ECDSA_P256},
                  1,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    custos_request_summary r, got;
    counts before;
    size_t len = 0;
    int created = -1;
    uint8_t *der = make_request(&len, f, &s, NULL);

    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    before = snapshot(f);
    assert_int_equal(custos_engine_request_approve(&got, f->e, r.request_id, &ACTOR),
                     CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:validity");
    assert_unchanged(f, before);
    OK(custos_engine_request_get(&got, f->e, r.request_id));
    assert_int_equal(got.state, CUSTOS_STATE_PENDING);
}

static void test_reject(void **state)
{
    fx *f = *state;
    custos_request_summary r, r2;
    size_t len = 0;
    int created = -1;
    uint8_t *der = initial_request(&len, f, "SN-1", NULL);
    char long_reason[400];

    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
    free(der);
    memset(long_reason, 'x', sizeof(long_reason) - 1);
    long_reason[sizeof(long_reason) - 1] = '\0';
    assert_int_equal(custos_engine_request_reject(&r2, f->e, r.request_id, long_reason, &ACTOR),
                     CUSTOS_ERR_LIMIT);
    OK(custos_engine_request_get(&r2, f->e, r.request_id));
    assert_int_equal(r2.state, CUSTOS_STATE_PENDING);
    OK(custos_engine_request_reject(&r, f->e, r.request_id, "unknown device", &ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_REJECTED);
    assert_string_equal(r.reason, "unknown device");
    assert_int_equal(custos_engine_request_approve(&r, f->e, r.request_id, &ACTOR),
                     CUSTOS_ERR_STATE);
}

static void test_reprovision(void **state)
{
    fx *f = *state;
    custos_request_summary r, r2;
    custos_profile_doc *p;
    EVP_PKEY *keys[4] = {0};
    req_spec s = {CUSTOS_REQUEST_REPROVISION,
                  "ctl",
                  "SN-0001",
                  {"tls", "sign"},
                  {CUSTOS_ALG_ECDSA_P256, CUSTOS_ALG_ECDSA_P384},
                  2,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
    testca_cert foreign_root = {0}, foreign = {0};
    char renewed_id[CUSTOS_ID_LEN + 1];
    uint8_t *der;
    size_t len = 0, i;
    int created = -1;
    counts before;

    p = provision(f, "SN-0001", keys, &r);
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            s.signer = p->certs[i].cert;
    s.signer_key = keys[0];
    s.chain = p->chain;
    s.device_id = r.device_id;

    /* signed by the device's current key */
    der = make_request(&len, f, &s, NULL);
    OK(custos_engine_request_import(&r2, &created, f->e, der, len, "connected", &ACTOR));
    free(der);
    assert_int_equal(created, 1);
    assert_string_equal(r2.kind, "reprovision");
    assert_string_equal(r2.device_id, r.device_id);
    assert_int_equal(r2.duplicate_serial, 0);
    OK(custos_engine_request_approve(&r2, f->e, r2.request_id, &ACTOR));
    assert_int_equal(r2.state, CUSTOS_STATE_CERTIFIED);
    memcpy(renewed_id, r2.request_id, sizeof(renewed_id));

    before = snapshot(f);
    /* the device's key, claiming another device id */
    s.device_id = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    der = make_request(&len, f, &s, NULL);
    assert_int_equal(
        custos_engine_request_import(&r2, &created, f->e, der, len, "connected", &ACTOR),
        CUSTOS_ERR_UNTRUSTED);
    free(der);
    /* the device's own key, claiming another serial: it may renew its
     * identity, never take another one */
    s.device_id = r.device_id;
    s.serial = "SN-9999";
    der = make_request(&len, f, &s, NULL);
    assert_int_equal(
        custos_engine_request_import(&r2, &created, f->e, der, len, "connected", &ACTOR),
        CUSTOS_ERR_MISMATCH);
    assert_string_equal(custos_error_last()->field, "device.serial");
    free(der);
    s.serial = "SN-0001";
    /* a foreign key and certificate */
    assert_int_equal(testca_root(&foreign_root, "Foreign Root"), 0);
    assert_int_equal(testca_leaf(&foreign, &foreign_root, "SN-0001", 0), 0);
    s.device_id = r.device_id;
    s.signer = foreign.cert;
    s.signer_key = foreign.key;
    s.chain = NULL;
    {
        STACK_OF(X509) *empty = sk_X509_new_null();
        s.chain = empty;
        der = make_request(&len, f, &s, NULL);
        sk_X509_free(empty);
    }
    assert_true(custos_engine_request_import(&r2, &created, f->e, der, len, "connected", &ACTOR) <
                0);
    free(der);
    assert_unchanged(f, before);

    /* Once the renewed identity is provisioned, the old certificate is
     * superseded: a request it signs is refused. */
    OK(custos_engine_device_complete(&r2, f->e, renewed_id, &ACTOR));
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            s.signer = p->certs[i].cert;
    s.signer_key = keys[0];
    s.chain = p->chain;
    s.device_id = r.device_id;
    der = make_request(&len, f, &s, NULL);
    before = snapshot(f);
    assert_int_equal(
        custos_engine_request_import(&r2, &created, f->e, der, len, "connected", &ACTOR),
        CUSTOS_ERR_UNTRUSTED);
    assert_non_null(strstr(custos_error_last()->message, "superseded"));
    assert_unchanged(f, before);
    free(der);

    testca_cert_free(&foreign);
    testca_cert_free(&foreign_root);
    custos_profile_doc_free(p);
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

typedef struct list_ctx {
    size_t n;
    int64_t last_created;
} list_ctx;

static int list_cb(const custos_request_summary *r, void *ctx)
{
    list_ctx *l = ctx;
    if (l->n > 0)
        assert_true(r->created <= l->last_created);
    l->last_created = r->created;
    l->n++;
    return 0;
}

static void test_list_and_reopen(void **state)
{
    fx *f = *state;
    custos_request_summary r;
    list_ctx l = {0, 0};
    uint8_t *der, *pkg = NULL;
    size_t len = 0, pkg_len = 0;
    int created;

    for (int i = 0; i < 3; i++) {
        char serial[16];
        snprintf(serial, sizeof(serial), "SN-%d", i);
        der = initial_request(&len, f, serial, NULL);
        OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &ACTOR));
        free(der);
        f->now += 10;
    }
    OK(custos_engine_request_reject(&r, f->e, r.request_id, "no", &ACTOR));
    OK(custos_engine_request_list(f->e, 0, list_cb, &l));
    assert_int_equal(l.n, 3);
    l.n = 0;
    OK(custos_engine_request_list(f->e, CUSTOS_STATE_PENDING, list_cb, &l));
    assert_int_equal(l.n, 2);

    custos_engine_free(f->e);
    f->e = NULL;
    OK(custos_engine_open(&f->e, f->dir));
    custos_engine_set_clock(f->e, fake_clock, &f->now);
    OK(custos_engine_request_get(&r, f->e, r.request_id));
    assert_int_equal(r.state, CUSTOS_STATE_REJECTED);
    OK(custos_engine_package_create(&pkg, &pkg_len, f->e, "pump", PASS, strlen(PASS), 10, &ACTOR));
    free(pkg);
    assert_int_equal(custos_engine_package_create(&pkg, &pkg_len, f->e, "nosuch", PASS,
                                                  strlen(PASS), 10, &ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(
        custos_engine_package_create(&pkg, &pkg_len, f->e, "pump", PASS, strlen(PASS), 0, &ACTOR),
        CUSTOS_ERR_ARG);
}

static void test_init_refuses_nonempty(void **state)
{
    fx *f = *state;
    custos_engine *e = NULL;
    char path[400];
    struct stat sb;
    assert_int_equal(custos_engine_init(f->dir), CUSTOS_ERR_EXISTS);
    snprintf(path, sizeof(path), "%s/master.key", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/keys/root.key", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/root.pem", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s/nowhere", f->tmp);
    assert_true(custos_engine_open(&e, path) < 0);
    assert_null(e);
}

static void test_mock_create(void **state)
{
    fx *f = *state;
    char out[400], path[450];
    uint8_t *data = NULL;
    size_t len = 0;
    custos_identity_doc *id = NULL;
    custos_profile_doc *p = NULL;
    custos_trust t = {0};
    X509_STORE *real = X509_STORE_new();
    struct stat sb;

    snprintf(out, sizeof(out), "%s/mock", f->tmp);
    OK(custos_engine_mock_create(f->e, "pump", "ctl", "MOCK-1", out, &ACTOR));
    snprintf(path, sizeof(path), "%s/identity.mcpi", out);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    OK(custos_file_read(&data, &len, path, CUSTOS_MAX_IDENTITY_SIZE));
    OK(custos_identity_decode(&id, data, len, NULL, 0));
    assert_int_equal(id->mock, 1);
    assert_int_equal(id->n_gens, 1);
    assert_int_equal(id->gens[0].n_keys, 2);
    free(data);
    snprintf(path, sizeof(path), "%s/MOCK-README.txt", out);
    assert_int_equal(stat(path, &sb), 0);

    snprintf(path, sizeof(path), "%s/profile.mccp", out);
    OK(custos_file_read(&data, &len, path, CUSTOS_MAX_PROFILE_SIZE));
    /* never accepted under the real root */
    memset(&t, 0, sizeof(t));
    assert_int_equal(X509_STORE_add_cert(real, sk_X509_value(f->pkg->root_of_trust, 0)), 1);
    t.store = real;
    t.now = f->now;
    t.signer_eku_nid = custos_oid_nid(CUSTOS_OID_EKU_PROFILE_SIGNING);
    assert_true(custos_profile_decode(&p, data, len, &t) < 0);
    assert_null(p);
    /* it does verify under the mock root it carries */
    {
        X509_STORE *mock = X509_STORE_new();
        assert_int_equal(X509_STORE_add_cert(mock, sk_X509_value(id->root_of_trust, 0)), 1);
        t.store = mock;
        OK(custos_profile_decode(&p, data, len, &t));
        assert_int_equal(p->mock, 1);
        assert_int_equal(p->n_certs, 2);
        for (size_t i = 0; i < p->n_certs; i++) {
            const custos_identity_key *k = NULL;
            for (size_t j = 0; j < id->gens[0].n_keys; j++)
                if (strcmp(id->gens[0].keys[j].template_name, p->certs[i].template_name) == 0)
                    k = &id->gens[0].keys[j];
            assert_non_null(k);
            assert_true(custos_key_public_equal(X509_get0_pubkey(p->certs[i].cert), k->key));
        }
        X509_STORE_free(mock);
    }
    assert_int_equal(custos_engine_mock_create(f->e, "pump", "nosuch", "MOCK-1", out, &ACTOR),
                     CUSTOS_ERR_UNKNOWN_COMPONENT);
    custos_profile_doc_free(p);
    custos_identity_doc_free(id);
    X509_STORE_free(real);
    free(data);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_full_flow),
        T(test_template_mismatch_changes_nothing),
        T(test_bad_input),
        T(test_unknown_package),
        T(test_request_id_reuse_refused),
        T(test_duplicate_serial_flagged),
        T(test_expired_bootstrap_refused),
        T(test_approve_after_expiry),
        T(test_expire_sweep),
        T(test_lint_failure_stores_nothing),
        T(test_reject),
        T(test_reprovision),
        T(test_list_and_reopen),
        T(test_init_refuses_nonempty),
        T(test_mock_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
