/* inbox.c -- a worker's inbox: batches of items over base/mpsc.h (design note in inbox.h). */
#include "broker/inbox.h"

#include <stddef.h>

#include "base/slab.h"

/* inbox_next and inbox_take turn an mpsc_node_t back into its batch by a cast. */
_Static_assert(offsetof(inbox_batch_t, node) == 0, "the node is an inbox batch's first member");

inbox_batch_t *inbox_batch_new(uint32_t cap)
{
    inbox_batch_t *bt = slab_alloc(sizeof(*bt) + cap * sizeof(inbox_item_t));
    bt->node.next = NULL;
    bt->n = 0;
    bt->cap = cap;
    return bt;
}

void inbox_append(inbox_chain_t *ch, const inbox_item_t *it)
{
    if (!ch->newest || ch->newest->n == ch->newest->cap) {
        inbox_batch_t *bt = inbox_batch_new(INBOX_BATCH);
        bt->node.next = ch->newest ? &ch->newest->node : NULL;
        if (!ch->oldest)
            ch->oldest = bt;
        ch->newest = bt;
    }
    ch->newest->items[ch->newest->n++] = *it;
}

void inbox_push(inbox_t *in, inbox_chain_t *ch)
{
    if (!ch->newest)
        return;
    mpsc_push(&in->q, &ch->newest->node, &ch->oldest->node);
    ch->newest = ch->oldest = NULL;
}

void inbox_post(inbox_t *in, const inbox_item_t *it)
{
    inbox_batch_t *bt = inbox_batch_new(1);
    bt->items[bt->n++] = *it;
    mpsc_push(&in->q, &bt->node, &bt->node);
}

inbox_batch_t *inbox_chain_fifo(inbox_chain_t *ch)
{
    inbox_batch_t *list = ch->newest;
    ch->newest = ch->oldest = NULL;
    return list ? (inbox_batch_t *)mpsc_reverse(&list->node) : NULL;
}
