/**
 * @file package.h
 * @brief Open a provisioning package (.mcpp) on the device.
 */
#ifndef CUSTOS_PACKAGE_H
#define CUSTOS_PACKAGE_H

#include <stddef.h>
#include <stdint.h>

#include "custos/error.h"
#include "custos/port.h"
#include "custos/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opened, verified provisioning package holding the decrypted bootstrap key. */
typedef struct custos_package custos_package;

typedef struct custos_package_options {
    unsigned version;
    /** Port whose clock decides expiry (NULL: system clock). */
    const custos_port *port;
    /**
     * DER of a root certificate baked into the firmware. When set, the package
     * must chain to exactly this root; when NULL the package is checked
     * against the Root of Trust it carries (trust on first use).
     */
    const uint8_t *pinned_root_der;
    size_t pinned_root_der_len;
} custos_package_options;

#define CUSTOS_PACKAGE_OPTIONS_VERSION 1
#define CUSTOS_PACKAGE_OPTIONS_INIT                                                                \
    {                                                                                              \
        CUSTOS_PACKAGE_OPTIONS_VERSION, NULL, NULL, 0                                              \
    }

/**
 * Verify and open a package: size, CMS signature by the package-signing key,
 * chain to the Root of Trust, expiry, then decrypt the bootstrap key with
 * @p passphrase (::CUSTOS_ERR_PASSPHRASE if wrong).
 * @param out receives the package; free with custos_package_free().
 * @param opts may be NULL for defaults.
 */
CUSTOS_NODISCARD custos_err custos_package_open(custos_package **out, const uint8_t *data,
                                                size_t len, const char *passphrase,
                                                size_t passphrase_len,
                                                const custos_package_options *opts);

/** Free a package, wiping the bootstrap key. NULL is a no-op. */
void custos_package_free(custos_package *pkg);

const char *custos_package_id(const custos_package *pkg);
const char *custos_package_system(const custos_package *pkg);
/** Expiry of the package (= notAfter of the bootstrap certificate), Unix seconds. */
int64_t custos_package_expires(const custos_package *pkg);
size_t custos_package_component_count(const custos_package *pkg);
/** @return the name of component @p i, or NULL when out of range. */
const char *custos_package_component_name(const custos_package *pkg, size_t i);

/**
 * The key templates of @p component.
 * @return ::CUSTOS_ERR_UNKNOWN_COMPONENT if the package has no such component.
 */
CUSTOS_NODISCARD custos_err custos_package_templates(const custos_key_template **out,
                                                     size_t *out_count, const custos_package *pkg,
                                                     const char *component);

/** Cloud service URL from the package ("" when none). */
const char *custos_package_cloud_url(const custos_package *pkg);
size_t custos_package_gateway_count(const custos_package *pkg);
const char *custos_package_gateway(const custos_package *pkg, size_t i);

/** DER of the bootstrap certificate (borrowed; valid until custos_package_free()). */
CUSTOS_NODISCARD custos_err custos_package_bootstrap_cert(const uint8_t **out, size_t *out_len,
                                                          const custos_package *pkg);
/** Number of Root of Trust certificates and DER of the @p i-th (borrowed). */
size_t custos_package_root_count(const custos_package *pkg);
CUSTOS_NODISCARD custos_err custos_package_root(const uint8_t **out, size_t *out_len,
                                                const custos_package *pkg, size_t i);

#ifdef __cplusplus
}
#endif
#endif
