/* store.c -- the persistence store's upper half (store.h): turns the broker's durable changes
 * (sessions, subscriptions, queued messages, retained messages) into journal records, and serves
 * the journal (journal.c) the hooks it needs: references, message bytes, waking the workers.
 * Reading the database back at start-up is recovery.c's. */
#include "broker/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/registry.h"
#include "broker/worker.h"
#include "broker/cluster_sess.h"
#include "broker/journal.h"
#include "broker/msg_hook.h"

struct store {
    journal_t *j;
    struct broker *b; /* set by store_bind (recovery) or store_start */
};

/* A record's session: held while the record waits, its client id the row's key. */
#define SESSION_KEY(s) .owner = (s), .cid = (s)->client_id, .cid_len = (s)->client_id_len

/* ---- journal hooks ---- */

static void hold_refs(void *ctx, const jrec_t *r)
{
    if (r->owner)
        session_hold(r->owner);
    if (r->m)
        msg_hold(r->m);
}

static void release_refs(void *ctx, const jrec_t *r)
{
    if (r->owner)
        session_release(r->owner);
    if (r->m)
        msg_release(r->m);
}

/* The journal's MSG_ADD holds the last reference to m: a message stored and done with within one
 * batch (queued, sent and acknowledged while the previous batch was committed). */
static bool msg_unused(void *ctx, void *msg)
{
    msg_t *m = msg;
    if (atomic_load_explicit(&m->refs, memory_order_acquire) != 1)
        return false;
    m->store_id = 0; /* nobody else holds it: its release then records no deletion */
    return true;
}

/* The message as an MQTT 5 PUBLISH: topic, payload, QoS, retain and the properties it forwards. */
static void encode_msg(void *ctx, void *msg, uint8_t **bytes, size_t *n, int64_t *expire_wall)
{
    msg_t *m = msg;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.publish.qos = m->qos;
    p.publish.retain = m->retain;
    p.publish.topic = m->topic;
    p.publish.payload = m->payload;
    p.id = m->qos ? 1 : 0;
    msg_props(m, &p.props);
    *n = mqtt_encoded_len(&p, MQTT_V5);
    *bytes = xmalloc(*n);
    mqtt_encode(&p, MQTT_V5, *bytes);
    *expire_wall = m->has_expiry ? journal_wall_ms() + (m->expiry_at - now_ms()) : 0;
}

/* Wake the workers whose held output waits for a sequence number now committed. */
static void wake_waiters(void *ctx, uint64_t committed)
{
    store_t *st = ctx;
    struct broker *b = st->b;
    for (int i = 0; i < b->n_workers; i++) {
        uint64_t want = atomic_load(&b->workers[i].store_wait);
        if (want && want <= committed)
            inbox_wake(&b->workers[i].inbox);
    }
}

/* cluster_sessions jetstream: the sessions of the batch copied to JetStream before it counts as
 * committed (cluster_sess.c). */
static void mirror(void *ctx, const jrec_t *v, size_t n)
{
    store_t *st = ctx;
    if (st->b && st->b->cluster_sess)
        cluster_sess_mirror(st->b, v, n);
}

static bool broker_stopping(void *ctx)
{
    store_t *st = ctx;
    return atomic_load(&st->b->stop);
}

/* ---- lifetime ---- */

store_t *store_open(const char *path, char *err, size_t errlen)
{
    store_t *st = xcalloc(1, sizeof(*st));
    journal_hooks_t hooks = {.ctx = st, .hold = hold_refs, .release = release_refs, .encode_msg = encode_msg,
                             .committed = wake_waiters, .mirror = mirror, .stopping = broker_stopping, .msg_unused = msg_unused};
    st->j = journal_open(path, &hooks, err, errlen);
    if (!st->j) {
        free(st);
        return NULL;
    }
    msg_set_gone_hook(store_msg_gone);
    return st;
}

void store_bind(store_t *st, struct broker *b) { st->b = b; }
journal_t *store_journal(store_t *st) { return st->j; }

void store_msg_loaded(store_t *st, msg_t *m, uint64_t id)
{
    m->store_id = id;
    m->store = st;
}

int store_start(store_t *st, struct broker *b)
{
    st->b = b;
    return journal_start(st->j);
}

void store_stop(store_t *st)
{
    if (st)
        journal_stop(st->j);
}

void store_free(store_t *st)
{
    if (!st)
        return;
    journal_free(st->j);
    free(st);
}

void store_group_begin(store_t *st) { journal_group_begin(st ? st->j : NULL); }
void store_group_end(store_t *st) { journal_group_end(st ? st->j : NULL); }
uint64_t store_committed(store_t *st) { return journal_committed(st->j); }

void store_commit_hist(store_t *st, journal_hist_t *out) { journal_commit_hist(st->j, out); }
uint64_t store_need(store_t *st) { return journal_need(st->j); }
uint64_t store_last(store_t *st)
{
    (void)st;
    return journal_last();
}

/* ---- records ---- */

static void push(store_t *st, jrec_t *r)
{
    if (!journal_push(st->j, r))
        free(r->blob);
}

/* Push r (journal lock held, taken by the caller to read what r needs under it) unless !ok, then
 * unlock; a record not pushed gives its blob back. */
static void push_unlock(store_t *st, jrec_t *r, bool ok)
{
    ok = ok && journal_push_locked(st->j, r);
    journal_unlock(st->j);
    if (!ok)
        free(r->blob);
}

/* Make sure m has a row (journal lock held): the first durable reference writes it. */
static uint64_t msg_ref_locked(store_t *st, msg_t *m)
{
    if (m->store_id == 0) {
        uint64_t id = journal_msg_add_locked(st->j, m);
        if (id)
            store_msg_loaded(st, m, id);
    }
    return m->store_id;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *d = xmalloc(n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* The index of the listener whose security settings are `a` (the first, without per-listener
 * settings: they all share one): what a row stores, since recovery finds the auth by index. */
static int32_t listener_of(store_t *st, const struct auth *a)
{
    struct broker *b = st->b;
    for (int i = 0; b && i < b->cfg.n_listeners; i++)
        if (b->auth[i] == a)
            return i;
    return 0;
}

void store_out_put(store_t *st, session_t *s, const outmsg_t *o)
{
    jrec_t r = {.kind = R_OUT_PUT, SESSION_KEY(s), .seq = o->seq, .qos = o->qos, .retain = o->retain, .state = o->state,
               .pid = o->id, .u32 = o->n_ids};
    if (o->n_ids)
        r.blob = dup_bytes(outmsg_ids(o), o->n_ids * sizeof(uint32_t));
    journal_lock(st->j);
    msg_t *m = o->msg;
    if (m && m->store_id == 0 && !m->store_inline) {
        /* Its first durable reference: the message goes in this row, not in a msgs row of its own
         * (one statement instead of two when it is written, none when it is deleted: the usual
         * QoS 1 message has one receiver). A second durable reference gets a msgs row, so a message
         * is stored at most twice however many sessions hold it. */
        r.m = m;
        r.has_msg = 1;
    } else if (m) {
        r.msg_id = msg_ref_locked(st, m);
    }
    bool ok = (m == NULL || r.has_msg || r.msg_id != 0) && journal_push_locked(st->j, &r);
    if (ok && r.has_msg)
        m->store_inline = 1;
    journal_unlock(st->j);
    if (!ok)
        free(r.blob);
}

void store_out_state(store_t *st, session_t *s, const outmsg_t *o)
{
    jrec_t r = {.kind = R_OUT_STATE, SESSION_KEY(s), .seq = o->seq, .state = o->state, .pid = o->id,
               .has_msg = o->msg != NULL};
    /* The message's row id is read under the journal lock: the first durable reference sets it
     * under that lock (msg_ref_locked), maybe on another worker for another session, with nothing
     * else ordering the two (TSan: a fan-out to persistent and clean sessions with persistence). */
    journal_lock(st->j);
    r.msg_id = o->msg ? o->msg->store_id : 0;
    push_unlock(st, &r, true);
}

void store_out_del(store_t *st, session_t *s, uint32_t seq)
{
    jrec_t r = {.kind = R_OUT_DEL, SESSION_KEY(s), .seq = seq};
    push(st, &r);
}

/* When s went offline, for its expiry across a restart: 0 while connected, and also for connections
 * the broker itself closes as it stops (those sessions count from the restart, not from the stop). */
static int64_t offline_since(store_t *st, const session_t *s)
{
    return s->conn || atomic_load(&st->b->stop) ? 0 : journal_wall_ms();
}

void store_session_put(store_t *st, session_t *s, bool full)
{
    jrec_t r = {.kind = R_SESS_PUT, SESSION_KEY(s), .u32 = s->expiry, .listener = listener_of(st, s->auth),
               .offline_since = offline_since(st, s), .seq = s->will ? s->will_delay : 0};
    if (s->username) {
        r.blob_len = (uint32_t)strlen(s->username);
        r.blob = dup_bytes(s->username, r.blob_len);
    }
    journal_lock(st->j);
    if (s->will)
        r.msg_id = msg_ref_locked(st, s->will);
    push_unlock(st, &r, true);
    if (!full)
        return;
    for (uint32_t i = 0; i < s->n_subs; i++)
        store_sub_put(st, s, &s->subs[i]);
    outring_t *rings[2] = {&s->inflight, &s->queue};
    for (int k = 0; k < 2; k++) {
        outring_t *q = rings[k];
        for (uint32_t i = 0; i < q->n; i++) {
            const outmsg_t *o = &q->v[(q->head + i) % q->cap];
            if (o->qos > 0 && (o->msg || o->state == OUT_WAIT_PUBCOMP))
                store_out_put(st, s, o);
        }
    }
    for (uint32_t id = 1; s->in_qos2 && id <= 65535; id++)
        if ((s->in_qos2[id >> 3] >> (id & 7)) & 1)
            store_in2(st, s, (uint16_t)id, true);
}

void store_session_del(store_t *st, session_t *s)
{
    jrec_t r = {.kind = R_SESS_DEL, SESSION_KEY(s)};
    push(st, &r);
}

void store_sub_put(store_t *st, session_t *s, const sess_sub_t *sub)
{
    jrec_t r = {.kind = R_SUB_PUT, SESSION_KEY(s), .seq = sub->options, .u32 = sub->sub_id,
               .blob = dup_bytes(sub->filter, sub->len), .blob_len = sub->len};
    push(st, &r);
}

void store_sub_del(store_t *st, session_t *s, const char *filter, size_t n)
{
    jrec_t r = {.kind = R_SUB_DEL, SESSION_KEY(s), .blob = dup_bytes(filter, n), .blob_len = (uint32_t)n};
    push(st, &r);
}

void store_in2(store_t *st, session_t *s, uint16_t id, bool add)
{
    jrec_t r = {.kind = add ? R_IN2_ADD : R_IN2_DEL, SESSION_KEY(s), .pid = id};
    push(st, &r);
}

void store_retain(store_t *st, const uint8_t *topic, size_t n, msg_t *m, const retain_src_t *src)
{
    jrec_t r = {.kind = m ? R_RET_SET : R_RET_DEL, .blob_len = (uint32_t)n};
    if (m && src) { /* topic, client id, username in one blob (journal.h) */
        size_t idn = src->client_id_len, un = src->username ? src->username_len : 0;
        uint8_t *b = xmalloc(n + idn + un + 1);
        memcpy(b, topic, n);
        memcpy(b + n, src->client_id, idn);
        if (un)
            memcpy(b + n + idn, src->username, un);
        r.blob = b;
        r.u32 = (uint32_t)idn + 1;
        r.seq = src->username ? (uint32_t)un + 1 : 0;
        r.listener = listener_of(st, src->auth);
    } else {
        r.blob = dup_bytes(topic, n);
    }
    journal_lock(st->j);
    if (m)
        r.msg_id = msg_ref_locked(st, m);
    push_unlock(st, &r, !m || r.msg_id != 0);
}

void store_msg_gone(store_t *st, uint64_t id)
{
    jrec_t r = {.kind = R_MSG_DEL, .msg_id = id};
    push(st, &r);
}


void store_js_seen(store_t *st, uint64_t origin, uint64_t lo, uint64_t hi)
{
    jrec_t r = {.kind = R_JS_SEEN, .js = {origin, lo, hi}};
    push(st, &r);
}

void store_js_unsee(store_t *st, uint64_t origin, uint64_t lo)
{
    jrec_t r = {.kind = R_JS_UNSEE, .js = {origin, lo, 0}};
    push(st, &r);
}

int store_js_seen_load(store_t *st, void (*each)(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi), void *ctx)
{
    return journal_js_seen_load(st->j, each, ctx);
}
