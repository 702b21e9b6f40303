/* test_broker_outq.c -- unit tests of a connection's output queue (src/broker/outq.c): own bytes
 * and references to shared encodings come out as iovecs in the order they were appended, partial
 * writes resume in the middle of either, the byte and iovec limits hold, and every message
 * reference is given back once the bytes it covers are written (checked against a plain byte
 * string model over random operation sequences). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/outq.h"
#include "unit.h"

static msg_t *make_msg(size_t n)
{
    uint8_t payload[4096];
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    return msg_new((mqtt_bytes_t){(const uint8_t *)"t", 1}, (mqtt_bytes_t){payload, (uint32_t)n}, 0, 0, NULL, 0);
}

/* Everything outq_iov offers (up to `limit` bytes) as one string. */
static size_t gather(const outq_t *q, uint8_t *dst, int max, size_t limit)
{
    struct iovec iov[64];
    int k = outq_iov(q, iov, max, limit);
    size_t n = 0;
    for (int i = 0; i < k; i++) {
        memcpy(dst + n, iov[i].iov_base, iov[i].iov_len);
        n += iov[i].iov_len;
    }
    return n;
}

static void own(outq_t *q, const char *s)
{
    size_t n = strlen(s);
    memcpy(outq_reserve(q, n), s, n);
    outq_commit(q, n);
}

static void test_interleaving(void)
{
    CASE("own bytes and references come out in append order, and partial writes resume in either");
    msg_t *m = make_msg(26);
    outq_t q = {0};
    own(&q, "AB");
    outq_ref(&q, m, m->payload.p, 10); /* abcdefghij */
    own(&q, "CD");
    outq_ref(&q, m, m->payload.p + 20, 6); /* uvwxyz */
    outq_ref(&q, m, m->payload.p, 3);      /* abc, right behind another reference */
    own(&q, "EF");
    const char *want = "ABabcdefghijCDuvwxyzabcEF";
    CHECK_EQ(outq_pending(&q), strlen(want));
    CHECK_EQ(atomic_load(&m->refs), 4);
    uint8_t got[128];
    size_t n = gather(&q, got, 64, SIZE_MAX);
    CHECK_EQ(n, strlen(want));
    CHECK(memcmp(got, want, n) == 0);

    CASE("the byte limit cuts inside an iovec, the iovec limit counts whole ones");
    n = gather(&q, got, 64, 5);
    CHECK_EQ(n, 5);
    CHECK(memcmp(got, "ABabc", 5) == 0);
    n = gather(&q, got, 2, SIZE_MAX);
    CHECK_EQ(n, 12);

    CASE("consuming 1 byte at a time releases each reference once its last byte is written");
    size_t off = 0;
    while (outq_pending(&q) > 0) {
        outq_consume(&q, 1);
        off++;
        n = gather(&q, got, 64, SIZE_MAX);
        CHECK_EQ(n, strlen(want) - off);
        CHECK(memcmp(got, want + off, n) == 0);
        if (off == 12)
            CHECK_EQ(atomic_load(&m->refs), 3);
    }
    CHECK_EQ(atomic_load(&m->refs), 1);
    outq_shrink(&q);
    CHECK(q.refs == NULL && q.own.data == NULL);
    outq_free(&q);
    msg_release(m);
}

static void test_random(void)
{
    CASE("random appends and partial writes match a byte-string model; no reference leaks");
    srand(12345);
    msg_t *m = make_msg(4000);
    static uint8_t model[1 << 20], got[1 << 20];
    for (int round = 0; round < 200; round++) {
        outq_t q = {0};
        size_t head = 0, tail = 0; /* model[head..tail) is what the queue must still write */
        for (int op = 0; op < 300; op++) {
            int r = rand() % 3;
            if (r == 0) {
                size_t len = (size_t)(rand() % 40) + 1;
                uint8_t *dst = outq_reserve(&q, len);
                for (size_t i = 0; i < len; i++)
                    dst[i] = model[tail + i] = (uint8_t)('0' + (op + i) % 10);
                outq_commit(&q, len);
                tail += len;
            } else if (r == 1) {
                uint32_t at = (uint32_t)(rand() % 3000), len = (uint32_t)(rand() % 1000) + 1;
                outq_ref(&q, m, m->payload.p + at, len);
                memcpy(model + tail, m->payload.p + at, len);
                tail += len;
            } else if (tail > head) {
                size_t n = gather(&q, got, 1 + rand() % 64, SIZE_MAX);
                if (n == 0 || memcmp(got, model + head, n) != 0) {
                    CHECK(!"iovecs differ from the model");
                    break;
                }
                size_t take = (size_t)(rand() % (int)n) + 1;
                outq_consume(&q, take);
                head += take;
            }
            if (outq_pending(&q) != tail - head) {
                CHECK(!"pending differs from the model");
                break;
            }
        }
        if (round % 2)
            outq_free(&q); /* the rest unwritten: its references go back too */
        else {
            while (outq_pending(&q) > 0)
                outq_consume(&q, outq_pending(&q) > 7 ? 7 : outq_pending(&q));
            outq_free(&q);
        }
        CHECK_EQ(atomic_load(&m->refs), 1);
    }
    msg_release(m);
}

int main(void)
{
    test_interleaving();
    test_random();
    UNIT_DONE();
}
