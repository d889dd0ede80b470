/* Steps shared by the device unit tests (tests/unit/support/device_steps.c). */
#ifndef CUSTOS_TEST_DEVICE_STEPS_H
#define CUSTOS_TEST_DEVICE_STEPS_H

#include <stddef.h>
#include <stdint.h>

#include "custos/custos.h"
#include "support/device_fixture.h"

/* Two ECDSA P-256 templates ("t0", "t1"). */
extern const custos_alg DS_P256_2[2];

/* cmocka setup/teardown: a fresh device fixture (dfx) per test. */
int ds_setup(void **state);
int ds_teardown(void **state);
/* Make the initial request on @p f's device; returns the .mcpr (free()). */
uint8_t *ds_do_request(const dfx *f, size_t *len, const custos_alg *algs, size_t n,
                       const char *serial);
/* Request + answer + install; fills the install result. */
void ds_provision(const dfx *f, const custos_alg *algs, size_t n, const char *serial,
                  custos_install_result *res);
/* Sign with template @p tmpl and verify the signature with the certificate's key. */
void ds_check_sign(const custos_device *dev, const char *tmpl);

#endif
