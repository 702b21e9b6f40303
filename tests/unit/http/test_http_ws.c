/* test_http_ws.c -- unit tests of the WebSocket codec (src/http/ws.c): RFC 6455's own handshake
 * example (section 1.3), keys that are not 16 bytes of base64 refused; client frame headers of
 * every length encoding, masked and not, read from every prefix; protocol errors (reserved bits,
 * unknown opcodes, fragmented or long control frames, non-minimal lengths, a 64-bit length with the
 * top bit); unmasking in pieces equals unmasking at once; server headers round-trip; the stream
 * reader (ws_read) gives the same bytes and control frames whatever the pieces its input comes in,
 * and refuses what RFC 6455 and MQTT 5.0 section 6 refuse with their close codes. */
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

/* Append a client frame (masked with a fixed key) of payload p[0..n) to out at *len. */
static void put_frame(uint8_t *out, size_t *len, uint8_t op, bool fin, const void *p, size_t n, bool masked)
{
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_frame_header_encode(h, op, fin, n);
    const uint8_t key[4] = {0xa1, 0x5e, 0x07, 0xc3};
    if (masked) {
        h[1] |= 0x80;
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    memcpy(out + *len, h, hl);
    memcpy(out + *len + hl, p, n);
    if (masked)
        ws_unmask(out + *len + hl, n, key, 0);
    *len += hl + n;
}

/* Read stream[0..len) in pieces of `step` bytes (each piece in its own buffer, as reads come):
 * the data bytes into data (returns their count), the control frames' opcodes into ops. Stops at
 * an error, returned in *err. */
static size_t read_in_pieces(const uint8_t *stream, size_t len, size_t step, uint8_t *data, uint8_t *ops,
                             size_t *n_ops, int *err)
{
    ws_reader_t r;
    memset(&r, 0, sizeof(r));
    r.max_frame = 100000;
    size_t got = 0;
    *n_ops = 0;
    *err = 0;
    for (size_t off = 0; off < len; off += step) {
        uint8_t piece[4096];
        size_t n = len - off < step ? len - off : step;
        memcpy(piece, stream + off, n);
        size_t in = 0, out = 0;
        for (;;) {
            int rc = ws_read(&r, piece, n, &in, &out);
            if (rc == WS_READ_MORE)
                break;
            if (rc < 0) {
                *err = rc;
                memcpy(data + got, piece, out);
                return got + out;
            }
            ops[(*n_ops)++] = r.f.opcode;
            if (r.f.opcode == WS_PING) {
                CHECK_EQ(r.ctl_len, 4);
                CHECK_MEM(r.ctl, 4, "ping", 4);
            }
        }
        CHECK_EQ(in, n);
        memcpy(data + got, piece, out);
        got += out;
    }
    return got;
}

static void stream_reader(void)
{
    CASE("ws_read: one stream, every piece size: the same bytes and control frames");
    uint8_t stream[2048], plain[2048];
    size_t len = 0, plen = 0;
    for (size_t i = 0; i < 700; i++)
        plain[i] = (uint8_t)(i * 7 + 1);
    put_frame(stream, &len, WS_BINARY, true, plain, 10, true);          /* a whole message */
    put_frame(stream, &len, WS_BINARY, false, plain + 10, 1, true);     /* fragments ... */
    put_frame(stream, &len, WS_PING, true, "ping", 4, true);            /* ... a ping between them */
    put_frame(stream, &len, WS_CONT, false, plain + 11, 0, true);       /* an empty one */
    put_frame(stream, &len, WS_CONT, true, plain + 11, 300, true);      /* 16-bit length */
    put_frame(stream, &len, WS_BINARY, true, plain + 311, 389, true);
    put_frame(stream, &len, WS_PONG, true, "", 0, true);
    plen = 700;
    for (size_t step = 1; step <= len; step += (step < 20 ? 1 : 37)) {
        uint8_t data[2048], ops[8];
        size_t n_ops;
        int err;
        size_t got = read_in_pieces(stream, len, step, data, ops, &n_ops, &err);
        CHECK_EQ(err, 0);
        CHECK_MEM(data, got, plain, plen);
        CHECK_EQ(n_ops, 2);
        CHECK_EQ(ops[0], WS_PING);
        CHECK_EQ(ops[1], WS_PONG);
    }

    CASE("ws_read: what is refused, with its close code");
    struct {
        uint8_t op;
        bool fin, masked;
        size_t n;
        int code;
    } bad[] = {
        {WS_BINARY, true, false, 3, -WS_CLOSE_PROTOCOL_ERROR}, /* unmasked client frame */
        {WS_TEXT, true, true, 3, -WS_CLOSE_UNSUPPORTED},       /* text [MQTT-6.0.0-1] */
        {WS_CONT, true, true, 3, -WS_CLOSE_PROTOCOL_ERROR},    /* continuation of nothing */
        {WS_BINARY, true, true, 100001, -WS_CLOSE_TOO_BIG},    /* over max_frame */
    };
    static uint8_t big[100001 + WS_HEADER_MAX + 16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t blen = 0;
        put_frame(big, &blen, WS_BINARY, true, "ok", 2, true);
        put_frame(big, &blen, bad[i].op, bad[i].fin, plain, bad[i].n > 700 ? 0 : bad[i].n, bad[i].masked);
        if (bad[i].n > 700) { /* rewrite the length only: the reader refuses before the payload */
            blen = 0;
            put_frame(big, &blen, WS_BINARY, true, "ok", 2, true);
            uint8_t h[WS_HEADER_MAX];
            size_t hl = ws_frame_header_encode(h, WS_BINARY, true, bad[i].n);
            h[1] |= 0x80;
            memset(h + hl, 0, 4);
            memcpy(big + blen, h, hl + 4);
            blen += hl + 4;
        }
        uint8_t data[2048], ops[8];
        size_t n_ops;
        int err;
        size_t got = read_in_pieces(big, blen, 3, data, ops, &n_ops, &err);
        CHECK_EQ(err, bad[i].code);
        CHECK(got <= 2);
    }

    CASE("ws_read: a binary message inside a fragmented one is refused");
    {
        size_t blen = 0;
        put_frame(big, &blen, WS_BINARY, false, "a", 1, true);
        put_frame(big, &blen, WS_BINARY, true, "b", 1, true);
        uint8_t data[16], ops[8];
        size_t n_ops;
        int err;
        read_in_pieces(big, blen, 64, data, ops, &n_ops, &err);
        CHECK_EQ(err, -WS_CLOSE_PROTOCOL_ERROR);
    }

    CASE("ws_read: a server's frames must not be masked");
    {
        ws_reader_t r;
        memset(&r, 0, sizeof(r));
        r.from_server = true;
        uint8_t buf[64];
        size_t blen = 0, in = 0, out = 0;
        put_frame(buf, &blen, WS_BINARY, true, "abc", 3, false);
        CHECK_EQ(ws_read(&r, buf, blen, &in, &out), WS_READ_MORE);
        CHECK_MEM(buf, out, "abc", 3);
        blen = in = out = 0;
        put_frame(buf, &blen, WS_BINARY, true, "abc", 3, true);
        CHECK_EQ(ws_read(&r, buf, blen, &in, &out), -WS_CLOSE_PROTOCOL_ERROR);
    }
}

int main(void)
{
    handshake();
    frame_headers();
    masking_and_encoding();
    stream_reader();
    UNIT_DONE();
}
