/* custos-gateway status: the queue and the uplink as the running gateway
 * left them in its database (a reader does not disturb it: SQLite WAL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway.h"
#include "table.h"

static const char *js(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : dflt;
}

static long long ji(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_upstream(const json_t *up)
{
    const char *result = js(up, "last_result", NULL);
    if (result == NULL) {
        printf("upstream   no contact yet\n");
        return;
    }
    printf("upstream   last contact %s: %s\n", js(up, "last_contact", "-"), result);
    if (json_is_string(json_object_get(up, "down_since")))
        printf("           down since %s; last success %s\n", js(up, "down_since", "-"),
               js(up, "last_ok", "never"));
}

static int print_devices(const json_t *devices)
{
    static const char *const head[] = {"REQUEST ID", "SERIAL", "COMPONENT", "STATE",
                                       "RECEIPT",    "SINCE",  "DEVICE ID"};
    cli_table *t = cli_table_new(7, head);
    size_t i;
    json_t *d;

    if (t == NULL)
        return -1;
    json_array_foreach(devices, i, d)
    {
        const char *cells[7] = {js(d, "request_id", ""), js(d, "serial", ""),
                                js(d, "component", ""),  js(d, "state", ""),
                                js(d, "receipt", ""),    js(d, "since", ""),
                                js(d, "device_id", "")};
        if (cli_table_add(t, cells) != 0) {
            cli_table_free(t);
            return -1;
        }
    }
    cli_table_keep(t, 0);
    cli_table_keep(t, 5);
    cli_table_keep(t, 6);
    cli_table_print(t, stdout, cli_terminal_width(stdout));
    cli_table_free(t);
    return 0;
}

int gw_cmd_status(const char *queue_dir, int json, size_t limit)
{
    char path[4200], msg[4300];
    struct stat st;
    gwq *q = NULL;
    json_t *rep = NULL, *queue;
    custos_err r;
    int rc = GW_EXIT_REFUSED;

    snprintf(path, sizeof(path), "%s/%s", queue_dir, GWQ_FILE);
    if (stat(path, &st) != 0) {
        snprintf(msg, sizeof(msg), "no gateway queue in %s (no %s)", queue_dir, GWQ_FILE);
        r = custos_error_report(CUSTOS_ERR_NOT_FOUND, "queue", msg);
        goto fail;
    }
    r = gwq_open(&q, queue_dir);
    if (r == CUSTOS_OK)
        r = gwq_report(&rep, q, limit);
    gwq_close(q);
    if (r < 0)
        goto fail;
    if (json) {
        char *text = json_dumps(rep, JSON_INDENT(2));
        if (text != NULL)
            puts(text);
        free(text);
        json_decref(rep);
        return text != NULL ? 0 : GW_EXIT_REFUSED;
    }
    queue = json_object_get(rep, "queue");
    printf("queue      %lld to forward, %lld receipt(s) to confirm (depth %lld); %lld device(s) "
           "waiting; %lld request(s) in all\n",
           ji(queue, "to_forward"), ji(queue, "receipts_to_confirm"), ji(queue, "depth"),
           ji(queue, "waiting"), ji(queue, "total"));
    print_upstream(json_object_get(rep, "upstream"));
    if (json_array_size(json_object_get(rep, "devices")) > 0) {
        printf("\ndevices waiting:\n");
        if (print_devices(json_object_get(rep, "devices")) != 0) {
            json_decref(rep);
            return GW_EXIT_REFUSED;
        }
    }
    json_decref(rep);
    return 0;
fail:
    fprintf(stderr, "custos-gateway: error: %s: %s [field: %s]\n", custos_err_code(r),
            custos_error_last()->message, custos_error_last()->field);
    return rc;
}
