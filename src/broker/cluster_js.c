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
 * so it never stalls) and nats.c's flusher writes.
 *
 * Redeliveries (issue 11, "no QoS 2 duplicate"). A message this node routed and stored, but whose
 * acknowledgement JetStream did not get (the node killed in between, or the acknowledgement lost
 * with a NATS link), is delivered again: routed again, a persistent QoS 2 session would get it
 * twice. JetStream says which deliveries are again (the delivery count in the reply subject, read
 * without nats.c's allocating natsMsg_GetMetaData), and only those are checked, against the
 * message's cluster identity (origin, sequence: cluster.c). The evidence is ranges: the messages
 * of one publishing worker (one origin, one top-16-bit worker index) reach this node's stream in
 * the order of their sequences, and this node's consumer gives their first deliveries in that
 * order, all to one worker (their source node's), which routes them in order. So per (origin,
 * worker) a run of this node keeps one range lo..hi of the sequences it routed as first deliveries:
 * every message of that publisher between lo and hi was routed (earlier runs' deliveries all have
 * lower sequences; nats.c drops nothing: the subscription has no byte limit and at most
 * MaxAckPending messages are out). A redelivery is a duplicate when its sequence is in the range of
 * this run, in a range of an earlier run (read back from the store), or is a redelivery this run
 * routed already (a small window, dedup.c); a duplicate is not routed, only acknowledged, after
 * this worker's pending store commits as a routed one is. With persistence, a first delivery
 * whose routing wrote to the store also writes its range (store_js_seen: row (origin, lo) -> hi,
 * coalesced to one row write per batch) in the same store group, so after kill -9 a range says
 * exactly what the store kept. Earlier runs' rows are deleted SEEN_KEEP_MS into a run, when every
 * message they cover is long acknowledged or redelivered. The first delivery costs a scan of the
 * reply subject, a lookup in a short per-worker vector and, when it was stored, one journal record;
 * nothing is allocated per message. */
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
#include "broker/dedup.h"
#include "broker/inbox.h"
#include "broker/msg.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/store.h"
#include "broker/worker.h"
#include "mqtt/packet.h"

#define STREAM "tombo_msgs"
#define ACK_HEADER "Tombo-Ack"
#define ACK_WAIT_MS 5000      /* a JetStream publish not answered by then is refused */
#define MAX_PENDING 65536     /* per worker: beyond, new durable publishes are refused at once */
#define MAX_ACK_PENDING 65536 /* the consumer's: stream messages out to this node, not yet acknowledged */
#define SEEN_KEEP_MS (10 * 60 * 1000) /* earlier runs' ranges are forgotten this long into a run */
#define SEEN_MAX 1024         /* ranges per worker in a run (publisher runs x workers); then the stalest goes */

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

/* The stream messages of one publishing worker (origin, and the top 16 bits of the sequences)
 * routed here with sequences lo..hi, as first deliveries of one run of this node. */
typedef struct seen {
    uint64_t origin, lo, hi;
    int64_t at; /* last grown (ms): the stalest goes past SEEN_MAX */
} seen_t;

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
    seen_t *seen;    /* this run's ranges of the sources this worker serves */
    size_t n_seen, cap_seen, last_seen;
    dedup_t *redone; /* redeliveries this run routed (NULL until the first) */
} jworker_t;

struct cluster_js {
    broker_t *b;
    const char *node;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    jworker_t *jw; /* [b->n_workers] */
    seen_t *loaded; /* earlier runs' ranges, sorted by (origin, lo); read-only once the workers run */
    size_t n_loaded, cap_loaded;
    int64_t started; /* ms */
    atomic_bool unseen; /* the loaded ranges' rows are deleted */
    atomic_ulong sent, acked, refused, received, duplicates;
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

static void add_loaded(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi)
{
    cluster_js_t *j = ctx;
    if (j->n_loaded == j->cap_loaded) {
        j->cap_loaded = j->cap_loaded ? j->cap_loaded * 2 : 16;
        j->loaded = xrealloc(j->loaded, j->cap_loaded * sizeof(*j->loaded));
    }
    j->loaded[j->n_loaded++] = (seen_t){.origin = origin, .lo = lo, .hi = hi};
}

static int seen_cmp(const void *x, const void *y)
{
    const seen_t *a = x, *b = y;
    if (a->origin != b->origin)
        return a->origin < b->origin ? -1 : 1;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

int cluster_js_recovered(broker_t *b)
{
    cluster_js_t *j = b->cluster_js;
    if (!j || !b->store)
        return 0;
    if (store_js_seen_load(b->store, add_loaded, j) != 0) {
        log_printf(TLOG_ERR, "Error: %s: cluster: cannot read js_seen (the stream messages routed before) from the "
                             "persistence database.", b->cfg.cluster_where);
        return -1;
    }
    if (j->n_loaded)
        qsort(j->loaded, j->n_loaded, sizeof(*j->loaded), seen_cmp);
    return 0;
}

int cluster_js_init(broker_t *b, natsConnection *nc, const char *node)
{
    const struct tombo_config *cfg = &b->cfg;
    cluster_js_t *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->node = node;
    j->nc = nc;
    j->jw = xcalloc((size_t)b->n_workers, sizeof(*j->jw));
    b->cluster_js = j;
    j->started = now_ms();
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
    so.Config.MaxAckPending = MAX_ACK_PENDING;
    so.Config.AckWait = (int64_t)30 * 1000 * 1000 * 1000; /* ns: redelivered if not acknowledged by then */
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(&j->sub, j->js, subj, handler, closure, NULL, &so, &jerr);
    /* nats.c must never drop a delivery (a range above assumes each first delivery reaches its
     * worker): no byte limit, and room for every unacknowledged message (MaxAckPending) twice, a
     * first delivery and a delivery again of each; on_forward only posts them to a worker. */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(j->sub, 2 * MAX_ACK_PENDING, -1);
    if (s != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        log_printf(TLOG_ERR, "Error: %s: cluster: cannot consume %s through %s: %s.", b->cfg.cluster_where, subj,
                   durable, why && *why ? why : natsStatus_GetText(s));
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
        free(j->jw[i].seen);
        dedup_free(j->jw[i].redone);
    }
    free(j->jw);
    free(j->loaded);
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

/* How many times JetStream delivered the message whose acknowledgement subject is `reply`:
 * $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or the
 * newer $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>...[.<token>] (as nats.c parses
 * them). 0: not such a subject. */
static uint64_t num_delivered(const char *reply)
{
    if (strncmp(reply, "$JS.ACK.", 8) != 0)
        return 0;
    const char *tok[12];
    size_t nt = 0;
    tok[nt++] = reply + 8;
    for (const char *p = reply + 8; *p; p++)
        if (*p == '.') {
            if (nt == sizeof(tok) / sizeof(tok[0]))
                return 0;
            tok[nt++] = p + 1;
        }
    const char *d = nt == 7 ? tok[2] : nt >= 9 ? tok[4] : NULL;
    uint64_t n = 0;
    for (; d && *d >= '0' && *d <= '9'; d++)
        n = n * 10 + (uint64_t)(*d - '0');
    return d && (*d == '.' || !*d) ? n : 0;
}

/* This run's range of the publishing worker of (origin, seq), NULL: none yet. */
static seen_t *seen_find(jworker_t *jw, uint64_t origin, uint64_t seq)
{
    if (jw->last_seen < jw->n_seen) {
        seen_t *e = &jw->seen[jw->last_seen];
        if (e->origin == origin && e->lo >> 48 == seq >> 48)
            return e;
    }
    for (size_t i = 0; i < jw->n_seen; i++)
        if (jw->seen[i].origin == origin && jw->seen[i].lo >> 48 == seq >> 48) {
            jw->last_seen = i;
            return &jw->seen[i];
        }
    return NULL;
}

static seen_t *seen_new(jworker_t *jw, uint64_t origin, uint64_t seq, int64_t now)
{
    size_t i = jw->n_seen;
    if (i == SEEN_MAX) { /* the stalest goes: its messages' redeliveries came long ago */
        i = 0;
        for (size_t k = 1; k < jw->n_seen; k++)
            if (jw->seen[k].at < jw->seen[i].at)
                i = k;
    } else {
        if (jw->n_seen == jw->cap_seen) {
            jw->cap_seen = jw->cap_seen ? jw->cap_seen * 2 : 8;
            jw->seen = xrealloc(jw->seen, jw->cap_seen * sizeof(*jw->seen));
        }
        jw->n_seen++;
    }
    jw->seen[i] = (seen_t){.origin = origin, .lo = seq, .hi = seq, .at = now};
    jw->last_seen = i;
    return &jw->seen[i];
}

/* Whether an earlier run routed (origin, seq): the loaded range with the greatest (origin, lo) not
 * above it covers it (one publishing worker's ranges never overlap). */
static bool loaded_has(const cluster_js_t *j, uint64_t origin, uint64_t seq)
{
    size_t lo = 0, hi = j->n_loaded;
    while (lo < hi) { /* the first range above (origin, seq) */
        size_t mid = (lo + hi) / 2;
        const seen_t *e = &j->loaded[mid];
        if (e->origin < origin || (e->origin == origin && e->lo <= seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return false;
    const seen_t *e = &j->loaded[lo - 1];
    return e->origin == origin && e->lo <= seq && seq <= e->hi;
}

void cluster_js_route(cluster_js_t *j, worker_t *w, natsMsg *nm, msg_t *m)
{
    jworker_t *jw = &j->jw[w->index];
    store_t *st = w->b->store;
    uint64_t origin = m->cluster_origin, seq = m->cluster_seq;
    uint64_t nd = seq ? num_delivered(natsMsg_GetReply(nm)) : 0;
    if (!nd) { /* an older node's message (no identity), or not JetStream's subject: at least once */
        route_publish_give(w, m, NULL, NULL);
        cluster_js_delivered(j, w, nm);
        return;
    }
    seen_t *e = seen_find(jw, origin, seq);
    if (nd > 1) {
        if (!jw->redone)
            jw->redone = dedup_new(w->now);
        if ((e && e->lo <= seq && seq <= e->hi) || loaded_has(j, origin, seq) ||
            dedup_seen(jw->redone, origin, seq)) {
            atomic_fetch_add_explicit(&j->duplicates, 1, memory_order_relaxed);
            msg_release(m);
            cluster_js_delivered(j, w, nm); /* acknowledged once what routed it first is committed */
            return;
        }
    }
    uint64_t before = st ? store_last(st) : 0;
    store_group_begin(st); /* what routing stores and the range that says so: both or neither */
    route_publish_give(w, m, NULL, NULL);
    if (nd == 1) {
        if (!e)
            e = seen_new(jw, origin, seq, w->now);
        if (seq > e->hi)
            e->hi = seq;
        e->at = w->now;
    }
    if (st && store_last(st) != before) {
        if (nd == 1)
            store_js_seen(st, origin, e->lo, e->hi);
        else
            store_js_seen(st, origin, seq, seq); /* a redelivery an earlier run had not routed */
    }
    store_group_end(st);
    if (st && !atomic_load_explicit(&j->unseen, memory_order_relaxed) && w->now - j->started > SEEN_KEEP_MS &&
        !atomic_exchange(&j->unseen, true))
        for (size_t i = 0; i < j->n_loaded; i++) /* the memory stays (read by other workers) */
            store_js_unsee(st, j->loaded[i].origin, j->loaded[i].lo);
    cluster_js_delivered(j, w, nm);
}

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
    out->duplicates = atomic_load_explicit(&j->duplicates, memory_order_relaxed);
}
