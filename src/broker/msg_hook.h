/* msg_hook.h -- what msg.c tells the layer above it without knowing that layer: a message with a
 * row in the persistence store lost its last reference, so the row can go. The store sets the hook
 * when it opens; without persistence no message has a row and the hook is never called. */
#ifndef TOMBO_BROKER_MSG_HOOK_H
#define TOMBO_BROKER_MSG_HOOK_H

#include <stdint.h>

struct store;
typedef void msg_gone_fn(struct store *st, uint64_t store_id);

/* Set once at start-up, before any worker runs. */
void msg_set_gone_hook(msg_gone_fn *fn);

#endif
