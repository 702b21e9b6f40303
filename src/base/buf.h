/* buf.h -- growable byte buffer (base layer), used by the broker for connection input.
 * Input uses reserve/commit (h2o's h2o_buffer_reserve): reserve space, read() into it, commit what
 * arrived, consume parsed packets from the front. Output appends encoded packets and is flushed
 * once per loop turn. Memory comes from the calling thread's slab (slab.h) and never fails (mem.h). */
#ifndef TOMBO_BASE_BUF_H
#define TOMBO_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

/* 32-bit offsets: a buffer holds at most one packet (MQTT caps them at 256 MB) plus what one loop
 * turn appends, and every client has two of them (16 bytes less per connection). */
typedef struct buf {
    uint8_t *data;
    uint32_t off;  /* first unconsumed byte */
    uint32_t len;  /* end of valid bytes */
    uint32_t cap;
} buf_t;

/* Make room for at least `n` more bytes after len; returns the write position. */
uint8_t *buf_reserve(buf_t *b, size_t n);
static inline void buf_commit(buf_t *b, size_t n) { b->len += (uint32_t)n; }
static inline size_t buf_used(const buf_t *b) { return b->len - b->off; }
static inline uint8_t *buf_head(const buf_t *b) { return b->data + b->off; }
/* Drop n bytes from the front; an emptied buffer resets to offset 0. */
void buf_consume(buf_t *b, size_t n);
/* Release the memory when the buffer is empty and over 4 KB (a burst's buffer goes back) or at
 * most 64 B (an idle client's CONNACK or PINGRESP: idle connections then hold no output buffer;
 * taking a small block again from the worker's slab is a free-list pop). Sizes in between stay
 * for the next turn of a busy connection instead of growing again from 64 B. */
void buf_shrink(buf_t *b);
void buf_free(buf_t *b);

/* Abort-on-OOM allocators for the broker. */
#endif
