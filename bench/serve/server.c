/* bench_serve: custosd serve as a child process, and what /proc says of it. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal/util.h"

#include "serve.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void server_start(server *s, const char *custosd, const char *data, const char *root, int workers)
{
    char wbuf[16];
    snprintf(s->log, sizeof(s->log), "%s/custosd.log", root);
    snprintf(wbuf, sizeof(wbuf), "%d", workers);
    s->port = 0;
    /* A log left by an earlier run would name its port before the child's
     * O_TRUNC: start from none. */
    (void)unlink(s->log);
    s->pid = fork();
    if (s->pid < 0)
        fail("fork failed");
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        /* The server goes when the bench goes, however it ends. */
        if (fd < 0 || dup2(fd, 2) < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            _exit(127);
        const char *argv[16] = {custosd,    "serve",          "--data",  data,
                                "--listen", "127.0.0.1:0",    "--quiet", "--device-rate",
                                "1000000",  "--device-burst", "1000000", NULL};
        if (workers > 0) {
            argv[11] = "--workers";
            argv[12] = wbuf;
            argv[13] = NULL;
        }
        execv(custosd, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    for (int i = 0; i < 600 && s->port == 0; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stderr, "bench_serve: custosd serve exited (log %s)\n", s->log);
            exit(1);
        }
        FILE *f = fopen(s->log, "r");
        char line[2048];
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            if (strstr(line, "\"listening\"") == NULL)
                continue;
            json_t *j = json_loads(line, 0, NULL);
            json_int_t p = json_integer_value(json_object_get(j, "port"));
            if (p > 0 && p < 65536)
                s->port = (int)p;
            json_decref(j);
        }
        if (f != NULL)
            fclose(f);
        if (s->port == 0)
            sleep_ms(50);
    }
    if (s->port == 0)
        fail("custosd serve did not say it was listening within 30 s");
}

/* utime + stime of @p pid, seconds. */
double proc_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    unsigned long ut = 0, st = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Name:   value kB" line of /proc/PID/status. */
long proc_status(pid_t pid, const char *name)
{
    char path[64], line[256];
    long v = -1;
    size_t nl = strlen(name);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, nl) == 0 && line[nl] == ':')
            v = strtol(line + nl + 1, NULL, 10);
    }
    if (f)
        fclose(f);
    return v;
}

void server_stop(server *s)
{
    int st = 0;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            return;
        sleep_ms(50);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
}
