/* dedup.c -- a bounded window of cluster message identities for a session that moved (dedup.h).
 *
 * A ring of the identities in arrival order, chained by hash into buckets (as many as ring slots,
 * a power of two): a lookup walks one short chain; when the ring is full it doubles, up to
 * DEDUP_MAX, past which the oldest identity is unlinked and its slot reused. Allocated once per
 * moved session and grown by doubling: nothing per message. */
#include "broker/dedup.h"

#include <stdlib.h>

#include "base/mem.h"

#define NONE UINT32_MAX
#define FIRST_CAP 256

typedef struct entry {
    uint64_t origin, seq;
    uint32_t next; /* in its bucket's chain (NONE: last) */
} entry_t;

struct dedup {
    int64_t opened;
    uint32_t cap;  /* ring slots = buckets, a power of two */
    uint32_t head; /* oldest */
    uint32_t n;
    entry_t *e;
    uint32_t *bucket;
};

static uint32_t bucket_of(const dedup_t *d, uint64_t origin, uint64_t seq)
{
    uint64_t h = (origin ^ (seq * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h >> 32) & (d->cap - 1);
}

static void alloc_cap(dedup_t *d, uint32_t cap)
{
    d->cap = cap;
    d->e = xmalloc(cap * sizeof(*d->e));
    d->bucket = xmalloc(cap * sizeof(*d->bucket));
    for (uint32_t i = 0; i < cap; i++)
        d->bucket[i] = NONE;
}

static void link_at(dedup_t *d, uint32_t slot)
{
    uint32_t b = bucket_of(d, d->e[slot].origin, d->e[slot].seq);
    d->e[slot].next = d->bucket[b];
    d->bucket[b] = slot;
}

dedup_t *dedup_new(int64_t now)
{
    dedup_t *d = xcalloc(1, sizeof(*d));
    d->opened = now;
    alloc_cap(d, FIRST_CAP);
    return d;
}

void dedup_free(dedup_t *d)
{
    if (!d)
        return;
    free(d->e);
    free(d->bucket);
    free(d);
}

bool dedup_expired(const dedup_t *d, int64_t now) { return now - d->opened > DEDUP_WINDOW_MS; }

/* Double the ring (full, below DEDUP_MAX): the entries move to slots 0..n-1, oldest first. */
static void grow(dedup_t *d)
{
    entry_t *old = d->e;
    uint32_t *old_b = d->bucket, old_cap = d->cap;
    alloc_cap(d, old_cap * 2);
    for (uint32_t i = 0; i < d->n; i++) {
        d->e[i] = old[(d->head + i) & (old_cap - 1)];
        link_at(d, i);
    }
    d->head = 0;
    free(old);
    free(old_b);
}

/* Full at DEDUP_MAX: unlink the oldest and free its slot. */
static void drop_oldest(dedup_t *d)
{
    uint32_t slot = d->head;
    uint32_t *p = &d->bucket[bucket_of(d, d->e[slot].origin, d->e[slot].seq)];
    while (*p != slot)
        p = &d->e[*p].next;
    *p = d->e[slot].next;
    d->head = (d->head + 1) & (d->cap - 1);
    d->n--;
}

bool dedup_seen(dedup_t *d, uint64_t origin, uint64_t seq)
{
    for (uint32_t i = d->bucket[bucket_of(d, origin, seq)]; i != NONE; i = d->e[i].next)
        if (d->e[i].origin == origin && d->e[i].seq == seq)
            return true;
    if (d->n == d->cap) {
        if (d->cap < DEDUP_MAX)
            grow(d);
        else
            drop_oldest(d);
    }
    uint32_t slot = (d->head + d->n) & (d->cap - 1);
    d->e[slot] = (entry_t){.origin = origin, .seq = seq};
    link_at(d, slot);
    d->n++;
    return false;
}
