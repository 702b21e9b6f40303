/* session.h -- the MQTT session as the client sees it (session.c): CONNECT and CONNACK, the
 * ordered list of outgoing publishes, their packet ids and acknowledgements. */
#ifndef TOMBO_CLIENT_SESSION_H
#define TOMBO_CLIENT_SESSION_H

#include "client-int.h"

tombo_err_t session_send_connect(tombo_client_t *c);
void session_pump(tombo_client_t *c);
void session_on_connack(tombo_client_t *c, const mqtt_packet_t *p);
void session_ack(tombo_client_t *c, const mqtt_packet_t *p);
void session_free_msgs(tombo_client_t *c);
void session_report_done0(tombo_client_t *c);
/* Next free packet id (never 0, skipping ids of messages still in the list). */
uint16_t session_next_mid(tombo_client_t *c);

#endif
