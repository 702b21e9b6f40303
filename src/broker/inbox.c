/* inbox.c -- lock-free many-producer/one-consumer handoff of item batches (design note in
 * inbox.h). */
#include "broker/inbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/slab.h"

int inbox_init(inbox_t *q)
{
    atomic_init(&q->top, NULL);
    atomic_init(&q->sleeping, 0);
    q->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return q->evfd < 0 ? -1 : 0;
}

void inbox_destroy(inbox_t *q)
{
    if (q->evfd >= 0)
        close(q->evfd);
    q->evfd = -1;
}

inbox_batch_t *inbox_batch_new(uint32_t cap)
{
    inbox_batch_t *bt = slab_alloc(sizeof(*bt) + cap * sizeof(inbox_item_t));
    bt->next = NULL;
    bt->n = 0;
    bt->cap = cap;
    return bt;
}

void inbox_append(inbox_chain_t *ch, const inbox_item_t *it)
{
    if (!ch->newest || ch->newest->n == ch->newest->cap) {
        inbox_batch_t *bt = inbox_batch_new(INBOX_BATCH);
        bt->next = ch->newest;
        if (!ch->oldest)
            ch->oldest = bt;
        ch->newest = bt;
    }
    ch->newest->items[ch->newest->n++] = *it;
}

void inbox_push(inbox_t *q, inbox_chain_t *ch)
{
    if (!ch->newest)
        return;
    inbox_batch_t *top = atomic_load_explicit(&q->top, memory_order_relaxed);
    do {
        ch->oldest->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&q->top, &top, ch->newest, memory_order_seq_cst,
                                                    memory_order_relaxed));
    ch->newest = ch->oldest = NULL;
    /* After the push (seq_cst): the Dekker pair of inbox_sleep_begin. */
    if (atomic_load_explicit(&q->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&q->sleeping, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t r = write(q->evfd, &one, sizeof(one));
        (void)r;
    }
}

void inbox_post(inbox_t *q, const inbox_item_t *it)
{
    inbox_batch_t *bt = inbox_batch_new(1);
    bt->items[bt->n++] = *it;
    inbox_chain_t ch = {bt, bt};
    inbox_push(q, &ch);
}

bool inbox_sleep_begin(inbox_t *q)
{
    atomic_store_explicit(&q->sleeping, 1, memory_order_seq_cst);
    return atomic_load_explicit(&q->top, memory_order_seq_cst) != NULL;
}

void inbox_sleep_end(inbox_t *q) { atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed); }

void inbox_clear_wake(inbox_t *q)
{
    uint64_t v;
    ssize_t r = read(q->evfd, &v, sizeof(v));
    (void)r;
}

static inbox_batch_t *reverse(inbox_batch_t *list)
{
    inbox_batch_t *fifo = NULL;
    while (list) {
        inbox_batch_t *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    return fifo;
}

inbox_batch_t *inbox_take(inbox_t *q)
{
    if (!atomic_load_explicit(&q->top, memory_order_relaxed))
        return NULL;
    /* acquire: pairs with the producers' CAS, so the items they wrote are visible */
    return reverse(atomic_exchange_explicit(&q->top, NULL, memory_order_acquire));
}

inbox_batch_t *inbox_chain_fifo(inbox_chain_t *ch)
{
    inbox_batch_t *list = ch->newest;
    ch->newest = ch->oldest = NULL;
    return reverse(list);
}
