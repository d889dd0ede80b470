/* Connected mode: custos_connect_step() driven through a fake transport that
 * plays the device protocol (docs/api.md) on a real CA engine: happy path,
 * waiting with retry_after, rejected, expired, rate limits and network
 * errors, kill-resume at every stage, reprovisioning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos/connect.h"
#include "custos/custos.h"
#include "support/engine_fixture.h"

#define BASE "https://custos.example"
#define SERIAL "SN-C001"

/* The scripted server: the engine behind the device protocol. */
typedef struct fake {
    ef_fx *f;
    int fail_next;       /* answer this many exchanges with a network error */
    int rate_limit_next; /* answer this many with 429 + Retry-After */
    int approve_after;   /* approve when polled this many times (-1: never) */
    long retry_after;    /* what 202 answers carry */
    int refuse_receipts; /* answer receipts with a network error */
    int queue_receipts;  /* answer this many receipts 202 (a gateway's "queued") */
    const char *expect_base;
    int submits, polls, receipts, exchanges;
    uint8_t *last_receipt; /* copy of the last receipt posted */
    size_t last_receipt_len;
    uint8_t root_der[4096]; /* the trust the device must pass */
    size_t root_len;
} fake;

typedef struct st {
    ef_fx *f;
    fake srv;
    char device_dir[400];
    char secret[400];
    custos_port_posix *posix;
    custos_port port; /* the posix port with the fake transport */
} st;

static void set_json(custos_http_response *out, long status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);

    assert_non_null(text);
    out->status = status;
    out->body = (uint8_t *)text;
    out->body_len = strlen(text);
    snprintf(out->content_type, sizeof(out->content_type), "application/json");
    json_decref(j);
}

static long status_of(custos_err r)
{
    switch (r) {
    case CUSTOS_ERR_EXPIRED:
        return 410;
    case CUSTOS_ERR_NOT_FOUND:
        return 404;
    case CUSTOS_ERR_STATE:
        return 409;
    case CUSTOS_ERR_TOO_LARGE:
        return 413;
    case CUSTOS_ERR_MALFORMED:
        return 400;
    default:
        return 422;
    }
}

static void set_error(custos_http_response *out, long status, const char *code, const char *msg)
{
    set_json(out, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

static void set_engine_error(custos_http_response *out, custos_err r)
{
    set_error(out, status_of(r), custos_err_code(r), custos_error_last()->message);
}

static void answer_state(custos_http_response *out, const fake *s,
                         const custos_request_summary *sum, long status)
{
    set_json(out, status,
             json_pack("{s:s, s:s, s:s, s:I}", "request_id", sum->request_id, "device_id",
                       sum->device_id, "state", custos_state_name(sum->state), "retry_after",
                       (json_int_t)s->retry_after));
}

static void serve_submit(custos_http_response *out, fake *s, const custos_http_request *req)
{
    custos_request_summary sum;
    int created = 0;
    custos_err r;

    s->submits++;
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->content_type, CUSTOS_CT_REQUEST);
    r = custos_engine_request_submit(&sum, &created, s->f->e, req->body, req->body_len, "connected",
                                     &EF_ACTOR);
    if (r < 0) {
        set_engine_error(out, r);
        return;
    }
    answer_state(out, s, &sum, 202);
}

static void serve_profile(custos_http_response *out, fake *s, const char *id)
{
    uint8_t *prof = NULL;
    size_t len = 0;

    OK(custos_engine_profile_export(&prof, &len, s->f->e, id));
    out->status = 200;
    out->body = prof;
    out->body_len = len;
    snprintf(out->content_type, sizeof(out->content_type), CUSTOS_CT_PROFILE);
}

static void serve_poll(custos_http_response *out, fake *s, const char *id)
{
    custos_request_summary sum;
    custos_err r;

    s->polls++;
    r = custos_engine_request_get(&sum, s->f->e, id);
    if (r < 0) {
        set_engine_error(out, r);
        return;
    }
    if (sum.state == CUSTOS_STATE_PENDING && s->approve_after >= 0 && s->polls >= s->approve_after)
        OK(custos_engine_request_approve(&sum, s->f->e, id, &EF_ACTOR));
    switch (sum.state) {
    case CUSTOS_STATE_PENDING:
    case CUSTOS_STATE_APPROVED:
        answer_state(out, s, &sum, 202);
        break;
    case CUSTOS_STATE_CERTIFIED:
    case CUSTOS_STATE_PROVISIONED:
        serve_profile(out, s, id);
        break;
    case CUSTOS_STATE_REJECTED:
        set_error(out, 403, "rejected", sum.reason);
        break;
    default:
        set_error(out, 410, "expired", "the request expired before it was approved");
        break;
    }
}

static void keep_receipt(fake *s, const custos_http_request *req)
{
    s->receipts++;
    assert_string_equal(req->content_type, CUSTOS_CT_RECEIPT);
    free(s->last_receipt);
    s->last_receipt = malloc(req->body_len);
    assert_non_null(s->last_receipt);
    memcpy(s->last_receipt, req->body, req->body_len);
    s->last_receipt_len = req->body_len;
}

static void serve_receipt(custos_http_response *out, fake *s, const char *id,
                          const custos_http_request *req)
{
    custos_request_summary sum;
    custos_err r;

    keep_receipt(s, req);
    r = custos_engine_receipt_accept(&sum, s->f->e, id, req->body, req->body_len, &EF_ACTOR);
    if (r < 0) {
        set_engine_error(out, r);
        return;
    }
    set_json(out, 200,
             json_pack("{s:s, s:s, s:s}", "request_id", sum.request_id, "device_id", sum.device_id,
                       "state", custos_state_name(sum.state)));
}

static custos_err fake_transport(custos_http_response *out, const custos_http_request *req,
                                 void *ctx)
{
    fake *s = ctx;
    const char *path;
    char id[CUSTOS_ID_LEN + 1];

    s->exchanges++;
    /* what every exchange must carry */
    assert_int_equal(req->trust_der_len, s->root_len);
    assert_memory_equal(req->trust_der, s->root_der, s->root_len);
    assert_true(req->max_response >= CUSTOS_MAX_RECEIPT_SIZE);
    assert_true(strncmp(req->url, s->expect_base, strlen(s->expect_base)) == 0);
    path = req->url + strlen(s->expect_base);
    if (s->fail_next > 0) {
        s->fail_next--;
        snprintf(out->error, sizeof(out->error), "connection refused (scripted)");
        return CUSTOS_ERR_IO;
    }
    if (s->rate_limit_next > 0) {
        s->rate_limit_next--;
        set_error(out, 429, "rate_limited", "slow down");
        out->retry_after = 3;
        return 0;
    }
    if (strcmp(path, "/device/v1/requests") == 0) {
        serve_submit(out, s, req);
        return 0;
    }
    assert_true(strncmp(path, "/device/v1/requests/", 20) == 0);
    assert_true(strlen(path + 20) >= CUSTOS_ID_LEN);
    memcpy(id, path + 20, CUSTOS_ID_LEN);
    id[CUSTOS_ID_LEN] = '\0';
    if (strcmp(path + 20 + CUSTOS_ID_LEN, "/receipt") == 0) {
        if (s->refuse_receipts) {
            snprintf(out->error, sizeof(out->error), "connection reset (scripted)");
            return CUSTOS_ERR_IO;
        }
        if (s->queue_receipts > 0) {
            s->queue_receipts--;
            keep_receipt(s, req);
            set_json(out, 202,
                     json_pack("{s:s, s:s, s:I}", "request_id", id, "state", "certified",
                               "retry_after", (json_int_t)2));
            return 0;
        }
        serve_receipt(out, s, id, req);
        return 0;
    }
    assert_string_equal(path + 20 + CUSTOS_ID_LEN, "");
    assert_string_equal(req->method, "GET");
    serve_poll(out, s, id);
    return 0;
}

static int setup(void **state)
{
    st *s = calloc(1, sizeof(*s));
    custos_port_posix_options o = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    void *ef = NULL;
    unsigned char *der = NULL;
    int n;

    assert_non_null(s);
    assert_int_equal(ef_setup(&ef), 0);
    s->f = ef;
    snprintf(s->device_dir, sizeof(s->device_dir), "%s/dev", s->f->tmp);
    snprintf(s->secret, sizeof(s->secret), "%s/secret", s->f->tmp);
    o.device_dir = s->device_dir;
    o.secret_file = s->secret;
    OK(custos_port_posix_new(&s->posix, &o));
    s->srv.f = s->f;
    s->srv.approve_after = 1;
    s->srv.retry_after = 7;
    s->srv.expect_base = BASE;
    n = i2d_X509(sk_X509_value(s->f->pkg->root_of_trust, 0), &der);
    assert_true(n > 0 && (size_t)n <= sizeof(s->srv.root_der));
    memcpy(s->srv.root_der, der, (size_t)n);
    s->srv.root_len = (size_t)n;
    OPENSSL_free(der);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    st *s = *state;
    void *ef = s->f;

    free(s->srv.last_receipt);
    custos_port_posix_free(s->posix);
    free(s);
    return ef_teardown(&ef);
}

/* ---- the posix port with the fake server as transport and the engine's
 * clock (so that expiry tests move both) ---------------------------------- */

static const custos_port *inner_port(const st *s)
{
    return custos_port_posix_get(s->posix);
}

static st *current;

static custos_err w_secret(uint8_t *o, size_t c, size_t *l, void *ctx)
{
    (void)ctx;
    return inner_port(current)->device_secret(o, c, l, inner_port(current)->ctx);
}
static custos_err w_entropy(uint8_t *o, size_t l, void *ctx)
{
    (void)ctx;
    return inner_port(current)->entropy(o, l, inner_port(current)->ctx);
}
static custos_err w_read(uint8_t *o, size_t c, size_t *l, const char *n, void *ctx)
{
    (void)ctx;
    return inner_port(current)->storage_read(o, c, l, n, inner_port(current)->ctx);
}
static custos_err w_write(const char *n, const uint8_t *d, size_t l, void *ctx)
{
    (void)ctx;
    return inner_port(current)->storage_write(n, d, l, inner_port(current)->ctx);
}
static custos_err w_remove(const char *n, void *ctx)
{
    (void)ctx;
    return inner_port(current)->storage_remove(n, inner_port(current)->ctx);
}
static custos_err w_clock(int64_t *o, void *ctx)
{
    (void)ctx;
    *o = current->f->now;
    return 0;
}
static custos_err w_transport(custos_http_response *out, const custos_http_request *req, void *ctx)
{
    (void)ctx;
    return fake_transport(out, req, &current->srv);
}

static const custos_port *port_of(st *s)
{
    current = s;
    s->port.version = CUSTOS_PORT_VERSION;
    s->port.device_secret = w_secret;
    s->port.entropy = w_entropy;
    s->port.storage_read = w_read;
    s->port.storage_write = w_write;
    s->port.storage_remove = w_remove;
    s->port.clock = w_clock;
    s->port.transport = w_transport;
    s->port.ctx = NULL;
    return &s->port;
}

/* ---- steps -------------------------------------------------------------- */

static void make_request(st *s)
{
    uint8_t *der = NULL;
    size_t len = 0;
    custos_package *pkg = NULL;
    custos_package_options po = CUSTOS_PACKAGE_OPTIONS_INIT;
    custos_request_options ro = CUSTOS_REQUEST_OPTIONS_INIT;

    OK(custos_engine_package_create(&der, &len, s->f->e, "pump", PASS, strlen(PASS), 30,
                                    &EF_ACTOR));
    po.port = port_of(s);
    OK(custos_package_open(&pkg, der, len, PASS, strlen(PASS), &po));
    ro.component = "ctl";
    ro.identity.serial = SERIAL;
    OK(custos_device_request(NULL, NULL, port_of(s), pkg, &ro));
    custos_package_free(pkg);
    free(der);
}

static int exists(st *s, const char *name)
{
    uint8_t b[1];
    size_t l = 0;
    custos_err r = inner_port(s)->storage_read(b, sizeof(b), &l, name, inner_port(s)->ctx);
    return r == 0 || r == CUSTOS_ERR_TOO_LARGE;
}

static custos_err step(st *s, custos_connect_status *out)
{
    return custos_connect_step(out, port_of(s), NULL);
}

static void step_ok(st *s, custos_connect_status *out, custos_connect_phase want)
{
    OK(step(s, out));
    assert_int_equal(out->phase, want);
}

static void assert_engine_state(st *s, const char *id, custos_state want)
{
    custos_request_summary sum;
    OK(custos_engine_request_get(&sum, s->f->e, id));
    assert_int_equal(sum.state, want);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_happy_path(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    char rid[CUSTOS_ID_LEN + 1];
    char *status = NULL;

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    assert_string_equal(cs.state, "pending");
    assert_int_equal(cs.retry_after, 7);
    assert_int_equal(cs.http_status, 202);
    assert_true(exists(s, CUSTOS_OBJ_REQUEST_SUBMITTED));
    memcpy(rid, cs.request_id, sizeof(rid));
    assert_engine_state(s, rid, CUSTOS_STATE_PENDING);

    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED); /* approved at the first poll */
    assert_string_equal(cs.request_id, rid);
    OK(custos_device_status(&status, port_of(s)));
    assert_non_null(strstr(status, "\"receipt_pending\":true"));
    assert_non_null(strstr(status, "\"state\":\"provisioned\""));
    free(status);
    assert_int_equal(cs.retry_after, 0);
    assert_true(exists(s, CUSTOS_OBJ_PROFILE));
    assert_true(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
    assert_false(exists(s, CUSTOS_OBJ_REQUEST));
    assert_engine_state(s, rid, CUSTOS_STATE_CERTIFIED);

    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_string_equal(cs.state, "provisioned");
    assert_string_equal(cs.request_id, rid);
    assert_int_equal(strlen(cs.device_id), CUSTOS_ID_LEN);
    assert_false(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
    assert_false(exists(s, CUSTOS_OBJ_REQUEST_SUBMITTED));
    assert_engine_state(s, rid, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(s->srv.submits, 1);
    assert_int_equal(s->srv.polls, 1);
    assert_int_equal(s->srv.receipts, 1);

    /* Again: nothing pending, the installed profile is confirmed (idempotent). */
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_int_equal(s->srv.receipts, 2);
    assert_false(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
}

static void test_receipt_is_signed_by_new_key(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    custos_receipt_doc *d = NULL;
    custos_device *dev = NULL;
    custos_key_info ki;
    const unsigned char *p;
    X509 *cert;

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    OK(custos_receipt_decode(&d, s->srv.last_receipt, s->srv.last_receipt_len));
    OK(custos_device_open(&dev, port_of(s), NULL));
    OK(custos_device_key(&ki, dev, 0)); /* "tls", P-256: the first non-Ed25519 key */
    p = ki.cert_der;
    cert = d2i_X509(NULL, &p, (long)ki.cert_der_len);
    assert_non_null(cert);
    assert_int_equal(X509_cmp(cert, d->signer), 0);
    assert_string_equal(d->request_id, cs.request_id);
    assert_string_equal(d->device_id, custos_device_id(dev));
    X509_free(cert);
    custos_device_free(dev);
    custos_receipt_doc_free(d);
}

static void test_pending_with_retry_after(void **state)
{
    st *s = *state;
    custos_connect_status cs;

    s->srv.approve_after = 3;
    s->srv.retry_after = 42;
    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    assert_int_equal(cs.retry_after, 42);
    step_ok(s, &cs, CUSTOS_CONNECT_WAITING);
    assert_string_equal(cs.state, "pending");
    assert_int_equal(cs.retry_after, 42);
    step_ok(s, &cs, CUSTOS_CONNECT_WAITING);
    assert_false(exists(s, CUSTOS_OBJ_PROFILE));
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_int_equal(s->srv.submits, 1);
    assert_int_equal(s->srv.polls, 3);
}

static void test_rejected(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    custos_request_summary sum;

    s->srv.approve_after = -1;
    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    OK(custos_engine_request_reject(&sum, s->f->e, cs.request_id, "unknown serial batch",
                                    &EF_ACTOR));
    assert_int_equal(step(s, &cs), CUSTOS_ERR_FORBIDDEN);
    assert_int_equal(cs.phase, CUSTOS_CONNECT_NONE);
    assert_string_equal(cs.server_code, "rejected");
    assert_string_equal(cs.state, "rejected");
    assert_int_equal(cs.http_status, 403);
    assert_int_equal(cs.retryable, 0);
    assert_string_equal(custos_error_last()->message, "unknown serial batch");
    /* nothing installed, the request is still there for a person to look at */
    assert_false(exists(s, CUSTOS_OBJ_PROFILE));
    assert_true(exists(s, CUSTOS_OBJ_REQUEST));
}

static void test_expired(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    size_t n = 0;

    s->srv.approve_after = -1;
    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    s->f->now += 40 * DAY; /* past the bootstrap certificate */
    OK(custos_engine_expire(&n, s->f->e));
    assert_int_equal(n, 1);
    assert_int_equal(step(s, &cs), CUSTOS_ERR_EXPIRED);
    assert_string_equal(cs.server_code, "expired");
    assert_string_equal(cs.state, "expired");
    assert_int_equal(cs.http_status, 410);
    assert_int_equal(cs.retryable, 0);
}

static void test_network_error_then_success(void **state)
{
    st *s = *state;
    custos_connect_status cs;

    make_request(s);
    s->srv.fail_next = 2;
    assert_int_equal(step(s, &cs), CUSTOS_ERR_IO);
    assert_int_equal(cs.retryable, 1);
    assert_int_equal(cs.http_status, 0);
    assert_non_null(strstr(custos_error_last()->message, "connection refused (scripted)"));
    assert_false(exists(s, CUSTOS_OBJ_REQUEST_SUBMITTED));
    assert_int_equal(step(s, &cs), CUSTOS_ERR_IO);
    s->srv.rate_limit_next = 1;
    assert_int_equal(step(s, &cs), CUSTOS_ERR_IO);
    assert_int_equal(cs.retryable, 1);
    assert_int_equal(cs.retry_after, 3);
    assert_int_equal(cs.http_status, 429);
    assert_string_equal(cs.server_code, "rate_limited");
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    s->srv.fail_next = 1;
    assert_int_equal(step(s, &cs), CUSTOS_ERR_IO);
    assert_true(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
}

/* Killed after the install, before the receipt got through: a new run sends
 * the stored receipt, byte for byte. */
static void test_kill_after_install(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    char path[512];

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    s->srv.refuse_receipts = 1;
    assert_int_equal(step(s, &cs), CUSTOS_ERR_IO);
    snprintf(path, sizeof(path), "%s/%s", s->device_dir, CUSTOS_OBJ_RECEIPT_PENDING);
    OK(custos_file_read(&stored, &stored_len, path, CUSTOS_MAX_RECEIPT_SIZE));
    s->srv.refuse_receipts = 0;
    /* "a new run": nothing but storage carries over */
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_int_equal(s->srv.last_receipt_len, stored_len);
    assert_memory_equal(s->srv.last_receipt, stored, stored_len);
    assert_int_equal(s->srv.submits, 1);
    assert_int_equal(s->srv.polls, 1);
    free(stored);
}

/* A gateway answers a receipt 202 until the cloud has confirmed it: the
 * device keeps receipt.pending, waits as asked, and sends the same bytes
 * again until a 200; also for a receipt made fresh for an installed profile. */
static void test_receipt_queued(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    char path[512];

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    snprintf(path, sizeof(path), "%s/%s", s->device_dir, CUSTOS_OBJ_RECEIPT_PENDING);
    OK(custos_file_read(&stored, &stored_len, path, CUSTOS_MAX_RECEIPT_SIZE));
    s->srv.queue_receipts = 2;
    for (int i = 0; i < 2; i++) {
        step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
        assert_int_equal(cs.http_status, 202);
        assert_int_equal(cs.retry_after, 2);
        assert_string_equal(cs.state, "certified");
        assert_true(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
        assert_int_equal(s->srv.last_receipt_len, stored_len);
        assert_memory_equal(s->srv.last_receipt, stored, stored_len);
    }
    assert_engine_state(s, cs.request_id, CUSTOS_STATE_CERTIFIED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_int_equal(s->srv.last_receipt_len, stored_len);
    assert_memory_equal(s->srv.last_receipt, stored, stored_len);
    assert_false(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
    assert_int_equal(s->srv.receipts, 3);
    free(stored);

    /* Confirming an installed profile: a queued fresh receipt is kept too. */
    s->srv.queue_receipts = 1;
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    assert_true(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_false(exists(s, CUSTOS_OBJ_RECEIPT_PENDING));
}

/* Killed between the install's commit and storing the receipt: the next
 * run makes the receipt from the installed profile. */
static void test_kill_before_receipt_stored(void **state)
{
    st *s = *state;
    custos_connect_status cs;

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    OK(inner_port(s)->storage_remove(CUSTOS_OBJ_RECEIPT_PENDING, inner_port(s)->ctx));
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_engine_state(s, cs.request_id, CUSTOS_STATE_PROVISIONED);
    assert_false(exists(s, CUSTOS_OBJ_REQUEST_SUBMITTED));
}

/* Killed inside the install, after profile.mccp (the commit point) but
 * before request.mcpr went: the next poll installs the same profile again. */
static void test_kill_inside_install(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    uint8_t *req = NULL;
    size_t req_len = 0;
    char path[512];

    make_request(s);
    snprintf(path, sizeof(path), "%s/%s", s->device_dir, CUSTOS_OBJ_REQUEST);
    OK(custos_file_read(&req, &req_len, path, CUSTOS_MAX_REQUEST_SIZE));
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    OK(inner_port(s)->storage_remove(CUSTOS_OBJ_RECEIPT_PENDING, inner_port(s)->ctx));
    OK(inner_port(s)->storage_write(CUSTOS_OBJ_REQUEST, req, req_len, inner_port(s)->ctx));
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    assert_int_equal(s->srv.polls, 2);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    free(req);
}

/* A pending request survives a restart: the next run polls it instead of
 * submitting; without the marker it is submitted again (idempotent). */
static void test_resume_pending_request(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    char rid[CUSTOS_ID_LEN + 1];

    s->srv.approve_after = -1;
    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    memcpy(rid, cs.request_id, sizeof(rid));
    step_ok(s, &cs, CUSTOS_CONNECT_WAITING);
    assert_int_equal(s->srv.submits, 1);
    OK(inner_port(s)->storage_remove(CUSTOS_OBJ_REQUEST_SUBMITTED, inner_port(s)->ctx));
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    assert_int_equal(s->srv.submits, 2);
    assert_string_equal(cs.request_id, rid);
    assert_int_equal(ef_count_rows(s->f, "requests"), 1);
    s->srv.approve_after = 0;
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
}

static void test_reprovision(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    custos_device *dev = NULL;
    custos_rotate_options ro = CUSTOS_ROTATE_OPTIONS_INIT;
    char first[CUSTOS_ID_LEN + 1], device[CUSTOS_ID_LEN + 1];

    make_request(s);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    memcpy(first, cs.request_id, sizeof(first));
    memcpy(device, cs.device_id, sizeof(device));
    OK(custos_device_open(&dev, port_of(s), NULL));
    OK(custos_device_rotate(NULL, NULL, dev, &ro));
    custos_device_free(dev);
    step_ok(s, &cs, CUSTOS_CONNECT_SUBMITTED);
    assert_string_not_equal(cs.request_id, first);
    step_ok(s, &cs, CUSTOS_CONNECT_INSTALLED);
    step_ok(s, &cs, CUSTOS_CONNECT_PROVISIONED);
    assert_string_equal(cs.device_id, device);
    assert_true(exists(s, CUSTOS_OBJ_PROFILE_PREVIOUS));
    assert_engine_state(s, cs.request_id, CUSTOS_STATE_PROVISIONED);
}

static void test_refusals(void **state)
{
    st *s = *state;
    custos_connect_status cs;
    custos_port p;

    /* nothing on the device */
    assert_int_equal(step(s, &cs), CUSTOS_ERR_STATE);
    make_request(s);
    /* no transport */
    p = *port_of(s);
    p.transport = NULL;
    assert_int_equal(custos_connect_step(&cs, &p, NULL), CUSTOS_ERR_NOT_PROVIDED);
    /* no plain http, whoever asks */
    assert_int_equal(custos_connect_step(&cs, port_of(s), "http://custos.example"),
                     CUSTOS_ERR_UNSUPPORTED);
    assert_int_equal(s->srv.exchanges, 0);
    /* an explicit server URL wins over the package's; a trailing slash is fine */
    s->srv.expect_base = "https://other.example:8443";
    OK(custos_connect_step(&cs, port_of(s), "https://other.example:8443/"));
    assert_int_equal(cs.phase, CUSTOS_CONNECT_SUBMITTED);
    assert_int_equal(custos_connect_step(NULL, port_of(s), NULL), CUSTOS_ERR_ARG);
}

static void test_http_error_parse(void **state)
{
    custos_http_response r;
    char code[32];
    const char *body =
        "{\"error\":{\"code\":\"proof_of_possession\",\"message\":\"bad\\u0007 pop\","
        "\"field\":\"keys.tls\"}}";

    (void)state;
    memset(&r, 0, sizeof(r));
    r.status = 422;
    r.body = (uint8_t *)body;
    r.body_len = strlen(body);
    assert_int_equal(custos_http_error(code, sizeof(code), &r), CUSTOS_ERR_POP);
    assert_string_equal(code, "proof_of_possession");
    assert_string_equal(custos_error_last()->message, "bad  pop");
    assert_string_equal(custos_error_last()->field, "keys.tls");
    body = "<html>oops</html>";
    r.status = 503;
    r.body = (uint8_t *)body;
    r.body_len = strlen(body);
    assert_int_equal(custos_http_error(code, sizeof(code), &r), CUSTOS_ERR_IO);
    assert_string_equal(code, "");
    assert_string_equal(custos_error_last()->message, "HTTP 503");
    body = "{\"error\":{\"code\":\"rejected\",\"message\":\"no\"},\"error\":{}}";
    r.status = 403;
    r.body = (uint8_t *)body;
    r.body_len = strlen(body);
    assert_int_equal(custos_http_error(NULL, 0, &r), CUSTOS_ERR_FORBIDDEN);
    assert_string_equal(custos_error_last()->message, "HTTP 403"); /* duplicate key refused */
    r.body = NULL;
    r.body_len = 0;
    r.status = 410;
    assert_int_equal(custos_http_error(code, sizeof(code), &r), CUSTOS_ERR_EXPIRED);
    assert_int_equal(custos_error_report(CUSTOS_ERR_IO, "url", "x"), CUSTOS_ERR_IO);
    assert_string_equal(custos_error_last()->message, "x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_is_signed_by_new_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_with_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_error_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_after_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_before_receipt_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_inside_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_pending_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprovision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test(test_http_error_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
