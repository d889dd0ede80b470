/* Searching requests by serial or hardware-id prefix (server/store/
 * sqlite_search.c) on 45,000 rows, against a brute-force answer: a prefix
 * few rows match (through the indexes), one whose matches are the newest
 * rows (walked by date), one whose matches are all old (the whole index
 * range), rows both ranges hold (reported once), with the state, system and
 * component filters, ties on the creation time, and paging by cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "support/engine_fixture.h"

#define ROWS 45000
#define N_OLD 24000 /* OLD-*: the oldest rows, past the quick search's 20,000 */

typedef struct row {
    char id[CUSTOS_ID_LEN + 1];
    char serial[32], hw[32], system[24], component[24];
    int state;
    int64_t created;
} row;

typedef struct fx {
    char tmp[256];
    custos_store *st;
    row *rows;
} fx;

static void make_row(row *r, size_t i)
{
    /* ids in creation order are not id order: the tie-break is tested */
    snprintf(r->id, sizeof(r->id), "%c%025u", "abcdefghijklmnopqrstuvwxyz"[(i * 7) % 26], (unsigned)i);
    if (i < N_OLD)
        snprintf(r->serial, sizeof(r->serial), "OLD-%05zu", i);
    else
        snprintf(r->serial, sizeof(r->serial), "NEW-%05zu", i);
    /* every 997th new row has a hardware id in the OLD- range as well */
    if (i >= N_OLD && i % 997 == 0)
        snprintf(r->hw, sizeof(r->hw), "OLD-H%05zu", i);
    else
        snprintf(r->hw, sizeof(r->hw), "HW-%05zu", (i * 7919) % 100000);
    snprintf(r->system, sizeof(r->system), "s%zu", 1 + i % 2);
    snprintf(r->component, sizeof(r->component), "c%zu", 1 + i % 3);
    r->state = 1 + (int)(i % 6);
    r->created = 1000000 + (int64_t)(i / 3); /* three rows a second */
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    char path[300];
    assert_non_null(f);
    assert_int_equal(testca_tmpdir(f->tmp, sizeof(f->tmp)), 0);
    snprintf(path, sizeof(path), "%s/s.db", f->tmp);
    OK(custos_store_sqlite_open(&f->st, path, 1));
    OK(f->st->ops->system_put(f->st->ctx, "s1", "{}", 1));
    OK(f->st->ops->system_put(f->st->ctx, "s2", "{}", 1));
    f->rows = calloc(ROWS, sizeof(*f->rows));
    assert_non_null(f->rows);
    OK(f->st->ops->begin(f->st->ctx));
    for (size_t i = 0; i < ROWS; i++) {
        custos_store_request q;
        row *r = &f->rows[i];
        make_row(r, i);
        memset(&q, 0, sizeof(q));
        snprintf(q.sum.request_id, sizeof(q.sum.request_id), "%s", r->id);
        snprintf(q.sum.device_id, sizeof(q.sum.device_id), "%s", r->id);
        q.sum.state = (custos_state)r->state;
        snprintf(q.sum.kind, sizeof(q.sum.kind), "initial");
        snprintf(q.sum.via, sizeof(q.sum.via), "connected");
        snprintf(q.sum.system, sizeof(q.sum.system), "%s", r->system);
        snprintf(q.sum.component, sizeof(q.sum.component), "%s", r->component);
        snprintf(q.sum.serial, sizeof(q.sum.serial), "%s", r->serial);
        snprintf(q.hardware_id, sizeof(q.hardware_id), "%s", r->hw);
        q.sum.created = q.sum.updated = r->created;
        memcpy(q.digest, r->id, 26);
        q.der = (uint8_t *)"x";
        q.der_len = 1;
        OK(f->st->ops->request_insert(f->st->ctx, &q));
    }
    OK(f->st->ops->commit(f->st->ctx));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    custos_store_free(f->st);
    free(f->rows);
    testca_rmtree(f->tmp);
    free(f);
    return 0;
}

typedef struct page_out {
    char ids[600][CUSTOS_ID_LEN + 1];
    int64_t created[600];
    size_t n;
} page_out;

static int collect(const custos_store_request *r, void *ctx)
{
    page_out *p = ctx;
    assert_true(p->n < 600);
    memcpy(p->ids[p->n], r->sum.request_id, CUSTOS_ID_LEN + 1);
    p->created[p->n] = r->sum.created;
    p->n++;
    return 0;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int newest_first(const void *a, const void *b)
{
    const row *x = *(row *const *)a, *y = *(row *const *)b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return -strcmp(x->id, y->id);
}

/* Every page of the search against the sorted brute-force answer. */
static void check(fx *f, const char *prefix, int state, const char *system, const char *component,
                  size_t limit)
{
    row **want = calloc(ROWS, sizeof(*want));
    size_t n_want = 0, got = 0;
    custos_store_cursor cur;
    int have_cur = 0;

    assert_non_null(want);
    for (size_t i = 0; i < ROWS; i++) {
        row *r = &f->rows[i];
        if ((starts(r->serial, prefix) || starts(r->hw, prefix)) &&
            (state == 0 || r->state == state) && (system == NULL || !strcmp(r->system, system)) &&
            (component == NULL || !strcmp(r->component, component)))
            want[n_want++] = r;
    }
    qsort(want, n_want, sizeof(*want), newest_first);
    for (int pages = 0; pages < 4; pages++) {
        custos_store_query q = {(custos_state)state, system, component, prefix,
                                have_cur ? &cur : NULL, limit};
        page_out *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        OK(f->st->ops->request_query(f->st->ctx, &q, collect, p));
        assert_int_equal(p->n, n_want - got < limit ? n_want - got : limit);
        for (size_t i = 0; i < p->n; i++)
            assert_string_equal(p->ids[i], want[got + i]->id);
        got += p->n;
        if (p->n > 0) {
            cur.created = p->created[p->n - 1];
            memcpy(cur.id, p->ids[p->n - 1], sizeof(cur.id));
            have_cur = 1;
        }
        free(p);
        if (got == n_want)
            break;
    }
    free(want);
}

static void test_few_matches(void **state)
{
    fx *f = *state;
    check(f, "OLD-0001", 0, NULL, NULL, 3);      /* 10 rows, three pages and a bit */
    check(f, "HW-0", 0, NULL, NULL, 50);         /* a hardware-id prefix */
    check(f, "OLD-H", 0, NULL, NULL, 5);         /* hardware ids among serials' range */
    check(f, "NEW-3", 2, "s1", NULL, 20);        /* with filters */
    check(f, "OLD-00", 0, NULL, "c2", 7);
    check(f, "ZZZ", 0, NULL, NULL, 50);          /* nothing */
}

static void test_many_matches_recent(void **state)
{
    fx *f = *state;
    /* 21,000 NEW- rows, the newest: walked by date */
    check(f, "NEW-", 0, NULL, NULL, 50);
    check(f, "NEW-", 3, "s2", "c3", 25);
    check(f, "N", 0, NULL, NULL, 500);
}

static void test_many_matches_old(void **state)
{
    fx *f = *state;
    /* 24,000 OLD- serials (plus 21 new rows by hardware id): of the newest
     * 5,000 rows only a few match, so the whole index range is read */
    check(f, "OLD-", 0, NULL, NULL, 50);
    check(f, "OLD-", 5, "s1", NULL, 10);
    check(f, "O", 0, NULL, "c1", 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_matches),
        cmocka_unit_test(test_many_matches_recent),
        cmocka_unit_test(test_many_matches_old),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
