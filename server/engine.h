/* The CA engine of custosd: data directory, CA hierarchy, systems, packages,
 * request verification, approval, issuance (with lint), certified profiles,
 * mock device files, the audit trail. No HTTP here; custosd's subcommands and
 * (later) its HTTPS API both call this. */
#ifndef CUSTOS_SERVER_ENGINE_H
#define CUSTOS_SERVER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"
#include "custos/types.h"

typedef struct custos_engine custos_engine;

/* Device/request states (DESIGN §1). Names: "pending" "approved" "certified"
 * "provisioned" "rejected" "expired" "revoked". */
typedef enum custos_state {
    CUSTOS_STATE_PENDING = 1,
    CUSTOS_STATE_APPROVED,
    CUSTOS_STATE_CERTIFIED,
    CUSTOS_STATE_PROVISIONED,
    CUSTOS_STATE_REJECTED,
    CUSTOS_STATE_EXPIRED,
    CUSTOS_STATE_REVOKED,
} custos_state;

const char *custos_state_name(custos_state s);
custos_state custos_state_from_name(const char *name); /* 0 if unknown */

/* Create a new data directory (must not exist or be empty): store (SQLite,
 * WAL), root CA, bootstrap CA, package-signing and profile-signing keys, TLS
 * server certificate, mock root; key files encrypted at rest (AES-256 PKCS#8
 * under a master key in DIR/master.key, 0600), all 0600. */
CUSTOS_NODISCARD custos_err custos_engine_init(const char *dir);

CUSTOS_NODISCARD custos_err custos_engine_open(custos_engine **out, const char *dir);
void custos_engine_free(custos_engine *e);

/* Override the engine's clock (unix seconds) for tests and services; @p now
 * NULL restores time(NULL). */
void custos_engine_set_clock(custos_engine *e, int64_t (*now)(void *ctx), void *ctx);

/* Who did it, for the audit trail ("cli:root", "user:alice"), and from where. */
typedef struct custos_actor {
    const char *who;
    const char *from;
} custos_actor;

/* Define a system from system.json (docs/formats.md): creates its issuing CA.
 * CUSTOS_ERR_EXISTS if the name is taken. */
CUSTOS_NODISCARD custos_err custos_engine_system_create(custos_engine *e, const uint8_t *json,
                                                        size_t len, const custos_actor *actor);

/* Build a provisioning package for @p system: bootstrap key + certificate
 * valid @p valid_days, signed by the package-signing key. *out malloc'd. */
CUSTOS_NODISCARD custos_err custos_engine_package_create(uint8_t **out, size_t *out_len,
                                                         custos_engine *e, const char *system,
                                                         const char *passphrase,
                                                         size_t passphrase_len, unsigned valid_days,
                                                         const custos_actor *actor);

typedef struct custos_request_summary {
    char request_id[CUSTOS_ID_LEN + 1];
    char device_id[CUSTOS_ID_LEN + 1];
    custos_state state;
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    char model[CUSTOS_MAX_MODEL_LEN + 1];
    char firmware[CUSTOS_MAX_FIRMWARE_LEN + 1];
    char kind[16];        /* "initial" | "reprovision" */
    char via[16];         /* "import" | "connected" | "upload" | "gateway" */
    int duplicate_serial; /* another device of the system has this serial */
    int64_t created;
    int64_t updated;
    int64_t expires;                            /* notAfter of the signer */
    char reason[CUSTOS_MAX_META_VALUE_LEN + 1]; /* rejection reason */
} custos_request_summary;

/* Verify a .mcpr fully (CMS, signer chain and expiry, proof of possession,
 * template conformance against the stored system, limits), flag duplicate
 * serials, store it as pending. An identical resubmission returns the
 * existing record (*out_created = 0). Nothing is stored on failure. */
CUSTOS_NODISCARD custos_err custos_engine_request_import(custos_request_summary *out,
                                                         int *out_created, custos_engine *e,
                                                         const uint8_t *der, size_t len,
                                                         const char *via,
                                                         const custos_actor *actor);

/* pending -> approved -> (issue + lint + profile) certified. */
CUSTOS_NODISCARD custos_err custos_engine_request_approve(custos_request_summary *out,
                                                          custos_engine *e, const char *id,
                                                          const custos_actor *actor);
CUSTOS_NODISCARD custos_err custos_engine_request_reject(custos_request_summary *out,
                                                         custos_engine *e, const char *id,
                                                         const char *reason,
                                                         const custos_actor *actor);
CUSTOS_NODISCARD custos_err custos_engine_request_get(custos_request_summary *out, custos_engine *e,
                                                      const char *id);

/* The .mccp of a certified/provisioned request. *out malloc'd. */
CUSTOS_NODISCARD custos_err custos_engine_profile_export(uint8_t **out, size_t *out_len,
                                                         custos_engine *e, const char *id);

/* certified -> provisioned (disconnected: "Complete provisioning"). */
CUSTOS_NODISCARD custos_err custos_engine_device_complete(custos_request_summary *out,
                                                          custos_engine *e, const char *id,
                                                          const custos_actor *actor);

/* List requests, newest first; @p state 0 for all. @p cb returns nonzero to stop. */
typedef int (*custos_request_cb)(const custos_request_summary *r, void *ctx);
CUSTOS_NODISCARD custos_err custos_engine_request_list(custos_engine *e, custos_state state,
                                                       custos_request_cb cb, void *ctx);

/* Mock device files for a component into @p out_dir (identity.mcpi with
 * keys in the clear marked mock, profile.mccp under the mock root). */
CUSTOS_NODISCARD custos_err custos_engine_mock_create(custos_engine *e, const char *system,
                                                      const char *component, const char *serial,
                                                      const char *out_dir,
                                                      const custos_actor *actor);

/* Recompute the audit hash chain. *out_count entries checked; on a break,
 * CUSTOS_ERR_MALFORMED naming the first bad entry. */
CUSTOS_NODISCARD custos_err custos_engine_audit_verify(size_t *out_count, custos_engine *e);

/* Mark pending/approved requests whose signer has expired as expired. */
CUSTOS_NODISCARD custos_err custos_engine_expire(size_t *out_count, custos_engine *e);

#endif
