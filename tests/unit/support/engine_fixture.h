/* Test fixture for the CA engine tests: a fresh data directory with the
 * "pump" system and one package (its bootstrap key decrypted), a fake clock,
 * and helpers that build, import and provision requests and check that a
 * refused operation changed nothing. For unit tests only. */
#ifndef CUSTOS_TEST_ENGINE_FIXTURE_H
#define CUSTOS_TEST_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine.h"
#include "internal/format.h"
#include "internal/util.h"
#include "support/testca.h"

/* assert success, printing the error detail when it fails */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        custos_err ok_r_ = (expr);                                                                 \
        if (ok_r_ != 0)                                                                            \
            print_error("%s: %d %s [%s]\n", #expr, ok_r_, custos_error_last()->message,            \
                        custos_error_last()->field);                                               \
        assert_int_equal(ok_r_, 0);                                                                \
    } while (0)

#define DAY 86400
#define PASS "open sesame"

/* The "pump" system the fixture creates. */
extern const char EF_SYSTEM_JSON[];
extern const custos_actor EF_ACTOR;

typedef struct ef_fx {
    char tmp[256];
    char dir[300];
    int64_t now;
    custos_engine *e;
    custos_package_doc *pkg;
    EVP_PKEY *boot_key;
} ef_fx;

/* The engine clock: *(int64_t *)ctx. */
int64_t ef_fake_clock(void *ctx);
/* cmocka setup / teardown: *state is an ef_fx. */
int ef_setup(void **state);
int ef_teardown(void **state);

/* A request for @p component with one key per (name, alg); keys kept in @p keys. */
typedef struct ef_req_spec {
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
    const char *request_id;  /* NULL: a fresh one */
    const char *hardware_id; /* NULL: "hw-1" */
} ef_req_spec;

/* An initial request for "ctl" with @p serial: keys tls (P-256) and sign (P-384). */
ef_req_spec ef_initial_spec(const char *serial);
/* The signed request @p s describes (malloc'd); @p keys (may be NULL) gets the keys. */
uint8_t *ef_make_request(size_t *len, ef_fx *f, const ef_req_spec *s, EVP_PKEY *keys[4]);
/* ef_make_request(ef_initial_spec(serial)). */
uint8_t *ef_initial_request(size_t *len, ef_fx *f, const char *serial, EVP_PKEY *keys[4]);
/* Make the request @p s describes, import it via @p via and free it; the
 * import's result. @p created may be NULL. */
custos_err ef_import(ef_fx *f, const ef_req_spec *s, const char *via, custos_request_summary *out,
                     int *created);
/* Import an initial request for @p serial via @p via, asserting success. */
void ef_import_initial(ef_fx *f, const char *serial, const char *via, custos_request_summary *out);

/* An install receipt for request @p r (malloc'd): signed with @p key under
 * @p cert (NULL: the tls certificate of profile @p p), over @p profile_sha
 * (NULL: SHA-256 of the profile the engine stored). */
uint8_t *ef_receipt(size_t *len, ef_fx *f, const custos_request_summary *r,
                    const custos_profile_doc *p, EVP_PKEY *key, X509 *cert,
                    const uint8_t *profile_sha);

/* Does @p needle (n bytes) occur anywhere in the engine's database files
 * (custos.db and its -wal)? */
int ef_db_contains(ef_fx *f, const void *needle, size_t n);

/* Make @p s a reprovisioning request of @p device_id signed with the
 * device's current tls key @p keys[0] and its certificate from @p p. */
void ef_sign_as_device(ef_req_spec *s, const custos_profile_doc *p, EVP_PKEY *keys[4],
                       const char *device_id);

/* Rows of the audit trail with @p action (and @p actor, when not NULL). */
long long ef_count_audit(ef_fx *f, const char *action, const char *actor);

/* Rows in @p table of the engine's database. */
long long ef_count_rows(ef_fx *f, const char *table);

typedef struct ef_counts {
    long long requests, certificates, profiles, audit;
} ef_counts;

ef_counts ef_snapshot(ef_fx *f);
/* Assert the row counts are still those of @p before. */
void ef_assert_unchanged(ef_fx *f, ef_counts before);

/* Trust in the package's root (added to @p store) at f->now, for profile signers. */
custos_trust ef_profile_trust(ef_fx *f, X509_STORE *store);
/* Decode a profile under the package's root, asserting success. */
custos_profile_doc *ef_decode_profile(ef_fx *f, const uint8_t *der, size_t len);
/* Import + approve + export: returns the decoded profile. */
custos_profile_doc *ef_provision(ef_fx *f, const char *serial, EVP_PKEY *keys[4],
                                 custos_request_summary *out);

#endif
