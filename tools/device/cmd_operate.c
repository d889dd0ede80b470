/* custos-device status / sign / rotate / export-cert: the provisioned device at work. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"

#define SIGN_INPUT_MAX (64u * 1024u * 1024u)
#define SIG_CAP 512

/* Open the device files, then load the provisioned device from them;
 * *dev_open tells whether @p dev was opened (and needs closing). */
static custos_err open_and_load(custos_device **d, cli_device *dev, int *dev_open,
                                const cli_args *a)
{
    custos_err ret = cli_device_open(dev, a, 0);
    if (ret < 0)
        return ret;
    *dev_open = 1;
    return cli_device_load(d, dev, a);
}

/* A command's end: free @p d, close @p dev when open, exit status for @p ret. */
static int finish(custos_err ret, custos_device *d, cli_device *dev, int dev_open)
{
    custos_device_free(d);
    if (dev_open)
        cli_device_close(dev);
    return ret < 0 ? cli_fail(ret) : 0;
}

int cmd_status(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    char *json = NULL;
    json_t *j = NULL;
    custos_device *d = NULL;
    const char *state = NULL;
    ret = cli_device_open(&dev, a, 0);
    if (ret < 0)
        goto out;
    dev_open = 1;
    ret = custos_device_status(&json, &dev.td.port);
    if (ret < 0)
        goto out;
    j = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    state = j != NULL ? json_string_value(json_object_get(j, "state")) : NULL;
    /* A provisioned device must also open: this is where a device secret of
     * another device (locked) or a mock identity shows. */
    if (state != NULL && (strcmp(state, "provisioned") == 0 || strcmp(state, "rotating") == 0)) {
        ret = cli_device_load(&d, &dev, a);
        if (ret < 0)
            goto out;
    }
    if (cli_flag(a, "json")) {
        if (j != NULL)
            json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        else
            fputs(json, stdout);
        fputc('\n', stdout);
    } else {
        printf("device files in %s\n", cli_get(a, "device-dir"));
        cli_print_json_human(stdout, json);
        if (d != NULL)
            printf("opened: identity unlocked with the device secret, keys match the "
                   "certificates%s\n",
                   custos_device_is_mock(d) ? " (MOCK identity: test only)" : "");
    }
    ret = CUSTOS_OK;
out:
    json_decref(j);
    free(json);
    return finish(ret, d, &dev, dev_open);
}

int cmd_sign(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    custos_device *d = NULL;
    uint8_t *data = NULL;
    size_t len = 0, sig_len = 0;
    uint8_t sig[SIG_CAP];
    ret = cli_read_file(&data, &len, cli_get(a, "in"), SIGN_INPUT_MAX, "in");
    if (ret < 0)
        goto out;
    ret = open_and_load(&d, &dev, &dev_open, a);
    if (ret < 0)
        goto out;
    ret = custos_device_sign(sig, sizeof(sig), &sig_len, d, cli_get(a, "key"), data, len);
    if (ret < 0)
        goto out;
    ret = cli_write_file(cli_get(a, "out"), sig, sig_len, 0644);
    if (ret < 0)
        goto out;
    printf("signature with key '%s' of device %s written to %s (%zu bytes)\n", cli_get(a, "key"),
           custos_device_id(d), cli_get(a, "out"), sig_len);
    ret = CUSTOS_OK;
out:
    free(data);
    return finish(ret, d, &dev, dev_open);
}

/* 1 when the device files already hold a reprovisioning request. */
static int is_rotating(const cli_device *dev)
{
    char *json = NULL;
    json_t *j = NULL;
    int rotating = 0;
    if (custos_device_status(&json, &dev->td.port) < 0) {
        custos_error_clear();
        return 0;
    }
    j = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    rotating = j != NULL && json_is_string(json_object_get(j, "state")) &&
               strcmp(json_string_value(json_object_get(j, "state")), "rotating") == 0;
    json_decref(j);
    free(json);
    return rotating;
}

int cmd_rotate(const cli_args *a)
{
    const cli_command *c = cli_find("rotate");
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    custos_device *d = NULL;
    uint8_t *mcpr = NULL;
    size_t mcpr_len = 0;
    custos_rotate_options opts = CUSTOS_ROTATE_OPTIONS_INIT;
    custos_meta meta[CUSTOS_MAX_META_ENTRIES + 1];
    size_t n_meta = 0;
    const char *server = cli_get(a, "server");
    int rc = cli_collect_meta(meta, CUSTOS_MAX_META_ENTRIES + 1, &n_meta, a, "meta", c);
    if (rc != 0)
        return rc;
    if (cli_get(a, "out") == NULL && server == NULL)
        return cli_usage_error(c, "give --out FILE.mcpr (disconnected) or --server URL "
                                  "(connected), or both");
    if (server == NULL && cli_get(a, "timeout") != NULL)
        return cli_usage_error(c, "--timeout goes with --server");
    rc = cli_check_server(a, c);
    if (rc != 0)
        return rc;
    opts.same_keys = cli_flag(a, "same-keys");
    opts.firmware = cli_get(a, "firmware");
    opts.metadata = n_meta > 0 ? meta : NULL;
    opts.metadata_count = n_meta;
    ret = open_and_load(&d, &dev, &dev_open, a);
    if (ret < 0)
        goto out;
    if (server != NULL && cli_get(a, "out") == NULL && is_rotating(&dev)) {
        /* A connected rotation that stopped half-way: finish that one. */
        fprintf(stderr, "resuming the pending reprovisioning request of device %s\n",
                custos_device_id(d));
    } else {
        ret = custos_device_rotate(&mcpr, &mcpr_len, d, &opts);
        if (ret < 0)
            goto out;
        if (cli_get(a, "out") != NULL) {
            ret = cli_write_file(cli_get(a, "out"), mcpr, mcpr_len, 0644);
            if (ret < 0)
                goto out;
        }
        printf("reprovisioning request (%s) for device %s written to %s%s%s/%s (%zu bytes)\n",
               opts.same_keys ? "same keys: renewal" : "fresh keys: rotation", custos_device_id(d),
               cli_get(a, "out") != NULL ? cli_get(a, "out") : "",
               cli_get(a, "out") != NULL ? ", also kept as " : "", cli_get(a, "device-dir"),
               CUSTOS_OBJ_REQUEST, mcpr_len);
        printf("the current identity stays in use until the answer is installed\n");
    }
    if (server != NULL) {
        custos_device_free(d);
        d = NULL;
        ret = cli_device_connect(&dev);
        if (ret < 0)
            goto out;
        free(mcpr);
        rc = cli_connect_run(&dev, a);
        cli_device_close(&dev);
        return rc;
    }
    ret = CUSTOS_OK;
out:
    free(mcpr);
    return finish(ret, d, &dev, dev_open);
}

static custos_err write_cert_pem(const char *path, const uint8_t *der, size_t der_len)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long pem_len = 0;
    if (cert == NULL || bio == NULL || PEM_write_bio_X509(bio, cert) != 1) {
        ret = cli_error(CUSTOS_ERR_INTERNAL, "key", "cannot encode the certificate as PEM");
        goto out;
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    if (pem_len <= 0) {
        ret = cli_error(CUSTOS_ERR_INTERNAL, "key", "cannot encode the certificate as PEM");
        goto out;
    }
    ret = cli_write_file(path, (const uint8_t *)pem, (size_t)pem_len, 0644);
out:
    BIO_free(bio);
    X509_free(cert);
    return ret;
}

int cmd_export_cert(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    custos_device *d = NULL;
    custos_key_info info;
    const char *tmpl = cli_get(a, "key");
    int found = 0;
    memset(&info, 0, sizeof(info));
    ret = open_and_load(&d, &dev, &dev_open, a);
    if (ret < 0)
        goto out;
    for (size_t i = 0; i < custos_device_key_count(d) && !found; i++) {
        ret = custos_device_key(&info, d, i);
        if (ret < 0)
            goto out;
        found = info.template_name != NULL && strcmp(info.template_name, tmpl) == 0;
    }
    if (!found) {
        ret = cli_error(CUSTOS_ERR_NOT_FOUND, "key", "device %s has no key of template '%s'",
                        custos_device_id(d), tmpl);
        goto out;
    }
    ret = write_cert_pem(cli_get(a, "out"), info.cert_der, info.cert_der_len);
    if (ret < 0)
        goto out;
    printf("certificate of key '%s' (%s) written to %s\n", tmpl, custos_alg_name(info.alg),
           cli_get(a, "out"));
    ret = CUSTOS_OK;
out:
    return finish(ret, d, &dev, dev_open);
}
