/* What the benchmarks built with bench/serve share: a clock and dying loudly. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "serve.h"

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_Noreturn void die(const char *what, custos_err r)
{
    const custos_error *e = custos_error_last();
    fprintf(stderr, "%s: %s: %s: %s\n", program_invocation_short_name, what, custos_err_code(r),
            e->message);
    exit(1);
}

_Noreturn void fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
    exit(1);
}
