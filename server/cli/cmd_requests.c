/* custosd subcommands on requests and devices: request import, approve, reject,
 * show; profile export; device complete, list. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "custos/custos.h"
#include "engine.h"
#include "internal/util.h"

int cli_cmd_request_import(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    custos_request_summary r;
    int created = 0;
    custos_actor actor = cli_actor();
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(custos_file_read(&der, &len, a->pos[0], CUSTOS_MAX_REQUEST_SIZE));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_import(&r, &created, e, der, len, "import", &actor));
    ret = CUSTOS_OK;
out:
    free(der);
    custos_engine_free(e);
    if (ret < 0)
        return cli_fail(ret);
    if (a->json) {
        json_t *j = cli_summary_json(&r);
        if (j != NULL)
            json_object_set_new(j, "created", json_boolean(created));
        return cli_print_json(j);
    }
    printf("%s request %s\n", created ? "imported" : "already imported:", r.request_id);
    cli_print_summary(&r);
    return 0;
}

/* ---- one request by id: approve, reject, show, device complete ------------ */

typedef enum request_op {
    REQUEST_APPROVE,
    REQUEST_REJECT,
    REQUEST_SHOW,
    DEVICE_COMPLETE,
} request_op;

/* The engine call of op on the request a->pos[0]. */
static custos_err request_call(custos_request_summary *r, custos_engine *e, request_op op,
                               const cli_args *a)
{
    custos_actor actor = cli_actor();
    switch (op) {
    case REQUEST_APPROVE:
        return custos_engine_request_approve(r, e, a->pos[0], &actor);
    case REQUEST_REJECT:
        return custos_engine_request_reject(r, e, a->pos[0], a->reason, &actor);
    case REQUEST_SHOW:
        return custos_engine_request_get(r, e, a->pos[0]);
    case DEVICE_COMPLETE:
        return custos_engine_device_complete(r, e, a->pos[0], &actor);
    }
    return custos_error_set(CUSTOS_ERR_INTERNAL, NULL, "unknown request operation");
}

/* The sentence (and summary) reporting op done. */
static void request_report(const custos_request_summary *r, request_op op)
{
    switch (op) {
    case REQUEST_APPROVE:
        printf("approved request %s: certificates issued, certified profile ready\n",
               r->request_id);
        break;
    case REQUEST_REJECT:
        printf("rejected request %s\n", r->request_id);
        break;
    case REQUEST_SHOW:
        printf("request %s\n", r->request_id);
        break;
    case DEVICE_COMPLETE:
        printf("provisioning of request %s completed: device %s is provisioned\n", r->request_id,
               r->device_id);
        return;
    }
    cli_print_summary(r);
}

/* Open the engine, run op, print the request as JSON or as a sentence. */
static int request_command(const cli_args *a, request_op op)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_request_summary r;
    memset(&r, 0, sizeof(r));
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(request_call(&r, e, op, a));
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0)
        return cli_fail(ret);
    if (a->json)
        return cli_print_json(cli_summary_json(&r));
    request_report(&r, op);
    return 0;
}

int cli_cmd_request_approve(const cli_args *a)
{
    return request_command(a, REQUEST_APPROVE);
}

int cli_cmd_request_reject(const cli_args *a)
{
    return request_command(a, REQUEST_REJECT);
}

int cli_cmd_request_show(const cli_args *a)
{
    return request_command(a, REQUEST_SHOW);
}

int cli_cmd_device_complete(const cli_args *a)
{
    return request_command(a, DEVICE_COMPLETE);
}

/* ---- profile export, device list ------------------------------------------ */

int cli_cmd_profile_export(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    uint8_t *cp = NULL;
    size_t len = 0;
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_profile_export(&cp, &len, e, a->pos[0]));
    /* A certified profile holds no secret. */
    CUSTOS_GUARD(custos_file_write_atomic(a->out, cp, len, 0644));
    printf("certified profile of request %s written to %s (%zu bytes)\n", a->pos[0], a->out, len);
    ret = CUSTOS_OK;
out:
    free(cp);
    custos_engine_free(e);
    return ret < 0 ? cli_fail(ret) : 0;
}

typedef struct list_ctx {
    json_t *array;
    size_t count;
    int failed;
} list_ctx;

static int list_row(const custos_request_summary *r, void *ctx)
{
    list_ctx *l = ctx;
    char created[21];
    l->count++;
    if (l->array != NULL) {
        json_t *j = cli_summary_json(r);
        if (j == NULL || json_array_append_new(l->array, j) != 0) {
            l->failed = 1;
            return 1;
        }
        return 0;
    }
    cli_fmt_time(created, r->created);
    printf("%-26s  %-11s  %-16s  %-12s  %-20s  %-11s  %-9s  %s%s\n", r->request_id,
           custos_state_name(r->state), r->system, r->component, r->serial, r->kind, r->via,
           created, r->duplicate_serial ? "  (duplicate serial)" : "");
    return 0;
}

int cli_cmd_device_list(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_engine *e = NULL;
    custos_state state = 0;
    list_ctx l = {NULL, 0, 0};
    if (a->state != NULL) {
        state = custos_state_from_name(a->state);
        if (state == 0)
            return cli_usage_error(cli_find_command("device", "list"),
                                   "unknown state '%s' (pending, approved, certified, "
                                   "provisioned, rejected, expired, revoked)",
                                   a->state);
    }
    if (a->json) {
        l.array = json_array();
        CUSTOS_ENSURE(l.array != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    } else {
        printf("%-26s  %-11s  %-16s  %-12s  %-20s  %-11s  %-9s  %s\n", "ID", "STATE", "SYSTEM",
               "COMPONENT", "SERIAL", "KIND", "VIA", "CREATED");
    }
    CUSTOS_GUARD(cli_engine_open(&e, a->data));
    CUSTOS_GUARD(custos_engine_request_list(e, state, list_row, &l));
    CUSTOS_ENSURE(!l.failed, CUSTOS_ERR_NOMEM, NULL, "cannot build the JSON output");
    ret = CUSTOS_OK;
out:
    custos_engine_free(e);
    if (ret < 0) {
        json_decref(l.array);
        return cli_fail(ret);
    }
    if (l.array != NULL)
        return cli_print_json(l.array);
    return 0;
}
