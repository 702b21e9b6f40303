/* timers.c -- the broker's global timers: session expiry and delayed wills, for sessions whose
 * connection is gone (so no worker's wheel holds them).
 *
 * Design: one binary min-heap on the due time under a mutex; any worker adds (a connection closing,
 * a restored session at start-up), worker 0 pops what is due once per loop turn. A timer is never
 * cancelled: each holds a session reference and, when it fires, counts only if the session still
 * waits for exactly that time (s->will_at, s->expire_at) while offline, so a reconnect or a newer
 * timer makes an old one a no-op. */
#include "broker/timers.h"

#include <stdlib.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/log.h"
#include "broker/will.h"
#include "broker/worker.h"

struct btimer {
    int64_t at;
    int kind;
    session_t *s; /* one reference */
};

void timers_init(timers_t *t)
{
    pthread_mutex_init(&t->lock, NULL);
}

void timers_free(timers_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        session_release(t->v[i].s);
    free(t->v);
    pthread_mutex_destroy(&t->lock);
}

void broker_timer_add(broker_t *b, int64_t at, int kind, session_t *s)
{
    timers_t *t = &b->timers;
    session_hold(s);
    pthread_mutex_lock(&t->lock);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    size_t i = t->n++;
    struct btimer e = {at, kind, s};
    while (i > 0 && t->v[(i - 1) / 2].at > at) {
        t->v[i] = t->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->v[i] = e;
    pthread_mutex_unlock(&t->lock);
}

/* The earliest timer due at `now`, taken off the heap into *out; false when none is due. */
static bool timer_pop(timers_t *t, int64_t now, struct btimer *out)
{
    pthread_mutex_lock(&t->lock);
    if (t->n == 0 || t->v[0].at > now) {
        pthread_mutex_unlock(&t->lock);
        return false;
    }
    *out = t->v[0];
    struct btimer last = t->v[--t->n];
    size_t i = 0, n = t->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t mv = last.at;
        if (l < n && t->v[l].at < mv) {
            m = l;
            mv = t->v[l].at;
        }
        if (r < n && t->v[r].at < mv)
            m = r;
        if (m == i)
            break;
        t->v[i] = t->v[m];
        i = m;
    }
    if (n)
        t->v[i] = last;
    pthread_mutex_unlock(&t->lock);
    return true;
}

void broker_timers_run(broker_t *b, int64_t now)
{
    worker_t *w = &b->workers[0];
    struct btimer e;
    while (timer_pop(&b->timers, now, &e)) {
        session_t *s = e.s;
        if (session_timer_current(s, e.kind == BT_WILL, e.at)) {
            if (e.kind == BT_WILL) {
                will_publish_now(w, s);
            } else {
                /* Session expiry: a will still waiting for its delay goes out now [MQTT-3.1.3-9]. */
                will_publish_now(w, s);
                log_printf(TLOG_NOTICE, "Session of client %s expired.", s->client_id);
                atomic_fetch_add_explicit(&b->clients_expired, 1, memory_order_relaxed);
                session_end(s);
            }
        }
        session_release(s);
    }
}
