/* The null port: compiles everywhere and answers CUSTOS_ERR_NOT_PROVIDED to
 * everything. Start a new port by copying this file. */
#include <string.h>

#include "custos/port.h"
#include "internal/util.h"

static custos_err null_device_secret(uint8_t *out, size_t cap, size_t *out_len, void *ctx)
{
    (void)out;
    (void)cap;
    (void)ctx;
    if (out_len != NULL)
        *out_len = 0;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "device_secret",
                            "the null port provides no device secret");
}

static custos_err null_entropy(uint8_t *out, size_t len, void *ctx)
{
    (void)out;
    (void)len;
    (void)ctx;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "entropy",
                            "the null port provides no entropy");
}

static custos_err null_storage_read(uint8_t *out, size_t cap, size_t *out_len, const char *name,
                                    void *ctx)
{
    (void)out;
    (void)cap;
    (void)ctx;
    if (out_len != NULL)
        *out_len = 0;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "storage_read",
                            "the null port provides no storage (reading %s)",
                            name != NULL ? name : "(null)");
}

static custos_err null_storage_write(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    (void)ctx;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "storage_write",
                            "the null port provides no storage (writing %s)",
                            name != NULL ? name : "(null)");
}

static custos_err null_storage_remove(const char *name, void *ctx)
{
    (void)ctx;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "storage_remove",
                            "the null port provides no storage (removing %s)",
                            name != NULL ? name : "(null)");
}

static custos_err null_clock(int64_t *out, void *ctx)
{
    (void)ctx;
    if (out != NULL)
        *out = 0;
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "clock", "the null port provides no clock");
}

static custos_err null_transport(custos_http_response *out, const custos_http_request *req,
                                 void *ctx)
{
    (void)req;
    (void)ctx;
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    return custos_error_set(CUSTOS_ERR_NOT_PROVIDED, "transport",
                            "the null port provides no transport");
}

void custos_port_null(custos_port *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    out->version = CUSTOS_PORT_VERSION;
    out->device_secret = null_device_secret;
    out->entropy = null_entropy;
    out->storage_read = null_storage_read;
    out->storage_write = null_storage_write;
    out->storage_remove = null_storage_remove;
    out->clock = null_clock;
    out->transport = null_transport;
    out->ctx = NULL;
}
