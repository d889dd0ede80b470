/* custos-device: the posix port on --device-dir (tools/common/tool_device.c),
 * reporting its failures as the tool's own errors. */
#include "cli.h"

/* Raised inside port callbacks too, so more precise than what the library
 * records when it passes the code on. */
static custos_err to_tool_error(custos_err code, const char *field, const char *message, void *ctx)
{
    (void)ctx;
    custos_err r = cli_error(code, field, "%s", message);
    cli_error_prefer();
    return r;
}

static const tool_report PORT_REPORT = {to_tool_error, NULL};

custos_err cli_device_open(cli_device *out, const cli_args *a, int may_create_secret)
{
    custos_err r;
    out->hc = NULL;
    out->exchange_timeout_s = 0;
    r = tool_device_open(&out->td, cli_get(a, "device-dir"), cli_get(a, "secret-file"),
                         may_create_secret, &PORT_REPORT);
    out->td.owner = out;
    return r;
}

void cli_device_close(cli_device *d)
{
    custos_hc_free(d->hc);
    d->hc = NULL;
    tool_device_close(&d->td);
}

custos_err cli_device_load(custos_device **out, const cli_device *d, const cli_args *a)
{
    custos_device_options opts = CUSTOS_DEVICE_OPTIONS_INIT;
    opts.allow_mock = cli_flag(a, "allow-mock");
    return custos_device_open(out, &d->td.port, &opts);
}
