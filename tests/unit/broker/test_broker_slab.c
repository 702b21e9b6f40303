/* test_broker_slab.c -- unit tests of the per-worker slab (src/broker/slab.c) and of messages built
 * on it: size classes, local reuse, blocks freed by another thread going back to their pool
 * through the remote stack (so a publish-on-A, release-on-B flow stops calling malloc once warm),
 * the malloc fallback of threads without a pool, and msg_new/msg_encoded/msg_release across
 * threads. Run under ASan (use after free of a pooled block is poisoned) and TSan. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "broker/msg.h"
#include "base/slab.h"
#include "unit.h"

static void test_classes(void)
{
    CASE("size classes cover every size up to SLAB_MAX, two per power of two");
    size_t prev = 0;
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        CHECK(slab_class_size(c) > prev);
        prev = slab_class_size(c);
    }
    CHECK_EQ(slab_class_size(SLAB_CLASSES - 1), SLAB_MAX);
    for (size_t n = 1; n <= SLAB_MAX; n++) {
        unsigned c = slab_class_of(n);
        if (c >= SLAB_CLASSES || slab_class_size(c) < n || (c > 0 && slab_class_size(c - 1) >= n)) {
            CHECK(!"bad class");
            break;
        }
    }
    CHECK_EQ(slab_class_of(SLAB_MAX + 1), SLAB_CLASSES);
    CHECK_EQ(slab_class_of(0), 0);
}

static void test_local_reuse(void)
{
    CASE("a thread's own frees are reused: no malloc once warm");
    slab_pool_t *p = slab_pool_new();
    slab_thread_attach(p);
    void *v[100];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 100; i++) {
            v[i] = slab_alloc((size_t)(i * 37 % 3000) + 1);
            memset(v[i], 0xab, (size_t)(i * 37 % 3000) + 1);
        }
        for (int i = 0; i < 100; i++)
            slab_free(v[i]);
        if (round == 0)
            CHECK(slab_stats(p).mallocs > 0);
    }
    slab_stats_t st = slab_stats(p);
    CHECK_EQ(st.allocs, 5000);
    CHECK(st.mallocs <= 100);
    void *x = slab_alloc(40);
    CHECK_EQ(((uintptr_t)x) % 16, 0); /* malloc's alignment kept */
    slab_free(x);
    slab_free(slab_alloc(SLAB_MAX + 1)); /* large: plain malloc, not counted */
    CHECK_EQ(slab_stats(p).allocs, 5001);
    slab_thread_attach(NULL);
    slab_pool_free(p);
}

static void test_no_pool(void)
{
    CASE("a thread without a pool allocates with malloc; any thread may free");
    slab_thread_attach(NULL);
    void *a = slab_alloc(100);
    memset(a, 1, 100);
    slab_free(a);
    slab_free(NULL);
}

/* ---- two threads: blocks made on one, freed on the other ---- */

#define RING 256
struct chan {
    void *slot[RING];
    atomic_uint head, tail; /* single producer, single consumer */
};

static void chan_put(struct chan *ch, void *p)
{
    unsigned t = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&ch->head, memory_order_acquire) == RING)
        ;
    ch->slot[t % RING] = p;
    atomic_store_explicit(&ch->tail, t + 1, memory_order_release);
}

static void *chan_get(struct chan *ch)
{
    unsigned h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    while (atomic_load_explicit(&ch->tail, memory_order_acquire) == h)
        ;
    void *p = ch->slot[h % RING];
    atomic_store_explicit(&ch->head, h + 1, memory_order_release);
    return p;
}

#define N_MSGS 200000
struct pair {
    slab_pool_t *pool;
    struct chan *out, *in;
    int collect; /* call slab_collect now and then, as a worker does each loop turn */
    uint64_t mallocs_warm; /* mallocs after the first quarter */
    int bad;
};

/* Sends N_MSGS blocks to the peer and frees every block the peer sends back to it. */
static void *pair_main(void *arg)
{
    struct pair *pp = arg;
    slab_thread_attach(pp->pool);
    int got = 0;
    for (int i = 0; i < N_MSGS; i++) {
        size_t n = 100 + (size_t)(i % 7) * 50;
        uint8_t *b = slab_alloc(n);
        memset(b, (uint8_t)i, n);
        b[0] = (uint8_t)(n / 50);
        chan_put(pp->out, b);
        uint8_t *r = chan_get(pp->in);
        size_t rn = (size_t)r[0] * 50;
        if (r[rn - 1] != r[1])
            pp->bad++;
        slab_free(r); /* the peer's block: onto its remote stack */
        got++;
        if (pp->collect && i % 64 == 0)
            slab_collect();
        if (i == N_MSGS / 4)
            pp->mallocs_warm = slab_stats(pp->pool).mallocs;
    }
    (void)got;
    slab_thread_attach(NULL);
    return NULL;
}

static void test_remote_free(int collect)
{
    CASE(collect ? "remote free, collected each turn: no malloc in the steady state"
                 : "remote free, collected when a class runs dry: no malloc in the steady state");
    static struct chan ab, ba;
    memset(&ab, 0, sizeof(ab));
    memset(&ba, 0, sizeof(ba));
    struct pair a = {slab_pool_new(), &ab, &ba, collect, 0, 0};
    struct pair b = {slab_pool_new(), &ba, &ab, collect, 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, pair_main, &a);
    pthread_create(&tb, NULL, pair_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(a.bad + b.bad, 0);
    slab_stats_t sa = slab_stats(a.pool), sb = slab_stats(b.pool);
    CHECK_EQ(sa.allocs, N_MSGS);
    CHECK(sa.remote_in > N_MSGS / 2);
    /* every block in flight is at most the channel's depth plus what sits on a remote stack */
    CHECK(sa.mallocs < 2000);
    CHECK(sb.mallocs < 2000);
    /* after warm-up, (almost) none: the same blocks circulate */
    CHECK(sa.mallocs - a.mallocs_warm < 300);
    CHECK(sb.mallocs - b.mallocs_warm < 300);
    fprintf(stderr, "  pool A: %llu allocs, %llu mallocs (%llu after warm-up), %llu back from B\n",
            (unsigned long long)sa.allocs, (unsigned long long)sa.mallocs,
            (unsigned long long)(sa.mallocs - a.mallocs_warm), (unsigned long long)sa.remote_in);
    slab_pool_free(a.pool); /* blocks still on the remote stacks are freed with the pools */
    slab_pool_free(b.pool);
}

/* ---- messages ---- */

struct msg_pass {
    slab_pool_t *pool;
    msg_t *m;
    const msg_enc_t *enc;
};

static void *encode_and_release(void *arg)
{
    struct msg_pass *mp = arg;
    slab_thread_attach(mp->pool);
    mp->enc = msg_encoded(mp->m, 4, 1, 0); /* an encoding block of this thread's pool */
    CHECK_EQ(mp->enc->len, 2 + 2 + 3 + 2 + 5);
    msg_release(mp->m); /* the last reference: A's blocks go back to A remotely, ours locally */
    slab_thread_attach(NULL);
    return NULL;
}

static void test_messages(void)
{
    CASE("msg_new on one worker, encoded and released last on another");
    slab_pool_t *pa = slab_pool_new(), *pb = slab_pool_new();
    slab_thread_attach(pa);
    const char *topic = "a/b", *payload = "hello";
    for (int i = 0; i < 1000; i++) {
        msg_t *m = msg_new((mqtt_bytes_t){(const uint8_t *)topic, 3}, (mqtt_bytes_t){(const uint8_t *)payload, 5}, 1,
                           0, NULL, 0);
        const msg_enc_t *e = msg_encoded(m, 4, 0, 0);
        CHECK_EQ(e->len, 2 + 2 + 3 + 5);
        struct msg_pass mp = {pb, m, NULL}; /* our only reference goes with it */
        pthread_t t;
        pthread_create(&t, NULL, encode_and_release, &mp);
        pthread_join(t, NULL);
    }
    slab_collect();
    slab_stats_t sa = slab_stats(pa), sb = slab_stats(pb);
    CHECK_EQ(sa.allocs, 2000);
    CHECK(sa.mallocs <= 4);
    CHECK(sb.mallocs <= 2);
    /* a message built on a thread without a pool (start-up restore) is plain malloc */
    slab_thread_attach(NULL);
    msg_t *m = msg_new((mqtt_bytes_t){(const uint8_t *)topic, 3}, (mqtt_bytes_t){(const uint8_t *)payload, 5}, 0, 0,
                       NULL, 0);
    slab_thread_attach(pb);
    msg_encoded(m, 5, 0, 0);
    msg_release(m);
    slab_thread_attach(NULL);
    slab_pool_free(pa);
    slab_pool_free(pb);
}

int main(void)
{
    test_classes();
    test_local_reuse();
    test_no_pool();
    test_remote_free(0);
    test_remote_free(1);
    test_messages();
    UNIT_DONE();
}
