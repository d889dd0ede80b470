/* CA and signing keys on disk, encrypted at rest.
 *
 * DIR/master.key holds 32 random bytes (0600). Each key is
 * DIR/keys/<name>.key: a DER PKCS#8 EncryptedPrivateKeyInfo (PBES2, scrypt +
 * AES-256-CBC) whose passphrase is the hex of the master key. The master key
 * is already 256 random bits, so the scrypt cost adds no strength; it is kept
 * low (N=1024, r=8, p=1) so opening the engine stays fast.
 * Production should keep the master key (or the CA keys themselves) in an
 * HSM or a KMS instead of a file; the interface here is what such a backend
 * replaces. */
#ifndef CUSTOS_SERVER_KEYSTORE_H
#define CUSTOS_SERVER_KEYSTORE_H

#include <openssl/evp.h>

#include "custos/error.h"

typedef struct custos_keystore custos_keystore;

/* Create DIR/master.key and DIR/keys (0700). Fails if the master key exists. */
CUSTOS_NODISCARD custos_err custos_keystore_create(const char *dir);
CUSTOS_NODISCARD custos_err custos_keystore_open(custos_keystore **out, const char *dir);
void custos_keystore_free(custos_keystore *ks);

/* Write DIR/keys/<name>.key (0600, atomic). @p name: custos_name_valid(). */
CUSTOS_NODISCARD custos_err custos_keystore_put(custos_keystore *ks, const char *name,
                                                const EVP_PKEY *key);
CUSTOS_NODISCARD custos_err custos_keystore_get(EVP_PKEY **out, custos_keystore *ks,
                                                const char *name);
/* Remove DIR/keys/<name>.key (after a failed creation). */
void custos_keystore_remove(custos_keystore *ks, const char *name);

/* A 32-byte key for another purpose (e.g. "custos audit v1"), derived from
 * the master key with HKDF-SHA256 and @p label as info. */
CUSTOS_NODISCARD custos_err custos_keystore_derive(uint8_t out[32], const custos_keystore *ks,
                                                   const char *label);

#endif
