/* Mock device files over the API: the engine writes them into a private
 * temporary directory, they go back as a POSIX ustar archive (two small
 * regular files, so the writer is the few lines of the ustar header), and
 * the directory is removed. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api_int.h"
#include "internal/util.h"

#define TAR_BLOCK 512
#define MOCK_FILE_MAX (256u * 1024u)

static const char *const MOCK_FILES[] = {"identity.mcpi", "profile.mccp"};

/* One ustar header + the data padded to whole blocks, appended at *off. */
static void tar_put(uint8_t *buf, size_t *off, const char *name, const uint8_t *data, size_t len,
                    int64_t mtime)
{
    uint8_t *h = buf + *off;
    unsigned sum = 0;
    size_t i;

    memset(h, 0, TAR_BLOCK);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0600u);
    snprintf((char *)h + 108, 8, "%07o", 0u);
    snprintf((char *)h + 116, 8, "%07o", 0u);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)len);
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    for (i = 0; i < TAR_BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    *off += TAR_BLOCK;
    memcpy(buf + *off, data, len);
    *off += (len + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

static custos_err read_small(uint8_t **out, size_t *out_len, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    size_t n;

    CUSTOS_ENSURE(f != NULL, CUSTOS_ERR_IO, "mock", "cannot read %s: %s", path, strerror(errno));
    b = malloc(MOCK_FILE_MAX);
    CUSTOS_ENSURE(b != NULL, CUSTOS_ERR_NOMEM, "mock", "out of memory");
    n = fread(b, 1, MOCK_FILE_MAX, f);
    CUSTOS_ENSURE(n < MOCK_FILE_MAX && !ferror(f), CUSTOS_ERR_TOO_LARGE, "mock",
                  "mock file %s too large", path);
    *out = b;
    *out_len = n;
    b = NULL;
    ret = CUSTOS_OK;
out:
    free(b);
    if (f != NULL)
        fclose(f);
    return ret;
}

/* Remove the temporary directory and whatever the engine wrote in it. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4200];
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            (void)unlink(path);
        }
        closedir(d);
    }
    (void)rmdir(dir);
}

custos_err custos_api_mock_tar(uint8_t **out, size_t *out_len, api_call *c, const char *system,
                               const char *component, const char *serial)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    char tmpl[4096], dir[4200], path[4300];
    const char *tmp = getenv("TMPDIR");
    uint8_t *files[2] = {NULL, NULL}, *tar = NULL;
    size_t lens[2] = {0, 0}, i, off = 0, cap;
    int made = 0;
    int64_t now = 0;

    *out = NULL;
    *out_len = 0;
    snprintf(tmpl, sizeof(tmpl), "%s/custos-mock-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    CUSTOS_ENSURE(mkdtemp(tmpl) != NULL, CUSTOS_ERR_IO, "mock",
                  "cannot make a temporary directory: %s", strerror(errno));
    made = 1;
    snprintf(dir, sizeof(dir), "%s/files", tmpl);
    CUSTOS_GUARD(custos_engine_mock_create(c->e, system, component, serial, dir, &c->actor));
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, MOCK_FILES[i]);
        CUSTOS_GUARD(read_small(&files[i], &lens[i], path));
    }
    if (custos_now(&now, NULL) != CUSTOS_OK)
        now = 0;
    cap = 2 * TAR_BLOCK + lens[0] + lens[1] + 2 * TAR_BLOCK + 2 * TAR_BLOCK;
    tar = calloc(1, cap);
    CUSTOS_ENSURE(tar != NULL, CUSTOS_ERR_NOMEM, "mock", "out of memory");
    for (i = 0; i < 2; i++)
        tar_put(tar, &off, MOCK_FILES[i], files[i], lens[i], now);
    off += 2 * TAR_BLOCK; /* end of archive: two zero blocks */
    *out = tar;
    *out_len = off;
    tar = NULL;
    ret = CUSTOS_OK;
out:
    for (i = 0; i < 2; i++) {
        if (files[i] != NULL)
            OPENSSL_cleanse(files[i], lens[i]);
        free(files[i]);
    }
    free(tar);
    if (made) {
        remove_tree(dir);
        remove_tree(tmpl);
    }
    return ret;
}
