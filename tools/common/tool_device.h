/* Shared by the tools that act as a device (custos-device, custos-gateway):
 * libcustos's posix port on a device directory, with the device secret file
 * resolved the documented way (--secret-file, else $CUSTOS_SECRET_FILE, else
 * the default for root, else one under $HOME). */
#ifndef CUSTOS_TOOLS_DEVICE_H
#define CUSTOS_TOOLS_DEVICE_H

#include "custos/custos.h"
#include "tool_files.h"

typedef struct tool_device {
    custos_port_posix *posix;
    const custos_port *inner; /* the posix port's callbacks */
    custos_port port;         /* forwards to inner; the secret is checked first (ctx: this) */
    char secret_file[4096];
    int may_create_secret;
    const tool_report *report;
    void *owner; /* the tool's own state, for a transport it adds */
} tool_device;

/* Open the port on @p device_dir with the secret file @p secret_file (NULL:
 * the default, see above). Only a @p may_create_secret caller (identity
 * generation) creates a missing device directory or secret; the others
 * report them missing through @p r (which must outlive the port). */
custos_err tool_device_open(tool_device *out, const char *device_dir, const char *secret_file,
                            int may_create_secret, const tool_report *r);
/* NULL-safe, idempotent. */
void tool_device_close(tool_device *d);

#endif
