/* slab.h -- per-worker size-class free lists for the message path, with lock-free remote free.
 *
 * Design: each worker thread owns a pool (slab_pool_t) and attaches it to itself at start
 * (slab_thread_attach). slab_alloc takes a block of the calling thread's pool from a free list of
 * its size class (25 classes, 32 B to 128 KB, two per power of two); a miss drains the blocks other
 * threads gave back, and only then calls malloc. A block remembers the pool it came from (in a
 * 16-byte header), so slab_free from any thread works:
 *   - on the owning thread: pushed on its free list, no atomic operation at all;
 *   - on another thread (a message published on worker A, released last on worker B): B gathers
 *     A's blocks of one class into a chain (no atomics) and pushes the chain onto A's "remote"
 *     stack with one compare-and-swap once it is 32 long, or at the end of B's loop turn
 *     (slab_collect); the stack has many producers and one consumer, which only ever takes the
 *     whole stack with an exchange, so no ABA. A takes it back when a class runs dry or once per
 *     loop turn, and splices each chain onto its free list touching two blocks of it, not all;
 *     a thread without a pool pushes each block alone;
 *   - blocks of a thread without a pool (the main thread at start-up and shutdown, a store
 *     thread) and blocks over 128 KB are plain malloc/free, marked as such in the header.
 * So in the steady state a message costs no malloc and no lock: blocks circulate between the
 * free lists and the remote stacks. Free lists keep at most SLAB_CACHE_BYTES of each class (and
 * at least a few blocks); beyond that a freed block goes back to malloc, so a burst's memory is
 * returned rather than kept for ever.
 *
 * Why a thread-local: msg_release is called from every part of the broker (sessions, retained
 * store, wills, timers) with no worker at hand; which pool is "mine" is a property of the calling
 * thread, as errno is. Nothing else is global.
 *
 * Every block in use is counted in the broker's heap (mem.h's mem_account: the class size plus the
 * header, or the size asked for above SLAB_MAX; the free lists are not counted), on the thread that
 * takes or gives it back: a plain load and store, no locked instruction.
 *
 * Under AddressSanitizer a block on a free list is poisoned, so a use after slab_free is reported
 * as it would be after free(). */
#ifndef TOMBO_BASE_SLAB_H
#define TOMBO_BASE_SLAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct slab_pool slab_pool_t;

#define SLAB_CLASSES 25
#define SLAB_MAX ((size_t)128 << 10)      /* larger requests use malloc; 128 KB: a connection's
                                            * input buffer for a partial packet (64 KB reads) */
#define SLAB_CACHE_BYTES ((size_t)2 << 20) /* free bytes kept per class and pool */

/* Statistics of one pool; written by its owner, read by anyone (relaxed, approximate). */
typedef struct slab_stats {
    uint64_t allocs;      /* slab_alloc calls served by this pool */
    uint64_t mallocs;     /* of which needed a new block from malloc */
    uint64_t remote_in;   /* blocks other threads gave back through the remote stack */
    uint64_t released;    /* blocks handed back to free() (over the cache limit) */
} slab_stats_t;

slab_pool_t *slab_pool_new(void);
/* Free the pool and its cached blocks. Every block allocated from it must have been slab_free'd
 * before (by any thread): call after everything that may hold a message is gone. NULL is a no-op. */
void slab_pool_free(slab_pool_t *p);

/* Make p the calling thread's pool (NULL: none; allocations fall back to malloc). One pool is
 * attached to at most one thread at a time. */
void slab_thread_attach(slab_pool_t *p);

/* A block of at least n bytes, aligned for any type, from the calling thread's pool (or malloc).
 * Aborts on out-of-memory, as xmalloc does. */
void *slab_alloc(size_t n);
/* slab_alloc, zeroed. */
void *slab_zalloc(size_t n);
/* Grow (or shrink) a block to n bytes keeping its first `used` bytes (ptr may be NULL): a block
 * of malloc on both sides is realloc'ed (no copy for large buffers), else a new block is taken
 * and the old one freed. */
void *slab_realloc(void *ptr, size_t used, size_t n);
/* Give a block from slab_alloc back; any thread; NULL is a no-op. */
void slab_free(void *ptr);
/* Owner thread, once per loop turn: push the chains of other pools' blocks this thread gathered,
 * and take back the blocks other threads freed (keeps the remote stack short while this thread
 * allocates little). Cheap when there are none. Detaching (slab_thread_attach) pushes too. */
void slab_collect(void);

/* Copy of p's counters. */
slab_stats_t slab_stats(const slab_pool_t *p);
/* Size class of a request (SLAB_CLASSES when above SLAB_MAX) and the size of a class: exposed for
 * the unit test. */
unsigned slab_class_of(size_t n);
size_t slab_class_size(unsigned cls);

#endif
