/* route.h -- routing a published message to the retained store and its subscribers. */
#ifndef TOMBO_BROKER_ROUTE_H
#define TOMBO_BROKER_ROUTE_H

#include <stddef.h>

#include "broker/msg.h"
#include "broker/session.h"

struct worker;
struct conn;

/* Route msg to every matching subscriber (and the retained store when msg->retain), from worker
 * w's thread. `from` is the publishing session (for no-local, and the source a retained message
 * records), or NULL. `pub`, the connection it
 * came from (NULL for wills and $SYS), is blocked when a receiver is full (backpressure.h). The
 * caller keeps its msg reference; receivers take their own. Returns the number of receivers. */
size_t route_publish(struct worker *w, msg_t *msg, session_t *from, struct conn *pub);
/* The same, consuming the caller's reference: the last receiver takes it over (or it is released
 * when there is none). msg must not be touched after. */
size_t route_publish_give(struct worker *w, msg_t *msg, session_t *from, struct conn *pub);
/* A will (will.c): from no session as far as no-local goes, but `s`'s identity is what a retained
 * will records as its source (check_retain_source), as Mosquitto does. */
size_t route_publish_will(struct worker *w, msg_t *msg, session_t *s);

#endif
