/* broker.h -- the broker as a whole: configuration, workers, shared stores, statistics.
 * There is no global: everything reaches the broker through a `broker_t *`. */
#ifndef TOMBO_BROKER_BROKER_H
#define TOMBO_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "broker/backpressure.h"
#include "broker/config.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "broker/timers.h"


struct worker;

typedef struct broker {
    struct tombo_config cfg;
    struct worker *workers;
    int n_workers;
    struct auth **auth;  /* one per cfg.listeners[i] (all the same one unless per_listener_settings) */
    int *listen_fds;    /* one per cfg.listeners[i]; -1 for an optional one that could not bind */
    atomic_int *listen_clients; /* per listener with max_connections: connections open on it, taken
                                 * at accept by any worker, given back at close (exact) */
    struct tls_listeners *tls; /* TLS listeners' contexts (transport_tls.c) */
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

    timers_t timers;           /* session expiry and delayed wills (worker 0 runs them) */

    bp_marks_t bp;             /* backpressure marks (backpressure.h) */
    atomic_ulong msgs_dropped; /* messages for slow consumers and full offline queues */

    atomic_ulong clients_total;
    atomic_ulong clients_expired; /* sessions ended by their expiry interval */
    struct sys_state *sys;        /* $SYS: last values and load averages (sys.c; worker 0) */
    struct log_topic *log_topic;  /* log_dest topic: lines waiting for worker 0 (log_topic.h) */
    atomic_ulong clients_maximum;
    atomic_ulong auto_id_counter;
} broker_t;

int broker_init(broker_t *b);
int broker_run(broker_t *b);   /* starts the workers, returns after stop */
void broker_free(broker_t *b);
/* SIGHUP (worker 0): reopen the log file (logrotate's postrotate sends it, as for Mosquitto),
 * read the password and ACL files again, and the TLS listeners' certificates, keys, CRLs and PSK
 * file (for new connections); a file that no longer loads keeps its previous contents. */
void broker_reload(broker_t *b);

/* $SYS (sys.c), from worker 0: every topic at start, then each sys_interval those whose value
 * changed; sys_free at the end. */
void sys_publish(broker_t *b);
void sys_free(broker_t *b);

#endif
