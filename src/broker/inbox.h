/* inbox.h -- a worker's inbox: what other threads send a worker (flush a session, kick or
 * disconnect a connection, a password checked, resume after backpressure), as batches of items
 * handed over through base/mpsc.h (lock-free, many producers, one consumer, an eventfd wake-up
 * only when the worker may be blocked; the design note is there).
 *
 * This file adds what is the broker's: the items, and batches of them that are slab blocks
 * (slab.h) of the producing thread. A producer fills a local chain (inbox_append) during its loop
 * turn and pushes it whole at the end (inbox_push); the consumer owns a batch once taken and gives
 * it back with slab_free. Items are plain data; what they point to (a session reference) is the
 * consumer's to release. */
#ifndef TOMBO_BROKER_INBOX_H
#define TOMBO_BROKER_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/mpsc.h"

struct session;

/* Items other threads send a worker. */
enum inbox_kind {
    INBOX_FLUSH_SESSION, /* write the session's queued messages to its connection */
    INBOX_KICK_CONN,     /* session taken over: drain and close (fd, conn_id), then answer the
                          * waiting connection with INBOX_TAKEOVER_DONE */
    INBOX_TAKEOVER_DONE, /* (fd, conn_id) may now attach to its session */
    INBOX_AUTH_DONE,     /* (fd, conn_id)'s password was checked: rc is the result (authq.h) */
    INBOX_RESUME,        /* a receiver drained: look at the connections paused for backpressure */
    INBOX_DISCONNECT,    /* close (fd, conn_id) with reason code rc (the HTTP API's kick) */
    INBOX_PLUGIN_PUBLISH, /* worker 0: send what plugins published (plugin_publish_drain) */
    INBOX_PLUGIN_KICK,   /* close (fd, conn_id) with reason code rc (a plugin's mosquitto_kick_client_*) */
    INBOX_CLUSTER,       /* from a cluster thread: rc says what, data what it carries (cluster.c) */
    INBOX_ADOPT,         /* a connection another worker accepted for this one (fd; reply_fd: its
                          * listener's index); this worker's client count already has it */
};
typedef struct inbox_item {
    uint8_t kind;
    uint8_t rc;         /* KICK, DISCONNECT: reason code for the DISCONNECT */
    int fd;             /* KICK, TAKEOVER_DONE, DISCONNECT: connection fd and id */
    uint64_t conn_id;
    union {
        struct session *session; /* FLUSH: one reference */
        void *data;              /* CLUSTER: owned by the item (cluster_on_item frees it) */
    };
    int reply_worker;   /* KICK: who waits, and which connection */
    int reply_fd;
    uint64_t reply_id;
} inbox_item_t;

/* A batch of items: the unit handed from one thread to another. The node comes first: a batch
 * is an mpsc_node_t to base/mpsc.h. */
typedef struct inbox_batch {
    mpsc_node_t node;
    uint32_t n, cap;
    inbox_item_t items[];
} inbox_batch_t;

#define INBOX_BATCH 48 /* items per batch from inbox_append: 16 + 48 * 40 bytes, a 2 KB slab class */

typedef struct inbox {
    mpsc_t q;
} inbox_t;

/* A local chain of batches being filled by one producer for one inbox (no atomics). */
typedef struct inbox_chain {
    inbox_batch_t *newest; /* being filled; ->node.next is the previous one, down to oldest */
    inbox_batch_t *oldest;
} inbox_chain_t;

/* The batch after bt in a chain or taken list. */
static inline inbox_batch_t *inbox_next(const inbox_batch_t *bt) { return (inbox_batch_t *)bt->node.next; }

static inline int inbox_init(inbox_t *in) { return mpsc_init(&in->q); } /* -1: no eventfd */
static inline void inbox_destroy(inbox_t *in) { mpsc_destroy(&in->q); } /* take the leftovers first */
static inline int inbox_fd(const inbox_t *in) { return mpsc_fd(&in->q); }

/* Producer side, any thread. */
inbox_batch_t *inbox_batch_new(uint32_t cap);
void inbox_append(inbox_chain_t *ch, const inbox_item_t *it);
/* Push the chain (which is then empty again) and wake the consumer if it may be blocked. */
void inbox_push(inbox_t *in, inbox_chain_t *ch);
/* One item on its own: a batch of one, pushed at once. */
void inbox_post(inbox_t *in, const inbox_item_t *it);
/* Wake the worker whatever it is doing (async-signal-safe: the stop signal uses it). */
static inline void inbox_wake(inbox_t *in) { mpsc_wake(&in->q); }

/* Consumer side, its own thread only. */
/* About to block: returns true if items are already waiting (do not block then). */
static inline bool inbox_sleep_begin(inbox_t *in) { return mpsc_sleep_begin(&in->q); }
static inline void inbox_sleep_end(inbox_t *in) { mpsc_sleep_end(&in->q); }
static inline void inbox_clear_wake(inbox_t *in) { mpsc_clear_wake(&in->q); } /* eventfd was readable */
/* Everything pushed so far, oldest first per producer (walk with inbox_next), or NULL. */
static inline inbox_batch_t *inbox_take(inbox_t *in) { return (inbox_batch_t *)mpsc_take(&in->q); }
/* Reverse a local chain newest -> oldest into oldest -> newest (the consumer's own outbox). */
inbox_batch_t *inbox_chain_fifo(inbox_chain_t *ch);

#endif
