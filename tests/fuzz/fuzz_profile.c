/* libFuzzer harness: .mccp certified profile decode (CMS, certificate
 * chains, JSON). */
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
    custos_profile_doc *d = NULL;

    if (custos_profile_decode(&d, data, size, &t) == 0)
        custos_profile_doc_free(d);
    fuzz_peek(data, size, CUSTOS_MAX_PROFILE_SIZE);
    custos_error_clear();
    return 0;
}
