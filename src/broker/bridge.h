/* bridge.h -- bridges: the broker as a client of another broker, with mosquitto.conf's `connection`
 * sections (struct tombo_bridge in config.h; design note in bridge.c, user guide docs/bridges.md).
 *
 * A bridge is one outgoing connection owned by one worker, a conn_t like a client's (c->bridge set,
 * c->l pointing into the bridge) carrying a local session of the bridge's own: the `out` topics are
 * that session's subscriptions, so messages for the remote are queued, held in flight and (with
 * persistence) kept across a restart exactly as for a client; what the remote sends for the `in`
 * topics is handled as a client's PUBLISH. */
#ifndef TOMBO_BROKER_BRIDGE_H
#define TOMBO_BROKER_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "mqtt/packet.h"

struct broker;
struct worker;
struct conn;
struct msg;

/* c->bridge: where a bridge connection is (0 for a client's). */
enum { BRIDGE_CONN_NONE = 0, BRIDGE_CONN_CONNECTING, BRIDGE_CONN_TLS, BRIDGE_CONN_OPEN };

/* Broker's thread, once the workers exist: one bridge per cfg.bridges[i], each given to a worker
 * (round robin), with its TLS context. Nothing connects before the workers run. Returns 0, or -1
 * after logging "Error: FILE:LINE: bridge NAME: ..." (a TLS file that does not load, a
 * local_password the password_file refuses). */
int bridges_init(struct broker *b);
/* Worker 0, at a reload, after the password files are read again: check each bridge's
 * local_username/local_password again; a bridge they no longer log in stops (its worker closes its
 * connection and does not reconnect) until a later reload accepts them, logged either way. */
void bridges_reload(struct broker *b);
/* After the workers have been joined: free what the bridges hold. */
void bridges_free(struct broker *b);
/* Worker w, each loop turn: start, restart, ping and stop its bridges (timers, lazy start). */
void bridges_tick(struct worker *w);

/* ---- hooks for a bridge connection (c->bridge != 0), called by its worker ---- */

/* An epoll event while c->bridge is BRIDGE_CONN_CONNECTING (the TCP connect finished, or failed)
 * or BRIDGE_CONN_TLS (the TLS handshake goes on): CONNECT is sent once both are done. */
void bridge_on_event(struct conn *c);
/* A packet from the remote broker: CONNACK, SUBACK, PUBLISH (topic remapped to the local one) and
 * the acknowledgements. Returns MQTT_RC_SUCCESS or the reason code to close with. */
uint8_t bridge_on_packet(struct conn *c, mqtt_packet_t *p);
/* The connection is closing (conn_close, after the session was detached): notifications, and when
 * and where to try next. */
void bridge_on_close(struct conn *c);
/* The topic a message goes out under (the local prefix replaced by the remote one, as
 * mosquitto.conf(5) says) and the retain flag (bridge_outgoing_retain). Returns the topic: either
 * m's own, or a view into the bridge's scratch buffer valid until the next call; .p NULL when the
 * remapped topic would be too long for MQTT (the message is not sent). */
mqtt_bytes_t bridge_out_topic(struct conn *c, mqtt_bytes_t topic, uint8_t *retain);
/* Largest packet the bridge takes from its remote (0: the broker's max_packet_size). */
uint32_t bridge_max_packet_in(const struct conn *c);

#endif
