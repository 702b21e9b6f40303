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
 * core NATS, subject tombo.n.NODE, as [1: version 4][4: message expiry left, s, 0: none][1: n]
 * [n: source node][8: origin][8: sequence][1: k][k times [1: n][n: a node it is sent to]][a v5
 * PUBLISH, packet id 1] (versions 1 and 2, without the identity, 1 without the recipients too, are
 * still read). Origin and sequence are the message's cluster identity (msg.h), given here once: a
 * session that moved between nodes queues one identity once (dedup.h). The v5 encoding is the
 * message's shared one
 * (msg_encoded), made once. nats.c buffers what is published and its flusher thread writes it, so
 * the sends of a loop turn go out together. The receiving node delivers it as a local publish
 * (msg->from_cluster): never forwarded again, so no loop. Shared groups: one node serves each, see
 * "shared subscriptions" below (wire version 5, or 3 before, lists the groups the receiver serves).
 *
 * Threads: nats.c calls back on threads of its own, which never touch a worker's state: each
 * message or bucket change is posted to a worker's inbox (INBOX_CLUSTER), messages from one source
 * node always to the same worker, so their order holds. Bucket writes (blocking request-replies)
 * run on one writer thread fed by a queue; each bucket has a watcher thread (cluster_watch.c).
 *
 * The files: this one (keys, the writer thread, forwarding, shared groups, the worker side,
 * lifetime), cluster_watch.c (the bucket watchers), cluster_move.c (sessions that move between
 * nodes), cluster_js.c (below), sharing cluster_int.h.
 *
 * With cluster_durability jetstream, QoS 1/2 messages go to the other nodes through a JetStream
 * stream instead of core NATS, and their publishers' acknowledgements wait for it: cluster_js.c. */
#include "broker/cluster_int.h"
#include "broker/cluster_js.h"
#include "broker/cluster_sess.h"

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

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/inbox.h"
#include "broker/msg.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/store.h"
#include "broker/subtree.h"
#include "broker/worker.h"
#include "mqtt/packet.h"
#include "pwhash/pwhash.h"

const char *const cluster_bucket_name[N_BUCKETS] = {"tombo_routes", "tombo_retain", "tombo_clients"};

/* ---- keys: base64url (RFC 4648 section 5), padded: valid NATS key characters ---- */

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    int len = pwhash_b64_encode(in, n, out, 4 * ((n + 2) / 3) + 1);
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

long cluster_b64_decode(const char *s, size_t n, uint8_t *out)
{
    char *t = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i] == '+' || s[i] == '/' ? '!' : s[i];
    int r = pwhash_b64_decode(t, n, out, n);
    free(t);
    return r;
}

char *cluster_key_of(const char *prefix, const uint8_t *data, size_t n)
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

void cluster_queue_push(cluster_t *c, kvop_t *op)
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
    cluster_queue_push(c, op);
}

static void enqueue(cluster_t *c, int bucket, char *key, const uint8_t *val, int len, bool del)
{
    enqueue_op(c, bucket, key, val, len, del, NULL);
}

/* Our write of a client id is in the bucket at revision rev (0: it failed): a write of another
 * node seen meanwhile with a later revision means the client went there after. */
static void client_written(cluster_t *c, session_t *s, uint64_t rev)
{
    uint64_t foreign = session_cluster_written(s, rev);
    if (foreign > rev)
        cluster_kick_if_older(c, s, foreign, "another node");
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
    int64_t stop_by = 0; /* once stopping: the writes left get until then (each may wait for a timeout) */
    long dropped = 0;
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
        if (stop && !stop_by)
            stop_by = now_ms() + STOP_WRITES_MS;
        if (stop && (!atomic_load(&c->link_up) || now_ms() >= stop_by)) {
            /* Stopping without NATS: what is left cannot be written; the routes stay in the bucket
             * until this node starts again (withdraw_routes), messages sent to them meanwhile go
             * nowhere, as they would to a node killed with kill -9. */
            c->q_head = op->next;
            if (!c->q_head)
                c->q_tail = NULL;
            pthread_mutex_unlock(&c->q_lock);
            dropped++;
            kvop_free(op);
            continue;
        }
        if (!stop && !atomic_load(&c->link_up)) {
            /* NATS unreachable: rather than spend a request timeout on each write while nats.c
             * reconnects, sleep until on_reconnected (or cluster_stop) signals. Both change their
             * flag before taking q_lock to signal, and link_up is read here under it, so neither
             * wake-up is lost; the bound is a safety net only. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += LINK_WAIT_MS / 1000;
            until.tv_nsec += (LINK_WAIT_MS % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->q_cond, &c->q_lock, &until);
            pthread_mutex_unlock(&c->q_lock);
            continue;
        }
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
                           cluster_bucket_name[op->bucket], natsStatus_GetText(s));
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
    if (dropped || !atomic_load(&c->link_up) || (stop_by && now_ms() >= stop_by)) {
        log_printf(TLOG_WARNING, "Warning: cluster: NATS unreachable while stopping: %ld bucket writes not made; "
                                 "this node's routes stay in the bucket until it starts again.", dropped);
        return NULL;
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
    char *key = cluster_key_of(prefix, filter, n);
    if (!key) {
        log_printf(TLOG_WARNING, "Warning: cluster: a filter of %zu bytes is too long to be announced to the "
                                 "other nodes; its subscribers get only this node's messages.", n);
        return;
    }
    enqueue(c, B_ROUTES, key, (const uint8_t *)"1", 1, !present);
}

/* ---- nodes ---- */

cnode_t *cluster_node_get(cluster_t *c, const char *name, size_t n)
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

/* The header's length up to the groups or the recipients, of a wire form whose first 6 bytes are
 * there and whose version is known. */
static size_t wire_head(const uint8_t *d) { return 6 + (size_t)d[5] + (d[0] >= 4 ? 16 : 0); }
static bool wire_known(uint8_t v) { return v >= 1 && v <= WIRE_VERSION_MAX; }
static bool wire_has_groups(uint8_t v) { return v == 3 || v == WIRE_VERSION_GROUPS; }

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The wire form of m into cw->buf, naming the nodes of `to` (n_to of them) as its recipients:
 * see the design note. Returns its length. */
static size_t encode(cluster_t *c, cworker_t *cw, msg_t *m, int64_t now, const sub_match_t *to, size_t n_to)
{
    const msg_enc_t *e = msg_encoded(m, MQTT_V5, m->qos, m->retain);
    size_t names = 1;
    for (size_t i = 0; i < n_to && i < 255; i++)
        names += 1 + strlen(((cnode_t *)to[i].owner)->name);
    size_t need = 6 + c->node_len + 16 + names + e->len;
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
    put64(p + 6 + c->node_len, m->cluster_origin);
    put64(p + 6 + c->node_len + 8, m->cluster_seq);
    uint8_t *q = p + 6 + c->node_len + 16;
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
    if (present ? subtree_add(c->remote, share, n, c->self, 0, 0) == 0 : subtree_remove(c->remote, share, n, c->self))
        atomic_fetch_add(&c->n_remote, present ? 1 : -1);
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

/* The wire form in cw->buf (len bytes, version 4) as version 5 in cw->buf2, with the groups node x
 * serves: [4: k] k x [2: length][the group's "$share/GROUP/FILTER"] after the identity. Returns
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
    size_t head = 6 + c->node_len + 16;
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

/* The groups of a version 3 or 5 wire form (d[0..n), its head checked) into cw, for
 * cluster_share_keep; returns the offset of the recipients, or 0 when malformed. */
static size_t decode_groups(cworker_t *cw, const uint8_t *d, size_t n)
{
    size_t p = wire_head(d);
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
    r->n = 0;
    /* A node alone in the cluster, or whose peers subscribe to nothing, pays no match (and no read
     * lock) for its own traffic: a route that arrives meanwhile is seen from the next message on. */
    if (atomic_load_explicit(&c->n_remote, memory_order_relaxed) > 0)
        subtree_match_groups(c->remote, m->topic.p, m->topic.len, NULL, r, group_seen, cw);
    for (size_t i = 0, k = 0; i < r->n; i++) /* the node picked for each group, in match order */
        if (r->v[i].shared)
            cw->g[k++].node = r->v[i].owner;
    if (!m->cluster_seq) { /* published here: its identity, given once */
        m->cluster_origin = c->origin;
        m->cluster_seq = (uint64_t)w->index << 48 | ++cw->seq;
    }
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
    if (!nto && !m->retain)
        return 0; /* only this node's own shared groups matched: nothing to encode */
    size_t len = encode(c, cw, m, w->now, cw->to, nto);
    if (m->retain) {
        char *key = cluster_key_of(NULL, m->topic.p, m->topic.len);
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
    if (n < 6 || !wire_known(d[0]) || wire_head(d) > (size_t)n) {
        natsMsg_Destroy(msg);
        return;
    }
    broker_t *b = c->b;
    int wi = (int)(fnv1a32(d + 6, d[5]) % (uint32_t)b->n_workers);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_PUBLISH, .data = msg};
    worker_post(&b->workers[wi], &it);
}

/* Decode a wire form into a message (NULL when malformed). A version 3 or 5 form's groups go to cw
 * (NULL: not expected, the retained bucket's; its messages get no identity either: a retained
 * message sent on a subscription is a delivery of its own). */
static msg_t *decode(cluster_t *c, const uint8_t *d, size_t n, int64_t now, cworker_t *cw)
{
    if (n < 6 || !wire_known(d[0]) || wire_head(d) > n)
        return NULL;
    size_t off = wire_head(d);
    if (wire_has_groups(d[0]) && (!cw || !(off = decode_groups(cw, d, n))))
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
                cnode_t *x = cluster_node_get(c, (const char *)pub + 1, xl);
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
    if (d[0] >= 4 && cw) {
        m->cluster_origin = get64(d + 6 + d[5]);
        m->cluster_seq = get64(d + 6 + d[5] + 8);
    }
    return m;
}

msg_t *cluster_decode_msg(worker_t *w, const uint8_t *d, size_t n, bool *to_self)
{
    cluster_t *c = w->b->cluster;
    cworker_t *cw = &c->cw[w->index];
    groups_clear(cw);
    msg_t *m = decode(c, d, n, w->now, cw);
    *to_self = false;
    if (m && d[0] >= 2) { /* decode leaves this node out of m->cluster_to: look for it in the list */
        size_t off = d[0] == WIRE_VERSION_GROUPS ? decode_groups(cw, d, n) : 6 + (size_t)d[5];
        size_t k = off < n ? d[off++] : 0;
        for (size_t i = 0; i < k && off < n && off + 1 + d[off] <= n; i++) {
            size_t xl = d[off];
            if (xl == c->node_len && !memcmp(d + off + 1, c->node, xl))
                *to_self = true;
            off += 1 + xl;
        }
    }
    groups_clear(cw);
    return m;
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
        cworker_t *cw = &c->cw[w->index];
        groups_clear(cw);
        cw->only = true; /* this node serves the groups the message lists, and no other */
        msg_t *m = decode(c, (const uint8_t *)natsMsg_GetData(nm), (size_t)n, w->now, cw);
        if (m) {
            atomic_fetch_add_explicit(&c->fwd_received, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->fwd_bytes_received, (unsigned long)n, memory_order_relaxed);
        }
        if (m && w->b->cluster_js && natsMsg_GetReply(nm)) {
            cluster_js_route(w->b->cluster_js, w, nm, m); /* from the stream: redeliveries checked */
        } else {
            if (m)
                route_publish_give(w, m, NULL, NULL);
            cluster_js_delivered(w->b->cluster_js, w, nm); /* from the stream: acknowledged after the commit */
        }
        groups_clear(cw);
    } else if (it->rc == CL_RETAIN) {
        kvEntry *e = it->data;
        const char *k = kvEntry_Key(e);
        size_t kl = strlen(k);
        uint8_t *topic = xmalloc(kl + 1);
        long tn = cluster_b64_decode(k, kl, topic);
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
    } else if (it->rc == CL_SESS_DRAIN) {
        cluster_sess_on_item(w, it);
    } else if (it->rc == CL_KICK) {
        conn_t *cn = conn_lookup(w, it->fd, it->conn_id);
        if (cn && cn->state == CONN_ACTIVE && !cn->waiting)
            conn_fail(cn, MQTT_RC_SESSION_TAKEN_OVER, "client id connected on another cluster node");
    } else {
        cluster_move_on_item(w, it);
    }
}

void cluster_item_free(inbox_item_t *it)
{
    if (it->kind == INBOX_KICK_CONN || it->rc == CL_PUBLISH || it->rc == CL_TAKE || it->rc == CL_TOOK ||
        it->rc == CL_TAIL) {
        natsMsg_Destroy(it->data);
    } else if (it->rc == CL_RETAIN) {
        kvEntry_Destroy(it->data);
    } else if (it->rc == CL_SESS_DRAIN) {
        cluster_sess_item_free(it);
    } else if (it->rc == CL_TAKE_REPLY) {
        take_reply_t *tr = it->data;
        natsMsg_Destroy(tr->blob);
        free(tr);
    }
}

void cluster_client_connected(cluster_t *c, session_t *s)
{
    char *key = cluster_key_of(NULL, (const uint8_t *)s->client_id, s->client_id_len);
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
    /* The bucket writer waits for this while NATS is away (writer_main). */
    pthread_mutex_lock(&c->q_lock);
    pthread_cond_signal(&c->q_cond);
    pthread_mutex_unlock(&c->q_lock);
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
    /* This run's own (the node's name, the time and pid): a restarted node's sequences start again. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->origin = fnv1a64(c->node, c->node_len) ^ ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                (uint64_t)getpid() << 40;
    if (!c->origin)
        c->origin = 1;
    pthread_mutex_init(&c->nodes_lock, NULL);
    pthread_mutex_init(&c->q_lock, NULL);
    pthread_cond_init(&c->q_cond, NULL);
    cluster_move_init(c);
    c->remote = subtree_new(NULL);
    c->self = cluster_node_get(c, c->node, c->node_len);
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
        s = js_KeyValue(&c->kv[i], c->js, cluster_bucket_name[i]);
        if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = cluster_bucket_name[i];
            kc.History = 1;
            kc.Replicas = cfg->cluster_replicas ? cfg->cluster_replicas : 1;
            s = js_CreateKeyValue(&c->kv[i], c->js, &kc);
            if (s != NATS_OK) /* another node created it first */
                s = js_KeyValue(&c->kv[i], c->js, cluster_bucket_name[i]);
        }
        if (s != NATS_OK) {
            char what[100];
            snprintf(what, sizeof(what), "key-value bucket %s (is JetStream enabled?)", cluster_bucket_name[i]);
            return fail(c, what, s);
        }
    }
    if ((s = cluster_watch_init(c)) != NATS_OK)
        return fail(c, "key-value buckets", s);
    if (cfg->cluster_durability && cluster_js_init(b, c->nc, c->node) < 0)
        return -1;
    if (cfg->cluster_sessions && cluster_sess_init(b) < 0)
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
    const char *what = NULL;
    if ((s = cluster_move_start(c, &what)) != NATS_OK)
        return fail(c, what, s);
    if (b->cluster_js && cluster_js_start(b, on_forward, c) < 0)
        return -1;
    if ((s = cluster_watch_start(c, &what)) != NATS_OK)
        return fail(c, what, s);
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
    /* NATS unreachable (or gone a moment ago, before nats.c noticed: no PONG within a second):
     * close the connection first, so what follows (stopping the watchers deletes their consumers,
     * the JetStream subscriptions theirs, the writer's last bucket writes) fails at once instead
     * of each request waiting out its timeout while nats.c reconnects: 3 watchers took 15 s. */
    if (c->nc && (!atomic_load(&c->link_up) || natsConnection_FlushTimeout(c->nc, 1000) != NATS_OK)) {
        atomic_store(&c->link_up, 0);
        natsConnection_Close(c->nc);
    }
    cluster_js_stop(b);
    cluster_sess_stop(b);
    if (c->sub) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    cluster_move_stop(c);
    cluster_watch_stop(c);
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
    cluster_sess_free(b);
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
    cluster_move_free(c);
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
