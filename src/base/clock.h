/* clock.h -- the monotonic clock every timer, deadline and latency of tombo counts in (base layer):
 * the broker's, libtombo's and tombo-bench's, written once. Inline: one vDSO call, no system call,
 * cheap enough for each worker's loop turn and each message's send stamp, and nothing to link. */
#ifndef TOMBO_BASE_CLOCK_H
#define TOMBO_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC: never goes back, unaffected by changes of the wall clock, and
 * meaningless across processes or restarts (the persistence store keeps wall-clock times). */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock in milliseconds. */
static inline int64_t now_ms(void)
{
    return (int64_t)(now_ns() / 1000000u);
}

#endif
