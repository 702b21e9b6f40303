/* test_http_ws.c -- unit tests of the WebSocket codec (src/http/ws.c): RFC 6455's own handshake
 * example (section 1.3), keys that are not 16 bytes of base64 refused; client frame headers of
 * every length encoding, masked and not, read from every prefix; protocol errors (reserved bits,
 * unknown opcodes, fragmented or long control frames, non-minimal lengths, a 64-bit length with the
 * top bit); unmasking in pieces equals unmasking at once; server headers round-trip. */
#include <string.h>

#include "http/ws.h"
#include "unit.h"

static http_str_t S(const char *s) { return (http_str_t){s, strlen(s)}; }

static void handshake(void)
{
    char out[WS_ACCEPT_LEN + 1];
    CASE("RFC 6455 section 1.3: the sample nonce's accept key");
    CHECK_EQ(ws_accept_key(S("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CASE("a key that is not the base64 of 16 bytes is refused");
    CHECK_EQ(ws_accept_key(S("dGhlIHNhbXBsZSBub25jZQ="), out), -1);
    CHECK_EQ(ws_accept_key(S("dGhlIHNhbXBsZSBub25jZSE="), out), -1); /* 17 bytes */
    CHECK_EQ(ws_accept_key(S("dGhlIHNhbXBsZSBub25j*Q=="), out), -1);
    CHECK_EQ(ws_accept_key(S(""), out), -1);

    CASE("ws_is_upgrade");
    const char *h = "GET /mqtt HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    http_request_t r;
    CHECK(http_parse_request(h, strlen(h), 4096, &r) > 0);
    CHECK(ws_is_upgrade(&r));
    const char *v8 = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    CHECK(http_parse_request(v8, strlen(v8), 4096, &r) > 0);
    CHECK(!ws_is_upgrade(&r));
    const char *plain = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(http_parse_request(plain, strlen(plain), 4096, &r) > 0);
    CHECK(!ws_is_upgrade(&r));
}

static void check_header(const uint8_t *b, size_t n, uint8_t op, uint64_t len, bool masked, size_t hl)
{
    ws_frame_t f;
    for (size_t i = 0; i < hl; i++)
        CHECK_EQ(ws_frame_header(b, i, &f), 0);
    CHECK_EQ(ws_frame_header(b, n, &f), 1);
    CHECK_EQ(f.opcode, op);
    CHECK_EQ(f.len, len);
    CHECK_EQ(f.masked, masked);
    CHECK_EQ(f.header_len, hl);
}

static void frame_headers(void)
{
    CASE("7-bit, 16-bit and 64-bit lengths, masked and not");
    const uint8_t a[] = {0x82, 0x85, 1, 2, 3, 4};
    check_header(a, sizeof(a), WS_BINARY, 5, true, 6);
    const uint8_t b[] = {0x82, 0x7e, 0x01, 0x00};
    check_header(b, sizeof(b), WS_BINARY, 256, false, 4);
    const uint8_t c[] = {0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
    check_header(c, sizeof(c), WS_BINARY, 65536, true, 14);
    ws_frame_t f;
    CHECK_EQ(ws_frame_header(c, sizeof(c), &f), 1);
    CHECK_EQ(f.fin, 0);
    CHECK_EQ(f.mask[0], 9);

    CASE("protocol errors");
    static const uint8_t bad[][10] = {
        {0xc2, 0x80},                         /* RSV1 */
        {0x83, 0x80},                         /* opcode 3 */
        {0x8b, 0x80},                         /* opcode 0xB */
        {0x08, 0x80},                         /* fragmented close */
        {0x89, 0xfe, 0x00, 0x80},             /* ping longer than 125 */
        {0x82, 0x7e, 0x00, 0x05},             /* 16-bit length for 5 */
        {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, /* 64-bit length for 65535 */
        {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0},    /* top bit set */
    };
    static const size_t bad_len[] = {2, 2, 2, 2, 4, 4, 10, 10};
    for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++)
        CHECK_EQ(ws_frame_header(bad[i], bad_len[i], &f), -1);
}

static void masking_and_encoding(void)
{
    CASE("unmasking in pieces equals unmasking at once; masking twice is the identity");
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t once[11], pieces[11];
    memcpy(once, "Hello world", 11);
    memcpy(pieces, "Hello world", 11);
    ws_unmask(once, 11, mask, 0);
    ws_unmask(pieces, 3, mask, 0);
    ws_unmask(pieces + 3, 5, mask, 3);
    ws_unmask(pieces + 8, 3, mask, 8);
    CHECK_MEM(once, 11, pieces, 11);
    ws_unmask(once, 11, mask, 0);
    CHECK_MEM(once, 11, "Hello world", 11);

    CASE("server headers round-trip through the reader (unmasked)");
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, 1u << 30};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t h[WS_SERVER_HEADER_MAX];
        size_t n = ws_frame_header_encode(h, WS_BINARY, true, lens[i]);
        ws_frame_t f;
        CHECK_EQ(ws_frame_header(h, n, &f), 1);
        CHECK_EQ(f.len, lens[i]);
        CHECK_EQ(f.header_len, n);
        CHECK_EQ(f.masked, 0);
        CHECK_EQ(f.fin, 1);
    }
}

int main(void)
{
    handshake();
    frame_headers();
    masking_and_encoding();
    UNIT_DONE();
}
