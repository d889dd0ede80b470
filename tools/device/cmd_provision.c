/* custos-device request / install: identity generation from a provisioning
 * package, and installing the certified profile that answers it. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"

#define ROOT_FILE_MAX (64u * 1024u)

/* --root: a root certificate (PEM or DER) the package must chain to. */
static custos_err load_pinned_root(uint8_t **out, size_t *out_len, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    uint8_t *data = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    X509 *cert = NULL;
    unsigned char *der = NULL;
    *out = NULL;
    *out_len = 0;
    ret = cli_read_file(&data, &len, path, ROOT_FILE_MAX, "root");
    if (ret < 0)
        goto out;
    static const char pem_tag[] = "-----BEGIN";
    if (len < sizeof(pem_tag) - 1 || memcmp(data, pem_tag, sizeof(pem_tag) - 1) != 0) {
        *out = data;
        *out_len = len;
        data = NULL;
        ret = CUSTOS_OK;
        goto out;
    }
    bio = BIO_new_mem_buf(data, (int)len);
    if (bio != NULL)
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) {
        ret = cli_error(CUSTOS_ERR_MALFORMED, "root", "%s holds no PEM certificate", path);
        goto out;
    }
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0) {
        ret = cli_error(CUSTOS_ERR_MALFORMED, "root", "cannot encode the certificate in %s", path);
        goto out;
    }
    *out = malloc((size_t)der_len);
    if (*out == NULL) {
        ret = cli_error(CUSTOS_ERR_NOMEM, "root", "out of memory");
        goto out;
    }
    memcpy(*out, der, (size_t)der_len);
    *out_len = (size_t)der_len;
    ret = CUSTOS_OK;
out:
    OPENSSL_free(der);
    X509_free(cert);
    BIO_free(bio);
    free(data);
    return ret;
}

int cli_collect_meta(custos_meta *out, size_t cap, size_t *out_count, const cli_args *a,
                     const char *name, const cli_command *c)
{
    static char keys[2][CUSTOS_MAX_META_ENTRIES + 1][CUSTOS_MAX_META_KEY_LEN + 2];
    int slot = strcmp(name, "meta") == 0 ? 0 : 1;
    *out_count = 0;
    for (size_t i = 0; i < a->n_opts; i++) {
        if (strcmp(a->opts[i].name, name) != 0)
            continue;
        const char *v = a->opts[i].value;
        const char *eq = strchr(v, '=');
        if (eq == NULL || eq == v)
            return cli_usage_error(c, "--%s wants KEY=VALUE, got '%s'", name, v);
        if (*out_count >= cap)
            return cli_usage_error(c, "at most %d --%s entries", CUSTOS_MAX_META_ENTRIES, name);
        size_t klen = (size_t)(eq - v);
        if (klen > CUSTOS_MAX_META_KEY_LEN)
            return cli_usage_error(c, "--%s key '%.*s' is longer than %d characters", name,
                                   (int)klen, v, CUSTOS_MAX_META_KEY_LEN);
        memcpy(keys[slot][*out_count], v, klen);
        keys[slot][*out_count][klen] = '\0';
        out[*out_count].key = keys[slot][*out_count];
        out[*out_count].value = eq + 1;
        (*out_count)++;
    }
    return 0;
}

/* The request id of a .mcpr, for the operator (best effort). */
static void print_request_summary(const uint8_t *mcpr, size_t len)
{
    char *json = NULL;
    if (custos_inspect(&json, mcpr, len) < 0) {
        custos_error_clear();
        return;
    }
    json_t *j = json_loads(json, 0, NULL);
    const char *id = NULL;
    if (j != NULL) {
        id = json_string_value(json_object_get(json_object_get(j, "content"), "request_id"));
        if (id == NULL)
            id = json_string_value(json_object_get(j, "request_id"));
    }
    if (id != NULL)
        printf("request id: %s\n", id);
    json_decref(j);
    free(json);
}

int cli_request_identity(const cli_args *a, const cli_command *c)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    uint8_t *pkg_data = NULL, *root = NULL, *mcpr = NULL;
    size_t pkg_len = 0, root_len = 0, mcpr_len = 0;
    char pass[CLI_PASSPHRASE_MAX + 1];
    size_t pass_len = 0;
    custos_package *pkg = NULL;
    custos_package_options popts = CUSTOS_PACKAGE_OPTIONS_INIT;
    const custos_key_template *templates = NULL;
    size_t n_templates = 0;
    custos_request_options ropts = CUSTOS_REQUEST_OPTIONS_INIT;
    custos_meta meta[CUSTOS_MAX_META_ENTRIES + 1], manuf[CUSTOS_MAX_META_ENTRIES + 1];
    size_t n_meta = 0, n_manuf = 0;
    const char *pkg_path = cli_get(a, "package");
    int keep = cli_flag(a, "keep-package");
    memset(pass, 0, sizeof(pass));

    int rc = cli_collect_meta(meta, CUSTOS_MAX_META_ENTRIES + 1, &n_meta, a, "meta", c);
    if (rc == 0)
        rc = cli_collect_meta(manuf, CUSTOS_MAX_META_ENTRIES + 1, &n_manuf, a, "manufacturer", c);
    if (rc != 0)
        return rc;

    ret = cli_read_file(&pkg_data, &pkg_len, pkg_path, CUSTOS_MAX_PACKAGE_SIZE, "package");
    if (ret < 0)
        goto out;
    ret = cli_read_passphrase(pass, &pass_len, cli_get(a, "passphrase-file"));
    if (ret < 0)
        goto out;
    if (cli_get(a, "root") != NULL) {
        ret = load_pinned_root(&root, &root_len, cli_get(a, "root"));
        if (ret < 0)
            goto out;
    }
    /* Verify the package before touching the device (the library's clock, no
     * port yet): a refused package leaves no directory or secret behind. */
    popts.pinned_root_der = root;
    popts.pinned_root_der_len = root_len;
    ret = custos_package_open(&pkg, pkg_data, pkg_len, pass, pass_len, &popts);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (ret < 0)
        goto out;
    ret = custos_package_templates(&templates, &n_templates, pkg, cli_get(a, "component"));
    if (ret < 0)
        goto out;
    ret = cli_device_open(&dev, a, 1);
    if (ret < 0)
        goto out;
    dev_open = 1;

    ropts.component = cli_get(a, "component");
    ropts.identity.serial = cli_get(a, "serial");
    ropts.identity.hardware_id = cli_get(a, "hardware-id");
    ropts.identity.model = cli_get(a, "model");
    ropts.identity.firmware = cli_get(a, "firmware");
    ropts.identity.metadata = n_meta > 0 ? meta : NULL;
    ropts.identity.metadata_count = n_meta;
    ropts.identity.manufacturer = n_manuf > 0 ? manuf : NULL;
    ropts.identity.manufacturer_count = n_manuf;
    ropts.flags = keep ? CUSTOS_REQUEST_KEEP_PACKAGE : 0;
    ret = custos_device_request(&mcpr, &mcpr_len, &dev.td.port, pkg, &ropts);
    if (ret < 0)
        goto out;

    printf("identity generated for %s/%s serial %s; private keys stay in %s/%s\n",
           custos_package_system(pkg), ropts.component, ropts.identity.serial,
           cli_get(a, "device-dir"), CUSTOS_OBJ_IDENTITY);
    printf("provisioning request written to %s/%s (%zu bytes)\n", cli_get(a, "device-dir"),
           CUSTOS_OBJ_REQUEST, mcpr_len);
    print_request_summary(mcpr, mcpr_len);
    if (keep) {
        printf("package kept at %s (--keep-package): remove it from the device when done\n",
               pkg_path);
    } else {
        ret = custos_port_posix_shred(pkg_path);
        if (ret < 0)
            goto out;
        printf("package %s shredded (overwritten and removed from the device)\n", pkg_path);
    }
    ret = CUSTOS_OK;
out:
    OPENSSL_cleanse(pass, sizeof(pass));
    custos_package_free(pkg);
    if (dev_open)
        cli_device_close(&dev);
    free(pkg_data);
    free(root);
    free(mcpr);
    return ret < 0 ? ret : 0;
}

int cmd_request(const cli_args *a)
{
    int r = cli_request_identity(a, cli_find("request"));
    return r < 0 ? cli_fail(r) : r;
}

int cmd_install(const cli_args *a)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    cli_device dev;
    int dev_open = 0;
    uint8_t *cp = NULL;
    size_t cp_len = 0;
    custos_install_result res;
    char digest[65];
    memset(&res, 0, sizeof(res));
    ret = cli_read_file(&cp, &cp_len, cli_get(a, "profile"), CUSTOS_MAX_PROFILE_SIZE, "profile");
    if (ret < 0)
        goto out;
    ret = cli_device_open(&dev, a, 0);
    if (ret < 0)
        goto out;
    dev_open = 1;
    ret = custos_device_install(&res, &dev.td.port, cp, cp_len);
    if (ret < 0)
        goto out;
    for (size_t i = 0; i < sizeof(res.profile_sha256); i++)
        snprintf(digest + 2 * i, 3, "%02x", res.profile_sha256[i]);
    printf("certified profile installed in %s/%s\n", cli_get(a, "device-dir"), CUSTOS_OBJ_PROFILE);
    printf("  device id   %s\n  request id  %s\n  sha256      %s\n", res.device_id, res.request_id,
           digest);
    if (res.rotated)
        printf("  rotated     yes: the previous profile is kept as %s\n",
               CUSTOS_OBJ_PROFILE_PREVIOUS);
    printf("now mark the device provisioned: custosd device complete --data DIR %s\n",
           res.request_id);
    ret = CUSTOS_OK;
out:
    if (dev_open)
        cli_device_close(&dev);
    free(cp);
    return ret < 0 ? cli_fail(ret) : 0;
}
