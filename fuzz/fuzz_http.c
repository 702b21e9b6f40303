/* fuzz_http.c -- libFuzzer target for src/http: the input is parsed as an HTTP request head with
 * several size limits and read as a stream of WebSocket frame headers. Checked: a head length is
 * within the input and the limit, every view (method, target, field names and values) lies inside
 * the input and a shorter prefix of a complete head is never complete; a frame header is within
 * the input, at most WS_HEADER_MAX bytes, and a server header written for its length reads back.
 * Sanitizers catch the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "http/ws.h"

#define FAIL(...)                                   \
    do {                                            \
        fprintf(stderr, "fuzz_http: " __VA_ARGS__); \
        fputc('\n', stderr);                        \
        abort();                                    \
    } while (0)

static void inside(const char *buf, size_t len, http_str_t s, const char *what)
{
    if (s.n && (s.p < buf || s.p + s.n > buf + len))
        FAIL("%s outside the input", what);
}

static void head(const char *buf, size_t len, size_t max)
{
    http_request_t r;
    int n = http_parse_request(buf, len, max, &r);
    if (n < HTTP_TOO_LARGE)
        FAIL("unknown result %d", n);
    if (n <= 0)
        return;
    if ((size_t)n > len || (size_t)n > max)
        FAIL("head of %d bytes from %zu (limit %zu)", n, len, max);
    inside(buf, len, r.method, "method");
    inside(buf, len, r.target, "target");
    for (size_t i = 0; i < r.n_headers; i++) {
        inside(buf, len, r.headers[i].name, "field name");
        inside(buf, len, r.headers[i].value, "field value");
    }
    if (n > 1 && http_parse_request(buf, (size_t)n - 1, max, &r) > 0)
        FAIL("a prefix of a complete head is complete");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    head((const char *)data, size, 64);
    head((const char *)data, size, 4096);
    size_t off = 0;
    while (off < size) {
        ws_frame_t f;
        int r = ws_frame_header(data + off, size - off, &f);
        if (r <= 0)
            break;
        if (f.header_len > WS_HEADER_MAX || f.header_len > size - off)
            FAIL("frame header of %zu bytes", f.header_len);
        uint8_t h[WS_SERVER_HEADER_MAX];
        ws_frame_t g;
        size_t hn = ws_frame_header_encode(h, f.opcode, f.fin, f.len);
        if (ws_frame_header(h, hn, &g) != 1 || g.len != f.len || g.opcode != f.opcode || g.fin != f.fin)
            FAIL("server header for %llu bytes does not read back", (unsigned long long)f.len);
        off += f.header_len;
        size_t body = f.len < size - off ? (size_t)f.len : size - off;
        off += body;
    }
    return 0;
}
