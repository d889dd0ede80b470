/* The tools' readable rendering of the JSON the library describes files with. */
#include <string.h>

#include <jansson.h>

#include "jsonprint.h"

#define LONG_STRING 72

static void print_scalar(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        size_t len = json_string_length(v);
        const char *s = json_string_value(v);
        /* Shorten blobs (base64, hex), never sentences. */
        if (len > LONG_STRING && strchr(s, ' ') == NULL)
            fprintf(f, "%.40s... (%zu chars)", s, len);
        else
            fprintf(f, "%s", s);
        break;
    }
    case JSON_INTEGER:
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        fprintf(f, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        fputs("yes", f);
        break;
    case JSON_FALSE:
        fputs("no", f);
        break;
    case JSON_NULL:
        fputs("-", f);
        break;
    default:
        break;
    }
}

static int is_container(const json_t *v)
{
    return json_is_object(v) || json_is_array(v);
}

static void print_value(FILE *f, const json_t *v, int depth);

static void print_member(FILE *f, const char *key, const json_t *v, int depth)
{
    fprintf(f, "%*s%s:", depth * 2, "", key);
    if (is_container(v) && (json_object_size(v) > 0 || json_array_size(v) > 0)) {
        fputc('\n', f);
        print_value(f, v, depth + 1);
    } else if (is_container(v)) {
        fputs(" (none)\n", f);
    } else {
        fputc(' ', f);
        print_scalar(f, v);
        fputc('\n', f);
    }
}

/* Top level: what it is and what verified first, the content last. */
static const char *const first_keys[] = {"kind", "state", "verified", NULL};
static const char *const last_key = "content";

static int is_placed(const char *key)
{
    for (size_t i = 0; first_keys[i] != NULL; i++) {
        if (strcmp(first_keys[i], key) == 0)
            return 1;
    }
    return strcmp(key, last_key) == 0;
}

static void print_object(FILE *f, const json_t *obj, int depth)
{
    const char *key;
    json_t *v;
    if (depth == 0) {
        for (size_t i = 0; first_keys[i] != NULL; i++) {
            v = json_object_get(obj, first_keys[i]);
            if (v != NULL)
                print_member(f, first_keys[i], v, depth);
        }
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        if (depth != 0 || !is_placed(key))
            print_member(f, key, v, depth);
    }
    if (depth == 0 && (v = json_object_get(obj, last_key)) != NULL)
        print_member(f, last_key, v, depth);
}

static void print_value(FILE *f, const json_t *v, int depth)
{
    if (json_is_object(v)) {
        print_object(f, v, depth);
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (json_is_object(item)) {
                fprintf(f, "%*s- [%zu]\n", depth * 2, "", i + 1);
                print_object(f, item, depth + 1);
            } else if (json_is_array(item)) {
                fprintf(f, "%*s-\n", depth * 2, "");
                print_value(f, item, depth + 1);
            } else {
                fprintf(f, "%*s- ", depth * 2, "");
                print_scalar(f, item);
                fputc('\n', f);
            }
        }
        return;
    }
    fprintf(f, "%*s", depth * 2, "");
    print_scalar(f, v);
    fputc('\n', f);
}

void cli_print_json_human(FILE *f, const char *json)
{
    json_error_t err;
    json_t *j = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        fputs(json, f);
        fputc('\n', f);
        return;
    }
    print_value(f, j, 0);
    json_decref(j);
}
