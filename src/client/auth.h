/* auth.h -- MQTT 5 enhanced authentication in libtombo: SCRAM-SHA-256 (opts.auth_method) with the
 * options' username and password, at CONNECT and on tombo_reauthenticate(). The SCRAM messages are
 * the shared ones of src/pwhash (scram.h); this file moves them in and out of CONNECT, AUTH and
 * CONNACK. Called with the client's lock held. */
#ifndef TOMBO_CLIENT_AUTH_H
#define TOMBO_CLIENT_AUTH_H

#include "client-int.h"

/* CONNECT: start an exchange; the client-first message goes into the CONNECT's properties
 * (pointing into c->scram_out, valid until the packet is encoded). No-op without auth_method. */
tombo_err_t auth_connect_props(tombo_client_t *c, mqtt_props_t *props);
/* An AUTH from the broker: answer its challenge, or (re-authentication, reason 0) check its proof.
 * A bad one closes the connection with a protocol error. */
void auth_on_auth(tombo_client_t *c, const mqtt_packet_t *p);
/* A successful CONNACK: does it carry the method and prove the broker knows our verifier? False
 * (logged) when it does not; the caller closes the connection. */
bool auth_connack_ok(tombo_client_t *c, const mqtt_packet_t *p);
/* Send AUTH 0x19 with a new client-first message. */
tombo_err_t auth_reauthenticate(tombo_client_t *c);
/* Forget the exchange (connection closed, client destroyed). */
void auth_clear(tombo_client_t *c);

#endif
