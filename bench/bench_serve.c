/* Connected provisioning over HTTPS: custosd serve under load, against the
 * crypto-only limit of the same work measured in the same run.
 *
 * Setup (untimed): a fresh data directory, the system of
 * tests/vectors/system-infusion.json, component "pump" (two ECDSA keys: P-256
 * "tls" and P-384 "sign"), policy "package" (auto-approval), one package, and
 * M genuine device requests made by custos_device_request() on posix ports.
 * Each device's receipt key (the first non-Ed25519 key of its new
 * generation) is read back from its identity.
 *
 * Timed phase: custosd serve runs as a child process; a libcurl multi loop
 * keeps N devices in flight, each on its own new TLS connection (verified
 * against root.pem, no session resumption, its own connection cache) that it
 * keeps for its three exchanges: submit the .mcpr (202, certified at once by
 * the policy), download the .mccp (200), send an install receipt (200
 * provisioned). The device side does no install: it takes its certificate
 * from the profile (parsed, not verified) and signs the receipt with its own
 * new key through custos_receipt_encode(), the function libcustos uses.
 * Latency of a device: submit start -> receipt 200. With N always in flight
 * (closed loop) mean latency is N / rate (Little's law), so the bench then
 * offers half the rate it reached, open loop (devices start on a schedule,
 * latency counted from when each was due), to show the latency of a server
 * that keeps up. --rate R runs the timed phase open loop at R instead.
 *
 * Then, in this process with the server stopped: the in-process engine rate
 * for the same work (submit + profile export + receipt, one thread, a store
 * on the same file system) and the crypto-only limit: raw OpenSSL rates for
 * the per-provisioning operations and a memory-BIO TLS handshake with the
 * server's own SSL_CTX, split server/client because they share the cores.
 *
 * Usage: bench_serve [--custosd PATH] [--devices M] [--concurrency N]
 *                    [--workers W] [--engine-n K] [--store DIR] [--tmpfs]
 *                    [--system FILE] [--component NAME] [--p256] [--rate R]
 *                    [--no-serve]
 * --p256 provisions a built-in one-key P-256 component instead (as
 * bench_provision); --no-serve gives only the in-process figures.
 * The store is on disk (durable: SQLite synchronous=FULL and fsync reach the
 * device) unless --tmpfs. Exits 0 whether or not the target is met. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "custos/connect.h"
#include "custos/custos.h"
#include "engine.h"
#include "internal/device.h"
#include "internal/format.h"
#include "internal/util.h"

#ifndef CUSTOS_SOURCE_DIR
#define CUSTOS_SOURCE_DIR "."
#endif
#define SYSTEM_FILE CUSTOS_SOURCE_DIR "/tests/vectors/system-infusion.json"
#define TARGET_RATE 1000.0
#define TARGET_P99_MS 100.0
#define WARMUP 40
#define BODY_CAP (256u * 1024u)
#define MAX_POLLS 50         /* a device still pending after this many polls fails */
#define PHASE_DEADLINE_S 300 /* a timed phase longer than this stops, the rest failed */

/* ---- small helpers -------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, custos_err r)
{
    const custos_error *e = custos_error_last();
    fprintf(stderr, "bench_serve: %s: %s: %s\n", what, custos_err_code(r), e->message);
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_serve: %s\n", what);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static uint8_t *read_file(size_t *out_len, const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(CUSTOS_MAX_SYSTEM_JSON_SIZE);
    if (f == NULL || buf == NULL) {
        fprintf(stderr, "bench_serve: cannot read %s\n", path);
        exit(1);
    }
    *out_len = fread(buf, 1, CUSTOS_MAX_SYSTEM_JSON_SIZE, f);
    fclose(f);
    return buf;
}

static const char *fs_kind(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) != 0)
        return "unknown";
    return s.f_type == 0x01021994 ? "tmpfs" : "disk";
}

/* ---- the workload ---------------------------------------------------------- */

/* What is provisioned: a system.json, one of its components, and how many
 * of the component's keys are of each algorithm (for the crypto limit). */
typedef struct workload {
    uint8_t *system;
    size_t system_len;
    char name[CUSTOS_MAX_NAME_LEN + 1];
    char component[CUSTOS_MAX_NAME_LEN + 1];
    char algs[160]; /* "ecdsa-p256 + ecdsa-p384" */
    int n_p256, n_p384;
} workload;

/* --p256: one P-256 key, as bench_provision. */
static const char P256_SYSTEM[] =
    "{\"name\":\"bench-p256\",\"components\":[{\"name\":\"dev\",\"templates\":["
    "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],"
    "\"valid_days\":365}]}]}";

static void workload_load(workload *w, const char *path, const char *component)
{
    json_t *j, *comps;
    memset(w, 0, sizeof(*w));
    if (path == NULL) {
        w->system_len = strlen(P256_SYSTEM);
        w->system = malloc(w->system_len);
        if (w->system == NULL)
            fail("out of memory");
        memcpy(w->system, P256_SYSTEM, w->system_len);
    } else {
        w->system = read_file(&w->system_len, path);
    }
    j = json_loadb((const char *)w->system, w->system_len, 0, NULL);
    snprintf(w->name, sizeof(w->name), "%s", json_string_value(json_object_get(j, "name")));
    comps = json_object_get(j, "components");
    for (size_t i = 0; i < json_array_size(comps); i++) {
        json_t *c = json_array_get(comps, i), *ts = json_object_get(c, "templates");
        const char *cn = json_string_value(json_object_get(c, "name"));
        if (cn == NULL || (component != NULL ? strcmp(cn, component) != 0 : i > 0))
            continue;
        snprintf(w->component, sizeof(w->component), "%s", cn);
        for (size_t k = 0; k < json_array_size(ts); k++) {
            const char *alg =
                json_string_value(json_object_get(json_array_get(ts, k), "algorithm"));
            if (alg != NULL && strcmp(alg, "ecdsa-p256") == 0)
                w->n_p256++;
            else if (alg != NULL && strcmp(alg, "ecdsa-p384") == 0)
                w->n_p384++;
            else
                fail("the crypto limit knows ecdsa-p256 and ecdsa-p384 keys only");
            size_t l = strlen(w->algs);
            snprintf(w->algs + l, sizeof(w->algs) - l, "%s%s", l ? " + " : "", alg);
        }
    }
    json_decref(j);
    if (w->name[0] == '\0' || w->component[0] == '\0')
        fail("no such system or component");
}

/* ---- the data directory and the devices ----------------------------------- */

typedef struct device {
    uint8_t *req;
    size_t req_len;
    EVP_PKEY *key; /* the receipt key: first non-Ed25519 key of the new generation */
    char request_id[CUSTOS_ID_LEN + 1];
    double latency;
    int ok;
} device;

typedef struct bench_store {
    char dir[512];
    custos_package *pkg;
} bench_store;

/* custosd init, the system, policy "package", one package (kept open). */
static void store_setup(bench_store *out, const char *dir, const workload *w)
{
    custos_actor actor = {"bench", "local"};
    custos_engine *eng = NULL;
    uint8_t *pkg_der = NULL;
    size_t pkg_len = 0;
    custos_err r;

    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    if ((r = custos_engine_init(dir)) < 0)
        die("init", r);
    if ((r = custos_engine_open(&eng, dir)) < 0)
        die("open", r);
    if ((r = custos_engine_system_create(eng, w->system, w->system_len, &actor)) < 0)
        die("system create", r);
    if ((r = custos_engine_policy_set(eng, w->name, CUSTOS_POLICY_PACKAGE, NULL, 0, NULL, 0,
                                      &actor)) < 0)
        die("policy set", r);
    if ((r = custos_engine_package_create(&pkg_der, &pkg_len, eng, w->name, "pw", 2, 30, &actor)) <
        0)
        die("package create", r);
    if ((r = custos_package_open(&out->pkg, pkg_der, pkg_len, "pw", 2, NULL)) < 0)
        die("package open", r);
    custos_engine_free(eng);
    free(pkg_der);
}

/* The receipt key of the pending generation, read back from identity.mcpi. */
static void device_key(device *d, const custos_port *port)
{
    uint8_t *data = NULL;
    size_t len = 0;
    custos_identity_doc *id = NULL;
    custos_err r;

    if ((r = custos_dev_read(&data, &len, port, CUSTOS_OBJ_IDENTITY, CUSTOS_MAX_IDENTITY_SIZE)) < 0)
        die("read identity", r);
    if ((r = custos_dev_identity_load(&id, port, data, len)) < 0)
        die("load identity", r);
    const custos_identity_gen *g = &id->gens[id->n_gens - 1];
    for (size_t i = 0; i < g->n_keys && d->key == NULL; i++) {
        if (custos_key_alg(g->keys[i].key) != CUSTOS_ALG_ED25519 &&
            EVP_PKEY_up_ref(g->keys[i].key) == 1)
            d->key = g->keys[i].key;
    }
    if (d->key == NULL)
        fail("the component has no key that can sign a receipt");
    snprintf(d->request_id, sizeof(d->request_id), "%s", g->request_id);
    custos_identity_doc_free(id);
    OPENSSL_cleanse(data, len);
    free(data);
}

/* @p n genuine requests for @p pkg, each device on its own posix port. */
static device *devices_make(size_t n, const custos_package *pkg, const char *component,
                            const char *root, const char *tag, double *out_ms)
{
    device *devs = calloc(n, sizeof(*devs));
    char secret[600];
    double t0 = now_s();

    if (devs == NULL)
        fail("out of memory");
    snprintf(secret, sizeof(secret), "%s/secret", root);
    for (size_t i = 0; i < n; i++) {
        char dir[600], serial[40];
        custos_port_posix_options po = CUSTOS_PORT_POSIX_OPTIONS_INIT;
        custos_request_options ro = CUSTOS_REQUEST_OPTIONS_INIT;
        custos_port_posix *posix = NULL;
        custos_err r;

        snprintf(dir, sizeof(dir), "%s/%s%zu", root, tag, i);
        snprintf(serial, sizeof(serial), "SN-%s-%06zu", tag, i);
        po.device_dir = dir;
        po.secret_file = secret;
        if ((r = custos_port_posix_new(&posix, &po)) < 0)
            die("port", r);
        ro.component = component;
        ro.identity.serial = serial;
        ro.identity.model = "X2";
        ro.identity.firmware = "1.0.0";
        ro.flags = CUSTOS_REQUEST_KEEP_PACKAGE;
        if ((r = custos_device_request(&devs[i].req, &devs[i].req_len, custos_port_posix_get(posix),
                                       pkg, &ro)) < 0)
            die("device request", r);
        device_key(&devs[i], custos_port_posix_get(posix));
        custos_port_posix_free(posix);
    }
    *out_ms = 1e3 * (now_s() - t0) / (double)n;
    return devs;
}

static void devices_free(device *devs, size_t n)
{
    for (size_t i = 0; devs != NULL && i < n; i++) {
        free(devs[i].req);
        EVP_PKEY_free(devs[i].key);
    }
    free(devs);
}

/* ---- the device's receipt (client side) ---------------------------------- */

/* The certificate of @p key in a certified profile, parsed without verifying
 * (a device that installs verifies; this one only answers). */
static custos_err profile_cert(X509 **out, const uint8_t *der, size_t len, EVP_PKEY *key)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    STACK_OF(X509) *certs = NULL;
    custos_oid ct;
    json_t *j = NULL, *arr;

    *out = NULL;
    CUSTOS_GUARD(custos_cms_peek(&content, &content_len, &certs, &ct, der, len,
                                 CUSTOS_MAX_PROFILE_SIZE, "certified profile"));
    CUSTOS_GUARD(custos_json_parse(&j, content, content_len, "certified profile"));
    arr = json_object_get(j, "certificates");
    for (size_t i = 0; i < json_array_size(arr) && *out == NULL; i++) {
        X509 *x = NULL;
        const char *b64 = json_string_value(json_object_get(json_array_get(arr, i), "certificate"));
        CUSTOS_ENSURE(b64 != NULL, CUSTOS_ERR_MALFORMED, "certificates", "no certificate");
        CUSTOS_GUARD(custos_x509_from_b64(&x, b64, "certificates"));
        if (EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1)
            *out = x;
        else
            X509_free(x);
    }
    CUSTOS_ENSURE(*out != NULL, CUSTOS_ERR_MISMATCH, "certificates",
                  "the profile has no certificate for the device's key");
    ret = CUSTOS_OK;
out:
    json_decref(j);
    sk_X509_pop_free(certs, X509_free);
    free(content);
    return ret;
}

static custos_err receipt_make(uint8_t **out, size_t *out_len, const device *d,
                               const char *device_id, const uint8_t *profile, size_t len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    X509 *cert = NULL;
    uint8_t sha[32];
    int64_t now = 0;

    CUSTOS_GUARD(profile_cert(&cert, profile, len, d->key));
    custos_sha256(sha, profile, len);
    CUSTOS_GUARD(custos_now(&now, NULL));
    CUSTOS_GUARD(
        custos_receipt_encode(out, out_len, d->request_id, device_id, sha, now, d->key, cert));
    ret = CUSTOS_OK;
out:
    X509_free(cert);
    return ret;
}

/* ---- custosd serve as a child --------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char log[600];
} server;

static void server_start(server *s, const char *custosd, const char *data, const char *root,
                         int workers)
{
    char wbuf[16];
    snprintf(s->log, sizeof(s->log), "%s/custosd.log", root);
    snprintf(wbuf, sizeof(wbuf), "%d", workers);
    s->port = 0;
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
static double proc_cpu_s(pid_t pid)
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
static long proc_status(pid_t pid, const char *name)
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

static void server_stop(server *s)
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

/* ---- the load generator --------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

typedef struct slot {
    CURL *h;
    CURLSH *share; /* this device's own connection cache */
    struct curl_slist *hdrs;
    device *dev;
    int step; /* 0 submit, 1 download, 2 receipt */
    int polls;
    double t0;
    buf body;
    uint8_t *receipt;
    size_t receipt_len;
    char device_id[CUSTOS_ID_LEN + 1];
} slot;

typedef struct load {
    CURLM *multi;
    const char *base_url;
    const char *ca;
    X509_STORE *trust; /* root.pem, parsed once for every device's connection */
    device *devs;
    size_t n, next, done, failed, polls;
    double client_receipt_s;
    double step_s[3];   /* summed wall time of each exchange */
    double handshake_s; /* summed TCP connect -> TLS done of the first exchange */
    double rate;        /* open loop: devices started per second (0: closed loop) */
    double t_begin;
    size_t late; /* open loop: devices started > 10 ms after they were due */
    char first_error[512];
} load;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    buf *b = ctx;
    size_t n = size * nmemb;
    if (b->len + n > BODY_CAP)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return n;
}

/* Every connection's SSL_CTX gets the one parsed root.pem: libcurl would
 * otherwise read and parse the file again for each new connection, work a
 * device with its Root of Trust in memory does not do. */
static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *ctx)
{
    (void)h;
    SSL_CTX_set1_cert_store(ssl_ctx, ctx);
    return CURLE_OK;
}

/* Set up the next exchange of the device in @p s and hand it to the multi. */
static void slot_issue(load *L, slot *s)
{
    char url[256];
    CURL *h = s->h;

    s->body.len = 0;
    curl_slist_free_all(s->hdrs);
    s->hdrs = curl_slist_append(NULL, "Expect:");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_SHARE, s->share);
    curl_easy_setopt(h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, L->trust);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L); /* a new device has no session */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s->body);
    if (s->step == 0) {
        snprintf(url, sizeof(url), "%s/device/v1/requests", L->base_url);
        s->hdrs = curl_slist_append(s->hdrs, "Content-Type: " CUSTOS_CT_REQUEST);
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->dev->req);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->dev->req_len);
    } else if (s->step == 1) {
        snprintf(url, sizeof(url), "%s/device/v1/requests/%s", L->base_url, s->dev->request_id);
    } else {
        snprintf(url, sizeof(url), "%s/device/v1/requests/%s/receipt", L->base_url,
                 s->dev->request_id);
        s->hdrs = curl_slist_append(s->hdrs, "Content-Type: " CUSTOS_CT_RECEIPT);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->receipt);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->receipt_len);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L); /* the device is done */
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->hdrs);
    if (curl_multi_add_handle(L->multi, h) != CURLM_OK)
        fail("curl_multi_add_handle failed");
}

static int slot_start(load *L, slot *s)
{
    double due = L->rate > 0 ? L->t_begin + (double)L->next / L->rate : 0;
    if (L->next >= L->n || (L->rate > 0 && now_s() < due))
        return 0;
    s->dev = &L->devs[L->next++];
    s->step = 0;
    s->polls = 0;
    s->device_id[0] = '\0';
    s->h = curl_easy_init();
    s->share = curl_share_init();
    if (s->h == NULL || s->share == NULL ||
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK)
        fail("cannot set up a curl handle");
    /* Open loop: latency counts from when the device was due, so that a
     * server that falls behind is not flattered by starting devices late. */
    s->t0 = now_s();
    if (L->rate > 0 && s->t0 - due > 0.01) {
        L->late++;
        s->t0 = due;
    }
    slot_issue(L, s);
    return 1;
}

static void slot_end(load *L, slot *s, int ok, const char *why)
{
    if (ok) {
        s->dev->ok = 1;
        s->dev->latency = now_s() - s->t0;
        L->done++;
    } else {
        L->failed++;
        if (L->first_error[0] == '\0') {
            int n = (int)(s->body.len < 300 ? s->body.len : 300);
            snprintf(L->first_error, sizeof(L->first_error), "step %d: %s: %.*s", s->step, why, n,
                     s->body.p ? (const char *)s->body.p : "");
        }
    }
    curl_easy_cleanup(s->h);
    curl_share_cleanup(s->share);
    s->h = NULL;
    s->share = NULL;
    free(s->receipt);
    s->receipt = NULL;
    s->dev = NULL;
}

/* One exchange finished: check it, and go on to the device's next one. */
static void slot_done(load *L, slot *s, CURLcode cc)
{
    long status = 0;
    json_t *j = NULL;
    char why[128];

    curl_multi_remove_handle(L->multi, s->h);
    if (cc != CURLE_OK) {
        snprintf(why, sizeof(why), "curl: %s", curl_easy_strerror(cc));
        slot_end(L, s, 0, why);
        return;
    }
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    {
        curl_off_t total = 0, conn = 0, app = 0;
        curl_easy_getinfo(s->h, CURLINFO_TOTAL_TIME_T, &total);
        L->step_s[s->step] += (double)total / 1e6;
        if (s->step == 0) {
            curl_easy_getinfo(s->h, CURLINFO_CONNECT_TIME_T, &conn);
            curl_easy_getinfo(s->h, CURLINFO_APPCONNECT_TIME_T, &app);
            L->handshake_s += (double)(app - conn) / 1e6;
        }
    }
    if (s->step == 0 || s->step == 2) {
        j = json_loadb((const char *)s->body.p, s->body.len, 0, NULL);
        const char *dev_id = json_string_value(json_object_get(j, "device_id"));
        if (dev_id != NULL)
            snprintf(s->device_id, sizeof(s->device_id), "%s", dev_id);
    }
    if (s->step == 0 && status == 202) {
        s->step = 1;
        slot_issue(L, s);
    } else if (s->step == 1 && status == 202 && s->polls < MAX_POLLS) {
        L->polls++; /* not certified yet: poll again at once */
        s->polls++;
        slot_issue(L, s);
    } else if (s->step == 1 && status == 200) {
        double t0 = now_s();
        custos_err r = receipt_make(&s->receipt, &s->receipt_len, s->dev, s->device_id, s->body.p,
                                    s->body.len);
        L->client_receipt_s += now_s() - t0;
        if (r < 0) {
            snprintf(why, sizeof(why), "receipt: %.100s", custos_error_last()->message);
            slot_end(L, s, 0, why);
        } else {
            s->step = 2;
            slot_issue(L, s);
        }
    } else if (s->step == 2 && status == 200) {
        const char *state = json_string_value(json_object_get(j, "state"));
        slot_end(L, s, state != NULL && strcmp(state, "provisioned") == 0, "not provisioned");
    } else {
        snprintf(why, sizeof(why), "HTTP %ld", status);
        slot_end(L, s, 0, why);
    }
    json_decref(j);
}

/* Provision devs[0..n) with @p conc devices in flight; wall time. */
static double load_run(load *L, device *devs, size_t n, size_t conc)
{
    slot *slots = calloc(conc, sizeof(*slots));
    int running = 0;
    double t0;

    if (slots == NULL)
        fail("out of memory");
    L->devs = devs;
    L->n = n;
    L->next = L->done = L->failed = L->polls = 0;
    L->client_receipt_s = 0;
    L->handshake_s = L->step_s[0] = L->step_s[1] = L->step_s[2] = 0;
    L->late = 0;
    t0 = L->t_begin = now_s();
    do {
        CURLMsg *m;
        int left, timeout_ms = 100;
        for (size_t i = 0; i < conc && L->next < n; i++)
            if (slots[i].dev == NULL && !slot_start(L, &slots[i]))
                break;
        curl_multi_perform(L->multi, &running);
        while ((m = curl_multi_info_read(L->multi, &left)) != NULL) {
            char *priv = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            slot *s = (slot *)(void *)priv;
            slot_done(L, s, m->data.result);
            if (s->dev == NULL)
                slot_start(L, s);
        }
        if (L->rate > 0 && L->next < n) {
            double wait = L->t_begin + (double)L->next / L->rate - now_s();
            timeout_ms = wait <= 0 ? 0 : wait < 0.1 ? (int)(wait * 1e3) + 1 : 100;
        }
        if (L->done + L->failed >= n)
            break;
        if (now_s() - t0 > PHASE_DEADLINE_S) {
            for (size_t i = 0; i < conc; i++) {
                if (slots[i].dev != NULL) {
                    curl_multi_remove_handle(L->multi, slots[i].h);
                    slot_end(L, &slots[i], 0, "deadline");
                }
            }
            L->failed += n - L->next;
            break;
        }
        curl_multi_poll(L->multi, NULL, 0, timeout_ms, NULL);
    } while (1);
    double wall = now_s() - t0;
    for (size_t i = 0; i < conc; i++) {
        free(slots[i].body.p);
        curl_slist_free_all(slots[i].hdrs);
    }
    free(slots);
    return wall;
}

/* p50, p99 and max latency (ms) of the devices that completed. */
static void latencies(double out[3], const device *devs, size_t n)
{
    double *lat = calloc(n ? n : 1, sizeof(double));
    size_t nl = 0;
    if (lat == NULL)
        fail("out of memory");
    for (size_t i = 0; i < n; i++)
        if (devs[i].ok)
            lat[nl++] = devs[i].latency;
    qsort(lat, nl, sizeof(double), cmp_double);
    out[0] = 1e3 * percentile(lat, nl, 0.50);
    out[1] = 1e3 * percentile(lat, nl, 0.99);
    out[2] = nl ? 1e3 * lat[nl - 1] : 0;
    free(lat);
}

/* ---- in-process engine rate ----------------------------------------------- */

/* submit (import + auto-approve) + profile export + receipt, one thread;
 * only the engine's calls are timed (the device's receipt is not). */
static double engine_rate(const char *root, const workload *w, size_t n, double parts_ms[3])
{
    char dir[600];
    bench_store st;
    custos_engine *eng = NULL;
    custos_actor actor = {"bench", "local"};
    double dev_ms, t[3] = {0, 0, 0};
    custos_err r;

    snprintf(dir, sizeof(dir), "%s/engine-data", root);
    store_setup(&st, dir, w);
    device *devs = devices_make(n, st.pkg, w->component, root, "e", &dev_ms);
    if ((r = custos_engine_open(&eng, dir)) < 0)
        die("open", r);
    for (size_t i = 0; i < n; i++) {
        custos_request_summary s;
        int created = 0;
        uint8_t *prof = NULL, *rc = NULL;
        size_t prof_len = 0, rc_len = 0;
        double t0 = now_s();
        if ((r = custos_engine_request_submit(&s, &created, eng, devs[i].req, devs[i].req_len,
                                              "connected", &actor)) < 0)
            die("submit", r);
        if (s.state != CUSTOS_STATE_CERTIFIED)
            fail("the policy did not certify the request");
        double t1 = now_s();
        if ((r = custos_engine_profile_export(&prof, &prof_len, eng, s.request_id)) < 0)
            die("profile export", r);
        double t2 = now_s();
        if ((r = receipt_make(&rc, &rc_len, &devs[i], s.device_id, prof, prof_len)) < 0)
            die("receipt", r);
        char id[CUSTOS_ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", s.request_id); /* accept clears its output first */
        double t3 = now_s();
        if ((r = custos_engine_receipt_accept(&s, eng, id, rc, rc_len, &actor)) < 0)
            die("receipt accept", r);
        double t4 = now_s();
        t[0] += t1 - t0;
        t[1] += t2 - t1;
        t[2] += t4 - t3;
        free(prof);
        free(rc);
    }
    custos_engine_free(eng);
    custos_package_free(st.pkg);
    devices_free(devs, n);
    for (int k = 0; k < 3; k++)
        parts_ms[k] = 1e3 * t[k] / (double)n;
    return (double)n / (t[0] + t[1] + t[2]);
}

/* ---- crypto-only limit ----------------------------------------------------- */

/* Raw ECDSA rate on @p curve, measured like `openssl speed`: one initialised
 * EVP_PKEY_CTX on a 32-byte digest (48 for P-384). */
static double ecdsa_rate(const char *curve, int verify, double secs)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(key, NULL), *vctx = EVP_PKEY_CTX_new(key, NULL);
    unsigned char dgst[48] = {1}, sig[160];
    size_t dlen = strcmp(curve, "P-384") == 0 ? 48 : 32, siglen = sizeof(sig);
    long n = 0;
    double t0, t;

    if (key == NULL || sctx == NULL || vctx == NULL || EVP_PKEY_sign_init(sctx) != 1 ||
        EVP_PKEY_verify_init(vctx) != 1 || EVP_PKEY_sign(sctx, sig, &siglen, dgst, dlen) != 1)
        fail("cannot set up ECDSA");
    t0 = now_s();
    do {
        int ok;
        if (verify) {
            ok = EVP_PKEY_verify(vctx, sig, siglen, dgst, dlen) == 1;
        } else {
            size_t l = sizeof(sig);
            ok = EVP_PKEY_sign(sctx, sig, &l, dgst, dlen) == 1;
        }
        if (!ok)
            fail("ECDSA failed");
        n++;
    } while ((t = now_s() - t0) < secs);
    EVP_PKEY_CTX_free(sctx);
    EVP_PKEY_CTX_free(vctx);
    EVP_PKEY_free(key);
    return (double)n / t;
}

/* Full TLS handshakes over a memory BIO pair with custosd's own SSL_CTX and a
 * client that verifies it against root.pem as libcurl does, no resumption.
 * CPU time of each side per handshake, in seconds. */
static void tls_cost(double *out_server, double *out_client, SSL_CTX *sctx, const char *ca,
                     double secs)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    double ts = 0, tc = 0, t0 = now_s();
    long n = 0;

    if (cctx == NULL || SSL_CTX_load_verify_locations(cctx, ca, NULL) != 1)
        fail("cannot set up the TLS client");
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    while (now_s() - t0 < secs) {
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        BIO *bc = NULL, *bs = NULL;
        int cdone = 0, sdone = 0, rounds = 0;
        if (c == NULL || s == NULL || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
            fail("cannot set up a TLS pair");
        SSL_set_bio(c, bc, bc);
        SSL_set_bio(s, bs, bs);
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c), "127.0.0.1");
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        while ((!cdone || !sdone) && rounds++ < 20) {
            double a = now_s();
            if (!cdone) {
                int r = SSL_do_handshake(c);
                if (r == 1)
                    cdone = 1;
                else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                    fail("TLS client handshake failed");
            }
            double b = now_s();
            if (!sdone) {
                int r = SSL_do_handshake(s);
                if (r == 1)
                    sdone = 1;
                else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                    fail("TLS server handshake failed");
            }
            tc += b - a;
            ts += now_s() - b;
        }
        if (!cdone || !sdone || SSL_get_verify_result(c) != X509_V_OK)
            fail("TLS handshake did not complete");
        SSL_free(c);
        SSL_free(s);
        n++;
    }
    SSL_CTX_free(cctx);
    *out_server = ts / (double)n;
    *out_client = tc / (double)n;
}

/* ---- main ----------------------------------------------------------------- */

typedef struct opts {
    const char *custosd;
    size_t devices, conc;
    int workers;
    const char *store;
    int tmpfs;
    int no_serve; /* only the in-process figures (no custosd needed) */
    int p256;     /* the built-in one-key P-256 system instead of --system */
    const char *system, *component;
    size_t engine_n; /* provisionings of the in-process engine measurement */
    double rate;     /* --rate: open loop, devices started per second */
} opts;

static void parse_args(opts *o, int argc, char **argv, char *self_custosd, size_t cap)
{
    const char *slash = strrchr(argv[0], '/');
    if (slash != NULL)
        snprintf(self_custosd, cap, "%.*s/../custosd", (int)(slash - argv[0]), argv[0]);
    else
        snprintf(self_custosd, cap, "../custosd");
    o->custosd = self_custosd;
    o->devices = 2000;
    o->conc = 200;
    o->workers = 0;
    o->store = NULL;
    o->tmpfs = 0;
    o->no_serve = 0;
    o->p256 = 0;
    o->engine_n = 300;
    o->rate = 0;
    o->system = SYSTEM_FILE;
    o->component = "pump";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tmpfs") == 0 || strcmp(a, "--no-serve") == 0 || strcmp(a, "--p256") == 0) {
            if (a[2] == 't')
                o->tmpfs = 1;
            else if (a[2] == 'n')
                o->no_serve = 1;
            else
                o->p256 = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "usage: bench_serve [--custosd PATH] [--devices M] [--concurrency N] "
                            "[--workers W] [--store DIR] [--tmpfs] [--system FILE] "
                            "[--component NAME] [--p256] [--engine-n K] [--rate R] [--no-serve]\n");
            exit(2);
        }
        i++;
        if (strcmp(a, "--custosd") == 0)
            o->custosd = v;
        else if (strcmp(a, "--devices") == 0)
            o->devices = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--concurrency") == 0)
            o->conc = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--workers") == 0)
            o->workers = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--store") == 0)
            o->store = v;
        else if (strcmp(a, "--rate") == 0)
            o->rate = strtod(v, NULL);
        else if (strcmp(a, "--engine-n") == 0)
            o->engine_n = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--system") == 0)
            o->system = v;
        else if (strcmp(a, "--component") == 0)
            o->component = v;
        else {
            fprintf(stderr, "bench_serve: unknown option %s\n", a);
            exit(2);
        }
    }
    if (o->devices < 10 || o->devices > 1000000)
        o->devices = 2000;
    if (o->conc < 1 || o->conc > 10000)
        o->conc = 200;
    if (o->rate < 0 || o->rate > 1e6)
        o->rate = 0;
    if (o->engine_n < 10 || o->engine_n > 100000)
        o->engine_n = 300;
    if (o->conc > o->devices)
        o->conc = o->devices;
}

/* The temporary directories go however the bench ends (die() exits too). */
static char g_tmp_dirs[2][512];

static void remove_tmp_dirs(void)
{
    char cmd[1100];
    if (g_tmp_dirs[0][0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", g_tmp_dirs[0], g_tmp_dirs[1]);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_serve: could not remove %s or %s\n", g_tmp_dirs[0], g_tmp_dirs[1]);
}

int main(int argc, char **argv)
{
    char self_custosd[1024], client_root[512], store_root[512], data[600], ca[700], url[64];
    opts o;
    custos_err r;

    parse_args(&o, argc, argv, self_custosd, sizeof(self_custosd));
    if (!o.no_serve && access(o.custosd, X_OK) != 0) {
        fprintf(stderr, "bench_serve: no custosd at %s (--custosd PATH)\n", o.custosd);
        return 1;
    }
    const char *store_base = o.store ? o.store : o.tmpfs ? "/dev/shm" : "/var/tmp";
    const char *client_base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(store_root, sizeof(store_root), "%s/custos-bench-serve-XXXXXX", store_base);
    snprintf(client_root, sizeof(client_root), "%s/custos-bench-devices-XXXXXX", client_base);
    if (mkdtemp(store_root) == NULL || mkdtemp(client_root) == NULL) {
        perror("bench_serve: mkdtemp");
        return 1;
    }
    memcpy(g_tmp_dirs[0], store_root, sizeof(store_root));
    memcpy(g_tmp_dirs[1], client_root, sizeof(client_root));
    atexit(remove_tmp_dirs);
    snprintf(data, sizeof(data), "%s/data", store_root);
    snprintf(ca, sizeof(ca), "%s/root.pem", data);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    custos_dev_oids_register();

    /* Setup, untimed. */
    bench_store st;
    double dev_ms = 0;
    workload w;
    workload_load(&w, o.p256 ? NULL : o.system, o.p256 ? NULL : o.component);
    store_setup(&st, data, &w);
    size_t total = o.no_serve ? 0 : o.devices + WARMUP;
    device *devs =
        total ? devices_make(total, st.pkg, w.component, client_root, "d", &dev_ms) : NULL;

    /* Timed phase against custosd serve. */
    load L = {0}, L1 = {0};
    device *devs_half = NULL;
    size_t n_half = 0, half_failed = 0;
    double half_ms = 0;
    double wall = 1, srv_cpu = 0, cli_cpu = 0, lat[3] = {0, 0, 0}, lat_half[3] = {0, 0, 0};
    long hwm = 0, threads = 0;
    if (!o.no_serve) {
        server srv;
        server_start(&srv, o.custosd, data, store_root, o.workers);
        snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
        L.multi = curl_multi_init();
        L.base_url = url;
        L.ca = ca;
        L.trust = X509_STORE_new();
        if (L.trust == NULL || X509_STORE_load_file(L.trust, ca) != 1)
            fail("cannot read root.pem");
        (void)load_run(&L, devs, WARMUP, WARMUP < o.conc ? WARMUP : o.conc);
        if (L.failed > 0)
            fprintf(stderr, "bench_serve: warm-up: %zu failed: %s\n", L.failed, L.first_error);
        /* For a profiler to attach to the timed phase. */
        fprintf(stderr, "bench_serve: timed phase, custosd pid %d\n", (int)srv.pid);
        double srv_cpu0 = proc_cpu_s(srv.pid), cli_cpu0 = cpu_self_s();
        L.rate = o.rate;
        wall = load_run(&L, devs + WARMUP, o.devices, o.conc);
        srv_cpu = proc_cpu_s(srv.pid) - srv_cpu0;
        cli_cpu = cpu_self_s() - cli_cpu0;
        L1 = L;
        latencies(lat, devs + WARMUP, o.devices);
        /* Closed loop: then offer half the rate it reached, open loop, for
         * about 5 s, to show the latency of a server that keeps up. */
        if (o.rate == 0 && L1.done > 0) {
            L.rate = 0.5 * (double)L1.done / wall;
            n_half = (size_t)(5.0 * L.rate);
            n_half = n_half < 50 ? 50 : n_half > o.devices ? o.devices : n_half;
            devs_half = devices_make(n_half, st.pkg, w.component, client_root, "h", &half_ms);
            (void)load_run(&L, devs_half, n_half, o.conc);
            latencies(lat_half, devs_half, n_half);
            half_failed = L.failed;
        }
        hwm = proc_status(srv.pid, "VmHWM");
        threads = proc_status(srv.pid, "Threads");
        server_stop(&srv);
        curl_multi_cleanup(L.multi);
        X509_STORE_free(L.trust);
    }
    double rate = (double)L1.done / wall;
    double p50 = lat[0], p99 = lat[1], pmax = lat[2];

    /* In-process engine, same work, same file system. */
    double parts[3];
    double eng_rate = engine_rate(store_root, &w, o.engine_n, parts);

    /* Crypto-only limit, measured now, with the server stopped. Server, per
     * provisioning: P-256 verifies: the request's CMS signature, the
     * bootstrap certificate, the receipt; one verify per key for its
     * proof of possession (P-256 or P-384); P-256 signs (the issuing CAs are
     * P-256): one certificate per key and the profile; one TLS handshake
     * (server side). Client: one TLS handshake (client side: it verifies the
     * server certificate, signed by the P-384 root) and the receipt's sign
     * (the first key, P-256 in both workloads). */
    double s256 = ecdsa_rate("P-256", 0, 0.5), v256 = ecdsa_rate("P-256", 1, 0.5);
    double v384 = ecdsa_rate("P-384", 1, 0.5);
    custos_engine *eng = NULL;
    SSL_CTX *sctx = NULL;
    double tls_s, tls_c;
    if ((r = custos_engine_open(&eng, data)) < 0)
        die("open", r);
    if ((r = custos_engine_ssl_ctx(&sctx, eng)) < 0)
        die("ssl ctx", r);
    tls_cost(&tls_s, &tls_c, sctx, ca, 1.0);
    SSL_CTX_free(sctx);
    custos_engine_free(eng);
    double server_crypto =
        (3.0 + w.n_p256) / v256 + w.n_p384 / v384 + (1.0 + w.n_p256 + w.n_p384) / s256 + tls_s;
    double client_crypto = tls_c + 1.0 / s256;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double cores = ncpu > 0 ? (double)ncpu : 1.0;
    double limit_server = cores / server_crypto;
    double limit_shared = cores / (server_crypto + client_crypto);
    int met = rate >= TARGET_RATE && p99 < TARGET_P99_MS && L1.failed == 0;

    printf("custos bench: connected provisioning over HTTPS (custosd serve, %s), system %s, "
           "component %s (keys %s)\n",
           o.workers > 0 ? "workers set" : "default workers", w.name, w.component, w.algs);
    if (o.rate > 0)
        printf("  open loop: %.0f devices/s offered, at most %zu in flight (%zu started late); "
               "latency from when each was due\n",
               o.rate, o.conc, L1.late);
    else
        printf("  closed loop: %zu devices always in flight, so mean latency = %zu / rate "
               "(Little's law)\n",
               o.conc, o.conc);
    printf("  devices %zu, %zu concurrent, each on its own new TLS connection; store on %s "
           "(%s), %.0f cores shared by server and client\n",
           o.devices, o.conc, store_base, fs_kind(store_root), cores);
    printf("  measured:  %.0f complete provisionings/s  (%zu ok, %zu failed, %zu extra polls, "
           "wall %.2f s)  latency p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
           rate, L1.done, L1.failed, L1.polls, wall, p50, p99, pmax);
    if (L1.failed > 0)
        printf("  first failure: %s\n", L1.first_error);
    if (n_half > 0)
        printf("  at half that rate (open loop, %.0f devices/s offered, %zu devices, %zu failed):  "
               "latency p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
               0.5 * rate, n_half, half_failed, lat_half[0], lat_half[1], lat_half[2]);
    double nd = L1.done ? (double)L1.done : 1.0;
    printf("  latency by exchange (mean):  submit %.1f ms (of which TLS handshake %.1f ms)  "
           "download %.1f ms  receipt %.1f ms\n",
           1e3 * L1.step_s[0] / nd, 1e3 * L1.handshake_s / nd, 1e3 * L1.step_s[1] / nd,
           1e3 * L1.step_s[2] / nd);
    printf("  server:  peak RSS %ld KiB, %ld threads, CPU %.2f s (%.2f cores); client CPU %.2f s "
           "(%.2f cores; receipts %.3f ms each)\n",
           hwm, threads, srv_cpu, srv_cpu / wall, cli_cpu, cli_cpu / wall,
           L1.done ? 1e3 * L1.client_receipt_s / (double)L1.done : 0.0);
    printf("  server CPU per provisioning:  %.3f ms  (crypto-only %.3f ms: TLS handshake %.3f, "
           "ECDSA %.3f)\n",
           L1.done ? 1e3 * srv_cpu / (double)L1.done : 0.0, 1e3 * server_crypto, 1e3 * tls_s,
           1e3 * (server_crypto - tls_s));
    printf("  raw ECDSA: P-256 sign %.0f/s verify %.0f/s, P-384 verify %.0f/s; TLS handshake "
           "CPU server %.3f ms client %.3f ms\n",
           s256, v256, v384, 1e3 * tls_s, 1e3 * tls_c);
    printf("  crypto-only limit:  %.0f/s with the client on the same cores (%.0f/s server "
           "alone); measured / limit %.0f%%\n",
           limit_shared, limit_server, 100.0 * rate / limit_shared);
    printf("  in-process engine (one thread, same store):  %.0f provisionings/s  (submit %.3f + "
           "export %.3f + receipt %.3f ms)\n",
           eng_rate, parts[0], parts[1], parts[2]);
    printf("  device request generation (setup): %.2f ms each\n", dev_ms);
    printf("  target %.0f/s with p99 < %.0f ms (durable store, 200 devices; this run: %s, %zu):  "
           "%s\n",
           TARGET_RATE, TARGET_P99_MS, fs_kind(store_root), o.conc, met ? "met" : "not met");
    printf("{\"bench\":\"serve\",\"system\":\"%s\",\"component\":\"%s\",\"devices\":%zu,"
           "\"concurrency\":%zu,\"offered_rate\":%.1f,\"late\":%zu,\"half_load_p50_ms\":%.2f,"
           "\"half_load_p99_ms\":%.2f,\"ok\":%zu,\"failed\":%zu,\"polls\":%zu,"
           "\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"wall_s\":%.3f,"
           "\"server_peak_rss_kib\":%ld,\"server_threads\":%ld,\"server_cpu_s\":%.3f,"
           "\"client_cpu_s\":%.3f,\"store\":\"%s\",\"crypto_limit_shared\":%.1f,"
           "\"crypto_limit_server\":%.1f,\"ratio\":%.3f,\"tls_server_ms\":%.3f,"
           "\"tls_client_ms\":%.3f,\"p256_sign\":%.0f,\"p256_verify\":%.0f,\"p384_verify\":%.0f,"
           "\"engine_rate\":%.1f,\"target_met\":%s}\n",
           w.name, w.component, o.devices, o.conc, o.rate, L1.late, lat_half[0], lat_half[1],
           L1.done, L1.failed, L1.polls, rate, p50, p99, pmax, wall, hwm, threads, srv_cpu, cli_cpu,
           fs_kind(store_root), limit_shared, limit_server, rate / limit_shared, 1e3 * tls_s,
           1e3 * tls_c, s256, v256, v384, eng_rate, met ? "true" : "false");

    devices_free(devs, total);
    devices_free(devs_half, n_half);
    custos_package_free(st.pkg);
    free(w.system);
    curl_global_cleanup();
    return 0;
}
