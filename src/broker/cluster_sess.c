/* cluster_sess.c -- `cluster_sessions jetstream` (docs/cluster.md "Sessions after kill -9"): a
 * persistent session survives the `kill -9` of its node.
 *
 * Design. The store's thread, after each group commit to SQLite and before it publishes the
 * commit (so before any PUBACK, PUBREC, PUBCOMP, SUBACK, CONNACK or stream acknowledgement that
 * waits for it is sent), copies every persistent session the batch touched to the key-value bucket
 * tombo_sessions: key B64(client id), value [1: node name length][node name][session_wire
 * encoding of the whole session as it is in memory then, which is at least as new as the batch].
 * The copies of one batch go out as asynchronous publishes and the thread waits for all their
 * acknowledgements (one JetStream round trip per batch, whatever its size); a failure is retried,
 * so the store never claims a state JetStream does not have. A session that ended is deleted from
 * the bucket, unless another node's copy replaced ours.
 *
 * Taking over: a node whose take request (cluster_move.c) gets no answer reads the bucket; a copy
 * there is imported as a moved session would be. The messages that wait for the dead node in the
 * stream tombo_msgs (its routes are still in the bucket) are read without consuming them (the
 * dead node gets them again when it restarts, for its other sessions) and given to the session
 * when they match its subscriptions: all those stored before the take, then, on this file's
 * thread, those stored after it that were not also sent to this node (which delivered those
 * itself), at once and twice more while the other nodes learn this node's routes.
 *
 * The node that restarts after being killed ends the sessions of its store that another node
 * took meanwhile (tombo_clients names that node), before any client can connect. */
#include "broker/cluster_sess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/cluster_int.h"
#include "broker/inbox.h"
#include "broker/journal.h"
#include "broker/registry.h"
#include "broker/session_wire.h"
#include "broker/worker.h"
#include "mqtt/topic.h"

#define BUCKET "tombo_sessions"
#define STREAM_MSGS "tombo_msgs"  /* cluster_js.c's */
#define MIRROR_WAIT_MS 5000       /* one batch's acknowledgements, before it is sent again */
#define MIRROR_KEEP 1024          /* entries of cs->seen kept for the next batch */
#define DRAIN_PASSES 6
static const int drain_delay_ms[DRAIN_PASSES] = {0, 1500, 4000, 8000, 15000, 30000};

/* A client id's session to drain the dead node's stream messages into. */
typedef struct drain {
    struct drain *next;
    char owner[65];
    uint64_t upto;  /* messages up to this stream sequence are all for the session */
    uint64_t after; /* the last sequence read so far */
    int pass;
    int64_t due;
    size_t idlen;
    char id[];
} drain_t;

/* What a pass found, for worker 0 (CL_SESS_DRAIN's data). */
typedef struct drained {
    size_t n;
    natsMsg **m;
    bool *all; /* m[i] goes to the session even when it was sent to this node too */
    size_t idlen;
    char id[];
} drained_t;

/* A session a batch touched, and whether its last record there ended it. */
typedef struct mirror_ent {
    session_t *s;
    bool del;
} mirror_ent_t;

struct cluster_sess {
    cluster_t *c;
    kvStore *kv;
    jsCtx *js_pub; /* the store thread's asynchronous publishes */
    char prefix[80]; /* $KV.tombo_sessions. */
    atomic_ulong pub_errors;
    bool published; /* the store thread made an asynchronous publish (nats.c's pending list exists) */
    int64_t max_payload;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    drain_t *head;
    bool stop, started;
    pthread_t thread;
    /* The store's thread's: the sessions of the batch being copied, in the order first seen, each
     * found again through its session_t.mirror_slot. Kept from batch to batch up to MIRROR_KEEP. */
    mirror_ent_t *seen;
    size_t seen_cap;
};

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    cluster_sess_t *cs = closure;
    atomic_fetch_add(&cs->pub_errors, 1);
    log_printf(TLOG_WARNING, "Warning: cluster: a session's copy to JetStream failed (%s); sent again.",
               pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
}

/* ---- copies (the store's thread) ---- */

static bool is_session_rec(uint8_t kind)
{
    return kind == R_SESS_PUT || kind == R_SESS_DEL || kind == R_SUB_PUT || kind == R_SUB_DEL ||
           kind == R_OUT_PUT || kind == R_OUT_STATE || kind == R_OUT_DEL || kind == R_IN2_ADD || kind == R_IN2_DEL;
}

/* Delete s's copy unless another node's replaced it. */
static void drop_copy(cluster_sess_t *cs, const char *key)
{
    kvEntry *e = NULL;
    if (kvStore_Get(&e, cs->kv, key) != NATS_OK)
        return;
    const uint8_t *v = kvEntry_Value(e);
    int n = kvEntry_ValueLen(e);
    cluster_t *c = cs->c;
    bool ours = kvEntry_Operation(e) == kvOp_Put && n >= 1 && v[0] == c->node_len && n >= 1 + (int)c->node_len &&
                !memcmp(v + 1, c->node, c->node_len);
    kvEntry_Destroy(e);
    if (ours)
        kvStore_Delete(cs->kv, key);
}

void cluster_sess_mirror(broker_t *b, const jrec_t *v, size_t n)
{
    cluster_sess_t *cs = b->cluster_sess;
    cluster_t *c = cs->c;
    /* Each session once, in O(1) per record: a session's mirror_slot names its entry when that
     * entry holds it (a slot left from an earlier batch points past ns or at another session).
     * The records hold their sessions until the batch is released, so no entry is a freed one. */
    mirror_ent_t *seen = cs->seen;
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        session_t *s = v[i].owner;
        if (!is_session_rec(v[i].kind) || !s)
            continue;
        size_t k = s->mirror_slot;
        if (k >= ns || seen[k].s != s) {
            if (ns == cs->seen_cap) {
                cs->seen_cap = cs->seen_cap ? cs->seen_cap * 2 : 16;
                cs->seen = seen = xrealloc(seen, cs->seen_cap * sizeof(*seen));
            }
            k = ns++;
            seen[k].s = s;
            s->mirror_slot = (uint32_t)k;
        }
        seen[k].del = v[i].kind == R_SESS_DEL; /* the last record of the session says */
    }
    int64_t now = now_ms();
    for (int tries = 0; ns; tries++) {
        atomic_store(&cs->pub_errors, 0);
        size_t sent = 0;
        for (size_t k = 0; k < ns; k++) {
            session_t *s = seen[k].s;
            char *key = cluster_key_of(NULL, (const uint8_t *)s->client_id, s->client_id_len);
            if (!key)
                continue;
            session_snap_t snap;
            if (session_snapshot(s, &snap)) {
                size_t vn; /* [node name length][node name][session_wire] */
                uint8_t *val = session_wire_encode(&snap, now, 1 + c->node_len, &vn);
                session_snap_free(&snap);
                if ((int64_t)vn + 200 + (int64_t)strlen(key) > cs->max_payload) {
                    if (!tries)
                        log_printf(TLOG_WARNING, "Warning: cluster: client %s's session (%zu bytes) is larger than "
                                   "a NATS message: not copied to JetStream.", s->client_id, vn);
                } else {
                    val[0] = (uint8_t)c->node_len;
                    memcpy(val + 1, c->node, c->node_len);
                    char subj[3200];
                    snprintf(subj, sizeof(subj), "%s%s", cs->prefix, key);
                    if (js_PublishAsync(cs->js_pub, subj, val, (int)vn, NULL) == NATS_OK) {
                        sent++;
                        cs->published = true;
                    } else {
                        atomic_fetch_add(&cs->pub_errors, 1);
                    }
                }
                free(val);
            } else if (seen[k].del && !tries) {
                drop_copy(cs, key);
            }
            free(key);
        }
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = MIRROR_WAIT_MS;
        natsStatus st = sent ? js_PublishAsyncComplete(cs->js_pub, &po) : NATS_OK;
        if (st == NATS_OK && atomic_load(&cs->pub_errors) == 0)
            break;
        natsMsgList pend = {0}; /* nats.c 3.4's list call crashes before any publish */
        if (cs->published && js_PublishAsyncGetPendingList(&pend, cs->js_pub) == NATS_OK)
            natsMsgList_Destroy(&pend);
        if (tries == 0)
            log_printf(TLOG_WARNING, "Warning: cluster: JetStream did not take %zu sessions' copies (%s); the store's "
                       "acknowledgements wait, retrying.", ns, natsStatus_GetText(st));
        if (atomic_load(&b->stop) && tries >= 3)
            break;
        sleep(1);
    }
    if (cs->seen_cap > MIRROR_KEEP) { /* a burst's list goes; the usual batch's stays */
        free(cs->seen);
        cs->seen = NULL;
        cs->seen_cap = 0;
    }
}

/* ---- taking a dead node's session (taker threads) ---- */

natsMsg *cluster_sess_fetch(cluster_t *c, const char *id, size_t idlen, const char *owner, uint64_t *upto)
{
    cluster_sess_t *cs = c->b->cluster_sess;
    *upto = 0;
    char *key = cluster_key_of(NULL, (const uint8_t *)id, idlen);
    kvEntry *e = NULL;
    natsMsg *m = NULL;
    if (key && kvStore_Get(&e, cs->kv, key) == NATS_OK) {
        const uint8_t *v = kvEntry_Value(e);
        int n = kvEntry_ValueLen(e);
        if (kvEntry_Operation(e) == kvOp_Put && n >= 1 && n >= 1 + v[0] &&
            !(v[0] == c->node_len && !memcmp(v + 1, c->node, c->node_len)))
            natsMsg_Create(&m, "tombo.sess", NULL, (const char *)v + 1 + v[0], n - 1 - v[0]);
        kvEntry_Destroy(e);
    }
    free(key);
    if (m) { /* the messages stored for `owner` so far are all the session's, if they match */
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        if (js_GetStreamInfo(&si, c->js, STREAM_MSGS, NULL, &jerr) == NATS_OK) {
            *upto = si->State.LastSeq;
            jsStreamInfo_Destroy(si);
        }
        log_printf(TLOG_NOTICE, "Cluster: node %s did not answer: client %.*s takes its session from JetStream.",
                   owner, (int)idlen, id);
    }
    return m;
}

/* Read the stream's messages for d->owner after d->after. */
static drained_t *drain_read(cluster_sess_t *cs, drain_t *d)
{
    cluster_t *c = cs->c;
    drained_t *r = xcalloc(1, sizeof(*r) + d->idlen + 1);
    r->idlen = d->idlen;
    memcpy(r->id, d->id, d->idlen);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, c->js, STREAM_MSGS, NULL, &jerr) != NATS_OK)
        return r;
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.d.%s", d->owner);
    size_t cap = 0;
    for (uint64_t seq = d->after + 1 > first ? d->after + 1 : first; seq <= last; seq++) {
        natsMsg *m = NULL;
        if (js_GetMsg(&m, c->js, STREAM_MSGS, seq, NULL, &jerr) != NATS_OK)
            continue; /* acknowledged by its node already, or not there */
        if (strcmp(natsMsg_GetSubject(m), subj)) {
            natsMsg_Destroy(m);
            continue;
        }
        if (r->n == cap) {
            cap = cap ? cap * 2 : 64;
            r->m = xrealloc(r->m, cap * sizeof(*r->m));
            r->all = xrealloc(r->all, cap * sizeof(*r->all));
        }
        r->all[r->n] = seq <= d->upto;
        r->m[r->n++] = m;
    }
    if (last > d->after)
        d->after = last;
    return r;
}

static void *drain_main(void *arg)
{
    cluster_sess_t *cs = arg;
    pthread_mutex_lock(&cs->lock);
    while (!cs->stop) {
        drain_t **p = &cs->head, *d = NULL;
        int64_t now = now_ms(), next = 0;
        for (; *p; p = &(*p)->next) {
            if ((*p)->due <= now) {
                d = *p;
                *p = d->next;
                break;
            }
            if (!next || (*p)->due < next)
                next = (*p)->due;
        }
        if (!d) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next ? next - now : 1000;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&cs->cond, &cs->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&cs->lock);
        drained_t *r = drain_read(cs, d);
        inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_SESS_DRAIN, .data = r};
        worker_post(&cs->c->b->workers[0], &it);
        pthread_mutex_lock(&cs->lock);
        if (++d->pass < DRAIN_PASSES) {
            d->due = now_ms() + drain_delay_ms[d->pass] - drain_delay_ms[d->pass - 1];
            d->next = cs->head;
            cs->head = d;
        } else {
            free(d);
        }
    }
    while (cs->head) {
        drain_t *d = cs->head;
        cs->head = d->next;
        free(d);
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}

void cluster_sess_drain(broker_t *b, session_t *s, const char *owner, uint64_t upto)
{
    cluster_sess_t *cs = b->cluster_sess;
    drain_t *d = xcalloc(1, sizeof(*d) + s->client_id_len + 1);
    snprintf(d->owner, sizeof(d->owner), "%s", owner);
    d->upto = upto;
    d->idlen = s->client_id_len;
    memcpy(d->id, s->client_id, s->client_id_len);
    d->due = now_ms();
    pthread_mutex_lock(&cs->lock);
    d->next = cs->head;
    cs->head = d;
    pthread_cond_signal(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
}

/* ---- delivery (worker 0) ---- */

typedef struct match_arg {
    const msg_t *m;
    int qos;       /* -1: no subscription matches */
    uint8_t rap;   /* retain as published */
    uint32_t sub_id;
} match_arg_t;

static void match_subs(const session_t *s, void *arg)
{
    match_arg_t *a = arg;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const sess_sub_t *sub = &s->subs[i];
        if (sub->len >= 7 && !memcmp(sub->filter, "$share/", 7))
            continue; /* a shared group's messages are the group's */
        if (!mqtt_topic_match((const uint8_t *)sub->filter, sub->len, a->m->topic.p, a->m->topic.len))
            continue;
        int q = sub->options & 3;
        if (q > a->qos) {
            a->qos = q;
            a->sub_id = sub->sub_id;
            a->rap = (sub->options & 8) != 0;
        }
    }
}

void cluster_sess_on_item(worker_t *w, inbox_item_t *it)
{
    drained_t *r = it->data;
    session_t *s = registry_find(w->b, r->id, r->idlen);
    size_t k = 0, here = 0;
    for (size_t i = 0; i < r->n; i++) {
        bool to_self = false;
        msg_t *m = s ? cluster_decode_msg(w, (const uint8_t *)natsMsg_GetData(r->m[i]),
                                          (size_t)natsMsg_GetDataLength(r->m[i]), &to_self) : NULL;
        natsMsg_Destroy(r->m[i]);
        if (!m)
            continue;
        if (!r->all[i] && to_self) { /* sent here too: delivered by our own route */
            here++;
            msg_release(m);
            continue;
        }
        match_arg_t a = {.m = m, .qos = -1};
        session_inspect(s, match_subs, &a);
        if (a.qos < 0) {
            msg_release(m);
            continue;
        }
        uint8_t qos = m->qos < a.qos ? m->qos : (uint8_t)a.qos;
        session_deliver_give(w, s, m, qos, a.rap ? m->retain : 0, a.sub_id ? &a.sub_id : NULL, a.sub_id ? 1 : 0);
        k++;
    }
    if (s && (k || here))
        log_printf(TLOG_NOTICE, "Cluster: %zu messages that waited for the dead node in JetStream went to client %s "
                   "(of %zu read; %zu sent here too).", k, s->client_id, r->n, here);
    if (s)
        session_release(s);
    free(r->m);
    free(r->all);
    free(r);
}

void cluster_sess_item_free(inbox_item_t *it)
{
    drained_t *r = it->data;
    for (size_t i = 0; i < r->n; i++)
        natsMsg_Destroy(r->m[i]);
    free(r->m);
    free(r->all);
    free(r);
}

/* ---- restart ---- */

void cluster_sess_recovered(broker_t *b)
{
    cluster_t *c = b->cluster;
    size_t n = 0;
    session_t **v = registry_list(b, &n);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        session_t *s = v[i];
        char *key = cluster_key_of(NULL, (const uint8_t *)s->client_id, s->client_id_len);
        kvEntry *e = NULL;
        if (key && kvStore_Get(&e, c->kv[B_CLIENTS], key) == NATS_OK) {
            const char *owner = kvEntry_Operation(e) == kvOp_Put ? kvEntry_ValueString(e) : NULL;
            if (owner && *owner && strcmp(owner, c->node)) {
                log_printf(TLOG_NOTICE, "Cluster: client %s's session was taken by node %s while this node was "
                                        "down: dropped here.", s->client_id, owner);
                session_end(s);
                dropped++;
            }
            kvEntry_Destroy(e);
        }
        free(key);
        session_release(s);
    }
    free(v);
    if (dropped)
        log_printf(TLOG_NOTICE, "Cluster: %zu restored sessions were taken by other nodes.", dropped);
}

/* ---- lifetime ---- */

int cluster_sess_init(broker_t *b)
{
    cluster_t *c = b->cluster;
    cluster_sess_t *cs = xcalloc(1, sizeof(*cs));
    cs->c = c;
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->cond, NULL);
    snprintf(cs->prefix, sizeof(cs->prefix), "$KV.%s.", BUCKET);
    cs->max_payload = natsConnection_GetMaxPayload(c->nc);
    b->cluster_sess = cs;
    natsStatus s = js_KeyValue(&cs->kv, c->js, BUCKET);
    if (s == NATS_NOT_FOUND) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = BUCKET;
        kc.History = 1;
        kc.Replicas = b->cfg.cluster_replicas ? b->cfg.cluster_replicas : 1;
        s = js_CreateKeyValue(&cs->kv, c->js, &kc);
        if (s != NATS_OK) /* another node created it first */
            s = js_KeyValue(&cs->kv, c->js, BUCKET);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = cs;
    if (s == NATS_OK)
        s = natsConnection_JetStream(&cs->js_pub, c->nc, &jo);
    if (s != NATS_OK) {
        log_printf(TLOG_ERR, "Error: %s: cluster_sessions jetstream: key-value bucket %s: %s.",
                   b->cfg.cluster_sessions_where, BUCKET, natsStatus_GetText(s));
        return -1;
    }
    if (pthread_create(&cs->thread, NULL, drain_main, cs) != 0) {
        log_printf(TLOG_ERR, "Error: cluster_sessions jetstream: cannot start a thread.");
        return -1;
    }
    cs->started = true;
    return 0;
}

void cluster_sess_stop(broker_t *b)
{
    cluster_sess_t *cs = b->cluster_sess;
    if (!cs || !cs->started)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stop = true;
    pthread_cond_signal(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
    pthread_join(cs->thread, NULL);
    cs->started = false;
}

void cluster_sess_free(broker_t *b)
{
    cluster_sess_t *cs = b->cluster_sess;
    if (!cs)
        return;
    cluster_sess_stop(b);
    kvStore_Destroy(cs->kv);
    jsCtx_Destroy(cs->js_pub);
    pthread_mutex_destroy(&cs->lock);
    pthread_cond_destroy(&cs->cond);
    free(cs->seen);
    free(cs);
    b->cluster_sess = NULL;
}
