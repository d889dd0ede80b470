/* The CA of custosd: certificate building for the hierarchy
 * (server/ca/hierarchy.c), device certificate issuance (server/ca/issue.c)
 * and the RFC 5280 + Custos profile lint (server/ca/lint.c). */
#ifndef CUSTOS_SERVER_CA_H
#define CUSTOS_SERVER_CA_H

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "custos/error.h"
#include "custos/types.h"

#define CUSTOS_CA_BACKDATE 300 /* seconds: notBefore = now - this, for clock skew */

/* Authority names: certificates in the store, keys in the keystore. */
#define CUSTOS_AUTH_ROOT "root"
#define CUSTOS_AUTH_BOOTSTRAP "bootstrap-ca"
#define CUSTOS_AUTH_PACKAGE_SIGNING "package-signing"
#define CUSTOS_AUTH_PROFILE_SIGNING "profile-signing"
#define CUSTOS_AUTH_TLS_SERVER "tls-server"
#define CUSTOS_AUTH_MOCK_ROOT "mock-root"
#define CUSTOS_AUTH_MOCK_PROFILE_SIGNING "mock-profile-signing"
#define CUSTOS_AUTH_SYSTEM_PREFIX "system." /* + system name */

/* subjectAltName of the TLS server certificate; init may add names. */
#define CUSTOS_CA_TLS_SAN_DEFAULT "DNS:localhost,IP:127.0.0.1,IP:::1"

/* What an infrastructure certificate (CA, signing, TLS) looks like. */
typedef struct custos_ca_spec {
    const char *cn;
    int is_ca;
    int pathlen; /* -1: no pathLenConstraint */
    unsigned days;
    const char *eku;       /* extendedKeyUsage value ("serverAuth", dotted OID) or NULL */
    const char *san;       /* subjectAltName value or NULL */
    const char *key_usage; /* keyUsage value; NULL: CA default / digitalSignature */
} custos_ca_spec;

/* Build a certificate for @p key under @p issuer/@p issuer_key (both NULL:
 * self-signed). notAfter is capped at the issuer's notAfter. */
CUSTOS_NODISCARD custos_err custos_ca_make_cert(X509 **out, EVP_PKEY *key,
                                                const custos_ca_spec *spec, X509 *issuer,
                                                EVP_PKEY *issuer_key, int64_t now);

/* Random serial: 16 bytes, top bit cleared, not zero. */
CUSTOS_NODISCARD custos_err custos_ca_serial(ASN1_INTEGER **out);
/* Lowercase hex of the serial's content octets (<= 40 chars + NUL). */
CUSTOS_NODISCARD custos_err custos_ca_serial_hex(char out[41], const X509 *cert);

/* Add extension @p nid = @p value (OpenSSL config syntax) to @p x. */
CUSTOS_NODISCARD custos_err custos_ca_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value);

/* Issue a device certificate for @p pub per template @p t (hierarchy: @p ca
 * and @p ca_key). @p mock adds OU=mock and the mock policy instead of the
 * device policy. Does not lint; callers lint before storing.
 * @p spki, when not NULL, is @p pub's SubjectPublicKeyInfo as the CSR carried
 * it: an EC or Ed25519 key is then copied as encoded instead of re-encoded
 * (OpenSSL 3.0's X509_set_pubkey encodes and decodes the key again, which
 * costs more than signing the certificate). The issued X509 then has no
 * decoded public key in memory; use it through its DER. */
CUSTOS_NODISCARD custos_err custos_ca_issue(X509 **out, EVP_PKEY *pub, const X509_PUBKEY *spki,
                                            const custos_key_template *t, const char *system,
                                            const char *component, const char *serial, X509 *ca,
                                            EVP_PKEY *ca_key, int64_t now, int mock);

/* custos_ca_issue with @p san: the subjectAltName of a certificate whose
 * template has tls-server usage (ignored for other templates; NULL or empty:
 * none). Build it with custos_ca_gateway_names(). */
CUSTOS_NODISCARD custos_err custos_ca_issue_ex(X509 **out, EVP_PKEY *pub, const X509_PUBKEY *spki,
                                               const custos_key_template *t, const char *system,
                                               const char *component, const char *serial, X509 *ca,
                                               EVP_PKEY *ca_key, int64_t now, int mock,
                                               const GENERAL_NAMES *san);

/* server/ca/san.c: whether @p s (@p n bytes) is a lowercase DNS host name:
 * labels of [a-z0-9-] not starting or ending with '-', 1..63 bytes each, 253
 * in all, not all digits (no wildcard: one host per name). */
int custos_ca_dns_name_valid(const char *s, size_t n);

/* The host of an http(s) URL of services.gateways, lowercased
 * (an IPv6 literal without its brackets): *out_is_ip tells an IPv4/IPv6
 * address from a DNS name. CUSTOS_ERR_MALFORMED naming @p field when the URL
 * has no usable host (user info, a bad port, a name that is neither). */
struct custos_services;
CUSTOS_NODISCARD custos_err custos_ca_url_host(char *out, size_t cap, int *out_is_ip,
                                               const char *url, const char *field);
/* The subjectAltName of a tls-server device certificate: one dNSName or
 * iPAddress per distinct host of @p services->gateways (CUSTOS_ERR_MALFORMED,
 * field "services.gateways", when there is none). *out_has_dns (may be NULL):
 * whether one of them is a DNS name. Caller frees with GENERAL_NAMES_free. */
CUSTOS_NODISCARD custos_err custos_ca_gateway_names(GENERAL_NAMES **out, int *out_has_dns,
                                                    const struct custos_services *services);

/* RFC 5280 + Custos profile lint of a device certificate. CUSTOS_ERR_LINT
 * with field "lint:<rule>" and a message naming the rule. */
CUSTOS_NODISCARD custos_err custos_lint_certificate(const X509 *cert, const X509 *issuer,
                                                    const custos_key_template *t, int mock);

/* The same, also requiring the device @p serial in a subject attribute. */
CUSTOS_NODISCARD custos_err custos_lint_certificate_ex(const X509 *cert, const X509 *issuer,
                                                       const custos_key_template *t, int mock,
                                                       const char *serial);

#endif
