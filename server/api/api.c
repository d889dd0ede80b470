/* Placeholder: the API lands with custosd serve. */
#include <stdlib.h>

#include "api.h"

struct custos_api {
    int unused;
};

custos_err custos_api_new(custos_api **out, const custos_api_config *cfg)
{
    (void)cfg;
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? CUSTOS_OK : CUSTOS_ERR_NOMEM;
}

void custos_api_free(custos_api *api)
{
    free(api);
}
