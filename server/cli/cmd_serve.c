/* custosd serve: the HTTPS service (docs/api.md). Options are parsed here
 * rather than by the generic table in args.c: serve has its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "cli.h"
#include "serve.h"
#include "http/http.h"
#include "http/log.h"

const char cli_serve_synopsis[] =
    "custosd serve --data DIR --listen ADDR:PORT [--workers N] [--device-rate R]\n"
    "              [--device-burst B] [--poll-interval S] [--max-connections N] [--quiet]\n"
    "              [--web-dir DIR]";

const char cli_serve_help[] =
    "Serve the device protocol (/device/v1), the operator API (/api/v1) and the web\n"
    "console (https://ADDR:PORT/) over HTTPS (docs/api.md, docs/console.md). ADDR:PORT is e.g. 127.0.0.1:8443, [::1]:8443 or 0.0.0.0:8443; port 0\n"
    "picks a free port (the log line \"listening\" names it). TLS 1.2+ with the server\n"
    "certificate made by `custosd init`; client certificates are optional and verified\n"
    "against the Root of Trust.\n"
    "  --workers N          worker threads (default 16: a worker waits while the store\n"
    "                       commits its batch, so more workers make bigger batches)\n"
    "  --device-rate R      device requests per second per client address (default 20)\n"
    "  --device-burst B     burst of the per-address bucket (default 100)\n"
    "  --poll-interval S    retry_after told to devices whose request is pending (default 5)\n"
    "  --max-connections N  open connections at most (default 4096)\n"
    "  --quiet              no access log lines (errors and lifecycle still logged)\n"
    "  --web-dir DIR        serve the console from DIR instead of the copy compiled in\n"
    "                       (for people working on web/)\n"
    "Logs are JSON lines on stderr. SIGTERM or SIGINT: stop accepting, finish the requests\n"
    "in flight, close the store, exit 0.";

static int parse_double(double *out, const char *name, const char *v, double lo, double hi)
{
    char *end = NULL;
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || d < lo || d > hi) {
        fprintf(stderr, "custosd: usage error: --%s must be a number from %g to %g\n", name, lo,
                hi);
        return 0;
    }
    *out = d;
    return 1;
}

static int serve_usage(const char *what, const char *arg)
{
    fprintf(stderr, "custosd: usage error: %s '%s'\nusage: %s\n", what, arg, cli_serve_synopsis);
    return EXIT_USAGE;
}

int cli_cmd_serve(int argc, char **argv)
{
    custos_api_config acfg = CUSTOS_API_CONFIG_INIT;
    custos_http_config hcfg;
    custos_api *api = NULL;
    custos_http_server *srv = NULL;
    SSL_CTX *ctx = NULL;
    const char *data = NULL, *listen = NULL;
    double workers = 16, max_conn = 4096, poll = 5;
    int quiet = 0, rc = EXIT_REFUSED, i;
    custos_err err;
    json_t *f;

    for (i = 0; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            printf("usage: %s\n\n%s\n", cli_serve_synopsis, cli_serve_help);
            return 0;
        }
        if (strcmp(o, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (strncmp(o, "--", 2) != 0)
            return serve_usage("unexpected argument", o);
        if (v == NULL)
            return serve_usage("missing value of option", o);
        i++;
        if (strcmp(o, "--data") == 0)
            data = v;
        else if (strcmp(o, "--listen") == 0)
            listen = v;
        else if (strcmp(o, "--web-dir") == 0)
            acfg.web_dir = v;
        else if (strcmp(o, "--workers") == 0) {
            if (!parse_double(&workers, "workers", v, 1, 64))
                return EXIT_USAGE;
        } else if (strcmp(o, "--device-rate") == 0) {
            if (!parse_double(&acfg.device_rate, "device-rate", v, 0.01, 1e6))
                return EXIT_USAGE;
        } else if (strcmp(o, "--device-burst") == 0) {
            if (!parse_double(&acfg.device_burst, "device-burst", v, 1, 1e7))
                return EXIT_USAGE;
        } else if (strcmp(o, "--poll-interval") == 0) {
            if (!parse_double(&poll, "poll-interval", v, 1, 3600))
                return EXIT_USAGE;
        } else if (strcmp(o, "--max-connections") == 0) {
            if (!parse_double(&max_conn, "max-connections", v, 8, 1e6))
                return EXIT_USAGE;
        } else
            return serve_usage("unknown option", o);
    }
    if (data == NULL)
        return serve_usage("missing required option", "--data");
    if (listen == NULL)
        return serve_usage("missing required option", "--listen");
    acfg.data_dir = data;
    acfg.poll_interval = (unsigned)poll;

    err = custos_api_new(&api, &acfg);
    if (err == CUSTOS_OK)
        err = custos_api_ssl_ctx(&ctx, api);
    if (err != CUSTOS_OK) {
        rc = cli_fail(err);
        goto out;
    }
    memset(&hcfg, 0, sizeof(hcfg));
    hcfg.listen = listen;
    hcfg.ssl_ctx = ctx;
    hcfg.workers = (unsigned)workers;
    hcfg.limits.max_connections = (size_t)max_conn;
    hcfg.worker_init = custos_api_worker_new;
    hcfg.worker_free = custos_api_worker_free;
    hcfg.handle = custos_api_handle;
    hcfg.app = api;
    hcfg.quiet = quiet;
    err = custos_http_server_new(&srv, &hcfg);
    if (err != CUSTOS_OK) {
        rc = cli_fail(err);
        goto out;
    }
    f = json_pack("{s:s, s:i, s:i, s:s}", "listen", listen, "port", custos_http_server_port(srv),
                  "workers", (int)workers, "data", data);
    custos_log("info", "listening", f);
    json_decref(f);
    err = custos_http_server_run(srv, 1);
    if (err != CUSTOS_OK) {
        rc = cli_fail(err);
        goto out;
    }
    custos_log("info", "stopped", NULL);
    rc = 0;
out:
    custos_http_server_free(srv);
    SSL_CTX_free(ctx);
    custos_api_free(api);
    return rc;
}
