/* mpsc.h -- a lock-free many-producer/one-consumer handoff of linked nodes, with an eventfd
 * wake-up only when the consumer may be blocked. It knows nothing of what the nodes carry: a user
 * embeds an mpsc_node_t as the first member of its own batch type (the broker's worker inbox,
 * broker/inbox.h, is one).
 *
 * Design: producers push a chain of nodes (newest -> ... -> oldest) onto an atomic singly linked
 * stack with one compare-and-swap; the consumer takes the whole stack with one exchange and
 * reverses it, so each producer's nodes come out in the order it pushed them (producers are not
 * ordered among themselves). Taking the whole stack at once means no ABA problem.
 *
 * Wake-ups: before blocking, the consumer stores `sleeping = 1` and then checks the stack; a
 * producer pushes and then checks `sleeping`. Both are sequentially consistent, so at least one
 * side sees the other (Dekker): either the consumer finds the nodes and does not block, or the
 * producer sees it (maybe) asleep and writes the eventfd. Of several producers, only the one that
 * turns `sleeping` from 1 to 0 writes. A busy consumer costs its producers no system call.
 *
 * Ownership: a pushed node belongs to the consumer once taken; how it is freed is the user's
 * business (the broker's batches are slab blocks, given back with slab_free). */
#ifndef TOMBO_BASE_MPSC_H
#define TOMBO_BASE_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct mpsc_node {
    struct mpsc_node *next;
} mpsc_node_t;

/* The padding keeps the fields producers write off the cache lines of the consumer's own data
 * around it (the struct is embedded in calloc'ed owners, so no _Alignas). */
typedef struct mpsc {
    char pad_before[64];
    _Atomic(mpsc_node_t *) top;
    atomic_int sleeping; /* 1 from just before the consumer may block until it wakes */
    int evfd;            /* readable after a wake-up: the consumer polls it with its sockets */
    char pad_after[64];
} mpsc_t;

int mpsc_init(mpsc_t *q);     /* -1 (errno set) when no eventfd */
void mpsc_destroy(mpsc_t *q); /* closes the eventfd; take the leftovers first */
static inline int mpsc_fd(const mpsc_t *q) { return q->evfd; }

/* Producer side, any thread. Push the chain newest -> ... -> oldest (linked through ->next;
 * oldest->next is overwritten) and wake the consumer if it may be blocked. */
void mpsc_push(mpsc_t *q, mpsc_node_t *newest, mpsc_node_t *oldest);
/* Make the consumer's eventfd readable whatever it is doing (a stop, a commit it waits for).
 * Only write(2): async-signal-safe. */
void mpsc_wake(mpsc_t *q);

/* Consumer side, its own thread only. */
/* About to block: returns true if nodes are already waiting (do not block then). */
bool mpsc_sleep_begin(mpsc_t *q);
void mpsc_sleep_end(mpsc_t *q);
void mpsc_clear_wake(mpsc_t *q); /* after the eventfd polled readable */
/* Everything pushed so far, oldest first per producer (a list to walk with ->next), or NULL. */
mpsc_node_t *mpsc_take(mpsc_t *q);

/* Reverse a list in place: newest -> oldest becomes oldest -> newest. */
mpsc_node_t *mpsc_reverse(mpsc_node_t *list);

#endif
