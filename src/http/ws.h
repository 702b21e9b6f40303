/* ws.h -- the WebSocket protocol (RFC 6455) as a pure codec: the opening handshake's accept key,
 * frame headers read from a client and written by a server, unmasking. No I/O, no allocation, no
 * MQTT; the broker's WebSocket transport puts it on a connection.
 *
 * Rules a server must enforce are checked here, so every user of the codec gets them: reserved bits
 * set without an extension, an unknown opcode, a fragmented or over-long (> 125 bytes) control
 * frame, a 64-bit length with its top bit set are protocol errors (close code 1002); an unmasked
 * client frame is reported (f->masked == 0) for the caller to refuse, as RFC 6455 section 5.1
 * says a server must. */
#ifndef TOMBO_HTTP_WS_H
#define TOMBO_HTTP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

enum ws_opcode { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA };

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED = 1003, /* a text frame where MQTT wants binary */
    WS_CLOSE_TOO_BIG = 1009,
};

typedef struct ws_frame {
    uint8_t fin;
    uint8_t opcode;
    uint8_t masked;
    uint8_t mask[4];
    uint64_t len;      /* payload bytes */
    size_t header_len; /* 2 to 14 */
} ws_frame_t;

#define WS_ACCEPT_LEN 28     /* base64 of a SHA-1 */
#define WS_HEADER_MAX 14     /* a client frame header: 2 + 8 (length) + 4 (mask) */
#define WS_SERVER_HEADER_MAX 10

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key, NUL-terminated in out. -1 when the key
 * is not the base64 of 16 bytes (RFC 6455 section 4.2.1: the handshake is then refused). */
int ws_accept_key(http_str_t key, char out[WS_ACCEPT_LEN + 1]);

/* Read a frame header at buf[0..len). 1: complete, *f filled; 0: more bytes needed; -1: protocol
 * error (see above). */
int ws_frame_header(const uint8_t *buf, size_t len, ws_frame_t *f);

/* XOR n payload bytes in place with the mask; `offset` is how many bytes of this frame's payload
 * came before p (a payload may be unmasked in pieces as it arrives). */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Write a server frame header (never masked) for a payload of len bytes; returns its length. */
size_t ws_frame_header_encode(uint8_t out[WS_SERVER_HEADER_MAX], uint8_t opcode, bool fin, uint64_t len);

/* ---- a stream of frames, decoded in place ----
 *
 * The read side of a connection: frames arrive in pieces of any size (a header may be cut
 * anywhere); ws_read takes each piece apart in the caller's buffer: headers are dropped and data
 * payloads (binary and continuation frames) unmasked and moved down, so buf[0..out) ends up holding
 * the plain byte stream. Nothing is copied out but frame headers cut by the end of a piece (14 bytes
 * at most) and control frame payloads (125 at most), kept in the reader. Checked on top of
 * ws_frame_header: masking (client frames must be masked, server frames must not: RFC 6455 5.1),
 * text frames (MQTT wants binary, [MQTT-6.0.0-1]: 1003), continuation without a message and a new
 * message inside one (1002), frames longer than max_frame (1009). */
typedef struct ws_reader {
    /* public: set before the first ws_read */
    uint64_t max_frame; /* largest frame payload taken (0: no limit) */
    bool from_server;   /* the peer is a server: its frames must not be masked */
    /* read-only after ws_read returns WS_READ_CONTROL: the control frame */
    ws_frame_t f;
    uint8_t ctl[125];
    uint8_t ctl_len;
    /* read-only after an error: why */
    const char *why;
    /* private */
    uint8_t hdr[WS_HEADER_MAX];
    uint8_t hlen, in_frame, in_message;
    uint64_t left, off;
} ws_reader_t;

enum { WS_READ_MORE = 0, WS_READ_CONTROL = 1 };

/* Decode buf[*in..n) in place, appending the data bytes at buf[*out] (*out <= *in always). Returns
 * WS_READ_MORE when all input is taken, WS_READ_CONTROL after a whole control frame (r->f.opcode,
 * payload r->ctl[0..ctl_len), unmasked; call again to go on), or minus the close code of a
 * protocol error (r->why says what). */
int ws_read(ws_reader_t *r, uint8_t *buf, size_t n, size_t *in, size_t *out);

/* Is this request a valid WebSocket opening handshake (RFC 6455 section 4.2.1): GET, HTTP/1.1,
 * Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13 and a key? */
bool ws_is_upgrade(const http_request_t *req);

#endif
