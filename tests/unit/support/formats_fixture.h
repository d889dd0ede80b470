/* Test fixture for the signed formats: a complete PKI (root, package-signing,
 * bootstrap CA + bootstrap credential, device CA + device certificate,
 * profile-signing) and valid package / request / profile documents built on
 * it. For unit tests only. */
#ifndef CUSTOS_TEST_FORMATS_FIXTURE_H
#define CUSTOS_TEST_FORMATS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "internal/format.h"
#include "support/testca.h"

#define FX_PASSPHRASE "correct horse battery staple"

typedef struct fx_pki {
    int64_t now; /* the fixture's "now"; every certificate is valid then */
    testca_cert root;
    testca_cert pkg_signer;     /* EKU package-signing, under root */
    testca_cert boot_ca;        /* intermediate */
    testca_cert boot;           /* EKU bootstrap, under boot_ca */
    testca_cert dev_ca;         /* intermediate */
    testca_cert dev;            /* device certificate (EKU clientAuth), under dev_ca */
    testca_cert prof_signer;    /* EKU profile-signing, under root */
    X509_STORE *store;          /* trusts root */
    STACK_OF(X509) *root_chain; /* [root] */
    STACK_OF(X509) *boot_chain; /* [boot_ca, root] */
    STACK_OF(X509) *dev_chain;  /* [dev_ca, root] */
} fx_pki;

/* Build the PKI; bootstrap validity ends at @p boot_not_after (0: now + 30 days). */
int fx_pki_init(fx_pki *p, int64_t boot_not_after);
void fx_pki_free(fx_pki *p);

/* A signer for @p leaf carrying @p chain (borrowed). */
custos_signer fx_signer(const testca_cert *leaf, STACK_OF(X509) *chain);
/* Trust in p->root at p->now with no EKU requirement. */
custos_trust fx_trust(const fx_pki *p);

/* A valid package document (bootstrap key encrypted with FX_PASSPHRASE). */
int fx_package_doc(custos_package_doc **out, const fx_pki *p);
/* A valid request document: initial (package_id set) or reprovision
 * (device_id set), @p n_keys fresh P-256 keys with CSRs. */
int fx_request_doc(custos_request_doc **out, custos_request_kind kind, size_t n_keys);
/* A valid profile document: @p n_certs device certificates under dev_ca. */
int fx_profile_doc(custos_profile_doc **out, const fx_pki *p, size_t n_certs);

/* Sign arbitrary content bytes as CMS of content type @p ct. */
int fx_sign_raw(uint8_t **out, size_t *out_len, custos_oid ct, const char *content,
                custos_signer signer);

/* Content of a signed file, NUL-terminated (malloc'd), via custos_cms_peek. */
char *fx_content(const uint8_t *der, size_t len);
/* Replace the first occurrence of @p from in @p s by @p to; new malloc'd string or NULL. */
char *fx_replace(const char *s, const char *from, const char *to);

/* Decode @p der (@p len bytes) and free what it yields; 0 when accepted. */
typedef int (*fx_decode_fn)(const uint8_t *der, size_t len, void *ctx);
/* Flip each byte of @p der in turn (XOR 0x41) and hand the copy to @p decode;
 * the number of flipped copies accepted, or SIZE_MAX when out of memory. */
size_t fx_count_accepted_flips(const uint8_t *der, size_t len, fx_decode_fn decode, void *ctx);

/* Offset and length of @p x's DER inside @p der; 0 or -1 when absent. */
int fx_find_cert(size_t *off, size_t *len, const uint8_t *der, size_t der_len, const X509 *x);

/* When CUSTOS_WRITE_CORPUS=dir is set, write @p data to dir/@p kind/@p name. */
void fx_write_corpus(const char *kind, const char *name, const uint8_t *data, size_t len);
/* When CUSTOS_WRITE_CORPUS is set, write seeds for every fuzz harness, all
 * under @p p's root: package/, request/, profile/, identity/ (locked with
 * FX_FUZZ_SECRET), plus trust-root.der and trust-now.txt for the harnesses'
 * fixed trust. Returns 0 (also when the variable is unset) or -1. */
int fx_write_all_corpus(const fx_pki *p);
#define FX_FUZZ_SECRET_BYTE 0x42 /* the fuzz device secret: 32 bytes of this */

#endif
