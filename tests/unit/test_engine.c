/* The CA engine end to end: init, system, package, import -> approve ->
 * export -> complete; idempotent re-import; expired bootstrap; template
 * mismatch changes nothing; a lint failure stores nothing; listing; mock
 * device files. Reprovisioning and serial / identity checks are in
 * test_engine_reprovision.c; the fixture is support/engine_fixture.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "support/engine_fixture.h"

static void test_full_flow(void **state)
{
    ef_fx *f = *state;
    uint8_t *der = NULL, *prof = NULL;
    size_t len = 0, prof_len = 0, n = 0;
    int created = -1;
    custos_request_summary r, again;
    custos_profile_doc *p;
    uint8_t digest[32];
    EVP_PKEY *keys[4] = {0};
    char id[CUSTOS_ID_LEN + 1];

    der = ef_initial_request(&len, f, "SN-0001", keys);
    OK(custos_engine_request_import(&r, &created, f->e, der, len, "import", &EF_ACTOR));
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
    OK(custos_engine_request_import(&again, &created, f->e, der, len, "upload", &EF_ACTOR));
    assert_int_equal(created, 0);
    assert_string_equal(again.request_id, r.request_id);
    assert_string_equal(again.device_id, r.device_id);
    assert_int_equal(ef_count_rows(f, "requests"), 1);

    OK(custos_engine_request_approve(&r, f->e, r.request_id, &EF_ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_CERTIFIED);
    assert_int_equal(custos_engine_request_approve(&again, f->e, r.request_id, &EF_ACTOR),
                     CUSTOS_ERR_STATE);
    assert_int_equal(ef_count_rows(f, "certificates"), 2);

    OK(custos_engine_profile_export(&prof, &prof_len, f->e, r.request_id));
    p = ef_decode_profile(f, prof, prof_len);
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
    OK(custos_engine_device_complete(&r, f->e, id, &EF_ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(custos_engine_device_complete(&r, f->e, id, &EF_ACTOR), CUSTOS_ERR_STATE);
    assert_int_equal(custos_engine_request_reject(&r, f->e, id, "late", &EF_ACTOR),
                     CUSTOS_ERR_STATE);
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
    ef_fx *f = *state;
    ef_req_spec wrong_curve = ef_initial_spec("SN-1");
    ef_req_spec missing = ef_initial_spec("SN-1");
    ef_req_spec renamed = ef_initial_spec("SN-1");
    ef_req_spec component = ef_initial_spec("SN-1");
    custos_request_summary r;
    ef_counts before = ef_snapshot(f);
    int created = -1;

    wrong_curve.algs[0] = CUSTOS_ALG_ECDSA_P384;
    missing.n = 1;
    renamed.names[1] = "other";
    component.component = "nosuch";
    component.n = 1;
    assert_int_equal(ef_import(f, &wrong_curve, "import", &r, &created), CUSTOS_ERR_TEMPLATE);
    assert_string_equal(custos_error_last()->field, "tls");
    assert_non_null(strstr(custos_error_last()->message, "ecdsa-p256"));
    assert_int_equal(created, 0);
    assert_int_equal(ef_import(f, &missing, "import", &r, &created), CUSTOS_ERR_TEMPLATE);
    assert_string_equal(custos_error_last()->field, "sign");
    assert_int_equal(ef_import(f, &renamed, "import", &r, &created), CUSTOS_ERR_TEMPLATE);
    assert_int_equal(ef_import(f, &component, "import", &r, &created),
                     CUSTOS_ERR_UNKNOWN_COMPONENT);
    ef_assert_unchanged(f, before);
}

static void test_bad_input(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    ef_counts before = ef_snapshot(f);
    static const uint8_t junk[] = "not a request";
    uint8_t *der;
    size_t len = 0;
    int created = -1;

    assert_true(custos_engine_request_import(&r, &created, f->e, junk, sizeof(junk), "import",
                                             &EF_ACTOR) < 0);
    der = ef_initial_request(&len, f, "SN-1", NULL);
    assert_int_equal(
        custos_engine_request_import(&r, &created, f->e, der, len, "carrier-pigeon", &EF_ACTOR),
        CUSTOS_ERR_ARG);
    der[len - 5] ^= 0x01; /* signature bytes */
    assert_true(custos_engine_request_import(&r, &created, f->e, der, len, "import", &EF_ACTOR) <
                0);
    free(der);
    ef_assert_unchanged(f, before);
    assert_int_equal(custos_engine_system_create(f->e, (const uint8_t *)EF_SYSTEM_JSON,
                                                 strlen(EF_SYSTEM_JSON), &EF_ACTOR),
                     CUSTOS_ERR_EXISTS);
    assert_int_equal(custos_engine_system_create(f->e, (const uint8_t *)"{}", 2, &EF_ACTOR) < 0, 1);
    assert_int_equal(custos_engine_request_approve(&r, f->e, "nosuch", &EF_ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    ef_assert_unchanged(f, before);
}

static void test_unknown_package(void **state)
{
    ef_fx *f = *state;
    ef_req_spec s = ef_initial_spec("SN-1");
    custos_request_summary r;
    ef_counts before = ef_snapshot(f);

    s.package_id = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(ef_import(f, &s, "import", &r, NULL), CUSTOS_ERR_UNTRUSTED);
    assert_non_null(strstr(custos_error_last()->message, "unknown package"));
    ef_assert_unchanged(f, before);
}

static void test_expired_bootstrap_refused(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    ef_counts before = ef_snapshot(f);
    size_t len = 0;
    int created = -1;
    uint8_t *der = ef_initial_request(&len, f, "SN-1", NULL);

    f->now += 31 * DAY; /* the package was valid 30 days */
    assert_int_equal(
        custos_engine_request_import(&r, &created, f->e, der, len, "import", &EF_ACTOR),
        CUSTOS_ERR_EXPIRED);
    free(der);
    ef_assert_unchanged(f, before);
}

static void test_approve_after_expiry(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r, got;
    size_t n = 0;

    ef_import_initial(f, "SN-1", "import", &r);
    f->now += 31 * DAY;
    assert_int_equal(custos_engine_request_approve(&got, f->e, r.request_id, &EF_ACTOR),
                     CUSTOS_ERR_EXPIRED);
    OK(custos_engine_request_get(&got, f->e, r.request_id));
    assert_int_equal(got.state, CUSTOS_STATE_EXPIRED);
    assert_int_equal(ef_count_rows(f, "certificates"), 0);
    OK(custos_engine_audit_verify(&n, f->e));
}

static void test_expire_sweep(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r;
    size_t n = 9;

    ef_import_initial(f, "SN-1", "import", &r);
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
    ef_fx *f = *state;
    ef_req_spec s = ef_initial_spec("SN-LONG");
    custos_request_summary r, got;
    ef_counts before;

    s.component = "longlived";
    s.n = 1;
    OK(ef_import(f, &s, "import", &r, NULL));
    before = ef_snapshot(f);
    assert_int_equal(custos_engine_request_approve(&got, f->e, r.request_id, &EF_ACTOR),
                     CUSTOS_ERR_LINT);
    assert_string_equal(custos_error_last()->field, "lint:validity");
    ef_assert_unchanged(f, before);
    OK(custos_engine_request_get(&got, f->e, r.request_id));
    assert_int_equal(got.state, CUSTOS_STATE_PENDING);
}

static void test_reject(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r, r2;
    char long_reason[400];

    ef_import_initial(f, "SN-1", "import", &r);
    memset(long_reason, 'x', sizeof(long_reason) - 1);
    long_reason[sizeof(long_reason) - 1] = '\0';
    assert_int_equal(custos_engine_request_reject(&r2, f->e, r.request_id, long_reason, &EF_ACTOR),
                     CUSTOS_ERR_LIMIT);
    OK(custos_engine_request_get(&r2, f->e, r.request_id));
    assert_int_equal(r2.state, CUSTOS_STATE_PENDING);
    OK(custos_engine_request_reject(&r, f->e, r.request_id, "unknown device", &EF_ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_REJECTED);
    assert_string_equal(r.reason, "unknown device");
    assert_int_equal(custos_engine_request_approve(&r, f->e, r.request_id, &EF_ACTOR),
                     CUSTOS_ERR_STATE);
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
    ef_fx *f = *state;
    custos_request_summary r;
    list_ctx l = {0, 0};
    uint8_t *pkg = NULL;
    size_t pkg_len = 0;

    for (int i = 0; i < 3; i++) {
        char serial[16];
        snprintf(serial, sizeof(serial), "SN-%d", i);
        ef_import_initial(f, serial, "import", &r);
        f->now += 10;
    }
    OK(custos_engine_request_reject(&r, f->e, r.request_id, "no", &EF_ACTOR));
    OK(custos_engine_request_list(f->e, 0, list_cb, &l));
    assert_int_equal(l.n, 3);
    l.n = 0;
    OK(custos_engine_request_list(f->e, CUSTOS_STATE_PENDING, list_cb, &l));
    assert_int_equal(l.n, 2);

    custos_engine_free(f->e);
    f->e = NULL;
    OK(custos_engine_open(&f->e, f->dir));
    custos_engine_set_clock(f->e, ef_fake_clock, &f->now);
    OK(custos_engine_request_get(&r, f->e, r.request_id));
    assert_int_equal(r.state, CUSTOS_STATE_REJECTED);
    OK(custos_engine_package_create(&pkg, &pkg_len, f->e, "pump", PASS, strlen(PASS), 10,
                                    &EF_ACTOR));
    free(pkg);
    assert_int_equal(custos_engine_package_create(&pkg, &pkg_len, f->e, "nosuch", PASS,
                                                  strlen(PASS), 10, &EF_ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_package_create(&pkg, &pkg_len, f->e, "pump", PASS, strlen(PASS),
                                                  0, &EF_ACTOR),
                     CUSTOS_ERR_ARG);
}

static void test_init_refuses_nonempty(void **state)
{
    ef_fx *f = *state;
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
    ef_fx *f = *state;
    char out[400], path[450];
    uint8_t *data = NULL;
    size_t len = 0;
    custos_identity_doc *id = NULL;
    custos_profile_doc *p = NULL;
    custos_trust t;
    X509_STORE *real = X509_STORE_new();
    struct stat sb;

    snprintf(out, sizeof(out), "%s/mock", f->tmp);
    OK(custos_engine_mock_create(f->e, "pump", "ctl", "MOCK-1", out, &EF_ACTOR));
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
    t = ef_profile_trust(f, real);
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
    assert_int_equal(custos_engine_mock_create(f->e, "pump", "nosuch", "MOCK-1", out, &EF_ACTOR),
                     CUSTOS_ERR_UNKNOWN_COMPONENT);
    custos_profile_doc_free(p);
    custos_identity_doc_free(id);
    X509_STORE_free(real);
    free(data);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)
    const struct CMUnitTest tests[] = {
        T(test_full_flow),
        T(test_template_mismatch_changes_nothing),
        T(test_bad_input),
        T(test_unknown_package),
        T(test_expired_bootstrap_refused),
        T(test_approve_after_expiry),
        T(test_expire_sweep),
        T(test_lint_failure_stores_nothing),
        T(test_reject),
        T(test_list_and_reopen),
        T(test_init_refuses_nonempty),
        T(test_mock_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
