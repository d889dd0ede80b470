/* Editing a system (custos_engine_system_update): what may change, what is
 * refused without a trace, and that other engines see the edit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/engine_fixture.h"

/* EF_SYSTEM_JSON with the "ctl" tls template's validity changed and a third
 * component "hub" added. */
static const char EDITED[] =
    "{\"name\":\"pump\",\"display_name\":\"Pump X2 (rev B)\","
    "\"services\":{\"cloud_url\":\"https://custos.example\"},\"renewal_window_days\":30,"
    "\"components\":["
    "{\"name\":\"ctl\",\"templates\":["
    "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],\"valid_days\":90,"
    "\"subject\":\"CN={serial},OU={component},O=Acme Medical\"},"
    "{\"name\":\"sign\",\"algorithm\":\"ecdsa-p384\",\"usage\":[\"signing\"],\"valid_days\":365,"
    "\"subject\":\"CN={serial} {template},OU={component}\"}]},"
    "{\"name\":\"longlived\",\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"],\"valid_days\":36500,"
    "\"subject\":\"CN={serial}\"}]},"
    "{\"name\":\"hub\",\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"],\"valid_days\":365,"
    "\"subject\":\"CN={serial}\"}]}]}";

static char *stored(ef_fx *f)
{
    char *json = NULL;
    OK(custos_engine_system_get(&json, f->e, "pump"));
    return json;
}

static void refused(ef_fx *f, const char *json, const char *name, custos_err want,
                    const char *field)
{
    char *before = stored(f);
    long long audits = ef_count_audit(f, "system.update", NULL);
    custos_err err =
        custos_engine_system_update(f->e, name, (const uint8_t *)json, strlen(json), &EF_ACTOR);
    char *after;

    assert_int_equal(err, want);
    assert_string_equal(custos_error_last()->field, field);
    after = stored(f);
    assert_string_equal(before, after);
    assert_int_equal(ef_count_audit(f, "system.update", NULL), audits);
    free(before);
    free(after);
}

static void test_edit_visible_everywhere(void **state)
{
    ef_fx *f = *state;
    custos_engine *other = NULL;
    char *json = NULL;
    custos_request_summary r;

    /* Another engine on the same data directory loads the system first. */
    OK(custos_engine_open(&other, f->dir));
    OK(custos_engine_system_get(&json, other, "pump"));
    assert_null(strstr(json, "\"hub\""));
    free(json);

    OK(custos_engine_system_update(f->e, "pump", (const uint8_t *)EDITED, strlen(EDITED),
                                   &EF_ACTOR));
    assert_int_equal(ef_count_audit(f, "system.update", "user:test"), 1);
    json = stored(f);
    assert_non_null(strstr(json, "\"hub\""));
    assert_non_null(strstr(json, "rev B"));
    free(json);
    /* The other engine's parsed copy follows the store. */
    OK(custos_engine_system_get(&json, other, "pump"));
    assert_non_null(strstr(json, "\"hub\""));
    free(json);
    custos_engine_free(other);

    /* Devices bootstrapped by the package made before the edit still go through. */
    ef_import_initial(f, "SN-EDIT-1", "import", &r);
    assert_string_equal(r.component, "ctl");
}

static void test_breaking_edits_refused(void **state)
{
    ef_fx *f = *state;
    char buf[4096];

    /* "longlived" removed */
    snprintf(buf, sizeof(buf), "%s",
             "{\"name\":\"pump\",\"display_name\":\"Pump X2\","
             "\"services\":{\"cloud_url\":\"https://custos.example\"},\"renewal_window_days\":30,"
             "\"components\":[{\"name\":\"ctl\",\"templates\":["
             "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],"
             "\"valid_days\":365,\"subject\":\"CN={serial}\"},"
             "{\"name\":\"sign\",\"algorithm\":\"ecdsa-p384\",\"usage\":[\"signing\"],"
             "\"valid_days\":365,\"subject\":\"CN={serial}\"}]}]}");
    refused(f, buf, "pump", CUSTOS_ERR_STATE, "components");
    /* "sign" moved to P-256 */
    snprintf(buf, sizeof(buf), "%s", EF_SYSTEM_JSON);
    memcpy(strstr(buf, "ecdsa-p384"), "ecdsa-p256", 10);
    refused(f, buf, "pump", CUSTOS_ERR_STATE, "templates");
    /* "ctl" loses its "sign" template */
    refused(f,
            "{\"name\":\"pump\",\"display_name\":\"Pump X2\","
            "\"services\":{\"cloud_url\":\"https://custos.example\"},\"renewal_window_days\":30,"
            "\"components\":[{\"name\":\"ctl\",\"templates\":["
            "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],"
            "\"valid_days\":365,\"subject\":\"CN={serial}\"}]},"
            "{\"name\":\"longlived\",\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"],"
            "\"valid_days\":36500,\"subject\":\"CN={serial}\"}]}]}",
            "pump", CUSTOS_ERR_STATE, "templates");
    /* a new component with a TLS server key but no services.gateways to name it */
    snprintf(buf, sizeof(buf), "%s", EDITED);
    memcpy(strstr(buf, "\"hub\",\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"]") +
               strlen("\"hub\",\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-"),
           "server", 6);
    refused(f, buf, "pump", CUSTOS_ERR_MALFORMED, "services.gateways");
    /* a rename, an unknown system, and a malformed body */
    refused(f, EDITED, "pump2", CUSTOS_ERR_ARG, "name");
    snprintf(buf, sizeof(buf), "%s", EDITED);
    memcpy(strstr(buf, "\"pump\""), "\"gh0s\"", 6);
    refused(f, buf, "gh0s", CUSTOS_ERR_NOT_FOUND, "system");
    refused(f, "{\"name\":", "pump", CUSTOS_ERR_MALFORMED, "system definition");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edit_visible_everywhere, ef_setup, ef_teardown),
        cmocka_unit_test_setup_teardown(test_breaking_edits_refused, ef_setup, ef_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
