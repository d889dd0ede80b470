/* The web console: the files of web/, compiled in (cmake/embed_web.cmake),
 * answered for GET and HEAD outside the API prefixes with a strict
 * Content-Security-Policy and ETag revalidation. `custosd serve --web-dir`
 * serves a folder instead, for people working on the console. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api_int.h"
#include "web_assets.h"

#define STATIC_MAX_PATH 256
#define STATIC_MAX_FILE (4u * 1024u * 1024u)

static const char CSP[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self'; connect-src 'self'; object-src 'none'; "
                          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static const struct {
    const char *ext;
    const char *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');

    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
            if (strcmp(dot, TYPES[i].ext) == 0)
                return TYPES[i].type;
        }
    }
    return "application/octet-stream";
}

int custos_api_is_static_path(const char *path)
{
    return strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0 &&
           strncmp(path, "/device/", 8) != 0 && strncmp(path, "/gateway/", 9) != 0;
}

/* A path the console may name: "/" then segments of [A-Za-z0-9._-], none
 * empty or starting with a dot (no "..", no hidden files). */
static int path_ok(const char *p)
{
    size_t n = strlen(p);

    if (n < 2 || n >= STATIC_MAX_PATH || p[0] != '/')
        return 0;
    for (size_t i = 1; i < n; i++) {
        char ch = p[i];
        int seg_start = p[i - 1] == '/';
        if (seg_start && (ch == '/' || ch == '.'))
            return 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '/'))
            return 0;
    }
    return p[n - 1] != '/';
}

static void answer(custos_http_exchange *x, const char *path, const unsigned char *data, size_t len,
                   const char *etag)
{
    const char *inm = custos_http_header(x, "If-None-Match");

    custos_http_set_header(x, "Content-Security-Policy", CSP);
    custos_http_set_header(x, "X-Frame-Options", "DENY");
    custos_http_set_header(x, "Referrer-Policy", "no-referrer");
    custos_http_set_header(x, "Cross-Origin-Opener-Policy", "same-origin");
    custos_http_set_header(x, "Cross-Origin-Resource-Policy", "same-origin");
    /* Names are not content-hashed: always revalidate, cheaply (304). */
    custos_http_set_header(x, "Cache-Control", "no-cache");
    custos_http_set_header(x, "ETag", etag);
    if (inm != NULL && strstr(inm, etag) != NULL) {
        custos_http_reply(x, 304, NULL, NULL, 0);
        return;
    }
    custos_http_reply(x, 200, content_type(path), data, len);
}

/* Development: the file under web_dir, read whole (bounded), ETag from its
 * SHA-256. O_NOFOLLOW and the path check keep it inside the folder. */
static void answer_from_dir(custos_http_exchange *x, const char *dir, const char *path)
{
    char full[4096 + STATIC_MAX_PATH], etag[40];
    unsigned char md[EVP_MAX_MD_SIZE], *buf = NULL;
    unsigned mdlen = 0;
    struct stat st;
    size_t got = 0;
    int fd;

    snprintf(full, sizeof(full), "%s%s", dir, path);
    fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (size_t)st.st_size > STATIC_MAX_FILE || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        if (fd >= 0)
            close(fd);
        custos_http_reply_error(x, 404, "not_found", "no such page", NULL);
        return;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (EVP_Digest(buf, got, md, &mdlen, EVP_sha256(), NULL) != 1) {
        free(buf);
        custos_http_reply_error(x, 500, "internal", "internal error", NULL);
        return;
    }
    etag[0] = '"';
    for (unsigned i = 0; i < 16; i++)
        snprintf(etag + 1 + 2 * i, 3, "%02x", md[i]);
    snprintf(etag + 33, sizeof(etag) - 33, "\"");
    answer(x, path, buf, got, etag);
    free(buf);
}

void custos_api_static(custos_http_exchange *x, const custos_api *api)
{
    const char *m = custos_http_method(x);
    const char *path = custos_http_path(x);

    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        custos_http_set_header(x, "Allow", "GET, HEAD");
        custos_http_reply_error(x, 405, "method_not_allowed", "this method is not allowed here",
                                NULL);
        return;
    }
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    if (!path_ok(path)) {
        custos_http_reply_error(x, 404, "not_found", "no such page", NULL);
        return;
    }
    if (api->cfg.web_dir != NULL) {
        answer_from_dir(x, api->cfg.web_dir, path);
        return;
    }
    for (const custos_web_asset *a = custos_web_assets; a->path != NULL; a++) {
        if (strcmp(a->path, path) == 0) {
            answer(x, path, a->data, a->len, a->etag);
            return;
        }
    }
    custos_http_reply_error(x, 404, "not_found", "no such page", NULL);
}
