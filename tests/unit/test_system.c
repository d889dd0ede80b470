/* Unit tests: system.json, components and key templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"

static custos_err parse(custos_system_def **out, const char *s)
{
    return custos_system_parse(out, (const uint8_t *)s, strlen(s));
}

static const char full[] =
    "{\"name\":\"pump-x2\",\"display_name\":\"Infusion pump X2 \xe2\x80\x94 EU\","
    "\"services\":{\"cloud_url\":\"https://cloud.example\",\"gateways\":[\"https://gw1.example\"]},"
    "\"renewal_window_days\":45,"
    "\"components\":["
    "{\"name\":\"pump\",\"templates\":[{\"name\":\"tls\",\"algorithm\":\"ecdsa-p384\","
    "\"usage\":[\"tls-client\",\"signing\"],\"valid_days\":730,"
    "\"subject\":\"CN={serial},OU={component},O=Acme Medical\"},"
    "{\"name\":\"sign\",\"algorithm\":\"ed25519\",\"usage\":[\"signing\"]}]},"
    "{\"name\":\"hub\",\"templates\":[{\"name\":\"tls\",\"algorithm\":\"rsa-3072\","
    "\"usage\":[\"tls-server\",\"tls-client\"]}]}]}";

static void test_parse_full(void **state)
{
    custos_system_def *s = NULL;
    const custos_component_def *c;

    (void)state;
    assert_int_equal(parse(&s, full), 0);
    assert_string_equal(s->name, "pump-x2");
    assert_string_equal(s->services.cloud_url, "https://cloud.example");
    assert_int_equal(s->services.n_gateways, 1);
    assert_int_equal(s->renewal_window_days, 45);
    assert_int_equal(s->n_components, 2);
    c = custos_system_component(s, "pump");
    assert_non_null(c);
    assert_int_equal(c->n_templates, 2);
    assert_int_equal(c->templates[0].alg, CUSTOS_ALG_ECDSA_P384);
    assert_int_equal(c->templates[0].usage, CUSTOS_USAGE_TLS_CLIENT | CUSTOS_USAGE_SIGNING);
    assert_int_equal(c->templates[0].valid_days, 730);
    assert_int_equal(c->templates[1].alg, CUSTOS_ALG_ED25519);
    assert_int_equal(c->templates[1].valid_days, 365);
    assert_string_equal(c->templates[1].subject, "CN={serial},OU={component},O={system}");
    assert_int_equal(custos_system_component(s, "hub")->templates[0].alg, CUSTOS_ALG_RSA_3072);
    assert_null(custos_system_component(s, "nope"));
    custos_system_free(s);
    custos_system_free(NULL);
}

static void test_defaults_and_roundtrip(void **state)
{
    custos_system_def *s = NULL, *s2 = NULL;
    json_t *j = NULL;
    char *text = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(parse(&s, "{\"name\":\"sys\",\"components\":[{\"name\":\"c\",\"templates\":"
                               "[{\"name\":\"t\",\"usage\":[\"tls-client\"]}]}]}"),
                     0);
    assert_string_equal(s->display_name, "sys");
    assert_int_equal(s->renewal_window_days, 30);
    assert_string_equal(s->services.cloud_url, "");
    assert_int_equal(s->components[0].templates[0].alg, CUSTOS_ALG_ECDSA_P256);
    assert_int_equal(custos_system_to_json(&j, s), 0);
    assert_int_equal(custos_json_dump(&text, &n, j), 0);
    assert_int_equal(custos_system_parse(&s2, (const uint8_t *)text, n), 0);
    assert_memory_equal(s, s2, sizeof(*s));
    free(text);
    json_decref(j);
    custos_system_free(s);
    custos_system_free(s2);

    assert_int_equal(parse(&s, full), 0);
    assert_int_equal(custos_system_to_json(&j, s), 0);
    assert_int_equal(custos_json_dump(&text, &n, j), 0);
    assert_int_equal(custos_system_parse(&s2, (const uint8_t *)text, n), 0);
    assert_memory_equal(s, s2, sizeof(*s));
    free(text);
    json_decref(j);
    custos_system_free(s);
    custos_system_free(s2);
}

struct bad_case {
    const char *json;
    custos_err code;
    const char *field;
};

#define COMP(t) "{\"name\":\"sys\",\"components\":[{\"name\":\"c\",\"templates\":[" t "]}]}"
#define T_OK "{\"name\":\"t\",\"usage\":[\"tls-client\"]}"

static void test_negative(void **state)
{
    static const struct bad_case cases[] = {
        {"{\"name\":\"sys\",\"name\":\"x\",\"components\":[]}", CUSTOS_ERR_MALFORMED,
         "system definition"},
        {"{\"name\":\"sys\",\"colour\":1,\"components\":[{\"name\":\"c\",\"templates\":[" T_OK
         "]}]}",
         CUSTOS_ERR_MALFORMED, "colour"},
        {"{\"name\":\"Sys\",\"components\":[{\"name\":\"c\",\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_MALFORMED, "name"},
        {"{\"name\":\"sys\",\"components\":[]}", CUSTOS_ERR_MALFORMED, "components"},
        {"{\"name\":\"sys\"}", CUSTOS_ERR_MALFORMED, "components"},
        {"{\"components\":[{\"name\":\"c\",\"templates\":[" T_OK "]}]}", CUSTOS_ERR_MALFORMED,
         "name"},
        {COMP("{\"name\":\"t\",\"usage\":[\"tls-client\"],\"algorithmx\":\"x\"}"),
         CUSTOS_ERR_MALFORMED, "components[0].templates[0].algorithmx"},
        {COMP(T_OK ",{\"name\":\"u\",\"algorithm\":\"rsa-2048\",\"usage\":[\"signing\"]}"),
         CUSTOS_ERR_UNSUPPORTED, "components[0].templates[1].algorithm"},
        /* every key Ed25519: nothing could sign a reprovisioning request */
        {COMP("{\"name\":\"t\",\"algorithm\":\"ed25519\",\"usage\":[\"tls-client\"]}"),
         CUSTOS_ERR_UNSUPPORTED, "components[0].templates"},
        {COMP("{\"name\":\"t\",\"usage\":[]}"), CUSTOS_ERR_MALFORMED,
         "components[0].templates[0].usage"},
        {COMP("{\"name\":\"t\"}"), CUSTOS_ERR_MALFORMED, "components[0].templates[0].usage"},
        {COMP("{\"name\":\"t\",\"usage\":[\"tls-client\",\"tls-client\"]}"), CUSTOS_ERR_DUPLICATE,
         "components[0].templates[0].usage[1]"},
        {COMP("{\"name\":\"t\",\"usage\":[\"email\"]}"), CUSTOS_ERR_MALFORMED,
         "components[0].templates[0].usage[0]"},
        {COMP("{\"name\":\"t\",\"usage\":[\"signing\"],\"valid_days\":0}"), CUSTOS_ERR_LIMIT,
         "components[0].templates[0].valid_days"},
        {COMP("{\"name\":\"t\",\"usage\":[\"signing\"],\"valid_days\":36501}"), CUSTOS_ERR_LIMIT,
         "components[0].templates[0].valid_days"},
        {COMP("{\"name\":\"t\",\"usage\":[\"signing\"],\"valid_days\":\"365\"}"),
         CUSTOS_ERR_MALFORMED, "components[0].templates[0].valid_days"},
        {COMP("{\"name\":\"t\",\"usage\":[\"signing\"],\"subject\":\"CN={bogus}\"}"),
         CUSTOS_ERR_MALFORMED, "components[0].templates[0].subject"},
        {COMP("{\"name\":\"t\",\"usage\":[\"signing\"],\"subject\":\"XX=a\"}"),
         CUSTOS_ERR_MALFORMED, "components[0].templates[0].subject"},
        {COMP(T_OK "," T_OK), CUSTOS_ERR_DUPLICATE, "components[0].templates[1]"},
        {COMP(T_OK "," T_OK "," T_OK "," T_OK "," T_OK "," T_OK "," T_OK "," T_OK "," T_OK),
         CUSTOS_ERR_LIMIT, "components[0].templates"},
        {COMP("{\"name\":\"this-template-name-is-far-too-long-for-it\",\"usage\":[\"signing\"]}"),
         CUSTOS_ERR_LIMIT, "components[0].templates[0].name"},
        {"{\"name\":\"sys\",\"components\":[{\"name\":\"c\",\"templates\":[" T_OK
         "]},{\"name\":\"c\",\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_DUPLICATE, "components[1]"},
        {"{\"name\":\"sys\",\"components\":[{\"name\":\"c\",\"templates\":[" T_OK
         "],\"extra\":1}]}",
         CUSTOS_ERR_MALFORMED, "components[0].extra"},
        {"{\"name\":\"sys\",\"services\":{\"cloud_url\":\"ftp://x\"},\"components\":[{\"name\":"
         "\"c\",\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_MALFORMED, "services.cloud_url"},
        {"{\"name\":\"sys\",\"services\":{\"proxy\":\"https://x\"},\"components\":[{\"name\":"
         "\"c\",\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_MALFORMED, "services.proxy"},
        {"{\"name\":\"sys\",\"renewal_window_days\":-1,\"components\":[{\"name\":\"c\","
         "\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_LIMIT, "renewal_window_days"},
        {"{\"name\":\"sys\",\"display_name\":\"a\\u0007b\",\"components\":[{\"name\":\"c\","
         "\"templates\":[" T_OK "]}]}",
         CUSTOS_ERR_MALFORMED, "display_name"},
        {"[1]", CUSTOS_ERR_MALFORMED, NULL},
        {"{\"name\":\"sys\"} {}", CUSTOS_ERR_MALFORMED, "system definition"},
    };
    custos_system_def *s = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        custos_err r = parse(&s, cases[i].json);

        if (r != cases[i].code ||
            (cases[i].field != NULL && strcmp(custos_error_last()->field, cases[i].field) != 0))
            fail_msg("case %zu: got %d field \"%s\" (%s)", i, r, custos_error_last()->field,
                     custos_error_last()->message);
        assert_null(s);
    }
}

static void test_too_large(void **state)
{
    size_t n = CUSTOS_MAX_SYSTEM_JSON_SIZE + 1;
    char *big = malloc(n);
    custos_system_def *s = NULL;

    (void)state;
    memset(big, ' ', n);
    assert_int_equal(custos_system_parse(&s, (const uint8_t *)big, n), CUSTOS_ERR_TOO_LARGE);
    free(big);
}

static void test_template_to_json(void **state)
{
    custos_key_template t, back;
    json_t *j = NULL;

    (void)state;
    memset(&t, 0, sizeof(t));
    memcpy(t.name, "tls", 4);
    t.alg = CUSTOS_ALG_ED25519;
    t.usage = CUSTOS_USAGE_TLS_SERVER;
    t.valid_days = 10;
    memcpy(t.subject, "CN=x", 5);
    assert_int_equal(custos_template_to_json(&j, &t), 0);
    assert_string_equal(json_string_value(json_object_get(j, "algorithm")), "ed25519");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "usage"), 0)),
                        "tls-server");
    assert_int_equal(custos_template_from_json(&back, j, "t"), 0);
    assert_memory_equal(&t, &back, sizeof(t));
    json_decref(j);
    t.usage = 0;
    assert_int_equal(custos_template_to_json(&j, &t), CUSTOS_ERR_ARG);
    assert_null(j);
}

/* "gateway": an optional boolean of a component, written only when true,
 * so that every other component (and every package) encodes as before. */
static void test_gateway_flag(void **state)
{
    static const char with[] =
        "{\"name\":\"s\",\"components\":[{\"name\":\"hub\",\"gateway\":true,\"templates\":["
        "{\"name\":\"tls\",\"usage\":[\"tls-client\"]}]},{\"name\":\"dev\",\"gateway\":false,"
        "\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"]}]}]}";
    custos_system_def *s = NULL, *s2 = NULL;
    json_t *j = NULL;
    char *text;

    (void)state;
    assert_int_equal(parse(&s, with), 0);
    assert_int_equal(custos_system_component(s, "hub")->gateway, 1);
    assert_int_equal(custos_system_component(s, "dev")->gateway, 0);
    assert_int_equal(custos_system_to_json(&j, s), 0);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"gateway\":true"));
    assert_null(strstr(text, "\"gateway\":false"));
    assert_int_equal(parse(&s2, text), 0);
    assert_int_equal(custos_system_component(s2, "hub")->gateway, 1);
    assert_int_equal(custos_system_component(s2, "dev")->gateway, 0);
    free(text);
    json_decref(j);
    custos_system_free(s);
    custos_system_free(s2);
    s = NULL;
    assert_int_equal(parse(&s, "{\"name\":\"s\",\"components\":[{\"name\":\"hub\",\"gateway\":1,"
                               "\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"]}]}]}"),
                     CUSTOS_ERR_MALFORMED);
    assert_null(s);
    assert_string_equal(custos_error_last()->field, "components[0].gateway");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),       cmocka_unit_test(test_defaults_and_roundtrip),
        cmocka_unit_test(test_negative),         cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_template_to_json), cmocka_unit_test(test_gateway_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
