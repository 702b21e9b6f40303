/* test_broker_inbox.c -- unit test of a worker's inbox (src/broker/inbox.c): several producer
 * threads push chains of batches and single items while one consumer sleeps on the eventfd as a
 * worker does; every item must arrive exactly once, each producer's in order, and the consumer
 * must never stay asleep while items wait (a lost wake-up shows as a poll timeout). Run under
 * TSan and ASan. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "broker/inbox.h"
#include "base/slab.h"
#include "unit.h"

#define PRODUCERS 3
#define PER_PRODUCER 60000

static inbox_t q;

struct producer {
    int index;
    unsigned seed;
};

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    slab_pool_t *pool = slab_pool_new();
    slab_thread_attach(pool);
    inbox_chain_t ch = {NULL, NULL};
    uint64_t seq = 0;
    while (seq < PER_PRODUCER) {
        unsigned r = rnd(&p->seed);
        if (r % 4 == 0) {
            inbox_item_t it = {.kind = INBOX_TAKEOVER_DONE, .conn_id = ((uint64_t)p->index << 32) | seq++};
            inbox_post(&q, &it);
        } else {
            /* a loop turn's worth: mostly a few items, sometimes a chain of up to four batches */
            unsigned n = r % 16 == 1 ? 1 + r % 150 : 1 + r % 6;
            for (unsigned i = 0; i < n && seq < PER_PRODUCER; i++) {
                inbox_item_t it = {.kind = INBOX_FLUSH_SESSION, .conn_id = ((uint64_t)p->index << 32) | seq++};
                inbox_append(&ch, &it);
            }
            inbox_push(&q, &ch);
        }
        if (r % 3 == 0)
            usleep(r % 100); /* let the consumer fall asleep often */
        slab_collect();
    }
    slab_thread_attach(NULL);
    /* batches still held by the consumer come back later: the pool is freed by main */
    return pool;
}

int main(void)
{
    CASE("every item arrives once, in each producer's order, with no lost wake-up");
    CHECK_EQ(inbox_init(&q), 0);
    slab_pool_t *mine = slab_pool_new();
    slab_thread_attach(mine);
    pthread_t t[PRODUCERS];
    struct producer ps[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (struct producer){i, 17u + (unsigned)i * 7919u};
        pthread_create(&t[i], NULL, producer_main, &ps[i]);
    }
    uint64_t next[PRODUCERS] = {0};
    uint64_t got = 0, sleeps = 0, wakes = 0;
    int out_of_order = 0, timeouts = 0;
    while (got < (uint64_t)PRODUCERS * PER_PRODUCER && timeouts == 0) {
        if (!inbox_sleep_begin(&q)) {
            sleeps++;
            struct pollfd pfd = {.fd = inbox_fd(&q), .events = POLLIN};
            int n = poll(&pfd, 1, 5000);
            if (n == 0)
                timeouts++; /* producers push every few microseconds: a lost wake-up */
            if (n > 0) {
                inbox_clear_wake(&q);
                wakes++;
            }
        }
        inbox_sleep_end(&q);
        for (inbox_batch_t *bt = inbox_take(&q), *nx; bt; bt = nx) {
            nx = inbox_next(bt);
            for (uint32_t i = 0; i < bt->n; i++) {
                int pi = (int)(bt->items[i].conn_id >> 32);
                uint64_t seq = bt->items[i].conn_id & 0xffffffffu;
                if (pi < 0 || pi >= PRODUCERS || seq != next[pi])
                    out_of_order++;
                else
                    next[pi]++;
                got++;
            }
            slab_free(bt); /* back to the producer's pool, remotely */
        }
    }
    slab_pool_t *pools[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], (void **)&pools[i]);
    CHECK_EQ(timeouts, 0);
    CHECK_EQ(out_of_order, 0);
    CHECK_EQ(got, (uint64_t)PRODUCERS * PER_PRODUCER);
    CHECK(inbox_take(&q) == NULL);
    fprintf(stderr, "  %llu items, consumer blocked %llu times, woken by the eventfd %llu times\n",
            (unsigned long long)got, (unsigned long long)sleeps, (unsigned long long)wakes);
    inbox_destroy(&q);
    slab_thread_attach(NULL);
    for (int i = 0; i < PRODUCERS; i++)
        slab_pool_free(pools[i]);
    slab_pool_free(mine);
    UNIT_DONE();
}
