/* Internals of the device library (lib/package.c, lib/device*.c, lib/inspect.c,
 * lib/describe.c). Not installed. */
#ifndef CUSTOS_INTERNAL_DEVICE_H
#define CUSTOS_INTERNAL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "custos/device.h"
#include "custos/package.h"
#include "custos/port.h"
#include "internal/format.h"

/* An opened package (lib/package.c). */
struct custos_package {
    custos_package_doc *doc; /* verified */
    EVP_PKEY *bootstrap_key; /* decrypted; freed on custos_package_free */
    uint8_t *bootstrap_der;  /* DER of doc->bootstrap_cert */
    size_t bootstrap_der_len;
    uint8_t **root_der; /* DER of each root_of_trust certificate */
    size_t *root_der_len;
    size_t n_roots;
};

/* One key of the current generation of an opened device. */
typedef struct custos_device_key_entry {
    char template_name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    custos_alg alg;
    unsigned usage;
    EVP_PKEY *key; /* owned (up-ref'd from the identity) */
    X509 *cert;    /* borrowed from profile */
    uint8_t *cert_der;
    size_t cert_der_len;
    int64_t not_before;
    int64_t not_after;
} custos_device_key_entry;

struct custos_device {
    custos_port port; /* copy of the caller's callbacks */
    custos_identity_doc *identity;
    custos_profile_doc *profile;
    custos_device_key_entry keys[CUSTOS_MAX_TEMPLATES];
    size_t n_keys;
    uint8_t **root_der;
    size_t *root_der_len;
    size_t n_roots;
};

/* ---- storage and secrets (lib/device_store.c) ---------------------------- */

/* Read storage object @p name (at most @p max bytes) through @p port. */
CUSTOS_NODISCARD custos_err custos_dev_read(uint8_t **out, size_t *out_len, const custos_port *port,
                                            const char *name, size_t max);
/* custos_dev_read(), but a missing object is not an error: *out NULL, 0. */
CUSTOS_NODISCARD custos_err custos_dev_read_optional(uint8_t **out, size_t *out_len,
                                                     const custos_port *port, const char *name,
                                                     size_t max);
/* 1 if @p name exists, 0 if not, negative on error. */
CUSTOS_NODISCARD custos_err custos_dev_exists(const custos_port *port, const char *name);
CUSTOS_NODISCARD custos_err custos_dev_write(const custos_port *port, const char *name,
                                             const uint8_t *data, size_t len);
CUSTOS_NODISCARD custos_err custos_dev_remove(const custos_port *port, const char *name);
/* The device secret (wipe with OPENSSL_cleanse). */
CUSTOS_NODISCARD custos_err custos_dev_secret(uint8_t out[CUSTOS_DEVICE_SECRET_MAX],
                                              size_t *out_len, const custos_port *port);
/* Register the Custos OIDs with OpenSSL before parsing a CMS whose content
 * type must be recognised (custos_cms_peek compares NIDs). */
void custos_dev_oids_register(void);
/* Check that the port has every callback the device operations need. */
CUSTOS_NODISCARD custos_err custos_dev_port_check(const custos_port *port);
/* Decode identity.mcpi: mock identities (by their header) with no secret,
 * others with the port's device secret. */
CUSTOS_NODISCARD custos_err custos_dev_identity_load(custos_identity_doc **out,
                                                     const custos_port *port, const uint8_t *data,
                                                     size_t len);
CUSTOS_NODISCARD custos_err custos_dev_identity_save(const custos_port *port,
                                                     const custos_identity_doc *doc);
/* 1 if the cleartext header of @p data says mock. */
int custos_dev_identity_is_mock(const uint8_t *data, size_t len);
/* Copy @p src's keys (up-ref'd) into @p dst. */
void custos_dev_gen_copy(custos_identity_gen *dst, const custos_identity_gen *src);
/* A new identity doc with the header of @p src (no generations). */
CUSTOS_NODISCARD custos_err custos_dev_identity_clone_header(custos_identity_doc **out,
                                                             const custos_identity_doc *src);
/* An X509_STORE holding @p roots. */
CUSTOS_NODISCARD custos_err custos_dev_store(X509_STORE **out, STACK_OF(X509) *roots);
/* The self-signed certificates in @p certs (up-ref'd). */
CUSTOS_NODISCARD custos_err custos_dev_self_signed(STACK_OF(X509) **out, STACK_OF(X509) *certs);
/* The self-signed certificates a signed file carries, in its CMS
 * certificate set or in its content's "root_of_trust" array (unverified:
 * for checking a file against its own root, never for trusting it). */
CUSTOS_NODISCARD custos_err custos_dev_carried_roots(STACK_OF(X509) **out, const uint8_t *der,
                                                     size_t len, size_t max, const char *what);
/* Usage bits read from a certificate's extensions. */
unsigned custos_dev_cert_usage(X509 *cert);
/* Validate the identity fields of a request. */
CUSTOS_NODISCARD custos_err custos_dev_identity_fields_check(const custos_device_identity *id);
/* Copy identity fields into a request doc. */
CUSTOS_NODISCARD custos_err custos_dev_request_fill(custos_request_doc *req,
                                                    const custos_device_identity *id);

/* ---- descriptions for status and inspect (lib/describe.c) --------------- */

/* {"subject","issuer","serial","not_before","not_after","sha256","algorithm"} */
CUSTOS_NODISCARD custos_err custos_describe_cert(json_t **out, X509 *cert);
/* JSON array of custos_describe_cert for each certificate. */
CUSTOS_NODISCARD custos_err custos_describe_certs(json_t **out, STACK_OF(X509) *certs);
CUSTOS_NODISCARD custos_err custos_describe_error(json_t **out, custos_err err);
/* JSON string of an X.509 name (RFC 2253), or NULL. */
json_t *custos_describe_name(const X509_NAME *name);
/* JSON string of RFC 3339 time. */
json_t *custos_describe_time(int64_t t);
/* The latest notBefore of @p certs: a time at which a file whose only fault
 * is that it expired can still be checked for its signatures. */
int64_t custos_describe_common_valid_time(STACK_OF(X509) *certs);
/* o[key] = v (taking v); NOMEM when v is NULL. */
CUSTOS_NODISCARD custos_err custos_describe_set(json_t *o, const char *key, json_t *v);

#endif
