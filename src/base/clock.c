/* clock.c -- the monotonic clock in milliseconds (base layer). One vDSO call, no system call: cheap
 * enough for each worker's loop turn and each message's expiry stamp. */
#include "base/clock.h"

#include <time.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
