/* Proxy provisioning in the engine: what system definitions must say for
 * gateways and tls-server templates, the server certificate's
 * subjectAltName, who is a gateway (by its client certificate), scoping to
 * the gateway's system, the admin's switch, and the migration to schema 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "support/engine_fixture.h"

/* A system with devices ("ctl") behind a gateway component ("hub"). */
static const char SITE_JSON[] =
    "{\"name\":\"site\",\"services\":{\"cloud_url\":\"https://custos.example\","
    "\"gateways\":[\"https://Hub.Site.example:9443\",\"http://10.20.30.40\",\"https://[fd00::1]/"
    "\"]},"
    "\"components\":["
    "{\"name\":\"ctl\",\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"]},"
    "{\"name\":\"sign\",\"algorithm\":\"ecdsa-p384\",\"usage\":[\"signing\"]}]},"
    "{\"name\":\"hub\",\"gateway\":true,\"templates\":["
    "{\"name\":\"tls\",\"usage\":[\"tls-client\"],\"subject\":\"CN={serial},OU={component}\"},"
    "{\"name\":\"server\",\"usage\":[\"tls-server\"],"
    "\"subject\":\"CN={serial}.hub,OU={component}\"}]}]}";

static const custos_actor GW_ACTOR = {"gateway:test", "127.0.0.2"};

typedef struct gfx {
    ef_fx *f;
    custos_package_doc *pkg;
    EVP_PKEY *boot;
} gfx;

static int setup(void **state)
{
    gfx *g = calloc(1, sizeof(*g));
    uint8_t *der = NULL;
    size_t len = 0;
    assert_non_null(g);
    assert_int_equal(ef_setup((void **)&g->f), 0);
    OK(custos_engine_system_create(g->f->e, (const uint8_t *)SITE_JSON, strlen(SITE_JSON),
                                   &EF_ACTOR));
    OK(custos_engine_package_create(&der, &len, g->f->e, "site", PASS, strlen(PASS), 30,
                                    &EF_ACTOR));
    OK(custos_package_decode(&g->pkg, der, len, NULL, g->f->now));
    OK(custos_package_key_decrypt(&g->boot, g->pkg->bootstrap_key_enc,
                                  g->pkg->bootstrap_key_enc_len, PASS, strlen(PASS)));
    free(der);
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    gfx *g = *state;
    custos_package_doc_free(g->pkg);
    EVP_PKEY_free(g->boot);
    ef_teardown((void **)&g->f);
    free(g);
    return 0;
}

/* A request of system "site": initial (signed with its package) or, with
 * @p p, a reprovisioning of @p device_id signed with its tls key keys[0]. */
static uint8_t *site_request(size_t *len, gfx *g, const char *component, const char *serial,
                             EVP_PKEY *keys[2], const custos_profile_doc *p, const char *device_id)
{
    static const char *const names[] = {"tls", "sign"};
    custos_request_doc *d = custos_request_doc_new();
    custos_signer sg;
    uint8_t *der = NULL;
    EVP_PKEY *signer_key = p != NULL ? keys[0] : NULL;
    int hub = strcmp(component, "hub") == 0;
    size_t i;

    assert_non_null(d);
    OK(custos_id_new(d->request_id, NULL));
    snprintf(d->system, sizeof(d->system), "site");
    snprintf(d->component, sizeof(d->component), "%s", component);
    snprintf(d->serial, sizeof(d->serial), "%s", serial);
    snprintf(d->model, sizeof(d->model), "H1");
    snprintf(d->firmware, sizeof(d->firmware), "1.0");
    d->kind = p != NULL ? CUSTOS_REQUEST_REPROVISION : CUSTOS_REQUEST_INITIAL;
    if (p != NULL)
        snprintf(d->device_id, sizeof(d->device_id), "%s", device_id);
    else
        snprintf(d->package_id, sizeof(d->package_id), "%s", g->pkg->package_id);
    for (i = 0; i < 2; i++) {
        EVP_PKEY *k = NULL;
        const char *name = hub && i == 1 ? "server" : names[i];
        OK(custos_key_generate(&k, hub || i == 0 ? CUSTOS_ALG_ECDSA_P256 : CUSTOS_ALG_ECDSA_P384));
        snprintf(d->keys[i].template_name, sizeof(d->keys[i].template_name), "%s", name);
        OK(custos_csr_build(&d->keys[i].csr, k, d->system, d->component, d->serial, name));
        d->n_keys++;
        if (keys != NULL && p == NULL)
            keys[i] = k;
        else
            EVP_PKEY_free(k);
    }
    OK(custos_random(NULL, d->nonce, sizeof(d->nonce)));
    d->time = g->f->now;
    sg.cert = g->pkg->bootstrap_cert;
    sg.key = g->boot;
    sg.chain = g->pkg->bootstrap_chain;
    if (p != NULL) {
        for (i = 0; i < p->n_certs; i++)
            if (strcmp(p->certs[i].template_name, "tls") == 0)
                sg.cert = p->certs[i].cert;
        sg.key = signer_key;
        sg.chain = p->chain;
    }
    OK(custos_request_encode(&der, len, d, &sg));
    custos_request_doc_free(d);
    return der;
}

static X509 *profile_cert(const custos_profile_doc *p, const char *tmpl)
{
    size_t i;
    for (i = 0; i < p->n_certs; i++)
        if (strcmp(p->certs[i].template_name, tmpl) == 0)
            return p->certs[i].cert;
    fail_msg("no certificate for template %s", tmpl);
    return NULL;
}

static uint8_t *cert_der(size_t *len, X509 *x)
{
    uint8_t *der = NULL;
    OK(custos_x509_to_der(&der, len, x));
    return der;
}

/* Import, approve and complete a request of "site"; its profile. */
static custos_profile_doc *provision(gfx *g, const uint8_t *der, size_t len,
                                     custos_request_summary *out)
{
    uint8_t *prof = NULL;
    size_t prof_len = 0;
    int created = 0;
    custos_profile_doc *p;
    OK(custos_engine_request_import(out, &created, g->f->e, der, len, "import", &EF_ACTOR));
    OK(custos_engine_request_approve(out, g->f->e, out->request_id, &EF_ACTOR));
    OK(custos_engine_profile_export(&prof, &prof_len, g->f->e, out->request_id));
    p = ef_decode_profile(g->f, prof, prof_len);
    OK(custos_engine_device_complete(out, g->f->e, out->request_id, &EF_ACTOR));
    free(prof);
    return p;
}

static custos_profile_doc *provision_hub(gfx *g, const char *serial, EVP_PKEY *keys[2],
                                         custos_request_summary *out)
{
    size_t len = 0;
    uint8_t *der = site_request(&len, g, "hub", serial, keys, NULL, NULL);
    custos_profile_doc *p = provision(g, der, len, out);
    free(der);
    return p;
}

static custos_err auth_with(custos_gateway_info *gw, int *disabled, gfx *g, X509 *cert)
{
    size_t len = 0;
    uint8_t *der = cert != NULL ? cert_der(&len, cert) : NULL;
    custos_err r = custos_engine_gateway_auth(gw, disabled, g->f->e, der, len);
    free(der);
    return r;
}

/* ---- system definitions ------------------------------------------------------ */

static void expect_refused(gfx *g, const char *json, const char *field, const char *words)
{
    custos_err r =
        custos_engine_system_create(g->f->e, (const uint8_t *)json, strlen(json), &EF_ACTOR);
    if (r != CUSTOS_ERR_MALFORMED)
        fail_msg("system accepted or refused with %d: %s", r, custos_error_last()->message);
    assert_string_equal(custos_error_last()->field, field);
    if (strstr(custos_error_last()->message, words) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", custos_error_last()->message, words);
}

static const char IP_ONLY[] =
    "{\"name\":\"a\",\"services\":{\"gateways\":[\"https://10.0.0.7\"]},\"components\":[{"
    "\"name\":\"hub\",\"gateway\":true,\"templates\":[{\"name\":\"s\",\"usage\":["
    "\"tls-server\",\"tls-client\"],\"subject\":\"serialNumber={serial}\"}]}]}";

static void test_system_rules(void **state)
{
    gfx *g = *state;
    char *json = NULL;
    ef_counts before = ef_snapshot(g->f);

    expect_refused(g,
                   "{\"name\":\"a\",\"components\":[{\"name\":\"hub\",\"gateway\":true,"
                   "\"templates\":[{\"name\":\"tls\",\"usage\":[\"tls-client\"]}]}]}",
                   "components[0].templates", "tls-server");
    expect_refused(g,
                   "{\"name\":\"a\",\"services\":{\"gateways\":[\"https://gw.example\"]},"
                   "\"components\":[{\"name\":\"hub\",\"gateway\":true,"
                   "\"templates\":[{\"name\":\"s\",\"usage\":[\"tls-server\"]}]}]}",
                   "components[0].templates", "tls-client");
    expect_refused(g,
                   "{\"name\":\"a\",\"components\":[{\"name\":\"hub\",\"templates\":["
                   "{\"name\":\"s\",\"usage\":[\"tls-server\",\"tls-client\"]}]}]}",
                   "services.gateways", "services.gateways is required for a tls-server template");
    expect_refused(g,
                   "{\"name\":\"a\",\"services\":{\"gateways\":[\"https://gw.example\","
                   "\"https://user@gw\"]},\"components\":[{\"name\":\"hub\",\"templates\":["
                   "{\"name\":\"s\",\"usage\":[\"tls-server\",\"tls-client\"]}]}]}",
                   "services.gateways[1]", "user");
    /* only IP addresses: a CN in the server certificate would be read as a host name */
    expect_refused(g,
                   "{\"name\":\"a\",\"services\":{\"gateways\":[\"https://10.0.0.7\"]},"
                   "\"components\":[{\"name\":\"hub\",\"gateway\":true,\"templates\":["
                   "{\"name\":\"s\",\"usage\":[\"tls-server\",\"tls-client\"]}]}]}",
                   "components[0].templates[0].subject", "no CN");
    ef_assert_unchanged(g->f, before);
    OK(custos_engine_system_create(g->f->e, (const uint8_t *)IP_ONLY, strlen(IP_ONLY), &EF_ACTOR));
    /* the flag is kept (and written only where it is set) */
    OK(custos_engine_system_get(&json, g->f->e, "site"));
    assert_non_null(strstr(json, "\"gateway\":true"));
    assert_non_null(strstr(json, "\"name\":\"hub\""));
    free(json);
    OK(custos_engine_system_get(&json, g->f->e, "pump"));
    assert_null(strstr(json, "gateway\":"));
    free(json);
}

/* The hub's tls-server certificate names the declared hosts and no other,
 * passes the lint, and verifies for the sslserver purpose up to the root. */
static void test_server_certificate(void **state)
{
    gfx *g = *state;
    custos_request_summary r;
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &r);
    X509 *srv = profile_cert(p, "server"), *tls = profile_cert(p, "tls");
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    GENERAL_NAMES *san = X509_get_ext_d2i(srv, NID_subject_alt_name, NULL, NULL);

    assert_non_null(san);
    assert_int_equal(sk_GENERAL_NAME_num(san), 3);
    GENERAL_NAMES_free(san);
    assert_int_equal(X509_check_host(srv, "hub.site.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(srv, "10.20.30.40", 0), 1);
    assert_int_equal(X509_check_ip_asc(srv, "fd00::1", 0), 1);
    assert_int_equal(X509_check_host(srv, "custos.example", 0, 0, NULL), 0);
    assert_int_equal(X509_check_host(srv, "HUB-1.hub", 0, 0, NULL), 0); /* the CN is not a name */
    assert_int_equal(X509_get_ext_by_NID(tls, NID_subject_alt_name, -1), -1);

    assert_int_equal(X509_STORE_add_cert(store, sk_X509_value(g->pkg->root_of_trust, 0)), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, srv, p->chain), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)g->f->now);
    if (X509_verify_cert(ctx) != 1)
        fail_msg("sslserver: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_cleanup(ctx);
    /* and the tls-client certificate is not a server's */
    assert_int_equal(X509_STORE_CTX_init(ctx, store, tls, p->chain), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)g->f->now);
    assert_int_not_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    custos_profile_doc_free(p);
}

/* ---- who is a gateway --------------------------------------------------------- */

static void test_auth(void **state)
{
    gfx *g = *state;
    custos_request_summary hub, dev, pending;
    custos_gateway_info gw;
    EVP_PKEY *keys[4] = {0};
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &hub);
    custos_profile_doc *pp = ef_provision(g->f, "PUMP-1", keys, &dev);
    size_t len = 0;
    uint8_t *der;
    int disabled = -1;

    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    assert_string_equal(gw.device_id, hub.device_id);
    assert_string_equal(gw.system, "site");
    assert_string_equal(gw.serial, "HUB-1");
    assert_int_equal(gw.enabled, 1);
    assert_int_equal(disabled, 0);
    /* no certificate; a device of a component that is no gateway; the
     * gateway's server certificate; a byte changed */
    assert_int_equal(auth_with(&gw, &disabled, g, NULL), CUSTOS_ERR_FORBIDDEN);
    assert_int_equal(disabled, 0);
    OK(custos_engine_device_complete(&dev, g->f->e, dev.request_id, &EF_ACTOR));
    assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(pp, "tls")), CUSTOS_ERR_FORBIDDEN);
    assert_non_null(strstr(custos_error_last()->message, "not a gateway"));
    assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(p, "server")), CUSTOS_ERR_FORBIDDEN);
    der = cert_der(&len, profile_cert(p, "tls"));
    der[len - 3] ^= 0x01;
    assert_int_equal(custos_engine_gateway_auth(&gw, &disabled, g->f->e, der, len),
                     CUSTOS_ERR_FORBIDDEN);
    free(der);
    assert_int_equal(gw.device_id[0], '\0');
    /* certified, not provisioned yet: not a gateway yet */
    {
        size_t n = 0;
        int created = 0;
        uint8_t *prof = NULL, *req = site_request(&n, g, "hub", "HUB-2", NULL, NULL, NULL);
        custos_profile_doc *p2;
        OK(custos_engine_request_import(&pending, &created, g->f->e, req, n, "import", &EF_ACTOR));
        OK(custos_engine_request_approve(&pending, g->f->e, pending.request_id, &EF_ACTOR));
        OK(custos_engine_profile_export(&prof, &n, g->f->e, pending.request_id));
        p2 = ef_decode_profile(g->f, prof, n);
        assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(p2, "tls")),
                         CUSTOS_ERR_FORBIDDEN);
        custos_profile_doc_free(p2);
        free(prof);
        free(req);
    }
    /* an expired certificate */
    g->f->now += 400 * DAY;
    assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(p, "tls")), CUSTOS_ERR_FORBIDDEN);
    assert_non_null(strstr(custos_error_last()->message, "expired"));
    custos_profile_doc_free(p);
    custos_profile_doc_free(pp);
    for (size_t i = 0; i < 4; i++)
        EVP_PKEY_free(keys[i]);
}

/* After a rotation is provisioned, only the new certificate is the gateway's. */
static void test_auth_after_rotation(void **state)
{
    gfx *g = *state;
    custos_request_summary hub, rot;
    custos_gateway_info gw;
    EVP_PKEY *keys[2] = {0};
    custos_profile_doc *p = provision_hub(g, "HUB-1", keys, &hub), *p2;
    size_t len = 0;
    uint8_t *der = site_request(&len, g, "hub", "HUB-1", keys, p, hub.device_id);
    int disabled = 0;

    p2 = provision(g, der, len, &rot);
    assert_string_equal(rot.device_id, hub.device_id);
    assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(p, "tls")), CUSTOS_ERR_FORBIDDEN);
    OK(auth_with(&gw, &disabled, g, profile_cert(p2, "tls")));
    assert_string_equal(gw.device_id, hub.device_id);
    free(der);
    custos_profile_doc_free(p);
    custos_profile_doc_free(p2);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
}

/* ---- what a gateway forwards ---------------------------------------------------- */

static void test_forward_and_scope(void **state)
{
    gfx *g = *state;
    custos_request_summary hub, r, again, pump, seen;
    custos_gateway_info gw;
    EVP_PKEY *keys[2] = {0};
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &hub), *pd;
    size_t len = 0, plen = 0, rlen = 0;
    uint8_t *der = site_request(&len, g, "ctl", "CTL-1", keys, NULL, NULL);
    uint8_t *other = ef_initial_request(&plen, g->f, "PUMP-9", NULL), *prof = NULL, *rcpt;
    int disabled = 0, created = 0;
    json_t *j = NULL;
    ef_counts before;

    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    OK(custos_engine_gateway_submit(&r, &created, g->f->e, &gw, der, len, &GW_ACTOR));
    assert_int_equal(created, 1);
    assert_string_equal(r.via, "gateway");
    assert_string_equal(r.gateway_id, hub.device_id);
    assert_string_equal(r.gateway_serial, "HUB-1");
    OK(custos_engine_request_get(&seen, g->f->e, r.request_id));
    assert_string_equal(seen.gateway_id, hub.device_id);
    OK(custos_request_summary_json(&j, &seen));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "gateway"), "serial")),
                        "HUB-1");
    json_decref(j);
    OK(custos_engine_request_detail(&j, g->f->e, r.request_id));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "gateway"), "device_id")),
        hub.device_id);
    json_decref(j);
    assert_int_equal(ef_count_audit(g->f, "request.import", "gateway:test"), 1);
    assert_true(ef_db_contains(g->f, "\"gateway\":\"", 11));
    /* the same bytes again: the same request */
    OK(custos_engine_gateway_submit(&again, &created, g->f->e, &gw, der, len, &GW_ACTOR));
    assert_int_equal(created, 0);
    assert_string_equal(again.request_id, r.request_id);
    /* a request of another system: refused, nothing stored */
    before = ef_snapshot(g->f);
    assert_int_equal(
        custos_engine_gateway_submit(&again, &created, g->f->e, &gw, other, plen, &GW_ACTOR),
        CUSTOS_ERR_FORBIDDEN);
    assert_string_equal(custos_error_last()->field, "system");
    ef_assert_unchanged(g->f, before);
    /* status: its own system's requests only */
    OK(custos_engine_request_import(&pump, &created, g->f->e, other, plen, "upload", &EF_ACTOR));
    assert_int_equal(custos_engine_gateway_request(&again, g->f->e, &gw, pump.request_id),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_gateway_request(&again, g->f->e, &gw, "nope"),
                     CUSTOS_ERR_NOT_FOUND);
    OK(custos_engine_gateway_request(&again, g->f->e, &gw, r.request_id));
    assert_int_equal(again.state, CUSTOS_STATE_PENDING);
    /* a receipt forwarded after approval */
    OK(custos_engine_request_approve(&r, g->f->e, r.request_id, &EF_ACTOR));
    OK(custos_engine_profile_export(&prof, &rlen, g->f->e, r.request_id));
    pd = ef_decode_profile(g->f, prof, rlen);
    rcpt = ef_receipt(&rlen, g->f, &r, pd, keys[0], NULL, NULL);
    OK(custos_engine_gateway_receipt(&again, g->f->e, &gw, rcpt, rlen, &GW_ACTOR));
    assert_int_equal(again.state, CUSTOS_STATE_PROVISIONED);
    assert_int_equal(ef_count_audit(g->f, "device.provisioned", "gateway:test"), 1);
    /* a pending request whose package has expired since shows expired */
    free(der);
    der = site_request(&len, g, "ctl", "CTL-2", NULL, NULL, NULL);
    OK(custos_engine_gateway_submit(&r, &created, g->f->e, &gw, der, len, &GW_ACTOR));
    assert_int_equal(r.state, CUSTOS_STATE_PENDING);
    g->f->now += 31 * DAY;
    OK(custos_engine_gateway_request(&again, g->f->e, &gw, r.request_id));
    assert_int_equal(again.state, CUSTOS_STATE_EXPIRED);
    free(rcpt);
    free(prof);
    free(der);
    free(other);
    custos_profile_doc_free(pd);
    custos_profile_doc_free(p);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
}

static void test_expired_forward(void **state)
{
    gfx *g = *state;
    custos_request_summary hub, r;
    custos_gateway_info gw;
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &hub);
    size_t len = 0;
    uint8_t *der = site_request(&len, g, "ctl", "CTL-1", NULL, NULL, NULL);
    int disabled = 0, created = 0;

    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    g->f->now += 31 * DAY; /* the package (30 days) has expired, the hub's certificate not */
    assert_int_equal(custos_engine_gateway_submit(&r, &created, g->f->e, &gw, der, len, &GW_ACTOR),
                     CUSTOS_ERR_EXPIRED);
    free(der);
    custos_profile_doc_free(p);
}

/* ---- the admin's switch ---------------------------------------------------------- */

typedef struct listed {
    custos_gateway_info items[4];
    size_t n;
} listed;

static int collect(const custos_gateway_info *gi, void *ctx)
{
    listed *l = ctx;
    if (l->n < 4)
        l->items[l->n++] = *gi;
    return 0;
}

static void test_disable(void **state)
{
    gfx *g = *state;
    custos_request_summary hub;
    custos_gateway_info gw, out;
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &hub);
    listed l;
    int disabled = 0;

    /* listed once provisioned, before it ever called */
    memset(&l, 0, sizeof(l));
    OK(custos_engine_gateway_list(g->f->e, collect, &l));
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].device_id, hub.device_id);
    assert_int_equal(l.items[0].last_seen, 0);
    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    g->f->now += 10;
    OK(custos_engine_gateway_seen(g->f->e, &gw, 3));
    OK(custos_engine_gateway_seen(g->f->e, &gw, 2));

    OK(custos_engine_gateway_set_enabled(&out, g->f->e, hub.device_id, 0, &EF_ACTOR));
    assert_int_equal(out.enabled, 0);
    assert_int_equal(out.forwarded, 5);
    assert_int_equal(out.last_seen, g->f->now);
    assert_int_equal(ef_count_audit(g->f, "gateway.disabled", "user:test"), 1);
    assert_int_equal(auth_with(&gw, &disabled, g, profile_cert(p, "tls")), CUSTOS_ERR_FORBIDDEN);
    assert_int_equal(disabled, 1);
    memset(&l, 0, sizeof(l));
    OK(custos_engine_gateway_list(g->f->e, collect, &l));
    assert_int_equal(l.items[0].enabled, 0);

    OK(custos_engine_gateway_set_enabled(&out, g->f->e, hub.device_id, 1, &EF_ACTOR));
    assert_int_equal(ef_count_audit(g->f, "gateway.enabled", "user:test"), 1);
    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    assert_int_equal(disabled, 0);
    /* a device that is no gateway, an id that is none */
    assert_int_equal(custos_engine_gateway_set_enabled(&out, g->f->e, hub.request_id, 0, &EF_ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(custos_engine_gateway_set_enabled(&out, g->f->e, "x", 0, &EF_ACTOR),
                     CUSTOS_ERR_NOT_FOUND);
    {
        size_t n = 0;
        OK(custos_engine_audit_verify(&n, g->f->e));
    }
    custos_profile_doc_free(p);
}

/* ---- schema 2 -> 3 ------------------------------------------------------------------ */

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg != NULL ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static void test_migration_from_v2(void **state)
{
    gfx *g = *state;
    custos_request_summary hub, r;
    custos_gateway_info gw;
    custos_profile_doc *p = provision_hub(g, "HUB-1", NULL, &hub);
    char path[400];
    sqlite3 *db = NULL;
    size_t n = 0;
    int disabled = 0;
    listed l;

    custos_engine_free(g->f->e);
    g->f->e = NULL;
    snprintf(path, sizeof(path), "%s/custos.db", g->f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec(db, "BEGIN; DROP TABLE gateways; ALTER TABLE requests DROP COLUMN gateway_id;"
             "ALTER TABLE requests DROP COLUMN gateway_serial; PRAGMA user_version = 2; COMMIT;");
    sqlite3_close(db);
    OK(custos_engine_open(&g->f->e, g->f->dir));
    custos_engine_set_clock(g->f->e, ef_fake_clock, &g->f->now);
    assert_int_equal(ef_count_rows(g->f, "gateways"), 0);
    OK(custos_engine_request_get(&r, g->f->e, hub.request_id));
    assert_string_equal(r.gateway_id, "");
    assert_int_equal(r.state, CUSTOS_STATE_PROVISIONED);
    /* a gateway provisioned before the upgrade is listed at its first call */
    OK(auth_with(&gw, &disabled, g, profile_cert(p, "tls")));
    memset(&l, 0, sizeof(l));
    OK(custos_engine_gateway_list(g->f->e, collect, &l));
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].serial, "HUB-1");
    OK(custos_engine_audit_verify(&n, g->f->e));
    assert_true(n > 0);
    custos_profile_doc_free(p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_system_rules),
        T(test_server_certificate),
        T(test_auth),
        T(test_auth_after_rotation),
        T(test_forward_and_scope),
        T(test_expired_forward),
        T(test_disable),
        T(test_migration_from_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
