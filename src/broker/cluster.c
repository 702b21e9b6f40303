/* cluster.c -- a tombo cluster on NATS JetStream: routes, forwarded PUBLISHes, retained messages and
 * client ids shared by every node (user guide: docs/cluster.md).
 *
 * Design. Three JetStream key-value buckets hold what the nodes share, and core NATS carries the
 * messages:
 *   - tombo_routes: key NODE.B64(FILTER) for each filter NODE has subscribers for, and NODE alone
 *     (its presence). Each node writes its own keys (subtree_observe tells it when a filter gets its
 *     first subscription or loses its last) and watches the bucket into `remote`, a subscription
 *     tree (subtree.c) whose owners are nodes: one match gives each node with a matching filter
 *     once.
 *   - tombo_retain: key B64(TOPIC), value a forwarded-message encoding (below). The node where a
 *     retained PUBLISH arrives writes it (deletes the key for an empty payload); every node,
 *     itself included, applies the bucket's changes in the bucket's order to its own retained
 *     store, so they all converge on the bucket's last value.
 *   - tombo_clients: key B64(CLIENT ID), value the node it last connected to. A node that sees
 *     another node take a client id it has connected disconnects it (0x8E on MQTT 5).
 * B64 is base64url (padded): every topic, filter and client id becomes a valid key.
 *
 * A PUBLISH on this node (route.c) is matched against `remote` and sent once per matching node on
 * core NATS, subject tombo.n.NODE, as [1: version][4: message expiry left, s, 0: none][1: n]
 * [n: source node][a v5 PUBLISH, packet id 1]: the v5 encoding is the message's shared one
 * (msg_encoded), made once. nats.c buffers what is published and its flusher thread writes it, so
 * the sends of a loop turn go out together. The receiving node delivers it as a local publish
 * (msg->from_cluster): never forwarded again, so no loop.
 *
 * Threads: nats.c calls back on threads of its own, which never touch a worker's state: each
 * message or bucket change is posted to a worker's inbox (INBOX_CLUSTER), messages from one source
 * node always to the same worker, so their order holds. Bucket writes (blocking request-replies)
 * run on one writer thread fed by a queue; each bucket has a watcher thread.
 *
 * With cluster_durability jetstream, QoS 1/2 messages go to the other nodes through a JetStream
 * stream instead of core NATS, and their publishers' acknowledgements wait for it: cluster_js.c. */
#include "broker/cluster.h"
#include "broker/cluster_js.h"

#include <nats/nats.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/inbox.h"
#include "broker/msg.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/subtree.h"
#include "broker/worker.h"
#include "mqtt/packet.h"
#include "pwhash/pwhash.h"

#define WIRE_VERSION 1
#define KEY_MAX 3000 /* NATS's control line is 4096 bytes: longer keys are not replicated */

enum { CL_PUBLISH, CL_RETAIN, CL_KICK }; /* inbox_item.rc of an INBOX_CLUSTER item */
enum { B_ROUTES, B_RETAIN, B_CLIENTS, N_BUCKETS };
static const char *const bucket_name[N_BUCKETS] = {"tombo_routes", "tombo_retain", "tombo_clients"};

/* A node known from the routes bucket. Never freed before cluster_stop: `remote` points to it. */
typedef struct cnode {
    struct cnode *next;
    char name[65];
    char subject[80];  /* tombo.n.NAME */
    uint8_t present;   /* its presence key is in the bucket (under nodes_lock) */
    atomic_uchar durable; /* its presence value is "j": it consumes the stream (cluster_js.c) */
} cnode_t;

/* A bucket write for the writer thread. */
typedef struct kvop {
    struct kvop *next;
    int bucket;
    int del;
    char *key;
    uint8_t *val;
    int len;
    session_t *session; /* tombo_clients: one reference, for the revision of our write */
} kvop_t;

typedef struct watch {
    cluster_t *c;
    int bucket;
    kvWatcher *w;
    pthread_t thread;
    bool started;
} watch_t;

/* Per worker, touched by that worker only. */
typedef struct cworker {
    sub_result_t res;
    uint8_t *buf;
    size_t cap;
} cworker_t;

struct cluster {
    broker_t *b;
    const char *node; /* b->cfg.cluster_node */
    size_t node_len;
    natsOptions *opts;
    bool tls; /* TLS to NATS: see cluster_free */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv[N_BUCKETS];
    natsSubscription *sub;
    subtree_t *remote;
    cworker_t *cw; /* [b->n_workers] */

    pthread_mutex_t nodes_lock; /* the list itself; names are immutable once linked */
    cnode_t *nodes;

    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    kvop_t *q_head, *q_tail;
    bool q_stop;
    pthread_t writer;
    bool writer_started;
    watch_t watch[N_BUCKETS];

    atomic_int link_up;
    atomic_int stopping; /* cluster_stop has begun: losing NATS is expected */
    atomic_ulong fwd_sent, fwd_received, fwd_bytes_sent, fwd_bytes_received, kv_errors;
};

/* ---- keys: base64url (RFC 4648 section 5), padded: valid NATS key characters ---- */

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    int len = pwhash_b64_encode(in, n, out, 4 * ((n + 2) / 3) + 1);
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

/* Decode s[0..n) into out (at least n bytes); returns the length, or -1 when s is not base64url. */
static long b64_decode(const char *s, size_t n, uint8_t *out)
{
    char *t = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i] == '+' || s[i] == '/' ? '!' : s[i];
    int r = pwhash_b64_decode(t, n, out, n);
    free(t);
    return r;
}

/* A malloc'ed key: PREFIX B64(data), or NULL when it would be too long for NATS. */
static char *key_of(const char *prefix, const uint8_t *data, size_t n)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl + 4 * ((n + 2) / 3) > KEY_MAX)
        return NULL;
    char *k = xmalloc(pl + 4 * ((n + 2) / 3) + 1);
    if (pl)
        memcpy(k, prefix, pl);
    b64_encode(data, n, k + pl);
    return k;
}

/* ---- the writer thread ---- */

static void enqueue_op(cluster_t *c, int bucket, char *key, const uint8_t *val, int len, bool del, session_t *s)
{
    kvop_t *op = xcalloc(1, sizeof(*op));
    op->session = s;
    op->bucket = bucket;
    op->key = key;
    op->del = del;
    if (!del) {
        op->val = xmalloc(len ? (size_t)len : 1);
        if (len)
            memcpy(op->val, val, (size_t)len);
        op->len = len;
    }
    pthread_mutex_lock(&c->q_lock);
    if (c->q_tail)
        c->q_tail->next = op;
    else
        c->q_head = op;
    c->q_tail = op;
    pthread_cond_signal(&c->q_cond);
    pthread_mutex_unlock(&c->q_lock);
}

static void enqueue(cluster_t *c, int bucket, char *key, const uint8_t *val, int len, bool del)
{
    enqueue_op(c, bucket, key, val, len, del, NULL);
}

static void kick_if_older(cluster_t *c, session_t *s, uint64_t rev, const char *other);

/* Our write of a client id is in the bucket at revision rev (0: it failed): a write of another
 * node seen meanwhile with a later revision means the client went there after. */
static void client_written(cluster_t *c, session_t *s, uint64_t rev)
{
    uint64_t foreign = session_cluster_written(s, rev);
    if (foreign > rev)
        kick_if_older(c, s, foreign, "another node");
}

static void kvop_free(kvop_t *op)
{
    if (op->session)
        session_release(op->session);
    free(op->key);
    free(op->val);
    free(op);
}

/* Delete every key of this node in the routes bucket (a previous run's, or ours at the end). */
static void withdraw_routes(cluster_t *c)
{
    kvKeysList keys;
    memset(&keys, 0, sizeof(keys));
    if (kvStore_Keys(&keys, c->kv[B_ROUTES], NULL) != NATS_OK)
        return; /* an empty bucket answers NATS_NOT_FOUND */
    for (int i = 0; i < keys.Count; i++) {
        const char *k = keys.Keys[i];
        if (!strncmp(k, c->node, c->node_len) && (k[c->node_len] == '.' || !k[c->node_len]))
            kvStore_Delete(c->kv[B_ROUTES], k);
    }
    kvKeysList_Destroy(&keys);
}

static void *writer_main(void *arg)
{
    cluster_t *c = arg;
    withdraw_routes(c); /* a previous run's routes, before this run's announce anything */
    /* The presence value says whether this node reads its messages from the stream ("j",
     * cluster_durability jetstream): the others send it QoS 1/2 there, not on core NATS. */
    enqueue(c, B_ROUTES, xstrdup(c->node), (const uint8_t *)(c->b->cluster_js ? "j" : "1"), 1, false);
    for (;;) {
        pthread_mutex_lock(&c->q_lock);
        while (!c->q_head && !c->q_stop)
            pthread_cond_wait(&c->q_cond, &c->q_lock);
        kvop_t *op = c->q_head;
        if (!op) { /* stopping, and nothing left */
            pthread_mutex_unlock(&c->q_lock);
            break;
        }
        bool stop = c->q_stop;
        pthread_mutex_unlock(&c->q_lock);
        kvStore *kv = c->kv[op->bucket];
        uint64_t rev = 0;
        natsStatus s = op->del ? kvStore_Delete(kv, op->key) : kvStore_Put(&rev, kv, op->key, op->val, op->len);
        if (s != NATS_OK) {
            atomic_fetch_add(&c->kv_errors, 1);
            if (!stop) { /* NATS unreachable for now: the same write again in a while, in order */
                log_printf(TLOG_WARNING, "Warning: cluster: cannot write bucket %s: %s; retrying.",
                           bucket_name[op->bucket], natsStatus_GetText(s));
                usleep(500 * 1000);
                continue;
            }
        }
        pthread_mutex_lock(&c->q_lock);
        c->q_head = op->next;
        if (!c->q_head)
            c->q_tail = NULL;
        pthread_mutex_unlock(&c->q_lock);
        if (op->session)
            client_written(c, op->session, s == NATS_OK ? rev : 0);
        kvop_free(op);
    }
    withdraw_routes(c);
    return NULL;
}

/* subtree_observe, under the local tree's write lock: announce or withdraw a filter. */
static void filter_changed(void *ctx, const uint8_t *filter, size_t n, bool present)
{
    cluster_t *c = ctx;
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "%s.", c->node);
    char *key = key_of(prefix, filter, n);
    if (!key) {
        log_printf(TLOG_WARNING, "Warning: cluster: a filter of %zu bytes is too long to be announced to the "
                                 "other nodes; its subscribers get only this node's messages.", n);
        return;
    }
    enqueue(c, B_ROUTES, key, (const uint8_t *)"1", 1, !present);
}

/* ---- nodes ---- */

static cnode_t *node_get(cluster_t *c, const char *name, size_t n)
{
    pthread_mutex_lock(&c->nodes_lock);
    cnode_t *x = c->nodes;
    while (x && (strlen(x->name) != n || memcmp(x->name, name, n)))
        x = x->next;
    if (!x && n < sizeof(x->name)) {
        x = xcalloc(1, sizeof(*x));
        memcpy(x->name, name, n);
        snprintf(x->subject, sizeof(x->subject), "tombo.n.%s", x->name);
        x->next = c->nodes;
        c->nodes = x;
    }
    pthread_mutex_unlock(&c->nodes_lock);
    return x;
}

/* ---- forwarding ---- */

/* The wire form of m into cw->buf: see the design note. Returns its length. */
static size_t encode(cluster_t *c, cworker_t *cw, msg_t *m, int64_t now)
{
    const msg_enc_t *e = msg_encoded(m, MQTT_V5, m->qos, m->retain);
    size_t need = 6 + c->node_len + e->len;
    if (cw->cap < need) {
        cw->cap = need * 2;
        cw->buf = xrealloc(cw->buf, cw->cap);
    }
    uint8_t *p = cw->buf;
    uint32_t exp = m->has_expiry ? msg_expiry_left(m, now) : 0;
    p[0] = WIRE_VERSION;
    p[1] = (uint8_t)(exp >> 24);
    p[2] = (uint8_t)(exp >> 16);
    p[3] = (uint8_t)(exp >> 8);
    p[4] = (uint8_t)exp;
    p[5] = (uint8_t)c->node_len;
    memcpy(p + 6, c->node, c->node_len);
    uint8_t *pub = p + 6 + c->node_len;
    memcpy(pub, e->bytes, e->len);
    if (m->qos) { /* a packet id of 0 is malformed with QoS > 0 */
        pub[e->id_off] = 0;
        pub[e->id_off + 1] = 1;
    }
    return need;
}

size_t cluster_publish(cluster_t *c, worker_t *w, msg_t *m)
{
    if (c->b->cluster_js) /* before any return: this message's JetStream publishes start here */
        cluster_js_publish_begin(c->b->cluster_js, w);
    if (m->topic.len >= 4 && !memcmp(m->topic.p, "$SYS", 4))
        return 0; /* each node's own statistics and log */
    cworker_t *cw = &c->cw[w->index];
    sub_result_t *r = &cw->res;
    subtree_match(c->remote, m->topic.p, m->topic.len, NULL, r);
    if (!r->n && !m->retain)
        return 0;
    size_t len = encode(c, cw, m, w->now);
    if (m->retain) {
        char *key = key_of(NULL, m->topic.p, m->topic.len);
        if (key)
            enqueue(c, B_RETAIN, key, cw->buf, (int)len, m->payload.len == 0);
        else
            log_printf(TLOG_WARNING, "Warning: cluster: topic of %u bytes too long to be retained on the other "
                                     "nodes.", m->topic.len);
    }
    size_t sent = 0;
    for (size_t i = 0; i < r->n; i++) { /* one entry per node: its filters are merged by the match */
        cnode_t *x = r->v[i].owner;
        if (c->b->cluster_js && m->qos && atomic_load_explicit(&x->durable, memory_order_relaxed)) {
            /* cluster_durability jetstream, on both nodes: the publisher's ack waits for JetStream */
            if (cluster_js_send(c->b->cluster_js, w, x->name, cw->buf, len))
                sent++;
        } else if (natsConnection_Publish(c->nc, x->subject, cw->buf, (int)len) == NATS_OK) {
            sent++;
        }
    }
    if (sent) {
        atomic_fetch_add_explicit(&c->fwd_sent, sent, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->fwd_bytes_sent, sent * len, memory_order_relaxed);
    }
    return sent;
}

/* nats.c's subscription thread: a PUBLISH from another node, to the worker of its source node. */
static void on_forward(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cluster_t *c = closure;
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
    int n = natsMsg_GetDataLength(msg);
    if (n < 6 || d[0] != WIRE_VERSION || 6 + d[5] > n) {
        natsMsg_Destroy(msg);
        return;
    }
    broker_t *b = c->b;
    int wi = (int)(fnv1a32(d + 6, d[5]) % (uint32_t)b->n_workers);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_PUBLISH, .data = msg};
    worker_post(&b->workers[wi], &it);
}

/* Decode a wire form into a message (NULL when malformed). */
static msg_t *decode(const uint8_t *d, size_t n, int64_t now)
{
    if (n < 6 || d[0] != WIRE_VERSION || 6 + (size_t)d[5] > n)
        return NULL;
    uint32_t exp = (uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4];
    const uint8_t *pub = d + 6 + d[5];
    size_t pn = n - 6 - d[5];
    mqtt_header_t h;
    if (mqtt_header_parse(pub, pn, &h) != 1 || h.header_len + h.remaining != pn)
        return NULL;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    if (mqtt_decode(&h, pub + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS || p.type != MQTT_PUBLISH)
        return NULL;
    if (exp) {
        p.props.has |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
        p.props.message_expiry = exp;
    }
    msg_t *m = msg_new(p.publish.topic, p.publish.payload, p.publish.qos, p.publish.retain, &p.props, now);
    m->from_cluster = 1;
    return m;
}

/* ---- watchers ---- */

static void on_route(cluster_t *c, kvEntry *e)
{
    const char *k = kvEntry_Key(e);
    const char *dot = strchr(k, '.');
    size_t nl = dot ? (size_t)(dot - k) : strlen(k);
    if (nl == c->node_len && !memcmp(k, c->node, nl))
        return; /* our own */
    bool put = kvEntry_Operation(e) == kvOp_Put;
    cnode_t *x = node_get(c, k, nl);
    if (!x)
        return;
    if (!dot) {
        pthread_mutex_lock(&c->nodes_lock);
        x->present = put;
        atomic_store(&x->durable, put && kvEntry_ValueLen(e) == 1 && *(const char *)kvEntry_Value(e) == 'j');
        pthread_mutex_unlock(&c->nodes_lock);
        return;
    }
    size_t fl = strlen(dot + 1);
    uint8_t *f = xmalloc(fl + 1);
    long n = b64_decode(dot + 1, fl, f);
    if (n > 0) {
        if (put)
            subtree_add(c->remote, f, (size_t)n, x, 0, 0);
        else
            subtree_remove(c->remote, f, (size_t)n, x);
    }
    free(f);
}

/* A retained message or its removal: to worker 0, which owns no more of the store than any other
 * but keeps the bucket's order. */
static void on_retain(cluster_t *c, kvEntry *e)
{
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_RETAIN, .data = e};
    worker_post(&c->b->workers[0], &it);
}

/* Disconnect s's connection here unless our last write of its client id is later than rev (the
 * revision of another node's write). */
static void kick_if_older(cluster_t *c, session_t *s, uint64_t rev, const char *other)
{
    broker_t *b = c->b;
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_KICK};
    int w;
    if (session_cluster_kick_target(s, rev, b->n_workers, &w, &it.fd, &it.conn_id)) {
        log_printf(TLOG_NOTICE, "Client %.*s connected on cluster node %s: disconnecting it here.",
                   (int)s->client_id_len, s->client_id, other);
        worker_post(&b->workers[w], &it);
    }
}

static void on_client(cluster_t *c, kvEntry *e)
{
    if (kvEntry_Operation(e) != kvOp_Put)
        return;
    const char *v = kvEntry_ValueString(e);
    if (!v || !strcmp(v, c->node))
        return;
    const char *k = kvEntry_Key(e);
    size_t kl = strlen(k);
    uint8_t *id = xmalloc(kl + 1);
    long n = b64_decode(k, kl, id);
    session_t *s = n > 0 ? registry_find(c->b, (const char *)id, (size_t)n) : NULL;
    free(id);
    if (!s)
        return;
    uint64_t rev = kvEntry_Revision(e);
    if (session_cluster_foreign(s, rev))
        kick_if_older(c, s, rev, v);
    session_release(s);
}

static void *watch_main(void *arg)
{
    watch_t *wt = arg;
    cluster_t *c = wt->c;
    bool initial = true; /* the bucket's state at start, until a NULL entry */
    for (;;) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, wt->w, 1000);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK)
            break; /* kvWatcher_Stop */
        if (!e) {
            initial = false;
            continue;
        }
        if (wt->bucket == B_ROUTES) {
            on_route(c, e);
        } else if (wt->bucket == B_RETAIN) {
            on_retain(c, e);
            continue; /* the worker destroys it */
        } else if (!initial) { /* old owners of client ids kicked nobody here: we just started */
            on_client(c, e);
        }
        kvEntry_Destroy(e);
    }
    return NULL;
}

/* ---- worker side ---- */

void cluster_on_item(worker_t *w, inbox_item_t *it)
{
    cluster_t *c = w->b->cluster;
    if (it->rc >= CL_JS_ACK) {
        cluster_js_on_item(w, it);
    } else if (it->rc == CL_PUBLISH) {
        natsMsg *nm = it->data;
        int n = natsMsg_GetDataLength(nm);
        msg_t *m = decode((const uint8_t *)natsMsg_GetData(nm), (size_t)n, w->now);
        if (m) {
            atomic_fetch_add_explicit(&c->fwd_received, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->fwd_bytes_received, (unsigned long)n, memory_order_relaxed);
            route_publish_give(w, m, NULL, NULL);
        }
        cluster_js_delivered(w->b->cluster_js, w, nm); /* from the stream: acknowledged after the commit */
    } else if (it->rc == CL_RETAIN) {
        kvEntry *e = it->data;
        const char *k = kvEntry_Key(e);
        size_t kl = strlen(k);
        uint8_t *topic = xmalloc(kl + 1);
        long tn = b64_decode(k, kl, topic);
        if (tn > 0) {
            msg_t *m = NULL;
            if (kvEntry_Operation(e) == kvOp_Put)
                m = decode(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), w->now);
            if (!m || (m->topic.len == (size_t)tn && !memcmp(m->topic.p, topic, (size_t)tn)))
                retain_set(w->b->retained, topic, (size_t)tn, m && m->payload.len ? m : NULL, NULL);
            if (m)
                msg_release(m);
        }
        free(topic);
        kvEntry_Destroy(e);
    } else if (it->rc == CL_KICK) {
        conn_t *cn = conn_lookup(w, it->fd, it->conn_id);
        if (cn && cn->state == CONN_ACTIVE && !cn->waiting)
            conn_fail(cn, MQTT_RC_SESSION_TAKEN_OVER, "client id connected on another cluster node");
    }
}

void cluster_item_free(inbox_item_t *it)
{
    if (it->rc == CL_PUBLISH)
        natsMsg_Destroy(it->data);
    else if (it->rc == CL_RETAIN)
        kvEntry_Destroy(it->data);
}

void cluster_client_connected(cluster_t *c, session_t *s)
{
    char *key = key_of(NULL, (const uint8_t *)s->client_id, s->client_id_len);
    if (!key)
        return;
    session_cluster_write_begin(s);
    session_hold(s);
    enqueue_op(c, B_CLIENTS, key, (const uint8_t *)c->node, (int)c->node_len, false, s);
}

/* ---- lifetime ---- */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    cluster_t *c = closure;
    atomic_store(&c->link_up, 0);
    if (!atomic_load(&c->stopping))
        log_printf(TLOG_WARNING, "Warning: cluster: disconnected from NATS; reconnecting.");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    cluster_t *c = closure;
    atomic_store(&c->link_up, 1);
    log_printf(TLOG_NOTICE, "Cluster: reconnected to NATS.");
}

static int fail(cluster_t *c, const char *what, natsStatus s)
{
    log_printf(TLOG_ERR, "Error: %s: cluster: %s: %s.", c->b->cfg.cluster_where, what, natsStatus_GetText(s));
    return -1;
}

/* TLS to NATS (cluster_nats_cafile/certfile/keyfile, tls:// URLs); a bad file names its own line. */
static natsStatus nats_tls(const struct tombo_config *cfg, natsOptions *o, bool *tls)
{
    bool secure = cfg->cluster_tls_file[0] || cfg->cluster_tls_file[1];
    for (int i = 0; i < cfg->n_cluster_urls; i++)
        secure = secure || !strncmp(cfg->cluster_urls[i], "tls://", 6);
    natsStatus s = secure ? natsOptions_SetSecure(o, true) : NATS_OK;
    *tls = secure;
    int bad = -1;
    if (s == NATS_OK && cfg->cluster_tls_file[0] &&
        (s = natsOptions_LoadCATrustedCertificates(o, cfg->cluster_tls_file[0])) != NATS_OK)
        bad = 0;
    if (s == NATS_OK && cfg->cluster_tls_file[1] &&
        (s = natsOptions_LoadCertificatesChain(o, cfg->cluster_tls_file[1], cfg->cluster_tls_file[2])) != NATS_OK)
        bad = 1;
    if (bad >= 0)
        log_printf(TLOG_ERR, "Error: %s: cluster: cannot load '%s'%s%s: %s.", cfg->cluster_tls_where[bad],
                   cfg->cluster_tls_file[bad], bad ? " with key " : "", bad ? cfg->cluster_tls_file[2] : "",
                   nats_GetLastError(NULL));
    return s;
}

int cluster_init(broker_t *b)
{
    const struct tombo_config *cfg = &b->cfg;
    cluster_t *c = xcalloc(1, sizeof(*c));
    b->cluster = c;
    c->b = b;
    c->node = cfg->cluster_node;
    c->node_len = strlen(c->node);
    pthread_mutex_init(&c->nodes_lock, NULL);
    pthread_mutex_init(&c->q_lock, NULL);
    pthread_cond_init(&c->q_cond, NULL);
    c->remote = subtree_new(NULL);
    c->cw = xcalloc((size_t)b->n_workers, sizeof(*c->cw));
    for (int i = 0; i < b->n_workers; i++)
        sub_result_init(&c->cw[i].res);

    natsStatus s = natsOptions_Create(&c->opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(c->opts, (const char **)cfg->cluster_urls, cfg->n_cluster_urls);
    char name[100];
    snprintf(name, sizeof(name), "tombo %s", c->node);
    if (s == NATS_OK)
        s = natsOptions_SetName(c->opts, name);
    if (s == NATS_OK && cfg->cluster_user)
        s = natsOptions_SetUserInfo(c->opts, cfg->cluster_user, cfg->cluster_password);
    if (s == NATS_OK && cfg->cluster_token)
        s = natsOptions_SetToken(c->opts, cfg->cluster_token);
    if (s == NATS_OK)
        s = nats_tls(cfg, c->opts, &c->tls);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(c->opts, -1); /* forever: local traffic goes on meanwhile */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(c->opts, 500);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(c->opts, on_disconnected, c);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(c->opts, on_reconnected, c);
    if (s != NATS_OK)
        return fail(c, "NATS options", s);
    if ((s = natsConnection_Connect(&c->nc, c->opts)) != NATS_OK)
        return fail(c, "cannot connect to NATS", s);
    atomic_store(&c->link_up, 1);
    if ((s = natsConnection_JetStream(&c->js, c->nc, NULL)) != NATS_OK)
        return fail(c, "JetStream", s);
    for (int i = 0; i < N_BUCKETS; i++) {
        s = js_KeyValue(&c->kv[i], c->js, bucket_name[i]);
        if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = bucket_name[i];
            kc.History = 1;
            kc.Replicas = cfg->cluster_replicas ? cfg->cluster_replicas : 1;
            s = js_CreateKeyValue(&c->kv[i], c->js, &kc);
            if (s != NATS_OK) /* another node created it first */
                s = js_KeyValue(&c->kv[i], c->js, bucket_name[i]);
        }
        if (s != NATS_OK) {
            char what[100];
            snprintf(what, sizeof(what), "key-value bucket %s (is JetStream enabled?)", bucket_name[i]);
            return fail(c, what, s);
        }
    }
    if (cfg->cluster_durability && cluster_js_init(b, c->nc, c->node) < 0)
        return -1;
    subtree_observe(b->subs, filter_changed, c);
    log_printf(TLOG_NOTICE, "Cluster: node %s on NATS %s.", c->node, cfg->cluster_urls[0]);
    return 0;
}

int cluster_start(broker_t *b)
{
    cluster_t *c = b->cluster;
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.n.%s", c->node);
    natsStatus s = natsConnection_Subscribe(&c->sub, c->nc, subj, on_forward, c);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(c->sub, 1 << 20, 256 << 20);
    if (s != NATS_OK)
        return fail(c, "cannot subscribe to this node's subject", s);
    if (b->cluster_js && cluster_js_start(b, on_forward, c) < 0)
        return -1;
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        wt->c = c;
        wt->bucket = i;
        if ((s = kvStore_WatchAll(&wt->w, c->kv[i], NULL)) != NATS_OK)
            return fail(c, "cannot watch a bucket", s);
        if (pthread_create(&wt->thread, NULL, watch_main, wt) != 0)
            return fail(c, "cannot start a watcher thread", NATS_NO_MEMORY);
        wt->started = true;
    }
    if (pthread_create(&c->writer, NULL, writer_main, c) != 0)
        return fail(c, "cannot start the writer thread", NATS_NO_MEMORY);
    c->writer_started = true;
    return 0;
}

void cluster_stop(broker_t *b)
{
    cluster_t *c = b->cluster;
    if (!c)
        return;
    atomic_store(&c->stopping, 1);
    cluster_js_stop(b);
    if (c->sub) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        if (wt->w)
            kvWatcher_Stop(wt->w);
        if (wt->started)
            pthread_join(wt->thread, NULL);
        kvWatcher_Destroy(wt->w);
    }
    if (c->writer_started) { /* it writes what is queued, then withdraws our routes */
        pthread_mutex_lock(&c->q_lock);
        c->q_stop = true;
        pthread_cond_signal(&c->q_cond);
        pthread_mutex_unlock(&c->q_lock);
        pthread_join(c->writer, NULL);
    }
    while (c->q_head) {
        kvop_t *op = c->q_head;
        c->q_head = op->next;
        kvop_free(op);
    }
    for (int i = 0; i < N_BUCKETS; i++)
        kvStore_Destroy(c->kv[i]);
    jsCtx_Destroy(c->js);
    if (c->nc) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
    }
    natsOptions_Destroy(c->opts);
    /* nats.c's own threads (its callbacks see c) are done once this returns. */
    /* nats.c's TLS clean-up frees OpenSSL's compression-method stack (not its entries) without
     * clearing it (nats-io/nats.c#904): OPENSSL_cleanup at exit would free it again. Take it out of
     * nats.c's reach first and free it whole here. */
    STACK_OF(SSL_COMP) *cm = c->tls ? SSL_COMP_set0_compression_methods(NULL) : NULL;
    nats_CloseAndWait(5000);
    while (sk_SSL_COMP_num(cm) > 0)
        OPENSSL_free(sk_SSL_COMP_pop(cm));
    sk_SSL_COMP_free(cm);
    cluster_js_free(b);
    subtree_observe(b->subs, NULL, NULL);
    subtree_free(c->remote);
    for (int i = 0; i < b->n_workers; i++) {
        sub_result_free(&c->cw[i].res);
        free(c->cw[i].buf);
    }
    free(c->cw);
    while (c->nodes) {
        cnode_t *x = c->nodes;
        c->nodes = x->next;
        free(x);
    }
    pthread_mutex_destroy(&c->nodes_lock);
    pthread_mutex_destroy(&c->q_lock);
    pthread_cond_destroy(&c->q_cond);
    free(c);
    b->cluster = NULL;
}

void cluster_stats(cluster_t *c, cluster_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->node = c->node;
    out->link_up = atomic_load(&c->link_up);
    unsigned long n = 1;
    pthread_mutex_lock(&c->nodes_lock);
    for (cnode_t *x = c->nodes; x; x = x->next)
        n += x->present;
    pthread_mutex_unlock(&c->nodes_lock);
    out->nodes = n;
    out->fwd_sent = atomic_load_explicit(&c->fwd_sent, memory_order_relaxed);
    out->fwd_received = atomic_load_explicit(&c->fwd_received, memory_order_relaxed);
    out->fwd_bytes_sent = atomic_load_explicit(&c->fwd_bytes_sent, memory_order_relaxed);
    out->fwd_bytes_received = atomic_load_explicit(&c->fwd_bytes_received, memory_order_relaxed);
    out->kv_errors = atomic_load_explicit(&c->kv_errors, memory_order_relaxed);
}
