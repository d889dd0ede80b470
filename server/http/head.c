/* Request heads, scanned before evhttp sees them (server/http/conn.c holds
 * a request back until its head is complete and within the limits): where
 * the head ends, and the method and framing headers evhttp will act on.
 * Untrusted input: tests/fuzz/fuzz_http_head.c. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http_int.h"

/* Length of the head in hold (through its empty line), or 0 when it is not
 * complete yet. Lines end in LF or CRLF, as evhttp reads them. */
size_t custos_http_head_end(struct evbuffer *hold, size_t *scan_pos)
{
    struct evbuffer_ptr p, e;
    size_t eol_len = 0;

    if (evbuffer_ptr_set(hold, &p, *scan_pos, EVBUFFER_PTR_SET) != 0)
        return 0;
    for (;;) {
        e = evbuffer_search_eol(hold, &p, &eol_len, EVBUFFER_EOL_CRLF);
        if (e.pos < 0) {
            *scan_pos = (size_t)p.pos;
            return 0;
        }
        if (e.pos == p.pos)
            return (size_t)e.pos + eol_len;
        if (evbuffer_ptr_set(hold, &p, (size_t)e.pos + eol_len, EVBUFFER_PTR_SET) != 0)
            return 0;
    }
}

static void parse_content_length(custos_http_head *hi, const char *v, int truncated)
{
    uint64_t n = 0;
    const char *s = v;

    if (*s == '\0')
        hi->cl_bad = 1;
    for (; *s >= '0' && *s <= '9'; s++)
        n = n > UINT64_MAX / 16 ? UINT64_MAX / 16 : n * 10 + (uint64_t)(*s - '0');
    if (*s != '\0')
        hi->cl_bad = 1;
    if (truncated)
        n = UINT64_MAX / 16; /* a 100-digit length is not small */
    if (hi->cl_seen && n != hi->cl)
        hi->cl_bad = 1; /* conflicting lengths: a smuggling attempt */
    hi->cl_seen = 1;
    hi->cl = n;
}

/* What evhttp will need to frame the request: the method, Content-Length and
 * Transfer-Encoding. Only used to refuse; evhttp still parses what passes. */
void custos_http_head_analyze(struct evbuffer *hold, size_t head_len, custos_http_head *hi)
{
    struct evbuffer_ptr p, e;
    size_t eol_len = 0, line_no = 0;
    char line[128];

    memset(hi, 0, sizeof(*hi));
    evbuffer_ptr_set(hold, &p, 0, EVBUFFER_PTR_SET);
    while ((size_t)p.pos < head_len) {
        size_t len, n;
        char *colon, *v;

        e = evbuffer_search_eol(hold, &p, &eol_len, EVBUFFER_EOL_CRLF);
        if (e.pos < 0 || e.pos == p.pos)
            break;
        len = (size_t)(e.pos - p.pos);
        n = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
        evbuffer_copyout_from(hold, &p, line, n);
        line[n] = '\0';
        if (line_no++ == 0) {
            size_t m = strcspn(line, " ");
            if (m < sizeof(hi->method)) {
                memcpy(hi->method, line, m);
                hi->method[m] = '\0';
            }
        } else if (line[0] != ' ' && line[0] != '\t' && (colon = strchr(line, ':')) != NULL) {
            *colon = '\0';
            for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
                ;
            for (char *end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t');)
                *--end = '\0';
            if (strcasecmp(line, "content-length") == 0)
                parse_content_length(hi, v, len > n);
            else if (strcasecmp(line, "transfer-encoding") == 0)
                hi->te_seen = 1;
        }
        evbuffer_ptr_set(hold, &p, (size_t)e.pos + eol_len, EVBUFFER_PTR_SET);
    }
}
