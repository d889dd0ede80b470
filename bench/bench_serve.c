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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "internal/device.h"
#include "internal/util.h"
#include "serve/serve.h"

#ifndef CUSTOS_SOURCE_DIR
#define CUSTOS_SOURCE_DIR "."
#endif
#define SYSTEM_FILE CUSTOS_SOURCE_DIR "/tests/vectors/system-infusion.json"
#define TARGET_RATE 1000.0
#define TARGET_P99_MS 100.0
#define WARMUP 40
#define BODY_CAP (256u * 1024u)

/* ---- small helpers -------------------------------------------------------- */

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *fs_kind(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) != 0)
        return "unknown";
    return s.f_type == 0x01021994 ? "tmpfs" : "disk";
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
