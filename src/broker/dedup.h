/* dedup.h -- a bounded window of the cluster identities of messages already queued for one session,
 * so that a session that moved between cluster nodes never queues the same message twice (it can
 * reach it both with the move and from its publishing node: docs/cluster.md "Sessions that move").
 *
 * An identity is (origin, seq): the publishing node's id for this run of it and a sequence number it
 * gives once (cluster.c); both 0 means none (a local message on a lone broker). Not thread-safe: the
 * session's lock guards it. */
#ifndef TOMBO_BROKER_DEDUP_H
#define TOMBO_BROKER_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#define DEDUP_WINDOW_MS 30000 /* how long after a move a session checks (the move's messages come within seconds) */
#define DEDUP_MAX 8192        /* identities kept at most: then the oldest go */

typedef struct dedup dedup_t;

/* A new, empty window opened at `now` (monotonic ms). Starts small and grows up to DEDUP_MAX. */
dedup_t *dedup_new(int64_t now);
void dedup_free(dedup_t *d);
/* Whether the window is past DEDUP_WINDOW_MS at `now` (then the caller frees it). */
bool dedup_expired(const dedup_t *d, int64_t now);
/* True when (origin, seq) is in the window already; otherwise it is added and false returned. */
bool dedup_seen(dedup_t *d, uint64_t origin, uint64_t seq);

#endif
