/* Test-only helper (never installed) for tests that stand in for a gateway
 * (test_gateway_api.sh), through the public API of libcustos only:
 *
 *   custos-test-devtool tls-pem DEVICE_DIR SECRET_FILE TEMPLATE KEY.pem CERT.pem
 *       the TLS identity of a real device as PEM files, for curl --cert/--key:
 *       custos_device_open() (it needs the device secret the identity is
 *       locked to), custos_device_ssl_ctx(), then that SSL_CTX's key and
 *       chain. The device library never lets a private key out on its own;
 *       this exists for tests alone.
 *   custos-test-devtool receipt DEVICE_DIR SECRET_FILE OUT.der
 *       the install receipt a device with an installed profile sends
 *       (custos_connect_step()), caught at the transport instead of sent.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "custos/custos.h"

static const char *receipt_out;
static int receipt_caught;

static int write_pem(const char *path, SSL_CTX *ctx, int key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    STACK_OF(X509) *chain = NULL;
    int ok;

    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if (key) {
        ok = PEM_write_PrivateKey(f, SSL_CTX_get0_privatekey(ctx), NULL, NULL, 0, NULL, NULL);
    } else {
        ok = PEM_write_X509(f, SSL_CTX_get0_certificate(ctx)) &&
             SSL_CTX_get0_chain_certs(ctx, &chain) == 1;
        for (int i = 0; ok && i < sk_X509_num(chain); i++)
            ok = PEM_write_X509(f, sk_X509_value(chain, i));
    }
    return fclose(f) == 0 && ok;
}

/* The transport: write the receipt the library sends, answer 503. */
static custos_err catch_receipt(custos_http_response *out, const custos_http_request *req,
                                void *ctx)
{
    size_t n = strlen(req->url);
    FILE *f;
    (void)ctx;
    out->status = 503;
    if (strcmp(req->method, "POST") != 0 || n < 8 || strcmp(req->url + n - 8, "/receipt") != 0)
        return CUSTOS_OK;
    f = fopen(receipt_out, "wb");
    if (f != NULL) {
        receipt_caught = fwrite(req->body, 1, req->body_len, f) == req->body_len;
        receipt_caught &= fclose(f) == 0;
    }
    return CUSTOS_OK;
}

static int fail(const char *what)
{
    const custos_error *e = custos_error_last();
    fprintf(stderr, "custos-test-devtool: error: %s: %s: %s\n", what, custos_err_code(e->code),
            e->message);
    return 1;
}

static int tls_pem(const custos_port *port, const char *tmpl, const char *key, const char *cert)
{
    custos_device_options dopts = CUSTOS_DEVICE_OPTIONS_INIT;
    custos_device *dev = NULL;
    SSL_CTX *ctx = NULL;
    int rc = 1;

    if (custos_device_open(&dev, port, &dopts) != CUSTOS_OK ||
        custos_device_ssl_ctx(&ctx, dev, tmpl) != CUSTOS_OK)
        rc = fail("device");
    else if (!write_pem(key, ctx, 1) || !write_pem(cert, ctx, 0))
        fprintf(stderr, "custos-test-devtool: error: cannot write the PEM files\n");
    else
        rc = 0;
    SSL_CTX_free(ctx);
    custos_device_free(dev);
    return rc;
}

static int receipt(const custos_port *posix, const char *out)
{
    custos_port port = *posix;
    custos_connect_status st;

    port.transport = catch_receipt;
    receipt_out = out;
    if (custos_connect_step(&st, &port, "https://receipt.invalid") != CUSTOS_OK)
        custos_error_clear(); /* the 503: what matters is what was sent */
    if (!receipt_caught)
        return fail("no receipt was sent");
    return 0;
}

int main(int argc, char **argv)
{
    custos_port_posix_options po = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    custos_port_posix *port = NULL;
    int rc = 2;

    if (argc < 4 || !((strcmp(argv[1], "tls-pem") == 0 && argc == 7) ||
                      (strcmp(argv[1], "receipt") == 0 && argc == 5))) {
        fprintf(stderr,
                "usage: %s tls-pem DEVICE_DIR SECRET_FILE TEMPLATE KEY.pem CERT.pem\n"
                "       %s receipt DEVICE_DIR SECRET_FILE OUT.der\n",
                argv[0], argv[0]);
        return 2;
    }
    po.device_dir = argv[2];
    po.secret_file = argv[3];
    if (custos_port_posix_new(&port, &po) != CUSTOS_OK)
        return fail("port");
    if (strcmp(argv[1], "tls-pem") == 0)
        rc = tls_pem(custos_port_posix_get(port), argv[4], argv[5], argv[6]);
    else
        rc = receipt(custos_port_posix_get(port), argv[4]);
    custos_port_posix_free(port);
    return rc;
}
