/* outq.c -- a connection's output: own bytes and references to shared encodings, as iovecs.
 * The design note is in outq.h. */
#include "broker/outq.h"

#include <string.h>

#include "base/buf.h"
#include "base/slab.h"

static inline outref_t *ref_at(const outq_t *q, uint32_t i) { return &q->refs[(q->head + i) & (q->cap - 1)]; }

uint8_t *outq_reserve(outq_t *q, size_t n) { return buf_reserve(&q->own, n); }

void outq_commit(outq_t *q, size_t n)
{
    buf_commit(&q->own, n);
    q->own_in += n;
    q->pending += n;
}

void outq_ref(outq_t *q, msg_t *m, const uint8_t *p, uint32_t len)
{
    if (q->n == q->cap) {
        /* Capacities are powers of two (the ring index is masked), so slab classes fit exactly. */
        uint32_t cap = q->cap ? q->cap * 2 : 16;
        outref_t *v = slab_alloc(cap * sizeof(*v));
        for (uint32_t i = 0; i < q->n; i++)
            v[i] = *ref_at(q, i);
        slab_free(q->refs);
        q->refs = v;
        q->cap = cap;
        q->head = 0;
    }
    msg_hold(m);
    *ref_at(q, q->n++) = (outref_t){m, p, len, q->own_in};
    q->pending += len;
}

int outq_iov(const outq_t *q, struct iovec *iov, int max, size_t limit)
{
    int k = 0;
    uint64_t pos = q->own_out;             /* own bytes placed in iovecs so far */
    const uint8_t *own = buf_head(&q->own); /* the first of them */
    for (uint32_t i = 0; i <= q->n && k < max && limit > 0; i++) {
        /* Own bytes before reference i (or, after the last one, the rest). */
        uint64_t upto = i < q->n ? ref_at(q, i)->at : q->own_in;
        if (upto > pos) {
            size_t len = (size_t)(upto - pos);
            if (len > limit)
                len = limit;
            iov[k++] = (struct iovec){(void *)own, len};
            own += len;
            pos += len;
            limit -= len;
            if (k == max || limit == 0)
                break;
        }
        if (i == q->n)
            break;
        const outref_t *r = ref_at(q, i);
        uint32_t off = i == 0 ? q->ref_off : 0;
        size_t len = r->len - off;
        if (len > limit)
            len = limit;
        iov[k++] = (struct iovec){(void *)(r->p + off), len};
        limit -= len;
    }
    return k;
}

void outq_consume(outq_t *q, size_t n)
{
    q->pending -= n;
    while (n > 0) {
        outref_t *r = q->n ? ref_at(q, 0) : NULL;
        if (r && r->at <= q->own_out) {
            /* The head reference comes next in the stream. */
            size_t take = r->len - q->ref_off;
            if (take > n)
                take = n;
            q->ref_off += (uint32_t)take;
            n -= take;
            if (q->ref_off == r->len) {
                msg_release(r->msg);
                q->head = (q->head + 1) & (q->cap - 1);
                q->n--;
                q->ref_off = 0;
            }
        } else {
            uint64_t upto = r ? r->at : q->own_in;
            size_t take = (size_t)(upto - q->own_out);
            if (take > n)
                take = n;
            buf_consume(&q->own, take);
            q->own_out += take;
            n -= take;
        }
    }
}

void outq_shrink(outq_t *q)
{
    buf_shrink(&q->own);
    if (q->n == 0 && q->refs) {
        slab_free(q->refs);
        q->refs = NULL;
        q->cap = q->head = 0;
    }
}

void outq_free(outq_t *q)
{
    for (uint32_t i = 0; i < q->n; i++)
        msg_release(ref_at(q, i)->msg);
    slab_free(q->refs);
    buf_free(&q->own);
    memset(q, 0, sizeof(*q));
}
