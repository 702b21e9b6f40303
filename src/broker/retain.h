/* retain.h -- the retained-message store: at most one message per topic, found by topic filter.
 *
 * Shared by every worker thread (one rwlock: PUBLISH with retain takes the write lock, SUBSCRIBE's
 * lookup the read lock). A trie of topic levels, so a wildcard lookup visits only the matching
 * branches instead of every retained topic.
 *
 * Ownership: messages are opaque reference-counted pointers (the broker passes msg_t *). The store
 * holds one reference per retained message, taken with `hold` in retain_set and dropped with
 * `release` when the message is replaced, cleared or the store is freed. With each message it keeps
 * its source (retain_src_t: who published it, for check_retain_source), one reference each. */
#ifndef TOMBO_BROKER_RETAIN_H
#define TOMBO_BROKER_RETAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct retain_store retain_t;
struct auth;

/* The source of a retained message: the identity its publisher had (Mosquitto's source_id,
 * source_username and source_listener), so that delivery can check that the publisher may still
 * write the topic under the ACL in force (check_retain_source). Immutable once made; reference
 * counted, so a subscriber can check it after the store's lock is dropped.
 * Ownership: username points into the same allocation; auth is the listener's, never freed while
 * the broker runs (auth.h: reloads swap its rules, not the pointer). */
typedef struct retain_src {
    atomic_uint refs;
    const struct auth *auth; /* the ACL of the listener it came through (NULL: no checks) */
    char *username;          /* NULL: an anonymous publisher */
    uint32_t client_id_len, username_len;
    char client_id[];        /* NUL-terminated */
} retain_src_t;

/* A new source with one reference (client_id and username are copied; username NULL: none).
 * Aborts on out-of-memory (the broker's rule, base/mem.h). */
retain_src_t *retain_src_new(const char *client_id, size_t idlen, const char *username, size_t ulen,
                             const struct auth *auth);
static inline retain_src_t *retain_src_hold(retain_src_t *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}
/* Drop one reference (s may be NULL). */
void retain_src_release(retain_src_t *s);

/* Create an empty store. hold/release must not be NULL. Returns NULL on OOM. */
retain_t *retain_new(void (*hold)(void *msg), void (*release)(void *msg));
/* Release every message and free the store. No other thread may use it. */
void retain_free(retain_t *rs);

/* Make msg the retained message of `topic` (n bytes, a valid topic name), taking one reference
 * (hold) and releasing the message it replaces; msg == NULL clears the topic (a PUBLISH with retain
 * and an empty payload). `src` is who published it (NULL: the broker itself, never re-checked); the
 * store takes its own reference to it, the caller keeps its own. The old message and source are
 * released after the lock is dropped. Returns 0, or -1 on out-of-memory (store unchanged, no
 * reference taken). Thread-safe. */
int retain_set(retain_t *rs, const uint8_t *topic, size_t n, void *msg, retain_src_t *src);

/* Have changed(ctx, topic, n, msg, src) called, under the write lock, whenever a topic's retained
 * message is replaced or cleared (msg NULL, src NULL): the persistence journal records it in the
 * store's own order. Set once, before other threads use the store. */
void retain_observe(retain_t *rs,
                    void (*changed)(void *ctx, const uint8_t *topic, size_t n, void *msg, const retain_src_t *src),
                    void *ctx);

/* Call cb(msg, src, arg) for every retained message whose topic matches `filter` (n bytes, a valid
 * filter without the "$share/GROUP/" prefix: strip it first). Wildcards at the first level do not
 * match topics starting with '$' [MQTT-4.7.2-1]. Each message is held before cb and cb owns that
 * reference (it must release it); src (NULL: no source) is valid until cb returns. The messages
 * are collected under the read lock and cb runs after it is released, so cb may call back into the
 * store. Order is unspecified. Returns the number of callbacks made, or -1 on out-of-memory (no
 * callback made). Thread-safe. */
long retain_match(retain_t *rs, const uint8_t *filter, size_t n,
                  void (*cb)(void *msg, const retain_src_t *src, void *arg), void *arg);

/* Number of retained messages, for $SYS. Thread-safe, lock-free. */
size_t retain_count(retain_t *rs);

#endif
