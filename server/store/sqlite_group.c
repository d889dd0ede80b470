/* The SQLite store's connections and transactions: opening a connection
 * with the store's settings, and group commit (below) over one writer
 * connection per database shared by every handle in the process. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "internal/util.h"
#include "store/sqlite_int.h"

#define BUSY_TIMEOUT_MS 10000

/* ---- transactions: group commit -------------------------------------------- *
 *
 * synchronous=FULL makes every COMMIT wait for the disk (a few ms here), and
 * SQLite commits one transaction at a time: one transaction per operation
 * would cap the service at a few hundred writes a second whatever the CPU.
 * So every handle on one database in this process shares a group with one
 * writer connection. begin() takes the group's lock, opens the group's
 * transaction if none is open (BEGIN IMMEDIATE) and a savepoint for this
 * operation, and lends the writer connection to the handle; commit()
 * releases the savepoint and waits until the transaction that holds it is
 * committed: the first to wait becomes the leader, lets the operations
 * queued behind the lock join, then COMMITs once for all of them. Nobody
 * returns from commit() before its writes are durable, so an acknowledged
 * write survives a crash exactly as before; a failed COMMIT fails every
 * operation of the batch. rollback() undoes only its own savepoint.
 * Reads outside a transaction use the handle's own connection (WAL: they
 * never wait). */

#define GROUP_MAX_BATCH 256
#define GROUP_RESULTS 64

struct sq_group {
    char path[PATH_MAX];
    int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sq_conn c;          /* the writer connection, while no handle has it */
    int tx_open;        /* BEGIN IMMEDIATE done, COMMIT not yet */
    int leader;         /* a handle is gathering or committing the batch */
    unsigned pending;   /* operations released into the open transaction */
    atomic_uint queued; /* handles waiting for the lock in begin() */
    uint64_t gen;       /* the batch being gathered */
    uint64_t done_gen;  /* every batch up to this one has finished */
    custos_err results[GROUP_RESULTS];
    char messages[GROUP_RESULTS][160];
    sq_group *next;
};

static pthread_mutex_t groups_mu = PTHREAD_MUTEX_INITIALIZER;
static sq_group *groups;

static void swap_conn(sq *s)
{
    sq_conn t = s->c;
    s->c = s->group->c;
    s->group->c = t;
}

/* A batch ended: record its result for the handles waiting on it. */
static void batch_done(sq_group *g, custos_err rc, const char *msg)
{
    g->results[g->gen % GROUP_RESULTS] = rc;
    snprintf(g->messages[g->gen % GROUP_RESULTS], sizeof(g->messages[0]), "%.150s",
             msg != NULL ? msg : "");
    g->done_gen = g->gen;
    g->gen++;
    g->tx_open = 0;
    g->pending = 0;
    pthread_cond_broadcast(&g->cv);
}

static custos_err batch_result(const sq_group *g, uint64_t gen)
{
    custos_err rc = g->results[gen % GROUP_RESULTS];
    if (rc == CUSTOS_OK)
        return CUSTOS_OK;
    return custos_error_set(rc, "store", "store: commit failed: %s",
                            g->messages[gen % GROUP_RESULTS]);
}

custos_err custos_sq_begin(void *ctx)
{
    sq *s = ctx;
    sq_group *g = s->group;
    custos_err ret;

    if (s->in_tx)
        return custos_error_set(CUSTOS_ERR_INTERNAL, "store", "store: nested transaction");
    atomic_fetch_add(&g->queued, 1);
    pthread_mutex_lock(&g->mu);
    atomic_fetch_sub(&g->queued, 1);
    swap_conn(s);
    if (!g->tx_open) {
        ret = custos_sq_exec_id(s, S_BEGIN, "begin");
        if (ret != CUSTOS_OK)
            goto fail;
        g->tx_open = 1;
    }
    ret = custos_sq_exec_id(s, S_SAVEPOINT, "begin");
    if (ret != CUSTOS_OK)
        goto fail;
    s->in_tx = 1;
    s->gen = g->gen;
    return CUSTOS_OK; /* the lock stays held until commit or rollback */
fail:
    swap_conn(s);
    pthread_mutex_unlock(&g->mu);
    return ret;
}

/* After an error SQLite may have rolled the whole transaction back on its
 * own (I/O error, full disk): then the batch is lost for everyone in it. */
static void check_lost(sq *s)
{
    sq_group *g = s->group;
    if (g->tx_open && sqlite3_get_autocommit(s->c.db))
        batch_done(g, CUSTOS_ERR_IO, "the transaction was rolled back by SQLite");
}

custos_err custos_sq_commit(void *ctx)
{
    sq *s = ctx;
    sq_group *g = s->group;
    custos_err ret;
    uint64_t mine = s->gen;
    unsigned spins;

    if (!s->in_tx)
        return custos_error_set(CUSTOS_ERR_INTERNAL, "store", "store: commit without begin");
    ret = custos_sq_exec_id(s, S_RELEASE, "commit");
    if (ret != CUSTOS_OK) {
        (void)custos_sq_exec_id(s, S_ROLLBACK_TO, "rollback");
        (void)custos_sq_exec_id(s, S_RELEASE, "rollback");
        check_lost(s);
        swap_conn(s);
        s->in_tx = 0;
        pthread_mutex_unlock(&g->mu);
        return ret;
    }
    swap_conn(s);
    s->in_tx = 0;
    g->pending++;
    if (g->leader) {
        while (g->done_gen < mine || g->gen == mine)
            pthread_cond_wait(&g->cv, &g->mu);
        ret = batch_result(g, mine);
        pthread_mutex_unlock(&g->mu);
        return ret;
    }
    /* Lead this batch: let the operations already queued for the lock join. */
    g->leader = 1;
    for (spins = 0;
         spins < GROUP_MAX_BATCH && g->pending < GROUP_MAX_BATCH && atomic_load(&g->queued) > 0;
         spins++) {
        pthread_mutex_unlock(&g->mu);
        sched_yield();
        pthread_mutex_lock(&g->mu);
    }
    if (g->gen == mine && g->tx_open) {
        /* Lend ourselves the writer connection for the COMMIT. */
        swap_conn(s);
        ret = custos_sq_exec_id(s, S_COMMIT, "commit");
        if (ret != CUSTOS_OK) {
            (void)custos_sq_exec_id(s, S_ROLLBACK, "rollback");
            batch_done(g, ret, custos_error_last()->message);
        } else {
            batch_done(g, CUSTOS_OK, NULL);
        }
        swap_conn(s);
    }
    g->leader = 0;
    pthread_cond_broadcast(&g->cv);
    ret = batch_result(g, mine);
    pthread_mutex_unlock(&g->mu);
    return ret;
}

void custos_sq_rollback(void *ctx)
{
    sq *s = ctx;
    sq_group *g = s->group;
    if (!s->in_tx)
        return;
    (void)custos_sq_exec_id(s, S_ROLLBACK_TO, "rollback");
    (void)custos_sq_exec_id(s, S_RELEASE, "rollback");
    check_lost(s);
    if (g->tx_open && g->pending == 0 && !g->leader) {
        /* Nothing else is in the transaction: end it rather than hold the
         * database's write lock until the next writer comes. */
        (void)custos_sq_exec_id(s, S_ROLLBACK, "rollback");
        g->tx_open = 0;
    }
    swap_conn(s);
    s->in_tx = 0;
    pthread_mutex_unlock(&g->mu);
}

int custos_sq_in_tx(void *ctx)
{
    const sq *s = ctx;
    return s->in_tx;
}

void custos_sq_conn_close(sq_conn *c)
{
    size_t i;
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    for (i = 0; i < SQ_REQ_SHAPES; i++)
        sqlite3_finalize(c->req_query[i]);
    for (i = 0; i < SQ_PKG_SHAPES; i++)
        sqlite3_finalize(c->pkg_query[i]);
    for (i = 0; i < SQ_AUDIT_SHAPES; i++)
        sqlite3_finalize(c->audit_query[i]);
    for (i = 0; i < sizeof(c->search) / sizeof(c->search[0]); i++)
        sqlite3_finalize(c->search[i]);
    sqlite3_close_v2(c->db);
    memset(c, 0, sizeof(*c));
}

/* Open a connection with the store's settings. */
custos_err custos_sq_conn_open(sq *s, const char *path, int create)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);

    if (sqlite3_open_v2(path, &s->c.db, flags, NULL) != SQLITE_OK) {
        ret = custos_error_set(CUSTOS_ERR_IO, "store", "store: cannot open %s: %s", path,
                               s->c.db != NULL ? sqlite3_errmsg(s->c.db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(s->c.db, 1);
    CUSTOS_ENSURE(sqlite3_busy_timeout(s->c.db, BUSY_TIMEOUT_MS) == SQLITE_OK, CUSTOS_ERR_IO,
                  "store", "store: busy_timeout");
    CUSTOS_GUARD(custos_sq_exec_sql(s,
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                    " PRAGMA foreign_keys=ON;",
                                    "pragmas"));
    ret = CUSTOS_OK;
out:
    return ret;
}

void custos_sq_group_put(sq_group *g)
{
    sq_group **p;
    if (g == NULL)
        return;
    pthread_mutex_lock(&groups_mu);
    if (--g->refs > 0) {
        pthread_mutex_unlock(&groups_mu);
        return;
    }
    for (p = &groups; *p != NULL; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    pthread_mutex_unlock(&groups_mu);
    custos_sq_conn_close(&g->c);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

/* The group of the database at @p path (by its real path), made with its
 * writer connection on first use. */
custos_err custos_sq_group_get(sq_group **out, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char real[PATH_MAX];
    sq_group *g = NULL;
    sq tmp;

    CUSTOS_ENSURE(realpath(path, real) != NULL, CUSTOS_ERR_IO, "store",
                  "store: cannot resolve %s: %s", path, strerror(errno));
    pthread_mutex_lock(&groups_mu);
    for (g = groups; g != NULL; g = g->next)
        if (strcmp(g->path, real) == 0) {
            g->refs++;
            pthread_mutex_unlock(&groups_mu);
            *out = g;
            return CUSTOS_OK;
        }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        pthread_mutex_unlock(&groups_mu);
        return custos_error_set(CUSTOS_ERR_NOMEM, "store", "out of memory");
    }
    memset(&tmp, 0, sizeof(tmp));
    ret = custos_sq_conn_open(&tmp, real, 0);
    if (ret != CUSTOS_OK) {
        pthread_mutex_unlock(&groups_mu);
        custos_sq_conn_close(&tmp.c);
        free(g);
        return ret;
    }
    g->c = tmp.c;
    snprintf(g->path, sizeof(g->path), "%s", real);
    g->refs = 1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->next = groups;
    groups = g;
    pthread_mutex_unlock(&groups_mu);
    *out = g;
    ret = CUSTOS_OK;
out:
    return ret;
}
