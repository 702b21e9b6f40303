/* basic.h -- HTTP Basic authentication (RFC 7617): the user and password of an Authorization
 * header. Pure: the caller checks them (the broker against its password file). */
#ifndef TOMBO_HTTP_BASIC_H
#define TOMBO_HTTP_BASIC_H

#include <stddef.h>

#include "http/http.h"

/* The credentials of `Authorization: Basic BASE64(user:password)` in req: user and password,
 * NUL-terminated, into buf (cap bytes; *user and *pass point into it). Returns 0, or -1 when the
 * header is absent, not Basic, not valid base64, has no ':' or does not fit. */
int http_basic_credentials(const http_request_t *req, char *buf, size_t cap, const char **user, const char **pass);

#endif
