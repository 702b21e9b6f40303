/* loop.h -- what the network loop (loop.c) offers the rest of the library; the loop itself is
 * public API (tombo_loop, tombo_loop_forever, tombo_loop_start/stop). */
#ifndef TOMBO_CLIENT_LOOP_H
#define TOMBO_CLIENT_LOOP_H

#include "client-int.h"

/* Wake a loop sleeping in poll() so it sees new output or a changed state. Any thread. */
void loop_wake(tombo_client_t *c);

#endif
