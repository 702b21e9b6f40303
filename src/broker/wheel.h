/* wheel.h -- a worker's keepalive timer wheel (design note in wheel.c). Every function runs on the
 * owning worker's thread only. */
#ifndef TOMBO_BROKER_WHEEL_H
#define TOMBO_BROKER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct worker;

/* 256 slots of 250 ms (a 64 s horizon; later deadlines are re-slotted when their slot comes
 * round). */
#define WHEEL_SLOTS 256
#define WHEEL_TICK_MS 250

typedef struct wheel {
    struct conn *slot[WHEEL_SLOTS];
    int64_t now; /* ticks (now / WHEEL_TICK_MS): last slot processed */
} wheel_t;

/* (Re)place c on its worker's wheel after its deadline changed (accept, CONNECT, linger). */
void wheel_schedule(struct conn *c);
/* Take c off its worker's wheel (closing); no-op when it is not on it. */
void wheel_unlink(struct conn *c);
/* Run the slots up to the worker's `now`: connections past their deadline are closed (no CONNECT
 * in time, keepalive timeout) or their linger ends; the others are re-slotted. Returns whether a
 * tick went by. */
bool wheel_tick(struct worker *w);

#endif
