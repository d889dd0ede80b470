/* Provisioning throughput against the crypto limit measured in the same run.
 *
 * Prints, side by side:
 *   - OpenSSL's raw ECDSA P-256 sign and verify rates on this machine;
 *   - the crypto-only limit of provisionings per second they imply: a
 *     provisioning with one certificate needs 3 verifies (the PR's CMS
 *     signature, the bootstrap certificate, the CSR's proof of possession) and
 *     2 signs (the certificate, the certified profile);
 *   - the engine's measured rate (import = verify PR + checks + store; approve
 *     = issue + lint + build CP + store), in process, one thread, as a ratio;
 *   - device-side request generation against keygen + 2 signs (CSR, CMS).
 *
 * The store lives on tmpfs when /dev/shm exists, so the figure measures CPU
 * work rather than the disk's fsync latency (SQLite still runs with
 * synchronous=FULL). Usage: bench_provision [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "custos/custos.h"
#include "engine.h"
#include "internal/util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, custos_err r)
{
    const custos_error *e = custos_error_last();
    fprintf(stderr, "bench: %s: %s: %s\n", what, custos_err_code(r), e->message);
    exit(1);
}

/* Raw P-256 sign/verify rates, measured the way `openssl speed ecdsap256`
 * does: one initialised EVP_PKEY_CTX, signing and verifying a 32-byte digest.
 * This is the strict limit: it leaves out even the per-operation set-up that
 * any real use of the key pays. */
static void p256_rates(double *sign_rate, double *verify_rate)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(key, NULL), *vctx = EVP_PKEY_CTX_new(key, NULL);
    unsigned char dgst[32] = {1}, sig[128];
    size_t siglen = 0;
    long n = 0;
    double t0, t;

    if (key == NULL || sctx == NULL || vctx == NULL || EVP_PKEY_sign_init(sctx) != 1 ||
        EVP_PKEY_verify_init(vctx) != 1) {
        fprintf(stderr, "bench: cannot set up P-256\n");
        exit(1);
    }
    t0 = now_s();
    do {
        siglen = sizeof(sig);
        if (EVP_PKEY_sign(sctx, sig, &siglen, dgst, sizeof(dgst)) != 1) {
            fprintf(stderr, "bench: sign failed\n");
            exit(1);
        }
        n++;
    } while ((t = now_s() - t0) < 1.0);
    *sign_rate = (double)n / t;
    n = 0;
    t0 = now_s();
    do {
        if (EVP_PKEY_verify(vctx, sig, siglen, dgst, sizeof(dgst)) != 1) {
            fprintf(stderr, "bench: verify failed\n");
            exit(1);
        }
        n++;
    } while ((t = now_s() - t0) < 1.0);
    *verify_rate = (double)n / t;
    EVP_PKEY_CTX_free(sctx);
    EVP_PKEY_CTX_free(vctx);
    EVP_PKEY_free(key);
}

static const char SYSTEM_JSON[] =
    "{\"name\":\"bench\",\"components\":[{\"name\":\"dev\",\"templates\":["
    "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],"
    "\"valid_days\":365}]}]}";

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 300;
    if (n < 10 || n > 100000)
        n = 300;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char root[256];
    snprintf(root, sizeof(root), "%s/custos-bench-XXXXXX", base);
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char data[300], cmd[600];
    snprintf(data, sizeof(data), "%s/data", root);

    double sign_rate, verify_rate;
    p256_rates(&sign_rate, &verify_rate);
    double limit = 1.0 / (2.0 / sign_rate + 3.0 / verify_rate);

    custos_err r;
    custos_engine *eng = NULL;
    custos_actor actor = {"bench", "local"};
    if ((r = custos_engine_init(data)) < 0)
        die("init", r);
    if ((r = custos_engine_open(&eng, data)) < 0)
        die("open", r);
    if ((r = custos_engine_system_create(eng, (const uint8_t *)SYSTEM_JSON, strlen(SYSTEM_JSON),
                                         &actor)) < 0)
        die("system create", r);
    uint8_t *pkg_der = NULL;
    size_t pkg_len = 0;
    if ((r = custos_engine_package_create(&pkg_der, &pkg_len, eng, "bench", "pw", 2, 30, &actor)) <
        0)
        die("package create", r);
    custos_package *pkg = NULL;
    if ((r = custos_package_open(&pkg, pkg_der, pkg_len, "pw", 2, NULL)) < 0)
        die("package open", r);

    /* Device side: N requests, each on its own device directory. */
    uint8_t **reqs = calloc((size_t)n, sizeof(*reqs));
    size_t *req_lens = calloc((size_t)n, sizeof(*req_lens));
    char secret[300];
    snprintf(secret, sizeof(secret), "%s/secret", root);
    double t_dev = 0;
    for (int i = 0; i < n; i++) {
        char dir[300], serial[32];
        snprintf(dir, sizeof(dir), "%s/dev%d", root, i);
        snprintf(serial, sizeof(serial), "SN-%06d", i);
        custos_port_posix_options po = CUSTOS_PORT_POSIX_OPTIONS_INIT;
        po.device_dir = dir;
        po.secret_file = secret;
        custos_port_posix *posix = NULL;
        if ((r = custos_port_posix_new(&posix, &po)) < 0)
            die("port", r);
        custos_request_options ro = CUSTOS_REQUEST_OPTIONS_INIT;
        ro.component = "dev";
        ro.identity.serial = serial;
        ro.flags = CUSTOS_REQUEST_KEEP_PACKAGE;
        double t0 = now_s();
        if ((r = custos_device_request(&reqs[i], &req_lens[i], custos_port_posix_get(posix), pkg,
                                       &ro)) < 0)
            die("device request", r);
        t_dev += now_s() - t0;
        custos_port_posix_free(posix);
    }

    /* Device-side crypto floor: one P-256 keygen + 2 signs. */
    double t0 = now_s();
    for (int i = 0; i < 200; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        EVP_PKEY_free(k);
    }
    double keygen_s = (now_s() - t0) / 200.0;
    double dev_floor = keygen_s + 2.0 / sign_rate;

    /* Engine: import (verify PR) then approve (issue + lint + CP), request by
     * request, as an auto-approval policy or a busy approver does. */
    double t_import = 0, t_approve = 0;
    for (int i = 0; i < n; i++) {
        custos_request_summary s;
        int created = 0;
        t0 = now_s();
        if ((r = custos_engine_request_import(&s, &created, eng, reqs[i], req_lens[i], "import",
                                              &actor)) < 0)
            die("import", r);
        double t1 = now_s();
        if ((r = custos_engine_request_approve(&s, eng, s.request_id, &actor)) < 0)
            die("approve", r);
        t_approve += now_s() - t1;
        t_import += t1 - t0;
    }
    double engine_rate = (double)n / (t_import + t_approve);

    /* Measure the raw rates again after the engine ran and use the mean: on
     * a shared machine the clock and the neighbours change within a run. */
    double sign2, verify2;
    p256_rates(&sign2, &verify2);
    sign_rate = (sign_rate + sign2) / 2;
    verify_rate = (verify_rate + verify2) / 2;
    limit = 1.0 / (2.0 / sign_rate + 3.0 / verify_rate);

    printf("custos bench: provisioning (one P-256 certificate), n=%d, store on %s\n", n, base);
    printf("  raw ECDSA P-256 (OpenSSL, this run, mean of before and after):  sign %.0f/s  verify "
           "%.0f/s\n",
           sign_rate, verify_rate);
    printf("  crypto-only limit (2 sign + 3 verify):  %.0f provisionings/s\n", limit);
    printf("  engine measured:  %.0f provisionings/s  (import %.3f ms + approve %.3f ms each)\n",
           engine_rate, 1e3 * t_import / n, 1e3 * t_approve / n);
    printf("  engine / crypto limit:  %.0f%%  (target >= 40%%)\n", 100.0 * engine_rate / limit);
    printf("  device request generation:  %.3f ms each; keygen + 2 signs floor %.3f ms; "
           "ratio %.2fx\n",
           1e3 * t_dev / n, 1e3 * dev_floor, (t_dev / n) / dev_floor);

    for (int i = 0; i < n; i++)
        free(reqs[i]);
    free(reqs);
    free(req_lens);
    free(pkg_der);
    custos_package_free(pkg);
    custos_engine_free(eng);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", root);
    return 0;
}
