/* The audit trail of custosd: append-only, hash-chained and keyed.
 *
 * Entry {seq, time, actor, from, action, object, detail} with
 * hash = HMAC-SHA256(key, prev_hash || canonical JSON of the entry), the key
 * derived from the data directory's master key (custos_keystore_derive,
 * label "custos audit v1"): someone who can write the database but not read
 * the master key can neither rewrite nor extend the chain unnoticed. The
 * canonical JSON is the key-sorted compact dump of
 * {"action","actor","detail","from","object","seq","time"} (time as RFC 3339)
 * and prev_hash of the first entry is 32 zero bytes. Callers append inside the
 * same store transaction as the change they record; an append outside any
 * transaction opens its own, so the chain never forks across connections. */
#ifndef CUSTOS_SERVER_AUDIT_H
#define CUSTOS_SERVER_AUDIT_H

#include <jansson.h>

#include "engine.h"
#include "store/store.h"

/* Append one entry. @p detail (borrowed, may be NULL for {}) must be an object. */
#define CUSTOS_AUDIT_KEY_LEN 32
#define CUSTOS_AUDIT_KEY_LABEL "custos audit v1"

CUSTOS_NODISCARD custos_err custos_audit_append(custos_store *st,
                                                const uint8_t key[CUSTOS_AUDIT_KEY_LEN],
                                                int64_t now, const custos_actor *actor,
                                                const char *action, const char *object,
                                                const json_t *detail);

/* Recompute the chain: *out_count entries checked. On a break,
 * CUSTOS_ERR_MALFORMED with field "audit" naming the first bad seq. */
CUSTOS_NODISCARD custos_err custos_audit_verify(size_t *out_count, custos_store *st,
                                                const uint8_t key[CUSTOS_AUDIT_KEY_LEN]);

#endif
