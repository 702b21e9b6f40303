/* buf.c -- growable byte buffers and abort-on-OOM allocation for the broker.
 * Buffer memory comes from the calling worker's slab (slab.h): a connection's output buffer that
 * is released after a burst and taken again next turn costs a free-list push and pop, not a
 * malloc and a chain of reallocs; capacities double from 64, so they are exact slab classes. */
#include "broker/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/slab.h"

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
    b->data = slab_realloc(b->data, b->len, cap);
    b->cap = cap;
    return b->data + b->len;
}

void buf_consume(buf_t *b, size_t n)
{
    b->off += n;
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
