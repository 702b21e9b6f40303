/* settings.h -- the settings SIGHUP may change (mosquitto.conf's "reloaded on reload signal"
 * directives), as one immutable snapshot that the workers read and a reload replaces.
 *
 * Design: the workers read these settings on every CONNECT, PUBLISH and delivery, so they must be
 * cheap to read and safe to replace while every worker runs. A snapshot is built whole, never
 * changed, and published with one atomic pointer store (settings_publish); a reader loads the
 * pointer once (broker_settings) and uses it until the end of its loop turn at the latest. The
 * old snapshot is freed only once every worker has begun a new loop turn after the swap (each
 * worker counts its turns in `quiescent`, worker.c): no reader can still hold it (quiescent-state
 * reclamation, as RCU does, with the loop turn as the quiescent point). No lock on the read side.
 *
 * Everything else of the configuration (listeners, persistence, threads, ...) stays in the broker's
 * `cfg`, read-only for the broker's life: a reload that changes it logs "cannot be reloaded"
 * (reload.c). The reloadable fields of `cfg` keep their start-up values and must not be read once
 * the workers run: read them here.
 *
 * Thread-safety: settings_publish and settings_reclaim run on worker 0 (SIGHUP's reload) or before
 * the workers start; broker_settings from any worker. */
#ifndef TOMBO_BROKER_SETTINGS_H
#define TOMBO_BROKER_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/backpressure.h"

struct broker;
struct tombo_config;

/* A listener's security settings (the global ones copied, unless per_listener_settings). */
typedef struct listener_settings {
    bool allow_anonymous;
    bool allow_zero_length_clientid;
    char *auto_id_prefix;
} listener_settings_t;

/* Ownership: the snapshot owns `l` and its strings; immutable once published. */
typedef struct settings {
    uint32_t max_queued_messages;   /* 0: no limit */
    uint64_t max_queued_bytes;
    uint32_t max_inflight_messages;
    uint64_t max_inflight_bytes;    /* 0: no limit */
    uint64_t memory_limit;          /* bytes of the heap count (mem.h); 0: no limit */
    uint32_t message_size_limit;
    uint32_t max_packet_size;
    uint32_t max_keepalive;
    uint32_t persistent_client_expiration;
    uint32_t sys_interval;
    bool set_tcp_nodelay;
    bool retain_available;
    bool queue_qos0_messages;
    bool connection_messages;
    bool upgrade_outgoing_qos;
    bool check_retain_source;       /* handle_subscribe.c: the publisher of a retained message may still write it */
    char *clientid_prefixes;        /* NULL: any client id */
    bp_marks_t bp;                  /* backpressure marks, from max_queued_* */
    int n_listeners;
    listener_settings_t *l;         /* indexed like the broker's cfg.listeners */
} settings_t;

/* A snapshot of cfg's reloadable settings. The listener settings are indexed like `boot`'s
 * listeners (the ones the broker opened): for each, the settings of the listener of cfg with the
 * same socket (config_listener_same); one cfg no longer has keeps those of `prev`, and so do all of
 * them when `security` is false (prev NULL at start-up: boot == cfg). */
settings_t *settings_new(const struct tombo_config *cfg, const struct tombo_config *boot, const settings_t *prev,
                         bool security);
void settings_free(settings_t *s);

/* Make s the broker's settings; the previous snapshot is freed by settings_reclaim once no worker
 * can hold it (all of them, at the broker's end: settings_free_all). */
void settings_publish(struct broker *b, settings_t *s);
/* Worker 0, once per loop turn: free the snapshots every worker has moved past. */
void settings_reclaim(struct broker *b);
/* The broker's end, after the workers stopped. */
void settings_free_all(struct broker *b);

#endif
