/* levels.c -- the children table of a topic-level node (see levels.h): node allocation and the
 * write-side operations (add with doubling, backward-shift delete, teardown). Lookups are inline in
 * levels.h. Not thread-safe by itself: callers hold their tree's write lock. */
#include "broker/levels.h"

#include <stdbool.h>
#include <stdlib.h>

void *level_node_new(size_t size, size_t name_off, const uint8_t *name, size_t n, uint32_t hv)
{
    level_key_t *k = calloc(1, size + n);
    if (!k)
        return NULL;
    k->hv = hv;
    k->len = (uint32_t)n;
    if (n)
        memcpy((uint8_t *)k + name_off, name, n);
    return k;
}

static void kids_put(level_key_t **slot, uint32_t cap, level_key_t *k)
{
    uint32_t mask = cap - 1;
    uint32_t i = k->hv & mask;
    while (slot[i])
        i = (i + 1) & mask;
    slot[i] = k;
}

int level_kids_add(level_kids_t *t, level_key_t *k)
{
    if ((t->n + 1) * 2 > t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 4;
        level_key_t **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->slot[i])
                kids_put(slot, cap, t->slot[i]);
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    kids_put(t->slot, t->cap, k);
    t->n++;
    return 0;
}

void level_kids_del(level_kids_t *t, level_key_t *k)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = k->hv & mask;
    while (t->slot[i] != k)
        i = (i + 1) & mask;
    t->slot[i] = NULL;
    for (uint32_t j = (i + 1) & mask; t->slot[j]; j = (j + 1) & mask) {
        uint32_t home = t->slot[j]->hv & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slot[i] = t->slot[j];
            t->slot[j] = NULL;
            i = j;
        }
    }
    if (--t->n == 0)
        level_kids_free(t);
}

level_key_t *level_kids_take(level_kids_t *t)
{
    while (t->cap) {
        level_key_t *k = t->slot[--t->cap];
        if (k)
            return k;
    }
    return NULL;
}

void level_kids_free(level_kids_t *t)
{
    free(t->slot);
    t->slot = NULL;
    t->n = 0;
    t->cap = 0;
}
