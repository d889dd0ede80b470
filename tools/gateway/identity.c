/* custos-gateway: the hub's own identity, opened through libcustos's public
 * API: the tls-client key for the cloud (custos_device_ssl_ctx()), the
 * tls-server key for the devices (the same context, its key and chain moved
 * to a server context), the Root of Trust as the only trust anchor. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "gateway.h"

/* TLS 1.2 suites: forward secret and AEAD, for ECDSA and RSA keys alike;
 * TLS 1.3 keeps OpenSSL's defaults. */
static const char TLS12_CIPHERS[] = "ECDHE+AESGCM:ECDHE+CHACHA20";

static custos_err report(custos_err code, const char *field, const char *message, void *ctx)
{
    (void)ctx;
    return custos_error_report(code, field, message);
}

static const tool_report REPORT = {report, NULL};

__attribute__((format(printf, 3, 4))) static custos_err fail(custos_err code, const char *field,
                                                             const char *fmt, ...)
{
    char msg[TOOL_REPORT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return custos_error_report(code, field, msg);
}

/* The templates of the first tls-client and the first tls-server key. */
static custos_err find_templates(gw_identity *id, const char *dir)
{
    custos_key_info ki;
    int64_t na_client = 0, na_server = 0;

    for (size_t i = 0; i < custos_device_key_count(id->dev); i++) {
        if (custos_device_key(&ki, id->dev, i) < 0)
            return custos_error_last()->code;
        if ((ki.usage & CUSTOS_USAGE_TLS_CLIENT) && id->client_template[0] == '\0') {
            snprintf(id->client_template, sizeof(id->client_template), "%s", ki.template_name);
            na_client = ki.not_after;
        }
        if ((ki.usage & CUSTOS_USAGE_TLS_SERVER) && id->server_template[0] == '\0') {
            snprintf(id->server_template, sizeof(id->server_template), "%s", ki.template_name);
            na_server = ki.not_after;
        }
    }
    if (id->client_template[0] == '\0' || id->server_template[0] == '\0')
        return fail(CUSTOS_ERR_TEMPLATE, "device-dir",
                    "the identity in %s has no key with usage %s: a gateway's component needs "
                    "a tls-client template (toward the cloud) and a tls-server template (toward "
                    "its devices), and \"gateway\": true (docs/gateway.md)",
                    dir, id->client_template[0] == '\0' ? "tls-client" : "tls-server");
    id->not_after = na_client < na_server ? na_client : na_server;
    return CUSTOS_OK;
}

/* The server context: the tls-server key, its certificate and chain from
 * the context the library makes for that template. */
static custos_err make_server_ctx(gw_identity *id)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    SSL_CTX *lib = NULL, *srv = NULL;
    STACK_OF(X509) *chain = NULL;

    ret = custos_device_ssl_ctx(&lib, id->dev, id->server_template);
    if (ret < 0)
        return ret;
    srv = SSL_CTX_new(TLS_server_method());
    if (srv == NULL || SSL_CTX_set_min_proto_version(srv, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(srv, TLS12_CIPHERS) != 1 ||
        SSL_CTX_use_certificate(srv, SSL_CTX_get0_certificate(lib)) != 1 ||
        SSL_CTX_get0_chain_certs(lib, &chain) != 1 || SSL_CTX_set1_chain(srv, chain) != 1 ||
        SSL_CTX_use_PrivateKey(srv, SSL_CTX_get0_privatekey(lib)) != 1 ||
        SSL_CTX_check_private_key(srv) != 1) {
        ERR_clear_error();
        ret = fail(CUSTOS_ERR_INTERNAL, "tls",
                   "cannot make the TLS server context of template %s%s", id->server_template, "");
        goto out;
    }
    /* Devices have no client certificate before they are provisioned: none is asked for. */
    SSL_CTX_set_verify(srv, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(srv, SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_options(srv, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    id->server_ctx = srv;
    srv = NULL;
    ret = CUSTOS_OK;
out:
    SSL_CTX_free(srv);
    SSL_CTX_free(lib);
    return ret;
}

static custos_err collect_roots(gw_identity *id)
{
    for (size_t i = 0; i < custos_device_root_count(id->dev); i++) {
        const uint8_t *der = NULL;
        size_t len = 0;
        uint8_t *grown;
        if (custos_device_root(&der, &len, id->dev, i) < 0)
            return custos_error_last()->code;
        grown = realloc(id->roots_der, id->roots_len + len);
        if (grown == NULL)
            return custos_error_report(CUSTOS_ERR_NOMEM, NULL, "out of memory");
        memcpy(grown + id->roots_len, der, len);
        id->roots_der = grown;
        id->roots_len += len;
    }
    if (id->roots_len == 0)
        return custos_error_report(CUSTOS_ERR_UNTRUSTED, "profile",
                                   "the gateway's profile holds no Root of Trust");
    return CUSTOS_OK;
}

custos_err gw_identity_open(gw_identity *out, const char *device_dir, const char *secret_file)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;

    memset(out, 0, sizeof(*out));
    ret = tool_device_open(&out->td, device_dir, secret_file, 0, &REPORT);
    if (ret < 0)
        return ret;
    ret = custos_device_open(&out->dev, &out->td.port, NULL);
    if (ret == CUSTOS_ERR_STATE) {
        char why[TOOL_REPORT_MAX];
        snprintf(why, sizeof(why), "%s", custos_error_last()->message);
        ret = fail(CUSTOS_ERR_STATE, "device-dir",
                   "%s holds no provisioned identity (%s): provision the gateway first with "
                   "'custos-device provision --component HUB --device-dir DIR ...'",
                   device_dir, why);
    }
    if (ret == CUSTOS_OK)
        ret = find_templates(out, device_dir);
    if (ret == CUSTOS_OK)
        ret = custos_device_ssl_ctx(&out->client_ctx, out->dev, out->client_template);
    if (ret == CUSTOS_OK)
        ret = make_server_ctx(out);
    if (ret == CUSTOS_OK)
        ret = collect_roots(out);
    if (ret < 0)
        gw_identity_close(out);
    return ret;
}

void gw_identity_close(gw_identity *id)
{
    if (id == NULL)
        return;
    SSL_CTX_free(id->server_ctx);
    SSL_CTX_free(id->client_ctx);
    custos_device_free(id->dev);
    free(id->roots_der);
    tool_device_close(&id->td);
    memset(id, 0, sizeof(*id));
}

custos_err gw_identity_client_hook(void *ssl_ctx, void *hook_ctx)
{
    const gw_identity *id = hook_ctx;
    SSL_CTX *c = ssl_ctx;
    STACK_OF(X509) *chain = NULL;

    if (SSL_CTX_use_certificate(c, SSL_CTX_get0_certificate(id->client_ctx)) != 1 ||
        SSL_CTX_get0_chain_certs(id->client_ctx, &chain) != 1 ||
        SSL_CTX_set1_chain(c, chain) != 1 ||
        SSL_CTX_use_PrivateKey(c, SSL_CTX_get0_privatekey(id->client_ctx)) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        ERR_clear_error();
        return custos_error_report(CUSTOS_ERR_INTERNAL, "tls",
                                   "cannot put the gateway's client certificate on the "
                                   "connection");
    }
    return CUSTOS_OK;
}
