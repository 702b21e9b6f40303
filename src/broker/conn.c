/* conn.c -- a client connection's input: batched reads, the packet dispatcher, its epoll interest,
 * and the worker's fd-indexed table of connections. Output is in conn_out.c, the end of a connection
 * in conn_close.c.
 *
 * The read path takes a turn's share of what the socket has (READ_TURN), decodes every complete
 * packet in it with the shared codec and dispatches it; replies are appended to the output buffer
 * and written once at the end of the loop turn; what the socket still holds is read next turn
 * (epoll is level-triggered). Protocol errors become reason codes in one place:
 * conn_fail(). */
#include "broker/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "base/mem.h"
#include "broker/bridge.h"
#include "broker/broker.h"
#include "broker/conn_trace.h"
#include "broker/worker.h"
#include "broker/log.h"

/* A turn reads at most READ_TURN bytes of whole packets from one connection: a few hundred small
 * PUBLISHes, about what one receiver's backpressure mark lets through (backpressure.h). Reading
 * more only moves bytes from the socket into memory that has gone cold by the time its messages
 * are delivered: with 4 x 64 KB a turn, 100 unthrottled publishers put ~10 MB in flight per turn,
 * and the slab's free lists, the deliveries and the encodings missed the cache (bench/compare
 * pairs-q0-open: CPU per delivery and rate both worse). The rest of a large packet (over
 * READ_TURN) goes straight into the connection's buffer, READ_BIG at a time, up to READ_TURN_BIG a
 * turn, so a 1 MB PUBLISH still takes a few turns, not sixty. */
#define READ_TURN (16 * 1024)
#define READ_BIG (64 * 1024)
#define READ_TURN_BIG (256 * 1024)
#define IN_OVER_LIMIT (128 * 1024) /* input a connection may still buffer past memory_limit */

/* ---- the read path ---- */

static uint8_t dispatch(conn_t *c, mqtt_packet_t *p)
{
    switch (p->type) {
    case MQTT_PUBLISH: return handle_publish(c, p);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return handle_ack(c, p);
    case MQTT_SUBSCRIBE: return handle_subscribe(c, p);
    case MQTT_UNSUBSCRIBE: return handle_unsubscribe(c, p);
    case MQTT_PINGREQ: {
        mqtt_packet_t r = {.type = MQTT_PINGRESP};
        conn_send(c, &r);
        return MQTT_RC_SUCCESS;
    }
    case MQTT_DISCONNECT: return handle_disconnect(c, p);
    case MQTT_CONNECT: return MQTT_RC_PROTOCOL_ERROR; /* a second CONNECT [MQTT-3.1.0-2] */
    case MQTT_AUTH: return handle_auth(c, p);         /* re-authentication (4.12.1) */
    default: return MQTT_RC_PROTOCOL_ERROR;           /* packets only a server sends */
    }
}

/* The largest packet c may send now. Before CONNECT, a fixed cap whatever max_packet_size says:
 * an unauthenticated peer must not make the broker hold more than that (security.md, Limits). */
static uint32_t max_inbound_packet(const conn_t *c)
{
    /* Before CONNACK: the setting in force; after: what CONNACK announced (a bridge: what the remote
     * announced, else the setting). */
    uint32_t m = c->bridge ? bridge_max_packet_in(c) : 0;
    if (!m)
        m = c->state == CONN_ACTIVE && !c->bridge ? c->max_packet_in : broker_settings(c->w->b)->max_packet_size;
    if (c->state == CONN_NEW)
        return m && m < CONNECT_MAX_BYTES ? m : CONNECT_MAX_BYTES;
    return m ? m : MQTT_MAX_REMAINING + MQTT_MAX_HEADER;
}

/* Bytes still missing from the packet that starts c's input buffer (0: its header is not complete
 * yet), so a partial packet's buffer grows to that packet's size and no further. */
static size_t packet_missing(const conn_t *c)
{
    mqtt_header_t h;
    if (mqtt_header_parse(buf_head(&c->in), buf_used(&c->in), &h) <= 0)
        return 0;
    size_t total = (size_t)h.header_len + h.remaining;
    return total > buf_used(&c->in) ? total - buf_used(&c->in) : 0;
}

/* Does a CONNECT body start with the protocol name "MQTT" or "MQIsdp"? */
static bool protocol_name_known(const uint8_t *body, uint32_t len)
{
    if (len < 2)
        return false;
    uint32_t n = (uint32_t)body[0] << 8 | body[1];
    if (len < 2 + n)
        return false;
    return (n == 4 && memcmp(body + 2, "MQTT", 4) == 0) || (n == 6 && memcmp(body + 2, "MQIsdp", 6) == 0);
}

/* Input is watched unless the CONNECT waits for another thread or a receiver pushes back;
 * output while there is more than the socket took. */
void conn_update_events(conn_t *c)
{
    if (c->state == CONN_CLOSED)
        return;
    bool reading = !c->waiting && !c->bp_paused;
    struct epoll_event ev = {.events = (reading ? EPOLLIN | EPOLLRDHUP : 0) | (c->want_write ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Handle every complete packet in data[0..len). Returns the bytes consumed (whole packets), or
 * -1 once the connection closed. Packet views point into `data` while they are handled; handlers
 * copy what they keep. */
static ssize_t process_packets(conn_t *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (c->state != CONN_CLOSED) {
        size_t avail = len - off;
        const uint8_t *head = data + off;
        mqtt_header_t h;
        int r = mqtt_header_parse(head, avail, &h);
        if (r == 0)
            return (ssize_t)off;
        if (r < 0) {
            conn_fail(c, MQTT_RC_MALFORMED_PACKET, "malformed remaining length");
            return -1;
        }
        size_t total = (size_t)h.header_len + h.remaining;
        if (c->state == CONN_NEW && (c->scram || c->plugin_auth) && h.type != MQTT_AUTH && h.type != MQTT_CONNECT) {
            /* [MQTT-3.1.2-30] only AUTH or DISCONNECT until the CONNACK; a DISCONNECT ends it. */
            if (h.type == MQTT_DISCONNECT)
                conn_close(c, "client disconnected during enhanced authentication");
            else
                conn_fail(c, MQTT_RC_PROTOCOL_ERROR, "packet other than AUTH during enhanced authentication");
            return -1;
        }
        if (c->state == CONN_NEW && h.type != MQTT_CONNECT && !((c->scram || c->plugin_auth) && h.type == MQTT_AUTH) && !c->bridge) {
            /* [MQTT-3.1.0-1] the first packet must be CONNECT: close without a reply. */
            log_printf(TLOG_NOTICE, "Client [%s] disconnected: sent %s before CONNECT (protocol error).", c->peer,
                       mqtt_type_name(h.type));
            conn_close(c, NULL);
            return -1;
        }
        if (total > max_inbound_packet(c)) {
            if (c->state == CONN_NEW && total > CONNECT_MAX_BYTES) {
                log_printf(TLOG_NOTICE, "Client [%s] disconnected: CONNECT of %zu bytes (the limit is %u).", c->peer,
                           total, (unsigned)CONNECT_MAX_BYTES);
                conn_close(c, NULL); /* its protocol level is not known yet: no CONNACK */
                return -1;
            }
            conn_fail(c, MQTT_RC_PACKET_TOO_LARGE, "packet larger than max_packet_size");
            return -1;
        }
        if (avail < total)
            return (ssize_t)off;
        mqtt_packet_t p;
        uint8_t rc = mqtt_decode(&h, head + h.header_len, c->version, c->bridge ? MQTT_FROM_SERVER : MQTT_FROM_CLIENT,
                                 &p);
        c->last_rx = c->w->now;
        stat_add(&c->w->pkts_in, 1);
        if (rc == MQTT_RC_SUCCESS) {
            conn_trace(c, false, &p);
            if (c->bridge) {
                rc = bridge_on_packet(c, &p); /* our own connection to another broker */
            } else if (c->state == CONN_NEW) {
                /* CONNECT, or the AUTH that goes on with its enhanced authentication */
                rc = p.type == MQTT_CONNECT ? handle_connect(c, &p) : handle_auth(c, &p);
                if (rc == MQTT_RC_SUCCESS && c->waiting) {
                    /* Nothing more is read until the password is checked or the session's old
                     * connection is gone. */
                    conn_update_events(c);
                    return (ssize_t)(off + total);
                }
            } else {
                rc = dispatch(c, &p);
            }
        } else if (c->state == CONN_NEW && p.type == MQTT_CONNECT) {
            c->version = p.connect.version;
            if (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION && !protocol_name_known(head + h.header_len, h.remaining)) {
                /* Not MQTT at all [MQTT-3.1.2-1]: close without answering in a protocol it may not
                 * speak. */
                log_printf(TLOG_NOTICE,
                           "Client [%s] disconnected: CONNECT with an unknown protocol name (unsupported protocol).",
                           c->peer);
                conn_close(c, NULL);
                return -1;
            }
        }
        if (rc != MQTT_RC_SUCCESS) {
            char why[96];
            snprintf(why, sizeof(why), "bad %s", mqtt_type_name(h.type));
            conn_fail(c, rc, why);
            return -1;
        }
        if (c->state == CONN_CLOSED)
            return -1;
        off += total;
        if (c->bp_on)
            return (ssize_t)off; /* a receiver is full: the rest waits (backpressure.h) */
    }
    return -1;
}

/* The packets of one read as one batch of subscription-tree matches (subtree_batch_begin). */
static ssize_t process_bytes(conn_t *c, const uint8_t *data, size_t len)
{
    subtree_t *t = c->w->b->subs;
    subtree_batch_begin(t);
    ssize_t used = process_packets(c, data, len);
    subtree_batch_end(t);
    return used;
}

/* Reads go into the worker's scratch buffer and are handled from there; only the tail of a packet
 * that has not fully arrived is copied to the connection's own buffer. An idle connection holds no
 * input memory at all. */
void conn_on_readable(conn_t *c)
{
    worker_t *w = c->w;
    if (c->waiting || c->bp_on)
        return;
    const transport_t *tr = c->tr;
    size_t got = 0; /* bytes read this turn */
    while (c->state != CONN_CLOSED && !c->bp_on) {
        bool partial = buf_used(&c->in) > 0;
        size_t want = partial ? READ_BIG : READ_TURN - got;
        if (got >= (partial ? READ_TURN_BIG : READ_TURN)) {
            /* Enough for this turn -- but bytes the transport already took off the socket (TLS
             * records) get no epoll event: read exactly those, so none are left stranded. */
            want = tr->pending ? tr->pending(c) : 0;
            if (want == 0)
                break;
            if (want > READ_BIG)
                want = READ_BIG;
        }
        if (partial) {
            /* The buffer holds the start of one packet: read only what that packet still lacks
             * (the rest goes through the scratch buffer next round). Past memory_limit it grows
             * no further than IN_OVER_LIMIT, so a packet of ordinary size is still read and
             * answered (PUBACK 0x97), while a client sending a larger one is dropped, as
             * Mosquitto drops a client whose allocation fails its memory_limit. */
            size_t missing = packet_missing(c);
            if (missing && missing < want)
                want = missing;
            size_t need = buf_used(&c->in) + want;
            if (need > c->in.cap && need > IN_OVER_LIMIT && w->mem_over) {
                conn_fail(c, MQTT_RC_QUOTA_EXCEEDED, "memory_limit reached");
                return;
            }
        }
        uint8_t *dst = partial ? buf_reserve(&c->in, want) : w->rbuf;
        ssize_t n = tr->read(c, dst, want);
        if (n > 0) {
            got += (size_t)n;
            stat_add(&w->bytes_in, (unsigned long)n);
            ssize_t used;
            if (partial) {
                buf_commit(&c->in, (size_t)n);
                used = process_bytes(c, buf_head(&c->in), buf_used(&c->in));
                if (used < 0)
                    return;
                buf_consume(&c->in, (size_t)used);
                if (buf_used(&c->in) == 0)
                    buf_free(&c->in);
            } else {
                used = process_bytes(c, w->rbuf, (size_t)n);
                if (used < 0)
                    return;
                if ((size_t)used < (size_t)n) {
                    size_t rest = (size_t)n - (size_t)used;
                    memcpy(buf_reserve(&c->in, rest), w->rbuf + used, rest);
                    buf_commit(&c->in, rest);
                }
            }
            if ((size_t)n < want && !(tr->pending && tr->pending(c)))
                break;
        } else if (n == 0) {
            conn_close(c, "closed by client");
            return;
        } else {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            conn_close(c, errno != EPROTO ? strerror(errno) : c->ws ? "WebSocket protocol error" : "TLS error");
            return;
        }
    }
    if (c->bp_on && c->state != CONN_CLOSED)
        bp_pause(c);
}

void conn_connect_resumed(conn_t *c)
{
    uint8_t rc = connect_resume(c);
    if (rc != MQTT_RC_SUCCESS) {
        conn_fail(c, rc, "bad CONNECT");
        return;
    }
    if (c->waiting || c->state == CONN_CLOSED)
        return; /* taken over again meanwhile: wait once more */
    conn_update_events(c);
    conn_resume_input(c); /* packets that came behind the CONNECT, then whatever the socket has */
}

void conn_resume_input(conn_t *c)
{
    if (buf_used(&c->in) > 0) {
        ssize_t used = process_bytes(c, buf_head(&c->in), buf_used(&c->in));
        if (used < 0)
            return;
        buf_consume(&c->in, (size_t)used);
        if (buf_used(&c->in) == 0)
            buf_free(&c->in);
        if (c->bp_on) {
            bp_pause(c);
            return;
        }
    }
    conn_on_readable(c);
}

/* ---- plain TCP (transport.h); TLS is transport_tls.c ---- */

static ssize_t tcp_read(conn_t *c, void *buf, size_t len) { return recv(c->fd, buf, len, 0); }

static ssize_t tcp_writev(conn_t *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return sendmsg(c->fd, &mh, MSG_NOSIGNAL);
}

const transport_t transport_tcp = {.name = "tcp", .read = tcp_read, .writev = tcp_writev};

/* ---- the worker's table of connections, indexed by fd ---- */

void conn_register(worker_t *w, conn_t *c)
{
    if (c->fd >= w->conns_cap) {
        int cap = w->conns_cap ? w->conns_cap : 1024;
        while (cap <= c->fd)
            cap *= 2;
        w->conns = xrealloc(w->conns, (size_t)cap * sizeof(*w->conns));
        memset(w->conns + w->conns_cap, 0, (size_t)(cap - w->conns_cap) * sizeof(*w->conns));
        w->conns_cap = cap;
    }
    w->conns[c->fd] = c;
}

conn_t *conn_lookup(worker_t *w, int fd, uint64_t id)
{
    if (fd < 0 || fd >= w->conns_cap)
        return NULL;
    conn_t *c = w->conns[fd];
    return c && c->id == id ? c : NULL;
}

void conn_address(const conn_t *c, char *out, size_t n)
{
    snprintf(out, n, "%s", c->peer);
    char *colon = strrchr(out, ':');
    if (colon && strncmp(out, "unix:", 5))
        *colon = '\0';
}
