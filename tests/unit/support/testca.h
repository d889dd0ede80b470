/* Test helpers: an in-memory PKI (root, intermediates, leaves with chosen EKU,
 * policy and validity) and temporary directories. For unit tests only. */
#ifndef CUSTOS_TEST_TESTCA_H
#define CUSTOS_TEST_TESTCA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "custos/types.h"

/* A certificate and its private key (both owned). */
typedef struct testca_cert {
    X509 *cert;
    EVP_PKEY *key;
} testca_cert;

typedef struct testca_opts {
    const char *cn;     /* subject CN; required */
    const char *ou;     /* optional OU (e.g. "mock") */
    custos_alg alg;     /* key to generate; CUSTOS_ALG_NONE means ECDSA P-256 */
    EVP_PKEY *key;      /* certify this key instead of generating one (up-ref'd) */
    int is_ca;          /* basicConstraints CA:TRUE, keyCertSign */
    int eku_nid;        /* extended key usage, 0 for none */
    int eku_nid2;       /* a second EKU, 0 for none */
    int policy_nid;     /* certificate policy, 0 for none */
    int64_t not_before; /* 0: now - 300 s */
    int64_t not_after;  /* 0: now + 365 days */
} testca_opts;

/* Issue a certificate per @p o, signed by @p issuer (NULL: self-signed).
 * Returns 0 or a negative custos_err. */
int testca_issue(testca_cert *out, const testca_cert *issuer, const testca_opts *o);

/* Shorthands: self-signed root CA, intermediate CA, leaf with one EKU
 * (eku_nid 0: none). ECDSA P-256, valid from now-300 s for a year. */
int testca_root(testca_cert *out, const char *cn);
int testca_intermediate(testca_cert *out, const testca_cert *issuer, const char *cn);
int testca_leaf(testca_cert *out, const testca_cert *issuer, const char *cn, int eku_nid);

/* Free both members and zero the struct; NULL members are fine. */
void testca_cert_free(testca_cert *c);

/* A new X509_STORE trusting @p root (caller frees with X509_STORE_free). */
X509_STORE *testca_store(const testca_cert *root);

/* A new stack holding up-refs of the non-NULL certs among @p a, @p b, @p c
 * (caller frees with sk_X509_pop_free(s, X509_free)). */
STACK_OF(X509) *testca_stack(const testca_cert *a, const testca_cert *b, const testca_cert *c);

/* Create a fresh directory under /tmp (mode 0700) into @p out; 0 or -1. */
int testca_tmpdir(char *out, size_t cap);

/* Remove @p path recursively (no error if missing); 0 or -1. */
int testca_rmtree(const char *path);

/* Write @p len bytes to @p path (plain fopen/fwrite); 0 or -1. */
int testca_write_file(const char *path, const void *data, size_t len);

#endif
