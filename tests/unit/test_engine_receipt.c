/* Install receipts: a receipt signed with the new identity's key moves a
 * certified request to provisioned (once; again is fine); one from another
 * key, another request or over another profile is refused and changes
 * nothing; a request that is not certified is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/engine_fixture.h"

static const custos_actor DEVICE = {"device", "203.0.113.9"};

typedef struct prov {
    custos_request_summary r;
    custos_profile_doc *p;
    EVP_PKEY *keys[4];
} prov;

static void provision(ef_fx *f, prov *v, const char *serial)
{
    memset(v, 0, sizeof(*v));
    v->p = ef_provision(f, serial, v->keys, &v->r);
}

static void prov_free(prov *v)
{
    custos_profile_doc_free(v->p);
    for (size_t i = 0; i < 4; i++)
        EVP_PKEY_free(v->keys[i]);
}

static void test_receipt_provisions(void **state)
{
    ef_fx *f = *state;
    prov v;
    custos_request_summary out;
    uint8_t *der;
    size_t len = 0;

    provision(f, &v, "SN-1");
    der = ef_receipt(&len, f, &v.r, v.p, v.keys[0], NULL, NULL);
    OK(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE));
    assert_int_equal(out.state, CUSTOS_STATE_PROVISIONED);
    assert_string_equal(out.request_id, v.r.request_id);
    assert_int_equal(ef_count_audit(f, "device.provisioned", "device"), 1);
    assert_int_equal(ef_count_rows(f, "receipts"), 1);
    /* idempotent: the same receipt again */
    OK(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE));
    assert_int_equal(out.state, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(ef_count_audit(f, "device.provisioned", NULL), 1);
    assert_int_equal(ef_count_rows(f, "receipts"), 1);
    {
        size_t n = 0;
        OK(custos_engine_audit_verify(&n, f->e));
    }
    free(der);
    prov_free(&v);
}

static void test_receipt_after_manual_complete(void **state)
{
    ef_fx *f = *state;
    prov v;
    custos_request_summary out;
    uint8_t *der;
    size_t len = 0;

    provision(f, &v, "SN-1");
    OK(custos_engine_device_complete(&out, f->e, v.r.request_id, &EF_ACTOR));
    der = ef_receipt(&len, f, &v.r, v.p, v.keys[0], NULL, NULL);
    OK(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE));
    assert_int_equal(out.state, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(ef_count_audit(f, "device.provisioned", NULL), 0);
    free(der);
    prov_free(&v);
}

static void test_receipt_wrong_key(void **state)
{
    ef_fx *f = *state;
    prov v, w;
    custos_request_summary out;
    testca_cert root = {0}, leaf = {0};
    ef_counts before;
    uint8_t *der, sha[32];
    size_t len = 0;
    custos_err rc;

    provision(f, &v, "SN-1");
    provision(f, &w, "SN-2");
    before = ef_snapshot(f);

    /* a certificate the engine never issued (another CA, same serial) */
    assert_int_equal(testca_root(&root, "Foreign Root"), 0);
    assert_int_equal(testca_leaf(&leaf, &root, "SN-1", 0), 0);
    der = ef_receipt(&len, f, &v.r, v.p, leaf.key, leaf.cert, NULL);
    assert_int_equal(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE),
                     CUSTOS_ERR_MISMATCH);
    assert_string_equal(custos_error_last()->field, "signer");
    free(der);

    /* a certificate issued for another request of the engine */
    der = ef_receipt(&len, f, &v.r, w.p, w.keys[0], NULL, NULL);
    assert_int_equal(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE),
                     CUSTOS_ERR_MISMATCH);
    free(der);

    /* the issued certificate, signed with another key: the signature fails */
    rc = custos_receipt_encode(&der, &len, v.r.request_id, v.r.device_id, sha, f->now, w.keys[0],
                               v.p->certs[0].cert);
    if (rc == CUSTOS_OK) {
        assert_true(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE) <
                    0);
        free(der);
    }
    custos_error_clear();

    /* the right key, over another profile */
    memset(sha, 0x5a, sizeof(sha));
    der = ef_receipt(&len, f, &v.r, v.p, v.keys[0], NULL, sha);
    assert_int_equal(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len, &DEVICE),
                     CUSTOS_ERR_MISMATCH);
    assert_string_equal(custos_error_last()->field, "profile_sha256");
    free(der);

    /* the right receipt, posted for another request */
    der = ef_receipt(&len, f, &v.r, v.p, v.keys[0], NULL, NULL);
    assert_int_equal(custos_engine_receipt_accept(&out, f->e, w.r.request_id, der, len, &DEVICE),
                     CUSTOS_ERR_MISMATCH);
    assert_string_equal(custos_error_last()->field, "request_id");
    /* garbage */
    assert_true(custos_engine_receipt_accept(&out, f->e, v.r.request_id, der, len / 2, &DEVICE) <
                0);
    assert_int_equal(
        custos_engine_receipt_accept(&out, f->e, "aaaaaaaaaaaaaaaaaaaaaaaaaa", der, len, &DEVICE),
        CUSTOS_ERR_NOT_FOUND);
    free(der);

    ef_assert_unchanged(f, before);
    assert_int_equal(ef_count_rows(f, "receipts"), 0);
    OK(custos_engine_request_get(&out, f->e, v.r.request_id));
    assert_int_equal(out.state, CUSTOS_STATE_CERTIFIED);
    testca_cert_free(&leaf);
    testca_cert_free(&root);
    prov_free(&v);
    prov_free(&w);
}

static void test_receipt_not_certified(void **state)
{
    ef_fx *f = *state;
    prov v;
    custos_request_summary out, pending;
    uint8_t *der;
    size_t len = 0;

    provision(f, &v, "SN-1");
    der = ef_receipt(&len, f, &v.r, v.p, v.keys[0], NULL, NULL);
    /* a pending request: not certified, whatever the receipt */
    ef_import_initial(f, "SN-2", "import", &pending);
    assert_int_equal(
        custos_engine_receipt_accept(&out, f->e, pending.request_id, der, len, &DEVICE),
        CUSTOS_ERR_STATE);
    OK(custos_engine_request_reject(&out, f->e, pending.request_id, "no", &EF_ACTOR));
    assert_int_equal(
        custos_engine_receipt_accept(&out, f->e, pending.request_id, der, len, &DEVICE),
        CUSTOS_ERR_STATE);
    free(der);
    prov_free(&v);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_receipt_provisions),
        T(test_receipt_after_manual_complete),
        T(test_receipt_wrong_key),
        T(test_receipt_not_certified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
