/* Shared by the fuzz harnesses of the signed formats: a fixed trust built
 * once from the test root that signed the seed corpus (fuzz_trust.h), at the
 * time the corpus was made, so that valid seeds verify. */
#ifndef CUSTOS_FUZZ_COMMON_H
#define CUSTOS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/x509.h>

#include "fuzz_trust.h"
#include "internal/format.h"

static X509 *fuzz_root;
static X509_STORE *fuzz_store;

static inline void fuzz_trust_init(void)
{
    const unsigned char *p = fuzz_root_der;

    fuzz_root = d2i_X509(NULL, &p, (long)sizeof(fuzz_root_der));
    fuzz_store = X509_STORE_new();
    if (fuzz_root == NULL || fuzz_store == NULL || X509_STORE_add_cert(fuzz_store, fuzz_root) != 1)
        abort();
    /* Register the OIDs before the first input (not thread-safe to race). */
    (void)custos_oid_nid(CUSTOS_OID_CT_PACKAGE);
}

static inline custos_trust fuzz_trust(int eku_nid)
{
    custos_trust t = {0};

    t.store = fuzz_store;
    t.untrusted = NULL;
    t.now = FUZZ_NOW;
    t.signer_eku_nid = eku_nid;
    return t;
}

/* Parse without verifying, as `custos inspect` does. */
static inline void fuzz_peek(const uint8_t *data, size_t size, size_t max)
{
    uint8_t *content = NULL;
    size_t len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct;

    if (custos_cms_peek(&content, &len, &certs, &ct, data, size, max, "fuzz input") == 0) {
        free(content);
        sk_X509_pop_free(certs, X509_free);
    }
}

#endif
