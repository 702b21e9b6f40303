/* conn_out.c -- a connection's output: encoding packets onto its queue, the holds that keep output
 * back until the persistence store has committed what it acknowledges, the topic aliases we assign,
 * and writing the queue to the socket.
 *
 * Design: replies and deliveries are appended to c->out (outq.h: own bytes and references to shared
 * encodings) and the connection is put on its worker's flush list; the worker writes every listed
 * connection once at the end of the loop turn (conn_write, one writev per 64 blocks). A hold marks
 * a byte position in the stream that may not be written before a store sequence is committed. */
#include "base/hash.h"
#include "base/mem.h"
#include "broker/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/bridge.h"
#include "broker/broker.h"
#include "broker/conn_trace.h"
#include "broker/worker.h"
#include "broker/store.h"

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

bool conn_drop_held(conn_t *c)
{
    struct conn_holds *h = c->holds;
    if (!h || h->n == 0)
        return true;
    conn_write(c);
    if (c->out_sent != h->v[0].pos)
        return false; /* the socket did not take all that is free: a packet would be cut */
    outq_free(&c->out);
    free(h);
    c->holds = NULL;
    return true;
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
    stat_add(&c->w->pkts_out, 1);
    conn_trace(c, true, p);
    return true;
}

/* ---- topic aliases we assign towards the client (MQTT 5 Topic Alias Maximum) ---- */

struct alias_out {
    char *topic; /* NULL: empty slot */
    uint16_t len;
    uint16_t alias;
};

/* Returns the alias for topic and whether it was already known to the client. 0: no alias. */
static uint16_t alias_out_lookup(conn_t *c, mqtt_bytes_t topic, bool *known)
{
    uint32_t cap = 2u * c->topic_alias_max_out; /* table never more than half full */
    if (!c->aliases_out)
        c->aliases_out = xcalloc(cap, sizeof(struct alias_out));
    uint32_t i = (uint32_t)(fnv1a64(topic.p, topic.len) % cap);
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
    mqtt_bytes_t topic = m->topic;
    if (c->bridge) {
        /* Our bridge to another broker: the remote's topic (prefixes) and retain flag. */
        topic = bridge_out_topic(c, topic, &retain);
        if (!topic.p)
            return false;
    }
    /* The common case: bytes shared with every receiver of the same class, packet id patched. */
    const char *mount = c->l ? c->l->mount_point : NULL; /* none for our bridges and hand-built test conns */
    if (!dup && !mount && topic.p == m->topic.p &&
        (c->version != MQTT_V5 || (n_ids == 0 && !m->has_expiry && c->topic_alias_max_out == 0))) {
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
        stat_add(&c->w->msgs_out[qos], 1);
        stat_add(&c->w->pkts_out, 1);
        stat_add(&c->w->pub_bytes_out, m->payload.len);
        if (atomic_load_explicit(&c->w->b->trace->gen, memory_order_relaxed) & 1) {
            mqtt_packet_t tp = {.type = MQTT_PUBLISH, .id = id};
            tp.publish.qos = qos;
            tp.publish.retain = retain;
            tp.publish.topic = m->topic;
            tp.publish.payload = m->payload;
            conn_trace(c, true, &tp);
        }
        return true;
    }
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.id = id;
    p.publish.qos = qos;
    p.publish.retain = retain;
    p.publish.dup = dup;
    p.publish.topic = topic;
    p.publish.payload = m->payload;
    if (mount) {
        /* mount_point: the client sees topics without its listener's prefix (mount.h). What it
         * was subscribed to always has it; anything else is not its to see. */
        size_t mn = strlen(mount);
        if (m->topic.len <= mn || memcmp(m->topic.p, mount, mn))
            return false;
        p.publish.topic = (mqtt_bytes_t){m->topic.p + mn, m->topic.len - (uint32_t)mn};
    }
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
            uint16_t a = alias_out_lookup(c, p.publish.topic, &known);
            if (a) {
                p.props.has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
                p.props.topic_alias = a;
                if (known)
                    p.publish.topic = (mqtt_bytes_t){p.publish.topic.p, 0};
            }
        }
    }
    if (!conn_send(c, &p))
        return false;
    stat_add(&c->w->msgs_out[qos], 1);
    stat_add(&c->w->pub_bytes_out, m->payload.len);
    return true;
}

/* Write as much output as the socket takes. Returns false if the connection broke. */
bool conn_write(conn_t *c)
{
    size_t avail;
    while ((avail = conn_writable(c)) > 0) {
        struct iovec iov[64];
        int cnt = outq_iov(&c->out, iov, 64, avail);
        ssize_t n = c->tr->writev(c, iov, cnt);
        if (n > 0) {
            stat_add(&c->w->bytes_out, (unsigned long)n);
            c->out_sent += (uint64_t)n;
            outq_consume(&c->out, (size_t)n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_write) {
                c->want_write = 1;
                conn_update_events(c);
            }
            return true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    if (c->want_write && !(c->tp_flags & TP_READ_WANTS_WRITE)) { /* a TLS read may still need it */
        c->want_write = 0;
        conn_update_events(c);
    }
    outq_shrink(&c->out);
    return true;
}
