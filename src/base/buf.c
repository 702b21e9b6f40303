/* buf.c -- growable byte buffers (reserve/commit input, append-and-flush output).
 * Buffer memory comes from the calling worker's slab (slab.h): a connection's output buffer that
 * is released after a burst and taken again next turn costs a free-list push and pop, not a
 * malloc and a chain of reallocs; capacities double from 64, so they are exact slab classes. */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "base/slab.h"

uint8_t *buf_reserve(buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    /* Slide unconsumed bytes to the front before growing. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 64; /* a CONNACK or PINGRESP fits: idle clients stay small */
    while (cap - b->len < n)
        cap *= 2;
    if (cap > UINT32_MAX)
        abort(); /* more than one packet and a turn's output: a caller's bug, not a client's */
    b->data = slab_realloc(b->data, b->len, cap);
    b->cap = (uint32_t)cap;
    return b->data + b->len;
}

void buf_consume(buf_t *b, size_t n)
{
    b->off += (uint32_t)n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void buf_shrink(buf_t *b)
{
    if (b->off == b->len && (b->cap > 4 * 1024 || b->cap <= 64)) {
        slab_free(b->data);
        b->data = NULL;
        b->cap = b->off = b->len = 0;
    }
}

void buf_free(buf_t *b)
{
    slab_free(b->data);
    b->data = NULL;
    b->cap = b->off = b->len = 0;
}
