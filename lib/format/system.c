/* system.json: the definition of a system, its components and key templates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"

#define DEFAULT_RENEWAL_WINDOW_DAYS 30

static custos_err url_copy(char *dst, const json_t *v, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *s;

    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, path, "%s must be a string", path);
    s = json_string_value(v);
    CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_URL_LEN, CUSTOS_ERR_LIMIT, path,
                  "%s is longer than %d bytes", path, CUSTOS_MAX_URL_LEN);
    CUSTOS_ENSURE(s[0] == '\0' ||
                      ((strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0) &&
                       strchr(s, ' ') == NULL && custos_text_valid(s, CUSTOS_MAX_URL_LEN)),
                  CUSTOS_ERR_MALFORMED, path, "%s must be an http(s) URL without spaces", path);
    memcpy(dst, s, json_string_length(v) + 1);
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err services_parse(custos_services *out, const json_t *j)
{
    static const char *const keys[] = {"cloud_url", "gateways", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const json_t *v;
    char path[64];

    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return CUSTOS_OK;
    CUSTOS_GUARD(custos_json_check_keys(j, keys, "services"));
    if ((v = json_object_get(j, "cloud_url")) != NULL)
        CUSTOS_GUARD(url_copy(out->cloud_url, v, "services.cloud_url"));
    if ((v = json_object_get(j, "gateways")) != NULL) {
        CUSTOS_ENSURE(json_is_array(v), CUSTOS_ERR_MALFORMED, "services.gateways",
                      "services.gateways must be an array");
        CUSTOS_ENSURE(json_array_size(v) <= CUSTOS_MAX_GATEWAYS, CUSTOS_ERR_LIMIT,
                      "services.gateways", "services.gateways has more than %d entries",
                      CUSTOS_MAX_GATEWAYS);
        for (size_t i = 0; i < json_array_size(v); i++) {
            (void)snprintf(path, sizeof(path), "services.gateways[%zu]", i);
            CUSTOS_GUARD(url_copy(out->gateways[i], json_array_get(v, i), path));
            CUSTOS_ENSURE(out->gateways[i][0] != '\0', CUSTOS_ERR_MALFORMED, path, "%s is empty",
                          path);
            out->n_gateways++;
        }
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err components_parse(custos_system_def *s, const json_t *arr)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char path[64];

    CUSTOS_ENSURE(json_is_array(arr) && json_array_size(arr) > 0, CUSTOS_ERR_MALFORMED,
                  "components", "components must be a non-empty array");
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_COMPONENTS, CUSTOS_ERR_LIMIT, "components",
                  "components has more than %d entries", CUSTOS_MAX_COMPONENTS);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        (void)snprintf(path, sizeof(path), "components[%zu]", i);
        CUSTOS_GUARD(custos_component_from_json(&s->components[i], json_array_get(arr, i), path));
        CUSTOS_ENSURE(custos_system_component(s, s->components[i].name) == NULL,
                      CUSTOS_ERR_DUPLICATE, path, "%s: component name \"%s\" is used twice", path,
                      s->components[i].name);
        s->n_components++;
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_system_parse(custos_system_def **out, const uint8_t *json, size_t len)
{
    static const char *const keys[] = {
        "name", "display_name", "services", "renewal_window_days", "components", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_system_def *s = NULL;
    json_t *j = NULL;
    const json_t *v;
    json_int_t days;

    *out = NULL;
    CUSTOS_ENSURE(len <= CUSTOS_MAX_SYSTEM_JSON_SIZE, CUSTOS_ERR_TOO_LARGE, "system",
                  "the system definition is %zu bytes, over the limit of %u bytes", len,
                  (unsigned)CUSTOS_MAX_SYSTEM_JSON_SIZE);
    CUSTOS_GUARD(custos_json_parse(&j, json, len, "system definition"));
    CUSTOS_GUARD(custos_json_check_keys(j, keys, ""));
    s = calloc(1, sizeof(*s));
    CUSTOS_ENSURE(s != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");

    v = json_object_get(j, "name");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, "name", "name is required (a string)");
    CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_NAME_LEN, CUSTOS_ERR_LIMIT, "name",
                  "name is longer than %d characters", CUSTOS_MAX_NAME_LEN);
    CUSTOS_ENSURE(custos_name_valid(json_string_value(v), CUSTOS_MAX_NAME_LEN),
                  CUSTOS_ERR_MALFORMED, "name", "name must match [a-z0-9][a-z0-9_.-]*");
    memcpy(s->name, json_string_value(v), json_string_length(v) + 1);

    v = json_object_get(j, "display_name");
    if (v != NULL) {
        CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, "display_name",
                      "display_name must be a string");
        CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_META_VALUE_LEN, CUSTOS_ERR_LIMIT,
                      "display_name", "display_name is longer than %d bytes",
                      CUSTOS_MAX_META_VALUE_LEN);
        CUSTOS_ENSURE(custos_text_valid(json_string_value(v), CUSTOS_MAX_META_VALUE_LEN),
                      CUSTOS_ERR_MALFORMED, "display_name", "display_name has control characters");
        memcpy(s->display_name, json_string_value(v), json_string_length(v) + 1);
    } else {
        memcpy(s->display_name, s->name, strlen(s->name) + 1);
    }

    CUSTOS_GUARD(services_parse(&s->services, json_object_get(j, "services")));

    s->renewal_window_days = DEFAULT_RENEWAL_WINDOW_DAYS;
    v = json_object_get(j, "renewal_window_days");
    if (v != NULL) {
        CUSTOS_ENSURE(json_is_integer(v), CUSTOS_ERR_MALFORMED, "renewal_window_days",
                      "renewal_window_days must be an integer");
        days = json_integer_value(v);
        CUSTOS_ENSURE(days >= 1 && days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_LIMIT,
                      "renewal_window_days", "renewal_window_days must be between 1 and %d",
                      CUSTOS_MAX_VALID_DAYS);
        s->renewal_window_days = (unsigned)days;
    }

    CUSTOS_GUARD(components_parse(s, json_object_get(j, "components")));
    *out = s;
    s = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(j);
    free(s);
    return ret;
}

custos_err custos_system_to_json(json_t **out, const custos_system_def *s)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = NULL, *comps = NULL, *c = NULL, *services = NULL;

    *out = NULL;
    CUSTOS_ENSURE(s != NULL && s->n_components >= 1 && s->n_components <= CUSTOS_MAX_COMPONENTS,
                  CUSTOS_ERR_ARG, "components", "a system has 1 to %d components",
                  CUSTOS_MAX_COMPONENTS);
    comps = json_array();
    CUSTOS_ENSURE(comps != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < s->n_components; i++) {
        CUSTOS_GUARD(custos_component_to_json(&c, &s->components[i]));
        CUSTOS_ENSURE(json_array_append_new(comps, c) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
        c = NULL;
    }
    CUSTOS_GUARD(custos_doc_services_to_json(&services, &s->services));
    o = json_pack("{s:s, s:s, s:O, s:I, s:O}", "name", s->name, "display_name", s->display_name,
                  "services", services, "renewal_window_days", (json_int_t)s->renewal_window_days,
                  "components", comps);
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_MALFORMED, "system", "cannot encode system %s", s->name);
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(c);
    json_decref(comps);
    json_decref(services);
    json_decref(o);
    return ret;
}

void custos_system_free(custos_system_def *s)
{
    free(s);
}

const custos_component_def *custos_system_component(const custos_system_def *s, const char *name)
{
    if (s == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_components; i++) {
        if (strcmp(s->components[i].name, name) == 0)
            return &s->components[i];
    }
    return NULL;
}
