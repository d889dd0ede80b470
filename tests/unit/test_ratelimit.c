/* Unit tests: the token-bucket rate limiter of the HTTPS service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "http/ratelimit.h"

static void test_burst_then_limited(void **state)
{
    custos_ratelimit *rl = NULL;
    unsigned retry = 99;

    (void)state;
    assert_int_equal(custos_ratelimit_new(&rl, 1.0, 3, 100), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(custos_ratelimit_take(rl, "10.0.0.1", 100.0, &retry), 1);
        assert_int_equal(retry, 0);
    }
    assert_int_equal(custos_ratelimit_take(rl, "10.0.0.1", 100.0, &retry), 0);
    assert_int_equal(retry, 1);
    /* Another key has its own bucket. */
    assert_int_equal(custos_ratelimit_take(rl, "10.0.0.2", 100.0, &retry), 1);
    /* NULL retry pointer and NULL key are tolerated. */
    assert_int_equal(custos_ratelimit_take(rl, NULL, 100.0, NULL), 1);
    custos_ratelimit_free(rl);
}

static void test_refill_and_retry_after(void **state)
{
    custos_ratelimit *rl = NULL;
    unsigned retry = 0;

    (void)state;
    /* One token every 10 s, bucket of 2. */
    assert_int_equal(custos_ratelimit_new(&rl, 0.1, 2, 10), 0);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 0.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 0.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 0.0, &retry), 0);
    assert_int_equal(retry, 10);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 2.5, &retry), 0);
    assert_int_equal(retry, 8); /* 7.5 s, rounded up */
    assert_int_equal(custos_ratelimit_take(rl, "alice", 9.99, &retry), 0);
    assert_int_equal(retry, 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 10.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 10.0, &retry), 0);
    /* A long pause fills the bucket up to the burst, not beyond. */
    assert_int_equal(custos_ratelimit_take(rl, "alice", 1000.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 1000.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, "alice", 1000.0, &retry), 0);
    /* A clock going back refills nothing and breaks nothing. */
    assert_int_equal(custos_ratelimit_take(rl, "alice", 500.0, &retry), 0);
    assert_true(retry >= 1 && retry <= 10);
    custos_ratelimit_free(rl);
}

static void test_bad_arguments(void **state)
{
    custos_ratelimit *rl = (custos_ratelimit *)1;

    (void)state;
    assert_int_equal(custos_ratelimit_new(&rl, 0, 1, 1), CUSTOS_ERR_ARG);
    assert_null(rl);
    assert_int_equal(custos_ratelimit_new(&rl, 1, 0.5, 1), CUSTOS_ERR_ARG);
    assert_int_equal(custos_ratelimit_new(&rl, 1, 1, 0), CUSTOS_ERR_ARG);
    assert_int_equal(custos_ratelimit_new(NULL, 1, 1, 1), CUSTOS_ERR_ARG);
    assert_int_equal(custos_ratelimit_take(NULL, "k", 0, NULL), 0);
    custos_ratelimit_free(NULL);
}

static void test_eviction_bound(void **state)
{
    custos_ratelimit *rl = NULL;
    char key[200];
    unsigned retry;

    (void)state;
    assert_int_equal(custos_ratelimit_new(&rl, 1.0, 1, 64), 0);
    /* "hot" is limited and kept in use; 10 000 other keys pass through. */
    assert_int_equal(custos_ratelimit_take(rl, "hot", 0.0, &retry), 1);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(custos_ratelimit_take(rl, key, 0.0, &retry), 1);
        assert_true(custos_ratelimit_size(rl) <= 64);
        if (i % 16 == 0)
            assert_int_equal(custos_ratelimit_take(rl, "hot", 0.0, &retry), 0);
    }
    assert_int_equal(custos_ratelimit_size(rl), 64);
    /* The least recently used went: an old key starts with a full bucket. */
    assert_int_equal(custos_ratelimit_take(rl, "k0", 0.0, &retry), 1);
    /* Long keys are stored as a digest: memory stays bounded, limits still hold. */
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(custos_ratelimit_take(rl, key, 0.0, &retry), 1);
    assert_int_equal(custos_ratelimit_take(rl, key, 0.0, &retry), 0);
    key[0] = 'y';
    assert_int_equal(custos_ratelimit_take(rl, key, 0.0, &retry), 1);
    custos_ratelimit_free(rl);
}

struct worker_arg {
    custos_ratelimit *rl;
    int allowed;
};

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    char key[16];
    unsigned retry;

    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", i % 50);
        /* The time stands still: only the burst of each key can pass. */
        a->allowed += custos_ratelimit_take(a->rl, key, 7.0, &retry);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    custos_ratelimit *rl = NULL;
    pthread_t t[4];
    struct worker_arg a[4];
    int total = 0;

    (void)state;
    assert_int_equal(custos_ratelimit_new(&rl, 1.0, 10, 1000), 0);
    for (int i = 0; i < 4; i++) {
        a[i].rl = rl;
        a[i].allowed = 0;
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        total += a[i].allowed;
    }
    /* 50 keys x burst 10, exactly, whatever the interleaving. */
    assert_int_equal(total, 500);
    assert_int_equal(custos_ratelimit_size(rl), 50);
    assert_true(custos_ratelimit_now() > 0);
    custos_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_limited), cmocka_unit_test(test_refill_and_retry_after),
        cmocka_unit_test(test_bad_arguments),      cmocka_unit_test(test_eviction_bound),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
