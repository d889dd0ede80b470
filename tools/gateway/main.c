/* custos-gateway: proxy provisioning on a hub (docs/gateway.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "http/log.h"
#include "tool_args.h"

#define MAX_OPTS 32

static const char RUN_OPTS[] = "device-dir= secret-file= upstream= listen= queue= workers= "
                               "device-rate= device-burst= quiet";
static const char RUN_REQUIRED[] = "device-dir upstream listen queue";
static const char RUN_SYNOPSIS[] =
    "custos-gateway [run] --device-dir DIR --upstream URL --listen ADDR:PORT --queue DIR\n"
    "         [--secret-file PATH] [--workers N] [--device-rate R] [--device-burst B] [--quiet]";
static const char RUN_HELP[] =
    "Serve the device protocol (POST /device/v1/requests, GET /device/v1/requests/{id},\n"
    "POST /device/v1/requests/{id}/receipt; docs/api.md) to the devices behind this hub over\n"
    "HTTPS on ADDR:PORT, store what they hand over in DIR (--queue, SQLite, on disk before a\n"
    "device is answered), and forward it to custosd at URL in batches over mutual TLS.\n"
    "  --device-dir DIR   the hub's own device files: a component with \"gateway\": true,\n"
    "                     provisioned first with 'custos-device provision'; the gateway does\n"
    "                     not start without them. Its tls-server certificate is the one devices\n"
    "                     see; its tls-client key is its identity toward custosd.\n"
    "  --secret-file PATH the hub's device secret (as for custos-device)\n"
    "  --upstream URL     custosd, https://HOST:PORT (verified against the Root of Trust)\n"
    "  --listen ADDR:PORT where devices connect (a host of the system's services.gateways)\n"
    "  --queue DIR        the store-and-forward queue (created 0700)\n"
    "  --workers N        threads serving devices (default 4)\n"
    "  --device-rate R    device requests per second per client address (default 20)\n"
    "  --device-burst B   burst of the per-address bucket (default 100)\n"
    "  --quiet            no access log lines\n"
    "Logs are JSON lines on stderr. SIGTERM or SIGINT: stop accepting, finish the requests in\n"
    "flight and the call upstream, exit 0; what is queued is sent after the next start.";
static const char STATUS_SYNOPSIS[] = "custos-gateway status --queue DIR [--json] [--limit N]";
static const char STATUS_HELP[] =
    "Print the queue depth (requests not yet accepted by the cloud, receipts not yet\n"
    "confirmed), the last contact with the cloud (time and result; since when it is down)\n"
    "and the devices waiting (oldest first, at most N, default 50). --json prints one JSON\n"
    "document for scripts. Works while the gateway runs.";

static int usage_error(const char *synopsis, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *synopsis, const char *fmt, ...)
{
    va_list ap;
    fputs("custos-gateway: usage error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (synopsis != NULL)
        fprintf(stderr, "usage: %s\n", synopsis);
    fputs("Run 'custos-gateway --help' for more.\n", stderr);
    return GW_EXIT_USAGE;
}

static int fail(custos_err err)
{
    const custos_error *e = custos_error_last();
    int match = e->code == err && e->message[0] != '\0';
    fprintf(stderr, "custos-gateway: error: %s: %s", custos_err_code(err),
            match ? e->message : custos_strerror(err));
    if (match && e->field[0] != '\0')
        fprintf(stderr, " [field: %s]", e->field);
    fputc('\n', stderr);
    return GW_EXIT_REFUSED;
}

static void print_help(void)
{
    printf("custos-gateway %s - proxy provisioning on a hub: the devices behind it provision\n"
           "through it, store-and-forward, while its uplink to custosd comes and goes.\n\n"
           "usage:\n  %s\n  %s\n  custos-gateway help [run|status]\n\n%s\n\n%s\n\n"
           "exit status: 0 success, 1 refused or failed (error on stderr as\n"
           "  'custos-gateway: error: CODE: MESSAGE [field: FIELD]'), 2 usage error.\n",
           CUSTOS_VERSION_STRING, RUN_SYNOPSIS, STATUS_SYNOPSIS, RUN_HELP, STATUS_HELP);
#ifdef CUSTOS_TEST_HOOKS
    fputs("\ntest hooks (this is a test build): CUSTOS_TEST_GATEWAY_TAMPER=1 changes one byte\n"
          "  of every request it forwards (the cloud must refuse them).\n",
          stdout);
#endif
}

static int parse_num(double *out, const char *v, double lo, double hi, const char *name,
                     const char *synopsis)
{
    char *end = NULL;
    double d;
    if (v == NULL)
        return 0;
    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || d < lo || d > hi)
        return usage_error(synopsis, "--%s must be a number from %g to %g", name, lo, hi);
    *out = d;
    return 0;
}

/* ---- run ------------------------------------------------------------------------ */

void gw_wake(gw_app *app)
{
    pthread_mutex_lock(&app->mu);
    app->wake = 1;
    pthread_cond_signal(&app->cv);
    pthread_mutex_unlock(&app->mu);
}

void gw_pass_done(gw_app *app)
{
    pthread_mutex_lock(&app->mu);
    app->passes++;
    pthread_cond_broadcast(&app->done_cv);
    pthread_mutex_unlock(&app->mu);
}

double gw_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gw_timespec(struct timespec *out, double t)
{
    out->tv_sec = (time_t)t;
    out->tv_nsec = (long)((t - (double)out->tv_sec) * 1e9);
    if (out->tv_nsec >= 1000000000L || out->tv_nsec < 0)
        out->tv_nsec = 0;
}

int gw_wait_pass(gw_app *app, double deadline)
{
    struct timespec ts;
    unsigned long start;
    int done;

    if (deadline <= gw_mono_now())
        return 0;
    gw_timespec(&ts, deadline);
    pthread_mutex_lock(&app->mu);
    start = app->passes;
    while (app->passes == start && !app->stop)
        if (pthread_cond_timedwait(&app->done_cv, &app->mu, &ts) != 0)
            break;
    done = app->passes != start;
    pthread_mutex_unlock(&app->mu);
    return done;
}

void gw_log(const char *level, const char *event, json_t *fields)
{
    custos_log(level, event, fields);
    json_decref(fields);
}

static int app_init(gw_app *app)
{
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    ok = ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    ok = ok && pthread_cond_init(&app->cv, &ca) == 0;
    ok = ok && pthread_cond_init(&app->done_cv, &ca) == 0;
    ok = ok && pthread_mutex_init(&app->mu, NULL) == 0;
    pthread_condattr_destroy(&ca);
    return ok;
}

/* The server, the forwarder, until SIGTERM or SIGINT. */
static custos_err serve(gw_app *app)
{
    custos_http_config hc;
    custos_http_server *srv = NULL;
    gw_forwarder *fwd = NULL;
    gwq *q = NULL;
    custos_err r;

    memset(&hc, 0, sizeof(hc));
    hc.listen = app->cfg.listen;
    hc.ssl_ctx = app->id->server_ctx;
    hc.workers = app->cfg.workers;
    hc.limits.max_body_bytes = CUSTOS_MAX_REQUEST_SIZE; /* the largest thing a device sends */
    hc.worker_init = gw_worker_init;
    hc.worker_free = gw_worker_free;
    hc.handle = gw_handle;
    hc.app = app;
    hc.quiet = app->cfg.quiet;
    r = gwq_open(&q, app->cfg.queue_dir); /* created (schema) before the workers open it */
    gwq_close(q);
    if (r == CUSTOS_OK)
        r = custos_ratelimit_new(&app->rl_addr, app->cfg.device_rate, app->cfg.device_burst,
                                 100000);
    if (r == CUSTOS_OK)
        r = custos_ratelimit_new(&app->rl_device, app->cfg.device_rate / 4.0 + 0.5,
                                 app->cfg.device_burst / 4.0 + 4.0, 100000);
    if (r == CUSTOS_OK)
        r = custos_http_server_new(&srv, &hc);
    if (r == CUSTOS_OK)
        r = gw_forwarder_start(&fwd, app);
    if (r == CUSTOS_OK) {
        gw_log("info", "listening",
               json_pack("{s:s, s:i, s:s, s:s, s:s, s:s}", "listen", app->cfg.listen, "port",
                         custos_http_server_port(srv), "system", custos_device_system(app->id->dev),
                         "gateway", custos_device_id(app->id->dev), "serial",
                         custos_device_serial(app->id->dev), "upstream", app->cfg.upstream));
        r = custos_http_server_run(srv, 1);
    }
    gw_forwarder_stop(fwd);
    custos_http_server_free(srv);
    if (r == CUSTOS_OK)
        gw_log("info", "stopped", NULL);
    return r;
}

static int cmd_run(int argc, char **argv)
{
    tool_opt opts[MAX_OPTS];
    size_t n = 0;
    int help = 0, rc;
    char why[TOOL_WHY_MAX], upstream[CUSTOS_MAX_URL_LEN + 1];
    double workers = 4;
    gw_identity id;
    gw_app app;
    custos_err r;
    const char *up;
    size_t len;

    memset(&app, 0, sizeof(app));
    app.cfg.device_rate = 20;
    app.cfg.device_burst = 100;
    if (tool_args_parse(opts, &n, MAX_OPTS, &help, RUN_OPTS, RUN_REQUIRED, argc, argv, why) != 0)
        return usage_error(RUN_SYNOPSIS, "%s", why);
    if (help) {
        printf("usage: %s\n\n%s\n", RUN_SYNOPSIS, RUN_HELP);
        return 0;
    }
    up = tool_opt_get(opts, n, "upstream");
    len = strlen(up);
    while (len > 8 && up[len - 1] == '/')
        len--;
    if (strncmp(up, "https://", 8) != 0 || len <= 8 || len > CUSTOS_MAX_URL_LEN ||
        strpbrk(up, " ?#\r\n") != NULL)
        return usage_error(RUN_SYNOPSIS,
                           "--upstream wants the https:// URL of custosd (no path, query or "
                           "spaces; there is no plain-http mode), got '%s'",
                           up);
    memcpy(upstream, up, len);
    upstream[len] = '\0';
    if ((rc = parse_num(&workers, tool_opt_get(opts, n, "workers"), 1, 64, "workers",
                        RUN_SYNOPSIS)) != 0 ||
        (rc = parse_num(&app.cfg.device_rate, tool_opt_get(opts, n, "device-rate"), 0.01, 1e6,
                        "device-rate", RUN_SYNOPSIS)) != 0 ||
        (rc = parse_num(&app.cfg.device_burst, tool_opt_get(opts, n, "device-burst"), 1, 1e7,
                        "device-burst", RUN_SYNOPSIS)) != 0)
        return rc;
    app.cfg.upstream = upstream;
    app.cfg.listen = tool_opt_get(opts, n, "listen");
    app.cfg.queue_dir = tool_opt_get(opts, n, "queue");
    app.cfg.workers = (unsigned)workers;
    app.cfg.quiet = tool_opt_has(opts, n, "quiet");
    if (!app_init(&app))
        return fail(custos_error_report(CUSTOS_ERR_INTERNAL, NULL, "cannot set up threads"));
    r = gw_identity_open(&id, tool_opt_get(opts, n, "device-dir"),
                         tool_opt_get(opts, n, "secret-file"));
    if (r < 0)
        return fail(r);
    app.id = &id;
    r = serve(&app);
    custos_ratelimit_free(app.rl_addr);
    custos_ratelimit_free(app.rl_device);
    gw_identity_close(&id);
    pthread_cond_destroy(&app.cv);
    pthread_cond_destroy(&app.done_cv);
    pthread_mutex_destroy(&app.mu);
    return r < 0 ? fail(r) : 0;
}

/* ---- status ------------------------------------------------------------------------ */

static int cmd_status(int argc, char **argv)
{
    tool_opt opts[MAX_OPTS];
    size_t n = 0;
    int help = 0, rc;
    char why[TOOL_WHY_MAX];
    double limit = 50;

    if (tool_args_parse(opts, &n, MAX_OPTS, &help, "queue= json limit=", "queue", argc, argv,
                        why) != 0)
        return usage_error(STATUS_SYNOPSIS, "%s", why);
    if (help) {
        printf("usage: %s\n\n%s\n", STATUS_SYNOPSIS, STATUS_HELP);
        return 0;
    }
    if ((rc = parse_num(&limit, tool_opt_get(opts, n, "limit"), 1, 100000, "limit",
                        STATUS_SYNOPSIS)) != 0)
        return rc;
    return gw_cmd_status(tool_opt_get(opts, n, "queue"), tool_opt_has(opts, n, "json"),
                         (size_t)limit);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (cmd == NULL)
        return usage_error(RUN_SYNOPSIS, "no options given");
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        (strcmp(cmd, "help") == 0 && argc < 3)) {
        print_help();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("custos-gateway %s\n", CUSTOS_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (strcmp(argv[2], "run") == 0)
            printf("usage: %s\n\n%s\n", RUN_SYNOPSIS, RUN_HELP);
        else if (strcmp(argv[2], "status") == 0)
            printf("usage: %s\n\n%s\n", STATUS_SYNOPSIS, STATUS_HELP);
        else
            return usage_error(NULL, "no such command '%s'", argv[2]);
        return 0;
    }
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strncmp(cmd, "--", 2) == 0)
        return cmd_run(argc - 1, argv + 1);
    return usage_error(NULL, "unknown command '%s'", cmd);
}
