/* broker.h -- the broker as a whole: configuration, workers, shared stores, statistics.
 * There is no global: everything reaches the broker through a `broker_t *`. */
#ifndef TOMBO_BROKER_BROKER_H
#define TOMBO_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "broker/backpressure.h"
#include "broker/config.h"
#include "broker/retain.h"
#include "broker/settings.h"
#include "broker/subtree.h"
#include "broker/timers.h"


struct worker;

typedef struct broker {
    struct tombo_config cfg;   /* as read at start-up; its reloadable fields: see `settings` */
    settings_t *_Atomic settings;      /* what SIGHUP may change (settings.h): broker_settings() */
    struct settings_retired *retired; /* replaced snapshots not yet freed (worker 0) */
    struct worker *workers;
    int n_workers;
    struct auth **auth;  /* one per cfg.listeners[i] (all the same one unless per_listener_settings) */
    int *listen_fds;    /* one per cfg.listeners[i]; -1 for an optional one that could not bind */
    atomic_int *listen_clients; /* per listener with max_connections: connections open on it, taken
                                 * at accept by any worker, given back at close (exact) */
    struct tls_listeners *tls; /* TLS listeners' contexts (transport_tls.c) */
    atomic_int stop;
    atomic_int reload;  /* SIGHUP: worker 0 reloads (reload.c) */
    int64_t started_ms;
    time_t started_wall;

    subtree_t *subs;
    retain_t *retained;
    struct store *store; /* persistence, or NULL */
    struct authq *_Atomic authq; /* password checks off the workers; a reload may start it */

    pthread_mutex_t reg_lock;  /* guards the session registry */
    struct registry *reg;

    timers_t timers;           /* session expiry and delayed wills (worker 0 runs them) */

    atomic_ulong msgs_dropped; /* messages for slow consumers and full offline queues */

    atomic_ulong clients_total;
    atomic_ulong clients_expired; /* sessions ended by their expiry interval */
    struct sys_state *sys;        /* $SYS: last values and load averages (sys.c; worker 0) */
    struct log_topic *log_topic;  /* log_dest topic: lines waiting for worker 0 (log_topic.h) */
    atomic_ulong clients_maximum;
    struct trace *trace;          /* the dashboard's packet trace of one client (trace.h) */
    struct httpd *httpd;          /* the HTTP endpoint (httpd.h), or NULL */
    atomic_ulong auto_id_counter;
    struct bridge *bridges;       /* one per cfg.bridges[i], each driven by one worker (bridge.c) */
    int n_bridges;
    struct cluster *cluster;      /* cluster_node: this node of a NATS cluster (cluster.c), or NULL */
    struct cluster_js *cluster_js; /* cluster_durability jetstream (cluster_js.c), or NULL */
    struct cluster_sess *cluster_sess; /* cluster_sessions jetstream (cluster_sess.c), or NULL */
} broker_t;

int broker_init(broker_t *b);
int broker_run(broker_t *b);   /* starts the workers, returns after stop */
void broker_free(broker_t *b);
/* SIGHUP (worker 0, reload.c): read the config file again and apply what Mosquitto reloads (the
 * settings, the log, password and ACL files, http_password_file, TLS certificates); what cannot change without a restart
 * is logged as such; a file that no longer parses keeps everything as it was. */
void broker_reload(broker_t *b);

/* The settings in force (settings.h): load once, use within the current loop turn. */
static inline const settings_t *broker_settings(const broker_t *b)
{
    return atomic_load_explicit(&((broker_t *)b)->settings, memory_order_acquire);
}

/* $SYS (sys.c), from worker 0: every topic at start, then each sys_interval those whose value
 * changed; sys_free at the end. */
void sys_publish(broker_t *b);
void sys_free(broker_t *b);

#endif
