/* session.h -- an MQTT session: subscriptions, queued and in-flight messages, will.
 *
 * Design: a session outlives its network connections (clean session 0 / session expiry) and is
 * reached from every worker thread (any publisher may deliver to it), so it is a shared object with
 * its own mutex and an atomic reference count. The connection that currently carries it belongs to
 * exactly one worker (`worker`); delivering from another thread appends to the session's queue under
 * the mutex and asks that worker, through its inbox, to flush the session once per loop turn.
 *
 * Ownership: the registry (client id -> session) holds one reference while the session exists; the
 * connection attached to it holds one; subtree_match takes a temporary one per receiver; timers hold
 * one. Messages in queue/inflight each hold a msg_t reference. */
#ifndef TOMBO_BROKER_SESSION_H
#define TOMBO_BROKER_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/mpsc.h"
#include "broker/msg.h"

struct conn;
struct broker;

enum out_state { OUT_QUEUED = 0, OUT_WAIT_PUBACK, OUT_WAIT_PUBREC, OUT_WAIT_PUBCOMP };

/* A message on its way to one subscriber. */
typedef struct outmsg {
    msg_t *msg;       /* NULL for a slot already acknowledged (inflight ring holes) or a PUBREL-only entry */
    uint16_t id;      /* packet identifier once in flight */
    uint8_t qos;      /* QoS granted to this delivery (min of published and subscribed) */
    uint8_t retain;   /* retain flag to send */
    uint8_t state;    /* enum out_state */
    uint8_t dup;      /* sent before: set DUP on resend */
    uint16_t n_ids;   /* subscription identifiers */
    uint32_t seq;     /* per session, in delivery order: its key in the persistence store */
    union {
        uint32_t one;
        uint32_t *many; /* n_ids > 1: heap array owned by this entry */
    } ids;
} outmsg_t;

/* Deliveries made without the session's lock (session_deliver's fast path). A publishing worker
 * gathers what it delivers to one session during a loop turn into a batch (its staging table,
 * worker.h) and pushes the batch on the session's `incoming` stack with one compare-and-swap, one
 * backlog update and one flush request: at the end of the turn, when the batch is full, or when
 * another session takes its slot. The next holder of the lock (its worker's flush, at the latest)
 * moves the entries into the queue in order. A delivery with subscription identifiers goes alone
 * (cap 1), the identifiers after its entry. */
typedef struct delivery_ent {
    msg_t *msg; /* one reference */
    uint8_t qos, retain;
    uint16_t n_ids;
} delivery_ent_t;
typedef struct delivery {
    mpsc_node_t link; /* first: the next older batch on the stack (base/mpsc.h's list shape) */
    uint32_t n, cap;
    uint64_t bytes; /* payload bytes of its messages: the backlog they add */
    delivery_ent_t e[];
} delivery_t;
#define DELIVERY_BATCH 64                 /* entries of a staged batch (a 1 KB slab block) */
#define DELIVERY_BATCH_BYTES (64u * 1024) /* payload bytes after which a batch goes at once */
static inline const uint32_t *delivery_ids(const delivery_t *d) { return (const uint32_t *)(d->e + d->cap); }

/* Its subscription identifiers (n_ids of them). */
static inline const uint32_t *outmsg_ids(const outmsg_t *o) { return o->n_ids > 1 ? o->ids.many : &o->ids.one; }

/* A FIFO ring of outmsg_t. */
typedef struct outring {
    outmsg_t *v;
    uint32_t head, n, cap;
} outring_t;

/* A subscription as the session remembers it (to remove or restore it). */
typedef struct sess_sub {
    char *filter;
    uint16_t len;
    uint8_t options;
    uint32_t sub_id;
} sess_sub_t;

typedef struct session {
    /* Fields are ordered to leave no padding: one session per client, a million clients. */
    pthread_mutex_t lock;
    atomic_uint refs;
    uint32_t client_id_len;
    char *client_id; /* immutable, NUL-terminated */
    struct broker *broker;

    /* --- guarded by lock --- */
    struct conn *conn;  /* attached connection, or NULL while offline */
    uint64_t conn_id;   /* id and fd of `conn`, to address it across threads without touching it */
    int conn_fd;
    /* The cluster (cluster.c): this node's writes of the client id to the tombo_clients bucket
     * not yet acknowledged, the bucket revision of the last one, and the highest revision of
     * another node's write seen while ours were pending. */
    uint32_t cluster_pending;
    uint64_t cluster_rev, cluster_foreign;
    _Atomic int worker; /* worker owning `conn` (-1: offline); written under lock, read by the fast path */
    uint8_t version;    /* protocol level of the last connection */
    _Atomic uint8_t flush_pending; /* a FLUSH is on its way to `worker` */
    uint8_t ended;      /* removed from the registry; deliveries are dropped */
    uint8_t persist;    /* written to the persistence store (store.h): expiry > 0 and persistence on */
    uint8_t moving;     /* exported to another cluster node, which has not confirmed yet (cluster.c) */
    uint16_t next_id;   /* last packet identifier used towards the client */
    uint32_t expiry;    /* session expiry interval, seconds (UINT32_MAX: never) */
    char *username;     /* of the last connection; NULL: none (ACL identity) */
    const struct auth *auth; /* its listener's auth (NULL: no checks) */
    int64_t expire_at;  /* while offline: monotonic ms when it ends (0: not scheduled) */

    sess_sub_t *subs;
    uint32_t n_subs, cap_subs;

    outring_t queue;     /* waiting for an in-flight slot (or for the client to come back) */
    outring_t inflight;  /* sent, waiting for PUBACK / PUBREC / PUBCOMP, in send order */
    uint32_t inflight_live;  /* entries of inflight with a live state */
    uint32_t inflight_max;   /* min(max_inflight_messages, client's Receive Maximum); 0 = unlimited */
    uint64_t inflight_bytes; /* payload bytes of inflight entries still holding their message (max_inflight_bytes) */
    uint8_t *out_ids;    /* bitmap of packet ids in flight to the client (lazily allocated) */
    uint8_t *in_qos2;    /* bitmap of QoS 2 ids received, awaiting PUBREL (lazily allocated) */
    size_t queued_bytes;
    uint32_t in_qos2_n;
    uint32_t will_delay; /* seconds */
    msg_t *will;         /* will message, or NULL */
    struct dedup *moved_ids; /* moved here from another node lately: the cluster identities queued (dedup.h) */
    int64_t will_at;     /* monotonic ms when the delayed will is due (0: none scheduled) */
    uint32_t out_seq;    /* last outmsg_t.seq given */
    uint32_t moving_seq; /* while moving: out_seq at the export (what queued after follows it) */
    int64_t moving_at;   /* while moving: when it was exported (monotonic ms) */
    int64_t stuck_since; /* ms: over the high-water mark with nothing taken off the queue since */

    /* --- the lock-free delivery path (session_deliver) --- */
    _Atomic(delivery_t *) incoming; /* newest first; taken whole under lock */
    _Atomic uint8_t fast; /* connected, not persistent, not ended: deliveries skip the lock (set
                           * under lock by session_update_fast) */

    /* --- backpressure (backpressure.h) --- */
    _Atomic uint8_t slow;     /* a slow consumer: publishers no longer wait for it */
    atomic_uint backlog_n;    /* messages delivered to it and not yet written: `incoming` + queue */
    _Atomic uint64_t backlog_bytes; /* their payload bytes */
    _Atomic uint64_t progress;      /* messages taken off the queue so far (written or expired) */
    _Atomic uint64_t waiters; /* bit i: worker i has publishers paused until the backlog drains */

    /* --- the store's thread only (cluster_sess_mirror) --- */
    uint32_t mirror_slot; /* its index in the list of sessions of the batch being copied, valid when
                           * that entry names this session (any value is safe to read) */
} session_t;

void session_hold(session_t *s);
void session_release(session_t *s);

/* A new session for a client id with one reference (the registry's): registry_get only. */
session_t *session_new(struct broker *b, const char *id, size_t len);
/* End a session: remove it from the registry and the subscription tree, drop its messages. The
 * caller's reference stays valid. Publishes nothing (the will is the caller's business). */
void session_end(session_t *s);

/* Subscriptions, remembered on the session (caller also updates the tree). Returns true if it
 * replaced an existing subscription to the same filter. */
bool session_sub_add(session_t *s, const uint8_t *filter, size_t n, uint8_t options, uint32_t sub_id);
bool session_sub_remove(session_t *s, const uint8_t *filter, size_t n);

/* Deliver msg to s at `qos` (already downgraded to the granted QoS) with the given subscription
 * identifiers, from worker `from`'s thread. Takes its own msg reference when it keeps the message.
 * Thread-safe. The worker owning the session's connection is asked to flush it: through `from`'s
 * outbox, sent once at the end of the loop turn (worker_send_outbox), so a burst of deliveries to
 * another worker costs one wake-up, not one per message.
 *
 * No lock for a connected session that is not persisted (the common case): the delivery is pushed
 * on the session's lock-free `incoming` stack and the owning worker moves it into the queue (ACL
 * read check and queue limits apply then) when it flushes. Offline and persistent sessions take
 * the session lock: their queue must be journaled, or drained by nobody else. */
struct worker;
void session_deliver(struct worker *from, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain, const uint32_t *ids,
                     uint32_t n_ids);
/* The same, giving the caller's reference to msg to the session (released if it is not queued):
 * one reference count taken and given back less per message. The caller must not touch msg after. */
void session_deliver_give(struct worker *from, session_t *s, msg_t *msg, uint8_t qos, uint8_t retain,
                          const uint32_t *ids, uint32_t n_ids);

/* Push every batch `w` staged (session_deliver): called by w's thread at the end of each loop turn,
 * before its own flush requests are handled, and when it stops. */
void session_stage_flush(struct worker *w);

/* Called by the owning worker (session lock NOT held): move queued messages into flight and encode
 * them onto conn's output buffer. */
void session_flush(session_t *s, struct conn *c);
/* Resend everything in flight, with DUP, after a session resumes on a new connection. Caller holds
 * no lock. */
void session_resend(session_t *s, struct conn *c);

/* Acknowledgements from the client for messages we sent. Return false if the id was not in flight
 * in the expected state. Caller holds no lock, and calls session_flush afterwards: a freed window
 * slot may let queued messages go. */
bool session_puback(session_t *s, uint16_t id);
bool session_pubrec(session_t *s, uint16_t id, bool failed);
bool session_pubcomp(session_t *s, uint16_t id);

/* Inbound QoS 2: remember / forget a packet id awaiting PUBREL. session_qos2_begin returns false if
 * the id was already there (a duplicate: do not deliver again). */
bool session_qos2_begin(session_t *s, uint16_t id);
bool session_qos2_end(session_t *s, uint16_t id);

/* ---- a connection comes and goes (handle_connect.c, conn_close.c) ---- */

/* What a CONNECT brings to its session. Ownership: on SESSION_ATTACHED the session takes `will`
 * (a reference) and `username` (heap); otherwise they stay the caller's. */
typedef struct session_login {
    msg_t *will;             /* NULL: none */
    char *username;          /* NULL: none */
    const struct auth *auth; /* its listener's auth */
    uint32_t will_delay;     /* seconds */
    uint32_t expiry;         /* session expiry interval, seconds */
    uint32_t inflight_max;   /* min(max_inflight_messages, client's Receive Maximum); 0: none */
} session_login_t;

/* Where the connection that holds a session is, to ask its worker to close it (takeover). */
typedef struct session_holder {
    int worker;
    int fd;
    uint64_t conn_id;
} session_holder_t;

enum session_attach_rc {
    SESSION_ATTACHED, /* c now carries s: its will, expiry, identity replaced by `login`'s */
    SESSION_BUSY,     /* another connection holds s (*holder says which); nothing changed */
    SESSION_STALE,    /* `clean` and nobody holds s: end it and attach to a new one */
    SESSION_MOVING,   /* being moved to another cluster node (session_move_out): nothing changed */
};
/* Connection c's worker, no lock held: attach c to s in one step under the session lock, so two
 * CONNECTs with one client id cannot both attach. A delayed will of the previous connection is
 * cancelled [MQTT-3.1.3-9]. `clean`: s existed and the client asked for a clean start. */
int session_attach(session_t *s, struct conn *c, const session_login_t *login, bool clean,
                   session_holder_t *holder);
/* Connection c closed: detach it if it still carries s (returns whether it did; false when it was
 * taken over) and give *expiry, the session's expiry interval. Wakes publishers waiting for s. */
bool session_detach_conn(session_t *s, const struct conn *c, uint32_t *expiry);
/* s went offline with expiry interval `expiry` (not 0): it expires at `at` (monotonic ms) unless
 * `expiry` is UINT32_MAX; with persistence, when it went offline is recorded. The caller adds the
 * BT_SESSION_EXPIRY timer. */
void session_start_expiry(session_t *s, uint32_t expiry, int64_t at);
/* DISCONNECT with a Session Expiry Interval: set it. False, and nothing changed, when the
 * connection had set 0 and asks for another value [MQTT-3.14.2-2]. */
bool session_disconnect_expiry(session_t *s, uint32_t expiry);
/* An INBOX_FLUSH_SESSION reached worker `worker`: the connection to flush s on if that worker
 * still owns it, else NULL (and the flush request is forgotten, so the next delivery asks again). */
struct conn *session_flush_target(session_t *s, int worker);
/* Is a timer (BT_WILL when `will`, else BT_SESSION_EXPIRY) set for `at` still current: s offline,
 * not ended, and still due at exactly that time? */
bool session_timer_current(session_t *s, bool will, int64_t at);
/* Inbound QoS 2: how many ids await PUBREL, and whether `id` is one of them (*dup). */
uint32_t session_qos2_pending(session_t *s, uint16_t id, bool *dup);

/* Wills (will.c). session_take_will: the will, now the caller's reference, and s keeps none (also
 * in the persistence store); NULL when there is none. session_will_pending: whether s has a will
 * waiting, and its delay in seconds; with `discard` (a normal DISCONNECT) the will is dropped and
 * false returned. session_will_schedule: the delayed will is due at `at` (monotonic ms); a BT_WILL
 * timer for another time does nothing. */
msg_t *session_take_will(session_t *s);
bool session_will_pending(session_t *s, bool discard, uint32_t *delay);
void session_will_schedule(session_t *s, int64_t at);

/* May this session's client publish to `topic`? Checks its listener's ACL with the identity of its
 * last connection. Any thread; takes the session lock (the identity changes on reconnect). */
struct auth_msg;
bool session_acl_write(session_t *s, const uint8_t *topic, size_t len, const struct auth_msg *m);
/* The identity of its last connection as the source of a retained message it publishes (retain.h),
 * one reference for the caller; NULL when its listener checks nothing (auth NULL: a bridge's own
 * session, whose messages no ACL applies to). Any thread; takes the session lock. */
struct retain_src *session_retain_src(session_t *s);

/* Read-only views for other threads (the HTTP API, a plugin's disconnect event), each under the
 * session lock, which no file but session.c takes:
 *   session_inspect: fn sees the session locked, so its subscriptions, queues and will hold still;
 *     fn must not call back into session functions (the lock is not recursive).
 *   session_username_dup: a malloc'ed copy of its current user name, or NULL.
 *   session_conn_target: where its connection lives (worker, fd, connection id); false if offline. */
void session_inspect(session_t *s, void (*fn)(const session_t *s, void *arg), void *arg);
char *session_username_dup(session_t *s);
bool session_conn_target(session_t *s, int n_workers, int *worker, int *fd, uint64_t *conn_id);

/* The cluster's client-id ownership (cluster.c; any thread, each takes the session lock). A node
 * writes the client id to the cluster's bucket on each connect and learns the revision later; a
 * write of another node with a later revision means the client went there.
 *   session_cluster_write_begin: one more write of ours on its way.
 *   session_cluster_written: ours landed at `rev` (0: it failed); returns the highest foreign
 *     revision seen while ours were on their way, when none is left pending (else 0).
 *   session_cluster_foreign: another node wrote the id at `rev`; returns false when ours are still
 *     on their way (the decision waits for session_cluster_written), true when it may be decided now.
 *   session_cluster_kick_target: should the connection here go (its write is older than `rev`)?
 *     If so, fills where it lives (worker, fd, connection id).
 *   session_cluster_lost: is s this node's copy of a session whose client went to another node
 *     (its write of the client id is known and older than `rev`) and not moving away already? */
void session_cluster_write_begin(session_t *s);
uint64_t session_cluster_written(session_t *s, uint64_t rev);
bool session_cluster_foreign(session_t *s, uint64_t rev);
bool session_cluster_kick_target(session_t *s, uint64_t rev, int n_workers, int *worker, int *fd, uint64_t *conn_id);
bool session_cluster_lost(session_t *s, uint64_t rev);

void outring_free(outring_t *r);

/* ---- a session moving to another cluster node (cluster.c, session_wire.c) ----
 * A copy of what moves, taken under the lock: the subscriptions (copies), the in-flight entries
 * then the queued ones in delivery order (each holding a msg reference, its ids copied), and the
 * inbound QoS 2 ids awaiting PUBREL. The will, expiry and identity do not move: the CONNECT that
 * takes the session over brings its own. */
#define SESSION_MOVE_TIMEOUT_MS 10000 /* a move not confirmed by then is abandoned: the session stays */
typedef struct session_snap {
    sess_sub_t *subs;
    uint32_t n_subs;
    outmsg_t *out;
    uint32_t n_out;
    uint16_t *in_qos2;
    uint32_t n_in_qos2;
} session_snap_t;
void session_snap_free(session_snap_t *snap);
/* Release snap's message entries only (their msg references and ids); the array stays. */
void session_snap_free_out(session_snap_t *snap);
/* Owning node, worker thread: export s into *snap and mark it moving (a local CONNECT of its
 * client id is refused, SESSION_MOVING, until the move ends). Its delayed will is cancelled: the
 * client has reconnected [MQTT-3.1.3-9]. False (nothing taken) when s is ended, connected, or
 * already moving for less than `timeout_ms` (a move whose confirmation never came is abandoned
 * after that). */
bool session_move_out(session_t *s, session_snap_t *snap, int64_t now, int64_t timeout_ms);
/* Any thread (cluster_sess.c, the store's thread): a copy of s's state as session_move_out takes
 * it, without marking it. False (nothing taken) when s is ended, not persistent or moving. */
bool session_snapshot(session_t *s, session_snap_t *snap);
/* Owning node, once the other node confirmed: *tail gets the messages queued since the export or
 * the previous tail (queue entries only). The caller ends s (session_end) after the last one.
 * False when s is not moving (it ended meanwhile, or the move was abandoned and a client
 * attached here again). */
bool session_move_tail(session_t *s, session_snap_t *tail);
/* Owning node, worker 0, when another node took the session without it (this node did not answer
 * in time): *snap gets every in-flight and queued QoS 1/2 message, moving or not, connected or not
 * (no subscriptions). The caller ends s. False when s ended. */
bool session_move_all(session_t *s, session_snap_t *snap);
/* A bridge's local session (bridge.c): it never expires and, with persistence, is durable from now
 * on, before any connection carries it. */
void session_set_internal(session_t *s);
/* Copies of its subscriptions' filters (malloc'ed, NUL-terminated; the array too); *n of them. */
char **session_sub_filters(session_t *s, uint32_t *n);

/* Start-up (store_load), or a session moving in (session_wire.c): put back a queued or in-flight
 * message read from the persistence store or the other node. Takes its own msg reference; a
 * message whose cluster identity s queued already (session_moved_in) is left out. */
void session_restore_out(session_t *s, const outmsg_t *o, const uint32_t *ids, uint32_t n_ids);
/* New node of a moving session, before its import: for DEDUP_WINDOW_MS from `now`, a QoS 1/2
 * message with a cluster identity s queued already (with the move, or forwarded here directly) is
 * not queued again. */
void session_moved_in(session_t *s, int64_t now);
/* Start-up (recovery): the identity a stored session had (expiry, username or NULL, the auth of its
 * listener), then what it was doing when the broker stopped: it is durable, expires at `expire_at`
 * (0: never), and has `will` (may be NULL; takes its own reference) due at `will_at`. */
void session_restore_identity(session_t *s, uint32_t expiry, const char *username, size_t username_len,
                              const struct auth *auth);
void session_restore_state(session_t *s, int64_t expire_at, msg_t *will, uint32_t will_delay, int64_t will_at);

#endif
