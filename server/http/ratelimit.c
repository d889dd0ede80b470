/* Token buckets keyed by string. One mutex: the critical section is a hash
 * lookup and a few floating-point operations, far shorter than anything else
 * on the request path. Keys are hashed with SipHash-2-4 under a random key, so
 * a client choosing keys (usernames, addresses) cannot make chains long. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "internal/util.h"
#include "ratelimit.h"

#define MAX_KEY_LEN 128

struct bucket {
    struct bucket *hnext;         /* hash chain */
    struct bucket *newer, *older; /* LRU list: head newest, tail oldest */
    uint64_t hash;
    double tokens, last;
    size_t key_len;
    char key[];
};

struct custos_ratelimit {
    pthread_mutex_t lock;
    double rate, burst;
    size_t max_keys, count, mask;
    struct bucket **table;
    struct bucket *newest, *oldest;
    uint64_t k0, k1;
};

/* ---- SipHash-2-4 (Aumasson, Bernstein) ----------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, left = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        m = load64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; j < left; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- buckets ------------------------------------------------------------- */

double custos_ratelimit_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

custos_err custos_ratelimit_new(custos_ratelimit **out, double rate_per_s, double burst,
                                size_t max_keys)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_ratelimit *rl = NULL;
    size_t slots = 16;
    uint8_t seed[16];

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, NULL, "no output");
    *out = NULL;
    CUSTOS_ENSURE(isfinite(rate_per_s) && rate_per_s > 0, CUSTOS_ERR_ARG, "rate",
                  "the rate must be positive");
    CUSTOS_ENSURE(isfinite(burst) && burst >= 1, CUSTOS_ERR_ARG, "burst",
                  "the burst must be at least 1");
    CUSTOS_ENSURE(max_keys >= 1 && max_keys <= (SIZE_MAX / 4) / sizeof(void *), CUSTOS_ERR_ARG,
                  "max_keys", "max_keys must be between 1 and %zu",
                  (SIZE_MAX / 4) / sizeof(void *));
    while (slots < max_keys * 2)
        slots *= 2;
    rl = calloc(1, sizeof(*rl));
    CUSTOS_ENSURE(rl != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    rl->table = calloc(slots, sizeof(*rl->table));
    CUSTOS_ENSURE(rl->table != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_ENSURE(RAND_bytes(seed, sizeof(seed)) == 1, CUSTOS_ERR_INTERNAL, NULL,
                  "no randomness for the rate limiter");
    CUSTOS_ENSURE(pthread_mutex_init(&rl->lock, NULL) == 0, CUSTOS_ERR_INTERNAL, NULL, "mutex");
    rl->k0 = load64(seed);
    rl->k1 = load64(seed + 8);
    rl->rate = rate_per_s;
    rl->burst = burst;
    rl->max_keys = max_keys;
    rl->mask = slots - 1;
    *out = rl;
    rl = NULL;
    ret = CUSTOS_OK;
out:
    if (rl != NULL) {
        free(rl->table);
        free(rl);
    }
    return ret;
}

static void lru_unlink(custos_ratelimit *rl, struct bucket *b)
{
    if (b->newer != NULL)
        b->newer->older = b->older;
    else
        rl->newest = b->older;
    if (b->older != NULL)
        b->older->newer = b->newer;
    else
        rl->oldest = b->newer;
    b->newer = b->older = NULL;
}

static void lru_push(custos_ratelimit *rl, struct bucket *b)
{
    b->older = rl->newest;
    b->newer = NULL;
    if (rl->newest != NULL)
        rl->newest->newer = b;
    rl->newest = b;
    if (rl->oldest == NULL)
        rl->oldest = b;
}

static void evict_oldest(custos_ratelimit *rl)
{
    struct bucket *victim = rl->oldest, **pp;

    if (victim == NULL)
        return;
    for (pp = &rl->table[victim->hash & rl->mask]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == victim) {
            *pp = victim->hnext;
            break;
        }
    }
    lru_unlink(rl, victim);
    free(victim);
    rl->count--;
}

/* Caller holds the lock. NULL only when out of memory. */
static struct bucket *find_or_add(custos_ratelimit *rl, const char *key, size_t len, double now)
{
    uint64_t h = siphash(rl->k0, rl->k1, (const uint8_t *)key, len);
    struct bucket *b;

    for (b = rl->table[h & rl->mask]; b != NULL; b = b->hnext) {
        if (b->hash == h && b->key_len == len && memcmp(b->key, key, len) == 0) {
            lru_unlink(rl, b);
            lru_push(rl, b);
            return b;
        }
    }
    if (rl->count >= rl->max_keys)
        evict_oldest(rl);
    b = malloc(sizeof(*b) + len + 1);
    if (b == NULL)
        return NULL;
    b->hash = h;
    b->tokens = rl->burst;
    b->last = now;
    b->key_len = len;
    memcpy(b->key, key, len);
    b->key[len] = '\0';
    b->hnext = rl->table[h & rl->mask];
    rl->table[h & rl->mask] = b;
    lru_push(rl, b);
    rl->count++;
    return b;
}

int custos_ratelimit_take(custos_ratelimit *rl, const char *key, double now_s,
                          unsigned *retry_after_s)
{
    char digest_key[1 + 64 + 1];
    size_t len;
    struct bucket *b;
    double wait;
    int allowed = 0;

    if (retry_after_s != NULL)
        *retry_after_s = 0;
    if (rl == NULL)
        return 0;
    if (key == NULL)
        key = "";
    len = strlen(key);
    if (len > MAX_KEY_LEN) {
        uint8_t md[32];
        custos_sha256(md, (const uint8_t *)key, len);
        digest_key[0] = '#';
        custos_hex_encode(digest_key + 1, md, sizeof(md));
        key = digest_key;
        len = strlen(digest_key);
    }
    pthread_mutex_lock(&rl->lock);
    b = find_or_add(rl, key, len, now_s);
    if (b == NULL) {
        /* Out of memory: refuse rather than stop limiting. */
        wait = 1;
        goto out;
    }
    if (now_s > b->last) {
        double t = b->tokens + (now_s - b->last) * rl->rate;
        b->tokens = t < rl->burst ? t : rl->burst;
        b->last = now_s;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        allowed = 1;
        goto out;
    }
    wait = (1.0 - b->tokens) / rl->rate;
out:
    pthread_mutex_unlock(&rl->lock);
    if (!allowed && retry_after_s != NULL) {
        /* Whole seconds, rounded up (no libm: the service does not link it). */
        wait -= 1e-9;
        if (wait > 86400)
            wait = 86400;
        unsigned up = wait > 0 ? (unsigned)wait : 0;
        if ((double)up < wait)
            up++;
        *retry_after_s = up < 1 ? 1u : up;
    }
    return allowed;
}

size_t custos_ratelimit_size(custos_ratelimit *rl)
{
    size_t n;

    if (rl == NULL)
        return 0;
    pthread_mutex_lock(&rl->lock);
    n = rl->count;
    pthread_mutex_unlock(&rl->lock);
    return n;
}

void custos_ratelimit_free(custos_ratelimit *rl)
{
    struct bucket *b, *next;

    if (rl == NULL)
        return;
    for (b = rl->newest; b != NULL; b = next) {
        next = b->older;
        free(b);
    }
    pthread_mutex_destroy(&rl->lock);
    free(rl->table);
    free(rl);
}
