/* libFuzzer harness: .mcpr provisioning request decode (CMS, signer role,
 * CSRs and proof of possession, JSON limits). */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_trust_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    custos_trust t = fuzz_trust(0);
    custos_request_doc *d = NULL;

    if (custos_request_decode(&d, data, size, &t) == 0)
        custos_request_doc_free(d);
    fuzz_peek(data, size, CUSTOS_MAX_REQUEST_SIZE);
    custos_error_clear();
    return 0;
}
