/* The HTTPS server's lifecycle: the listening socket, one event_base + evhttp
 * per worker thread, the control loop (stop, signals) and the graceful stop.
 *
 * All workers accept from one listening socket rather than SO_REUSEPORT
 * sockets: the kernel hashes a new connection to a REUSEPORT socket whatever
 * its worker is doing, so a worker busy in a CPU-heavy handler (requests are
 * answered synchronously) would still be handed its share of new connections
 * and make them wait. With one socket only a worker in its event loop
 * accepts. The price is that every idle worker wakes for each connection
 * (a few threads: cheap), and one port-0 bind to share is simpler too. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/thread.h>

#include "http_int.h"
#include "internal/util.h"
#include "log.h"

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_ok;

static void threads_init(void)
{
    threads_ok = evthread_use_pthreads() == 0;
}

/* ---- listening socket ---------------------------------------------------- */

static custos_err split_listen(const char *spec, char *host, size_t host_cap, char port[6])
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *colon, *h = spec;
    size_t hlen, plen;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        CUSTOS_ENSURE(close != NULL && close[1] == ':', CUSTOS_ERR_ARG, "listen",
                      "cannot parse listen address \"%s\": expected [IPv6]:PORT", spec);
        h = spec + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        CUSTOS_ENSURE(colon != NULL && memchr(spec, ':', (size_t)(colon - spec)) == NULL,
                      CUSTOS_ERR_ARG, "listen",
                      "cannot parse listen address \"%s\": expected HOST:PORT", spec);
        hlen = (size_t)(colon - spec);
    }
    plen = strlen(colon + 1);
    CUSTOS_ENSURE(hlen > 0 && hlen < host_cap, CUSTOS_ERR_ARG, "listen",
                  "cannot parse listen address \"%s\": no host", spec);
    CUSTOS_ENSURE(plen >= 1 && plen <= 5 && strspn(colon + 1, "0123456789") == plen &&
                      strtoul(colon + 1, NULL, 10) <= 65535,
                  CUSTOS_ERR_ARG, "listen", "cannot parse listen address \"%s\": bad port", spec);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen + 1);
    ret = CUSTOS_OK;
out:
    return ret;
}

static int bind_one(const struct addrinfo *ai, int *err)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

static custos_err open_listener(custos_http_server *s, const char *spec)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[256], port[6];
    int gai, err = 0;

    CUSTOS_GUARD(split_listen(spec, host, sizeof(host), port));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host, port, &hints, &res);
    CUSTOS_ENSURE(gai == 0, CUSTOS_ERR_ARG, "listen", "cannot listen on %s: %s", spec,
                  gai_strerror(gai));
    for (const struct addrinfo *ai = res; ai != NULL && s->fd < 0; ai = ai->ai_next)
        s->fd = bind_one(ai, &err);
    CUSTOS_ENSURE(s->fd >= 0, CUSTOS_ERR_IO, "listen", "cannot listen on %s: %s", spec,
                  strerror(err));
    CUSTOS_ENSURE(getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0, CUSTOS_ERR_IO, "listen",
                  "cannot listen on %s: %s", spec, strerror(errno));
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    ret = CUSTOS_OK;
out:
    if (res != NULL)
        freeaddrinfo(res);
    return ret;
}

/* ---- server -------------------------------------------------------------- */

static void resolve_limits(custos_http_limits *l)
{
    if (l->max_header_bytes == 0)
        l->max_header_bytes = 16384;
    if (l->max_body_bytes == 0)
        l->max_body_bytes = 8u << 20;
    if (l->header_timeout_s == 0)
        l->header_timeout_s = 10;
    if (l->idle_timeout_s == 0)
        l->idle_timeout_s = 30;
    if (l->write_timeout_s == 0)
        l->write_timeout_s = 30;
    if (l->max_connections == 0)
        l->max_connections = 4096;
}

custos_err custos_http_server_new(custos_http_server **out, const custos_http_config *cfg)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_http_server *s = NULL;

    CUSTOS_ENSURE(out != NULL, CUSTOS_ERR_ARG, NULL, "no output");
    *out = NULL;
    CUSTOS_ENSURE(cfg != NULL && cfg->listen != NULL && cfg->ssl_ctx != NULL && cfg->handle != NULL,
                  CUSTOS_ERR_ARG, "config", "the server needs listen, ssl_ctx and handle");
    CUSTOS_ENSURE(strlen(cfg->listen) < sizeof(s->listen), CUSTOS_ERR_ARG, "listen",
                  "the listen address is too long");
    pthread_once(&threads_once, threads_init);
    CUSTOS_ENSURE(threads_ok && http_conn_index() >= 0, CUSTOS_ERR_INTERNAL, NULL,
                  "cannot set up libevent threads or OpenSSL ex_data");
    s = calloc(1, sizeof(*s));
    CUSTOS_ENSURE(s != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    s->fd = -1;
    s->cfg = *cfg;
    s->cfg.listen = s->listen;
    snprintf(s->listen, sizeof(s->listen), "%s", cfg->listen);
    resolve_limits(&s->cfg.limits);
    s->nworkers = cfg->workers != 0 ? cfg->workers : HTTP_DEFAULT_WORKERS;
    CUSTOS_ENSURE(s->nworkers <= 256, CUSTOS_ERR_ARG, "workers", "at most 256 workers");
    CUSTOS_ENSURE(pthread_mutex_init(&s->mu, NULL) == 0, CUSTOS_ERR_INTERNAL, NULL, "mutex");
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        CUSTOS_ENSURE(0, CUSTOS_ERR_INTERNAL, NULL, "condition variable");
    }
    s->workers = calloc(s->nworkers, sizeof(*s->workers));
    CUSTOS_ENSURE(s->workers != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    CUSTOS_GUARD(open_listener(s, cfg->listen));
    CUSTOS_ENSURE(SSL_CTX_up_ref(cfg->ssl_ctx) == 1, CUSTOS_ERR_INTERNAL, NULL, "SSL_CTX_up_ref");
    s->ctx = cfg->ssl_ctx;
    s->cfg.ssl_ctx = s->ctx;
    *out = s;
    s = NULL;
    ret = CUSTOS_OK;
out:
    custos_http_server_free(s);
    return ret;
}

int custos_http_server_port(const custos_http_server *s)
{
    return s != NULL ? s->port : 0;
}

void custos_http_server_free(custos_http_server *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->ctx != NULL)
        SSL_CTX_free(s->ctx);
    if (s->workers != NULL) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    free(s->workers);
    free(s);
}

void custos_http_server_stop(custos_http_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop_requested, 1);
    pthread_mutex_lock(&s->mu);
    if (s->ctrl_stop != NULL)
        event_active(s->ctrl_stop, EV_READ, 1);
    pthread_mutex_unlock(&s->mu);
}

/* ---- workers ------------------------------------------------------------- */

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timespec now;

    (void)fd;
    (void)what;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (w->nconns == 0 || now.tv_sec > w->stop_deadline.tv_sec ||
        (now.tv_sec == w->stop_deadline.tv_sec && now.tv_nsec >= w->stop_deadline.tv_nsec))
        event_base_loopexit(w->base, NULL);
}

/* In the worker: stop accepting, close what is idle, let requests finish. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval tick = {0, 20000};

    (void)fd;
    (void)what;
    if (w->stopping)
        return;
    w->stopping = 1;
    clock_gettime(CLOCK_MONOTONIC, &w->stop_deadline);
    w->stop_deadline.tv_sec += HTTP_STOP_GRACE_S;
    if (w->bound != NULL) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    for (struct conn *c = w->conns; c != NULL; c = c->next) {
        if (c->phase == PH_HEAD || c->phase == PH_REJECTED || !c->tls_done)
            http_conn_shutdown(c);
    }
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_cb, w);
    if (w->drain_ev == NULL || event_add(w->drain_ev, &tick) != 0)
        event_base_loopexit(w->base, NULL);
}

static int worker_setup(struct worker *w)
{
    custos_http_server *s = w->srv;
    const custos_http_limits *lim = &s->cfg.limits;
    struct timeval idle = {(time_t)lim->idle_timeout_s, 0};
    struct evconnlistener *lev;

    w->base = event_base_new();
    if (w->base == NULL || (w->http = evhttp_new(w->base)) == NULL)
        return -1;
    evhttp_set_bevcb(w->http, http_conn_bevcb, w);
    evhttp_set_gencb(w->http, http_conn_gencb, w);
    /* Backstops: the head checks in conn.c answer these limits first, in JSON. */
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)lim->max_header_bytes);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)lim->max_body_bytes);
    evhttp_set_timeout_tv(w->http, &idle);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_default_content_type(w->http, NULL);
    /* Shared, already listening, non-blocking socket: backlog 0, and not
     * LEV_OPT_CLOSE_ON_FREE, since every worker has a listener on it. */
    lev = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, s->fd);
    if (lev == NULL)
        return -1;
    w->bound = evhttp_bind_listener(w->http, lev);
    if (w->bound == NULL) {
        evconnlistener_free(lev);
        return -1;
    }
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    return w->stop_ev != NULL ? 0 : -1;
}

static void worker_teardown(struct worker *w)
{
    custos_http_server *s = w->srv;

    if (w->http != NULL)
        evhttp_free(w->http); /* listener and connections */
    w->http = NULL;
    w->bound = NULL;
    /* Bufferevents are finalised from the loop: run it until every
     * connection's SSL (and with it our state) is freed. */
    for (int i = 0; i < 1000 && w->nconns > 0 && w->base != NULL; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    if (w->init_ok && s->cfg.worker_free != NULL)
        s->cfg.worker_free(w->wctx);
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    if (w->stop_ev != NULL)
        event_free(w->stop_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    w->drain_ev = w->stop_ev = NULL;
    w->base = NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    custos_http_server *s = w->srv;
    int go;

    if (worker_setup(w) == 0) {
        w->wctx = s->cfg.worker_init != NULL ? s->cfg.worker_init(w->index, s->cfg.app) : NULL;
        w->init_ok = s->cfg.worker_init == NULL || w->wctx != NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->reported++;
    pthread_cond_broadcast(&s->cv);
    while (s->go == 0)
        pthread_cond_wait(&s->cv, &s->mu);
    go = s->go;
    pthread_mutex_unlock(&s->mu);
    if (go > 0)
        event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    worker_teardown(w);
    return NULL;
}

/* ---- control ------------------------------------------------------------- */

static void ctrl_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    custos_http_server *s = arg;

    (void)fd;
    (void)what;
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (s->workers[i].stop_ev != NULL)
            event_active(s->workers[i].stop_ev, EV_READ, 1);
    }
    event_base_loopexit(s->ctrl_base, NULL);
}

static void ctrl_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    custos_http_server *s = arg;
    json_t *f = json_object();

    (void)what;
    if (f != NULL) {
        json_object_set_new(f, "signal", json_string(sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        custos_log("info", "shutdown", f);
        json_decref(f);
    }
    custos_http_server_stop(s);
}

static unsigned start_workers(custos_http_server *s)
{
    sigset_t block, old;
    unsigned started = 0;

    /* Workers never take SIGINT/SIGTERM (the control loop does) and never
     * die of SIGPIPE: a write to a closed socket just fails there. */
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        memset(w, 0, sizeof(*w));
        w->srv = s;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        w->thread_started = 1;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

static void join_workers(custos_http_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (s->workers[i].thread_started)
            pthread_join(s->workers[i].thread, NULL);
        s->workers[i].thread_started = 0;
    }
}

custos_err custos_http_server_run(custos_http_server *s, int handle_signals)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    struct event_base *ctrl = NULL;
    struct event *stop_ev = NULL, *sig_term = NULL, *sig_int = NULL;
    unsigned started = 0, failed = 0;

    CUSTOS_ENSURE(s != NULL, CUSTOS_ERR_ARG, NULL, "no server");
    pthread_mutex_lock(&s->mu);
    if (s->ran) {
        pthread_mutex_unlock(&s->mu);
        CUSTOS_ENSURE(0, CUSTOS_ERR_STATE, NULL, "the server has run already");
    }
    s->ran = 1;
    pthread_mutex_unlock(&s->mu);
    ctrl = event_base_new();
    CUSTOS_ENSURE(ctrl != NULL, CUSTOS_ERR_INTERNAL, NULL, "cannot create an event loop");
    s->ctrl_base = ctrl;
    stop_ev = event_new(ctrl, -1, 0, ctrl_stop_cb, s);
    CUSTOS_ENSURE(stop_ev != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    if (handle_signals) {
        sig_term = evsignal_new(ctrl, SIGTERM, ctrl_signal_cb, s);
        sig_int = evsignal_new(ctrl, SIGINT, ctrl_signal_cb, s);
        CUSTOS_ENSURE(sig_term != NULL && sig_int != NULL && evsignal_add(sig_term, NULL) == 0 &&
                          evsignal_add(sig_int, NULL) == 0,
                      CUSTOS_ERR_INTERNAL, NULL, "cannot handle SIGTERM and SIGINT");
    }
    started = start_workers(s);
    pthread_mutex_lock(&s->mu);
    while (s->reported < started)
        pthread_cond_wait(&s->cv, &s->mu);
    for (unsigned i = 0; i < started; i++)
        failed += !s->workers[i].init_ok;
    s->go = started == s->nworkers && failed == 0 ? 1 : -1;
    if (s->go > 0)
        s->ctrl_stop = stop_ev;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->go < 0) {
        join_workers(s);
        CUSTOS_ENSURE(0, CUSTOS_ERR_INTERNAL, "workers",
                      started < s->nworkers ? "cannot start %u worker threads"
                                            : "%u worker(s) failed to initialise",
                      started < s->nworkers ? s->nworkers : failed);
    }
    if (atomic_load(&s->stop_requested))
        event_active(stop_ev, EV_READ, 1);
    event_base_loop(ctrl, EVLOOP_NO_EXIT_ON_EMPTY); /* stop_ev is activated, never added */
    pthread_mutex_lock(&s->mu);
    s->ctrl_stop = NULL;
    pthread_mutex_unlock(&s->mu);
    join_workers(s);
    ret = CUSTOS_OK;
out:
    if (s != NULL && s->fd >= 0 && s->ran) {
        close(s->fd); /* every listener on it is gone */
        s->fd = -1;
    }
    if (sig_term != NULL)
        event_free(sig_term);
    if (sig_int != NULL)
        event_free(sig_int);
    if (stop_ev != NULL)
        event_free(stop_ev);
    if (ctrl != NULL)
        event_base_free(ctrl);
    return ret;
}
