/* session_wire.c -- a session's state as bytes, for a move between cluster nodes (session_wire.h).
 *
 * Layout, big-endian: [1: version 2]
 *   [4: subscriptions] each [2: n][n: filter][1: options][4: subscription id]
 *   [4: messages]      each [1: qos][1: retain][1: state][1: dup][2: packet id][4: seq][2: k]
 *                           [4k: subscription ids][1: has message] and with one
 *                           [8: origin][8: sequence] (its cluster identity, msg.h; 0 0: none)
 *                           [4: expiry left, s, 0: none][4: n][n: v5 PUBLISH, packet id 1]
 *   [4: inbound QoS 2 ids] each [2: id]
 * In-flight entries come first, then the queue, each in delivery order. Version 1 (still read) had
 * no identities. */
#include "broker/session_wire.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/subtree.h"
#include "mqtt/packet.h"

#define WIRE_VERSION 2

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf_t;

static uint8_t *wb_room(wbuf_t *b, size_t k)
{
    if (b->n + k > b->cap) {
        b->cap = (b->n + k) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    uint8_t *at = b->p + b->n;
    b->n += k;
    return at;
}

static void put8(wbuf_t *b, uint8_t v) { *wb_room(b, 1) = v; }
static void put16(wbuf_t *b, uint16_t v)
{
    uint8_t *p = wb_room(b, 2);
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(wbuf_t *b, uint32_t v)
{
    uint8_t *p = wb_room(b, 4);
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static void put64(wbuf_t *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b, (uint32_t)v);
}
static void putn(wbuf_t *b, const void *d, size_t n)
{
    if (n)
        memcpy(wb_room(b, n), d, n);
}

uint8_t *session_wire_encode(const session_snap_t *snap, int64_t now, size_t head, size_t *len)
{
    wbuf_t b = {0};
    if (head)
        wb_room(&b, head); /* the caller's, left as it is */
    put8(&b, WIRE_VERSION);
    put32(&b, snap->n_subs);
    for (uint32_t i = 0; i < snap->n_subs; i++) {
        const sess_sub_t *sub = &snap->subs[i];
        put16(&b, sub->len);
        putn(&b, sub->filter, sub->len);
        put8(&b, sub->options);
        put32(&b, sub->sub_id);
    }
    put32(&b, snap->n_out);
    for (uint32_t i = 0; i < snap->n_out; i++) {
        const outmsg_t *o = &snap->out[i];
        put8(&b, o->qos);
        put8(&b, o->retain);
        put8(&b, o->state);
        put8(&b, o->dup);
        put16(&b, o->id);
        put32(&b, o->seq);
        put16(&b, o->n_ids);
        const uint32_t *ids = outmsg_ids(o);
        for (uint32_t k = 0; k < o->n_ids; k++)
            put32(&b, ids[k]);
        put8(&b, o->msg != NULL);
        if (!o->msg)
            continue;
        put64(&b, o->msg->cluster_origin);
        put64(&b, o->msg->cluster_seq);
        uint32_t exp = 0;
        if (o->msg->has_expiry) {
            exp = msg_expiry_left(o->msg, now);
            if (!exp)
                exp = 1; /* expired in flight: still resent (session.c), so it must still arrive */
        }
        put32(&b, exp);
        const msg_enc_t *e = msg_encoded(o->msg, MQTT_V5, o->msg->qos, o->msg->retain);
        put32(&b, e->len);
        size_t at = b.n;
        putn(&b, e->bytes, e->len);
        if (o->msg->qos) { /* a packet id of 0 is malformed with QoS > 0 */
            b.p[at + e->id_off] = 0;
            b.p[at + e->id_off + 1] = 1;
        }
    }
    put32(&b, snap->n_in_qos2);
    for (uint32_t i = 0; i < snap->n_in_qos2; i++)
        put16(&b, snap->in_qos2[i]);
    *len = b.n;
    return b.p;
}

/* ---- reading ---- */

typedef struct rbuf {
    const uint8_t *p;
    size_t n, at;
    int bad;
} rbuf_t;

static const uint8_t *take(rbuf_t *r, size_t k)
{
    if (r->bad || r->n - r->at < k) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += k;
    return p;
}
static uint8_t get8(rbuf_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}
static uint16_t get16(rbuf_t *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}
static uint32_t get32(rbuf_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t get64(rbuf_t *r)
{
    uint64_t hi = get32(r);
    return hi << 32 | get32(r);
}

/* One message entry of a `version` encoding into *o (o->msg one reference, its subscription ids
 * into *ids, grown as needed: *cap of them). False when malformed. */
static bool read_out(rbuf_t *r, int version, outmsg_t *o, uint32_t **ids, uint32_t *cap, int64_t now)
{
    memset(o, 0, sizeof(*o));
    o->qos = get8(r);
    o->retain = get8(r);
    o->state = get8(r);
    o->dup = get8(r);
    o->id = get16(r);
    o->seq = get32(r);
    uint16_t k = get16(r);
    if (k > *cap) {
        *cap = k;
        *ids = xrealloc(*ids, k * sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < k; i++)
        (*ids)[i] = get32(r);
    o->n_ids = k;
    bool has = get8(r);
    if (r->bad || o->qos == 0 || o->qos > 2 || o->state > OUT_WAIT_PUBCOMP)
        return false;
    if (!has)
        return o->state == OUT_WAIT_PUBCOMP;
    uint64_t origin = version >= 2 ? get64(r) : 0, seq = version >= 2 ? get64(r) : 0;
    uint32_t exp = get32(r);
    uint32_t len = get32(r);
    const uint8_t *pub = take(r, len);
    if (!pub)
        return false;
    mqtt_header_t h;
    if (mqtt_header_parse(pub, len, &h) != 1 || h.header_len + h.remaining != len)
        return false;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    if (mqtt_decode(&h, pub + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS || p.type != MQTT_PUBLISH)
        return false;
    if (exp) {
        p.props.has |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
        p.props.message_expiry = exp;
    }
    o->msg = msg_new(p.publish.topic, p.publish.payload, p.publish.qos, p.publish.retain, &p.props, now);
    o->msg->cluster_origin = origin;
    o->msg->cluster_seq = seq;
    return true;
}

int session_wire_import(session_t *s, const uint8_t *d, size_t n, int64_t now)
{
    rbuf_t r = {d, n, 0, 0};
    int version = get8(&r);
    if (version != WIRE_VERSION && version != 1)
        return -1;
    /* Before its filters enter the tree: a message forwarded here from now on and one that came
     * with the session are queued once (dedup.h). */
    session_moved_in(s, now);
    uint32_t ns = get32(&r);
    for (uint32_t i = 0; i < ns && !r.bad; i++) {
        uint16_t fl = get16(&r);
        const uint8_t *f = take(&r, fl);
        uint8_t options = get8(&r);
        uint32_t sub_id = get32(&r);
        if (r.bad || !fl)
            return -1;
        if (subtree_add(s->broker->subs, f, fl, s, options, sub_id) >= 0)
            session_sub_add(s, f, fl, options, sub_id);
    }
    uint32_t no = get32(&r);
    uint32_t *ids = NULL, cap = 0;
    for (uint32_t i = 0; i < no && !r.bad; i++) {
        outmsg_t o;
        if (!read_out(&r, version, &o, &ids, &cap, now)) {
            msg_release(o.msg);
            free(ids);
            return -1;
        }
        session_restore_out(s, &o, ids, o.n_ids);
        msg_release(o.msg); /* the session holds its own */
    }
    free(ids);
    uint32_t ni = get32(&r);
    for (uint32_t i = 0; i < ni && !r.bad; i++) {
        uint16_t id = get16(&r);
        if (id)
            session_qos2_begin(s, id);
    }
    return r.bad ? -1 : 0;
}

long session_wire_deliver(struct worker *w, session_t *s, const uint8_t *d, size_t n, int64_t now)
{
    rbuf_t r = {d, n, 0, 0};
    int version = get8(&r);
    if (version != WIRE_VERSION && version != 1)
        return -1;
    uint32_t ns = get32(&r);
    for (uint32_t i = 0; i < ns && !r.bad; i++) {
        take(&r, get16(&r));
        take(&r, 5);
    }
    uint32_t no = get32(&r);
    uint32_t *ids = NULL, cap = 0;
    long k = 0;
    for (uint32_t i = 0; i < no && !r.bad; i++) {
        outmsg_t o;
        if (!read_out(&r, version, &o, &ids, &cap, now) || !o.msg) {
            msg_release(o.msg);
            free(ids);
            return -1;
        }
        session_deliver_give(w, s, o.msg, o.qos, o.retain, ids, o.n_ids);
        k++;
    }
    free(ids);
    return r.bad ? -1 : k;
}
