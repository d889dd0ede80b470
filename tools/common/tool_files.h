/* Shared by the command-line tools: reading the operator's input files and
 * writing files atomically (temp file, fsync, rename, fsync of the directory).
 * Each tool reports a failure its own way, through a tool_report. */
#ifndef CUSTOS_TOOLS_FILES_H
#define CUSTOS_TOOLS_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"

#define TOOL_REPORT_MAX 512 /* a failure's message, with its NUL */

/* Where a helper reports a failure: @p fn gets the code, the option it
 * concerns and the formatted message, and returns the code to pass on. */
typedef struct tool_report {
    custos_err (*fn)(custos_err code, const char *field, const char *message, void *ctx);
    void *ctx;
} tool_report;

/* Read a whole regular file of at most @p max bytes (size checked before
 * reading; too_large names the limit). @p open_flags are added to
 * O_RDONLY | O_CLOEXEC (O_NONBLOCK: a FIFO fails instead of waiting). */
custos_err tool_read_file(uint8_t **out, size_t *out_len, const char *path, size_t max,
                          int open_flags, const char *field, const tool_report *r);
/* Write a file atomically: temp file with @p mode, fsync, rename, fsync of
 * the directory. Failures name the field "out". */
custos_err tool_write_file(const char *path, const uint8_t *data, size_t len, unsigned mode,
                           const tool_report *r);
/* The directory part of @p path ("." when there is none); -1 when it does not fit. */
int tool_dir_of(char *out, size_t cap, const char *path);
/* Wipe @p len bytes of @p p, then free it (NULL is a no-op). */
void tool_free_secret(uint8_t *p, size_t len);

#endif
