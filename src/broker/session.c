/* session.c -- session lifecycle, the per-session message queues, and the state a connection
 * changes on its session as it attaches and detaches. The client-id registry is registry.c.
 *
 * Locking: the registry lock is taken before a session lock, never the other way round. A session's
 * lock guards its queues, in-flight state, subscriptions list and connection pointer; only this
 * file takes it (store.c still does at start-up and when journaling: to move behind session
 * functions with branch arch's split of the store): other modules use the functions of session.h. */
#include "broker/session.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/slab.h"
#include "broker/backpressure.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dedup.h"
#include "broker/worker.h"
#include "broker/auth.h"
#include "broker/log.h"
#include "broker/registry.h"
#include "broker/retain.h"
#include "broker/store.h"

static void session_update_fast(session_t *s);
static void session_persist_update(session_t *s);

/* ---- lifetime ---- */

session_t *session_new(broker_t *b, const char *id, size_t len)
{
    session_t *s = mem_zalloc_counted(sizeof(*s)); /* sessions and their queues count in the heap (mem.h) */
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->refs, 1); /* the registry's */
    s->client_id = xstrndup(id, len);
    s->client_id_len = (uint32_t)len; /* at most 65535: an MQTT string */
    s->broker = b;
    s->worker = -1;
    return s;
}

void session_hold(session_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void outmsg_clear(outmsg_t *o)
{
    if (o->msg)
        msg_release(o->msg);
    if (o->n_ids > 1)
        free(o->ids.many);
    o->msg = NULL;
    o->n_ids = 0;
}

void outring_free(outring_t *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        outmsg_clear(&r->v[(r->head + i) % r->cap]);
    slab_free(r->v);
    memset(r, 0, sizeof(*r));
}

void session_release(session_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (delivery_t *d = atomic_load(&s->incoming), *next; d; d = next) {
        next = (delivery_t *)d->link.next; /* pushed after the session ended */
        for (uint32_t i = 0; i < d->n; i++)
            msg_release(d->e[i].msg);
        slab_free(d);
    }
    outring_free(&s->queue);
    outring_free(&s->inflight);
    for (uint32_t i = 0; i < s->n_subs; i++)
        free(s->subs[i].filter);
    free(s->subs);
    slab_free(s->out_ids);
    slab_free(s->in_qos2);
    msg_release(s->will);
    dedup_free(s->moved_ids);
    pthread_mutex_destroy(&s->lock);
    free(s->username);
    free(s->client_id);
    mem_free_counted(s, sizeof(*s));
}

void session_end(session_t *s)
{
    broker_t *b = s->broker;
    bool found = registry_remove(b, s);

    pthread_mutex_lock(&s->lock);
    if (s->ended) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->ended = 1;
    session_update_fast(s); /* what waits lock-free is dropped: the session is over */
    if (s->persist) {
        /* Before the messages go: their rows must be gone when the last reference deletes them. */
        store_session_del(b->store, s);
        s->persist = 0;
    }
    sess_sub_t *subs = s->subs;
    uint32_t n = s->n_subs;
    s->subs = NULL;
    s->n_subs = s->cap_subs = 0;
    backlog_sub(s, s->queue.n, s->queued_bytes);
    outring_free(&s->queue);
    outring_free(&s->inflight);
    s->inflight_live = 0;
    s->inflight_bytes = 0;
    s->queued_bytes = 0;
    slab_free(s->out_ids);
    s->out_ids = NULL;
    slab_free(s->in_qos2);
    s->in_qos2 = NULL;
    s->in_qos2_n = 0;
    pthread_mutex_unlock(&s->lock);

    for (uint32_t k = 0; k < n; k++) {
        subtree_remove(b->subs, (const uint8_t *)subs[k].filter, subs[k].len, s);
        free(subs[k].filter);
    }
    free(subs);
    if (found)
        session_release(s); /* the registry's reference */
}

/* ---- subscriptions remembered on the session ---- */

bool session_sub_add(session_t *s, const uint8_t *filter, size_t n, uint8_t options, uint32_t sub_id)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i].len == n && memcmp(s->subs[i].filter, filter, n) == 0) {
            s->subs[i].options = options;
            s->subs[i].sub_id = sub_id;
            if (s->persist)
                store_sub_put(s->broker->store, s, &s->subs[i]);
            pthread_mutex_unlock(&s->lock);
            return true;
        }
    }
    if (s->n_subs == s->cap_subs) {
        s->cap_subs = s->cap_subs ? s->cap_subs * 2 : 4;
        s->subs = xrealloc(s->subs, s->cap_subs * sizeof(*s->subs));
    }
    s->subs[s->n_subs++] = (sess_sub_t){xstrndup((const char *)filter, n), (uint16_t)n, options, sub_id};
    if (s->persist)
        store_sub_put(s->broker->store, s, &s->subs[s->n_subs - 1]);
    pthread_mutex_unlock(&s->lock);
    return false;
}

bool session_sub_remove(session_t *s, const uint8_t *filter, size_t n)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i].len == n && memcmp(s->subs[i].filter, filter, n) == 0) {
            if (s->persist)
                store_sub_del(s->broker->store, s, s->subs[i].filter, n);
            free(s->subs[i].filter);
            s->subs[i] = s->subs[--s->n_subs];
            pthread_mutex_unlock(&s->lock);
            return true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return false;
}

/* ---- rings ---- */

static outmsg_t *ring_push(outring_t *r)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 8;
        outmsg_t *v = slab_alloc(cap * sizeof(*v));
        for (uint32_t i = 0; i < r->n; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        slab_free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    outmsg_t *o = &r->v[(r->head + r->n) % r->cap];
    r->n++;
    memset(o, 0, sizeof(*o));
    return o;
}

static inline outmsg_t *ring_at(outring_t *r, uint32_t i) { return &r->v[(r->head + i) % r->cap]; }

static void ring_pop(outring_t *r)
{
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

/* ---- delivery ---- */


/* The subscription identifiers a delivery carries: one inline, more on the heap (freed with it). */
static void outmsg_set_ids(outmsg_t *o, const uint32_t *ids, uint32_t n_ids)
{
    o->n_ids = (uint16_t)n_ids;
    if (n_ids == 1) {
        o->ids.one = ids[0];
    } else if (n_ids > 1) {
        o->ids.many = xmalloc(n_ids * sizeof(uint32_t));
        memcpy(o->ids.many, ids, n_ids * sizeof(uint32_t));
    }
}

/* Lock held: whether s moved here lately and queued msg already (session_moved_in). A lone broker's
 * messages have no identity: one test. */
static bool moved_dup(session_t *s, const msg_t *msg, uint8_t qos)
{
    if (!msg->cluster_seq || !s->moved_ids || qos == 0)
        return false;
    if (dedup_expired(s->moved_ids, now_ms())) {
        dedup_free(s->moved_ids);
        s->moved_ids = NULL;
        return false;
    }
    return dedup_seen(s->moved_ids, msg->cluster_origin, msg->cluster_seq);
}

/* Queue msg for s (lock held): a moved session's duplicate, the ACL read check, the queue limits,
 * the journal. False when it was not queued. The caller has counted it in the backlog; a message not queued is taken off.
 * give: the caller's reference to msg becomes the queue's (released here when not queued) instead
 * of the queue taking one of its own.
 *
 * Limits: a connected receiver that keeps up is bounded by backpressure (publishers wait for it),
 * so nothing it could take is dropped. An offline session, or a slow consumer, is bounded by
 * max_queued_messages / max_queued_bytes, counting only what waits beyond the in-flight window (as
 * Mosquitto does): a new message that does not fit is dropped. A slow consumer's QoS 0 messages
 * beyond the backpressure mark are dropped too, even with max_queued_messages 0 (unlimited). */
static bool enqueue(session_t *s, msg_t *msg, uint8_t qos, uint8_t retain, const uint32_t *ids, uint32_t n_ids,
                    bool give)
{
    broker_t *b = s->broker;
    const settings_t *set = broker_settings(b);
    bool drop = false;
    if (s->ended || (qos == 0 && !s->conn && !set->queue_qos0_messages) || moved_dup(s, msg, qos) ||
        !auth_acl_msg(s->auth, s->client_id, s->username, msg->topic.p, msg->topic.len, AUTH_READ,
                      &(auth_msg_t){msg->payload.p, msg->payload.len, qos, retain != 0})) {
        backlog_sub(s, 1, msg->payload.len);
        if (give)
            msg_release(msg);
        return false;
    }
    if (!s->conn || atomic_load(&s->slow)) {
        uint32_t maxq = set->max_queued_messages;
        uint64_t maxb = set->max_queued_bytes;
        drop = (maxq && s->queue.n >= maxq) || (maxb && s->queued_bytes + msg->payload.len > maxb && s->queue.n > 0) ||
               (qos == 0 && s->conn && s->queue.n >= set->bp.high_n);
    }
    if (drop) {
        backlog_sub(s, 1, msg->payload.len);
        bp_count_drop(b);
        if (give)
            msg_release(msg);
        return false;
    }
    outmsg_t *o = ring_push(&s->queue);
    if (!give)
        msg_hold(msg);
    o->msg = msg;
    o->qos = qos;
    o->retain = retain;
    o->state = OUT_QUEUED;
    outmsg_set_ids(o, ids, n_ids);
    s->queued_bytes += msg->payload.len;
    o->seq = ++s->out_seq;
    if (qos > 0 && s->persist)
        store_out_put(b->store, s, o);
    return true;
}

_Static_assert(offsetof(delivery_t, link) == 0, "a delivery is its stack node");

/* Move the lock-free deliveries into the queue, oldest first (lock held). */
static void take_incoming(session_t *s)
{
    delivery_t *d = atomic_exchange_explicit(&s->incoming, NULL, memory_order_acquire);
    if (!d)
        return;
    for (mpsc_node_t *n = mpsc_reverse(&d->link), *next; n; n = next) {
        next = n->next;
        d = (delivery_t *)n;
        for (uint32_t i = 0; i < d->n; i++) {
            if (i + 4 < d->n)
                __builtin_prefetch(d->e[i + 4].msg); /* written by another core: start the misses early */
            const delivery_ent_t *e = &d->e[i];
            enqueue(s, e->msg, e->qos, e->retain, delivery_ids(d), e->n_ids, true); /* the entry's reference */
        }
        slab_free(d);
    }
}

/* Lock held: recompute whether deliveries may skip the lock (after conn, persist or ended
 * changed); when they may not any more, the pending lock-free ones are queued now. */
static void session_update_fast(session_t *s)
{
    bool fast = s->conn && !s->persist && !s->ended;
    atomic_store(&s->fast, fast);
    if (!fast)
        take_incoming(s);
}

/* Ask the owning worker to flush s, unless a FLUSH is already on its way. */
static void want_flush(worker_t *from, session_t *s)
{
    if (atomic_exchange(&s->flush_pending, 1))
        return;
    /* Read after the exchange: a reconnect sets `worker` before it clears flush_pending. */
    int wake = atomic_load(&s->worker);
    if (wake < 0) {
        atomic_store(&s->flush_pending, 0); /* offline: the next lock holder queues what waits */
        return;
    }
    session_hold(s);
    inbox_item_t it = {.kind = INBOX_FLUSH_SESSION, .session = s};
    worker_defer(from, wake, &it);
}

/* Push batch d on s's incoming stack and ask s's worker to flush it. */
static void push_incoming(worker_t *from, session_t *s, delivery_t *d)
{
    backlog_add(s, d->n, d->bytes); /* before it can be taken: the taker subtracts */
    /* From the push on, the batch and its messages are the owner's: not touched again. */
    delivery_t *top = atomic_load_explicit(&s->incoming, memory_order_relaxed);
    do
        d->link.next = top ? &top->link : NULL;
    while (!atomic_compare_exchange_weak_explicit(&s->incoming, &top, d, memory_order_release, memory_order_relaxed));
    want_flush(from, s);
}

static inline struct stage *stage_slot(worker_t *w, const session_t *s)
{
    return &w->stage[((uintptr_t)s >> 6) % (sizeof(w->stage) / sizeof(w->stage[0]))];
}

static void stage_push(worker_t *w, struct stage *e)
{
    session_t *s = e->s;
    delivery_t *d = e->d;
    e->s = NULL;
    e->d = NULL;
    w->n_staged--;
    if (d)
        push_incoming(w, s, d);
    session_release(s);
}

/* Messages w staged for s and not yet pushed (not in its backlog yet). */
static inline uint32_t staged_for(worker_t *w, const session_t *s)
{
    const struct stage *e = stage_slot(w, s);
    return e->s == s && e->d ? e->d->n : 0;
}

/* What w staged for s goes first: a delivery that does not join the batch keeps its order. */
static inline void stage_push_for(worker_t *w, const session_t *s)
{
    struct stage *e = stage_slot(w, s);
    if (e->s == s)
        stage_push(w, e);
}

void session_stage_flush(worker_t *w)
{
    for (size_t i = 0; w->n_staged && i < sizeof(w->stage) / sizeof(w->stage[0]); i++)
        if (w->stage[i].s)
            stage_push(w, &w->stage[i]);
}

/* msg's reference is ours (taken or given) from here on. */
static void stage_add(worker_t *w, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain)
{
    struct stage *e = stage_slot(w, s);
    if (e->s != s) {
        if (e->s)
            stage_push(w, e);
        session_hold(s);
        e->s = s;
        w->n_staged++;
    }
    delivery_t *d = e->d;
    if (!d) {
        d = e->d = slab_alloc(sizeof(*d) + DELIVERY_BATCH * sizeof(delivery_ent_t)); /* no malloc in the steady state */
        d->n = 0;
        d->cap = DELIVERY_BATCH;
        d->bytes = 0;
    }
    d->e[d->n++] = (delivery_ent_t){msg, qos, retain, 0};
    d->bytes += msg->payload.len;
    if (d->n == d->cap || d->bytes >= DELIVERY_BATCH_BYTES)
        stage_push(w, e);
}

static void deliver(worker_t *from, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain, const uint32_t *ids,
                    uint32_t n_ids, bool give)
{
    if (atomic_load_explicit(&s->fast, memory_order_acquire)) {
        /* A slow consumer's QoS 0 beyond the mark is dropped here, as enqueue would; everything
         * else is decided when the owner queues it. */
        if (qos == 0 && atomic_load_explicit(&s->slow, memory_order_relaxed) &&
            atomic_load_explicit(&s->backlog_n, memory_order_relaxed) + staged_for(from, s) >=
                broker_settings(s->broker)->bp.high_n) {
            bp_count_drop(s->broker);
            if (give)
                msg_release(msg);
            return;
        }
        if (!give)
            msg_hold(msg);
        if (n_ids == 0) {
            stage_add(from, s, msg, qos, retain);
            return;
        }
        stage_push_for(from, s);
        delivery_t *d = slab_alloc(sizeof(*d) + sizeof(delivery_ent_t) + n_ids * sizeof(uint32_t));
        d->n = d->cap = 1;
        d->bytes = msg->payload.len;
        d->e[0] = (delivery_ent_t){msg, qos, retain, (uint16_t)n_ids};
        memcpy((uint32_t *)delivery_ids(d), ids, n_ids * sizeof(uint32_t));
        push_incoming(from, s, d);
        return;
    }
    stage_push_for(from, s);
    pthread_mutex_lock(&s->lock);
    take_incoming(s); /* deliveries made lock-free before this one go first */
    backlog_add(s, 1, msg->payload.len);
    bool queued = enqueue(s, msg, qos, retain, ids, n_ids, give);
    bool online = s->conn != NULL;
    pthread_mutex_unlock(&s->lock);
    if (queued && online)
        want_flush(from, s);
}

void session_deliver(worker_t *from, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain, const uint32_t *ids,
                     uint32_t n_ids)
{
    deliver(from, s, msg, qos, retain, ids, n_ids, false);
}

void session_deliver_give(worker_t *from, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain, const uint32_t *ids,
                          uint32_t n_ids)
{
    deliver(from, s, msg, qos, retain, ids, n_ids, true);
}

static inline bool bit_get(const uint8_t *bm, uint16_t id) { return bm && (bm[id >> 3] >> (id & 7)) & 1; }
static inline void bit_set(uint8_t *bm, uint16_t id) { bm[id >> 3] |= (uint8_t)(1u << (id & 7)); }
static inline void bit_clr(uint8_t *bm, uint16_t id) { bm[id >> 3] &= (uint8_t)~(1u << (id & 7)); }

/* Next free packet identifier towards the client. Caller holds the lock and has checked that fewer
 * than 65535 are in flight. */
static uint16_t next_packet_id(session_t *s)
{
    if (!s->out_ids)
        s->out_ids = slab_zalloc(8192);
    for (;;) {
        if (++s->next_id == 0)
            s->next_id = 1;
        if (!bit_get(s->out_ids, s->next_id))
            break;
    }
    bit_set(s->out_ids, s->next_id);
    return s->next_id;
}

void session_flush(session_t *s, conn_t *c)
{
    int64_t now = c->w->now;
    pthread_mutex_lock(&s->lock);
    s->flush_pending = 0; /* before taking `incoming` (see want_flush) */
    take_incoming(s);
    if (s->conn != c) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    uint32_t maxf = s->inflight_max ? s->inflight_max : 65535;
    /* max_inflight_bytes: a message that alone exceeds it still goes, but only on its own. */
    uint64_t maxb = broker_settings(s->broker)->max_inflight_bytes;
    uint32_t popped = 0;
    uint64_t popped_bytes = 0;
    /* Bound what one connection buffers in user space: the rest waits in the session queue until
     * the socket drains (worker flush_all comes back for it: out_full). */
    while (s->queue.n > 0) {
        if (outq_pending(&c->out) >= BP_OUT_HIGH) {
            c->out_full = 1;
            break;
        }
        outmsg_t *o = ring_at(&s->queue, 0);
        if (o->qos > 0 && s->inflight_live >= maxf)
            break;
        if (o->qos > 0 && maxb && s->inflight_bytes && s->inflight_bytes + o->msg->payload.len > maxb)
            break;
        outmsg_t cur = *o;
        ring_pop(&s->queue);
        s->queued_bytes -= cur.msg->payload.len;
        popped++;
        popped_bytes += cur.msg->payload.len;
        if (msg_expired(cur.msg, now)) {
            if (cur.qos > 0 && s->persist)
                store_out_del(s->broker->store, s, cur.seq);
            outmsg_clear(&cur);
            continue;
        }
        if (cur.qos == 0) {
            conn_send_publish(c, cur.msg, 0, cur.retain, 0, 0, outmsg_ids(&cur), cur.n_ids);
            outmsg_clear(&cur);
            continue;
        }
        cur.id = next_packet_id(s);
        cur.state = cur.qos == 1 ? OUT_WAIT_PUBACK : OUT_WAIT_PUBREC;
        if (s->persist) {
            store_out_state(s->broker->store, s, &cur);
            /* QoS 2 is exactly once only if the packet id is durable before the client sees it. */
            if (cur.qos == 2)
                conn_hold_durable(c);
        }
        if (!conn_send_publish(c, cur.msg, cur.qos, cur.retain, 0, cur.id, outmsg_ids(&cur), cur.n_ids)) {
            /* Too large for the client: dropped, as [MQTT-3.1.2-25] requires. */
            if (s->persist)
                store_out_del(s->broker->store, s, cur.seq);
            bit_clr(s->out_ids, cur.id);
            outmsg_clear(&cur);
            continue;
        }
        *ring_push(&s->inflight) = cur;
        s->inflight_live++;
        s->inflight_bytes += cur.msg->payload.len;
    }
    backlog_sub(s, popped, popped_bytes);
    bp_after_drain(c->w, s, popped);
    pthread_mutex_unlock(&s->lock);
}

void session_resend(session_t *s, conn_t *c)
{
    int64_t now = c->w->now;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->inflight.n; i++) {
        outmsg_t *o = ring_at(&s->inflight, i);
        if (o->state == OUT_WAIT_PUBCOMP) {
            mqtt_packet_t p = {.type = MQTT_PUBREL, .id = o->id};
            conn_send(c, &p);
        } else if (o->msg) {
            /* [MQTT-4.3.3-?] An expired message in flight is still resent: the receiver already may
             * hold it. Only queued ones are dropped on expiry. */
            (void)now;
            conn_send_publish(c, o->msg, o->qos, o->retain, 1, o->id, outmsg_ids(o), o->n_ids);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* Find an in-flight entry by packet id. Acks usually come in order, so the head is checked first. */
static outmsg_t *inflight_find(session_t *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->inflight.n; i++) {
        outmsg_t *o = ring_at(&s->inflight, i);
        if (o->state != OUT_QUEUED && o->id == id)
            return o;
    }
    return NULL;
}

static void inflight_done(session_t *s, outmsg_t *o)
{
    if (o->msg)
        s->inflight_bytes -= o->msg->payload.len;
    if (s->persist)
        store_out_del(s->broker->store, s, o->seq);
    bit_clr(s->out_ids, o->id);
    outmsg_clear(o);
    o->state = OUT_QUEUED; /* a hole */
    s->inflight_live--;
    while (s->inflight.n > 0 && ring_at(&s->inflight, 0)->state == OUT_QUEUED)
        ring_pop(&s->inflight);
}

/* The last acknowledgement of a flow (PUBACK, PUBCOMP): the entry in `state` is done. */
static bool inflight_finish(session_t *s, uint16_t id, uint8_t state)
{
    pthread_mutex_lock(&s->lock);
    outmsg_t *o = inflight_find(s, id);
    bool ok = o && o->state == state;
    if (ok)
        inflight_done(s, o);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool session_puback(session_t *s, uint16_t id) { return inflight_finish(s, id, OUT_WAIT_PUBACK); }

bool session_pubrec(session_t *s, uint16_t id, bool failed)
{
    pthread_mutex_lock(&s->lock);
    outmsg_t *o = inflight_find(s, id);
    bool ok = o && (o->state == OUT_WAIT_PUBREC || o->state == OUT_WAIT_PUBCOMP);
    if (ok) {
        if (failed) {
            inflight_done(s, o);
        } else {
            /* The message is delivered; keep only the id until PUBCOMP. */
            if (o->msg) {
                s->inflight_bytes -= o->msg->payload.len;
                msg_release(o->msg);
                o->msg = NULL;
            }
            o->state = OUT_WAIT_PUBCOMP;
            if (s->persist)
                store_out_state(s->broker->store, s, o);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool session_pubcomp(session_t *s, uint16_t id) { return inflight_finish(s, id, OUT_WAIT_PUBCOMP); }

bool session_qos2_begin(session_t *s, uint16_t id)
{
    pthread_mutex_lock(&s->lock);
    if (!s->in_qos2)
        s->in_qos2 = slab_zalloc(8192);
    bool fresh = !bit_get(s->in_qos2, id);
    if (fresh) {
        bit_set(s->in_qos2, id);
        s->in_qos2_n++;
        if (s->persist)
            store_in2(s->broker->store, s, id, true);
    }
    pthread_mutex_unlock(&s->lock);
    return fresh;
}

bool session_qos2_end(session_t *s, uint16_t id)
{
    pthread_mutex_lock(&s->lock);
    bool had = bit_get(s->in_qos2, id);
    if (had) {
        bit_clr(s->in_qos2, id);
        s->in_qos2_n--;
        if (s->persist)
            store_in2(s->broker->store, s, id, false);
    }
    pthread_mutex_unlock(&s->lock);
    return had;
}

/* ---- persistence ---- */

/* Called under s->lock when the session's expiry is set (CONNECT, DISCONNECT): record it in the
 * persistence store, or forget it there when it no longer outlives its connection. */
static void session_persist_update(session_t *s)
{
    store_t *st = s->broker->store;
    if (!st || s->ended)
        return;
    if (s->expiry > 0) {
        if (!s->persist)
            take_incoming(s); /* queued (and so journaled below) before it becomes durable */
        store_group_begin(st); /* the session and all its state, or nothing */
        store_session_put(st, s, !s->persist); /* a session that just became durable: all of it */
        store_group_end(st);
        s->persist = 1;
    } else if (s->persist) {
        store_session_del(st, s);
        s->persist = 0;
    }
    session_update_fast(s);
}

void session_restore_out(session_t *s, const outmsg_t *src, const uint32_t *ids, uint32_t n_ids)
{
    pthread_mutex_lock(&s->lock);
    bool queued = src->state == OUT_QUEUED || src->id == 0 || bit_get(s->out_ids, src->id);
    if ((queued && !src->msg) || (src->msg && moved_dup(s, src->msg, src->qos))) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    outmsg_t *o = ring_push(queued ? &s->queue : &s->inflight);
    *o = *src;
    if (o->msg)
        msg_hold(o->msg);
    outmsg_set_ids(o, ids, n_ids);
    if (queued) {
        o->state = OUT_QUEUED;
        o->id = 0;
        if (o->msg) {
            s->queued_bytes += o->msg->payload.len;
            backlog_add(s, 1, o->msg->payload.len);
        }
    } else {
        if (!s->out_ids)
            s->out_ids = slab_zalloc(8192);
        bit_set(s->out_ids, o->id);
        o->dup = 1;
        s->inflight_live++;
        if (o->msg)
            s->inflight_bytes += o->msg->payload.len;
    }
    if (o->seq > s->out_seq)
        s->out_seq = o->seq;
    pthread_mutex_unlock(&s->lock);
}

void session_moved_in(session_t *s, int64_t now)
{
    pthread_mutex_lock(&s->lock);
    if (!s->moved_ids)
        s->moved_ids = dedup_new(now);
    pthread_mutex_unlock(&s->lock);
}

/* ---- will and ACL, for will.c and the packet handlers ---- */

msg_t *session_take_will(session_t *s)
{
    pthread_mutex_lock(&s->lock);
    msg_t *will = s->will;
    s->will = NULL;
    s->will_at = 0;
    if (will && s->persist)
        store_session_put(s->broker->store, s, false); /* published: not again after a restart */
    pthread_mutex_unlock(&s->lock);
    return will;
}

bool session_will_pending(session_t *s, bool discard, uint32_t *delay)
{
    pthread_mutex_lock(&s->lock);
    msg_t *will = s->will;
    *delay = s->will_delay;
    if (will && discard) {
        msg_release(will);
        s->will = NULL;
        will = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return will != NULL;
}

void session_will_schedule(session_t *s, int64_t at)
{
    pthread_mutex_lock(&s->lock);
    s->will_at = at;
    pthread_mutex_unlock(&s->lock);
}

bool session_acl_write(session_t *s, const uint8_t *topic, size_t len, const auth_msg_t *m)
{
    pthread_mutex_lock(&s->lock); /* username and auth change when a new connection attaches */
    bool allowed = auth_acl_msg(s->auth, s->client_id, s->username, topic, len, AUTH_WRITE, m);
    pthread_mutex_unlock(&s->lock);
    return allowed;
}

struct retain_src *session_retain_src(session_t *s)
{
    pthread_mutex_lock(&s->lock);
    retain_src_t *src = NULL;
    if (s->auth)
        src = retain_src_new(s->client_id, s->client_id_len, s->username, s->username ? strlen(s->username) : 0,
                             s->auth);
    pthread_mutex_unlock(&s->lock);
    return src;
}

void session_set_internal(session_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->expiry = UINT32_MAX;
    s->expire_at = 0;
    session_persist_update(s);
    pthread_mutex_unlock(&s->lock);
}

char **session_sub_filters(session_t *s, uint32_t *n)
{
    pthread_mutex_lock(&s->lock);
    char **v = xcalloc(s->n_subs + 1, sizeof(*v));
    for (uint32_t i = 0; i < s->n_subs; i++)
        v[i] = xstrndup(s->subs[i].filter, s->subs[i].len);
    *n = s->n_subs;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---- a connection comes and goes ---- */

int session_attach(session_t *s, struct conn *c, const session_login_t *login, bool clean, session_holder_t *holder)
{
    pthread_mutex_lock(&s->lock);
    if (s->conn) {
        *holder = (session_holder_t){.worker = s->worker, .fd = s->conn_fd, .conn_id = s->conn_id};
        pthread_mutex_unlock(&s->lock);
        return SESSION_BUSY;
    }
    if (s->moving) {
        if (c->w->now - s->moving_at < SESSION_MOVE_TIMEOUT_MS) {
            pthread_mutex_unlock(&s->lock);
            return SESSION_MOVING;
        }
        s->moving = 0; /* the other node never confirmed: the session stays here */
    }
    if (clean) {
        pthread_mutex_unlock(&s->lock);
        return SESSION_STALE;
    }
    msg_t *oldwill = s->will;
    s->conn = c;
    s->worker = c->w->index;
    s->conn_id = c->id;
    s->conn_fd = c->fd;
    s->version = c->version;
    s->expiry = login->expiry;
    s->expire_at = 0;
    s->will = login->will;
    s->will_delay = login->will_delay;
    s->will_at = 0;
    s->inflight_max = login->inflight_max;
    s->flush_pending = 0;
    free(s->username);
    s->username = login->username;
    s->auth = login->auth;
    session_persist_update(s);
    session_update_fast(s);
    pthread_mutex_unlock(&s->lock);
    msg_release(oldwill);
    return SESSION_ATTACHED;
}

bool session_detach_conn(session_t *s, const struct conn *c, uint32_t *expiry)
{
    pthread_mutex_lock(&s->lock);
    bool mine = s->conn == c;
    if (mine) {
        s->conn = NULL;
        s->worker = -1;
        s->flush_pending = 0;
        session_update_fast(s); /* deliveries take the lock again; those on their way are queued */
        bp_wake_waiters(c->w, s); /* offline: max_queued_* bound it, nobody waits for it */
    }
    *expiry = s->expiry;
    pthread_mutex_unlock(&s->lock);
    return mine;
}

void session_start_expiry(session_t *s, uint32_t expiry, int64_t at)
{
    pthread_mutex_lock(&s->lock);
    if (expiry != UINT32_MAX)
        s->expire_at = at;
    /* Persistence: when it went offline (its expiry counts from then across a restart) and
     * whether its will is still waiting. */
    if (s->persist && s->conn == NULL)
        store_session_put(s->broker->store, s, false);
    pthread_mutex_unlock(&s->lock);
}

bool session_disconnect_expiry(session_t *s, uint32_t expiry)
{
    pthread_mutex_lock(&s->lock);
    if (s->expiry == 0 && expiry != 0) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    s->expiry = expiry;
    session_persist_update(s);
    pthread_mutex_unlock(&s->lock);
    return true;
}

struct conn *session_flush_target(session_t *s, int worker)
{
    pthread_mutex_lock(&s->lock);
    struct conn *c = s->worker == worker ? s->conn : NULL;
    if (!c)
        s->flush_pending = 0;
    pthread_mutex_unlock(&s->lock);
    return c;
}

bool session_timer_current(session_t *s, bool will, int64_t at)
{
    pthread_mutex_lock(&s->lock);
    bool offline = s->conn == NULL && !s->ended;
    bool current = offline && (will ? s->will && s->will_at == at : s->expire_at == at);
    pthread_mutex_unlock(&s->lock);
    return current;
}

uint32_t session_qos2_pending(session_t *s, uint16_t id, bool *dup)
{
    pthread_mutex_lock(&s->lock);
    uint32_t pending = s->in_qos2_n;
    *dup = s->in_qos2 && ((s->in_qos2[id >> 3] >> (id & 7)) & 1);
    pthread_mutex_unlock(&s->lock);
    return pending;
}

void session_restore_identity(session_t *s, uint32_t expiry, const char *username, size_t username_len,
                              const struct auth *auth)
{
    pthread_mutex_lock(&s->lock);
    s->expiry = expiry;
    free(s->username);
    s->username = username ? xstrndup(username, username_len) : NULL;
    s->auth = auth;
    pthread_mutex_unlock(&s->lock);
}

void session_restore_state(session_t *s, int64_t expire_at, msg_t *will, uint32_t will_delay, int64_t will_at)
{
    pthread_mutex_lock(&s->lock);
    s->persist = 1;
    s->expire_at = expire_at;
    if (will) {
        msg_hold(will);
        s->will = will;
        s->will_delay = will_delay;
        s->will_at = will_at;
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- the cluster's client-id ownership (session.h) ---- */

void session_cluster_write_begin(session_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->cluster_pending++;
    pthread_mutex_unlock(&s->lock);
}

uint64_t session_cluster_written(session_t *s, uint64_t rev)
{
    pthread_mutex_lock(&s->lock);
    s->cluster_pending--;
    if (rev > s->cluster_rev)
        s->cluster_rev = rev;
    uint64_t foreign = s->cluster_pending ? 0 : s->cluster_foreign;
    if (!s->cluster_pending)
        s->cluster_foreign = 0;
    pthread_mutex_unlock(&s->lock);
    return foreign;
}

bool session_cluster_foreign(session_t *s, uint64_t rev)
{
    pthread_mutex_lock(&s->lock);
    /* Our write is on its way, or not even queued yet (a connection attaches before the cluster
     * hears of it): decided when its revision is known (session_cluster_written). */
    bool pending = s->cluster_pending > 0 || !s->cluster_rev;
    if (pending && rev > s->cluster_foreign)
        s->cluster_foreign = rev;
    pthread_mutex_unlock(&s->lock);
    return !pending;
}

bool session_cluster_lost(session_t *s, uint64_t rev)
{
    pthread_mutex_lock(&s->lock);
    bool lost = !s->ended && !s->moving && !s->cluster_pending && s->cluster_rev && s->cluster_rev < rev;
    pthread_mutex_unlock(&s->lock);
    return lost;
}

bool session_cluster_kick_target(session_t *s, uint64_t rev, int n_workers, int *worker, int *fd, uint64_t *conn_id)
{
    pthread_mutex_lock(&s->lock);
    int w = atomic_load(&s->worker);
    bool kick = w >= 0 && w < n_workers && s->conn && s->cluster_rev < rev;
    *worker = w;
    *fd = s->conn_fd;
    *conn_id = s->conn_id;
    pthread_mutex_unlock(&s->lock);
    return kick;
}

/* ---- a session moving to another cluster node (session.h) ---- */

void session_snap_free(session_snap_t *snap)
{
    for (uint32_t i = 0; i < snap->n_subs; i++)
        free(snap->subs[i].filter);
    free(snap->subs);
    for (uint32_t i = 0; i < snap->n_out; i++)
        outmsg_clear(&snap->out[i]);
    free(snap->out);
    free(snap->in_qos2);
    memset(snap, 0, sizeof(*snap));
}

void session_snap_free_out(session_snap_t *snap)
{
    for (uint32_t i = 0; i < snap->n_out; i++)
        outmsg_clear(&snap->out[i]);
}

/* Copy ring r's entries with seq > after onto snap->out (lock held). */
static void snap_ring(session_snap_t *snap, outring_t *r, uint32_t after, uint32_t *cap)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const outmsg_t *o = ring_at(r, i);
        if (o->seq <= after || (!o->msg && o->state != OUT_WAIT_PUBCOMP) || o->qos == 0)
            continue; /* holes of the in-flight ring; QoS 0 stays behind as it would offline */
        if (snap->n_out == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            snap->out = xrealloc(snap->out, *cap * sizeof(*snap->out));
        }
        outmsg_t *d = &snap->out[snap->n_out++];
        *d = *o;
        if (d->msg)
            msg_hold(d->msg);
        d->n_ids = 0;
        outmsg_set_ids(d, outmsg_ids(o), o->n_ids);
    }
}

/* Lock held: s's subscriptions, in-flight entries, queue and inbound QoS 2 ids, copied into snap
 * (session_move_out, session_snapshot). */
static void snap_session(session_t *s, session_snap_t *snap)
{
    snap->subs = xcalloc(s->n_subs ? s->n_subs : 1, sizeof(*snap->subs));
    for (uint32_t i = 0; i < s->n_subs; i++) {
        snap->subs[i] = s->subs[i];
        snap->subs[i].filter = xstrndup(s->subs[i].filter, s->subs[i].len);
    }
    snap->n_subs = s->n_subs;
    uint32_t cap = 0;
    snap_ring(snap, &s->inflight, 0, &cap);
    snap_ring(snap, &s->queue, 0, &cap);
    if (s->in_qos2_n) {
        snap->in_qos2 = xmalloc(s->in_qos2_n * sizeof(uint16_t));
        for (uint32_t id = 1; id <= 65535 && snap->n_in_qos2 < s->in_qos2_n; id++)
            if (bit_get(s->in_qos2, (uint16_t)id))
                snap->in_qos2[snap->n_in_qos2++] = (uint16_t)id;
    }
}

bool session_move_out(session_t *s, session_snap_t *snap, int64_t now, int64_t timeout_ms)
{
    memset(snap, 0, sizeof(*snap));
    pthread_mutex_lock(&s->lock);
    take_incoming(s);
    if (s->ended || s->conn || (s->moving && now - s->moving_at < timeout_ms)) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    s->moving = 1;
    s->moving_at = now;
    s->moving_seq = s->out_seq;
    msg_t *will = s->will; /* cancelled by the reconnect on the other node */
    s->will = NULL;
    s->will_at = 0;
    if (will && s->persist)
        store_session_put(s->broker->store, s, false);
    snap_session(s, snap);
    pthread_mutex_unlock(&s->lock);
    msg_release(will);
    return true;
}

bool session_snapshot(session_t *s, session_snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    pthread_mutex_lock(&s->lock);
    if (s->ended || !s->persist || s->moving) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    snap_session(s, snap);
    pthread_mutex_unlock(&s->lock);
    return true;
}

bool session_move_all(session_t *s, session_snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    pthread_mutex_lock(&s->lock);
    take_incoming(s);
    bool ok = !s->ended;
    if (ok) {
        uint32_t cap = 0;
        snap_ring(snap, &s->inflight, 0, &cap);
        snap_ring(snap, &s->queue, 0, &cap);
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool session_move_tail(session_t *s, session_snap_t *tail)
{
    memset(tail, 0, sizeof(*tail));
    pthread_mutex_lock(&s->lock);
    take_incoming(s);
    bool ok = s->moving && !s->ended && !s->conn;
    if (ok) {
        uint32_t cap = 0;
        snap_ring(tail, &s->queue, s->moving_seq, &cap);
        s->moving_seq = s->out_seq; /* the next tail starts after this one */
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* ---- read-only views (session.h) ---- */

void session_inspect(session_t *s, void (*fn)(const session_t *s, void *arg), void *arg)
{
    pthread_mutex_lock(&s->lock);
    fn(s, arg);
    pthread_mutex_unlock(&s->lock);
}

char *session_username_dup(session_t *s)
{
    pthread_mutex_lock(&s->lock);
    char *user = s->username ? xstrdup(s->username) : NULL;
    pthread_mutex_unlock(&s->lock);
    return user;
}

bool session_conn_target(session_t *s, int n_workers, int *worker, int *fd, uint64_t *conn_id)
{
    pthread_mutex_lock(&s->lock);
    int w = atomic_load(&s->worker);
    bool connected = w >= 0 && w < n_workers && s->conn;
    *worker = w;
    *fd = s->conn_fd;
    *conn_id = s->conn_id;
    pthread_mutex_unlock(&s->lock);
    return connected;
}
