/* Test fixture for the device library: a PKI (formats_fixture), a posix
 * port in a temporary directory, packages with chosen key algorithms, and a
 * tiny CA that answers requests with certified profiles. Unit tests only. */
#ifndef CUSTOS_TEST_DEVICE_FIXTURE_H
#define CUSTOS_TEST_DEVICE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "custos/custos.h"
#include "support/formats_fixture.h"

typedef struct dfx {
    fx_pki pki;
    char dir[256];         /* temporary directory (removed by dfx_free) */
    char device_dir[300];  /* the port's storage directory */
    char secret_file[300]; /* the port's device secret */
    custos_port_posix *posix;
    const custos_port *port;
} dfx;

/* PKI + temporary directory + posix port. 0 or -1. */
int dfx_init(dfx *f);
void dfx_free(dfx *f);
/* A second device (own directory and secret) sharing @p f's PKI. */
int dfx_init_peer(dfx *peer, const dfx *f);
void dfx_free_peer(dfx *peer);

/* A signed package for system "pump-x2" with component @p component whose
 * templates have algorithms @p algs (names t0, t1, ...; t0 tls-client, the
 * others signing), plus a component "dock" with one P-256 template. */
int dfx_package(uint8_t **out, size_t *out_len, const dfx *f, const char *component,
                const custos_alg *algs, size_t n);

/* Open the package above (passphrase FX_PASSPHRASE). */
int dfx_package_open(custos_package **out, const dfx *f, const char *component,
                     const custos_alg *algs, size_t n);

/* How to (mis)answer a request. */
typedef struct dfx_answer {
    const char *serial;     /* override the serial in the profile */
    const char *request_id; /* override the request id */
    int wrong_key;          /* certify a fresh key for the first template */
    int mock;               /* mark the profile mock */
    const char *device_id;  /* device id to use (NULL: a fresh one, or the request's) */
} dfx_answer;

/* Verify @p req (against the fixture root) and answer it with a profile. */
int dfx_profile(uint8_t **out, size_t *out_len, const dfx *f, const uint8_t *req, size_t req_len,
                const dfx_answer *a);

/* Write mock device files (identity with keys in the clear + profile under
 * a separate mock root, both marked mock) into @p f's storage. */
int dfx_mock_files(const dfx *f, const char *serial);

/* Read a whole file; NULL if missing. */
uint8_t *dfx_read(const char *path, size_t *out_len);
/* 1 if the storage object exists. */
int dfx_exists(const dfx *f, const char *name);

/* A snapshot of every file of the device directory, to prove "nothing changed". */
typedef struct dfx_snapshot {
    char names[8][256];
    uint8_t *data[8];
    size_t len[8];
    size_t n;
} dfx_snapshot;
int dfx_snapshot_take(dfx_snapshot *s, const dfx *f);
/* 1 if the directory holds exactly the snapshot's files with the same bytes. */
int dfx_snapshot_same(const dfx_snapshot *s, const dfx *f);
void dfx_snapshot_free(dfx_snapshot *s);

#endif
