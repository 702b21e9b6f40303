/* levels.h -- the children of one topic-level node: an open-addressing table keyed by level name.
 *
 * Shared by the subscription tree (subtree.c) and the retained-message store (retain.c): both are
 * tries of topic levels whose nodes keep their exact-name children in this table.
 *
 * Layout contract (generic over the node type without an extra indirection): a node struct has a
 * level_key_t as its FIRST member and its level name in a flexible array member `name[]` at a fixed
 * offset (pass offsetof(node, name) as name_off). The table stores pointers to the nodes' keys, so a
 * lookup reads hv/len/name straight from the child node, as before the extraction; a level_key_t *
 * from the table converts back to the node pointer with a plain cast.
 *
 * The table: linear probing, capacity a power of two kept at most half full, backward-shift deletion
 * (no tombstones), slot array freed when the last child goes. It owns only the slot array, never the
 * nodes. No locking here: the tree's lock covers it (lookups under the read lock, add/del under the
 * write lock); level_kids_find allocates nothing. */
#ifndef TOMBO_BROKER_LEVELS_H
#define TOMBO_BROKER_LEVELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/hash.h"

/* First member of every node: the hash and length of its level name. */
typedef struct level_key {
    uint32_t hv;  /* level_hash of the name */
    uint32_t len; /* of the name */
} level_key_t;

/* The exact-name children of one node. Zero-initialised = empty. */
typedef struct level_kids {
    level_key_t **slot; /* cap entries, NULL = empty; NULL while there are no children */
    uint32_t n, cap;
} level_kids_t;

/* The hash of one topic level. */
static inline uint32_t level_hash(const uint8_t *s, size_t n)
{
    return fnv1a32(s, n);
}

/* The level name of a node whose name[] is at name_off. */
static inline const uint8_t *level_name(const level_key_t *k, size_t name_off)
{
    return (const uint8_t *)k + name_off;
}

/* The child named name (n bytes, hash hv), or NULL. Inline: it is the hot step of every match. */
static inline level_key_t *level_kids_find(const level_kids_t *t, const uint8_t *name, size_t n, uint32_t hv,
                                           size_t name_off)
{
    if (!t->n)
        return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
        level_key_t *k = t->slot[i];
        if (!k)
            return NULL;
        if (k->hv == hv && k->len == n && memcmp(level_name(k, name_off), name, n) == 0)
            return k;
    }
}

/* Allocate a zeroed node of `size` bytes plus n name bytes at name_off (offsetof(node, name)),
 * with its key filled in. Returns NULL on OOM. The caller frees it with free(). */
void *level_node_new(size_t size, size_t name_off, const uint8_t *name, size_t n, uint32_t hv);

/* Add child k (its name must not be present). Returns 0, or -1 on OOM with the table unchanged. */
int level_kids_add(level_kids_t *t, level_key_t *k);
/* Remove child k, which must be present. Frees the slot array when the last child goes. */
void level_kids_del(level_kids_t *t, level_key_t *k);

/* For tearing a tree down only: detach and return some child, or NULL when none is left. The table
 * is consumed without being kept consistent; call level_kids_free afterwards. */
level_key_t *level_kids_take(level_kids_t *t);
/* Free the slot array (not the children). */
void level_kids_free(level_kids_t *t);

#endif
