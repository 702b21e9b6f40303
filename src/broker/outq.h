/* outq.h -- a connection's output queue: bytes of its own (acknowledgements, small packets, the
 * packet identifier of a shared PUBLISH) interleaved with references to message encodings shared
 * by every receiver, written with one sendmsg of many iovecs.
 *
 * Design: own bytes go to a buffer (`own`); a shared encoding is not copied but referenced
 * (`refs`, a FIFO), with the count of own bytes appended before it, which fixes its place in the
 * stream. The iovecs are the own bytes up to the first reference, the reference, the own bytes up to
 * the next, and so on. A reference holds one msg_t reference: the encoding lives as long as the
 * message, and goes back once the kernel has taken all of it. Small encodings are copied instead
 * (OUTQ_REF_MIN): below that a copy costs less than the reference counting.
 *
 * Ownership: the queue belongs to its connection's worker; the msg references are the queue's. */
#ifndef TOMBO_BROKER_OUTQ_H
#define TOMBO_BROKER_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "broker/msg.h"

/* Encodings of at least this many bytes are referenced, smaller ones copied. */
#define OUTQ_REF_MIN 1024u

typedef struct outref {
    msg_t *msg;       /* one reference, keeping `p` alive */
    const uint8_t *p;
    uint32_t len;
    uint64_t at;      /* own bytes appended before it (a count since the queue began) */
} outref_t;

typedef struct outq {
    buf_t own;          /* own bytes not yet written */
    uint64_t own_in;    /* own bytes appended so far ... */
    uint64_t own_out;   /* ... and written so far */
    outref_t *refs;     /* ring of references not yet fully written (a slab block) */
    uint32_t head, n, cap;
    uint32_t ref_off;   /* bytes of refs[head] already written */
    size_t pending;     /* bytes not yet written, own and referenced */
} outq_t;

static inline size_t outq_pending(const outq_t *q) { return q->pending; }

/* Own bytes: reserve room for n, write them, commit what was written. */
uint8_t *outq_reserve(outq_t *q, size_t n);
void outq_commit(outq_t *q, size_t n);
/* Append len bytes at p, which live as long as m: takes a reference to m. */
void outq_ref(outq_t *q, msg_t *m, const uint8_t *p, uint32_t len);
/* The next bytes to write as at most `max` iovecs and at most `limit` bytes; returns the count. */
int outq_iov(const outq_t *q, struct iovec *iov, int max, size_t limit);
/* n bytes were written: drop them, releasing the references written in full. */
void outq_consume(outq_t *q, size_t n);
/* Give memory back when everything is written (buf_shrink's rules for the own bytes). */
void outq_shrink(outq_t *q);
void outq_free(outq_t *q);

#endif
