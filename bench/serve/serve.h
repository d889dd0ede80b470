/* bench_serve: what its parts share (setup, devices, the custosd child,
 * the load generator, the in-process and crypto-only reference figures). */
#ifndef CUSTOS_BENCH_SERVE_H
#define CUSTOS_BENCH_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "custos/custos.h"
#include "engine.h"

/* ---- helpers (util.c) ------------------------------------------------------ */

double now_s(void);
_Noreturn void die(const char *what, custos_err r);
_Noreturn void fail(const char *what);

/* ---- the workload and the data directory (setup.c) ------------------------ */

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

typedef struct bench_store {
    char dir[512];
    custos_package *pkg;
} bench_store;

/* The system at @p path (NULL: the built-in one-key P-256 system) and its
 * component @p component (NULL: the first). */
void workload_load(workload *w, const char *path, const char *component);
/* custosd init, the system, policy "package", one package (kept open). */
void store_setup(bench_store *out, const char *dir, const workload *w);

/* ---- the devices and their receipts (devices.c) -------------------------- */

typedef struct device {
    uint8_t *req;
    size_t req_len;
    EVP_PKEY *key; /* the receipt key: first non-Ed25519 key of the new generation */
    char request_id[CUSTOS_ID_LEN + 1];
    double latency;
    int ok;
} device;

/* @p n genuine requests for @p pkg, each device on its own posix port. */
device *devices_make(size_t n, const custos_package *pkg, const char *component, const char *root,
                     const char *tag, double *out_ms);
void devices_free(device *devs, size_t n);
/* The install receipt of @p d for the certified profile @p profile. */
custos_err receipt_make(uint8_t **out, size_t *out_len, const device *d, const char *device_id,
                        const uint8_t *profile, size_t len);

/* ---- custosd serve as a child (server.c) ----------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char log[600];
} server;

/* Start custosd serve on @p data (its log in @p root) and wait for its port. */
void server_start(server *s, const char *custosd, const char *data, const char *root, int workers);
/* utime + stime of @p pid, seconds. */
double proc_cpu_s(pid_t pid);
/* A "Name:   value kB" line of /proc/PID/status. */
long proc_status(pid_t pid, const char *name);
void server_stop(server *s);

/* ---- the load generator (load.c) ------------------------------------------ */

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

/* Provision devs[0..n) with @p conc devices in flight; wall time. */
double load_run(load *L, device *devs, size_t n, size_t conc);
/* p50, p99 and max latency (ms) of the devices that completed. */
void latencies(double out[3], const device *devs, size_t n);

/* ---- reference figures (engine_rate.c, crypto_limit.c) -------------------- */

/* submit (import + auto-approve) + profile export + receipt, one thread;
 * only the engine's calls are timed (the device's receipt is not). */
double engine_rate(const char *root, const workload *w, size_t n, double parts_ms[3]);
/* Raw ECDSA rate on @p curve, measured like `openssl speed`: one initialised
 * EVP_PKEY_CTX on a 32-byte digest (48 for P-384). */
double ecdsa_rate(const char *curve, int verify, double secs);
/* Full TLS handshakes over a memory BIO pair with custosd's own SSL_CTX and a
 * client that verifies it against root.pem as libcurl does, no resumption.
 * CPU time of each side per handshake, in seconds. */
void tls_cost(double *out_server, double *out_client, SSL_CTX *sctx, const char *ca, double secs);

#endif
