/* Text encodings the engine hands out: base64url secrets and the opaque
 * cursors of paged lists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine_int.h"

custos_err custos_engine_b64url(char *out, size_t cap, const uint8_t *in, size_t len)
{
    size_t need = 4 * ((len + 2) / 3) + 1, n, i;
    char *tmp = NULL;
    if (cap > 0)
        out[0] = '\0';
    if (len > 4096 || need > cap + 2)
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "base64url", "%zu bytes do not fit", len);
    tmp = malloc(need);
    if (tmp == NULL)
        return custos_error_set(CUSTOS_ERR_NOMEM, "base64url", "out of memory");
    n = (size_t)EVP_EncodeBlock((unsigned char *)tmp, in, (int)len);
    while (n > 0 && tmp[n - 1] == '=')
        n--;
    if (n >= cap) {
        free(tmp);
        return custos_error_set(CUSTOS_ERR_TOO_LARGE, "base64url", "%zu bytes do not fit", len);
    }
    for (i = 0; i < n; i++)
        out[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
    out[n] = '\0';
    OPENSSL_cleanse(tmp, need);
    free(tmp);
    return CUSTOS_OK;
}

custos_err custos_engine_b64url_decode(uint8_t *out, size_t cap, size_t *out_len, const char *in,
                                       const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    size_t n = in != NULL ? strlen(in) : 0, padded, i, len;
    char *tmp = NULL;
    uint8_t *bin = NULL;
    int got;

    *out_len = 0;
    CUSTOS_ENSURE(n > 0 && n <= 4096 && n % 4 != 1, CUSTOS_ERR_MALFORMED, field,
                  "%s is not base64url", field);
    padded = (n + 3) / 4 * 4;
    tmp = malloc(padded + 1);
    bin = malloc(padded);
    CUSTOS_ENSURE(tmp != NULL && bin != NULL, CUSTOS_ERR_NOMEM, field, "out of memory");
    for (i = 0; i < n; i++) {
        char c = in[i];
        CUSTOS_ENSURE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '-' || c == '_',
                      CUSTOS_ERR_MALFORMED, field, "%s is not base64url", field);
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    for (; i < padded; i++)
        tmp[i] = '=';
    tmp[padded] = '\0';
    got = EVP_DecodeBlock(bin, (const unsigned char *)tmp, (int)padded);
    CUSTOS_ENSURE(got >= 0, CUSTOS_ERR_MALFORMED, field, "%s is not base64url", field);
    len = (size_t)got - (padded - n); /* EVP_DecodeBlock counts the padding as zero bytes */
    CUSTOS_ENSURE(len <= cap, CUSTOS_ERR_MALFORMED, field, "%s is too long", field);
    memcpy(out, bin, len);
    *out_len = len;
    ret = CUSTOS_OK;
out:
    if (bin != NULL)
        OPENSSL_cleanse(bin, padded);
    free(bin);
    free(tmp);
    return ret;
}

/* A cursor is base64url("<created>.<id>"): opaque to clients, checked on the
 * way back in (a client can only move through rows it could list anyway). */
custos_err custos_engine_cursor_encode(char *out, size_t cap, int64_t created, const char *id)
{
    char text[64];
    int n = snprintf(text, sizeof(text), "%lld.%s", (long long)created, id);
    if (n < 0 || (size_t)n >= sizeof(text))
        return custos_error_set(CUSTOS_ERR_INTERNAL, "cursor", "cursor too long");
    return custos_engine_b64url(out, cap, (const uint8_t *)text, (size_t)n);
}

custos_err custos_engine_cursor_decode(custos_store_cursor *out, const char *cursor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t text[64];
    size_t n = 0;
    char *dot, *end = NULL;
    long long created;

    memset(out, 0, sizeof(*out));
    CUSTOS_ENSURE(cursor != NULL && strlen(cursor) < CUSTOS_CURSOR_MAX, CUSTOS_ERR_MALFORMED,
                  "cursor", "not a cursor this server made");
    ret = custos_engine_b64url_decode(text, sizeof(text) - 1, &n, cursor, "cursor");
    CUSTOS_ENSURE(ret == CUSTOS_OK, CUSTOS_ERR_MALFORMED, "cursor",
                  "not a cursor this server made");
    text[n] = '\0';
    dot = strchr((char *)text, '.');
    CUSTOS_ENSURE(dot != NULL && memchr(text, '\0', n) == NULL, CUSTOS_ERR_MALFORMED, "cursor",
                  "not a cursor this server made");
    *dot = '\0';
    errno = 0;
    created = strtoll((const char *)text, &end, 10);
    CUSTOS_ENSURE(errno == 0 && end != (char *)text && *end == '\0' && created >= 0 &&
                      custos_id_valid(dot + 1),
                  CUSTOS_ERR_MALFORMED, "cursor", "not a cursor this server made");
    out->created = (int64_t)created;
    memcpy(out->id, dot + 1, CUSTOS_ID_LEN + 1);
    ret = CUSTOS_OK;
out:
    return ret;
}
