/* subtree.h -- the subscription tree: which sessions receive a PUBLISH to a given topic.
 *
 * A trie of topic levels shared by every worker thread (design after FlashMQ's subscriptionstore):
 * each node has its exact-name children in a hash table and dedicated slots for the '+' and '#'
 * children, so a match walks only the branches that can match. Read-mostly: subtree_match takes the
 * read lock, subtree_add/subtree_remove the write lock (writer-preferring, so a flood of PUBLISHes
 * cannot starve a SUBSCRIBE). Receivers are collected under the read lock into a caller-owned
 * sub_result_t and delivered by the caller after the lock is released, or, in a batch
 * (subtree_batch_begin), while the batch still holds it.
 *
 * Owners are opaque pointers (the broker passes session_t *); the tree never dereferences them. It
 * holds no reference of its own: the caller must remove an owner's subscriptions before the owner is
 * freed (session_end does). */
#ifndef TOMBO_BROKER_SUBTREE_H
#define TOMBO_BROKER_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct subtree subtree_t;

/* MQTT 5 subscribe options byte [MQTT-3.8.3.1]. v3 subscriptions pass just the QoS. */
#define SUB_OPT_QOS(o) ((uint8_t)((o) & 0x03))
#define SUB_OPT_NO_LOCAL 0x04
#define SUB_OPT_RAP 0x08 /* retain as published */
#define SUB_OPT_RETAIN_HANDLING(o) ((uint8_t)(((o) >> 4) & 0x03))

/* Create an empty tree. `hold` (may be NULL) is called under the read lock for each entry that
 * subtree_match appends to a result, so the caller can take a reference that keeps the owner alive
 * after the lock is released; the caller drops that reference after delivering. Returns NULL on OOM. */
subtree_t *subtree_new(void (*hold)(void *owner));
/* Free the tree and every subscription in it (owners are not touched). No other thread may use it. */
void subtree_free(subtree_t *t);

/* Have changed(ctx, filter, n, present) called, under the write lock, when a filter gets its first
 * ordinary subscription (present) or loses its last (!present), and when a shared group gets its
 * first member or loses its last: then `filter` is the group's "$share/GROUP/FILTER". The cluster
 * announces the filters and groups this node has subscribers for. Set once, before other threads
 * use the tree; changed must not call back into this tree. */
void subtree_observe(subtree_t *t, void (*changed)(void *ctx, const uint8_t *filter, size_t n, bool present),
                     void *ctx);

/* Add or replace owner's subscription to `filter` (n bytes, a valid topic filter as checked by
 * mqtt_topic_filter_valid, maybe "$share/GROUP/FILTER"). options: see SUB_OPT_*; sub_id 0 = none.
 * Returns 1 if it replaced an existing subscription of the same owner to the same filter (for a
 * shared one: same group and filter), 0 if it is new, -1 on out-of-memory (tree unchanged).
 * Thread-safe (write lock). */
int subtree_add(subtree_t *t, const uint8_t *filter, size_t n, void *owner, uint8_t options, uint32_t sub_id);
/* Remove owner's subscription to `filter` (same spelling as added, "$share/..." included); returns
 * true if it existed. Nodes left empty are freed at once. Thread-safe (write lock). */
bool subtree_remove(subtree_t *t, const uint8_t *filter, size_t n, void *owner);

/* One receiver of a message. For ordinary subscriptions, overlapping subscriptions of the same owner
 * are merged into ONE entry [MQTT-3.3.5-1]: qos = max QoS of the matching subscriptions,
 * retain_as_published if any of them has it, and every non-zero subscription identifier (ids[] at
 * ids_off, n_ids of them, in no particular order). A shared subscription yields its own entry
 * (shared = 1) for the one group member chosen, never merged with the owner's other subscriptions
 * (spec 4.8.2: it is a separate delivery). The caller delivers at min(published QoS, qos). */
typedef struct sub_match {
    void *owner;
    uint8_t qos;
    uint8_t retain_as_published;
    uint8_t shared;
    uint32_t n_ids;
    uint32_t ids_off;
} sub_match_t;

struct sub_seen;
struct sub_frame;
struct sub_level;
struct sub_idpair;

/* A reusable result vector, owned by one thread. Once grown it is reused without allocation.
 * Public (read-only after subtree_match): v[0..n), ids[0..n_ids). The rest is private scratch. */
typedef struct sub_result {
    sub_match_t *v;
    size_t n, cap;
    uint32_t *ids;
    size_t n_ids, cap_ids;
    /* --- private --- */
    struct sub_seen *seen;   /* owner -> index in v, open addressing; slots valid when gen matches */
    size_t seen_cap, seen_n;
    uint32_t gen;
    struct sub_level *lv;    /* the topic split into levels */
    size_t cap_lv;
    struct sub_frame *stk;   /* explicit DFS stack (no recursion: a topic may have 32k levels) */
    size_t cap_stk;
    struct sub_idpair *pairs; /* (entry, id) collected before ids[] is laid out */
    size_t n_pairs, cap_pairs;
} sub_result_t;

static inline const uint32_t *sub_match_ids(const sub_result_t *r, const sub_match_t *m)
{
    return m->n_ids ? r->ids + m->ids_off : NULL;
}

void sub_result_init(sub_result_t *r);
void sub_result_free(sub_result_t *r);

/* Collect the receivers of a PUBLISH to `topic` (n bytes, a valid topic name) from `publisher`
 * (owner pointer, or NULL for broker-originated messages such as wills and $SYS) into r (cleared
 * first). Skips the publisher's own no-local subscriptions; picks exactly one member per matching
 * shared group, round robin; '$'-topics are not matched by '+' or '#' at the first level
 * [MQTT-4.7.2-1]. Calls hold(owner) once per entry appended. Thread-safe (read lock); aborts on
 * out-of-memory while growing r (the broker's OOM policy). */
void subtree_match(subtree_t *t, const uint8_t *topic, size_t n, const void *publisher, sub_result_t *r);

/* Which shared groups take part in a match: called under the read lock once for each group that
 * matches, with the group's "$share/GROUP/FILTER" (its identity: the same group name under two
 * filters is two groups), before a member is picked, so a group left out keeps its round robin
 * where it was. Returns false to leave the group out. Must not call into the tree. */
typedef bool (*sub_group_fn)(void *ctx, const uint8_t *share, size_t n);
/* subtree_match, with fn (NULL: every group) choosing the groups. The shared entries of r are in
 * the order of the fn calls that returned true (the cluster pairs each with its group that way). */
void subtree_match_groups(subtree_t *t, const uint8_t *topic, size_t n, const void *publisher, sub_result_t *r,
                          sub_group_fn fn, void *ctx);

/* A batch of matches on the calling thread (the PUBLISHes of one socket read): the read lock is
 * taken by the first subtree_match inside it and kept until subtree_batch_end, instead of taken
 * and released per match (a locked add and a fence each: 7% of the broker's CPU in unthrottled
 * QoS 0 pairs). While a batch holds it, the caller may take other locks (a session's, the
 * journal's) but must not wait for another worker; subtree_add and subtree_remove on the same
 * thread give the batch's hold back first, so a SUBSCRIBE or a session ending within the batch does
 * not wait for itself. A writer on another thread waits for the batch to end: keep batches short
 * (one read). Nestable; calls on another tree are unaffected. */
void subtree_batch_begin(subtree_t *t);
void subtree_batch_end(subtree_t *t);

/* Number of subscriptions (shared members included), for $SYS. Thread-safe, lock-free. */
size_t subtree_count(subtree_t *t);
/* Of those, members of shared subscriptions ($share/GROUP/FILTER), for $SYS. */
size_t subtree_shared_count(subtree_t *t);

#endif
