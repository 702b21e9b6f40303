/* session_wire.h -- a session's state as bytes, to move it to another cluster node (cluster.c,
 * docs/cluster.md "Sessions that move"): its subscriptions, in-flight and queued QoS 1/2 messages
 * with their packet ids, states and cluster identities (msg.h), and the inbound QoS 2 ids awaiting
 * PUBREL. Pure encoding and the restore calls recovery.c uses; no NATS. */
#ifndef TOMBO_BROKER_SESSION_WIRE_H
#define TOMBO_BROKER_SESSION_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/session.h"

struct worker;

/* A malloc'ed encoding of snap, `head` bytes into the buffer: those first bytes are left for the
 * caller to fill (a prefix of its own, so the whole message is one allocation and the session is
 * never copied again); *len counts them. Messages go as v5 PUBLISH encodings with their message
 * expiry left at `now`. */
uint8_t *session_wire_encode(const session_snap_t *snap, int64_t now, size_t head, size_t *len);
/* Worker thread of the node taking the session over: rebuild s, new and not yet attached, from
 * d[0..n): its subscriptions enter the broker's subscription tree, its messages its queue and
 * in-flight ring (with their packet ids and states), its inbound QoS 2 ids. s keeps the identities
 * of its messages for a while (session_moved_in), so a copy forwarded here is not queued again. Returns 0, or -1 when
 * d is malformed (what was read before stays: the caller ends s). */
int session_wire_import(session_t *s, const uint8_t *d, size_t n, int64_t now);
/* Worker w: the messages of a tail (what queued on the old node after the export) delivered to s,
 * in order. Returns how many, or -1 when malformed. */
long session_wire_deliver(struct worker *w, session_t *s, const uint8_t *d, size_t n, int64_t now);

#endif
