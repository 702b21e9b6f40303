/* fuzz_http.c -- libFuzzer target for src/http: the input is parsed as an HTTP request head with
 * several size limits and read as a stream of WebSocket frame headers. Checked: a head length is
 * within the input and the limit, every view (method, target, field names and values) lies inside
 * the input and a shorter prefix of a complete head is never complete; a frame header is within
 * the input, at most WS_HEADER_MAX bytes, and a server header written for its length reads back;
 * the frame stream reader (ws_read) gives the same bytes, control frames and verdict whether the
 * input comes at once or in pieces (of a size the input's first byte picks), and never writes
 * past what it read. Sanitizers catch the rest. */
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

/* The whole input through ws_read in pieces of `step`: the data bytes into out (returns their
 * count), a summary of control frames and the verdict into *sig. */
static size_t stream(const uint8_t *data, size_t size, size_t step, uint8_t *out, uint64_t *sig)
{
    ws_reader_t r;
    memset(&r, 0, sizeof(r));
    r.max_frame = 1 << 20;
    size_t got = 0;
    *sig = 0;
    uint8_t *piece = malloc(step ? step : 1);
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        memcpy(piece, data + off, n);
        size_t in = 0, o = 0;
        int rc;
        while ((rc = ws_read(&r, piece, n, &in, &o)) == WS_READ_CONTROL) {
            *sig = *sig * 31 + r.f.opcode * 1000 + r.ctl_len;
            if (r.ctl_len > 125 || o > in)
                FAIL("control frame of %u bytes, out %zu > in %zu", r.ctl_len, o, in);
        }
        if (o > in || in > n)
            FAIL("out %zu, in %zu, piece %zu", o, in, n);
        memcpy(out + got, piece, o);
        got += o;
        if (rc < 0) {
            *sig = *sig * 31 + (uint64_t)(-rc);
            break;
        }
    }
    free(piece);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1) {
        uint8_t *a = malloc(size), *b = malloc(size);
        uint64_t sa, sb;
        size_t na = stream(data + 1, size - 1, size - 1, a, &sa);
        size_t nb = stream(data + 1, size - 1, (size_t)data[0] % 17 + 1, b, &sb);
        if (na != nb || sa != sb || memcmp(a, b, na) != 0)
            FAIL("ws_read in pieces of %d differs from at once", data[0] % 17 + 1);
        free(a);
        free(b);
    }
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
