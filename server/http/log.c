/* Structured log lines: one JSON object per line, each written with one
 * write(2) and no lock, so logging puts no global lock on the request path.
 * The kernel keeps a write of up to PIPE_BUF bytes to a pipe (journald,
 * a supervisor), and any write to an O_APPEND file, whole: lines from
 * worker threads do not interleave. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_fd = -1;

void custos_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

static void format_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

void custos_log(const char *level, const char *event, const json_t *fields)
{
    char when[32], stack[2048];
    char *line = stack;
    size_t need;
    json_t *obj;
    int fd;

    format_now(when);
    obj = json_object();
    if (obj == NULL)
        return;
    json_object_set_new(obj, "time", json_string(when));
    json_object_set_new(obj, "level", json_string(level ? level : "info"));
    json_object_set_new(obj, "event", json_string(event ? event : "event"));
    if (fields != NULL && json_is_object(fields))
        json_object_update_missing(obj, (json_t *)fields);
    /* Durations are rounded to microseconds by their writers; 9 significant
     * digits print them without binary noise. */
    need = json_dumpb(obj, stack, sizeof(stack) - 1, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (need == 0)
        goto out;
    if (need > sizeof(stack) - 1) {
        line = malloc(need + 1);
        if (line == NULL)
            goto out;
        need = json_dumpb(obj, line, need, JSON_COMPACT | JSON_REAL_PRECISION(9));
    }
    line[need] = '\n';
    fd = atomic_load(&log_fd);
    write_all(fd >= 0 ? fd : STDERR_FILENO, line, need + 1);
    if (line != stack)
        free(line);
out:
    json_decref(obj);
}
