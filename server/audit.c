/* Hash-chained audit trail (server/audit.h). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "audit.h"
#include "internal/util.h"

#define AUDIT_MAX_TEXT 1024

static custos_err entry_hash(uint8_t out[32], const uint8_t key[CUSTOS_AUDIT_KEY_LEN],
                             const uint8_t prev[32], const custos_store_audit *a,
                             const json_t *detail)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *j = NULL;
    char *dump = NULL;
    size_t dump_len = 0;
    char when[21];
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t n = 0;

    custos_time_format(when, a->time);
    j = json_pack("{s:s, s:s, s:O, s:s, s:s, s:I, s:s}", "action", a->action, "actor", a->actor,
                  "detail", detail, "from", a->from, "object", a->object, "seq", (json_int_t)a->seq,
                  "time", when);
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_NOMEM, "audit", "audit: cannot build entry %lld",
                  (long long)a->seq);
    CUSTOS_GUARD(custos_json_dump(&dump, &dump_len, j));
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    CUSTOS_ENSURE(ctx != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    CUSTOS_ENSURE(EVP_MAC_init(ctx, key, CUSTOS_AUDIT_KEY_LEN, params) == 1 &&
                      EVP_MAC_update(ctx, prev, 32) == 1 &&
                      EVP_MAC_update(ctx, (const unsigned char *)dump, dump_len) == 1 &&
                      EVP_MAC_final(ctx, out, &n, 32) == 1 && n == 32,
                  CUSTOS_ERR_INTERNAL, "audit", "audit: HMAC-SHA256 failed");
    ret = CUSTOS_OK;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    free(dump);
    json_decref(j);
    return ret;
}

static int text_ok(const char *s)
{
    return s != NULL && strlen(s) <= AUDIT_MAX_TEXT;
}

custos_err custos_audit_append(custos_store *st, const uint8_t key[CUSTOS_AUDIT_KEY_LEN],
                               int64_t now, const custos_actor *actor, const char *action,
                               const char *object, const json_t *detail)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_audit a;
    uint8_t prev[32];
    json_t *empty = NULL;
    char *detail_text = NULL;
    size_t detail_len = 0;
    int own_tx = 0;

    memset(&a, 0, sizeof(a));
    CUSTOS_ENSURE(st != NULL && action != NULL, CUSTOS_ERR_ARG, "audit", "audit: no action");
    if (detail == NULL) {
        empty = json_object();
        CUSTOS_ENSURE(empty != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
        detail = empty;
    }
    CUSTOS_ENSURE(json_is_object(detail), CUSTOS_ERR_ARG, "audit", "audit: detail not an object");
    a.actor = actor != NULL && actor->who != NULL ? actor->who : "unknown";
    a.from = actor != NULL && actor->from != NULL ? actor->from : "";
    a.action = action;
    a.object = object != NULL ? object : "";
    CUSTOS_ENSURE(text_ok(a.actor) && text_ok(a.from) && text_ok(a.object), CUSTOS_ERR_LIMIT,
                  "audit", "audit: actor/from/object longer than %d bytes", AUDIT_MAX_TEXT);
    a.time = now;
    CUSTOS_GUARD(custos_json_dump(&detail_text, &detail_len, detail));
    a.detail = detail_text;
    /* The last hash is read and extended in one write transaction (BEGIN
     * IMMEDIATE, one writer across every connection): another engine cannot
     * append in between and fork the chain. Callers normally hold one (the
     * change being recorded); otherwise the entry gets its own. */
    if (!st->ops->in_tx(st->ctx)) {
        CUSTOS_GUARD(st->ops->begin(st->ctx));
        own_tx = 1;
    }
    CUSTOS_GUARD(st->ops->audit_last(st->ctx, &a.seq, prev));
    a.seq++;
    CUSTOS_GUARD(entry_hash(a.hash, key, prev, &a, detail));
    CUSTOS_GUARD(st->ops->audit_append(st->ctx, &a));
    if (own_tx) {
        CUSTOS_GUARD(st->ops->commit(st->ctx));
        own_tx = 0;
    }
    ret = CUSTOS_OK;
out:
    if (own_tx)
        st->ops->rollback(st->ctx);
    free(detail_text);
    json_decref(empty);
    return ret;
}

typedef struct verify_ctx {
    uint8_t prev[32];
    int64_t expect_seq;
    size_t count;
    custos_err err;
    const uint8_t *key;
} verify_ctx;

static int verify_one(const custos_store_audit *a, void *ctx)
{
    verify_ctx *v = ctx;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *detail = NULL;
    uint8_t h[32];

    CUSTOS_ENSURE(a->seq == v->expect_seq, CUSTOS_ERR_MALFORMED, "audit",
                  "audit entry %lld: expected seq %lld (entry missing or reordered)",
                  (long long)a->seq, (long long)v->expect_seq);
    CUSTOS_ENSURE(a->actor != NULL && a->from != NULL && a->action != NULL && a->object != NULL &&
                      a->detail != NULL,
                  CUSTOS_ERR_MALFORMED, "audit", "audit entry %lld: missing field",
                  (long long)a->seq);
    ret = custos_json_parse(&detail, (const uint8_t *)a->detail, strlen(a->detail), "audit detail");
    if (ret < 0) {
        ret = custos_error_set(CUSTOS_ERR_MALFORMED, "audit",
                               "audit entry %lld: detail is not valid JSON", (long long)a->seq);
        goto out;
    }
    CUSTOS_GUARD(entry_hash(h, v->key, v->prev, a, detail));
    CUSTOS_ENSURE(CRYPTO_memcmp(h, a->hash, 32) == 0, CUSTOS_ERR_MALFORMED, "audit",
                  "audit entry %lld: hash does not match (entry or chain altered)",
                  (long long)a->seq);
    memcpy(v->prev, h, 32);
    v->expect_seq++;
    v->count++;
    ret = CUSTOS_OK;
out:
    json_decref(detail);
    if (ret < 0) {
        v->err = ret;
        return ret;
    }
    return 0;
}

custos_err custos_audit_verify(size_t *out_count, custos_store *st,
                               const uint8_t key[CUSTOS_AUDIT_KEY_LEN])
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    verify_ctx v;

    memset(&v, 0, sizeof(v));
    v.expect_seq = 1;
    v.key = key;
    CUSTOS_ENSURE(out_count != NULL && st != NULL, CUSTOS_ERR_ARG, "audit", "audit: no store");
    *out_count = 0;
    ret = st->ops->audit_iter(st->ctx, verify_one, &v);
    *out_count = v.count;
    if (ret < 0)
        goto out;
    ret = CUSTOS_OK;
out:
    return ret;
}
