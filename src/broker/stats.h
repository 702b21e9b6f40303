/* stats.h -- the broker's statistics in one place: $SYS (sys.c) and the HTTP endpoint's /metrics
 * and /api/v1/stats (api.c) read the same snapshot through stats_gather, so they cannot disagree.
 *
 * Sources: each worker's own counters (worker.h, written with stat_add by that worker alone,
 * summed here with relaxed loads), the broker's (drops, expiries, the highest client count), the
 * registry, the subscription tree, the retained store and the messages alive (msg.h). A snapshot
 * is not atomic as a whole: counters move while it is taken, each one is exact when read. */
#ifndef TOMBO_BROKER_STATS_H
#define TOMBO_BROKER_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/journal.h"

struct broker;

#define STATS_MAX_WORKERS 1024 /* `threads` allows at most this many */

typedef struct stats {
    uint64_t bytes_in, bytes_out;       /* every byte read from / written to client sockets */
    uint64_t pkts_in, pkts_out;         /* MQTT packets of every type */
    uint64_t pub_in[3], pub_out[3];     /* PUBLISH packets by QoS */
    uint64_t pub_in_total, pub_out_total;
    uint64_t pub_bytes_in, pub_bytes_out; /* PUBLISH payload bytes */
    uint64_t pub_dropped;               /* messages dropped: queue limits, slow consumers, ... */
    uint64_t sockets, connects;         /* accepted sockets, CONNECT packets */
    uint64_t clients_connected;         /* sockets open now */
    uint64_t sessions;                  /* sessions listed (connected or not) */
    uint64_t clients_maximum, clients_expired;
    uint64_t msgs_alive, msg_bytes_alive; /* messages held in memory and their payload bytes */
    uint64_t subscriptions, shared_subscriptions;
    uint64_t retained;
    uint64_t uptime_s;
    bool persistence;                   /* commit: the store's commit durations (persistence only) */
    journal_hist_t commit;
    int n_workers;
    struct stats_worker {
        uint64_t clients, turns, busy_ns;
    } *workers; /* n_workers entries, owned by the snapshot: stats_done frees them */
} stats_t;

/* Any thread: fill s (stats_done frees it). Takes the registry lock for a moment (its count). */
void stats_gather(struct broker *b, stats_t *s);
void stats_done(stats_t *s);

#endif
