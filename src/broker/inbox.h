/* inbox.h -- a worker's inbox: a lock-free many-producer/one-consumer handoff of item batches,
 * with an eventfd wake-up only when the consumer may be blocked.
 *
 * Design: producers push a chain of batches (newest -> ... -> oldest) onto an atomic singly
 * linked stack with one compare-and-swap; the consumer takes the whole stack with one exchange
 * and reverses it, so each producer's items come out in the order it pushed them (producers are
 * not ordered among themselves). The exchange of the whole stack means no ABA problem.
 *
 * Wake-ups: before blocking, the consumer stores `sleeping = 1` and then checks the stack; a
 * producer pushes and then checks `sleeping`. Both are sequentially consistent, so at least one
 * side sees the other (Dekker): either the consumer finds the batch and does not block, or the
 * producer sees it (maybe) asleep and writes the eventfd. Of several producers, only the one that
 * turns `sleeping` from 1 to 0 writes. A busy consumer costs its producers no system call.
 *
 * Ownership: a batch is a slab block (slab.h) of the producing thread; the consumer owns it once
 * taken and gives it back with slab_free. Items are plain data; what they point to (a session
 * reference) is the consumer's to release. */
#ifndef TOMBO_BROKER_INBOX_H
#define TOMBO_BROKER_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
};
typedef struct inbox_item {
    uint8_t kind;
    uint8_t rc;         /* KICK, DISCONNECT: reason code for the DISCONNECT */
    int fd;             /* KICK, TAKEOVER_DONE, DISCONNECT: connection fd and id */
    uint64_t conn_id;
    struct session *session; /* FLUSH: one reference */
    int reply_worker;   /* KICK: who waits, and which connection */
    int reply_fd;
    uint64_t reply_id;
} inbox_item_t;

/* A batch of items: the unit handed from one thread to another. */
typedef struct inbox_batch {
    struct inbox_batch *next;
    uint32_t n, cap;
    inbox_item_t items[];
} inbox_batch_t;

#define INBOX_BATCH 48 /* items per batch from inbox_append: 16 + 48 * 40 bytes, a 2 KB slab class */

/* The padding keeps the fields producers write off the cache lines of the consumer's own data
 * around it (the struct is embedded in calloc'ed workers, so no _Alignas). */
typedef struct inbox {
    char pad_before[64];
    _Atomic(inbox_batch_t *) top;
    atomic_int sleeping; /* 1 from just before the consumer may block until it wakes */
    int evfd;            /* readable after a wake-up: the consumer polls it with its sockets */
    char pad_after[64];
} inbox_t;

/* A local chain of batches being filled by one producer for one inbox (no atomics). */
typedef struct inbox_chain {
    inbox_batch_t *newest; /* being filled; ->next is the previous one, down to oldest */
    inbox_batch_t *oldest;
} inbox_chain_t;

int inbox_init(inbox_t *q);         /* -1 (errno set) when no eventfd */
void inbox_destroy(inbox_t *q);     /* closes the eventfd; take the leftovers first */

/* Producer side, any thread. */
inbox_batch_t *inbox_batch_new(uint32_t cap);
void inbox_append(inbox_chain_t *ch, const inbox_item_t *it);
/* Push the chain (which is then empty again) and wake the consumer if it may be blocked. */
void inbox_push(inbox_t *q, inbox_chain_t *ch);
/* One item on its own: a batch of one, pushed at once. */
void inbox_post(inbox_t *q, const inbox_item_t *it);

/* Consumer side, its own thread only. */
/* About to block: returns true if items are already waiting (do not block then). */
bool inbox_sleep_begin(inbox_t *q);
void inbox_sleep_end(inbox_t *q);
void inbox_clear_wake(inbox_t *q); /* after the eventfd polled readable */
/* Everything pushed so far, oldest first per producer (a chain to walk with ->next), or NULL. */
inbox_batch_t *inbox_take(inbox_t *q);
/* Reverse a local chain newest -> oldest into oldest -> newest (the consumer's own outbox). */
inbox_batch_t *inbox_chain_fifo(inbox_chain_t *ch);

#endif
