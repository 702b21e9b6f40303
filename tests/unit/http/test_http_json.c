/* test_http_json.c -- unit tests of the HTTP endpoint's JSON output and request helpers
 * (src/http/json.c, uri.c, basic.c): strings from arbitrary bytes are valid JSON (escapes, valid
 * UTF-8 kept, each byte of an invalid sequence replaced by U+FFFD, U+2028/2029 escaped), the
 * buffer grows, query parameters and path segments are percent-decoded with their errors, and
 * Basic credentials are decoded or refused. */
#include <stdio.h>
#include <string.h>

#include "http/basic.h"
#include "http/json.h"
#include "http/uri.h"
#include "unit.h"

static void check_json(const char *in, size_t n, const char *want)
{
    hbuf_t b;
    hb_init(&b);
    hb_json_str(&b, in, n);
    CHECK_STR(b.p, want);
    hb_free(&b);
}

static void json_strings(void)
{
    CASE("plain ASCII, quotes, backslashes and control characters");
    check_json("abc", 3, "\"abc\"");
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_json("\n\r\t\b\f\x01\x1f\x7f", 8, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    CASE("valid UTF-8 is kept, U+2028 and U+2029 escaped");
    check_json("s\xc3\xa4l \xe5\xae\xa2 \xf0\x9f\x90\x9d", 13, "\"s\xc3\xa4l \xe5\xae\xa2 \xf0\x9f\x90\x9d\"");
    check_json("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
    CASE("invalid UTF-8 becomes U+FFFD per byte");
    check_json("\xff", 1, "\"\xef\xbf\xbd\"");
    check_json("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");         /* overlong '/' */
    check_json("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* a surrogate */
    check_json("\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
    check_json("a\xe5\xae", 3, "\"a\xef\xbf\xbd\xef\xbf\xbd\"");         /* cut short */
    CASE("NULL is null; the buffer grows past its first block");
    hbuf_t b;
    hb_init(&b);
    hb_json_cstr(&b, NULL);
    CHECK_STR(b.p, "null");
    for (int i = 0; i < 1000; i++)
        hb_printf(&b, "%d,", i);
    CHECK(b.len > 3000 && strlen(b.p) == b.len);
    char big[1000];
    memset(big, 'x', sizeof(big));
    hb_printf(&b, "%.*s", (int)sizeof(big), big);
    CHECK(b.p[b.len - 1] == 'x' && b.p[b.len - 1000] == 'x');
    hb_free(&b);
}

static http_str_t S(const char *s) { return (http_str_t){s, strlen(s)}; }

static void uris(void)
{
    char out[64];
    CASE("path and query");
    http_str_t p = uri_path(S("/api/v1/clients?limit=5#x"));
    CHECK_MEM(p.p, p.n, "/api/v1/clients", 15);
    CHECK_EQ(uri_query(S("/a?limit=5&filter=ab%2Fc+d"), "filter", out, sizeof(out)), 6);
    CHECK_STR(out, "ab/c d");
    CHECK_EQ(uri_query(S("/a?limit=5&filter=x"), "limit", out, sizeof(out)), 1);
    CHECK_STR(out, "5");
    CHECK_EQ(uri_query(S("/a?limitx=5"), "limit", out, sizeof(out)), -1);
    CHECK_EQ(uri_query(S("/a"), "limit", out, sizeof(out)), -1);
    CHECK_EQ(uri_query(S("/a?flag&x=1"), "flag", out, sizeof(out)), 0);
    CHECK_EQ(uri_query(S("/a?x=%4"), "x", out, sizeof(out)), -2);
    CHECK_EQ(uri_query(S("/a?x=%zz"), "x", out, sizeof(out)), -2);
    CHECK_EQ(uri_query(S("/a?x=0123456789"), "x", out, 5), -2);
    CASE("path segments: '+' stays, escapes decode, bad ones fail");
    CHECK_EQ(uri_decode(S("a+b%C3%BC%00"), out, sizeof(out)), 6);
    CHECK_MEM(out, 6, "a+b\xc3\xbc\0", 6);
    CHECK_EQ(uri_decode(S("%"), out, sizeof(out)), -1);
    CHECK_EQ(uri_decode(S("%a"), out, sizeof(out)), -1);
    CHECK_EQ(uri_decode(S("abc"), out, 2), -1);
}

static int basic(const char *header, const char **u, const char **pw, char *buf, size_t cap)
{
    char head[512];
    snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nAuthorization: %s\r\n\r\n", header);
    http_request_t r;
    CHECK(http_parse_request(head, strlen(head), 8192, &r) > 0);
    return http_basic_credentials(&r, buf, cap, u, pw);
}

static void credentials(void)
{
    char buf[128];
    const char *u, *pw;
    CASE("Basic credentials");
    CHECK_EQ(basic("Basic YWRtaW46czNjcmV0", &u, &pw, buf, sizeof(buf)), 0); /* admin:s3cret */
    CHECK_STR(u, "admin");
    CHECK_STR(pw, "s3cret");
    CHECK_EQ(basic("basic YTpiOmM=", &u, &pw, buf, sizeof(buf)), 0); /* a:b:c: the password has ':' */
    CHECK_STR(u, "a");
    CHECK_STR(pw, "b:c");
    CHECK_EQ(basic("Basic Og==", &u, &pw, buf, sizeof(buf)), 0); /* ":" */
    CHECK_STR(u, "");
    CASE("refused: other schemes, bad base64, no colon, NUL, too long");
    CHECK_EQ(basic("Bearer YWRtaW46czNjcmV0", &u, &pw, buf, sizeof(buf)), -1);
    CHECK_EQ(basic("Basic !!!!", &u, &pw, buf, sizeof(buf)), -1);
    CHECK_EQ(basic("Basic YWRtaW4", &u, &pw, buf, sizeof(buf)), -1);    /* not a multiple of 4 */
    CHECK_EQ(basic("Basic YW=taW4=", &u, &pw, buf, sizeof(buf)), -1);   /* '=' inside */
    CHECK_EQ(basic("Basic YWRtaW4=", &u, &pw, buf, sizeof(buf)), -1);   /* "admin": no ':' */
    CHECK_EQ(basic("Basic YQBiOmM=", &u, &pw, buf, sizeof(buf)), -1);   /* "a\0b:c" */
    CHECK_EQ(basic("Basic YWRtaW46czNjcmV0", &u, &pw, buf, 8), -1);
    CHECK_EQ(basic("Basic", &u, &pw, buf, sizeof(buf)), -1);
}

int main(void)
{
    json_strings();
    uris();
    credentials();
    UNIT_DONE();
}
