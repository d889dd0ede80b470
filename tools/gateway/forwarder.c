/* custos-gateway: the forwarder thread. It sends what devices handed over
 * in batches (requests, then receipts), asks the cloud for the status of the
 * requests that wait, and keeps going when the uplink comes and goes: after
 * a failed call it waits with an exponential backoff and jitter (and at
 * least the server's Retry-After), and nothing leaves the queue before the
 * cloud has answered for it, so a crash or a restart only means a resend,
 * which the cloud answers the same way. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "gateway.h"

#define BACKOFF_CAP_S 60.0
#define RETRY_AFTER_CAP_S 300.0
#define IDLE_WAIT_S 30.0    /* at most this long without looking at the queue */
#define LINGER_S 0.02       /* after a wake-up: let a few more devices join the batch */
#define DEFERRED_WAIT_S 5.0 /* after the cloud put items off (its own trouble) */
#define PRUNE_EVERY_S 3600.0
#define KEEP_FINISHED_S (30 * 86400) /* finished requests kept for status and idempotence */

struct gw_forwarder {
    gw_app *app;
    pthread_t thread;
    gw_upstream u;
    unsigned failures;
    int down; /* the last call failed (logged) */
    char last_result[sizeof(((gw_upstream *)0)->result)];
    double next_prune;
};

/* Wait until @p deadline (monotonic seconds), or a stop, or, when
 * @p wakeable, a wake-up. Returns 1 when woken. */
static int wait_until(gw_app *app, double deadline, int wakeable)
{
    int woken = 0;
    pthread_mutex_lock(&app->mu);
    while (!app->stop && !(wakeable && app->wake)) {
        struct timespec ts;
        if (deadline <= gw_mono_now())
            break;
        gw_timespec(&ts, deadline);
        if (pthread_cond_timedwait(&app->cv, &app->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (wakeable && app->wake) {
        woken = 1;
        app->wake = 0;
    }
    pthread_mutex_unlock(&app->mu);
    return woken;
}

static int stopping(gw_app *app)
{
    int s;
    pthread_mutex_lock(&app->mu);
    s = app->stop;
    pthread_mutex_unlock(&app->mu);
    return s;
}

/* 1, 2, 4 ... 60 s, then a uniform draw from the upper half (jitter: hubs
 * cut off together do not come back together). */
static double backoff_s(unsigned failures, long retry_after)
{
    double cap = failures >= 7 ? BACKOFF_CAP_S : (double)(1u << (failures - 1));
    unsigned char r = 0;
    double wait;
    if (cap > BACKOFF_CAP_S)
        cap = BACKOFF_CAP_S;
    if (RAND_bytes(&r, 1) != 1)
        r = 128;
    wait = cap / 2 + cap / 2 * (double)r / 255.0;
    if (retry_after > 0 && (double)retry_after > wait)
        wait = (double)retry_after > RETRY_AFTER_CAP_S ? RETRY_AFTER_CAP_S : (double)retry_after;
    return wait;
}

typedef custos_err (*take_fn)(gwq_blob *out, size_t cap, size_t *n, gwq *q);
typedef gw_call (*send_fn)(gw_upstream *u, const gwq_blob *items, size_t n);

/* One batch of blobs (requests or receipts), when there are any; -1 when
 * the queue could not be read. */
static int send_blobs(gw_call *c, int *did, gw_forwarder *f, take_fn take, send_fn send)
{
    gwq_blob blobs[GW_BATCH_ITEMS];
    size_t n = 0;

    memset(blobs, 0, sizeof(blobs));
    if (take(blobs, GW_BATCH_ITEMS, &n, f->u.q) < 0)
        return -1;
    if (n > 0) {
        *did = 1;
        *c = send(&f->u, blobs, n);
        gwq_blobs_free(blobs, n);
    }
    return 0;
}

/* One pass: a batch of each kind that is due. *did: something was sent. */
static gw_call pass(gw_forwarder *f, int *did, int *db_failed)
{
    char ids[GW_BATCH_STATUS][CUSTOS_ID_LEN + 1];
    size_t n = 0;
    gw_call c = GW_CALL_OK;

    *did = 0;
    *db_failed = 0;
    f->u.deferred = 0;
    if (send_blobs(&c, did, f, gwq_submissions, gw_upstream_requests) < 0)
        goto db;
    if (c == GW_CALL_OK && send_blobs(&c, did, f, gwq_receipts, gw_upstream_receipts) < 0)
        goto db;
    if (c != GW_CALL_OK)
        return c;
    if (gwq_polls(ids, GW_BATCH_STATUS, &n, f->u.q, time(NULL)) < 0)
        goto db;
    if (n > 0) {
        *did = 1;
        c = gw_upstream_status(&f->u, ids, n);
    }
    return c;
db:
    *db_failed = 1;
    gw_log("error", "queue_failed", json_pack("{s:s}", "message", custos_error_last()->message));
    return GW_CALL_OK;
}

static void uplink_failed(gw_forwarder *f, gw_call c)
{
    double wait = backoff_s(++f->failures, f->u.retry_after);
    atomic_store(&f->app->uplink_ok, 0);
    if (gwq_uplink(f->u.q, 0, f->u.result, time(NULL)) < 0)
        custos_error_clear();
    if (!f->down || strcmp(f->last_result, f->u.result) != 0)
        gw_log("warn", c == GW_CALL_REFUSED ? "uplink_refused" : "uplink_down",
               json_pack("{s:s, s:s, s:f}", "upstream", f->app->cfg.upstream, "error", f->u.result,
                         "retry_in_s", (double)(long)(wait * 10) / 10));
    f->down = 1;
    snprintf(f->last_result, sizeof(f->last_result), "%s", f->u.result);
    wait_until(f->app, gw_mono_now() + wait, 0);
}

static void uplink_worked(gw_forwarder *f)
{
    if (f->down)
        gw_log("info", "uplink_up",
               json_pack("{s:s, s:i}", "upstream", f->app->cfg.upstream, "failed_calls",
                         (int)f->failures));
    f->down = 0;
    f->failures = 0;
    f->last_result[0] = '\0';
    atomic_store(&f->app->uplink_ok, 1);
}

static void prune(gw_forwarder *f)
{
    size_t n = 0;
    if (gw_mono_now() < f->next_prune)
        return;
    f->next_prune = gw_mono_now() + PRUNE_EVERY_S;
    if (gwq_prune(f->u.q, time(NULL) - KEEP_FINISHED_S, &n) < 0)
        custos_error_clear();
    else if (n > 0)
        gw_log("info", "pruned", json_pack("{s:i}", "requests", (int)n));
}

/* How long to sleep when nothing was due. */
static double idle_deadline(gw_forwarder *f)
{
    int64_t due = INT64_MAX, now = time(NULL);
    double wait = IDLE_WAIT_S;
    if (gwq_next_due(&due, f->u.q) < 0)
        custos_error_clear();
    else if (due != INT64_MAX)
        wait = due <= now ? 0.2 : (double)(due - now);
    return gw_mono_now() + (wait < IDLE_WAIT_S ? wait : IDLE_WAIT_S);
}

static void *forwarder_main(void *arg)
{
    gw_forwarder *f = arg;
    int did = 0, db_failed = 0;

    while (!stopping(f->app)) {
        gw_call c = pass(f, &did, &db_failed);
        if (c != GW_CALL_OK) {
            uplink_failed(f, c);
            continue;
        }
        if (did) {
            uplink_worked(f);
            gw_pass_done(f->app);
        }
        prune(f);
        if (db_failed)
            wait_until(f->app, gw_mono_now() + 1.0, 0);
        else if (f->u.deferred > 0)
            wait_until(f->app, gw_mono_now() + DEFERRED_WAIT_S, 0);
        else if (!did && wait_until(f->app, idle_deadline(f), 1))
            wait_until(f->app, gw_mono_now() + LINGER_S, 0);
    }
    return NULL;
}

custos_err gw_forwarder_start(gw_forwarder **out, gw_app *app)
{
    gw_forwarder *f = calloc(1, sizeof(*f));
    sigset_t block, old;
    custos_err r;
    int rc;

    *out = NULL;
    if (f == NULL)
        return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    f->app = app;
    f->u.app = app;
    r = gwq_open(&f->u.q, app->cfg.queue_dir);
    if (r == CUSTOS_OK)
        r = custos_hc_new(&f->u.hc);
    if (r < 0) {
        gwq_close(f->u.q);
        free(f);
        return r;
    }
    atomic_store(&app->uplink_ok, 1);
    /* Signals are the main thread's (the server's control loop). */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&f->thread, NULL, forwarder_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        custos_hc_free(f->u.hc);
        gwq_close(f->u.q);
        free(f);
        return custos_error_report(CUSTOS_ERR_INTERNAL, NULL, "cannot start the forwarder thread");
    }
    *out = f;
    return CUSTOS_OK;
}

void gw_forwarder_stop(gw_forwarder *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->app->mu);
    f->app->stop = 1;
    pthread_cond_broadcast(&f->app->cv);
    pthread_mutex_unlock(&f->app->mu);
    pthread_join(f->thread, NULL);
    custos_hc_free(f->u.hc);
    gwq_close(f->u.q);
    free(f);
}
