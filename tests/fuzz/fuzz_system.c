/* libFuzzer harness: system.json parsing and re-serialization. */
#include <stdlib.h>

#include "internal/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    custos_system_def *s = NULL;
    json_t *j = NULL;

    if (custos_system_parse(&s, data, size) == 0) {
        /* what parses must serialize again */
        if (custos_system_to_json(&j, s) != 0)
            abort();
        json_decref(j);
        custos_system_free(s);
    }
    custos_error_clear();
    return 0;
}
