/* ws.c -- tombo-bench's WebSocket client side (--ws): the opening handshake and masked frames
 * (RFC 6455) around the engine's MQTT bytes, so the same scenarios measure a broker's
 * `protocol websockets` listener. The frame codec and the accept key are src/http's (ws.h).
 *
 * Output: what the engine queued since the last flush becomes one masked binary frame, in place
 * in the connection's output buffer (the header is inserted in front of the new bytes, which are
 * XORed with a fresh mask key): one frame per flush, as a browser's MQTT.js sends one per packet
 * or per write. Input: server frames are taken apart in place right after each recv, so the
 * engine's packet parser sees the plain MQTT stream (ws_read, the reader the broker uses too). */
#include "bench/bench.h"
#include "http/ws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

/* A cheap per-thread generator for mask keys and handshake keys (xorshift64*): masks need not be
 * cryptographic for a load generator, only varied. */
static _Thread_local uint64_t rng_state;

static uint64_t rng(void)
{
    if (!rng_state)
        rng_state = now_ns() | 1;
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

int ws_client_request(conn_t *c, const char *host, int port)
{
    uint8_t raw[16];
    uint64_t a = rng(), b = rng();
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    EVP_EncodeBlock((unsigned char *)c->ws_key, raw, 16); /* 24 characters and a NUL */
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /mqtt HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                     host, port, c->ws_key);
    uint8_t *o = realloc(c->out, (size_t)n);
    if (!o)
        return -1;
    c->out = o;
    c->out_cap = (uint32_t)n;
    memcpy(c->out, req, (size_t)n);
    c->out_off = 0;
    c->out_len = c->ws_framed = (uint32_t)n; /* sent as it is, not in a frame */
    c->ws_open = false;
    free(c->ws_rd); /* storm: a new connection starts a new stream */
    c->ws_rd = NULL;
    return 0;
}

int ws_client_response(conn_t *c, const uint8_t *p, size_t n, size_t *used)
{
    /* The answer is small and alone (the broker sends nothing before CONNACK): look for its end. */
    const uint8_t *end = NULL;
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    if (!end)
        return n > 4096 ? -1 : 0;
    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0)
        return -1;
    char accept[WS_ACCEPT_LEN + 1];
    http_str_t key = {c->ws_key, 24};
    if (ws_accept_key(key, accept) < 0)
        return -1;
    const char *want = "Sec-WebSocket-Accept: ";
    size_t wl = strlen(want), len = (size_t)(end - p);
    bool ok = false;
    for (size_t i = 0; i + wl + WS_ACCEPT_LEN <= len; i++)
        if (strncasecmp((const char *)p + i, want, wl) == 0) {
            ok = memcmp(p + i + wl, accept, WS_ACCEPT_LEN) == 0;
            break;
        }
    if (!ok)
        return -1;
    *used = len;
    c->ws_open = true;
    return 1;
}

int ws_client_frame(conn_t *c)
{
    if (c->ws_framed >= c->out_len)
        return 0;
    uint32_t n = c->out_len - c->ws_framed;
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_frame_header_encode(h, WS_BINARY, true, n);
    h[1] |= 0x80; /* masked: the same header with the mask bit and the key after the length */
    uint64_t k = rng();
    memcpy(h + hl, &k, 4);
    hl += 4;
    if (c->out_len + hl > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + hl)
            cap *= 2;
        uint8_t *nb = realloc(c->out, cap);
        if (!nb)
            return -1;
        c->out = nb;
        c->out_cap = (uint32_t)cap;
    }
    uint8_t *p = c->out + c->ws_framed;
    memmove(p + hl, p, n);
    memcpy(p, h, hl);
    ws_unmask(p + hl, n, h + hl - 4, 0); /* XOR: masking and unmasking are the same */
    c->out_len += (uint32_t)hl;
    c->ws_framed = c->out_len;
    return 0;
}

ssize_t ws_client_recv(conn_t *c, uint8_t *buf, size_t len)
{
    if (!c->ws_rd) {
        c->ws_rd = calloc(1, sizeof(*c->ws_rd));
        if (!c->ws_rd) {
            errno = ENOMEM;
            return -1;
        }
        c->ws_rd->from_server = true; /* the broker's frames are never masked */
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n <= 0)
            return n;
        size_t in = 0, out = 0;
        for (;;) {
            int r = ws_read(c->ws_rd, buf, (size_t)n, &in, &out);
            if (r == WS_READ_MORE)
                break;
            if (r < 0) {
                errno = EPROTO;
                return -1;
            }
            if (c->ws_rd->f.opcode == WS_CLOSE)
                return out > 0 ? (ssize_t)out : 0; /* the broker ends the connection */
            /* a ping or pong: brokers do not ping their clients; nothing to answer */
        }
        if (out > 0)
            return (ssize_t)out;
        /* only frame headers or control frames: read on (EAGAIN ends it) */
    }
}
