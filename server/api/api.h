/* The device protocol (/device/v1) and the operator API (/api/v1) of
 * custosd serve (docs/api.md): routing, authentication, roles, rate limits,
 * and the translation between HTTP and the engine. One custos_api is shared
 * by the server's worker threads; each worker has its own engine (its own
 * store connection), made by custos_api_worker_new(). */
#ifndef CUSTOS_SERVER_API_H
#define CUSTOS_SERVER_API_H

#include "custos/error.h"
#include "http/http.h"

typedef struct custos_api custos_api;

typedef struct custos_api_config {
    const char *data_dir;
    double device_rate;     /* device endpoints: requests per second per client address */
    double device_burst;    /* its bucket */
    double login_rate;      /* password sign-ins per second per client address and per user */
    unsigned poll_interval; /* retry_after for a pending request, seconds */
    const char *web_dir;    /* NULL: the console compiled in; else serve this folder */
} custos_api_config;

#define CUSTOS_API_CONFIG_INIT                                                                     \
    {                                                                                              \
        NULL, 20.0, 100.0, 0.2, 5, NULL                                                                \
    }

/* Opens the data directory once (keys, CA hierarchy) to check it. */
CUSTOS_NODISCARD custos_err custos_api_new(custos_api **out, const custos_api_config *cfg);
void custos_api_free(custos_api *api);

/* The server TLS context: certificate and key from the data directory,
 * TLS 1.2+, optional client certificates verified against the Root of Trust. */
CUSTOS_NODISCARD custos_err custos_api_ssl_ctx(SSL_CTX **out, custos_api *api);

/* custos_http_config callbacks: app is the custos_api. */
void *custos_api_worker_new(unsigned index, void *app);
void custos_api_worker_free(void *wctx);
void custos_api_handle(custos_http_exchange *x, void *wctx);

#endif
