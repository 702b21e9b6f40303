/* brlock.c -- the big-reader lock (design note in brlock.h). */
#include "base/brlock.h"

#include <sched.h>

static atomic_uint next_slot;
static _Thread_local unsigned my_slot = ~0u;

void brlock_init(brlock_t *l)
{
    for (unsigned i = 0; i < BRLOCK_SLOTS; i++)
        atomic_init(&l->slot[i].readers, 0);
    atomic_init(&l->writer, 0);
    pthread_mutex_init(&l->wlock, NULL);
}

void brlock_destroy(brlock_t *l) { pthread_mutex_destroy(&l->wlock); }

unsigned brlock_rdlock(brlock_t *l)
{
    if (my_slot == ~0u)
        my_slot = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % BRLOCK_SLOTS;
    unsigned s = my_slot;
    for (;;) {
        atomic_fetch_add(&l->slot[s].readers, 1);
        if (!atomic_load(&l->writer))
            return s;
        /* A writer is in or waiting: step back so it can go, then try again. */
        atomic_fetch_sub_explicit(&l->slot[s].readers, 1, memory_order_release);
        while (atomic_load_explicit(&l->writer, memory_order_acquire))
            sched_yield();
    }
}

void brlock_rdunlock(brlock_t *l, unsigned slot)
{
    atomic_fetch_sub_explicit(&l->slot[slot].readers, 1, memory_order_release);
}

void brlock_wrlock(brlock_t *l)
{
    pthread_mutex_lock(&l->wlock);
    atomic_store(&l->writer, 1);
    for (unsigned i = 0; i < BRLOCK_SLOTS; i++)
        while (atomic_load(&l->slot[i].readers))
            sched_yield();
}

void brlock_wrunlock(brlock_t *l)
{
    atomic_store_explicit(&l->writer, 0, memory_order_release);
    pthread_mutex_unlock(&l->wlock);
}
