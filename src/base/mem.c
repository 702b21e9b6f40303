/* mem.c -- allocation that aborts on out-of-memory (as Redis' zmalloc does): a server that cannot
 * allocate cannot do its work, and callers need no error path for it. Zero-sized requests get a
 * valid block, so a NULL result never means "nothing asked for". */
#include "base/mem.h"

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

static mem_slot_t slots[MEM_THREADS];
static atomic_int n_slots;
static atomic_size_t peak;
_Thread_local mem_slot_t *mem_tls_slot;
mem_slot_t mem_shared_slot;

mem_slot_t *mem_slot_get(void)
{
    int i = atomic_fetch_add_explicit(&n_slots, 1, memory_order_relaxed);
    mem_tls_slot = i < MEM_THREADS ? &slots[i] : &mem_shared_slot;
    return mem_tls_slot;
}

size_t mem_used(void)
{
    int n = atomic_load_explicit(&n_slots, memory_order_relaxed);
    if (n > MEM_THREADS)
        n = MEM_THREADS;
    long sum = atomic_load_explicit(&mem_shared_slot.n, memory_order_relaxed);
    for (int i = 0; i < n; i++)
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
