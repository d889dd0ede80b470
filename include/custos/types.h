/**
 * @file types.h
 * @brief Algorithms, key usages, key templates and the limits every file obeys.
 */
#ifndef CUSTOS_TYPES_H
#define CUSTOS_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Key algorithms. Names in files: "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072". */
typedef enum custos_alg {
    CUSTOS_ALG_NONE = 0,
    CUSTOS_ALG_ECDSA_P256 = 1,
    CUSTOS_ALG_ECDSA_P384 = 2,
    CUSTOS_ALG_ED25519 = 3,
    CUSTOS_ALG_RSA_3072 = 4,
} custos_alg;

/** Key usages (bit set). Names in files: "tls-client", "tls-server", "signing". */
enum custos_usage {
    CUSTOS_USAGE_TLS_CLIENT = 1u << 0,
    CUSTOS_USAGE_TLS_SERVER = 1u << 1,
    CUSTOS_USAGE_SIGNING = 1u << 2,
};

/* Limits (docs/formats.md is the reference; parsers refuse anything over them). */
#define CUSTOS_MAX_PACKAGE_SIZE (256u * 1024u)
#define CUSTOS_MAX_REQUEST_SIZE (64u * 1024u)
#define CUSTOS_MAX_PROFILE_SIZE (256u * 1024u)
#define CUSTOS_MAX_IDENTITY_SIZE (64u * 1024u)
#define CUSTOS_MAX_SYSTEM_JSON_SIZE (64u * 1024u)
#define CUSTOS_MAX_RECEIPT_SIZE (16u * 1024u)
#define CUSTOS_MAX_NAME_LEN 64 /**< system, component names */
#define CUSTOS_MAX_TEMPLATE_NAME_LEN 32
#define CUSTOS_MAX_SUBJECT_LEN 256
#define CUSTOS_MAX_TEMPLATES 8   /**< per component */
#define CUSTOS_MAX_COMPONENTS 32 /**< per system */
#define CUSTOS_MAX_SERIAL_LEN 64
#define CUSTOS_MAX_HARDWARE_ID_LEN 128
#define CUSTOS_MAX_MODEL_LEN 64
#define CUSTOS_MAX_FIRMWARE_LEN 64
#define CUSTOS_MAX_META_ENTRIES 16 /**< free metadata and manufacturer fields, each */
#define CUSTOS_MAX_META_KEY_LEN 32
#define CUSTOS_MAX_META_VALUE_LEN 256
#define CUSTOS_MAX_CSR_SIZE 4096
#define CUSTOS_MAX_CERT_SIZE 8192
#define CUSTOS_MAX_URL_LEN 256
#define CUSTOS_MAX_GATEWAYS 8
#define CUSTOS_MAX_GENERATIONS 3 /**< key generations kept in one .mcpi */
#define CUSTOS_MAX_VALID_DAYS 36500
#define CUSTOS_ID_LEN 26 /**< 128-bit ids: base32 lowercase, no padding */

/** A key template: one key pair per template of a component. */
typedef struct custos_key_template {
    char name[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    custos_alg alg;
    unsigned usage;      /**< bit set of ::custos_usage */
    unsigned valid_days; /**< validity of the issued certificate */
    /** Subject pattern, e.g. "CN={serial},OU={component},O=Acme Medical". */
    char subject[CUSTOS_MAX_SUBJECT_LEN + 1];
} custos_key_template;

/** @return the file name of @p alg ("ecdsa-p256"...), or NULL. */
const char *custos_alg_name(custos_alg alg);
/** @return the algorithm named @p name, or ::CUSTOS_ALG_NONE. */
custos_alg custos_alg_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
