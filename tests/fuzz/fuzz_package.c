/* libFuzzer harness: .mcpp provisioning package decode (CMS, trust, JSON). */
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
    custos_package_doc *d = NULL;

    /* trust on first use: the root carried in the package */
    if (custos_package_decode(&d, data, size, NULL, FUZZ_NOW) == 0)
        custos_package_doc_free(d);
    d = NULL;
    /* pinned root */
    if (custos_package_decode(&d, data, size, fuzz_root, FUZZ_NOW) == 0)
        custos_package_doc_free(d);
    fuzz_peek(data, size, CUSTOS_MAX_PACKAGE_SIZE);
    custos_error_clear();
    return 0;
}
