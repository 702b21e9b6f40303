/* ws_files.h -- static files on WebSocket listeners (`http_dir`, as Mosquitto serves them): the
 * answer to a plain HTTP request, one that is not a WebSocket upgrade. */
#ifndef TOMBO_BROKER_WS_FILES_H
#define TOMBO_BROKER_WS_FILES_H

#include <stddef.h>

#include "http/http.h"

/* The largest file served: it is read whole into memory by the worker, so it stays small. */
#define WS_FILE_MAX ((size_t)1 << 20)

/* The whole HTTP answer (head, then the body for a GET) to req, a file under root (a canonical
 * absolute directory, config.c's realpath): GET/HEAD only (405), the path percent-decoded, a `..`
 * segment refused (403), a path whose real location is not under root refused (403, so a symlink
 * cannot lead out), index.html for a path ending in `/`, a redirect (302) to `path/` for a directory,
 * 404 for what does not exist, 403 for what is not a regular file or is larger than WS_FILE_MAX.
 * Every answer says `Connection: close`. Returns a malloc'ed buffer of *len bytes (caller frees)
 * and the status in *status. Blocks on the file system: bounded by WS_FILE_MAX bytes read. */
char *ws_files_answer(const char *root, const http_request_t *req, size_t *len, int *status);

#endif
