/**
 * @file port.h
 * @brief The port: everything libcustos needs from the platform.
 *
 * libcustos never touches hardware, files, clocks or sockets directly. A
 * firmware engineer fills a ::custos_port with callbacks for the platform
 * (see docs/porting.md for what each callback must guarantee). Two ports
 * ship: `posix` (files in a directory, device secret in a 0600 file,
 * getrandom via OpenSSL, the system clock) and `null` (every callback
 * answers ::CUSTOS_ERR_NOT_PROVIDED).
 *
 * Storage is a flat namespace of small named objects (names match
 * `[a-z0-9][a-z0-9._-]{0,63}`). A write replaces the whole object atomically:
 * after a crash the object holds either the old or the new bytes, never a mix.
 */
#ifndef CUSTOS_PORT_H
#define CUSTOS_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Version of the port structure this header describes. */
#define CUSTOS_PORT_VERSION 1

/** Minimum length of the device secret, in bytes. */
#define CUSTOS_DEVICE_SECRET_MIN 32
/** Maximum length of the device secret, in bytes. */
#define CUSTOS_DEVICE_SECRET_MAX 64

/**
 * One HTTPS exchange for connected mode, filled by the library and answered
 * by the port's transport callback (docs/porting.md).
 */
typedef struct custos_http_request {
    const char *method;       /**< "GET" or "POST" */
    const char *url;          /**< absolute https URL */
    const char *content_type; /**< NULL for no body */
    const uint8_t *body;
    size_t body_len;
    /**
     * The trust anchors (DER certificates, concatenated) the server's
     * certificate must chain to: the only ones. Never empty.
     */
    const uint8_t *trust_der;
    size_t trust_der_len;
    /** The longest response body the library accepts; the port may refuse a longer one. */
    size_t max_response;
} custos_http_request;

/**
 * The answer to a ::custos_http_request. The library zeroes it before the
 * call; the port fills what it received. An HTTP error status is an answer,
 * not a failure: the callback returns 0 for any response it received.
 */
typedef struct custos_http_response {
    long status;   /**< HTTP status, 0 if no response */
    uint8_t *body; /**< malloc'd by the port; the library frees it with free() */
    size_t body_len;
    char content_type[128]; /**< the Content-Type header, "" if absent */
    long retry_after;       /**< seconds from Retry-After, or -1 */
    char request_id[64];    /**< the X-Request-Id header, "" if absent (for logs) */
    /**
     * When the callback fails (no response: DNS, connection, TLS, timeout),
     * a sentence naming what failed, for the library's error message.
     */
    char error[512];
} custos_http_response;

typedef struct custos_port {
    /** Must be ::CUSTOS_PORT_VERSION. */
    unsigned version;

    /**
     * Copy the device secret into @p out (at least ::CUSTOS_DEVICE_SECRET_MIN
     * bytes of uniformly random data, stable for the life of the device,
     * unreadable to anything but the device). A hardware port may derive it
     * inside a TPM or secure element.
     */
    custos_err (*device_secret)(uint8_t *out, size_t cap, size_t *out_len, void *ctx);

    /** Fill @p out with @p len bytes from a cryptographically secure source. */
    custos_err (*entropy)(uint8_t *out, size_t len, void *ctx);

    /**
     * Read the whole object @p name into @p out. ::CUSTOS_ERR_NOT_FOUND if it
     * does not exist, ::CUSTOS_ERR_TOO_LARGE if it exceeds @p cap.
     */
    custos_err (*storage_read)(uint8_t *out, size_t cap, size_t *out_len, const char *name,
                               void *ctx);

    /**
     * Replace object @p name with @p data atomically and durably (POSIX: temp
     * file 0600, fsync, rename, fsync directory) before returning.
     */
    custos_err (*storage_write)(const char *name, const uint8_t *data, size_t len, void *ctx);

    /**
     * Remove object @p name so it cannot be recovered from the storage layer
     * where the medium allows (POSIX: overwrite, fsync, unlink, fsync dir).
     * Removing a missing object succeeds.
     */
    custos_err (*storage_remove)(const char *name, void *ctx);

    /** Current time as seconds since the Unix epoch (UTC). */
    custos_err (*clock)(int64_t *out_unix_seconds, void *ctx);

    /**
     * Optional (connected mode): perform one HTTPS exchange, verifying the
     * server's certificate chain against @p req->trust_der only and its name
     * against the URL's host; TLS 1.2 or later, no redirects. Return 0 with
     * @p out filled for any HTTP response (4xx and 5xx included), or a
     * negative code (::CUSTOS_ERR_IO for network and TLS failures, with
     * @p out->error set) when there is none. NULL if the platform has no
     * network (custos_connect_step() then answers ::CUSTOS_ERR_NOT_PROVIDED).
     */
    custos_err (*transport)(custos_http_response *out, const custos_http_request *req, void *ctx);

    /** Passed unchanged to every callback. */
    void *ctx;
} custos_port;

/** Options of the posix port. */
typedef struct custos_port_posix_options {
    unsigned version;
    /** Directory that holds the device files (created 0700 if missing). */
    const char *device_dir;
    /**
     * Path of the device secret file; created with 32 random bytes and mode
     * 0600 on first use. NULL means CUSTOS_DEFAULT_SECRET_FILE.
     */
    const char *secret_file;
} custos_port_posix_options;

#define CUSTOS_PORT_POSIX_OPTIONS_VERSION 1
#define CUSTOS_PORT_POSIX_OPTIONS_INIT                                                             \
    {                                                                                              \
        CUSTOS_PORT_POSIX_OPTIONS_VERSION, NULL, NULL                                              \
    }

/** Default device secret path of the posix port. */
#define CUSTOS_DEFAULT_SECRET_FILE "/var/lib/custos/device-secret"

/** Opaque state of a posix port. */
typedef struct custos_port_posix custos_port_posix;

/**
 * Create a posix port. The directory is created if missing. The secret file
 * is not touched until the device secret is first needed.
 */
CUSTOS_NODISCARD custos_err custos_port_posix_new(custos_port_posix **out,
                                                  const custos_port_posix_options *opts);
/** The callbacks of @p posix; valid until custos_port_posix_free(). */
const custos_port *custos_port_posix_get(const custos_port_posix *posix);
/** Free a posix port; NULL is a no-op. */
void custos_port_posix_free(custos_port_posix *posix);

/**
 * Remove a file outside the port's directory the way storage_remove does
 * (overwrite with zeros, fsync, unlink, fsync the directory). Used to take a
 * provisioning package off the device.
 */
CUSTOS_NODISCARD custos_err custos_port_posix_shred(const char *path);

/** Fill @p out with the null port: every callback answers ::CUSTOS_ERR_NOT_PROVIDED. */
void custos_port_null(custos_port *out);

#ifdef __cplusplus
}
#endif
#endif
