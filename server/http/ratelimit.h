/**
 * @file ratelimit.h
 * @brief Token buckets keyed by string (client address, username, device),
 * thread-safe, with bounded memory: at most max_keys buckets; the least
 * recently used bucket is evicted to make room (a bucket idle long enough to
 * be full again is indistinguishable from a new one, so evicting the oldest
 * first loses nothing until the table holds max_keys active keys).
 */
#ifndef CUSTOS_HTTP_RATELIMIT_H
#define CUSTOS_HTTP_RATELIMIT_H

#include <stddef.h>

#include "custos/error.h"

typedef struct custos_ratelimit custos_ratelimit;

/**
 * @param rate_per_s tokens added per second (> 0)
 * @param burst      bucket size, and the tokens of a new key (>= 1)
 * @param max_keys   buckets kept at most (>= 1)
 */
CUSTOS_NODISCARD custos_err custos_ratelimit_new(custos_ratelimit **out, double rate_per_s,
                                                 double burst, size_t max_keys);
/**
 * Take one token for @p key at time @p now_s (seconds, monotonic; see
 * custos_ratelimit_now()). Keys longer than 128 bytes are replaced by their
 * SHA-256, so memory stays bounded.
 * @return 1 allowed (a token taken); 0 limited, with *retry_after_s the whole
 *         seconds until a token is there (>= 1).
 */
int custos_ratelimit_take(custos_ratelimit *rl, const char *key, double now_s,
                          unsigned *retry_after_s);
/** Buckets held now (tests, metrics). */
size_t custos_ratelimit_size(custos_ratelimit *rl);
void custos_ratelimit_free(custos_ratelimit *rl);
/** Seconds on the monotonic clock, for @p now_s. */
double custos_ratelimit_now(void);

#endif
