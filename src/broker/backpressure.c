/* backpressure.c -- publishers wait for their receivers: pausing and resuming connections, the
 * wake-up from a draining receiver, slow consumers. The design note is in backpressure.h. */
#include "broker/backpressure.h"

#include <stdlib.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "broker/log.h"

void bp_marks_init(bp_marks_t *m, uint32_t max_queued_messages, uint64_t max_queued_bytes)
{
    m->high_n = BP_HIGH_MSGS;
    if (max_queued_messages && max_queued_messages < m->high_n)
        m->high_n = max_queued_messages;
    m->high_bytes = BP_HIGH_BYTES;
    if (max_queued_bytes && max_queued_bytes < m->high_bytes)
        m->high_bytes = max_queued_bytes;
    m->low_n = m->high_n / 2;
    m->low_bytes = m->high_bytes / 2;
}

static inline uint64_t worker_bit(const worker_t *w) { return 1ull << (w->index & 63); }

void bp_count_drop(broker_t *b) { atomic_fetch_add_explicit(&b->msgs_dropped, 1, memory_order_relaxed); }

static void mark_slow(worker_t *w, session_t *s, int64_t stalled_ms)
{
    if (atomic_exchange(&s->slow, 1))
        return;
    log_printf(TLOG_NOTICE,
               "Client %s is a slow consumer: %u messages waiting and none taken for %lld ms; publishers no "
               "longer wait for it, its QoS 0 messages are dropped and QoS 1/2 queued up to max_queued_messages.",
               s->client_id, atomic_load(&s->backlog_n), (long long)stalled_ms);
    (void)w;
}

/* Messages of s's backlog that this worker gave it in the current loop turn, up to the high-water
 * mark: they reach s's owner only when the turn ends, so its owner has not had a chance to drain
 * them and they do not count against the mark (up to one mark's worth per worker). Without this,
 * one turn that reads 50 publishers' windows for one subscriber (fan-in) crosses the mark on its
 * own and pauses publishers the subscriber is keeping up with: two epoll_ctl, an INBOX_RESUME and
 * a wake-up each time, about one pause per 55-250 delivered messages in windowed fan-in. A small
 * direct-mapped table per worker (two subscribers taking every message alternate, 100 pairs'
 * receivers collide): a receiver that loses its entry to another starts again from 0, so a
 * collision only takes the allowance away, as before this existed. */
static uint32_t turn_share(worker_t *w, const session_t *s, uint32_t high_n)
{
    size_t n = sizeof(w->bp_turn) / sizeof(w->bp_turn[0]);
    struct bp_turn *e = &w->bp_turn[((uintptr_t)s >> 6) % n];
    if (e->s != s || e->at != w->turn) {
        e->s = s;
        e->at = w->turn;
        e->n = 0;
    }
    if (e->n < high_n)
        e->n++;
    return e->n;
}

void bp_after_delivery(conn_t *c, session_t *s)
{
    worker_t *w = c->w;
    const bp_marks_t *m = &broker_settings(w->b)->bp;
    uint32_t mine = turn_share(w, s, m->high_n);
    /* A connection waits for one receiver at a time; its own session drains only when it is
     * read (its acknowledgements), so it never waits for itself: its owner notices if it is stuck. */
    if (c->bp_on || s == c->session || atomic_load(&s->worker) < 0 || atomic_load(&s->slow) ||
        !bp_over_high_except(m, s, mine))
        return;
    /* Say we wait, then look again: the owner drains, then looks at `waiters` (backpressure.h).
     * Waiting needs the backlog over the low-water mark without our share, so over it with: the
     * owner's drain below the low mark, which wakes us, is still to come. */
    atomic_fetch_or(&s->waiters, worker_bit(w));
    if (!bp_over_low_except(m, s, mine))
        return;
    session_hold(s);
    c->bp_on = s;
}

void bp_pause(conn_t *c)
{
    worker_t *w = c->w;
    if (c->bp_paused)
        return;
    c->bp_paused = 1;
    conn_update_events(c);
    if (w->n_paused == w->cap_paused) {
        w->cap_paused = w->cap_paused ? w->cap_paused * 2 : 64;
        w->paused = xrealloc(w->paused, w->cap_paused * sizeof(*w->paused));
    }
    w->paused[w->n_paused++] = (struct paused){c->fd, c->id, atomic_load(&c->bp_on->progress), w->now};
}

void bp_conn_closed(conn_t *c)
{
    if (c->bp_on) {
        session_release(c->bp_on);
        c->bp_on = NULL;
    }
    c->bp_paused = 0; /* its entry in w->paused no longer finds it */
}

/* May c go on? True when its receiver drained below the low-water mark, went offline or is slow. */
static bool may_resume(worker_t *w, conn_t *c, struct paused *pw, bool tick)
{
    session_t *s = c->bp_on;
    const bp_marks_t *m = &broker_settings(w->b)->bp;
    if (atomic_load(&s->worker) < 0 || atomic_load(&s->slow) || !bp_over_low(m, s))
        return true;
    if (tick) {
        uint64_t p = atomic_load(&s->progress);
        if (p != pw->progress) {
            pw->progress = p;
            pw->since = w->now;
        } else if (w->now - pw->since >= BP_SLOW_MS) {
            mark_slow(w, s, w->now - pw->since);
            return true;
        }
    }
    /* Still waiting: the drainer may have taken our bit with an earlier wake-up. */
    atomic_fetch_or(&s->waiters, worker_bit(w));
    return !bp_over_low(m, s);
}

void bp_check_paused(worker_t *w, bool tick)
{
    w->resume_pending = 0;
    if (w->n_paused == 0)
        return;
    /* Take the list: a resumed connection may block and be paused again while we walk it, onto
     * the spare list swapped in (kept between checks, as is this one). */
    struct paused *list = w->paused;
    size_t n = w->n_paused, cap = w->cap_paused;
    w->paused = w->paused_spare;
    w->cap_paused = w->cap_spare;
    w->n_paused = 0;
    w->paused_spare = NULL;
    w->cap_spare = 0;
    for (size_t i = 0; i < n; i++) {
        conn_t *c = conn_lookup(w, list[i].fd, list[i].id);
        if (!c || !c->bp_paused)
            continue;
        if (!may_resume(w, c, &list[i], tick)) {
            if (w->n_paused == w->cap_paused) {
                w->cap_paused = w->cap_paused ? w->cap_paused * 2 : 64;
                w->paused = xrealloc(w->paused, w->cap_paused * sizeof(*w->paused));
            }
            w->paused[w->n_paused++] = list[i];
            continue;
        }
        session_release(c->bp_on);
        c->bp_on = NULL;
        c->bp_paused = 0;
        conn_update_events(c);
        conn_resume_input(c);
    }
    if (w->paused_spare) /* a check nested in conn_resume_input kept its own */
        free(w->paused_spare);
    w->paused_spare = list;
    w->cap_spare = cap;
}

void bp_wake_waiters(worker_t *w, session_t *s)
{
    if (!atomic_load(&s->waiters))
        return;
    uint64_t mask = atomic_exchange(&s->waiters, 0);
    broker_t *b = w->b;
    inbox_item_t it = {.kind = INBOX_RESUME};
    for (int i = 0; i < b->n_workers; i++)
        if (mask & (1ull << (i & 63)))
            worker_defer(w, i, &it);
}

void bp_after_drain(worker_t *w, session_t *s, uint32_t popped)
{
    const bp_marks_t *m = &broker_settings(w->b)->bp;
    if (popped)
        atomic_fetch_add(&s->progress, popped);
    if (!bp_over_low(m, s)) {
        s->stuck_since = 0;
        if (atomic_load(&s->slow)) {
            atomic_store(&s->slow, 0);
            log_printf(TLOG_INFO, "Client %s keeps up again: no longer a slow consumer.", s->client_id);
        }
        bp_wake_waiters(w, s);
        return;
    }
    if (popped) {
        s->stuck_since = 0;
        return;
    }
    if (!bp_over_high(m, s) || atomic_load(&s->slow))
        return;
    /* Over the mark, deliveries still coming, nothing taken: stuck for how long? */
    if (!s->stuck_since)
        s->stuck_since = w->now;
    else if (w->now - s->stuck_since >= BP_SLOW_MS)
        mark_slow(w, s, w->now - s->stuck_since);
}
