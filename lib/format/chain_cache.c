/* A small cache of signer chains already verified against a trust store.
 *
 * Verifying a request's signer chain costs a signature check per request,
 * although thousands of requests are signed by the same bootstrap
 * certificate of one package. The cache remembers, per signer certificate
 * (compared byte for byte), the chain that verified and the window in which
 * every certificate of that chain is valid; inside that window the chain is
 * not checked again. It is only correct while the trust store does not
 * change and no certificate is revoked: a verifier that revokes must flush
 * it (custos_chain_cache_clear). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"

#define CHAIN_CACHE_SLOTS 32

typedef struct slot {
    X509 *signer;
    STACK_OF(X509) *chain;
    int64_t valid_from;
    int64_t valid_until;
} slot;

struct custos_chain_cache {
    pthread_mutex_t lock;
    slot slots[CHAIN_CACHE_SLOTS];
    size_t next;
};

custos_chain_cache *custos_chain_cache_new(void)
{
    custos_chain_cache *c = calloc(1, sizeof(*c));
    if (c != NULL && pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

static void slot_clear(slot *s)
{
    X509_free(s->signer);
    sk_X509_pop_free(s->chain, X509_free);
    memset(s, 0, sizeof(*s));
}

void custos_chain_cache_clear(custos_chain_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < CHAIN_CACHE_SLOTS; i++)
        slot_clear(&c->slots[i]);
    pthread_mutex_unlock(&c->lock);
}

void custos_chain_cache_free(custos_chain_cache *c)
{
    if (c == NULL)
        return;
    custos_chain_cache_clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int custos_chain_cache_get(STACK_OF(X509) **out_chain, custos_chain_cache *c, X509 *signer,
                           int64_t now)
{
    int hit = 0;

    *out_chain = NULL;
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; !hit && i < CHAIN_CACHE_SLOTS; i++) {
        slot *s = &c->slots[i];
        if (s->signer == NULL || X509_cmp(s->signer, signer) != 0)
            continue;
        if (now >= s->valid_from && now <= s->valid_until) {
            *out_chain = X509_chain_up_ref(s->chain);
            hit = *out_chain != NULL;
        }
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void custos_chain_cache_put(custos_chain_cache *c, X509 *signer, STACK_OF(X509) *chain)
{
    slot fresh;
    int64_t t;

    if (c == NULL || chain == NULL)
        return;
    memset(&fresh, 0, sizeof(fresh));
    fresh.valid_from = INT64_MIN;
    fresh.valid_until = INT64_MAX;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if (custos_asn1_time_to_unix(&t, X509_get0_notBefore(x)) < 0)
            return;
        if (t > fresh.valid_from)
            fresh.valid_from = t;
        if (custos_asn1_time_to_unix(&t, X509_get0_notAfter(x)) < 0)
            return;
        if (t < fresh.valid_until)
            fresh.valid_until = t;
    }
    custos_error_clear();
    if (X509_up_ref(signer) != 1)
        return;
    fresh.signer = signer;
    fresh.chain = X509_chain_up_ref(chain);
    if (fresh.chain == NULL) {
        slot_clear(&fresh);
        return;
    }
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < CHAIN_CACHE_SLOTS; i++)
        if (c->slots[i].signer != NULL && X509_cmp(c->slots[i].signer, signer) == 0) {
            slot_clear(&c->slots[i]);
            c->next = i;
            break;
        }
    slot_clear(&c->slots[c->next]);
    c->slots[c->next] = fresh;
    c->next = (c->next + 1) % CHAIN_CACHE_SLOTS;
    pthread_mutex_unlock(&c->lock);
}
