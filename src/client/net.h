/* net.h -- the client's socket and its byte buffers (net.c): open, read, write, close. */
#ifndef TOMBO_CLIENT_NET_H
#define TOMBO_CLIENT_NET_H

#include "client-int.h"

tombo_err_t net_open(tombo_client_t *c);
void net_close(tombo_client_t *c);
tombo_err_t net_flush(tombo_client_t *c);
tombo_err_t net_read(tombo_client_t *c);
/* poll() events to wait for on c->fd (the transport decides: during a TLS handshake, what
 * OpenSSL wants rather than our pending output). */
short net_events(tombo_client_t *c);
/* Input read from the socket but not yet handed out (TLS): do not sleep in poll(). */
bool net_pending(tombo_client_t *c);
tombo_err_t buf_reserve(tbuf_t *b, size_t extra);
tombo_err_t net_send_packet(tombo_client_t *c, const mqtt_packet_t *p);
tombo_err_t net_send_bytes(tombo_client_t *c, const uint8_t *data, size_t len);

#endif
