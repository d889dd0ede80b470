/* custos-device provision (and rotate --server): connected mode. The
 * protocol is libcustos's (custos_connect_step); this file decides when to
 * call it again: the server's Retry-After, a jittered exponential backoff
 * after network errors, 429 and 5xx, and the --timeout deadline. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_S 600L
#define MAX_TIMEOUT_S (7L * 86400L)
#define DEFAULT_POLL_S 5L
#define MIN_POLL_S 1L
#define BACKOFF_CAP_S 30L

static long monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

static void sleep_s(long s)
{
    struct timespec ts = {s, 0};
    while (s > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* 1, 2, 4 ... capped, then a uniform draw from its upper half (jitter, so
 * that devices cut off together do not come back together). */
static long backoff_s(unsigned failures)
{
    long cap = 1L << (failures < 6 ? failures : 5);
    unsigned char r = 0;
    if (cap > BACKOFF_CAP_S)
        cap = BACKOFF_CAP_S;
    if (RAND_bytes(&r, 1) != 1)
        r = 0;
    return cap / 2 + (long)r % (cap - cap / 2 + 1);
}

/* --server, checked before anything is generated or shredded. */
int cli_check_server(const cli_args *a, const cli_command *c)
{
    const char *v = cli_get(a, "server");
    if (v != NULL && (strncmp(v, "https://", 8) != 0 || v[8] == '\0'))
        return cli_usage_error(c,
                               "--server wants an https:// URL (there is no plain-http or "
                               "insecure mode), got '%s'",
                               v);
    return 0;
}

static int parse_timeout(long *out, const cli_args *a, const cli_command *c)
{
    const char *v = cli_get(a, "timeout");
    char *end = NULL;
    long t;
    *out = DEFAULT_TIMEOUT_S;
    if (v == NULL)
        return 0;
    errno = 0;
    t = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || t < 1 || t > MAX_TIMEOUT_S)
        return cli_usage_error(c, "--timeout wants seconds, 1 to %ld", MAX_TIMEOUT_S);
    *out = t;
    return 0;
}

/* A refusal: the server's own code when it gave one ("rejected: <reason>"). */
static int connect_fail(custos_err r, const custos_connect_status *st)
{
    const custos_error *e = custos_error_last();
    if (st->server_code[0] != '\0' && e->code == r) {
        fprintf(stderr, "custos-device: error: %s: %s", st->server_code, e->message);
        if (e->field[0] != '\0')
            fprintf(stderr, " [field: %s]", e->field);
        fputc('\n', stderr);
        return EXIT_REFUSED;
    }
    return cli_fail(r);
}

static void report(const custos_connect_status *st, custos_connect_status *last)
{
    switch (st->phase) {
    case CUSTOS_CONNECT_SUBMITTED:
        if (strcmp(st->state, "certified") == 0 || strcmp(st->state, "provisioned") == 0)
            fprintf(stderr, "submitted request %s: %s (approved by policy)\n", st->request_id,
                    st->state);
        else
            fprintf(stderr, "submitted request %s, waiting for approval (%s)\n", st->request_id,
                    st->state[0] != '\0' ? st->state : "pending");
        break;
    case CUSTOS_CONNECT_WAITING:
        if (last->phase != CUSTOS_CONNECT_SUBMITTED && last->phase != CUSTOS_CONNECT_WAITING)
            fprintf(stderr, "request %s: waiting for approval (%s)\n", st->request_id, st->state);
        else if (strcmp(st->state, last->state) != 0)
            fprintf(stderr, "request %s is %s\n", st->request_id, st->state);
        break;
    case CUSTOS_CONNECT_INSTALLED:
        if (st->http_status != 202)
            fprintf(stderr, "installed profile for device %s (request %s)\n", st->device_id,
                    st->request_id);
        else if (last->phase != CUSTOS_CONNECT_INSTALLED || last->http_status != 202)
            fprintf(stderr,
                    "receipt for request %s queued (a gateway): waiting until the cloud "
                    "confirms it\n",
                    st->request_id);
        break;
    case CUSTOS_CONNECT_PROVISIONED:
        fprintf(stderr, "provisioned: the server confirmed device %s (request %s)\n", st->device_id,
                st->request_id);
        break;
    case CUSTOS_CONNECT_NONE:
        break;
    }
    *last = *st;
}

/* How long to wait after a successful step: what the server asked for, a
 * default when it did not say, and never a busy loop while it only waits. */
static long next_wait(const custos_connect_status *st, unsigned *zero_waits)
{
    long wait = st->retry_after >= 0 ? st->retry_after : DEFAULT_POLL_S;
    int waiting = (st->phase == CUSTOS_CONNECT_SUBMITTED || st->phase == CUSTOS_CONNECT_WAITING) &&
                  strcmp(st->state, "certified") != 0 && strcmp(st->state, "provisioned") != 0;
    if (wait == 0 && (waiting || ++*zero_waits > 3))
        wait = MIN_POLL_S;
    if (wait > 0)
        *zero_waits = 0;
    return wait;
}

int cli_connect_run(cli_device *d, const cli_args *a)
{
    const char *server = cli_get(a, "server");
    long timeout = DEFAULT_TIMEOUT_S, deadline, remaining, wait;
    custos_connect_status st, last;
    unsigned failures = 0, zero_waits = 0;
    char last_error[600] = "";
    custos_err r;
    int rc = parse_timeout(&timeout, a, NULL);
    if (rc != 0)
        return rc;
    memset(&last, 0, sizeof(last));
    deadline = monotonic_s() + timeout;
    for (;;) {
        remaining = deadline - monotonic_s();
        if (remaining <= 0)
            break;
        d->exchange_timeout_s = remaining;
        r = custos_connect_step(&st, &d->td.port, server);
        if (r == 0) {
            failures = 0;
            last_error[0] = '\0';
            report(&st, &last);
            if (st.phase == CUSTOS_CONNECT_PROVISIONED)
                return 0;
            wait = next_wait(&st, &zero_waits);
        } else {
            if (!st.retryable)
                return connect_fail(r, &st);
            wait = backoff_s(++failures);
            if (st.retry_after > wait)
                wait = st.retry_after;
            snprintf(last_error, sizeof(last_error), "%s: %s",
                     st.server_code[0] != '\0' ? st.server_code : custos_err_code(r),
                     custos_error_last()->message);
            fprintf(stderr, "custos-device: %s; trying again in %ld s\n", last_error, wait);
        }
        remaining = deadline - monotonic_s();
        sleep_s(wait < remaining ? wait : remaining);
    }
    fprintf(stderr,
            "custos-device: error: timeout: not provisioned after %ld s (%s%s%s); run the same "
            "command again to resume\n",
            timeout, last_error[0] != '\0' ? "last error: " : "request ",
            last_error[0] != '\0' ? last_error : last.request_id,
            last_error[0] != '\0' ? "" : (last.state[0] != '\0' ? " not yet certified" : ""));
    return EXIT_REFUSED;
}

/* ---- provision ------------------------------------------------------------ */

/* The local state: "empty", "pending", "provisioned" or "rotating", and the
 * identity's serial and component. */
static custos_err local_state(char state[16], char serial[CUSTOS_MAX_SERIAL_LEN + 1],
                              char component[CUSTOS_MAX_NAME_LEN + 1], const cli_device *d)
{
    char *json = NULL;
    json_t *j = NULL;
    custos_err r = custos_device_status(&json, &d->td.port);
    state[0] = serial[0] = component[0] = '\0';
    if (r < 0)
        return r;
    j = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL) {
        const char *s = json_string_value(json_object_get(j, "state"));
        const char *sn = json_string_value(json_object_get(j, "serial"));
        const char *comp = json_string_value(json_object_get(j, "component"));
        snprintf(state, 16, "%s", s != NULL ? s : "");
        snprintf(serial, CUSTOS_MAX_SERIAL_LEN + 1, "%s", sn != NULL ? sn : "");
        snprintf(component, CUSTOS_MAX_NAME_LEN + 1, "%s", comp != NULL ? comp : "");
    }
    json_decref(j);
    free(json);
    return state[0] != '\0' ? CUSTOS_OK
                            : cli_error(CUSTOS_ERR_INTERNAL, NULL, "cannot read the device status");
}

/* The package_id of the pending request in the device's storage. */
static custos_err pending_package_id(char out[CUSTOS_ID_LEN + 1], const cli_device *d)
{
    uint8_t *buf = malloc(CUSTOS_MAX_REQUEST_SIZE);
    size_t len = 0;
    char *json = NULL;
    json_t *j = NULL;
    const char *id = NULL;
    custos_err r;
    out[0] = '\0';
    if (buf == NULL)
        return cli_error(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    r = d->td.port.storage_read(buf, CUSTOS_MAX_REQUEST_SIZE, &len, CUSTOS_OBJ_REQUEST,
                                d->td.port.ctx);
    if (r == 0)
        r = custos_inspect(&json, buf, len);
    if (r == 0 && (j = json_loads(json, 0, NULL)) != NULL)
        id = json_string_value(json_object_get(json_object_get(j, "content"), "package_id"));
    if (id != NULL)
        snprintf(out, CUSTOS_ID_LEN + 1, "%s", id);
    json_decref(j);
    free(json);
    free(buf);
    return r;
}

/* A pending request is reused only for the same serial (and package, when
 * its file is still there: it is shredded after the first run). */
static int check_pending(const cli_args *a, const cli_device *d)
{
    const char *pkg_path = cli_get(a, "package");
    uint8_t *data = NULL;
    size_t len = 0;
    char pass[CLI_PASSPHRASE_MAX + 1];
    size_t pass_len = 0;
    char want[CUSTOS_ID_LEN + 1];
    custos_package *pkg = NULL;
    custos_package_options po = CUSTOS_PACKAGE_OPTIONS_INIT;
    custos_err r;
    FILE *f = fopen(pkg_path, "rb");
    if (f == NULL)
        return 0; /* shredded by the run that made the request */
    fclose(f);
    r = cli_read_file(&data, &len, pkg_path, CUSTOS_MAX_PACKAGE_SIZE, "package");
    if (r == 0)
        r = cli_read_passphrase(pass, &pass_len, cli_get(a, "passphrase-file"));
    if (r == 0)
        r = custos_package_open(&pkg, data, len, pass, pass_len, &po);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (r == 0)
        r = pending_package_id(want, d);
    if (r == 0 && strcmp(want, custos_package_id(pkg)) != 0)
        r = cli_error(CUSTOS_ERR_STATE, "package",
                      "%s holds a pending request made with another package (%s, not %s): "
                      "finish it or use another --device-dir",
                      cli_get(a, "device-dir"), want, custos_package_id(pkg));
    custos_package_free(pkg);
    free(data);
    if (r == 0 && !cli_flag(a, "keep-package")) {
        r = custos_port_posix_shred(pkg_path);
        if (r == 0)
            fprintf(stderr, "package %s shredded (the pending request was made with it)\n",
                    pkg_path);
    }
    return r;
}

int cmd_provision(const cli_args *a)
{
    const cli_command *c = cli_find("provision");
    cli_device dev;
    char state[16], serial[CUSTOS_MAX_SERIAL_LEN + 1], component[CUSTOS_MAX_NAME_LEN + 1];
    long timeout = 0;
    custos_err r;
    int rc = parse_timeout(&timeout, a, c);
    if (rc == 0)
        rc = cli_check_server(a, c);
    if (rc != 0)
        return rc;
    r = cli_device_open(&dev, a, 1);
    if (r < 0)
        return cli_fail(r);
    r = local_state(state, serial, component, &dev);
    if (r == 0 && strcmp(state, "empty") != 0 &&
        (strcmp(serial, cli_get(a, "serial")) != 0 ||
         strcmp(component, cli_get(a, "component")) != 0))
        r = cli_error(CUSTOS_ERR_STATE, "device-dir",
                      "%s already holds the identity of %s (component %s), not %s (%s): use "
                      "another --device-dir",
                      cli_get(a, "device-dir"), serial, component, cli_get(a, "serial"),
                      cli_get(a, "component"));
    if (r < 0) {
        cli_device_close(&dev);
        return cli_fail(r);
    }
    if (strcmp(state, "empty") == 0) {
        cli_device_close(&dev);
        rc = cli_request_identity(a, c);
        if (rc != 0)
            return rc < 0 ? cli_fail(rc) : rc;
        r = cli_device_open(&dev, a, 0);
        if (r < 0)
            return cli_fail(r);
    } else if (strcmp(state, "pending") == 0) {
        fprintf(stderr, "resuming: %s already holds a pending request for %s\n",
                cli_get(a, "device-dir"), serial);
        r = check_pending(a, &dev);
    } else if (strcmp(state, "provisioned") == 0) {
        fprintf(stderr, "%s is already provisioned; asking the server to confirm\n",
                cli_get(a, "device-dir"));
    } else {
        fprintf(stderr, "resuming the pending reprovisioning request in %s\n",
                cli_get(a, "device-dir"));
    }
    if (r == 0)
        r = cli_device_connect(&dev);
    if (r < 0) {
        cli_device_close(&dev);
        return cli_fail(r);
    }
    rc = cli_connect_run(&dev, a);
    cli_device_close(&dev);
    return rc;
}
