/* clock.h -- the monotonic clock every timer and deadline of the broker counts in (base layer). */
#ifndef TOMBO_BASE_CLOCK_H
#define TOMBO_BASE_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: never goes back, unaffected by changes of the wall clock, and
 * meaningless across processes or restarts (the persistence store keeps wall-clock times). */
int64_t now_ms(void);

#endif
