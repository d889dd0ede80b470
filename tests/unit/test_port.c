/* The posix and null ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "custos/custos.h"
#include "internal/util.h"
#include "support/testca.h"

typedef struct pfx {
    char dir[256];
    char device_dir[300];
    char secret[300];
    custos_port_posix *posix;
    const custos_port *port;
} pfx;

static int setup(void **state)
{
    pfx *f = calloc(1, sizeof(*f));
    custos_port_posix_options o = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    if (f == NULL || testca_tmpdir(f->dir, sizeof(f->dir)) != 0)
        return -1;
    snprintf(f->device_dir, sizeof(f->device_dir), "%s/dev/files", f->dir);
    snprintf(f->secret, sizeof(f->secret), "%s/sec/device-secret", f->dir);
    o.device_dir = f->device_dir;
    o.secret_file = f->secret;
    if (custos_port_posix_new(&f->posix, &o) != 0)
        return -1;
    f->port = custos_port_posix_get(f->posix);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    pfx *f = *state;
    custos_port_posix_free(f->posix);
    (void)testca_rmtree(f->dir);
    free(f);
    unsetenv("CUSTOS_FAKE_NOW");
    return 0;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_new_creates_dir_0700(void **state)
{
    pfx *f = *state;
    assert_int_equal(mode_of(f->device_dir), 0700);
    assert_non_null(f->port->storage_read);
    assert_null(f->port->transport);
    assert_int_equal(f->port->version, CUSTOS_PORT_VERSION);
}

static void test_new_bad_options(void **state)
{
    (void)state;
    custos_port_posix *p = (custos_port_posix *)1;
    custos_port_posix_options o = CUSTOS_PORT_POSIX_OPTIONS_INIT;
    assert_int_equal(custos_port_posix_new(&p, &o), CUSTOS_ERR_ARG);
    assert_null(p);
    assert_int_equal(custos_port_posix_new(&p, NULL), CUSTOS_ERR_ARG);
    o.version = 99;
    o.device_dir = "/tmp";
    assert_int_equal(custos_port_posix_new(&p, &o), CUSTOS_ERR_ARG);
    custos_port_posix_free(NULL);
    assert_null(custos_port_posix_get(NULL));
}

static void test_write_read_atomic_0600(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t buf[64];
    size_t len = 99;
    char path[512];

    assert_int_equal(p->storage_write("profile.mccp", (const uint8_t *)"first", 5, p->ctx), 0);
    assert_int_equal(p->storage_write("profile.mccp", (const uint8_t *)"second!", 7, p->ctx), 0);
    assert_int_equal(p->storage_read(buf, sizeof(buf), &len, "profile.mccp", p->ctx), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "second!", 7);
    snprintf(path, sizeof(path), "%s/profile.mccp", f->device_dir);
    assert_int_equal(mode_of(path), 0600);

    /* No temporary files left behind. */
    DIR *d = opendir(f->device_dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    assert_int_equal(n, 1);

    /* Empty objects are fine. */
    assert_int_equal(p->storage_write("empty", (const uint8_t *)"", 0, p->ctx), 0);
    assert_int_equal(p->storage_read(buf, sizeof(buf), &len, "empty", p->ctx), 0);
    assert_int_equal(len, 0);
}

static void test_read_missing_and_too_large(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t buf[4];
    size_t len = 99;

    assert_int_equal(p->storage_read(buf, sizeof(buf), &len, "nothing", p->ctx),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(len, 0);
    assert_int_equal(p->storage_write("big", (const uint8_t *)"12345", 5, p->ctx), 0);
    assert_int_equal(p->storage_read(buf, sizeof(buf), &len, "big", p->ctx), CUSTOS_ERR_TOO_LARGE);
    assert_non_null(strstr(custos_error_last()->message, "limit"));
}

static void test_name_validation(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    static const char *const bad[] = {
        "",
        "../x",
        "a/b",
        "..",
        ".hidden",
        "UPPER",
        "a..b",
        "sp ce",
        "-dash",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 chars */
    };
    uint8_t buf[8];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(p->storage_write(bad[i], (const uint8_t *)"x", 1, p->ctx), CUSTOS_ERR_ARG);
        assert_int_equal(p->storage_read(buf, sizeof(buf), &len, bad[i], p->ctx), CUSTOS_ERR_ARG);
        assert_int_equal(p->storage_remove(bad[i], p->ctx), CUSTOS_ERR_ARG);
    }
    assert_int_equal(p->storage_write(NULL, (const uint8_t *)"x", 1, p->ctx), CUSTOS_ERR_ARG);
    assert_int_equal(p->storage_write("ok-name_1.mcpi", (const uint8_t *)"x", 1, p->ctx), 0);
}

static void test_remove(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t buf[8];
    size_t len = 0;

    assert_int_equal(p->storage_write("package.mcpp", (const uint8_t *)"secret", 6, p->ctx), 0);
    assert_int_equal(p->storage_remove("package.mcpp", p->ctx), 0);
    assert_int_equal(p->storage_read(buf, sizeof(buf), &len, "package.mcpp", p->ctx),
                     CUSTOS_ERR_NOT_FOUND);
    assert_int_equal(p->storage_remove("package.mcpp", p->ctx), 0); /* missing: success */
}

static void test_secret_created_0600_and_stable(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t a[CUSTOS_DEVICE_SECRET_MAX], b[CUSTOS_DEVICE_SECRET_MAX];
    size_t la = 0, lb = 0;
    char parent[512];

    assert_int_equal(access(f->secret, F_OK), -1); /* not touched until needed */
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), 0);
    assert_int_equal(la, 32);
    assert_int_equal(mode_of(f->secret), 0600);
    snprintf(parent, sizeof(parent), "%s/sec", f->dir);
    assert_int_equal(mode_of(parent), 0700);
    assert_int_equal(p->device_secret(b, sizeof(b), &lb, p->ctx), 0);
    assert_int_equal(lb, la);
    assert_memory_equal(a, b, la);
    /* Too small a buffer. */
    assert_int_equal(p->device_secret(b, 16, &lb, p->ctx), CUSTOS_ERR_TOO_LARGE);
    assert_int_equal(lb, 0);
}

static void test_secret_refuses_readable_file(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t a[CUSTOS_DEVICE_SECRET_MAX];
    size_t la = 0;

    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), 0);
    assert_int_equal(chmod(f->secret, 0644), 0);
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), CUSTOS_ERR_IO);
    assert_int_equal(la, 0);
    assert_non_null(strstr(custos_error_last()->message, "chmod 600"));
    assert_int_equal(chmod(f->secret, 0640), 0);
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), CUSTOS_ERR_IO);
    assert_int_equal(chmod(f->secret, 0600), 0);
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), 0);
}

static void test_secret_refuses_short_and_symlink(void **state)
{
    pfx *f = *state;
    const custos_port *p = f->port;
    uint8_t a[CUSTOS_DEVICE_SECRET_MAX];
    size_t la = 0;
    char target[512];

    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), 0); /* creates sec/ */
    assert_int_equal(unlink(f->secret), 0);
    assert_int_equal(testca_write_file(f->secret, "short", 5), 0);
    assert_int_equal(chmod(f->secret, 0600), 0);
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), CUSTOS_ERR_MALFORMED);
    assert_int_equal(unlink(f->secret), 0);

    snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
    assert_int_equal(testca_write_file(target, "0123456789abcdef0123456789abcdef", 32), 0);
    assert_int_equal(chmod(target, 0600), 0);
    assert_int_equal(symlink(target, f->secret), 0);
    assert_int_equal(p->device_secret(a, sizeof(a), &la, p->ctx), CUSTOS_ERR_IO);
}

static void test_entropy(void **state)
{
    pfx *f = *state;
    uint8_t a[32], b[32];
    assert_int_equal(f->port->entropy(a, sizeof(a), f->port->ctx), 0);
    assert_int_equal(f->port->entropy(b, sizeof(b), f->port->ctx), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

static void test_clock_and_fake_now(void **state)
{
    pfx *f = *state;
    int64_t t = 0;
    assert_int_equal(f->port->clock(&t, f->port->ctx), 0);
    assert_true(t >= (int64_t)time(NULL) - 5 && t <= (int64_t)time(NULL) + 5);
    setenv("CUSTOS_FAKE_NOW", "1700000000", 1);
    assert_int_equal(f->port->clock(&t, f->port->ctx), 0);
#ifdef CUSTOS_TEST_HOOKS
    assert_int_equal(t, 1700000000);
    setenv("CUSTOS_FAKE_NOW", "17x", 1);
    assert_int_equal(f->port->clock(&t, f->port->ctx), CUSTOS_ERR_ARG);
    setenv("CUSTOS_FAKE_NOW", "-5", 1);
    assert_int_equal(f->port->clock(&t, f->port->ctx), CUSTOS_ERR_ARG);
#else
    /* A production build ignores the test clock. */
    assert_true(t >= (int64_t)time(NULL) - 5);
#endif
    unsetenv("CUSTOS_FAKE_NOW");
}

static void test_shred(void **state)
{
    pfx *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/package.mcpp", f->dir);
    assert_int_equal(testca_write_file(path, "bootstrap", 9), 0);
    assert_int_equal(custos_port_posix_shred(path), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(custos_port_posix_shred(path), 0);
    assert_int_equal(custos_port_posix_shred(NULL), CUSTOS_ERR_ARG);
    assert_int_equal(custos_port_posix_shred(""), CUSTOS_ERR_ARG);
}

static void test_null_port(void **state)
{
    (void)state;
    custos_port p;
    uint8_t buf[64];
    size_t len = 7;
    int64_t t = 7;
    custos_http_response resp;
    custos_http_request req = {0};
    char *json = NULL;

    custos_port_null(&p);
    assert_int_equal(p.version, CUSTOS_PORT_VERSION);
    assert_int_equal(p.device_secret(buf, sizeof(buf), &len, p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(len, 0);
    assert_int_equal(p.entropy(buf, sizeof(buf), p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(p.storage_read(buf, sizeof(buf), &len, "x", p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(p.storage_write("x", buf, 1, p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(p.storage_remove("x", p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(p.clock(&t, p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_int_equal(t, 0);
    assert_int_equal(p.transport(&resp, &req, p.ctx), CUSTOS_ERR_NOT_PROVIDED);
    assert_string_equal(custos_err_code(custos_error_last()->code), "not_provided");
    /* The library passes the port's failure through. */
    assert_int_equal(custos_device_status(&json, &p), CUSTOS_ERR_NOT_PROVIDED);
    assert_null(json);
    custos_port_null(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_creates_dir_0700, setup, teardown),
        cmocka_unit_test(test_new_bad_options),
        cmocka_unit_test_setup_teardown(test_write_read_atomic_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_missing_and_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_created_0600_and_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_refuses_readable_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_refuses_short_and_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entropy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_and_fake_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shred, setup, teardown),
        cmocka_unit_test(test_null_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
