/**
 * @file connect.h
 * @brief Connected mode: the device provisions itself over the device
 * protocol (docs/api.md), one exchange at a time, through the port's
 * transport callback.
 *
 * The library opens no sockets and never sleeps: custos_connect_step() does
 * the next exchange with the server (submit the pending request, poll it,
 * download and install the certified profile, send the install receipt) and
 * says how long the server asked the device to wait. The caller sleeps,
 * retries after network errors with a backoff of its choice, and calls
 * again until the phase is ::CUSTOS_CONNECT_PROVISIONED. Progress lives in
 * the port's storage, so a device killed at any point resumes where it
 * stopped (docs/porting.md, "Connected mode"):
 *   - `request.submitted` the SHA-256 of the pending request once the server
 *                         has accepted it (later steps poll instead of submitting)
 *   - `receipt.pending`   the install receipt, from the install until the
 *                         server has accepted it
 */
#ifndef CUSTOS_CONNECT_H
#define CUSTOS_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"
#include "custos/port.h"
#include "custos/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTOS_OBJ_REQUEST_SUBMITTED "request.submitted"
#define CUSTOS_OBJ_RECEIPT_PENDING "receipt.pending"

/** Content types of the device protocol. */
#define CUSTOS_CT_REQUEST "application/vnd.custos.mcpr"
#define CUSTOS_CT_PROFILE "application/vnd.custos.mccp"
#define CUSTOS_CT_RECEIPT "application/vnd.custos.receipt"

/** Where provisioning stands after a step. */
typedef enum custos_connect_phase {
    CUSTOS_CONNECT_NONE = 0,  /**< no step completed (the step failed) */
    CUSTOS_CONNECT_SUBMITTED, /**< the server accepted the pending request */
    CUSTOS_CONNECT_WAITING,   /**< polled: the request waits for approval */
    CUSTOS_CONNECT_INSTALLED, /**< the profile is installed; the receipt is stored, not yet
                                   sent, or sent and queued (202) but not confirmed */
    CUSTOS_CONNECT_PROVISIONED, /**< the server accepted the receipt: done */
} custos_connect_phase;

/** What a step did and what the server said. */
typedef struct custos_connect_status {
    custos_connect_phase phase;
    /** The server's state of the request: "pending", "approved", "certified",
     *  "provisioned", "rejected", "expired", or "" when it did not say. */
    char state[16];
    char request_id[CUSTOS_ID_LEN + 1]; /**< the request being provisioned */
    char device_id[CUSTOS_ID_LEN + 1];  /**< once known */
    /** Seconds to wait before the next step: what the server asked for
     *  (its retry_after or Retry-After), 0 to go on at once, -1 when it did
     *  not say (after an error: the caller's backoff decides). */
    long retry_after;
    long http_status; /**< status of the last exchange, 0 if none */
    /** After a failed step: the server's error code ("rejected",
     *  "rate_limited", "expired", ...) when it answered with one, else "". */
    char server_code[32];
    /** After a failed step: 1 if the same step may succeed later (network or
     *  TLS failure, 429, 5xx), 0 if it was refused for good. */
    int retryable;
} custos_connect_status;

/**
 * Do the next exchange of connected provisioning:
 *   1. a stored receipt (`receipt.pending`): send it; on acceptance (`200`)
 *      remove it: ::CUSTOS_CONNECT_PROVISIONED; when it is only queued
 *      (`202`, a gateway that has not yet had it confirmed) keep it:
 *      ::CUSTOS_CONNECT_INSTALLED with the answer's retry_after;
 *   2. a pending request not yet accepted by the server: submit it
 *      (`POST /device/v1/requests`, idempotent): ::CUSTOS_CONNECT_SUBMITTED;
 *   3. a submitted request: poll it; while it waits ::CUSTOS_CONNECT_WAITING;
 *      when the profile is ready, install it (custos_device_install()), sign
 *      a receipt with the first non-Ed25519 key of the new generation and
 *      store it: ::CUSTOS_CONNECT_INSTALLED (retry_after 0);
 *   4. nothing pending but an installed profile: make a receipt for it and
 *      send it, so the server confirms (or records) that the device is
 *      provisioned: ::CUSTOS_CONNECT_PROVISIONED (a `202` stores it as
 *      `receipt.pending`, as in 1).
 * The server is trusted through the Root of Trust the device holds (from
 * its installed profile, else from the package its identity was made
 * with), passed to the transport as the only trust anchors.
 *
 * @param out filled on success and on failure (see ::custos_connect_status).
 * @param server_url base URL of custosd ("https://custos.example:8443");
 *        NULL or "" for the cloud URL of the installed profile, else of the
 *        package. Only https.
 * @return 0, or: ::CUSTOS_ERR_NOT_PROVIDED without a transport;
 *         ::CUSTOS_ERR_STATE with nothing to provision; ::CUSTOS_ERR_IO when
 *         the server could not be reached; the code of the server's error
 *         answer (::CUSTOS_ERR_EXPIRED for `410`, ::CUSTOS_ERR_FORBIDDEN for a
 *         rejected request with the approver's reason as the message, ...);
 *         any error of custos_device_install().
 */
CUSTOS_NODISCARD custos_err custos_connect_step(custos_connect_status *out, const custos_port *port,
                                                const char *server_url);

/**
 * Read a device-protocol or operator-API error answer
 * (`{"error": {"code", "message", "field"}}`, docs/api.md) into the
 * thread's error detail (custos_error_last()): the ::custos_err whose
 * custos_err_code() is the answer's code, or one chosen by the HTTP status
 * for codes the library does not have (`rejected` 403 ::CUSTOS_ERR_FORBIDDEN,
 * `rate_limited` 429 and 5xx ::CUSTOS_ERR_IO, ...); the message is the
 * server's, or "HTTP <status>" when the body is not such an answer.
 * @param out_code optional: receives the server's code ("" if none).
 * @return the code (always negative).
 */
custos_err custos_http_error(char *out_code, size_t code_cap, const custos_http_response *r);

/**
 * Record a failure detected outside the library (a port, a tool) as the
 * thread's error detail, as the library does for its own: custos_error_last()
 * then answers @p code, @p message and @p field (may be NULL).
 * @return @p code.
 */
custos_err custos_error_report(custos_err code, const char *field, const char *message);

#ifdef __cplusplus
}
#endif
#endif
