/* cluster_js.c -- `cluster_durability jetstream`: QoS 1/2 messages for other cluster nodes go
 * through a replicated JetStream stream, and the publisher's PUBACK/PUBREC waits for JetStream.
 *
 * Design. One stream, tombo_msgs, subjects tombo.d.NODE, work-queue retention, replicas
 * cluster_kv_replicas (created by the first node that starts). A QoS 1/2 PUBLISH that matches other
 * nodes' filters is published asynchronously (js_PublishMsgAsync, never waiting) once per matching
 * node on tombo.d.NODE, in the forwarding encoding of cluster.c, instead of core NATS. Each node
 * consumes its own subject through a durable push consumer, tombo_NODE, and acknowledges a message
 * to JetStream once it has been routed to its local sessions and, with persistence, once the store
 * has committed what that wrote (cluster_js_delivered, cluster_js_committed from
 * worker_release_holds, woken by the store as held output is); a node that is
 * down finds its messages waiting when it comes back, a message whose acknowledgement was lost is
 * delivered again (at least once).
 *
 * The publisher's acknowledgement. Every JetStream publish carries a header Tombo-Ack: W.SEQ (the
 * publishing worker and a sequence number of that worker). nats.c's reply thread calls ack_handler
 * for each answer (success, an error, or a timeout after ACK_WAIT_MS, nats.c's MaxWait), which posts
 * it to worker W (CL_JS_ACK); W counts down the pending entry and, once every node's copy is
 * answered, sends the PUBACK/PUBREC the entry holds. Entries live in a per-worker vector in sequence
 * order; a connection's acknowledgements leave in the order its PUBLISHes came (an acknowledgement
 * that needs no JetStream queues behind an earlier one that does: conn.cluster_acks counts them).
 * A refusal (no stream leader: the NATS cluster lost its quorum; a JetStream error; a timeout; the
 * send itself failing) answers MQTT 5 with reason 0x80 (unspecified error: the server does not
 * accept the publish) and closes a 3.1.1 connection without an acknowledgement, as Mosquitto does
 * with a message it cannot take; a QoS 2 id is then forgotten, so the client's resend is taken as
 * new. The workers never wait for NATS: js_PublishMsgAsync only buffers (MaxPending is unlimited,
 * so it never stalls) and nats.c's flusher writes. */
#include "broker/cluster_js.h"

#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/inbox.h"
#include "broker/session.h"
#include "broker/store.h"
#include "broker/worker.h"
#include "mqtt/packet.h"

#define STREAM "tombo_msgs"
#define ACK_HEADER "Tombo-Ack"
#define ACK_WAIT_MS 5000      /* a JetStream publish not answered by then is refused */
#define MAX_PENDING 65536     /* per worker: beyond, new durable publishes are refused at once */

/* A publisher's acknowledgement waiting for JetStream, or an unclaimed publish (a will, a bridge's
 * or plugin's message: nobody to answer, fd -1). */
typedef struct pend {
    uint64_t seq;
    uint64_t conn_id;
    int fd;            /* -1: not claimed by a connection */
    uint32_t waiting;  /* JetStream answers still to come */
    uint16_t id;       /* packet id */
    uint8_t type;      /* MQTT_PUBACK or MQTT_PUBREC */
    uint8_t reason;    /* what to answer on success */
    uint8_t failed;    /* a copy was refused */
    uint8_t gone;      /* answered (or its connection is gone): drop at the next compaction */
} pend_t;

/* Per worker, touched by that worker only. */
typedef struct jworker {
    pend_t *v;
    size_t n, cap;
    uint64_t next_seq;
    size_t cur;        /* index+1 of the entry of the message being forwarded; 0: none */
    /* Messages from the stream routed here, acknowledged to JetStream once the store committed
     * up to `need` (in order: a worker's store sequences only grow). */
    struct after_commit { natsMsg *m; uint64_t need; } *ac;
    size_t ac_head, ac_n, ac_cap;
} jworker_t;

struct cluster_js {
    broker_t *b;
    const char *node;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    jworker_t *jw; /* [b->n_workers] */
    atomic_ulong sent, acked, refused, received;
    atomic_llong last_warn_ms;
};

/* ---- nats.c's reply thread ---- */

static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    cluster_js_t *j = closure;
    const char *tok = NULL;
    unsigned w = 0;
    unsigned long long seq = 0;
    if (natsMsgHeader_Get(msg, ACK_HEADER, &tok) == NATS_OK && tok && sscanf(tok, "%u.%llu", &w, &seq) == 2 &&
        w < (unsigned)j->b->n_workers) {
        bool ok = pa != NULL && pae == NULL;
        if (!ok) {
            long long now = (long long)now_ms(), last = atomic_load(&j->last_warn_ms);
            if (now - last >= 5000 && atomic_compare_exchange_strong(&j->last_warn_ms, &last, now))
                log_printf(TLOG_WARNING, "Warning: cluster: JetStream did not take a message for another node "
                                         "(%s): its publisher is refused.",
                           pae && pae->ErrText ? pae->ErrText : "no answer");
        }
        inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_JS_ACK, .data = (void *)(uintptr_t)seq,
                           .reply_fd = ok};
        worker_post(&j->b->workers[w], &it);
    }
    natsMsg_Destroy(msg);
}

/* ---- lifetime ---- */

int cluster_js_init(broker_t *b, natsConnection *nc, const char *node)
{
    const struct tombo_config *cfg = &b->cfg;
    cluster_js_t *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->node = node;
    j->nc = nc;
    j->jw = xcalloc((size_t)b->n_workers, sizeof(*j->jw));
    b->cluster_js = j;
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.AckHandler = ack_handler;
    o.PublishAsync.AckHandlerClosure = j;
    o.PublishAsync.MaxPending = 0; /* unlimited: js_PublishMsgAsync never stalls a worker */
    natsStatus s = natsConnection_JetStream(&j->js, nc, &o);
    const char *what = "JetStream";
    if (s == NATS_OK) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = STREAM;
        const char *subjects[] = {"tombo.d.*"};
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Retention = js_WorkQueuePolicy; /* a message leaves once its node acknowledged it */
        sc.Storage = js_FileStorage;
        sc.Replicas = cfg->cluster_replicas ? cfg->cluster_replicas : 1;
        jsErrCode jerr = 0;
        s = js_AddStream(NULL, j->js, &sc, NULL, &jerr);
        if (s != NATS_OK) { /* there already (another node made it): use it as it is */
            jsStreamInfo *si = NULL;
            s = js_GetStreamInfo(&si, j->js, STREAM, NULL, NULL);
            jsStreamInfo_Destroy(si);
        }
        what = "stream " STREAM " (is JetStream enabled?)";
    }
    if (s != NATS_OK) {
        log_printf(TLOG_ERR, "Error: %s: cluster: %s: %s.", cfg->cluster_where, what, natsStatus_GetText(s));
        return -1;
    }
    log_printf(TLOG_NOTICE, "Cluster: QoS 1/2 messages to other nodes go through JetStream (%s).", STREAM);
    return 0;
}

int cluster_js_start(broker_t *b, cluster_js_handler handler, void *closure)
{
    cluster_js_t *j = b->cluster_js;
    char subj[80], durable[80];
    snprintf(subj, sizeof(subj), "tombo.d.%s", j->node);
    snprintf(durable, sizeof(durable), "tombo_%s", j->node);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.ManualAck = true;
    so.Config.Durable = durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = 65536;
    so.Config.AckWait = (int64_t)30 * 1000 * 1000 * 1000; /* ns: redelivered if not acknowledged by then */
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(&j->sub, j->js, subj, handler, closure, NULL, &so, &jerr);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(j->sub, 1 << 20, 256 << 20);
    if (s != NATS_OK) {
        log_printf(TLOG_ERR, "Error: %s: cluster: cannot consume %s through %s: %s.", b->cfg.cluster_where, subj,
                   durable, natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

void cluster_js_stop(broker_t *b)
{
    cluster_js_t *j = b->cluster_js;
    if (!j)
        return;
    /* The workers are done: messages still waiting for the store's commit are not acknowledged,
     * so JetStream delivers them again (the store's shutdown commits them: at least once). */
    for (int i = 0; i < b->n_workers; i++) {
        jworker_t *jw = &j->jw[i];
        while (jw->ac_head < jw->ac_n)
            natsMsg_Destroy(jw->ac[jw->ac_head++].m);
    }
    /* Destroy without Unsubscribe: Unsubscribe would delete the durable consumer, and with it what
     * waits for this node. */
    natsSubscription_Destroy(j->sub);
    j->sub = NULL;
    /* Publishes JetStream has not answered yet: nats.c frees each with its answer and none at
     * destroy (LeakSanitizer: one of our messages with its Tombo-Ack header, stopped mid-publish).
     * Half a second for the answers, then the rest is taken back and freed; their publishers went
     * with the workers, and JetStream may still have stored them (at least once, as ever). */
    if (atomic_load_explicit(&j->sent, memory_order_relaxed) > 0) { /* nats.c 3.4's list call
                                                                        * crashes before any publish */
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 500;
        if (natsConnection_Status(j->nc) == NATS_CONN_STATUS_CONNECTED)
            js_PublishAsyncComplete(j->js, &po);
        natsMsgList pend = {0};
        if (js_PublishAsyncGetPendingList(&pend, j->js) == NATS_OK)
            natsMsgList_Destroy(&pend);
    }
    jsCtx_Destroy(j->js);
    j->js = NULL;
}

void cluster_js_free(broker_t *b)
{
    cluster_js_t *j = b->cluster_js;
    if (!j)
        return;
    for (int i = 0; i < b->n_workers; i++) {
        free(j->jw[i].ac);
        free(j->jw[i].v);
    }
    free(j->jw);
    free(j);
    b->cluster_js = NULL;
}

/* ---- the publishing worker ---- */

void cluster_js_publish_begin(cluster_js_t *j, worker_t *w)
{
    j->jw[w->index].cur = 0;
}

static pend_t *pend_new(jworker_t *jw)
{
    if (jw->n == jw->cap) {
        jw->cap = jw->cap ? jw->cap * 2 : 64;
        jw->v = xrealloc(jw->v, jw->cap * sizeof(*jw->v));
    }
    pend_t *p = &jw->v[jw->n++];
    memset(p, 0, sizeof(*p));
    p->seq = ++jw->next_seq;
    p->fd = -1;
    return p;
}

bool cluster_js_send(cluster_js_t *j, worker_t *w, const char *node, const void *data, size_t len)
{
    jworker_t *jw = &j->jw[w->index];
    pend_t *p;
    if (!jw->cur) {
        if (jw->n >= MAX_PENDING) { /* JetStream is far behind: refuse rather than pile up */
            p = pend_new(jw);
            p->failed = 1;
            jw->cur = jw->n;
            return false;
        }
        pend_new(jw);
        jw->cur = jw->n;
    }
    p = &jw->v[jw->cur - 1];
    if (p->failed)
        return false;
    char subj[80], tok[48];
    snprintf(subj, sizeof(subj), "tombo.d.%s", node);
    snprintf(tok, sizeof(tok), "%d.%llu", w->index, (unsigned long long)p->seq);
    natsMsg *nm = NULL;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = ACK_WAIT_MS;
    natsStatus s = natsMsg_Create(&nm, subj, NULL, data, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(nm, ACK_HEADER, tok);
    if (s == NATS_OK)
        s = js_PublishMsgAsync(j->js, &nm, &po);
    natsMsg_Destroy(nm); /* NULL once nats.c took it */
    if (s != NATS_OK) {
        p->failed = 1;
        return false;
    }
    p->waiting++;
    atomic_fetch_add_explicit(&j->sent, 1, memory_order_relaxed);
    return true;
}

/* ---- acknowledgements to the publisher ---- */

/* The acknowledgement of p to its connection c (answered or refused). */
static void answer(cluster_js_t *j, conn_t *c, const pend_t *p)
{
    if (c->state == CONN_CLOSED)
        return;
    uint8_t reason = p->reason;
    if (p->failed) {
        atomic_fetch_add_explicit(&j->refused, 1, memory_order_relaxed);
        if (p->type == MQTT_PUBREC && c->session)
            session_qos2_end(c->session, p->id); /* not taken: a resend is a new message */
        if (c->version != MQTT_V5) {
            /* 3.1.1 has no negative acknowledgement: without one the client resends on reconnect. */
            conn_fail(c, MQTT_RC_UNSPECIFIED, "JetStream did not take a message for another node");
            return;
        }
        if (reason < 0x80)
            reason = MQTT_RC_UNSPECIFIED;
    }
    mqtt_packet_t a;
    memset(&a, 0, sizeof(a));
    a.type = p->type;
    a.id = p->id;
    a.reason = reason;
    conn_hold_durable(c); /* with persistence, also after the local commit */
    conn_send(c, &a);
}

/* Send connection (fd, id)'s acknowledgements that are ready, in order, up to its first one still
 * waiting; then drop the answered entries. */
static void release(cluster_js_t *j, worker_t *w, int fd, uint64_t conn_id)
{
    jworker_t *jw = &j->jw[w->index];
    conn_t *c = fd >= 0 ? conn_lookup(w, fd, conn_id) : NULL;
    bool blocked = false;
    for (size_t i = 0; fd >= 0 && i < jw->n; i++) {
        pend_t *p = &jw->v[i];
        if (p->gone || p->fd != fd || p->conn_id != conn_id)
            continue;
        if (c && p->waiting && !p->failed)
            blocked = true; /* waits for JetStream: the later ones wait for it */
        if (blocked)
            continue;
        if (c && c->state != CONN_CLOSED)
            answer(j, c, p);
        p->gone = 1;
        if (c && c->cluster_acks)
            c->cluster_acks--;
    }
    size_t k = 0;
    for (size_t i = 0; i < jw->n; i++) {
        pend_t *p = &jw->v[i];
        if (p->gone || (p->fd < 0 && (p->waiting == 0 || p->failed) && i + 1 != jw->cur))
            continue; /* answered, or an unclaimed publish JetStream is done with */
        if (jw->cur == i + 1)
            jw->cur = k + 1;
        jw->v[k++] = *p;
    }
    jw->n = k;
}

bool cluster_js_take_ack(cluster_js_t *j, conn_t *c, bool routed, uint8_t type, uint16_t id, uint8_t reason)
{
    worker_t *w = c->w;
    jworker_t *jw = &j->jw[w->index];
    pend_t *p;
    if (routed && jw->cur) {
        p = &jw->v[jw->cur - 1];
        jw->cur = 0;
    } else if (c->cluster_acks) {
        p = pend_new(jw); /* nothing to wait for, but an earlier one of c does */
    } else {
        return false;
    }
    p->fd = c->fd;
    p->conn_id = c->id;
    p->type = type;
    p->id = id;
    p->reason = reason;
    c->cluster_acks++;
    if (!p->waiting || p->failed)
        release(j, w, c->fd, c->id);
    return true;
}

void cluster_js_on_item(worker_t *w, inbox_item_t *it)
{
    cluster_js_t *j = w->b->cluster_js;
    if (!j || it->rc != CL_JS_ACK)
        return;
    jworker_t *jw = &j->jw[w->index];
    uint64_t seq = (uint64_t)(uintptr_t)it->data;
    size_t lo = 0, hi = jw->n; /* the vector is in sequence order */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (jw->v[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == jw->n || jw->v[lo].seq != seq)
        return; /* its connection is gone, or refused already */
    pend_t *p = &jw->v[lo];
    if (p->waiting)
        p->waiting--;
    if (it->reply_fd)
        atomic_fetch_add_explicit(&j->acked, 1, memory_order_relaxed);
    else
        p->failed = 1;
    if (p->waiting && !p->failed)
        return;
    if (p->fd >= 0)
        release(j, w, p->fd, p->conn_id);
    else if (jw->cur != lo + 1)
        release(j, w, -1, 0); /* an unclaimed publish is done: compact */
}

/* ---- the receiving worker ---- */

void cluster_js_delivered(cluster_js_t *j, worker_t *w, natsMsg *nm)
{
    if (!j || !natsMsg_GetReply(nm)) { /* core NATS: nothing to acknowledge */
        natsMsg_Destroy(nm);
        return;
    }
    atomic_fetch_add_explicit(&j->received, 1, memory_order_relaxed);
    store_t *st = w->b->store;
    uint64_t need = st ? store_need(st) : 0;
    jworker_t *jw = &j->jw[w->index];
    if (!need && jw->ac_n == jw->ac_head) {
        natsMsg_Ack(nm, NULL); /* a publish on the connection: buffered, never waits */
        natsMsg_Destroy(nm);
        return;
    }
    if (jw->ac_head && jw->ac_head == jw->ac_n)
        jw->ac_head = jw->ac_n = 0;
    if (jw->ac_n == jw->ac_cap) {
        if (jw->ac_head) { /* slide the live ones down before growing */
            memmove(jw->ac, jw->ac + jw->ac_head, (jw->ac_n - jw->ac_head) * sizeof(*jw->ac));
            jw->ac_n -= jw->ac_head;
            jw->ac_head = 0;
        }
        if (jw->ac_n == jw->ac_cap) {
            jw->ac_cap = jw->ac_cap ? jw->ac_cap * 2 : 64;
            jw->ac = xrealloc(jw->ac, jw->ac_cap * sizeof(*jw->ac));
        }
    }
    /* need 0 behind waiting ones: the order of acknowledgements does not matter to JetStream, but
     * keeping one queue keeps this simple; it goes with the one before it. */
    uint64_t prev = jw->ac_n > jw->ac_head ? jw->ac[jw->ac_n - 1].need : 0;
    jw->ac[jw->ac_n++] = (struct after_commit){nm, need > prev ? need : prev};
}

bool cluster_js_commit_pending(cluster_js_t *j, worker_t *w)
{
    const jworker_t *jw = &j->jw[w->index];
    return jw->ac_n > jw->ac_head;
}

uint64_t cluster_js_committed(cluster_js_t *j, worker_t *w, uint64_t committed)
{
    jworker_t *jw = &j->jw[w->index];
    while (jw->ac_head < jw->ac_n && jw->ac[jw->ac_head].need <= committed) {
        natsMsg *nm = jw->ac[jw->ac_head++].m;
        natsMsg_Ack(nm, NULL);
        natsMsg_Destroy(nm);
    }
    return jw->ac_head < jw->ac_n ? jw->ac[jw->ac_head].need : 0;
}

void cluster_js_stats(cluster_js_t *j, cluster_js_stats_t *out)
{
    out->sent = atomic_load_explicit(&j->sent, memory_order_relaxed);
    out->acked = atomic_load_explicit(&j->acked, memory_order_relaxed);
    out->refused = atomic_load_explicit(&j->refused, memory_order_relaxed);
    out->received = atomic_load_explicit(&j->received, memory_order_relaxed);
}
