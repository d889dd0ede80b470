/* custos-device: the transport of the posix port for connected mode, on the
 * tools' HTTPS client (libcurl). The library itself opens no sockets. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define EXCHANGE_TIMEOUT_MAX 30L

static custos_err cli_transport(custos_http_response *out, const custos_http_request *req,
                                void *ctx)
{
    const tool_device *td = ctx;
    cli_device *d = td->owner;
    custos_hc_request rq;
    custos_hc_response rs;
    custos_err r;

    memset(&rq, 0, sizeof(rq));
    rq.method = req->method;
    rq.url = req->url;
    rq.content_type = req->content_type;
    rq.body = req->body;
    rq.body_len = req->body_len;
    rq.ca_der = req->trust_der;
    rq.ca_der_len = req->trust_der_len;
    rq.max_response = req->max_response;
    rq.timeout_s = d->exchange_timeout_s > 0 && d->exchange_timeout_s < EXCHANGE_TIMEOUT_MAX
                       ? d->exchange_timeout_s
                       : EXCHANGE_TIMEOUT_MAX;
    r = custos_hc_perform(&rs, d->hc, &rq);
    if (r < 0) {
        /* The library names the method and URL itself. */
        const char *msg = custos_error_last()->message;
        size_t ml = strlen(req->method), ul = strlen(req->url);
        if (strncmp(msg, req->method, ml) == 0 && msg[ml] == ' ' &&
            strncmp(msg + ml + 1, req->url, ul) == 0 && strncmp(msg + ml + 1 + ul, ": ", 2) == 0)
            msg += ml + ul + 3;
        snprintf(out->error, sizeof(out->error), "%s", msg);
        return r;
    }
    out->status = rs.status;
    out->body = rs.body;
    out->body_len = rs.body_len;
    rs.body = NULL;
    snprintf(out->content_type, sizeof(out->content_type), "%s", rs.content_type);
    snprintf(out->request_id, sizeof(out->request_id), "%s", rs.request_id);
    out->retry_after = rs.retry_after;
    custos_hc_response_clear(&rs);
    return CUSTOS_OK;
}

custos_err cli_device_connect(cli_device *d)
{
    custos_err r = CUSTOS_OK;

    if (d->hc == NULL)
        r = custos_hc_new(&d->hc);
    if (r < 0)
        return r;
    d->td.port.transport = cli_transport;
    return CUSTOS_OK;
}
