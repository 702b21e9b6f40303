/* cluster.c -- a tombo cluster on NATS JetStream: routes, forwarded PUBLISHes, retained messages and
 * client ids shared by every node (user guide: docs/cluster.md).
 *
 * Design. Three JetStream key-value buckets hold what the nodes share, and core NATS carries the
 * messages:
 *   - tombo_routes: key NODE.B64(FILTER) for each filter NODE has subscribers for, NODE.B64(
 *     "$share/GROUP/FILTER") for each shared group it has members of, and NODE alone (its
 *     presence). Each node writes its own keys (subtree_observe tells it when a filter gets its
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
 * core NATS, subject tombo.n.NODE, as [1: version 2][4: message expiry left, s, 0: none][1: n]
 * [n: source node][1: k][k times [1: n][n: a node it is sent to]][a v5 PUBLISH, packet id 1]
 * (version 1 had no recipients; it is still read): the v5 encoding is the message's shared one
 * (msg_encoded), made once. nats.c buffers what is published and its flusher thread writes it, so
 * the sends of a loop turn go out together. The receiving node delivers it as a local publish
 * (msg->from_cluster): never forwarded again, so no loop. Shared groups: one node serves each, see
 * "shared subscriptions" below (wire version 3 lists the groups the receiver serves).
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
#include <time.h>
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
#include "broker/session_wire.h"
#include "broker/store.h"
#include "broker/subtree.h"
#include "broker/worker.h"
#include "mqtt/packet.h"
#include "pwhash/pwhash.h"

#define WIRE_VERSION 2 /* 1: without the recipients (still read) */
#define WIRE_VERSION_GROUPS 3 /* 2 with the shared groups the receiver serves after the source node */
#define KEY_MAX 3000 /* NATS's control line is 4096 bytes: longer keys are not replicated */

/* inbox_item.rc of an INBOX_CLUSTER item. Sessions that move (docs/cluster.md): CL_TAKE (owner:
 * another node asks for a session; fd counts the kicks of its connection so far), CL_TAKE_REPLY
 * (new node: the answer for a waiting connection), CL_TOOK (owner: the new node has it, drop
 * ours), CL_TAIL (new node: what queued on the owner meanwhile). */
enum { CL_PUBLISH, CL_RETAIN, CL_KICK, CL_TAKE, CL_TAKE_REPLY, CL_TOOK, CL_TAIL };
enum { B_ROUTES, B_RETAIN, B_CLIENTS, N_BUCKETS };
#define OP_CONFIRM N_BUCKETS /* a kvop that is a move's confirmation, not a bucket write */
#define TAKE_TIMEOUT_MS 3000 /* how long the owner of a session has to hand it over */
#define TAKE_THREADS 2       /* asking owners runs on these (each waits for one answer at a time) */
#define TAKE_KICKS 3         /* the owner closes the client's connection there at most this often */
#define MOVE_GRACE_MS 1000   /* a moved session's routes stay this long on the old node (see move_done) */
static const char *const bucket_name[N_BUCKETS] = {"tombo_routes", "tombo_retain", "tombo_clients"};

/* A node known from the routes bucket. Never freed before cluster_stop: `remote` points to it. */
typedef struct cnode {
    struct cnode *next;
    char name[65];
    char subject[80];  /* tombo.n.NAME */
    uint8_t present;   /* its presence key is in the bucket (under nodes_lock) */
    int index;         /* its bit in msg_t.cluster_to (-1: beyond 64 nodes) */
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
    uint64_t need;      /* OP_CONFIRM: the store sequence to wait for first (0: none) */
} kvop_t;

/* A connection waiting for its session from another node (cluster_take). */
typedef struct takeop {
    struct takeop *next;
    int worker, fd;
    uint64_t conn_id;
    size_t idlen;
    char id[];
} takeop_t;

/* A session that moved away, kept for MOVE_GRACE_MS (worker 0's list). */
typedef struct moved {
    struct moved *next;
    session_t *s;  /* one reference */
    char *reply;   /* the new node's tombo.r.NODE */
    uint64_t node_bit; /* the new node's bit in msg_t.cluster_to (0: unknown) */
    long sent;         /* messages that followed it so far */
    int64_t due;
} moved_t;

/* The answer, to the connection's worker (CL_TAKE_REPLY's data). */
typedef struct take_reply {
    natsMsg *blob;  /* the session (NULL: none: start a fresh one) */
    char owner[65]; /* the node it comes from */
} take_reply_t;

typedef struct watch {
    cluster_t *c;
    int bucket;
    pthread_mutex_t mu; /* w, against cluster_stop while watch_renew replaces it */
    kvWatcher *w;
    pthread_t thread;
    bool started;
    /* Watcher thread only (watch_stalled): the last revision it delivered, and the state of the
     * previous check. */
    uint64_t rev, check_rev;
    uint64_t base; /* the stream's last sequence before the watcher was made (see watch_main) */
    int64_t check_at;
    bool behind;
} watch_t;

/* A shared group ("$share/GROUP/FILTER") of the message a worker is routing: its bytes at
 * cworker.gbuf + off, and the node that serves it (see "Shared subscriptions" below). */
typedef struct cgroup {
    size_t off;
    uint16_t len;
    const cnode_t *node; /* NULL: this node (a message from another node lists only ours) */
} cgroup_t;

/* Per worker, touched by that worker only. */
typedef struct cworker {
    sub_result_t res;
    uint8_t *buf;  /* the wire form of the message being forwarded */
    size_t cap;
    uint8_t *buf2; /* the same with the groups one node serves (wire version 3) */
    size_t cap2;
    /* The groups of the message being routed, for cluster_share_keep: `only` set, a message from
     * another node, this node serves the listed groups and no other; clear, one published here,
     * it serves every group but those listed with another node. */
    bool only;
    cgroup_t *g;
    size_t ng, capg;
    uint8_t *gbuf;
    size_t glen, gcap;
    sub_match_t *to; /* the nodes a message is sent to, each once */
    size_t capto;
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
    jsCtx *js_renew; /* the watchers' checks and renewals: a shorter request timeout (WATCH_RENEW_WAIT_MS) */
    kvStore *kv_renew[N_BUCKETS];
    natsSubscription *sub;
    subtree_t *remote;
    cnode_t *self; /* in `remote` as a member of this node's shared groups */
    cworker_t *cw; /* [b->n_workers] */

    pthread_mutex_t nodes_lock; /* the list itself; names are immutable once linked */
    cnode_t *nodes;
    int n_nodes;

    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    kvop_t *q_head, *q_tail;
    bool q_stop;
    pthread_t writer;
    bool writer_started;

    /* Sessions that move: connections waiting for their session (takers), the subscriptions of
     * this node's move subjects (tombo.take.NODE, tombo.took.NODE, tombo.r.NODE). */
    pthread_mutex_t t_lock;
    pthread_cond_t t_cond;
    takeop_t *t_head, *t_tail;
    bool t_stop;
    pthread_t taker[TAKE_THREADS];
    int n_takers;
    natsSubscription *sub_take, *sub_took, *sub_tail;
    char tail_subject[80];
    moved_t *moved; /* worker 0's only */
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

/* Hand op to the writer thread, in order. */
static void queue_push(cluster_t *c, kvop_t *op)
{
    pthread_mutex_lock(&c->q_lock);
    if (c->q_tail)
        c->q_tail->next = op;
    else
        c->q_head = op;
    c->q_tail = op;
    pthread_cond_signal(&c->q_cond);
    pthread_mutex_unlock(&c->q_lock);
}

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
    queue_push(c, op);
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
        natsStatus s;
        uint64_t rev = 0;
        if (op->bucket == OP_CONFIRM) {
            /* After the route writes queued before it, and once the store has the session: the
             * old node may drop its copy. Bounded: the store commits within milliseconds. */
            store_t *st = c->b->store;
            for (int i = 0; st && op->need && store_committed(st) < op->need && i < 10000 && !stop; i++)
                usleep(1000);
            s = natsConnection_PublishRequest(c->nc, op->key, c->tail_subject, op->val, op->len);
            if (s != NATS_OK) /* NATS down: the old node gives up the move and keeps the session */
                log_printf(TLOG_WARNING, "Warning: cluster: cannot confirm a session move: %s.", natsStatus_GetText(s));
            s = NATS_OK;
        } else {
            kvStore *kv = c->kv[op->bucket];
            s = op->del ? kvStore_Delete(kv, op->key) : kvStore_Put(&rev, kv, op->key, op->val, op->len);
        }
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

static void share_changed(cluster_t *c, const uint8_t *share, size_t n, bool present);

/* subtree_observe, under the local tree's write lock: announce or withdraw a filter, or a shared
 * group ("$share/GROUP/FILTER": its first member came or its last left). */
static void filter_changed(void *ctx, const uint8_t *filter, size_t n, bool present)
{
    cluster_t *c = ctx;
    if (n > 7 && !memcmp(filter, "$share/", 7))
        share_changed(c, filter, n, present);
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
        x->index = c->n_nodes < 64 ? c->n_nodes++ : -1;
        x->next = c->nodes;
        c->nodes = x;
    }
    pthread_mutex_unlock(&c->nodes_lock);
    return x;
}

/* ---- forwarding ---- */

/* The wire form of m into cw->buf, naming the nodes of `to` (n_to of them) as its recipients:
 * see the design note. Returns its length. */
static size_t encode(cluster_t *c, cworker_t *cw, msg_t *m, int64_t now, const sub_match_t *to, size_t n_to)
{
    const msg_enc_t *e = msg_encoded(m, MQTT_V5, m->qos, m->retain);
    size_t names = 1;
    for (size_t i = 0; i < n_to && i < 255; i++)
        names += 1 + strlen(((cnode_t *)to[i].owner)->name);
    size_t need = 6 + c->node_len + names + e->len;
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
    uint8_t *q = p + 6 + c->node_len;
    *q++ = (uint8_t)(n_to < 255 ? n_to : 255);
    for (size_t i = 0; i < n_to && i < 255; i++) {
        const cnode_t *x = to[i].owner;
        size_t xl = strlen(x->name);
        *q++ = (uint8_t)xl;
        memcpy(q, x->name, xl);
        q += xl;
    }
    uint8_t *pub = q;
    memcpy(pub, e->bytes, e->len);
    if (m->qos) { /* a packet id of 0 is malformed with QoS > 0 */
        pub[e->id_off] = 0;
        pub[e->id_off + 1] = 1;
    }
    return need;
}

/* ---- shared subscriptions: one member of a group cluster-wide ----
 *
 * A node announces each of its shared groups as its own route key, NODE.B64("$share/GROUP/FILTER"),
 * so `remote` holds the group with the nodes that have members of it as its members; this node is
 * one of them too (cnode `self`, added at once by share_changed, never through the bucket). The node
 * where a message is published matches `remote` once: for each group the match picks ONE node,
 * round robin. A message for another node lists (wire version 3) the groups that node serves; the
 * receiving node gives the message to its ordinary subscribers and to one member of each listed
 * group only, and the publishing node's own route serves every group but those it gave to another
 * node. So each message reaches one member of each group in the whole cluster, without a round trip,
 * as long as every node sees the same routes (a group's last member leaving a node while a message
 * for it is on its way loses that message for the group, as it would on one node). */

static void share_changed(cluster_t *c, const uint8_t *share, size_t n, bool present)
{
    if (present)
        subtree_add(c->remote, share, n, c->self, 0, 0);
    else
        subtree_remove(c->remote, share, n, c->self);
}

static void group_push(cworker_t *cw, const uint8_t *share, size_t n, const cnode_t *node)
{
    if (cw->ng == cw->capg) {
        cw->capg = cw->capg ? 2 * cw->capg : 8;
        cw->g = xrealloc(cw->g, cw->capg * sizeof(*cw->g));
    }
    if (cw->glen + n > cw->gcap) {
        cw->gcap = 2 * (cw->glen + n) + 256;
        cw->gbuf = xrealloc(cw->gbuf, cw->gcap);
    }
    memcpy(cw->gbuf + cw->glen, share, n);
    cw->g[cw->ng++] = (cgroup_t){.off = cw->glen, .len = (uint16_t)n, .node = node};
    cw->glen += n;
}

static void groups_clear(cworker_t *cw)
{
    cw->ng = 0;
    cw->glen = 0;
    cw->only = false;
}

/* sub_group_fn of the match in `remote`: every group takes part; note it, in match order. */
static bool group_seen(void *ctx, const uint8_t *share, size_t n)
{
    cworker_t *cw = ctx;
    if (n > UINT16_MAX)
        return false; /* not a valid MQTT string: it cannot have been subscribed */
    group_push(cw, share, n, NULL);
    return true;
}

static const cgroup_t *group_find(const cworker_t *cw, const uint8_t *share, size_t n)
{
    for (size_t i = 0; i < cw->ng; i++)
        if (cw->g[i].len == n && !memcmp(cw->gbuf + cw->g[i].off, share, n))
            return &cw->g[i];
    return NULL;
}

bool cluster_share_keep(void *ctx, const uint8_t *share, size_t n)
{
    worker_t *w = ctx;
    cworker_t *cw = &w->b->cluster->cw[w->index];
    const cgroup_t *g = group_find(cw, share, n);
    if (cw->only)
        return g != NULL;
    return !g || g->node == NULL || g->node == w->b->cluster->self;
}

/* The wire form in cw->buf (len bytes, version 2) as version 3 in cw->buf2, with the groups node x
 * serves: [4: k] k x [2: length][the group's "$share/GROUP/FILTER"] after the source node. Returns
 * its length, or 0 when x serves no group (then cw->buf is what x gets). */
static size_t encode_groups(cluster_t *c, cworker_t *cw, size_t len, const cnode_t *x)
{
    size_t k = 0, extra = 4;
    for (size_t i = 0; i < cw->ng; i++)
        if (cw->g[i].node == x) {
            k++;
            extra += 2 + cw->g[i].len;
        }
    if (!k)
        return 0;
    size_t head = 6 + c->node_len;
    if (cw->cap2 < len + extra) {
        cw->cap2 = 2 * (len + extra);
        cw->buf2 = xrealloc(cw->buf2, cw->cap2);
    }
    uint8_t *p = cw->buf2;
    memcpy(p, cw->buf, head);
    p[0] = WIRE_VERSION_GROUPS;
    p += head;
    for (int sh = 24; sh >= 0; sh -= 8)
        *p++ = (uint8_t)(k >> sh);
    for (size_t i = 0; i < cw->ng; i++) {
        if (cw->g[i].node != x)
            continue;
        *p++ = (uint8_t)(cw->g[i].len >> 8);
        *p++ = (uint8_t)cw->g[i].len;
        memcpy(p, cw->gbuf + cw->g[i].off, cw->g[i].len);
        p += cw->g[i].len;
    }
    memcpy(p, cw->buf + head, len - head);
    return len + extra;
}

/* The groups of a version 3 wire form (d[0..n), its source node checked) into cw, for
 * cluster_share_keep; returns the offset of the PUBLISH, or 0 when malformed. */
static size_t decode_groups(cworker_t *cw, const uint8_t *d, size_t n)
{
    size_t p = 6 + (size_t)d[5];
    if (p + 4 > n)
        return 0;
    size_t k = (size_t)d[p] << 24 | (size_t)d[p + 1] << 16 | (size_t)d[p + 2] << 8 | d[p + 3];
    p += 4;
    for (size_t i = 0; i < k; i++) {
        if (p + 2 > n)
            return 0;
        size_t len = (size_t)d[p] << 8 | d[p + 1];
        if (p + 2 + len > n)
            return 0;
        group_push(cw, d + p + 2, len, NULL);
        p += 2 + len;
    }
    return p;
}

size_t cluster_publish(cluster_t *c, worker_t *w, msg_t *m)
{
    cworker_t *cw = &c->cw[w->index];
    groups_clear(cw); /* what this node's own route serves: every group, unless given below */
    if (c->b->cluster_js) /* before any return: this message's JetStream publishes start here */
        cluster_js_publish_begin(c->b->cluster_js, w);
    if (m->topic.len >= 4 && !memcmp(m->topic.p, "$SYS", 4))
        return 0; /* each node's own statistics and log */
    sub_result_t *r = &cw->res;
    subtree_match_groups(c->remote, m->topic.p, m->topic.len, NULL, r, group_seen, cw);
    for (size_t i = 0, k = 0; i < r->n; i++) /* the node picked for each group, in match order */
        if (r->v[i].shared)
            cw->g[k++].node = r->v[i].owner;
    if (!r->n && !m->retain)
        return 0;
    size_t nto = 0; /* the recipients: each other node once (the groups' entries repeat nodes, and name this one) */
    if (cw->capto < r->n) {
        cw->capto = r->n * 2;
        cw->to = xrealloc(cw->to, cw->capto * sizeof(*cw->to));
    }
    for (size_t i = 0; i < r->n; i++) {
        bool dup = r->v[i].owner == c->self;
        for (size_t j = 0; j < nto && !dup; j++)
            dup = cw->to[j].owner == r->v[i].owner;
        if (!dup)
            cw->to[nto++] = r->v[i];
    }
    size_t len = encode(c, cw, m, w->now, cw->to, nto);
    if (m->retain) {
        char *key = key_of(NULL, m->topic.p, m->topic.len);
        if (key)
            enqueue(c, B_RETAIN, key, cw->buf, (int)len, m->payload.len == 0);
        else
            log_printf(TLOG_WARNING, "Warning: cluster: topic of %u bytes too long to be retained on the other "
                                     "nodes.", m->topic.len);
    }
    size_t sent = 0, bytes = 0;
    for (size_t i = 0; i < r->n; i++) { /* a node's ordinary filters are merged into one entry by the match */
        cnode_t *x = r->v[i].owner;
        bool dup = x == c->self;
        for (size_t j = 0; j < i && !dup; j++)
            dup = r->v[j].owner == x; /* its groups too went with its first entry */
        if (dup)
            continue;
        size_t len2 = cw->ng ? encode_groups(c, cw, len, x) : 0;
        const uint8_t *data = len2 ? cw->buf2 : cw->buf;
        size_t dlen = len2 ? len2 : len;
        bool ok;
        if (c->b->cluster_js && m->qos && atomic_load_explicit(&x->durable, memory_order_relaxed))
            /* cluster_durability jetstream, on both nodes: the publisher's ack waits for JetStream */
            ok = cluster_js_send(c->b->cluster_js, w, x->name, data, dlen);
        else
            ok = natsConnection_Publish(c->nc, x->subject, data, (int)dlen) == NATS_OK;
        if (ok) {
            sent++;
            bytes += dlen;
            if (x->index >= 0)
                m->cluster_to |= 1ull << x->index; /* route.c delivers here after this */
        }
    }
    if (sent) {
        atomic_fetch_add_explicit(&c->fwd_sent, sent, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->fwd_bytes_sent, bytes, memory_order_relaxed);
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
    if (n < 6 || (d[0] != WIRE_VERSION && d[0] != 1 && d[0] != WIRE_VERSION_GROUPS) || 6 + d[5] > n) {
        natsMsg_Destroy(msg);
        return;
    }
    broker_t *b = c->b;
    int wi = (int)(fnv1a32(d + 6, d[5]) % (uint32_t)b->n_workers);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_PUBLISH, .data = msg};
    worker_post(&b->workers[wi], &it);
}

/* Decode a wire form into a message (NULL when malformed). A version 3 form's groups go to cw (NULL:
 * not expected, the retained bucket's). */
static msg_t *decode(cluster_t *c, const uint8_t *d, size_t n, int64_t now, cworker_t *cw)
{
    if (n < 6 || (d[0] != WIRE_VERSION && d[0] != 1 && d[0] != WIRE_VERSION_GROUPS) || 6 + (size_t)d[5] > n)
        return NULL;
    size_t off = 6 + (size_t)d[5];
    if (d[0] == WIRE_VERSION_GROUPS && (!cw || !(off = decode_groups(cw, d, n))))
        return NULL;
    uint32_t exp = (uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4];
    const uint8_t *pub = d + off;
    size_t pn = n - off;
    uint64_t to = 0;
    if (d[0] >= 2) { /* the nodes it was sent to */
        if (pn < 1)
            return NULL;
        size_t k = *pub++;
        pn--;
        for (size_t i = 0; i < k; i++) {
            if (pn < 1 || pn < 1 + (size_t)pub[0])
                return NULL;
            size_t xl = pub[0];
            if (xl != c->node_len || memcmp(pub + 1, c->node, xl)) {
                cnode_t *x = node_get(c, (const char *)pub + 1, xl);
                if (x && x->index >= 0)
                    to |= 1ull << x->index;
            }
            pub += 1 + xl;
            pn -= 1 + xl;
        }
    }
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
    m->cluster_to = to;
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

/* ---- watchers that outlive a NATS server ----
 *
 * A bucket watcher is an ordered JetStream consumer, in memory on one NATS server. When that server
 * dies, nats.c recreates the consumer on reconnect or after missed heartbeats, but a try made while
 * the NATS cluster elects new leaders fails and the next waits for the next heartbeat (tens of
 * seconds measured, and sometimes none came). So each watcher thread checks every WATCH_CHECK_MS
 * that it is not behind its bucket (the stream's last sequence against the last revision it
 * delivered) and, behind twice in a row with nothing delivered in between, watches the bucket anew:
 * the new watcher delivers every key's last value or deletion, which the handlers apply again
 * (adding a route or setting a retained message twice changes nothing; a client id's revision
 * decides whether to disconnect). */

#define WATCH_CHECK_MS 1000
#define WATCH_RENEW_WAIT_MS 2000 /* a try while JetStream elects its leaders does not wait 5 s */

/* Broker's thread, cluster_init: the buckets again, through a JetStream context whose requests wait
 * less, for watch_renew. */
static natsStatus watch_renew_init(cluster_t *c)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = WATCH_RENEW_WAIT_MS;
    natsStatus s = natsConnection_JetStream(&c->js_renew, c->nc, &o);
    for (int i = 0; s == NATS_OK && i < N_BUCKETS; i++)
        s = js_KeyValue(&c->kv_renew[i], c->js_renew, bucket_name[i]);
    return s;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last sequence of a bucket's stream, 0 when NATS does not answer. */
static uint64_t stream_last_seq(cluster_t *c, int bucket)
{
    char stream[64];
    snprintf(stream, sizeof(stream), "KV_%s", bucket_name[bucket]);
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, c->js_renew, stream, NULL, NULL) != NATS_OK)
        return 0;
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return last;
}

/* Watcher thread: whether wt's watcher has stopped delivering what its bucket has (see above). */
static bool watch_stalled(watch_t *wt)
{
    int64_t now = mono_ms();
    if (now - wt->check_at < WATCH_CHECK_MS || atomic_load(&wt->c->b->stop))
        return false; /* stopping: the workers no longer take what a new watcher would deliver */
    wt->check_at = now;
    uint64_t last = stream_last_seq(wt->c, wt->bucket);
    if (!last)
        return false; /* NATS unreachable or electing: next time */
    bool behind = last > wt->rev;
    bool stalled = behind && wt->behind && wt->check_rev == wt->rev;
    wt->behind = behind && !stalled;
    wt->check_rev = wt->rev;
    return stalled;
}

/* Watcher thread: replace wt's watcher with a new one, trying until it works or the cluster stops.
 * Returns false when stopping. */
static bool watch_renew(watch_t *wt)
{
    cluster_t *c = wt->c;
    log_printf(TLOG_WARNING, "Warning: cluster: the watch of bucket %s stalled (its NATS server gone?); "
                             "watching it anew.", bucket_name[wt->bucket]);
    for (;;) {
        pthread_mutex_lock(&wt->mu);
        if (atomic_load(&c->stopping)) {
            pthread_mutex_unlock(&wt->mu);
            return false;
        }
        kvWatcher *w = NULL;
        uint64_t base = stream_last_seq(c, wt->bucket);
        natsStatus s = kvStore_WatchAll(&w, c->kv_renew[wt->bucket], NULL);
        if (s == NATS_OK) {
            kvWatcher_Stop(wt->w);
            kvWatcher_Destroy(wt->w);
            wt->w = w;
            wt->base = base;
            wt->behind = false;
        }
        pthread_mutex_unlock(&wt->mu);
        if (s == NATS_OK)
            return true;
        usleep(500 * 1000);
    }
}

static void *watch_main(void *arg)
{
    watch_t *wt = arg;
    cluster_t *c = wt->c;
    bool initial = true; /* the bucket's state at start, until a NULL entry */
    wt->check_at = mono_ms();
    for (;;) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, wt->w, 1000);
        if (s == NATS_TIMEOUT || (s == NATS_OK && !e)) {
            if (s == NATS_OK) { /* the bucket's state is delivered: what came before base is in it,
                                 * or was purged (a last sequence no entry will ever reach) */
                initial = false;
                if (wt->base > wt->rev)
                    wt->rev = wt->base;
            }
            if (watch_stalled(wt) && !watch_renew(wt))
                break;
            continue;
        }
        if (s != NATS_OK)
            break; /* kvWatcher_Stop */
        if (kvEntry_Revision(e) > wt->rev)
            wt->rev = kvEntry_Revision(e);
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

static void move_out(worker_t *w, natsMsg *m, int kicks);
static void move_in(worker_t *w, inbox_item_t *it);
static void move_done(worker_t *w, natsMsg *m);
static void move_tail(worker_t *w, natsMsg *m);

void cluster_on_item(worker_t *w, inbox_item_t *it)
{
    cluster_t *c = w->b->cluster;
    if (it->rc >= CL_JS_ACK) {
        cluster_js_on_item(w, it);
    } else if (it->rc == CL_PUBLISH) {
        natsMsg *nm = it->data;
        int n = natsMsg_GetDataLength(nm);
        cworker_t *cw = &c->cw[w->index];
        groups_clear(cw);
        cw->only = true; /* this node serves the groups the message lists, and no other */
        msg_t *m = decode(c, (const uint8_t *)natsMsg_GetData(nm), (size_t)n, w->now, cw);
        if (m) {
            atomic_fetch_add_explicit(&c->fwd_received, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->fwd_bytes_received, (unsigned long)n, memory_order_relaxed);
            route_publish_give(w, m, NULL, NULL);
        }
        groups_clear(cw);
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
                m = decode(c, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), w->now, NULL);
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
    } else if (it->rc == CL_TAKE) {
        move_out(w, it->data, it->fd);
    } else if (it->rc == CL_TAKE_REPLY) {
        move_in(w, it);
    } else if (it->rc == CL_TOOK) {
        move_done(w, it->data);
    } else if (it->rc == CL_TAIL) {
        move_tail(w, it->data);
    }
}

void cluster_item_free(inbox_item_t *it)
{
    if (it->kind == INBOX_KICK_CONN || it->rc == CL_PUBLISH || it->rc == CL_TAKE || it->rc == CL_TOOK ||
        it->rc == CL_TAIL) {
        natsMsg_Destroy(it->data);
    } else if (it->rc == CL_RETAIN) {
        kvEntry_Destroy(it->data);
    } else if (it->rc == CL_TAKE_REPLY) {
        take_reply_t *tr = it->data;
        natsMsg_Destroy(tr->blob);
        free(tr);
    }
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

/* ---- sessions that move (docs/cluster.md) ----
 *
 * New node B, a CONNECT without clean start whose client id has no session here: the worker parks
 * the connection (WAIT_CLUSTER) and a taker thread reads the client id's owner A in tombo_clients,
 * then asks A on tombo.take.A (a request with a timeout: TAKE_TIMEOUT_MS). A's worker 0 closes the
 * client's connection there if it has one (INBOX_KICK_CONN, 0x8E on MQTT 5), exports the session
 * under its lock (session_move_out: it stays on A, marked moving) and answers with it. B's worker
 * imports it (session_wire_import: its filters enter B's tree, so B's route keys are queued), the
 * connection attaches (the store journals it whole) and gets CONNACK session present 1, and the
 * writer thread, after those route writes and the store's commit, confirms on tombo.took.A. A then
 * ends its copy (its routes go after B's are written) and answers on tombo.r.B with what queued for
 * the session on A since the export (the tail), which B delivers to it. */

/* Any thread: give a taker's answer to the waiting connection's worker. */
static void take_answer(cluster_t *c, const takeop_t *op, natsMsg *blob, const char *owner)
{
    take_reply_t *tr = xcalloc(1, sizeof(*tr));
    tr->blob = blob;
    if (owner)
        snprintf(tr->owner, sizeof(tr->owner), "%s", owner);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_TAKE_REPLY, .fd = op->fd, .conn_id = op->conn_id, .data = tr};
    worker_post(&c->b->workers[op->worker], &it);
}

/* A taker: who has the session, and ask it. Every op gets an answer, within a bounded time (the
 * bucket read's and the request's timeouts). */
static void take_one(cluster_t *c, takeop_t *op)
{
    char *key = key_of(NULL, (const uint8_t *)op->id, op->idlen);
    char owner[65] = "";
    kvEntry *e = NULL;
    if (key && kvStore_Get(&e, c->kv[B_CLIENTS], key) == NATS_OK) {
        if (kvEntry_Operation(e) == kvOp_Put)
            snprintf(owner, sizeof(owner), "%s", kvEntry_ValueString(e) ? kvEntry_ValueString(e) : "");
        kvEntry_Destroy(e);
    }
    free(key);
    if (!owner[0] || !strcmp(owner, c->node)) { /* nobody has it, or we had it and it ended */
        take_answer(c, op, NULL, NULL);
        return;
    }
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.take.%s", owner);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, c->nc, subj, op->id, (int)op->idlen, TAKE_TIMEOUT_MS);
    if (s != NATS_OK) {
        log_printf(TLOG_WARNING, "Warning: cluster: node %s did not answer (%s): client %.*s starts a new session.",
                   owner, natsStatus_GetText(s), (int)op->idlen, op->id);
        take_answer(c, op, NULL, NULL);
        return;
    }
    if (natsMsg_GetDataLength(reply) == 0) { /* it has no session to give */
        natsMsg_Destroy(reply);
        reply = NULL;
    }
    take_answer(c, op, reply, owner);
}

static void *taker_main(void *arg)
{
    cluster_t *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->t_lock);
        while (!c->t_head && !c->t_stop)
            pthread_cond_wait(&c->t_cond, &c->t_lock);
        takeop_t *op = c->t_head;
        if (op) {
            c->t_head = op->next;
            if (!c->t_head)
                c->t_tail = NULL;
        }
        bool stop = c->t_stop;
        pthread_mutex_unlock(&c->t_lock);
        if (!op)
            break;
        if (stop)
            take_answer(c, op, NULL, NULL); /* shutting down: the workers free it */
        else
            take_one(c, op);
        free(op);
    }
    return NULL;
}

void cluster_take(cluster_t *c, int worker, int fd, uint64_t conn_id, const char *id, size_t idlen)
{
    takeop_t *op = xcalloc(1, sizeof(*op) + idlen + 1);
    op->worker = worker;
    op->fd = fd;
    op->conn_id = conn_id;
    op->idlen = idlen;
    memcpy(op->id, id, idlen);
    pthread_mutex_lock(&c->t_lock);
    if (c->t_tail)
        c->t_tail->next = op;
    else
        c->t_head = op;
    c->t_tail = op;
    pthread_cond_signal(&c->t_cond);
    pthread_mutex_unlock(&c->t_lock);
}

void cluster_take_confirm(cluster_t *c, session_t *s, const char *owner, uint64_t store_seq)
{
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.took.%s", owner);
    kvop_t *op = xcalloc(1, sizeof(*op));
    op->bucket = OP_CONFIRM;
    op->key = xstrdup(subj);
    op->val = xmalloc(s->client_id_len ? s->client_id_len : 1);
    memcpy(op->val, s->client_id, s->client_id_len);
    op->len = (int)s->client_id_len;
    op->need = store_seq;
    queue_push(c, op);
    log_printf(TLOG_NOTICE, "Cluster: client %s took its session over from node %s.", s->client_id, owner);
}

/* nats.c threads: a move's message for this node, to worker 0 (one order for all of them). */
static void post_move(cluster_t *c, natsMsg *m, int rc)
{
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = (uint8_t)rc, .data = m};
    worker_post(&c->b->workers[0], &it);
}
static void on_take(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TAKE);
}
static void on_took(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TOOK);
}
static void on_tail(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TAIL);
}

/* Worker 0 of the owner: another node asks for the session of the client id in m (it->fd: how
 * often its connection here was closed for it already). */
static void move_out(worker_t *w, natsMsg *m, int kicks)
{
    cluster_t *c = w->b->cluster;
    broker_t *b = w->b;
    const char *id = natsMsg_GetData(m);
    int idlen = natsMsg_GetDataLength(m);
    uint8_t *blob = NULL;
    size_t len = 0;
    session_t *s = idlen > 0 ? registry_find(b, id, (size_t)idlen) : NULL;
    if (s) {
        int kw, fd;
        uint64_t cid;
        if (session_conn_target(s, b->n_workers, &kw, &fd, &cid)) {
            if (kicks < TAKE_KICKS) { /* closed by its worker first, which gives m back (cluster_kicked) */
                inbox_item_t it = {.kind = INBOX_KICK_CONN, .rc = MQTT_RC_SESSION_TAKEN_OVER, .fd = fd,
                                   .conn_id = cid, .data = m, .reply_worker = w->index, .reply_fd = -1,
                                   .reply_id = (uint64_t)kicks + 1};
                worker_post(&b->workers[kw], &it);
                session_release(s);
                return;
            }
        } else {
            session_snap_t snap;
            if (session_move_out(s, &snap, w->now, SESSION_MOVE_TIMEOUT_MS)) {
                blob = session_wire_encode(&snap, w->now, &len);
                log_printf(TLOG_NOTICE, "Cluster: client %s's session (%u subscriptions, %u messages) is moving "
                                        "to another node.", s->client_id, snap.n_subs, snap.n_out);
                session_snap_free(&snap);
            }
        }
        session_release(s);
    }
    const char *reply = natsMsg_GetReply(m);
    if (reply) /* an empty answer: no session here (or a clean one): a fresh start there */
        natsConnection_Publish(c->nc, reply, blob ? blob : (const uint8_t *)"", (int)len);
    free(blob);
    natsMsg_Destroy(m);
}

void cluster_kicked(worker_t *w, const inbox_item_t *it)
{
    inbox_item_t back = {.kind = INBOX_CLUSTER, .rc = CL_TAKE, .fd = (int)it->reply_id, .data = it->data};
    worker_post(&w->b->workers[it->reply_worker], &back);
}

/* Send what queued for s since the last tail to the new node's `reply` subject:
 * [2: client id length][client id][session_wire]. Returns how many messages, -1 when s no longer
 * moves. */
static long send_tail(cluster_t *c, session_t *s, const char *reply, uint64_t node_bit, int64_t now)
{
    session_snap_t tail;
    if (!session_move_tail(s, &tail))
        return -1;
    /* What was forwarded to the new node as well is delivered there by its own route: not again. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < tail.n_out; i++) {
        if (tail.out[i].msg && (tail.out[i].msg->cluster_to & node_bit)) {
            session_snap_t one = {.out = &tail.out[i], .n_out = 1};
            session_snap_free_out(&one);
        } else {
            tail.out[kept++] = tail.out[i];
        }
    }
    tail.n_out = kept;
    long k = tail.n_out;
    if (k) {
        size_t len, idlen = s->client_id_len;
        uint8_t *blob = session_wire_encode(&tail, now, &len);
        uint8_t *out = xmalloc(2 + idlen + len);
        out[0] = (uint8_t)(idlen >> 8);
        out[1] = (uint8_t)idlen;
        memcpy(out + 2, s->client_id, idlen);
        memcpy(out + 2 + idlen, blob, len);
        natsConnection_Publish(c->nc, reply, out, (int)(2 + idlen + len));
        free(out);
        free(blob);
    }
    session_snap_free(&tail);
    return k;
}

/* Worker 0 of the owner: the new node has the session (m: its client id). What queued here since
 * the export goes to it now; the session and its routes stay MOVE_GRACE_MS more, because a node
 * that has not seen the new node's routes yet still sends here: what comes meanwhile follows too
 * (cluster_tick), then the session ends (its routes go, after the new node's). */
static void move_done(worker_t *w, natsMsg *m)
{
    cluster_t *c = w->b->cluster;
    const char *id = natsMsg_GetData(m);
    int idlen = natsMsg_GetDataLength(m);
    const char *reply = natsMsg_GetReply(m);
    session_t *s = idlen > 0 && idlen <= 65535 && reply ? registry_find(w->b, id, (size_t)idlen) : NULL;
    uint64_t bit = 0;
    if (reply && !strncmp(reply, "tombo.r.", 8)) {
        cnode_t *to = node_get(c, reply + 8, strlen(reply + 8));
        bit = to && to->index >= 0 ? 1ull << to->index : 0;
    }
    long k = s ? send_tail(c, s, reply, bit, w->now) : -1;
    if (k >= 0) {
        moved_t *x = xcalloc(1, sizeof(*x));
        x->sent = k;
        x->s = s;
        x->node_bit = bit;
        x->reply = xstrdup(reply);
        x->due = w->now + MOVE_GRACE_MS;
        moved_t **p = &c->moved; /* in order of due time */
        while (*p)
            p = &(*p)->next;
        *p = x;
    } else if (s) {
        session_release(s);
    }
    natsMsg_Destroy(m);
}

void cluster_tick(worker_t *w)
{
    cluster_t *c = w->b->cluster;
    while (c->moved && c->moved->due <= w->now) {
        moved_t *x = c->moved;
        c->moved = x->next;
        long k = send_tail(c, x->s, x->reply, x->node_bit, w->now);
        if (k >= 0) {
            session_end(x->s);
            log_printf(TLOG_NOTICE, "Cluster: client %s's session moved to another node (%ld messages followed it).",
                       x->s->client_id, x->sent + k);
        }
        session_release(x->s);
        free(x->reply);
        free(x);
    }
}

/* Worker 0 of the new node: the tail of a session that moved here. */
static void move_tail(worker_t *w, natsMsg *m)
{
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
    size_t n = (size_t)natsMsg_GetDataLength(m);
    size_t idlen = n >= 2 ? (size_t)(d[0] << 8 | d[1]) : 0;
    session_t *s = n >= 2 + idlen && idlen ? registry_find(w->b, (const char *)d + 2, idlen) : NULL;
    if (s) {
        long k = session_wire_deliver(w, s, d + 2 + idlen, n - 2 - idlen, w->now);
        if (k < 0)
            log_printf(TLOG_WARNING, "Warning: cluster: the messages that followed client %s's session are "
                                     "malformed; dropped.", s->client_id);
        session_release(s);
    }
    natsMsg_Destroy(m);
}

/* Worker of a waiting connection: the answer of cluster_take. */
static void move_in(worker_t *w, inbox_item_t *it)
{
    take_reply_t *tr = it->data;
    conn_t *cn = conn_lookup(w, it->fd, it->conn_id);
    if (cn && cn->waiting == WAIT_CLUSTER && cn->state == CONN_NEW) {
        if (tr->blob) {
            const char *id = connect_req_id(cn->pending);
            bool existed;
            session_t *s = registry_get(w->b, id, strlen(id), &existed);
            if (existed) {
                /* A session of that client id was made here meanwhile: it stays, the other node's
                 * copy too (the move is not confirmed; it gives up after SESSION_MOVE_TIMEOUT_MS). */
            } else if (session_wire_import(s, (const uint8_t *)natsMsg_GetData(tr->blob),
                                           (size_t)natsMsg_GetDataLength(tr->blob), w->now) < 0) {
                log_printf(TLOG_WARNING, "Warning: cluster: the session of client %s from node %s is malformed; "
                                         "it starts a new one.", id, tr->owner);
                session_end(s);
            } else {
                connect_req_set_moved(cn->pending, tr->owner);
            }
            session_release(s);
        }
        conn_connect_resumed(cn);
    }
    natsMsg_Destroy(tr->blob);
    free(tr);
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
    pthread_mutex_init(&c->t_lock, NULL);
    pthread_cond_init(&c->t_cond, NULL);
    snprintf(c->tail_subject, sizeof(c->tail_subject), "tombo.r.%s", c->node);
    c->remote = subtree_new(NULL);
    c->self = node_get(c, c->node, c->node_len);
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
    if ((s = watch_renew_init(c)) != NATS_OK)
        return fail(c, "key-value buckets", s);
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
    snprintf(subj, sizeof(subj), "tombo.take.%s", c->node);
    s = natsConnection_Subscribe(&c->sub_take, c->nc, subj, on_take, c);
    snprintf(subj, sizeof(subj), "tombo.took.%s", c->node);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&c->sub_took, c->nc, subj, on_took, c);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&c->sub_tail, c->nc, c->tail_subject, on_tail, c);
    if (s != NATS_OK)
        return fail(c, "cannot subscribe to this node's session subjects", s);
    for (int i = 0; i < TAKE_THREADS; i++) {
        if (pthread_create(&c->taker[i], NULL, taker_main, c) != 0)
            return fail(c, "cannot start a taker thread", NATS_NO_MEMORY);
        c->n_takers++;
    }
    if (b->cluster_js && cluster_js_start(b, on_forward, c) < 0)
        return -1;
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        wt->c = c;
        wt->bucket = i;
        pthread_mutex_init(&wt->mu, NULL);
        wt->base = stream_last_seq(c, i);
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
    natsSubscription *subs[] = {c->sub, c->sub_take, c->sub_took, c->sub_tail};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (subs[i]) {
            natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    pthread_mutex_lock(&c->t_lock); /* takers answer what is left with nothing, then end */
    c->t_stop = true;
    pthread_cond_broadcast(&c->t_cond);
    pthread_mutex_unlock(&c->t_lock);
    for (int i = 0; i < c->n_takers; i++)
        pthread_join(c->taker[i], NULL);
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        if (!wt->c)
            continue; /* cluster_start did not get this far */
        pthread_mutex_lock(&wt->mu); /* stopping is set: watch_renew makes no new one */
        if (wt->w)
            kvWatcher_Stop(wt->w);
        pthread_mutex_unlock(&wt->mu);
        if (wt->started)
            pthread_join(wt->thread, NULL);
        kvWatcher_Destroy(wt->w);
        pthread_mutex_destroy(&wt->mu);
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
    for (int i = 0; i < N_BUCKETS; i++) {
        kvStore_Destroy(c->kv[i]);
        kvStore_Destroy(c->kv_renew[i]);
    }
    jsCtx_Destroy(c->js);
    jsCtx_Destroy(c->js_renew);
    if (c->nc) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
    }
    natsOptions_Destroy(c->opts);
    /* NATS messages the workers did not take any more go before nats.c does. */
    for (int i = 0; b->workers && i < b->n_workers; i++)
        worker_drop_inbox(&b->workers[i]);
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
        free(c->cw[i].buf2);
        free(c->cw[i].g);
        free(c->cw[i].gbuf);
        free(c->cw[i].to);
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
    while (c->t_head) {
        takeop_t *op = c->t_head;
        c->t_head = op->next;
        free(op);
    }
    pthread_mutex_destroy(&c->t_lock);
    pthread_cond_destroy(&c->t_cond);
    while (c->moved) { /* stopped within a grace period: the session stays here too */
        moved_t *x = c->moved;
        c->moved = x->next;
        session_release(x->s);
        free(x->reply);
        free(x);
    }
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
