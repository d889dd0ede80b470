/* Key templates and components: JSON <-> structs, shared by system.json and
 * the provisioning package. Strict: unknown fields are errors naming their path. */
#include <stdio.h>
#include <string.h>

#include "internal/format.h"

static const struct {
    unsigned bit;
    const char *name;
} usage_names[] = {
    {CUSTOS_USAGE_TLS_CLIENT, "tls-client"},
    {CUSTOS_USAGE_TLS_SERVER, "tls-server"},
    {CUSTOS_USAGE_SIGNING, "signing"},
};
#define N_USAGES (sizeof(usage_names) / sizeof(usage_names[0]))

#define DEFAULT_SUBJECT "CN={serial},OU={component},O={system}"
#define DEFAULT_VALID_DAYS 365

custos_err custos_usage_from_json(unsigned *out, const json_t *j, const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    unsigned set = 0;
    char path[128];

    *out = 0;
    CUSTOS_ENSURE(json_is_array(j) && json_array_size(j) > 0, CUSTOS_ERR_MALFORMED, field,
                  "%s must be a non-empty array of \"tls-client\", \"tls-server\", \"signing\"",
                  field);
    CUSTOS_ENSURE(json_array_size(j) <= N_USAGES, CUSTOS_ERR_LIMIT, field,
                  "%s has more than %zu entries", field, N_USAGES);
    for (size_t i = 0; i < json_array_size(j); i++) {
        const json_t *e = json_array_get(j, i);
        size_t k = 0;

        (void)snprintf(path, sizeof(path), "%s[%zu]", field, i);
        CUSTOS_ENSURE(json_is_string(e), CUSTOS_ERR_MALFORMED, path, "%s must be a string", path);
        while (k < N_USAGES && strcmp(usage_names[k].name, json_string_value(e)) != 0)
            k++;
        CUSTOS_ENSURE(k < N_USAGES, CUSTOS_ERR_MALFORMED, path,
                      "%s: unknown usage \"%.32s\" (tls-client, tls-server, signing)", path,
                      json_string_value(e));
        CUSTOS_ENSURE((set & usage_names[k].bit) == 0, CUSTOS_ERR_DUPLICATE, path,
                      "%s: usage \"%s\" is listed twice", path, usage_names[k].name);
        set |= usage_names[k].bit;
    }
    *out = set;
    ret = CUSTOS_OK;
out:
    return ret;
}

static custos_err usage_to_json(json_t **out, unsigned usage)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *arr = json_array();

    *out = NULL;
    CUSTOS_ENSURE(arr != NULL, CUSTOS_ERR_NOMEM, "usage", "out of memory");
    CUSTOS_ENSURE(usage != 0 &&
                      (usage & ~(unsigned)(CUSTOS_USAGE_TLS_CLIENT | CUSTOS_USAGE_TLS_SERVER |
                                           CUSTOS_USAGE_SIGNING)) == 0,
                  CUSTOS_ERR_ARG, "usage", "invalid key usage set 0x%x", usage);
    for (size_t k = 0; k < N_USAGES; k++) {
        if ((usage & usage_names[k].bit) != 0)
            CUSTOS_ENSURE(json_array_append_new(arr, json_string(usage_names[k].name)) == 0,
                          CUSTOS_ERR_NOMEM, "usage", "out of memory");
    }
    *out = arr;
    arr = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(arr);
    return ret;
}

static const char *path_of(char *buf, size_t cap, const char *field, const char *key)
{
    (void)snprintf(buf, cap, "%s.%s", field, key);
    return buf;
}

custos_err custos_template_from_json(custos_key_template *out, const json_t *j, const char *field)
{
    static const char *const keys[] = {"name", "algorithm", "usage", "valid_days", "subject", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_key_template t;
    const json_t *v;
    char path[128];
    json_int_t days;

    memset(out, 0, sizeof(*out));
    memset(&t, 0, sizeof(t));
    if (field == NULL)
        field = "template";
    CUSTOS_GUARD(custos_json_check_keys(j, keys, field));

    v = json_object_get(j, "name");
    path_of(path, sizeof(path), field, "name");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, path, "%s is required (a string)", path);
    CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_TEMPLATE_NAME_LEN, CUSTOS_ERR_LIMIT, path,
                  "%s is longer than %d characters", path, CUSTOS_MAX_TEMPLATE_NAME_LEN);
    CUSTOS_ENSURE(custos_name_valid(json_string_value(v), CUSTOS_MAX_TEMPLATE_NAME_LEN),
                  CUSTOS_ERR_MALFORMED, path, "%s must match [a-z0-9][a-z0-9_.-]*", path);
    memcpy(t.name, json_string_value(v), json_string_length(v) + 1);

    t.alg = CUSTOS_ALG_ECDSA_P256;
    v = json_object_get(j, "algorithm");
    path_of(path, sizeof(path), field, "algorithm");
    if (v != NULL) {
        CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, path, "%s must be a string", path);
        t.alg = custos_alg_from_name(json_string_value(v));
        CUSTOS_ENSURE(t.alg != CUSTOS_ALG_NONE, CUSTOS_ERR_UNSUPPORTED, path,
                      "%s: \"%.32s\" is not one of ecdsa-p256, ecdsa-p384, ed25519, rsa-3072", path,
                      json_string_value(v));
    }

    path_of(path, sizeof(path), field, "usage");
    CUSTOS_GUARD(custos_usage_from_json(&t.usage, json_object_get(j, "usage"), path));

    t.valid_days = DEFAULT_VALID_DAYS;
    v = json_object_get(j, "valid_days");
    path_of(path, sizeof(path), field, "valid_days");
    if (v != NULL) {
        CUSTOS_ENSURE(json_is_integer(v), CUSTOS_ERR_MALFORMED, path, "%s must be an integer",
                      path);
        days = json_integer_value(v);
        CUSTOS_ENSURE(days >= 1 && days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_LIMIT, path,
                      "%s must be between 1 and %d", path, CUSTOS_MAX_VALID_DAYS);
        t.valid_days = (unsigned)days;
    }

    v = json_object_get(j, "subject");
    path_of(path, sizeof(path), field, "subject");
    if (v != NULL) {
        CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, path, "%s must be a string", path);
        CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_SUBJECT_LEN, CUSTOS_ERR_LIMIT, path,
                      "%s is longer than %d bytes", path, CUSTOS_MAX_SUBJECT_LEN);
        CUSTOS_GUARD(custos_subject_pattern_check(json_string_value(v), path));
        memcpy(t.subject, json_string_value(v), json_string_length(v) + 1);
    } else {
        memcpy(t.subject, DEFAULT_SUBJECT, sizeof(DEFAULT_SUBJECT));
    }
    *out = t;
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_template_to_json(json_t **out, const custos_key_template *t)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = NULL, *usage = NULL;
    const char *alg = custos_alg_name(t->alg);

    *out = NULL;
    CUSTOS_ENSURE(alg != NULL, CUSTOS_ERR_ARG, "algorithm", "template %s has no algorithm",
                  t->name);
    CUSTOS_ENSURE(custos_name_valid(t->name, CUSTOS_MAX_TEMPLATE_NAME_LEN), CUSTOS_ERR_ARG, "name",
                  "invalid template name");
    CUSTOS_ENSURE(t->valid_days >= 1 && t->valid_days <= CUSTOS_MAX_VALID_DAYS, CUSTOS_ERR_ARG,
                  "valid_days", "template %s: invalid validity", t->name);
    CUSTOS_GUARD(usage_to_json(&usage, t->usage));
    o = json_pack("{s:s, s:s, s:O, s:I, s:s}", "name", t->name, "algorithm", alg, "usage", usage,
                  "valid_days", (json_int_t)t->valid_days, "subject", t->subject);
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_MALFORMED, "template", "cannot encode template %s",
                  t->name);
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(usage);
    json_decref(o);
    return ret;
}

custos_err custos_component_from_json(custos_component_def *out, const json_t *j, const char *field)
{
    static const char *const keys[] = {"name", "templates", "gateway", NULL};
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_component_def *c = out;
    const json_t *v, *arr;
    char path[128];

    memset(out, 0, sizeof(*out));
    if (field == NULL)
        field = "component";
    CUSTOS_GUARD(custos_json_check_keys(j, keys, field));
    v = json_object_get(j, "name");
    path_of(path, sizeof(path), field, "name");
    CUSTOS_ENSURE(json_is_string(v), CUSTOS_ERR_MALFORMED, path, "%s is required (a string)", path);
    CUSTOS_ENSURE(json_string_length(v) <= CUSTOS_MAX_NAME_LEN, CUSTOS_ERR_LIMIT, path,
                  "%s is longer than %d characters", path, CUSTOS_MAX_NAME_LEN);
    CUSTOS_ENSURE(custos_name_valid(json_string_value(v), CUSTOS_MAX_NAME_LEN),
                  CUSTOS_ERR_MALFORMED, path, "%s must match [a-z0-9][a-z0-9_.-]*", path);
    memcpy(c->name, json_string_value(v), json_string_length(v) + 1);

    v = json_object_get(j, "gateway");
    path_of(path, sizeof(path), field, "gateway");
    CUSTOS_ENSURE(v == NULL || json_is_boolean(v), CUSTOS_ERR_MALFORMED, path,
                  "%s must be true or false", path);
    c->gateway = v != NULL && json_is_true(v);

    arr = json_object_get(j, "templates");
    path_of(path, sizeof(path), field, "templates");
    CUSTOS_ENSURE(json_is_array(arr) && json_array_size(arr) > 0, CUSTOS_ERR_MALFORMED, path,
                  "%s must be a non-empty array", path);
    CUSTOS_ENSURE(json_array_size(arr) <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_LIMIT, path,
                  "%s has more than %d templates", path, CUSTOS_MAX_TEMPLATES);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        (void)snprintf(path, sizeof(path), "%s.templates[%zu]", field, i);
        CUSTOS_GUARD(custos_template_from_json(&c->templates[i], json_array_get(arr, i), path));
        for (size_t k = 0; k < i; k++)
            CUSTOS_ENSURE(strcmp(c->templates[k].name, c->templates[i].name) != 0,
                          CUSTOS_ERR_DUPLICATE, path, "%s: template name \"%s\" is used twice",
                          path, c->templates[i].name);
        c->n_templates++;
    }
    {
        /* A device signs its reprovisioning requests (CMS) with one of its
         * keys, and OpenSSL 3's CMS cannot sign with Ed25519. */
        int signable = 0;
        for (size_t i = 0; i < c->n_templates; i++)
            signable |= c->templates[i].alg != CUSTOS_ALG_ED25519;
        path_of(path, sizeof(path), field, "templates");
        CUSTOS_ENSURE(signable, CUSTOS_ERR_UNSUPPORTED, path,
                      "%s: component %s needs at least one key that is not ed25519 to sign its "
                      "reprovisioning requests",
                      path, c->name);
    }
    ret = CUSTOS_OK;
out:
    if (ret < 0)
        memset(out, 0, sizeof(*out));
    return ret;
}

custos_err custos_component_to_json(json_t **out, const custos_component_def *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    json_t *o = NULL, *arr = NULL, *t = NULL;

    *out = NULL;
    CUSTOS_ENSURE(c->n_templates >= 1 && c->n_templates <= CUSTOS_MAX_TEMPLATES, CUSTOS_ERR_ARG,
                  "templates", "component %s must have 1 to %d templates", c->name,
                  CUSTOS_MAX_TEMPLATES);
    CUSTOS_ENSURE(custos_name_valid(c->name, CUSTOS_MAX_NAME_LEN), CUSTOS_ERR_ARG, "name",
                  "invalid component name");
    arr = json_array();
    CUSTOS_ENSURE(arr != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < c->n_templates; i++) {
        CUSTOS_GUARD(custos_template_to_json(&t, &c->templates[i]));
        CUSTOS_ENSURE(json_array_append_new(arr, t) == 0, CUSTOS_ERR_NOMEM, NULL, "out of memory");
        t = NULL;
    }
    o = json_pack("{s:s, s:O}", "name", c->name, "templates", arr);
    CUSTOS_ENSURE(o != NULL, CUSTOS_ERR_NOMEM, NULL, "out of memory");
    /* Written only when set, so a component without it encodes as before. */
    if (c->gateway)
        CUSTOS_ENSURE(json_object_set_new(o, "gateway", json_true()) == 0, CUSTOS_ERR_NOMEM, NULL,
                      "out of memory");
    *out = o;
    o = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(t);
    json_decref(arr);
    json_decref(o);
    return ret;
}
