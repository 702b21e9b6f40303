/* clock.h -- the client's clock: monotonic milliseconds for keepalive, timeouts and reconnect
 * delays (never the wall clock, which may jump). */
#ifndef TOMBO_CLIENT_CLOCK_H
#define TOMBO_CLIENT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC. */
static inline uint64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
