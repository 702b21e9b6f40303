/* fuzz_http_api.c -- libFuzzer target for what the HTTP endpoint does with a request before it
 * reaches the broker (src/http: uri.c, basic.c, json.c): the input is parsed as a request head;
 * its target's path and query parameters are percent-decoded and its Basic credentials decoded;
 * and the whole input is written as a JSON string. Checked: decoded lengths stay within their
 * buffers and are NUL-terminated where promised, credentials point into the caller's buffer, and
 * the JSON string is valid (quoted, no raw control character or quote, only valid UTF-8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/basic.h"
#include "http/http.h"
#include "http/json.h"
#include "http/uri.h"

#define FAIL(...)                                       \
    do {                                                \
        fprintf(stderr, "fuzz_http_api: " __VA_ARGS__); \
        fputc('\n', stderr);                            \
        abort();                                        \
    } while (0)

static void json_valid(const uint8_t *data, size_t size)
{
    hbuf_t b;
    hb_init(&b);
    hb_json_str(&b, data, size);
    const uint8_t *p = (const uint8_t *)b.p;
    if (b.len < 2 || p[0] != '"' || p[b.len - 1] != '"')
        FAIL("not quoted");
    for (size_t i = 1; i < b.len - 1;) {
        if (p[i] < 0x20)
            FAIL("raw control character 0x%02x", p[i]);
        if (p[i] == '"')
            FAIL("raw quote");
        if (p[i] == '\\') {
            if (i + 1 >= b.len - 1 || !strchr("\"\\nrtbfu", p[i + 1]))
                FAIL("bad escape");
            i += p[i + 1] == 'u' ? 6 : 2;
            continue;
        }
        size_t k = utf8_seq_len(p + i, b.len - 1 - i);
        if (!k)
            FAIL("invalid UTF-8 at %zu", i);
        i += k;
    }
    hb_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_valid(data, size);
    http_request_t r;
    if (http_parse_request((const char *)data, size, 4096, &r) <= 0)
        return 0;
    char out[64];
    http_str_t path = uri_path(r.target);
    if (path.n > r.target.n)
        FAIL("path longer than the target");
    long n = uri_decode(path, out, sizeof(out));
    if (n > (long)sizeof(out))
        FAIL("decoded %ld bytes into %zu", n, sizeof(out));
    static const char *const names[] = {"filter", "limit", "offset", "client", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        n = uri_query(r.target, names[i], out, sizeof(out));
        if (n >= (long)sizeof(out) || (n >= 0 && out[n] != '\0') || n < -2)
            FAIL("query %s: %ld", names[i], n);
    }
    char buf[96];
    const char *u, *pw;
    if (http_basic_credentials(&r, buf, sizeof(buf), &u, &pw) == 0) {
        if (u != buf || pw <= u || pw >= buf + sizeof(buf) || strlen(u) + 1 + strlen(pw) >= sizeof(buf))
            FAIL("credentials outside the buffer");
    }
    return 0;
}
