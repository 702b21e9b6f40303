/* broker.h -- the broker as a whole: configuration, workers, shared stores, statistics.
 * There is no global: everything reaches the broker through a `broker_t *`. */
#ifndef TOMBO_BROKER_BROKER_H
#define TOMBO_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "broker/backpressure.h"
#include "broker/config.h"
#include "broker/conn.h"
#include "broker/inbox.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subtree.h"

/* Keepalive timer wheel: 256 slots of 250 ms (a 64 s horizon; later deadlines are re-slotted when
 * their slot comes round). */
#define WHEEL_SLOTS 256
#define WHEEL_TICK_MS 250

typedef struct worker {
    struct broker *b;
    int index;
    pthread_t thread;
    int epfd;
    int *listen_fds;
    int n_listen;
    struct slab_pool *pool; /* messages and batches this worker allocates (slab.h) */

    inbox_t inbox;      /* what other threads send this worker (inbox.h) */

    conn_t **conns;     /* indexed by fd: connections of this worker */
    int conns_cap;
    uint64_t next_conn_id;
    conn_t *flush_list; /* connections with output to write this turn */
    conn_t *wheel[WHEEL_SLOTS];
    int64_t wheel_now;  /* ticks (now / WHEEL_TICK_MS): last slot processed */
    int64_t now;        /* ms, refreshed each loop turn */
    sub_result_t match; /* reused for every PUBLISH this worker routes */
    uint32_t turn;      /* loop turns, to coalesce holds on a connection within one */
    struct held { int fd; uint64_t id; } *held; /* connections with output on hold (persistence) */
    size_t n_held, cap_held;
    struct held *paused; /* connections not read for backpressure (backpressure.h) */
    size_t n_paused, cap_paused;
    uint8_t resume_pending; /* an INBOX_RESUME came: look at them this turn */
    _Atomic uint64_t store_wait; /* lowest store sequence a hold waits for (0: none); the store
                                  * thread wakes the worker when it commits that far */
    uint8_t *rbuf;      /* 64 KB scratch every read of this worker goes into first */
    inbox_chain_t *outbox; /* items for worker i, pushed at the end of the turn */

    /* statistics, written by this worker only, read by $SYS */
    atomic_ulong msgs_in, msgs_out, bytes_in, bytes_out, pub_dropped;
    atomic_long clients;
} worker_t;

typedef struct broker {
    struct tombo_config cfg;
    worker_t *workers;
    int n_workers;
    struct auth **auth;  /* one per cfg.listeners[i] (all the same one unless per_listener_settings) */
    int *listen_fds;    /* one per cfg.listeners[i]; -1 for an optional one that could not bind */
    atomic_int stop;
    atomic_int reload;  /* SIGHUP: worker 0 reopens the log file */
    int64_t started_ms;
    time_t started_wall;

    subtree_t *subs;
    retain_t *retained;
    struct store *store; /* persistence, or NULL */
    struct authq *authq; /* password checks off the workers */

    pthread_mutex_t reg_lock;  /* guards the session registry */
    struct registry *reg;

    pthread_mutex_t timers_lock; /* session expiry and delayed wills (worker 0 runs them) */
    struct btimer *timers;
    size_t n_timers, cap_timers;

    bp_marks_t bp;             /* backpressure marks (backpressure.h) */
    atomic_ulong msgs_dropped; /* messages for slow consumers and full offline queues */

    atomic_ulong clients_total;
    atomic_ulong clients_maximum;
    atomic_ulong auto_id_counter;
} broker_t;

int broker_init(broker_t *b);
int broker_run(broker_t *b);   /* starts the workers, returns after stop */
void broker_free(broker_t *b);
/* SIGHUP (worker 0): reopen the log file (logrotate's postrotate sends it, as for Mosquitto) and
 * read the password and ACL files again; a file that no longer loads keeps its previous contents. */
void broker_reload(broker_t *b);

/* Broker internals shared by broker.c, worker.c, session.c (one thread each at start-up and
 * shutdown; the rest run on worker threads as their comments say). */
struct registry *registry_new(void);
void registry_free(broker_t *b);     /* ends every session: shutdown only */
int listen_on(const char *host, int port, char *err, size_t errlen);
int worker_init(worker_t *w, broker_t *b, int index, char *err, size_t errlen);
int worker_start(worker_t *w);
void worker_free(worker_t *w);
void broker_timers_run(broker_t *b, int64_t now); /* worker 0, each loop turn */
/* (Re)place c on its worker's keepalive wheel after its deadline changed. Owning worker only. */
void wheel_schedule(conn_t *c);
/* Take c off its worker's wheel (closing). Owning worker only. */
void wheel_unlink(conn_t *c);

/* Worker API, safe from any thread. */
void worker_post(worker_t *w, const inbox_item_t *it);
/* From worker `from`'s own thread: queue `it` for worker `to` (which may be `from` itself); sent at
 * the end of from's loop turn, all items for one worker in one batch. */
void worker_defer(worker_t *from, int to, const inbox_item_t *it);
/* Global timers (session expiry, will delay): fire `kind` for s at `at_ms`. Takes a reference. */
enum btimer_kind { BT_SESSION_EXPIRY, BT_WILL };
void broker_timer_add(broker_t *b, int64_t at_ms, int kind, session_t *s);

/* Publish a session's will now (if it has one) and forget it. */
void session_publish_will(worker_t *w, session_t *s);

/* $SYS */
void sys_publish(broker_t *b);

#endif
