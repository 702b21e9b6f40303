/* brlock.h -- a big-reader lock (base layer): readers on different threads touch no shared cache line.
 *
 * Design: each reading thread counts itself in a slot of its own (BRLOCK_SLOTS slots, one cache line
 * each; threads beyond that share slots, which stays correct since a slot is a counter). A reader
 * increments its slot and then looks at the writer flag; a writer raises the flag and then waits
 * for every slot to empty (sequentially consistent on both sides: one of them sees the other, so a
 * reader never runs alongside a writer). A reader that finds the flag up steps back and waits for
 * the writer to finish: writers are preferred, a stream of readers cannot starve them. Writers
 * are serialised by a mutex and wait by yielding, so they are for rare changes (a SUBSCRIBE against
 * a PUBLISH stream), where a pthread rwlock would make every reader bounce one counter's cache
 * line between the cores (13% of the broker's time in unthrottled QoS 0 pairs). */
#ifndef TOMBO_BASE_BRLOCK_H
#define TOMBO_BASE_BRLOCK_H

#include <pthread.h>
#include <stdatomic.h>

#define BRLOCK_SLOTS 64

typedef struct brlock {
    struct {
        _Alignas(64) atomic_uint readers;
    } slot[BRLOCK_SLOTS];
    _Alignas(64) atomic_int writer;
    pthread_mutex_t wlock;
} brlock_t;

/* The lock lives in memory aligned to 64 bytes (brlock_t's alignment: use aligned_alloc or embed
 * it in such an object). */
void brlock_init(brlock_t *l);
void brlock_destroy(brlock_t *l);

/* Read side: returns the slot to pass to brlock_rdunlock. Not recursive with a write lock. */
unsigned brlock_rdlock(brlock_t *l);
void brlock_rdunlock(brlock_t *l, unsigned slot);
void brlock_wrlock(brlock_t *l);
void brlock_wrunlock(brlock_t *l);

#endif
