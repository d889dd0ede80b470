/**
 * @file device.h
 * @brief Device operations: identity generation, requests, profile install,
 * and the provisioned device's keys (signing, mutual TLS), reprovisioning.
 *
 * Device files live in the port's storage:
 *   - `identity.mcpi`        private keys (device-locked), up to 3 generations
 *   - `request.mcpr`         the pending provisioning request, if any
 *   - `profile.mccp`         the installed certified profile (current)
 *   - `profile.previous.mccp` the previous profile, kept after a rotation
 * The current generation is the one `profile.mccp` answers; installing a new
 * profile is a single atomic replace of `profile.mccp`.
 */
#ifndef CUSTOS_DEVICE_H
#define CUSTOS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"
#include "custos/package.h"
#include "custos/port.h"
#include "custos/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st;

#define CUSTOS_OBJ_IDENTITY "identity.mcpi"
#define CUSTOS_OBJ_REQUEST "request.mcpr"
#define CUSTOS_OBJ_PROFILE "profile.mccp"
#define CUSTOS_OBJ_PROFILE_PREVIOUS "profile.previous.mccp"
#define CUSTOS_OBJ_PACKAGE "package.mcpp"

/** A key/value pair of metadata. */
typedef struct custos_meta {
    const char *key;
    const char *value;
} custos_meta;

/** Who the device is. serial is required; the rest may be NULL. */
typedef struct custos_device_identity {
    const char *serial;
    const char *hardware_id;
    const char *model;
    const char *firmware;
    const custos_meta *manufacturer; /**< manufacturer-defined identity fields */
    size_t manufacturer_count;
    const custos_meta *metadata; /**< free metadata, bounded (docs/formats.md) */
    size_t metadata_count;
} custos_device_identity;

/** Flags of custos_request_options. */
enum custos_request_flags {
    /** Keep the storage object CUSTOS_OBJ_PACKAGE after a successful request. */
    CUSTOS_REQUEST_KEEP_PACKAGE = 1u << 0,
};

typedef struct custos_request_options {
    unsigned version;
    const char *component; /**< component of this device in the package */
    custos_device_identity identity;
    unsigned flags;
} custos_request_options;

#define CUSTOS_REQUEST_OPTIONS_VERSION 1
#define CUSTOS_REQUEST_OPTIONS_INIT                                                                \
    {                                                                                              \
        CUSTOS_REQUEST_OPTIONS_VERSION, NULL, {0}, 0                                               \
    }

/**
 * Initial provisioning: generate one key pair per template of the component,
 * store them in `identity.mcpi` (device-locked), write `request.mcpr` signed by
 * the bootstrap key, and remove CUSTOS_OBJ_PACKAGE from storage unless
 * CUSTOS_REQUEST_KEEP_PACKAGE. Fails with ::CUSTOS_ERR_STATE if the device is
 * already provisioned.
 * @param out_request optional: receives a malloc'd copy of the .mcpr (free()).
 */
CUSTOS_NODISCARD custos_err custos_device_request(uint8_t **out_request, size_t *out_len,
                                                  const custos_port *port,
                                                  const custos_package *pkg,
                                                  const custos_request_options *opts);

/** Result of an install. */
typedef struct custos_install_result {
    char device_id[CUSTOS_ID_LEN + 1];
    char request_id[CUSTOS_ID_LEN + 1];
    uint8_t profile_sha256[32]; /**< SHA-256 of the installed .mccp */
    int rotated;                /**< 1 if a previous generation was kept */
} custos_install_result;

/**
 * Verify a certified profile against the pending request and the device's
 * keys, then install it atomically. Checks: CMS signature by the
 * profile-signing key chained to the Root of Trust (from the current profile,
 * else from the pending request's package), the PR digest, one certificate per
 * pending key whose public key equals the device's own, validity. A bad or
 * foreign profile changes nothing.
 */
CUSTOS_NODISCARD custos_err custos_device_install(custos_install_result *out,
                                                  const custos_port *port, const uint8_t *profile,
                                                  size_t len);

/** A provisioned device, opened for operations. */
typedef struct custos_device custos_device;

typedef struct custos_device_options {
    unsigned version;
    /** Accept mock device files (test only). Default 0: mock refused (::CUSTOS_ERR_MOCK). */
    int allow_mock;
} custos_device_options;

#define CUSTOS_DEVICE_OPTIONS_VERSION 1
#define CUSTOS_DEVICE_OPTIONS_INIT                                                                 \
    {                                                                                              \
        CUSTOS_DEVICE_OPTIONS_VERSION, 0                                                           \
    }

/**
 * Open the installed device files: verifies the profile against its Root of
 * Trust, decrypts the identity with the device secret (::CUSTOS_ERR_LOCKED when
 * they were made on another device) and matches keys to certificates.
 */
CUSTOS_NODISCARD custos_err custos_device_open(custos_device **out, const custos_port *port,
                                               const custos_device_options *opts);
/** Free, wiping the keys. NULL is a no-op. */
void custos_device_free(custos_device *dev);

const char *custos_device_id(const custos_device *dev);
const char *custos_device_serial(const custos_device *dev);
const char *custos_device_system(const custos_device *dev);
const char *custos_device_component(const custos_device *dev);
int custos_device_is_mock(const custos_device *dev);

/** Information on one key of the current generation. */
typedef struct custos_key_info {
    const char *template_name;
    custos_alg alg;
    unsigned usage;
    const uint8_t *cert_der; /**< borrowed */
    size_t cert_der_len;
    int64_t not_before;
    int64_t not_after;
} custos_key_info;

size_t custos_device_key_count(const custos_device *dev);
CUSTOS_NODISCARD custos_err custos_device_key(custos_key_info *out, const custos_device *dev,
                                              size_t i);
/** Root of Trust certificate @p i (DER, borrowed). */
size_t custos_device_root_count(const custos_device *dev);
CUSTOS_NODISCARD custos_err custos_device_root(const uint8_t **out, size_t *out_len,
                                               const custos_device *dev, size_t i);

/**
 * Sign @p data with the key of template @p tmpl: ECDSA over SHA-256 as DER
 * (P-256 and P-384), RSA PKCS#1 v1.5 with SHA-256, Ed25519 pure. Verifiable
 * with `openssl dgst -sha256 -verify` (every ECDSA and RSA key) and
 * `openssl pkeyutl -verify -rawin` (Ed25519).
 * @param out buffer of @p cap bytes (512 is always enough).
 */
CUSTOS_NODISCARD custos_err custos_device_sign(uint8_t *out, size_t cap, size_t *out_len,
                                               const custos_device *dev, const char *tmpl,
                                               const uint8_t *data, size_t len);

/**
 * A TLS client context for mutual TLS: the key and certificate of template
 * @p tmpl (NULL: the first with usage tls-client) plus its chain, the Root of
 * Trust as the only trust anchors, TLS 1.2 minimum, peer verification on.
 * The server's certificate must be fit for a TLS server (purpose sslserver:
 * no extended key usage, or one including serverAuth) and, when the profile's
 * services name a cloud URL, issued to that URL's host (DNS name, or IP
 * address for an IP literal such as `https://[2001:db8::1]:8443`): the host
 * check defaults to the cloud URL's host. A caller connecting to another
 * server (a gateway) must call SSL_set1_host() on each SSL itself; when the
 * cloud URL's host or the other server is an IP literal, first clear the
 * inherited check with X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), NULL, 0)
 * and X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), NULL, 0) (OpenSSL
 * requires every configured name and address to match). Without a cloud URL
 * no name is checked: set one with SSL_set1_host().
 * The caller owns the result (SSL_CTX_free()).
 */
CUSTOS_NODISCARD custos_err custos_device_ssl_ctx(struct ssl_ctx_st **out, const custos_device *dev,
                                                  const char *tmpl);

typedef struct custos_rotate_options {
    unsigned version;
    /** 0: fresh keys (rotation); 1: the same keys (renewal). */
    int same_keys;
    /** Optional new firmware version and metadata for the request. */
    const char *firmware;
    const custos_meta *metadata;
    size_t metadata_count;
} custos_rotate_options;

#define CUSTOS_ROTATE_OPTIONS_VERSION 1
#define CUSTOS_ROTATE_OPTIONS_INIT                                                                 \
    {                                                                                              \
        CUSTOS_ROTATE_OPTIONS_VERSION, 0, NULL, NULL, 0                                            \
    }

/**
 * Reprovisioning: build a request of kind "reprovision" signed with the
 * current identity key (first tls-client or signing template), add the new
 * generation to `identity.mcpi`, write `request.mcpr`. The current
 * generation stays in use until custos_device_install() of the answer.
 */
CUSTOS_NODISCARD custos_err custos_device_rotate(uint8_t **out_request, size_t *out_len,
                                                 custos_device *dev,
                                                 const custos_rotate_options *opts);

/**
 * A JSON description of the device files in @p port's storage for people and
 * scripts (state "empty" | "pending" | "provisioned" | "rotating", ids,
 * certificates with validity and fingerprints; "receipt_pending": true while a
 * connected-mode install receipt waits to be accepted). Never contains key
 * material.
 * *out is malloc'd (free()).
 */
CUSTOS_NODISCARD custos_err custos_device_status(char **out_json, const custos_port *port);

/**
 * Describe any Custos file (.mcpp, .mcpr, .mccp, .mcpi) for a person, as JSON:
 * kind, what verified and what could not be checked without a trust anchor,
 * and the content (never key material; .mcpi shows only its header).
 * *out is malloc'd (free()).
 */
CUSTOS_NODISCARD custos_err custos_inspect(char **out_json, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
