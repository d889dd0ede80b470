/* Randomness, ids, time, encodings, bounded strings and strict JSON. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#if defined(__linux__) || defined(__GLIBC__)
#include <malloc.h> /* malloc_usable_size */
#define CUSTOS_HAVE_MALLOC_USABLE_SIZE 1
#endif

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "internal/util.h"

/* ---- randomness, ids, time ---------------------------------------------- */

custos_err custos_random(const custos_port *port, uint8_t *out, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    CUSTOS_ENSURE(out != NULL || len == 0, CUSTOS_ERR_ARG, NULL,
                  "no output buffer for random bytes");
    if (len == 0)
        return CUSTOS_OK;
    if (port != NULL && port->entropy != NULL) {
        ret = port->entropy(out, len, port->ctx);
        if (ret < 0 && custos_error_last()->code != ret)
            (void)custos_error_set(ret, "entropy", "the port's entropy source failed");
        goto out;
    }
    CUSTOS_ENSURE(len <= INT_MAX, CUSTOS_ERR_ARG, NULL, "random request too large");
    if (RAND_bytes(out, (int)len) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_INTERNAL, "entropy", "RAND_bytes failed");
        goto out;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

custos_err custos_id_new(char out[CUSTOS_ID_LEN + 1], const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t raw[16];
    unsigned acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    memset(out, 0, CUSTOS_ID_LEN + 1);
    CUSTOS_GUARD(custos_random(port, raw, sizeof(raw)));
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = ((acc << 8) | raw[i]) & 0xfffu;
        bits += 8;
        while (bits >= 5) {
            out[n++] = b32_alphabet[(acc >> (bits - 5)) & 31u];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[n++] = b32_alphabet[(acc << (5 - bits)) & 31u];
    out[n] = '\0';
    ret = CUSTOS_OK;
out:
    return ret;
}

int custos_id_valid(const char *s)
{
    const char *p;

    if (s == NULL || strlen(s) != CUSTOS_ID_LEN)
        return 0;
    for (size_t i = 0; i < CUSTOS_ID_LEN; i++) {
        if (s[i] == '\0' || (p = strchr(b32_alphabet, s[i])) == NULL)
            return 0;
        /* 128 bits in 26 characters: the last one carries 3 bits + 2 zero bits. */
        if (i == CUSTOS_ID_LEN - 1 && ((p - b32_alphabet) & 3) != 0)
            return 0;
    }
    return 1;
}

custos_err custos_test_clock(int64_t *out)
{
    *out = 0;
#ifdef CUSTOS_TEST_HOOKS
    const char *fake = getenv("CUSTOS_FAKE_NOW");
    if (fake != NULL && fake[0] != '\0') {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(fake, &end, 10);
        if (errno != 0 || end == fake || *end != '\0' || v <= 0)
            return custos_error_set(CUSTOS_ERR_ARG, "CUSTOS_FAKE_NOW",
                                    "CUSTOS_FAKE_NOW must be Unix seconds, got '%.32s'", fake);
        *out = (int64_t)v;
    }
#endif
    return CUSTOS_OK;
}

custos_err custos_now(int64_t *out, const custos_port *port)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    time_t t;

    *out = 0;
    if (port != NULL && port->clock != NULL) {
        ret = port->clock(out, port->ctx);
        if (ret < 0 && custos_error_last()->code != ret)
            (void)custos_error_set(ret, "clock", "the port's clock failed");
        goto out;
    }
    CUSTOS_GUARD(custos_test_clock(out));
    if (*out != 0) {
        ret = CUSTOS_OK;
        goto out;
    }
    t = time(NULL);
    CUSTOS_ENSURE(t != (time_t)-1, CUSTOS_ERR_INTERNAL, "clock", "the system clock is unavailable");
    *out = (int64_t)t;
    ret = CUSTOS_OK;
out:
    return ret;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void custos_time_format(char out[21], int64_t t)
{
    int64_t days = t / 86400;
    int64_t secs = t % 86400;
    int64_t y;
    unsigned m, d;

    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        (void)snprintf(out, 21, "%s", y < 0 ? "0000-01-01T00:00:00Z" : "9999-12-31T23:59:59Z");
        return;
    }
    /* A wider scratch buffer: the compiler cannot see that every field fits. */
    char tmp[64];
    (void)snprintf(tmp, sizeof(tmp), "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m % 100u, d % 100u,
                   (int)(secs / 3600), (int)((secs / 60) % 60), (int)(secs % 60));
    memcpy(out, tmp, 20);
    out[20] = '\0';
}

static int parse_digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 1;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dim[m - 1];
}

custos_err custos_time_parse(int64_t *out, const char *s)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned y, mo, d, h, mi, se;

    *out = 0;
    CUSTOS_ENSURE(s != NULL && strlen(s) == 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
                      s[13] == ':' && s[16] == ':' && s[19] == 'Z',
                  CUSTOS_ERR_MALFORMED, "time",
                  "time is not an RFC 3339 UTC time like 2026-11-29T12:00:00Z");
    CUSTOS_ENSURE(parse_digits(s, 4, &y) && parse_digits(s + 5, 2, &mo) &&
                      parse_digits(s + 8, 2, &d) && parse_digits(s + 11, 2, &h) &&
                      parse_digits(s + 14, 2, &mi) && parse_digits(s + 17, 2, &se),
                  CUSTOS_ERR_MALFORMED, "time", "time \"%s\" has a non-digit field", s);
    CUSTOS_ENSURE(mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h <= 23 &&
                      mi <= 59 && se <= 59,
                  CUSTOS_ERR_MALFORMED, "time", "time \"%s\" is out of range", s);
    *out = days_from_civil((int64_t)y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 +
           (int64_t)se;
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_asn1_time_to_unix(int64_t *out, const ASN1_TIME *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct tm tm;

    *out = 0;
    memset(&tm, 0, sizeof(tm));
    CUSTOS_ENSURE(t != NULL, CUSTOS_ERR_ARG, "time", "no time given");
    if (ASN1_TIME_to_tm(t, &tm) != 1) {
        ret = custos_error_set_ssl(CUSTOS_ERR_MALFORMED, "time", "invalid ASN.1 time");
        goto out;
    }
    *out =
        days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) *
            86400 +
        (int64_t)tm.tm_hour * 3600 + (int64_t)tm.tm_min * 60 + (int64_t)tm.tm_sec;
    ret = CUSTOS_OK;
out:
    return ret;
}

/* ---- encodings ------------------------------------------------------------- */

custos_err custos_b64_encode(char **out, const uint8_t *in, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t cap;
    char *buf = NULL;

    *out = NULL;
    CUSTOS_ENSURE(len <= (size_t)INT_MAX / 4 * 3 - 3, CUSTOS_ERR_TOO_LARGE, NULL,
                  "data too large to encode in base64");
    cap = (len + 2) / 3 * 4 + 1;
    buf = malloc(cap);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (len == 0)
        buf[0] = '\0';
    else
        (void)EVP_EncodeBlock((unsigned char *)buf, in, (int)len);
    *out = buf;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    free(buf);
    return ret;
}

static int b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

custos_err custos_b64_decode(uint8_t **out, size_t *out_len, const char *in, size_t max,
                             const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t n, pad = 0, dec_len;
    uint8_t *buf = NULL;
    char *again = NULL;
    int r;

    *out = NULL;
    *out_len = 0;
    CUSTOS_ENSURE(in != NULL, CUSTOS_ERR_MALFORMED, field, "%s is missing",
                  field ? field : "base64");
    n = strlen(in);
    CUSTOS_ENSURE(n % 4 == 0, CUSTOS_ERR_MALFORMED, field,
                  "%s is not base64 (length %zu is not a multiple of 4)", field ? field : "value",
                  n);
    CUSTOS_ENSURE(n < (size_t)INT_MAX, CUSTOS_ERR_TOO_LARGE, field,
                  "%s is larger than the limit of %zu bytes", field ? field : "value", max);
    if (n >= 1 && in[n - 1] == '=')
        pad++;
    if (n >= 2 && in[n - 2] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        CUSTOS_ENSURE(b64_char(in[i]), CUSTOS_ERR_MALFORMED, field,
                      "%s is not base64 (bad character at offset %zu)", field ? field : "value", i);
    dec_len = n / 4 * 3 - pad;
    CUSTOS_ENSURE(dec_len <= max, CUSTOS_ERR_TOO_LARGE, field,
                  "%s is larger than the limit of %zu bytes", field ? field : "value", max);
    buf = malloc(n / 4 * 3 + 1);
    CUSTOS_ENSURE(buf != NULL, CUSTOS_ERR_NOMEM, field, "out of memory");
    if (n > 0) {
        r = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
        CUSTOS_ENSURE(r >= 0 && (size_t)r == n / 4 * 3, CUSTOS_ERR_MALFORMED, field,
                      "%s is not base64", field ? field : "value");
        /* Reject non-canonical encodings (stray bits in the last quantum). */
        CUSTOS_GUARD(custos_b64_encode(&again, buf, dec_len));
        CUSTOS_ENSURE(strcmp(again, in) == 0, CUSTOS_ERR_MALFORMED, field,
                      "%s is not canonical base64", field ? field : "value");
    }
    *out = buf;
    *out_len = dec_len;
    buf = NULL;
    ret = CUSTOS_OK;
out:
    if (again != NULL) {
        OPENSSL_cleanse(again, strlen(again));
        free(again);
    }
    if (buf != NULL) {
        OPENSSL_cleanse(buf, n / 4 * 3 + 1);
        free(buf);
    }
    return ret;
}

void custos_hex_encode(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* lowercase only: every hex field has one canonical spelling */
}

custos_err custos_hex_decode(uint8_t *out, size_t len, const char *in, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    memset(out, 0, len);
    CUSTOS_ENSURE(in != NULL && strlen(in) == 2 * len, CUSTOS_ERR_MALFORMED, field,
                  "%s must be %zu hex digits", field ? field : "value", 2 * len);
    for (size_t i = 0; i < len; i++) {
        int hi = hex_val(in[2 * i]), lo = hex_val(in[2 * i + 1]);

        CUSTOS_ENSURE(hi >= 0 && lo >= 0, CUSTOS_ERR_MALFORMED, field,
                      "%s is not lowercase hexadecimal", field ? field : "value");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    ret = CUSTOS_OK;
out:
    if (ret < 0)
        memset(out, 0, len);
    return ret;
}

void custos_sha256(uint8_t out[32], const uint8_t *in, size_t len)
{
    unsigned int n = 0;

    if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        memset(out, 0, 32);
}

/* ---- bounded strings and names ------------------------------------------ */

custos_err custos_strlcpy_checked(char *dst, size_t cap, const char *src, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t n;

    if (cap > 0)
        dst[0] = '\0';
    CUSTOS_ENSURE(src != NULL && cap > 0, CUSTOS_ERR_ARG, field, "%s is missing",
                  field ? field : "value");
    n = strlen(src);
    CUSTOS_ENSURE(n < cap, CUSTOS_ERR_TOO_LARGE, field, "%s is longer than %zu bytes",
                  field ? field : "value", cap - 1);
    memcpy(dst, src, n + 1);
    ret = CUSTOS_OK;
out:
    return ret;
}

int custos_name_valid(const char *s, size_t max)
{
    size_t n;

    if (s == NULL || (n = strlen(s)) == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return 0;
    }
    return 1;
}

int custos_serial_valid(const char *s)
{
    size_t n;

    if (s == NULL || (n = strlen(s)) == 0 || n > CUSTOS_MAX_SERIAL_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != ':' && c != '-')))
            return 0;
    }
    return 1;
}

int custos_text_valid(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;

    if (s == NULL || (n = strlen(s)) > max)
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        unsigned cp, need;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int ip_literal(const char *s)
{
    ERR_set_mark();
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
    ERR_pop_to_mark();
    int ok = ip != NULL;
    ASN1_OCTET_STRING_free(ip);
    return ok;
}

custos_err custos_url_host(char *out, size_t cap, int *is_ip, const char *url, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *a, *end, *h, *h_end, *at;

    CUSTOS_ENSURE(out != NULL && cap > 0 && is_ip != NULL && url != NULL, CUSTOS_ERR_ARG, field,
                  "NULL argument");
    out[0] = '\0';
    *is_ip = 0;
    a = strstr(url, "://");
    CUSTOS_ENSURE(a != NULL, CUSTOS_ERR_MALFORMED, field, "%s is not a URL", field);
    a += 3;
    end = a + strcspn(a, "/?#");
    while ((at = memchr(a, '@', (size_t)(end - a))) != NULL) /* userinfo@ */
        a = at + 1;
    if (*a == '[') {
        h = a + 1;
        h_end = memchr(h, ']', (size_t)(end - h));
        CUSTOS_ENSURE(h_end != NULL && (h_end + 1 == end || h_end[1] == ':'), CUSTOS_ERR_MALFORMED,
                      field, "%s has a malformed IPv6 address", field);
        *is_ip = 1;
    } else {
        h = a;
        h_end = memchr(h, ':', (size_t)(end - h));
        if (h_end == NULL)
            h_end = end;
    }
    CUSTOS_ENSURE(h_end > h, CUSTOS_ERR_MALFORMED, field, "%s names no host", field);
    CUSTOS_ENSURE((size_t)(h_end - h) < cap, CUSTOS_ERR_TOO_LARGE, field,
                  "the host of %s is too long", field);
    memcpy(out, h, (size_t)(h_end - h));
    out[h_end - h] = '\0';
    if (*is_ip)
        CUSTOS_ENSURE(strchr(out, ':') != NULL && ip_literal(out), CUSTOS_ERR_MALFORMED, field,
                      "%s has a malformed IPv6 address", field);
    else
        *is_ip = ip_literal(out);
    ret = CUSTOS_OK;
out:
    if (ret < 0 && out != NULL && cap > 0)
        out[0] = '\0';
    if (ret < 0 && is_ip != NULL)
        *is_ip = 0;
    return ret;
}

/* ---- JSON -------------------------------------------------------------------- */

/* jansson frees its scratch memory with plain free(): the parser's buffer
 * holding the raw text of every string it read (decrypted identity keys
 * included), json_pack()'s copies, the serializer's buffers. json_wipe() only
 * reaches the final values, so without this the key text lingers in freed
 * heap. We install a free that wipes every block before releasing it, unless
 * the application installed its own allocator first (we never override one).
 *
 * The malloc stays plain malloc() and the free wipes malloc_usable_size()
 * bytes, not a size header in front of the block: the allocator is global to
 * the process, so blocks allocated before the switch are later freed by our
 * free, and callers release json_dumps() results with free() (jansson's
 * documented contract, also inside custosd and the tests). A header would turn
 * both into heap corruption. Where malloc_usable_size() is missing, nothing is
 * installed (docs/porting.md). */
#ifdef CUSTOS_HAVE_MALLOC_USABLE_SIZE
static void *json_wipe_malloc(size_t n)
{
    return malloc(n);
}

static void json_wipe_free(void *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

static void json_wipe_install(void)
{
    json_malloc_t m = NULL;
    json_free_t f = NULL;

    json_get_alloc_funcs(&m, &f);
    if (m == malloc && f == free)
        json_set_alloc_funcs(json_wipe_malloc, json_wipe_free);
}
#endif

void custos_json_wipe_init(void)
{
#ifdef CUSTOS_HAVE_MALLOC_USABLE_SIZE
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, json_wipe_install);
#endif
}

custos_err custos_json_parse(json_t **out, const uint8_t *data, size_t len, const char *what)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_error_t jerr;
    json_t *j = NULL;

    custos_json_wipe_init();
    *out = NULL;
    if (what == NULL)
        what = "JSON";
    CUSTOS_ENSURE(data != NULL && len > 0, CUSTOS_ERR_MALFORMED, what, "%s is empty", what);
    CUSTOS_ENSURE(memchr(data, '\0', len) == NULL, CUSTOS_ERR_MALFORMED, what,
                  "%s contains a NUL byte", what);
    /* Without JSON_DISABLE_EOF_CHECK jansson refuses anything after the value. */
    j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_MALFORMED, what,
                  "%s is not valid JSON: %s (line %d, column %d)", what, jerr.text, jerr.line,
                  jerr.column);
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(j);
    return ret;
}

custos_err custos_json_dump(char **out, size_t *out_len, const json_t *j)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char *s;

    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_ARG, NULL, "no JSON to serialize");
    custos_json_wipe_init();
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CUSTOS_ENSURE(s != NULL, CUSTOS_ERR_NOMEM, NULL, "JSON serialization failed");
    *out = s;
    if (out_len != NULL)
        *out_len = strlen(s);
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_json_check_keys(const json_t *obj, const char *const *allowed, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *key;
    json_t *v;
    char path[128];

    CUSTOS_ENSURE(json_is_object(obj), CUSTOS_ERR_MALFORMED, field, "%s must be a JSON object",
                  field != NULL ? field : "document");
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i = 0;

        (void)v;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            if (field != NULL && field[0] != '\0')
                (void)snprintf(path, sizeof(path), "%s.%s", field, key);
            else
                (void)snprintf(path, sizeof(path), "%s", key);
            ret = custos_error_set(CUSTOS_ERR_MALFORMED, path, "unknown field %s", path);
            goto out;
        }
    }
    ret = CUSTOS_OK;
out:
    return ret;
}
