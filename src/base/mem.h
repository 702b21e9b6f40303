/* mem.h -- allocation that aborts on out-of-memory instead of returning NULL (base layer: no MQTT,
 * no broker). For servers only: the client library returns errors instead. */
#ifndef TOMBO_BASE_MEM_H
#define TOMBO_BASE_MEM_H

#include <stddef.h>
#include <stdlib.h>

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
 * deliveries, packet buffers, output queues, connections, sessions), for `memory_limit` and $SYS
 * heap/current and heap/maximum.
 * Design: each thread adds to a plain thread-local sum (no atomic, no shared cache line on the
 * allocation path) and moves it into a counter of its own (one relaxed load and store) once it
 * reaches MEM_BATCH either way, when it calls mem_used(), and when it exits. A block freed on
 * another thread than the one that took it makes the first thread's count grow and the second's
 * shrink, so only the sum means anything. mem_used() sums the counters (a few dozen threads at
 * most): call it once per loop turn, not per packet. Each other thread's count may lag by less
 * than MEM_BATCH. A thread beyond MEM_THREADS shares one last counter, with an atomic add. */
#define MEM_THREADS 63
#define MEM_BATCH (64L << 10)

extern _Thread_local long mem_tls_pending;
extern _Thread_local void *mem_tls_slot; /* NULL until the thread's first flush */
/* Move the calling thread's pending sum into its counter (the first time: take a counter, and
 * arrange for the thread's exit to flush). */
void mem_flush(void);

/* Count `delta` bytes taken (> 0) or given back (< 0) by the calling thread. */
static inline void mem_account(long delta)
{
    long p = mem_tls_pending + delta;
    mem_tls_pending = p;
    if (p >= MEM_BATCH || p <= -MEM_BATCH || !mem_tls_slot)
        mem_flush();
}
/* Bytes held now (the sum over threads, the caller's pending sum included; a momentary view while
 * others allocate), and the highest value mem_used() has returned. Any thread. */
size_t mem_used(void);
size_t mem_peak(void);

/* A zeroed object of n bytes from malloc, counted in the heap as n bytes; give it back with
 * mem_free_counted and the same n. For objects every connection keeps for its whole life
 * (conn_t, session_t): a slab block of theirs costs a 16-byte header and the rest of its size
 * class (384 bytes for 312..384) besides malloc's own overhead, about 96 bytes more per object,
 * and they are not on the message path the slab is for. */
static inline void *mem_zalloc_counted(size_t n)
{
    void *p = xcalloc(1, n);
    mem_account((long)n);
    return p;
}
static inline void mem_free_counted(void *p, size_t n)
{
    if (!p)
        return;
    mem_account(-(long)n);
    free(p);
}

#endif
