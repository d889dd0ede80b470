/* libFuzzer harness: `custos inspect` of any file a person hands it — kind
 * detection, the unverified peek, the best-effort verification and the JSON
 * description. The output must always be valid JSON. */
#include <stdlib.h>

#include <jansson.h>

#include "custos/device.h"
#include "internal/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = NULL;

    if (custos_inspect(&json, data, size) == 0) {
        json_t *j = json_loads(json, 0, NULL);
        if (j == NULL)
            abort();
        json_decref(j);
        free(json);
    }
    custos_error_clear();
    return 0;
}
