/* test_http_request.c -- unit tests of the HTTP/1.1 request head parser (src/http/http.c): a
 * browser's WebSocket handshake and a curl request parse into method, target, version and fields;
 * every prefix of a valid head is "incomplete", never an error; the parser's refusals (obs-fold,
 * white space before a colon, control characters, bad request lines, HTTP/2 or 1.2), and the size
 * limits: a head over max_head, or a never-ending one, is "too large" before it is complete;
 * token lists (Connection: keep-alive, Upgrade) are matched case-insensitively. */
#include <string.h>

#include "http/http.h"
#include "unit.h"

static int parse(const char *s, http_request_t *r) { return http_parse_request(s, strlen(s), 8192, r); }

static void browser_handshake(void)
{
    CASE("a browser's WebSocket opening handshake");
    const char *h = "GET /mqtt HTTP/1.1\r\n"
                    "Host: 127.0.0.1:8080\r\n"
                    "Connection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Protocol: mqtt\r\n"
                    "User-Agent:   Mozilla/5.0 (X11)  \r\n"
                    "\r\n"
                    "\x82\x80rest";
    http_request_t r;
    int n = parse(h, &r);
    CHECK_EQ(n, (int)(strstr(h, "\r\n\r\n") - h + 4));
    CHECK(http_str_ieq(r.method, "GET"));
    CHECK(http_str_ieq(r.target, "/mqtt"));
    CHECK_EQ(r.minor, 1);
    CHECK_EQ(r.n_headers, 7);
    CHECK(http_str_ieq(*http_header(&r, "host"), "127.0.0.1:8080"));
    CHECK(http_str_ieq(*http_header(&r, "USER-AGENT"), "Mozilla/5.0 (X11)")); /* blanks trimmed */
    CHECK(http_header(&r, "Cookie") == NULL);
    CHECK(http_header_has_token(&r, "connection", "upgrade"));
    CHECK(http_header_has_token(&r, "Connection", "Keep-Alive"));
    CHECK(!http_header_has_token(&r, "Connection", "close"));
    CHECK(http_header_has_token(&r, "Upgrade", "WebSocket"));
}

static void every_prefix_is_incomplete(void)
{
    CASE("every prefix of a valid head is incomplete, never an error");
    const char *h = "GET /metrics?x=1 HTTP/1.0\nAccept: */*\nX-Empty:\n\n";
    http_request_t r;
    for (size_t i = 0; i < strlen(h); i++)
        CHECK_EQ(http_parse_request(h, i, 8192, &r), HTTP_INCOMPLETE);
    CHECK_EQ(parse(h, &r), (int)strlen(h)); /* bare LF lines */
    CHECK_EQ(r.minor, 0);
    CHECK(http_str_ieq(r.target, "/metrics?x=1"));
    CHECK_EQ(http_header(&r, "x-empty")->n, 0);
}

static void refusals(void)
{
    http_request_t r;
    static const char *const bad[] = {
        "GET /x HTTP/1.1\r\nHost : a\r\n\r\n",          /* white space before the colon */
        "GET /x HTTP/1.1\r\nHost: a\r\n continued\r\n\r\n", /* obs-fold */
        "GET /x HTTP/1.1\r\n: a\r\n\r\n",               /* empty field name */
        "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET /x HTTP/1.1\r\nX: a\x01z\r\n\r\n",          /* control character in a value */
        "GET /x HTTP/1.1\r\nX: a\rz\r\n\r\n",            /* bare CR */
        "GET  /x HTTP/1.1\r\n\r\n",                      /* two spaces */
        "GET /x HTTP/2.0\r\n\r\n",
        "GET /x HTTP/1.2\r\n\r\n",
        "GET /x HTTP/1.1 extra\r\n\r\n",
        "G(T /x HTTP/1.1\r\n\r\n",                       /* not a token */
        "GET\r\n\r\n",
        "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", /* too many leading empty lines */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CASE(bad[i]);
        CHECK_EQ(parse(bad[i], &r), HTTP_BAD);
    }
    CASE("leading empty lines before the request line are skipped (RFC 9112 section 2.2)");
    CHECK_EQ(parse("\r\nGET / HTTP/1.1\r\n\r\n", &r), 20);
}

static void limits(void)
{
    http_request_t r;
    char big[4096];
    CASE("a head longer than max_head is too large, complete or not");
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    CHECK_EQ(http_parse_request(big, sizeof(big), 1024, &r), HTTP_TOO_LARGE); /* no end in sight */
    CHECK_EQ(http_parse_request(big, 1000, 1024, &r), HTTP_INCOMPLETE);
    const char *h = "GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    CHECK_EQ(http_parse_request(h, strlen(h), 40, &r), HTTP_TOO_LARGE);
    CHECK_EQ(http_parse_request(h, strlen(h), strlen(h), &r), (int)strlen(h));

    CASE("more than HTTP_MAX_HEADERS fields is too large");
    char many[4096];
    size_t o = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        o += (size_t)snprintf(many + o, sizeof(many) - o, "H%d: v\r\n", i);
    o += (size_t)snprintf(many + o, sizeof(many) - o, "\r\n");
    CHECK_EQ(http_parse_request(many, o, sizeof(many), &r), HTTP_TOO_LARGE);
}

int main(void)
{
    browser_handshake();
    every_prefix_is_incomplete();
    refusals();
    limits();
    CASE("reason phrases");
    CHECK_STR(http_reason(101), "Switching Protocols");
    CHECK_STR(http_reason(431), "Request Header Fields Too Large");
    UNIT_DONE();
}
