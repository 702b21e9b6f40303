/* slab.c -- per-worker size-class free lists with lock-free remote free (design note in slab.h). */
#include "base/slab.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* In front of every block; 16 bytes, so the block itself keeps malloc's alignment. */
typedef struct slab_hdr {
    uintptr_t owner;        /* pool address | size class; 0: a plain malloc block */
    union {
        struct slab_hdr *next; /* free list or remote stack link, while the block is free */
        size_t size;           /* a plain malloc block: its size, for the accounting (mem.h) */
    };
} slab_hdr_t;

#define POOL_ALIGN 64 /* pool addresses leave the low 6 bits for the class */
#define OUT_SLOTS 16  /* outgoing remote-free chains a pool gathers, by (owner pool, class) */
#define OUT_BATCH 32  /* blocks per chain: one CAS on the owner's stack per OUT_BATCH frees */

/* The remote stack is a stack of chains of blocks of one class; the first block of a chain
 * carries its length and last block in its (free) body. */
typedef struct chain_info {
    slab_hdr_t *tail;
    uint32_t n;
} chain_info_t;

struct slab_pool {
    /* Chains freed by other threads: pushed with a CAS by any thread, taken whole by the owner. */
    _Alignas(POOL_ALIGN) _Atomic(slab_hdr_t *) remote;
    /* Owner thread only. */
    _Alignas(POOL_ALIGN) struct slab_list {
        slab_hdr_t *head;
        uint32_t n, max;
    } list[SLAB_CLASSES];
    /* Other pools' blocks this thread freed, gathered into chains (owner thread only); pushed
     * when OUT_BATCH long, when the slot is needed for another pool or class, on slab_collect
     * (each loop turn) and when the thread detaches. */
    struct out_slot {
        slab_pool_t *to;
        slab_hdr_t *head, *tail;
        uint32_t n, cls;
    } out[OUT_SLOTS];
    atomic_ulong allocs, mallocs, remote_in, released;
};

static _Thread_local slab_pool_t *tls_pool;

/* Single-writer counters: a plain load and store, no locked instruction. */
static inline void bump(atomic_ulong *c, unsigned long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

unsigned slab_class_of(size_t n)
{
    if (n <= 32)
        return 0;
    if (n > SLAB_MAX)
        return SLAB_CLASSES;
    /* Two classes per power of two: (2^lg, 1.5 * 2^lg] and (1.5 * 2^lg, 2^(lg+1)]. */
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
    unsigned base = 1 + 2 * (lg - 5);
    return n <= ((size_t)3 << (lg - 1)) ? base : base + 1;
}

size_t slab_class_size(unsigned cls)
{
    if (cls == 0)
        return 32;
    unsigned lg = 5 + (cls - 1) / 2;
    return (cls & 1) ? (size_t)3 << (lg - 1) : (size_t)2 << lg;
}

slab_pool_t *slab_pool_new(void)
{
    slab_pool_t *p = aligned_alloc(POOL_ALIGN, (sizeof(*p) + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN);
    if (!p)
        abort();
    atomic_init(&p->remote, NULL);
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        size_t max = SLAB_CACHE_BYTES / slab_class_size(c);
        p->list[c] = (struct slab_list){NULL, 0, (uint32_t)(max < 16 ? 16 : max)};
    }
    memset(p->out, 0, sizeof(p->out));
    atomic_init(&p->allocs, 0);
    atomic_init(&p->mallocs, 0);
    atomic_init(&p->remote_in, 0);
    atomic_init(&p->released, 0);
    return p;
}

/* Owner: keep h on its class's free list, or give it back to malloc when the list is full. */
static void put_local(slab_pool_t *p, slab_hdr_t *h)
{
    struct slab_list *l = &p->list[h->owner & (POOL_ALIGN - 1)];
    if (l->n >= l->max) {
        UNPOISON(h + 1, slab_class_size((unsigned)(h->owner & (POOL_ALIGN - 1))));
        free(h);
        bump(&p->released, 1);
        return;
    }
    h->next = l->head;
    l->head = h;
    l->n++;
}

/* Owner: take every chain other threads gave back and splice each onto its class's free list,
 * touching only the first and last block of a chain. The acquire pairs with the pushers'
 * release, so what they wrote into the blocks happens before we reuse them. */
static void drain_remote(slab_pool_t *p)
{
    slab_hdr_t *h = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
    unsigned long total = 0;
    while (h) {
        chain_info_t *ci = (chain_info_t *)(h + 1);
        slab_hdr_t *tail = ci->tail;
        uint32_t n = ci->n;
        POISON(ci, sizeof(*ci));
        slab_hdr_t *next_chain = tail->next;
        struct slab_list *l = &p->list[h->owner & (POOL_ALIGN - 1)];
        tail->next = l->head;
        l->head = h;
        l->n += n;
        while (l->n > l->max) { /* over the cache limit: back to malloc */
            slab_hdr_t *x = l->head;
            l->head = x->next;
            l->n--;
            UNPOISON(x + 1, slab_class_size((unsigned)(x->owner & (POOL_ALIGN - 1))));
            free(x);
            bump(&p->released, 1);
        }
        total += n;
        h = next_chain;
    }
    if (total)
        bump(&p->remote_in, total);
}

/* Push the chain head..tail (n blocks of one class of pool `to`) onto to's remote stack. */
static void push_chain(slab_pool_t *to, slab_hdr_t *head, slab_hdr_t *tail, uint32_t n)
{
    chain_info_t *ci = (chain_info_t *)(head + 1);
    UNPOISON(ci, sizeof(*ci));
    ci->tail = tail;
    ci->n = n;
    slab_hdr_t *top = atomic_load_explicit(&to->remote, memory_order_relaxed);
    do {
        tail->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&to->remote, &top, head, memory_order_release,
                                                    memory_order_relaxed));
}

static void flush_slot(struct out_slot *o)
{
    if (o->n) {
        push_chain(o->to, o->head, o->tail, o->n);
        o->n = 0;
        o->to = NULL;
    }
}

static void flush_out(slab_pool_t *p)
{
    for (unsigned i = 0; i < OUT_SLOTS; i++)
        flush_slot(&p->out[i]);
}

void slab_pool_free(slab_pool_t *p)
{
    if (!p)
        return;
    flush_out(p); /* empty unless its thread never detached; the target pools must still exist */
    slab_hdr_t *h = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
    while (h) { /* chains are linked through their blocks: one walk frees them all */
        slab_hdr_t *next = h->next;
        UNPOISON(h + 1, slab_class_size((unsigned)(h->owner & (POOL_ALIGN - 1))));
        free(h);
        h = next;
    }
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        h = p->list[c].head;
        while (h) {
            slab_hdr_t *next = h->next;
            UNPOISON(h + 1, slab_class_size(c));
            free(h);
            h = next;
        }
    }
    if (tls_pool == p)
        tls_pool = NULL;
    free(p);
}

void slab_thread_attach(slab_pool_t *p)
{
    if (tls_pool && tls_pool != p)
        flush_out(tls_pool);
    tls_pool = p;
}

void *slab_alloc(size_t n)
{
    slab_pool_t *p = tls_pool;
    unsigned c = slab_class_of(n);
    slab_hdr_t *h;
    if (!p || c >= SLAB_CLASSES) {
        h = xmalloc(sizeof(*h) + n);
        h->owner = 0;
        h->size = n;
        mem_account((long)(sizeof(*h) + n));
        return h + 1;
    }
    mem_account((long)(sizeof(*h) + slab_class_size(c)));
    bump(&p->allocs, 1);
    struct slab_list *l = &p->list[c];
    if (!l->head)
        drain_remote(p);
    h = l->head;
    if (h) {
        l->head = h->next;
        l->n--;
        UNPOISON(h + 1, n); /* the rest of the class stays poisoned: an overrun is caught */
    } else {
        h = xmalloc(sizeof(*h) + slab_class_size(c));
        h->owner = (uintptr_t)p | c;
        bump(&p->mallocs, 1);
        POISON((uint8_t *)(h + 1) + n, slab_class_size(c) - n);
    }
    return h + 1;
}

void *slab_zalloc(size_t n)
{
    return memset(slab_alloc(n), 0, n);
}

void *slab_realloc(void *ptr, size_t used, size_t n)
{
    if (ptr && n > SLAB_MAX && ((slab_hdr_t *)ptr - 1)->owner == 0) {
        slab_hdr_t *h = xrealloc((slab_hdr_t *)ptr - 1, sizeof(*h) + n);
        mem_account((long)n - (long)h->size);
        h->size = n;
        return h + 1;
    }
    void *p = slab_alloc(n);
    if (used)
        memcpy(p, ptr, used < n ? used : n);
    slab_free(ptr);
    return p;
}

void slab_free(void *ptr)
{
    if (!ptr)
        return;
    slab_hdr_t *h = (slab_hdr_t *)ptr - 1;
    if (h->owner == 0) {
        mem_account(-(long)(sizeof(*h) + h->size));
        free(h);
        return;
    }
    mem_account(-(long)(sizeof(*h) + slab_class_size((unsigned)(h->owner & (POOL_ALIGN - 1)))));
    slab_pool_t *p = (slab_pool_t *)(h->owner & ~(uintptr_t)(POOL_ALIGN - 1));
    POISON(ptr, slab_class_size((unsigned)(h->owner & (POOL_ALIGN - 1))));
    if (p == tls_pool) {
        put_local(p, h);
        return;
    }
    /* Another thread's block: gathered into a chain for its owner, or pushed alone by a thread
     * without a pool. */
    slab_pool_t *me = tls_pool;
    if (!me) {
        push_chain(p, h, h, 1);
        return;
    }
    unsigned cls = (unsigned)(h->owner & (POOL_ALIGN - 1));
    struct out_slot *o = &me->out[(((uintptr_t)p >> 6) * 31 + cls) % OUT_SLOTS];
    if (o->n && (o->to != p || o->cls != cls))
        flush_slot(o);
    if (o->n == 0) {
        o->to = p;
        o->cls = cls;
        o->tail = h;
        h->next = NULL;
    } else {
        h->next = o->head;
    }
    o->head = h;
    if (++o->n >= OUT_BATCH)
        flush_slot(o);
}

void slab_collect(void)
{
    slab_pool_t *p = tls_pool;
    if (!p)
        return;
    flush_out(p);
    if (atomic_load_explicit(&p->remote, memory_order_relaxed))
        drain_remote(p);
}

slab_stats_t slab_stats(const slab_pool_t *p)
{
    slab_stats_t s = {0, 0, 0, 0};
    if (p) {
        s.allocs = atomic_load_explicit(&p->allocs, memory_order_relaxed);
        s.mallocs = atomic_load_explicit(&p->mallocs, memory_order_relaxed);
        s.remote_in = atomic_load_explicit(&p->remote_in, memory_order_relaxed);
        s.released = atomic_load_explicit(&p->released, memory_order_relaxed);
    }
    return s;
}
