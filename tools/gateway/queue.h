/* custos-gateway: the store-and-forward queue, one SQLite database in the
 * --queue directory (WAL, synchronous=FULL: a request or receipt the device
 * was told is accepted survives a crash of the gateway or of the machine).
 *
 * One row per provisioning request, keyed by the request id the device chose
 * inside its .mcpr:
 *   state     queued (not yet accepted by the cloud), then the cloud's:
 *             pending, approved, certified, provisioned, rejected, expired;
 *             or refused (the cloud refused the submission: error_*)
 *   profile   the certified profile once fetched
 *   receipt   the device's install receipt and where it stands
 *             (receipt_state: none, queued, confirmed by the cloud, refused)
 * plus one row about the uplink (last contact, its result, since when down).
 *
 * A gwq handle is one database connection: one per thread. Errors are
 * CUSTOS_ERR_IO (the database) with the detail in custos_error_last(). */
#ifndef CUSTOS_GATEWAY_QUEUE_H
#define CUSTOS_GATEWAY_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "custos/error.h"
#include "custos/types.h"

#define GWQ_FILE "queue.db"
#define GWQ_STATE_CAP 16
#define GWQ_CODE_CAP 48
#define GWQ_MESSAGE_CAP 512

typedef struct gwq gwq;

enum gwq_receipt_state {
    GWQ_RECEIPT_NONE = 0,
    GWQ_RECEIPT_QUEUED = 1,    /* stored; not yet confirmed by the cloud */
    GWQ_RECEIPT_CONFIRMED = 2, /* the cloud marked the request provisioned */
    GWQ_RECEIPT_REFUSED = 3,   /* the cloud refused it (receipt_error) */
};

/* An error the device is answered with: HTTP status, code, message, field. */
typedef struct gwq_error {
    int status;
    char code[GWQ_CODE_CAP];
    char message[GWQ_MESSAGE_CAP];
    char field[64];
} gwq_error;

typedef struct gwq_item {
    char request_id[CUSTOS_ID_LEN + 1];
    char device_id[CUSTOS_ID_LEN + 1]; /* "" until the cloud names it */
    char system[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char serial[CUSTOS_MAX_SERIAL_LEN + 1];
    char state[GWQ_STATE_CAP];
    long retry_after;             /* the cloud's last retry_after */
    char reason[GWQ_MESSAGE_CAP]; /* rejected: the approver's reason */
    gwq_error error;              /* refused: the cloud's refusal of the submission */
    int has_profile;
    int receipt_state; /* enum gwq_receipt_state */
    gwq_error receipt_error;
    int64_t created, updated;
} gwq_item;

/* What a device submitted, as the gateway read it from the .mcpr. */
typedef struct gwq_new {
    const char *request_id;
    const char *device_id; /* a reprovisioning request names it; else "" */
    const char *system;
    const char *component;
    const char *serial;
    const uint8_t *mcpr;
    size_t len;
} gwq_new;

/* A stored blob (a .mcpr or a receipt) to send upstream. */
typedef struct gwq_blob {
    char request_id[CUSTOS_ID_LEN + 1];
    uint8_t *data;
    size_t len;
} gwq_blob;

/* What the cloud said of a request (a submission result or a status). */
typedef struct gwq_update {
    const char *state;      /* the cloud's state */
    const char *device_id;  /* may be NULL or "" */
    long retry_after;       /* -1 when not said */
    const char *reason;     /* rejected: may be NULL */
    const uint8_t *profile; /* certified or provisioned: may be NULL */
    size_t profile_len;
} gwq_update;

/* Open (creating when missing: directory 0700, database 0600) the queue in @p dir. */
CUSTOS_NODISCARD custos_err gwq_open(gwq **out, const char *dir);
/* NULL is a no-op. */
void gwq_close(gwq *q);

/* ---- what devices hand over (the downstream server) ----------------------- */

/* Store a new request durably before the device is told; the same request
 * again (same bytes) gives the stored item with *created 0. Another request
 * under a known id: CUSTOS_ERR_DUPLICATE. */
CUSTOS_NODISCARD custos_err gwq_put_request(gwq_item *out, int *created, gwq *q, const gwq_new *n,
                                            int64_t now);
/* CUSTOS_ERR_NOT_FOUND when unknown. */
CUSTOS_NODISCARD custos_err gwq_get(gwq_item *out, gwq *q, const char *request_id);
/* The stored profile (malloc'd); CUSTOS_ERR_NOT_FOUND when there is none. */
CUSTOS_NODISCARD custos_err gwq_profile(uint8_t **out, size_t *out_len, gwq *q,
                                        const char *request_id);
/* Store a device's receipt (queued) unless the cloud confirmed one already,
 * or refused these very bytes; @p out is the item afterwards. */
CUSTOS_NODISCARD custos_err gwq_put_receipt(gwq_item *out, gwq *q, const char *request_id,
                                            const uint8_t *receipt, size_t len, int64_t now);

/* ---- what the forwarder sends and records ---------------------------------- */

/* Up to @p cap requests not yet accepted by the cloud, oldest first. */
CUSTOS_NODISCARD custos_err gwq_submissions(gwq_blob *out, size_t cap, size_t *n, gwq *q);
/* Up to @p cap queued receipts, oldest first. */
CUSTOS_NODISCARD custos_err gwq_receipts(gwq_blob *out, size_t cap, size_t *n, gwq *q);
void gwq_blobs_free(gwq_blob *b, size_t n);
/* Up to @p cap ids of forwarded requests whose status is due at @p now. */
CUSTOS_NODISCARD custos_err gwq_polls(char (*out)[CUSTOS_ID_LEN + 1], size_t cap, size_t *n, gwq *q,
                                      int64_t now);
/* When something is due next: 0 for now (submissions, receipts), else the
 * earliest poll time, INT64_MAX when nothing is outstanding. */
CUSTOS_NODISCARD custos_err gwq_next_due(int64_t *out, gwq *q);

/* One transaction around a batch of the calls below (one fsync). */
CUSTOS_NODISCARD custos_err gwq_begin(gwq *q);
CUSTOS_NODISCARD custos_err gwq_commit(gwq *q);
void gwq_rollback(gwq *q);

/* The cloud's state of a request; while it waits for its profile the next
 * status poll is due after retry_after seconds (-1: one; pending and
 * approved: at least one; at most 300). */
CUSTOS_NODISCARD custos_err gwq_update_state(gwq *q, const char *request_id, const gwq_update *u,
                                             int64_t now);
/* Ask the cloud for the status of @p request_id again in @p seconds. */
CUSTOS_NODISCARD custos_err gwq_defer(gwq *q, const char *request_id, long seconds, int64_t now);
/* The cloud refused the submission for good. */
CUSTOS_NODISCARD custos_err gwq_refuse(gwq *q, const char *request_id, const gwq_error *e,
                                       int64_t now);
/* The cloud does not know the request (any more): submit it again. */
CUSTOS_NODISCARD custos_err gwq_requeue(gwq *q, const char *request_id, int64_t now);
/* The cloud accepted the receipt: the request is provisioned. */
CUSTOS_NODISCARD custos_err gwq_receipt_confirmed(gwq *q, const char *request_id,
                                                  const char *device_id, int64_t now);
CUSTOS_NODISCARD custos_err gwq_receipt_refused(gwq *q, const char *request_id, const gwq_error *e,
                                                int64_t now);
/* The result of a call upstream: @p ok, and "ok" or "CODE: message". */
CUSTOS_NODISCARD custos_err gwq_uplink(gwq *q, int ok, const char *result, int64_t now);
/* Forget finished requests last changed before @p before; *@p n how many. */
CUSTOS_NODISCARD custos_err gwq_prune(gwq *q, int64_t before, size_t *n);

/* ---- custos-gateway status ------------------------------------------------- */

/* {"queue": {"depth", "to_forward", "receipts_to_confirm", "waiting", "total",
 *  "states": {state: n}}, "upstream": {"last_contact", "last_result", "last_ok",
 *  "down_since"} (times RFC 3339 or null), "devices": [{"request_id",
 *  "device_id", "serial", "component", "state", "receipt", "since",
 *  "updated"}] (unfinished requests, oldest first, at most @p limit)}. */
CUSTOS_NODISCARD custos_err gwq_report(json_t **out, gwq *q, size_t limit);

#endif
