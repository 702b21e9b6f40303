/* web_assets.h -- the dashboard's files (web/), built into the binary at build time by
 * cmake/embed_web.cmake (the machine that runs tombo may have no internet: no CDN, no files to
 * install next to it). */
#ifndef TOMBO_BROKER_WEB_ASSETS_H
#define TOMBO_BROKER_WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *path; /* "/index.html", "/app.js", ... */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
} web_asset_t;

extern const web_asset_t web_assets[];
extern const size_t web_assets_n;

#endif
