/*
 * bench_console: the Devices page of the web console on a million devices.
 *
 * Seeds a data directory with --rows requests (default 1,000,000) straight
 * into the store (no crypto: rows as the engine writes them, in big
 * transactions), starts the real `custosd serve` on loopback and asks the
 * operator API what the Devices page asks, over one kept-alive HTTPS
 * connection as a browser does:
 *   first page       GET /api/v1/requests?limit=50
 *   next page        ... &cursor=  (of the first page)
 *   filtered         ... &state=S&system=Y  (and &component=C)
 *   serial search    ... &q=SN-0123456 (one device), and a dense prefix
 *   hardware search  ... &q=HW-...
 * Each query --requests times (default 100, after 5 warm-ups) with varying
 * values; prints p50, p95 and max next to the row count and the 100 ms
 * target, and next to the floor measured in the same run: GET
 * /api/v1/session, the same connection, TLS and authentication without any
 * query.
 *
 *   bench_console --custosd build/custosd [--rows N] [--requests N] [--keep DIR]
 *   bench_console --custosd build/custosd --reuse DIR   (a --keep DIR, not seeded again)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "engine.h"
#include "internal/util.h"
#include "serve/serve.h"
#include "store/sqlite_int.h"
#include "store/store.h"

#define N_SYSTEMS 4
#define TARGET_MS 100.0
#define WARMUP 5

static const char *const COMPONENTS[] = {"controller", "hub", "sensor"};
static const char *const MODELS[] = {"X2", "X2-Pro", "D7"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the data directory ----------------------------------------------------- */

static void system_json(char *out, size_t cap, int i)
{
    snprintf(out, cap,
             "{\"name\":\"sys-%d\",\"display_name\":\"System %d\","
             "\"services\":{\"cloud_url\":\"https://custos.example\"},\"renewal_window_days\":30,"
             "\"components\":["
             "{\"name\":\"controller\",\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"],"
             "\"valid_days\":365,\"subject\":\"CN={serial}\"}]},"
             "{\"name\":\"hub\",\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"],"
             "\"valid_days\":365,\"subject\":\"CN={serial}\"}]},"
             "{\"name\":\"sensor\",\"templates\":[{\"name\":\"sign\",\"usage\":[\"signing\"],"
             "\"valid_days\":365,\"subject\":\"CN={serial}\"}]}]}",
             i, i);
}

/* A state as a fleet has them: most provisioned, a few of each other. */
static custos_state state_for(uint32_t r)
{
    unsigned p = r % 1000;
    if (p < 850)
        return CUSTOS_STATE_PROVISIONED;
    if (p < 900)
        return CUSTOS_STATE_CERTIFIED;
    if (p < 940)
        return CUSTOS_STATE_PENDING;
    if (p < 950)
        return CUSTOS_STATE_APPROVED;
    if (p < 975)
        return CUSTOS_STATE_REJECTED;
    return CUSTOS_STATE_EXPIRED;
}

static void seed(const char *dir, size_t rows, char *password, size_t pw_cap)
{
    custos_init_options opts = CUSTOS_INIT_OPTIONS_INIT;
    custos_engine *e = NULL;
    custos_store *st = NULL;
    custos_actor actor = {"bench", "127.0.0.1"};
    char json[2048], db[700];
    uint8_t der[64];
    int64_t now = (int64_t)time(NULL);
    custos_err r;
    double t0;

    opts.admin_password = password;
    opts.admin_password_cap = pw_cap;
    if ((r = custos_engine_init_ex(dir, &opts)) != CUSTOS_OK)
        die("custosd init", r);
    if ((r = custos_engine_open(&e, dir)) != CUSTOS_OK)
        die("open", r);
    for (int i = 0; i < N_SYSTEMS; i++) {
        system_json(json, sizeof(json), i);
        if ((r = custos_engine_system_create(e, (const uint8_t *)json, strlen(json), &actor)) !=
            CUSTOS_OK)
            die("system create", r);
    }
    custos_engine_free(e);

    snprintf(db, sizeof(db), "%s/custos.db", dir);
    if ((r = custos_store_sqlite_open(&st, db, 0)) != CUSTOS_OK)
        die("store open", r);
    /* A seeding-sized page cache: random ids would otherwise spill the
     * indexes to the WAL page by page, mid-transaction. */
    if ((r = custos_sq_exec_sql(st->ctx, "PRAGMA cache_size = -524288", "cache")) != CUSTOS_OK)
        die("cache_size", r);
    memset(der, 0x30, sizeof(der));
    t0 = now_s();
    for (size_t i = 0; i < rows; i++) {
        custos_store_request q;
        uint32_t rnd = 0;
        if (i % 50000 == 0 && (r = st->ops->begin(st->ctx)) != CUSTOS_OK)
            die("begin", r);
        memset(&q, 0, sizeof(q));
        if (custos_id_new(q.sum.request_id, NULL) != CUSTOS_OK ||
            custos_id_new(q.sum.device_id, NULL) != CUSTOS_OK ||
            RAND_bytes(q.digest, sizeof(q.digest)) != 1 ||
            RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
            fail("random");
        q.sum.state = state_for(rnd);
        snprintf(q.sum.kind, sizeof(q.sum.kind), "%s", rnd % 50 == 0 ? "reprovision" : "initial");
        snprintf(q.sum.via, sizeof(q.sum.via), "%s",
                 rnd % 7 == 0 ? "upload" : (rnd % 11 == 0 ? "gateway" : "connected"));
        snprintf(q.sum.system, sizeof(q.sum.system), "sys-%zu", i % N_SYSTEMS);
        snprintf(q.sum.component, sizeof(q.sum.component), "%s", COMPONENTS[(i / 4) % 3]);
        snprintf(q.sum.serial, sizeof(q.sum.serial), "SN-%07zu", i);
        snprintf(q.hardware_id, sizeof(q.hardware_id), "HW-%08zx", i * 2654435761u % 0xffffffffu);
        snprintf(q.sum.model, sizeof(q.sum.model), "%s", MODELS[i % 3]);
        snprintf(q.sum.firmware, sizeof(q.sum.firmware), "1.%zu.0", i % 9);
        /* one a second, oldest first, ending now */
        q.sum.created = now - (int64_t)(rows - i);
        q.sum.updated = q.sum.created + 60;
        q.sum.expires = now + 30 * 86400;
        if (q.sum.state == CUSTOS_STATE_REJECTED)
            snprintf(q.sum.reason, sizeof(q.sum.reason), "serial not on the delivery note");
        q.der = der;
        q.der_len = sizeof(der);
        if ((r = st->ops->request_insert(st->ctx, &q)) != CUSTOS_OK)
            die("insert", r);
        if ((i % 50000 == 49999 || i + 1 == rows) && (r = st->ops->commit(st->ctx)) != CUSTOS_OK)
            die("commit", r);
    }
    printf("seeded %zu requests in %.1f s (%.0f rows/s), %d systems x %zu components\n", rows,
           now_s() - t0, (double)rows / (now_s() - t0), N_SYSTEMS,
           sizeof(COMPONENTS) / sizeof(COMPONENTS[0]));
    custos_store_free(st);
}

/* ---- the client ------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    char *g = realloc(b->p, b->n + n + 1);
    if (g == NULL)
        return 0;
    memcpy(g + b->n, data, n);
    b->p = g;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

typedef struct client {
    CURL *c;
    char base[64];
    struct curl_slist *hdrs;
    buf body;
} client;

/* One call; the body stays in cl->body; returns the wall time in ms. */
static double call(client *cl, const char *method, const char *path, const char *json, long want)
{
    char url[1024];
    long code = 0;
    double t0;

    snprintf(url, sizeof(url), "%s%s", cl->base, path);
    free(cl->body.p);
    cl->body.p = NULL;
    cl->body.n = 0;
    curl_easy_setopt(cl->c, CURLOPT_URL, url);
    curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cl->c, CURLOPT_HTTPHEADER, cl->hdrs);
    if (json != NULL)
        curl_easy_setopt(cl->c, CURLOPT_POSTFIELDS, json);
    else
        curl_easy_setopt(cl->c, CURLOPT_HTTPGET, 1L);
    t0 = now_s();
    CURLcode cc = curl_easy_perform(cl->c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "bench_console: %s %s: %s\n", method, path, curl_easy_strerror(cc));
        exit(1);
    }
    curl_easy_getinfo(cl->c, CURLINFO_RESPONSE_CODE, &code);
    if (code != want) {
        /* Never the body of a sign-in: it would carry the session's secret. */
        fprintf(stderr, "%s %s: %ld %s\n", method, path, code,
                json == NULL && cl->body.p != NULL ? cl->body.p : "");
        exit(1);
    }
    return (now_s() - t0) * 1000.0;
}

typedef struct query {
    const char *name;
    int stress; /* reported, not held to the target */
    char paths[8][512];
    size_t n_paths;
} query;

static double percentile(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Runs @p q @p n times (after warm-ups); prints the figures; returns p95. */
static double measure(client *cl, const query *q, size_t n, double floor_ms, long *rows_seen)
{
    double *t = calloc(n, sizeof(*t)), p95;
    long items = 0;

    if (t == NULL)
        fail("out of memory");
    for (size_t i = 0; i < WARMUP; i++)
        call(cl, "GET", q->paths[i % q->n_paths], NULL, 200);
    for (size_t i = 0; i < n; i++) {
        t[i] = call(cl, "GET", q->paths[i % q->n_paths], NULL, 200);
        json_t *j = json_loads(cl->body.p, 0, NULL);
        items += (long)json_array_size(json_object_get(j, "items"));
        if (rows_seen != NULL && *rows_seen == 0)
            *rows_seen = (long)json_integer_value(
                json_object_get(json_object_get(j, "counts"), "total"));
        json_decref(j);
    }
    qsort(t, n, sizeof(*t), cmp_double);
    p95 = percentile(t, n, 0.95);
    printf("  %-34s p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms  %5.1f rows/answer  "
           "p95/target %.2f  p95/floor %.1f  %s\n",
           q->name, percentile(t, n, 0.5), p95, t[n - 1], (double)items / (double)n,
           p95 / TARGET_MS, p95 / floor_ms,
           q->stress ? "(worst case: reported, not held to the target)"
                     : (p95 < TARGET_MS ? "ok" : "OVER"));
    free(t);
    return p95;
}

int main(int argc, char **argv)
{
    const char *custosd = NULL, *keep = NULL, *reuse = NULL;
    size_t rows = 1000000, n = 100;
    char root[512], dir[600], password[128], cred[640], hdr[700];
    client cl;
    server srv;
    double worst = 0, floor_ms;
    long total = 0;
    query qs[10];
    size_t nq = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--custosd") == 0)
            custosd = argv[i + 1];
        else if (strcmp(argv[i], "--rows") == 0)
            rows = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--requests") == 0)
            n = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = argv[i + 1];
        else if (strcmp(argv[i], "--reuse") == 0)
            reuse = keep = argv[i + 1];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (custosd == NULL || rows < 1000 || n < 10) {
        fprintf(stderr, "usage: bench_console --custosd PATH [--rows N>=1000] [--requests N>=10] "
                        "[--keep DIR]\n");
        return 2;
    }
    if (keep != NULL) {
        snprintf(root, sizeof(root), "%s", keep);
        if (reuse == NULL && mkdir(root, 0700) != 0)
            fail("--keep DIR must not exist");
    } else {
        snprintf(root, sizeof(root), "%s/custos-bench-console.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(root) == NULL)
            fail("mkdtemp");
    }
    snprintf(dir, sizeof(dir), "%s/data", root);
    snprintf(cred, sizeof(cred), "%s/admin-password", root);
    if (reuse != NULL) {
        FILE *f = fopen(cred, "r");
        if (f == NULL || fgets(password, sizeof(password), f) == NULL)
            fail("--reuse DIR: no admin-password (make it with --keep)");
        fclose(f);
        password[strcspn(password, "\n")] = '\0';
        printf("== bench_console: the Devices page's API calls (store in %s, on disk)\n", dir);
    } else {
        printf("== bench_console: the Devices page's API calls on %zu devices (store on disk)\n",
               rows);
        seed(dir, rows, password, sizeof(password));
        if (keep != NULL) { /* for --reuse: the kept directory is the bench's own */
            int fd = open(cred, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd < 0 || write(fd, password, strlen(password)) < 0 || close(fd) != 0)
                fail("cannot keep the admin password");
        }
    }

    server_start(&srv, custosd, dir, root, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&cl, 0, sizeof(cl));
    cl.c = curl_easy_init();
    snprintf(cl.base, sizeof(cl.base), "https://127.0.0.1:%d", srv.port);
    snprintf(hdr, sizeof(hdr), "%s/root.pem", dir);
    curl_easy_setopt(cl.c, CURLOPT_CAINFO, hdr);
    curl_easy_setopt(cl.c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cl.c, CURLOPT_WRITEDATA, &cl.body);
    cl.hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(cred, sizeof(cred), "{\"username\":\"admin\",\"password\":\"%s\",\"kind\":\"bearer\"}",
             password);
    call(&cl, "POST", "/api/v1/session", cred, 200);
    OPENSSL_cleanse(cred, sizeof(cred));
    {
        json_t *j = json_loads(cl.body.p, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (tok == NULL)
            fail("sign-in gave no token");
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
        json_decref(j);
    }
    curl_slist_free_all(cl.hdrs);
    cl.hdrs = curl_slist_append(NULL, hdr);
    OPENSSL_cleanse(hdr, sizeof(hdr));

    /* The floor: the same connection and authentication, no query. */
    {
        query fl = {"floor: GET /api/v1/session", 0, {"/api/v1/session"}, 1};
        double *t = calloc(n, sizeof(*t));
        for (size_t i = 0; i < WARMUP + n; i++) {
            double ms = call(&cl, "GET", fl.paths[0], NULL, 200);
            if (i >= WARMUP)
                t[i - WARMUP] = ms;
        }
        qsort(t, n, sizeof(*t), cmp_double);
        floor_ms = percentile(t, n, 0.95);
        printf("  %-34s p50 %6.1f ms  p95 %6.1f ms  (TLS kept alive, bearer session)\n", fl.name,
               percentile(t, n, 0.5), floor_ms);
        free(t);
    }

    memset(qs, 0, sizeof(qs));
    qs[nq].name = "first page";
    snprintf(qs[nq].paths[0], 512, "/api/v1/requests?limit=50");
    qs[nq++].n_paths = 1;
    /* the next page: the first page's cursor */
    call(&cl, "GET", "/api/v1/requests?limit=50", NULL, 200);
    {
        json_t *j = json_loads(cl.body.p, 0, NULL);
        const char *cur = json_string_value(json_object_get(j, "next_cursor"));
        qs[nq].name = "next page (cursor)";
        snprintf(qs[nq].paths[0], 512, "/api/v1/requests?limit=50&cursor=%s", cur ? cur : "");
        qs[nq++].n_paths = 1;
        json_decref(j);
    }
    qs[nq].name = "filtered: state + system";
    for (int i = 0; i < 4; i++)
        snprintf(qs[nq].paths[i], 512, "/api/v1/requests?limit=50&state=%s&system=sys-%d",
                 i % 2 ? "pending" : "rejected", i);
    qs[nq++].n_paths = 4;
    qs[nq].name = "filtered: system + component + state";
    for (int i = 0; i < 4; i++)
        snprintf(qs[nq].paths[i], 512,
                 "/api/v1/requests?limit=50&system=sys-%d&component=%s&state=certified", i,
                 COMPONENTS[i % 3]);
    qs[nq++].n_paths = 4;
    qs[nq].name = "serial search (one device)";
    for (int i = 0; i < 8; i++)
        snprintf(qs[nq].paths[i], 512, "/api/v1/requests?limit=50&q=SN-%07zu",
                 (rows / 8) * (size_t)i + 17);
    qs[nq++].n_paths = 8;
    qs[nq].name = "serial prefix, 1% of rows";
    for (int i = 0; i < 4; i++)
        snprintf(qs[nq].paths[i], 512, "/api/v1/requests?limit=50&q=SN-%03zu",
                 (rows / 10000) * (size_t)i / 4 % 1000);
    qs[nq++].n_paths = 4;
    qs[nq].name = "serial prefix, 10%, newest rows";
    snprintf(qs[nq].paths[0], 512, "/api/v1/requests?limit=50&q=SN-%02zu", (rows - 1) / 100000);
    qs[nq++].n_paths = 1;
    qs[nq].name = "serial prefix, 10%, oldest rows";
    qs[nq].stress = 1;
    snprintf(qs[nq].paths[0], 512, "/api/v1/requests?limit=50&q=SN-00");
    qs[nq++].n_paths = 1;
    qs[nq].name = "hardware id search";
    for (int i = 0; i < 8; i++)
        snprintf(qs[nq].paths[i], 512, "/api/v1/requests?limit=50&q=HW-%08zx",
                 ((rows / 8) * (size_t)i + 5) * 2654435761u % 0xffffffffu);
    qs[nq++].n_paths = 8;

    for (size_t i = 0; i < nq; i++) {
        double p = measure(&cl, &qs[i], n, floor_ms, i == 0 ? &total : NULL);
        if (p > worst && !qs[i].stress)
            worst = p;
    }
    printf("bench_console: %ld devices in the store (counts.total), %zu requests per query: "
           "worst p95 %.1f ms against the %.0f ms target (%.2f): %s\n",
           total, n, worst, TARGET_MS, worst / TARGET_MS, worst < TARGET_MS ? "met" : "NOT met");

    curl_slist_free_all(cl.hdrs);
    free(cl.body.p);
    curl_easy_cleanup(cl.c);
    curl_global_cleanup();
    server_stop(&srv);
    if (keep == NULL) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_console: could not remove %s\n", root);
    }
    OPENSSL_cleanse(password, sizeof(password));
    return worst < TARGET_MS ? 0 : 1;
}
