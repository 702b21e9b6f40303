/* test_base_buf.c -- unit tests of the base layer's byte buffer (src/base/buf.c): reserve/commit/
 * consume as a connection's input uses them, the slide of unconsumed bytes to the front before the
 * buffer grows, capacities that double from 64 (exact slab classes), and buf_shrink's rule (an empty
 * buffer over 4 KB or at most 64 B gives its memory back; sizes in between stay). Without a slab pool
 * attached the blocks come from malloc, which ASan watches. */
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "unit.h"

static void reserve_commit_consume(void)
{
    CASE("reserve, commit, consume");
    buf_t b = {0};
    uint8_t *p = buf_reserve(&b, 10);
    CHECK(p != NULL);
    CHECK_EQ(b.cap, 64); /* a CONNACK or PINGRESP fits the first block */
    memcpy(p, "0123456789", 10);
    buf_commit(&b, 10);
    CHECK_EQ(buf_used(&b), 10);
    buf_consume(&b, 4);
    CHECK_EQ(buf_used(&b), 6);
    CHECK_MEM(buf_head(&b), 6, "456789", 6);
    buf_consume(&b, 6); /* emptied: back to offset 0 */
    CHECK_EQ(b.off, 0);
    CHECK_EQ(b.len, 0);
    buf_free(&b);
    CHECK(b.data == NULL);
}

static void slide_before_grow(void)
{
    CASE("unconsumed bytes slide to the front before the buffer grows");
    buf_t b = {0};
    memset(buf_reserve(&b, 60), 'a', 60);
    buf_commit(&b, 60);
    buf_consume(&b, 50); /* 10 left at offset 50 */
    uint8_t *p = buf_reserve(&b, 40);
    CHECK_EQ(b.cap, 64); /* 10 + 40 fit once slid: no growth */
    CHECK_EQ(b.off, 0);
    CHECK(p == b.data + 10);
    memset(p, 'b', 40);
    buf_commit(&b, 40);
    CHECK_EQ(buf_used(&b), 50);
    CHECK_EQ(buf_head(&b)[9], 'a');
    CHECK_EQ(buf_head(&b)[10], 'b');
    buf_free(&b);
}

static void doubling(void)
{
    CASE("capacities double from 64 and keep the bytes");
    buf_t b = {0};
    for (int i = 0; i < 1000; i++) {
        uint8_t *p = buf_reserve(&b, 7);
        memcpy(p, "abcdefg", 7);
        buf_commit(&b, 7);
    }
    CHECK_EQ(buf_used(&b), 7000);
    CHECK_EQ(b.cap, 8192);
    CHECK_MEM(buf_head(&b) + 6993, 7, "abcdefg", 7);
    buf_free(&b);
}

static void shrink_rule(void)
{
    CASE("buf_shrink: empty and > 4 KB or <= 64 B goes back, in between stays");
    buf_t b = {0};
    buf_reserve(&b, 8000);
    buf_commit(&b, 8000);
    buf_shrink(&b); /* not empty: stays */
    CHECK(b.data != NULL);
    buf_consume(&b, 8000);
    buf_shrink(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.cap, 0);

    buf_reserve(&b, 1000); /* 1024: a busy connection's size, kept for the next turn */
    CHECK_EQ(b.cap, 1024);
    buf_shrink(&b);
    CHECK(b.data != NULL);
    buf_free(&b);

    buf_reserve(&b, 1); /* 64: an idle client's buffer goes back */
    buf_shrink(&b);
    CHECK(b.data == NULL);
}

int main(void)
{
    reserve_commit_consume();
    slide_before_grow();
    doubling();
    shrink_rule();
    UNIT_DONE();
}
