/* test_base_mpsc.c -- unit tests of the many-producer/one-consumer handoff (src/base/mpsc.c), on
 * bare nodes with no broker above it: the order a single thread sees (a chain comes out oldest
 * first, producers' chains in push order), the eventfd rule (a push writes it only when the
 * consumer said it may sleep, and only once for several pushes; mpsc_wake always does), and
 * producer threads racing a consumer that blocks on the eventfd: every node arrives once, each
 * producer's in order, with no lost wake-up. The broker's batches over it are tested in
 * tests/unit/broker/test_broker_inbox.c. Run under ASan and TSan. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mpsc.h"
#include "unit.h"

struct node {
    mpsc_node_t link; /* first: a taken mpsc_node_t * is a struct node * */
    int producer;
    uint32_t seq;
};

static bool readable(const mpsc_t *q)
{
    struct pollfd pfd = {.fd = mpsc_fd(q), .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static void single_thread_order_and_wake_rule(void)
{
    CASE("a chain comes out oldest first, chains in push order; a push wakes only a sleeper, once");
    mpsc_t q;
    CHECK_EQ(mpsc_init(&q), 0);
    CHECK(mpsc_take(&q) == NULL);
    CHECK(mpsc_reverse(NULL) == NULL);

    struct node n[5];
    for (int i = 0; i < 5; i++)
        n[i] = (struct node){.seq = (uint32_t)i};
    /* chain 0 -> 1 -> 2 built newest first, as a producer fills it */
    n[2].link.next = &n[1].link;
    n[1].link.next = &n[0].link;
    mpsc_push(&q, &n[2].link, &n[0].link);
    CHECK(!readable(&q)); /* the consumer is not asleep: no system call, nothing to read */
    mpsc_push(&q, &n[3].link, &n[3].link);

    CHECK(mpsc_sleep_begin(&q)); /* nodes wait: do not block */
    mpsc_sleep_end(&q);
    uint32_t want = 0;
    for (mpsc_node_t *it = mpsc_take(&q); it; it = it->next)
        CHECK_EQ(((struct node *)it)->seq, want++);
    CHECK_EQ(want, 4u);
    CHECK(mpsc_take(&q) == NULL);

    CHECK(!mpsc_sleep_begin(&q)); /* nothing waits: the consumer would block now */
    mpsc_push(&q, &n[4].link, &n[4].link);
    CHECK(readable(&q));
    mpsc_clear_wake(&q);
    mpsc_push(&q, &n[0].link, &n[0].link); /* sleeping was turned off by the first push */
    CHECK(!readable(&q));
    mpsc_sleep_end(&q);
    CHECK(mpsc_take(&q) != NULL);

    mpsc_wake(&q); /* the stop signal's wake: readable whatever the state */
    CHECK(readable(&q));
    mpsc_clear_wake(&q);
    CHECK(!readable(&q));
    mpsc_destroy(&q);
}

#define PRODUCERS 4
#define PER_PRODUCER 50000

static mpsc_t shared;

static void *producer_main(void *arg)
{
    struct node *mine = arg; /* PER_PRODUCER nodes, pushed in chains of 1-8 */
    uint32_t seq = 0, spin = (uint32_t)mine[0].producer * 7u + 3u;
    while (seq < PER_PRODUCER) {
        uint32_t n = 1 + (spin = spin * 1103515245u + 12345u) % 8;
        if (n > PER_PRODUCER - seq)
            n = PER_PRODUCER - seq;
        for (uint32_t i = 1; i < n; i++)
            mine[seq + i].link.next = &mine[seq + i - 1].link;
        mpsc_push(&shared, &mine[seq + n - 1].link, &mine[seq].link);
        seq += n;
        if (spin % 5 == 0)
            sched_yield(); /* let the consumer fall asleep often */
    }
    return NULL;
}

static void producers_race_a_sleeping_consumer(void)
{
    CASE("every node arrives once, in each producer's order, and no wake-up is lost");
    CHECK_EQ(mpsc_init(&shared), 0);
    struct node *nodes = calloc((size_t)PRODUCERS * PER_PRODUCER, sizeof(*nodes));
    pthread_t th[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        for (uint32_t i = 0; i < PER_PRODUCER; i++)
            nodes[(size_t)p * PER_PRODUCER + i] = (struct node){.producer = p, .seq = i};
        pthread_create(&th[p], NULL, producer_main, &nodes[(size_t)p * PER_PRODUCER]);
    }
    uint32_t next[PRODUCERS] = {0};
    long got = 0, bad = 0, timeouts = 0;
    while (got < (long)PRODUCERS * PER_PRODUCER && !timeouts) {
        if (!mpsc_sleep_begin(&shared)) {
            struct pollfd pfd = {.fd = mpsc_fd(&shared), .events = POLLIN};
            int r = poll(&pfd, 1, 5000); /* producers push every few microseconds */
            if (r == 0)
                timeouts++;
            else if (r > 0)
                mpsc_clear_wake(&shared);
        }
        mpsc_sleep_end(&shared);
        for (mpsc_node_t *it = mpsc_take(&shared); it; it = it->next, got++) {
            struct node *nd = (struct node *)it;
            if (nd->seq != next[nd->producer]++)
                bad++;
        }
    }
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    CHECK_EQ(timeouts, 0);
    CHECK_EQ(bad, 0);
    CHECK_EQ(got, (long)PRODUCERS * PER_PRODUCER);
    CHECK(mpsc_take(&shared) == NULL);
    mpsc_destroy(&shared);
    free(nodes);
}

int main(void)
{
    single_thread_order_and_wake_rule();
    producers_race_a_sleeping_consumer();
    UNIT_DONE();
}
