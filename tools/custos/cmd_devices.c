/* custos requests upload, devices list/show/approve/reject/complete,
 * profiles download: the provisioning requests (the Devices page). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "custos_cli.h"
#include "progress.h"
#include "table.h"

#define MAX_BULK 100000u /* files or ids in one bulk command */

/* ---- bulk operations: one line per item, a progress bar or a summary ------- */

typedef struct bulk {
    cli_ctx *ctx;
    cli_progress bar;
    json_t *results; /* --json, several inputs: {"input", "status", "body"} per item */
    size_t total;
    size_t failed;
    const char *what; /* "uploaded", "approved" ... */
} bulk;

/* @p as_list: --json prints {"items": [...]} even for one input (the number
 * of inputs was not the operator's: --all-pending). */
static void bulk_start(bulk *b, cli_ctx *ctx, const char *label, const char *what, size_t total,
                       int as_list)
{
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->total = total;
    b->what = what;
    /* One input: the server's answer as it is; more: one document of them all. */
    if (ctx->json && (total > 1 || as_list))
        b->results = json_array();
    cli_progress_start(&b->bar, stderr, label, total, total > 1 && !ctx->quiet);
}

static void bulk_record(bulk *b, const char *input, const cli_reply *r, const cli_failure *f)
{
    if (b->results == NULL)
        return;
    json_t *body;
    if (f != NULL)
        body = json_pack("{s:{s:s, s:s, s:s*}}", "error", "code", f->code, "message", f->message,
                         "field", f->field[0] != '\0' ? f->field : NULL);
    else
        body = r->json != NULL ? json_incref(r->json) : json_null();
    json_array_append_new(b->results, json_pack("{s:s, s:i, s:o*}", "input", input, "status",
                                                r != NULL ? (int)r->http.status : 0, "body", body));
}

/* Item @p input done: @p r answered 2xx (@p line printed on stdout), or failed
 * (@p r's failure, or @p local when set). */
static void bulk_item(bulk *b, const char *input, const cli_reply *r, const cli_failure *local,
                      const char *line)
{
    int ok = local == NULL && r != NULL && r->fail.code[0] == '\0';
    cli_progress_clear(&b->bar);
    if (ok) {
        bulk_record(b, input, r, NULL);
        if (b->ctx->json && b->results == NULL) {
            cli_print_body(r);
        } else if (!b->ctx->json && line != NULL) {
            cli_put_safe(stdout, line);
            fputc('\n', stdout);
            fflush(stdout);
        }
    } else {
        const cli_failure *f = local != NULL ? local : &r->fail;
        bulk_record(b, input, local != NULL ? NULL : r, f);
        if (local != NULL)
            cli_failure_print(local, NULL); /* its message names the input */
        else
            cli_reply_fail(b->ctx, r, input);
        b->failed++;
    }
    cli_progress_step(&b->bar, ok);
}

static int bulk_finish(bulk *b)
{
    cli_progress_finish(&b->bar);
    if (b->results != NULL) {
        json_t *doc = json_pack("{s:O}", "items", b->results);
        cli_print_json(doc);
        json_decref(doc);
        json_decref(b->results);
        b->results = NULL;
    }
    if (b->total > 1 && !b->ctx->quiet)
        fprintf(stderr, "custos: %zu of %zu %s, %zu failed\n", b->total - b->failed, b->total,
                b->what, b->failed);
    return b->failed > 0 ? EXIT_REFUSED : 0;
}

/* ---- requests upload ------------------------------------------------------- */

typedef struct path_list {
    char **items;
    size_t n;
    size_t cap;
} path_list;

static int path_add(path_list *l, const char *dir, const char *name)
{
    if (l->n >= MAX_BULK)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 16 : l->cap * 2;
        char **grown = realloc(l->items, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        l->items = grown;
        l->cap = cap;
    }
    size_t len = (dir != NULL ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(len);
    if (p == NULL)
        return -1;
    if (dir != NULL)
        snprintf(p, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    else
        snprintf(p, len, "%s", name);
    l->items[l->n++] = p;
    return 0;
}

static void path_list_free(path_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Every *.mcpr in @p dir, sorted, appended to @p l. */
static int add_dir(path_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t first = l->n;
    if (d == NULL)
        return cli_fail(CUSTOS_ERR_IO, "file", "cannot read the directory %s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".mcpr"))
            continue;
        if (path_add(l, dir, e->d_name) != 0) {
            closedir(d);
            return cli_fail(CUSTOS_ERR_TOO_LARGE, "file", "too many files (at most %u)", MAX_BULK);
        }
    }
    closedir(d);
    if (l->n == first)
        return cli_fail(CUSTOS_ERR_NOT_FOUND, "file", "no .mcpr file in the directory %s", dir);
    qsort(l->items + first, l->n - first, sizeof(*l->items), compare_names);
    return 0;
}

static void upload_one(bulk *b, const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cli_failure local;
    cli_reply r;
    cli_url url;
    char line[1400];
    /* The size is checked before reading, and nothing is sent for a refused file. */
    if (cli_read_file(&buf, &len, path, CUSTOS_MAX_REQUEST_SIZE, &local, "file") < 0) {
        bulk_item(b, path, NULL, &local, NULL);
        return;
    }
    cli_url_init(&url, b->ctx, "/requests");
    cli_call(&r, b->ctx, "POST", &url, "application/vnd.custos.mcpr", buf, len);
    free(buf);
    snprintf(line, sizeof(line), "OK %s %s %s%s", path, cli_str(r.json, "request_id"),
             cli_str(r.json, "state"), r.http.status == 200 ? " (already uploaded)" : "");
    bulk_item(b, path, &r, NULL, line);
    cli_reply_clear(&r);
}

int cmd_requests_upload(cli_ctx *ctx, const cli_args *a)
{
    path_list files;
    bulk b;
    int rc = 0;
    struct stat st;
    memset(&files, 0, sizeof(files));
    for (size_t i = 0; i < a->n_pos; i++) {
        if (stat(a->pos[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (add_dir(&files, a->pos[i]) != 0)
                rc = EXIT_REFUSED;
        } else if (path_add(&files, NULL, a->pos[i]) != 0) {
            rc = cli_fail(CUSTOS_ERR_TOO_LARGE, "file", "too many files (at most %u)", MAX_BULK);
        }
    }
    bulk_start(&b, ctx, "uploading", "uploaded", files.n, 0);
    for (size_t i = 0; i < files.n; i++)
        upload_one(&b, files.items[i]);
    if (bulk_finish(&b) != 0)
        rc = EXIT_REFUSED;
    path_list_free(&files);
    return rc;
}

/* ---- devices list ---------------------------------------------------------- */

static const char *const states[] = {"pending",  "approved", "certified", "provisioned",
                                     "rejected", "expired",  "revoked"};
#define N_STATES (sizeof(states) / sizeof(states[0]))

/* "N requests shown; pending 3, certified 2 ..." (the server's counts over the filter). */
static void print_counts(const json_t *list)
{
    const json_t *counts = json_object_get(list, "counts");
    const json_t *items = json_object_get(list, "items");
    size_t n = json_array_size(items);
    printf("%zu request%s shown", n, n == 1 ? "" : "s");
    if (!json_is_object(counts)) {
        printf("\n");
        return;
    }
    printf("; ");
    int first = 1;
    /* The state machine's order first, then any other state the server counts. */
    for (size_t s = 0; s < N_STATES; s++) {
        const json_t *c = json_object_get(counts, states[s]);
        if (json_is_integer(c)) {
            printf("%s%s %" JSON_INTEGER_FORMAT, first ? "" : ", ", states[s],
                   json_integer_value(c));
            first = 0;
        }
    }
    const char *key;
    const json_t *c;
    json_object_foreach((json_t *)counts, key, c)
    {
        int known = 0;
        for (size_t s = 0; s < N_STATES; s++)
            known |= strcmp(key, states[s]) == 0;
        if (!known && json_is_integer(c)) {
            printf("%s", first ? "" : ", ");
            cli_put_safe(stdout, key);
            printf(" %" JSON_INTEGER_FORMAT, json_integer_value(c));
            first = 0;
        }
    }
    printf("\n");
}

static int print_requests(const cli_ctx *ctx, const json_t *list)
{
    static const char *const headers[] = {"REQUEST ID", "STATE", "SYSTEM", "COMPONENT",
                                          "SERIAL",     "MODEL", "VIA",    "UPDATED"};
    static const char *const keys[] = {"request_id", "state", "system", "component",
                                       "serial",     "model", "via",    "updated"};
    cli_table *t = cli_table_new(8, headers);
    size_t i;
    const json_t *item;
    if (t == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    /* The id, state, serial and time are never cut; the others give way. */
    cli_table_keep(t, 0);
    cli_table_keep(t, 1);
    cli_table_keep(t, 4);
    cli_table_keep(t, 7);
    json_array_foreach(json_object_get(list, "items"), i, item)
    {
        const char *cells[8];
        for (size_t c = 0; c < 8; c++)
            cells[c] = cli_str(item, keys[c]);
        if (cli_table_add(t, cells) != 0) {
            cli_table_free(t);
            return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        }
    }
    cli_table_print(t, stdout, cli_terminal_width(stdout));
    cli_table_free(t);
    if (!ctx->quiet) {
        print_counts(list);
        if (json_string_value(json_object_get(list, "next_cursor")) != NULL)
            fprintf(stderr, "custos: more on the next pages: add --all\n");
    }
    return 0;
}

int cmd_devices_list(cli_ctx *ctx, const cli_args *a)
{
    json_t *list = NULL;
    cli_url url;
    cli_url_init(&url, ctx, "/requests");
    cli_url_query(&url, "state", cli_get(a, "state"));
    cli_url_query(&url, "system", cli_get(a, "system"));
    cli_url_query(&url, "component", cli_get(a, "component"));
    cli_url_query(&url, "q", cli_get(a, "search"));
    int rc = cli_list(&list, ctx, a, &url);
    if (rc != 0)
        return rc;
    if (ctx->json)
        cli_print_json(list);
    else
        rc = print_requests(ctx, list);
    json_decref(list);
    return rc;
}

/* ---- one request ----------------------------------------------------------- */

static void render_request(const json_t *obj)
{
    cli_render_object(stdout, obj, 0);
    if (json_is_true(json_object_get(obj, "duplicate_serial")))
        printf("note: another request carries the same serial\n");
}

int cmd_devices_show(cli_ctx *ctx, const cli_args *a)
{
    cli_url url;
    cli_url_init(&url, ctx, "/requests");
    cli_url_seg(&url, a->pos[0]);
    return cli_show_command(ctx, &url, render_request);
}

/* POST /api/v1/requests/{id}/@p action for every id in @p ids. */
static int act_on(cli_ctx *ctx, const char *const *ids, size_t n, const char *action,
                  const char *label, const char *what, const json_t *body, int as_list)
{
    bulk b;
    char line[512];
    bulk_start(&b, ctx, label, what, n, as_list);
    for (size_t i = 0; i < n; i++) {
        cli_reply r;
        cli_url url;
        cli_url_init(&url, ctx, "/requests");
        cli_url_seg(&url, ids[i]);
        cli_url_lit(&url, "/");
        cli_url_lit(&url, action);
        if (body != NULL)
            cli_call_json(&r, ctx, "POST", &url, body);
        else
            cli_call(&r, ctx, "POST", &url, NULL, NULL, 0);
        snprintf(line, sizeof(line), "OK %s %s",
                 cli_str(r.json, "request_id")[0] != '\0' ? cli_str(r.json, "request_id") : ids[i],
                 cli_str(r.json, "state"));
        bulk_item(&b, ids[i], &r, NULL, line);
        cli_reply_clear(&r);
    }
    return bulk_finish(&b);
}

/* The ids of every pending request (of --system). */
static int pending_ids(json_t **out, cli_ctx *ctx, const char *system)
{
    cli_url url;
    cli_url_init(&url, ctx, "/requests");
    cli_url_query(&url, "state", "pending");
    cli_url_query(&url, "system", system);
    cli_url_query(&url, "limit", "500");
    return cli_fetch_list(out, ctx, &url, 1);
}

int check_devices_approve(const cli_command *c, const cli_args *a)
{
    int all = cli_flag(a, "all-pending");
    if (all && a->n_pos > 0)
        return cli_usage_error(c, "give request ids or --all-pending, not both");
    if (!all && a->n_pos == 0)
        return cli_usage_error(c, "give the request ids to approve, or --all-pending");
    if (!all && cli_get(a, "system") != NULL)
        return cli_usage_error(c, "--system goes with --all-pending");
    return 0;
}

int cmd_devices_approve(cli_ctx *ctx, const cli_args *a)
{
    int all = cli_flag(a, "all-pending");
    const char *system = cli_get(a, "system");
    if (!all)
        return act_on(ctx, a->pos, a->n_pos, "approve", "approving", "approved", NULL, 0);
    /* The ids first, then the approvals: approving moves requests out of the
     * pending pages being read. */
    json_t *list = NULL;
    int rc = pending_ids(&list, ctx, system);
    if (rc != 0)
        return rc;
    json_t *items = json_object_get(list, "items");
    size_t n = json_array_size(items);
    const char **ids = calloc(n + 1, sizeof(*ids));
    if (ids == NULL) {
        json_decref(list);
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = cli_str(json_array_get(items, i), "request_id");
        if (id[0] != '\0')
            ids[k++] = id;
    }
    if (k == 0) {
        if (ctx->json)
            printf("{\"items\":[]}\n");
        else if (!ctx->quiet)
            printf("no pending requests\n");
        rc = 0;
    } else {
        rc = act_on(ctx, ids, k, "approve", "approving", "approved", NULL, 1);
    }
    free(ids);
    json_decref(list);
    return rc;
}

int cmd_devices_reject(cli_ctx *ctx, const cli_args *a)
{
    json_t *body = json_pack("{s:s}", "reason", cli_get(a, "reason"));
    if (body == NULL)
        return cli_fail(CUSTOS_ERR_ARG, "reason", "the reason is not UTF-8 text");
    int rc = act_on(ctx, a->pos, a->n_pos, "reject", "rejecting", "rejected", body, 0);
    json_decref(body);
    return rc;
}

int cmd_devices_complete(cli_ctx *ctx, const cli_args *a)
{
    return act_on(ctx, a->pos, a->n_pos, "complete", "completing", "completed", NULL, 0);
}

int cmd_profiles_download(cli_ctx *ctx, const cli_args *a)
{
    const char *out_path = cli_get(a, "out");
    cli_url url;
    cli_url_init(&url, ctx, "/requests");
    cli_url_seg(&url, a->pos[0]);
    cli_url_lit(&url, "/profile");
    /* A profile holds no secret: readable like any certificate. */
    int rc =
        cli_download(ctx, &url, "application/vnd.custos.mccp", out_path, 0644, "certified profile");
    if (rc == 0 && !ctx->quiet && !ctx->json)
        printf("next: 'custos-device install --profile %s' on the device, then 'custos devices "
               "complete %s'\n",
               out_path, a->pos[0]);
    return rc;
}
