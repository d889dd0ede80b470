/* custos-gateway: proxy provisioning on a hub (docs/gateway.md). The hub is
 * itself a provisioned device of the system; it serves the device protocol
 * to the devices behind it (server/http, the same HTTPS core as custosd),
 * stores what they hand over (queue.h) and forwards it to custosd over
 * mutual TLS with its own identity (forwarder.c). It uses libcustos's public
 * API only: it never holds a device's key and cannot forge a request. */
#ifndef CUSTOS_GATEWAY_H
#define CUSTOS_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "custos/custos.h"
#include "http/http.h"
#include "http/ratelimit.h"
#include "http_client.h"
#include "queue.h"
#include "tool_device.h"

#define GW_EXIT_REFUSED 1
#define GW_EXIT_USAGE 2

/* Batches upstream (the cloud takes at most 64 requests or receipts and 256
 * request ids per call). */
#define GW_BATCH_ITEMS 64
#define GW_BATCH_STATUS 256

/* ---- the gateway's own identity (identity.c) ------------------------------- */

typedef struct gw_identity {
    tool_device td;
    custos_device *dev;
    SSL_CTX *server_ctx; /* toward devices: the tls-server key, certificate and chain */
    SSL_CTX *client_ctx; /* toward the cloud: what custos_device_ssl_ctx() makes */
    uint8_t *roots_der;  /* the Root of Trust, DER certificates concatenated */
    size_t roots_len;
    char server_template[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    char client_template[CUSTOS_MAX_TEMPLATE_NAME_LEN + 1];
    int64_t not_after; /* the earlier of the two certificates' */
} gw_identity;

/* Open the provisioned identity in @p device_dir; refuses (with a sentence
 * saying what to do) an empty, pending or mock directory and an identity
 * without a tls-client and a tls-server key. */
custos_err gw_identity_open(gw_identity *out, const char *device_dir, const char *secret_file);
void gw_identity_close(gw_identity *id);
/* The http_client ssl_ctx_hook: the tls-client key and chain on curl's SSL_CTX. */
custos_err gw_identity_client_hook(void *ssl_ctx, void *hook_ctx);

/* ---- the running gateway ----------------------------------------------------- */

typedef struct gw_config {
    const char *upstream; /* https://HOST:PORT, no trailing slash */
    const char *queue_dir;
    const char *listen;
    unsigned workers;
    double device_rate, device_burst;
    int quiet;
} gw_config;

typedef struct gw_app {
    gw_config cfg;
    gw_identity *id;
    custos_ratelimit *rl_addr;   /* per client address */
    custos_ratelimit *rl_device; /* per request (id or digest) */
    /* The forwarder: woken when a device hands something over; it counts
     * its passes upstream (done_cv) for a worker that waits for one. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t done_cv;
    unsigned long passes;
    int wake;
    int stop;
    atomic_int uplink_ok; /* the last call upstream succeeded */
} gw_app;

/* Wake the forwarder (something new to send). */
void gw_wake(gw_app *app);
/* The forwarder finished a pass upstream (recorded in the queue). */
void gw_pass_done(gw_app *app);
/* Wait for the forwarder's next pass upstream, at most until @p deadline
 * (CLOCK_MONOTONIC seconds); 1 when one finished. */
int gw_wait_pass(gw_app *app, double deadline);
/* CLOCK_MONOTONIC, seconds; and such a time for pthread_cond_timedwait()
 * on the app's condition variables (they use CLOCK_MONOTONIC). */
double gw_mono_now(void);
void gw_timespec(struct timespec *out, double t);
/* One JSON line on stderr (server/http/log.h) with @p fields (taken). */
void gw_log(const char *level, const char *event, json_t *fields);

/* ---- downstream: the device protocol (downstream.c) ------------------------------ */

void *gw_worker_init(unsigned index, void *app);
void gw_worker_free(void *wctx);
void gw_handle(custos_http_exchange *x, void *wctx);

/* ---- upstream: the forwarder thread (forwarder.c, upstream.c) ----------------------- */

typedef struct gw_forwarder gw_forwarder;
custos_err gw_forwarder_start(gw_forwarder **out, gw_app *app);
/* Stop (finishing the call in flight) and join; NULL is a no-op. */
void gw_forwarder_stop(gw_forwarder *f);

/* The outcome of one call upstream. */
typedef enum gw_call {
    GW_CALL_OK = 0,      /* 200 with results: each item says how it went */
    GW_CALL_DOWN = 1,    /* no answer, 429, 5xx or an answer that makes no sense */
    GW_CALL_REFUSED = 2, /* 403 for the whole call: disabled, or not a gateway */
} gw_call;

/* The results of a call, item by item, already recorded in @p q; @p result
 * the uplink's result line ("ok" or "CODE: message"), @p retry_after the
 * server's Retry-After (-1 when none). */
typedef struct gw_upstream {
    gw_app *app;
    gwq *q;
    custos_hc *hc;
    char result[600];
    long retry_after;
    unsigned deferred; /* items the cloud put off (a transient error): not resent at once */
} gw_upstream;

gw_call gw_upstream_requests(gw_upstream *u, const gwq_blob *items, size_t n);
gw_call gw_upstream_receipts(gw_upstream *u, const gwq_blob *items, size_t n);
gw_call gw_upstream_status(gw_upstream *u, char (*ids)[CUSTOS_ID_LEN + 1], size_t n);

/* The HTTP status a device is answered with for the cloud's error @p code. */
int gw_status_for_code(const char *code);

/* ---- custos-gateway status (status.c) ----------------------------------------------- */

int gw_cmd_status(const char *queue_dir, int json, size_t limit);

#endif
