/* transport_ws.c -- MQTT over WebSockets (RFC 6455; MQTT 5.0 section 6): a transport (transport.h)
 * layered over another one, plain TCP (ws) or TLS (wss), on listeners with `protocol websockets`.
 *
 * Design note. The connection's transport becomes transport_ws and the one below (TCP or TLS) is
 * kept in c->ws->lower; handlers and the output queue never know. The opening handshake runs inside
 * read: the request head is gathered (at most websockets_headers_size bytes), parsed by src/http
 * (http.h), checked (ws_is_upgrade, subprotocol mqtt or mqttv3.1, or none as Mosquitto allows), and
 * answered with 101; bytes that came behind the head are the first frames. On a listener with
 * `http_dir`, a request that is not an upgrade (no Upgrade field) is a file request instead: its
 * whole answer is built by ws_files.c and written from read as the socket drains, then read
 * returns 0 and the connection ends (one request per connection, as Mosquitto does).
 *
 * Input: frames are decoded in the caller's buffer, in place, by src/http's ws_read: each frame
 * header is dropped and each binary payload unmasked and moved down over it, so what conn.c gets is
 * the plain MQTT byte stream, whatever the framing (a packet split over frames, several packets in a
 * frame, 1-byte frames, fragmented messages); payloads are never buffered here. A ping is answered
 * with a pong, a close with a close echoing its code. An unmasked frame, a text frame
 * ([MQTT-6.0.0-1]), a continuation without a message or a frame over WS_FRAME_MAX close the
 * connection with the close code RFC 6455 names (1002, 1003, 1009).
 *
 * Output: writev wraps the iovecs it is offered in one binary frame whose header is one more iovec
 * in front: the shared encodings of the output queue go to the socket without a copy. A write the
 * socket takes only in part leaves the frame open (out_left payload bytes and maybe part of the
 * header): the next call, which offers the same bytes first (transport.h), finishes it. Control
 * frames and the handshake answer wait in ctl_out and go between data frames; when nothing else is
 * written they are flushed from read, with EPOLLOUT driving read (TP_READ_WANTS_WRITE) if the socket
 * is full, as the TLS handshake does. */
#include "broker/transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/worker.h"
#include "broker/ws_files.h"
#include "http/http.h"
#include "http/ws.h"

/* The largest frame taken: an MQTT packet's largest size and some; payloads stream through, so this
 * bounds nothing in memory, it refuses what no MQTT client sends. */
#define WS_FRAME_MAX ((uint64_t)268435455 + 5)
#define CTL_OUT_MAX 512

/* websockets_log_level: the libwebsockets levels (LLL_*) Mosquitto's N selects, given to tombo's own
 * WebSocket events. A line's class decides whether it goes out under log_type websockets; lines
 * also logged as notices (a client disconnected) still go out under log_type notice. */
#define WS_LOG_ERR 0x01u    /* LLL_ERR: a handshake refused, a protocol error */
#define WS_LOG_WARN 0x02u   /* LLL_WARN: an HTTP request answered with an error status */
#define WS_LOG_NOTICE 0x04u /* LLL_NOTICE: a handshake accepted, a close received */
#define WS_LOG_INFO 0x08u   /* LLL_INFO: a file served */

enum ws_phase {
    WSP_HANDSHAKE = 0,
    WSP_OPEN,
    WSP_CLOSED, /* a close was received or sent: no more input */
    WSP_HTTP,   /* answering a plain HTTP request (http_dir): write file_out, then close */
};

/* Ownership: the connection's (c->ws), freed by ws_close. */
struct ws_conn {
    const transport_t *lower; /* TCP or TLS */
    uint8_t phase;
    uint8_t eof;        /* the peer's close was answered: read returns 0 */
    uint8_t failed;     /* handshake refused or protocol error: read returns -1 */
    uint8_t ohdr_len, ohdr_sent;
    uint8_t close_sent;
    uint32_t log_mask;   /* websockets_log_level (WS_LOG_*), 0: all */
    ws_reader_t rd;      /* the frames coming in (src/http) */
    uint8_t ohdr[WS_SERVER_HEADER_MAX];
    uint64_t out_left;   /* payload bytes of the open output frame still to write */
    /* the opening handshake: the request head, then the frame bytes that followed it */
    char *head;
    size_t head_len, head_max, early_off;
    size_t ctl_out_len, ctl_out_sent;
    uint8_t ctl_out[CTL_OUT_MAX];
    /* WSP_HTTP: the answer to a plain HTTP request (ws_files.c), owned, written as the socket drains */
    char *file_out;
    size_t file_len, file_sent;
};

/* The TLOG_* level a WebSocket event of class `cls` (WS_LOG_*) is logged at: `level` without
 * TLOG_WEBSOCKETS when websockets_log_level leaves the class out (0 when nothing is left). */
static unsigned ws_log_level(const struct ws_conn *ws, unsigned cls, unsigned level)
{
    if (ws->log_mask && !(ws->log_mask & cls))
        level &= ~TLOG_WEBSOCKETS;
    return level;
}

#define WS_LOG(ws, cls, level, ...)                                    \
    do {                                                               \
        unsigned lv_ = ws_log_level((ws), (cls), (level));             \
        if (lv_ && log_enabled(lv_))                                   \
            log_printf(lv_, __VA_ARGS__);                              \
    } while (0)

/* ---- output ---- */

static bool between_frames(const struct ws_conn *ws) { return ws->out_left == 0 && ws->ohdr_sent == ws->ohdr_len; }

/* Queue bytes (a control frame, an HTTP answer) to go before the next data frame. False when the
 * buffer is full (a pong may then be dropped: RFC 6455 5.5.3 lets it answer the latest ping only). */
static bool ctl_queue(struct ws_conn *ws, const void *p, size_t n)
{
    if (ws->ctl_out_sent == ws->ctl_out_len)
        ws->ctl_out_sent = ws->ctl_out_len = 0;
    if (ws->ctl_out_len + n > CTL_OUT_MAX)
        return false;
    memcpy(ws->ctl_out + ws->ctl_out_len, p, n);
    ws->ctl_out_len += n;
    return true;
}

static bool ctl_frame(struct ws_conn *ws, uint8_t opcode, const uint8_t *payload, size_t n)
{
    uint8_t f[2 + 125];
    size_t h = ws_frame_header_encode(f, opcode, true, n);
    memcpy(f + h, payload, n);
    return ctl_queue(ws, f, h + n);
}

static void queue_close(struct ws_conn *ws, uint16_t code)
{
    if (ws->close_sent)
        return;
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (ctl_frame(ws, WS_CLOSE, p, 2))
        ws->close_sent = 1;
}

/* Write p[*sent..len) to the lower transport, advancing *sent. True when nothing is left or the
 * connection broke (errno says why: the next read or write sees it); false when the socket is
 * full, with EPOLLOUT armed to drive read (TP_READ_WANTS_WRITE). */
static bool lower_flush(conn_t *c, const void *p, size_t len, size_t *sent)
{
    struct ws_conn *ws = c->ws;
    while (*sent < len) {
        struct iovec v = {(char *)p + *sent, len - *sent};
        ssize_t n = ws->lower->writev(c, &v, 1);
        if (n > 0) {
            *sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->tp_flags |= TP_READ_WANTS_WRITE;
            if (!c->want_write) {
                c->want_write = 1;
                conn_update_events(c);
            }
            return false;
        }
        if (n == 0)
            errno = EPIPE;
        return true;
    }
    return true;
}

/* Write what waits in ctl_out, if no data frame is open (lower_flush's result). */
static bool ctl_flush(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    return !between_frames(ws) || lower_flush(c, ws->ctl_out, ws->ctl_out_len, &ws->ctl_out_sent);
}

/* One binary frame around the offered bytes (or the rest of the open one), its header an iovec of
 * its own: no copy of the payload. Returns the payload bytes taken, as transport.h asks. */
static ssize_t ws_writev(conn_t *c, const struct iovec *iov, int iovcnt)
{
    struct ws_conn *ws = c->ws;
    if (!ws || ws->phase == WSP_HANDSHAKE || ws->phase == WSP_HTTP) {
        errno = ws ? EAGAIN : EPIPE;
        return -1;
    }
    /* Control bytes first, in calls of their own: what a call offers the lower transport must be
     * offered again after its EAGAIN (TLS retries the same record), so a frame header is never
     * put behind control bytes that may not go. */
    if (between_frames(ws) && ws->ctl_out_sent < ws->ctl_out_len) {
        ctl_flush(c);
        c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE; /* a write's EAGAIN: conn_write arms EPOLLOUT */
        if (ws->ctl_out_sent < ws->ctl_out_len) {
            errno = EAGAIN;
            return -1;
        }
    }
    struct iovec v[66];
    int k = 0;
    size_t hdr_n = 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (ws->close_sent && between_frames(ws))
        return (ssize_t)total; /* no data frame after a close (RFC 6455 5.5.1): dropped */
    if (between_frames(ws)) {
        ws->ohdr_len = (uint8_t)ws_frame_header_encode(ws->ohdr, WS_BINARY, true, total);
        ws->ohdr_sent = 0;
        ws->out_left = total;
    }
    if (ws->ohdr_sent < ws->ohdr_len) {
        hdr_n = (size_t)(ws->ohdr_len - ws->ohdr_sent);
        v[k++] = (struct iovec){ws->ohdr + ws->ohdr_sent, hdr_n};
    }
    /* The payload: at most what the open frame still announces, and at most 64 iovecs. */
    uint64_t room = ws->out_left;
    for (int i = 0; i < iovcnt && room > 0 && k < 66; i++) {
        size_t n = iov[i].iov_len < room ? iov[i].iov_len : (size_t)room;
        v[k++] = (struct iovec){iov[i].iov_base, n};
        room -= n;
    }
    ssize_t n = ws->lower->writev(c, v, k);
    if (n < 0)
        return -1;
    size_t left = (size_t)n;
    size_t t = left < hdr_n ? left : hdr_n;
    ws->ohdr_sent = (uint8_t)(ws->ohdr_sent + t);
    left -= t;
    ws->out_left -= left;
    if (left == 0) {
        errno = EAGAIN; /* only frame bytes went: the socket is full */
        return -1;
    }
    return (ssize_t)left;
}

/* ---- the opening handshake ---- */

static void refuse(conn_t *c, int status, const char *why)
{
    struct ws_conn *ws = c->ws;
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status,
                     http_reason(status));
    WS_LOG(ws, WS_LOG_ERR, TLOG_NOTICE | TLOG_WEBSOCKETS,
           "Client <unknown> [%s] disconnected: WebSocket handshake refused: %s (%d).", c->peer, why, status);
    ctl_queue(ws, msg, (size_t)n);
    ctl_flush(c); /* one try: the connection closes next */
    ws->failed = 1;
}

/* Write what is left of the HTTP answer. 0 when all of it went (the connection then ends, as
 * Mosquitto ends it), -1 with errno EAGAIN (EPOLLOUT armed) or the socket's error. */
static ssize_t file_flush(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    if (!lower_flush(c, ws->file_out, ws->file_len, &ws->file_sent)) {
        errno = EAGAIN;
        return -1;
    }
    return ws->file_sent == ws->file_len ? 0 : -1;
}

/* A plain HTTP request on a listener with http_dir: its answer (ws_files.c) goes out from read. */
static void serve_file(conn_t *c, const http_request_t *req)
{
    struct ws_conn *ws = c->ws;
    int status;
    ws->file_out = ws_files_answer(c->l->http_dir, req, &ws->file_len, &status);
    ws->file_sent = 0;
    ws->phase = WSP_HTTP;
    WS_LOG(ws, status >= 400 ? WS_LOG_WARN : WS_LOG_INFO, TLOG_WEBSOCKETS, "HTTP %.*s %.*s from [%s]: %d.",
           (int)req->method.n, req->method.p, (int)req->target.n, req->target.p, c->peer, status);
    free(ws->head); /* req pointed into it; what came behind the head is not read */
    ws->head = NULL;
}

/* The whole request head is in ws->head[0..len): answer it. False after refusing it. */
static bool answer(conn_t *c, size_t len, const http_request_t *req)
{
    struct ws_conn *ws = c->ws;
    if (!ws_is_upgrade(req) && c->l && c->l->http_dir && !http_header(req, "Upgrade")) {
        serve_file(c, req);
        return true;
    }
    if (!ws_is_upgrade(req)) {
        refuse(c, 400, "not a WebSocket upgrade request");
        return false;
    }
    /* Subprotocol: mqtt (MQTT 3.1.1 and 5.0) or mqttv3.1; none at all is accepted, as Mosquitto does. */
    const char *proto = NULL;
    if (http_header(req, "Sec-WebSocket-Protocol")) {
        if (http_header_has_token(req, "Sec-WebSocket-Protocol", "mqtt"))
            proto = "mqtt";
        else if (http_header_has_token(req, "Sec-WebSocket-Protocol", "mqttv3.1"))
            proto = "mqttv3.1";
        else {
            refuse(c, 400, "no subprotocol mqtt or mqttv3.1");
            return false;
        }
    }
    char accept[WS_ACCEPT_LEN + 1];
    if (ws_accept_key(*http_header(req, "Sec-WebSocket-Key"), accept) < 0) {
        refuse(c, 400, "bad Sec-WebSocket-Key");
        return false;
    }
    char msg[256];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "");
    ctl_queue(ws, msg, (size_t)n);
    ws->phase = WSP_OPEN;
    ws->early_off = len;
    WS_LOG(ws, WS_LOG_NOTICE, TLOG_WEBSOCKETS, "WebSocket connection from [%s] (%s%s).", c->peer,
           proto ? "subprotocol " : "no subprotocol", proto ? proto : "");
    ctl_flush(c);
    return true;
}

/* Gather and answer the request head. 1: open (frames may follow), else what read returns. */
static ssize_t handshake(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    if (!ws->head)
        ws->head = xmalloc(ws->head_max);
    for (;;) {
        ssize_t n = ws->lower->read(c, ws->head + ws->head_len, ws->head_max - ws->head_len);
        if (n <= 0)
            return n;
        ws->head_len += (size_t)n;
        http_request_t req;
        int r = http_parse_request(ws->head, ws->head_len, ws->head_max, &req);
        if (r > 0)
            return answer(c, (size_t)r, &req) ? 1 : -1;
        if (r == HTTP_BAD) {
            refuse(c, 400, "bad HTTP request");
            return -1;
        }
        if (r == HTTP_TOO_LARGE || ws->head_len == ws->head_max) {
            refuse(c, 431, "request head larger than websockets_headers_size");
            return -1;
        }
    }
}

/* ---- input ---- */

static void protocol_error(conn_t *c, uint16_t code, const char *why)
{
    struct ws_conn *ws = c->ws;
    WS_LOG(ws, WS_LOG_ERR, TLOG_NOTICE | TLOG_WEBSOCKETS, "Client %s [%s] disconnected: WebSocket %s (close %u).",
           c->session && *c->session->client_id ? c->session->client_id : "<unknown>", c->peer, why, code);
    queue_close(ws, code);
    ctl_flush(c);
    ws->failed = 1;
    ws->phase = WSP_CLOSED;
}

/* A whole control frame is in ws->rd.ctl. */
static void on_control(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    switch (ws->rd.f.opcode) {
    case WS_PING:
        ctl_frame(ws, WS_PONG, ws->rd.ctl, ws->rd.ctl_len);
        break;
    case WS_CLOSE: {
        uint16_t code = WS_CLOSE_NORMAL;
        if (ws->rd.ctl_len == 1) {
            protocol_error(c, WS_CLOSE_PROTOCOL_ERROR, "close frame of 1 byte");
            return;
        }
        if (ws->rd.ctl_len >= 2)
            code = (uint16_t)(ws->rd.ctl[0] << 8 | ws->rd.ctl[1]);
        WS_LOG(ws, WS_LOG_NOTICE, TLOG_WEBSOCKETS, "Client [%s] sent a WebSocket close (%u).", c->peer, code);
        queue_close(ws, ws->rd.ctl_len >= 2 ? code : WS_CLOSE_NORMAL); /* echo its code (RFC 6455 5.5.1) */
        ws->eof = 1;
        ws->phase = WSP_CLOSED;
        break;
    }
    default: /* a pong: nothing to do */
        break;
    }
}

/* Decode the frames in buf[0..n) in place (ws_read, src/http): returns the MQTT bytes left at
 * buf's start, or -1 after a protocol error. */
static ssize_t decode(conn_t *c, uint8_t *buf, size_t n)
{
    struct ws_conn *ws = c->ws;
    size_t in = 0, out = 0;
    while (ws->phase == WSP_OPEN) {
        int r = ws_read(&ws->rd, buf, n, &in, &out);
        if (r == WS_READ_MORE)
            break;
        if (r < 0) {
            protocol_error(c, (uint16_t)-r, ws->rd.why);
            return -1;
        }
        on_control(c);
        if (ws->failed)
            return -1;
    }
    return (ssize_t)out;
}

static ssize_t tp_read(conn_t *c, void *buf, size_t len)
{
    struct ws_conn *ws = c->ws;
    if (!ws) {
        errno = EPIPE;
        return -1;
    }
    c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE;
    ssize_t ret;
    if (ws->failed) {
        errno = EPROTO;
        return -1;
    }
    if (ws->phase == WSP_HANDSHAKE) {
        ssize_t h = handshake(c);
        if (h <= 0 || ws->failed) {
            if (ws->failed)
                errno = EPROTO;
            return ws->failed ? -1 : h;
        }
    }
    if (ws->phase == WSP_HTTP)
        return file_flush(c); /* what else the client sends is not read: the connection ends */
    for (;;) {
        ctl_flush(c);
        if (ws->eof)
            return 0;
        ssize_t n;
        if (ws->head) { /* frames that came with the request head */
            n = (ssize_t)(ws->head_len - ws->early_off);
            if ((size_t)n > len)
                n = (ssize_t)len;
            memcpy(buf, ws->head + ws->early_off, (size_t)n);
            ws->early_off += (size_t)n;
            if (ws->early_off == ws->head_len) {
                free(ws->head);
                ws->head = NULL;
            }
            if (n == 0)
                continue;
        } else {
            n = ws->lower->read(c, buf, len);
            if (n <= 0) {
                ret = n;
                break;
            }
        }
        ssize_t m = decode(c, buf, (size_t)n);
        ctl_flush(c);
        if (m < 0) {
            errno = EPROTO;
            return -1;
        }
        if (m > 0)
            return m; /* a close read behind these bytes ends the stream at the next call */
    }
    return ret;
}

static size_t ws_pending(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    if (!ws)
        return 0;
    size_t early = ws->head && ws->phase != WSP_HANDSHAKE ? ws->head_len - ws->early_off : 0;
    return early + (ws->lower->pending ? ws->lower->pending(c) : 0);
}

/* The connection ends: a close frame if none was sent (best effort, between frames only), then the
 * transport below says goodbye in its way. c->tr goes back to it, so a second call (conn_free) is
 * the lower transport's own idempotent close. */
static void ws_close(conn_t *c)
{
    struct ws_conn *ws = c->ws;
    if (!ws)
        return;
    if (ws->phase == WSP_OPEN && !ws->failed)
        queue_close(ws, WS_CLOSE_NORMAL);
    ctl_flush(c); /* the close, or an answer a full socket held back: one more try */
    const transport_t *lower = ws->lower;
    free(ws->head);
    free(ws->file_out);
    free(ws);
    c->ws = NULL;
    c->tr = lower;
    c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE;
    if (lower->close)
        lower->close(c);
}

const transport_t transport_ws = {
    .name = "websockets", .read = tp_read, .writev = ws_writev, .close = ws_close, .pending = ws_pending,
};

void ws_conn_start(conn_t *c, broker_t *b)
{
    struct ws_conn *ws = xcalloc(1, sizeof(*ws));
    ws->lower = c->tr;
    ws->head_max = b->cfg.websockets_headers_size;
    ws->log_mask = b->cfg.websockets_log_level;
    ws->rd.max_frame = WS_FRAME_MAX;
    c->ws = ws;
    c->tr = &transport_ws;
}
