/* Several engines on one data directory at once, as custosd serve's worker
 * threads run them: each thread with its own engine (its own store
 * connection; two opened from the data directory, two shared from a parent)
 * imports and approves its own requests while all of them race on one
 * shared request. Every request ends certified, the shared one is imported
 * and approved exactly once, no certificate serial repeats, and the audit
 * chain verifies. Also: a system or a policy one engine creates is seen by
 * another, and what opening an engine costs. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/engine_fixture.h"

#define THREADS 4
#define PER_THREAD 8

typedef struct job {
    custos_engine *e;
    uint8_t *der[PER_THREAD];
    size_t len[PER_THREAD];
    const uint8_t *shared;
    size_t shared_len;
    char shared_id[CUSTOS_ID_LEN + 1];
    pthread_barrier_t *start;
    /* results */
    int certified;
    int shared_created;
    int shared_approved;
    custos_err err;
    char msg[1024];
} job;

static void record_failure(job *j, custos_err r, const char *what)
{
    if (j->err == 0) {
        j->err = r;
        snprintf(j->msg, sizeof(j->msg), "%s: %d %s [%s]", what, r, custos_error_last()->message,
                 custos_error_last()->field);
    }
}

static void *worker(void *arg)
{
    job *j = arg;
    const custos_actor actor = {"user:worker", "127.0.0.1"};
    custos_request_summary r;
    int created = 0;
    custos_err rc;
    size_t i;

    pthread_barrier_wait(j->start);
    /* everyone imports the shared request first: one creates it */
    rc = custos_engine_request_import(&r, &created, j->e, j->shared, j->shared_len, "connected",
                                      &actor);
    if (rc != CUSTOS_OK)
        record_failure(j, rc, "shared import");
    j->shared_created = created;
    memcpy(j->shared_id, r.request_id, sizeof(j->shared_id));
    for (i = 0; i < PER_THREAD; i++) {
        rc = custos_engine_request_import(&r, &created, j->e, j->der[i], j->len[i], "connected",
                                          &actor);
        if (rc != CUSTOS_OK || !created) {
            record_failure(j, rc, "import");
            continue;
        }
        rc = custos_engine_request_approve(&r, j->e, r.request_id, &actor);
        if (rc != CUSTOS_OK) {
            record_failure(j, rc, "approve");
            continue;
        }
        j->certified += r.state == CUSTOS_STATE_CERTIFIED;
        if (i == PER_THREAD / 2) {
            /* everyone races to approve the shared request: one wins */
            rc = custos_engine_request_approve(&r, j->e, j->shared_id, &actor);
            if (rc == CUSTOS_OK)
                j->shared_approved = 1;
            else if (rc != CUSTOS_ERR_STATE)
                record_failure(j, rc, "shared approve");
        }
    }
    return NULL;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static long long scalar(ef_fx *f, const char *sql)
{
    char path[400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    snprintf(path, sizeof(path), "%s/custos.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_parallel_engines(void **state)
{
    ef_fx *f = *state;
    job jobs[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t start;
    uint8_t *shared;
    size_t shared_len = 0, audit_n = 0, i, k;
    int created_total = 0, approved_total = 0;
    struct timespec t0;
    char serial[32];

    memset(jobs, 0, sizeof(jobs));
    shared = ef_initial_request(&shared_len, f, "SN-SHARED", NULL);
    for (i = 0; i < THREADS; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (i % 2 == 0) {
            OK(custos_engine_open(&jobs[i].e, f->dir));
            print_message("custos_engine_open: %.1f ms\n", ms_since(&t0));
        } else {
            OK(custos_engine_open_shared(&jobs[i].e, f->e));
            print_message("custos_engine_open_shared: %.1f ms\n", ms_since(&t0));
        }
        custos_engine_set_clock(jobs[i].e, ef_fake_clock, &f->now);
        for (k = 0; k < PER_THREAD; k++) {
            snprintf(serial, sizeof(serial), "SN-T%zu-%zu", i, k);
            jobs[i].der[k] = ef_initial_request(&jobs[i].len[k], f, serial, NULL);
        }
        jobs[i].shared = shared;
        jobs[i].shared_len = shared_len;
        jobs[i].start = &start;
    }
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    print_message("%d threads x %d import+approve: %.0f ms\n", THREADS, PER_THREAD, ms_since(&t0));
    pthread_barrier_destroy(&start);

    for (i = 0; i < THREADS; i++) {
        if (jobs[i].err != 0)
            print_error("thread %zu: %s\n", i, jobs[i].msg);
        assert_int_equal(jobs[i].err, 0);
        assert_int_equal(jobs[i].certified, PER_THREAD);
        assert_string_equal(jobs[i].shared_id, jobs[0].shared_id);
        created_total += jobs[i].shared_created;
        approved_total += jobs[i].shared_approved;
    }
    assert_int_equal(created_total, 1);
    assert_int_equal(approved_total, 1);
    /* 33 requests, all certified; 2 certificates each; serials unique */
    assert_int_equal(scalar(f, "SELECT count(*) FROM requests"), THREADS * PER_THREAD + 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM requests WHERE state = 3"),
                     THREADS * PER_THREAD + 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM certificates"),
                     2 * (THREADS * PER_THREAD + 1));
    assert_int_equal(scalar(f, "SELECT count(DISTINCT serial) FROM certificates"),
                     2 * (THREADS * PER_THREAD + 1));
    assert_int_equal(scalar(f, "SELECT count(*) FROM profiles"), THREADS * PER_THREAD + 1);
    /* one import, one approve and one issue entry per request; an unbroken chain */
    assert_int_equal(ef_count_audit(f, "request.import", NULL), THREADS * PER_THREAD + 1);
    assert_int_equal(ef_count_audit(f, "request.approve", NULL), THREADS * PER_THREAD + 1);
    assert_int_equal(ef_count_audit(f, "request.issue", NULL), THREADS * PER_THREAD + 1);
    OK(custos_engine_audit_verify(&audit_n, f->e));
    assert_int_equal((long long)audit_n, scalar(f, "SELECT count(*) FROM audit"));
    assert_int_equal((long long)audit_n, scalar(f, "SELECT max(seq) FROM audit"));
    {
        size_t n[8];
        OK(custos_engine_request_counts(n, jobs[1].e, NULL, NULL));
        assert_int_equal(n[CUSTOS_STATE_CERTIFIED], THREADS * PER_THREAD + 1);
    }
    for (i = 0; i < THREADS; i++) {
        for (k = 0; k < PER_THREAD; k++)
            free(jobs[i].der[k]);
        custos_engine_free(jobs[i].e);
    }
    free(shared);
}

static const char SYSTEM2[] =
    "{\"name\":\"pump2\",\"display_name\":\"Pump Y\",\"services\":{\"cloud_url\":\"\"},"
    "\"renewal_window_days\":30,\"components\":[{\"name\":\"ctl\",\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"],\"valid_days\":365,"
    "\"subject\":\"CN={serial}\"}]}]}";

/* Engines opened before a system existed find it when asked. */
static void test_system_seen_across_engines(void **state)
{
    ef_fx *f = *state;
    custos_engine *other = NULL, *child = NULL;
    uint8_t *pkg = NULL;
    size_t len = 0;

    OK(custos_engine_open(&other, f->dir));
    OK(custos_engine_open_shared(&child, f->e));
    OK(custos_engine_system_create(f->e, (const uint8_t *)SYSTEM2, strlen(SYSTEM2), &EF_ACTOR));
    OK(custos_engine_package_create(&pkg, &len, other, "pump2", PASS, strlen(PASS), 5, &EF_ACTOR));
    free(pkg);
    OK(custos_engine_package_create(&pkg, &len, child, "pump2", PASS, strlen(PASS), 5, &EF_ACTOR));
    free(pkg);
    /* and creating it again from an engine that had not seen it is refused */
    custos_engine_free(other);
    OK(custos_engine_open(&other, f->dir));
    assert_int_equal(
        custos_engine_system_create(child, (const uint8_t *)SYSTEM2, strlen(SYSTEM2), &EF_ACTOR),
        CUSTOS_ERR_EXISTS);
    assert_int_equal(
        custos_engine_package_create(&pkg, &len, other, "nope", PASS, strlen(PASS), 5, &EF_ACTOR),
        CUSTOS_ERR_NOT_FOUND);
    /* a child outlives its parent */
    custos_engine_free(f->e);
    f->e = NULL;
    OK(custos_engine_package_create(&pkg, &len, child, "pump", PASS, strlen(PASS), 5, &EF_ACTOR));
    free(pkg);
    custos_engine_free(child);
    custos_engine_free(other);
}

/* The audit trail appended from two connections, interleaved entry by entry
 * (outside any caller transaction too): one chain. */
static void test_audit_appends_interleaved(void **state)
{
    ef_fx *f = *state;
    custos_engine *other = NULL;
    char pw[64];
    size_t n = 0, i;
    char name[16];

    OK(custos_engine_open(&other, f->dir));
    for (i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "op%zu", i);
        OK(custos_engine_user_create(i % 2 ? other : f->e, name, CUSTOS_ROLE_AUDITOR, NULL, pw,
                                     sizeof(pw), &EF_ACTOR));
    }
    OK(custos_engine_audit_verify(&n, other));
    assert_int_equal(ef_count_audit(f, "user.create", NULL), 6);
    custos_engine_free(other);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ef_setup, ef_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_parallel_engines),
        T(test_system_seen_across_engines),
        T(test_audit_appends_interleaved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
