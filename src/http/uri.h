/* uri.h -- the parts of a request target the HTTP endpoint reads (RFC 3986): the path, one path
 * segment and query parameters, percent-decoded. Pure functions over the caller's bytes. */
#ifndef TOMBO_HTTP_URI_H
#define TOMBO_HTTP_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* The path of a target: what precedes '?' (and '#'). */
http_str_t uri_path(http_str_t target);

/* Percent-decode s into out (at most cap bytes; '+' stays '+', as in a path). Returns the decoded
 * length, or -1 for a bad escape ("%zz", "%4") or when it does not fit. */
long uri_decode(http_str_t s, char *out, size_t cap);

/* The value of query parameter `name` in target, percent-decoded ('+' means a space there, as
 * browsers send forms), into out (cap bytes, NUL-terminated). Returns its length, -1 when absent,
 * -2 when it is malformed or does not fit. */
long uri_query(http_str_t target, const char *name, char *out, size_t cap);

#endif
