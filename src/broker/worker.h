/* worker.h -- a worker thread: one epoll loop that owns its connections for life, its inbox from
 * the other threads, and the statistics it alone writes. Design note in worker.c. */
#ifndef TOMBO_BROKER_WORKER_H
#define TOMBO_BROKER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/inbox.h"
#include "broker/msg.h"
#include "broker/subtree.h"
#include "broker/wheel.h"

struct broker;
struct conn;

/* Ownership: everything here belongs to the worker's own thread, except where a field says
 * otherwise (inbox, store_wait, the statistics). The worker does not own listen_fds (the broker
 * does) nor pool's blocks still referenced at shutdown (broker_free frees the pool last). */
typedef struct worker {
    struct broker *b;
    int index;
    pthread_t thread;
    int epfd;
    int *listen_fds;
    int n_listen;
    struct slab_pool *pool; /* messages and batches this worker allocates (slab.h) */

    inbox_t inbox;      /* what other threads send this worker (inbox.h) */

    struct conn **conns; /* indexed by fd: connections of this worker */
    int conns_cap;
    uint64_t next_conn_id;
    struct conn *flush_list; /* connections with output to write this turn */
    wheel_t wheel;      /* keepalive deadlines of its connections (wheel.h) */
    int64_t now;        /* ms, refreshed each loop turn */
    sub_result_t match; /* reused for every PUBLISH this worker routes */
    uint32_t turn;      /* loop turns, to coalesce holds on a connection within one */
    _Atomic uint64_t quiescent; /* loop turns begun, stored at the top of each: settings.h */
    struct held { int fd; uint64_t id; } *held; /* connections with output on hold (persistence) */
    size_t n_held, cap_held;
    /* Connections not read for backpressure (backpressure.h), with the receiver's progress when
     * last seen and since when: kept here, not in every connection. */
    struct paused { int fd; uint64_t id; uint64_t progress; int64_t since; } *paused;
    size_t n_paused, cap_paused;
    struct paused *paused_spare; /* the other list bp_check_paused swaps in (no malloc per check) */
    size_t cap_spare;
    uint8_t resume_pending; /* an INBOX_RESUME came: look at them this turn */
    /* Receivers this worker delivered to from publishing connections, and how many messages it
     * gave each in the turn `at` (not handed over before the turn ends): backpressure.c's
     * turn_share, a direct-mapped table by session address. */
    struct bp_turn { const void *s; uint32_t at, n; } bp_turn[8];
    /* Deliveries to other sessions gathered this turn (session.h's delivery_t): a direct-mapped
     * table by session address; a session that takes an occupied slot pushes its occupant's
     * batch first. Each occupied slot holds a reference to its session. */
    struct stage { struct session *s; struct delivery *d; } stage[16];
    uint32_t n_staged; /* occupied slots */
    uint8_t mem_over;       /* memory_limit reached (mem_used(), looked at once per loop turn):
                             * new connections and PUBLISHes are refused */
    int spare_fd;           /* /dev/null, given up to accept-and-close when accept() hits EMFILE */
    int64_t emfile_logged;  /* when that was last logged (ms) */
    _Atomic uint64_t store_wait; /* lowest store sequence a hold waits for (0: none); the store
                                  * thread wakes the worker when it commits that far */
    uint8_t *rbuf;      /* 64 KB scratch every read of this worker goes into first */
    inbox_chain_t *outbox; /* items for worker i, pushed at the end of the turn */

    /* statistics, written by this worker only (stat_add), read by stats.c for $SYS and /metrics */
    atomic_ulong msgs_in[3], msgs_out[3];    /* PUBLISH packets received / sent, by QoS */
    atomic_ulong bytes_in, bytes_out, pub_dropped;
    atomic_ulong pkts_in, pkts_out;          /* MQTT packets of every type */
    atomic_ulong pub_bytes_in, pub_bytes_out; /* PUBLISH payload bytes */
    atomic_ulong sockets, connects;          /* accepted sockets, CONNECT packets */
    msg_stats_t msg_stats;                  /* messages this thread made and freed (msg.h) */
    atomic_ulong loop_turns, loop_busy_ns;  /* loop turns, and time spent in them outside epoll_wait */
    atomic_long clients;
} worker_t;

/* Add to one of a worker's statistics from that worker's own thread: a plain load and store (no
 * locked instruction: nobody else writes it), atomic only so $SYS may read it from another. */
static inline void stat_add(atomic_ulong *c, unsigned long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Lifetime, from the broker's thread: init (epoll, inbox, watches every listening socket), start
 * the thread, and after it has been joined, free. worker_free leaves w->pool (see Ownership). */
int worker_init(worker_t *w, struct broker *b, int index, char *err, size_t errlen);
int worker_start(worker_t *w);
void worker_free(worker_t *w);
/* Once it has been joined: release what its inbox and outboxes still hold (cluster_stop, while
 * the NATS messages in them may still be destroyed). worker_free does it too. */
void worker_drop_inbox(worker_t *w);


/* Safe from any thread: hand `it` to worker w (wakes it if it may be asleep). */
void worker_post(worker_t *w, const inbox_item_t *it);
/* From worker `from`'s own thread: queue `it` for worker `to` (which may be `from` itself); sent at
 * the end of from's loop turn, all items for one worker in one batch. */
void worker_defer(worker_t *from, int to, const inbox_item_t *it);

/* Owning worker, closing c: give back its place under its listener's max_connections (no-op when
 * it holds none). */
void worker_release_place(struct conn *c);
/* Owning worker, each loop turn: release the output holds the store has committed. */
void worker_release_holds(worker_t *w);

#endif
