/* libFuzzer harness: the request-head scanner of the HTTPS server
 * (server/http/head.c), fed the bytes in one piece and again in two pieces
 * split where the input's first byte says, as a client trickling a head would
 * deliver them. The results must agree. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "http/http_int.h"

static size_t scan(const uint8_t *data, size_t size, size_t split, custos_http_head *hi)
{
    struct evbuffer *b = evbuffer_new();
    size_t pos = 0, end;

    assert(b != NULL);
    evbuffer_add(b, data, split);
    end = custos_http_head_end(b, &pos);
    if (end == 0) {
        evbuffer_add(b, data + split, size - split);
        end = custos_http_head_end(b, &pos);
    }
    memset(hi, 0, sizeof(*hi));
    if (end > 0) {
        assert(end <= size);
        custos_http_head_analyze(b, end, hi);
        assert(memchr(hi->method, '\0', sizeof(hi->method)) != NULL);
    }
    evbuffer_free(b);
    return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    custos_http_head a, b;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    size_t ea, eb;

    if (size > 64 * 1024)
        return 0;
    ea = scan(data, size, size, &a);
    eb = scan(data, size, split, &b);
    assert(ea == eb);
    assert(memcmp(&a, &b, sizeof(a)) == 0);
    return 0;
}
