/* recovery.h -- the broker's state read back from the persistence database at start-up
 * (recovery.c). */
#ifndef TOMBO_BROKER_RECOVERY_H
#define TOMBO_BROKER_RECOVERY_H

#include <stddef.h>

struct broker;
struct store;

/* Restore sessions, subscriptions, queued/in-flight messages and retained messages from st into b
 * (its registry, subscription tree and retained store must exist; no worker and no journal thread
 * runs yet). Messages nothing references any more are deleted from the database. Returns 0, or -1
 * with a message in err. */
int store_load(struct store *st, struct broker *b, char *err, size_t errlen);

#endif
