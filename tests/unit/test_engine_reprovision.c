/* Reprovisioning: a request signed by the device's current key renews its
 * identity; another device id, another serial or a foreign key is refused
 * and changes nothing; once the renewal is provisioned the old certificate
 * is superseded. Also the serial / identity checks: a reused request id is
 * refused, a duplicate serial is flagged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/engine_fixture.h"

static void test_request_id_reuse_refused(void **state)
{
    ef_fx *f = *state;
    ef_req_spec s = ef_initial_spec("SN-1");
    custos_request_summary a, b;
    ef_counts before;
    int created = -1;

    OK(ef_import(f, &s, "import", &a, &created));
    before = ef_snapshot(f);
    s.request_id = a.request_id;
    assert_int_equal(ef_import(f, &s, "import", &b, &created), CUSTOS_ERR_EXISTS);
    assert_int_equal(created, 0);
    ef_assert_unchanged(f, before);
}

static void test_duplicate_serial_flagged(void **state)
{
    ef_fx *f = *state;
    custos_request_summary a, b;

    ef_import_initial(f, "SN-DUP", "import", &a);
    ef_import_initial(f, "SN-DUP", "gateway", &b);
    assert_int_equal(a.duplicate_serial, 0);
    assert_int_equal(b.duplicate_serial, 1);
    assert_string_not_equal(a.device_id, b.device_id);
    assert_string_equal(b.via, "gateway");
}

/* Sign @p s with the device's current TLS key and certificate from @p p, for @p device_id. */
static void sign_as_device(ef_req_spec *s, const custos_profile_doc *p, EVP_PKEY *keys[4],
                           const char *device_id)
{
    size_t i;
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, "tls") == 0)
            s->signer = p->certs[i].cert;
    s->signer_key = keys[0];
    s->chain = p->chain;
    s->device_id = device_id;
}

static void test_reprovision(void **state)
{
    ef_fx *f = *state;
    custos_request_summary r, r2;
    custos_profile_doc *p;
    EVP_PKEY *keys[4] = {0};
    ef_req_spec s = ef_initial_spec("SN-0001");
    testca_cert foreign_root = {0}, foreign = {0};
    char renewed_id[CUSTOS_ID_LEN + 1];
    STACK_OF(X509) *empty;
    size_t i;
    int created = -1;
    custos_err rc;
    ef_counts before;

    s.kind = CUSTOS_REQUEST_REPROVISION;
    p = ef_provision(f, "SN-0001", keys, &r);
    sign_as_device(&s, p, keys, r.device_id);

    /* signed by the device's current key */
    OK(ef_import(f, &s, "connected", &r2, &created));
    assert_int_equal(created, 1);
    assert_string_equal(r2.kind, "reprovision");
    assert_string_equal(r2.device_id, r.device_id);
    assert_int_equal(r2.duplicate_serial, 0);
    OK(custos_engine_request_approve(&r2, f->e, r2.request_id, &EF_ACTOR));
    assert_int_equal(r2.state, CUSTOS_STATE_CERTIFIED);
    memcpy(renewed_id, r2.request_id, sizeof(renewed_id));

    before = ef_snapshot(f);
    /* the device's key, claiming another device id */
    s.device_id = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(ef_import(f, &s, "connected", &r2, &created), CUSTOS_ERR_UNTRUSTED);
    /* the device's own key, claiming another serial: it may renew its
     * identity, never take another one */
    s.device_id = r.device_id;
    s.serial = "SN-9999";
    assert_int_equal(ef_import(f, &s, "connected", &r2, &created), CUSTOS_ERR_MISMATCH);
    assert_string_equal(custos_error_last()->field, "device.serial");
    s.serial = "SN-0001";
    /* a foreign key and certificate */
    assert_int_equal(testca_root(&foreign_root, "Foreign Root"), 0);
    assert_int_equal(testca_leaf(&foreign, &foreign_root, "SN-0001", 0), 0);
    s.device_id = r.device_id;
    s.signer = foreign.cert;
    s.signer_key = foreign.key;
    empty = sk_X509_new_null();
    s.chain = empty;
    rc = ef_import(f, &s, "connected", &r2, &created);
    sk_X509_free(empty);
    assert_true(rc < 0);
    ef_assert_unchanged(f, before);

    /* Once the renewed identity is provisioned, the old certificate is
     * superseded: a request it signs is refused. */
    OK(custos_engine_device_complete(&r2, f->e, renewed_id, &EF_ACTOR));
    sign_as_device(&s, p, keys, r.device_id);
    before = ef_snapshot(f);
    assert_int_equal(ef_import(f, &s, "connected", &r2, &created), CUSTOS_ERR_UNTRUSTED);
    assert_non_null(strstr(custos_error_last()->message, "superseded"));
    ef_assert_unchanged(f, before);

    testca_cert_free(&foreign);
    testca_cert_free(&foreign_root);
    custos_profile_doc_free(p);
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)
    const struct CMUnitTest tests[] = {
        T(test_request_id_reuse_refused),
        T(test_duplicate_serial_flagged),
        T(test_reprovision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
