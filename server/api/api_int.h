/* Internals of server/api: the call context handlers receive, the helpers
 * they share, and the handler tables of each part of the API. */
#ifndef CUSTOS_SERVER_API_INT_H
#define CUSTOS_SERVER_API_INT_H

#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <jansson.h>

#include "api.h"
#include "engine.h"
#include "http/ratelimit.h"

/* Role sets of a route (bit per custos_role); 0 marks a device endpoint
 * (no operator credential: authenticated by what it carries). */
#define API_ROLE(r) (1u << (unsigned)(r))
#define API_ADMIN API_ROLE(CUSTOS_ROLE_ADMIN)
#define API_APPROVER API_ROLE(CUSTOS_ROLE_APPROVER)
#define API_TECHNICIAN API_ROLE(CUSTOS_ROLE_TECHNICIAN)
#define API_AUDITOR API_ROLE(CUSTOS_ROLE_AUDITOR)
#define API_ANY (API_ADMIN | API_APPROVER | API_TECHNICIAN | API_AUDITOR)
#define API_PUBLIC 0x8000u  /* no credential and no device rate limit (sign-in) */
#define API_GATEWAY 0x4000u /* a gateway's client certificate (api_gateway.c) */

/* Body limits (docs/api.md) */
#define API_MAX_JSON (64u * 1024u)
#define API_MAX_POLICY (4u * 1024u * 1024u)

#define API_MAX_PARAMS 3
#define API_MAX_PARAM_LEN 128

struct custos_api {
    custos_api_config cfg;
    char data_dir[4096];
    custos_engine *parent; /* keys and certificates shared by the workers' engines */
    custos_ratelimit *device_addr;
    custos_ratelimit *device_key;
    custos_ratelimit *login_addr;
    custos_ratelimit *login_user;
    custos_ratelimit *gateway_rl; /* per gateway device */
    /* Expiry sweep: marks pending/approved requests whose signer expired. */
    custos_engine *sweep_engine;
    pthread_t sweep_thread;
    pthread_mutex_t sweep_lock;
    pthread_cond_t sweep_cond;
    int sweep_started;
    int sweep_stop;
};

typedef struct api_worker {
    custos_api *api;
    custos_engine *e;
    unsigned index;
} api_worker;

typedef struct api_call {
    custos_http_exchange *x;
    api_worker *w;
    custos_engine *e;
    const char *method;
    char params[API_MAX_PARAMS][API_MAX_PARAM_LEN];
    const uint8_t *body;
    size_t body_len;
    custos_principal who;   /* operator routes */
    custos_gateway_info gw; /* gateway routes: who is forwarding */
    char actor_who[128];
    char actor_from[64];
    custos_actor actor;
} api_call;

typedef void (*api_handler)(api_call *c);

typedef struct api_route {
    const char *method;
    const char *pattern; /* "/api/v1/requests/{}/approve": {} captures one segment */
    unsigned roles;      /* API_* set; 0 = device endpoint */
    const char *ctype;   /* required Content-Type of the body, or NULL for none */
    size_t max_body;
    api_handler fn;
} api_route;

extern const api_route custos_api_device_routes[];
extern const size_t custos_api_device_route_count;
extern const api_route custos_api_operator_routes[];
extern const size_t custos_api_operator_route_count;
extern const api_route custos_api_gateway_routes[];
extern const size_t custos_api_gateway_route_count;

/* Authenticate a gateway route's caller by its client certificate (and rate
 * limit it); answers and returns 0 when refused (api_gateway.c). */
int api_gateway_authorize(api_call *c);

double custos_api_now_s(void);

/* The web console (api_static.c): paths outside /api/, /device/, /gateway/. */
int custos_api_is_static_path(const char *path);
void custos_api_static(custos_http_exchange *x, const custos_api *api);

/* Answers */
void api_error(api_call *c, int status, const char *code, const char *message, const char *field);
void api_fail(api_call *c, custos_err err);           /* status from the error (docs/api.md) */
void api_json(api_call *c, int status, json_t *body); /* takes body */
void api_file(api_call *c, const char *ctype, const char *filename, const uint8_t *data,
              size_t len);
void api_rate_limited(api_call *c, unsigned retry_after);

/* The JSON body as an object (strict: duplicates refused); NULL after answering 400. */
json_t *api_body_json(api_call *c);
/* 1 when every member of @p o is named in @p keys (NULL-terminated); else
 * answers 400 naming the unknown field (bodies are strict, like the formats). */
int api_only_keys(api_call *c, const json_t *o, const char *const *keys);
/* A string field of @p o: NULL when absent; answers 400 (and sets *bad) when not a string. */
const char *api_str(api_call *c, const json_t *o, const char *key, int required, int *bad);

/* The summary as the API shows it (docs/api.md). */
json_t *api_summary_json(const custos_request_summary *s);

/* Mock device files of @p component as a ustar archive (api_mock.c). */
CUSTOS_NODISCARD custos_err custos_api_mock_tar(uint8_t **out, size_t *out_len, api_call *c,
                                                const char *system, const char *component,
                                                const char *serial);

/* Shared by the operator handlers (api.c). */
int api_query_limit(api_call *c, size_t *out); /* ?limit=, 1..500 (50); 0 after answering */
const char *api_query_nonempty(api_call *c, const char *name);
json_t *api_page(json_t *items, const char *next); /* {"items", "next_cursor"?}; takes items */
int api_push_json(json_t *arr, json_t *item);      /* list callbacks: 0 or -1 */
json_t *api_time_json(int64_t t);                  /* RFC 3339, null for 0 */
int api_call_secret(api_call *c, char *out, size_t cap); /* the call's bearer or cookie secret */

/* Handlers of api_access.c, routed by the table in api_operator.c. */
void api_session_create(api_call *c);
void api_session_show(api_call *c);
void api_session_delete(api_call *c);
void api_users_list(api_call *c);
void api_user_create(api_call *c);
void api_tokens_list(api_call *c);
void api_token_create(api_call *c);
void api_token_revoke(api_call *c);
void api_audit_list(api_call *c);
void api_audit_verify(api_call *c);

#endif
