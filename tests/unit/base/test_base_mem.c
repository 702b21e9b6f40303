/* test_base_mem.c -- unit tests of the broker's heap count (src/base/mem.c, fed by slab.c): what a
 * block of each kind adds and gives back, blocks freed on another thread than the one that took
 * them (one counter grows, the other shrinks, the sum is right), more threads than counters (the
 * shared one), and the peak. Run under ASan and TSan (make tsan-test). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"
#include "base/slab.h"
#include "unit.h"

#define HDR 16 /* slab.h: a 16-byte header in front of every block */

static void test_sizes(void)
{
    CASE("a block counts its class (or, above SLAB_MAX, its size) plus the header, until freed");
    slab_pool_t *p = slab_pool_new();
    slab_thread_attach(p);
    size_t base = mem_used();
    void *a = slab_alloc(100);
    CHECK_EQ(mem_used() - base, slab_class_size(slab_class_of(100)) + HDR);
    void *big = slab_alloc(SLAB_MAX + 1000);
    CHECK_EQ(mem_used() - base, slab_class_size(slab_class_of(100)) + HDR + SLAB_MAX + 1000 + HDR);
    big = slab_realloc(big, 10, SLAB_MAX + 5000); /* malloc'd on both sides: realloc, recounted */
    CHECK_EQ(mem_used() - base, slab_class_size(slab_class_of(100)) + HDR + SLAB_MAX + 5000 + HDR);
    slab_free(a);
    slab_free(big);
    CHECK_EQ(mem_used(), base);
    void *z = slab_zalloc(8192);
    CHECK(((uint8_t *)z)[8191] == 0);
    CHECK(mem_peak() >= base + SLAB_MAX + 5000);
    slab_free(z);
    slab_thread_attach(NULL);
    slab_pool_free(p);
    slab_free(slab_alloc(50)); /* no pool: malloc with a header, counted all the same */
    CHECK_EQ(mem_used(), base);
}

#define N_BLOCKS 5000
static void *blocks[N_BLOCKS];

static void *taker(void *arg)
{
    slab_pool_t *p = arg;
    slab_thread_attach(p);
    for (int i = 0; i < N_BLOCKS; i++)
        blocks[i] = slab_alloc((size_t)(i % 700) + 1);
    slab_thread_attach(NULL);
    return NULL;
}

static void *giver(void *arg)
{
    slab_pool_t *p = arg;
    slab_thread_attach(p);
    for (int i = 0; i < N_BLOCKS; i++)
        slab_free(blocks[i]);
    slab_collect();
    slab_thread_attach(NULL);
    return NULL;
}

static void test_cross_thread(void)
{
    CASE("blocks taken on one thread and freed on another: the sum comes back to where it was");
    size_t base = mem_used();
    slab_pool_t *pa = slab_pool_new(), *pb = slab_pool_new();
    pthread_t t;
    pthread_create(&t, NULL, taker, pa);
    pthread_join(t, NULL);
    CHECK(mem_used() > base + N_BLOCKS * 32);
    pthread_create(&t, NULL, giver, pb);
    pthread_join(t, NULL);
    CHECK_EQ(mem_used(), base);
    slab_pool_free(pb);
    slab_pool_free(pa);
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        slab_free(slab_alloc((size_t)i * 10 + 1));
    void *keep = slab_alloc(1000);
    return keep; /* freed by the main thread */
}

static void test_many_threads(void)
{
    CASE("more threads than counters share the last one (atomic adds): the sum stays right");
    size_t base = mem_used();
    enum { N = MEM_THREADS + 10 };
    pthread_t t[N];
    void *kept[N];
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], &kept[i]);
    CHECK_EQ(mem_used() - base, (size_t)N * (1000 + HDR)); /* threads without a pool: malloc + header */
    for (int i = 0; i < N; i++)
        slab_free(kept[i]);
    CHECK_EQ(mem_used(), base);
}

int main(void)
{
    test_sizes();
    test_cross_thread();
    test_many_threads();
    UNIT_DONE();
}
