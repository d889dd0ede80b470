/* libFuzzer harness: install receipt decode (CMS with its own signer as the
 * only anchor, signingCertificateV2 binding, strict JSON). */
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
    custos_receipt_doc *d = NULL;

    if (custos_receipt_decode(&d, data, size) == 0)
        custos_receipt_doc_free(d);
    fuzz_peek(data, size, CUSTOS_MAX_RECEIPT_SIZE);
    custos_error_clear();
    return 0;
}
