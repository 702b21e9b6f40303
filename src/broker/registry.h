/* registry.h -- the session registry: client id -> session (design note in registry.c).
 *
 * Ownership: the registry holds one reference on each session it lists, dropped by whoever
 * removes it (session_end). */
#ifndef TOMBO_BROKER_REGISTRY_H
#define TOMBO_BROKER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/session.h"

struct broker;
struct registry;

/* broker_init / broker_free, one thread: create it; end every session still listed (shutdown). */
struct registry *registry_new(void);
void registry_free(struct broker *b);

/* Any thread: find or create the session for a client id. `*existed` tells whether it was there.
 * Returns a new reference. */
session_t *registry_get(struct broker *b, const char *id, size_t len, bool *existed);
/* Any thread: take s out if it is still the session listed for its client id. Returns whether it
 * was: then the registry's reference is the caller's to release. */
bool registry_remove(struct broker *b, session_t *s);
/* Any thread: how many sessions are listed ($SYS). */
size_t registry_count(struct broker *b);
/* Any thread: a new reference to the session of client id[0..len), or NULL (nothing is created). */
session_t *registry_find(struct broker *b, const char *id, size_t len);
/* Any thread: one new reference to every session listed, in a malloc'd array of *n (in no order);
 * the caller releases each and frees the array. The lock is held only while copying pointers. */
session_t **registry_list(struct broker *b, size_t *n);

#endif
