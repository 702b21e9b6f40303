/* stats.c -- what tombo-bench measures: a log-linear latency histogram (HdrHistogram-like, 1.6 %
 * precision, fixed size, no allocation on record) and exact per-publisher sequence tracking
 * (a bitmap per publisher and subscriber) for loss, duplicate and out-of-order counts. */
#include "bench/bench.h"

#include <stdlib.h>
#include <string.h>

#define SUB_HALF (1u << HIST_SUB_BITS)

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static int hist_index(uint64_t v)
{
    if (v < 2 * SUB_HALF)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - HIST_SUB_BITS;
    return shift * (int)SUB_HALF + (int)(v >> shift);
}

uint64_t hist_bucket_high(int idx)
{
    if (idx < (int)(2 * SUB_HALF))
        return (uint64_t)idx;
    int shift = idx / (int)SUB_HALF - 1;
    uint64_t m = (uint64_t)(idx - shift * (int)SUB_HALF);
    if (shift >= 57 && m == 127)
        return UINT64_MAX;
    return ((m + 1) << shift) - 1;
}

void hist_record(hist_t *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist_t *into, const hist_t *from)
{
    if (!from->count)
        return;
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_percentile(const hist_t *h, double q)
{
    if (!h->count)
        return 0;
    if (q >= 100.0)
        return h->max;
    /* rank of the value: the smallest one with at least q% of the samples at or below it */
    uint64_t want = (uint64_t)((q / 100.0) * (double)h->count + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

int track_seen(track_t *t, uint64_t seq)
{
    uint64_t w = seq >> 6;
    if (w >= t->words) {
        uint64_t nw = t->words ? t->words : 16;
        while (nw <= w)
            nw *= 2;
        uint64_t *nb = realloc(t->bits, nw * sizeof(uint64_t));
        if (!nb)
            return -1;
        memset(nb + t->words, 0, (nw - t->words) * sizeof(uint64_t));
        t->bits = nb;
        t->words = nw;
    }
    uint64_t bit = 1ull << (seq & 63);
    if (t->bits[w] & bit)
        return 2;
    t->bits[w] |= bit;
    t->distinct++;
    if (seq >= t->next) {
        t->next = seq + 1;
        return 0;
    }
    return 1;
}

void track_free(track_t *t)
{
    free(t->bits);
    memset(t, 0, sizeof(*t));
}
