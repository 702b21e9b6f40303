/* mem.h -- allocation that aborts on out-of-memory instead of returning NULL (base layer: no MQTT,
 * no broker). For servers only: the client library returns errors instead. */
#ifndef TOMBO_BASE_MEM_H
#define TOMBO_BASE_MEM_H

#include <stdatomic.h>
#include <stddef.h>

/* Each returns memory for free(); none returns NULL (it aborts, with the size, on stderr). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
/* A NUL-terminated copy of the first n bytes of s (which need not be terminated). */
char *xstrndup(const char *s, size_t n);
/* A copy of s, or NULL when s is NULL. */
char *xstrdup(const char *s);

/* ---- heap accounting ----
 * One count of the bytes the broker holds in its own allocators (slab.h blocks: messages,
 * deliveries, packet buffers, output queues, connections), for `memory_limit` and $SYS heap/current and heap/maximum.
 * Design: each thread adds to a counter of its own with a plain load and store (no locked
 * instruction on the allocation path); a block freed on another thread than the one that took it
 * makes the first thread's counter grow and the second's shrink, so only the sum means anything.
 * mem_used() sums the counters (a few dozen threads at most): call it once per loop turn, not per
 * packet. A thread beyond MEM_THREADS shares one last counter, with an atomic add. */
#define MEM_THREADS 63

typedef struct mem_slot {
    _Alignas(64) atomic_long n;
} mem_slot_t;

/* The calling thread's counter (taken on first use; never given back). */
mem_slot_t *mem_slot_get(void);
extern _Thread_local mem_slot_t *mem_tls_slot;
extern mem_slot_t mem_shared_slot;

/* Count `delta` bytes taken (> 0) or given back (< 0) by the calling thread. */
static inline void mem_account(long delta)
{
    mem_slot_t *s = mem_tls_slot;
    if (!s)
        s = mem_slot_get();
    if (s == &mem_shared_slot)
        atomic_fetch_add_explicit(&s->n, delta, memory_order_relaxed);
    else
        atomic_store_explicit(&s->n, atomic_load_explicit(&s->n, memory_order_relaxed) + delta, memory_order_relaxed);
}
/* Bytes held now (the sum over threads; a momentary view while others allocate), and the highest
 * value mem_used() has returned. Any thread. */
size_t mem_used(void);
size_t mem_peak(void);

#endif
