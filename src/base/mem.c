/* mem.c -- allocation that aborts on out-of-memory (as Redis' zmalloc does): a server that cannot
 * allocate cannot do its work, and callers need no error path for it. Zero-sized requests get a
 * valid block, so a NULL result never means "nothing asked for". */
#include "base/mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "tombo: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom(n * m);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    return xstrndup(s, strlen(s));
}

/* ---- heap accounting (mem.h) ---- */

typedef struct mem_slot {
    _Alignas(64) atomic_long n;
} mem_slot_t;

static mem_slot_t slots[MEM_THREADS + 1]; /* the last one shared by the threads beyond */
static atomic_int n_slots;
static atomic_size_t peak;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
_Thread_local long mem_tls_pending;
_Thread_local void *mem_tls_slot;

/* A thread's pending sum must not be lost when it ends: a key destructor flushes it. */
static void at_thread_exit(void *unused)
{
    (void)unused;
    mem_flush();
}

static void make_exit_key(void) { pthread_key_create(&exit_key, at_thread_exit); }

void mem_flush(void)
{
    long d = mem_tls_pending;
    mem_tls_pending = 0;
    mem_slot_t *s = mem_tls_slot;
    if (!s) {
        int i = atomic_fetch_add_explicit(&n_slots, 1, memory_order_relaxed);
        s = mem_tls_slot = &slots[i < MEM_THREADS ? i : MEM_THREADS];
        pthread_once(&exit_once, make_exit_key);
        pthread_setspecific(exit_key, s);
    }
    if (s == &slots[MEM_THREADS])
        atomic_fetch_add_explicit(&s->n, d, memory_order_relaxed);
    else /* only this thread writes it */
        atomic_store_explicit(&s->n, atomic_load_explicit(&s->n, memory_order_relaxed) + d, memory_order_relaxed);
}

size_t mem_used(void)
{
    mem_flush();
    int n = atomic_load_explicit(&n_slots, memory_order_relaxed);
    long sum = atomic_load_explicit(&slots[MEM_THREADS].n, memory_order_relaxed);
    for (int i = 0; i < n && i < MEM_THREADS; i++)
        sum += atomic_load_explicit(&slots[i].n, memory_order_relaxed);
    size_t used = sum > 0 ? (size_t)sum : 0;
    size_t p = atomic_load_explicit(&peak, memory_order_relaxed);
    while (used > p && !atomic_compare_exchange_weak_explicit(&peak, &p, used, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
    return used;
}

size_t mem_peak(void)
{
    mem_used();
    return atomic_load_explicit(&peak, memory_order_relaxed);
}
