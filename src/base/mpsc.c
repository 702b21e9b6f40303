/* mpsc.c -- lock-free many-producer/one-consumer handoff with an eventfd wake-up (design note in
 * mpsc.h). */
#include "base/mpsc.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int mpsc_init(mpsc_t *q)
{
    atomic_init(&q->top, NULL);
    atomic_init(&q->sleeping, 0);
    q->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return q->evfd < 0 ? -1 : 0;
}

void mpsc_destroy(mpsc_t *q)
{
    if (q->evfd >= 0)
        close(q->evfd);
    q->evfd = -1;
}

void mpsc_wake(mpsc_t *q)
{
    uint64_t one = 1;
    ssize_t r = write(q->evfd, &one, sizeof(one));
    (void)r; /* EAGAIN: the counter is full, so the consumer is awake anyway */
}

void mpsc_push(mpsc_t *q, mpsc_node_t *newest, mpsc_node_t *oldest)
{
    mpsc_node_t *top = atomic_load_explicit(&q->top, memory_order_relaxed);
    do {
        oldest->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&q->top, &top, newest, memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* After the push (seq_cst): the Dekker pair of mpsc_sleep_begin. */
    if (atomic_load_explicit(&q->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&q->sleeping, 0, memory_order_seq_cst))
        mpsc_wake(q);
}

bool mpsc_sleep_begin(mpsc_t *q)
{
    atomic_store_explicit(&q->sleeping, 1, memory_order_seq_cst);
    return atomic_load_explicit(&q->top, memory_order_seq_cst) != NULL;
}

void mpsc_sleep_end(mpsc_t *q) { atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed); }

void mpsc_clear_wake(mpsc_t *q)
{
    uint64_t v;
    ssize_t r = read(q->evfd, &v, sizeof(v));
    (void)r;
}

mpsc_node_t *mpsc_reverse(mpsc_node_t *list)
{
    mpsc_node_t *fifo = NULL;
    while (list) {
        mpsc_node_t *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    return fifo;
}

mpsc_node_t *mpsc_take(mpsc_t *q)
{
    if (!atomic_load_explicit(&q->top, memory_order_relaxed))
        return NULL;
    /* acquire: pairs with the producers' CAS, so what they wrote before pushing is visible */
    return mpsc_reverse(atomic_exchange_explicit(&q->top, NULL, memory_order_acquire));
}
