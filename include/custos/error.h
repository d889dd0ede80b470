/**
 * @file error.h
 * @brief The one result type of libcustos and the detail of the last failure.
 *
 * Every fallible function returns a ::custos_err: 0 on success, a negative
 * ::custos_err_code on failure. The stable machine code (custos_err_code())
 * is what services put in `{"error":{"code":...}}`; the detail of the last
 * failure on the calling thread (custos_error_last()) names the file, field
 * or limit for a person.
 */
#ifndef CUSTOS_ERROR_H
#define CUSTOS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every fallible libcustos call: 0 success, negative failure. */
typedef int custos_err;

#if defined(__GNUC__) || defined(__clang__)
#define CUSTOS_NODISCARD __attribute__((warn_unused_result))
#else
#define CUSTOS_NODISCARD
#endif

/** Error codes. The numbers are part of the ABI; never renumber. */
enum custos_err_code {
    CUSTOS_OK = 0,
    CUSTOS_ERR_INTERNAL = -1,  /**< "internal": a bug or an OpenSSL failure */
    CUSTOS_ERR_NOMEM = -2,     /**< "out_of_memory" */
    CUSTOS_ERR_ARG = -3,       /**< "invalid_argument": caller error */
    CUSTOS_ERR_IO = -4,        /**< "io_error": storage read/write failed */
    CUSTOS_ERR_TOO_LARGE = -5, /**< "too_large": a size or count limit was exceeded */
    CUSTOS_ERR_MALFORMED = -6, /**< "malformed": not the expected encoding or structure */
    CUSTOS_ERR_SIGNATURE = -7, /**< "bad_signature": a signature does not verify */
    CUSTOS_ERR_UNTRUSTED = -8, /**< "untrusted": the signer does not chain to the trust anchor */
    CUSTOS_ERR_EXPIRED = -9,   /**< "expired": a certificate, package or request has expired */
    CUSTOS_ERR_NOT_YET_VALID = -10, /**< "not_yet_valid" */
    CUSTOS_ERR_PASSPHRASE = -11,    /**< "wrong_passphrase" */
    CUSTOS_ERR_LOCKED = -12,        /**< "locked_to_another_device" */
    CUSTOS_ERR_NOT_FOUND = -13,     /**< "not_found" */
    CUSTOS_ERR_MISMATCH = -14,      /**< "mismatch": belongs to another device/request/key */
    CUSTOS_ERR_TEMPLATE = -15, /**< "template_mismatch": keys do not conform to the templates */
    CUSTOS_ERR_UNKNOWN_COMPONENT = -16, /**< "unknown_component" */
    CUSTOS_ERR_NOT_PROVIDED = -17,      /**< "not_provided": the port does not provide this */
    CUSTOS_ERR_STATE = -18,             /**< "invalid_state": not allowed in the current state */
    CUSTOS_ERR_MOCK = -19, /**< "mock_identity": a mock identity where a real one is required */
    CUSTOS_ERR_UNSUPPORTED = -20, /**< "unsupported": algorithm, version or kind not supported */
    CUSTOS_ERR_DUPLICATE = -21,   /**< "duplicate" */
    CUSTOS_ERR_LINT = -22,        /**< "lint_failed": a certificate fails the RFC 5280 profile */
    CUSTOS_ERR_POP = -23,         /**< "proof_of_possession": a CSR signature does not verify */
    CUSTOS_ERR_EXISTS = -24,      /**< "already_exists" */
    CUSTOS_ERR_LIMIT = -25,       /**< "limit_exceeded": a field or metadata limit */
    CUSTOS_ERR_AUTH = -26, /**< "unauthenticated": no, unknown, expired or revoked credential */
    CUSTOS_ERR_FORBIDDEN = -27, /**< "forbidden": the credential's role does not allow this */
};

/** Detail of a failure: code, a sentence for a person, and the field or limit. */
typedef struct custos_error {
    custos_err code;
    char message[512];
    char field[128];
} custos_error;

/** @return the stable machine code for @p err, e.g. "expired". Never NULL. */
const char *custos_err_code(custos_err err);

/** @return a generic sentence for @p err. Never NULL. */
const char *custos_strerror(custos_err err);

/**
 * @return the detail of the last failure on this thread, or an entry with
 * code 0 if none. Valid until the next libcustos call on this thread.
 */
const custos_error *custos_error_last(void);

/** Forget the last failure on this thread. */
void custos_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
