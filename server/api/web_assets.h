/* The web console's files, embedded at build time (cmake/embed_web.cmake). */
#ifndef CUSTOS_SERVER_API_WEB_ASSETS_H
#define CUSTOS_SERVER_API_WEB_ASSETS_H

#include <stddef.h>

typedef struct custos_web_asset {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, from the file's SHA-256 */
} custos_web_asset;

/* Ends with an entry whose path is NULL. */
extern const custos_web_asset custos_web_assets[];

#endif
