/* The device protocol (/device/v1) and the operator API (/api/v1) of
 * custosd serve (docs/api.md): routing, authentication, roles, and the
 * translation between HTTP and the engine. One custos_api is shared by the
 * server's worker threads; each worker has its own engine (its own store
 * connection), made by custos_api_worker_new(). */
#ifndef CUSTOS_SERVER_API_H
#define CUSTOS_SERVER_API_H

#include "custos/error.h"

typedef struct custos_api custos_api;

typedef struct custos_api_config {
    const char *data_dir;
    double device_rate;   /* device endpoints: requests per second per client address */
    double device_burst;  /* bucket size */
    double login_rate;    /* password sign-ins per second per address and per user */
} custos_api_config;

CUSTOS_NODISCARD custos_err custos_api_new(custos_api **out, const custos_api_config *cfg);
void custos_api_free(custos_api *api);

#endif
