/* timers.h -- the broker's global timers: session expiry and delayed wills (design note in
 * timers.c). */
#ifndef TOMBO_BROKER_TIMERS_H
#define TOMBO_BROKER_TIMERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/session.h"

struct broker;

enum btimer_kind { BT_SESSION_EXPIRY, BT_WILL };

/* Ownership: the heap holds one session reference per timer. */
typedef struct timers {
    pthread_mutex_t lock; /* guards the heap: any thread adds, worker 0 pops */
    struct btimer *v;
    size_t n, cap;
} timers_t;

void timers_init(timers_t *t);
/* Shutdown, once no worker runs: drops every pending timer and its session reference. */
void timers_free(timers_t *t);

/* Any thread: fire `kind` for s at `at_ms` (monotonic). Takes a session reference. A timer whose
 * time no longer matches the session's (s->will_at, s->expire_at) when due does nothing. */
void broker_timer_add(struct broker *b, int64_t at_ms, int kind, session_t *s);
/* Worker 0, each loop turn: fire every timer due at `now` (publish wills, end expired sessions). */
void broker_timers_run(struct broker *b, int64_t now);

#endif
