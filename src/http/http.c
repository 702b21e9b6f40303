/* http.c -- the HTTP/1.1 request head parser (see http.h). */
#include "http/http.h"

#include <string.h>

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(unsigned char c) { return c > 0x20 && c != 0x7f; } /* obs-text (>= 0x80) allowed */

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

bool http_str_ieq(http_str_t s, const char *t)
{
    size_t n = strlen(t);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)t[i]))
            return false;
    return true;
}

/* The end of the line starting at buf[i]: index of its '\n', or len when there is none yet.
 * *content_end: where the line's content stops (before "\r\n" or "\n"). */
static size_t line_end(const char *buf, size_t i, size_t len, size_t *content_end)
{
    const char *nl = memchr(buf + i, '\n', len - i);
    if (!nl)
        return len;
    size_t e = (size_t)(nl - buf);
    *content_end = e > i && buf[e - 1] == '\r' ? e - 1 : e;
    return e;
}

static int parse_request_line(const char *s, size_t n, http_request_t *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ' ')
        return HTTP_BAD;
    req->method = (http_str_t){s, i};
    size_t t0 = ++i;
    while (i < n && is_vchar((unsigned char)s[i]))
        i++;
    if (i == t0 || i >= n || s[i] != ' ')
        return HTTP_BAD;
    req->target = (http_str_t){s + t0, i - t0};
    i++;
    if (n - i != 8 || memcmp(s + i, "HTTP/1.", 7) != 0 || (s[i + 7] != '0' && s[i + 7] != '1'))
        return HTTP_BAD;
    req->minor = s[i + 7] - '0';
    return 0;
}

static int parse_field(const char *s, size_t n, http_request_t *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ':') /* empty name, or white space before the colon */
        return HTTP_BAD;
    if (req->n_headers == HTTP_MAX_HEADERS)
        return HTTP_TOO_LARGE;
    http_str_t name = {s, i};
    i++;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t v0 = i, end = n;
    while (end > v0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    for (size_t k = v0; k < end; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c != '\t' && c != ' ' && !is_vchar(c))
            return HTTP_BAD; /* CR, NUL and other controls */
    }
    req->headers[req->n_headers++] = (struct http_header){name, {s + v0, end - v0}};
    return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_t *req)
{
    req->n_headers = 0;
    size_t i = 0, ce = 0;
    /* A client may send empty lines before the request line (RFC 9112 section 2.2). */
    for (int blanks = 0;; blanks++) {
        size_t e = line_end(buf, i, len, &ce);
        if (e == len)
            return len > max_head ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
        if (ce > i)
            break;
        if (blanks == 4)
            return HTTP_BAD;
        i = e + 1;
    }
    size_t e = line_end(buf, i, len, &ce);
    if (e + 1 > max_head)
        return HTTP_TOO_LARGE;
    int r = parse_request_line(buf + i, ce - i, req);
    if (r)
        return r;
    i = e + 1;
    for (;;) {
        e = line_end(buf, i, len, &ce);
        if (e == len)
            return len > max_head ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
        if (e + 1 > max_head)
            return HTTP_TOO_LARGE;
        if (ce == i) /* the empty line: the head is complete */
            return (int)(e + 1);
        if (buf[i] == ' ' || buf[i] == '\t')
            return HTTP_BAD; /* obs-fold (RFC 9112 section 5.2: a server may reject it) */
        r = parse_field(buf + i, ce - i, req);
        if (r)
            return r;
        i = e + 1;
    }
}

const http_str_t *http_header(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (http_str_ieq(req->headers[i].name, name))
            return &req->headers[i].value;
    return NULL;
}

bool http_header_has_token(const http_request_t *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!http_str_ieq(req->headers[i].name, name))
            continue;
        http_str_t v = req->headers[i].value;
        size_t k = 0;
        while (k <= v.n) {
            size_t s = k;
            while (k < v.n && v.p[k] != ',')
                k++;
            size_t a = s, b = k;
            while (a < b && (v.p[a] == ' ' || v.p[a] == '\t'))
                a++;
            while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t'))
                b--;
            if (http_str_ieq((http_str_t){v.p + a, b - a}, token))
                return true;
            k++;
        }
    }
    return false;
}

const char *http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}
