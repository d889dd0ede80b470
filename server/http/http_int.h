/* Internals of the HTTPS server core, shared by server.c (lifecycle,
 * workers), conn.c (connections, request framing, dispatch) and exchange.c
 * (the handler interface). Not used outside server/http/. */
#ifndef CUSTOS_HTTP_INT_H
#define CUSTOS_HTTP_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "custos/types.h"
#include "http.h"

#define HTTP_DEFAULT_WORKERS 4u
#define HTTP_STOP_GRACE_S 10
#define HTTP_MAX_QUERY_PARAMS 64

struct worker;

/* Where a connection is in its current request. The head of a request is
 * held back from evhttp (in conn.hold) until it is complete and passes the
 * limits, so that a refused request gets a JSON answer from us instead of
 * evhttp's HTML page and its body is never read. */
enum conn_phase {
    PH_HEAD,     /* waiting for, or receiving, a request head */
    PH_REQUEST,  /* head handed to evhttp: body, handler, answer */
    PH_ERROR,    /* a synthetic head stands for a refused request, evhttp parses it */
    PH_DISCARD,  /* the refusal is being answered; input is dropped, then close */
    PH_REJECTED, /* over max_connections: closed before any TLS byte */
};

struct custos_http_exchange {
    struct conn *conn;
    struct evhttp_request *req; /* NULL once the request is gone */
    const char *method;
    const char *path;      /* decoded; in pathbuf or path_heap */
    const char *raw_query; /* evhttp's, valid while req is */
    char *path_heap;
    char *query_heap; /* decoded pairs, made on the first custos_http_query() */
    const char *qkey[HTTP_MAX_QUERY_PARAMS], *qval[HTTP_MAX_QUERY_PARAMS];
    int nquery; /* -1: not parsed yet */
    int active; /* between dispatch and completion */
    int replied;
    int status;
    json_t *log_fields;
    struct timespec start;
    char request_id[CUSTOS_ID_LEN + 1];
    char pathbuf[256];
};

struct conn {
    struct worker *w;
    struct conn *prev, *next; /* the worker's list, for stop */
    SSL *ssl;
    struct bufferevent *bev;
    struct evbuffer *hold; /* head bytes held back from evhttp */
    struct evbuffer_cb_entry *in_cb;
    struct event *timer; /* storage follows the struct: init, deadline, reject */
    enum conn_phase phase;
    size_t scan_pos; /* start of the first incomplete line in hold */
    int linked;      /* in w's list */
    int inited;      /* the timer's first run (timeouts, address) happened */
    int timer_armed; /* the request deadline is running */
    int in_input;    /* re-entry guard of the input callback */
    int tls_done;
    unsigned long tls_err;
    uint64_t tls_bytes;
    int pending_status; /* PH_ERROR: the refusal */
    const char *pending_code, *pending_msg;
    char *synth;
    size_t synth_len;
    char orig_method[16];
    char addr[INET6_ADDRSTRLEN];
    struct custos_http_exchange x;
};

struct worker {
    custos_http_server *srv;
    unsigned index;
    pthread_t thread;
    int thread_started;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *stop_ev, *drain_ev;
    void *wctx;
    int init_ok;
    struct conn *conns;
    size_t nconns;
    int stopping;
    struct timespec stop_deadline;
    time_t reject_logged_at;
    unsigned long rejected;
    /* Per-connection warnings (timeouts, failed handshakes): at most one line
     * a second per worker and kind, with the count of the ones not logged. */
    time_t warn_logged_at[2];
    unsigned long warn_suppressed[2];
};

struct custos_http_server {
    custos_http_config cfg; /* limits resolved */
    SSL_CTX *ctx;
    int fd;
    int port;
    char listen[256];
    struct worker *workers;
    unsigned nworkers;
    atomic_size_t nconns;
    atomic_int stop_requested;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned reported; /* workers past init (ok or not) */
    int go;            /* 1 serve, -1 abort */
    int ran;
    struct event *ctrl_stop;
    struct event_base *ctrl_base;
};

/* conn.c */
int http_conn_index(void); /* the SSL ex_data index, -1 on failure */
struct bufferevent *http_conn_bevcb(struct event_base *base, void *arg);
void http_conn_gencb(struct evhttp_request *req, void *arg);
void http_conn_shutdown(struct conn *c);

/* exchange.c */
void http_exchange_begin(struct custos_http_exchange *x, struct conn *c,
                         struct evhttp_request *req);
/* Decode the request path into x->path: 0, or -1 when it is refused. */
int http_exchange_decode_path(struct custos_http_exchange *x);
/* Method, path and query checks: 0 ok; else the request was answered already. */
int http_exchange_parse_target(struct custos_http_exchange *x);
void http_exchange_finish(struct custos_http_exchange *x, int completed);
double http_elapsed_ms(const struct timespec *since);

/* ---- request heads (head.c) ------------------------------------------------ */

typedef struct custos_http_head {
    char method[16];
    int cl_seen, cl_bad,
        te_seen; /* Content-Length seen / invalid or conflicting; Transfer-Encoding seen */
    uint64_t cl;
} custos_http_head;

/* Length of the head in @p hold (through its empty line), or 0 when it is not
 * complete yet; *scan_pos remembers where the first incomplete line starts
 * (0 at first). Lines end in LF or CRLF, as evhttp reads them. */
size_t custos_http_head_end(struct evbuffer *hold, size_t *scan_pos);
/* The method, Content-Length and Transfer-Encoding of the first @p head_len
 * bytes of @p hold. Only used to refuse; evhttp still parses what passes. */
void custos_http_head_analyze(struct evbuffer *hold, size_t head_len, custos_http_head *hi);

#endif
