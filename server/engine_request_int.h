/* Internals shared by the request sources: engine_request.c (import) and
 * engine_approve.c (approval, issuance and the later transitions). */
#ifndef CUSTOS_SERVER_ENGINE_REQUEST_INT_H
#define CUSTOS_SERVER_ENGINE_REQUEST_INT_H

#include "engine_int.h"

/* Issuances of one request when its serials collide (UNIQUE) with stored ones. */
#define ENGINE_SERIAL_RETRIES 3

/* server/engine_request.c */
/* The key of template @p name in @p d, or NULL. */
const custos_request_key *custos_engine_find_key(const custos_request_doc *d, const char *name);
/* @p d carries exactly one key of the right algorithm per template of @p c. */
CUSTOS_NODISCARD custos_err custos_engine_check_templates(const custos_component_def *c,
                                                          const custos_request_doc *d);

/* server/engine_approve.c */
/* What approving a verified request issues from: its system, component and
 * the public key of each template. Borrows from @p d. */
typedef struct engine_issue_plan {
    const engine_system *sys;
    const custos_component_def *comp;
    EVP_PKEY *pubs[CUSTOS_MAX_TEMPLATES];
    const X509_PUBKEY *spkis[CUSTOS_MAX_TEMPLATES];
} engine_issue_plan;

CUSTOS_NODISCARD custos_err custos_engine_plan_issue(engine_issue_plan *p, custos_engine *e,
                                                     const custos_request_doc *d);
/* Issue + lint the certificates and sign the certified profile (no write). */
CUSTOS_NODISCARD custos_err custos_engine_issue(X509 *certs[CUSTOS_MAX_TEMPLATES],
                                                uint8_t **profile, size_t *profile_len,
                                                custos_engine *e, const engine_issue_plan *p,
                                                const custos_request_doc *d,
                                                const custos_store_request *r, int64_t now);
/* Free what custos_engine_issue() made and NULL it. */
void custos_engine_issued_free(X509 *certs[CUSTOS_MAX_TEMPLATES], uint8_t **profile);
/* pending -> approved -> certified with the certificates and the profile,
 * and their audit entries, inside the caller's transaction. */
CUSTOS_NODISCARD custos_err custos_engine_write_issued(custos_engine *e,
                                                       const custos_store_request *r,
                                                       const custos_component_def *comp,
                                                       X509 *const certs[CUSTOS_MAX_TEMPLATES],
                                                       const uint8_t *profile, size_t profile_len,
                                                       const custos_actor *actor, int64_t now);

#endif
