/* cluster_int.h -- what the files of the cluster share and nothing else includes: cluster.c (routes,
 * forwarding, shared groups, the writer thread, lifetime), cluster_watch.c (the bucket watchers) and
 * cluster_move.c (sessions that move between nodes). The design note is in cluster.c. */
#ifndef TOMBO_BROKER_CLUSTER_INT_H
#define TOMBO_BROKER_CLUSTER_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/session.h"
#include "broker/subtree.h"

struct worker;
struct inbox_item;

/* The forwarding header's versions (cluster.c's design note): 4 carries the message's cluster
 * identity and its recipients; 5 is 4 with the shared groups the receiver serves. Still read: 1 (no
 * recipients), 2 (recipients), 3 (2 with the groups), all without an identity. */
#define WIRE_VERSION 4
#define WIRE_VERSION_GROUPS 5
#define WIRE_VERSION_MAX 5
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
#define STOP_WRITES_MS 3000  /* stopping: the bucket writes still queued get this long, then are dropped */
#define LINK_WAIT_MS 1000    /* NATS away: the writer's longest wait for on_reconnected or a stop, which wake it */
#define MOVE_GRACE_MS 1000   /* a moved session's routes stay this long on the old node (see cluster_move.c) */
extern const char *const cluster_bucket_name[N_BUCKETS];

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
    long sent;         /* messages that followed it so far */
    int64_t due;
} moved_t;

/* The answer, to the connection's worker (CL_TAKE_REPLY's data). */
typedef struct take_reply {
    natsMsg *blob;  /* the session (NULL: none: start a fresh one) */
    char owner[65]; /* the node it comes from */
    bool from_js;   /* owner dead: blob is its copy in tombo_sessions (cluster_sess.c) */
    uint64_t upto;  /* then: the stream tombo_msgs's last sequence when it was read */
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
    uint64_t seq; /* the last cluster identity's sequence this worker gave (msg.h) */
} cworker_t;

struct cluster {
    broker_t *b;
    const char *node; /* b->cfg.cluster_node */
    size_t node_len;
    uint64_t origin; /* this run of this node in the messages' cluster identities (msg.h; never 0) */
    natsOptions *opts;
    bool tls; /* TLS to NATS: see cluster_free */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv[N_BUCKETS];
    jsCtx *js_renew; /* the watchers' checks and renewals: a shorter request timeout (WATCH_RENEW_WAIT_MS) */
    kvStore *kv_renew[N_BUCKETS];
    natsSubscription *sub;
    subtree_t *remote;
    atomic_long n_remote; /* subscriptions in `remote`: none, and a message needs no match there */
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

/* ---- cluster.c ---- */

/* A malloc'ed key: PREFIX B64(data) (base64url, padded), or NULL when it would be too long for NATS. */
char *cluster_key_of(const char *prefix, const uint8_t *data, size_t n);
/* Decode s[0..n) into out (at least n bytes); returns the length, or -1 when s is not base64url. */
long cluster_b64_decode(const char *s, size_t n, uint8_t *out);
/* Any thread: hand op to the writer thread, in order. */
void cluster_queue_push(cluster_t *c, kvop_t *op);
/* The node called name[0..n), linked on first sight (NULL: a name too long). */
cnode_t *cluster_node_get(cluster_t *c, const char *name, size_t n);

/* Worker w: the message of forwarding encoding d[0..n) (its shared groups ignored), or NULL;
 * *to_self: it was sent to this node too. */
msg_t *cluster_decode_msg(struct worker *w, const uint8_t *d, size_t n, bool *to_self);

/* ---- cluster_sess.c (cluster_sessions jetstream) ---- */

/* Taker thread: `owner` did not answer: its copy of client id's session in tombo_sessions as a
 * message to import (NULL: none), and the stream's last sequence then in *upto. */
natsMsg *cluster_sess_fetch(cluster_t *c, const char *id, size_t idlen, const char *owner, uint64_t *upto);

/* ---- cluster_watch.c ---- */

/* Broker's thread, cluster_init: the JetStream context the watchers' checks use. */
natsStatus cluster_watch_init(cluster_t *c);
/* Broker's thread, cluster_start: a watcher thread per bucket. Returns NATS_OK or what failed
 * (*what names it). */
natsStatus cluster_watch_start(cluster_t *c, const char **what);
/* Broker's thread, cluster_stop (c->stopping set): stop and join the watchers. */
void cluster_watch_stop(cluster_t *c);
/* Disconnect s's connection here unless our last write of its client id is later than rev (the
 * revision of another node's write). */
void cluster_kick_if_older(cluster_t *c, session_t *s, uint64_t rev, const char *other);
/* Any thread: another node wrote s's client id at `rev`, after this node's last write: unless s is
 * moving away, worker 0 ends it here (cluster_move.c's move_drop). */
void cluster_lost(cluster_t *c, session_t *s, uint64_t rev);

/* ---- cluster_move.c ---- */

/* Broker's thread, cluster_init. */
void cluster_move_init(cluster_t *c);
/* Broker's thread, cluster_start: this node's move subjects and the taker threads. Returns NATS_OK
 * or what failed (*what names it). */
natsStatus cluster_move_start(cluster_t *c, const char **what);
/* Broker's thread, cluster_stop: no more subjects; the takers answer what is left with nothing and
 * end. */
void cluster_move_stop(cluster_t *c);
/* Broker's thread, cluster_stop after the workers' inboxes are dropped: free what is left. */
void cluster_move_free(cluster_t *c);
/* Worker w: an INBOX_CLUSTER item of a move (CL_TAKE .. CL_TAIL). */
void cluster_move_on_item(struct worker *w, struct inbox_item *it);

#endif
