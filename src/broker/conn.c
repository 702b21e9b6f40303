/* conn.c -- a client connection: batched reads, the packet dispatcher, output encoding, close.
 *
 * The read path takes everything the socket has (64 KB at a time), decodes every complete packet in
 * the buffer with the shared codec and dispatches it; replies are appended to the output buffer and
 * written once at the end of the loop turn. Protocol errors become reason codes in one place:
 * conn_fail(). */
#include "broker/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/log.h"
#include "broker/store.h"

#define READ_CHUNK (64 * 1024)

void conn_want_flush(conn_t *c)
{
    if (!c->in_flush_list) {
        c->in_flush_list = 1;
        c->flush_next = c->w->flush_list;
        c->w->flush_list = c;
    }
}

/* ---- output held for the persistence store ---- */

struct conn_holds {
    uint32_t n, cap;
    struct hold {
        uint64_t pos;  /* bytes from here on (counted like out_sent) wait ... */
        uint64_t seq;  /* ... until the store has committed this far */
        uint32_t turn; /* the worker's loop turn it was made in */
    } v[];
};

void conn_hold_durable(conn_t *c)
{
    worker_t *w = c->w;
    store_t *st = w->b->store;
    if (!st || c->state == CONN_CLOSED)
        return;
    uint64_t need = store_need(st);
    if (!need)
        return;
    uint64_t pos = c->out_sent + outq_pending(&c->out);
    struct conn_holds *h = c->holds;
    if (h && h->n > 0) {
        struct hold *last = &h->v[h->n - 1];
        /* One hold per turn: later packets of the turn wait for the newest record too. The first
         * hold of a connection is never extended, so output keeps moving under steady load. */
        if (h->n > 1 && (last->turn == w->turn || last->pos == pos)) {
            last->seq = need;
            return;
        }
    }
    if (!h || h->n == h->cap) {
        uint32_t cap = h ? h->cap * 2 : 4;
        h = xrealloc(h, sizeof(*h) + cap * sizeof(h->v[0]));
        if (!c->holds)
            h->n = 0;
        h->cap = cap;
        c->holds = h;
    }
    h->v[h->n++] = (struct hold){pos, need, w->turn};
    if (h->n == 1) {
        if (w->n_held == w->cap_held) {
            w->cap_held = w->cap_held ? w->cap_held * 2 : 64;
            w->held = xrealloc(w->held, w->cap_held * sizeof(*w->held));
        }
        w->held[w->n_held++] = (struct held){c->fd, c->id};
    }
}

size_t conn_writable(const conn_t *c)
{
    size_t n = outq_pending(&c->out);
    if (c->holds && c->holds->n > 0) {
        uint64_t lim = c->holds->v[0].pos - c->out_sent;
        if (lim < n)
            n = (size_t)lim;
    }
    return n;
}

/* Drop the holds the store has committed; true if the connection still has some. Sets *first to
 * the sequence its oldest remaining hold waits for. */
bool conn_release_holds(conn_t *c, uint64_t committed, uint64_t *first)
{
    struct conn_holds *h = c->holds;
    if (!h)
        return false;
    uint32_t k = 0;
    while (k < h->n && h->v[k].seq <= committed)
        k++;
    if (k > 0) {
        memmove(h->v, h->v + k, (h->n - k) * sizeof(h->v[0]));
        h->n -= k;
        conn_want_flush(c);
    }
    if (h->n == 0) {
        free(h);
        c->holds = NULL;
        return false;
    }
    *first = h->v[0].seq;
    return true;
}

bool conn_send(conn_t *c, const mqtt_packet_t *p)
{
    if (c->state == CONN_CLOSED)
        return false;
    size_t n = mqtt_encoded_len(p, c->version);
    if (c->max_packet_out && n > c->max_packet_out)
        return false;
    uint8_t *dst = outq_reserve(&c->out, n);
    size_t w = mqtt_encode(p, c->version, dst);
    outq_commit(&c->out, w);
    conn_want_flush(c);
    return true;
}

/* ---- topic aliases we assign towards the client (MQTT 5 Topic Alias Maximum) ---- */

struct alias_out {
    char *topic; /* NULL: empty slot */
    uint16_t len;
    uint16_t alias;
};

static uint64_t topic_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* Returns the alias for topic and whether it was already known to the client. 0: no alias. */
static uint16_t alias_out_lookup(conn_t *c, mqtt_bytes_t topic, bool *known)
{
    uint32_t cap = 2u * c->topic_alias_max_out; /* table never more than half full */
    if (!c->aliases_out)
        c->aliases_out = xcalloc(cap, sizeof(struct alias_out));
    uint32_t i = (uint32_t)(topic_hash(topic.p, topic.len) % cap);
    for (;;) {
        struct alias_out *a = &c->aliases_out[i];
        if (!a->topic)
            break;
        if (a->len == topic.len && memcmp(a->topic, topic.p, topic.len) == 0) {
            *known = true;
            return a->alias;
        }
        i = (i + 1) % cap;
    }
    *known = false;
    if (c->aliases_out_used >= c->topic_alias_max_out)
        return 0; /* all aliases taken: send the full topic */
    struct alias_out *a = &c->aliases_out[i];
    a->topic = xstrndup((const char *)topic.p, topic.len);
    a->len = (uint16_t)topic.len;
    a->alias = ++c->aliases_out_used;
    return a->alias;
}

void conn_free_aliases(conn_t *c)
{
    if (c->aliases_out) {
        for (uint32_t i = 0; i < 2u * c->topic_alias_max_out; i++)
            free(c->aliases_out[i].topic);
        free(c->aliases_out);
        c->aliases_out = NULL;
    }
    if (c->aliases_in) {
        for (uint32_t i = 0; i <= c->topic_alias_max_in; i++)
            free(c->aliases_in[i]);
        free(c->aliases_in);
        free(c->aliases_in_len);
        c->aliases_in = NULL;
        c->aliases_in_len = NULL;
    }
}

bool conn_send_publish(conn_t *c, msg_t *m, uint8_t qos, uint8_t retain, uint8_t dup, uint16_t id,
                       const uint32_t *ids, uint32_t n_ids)
{
    if (c->state == CONN_CLOSED)
        return false;
    /* The common case: bytes shared with every receiver of the same class, packet id patched. */
    if (!dup && (c->version != MQTT_V5 || (n_ids == 0 && !m->has_expiry && c->topic_alias_max_out == 0))) {
        const msg_enc_t *e = msg_encoded(m, c->version, qos, retain);
        if (c->max_packet_out && e->len > c->max_packet_out)
            return false;
        if (e->len >= OUTQ_REF_MIN) {
            /* Referenced, not copied: only the packet identifier is the receiver's own. */
            if (!qos) {
                outq_ref(&c->out, m, e->bytes, e->len);
            } else {
                outq_ref(&c->out, m, e->bytes, e->id_off);
                uint8_t *dst = outq_reserve(&c->out, 2);
                dst[0] = (uint8_t)(id >> 8);
                dst[1] = (uint8_t)id;
                outq_commit(&c->out, 2);
                outq_ref(&c->out, m, e->bytes + e->id_off + 2, e->len - e->id_off - 2);
            }
        } else {
            uint8_t *dst = outq_reserve(&c->out, e->len);
            memcpy(dst, e->bytes, e->len);
            if (qos) {
                dst[e->id_off] = (uint8_t)(id >> 8);
                dst[e->id_off + 1] = (uint8_t)id;
            }
            outq_commit(&c->out, e->len);
        }
        conn_want_flush(c);
        atomic_fetch_add_explicit(&c->w->msgs_out, 1, memory_order_relaxed);
        return true;
    }
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.id = id;
    p.publish.qos = qos;
    p.publish.retain = retain;
    p.publish.dup = dup;
    p.publish.topic = m->topic;
    p.publish.payload = m->payload;
    if (c->version == MQTT_V5) {
        msg_props(m, &p.props);
        if (m->has_expiry) {
            uint32_t left = msg_expiry_left(m, c->w->now);
            p.props.has |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
            p.props.message_expiry = left ? left : 1;
        }
        if (n_ids) {
            p.props.has |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
            p.props.sub_id = ids[0];
            p.props.sub_ids = ids;
            p.props.sub_id_n = n_ids;
        }
        if (c->topic_alias_max_out) {
            bool known;
            uint16_t a = alias_out_lookup(c, m->topic, &known);
            if (a) {
                p.props.has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
                p.props.topic_alias = a;
                if (known)
                    p.publish.topic = (mqtt_bytes_t){m->topic.p, 0};
            }
        }
    }
    if (!conn_send(c, &p))
        return false;
    atomic_fetch_add_explicit(&c->w->msgs_out, 1, memory_order_relaxed);
    return true;
}

/* ---- errors and close ---- */

/* The MQTT 3.1.1 CONNACK return code for a v5 reason code, or -1 when there is none (just close). */
static int connack_v3_code(uint8_t rc)
{
    switch (rc) {
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return MQTT_CONNACK_BAD_PROTOCOL;
    case MQTT_RC_CLIENT_ID_NOT_VALID: return MQTT_CONNACK_ID_REJECTED;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY: return MQTT_CONNACK_UNAVAILABLE;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return MQTT_CONNACK_BAD_CREDENTIALS;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED: return MQTT_CONNACK_NOT_AUTHORIZED;
    default: return -1;
    }
}

void conn_fail(conn_t *c, uint8_t rc, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    const char *id = c->session ? c->session->client_id : "";
    log_printf(TLOG_NOTICE, "Client %s [%s] disconnected: %s (%s).", *id ? id : "<unknown>", c->peer, why,
               mqtt_rc_message(rc));
    if (c->state == CONN_NEW) {
        /* CONNECT was refused. An unsupported protocol level gets the 3.1.1-form answer, as the
         * client may not speak 5.0 [MQTT-3.1.2-2]. */
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_CONNACK;
        if (c->version == MQTT_V5 && rc != MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            p.reason = rc;
            conn_send(c, &p);
        } else {
            int v3 = connack_v3_code(rc);
            if (v3 >= 0) {
                uint8_t ver = c->version;
                c->version = MQTT_V311;
                p.reason = (uint8_t)v3;
                conn_send(c, &p);
                c->version = ver;
            }
        }
    } else if (c->version == MQTT_V5 && rc >= 0x80) {
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        p.reason = rc;
        conn_send(c, &p);
    }
    c->linger = outq_pending(&c->out) > 0; /* the client should read what we answered */
    conn_close(c, NULL);
}

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
    case MQTT_AUTH: return MQTT_RC_PROTOCOL_ERROR;    /* no enhanced authentication was started */
    default: return MQTT_RC_PROTOCOL_ERROR;           /* packets only a server sends */
    }
}

static uint32_t max_inbound_packet(const conn_t *c)
{
    uint32_t m = c->w->b->cfg.max_packet_size;
    return m ? m : MQTT_MAX_REMAINING + MQTT_MAX_HEADER;
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
static ssize_t process_bytes(conn_t *c, const uint8_t *data, size_t len)
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
        if (c->state == CONN_NEW && h.type != MQTT_CONNECT) {
            /* [MQTT-3.1.0-1] the first packet must be CONNECT: close without a reply. */
            log_printf(TLOG_NOTICE, "Client [%s] disconnected: sent %s before CONNECT (protocol error).", c->peer,
                       mqtt_type_name(h.type));
            conn_close(c, NULL);
            return -1;
        }
        if (total > max_inbound_packet(c)) {
            conn_fail(c, MQTT_RC_PACKET_TOO_LARGE, "packet larger than max_packet_size");
            return -1;
        }
        if (avail < total)
            return (ssize_t)off;
        mqtt_packet_t p;
        uint8_t rc = mqtt_decode(&h, head + h.header_len, c->version, MQTT_FROM_CLIENT, &p);
        c->last_rx = c->w->now;
        if (rc == MQTT_RC_SUCCESS) {
            if (c->state == CONN_NEW) {
                rc = handle_connect(c, &p);
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

/* Reads go into the worker's scratch buffer and are handled from there; only the tail of a packet
 * that has not fully arrived is copied to the connection's own buffer. An idle connection holds no
 * input memory at all. */
void conn_on_readable(conn_t *c)
{
    worker_t *w = c->w;
    if (c->waiting || c->bp_on)
        return;
    for (int round = 0; round < 4 && c->state != CONN_CLOSED && !c->bp_on; round++) {
        bool partial = buf_used(&c->in) > 0;
        uint8_t *dst = partial ? buf_reserve(&c->in, READ_CHUNK) : w->rbuf;
        ssize_t n = recv(c->fd, dst, READ_CHUNK, 0);
        if (n > 0) {
            atomic_fetch_add_explicit(&w->bytes_in, (unsigned long)n, memory_order_relaxed);
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
            if (n < READ_CHUNK)
                break;
        } else if (n == 0) {
            conn_close(c, "closed by client");
            return;
        } else {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            conn_close(c, strerror(errno));
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
