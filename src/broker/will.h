/* will.h -- a session's will message: when it is published, delayed or discarded (MQTT 3.1.2-8..
 * 3.1.2-10, 3.1.3-9). The will itself lives on the session (session_t.will). */
#ifndef TOMBO_BROKER_WILL_H
#define TOMBO_BROKER_WILL_H

#include <stdbool.h>

#include "broker/session.h"

struct worker;

/* Publish s's will now, if it still has one, and forget it; not published when the ACL denies its
 * topic. Worker w's thread, no session lock held. Safe when s has no will (does nothing). */
void will_publish_now(struct worker *w, session_t *s);

/* The connection carrying s closed (worker w's thread, no lock held). `mine`: it was still s's
 * connection (not taken over: then the new connection owns the will); `discard`: it ended with a
 * normal DISCONNECT [MQTT-3.1.2-10]; `session_ends`: s ends now (expiry 0), so a delayed will goes
 * at once [MQTT-3.1.3-9]. Otherwise a will with a delay is left on s for a BT_WILL timer. */
void will_on_disconnect(struct worker *w, session_t *s, bool mine, bool discard, bool session_ends);

#endif
