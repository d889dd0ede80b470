/* bench_serve load generator: a libcurl multi loop that keeps devices in
 * flight, closed loop or open loop, each on its own new TLS connection for
 * its three exchanges (submit, download, receipt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"
#include "internal/util.h"

#include "serve.h"

#define BODY_CAP (256u * 1024u)
#define MAX_POLLS 50         /* a device still pending after this many polls fails */
#define PHASE_DEADLINE_S 300 /* a timed phase longer than this stops, the rest failed */

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
double load_run(load *L, device *devs, size_t n, size_t conc)
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
void latencies(double out[3], const device *devs, size_t n)
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
