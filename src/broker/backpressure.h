/* backpressure.h -- receivers push back on publishers: a broker must not accept more than it can
 * deliver.
 *
 * Design. Every session counts its backlog: the messages (and payload bytes) delivered to it that
 * are not yet written to its socket, on the lock-free `incoming` stack or in its queue. A PUBLISH
 * that takes a connected receiver's backlog over the high-water mark blocks the connection it came
 * from: that connection's worker handles no further packet of it (the rest of what it read stays in
 * its input buffer) and stops watching its socket, so TCP pushes back on the client. What the
 * checking worker itself gave the receiver in its current loop turn (handed over only when the turn
 * ends) does not count, up to one mark's worth (bp_after_delivery). The worker
 * sets its bit in the receiver's `waiters` mask first and then looks at the backlog again; the
 * receiver's owning worker, each time it drains the backlog below the low-water mark, swaps the
 * mask for 0 and sends INBOX_RESUME to every worker in it (deferred, one batch per loop turn). Both
 * sides use sequentially consistent atomics, so one of them sees the other (the inbox's wake-up
 * protocol, again): no resume is lost and no worker ever waits for another.
 *
 * Slow consumers. A receiver whose backlog stays over the mark with no progress (nothing taken off
 * its queue) for BP_SLOW_MS is a slow consumer: publishers stop waiting for it, its QoS 0 messages
 * beyond the mark are dropped and its QoS 1/2 messages are queued up to max_queued_messages /
 * max_queued_bytes (as Mosquitto does for every client), the drops counted in $SYS. It is an
 * ordinary receiver again once it drains below the low-water mark. Either side notices: the
 * workers of the publishers it blocks (each keepalive tick), or its owner when deliveries keep
 * coming (session_flush). Offline sessions never block anyone: max_queued_* bound them. */
#ifndef TOMBO_BROKER_BACKPRESSURE_H
#define TOMBO_BROKER_BACKPRESSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/session.h"

struct conn;
struct worker;
struct broker;

/* Defaults of the marks; max_queued_messages / max_queued_bytes lower them when smaller. 1000
 * messages (Mosquitto's default max_queued_messages, and so the mark a default config gets): a
 * windowed fan-in of 50 publishers x 16 in flight stays under it, where 256 paused a publisher
 * every ~85 deliveries (two epoll_ctl and a resume each). It was 256 while each delivery was a
 * node another core had written: then 1000 delivered up to 40% less in unthrottled pairs; with
 * staged batches (session.h) it delivers as much or more (docs/benchmarks.md, 2026-12-06 23:46). */
#define BP_HIGH_MSGS 1000u
#define BP_HIGH_BYTES (4u * 1024 * 1024)
/* No progress for this long while over the mark: a slow consumer. */
#define BP_SLOW_MS 1000
/* A connection's unsent output beyond which its session's queue waits (user-space buffering). */
#define BP_OUT_HIGH (1024u * 1024)

/* The marks for one broker, from its configuration (broker_init). */
typedef struct bp_marks {
    uint32_t high_n, low_n;
    uint64_t high_bytes, low_bytes;
} bp_marks_t;

void bp_marks_init(bp_marks_t *m, uint32_t max_queued_messages, uint64_t max_queued_bytes);

/* Backlog accounting, any thread. */
static inline void backlog_add(session_t *s, uint32_t n, uint64_t bytes)
{
    atomic_fetch_add(&s->backlog_n, n);
    atomic_fetch_add(&s->backlog_bytes, bytes);
}
static inline void backlog_sub(session_t *s, uint32_t n, uint64_t bytes)
{
    atomic_fetch_sub(&s->backlog_n, n);
    atomic_fetch_sub(&s->backlog_bytes, bytes);
}
static inline bool bp_over_high(const bp_marks_t *m, session_t *s)
{
    return atomic_load(&s->backlog_n) > m->high_n || atomic_load(&s->backlog_bytes) > m->high_bytes;
}
static inline bool bp_over_low(const bp_marks_t *m, session_t *s)
{
    return atomic_load(&s->backlog_n) > m->low_n || atomic_load(&s->backlog_bytes) > m->low_bytes;
}
/* The same, not counting `mine` of the messages (the checking worker's share of this turn,
 * backpressure.c); bytes count in full. */
static inline bool bp_over_high_except(const bp_marks_t *m, session_t *s, uint32_t mine)
{
    return atomic_load(&s->backlog_n) > m->high_n + mine || atomic_load(&s->backlog_bytes) > m->high_bytes;
}
static inline bool bp_over_low_except(const bp_marks_t *m, session_t *s, uint32_t mine)
{
    return atomic_load(&s->backlog_n) > m->low_n + mine || atomic_load(&s->backlog_bytes) > m->low_bytes;
}

/* Publisher side, from the publishing connection's worker (route_publish): s has just taken a
 * message from c. Blocks c on s when s is over the high-water mark; handle_publish's caller then
 * stops handling c's packets (conn->bp_on is set). */
void bp_after_delivery(struct conn *c, session_t *s);
/* The connection blocked on the packet it just handled: stop reading it. */
void bp_pause(struct conn *c);
/* Its worker: resume the paused connections whose receiver drained, went away or turned out to be
 * slow. `tick`: a keepalive tick, when receivers that made no progress are declared slow. */
void bp_check_paused(struct worker *w, bool tick);
/* A connection goes away: forget what it waited for. */
void bp_conn_closed(struct conn *c);

/* Receiver side, from s's owning worker with s->lock held: messages were taken off its queue
 * (`popped` of them). Wakes the workers waiting for s once it is below the low-water mark, and
 * notices a receiver stuck over the mark while deliveries keep coming. */
void bp_after_drain(struct worker *w, session_t *s, uint32_t popped);
/* s lost its connection: nobody waits for it any more. */
void bp_wake_waiters(struct worker *w, session_t *s);

/* A message for a slow consumer dropped on the way (counted in $SYS). */
void bp_count_drop(struct broker *b);

#endif
