/* retain.h -- the retained-message store: at most one message per topic, found by topic filter.
 *
 * Shared by every worker thread (one rwlock: PUBLISH with retain takes the write lock, SUBSCRIBE's
 * lookup the read lock). A trie of topic levels, so a wildcard lookup visits only the matching
 * branches instead of every retained topic.
 *
 * Ownership: messages are opaque reference-counted pointers (the broker passes msg_t *). The store
 * holds one reference per retained message, taken with `hold` in retain_set and dropped with
 * `release` when the message is replaced, cleared or the store is freed. */
#ifndef TOMBO_BROKER_RETAIN_H
#define TOMBO_BROKER_RETAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct retain_store retain_t;

/* Create an empty store. hold/release must not be NULL. Returns NULL on OOM. */
retain_t *retain_new(void (*hold)(void *msg), void (*release)(void *msg));
/* Release every message and free the store. No other thread may use it. */
void retain_free(retain_t *rs);

/* Make msg the retained message of `topic` (n bytes, a valid topic name), taking one reference
 * (hold) and releasing the message it replaces; msg == NULL clears the topic (a PUBLISH with retain
 * and an empty payload). The old message is released after the lock is dropped. Returns 0, or -1 on
 * out-of-memory (store unchanged, no reference taken). Thread-safe. */
int retain_set(retain_t *rs, const uint8_t *topic, size_t n, void *msg);

/* Have changed(ctx, topic, n, msg) called, under the write lock, whenever a topic's retained message
 * is replaced or cleared (msg NULL): the persistence journal records it in the store's own order.
 * Set once, before other threads use the store. */
void retain_observe(retain_t *rs, void (*changed)(void *ctx, const uint8_t *topic, size_t n, void *msg),
                    void *ctx);

/* Call cb(msg, arg) for every retained message whose topic matches `filter` (n bytes, a valid
 * filter without the "$share/GROUP/" prefix: strip it first). Wildcards at the first level do not
 * match topics starting with '$' [MQTT-4.7.2-1]. Each message is held before cb and cb owns that
 * reference (it must release it). The messages are collected under the read lock and cb runs after
 * it is released, so cb may call back into the store. Order is unspecified. Returns the number of
 * callbacks made, or -1 on out-of-memory (no callback made). Thread-safe. */
long retain_match(retain_t *rs, const uint8_t *filter, size_t n, void (*cb)(void *msg, void *arg), void *arg);

/* Number of retained messages, for $SYS. Thread-safe, lock-free. */
size_t retain_count(retain_t *rs);

#endif
