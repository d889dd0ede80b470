/* libFuzzer harness: .mcpi private identity decode and cleartext header.
 * The seed corpus is locked to FUZZ_SECRET (32 bytes of 0x42). */
#include <string.h>

#include "internal/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t secret[32];
    custos_identity_doc *d = NULL;
    json_t *h = NULL;

    memset(secret, 0x42, sizeof(secret));
    if (custos_identity_decode(&d, data, size, secret, sizeof(secret)) == 0)
        custos_identity_doc_free(d);
    d = NULL;
    /* a mock identity opens without a secret */
    if (custos_identity_decode(&d, data, size, NULL, 0) == 0)
        custos_identity_doc_free(d);
    if (custos_identity_header(&h, data, size) == 0)
        json_decref(h);
    custos_error_clear();
    return 0;
}
