/**
 * @file log.h
 * @brief Structured logs of custosd: one JSON object per line on stderr,
 * {"time" (RFC 3339 UTC, milliseconds), "level", "event", ...fields}.
 * Thread-safe: a line is written whole. Never log secrets, headers or bodies.
 */
#ifndef CUSTOS_HTTP_LOG_H
#define CUSTOS_HTTP_LOG_H

#include <jansson.h>

/**
 * @param level  "debug" "info" "warn" "error"
 * @param event  short machine name, e.g. "http", "tls_handshake_failed"
 * @param fields object of extra fields, may be NULL; not consumed. Keys "time",
 *               "level" and "event" in it are ignored.
 */
void custos_log(const char *level, const char *event, const json_t *fields);

/** Redirect the log lines to @p fd (tests); -1 restores stderr. */
void custos_log_set_fd(int fd);

#endif
