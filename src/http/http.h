/* http.h -- the HTTP/1.1 request head parser tombo's WebSocket listeners and HTTP endpoint read
 * (RFC 9112 sections 2-5): pure functions over the caller's bytes, no I/O, no allocation, no MQTT.
 *
 * Design: the parser looks at a buffer that holds the start of a connection's input and either
 * finds the whole head (request line, header fields, empty line) or says it needs more bytes; the
 * result is views into the caller's buffer, valid while it is. Strict where leniency is what
 * attacks use: a field name with white space before the colon, an obs-folded line, a control
 * character in a value, a request line that is not `METHOD SP TARGET SP HTTP/1.x` are refused; a
 * bare LF ends a line as CRLF does (RFC 9112 section 2.2 allows it). A head longer than max_head
 * bytes or with more than HTTP_MAX_HEADERS fields is refused as too large, whatever arrives later,
 * so a client cannot make the server hold more than max_head bytes before it has a request. */
#ifndef TOMBO_HTTP_HTTP_H
#define TOMBO_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEADERS 64

typedef struct http_str {
    const char *p;
    size_t n;
} http_str_t;

typedef struct http_request {
    http_str_t method;   /* "GET", ... (a token, case-sensitive) */
    http_str_t target;   /* "/mqtt", "/api/v1/clients?limit=10" (visible characters) */
    int minor;           /* HTTP/1.<minor>: 0 or 1 */
    size_t n_headers;
    struct http_header {
        http_str_t name;  /* a token; compare with http_header's case-insensitive lookup */
        http_str_t value; /* leading and trailing blanks trimmed */
    } headers[HTTP_MAX_HEADERS];
} http_request_t;

enum {
    HTTP_INCOMPLETE = 0,
    HTTP_BAD = -1,       /* not a valid request head: answer 400 and close */
    HTTP_TOO_LARGE = -2, /* longer than max_head or too many fields: answer 431 and close */
};

/* Parse the request head at the start of buf[0..len). Returns its length in bytes (> 0: the body
 * or the next protocol's bytes start there), HTTP_INCOMPLETE, HTTP_BAD or HTTP_TOO_LARGE. */
int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_t *req);

/* The value of the first field called `name` (ASCII case-insensitive), or NULL. */
const http_str_t *http_header(const http_request_t *req, const char *name);

/* Does any field called `name` hold `token` in its comma-separated list (case-insensitive, blanks
 * around items ignored)? For Connection: upgrade, Upgrade: websocket, Sec-WebSocket-Protocol. */
bool http_header_has_token(const http_request_t *req, const char *name, const char *token);

/* s equals the NUL-terminated t, ASCII case-insensitive. */
bool http_str_ieq(http_str_t s, const char *t);

/* The reason phrase of a status code this server sends ("OK", "Bad Request", ...; "" if unknown). */
const char *http_reason(int status);

#endif
