/* Internal helpers shared by libcustos, custosd and the tools. Not installed. */
#ifndef CUSTOS_INTERNAL_UTIL_H
#define CUSTOS_INTERNAL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "custos/error.h"
#include "custos/port.h"
#include "custos/types.h"

/* ---- errors (lib/error.c) ------------------------------------------------ */

/* Record the detail of a failure on this thread and return @p code. @p field
 * may be NULL. The message is printf-formatted. Never put secrets in it. */
custos_err custos_error_set(custos_err code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like custos_error_set, appending the first OpenSSL error queue entry (and
 * clearing the queue). */
custos_err custos_error_set_ssl(custos_err code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CUSTOS_GUARD(expr)                                                                         \
    do {                                                                                           \
        custos_err guard_r_ = (expr);                                                              \
        if (guard_r_ < 0) {                                                                        \
            ret = guard_r_;                                                                        \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* ENSURE: fail with code/field/message when cond is false. */
#define CUSTOS_ENSURE(cond, code, field, ...)                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ret = custos_error_set((code), (field), __VA_ARGS__);                                  \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- randomness, ids, time (lib/util.c) ---------------------------------- */

/* Random bytes from the port's entropy callback, or OpenSSL's RAND_bytes when
 * port is NULL. */
CUSTOS_NODISCARD custos_err custos_random(const custos_port *port, uint8_t *out, size_t len);
/* 128-bit random id, base32 lowercase without padding: CUSTOS_ID_LEN chars + NUL. */
CUSTOS_NODISCARD custos_err custos_id_new(char out[CUSTOS_ID_LEN + 1], const custos_port *port);
/* 1 if @p s is a well-formed id. */
int custos_id_valid(const char *s);
/* Test builds only (CUSTOS_TEST_HOOKS): the Unix time in CUSTOS_FAKE_NOW, or
 * 0 when unset; CUSTOS_ERR_ARG when malformed. Release builds: always 0. */
CUSTOS_NODISCARD custos_err custos_test_clock(int64_t *out);
/* Current time from the port's clock; when port is NULL, the test clock
 * (test builds) or time(NULL). */
CUSTOS_NODISCARD custos_err custos_now(int64_t *out, const custos_port *port);
/* RFC 3339 UTC "2026-11-29T12:00:00Z" (21 bytes incl. NUL). */
void custos_time_format(char out[21], int64_t t);
CUSTOS_NODISCARD custos_err custos_time_parse(int64_t *out, const char *s);
/* ASN1_TIME -> unix seconds. */
CUSTOS_NODISCARD custos_err custos_asn1_time_to_unix(int64_t *out, const ASN1_TIME *t);

/* ---- encodings (lib/util.c; base64 via OpenSSL EVP_Encode/DecodeBlock) ---- */

/* Standard base64 with padding; *out is malloc'd and NUL-terminated. */
CUSTOS_NODISCARD custos_err custos_b64_encode(char **out, const uint8_t *in, size_t len);
/* Strict: refuses whitespace, bad padding, non-canonical input and more than
 * @p max decoded bytes (CUSTOS_ERR_TOO_LARGE). *out is malloc'd. */
CUSTOS_NODISCARD custos_err custos_b64_decode(uint8_t **out, size_t *out_len, const char *in,
                                              size_t max, const char *field);
void custos_hex_encode(char *out, const uint8_t *in, size_t len); /* out: 2*len+1 */
CUSTOS_NODISCARD custos_err custos_hex_decode(uint8_t *out, size_t len, const char *in,
                                              const char *field);
void custos_sha256(uint8_t out[32], const uint8_t *in, size_t len);

/* ---- bounded strings and names ------------------------------------------ */

/* Copy a NUL-terminated string into a fixed buffer; TOO_LARGE if it does not fit. */
CUSTOS_NODISCARD custos_err custos_strlcpy_checked(char *dst, size_t cap, const char *src,
                                                   const char *field);
/* Names: [a-z0-9][a-z0-9_.-]* up to @p max chars (systems, components, templates, storage). */
int custos_name_valid(const char *s, size_t max);
/* Serial numbers: [A-Za-z0-9][A-Za-z0-9._:-]* up to CUSTOS_MAX_SERIAL_LEN. */
int custos_serial_valid(const char *s);
/* Printable UTF-8 without control characters, at most @p max bytes. */
int custos_text_valid(const char *s, size_t max);
/* The host of "scheme://[userinfo@]host[:port][/path][?query][#fragment]"
 * into @p out (an IPv6 literal without its brackets); *is_ip is 1 for an IPv4
 * or IPv6 literal. MALFORMED (naming @p field) without "://", with an empty
 * host or a bad bracketed literal; TOO_LARGE when it does not fit. */
CUSTOS_NODISCARD custos_err custos_url_host(char *out, size_t cap, int *is_ip, const char *url,
                                            const char *field);

/* ---- files (lib/file.c) --------------------------------------------------- */

/* Read a whole file; TOO_LARGE (naming the path and limit) if over @p max. */
CUSTOS_NODISCARD custos_err custos_file_read(uint8_t **out, size_t *out_len, const char *path,
                                             size_t max);
/* Write a file atomically: temp (O_EXCL|O_NOFOLLOW, @p mode), fsync, rename,
 * fsync the directory. */
CUSTOS_NODISCARD custos_err custos_file_write_atomic(const char *path, const uint8_t *data,
                                                     size_t len, unsigned mode);
/* Overwrite with zeros, fsync, unlink, fsync dir. Missing file: success. */
CUSTOS_NODISCARD custos_err custos_file_shred(const char *path);

/* ---- JSON (jansson; strict) --------------------------------------------- */

/* Once per process: make jansson wipe every block it frees (parser buffers
 * hold decrypted key text), unless the application installed its own
 * allocator (json_set_alloc_funcs) before. custos_json_parse/dump call it;
 * call it before building JSON that holds secrets with jansson directly. */
void custos_json_wipe_init(void);

/* Parse with JSON_REJECT_DUPLICATES; refuses embedded NULs and trailing data.
 * Errors name @p what (e.g. "request content") and the line/column. */
CUSTOS_NODISCARD custos_err custos_json_parse(json_t **out, const uint8_t *data, size_t len,
                                              const char *what);
/* Compact, key-sorted serialization; *out malloc'd, NUL-terminated. */
CUSTOS_NODISCARD custos_err custos_json_dump(char **out, size_t *out_len, const json_t *j);

/* ---- keys and X.509 helpers (lib/x509util.c) ----------------------------- */

/* Generate a key pair for @p alg. */
CUSTOS_NODISCARD custos_err custos_key_generate(EVP_PKEY **out, custos_alg alg);
/* Algorithm of @p key (P-256/P-384/Ed25519/RSA-3072 only), or CUSTOS_ALG_NONE. */
custos_alg custos_key_alg(const EVP_PKEY *key);
/* Digest to use when signing with @p key: SHA-256 (P-256, RSA), SHA-384 (P-384), NULL (Ed25519). */
const EVP_MD *custos_key_md(const EVP_PKEY *key);
/* 1 if the two keys have the same public part. */
int custos_key_public_equal(const EVP_PKEY *a, const EVP_PKEY *b);
/* SHA-256 of the DER SubjectPublicKeyInfo. */
CUSTOS_NODISCARD custos_err custos_key_spki_sha256(uint8_t out[32], const EVP_PKEY *key);
/* DER <-> objects, with size bounds and no trailing bytes. */
CUSTOS_NODISCARD custos_err custos_x509_from_der(X509 **out, const uint8_t *der, size_t len,
                                                 const char *field);
CUSTOS_NODISCARD custos_err custos_x509_to_der(uint8_t **out, size_t *out_len, const X509 *x);
CUSTOS_NODISCARD custos_err custos_x509_from_b64(X509 **out, const char *b64, const char *field);
CUSTOS_NODISCARD custos_err custos_x509_to_b64(char **out, const X509 *x);
/* Build the subject "CN={serial},OU={component},O=..." with placeholders
 * {serial} {component} {system} {template} substituted. */
CUSTOS_NODISCARD custos_err custos_subject_build(X509_NAME **out, const char *pattern,
                                                 const char *system, const char *component,
                                                 const char *serial, const char *tmpl);
/* Validate a subject pattern (known attributes CN O OU C L ST serialNumber, known placeholders). */
CUSTOS_NODISCARD custos_err custos_subject_pattern_check(const char *pattern, const char *field);

/* Object identifiers (docs/formats.md). Registered with OBJ_create on first use. */
typedef enum custos_oid {
    CUSTOS_OID_CT_PACKAGE,
    CUSTOS_OID_CT_REQUEST,
    CUSTOS_OID_CT_PROFILE,
    CUSTOS_OID_CT_RECEIPT,
    CUSTOS_OID_EKU_PACKAGE_SIGNING,
    CUSTOS_OID_EKU_PROFILE_SIGNING,
    CUSTOS_OID_EKU_BOOTSTRAP,
    CUSTOS_OID_POLICY_DEVICE,
    CUSTOS_OID_POLICY_MOCK,
    CUSTOS_OID_COUNT
} custos_oid;
#define CUSTOS_OID_ARC "2.25.112124183163539286607313110288899251360"
/* The NID of @p oid (registering it on first call; thread-safe). */
int custos_oid_nid(custos_oid oid);
/* The dotted text of @p oid. */
const char *custos_oid_text(custos_oid oid);

/* ---- added by lib/x509util.c ---------------------------------------------- */

/* 1 if @p x carries extended key usage @p nid (e.g. custos_oid_nid(CUSTOS_OID_EKU_BOOTSTRAP)). */
int custos_x509_has_eku(const X509 *x, int nid);

/* MALFORMED unless @p obj is an object whose keys are all in @p allowed
 * (NULL-terminated); the error names "<field>.<key>" (lib/util.c). */
CUSTOS_NODISCARD custos_err custos_json_check_keys(const json_t *obj, const char *const *allowed,
                                                   const char *field);

#endif
