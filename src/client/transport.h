/* transport.h -- how the client's bytes cross its socket: plain TCP or TLS (transport.c). net.c
 * opens and closes connections and moves its buffers through these operations only, so the rest
 * of the library does not know whether a connection is encrypted. Every operation runs with the
 * client's lock held. */
#ifndef TOMBO_CLIENT_TRANSPORT_H
#define TOMBO_CLIENT_TRANSPORT_H

#include "client-int.h"

struct transport_ops {
    const char *name;
    /* After the TCP connect (c->fd set): per-connection state (TLS: the SSL object, SNI, host
     * check, the session to resume). The handshake itself runs in recv/send. */
    tombo_err_t (*start)(tombo_client_t *c);
    /* Move bytes: TOMBO_OK with *n > 0, TOMBO_ERR_AGAIN (would block; poll for events()), or the
     * error that ends the connection (CONN_LOST, TLS_VERIFY, TLS_HOSTNAME, TLS_HANDSHAKE). */
    tombo_err_t (*recv)(tombo_client_t *c, uint8_t *buf, size_t len, size_t *n);
    tombo_err_t (*send)(tombo_client_t *c, const uint8_t *buf, size_t len, size_t *n);
    /* The poll() events to wait for, given whether output is waiting. */
    short (*events)(tombo_client_t *c, bool have_output);
    /* Input already read from the socket but not yet returned by recv (TLS records): the loop
     * must not sleep in poll() while this is true. */
    bool (*pending)(tombo_client_t *c);
    /* Before the socket is closed: say goodbye if the protocol has one, free the per-connection
     * state (TLS keeps the session for the next handshake). */
    void (*close)(tombo_client_t *c);
};

extern const transport_ops_t transport_plain;
extern const transport_ops_t transport_tls;

/* The transport new connections use: TLS once tombo_set_tls() was given settings. */
const transport_ops_t *transport_for(const tombo_client_t *c);
/* Free the client's TLS context and session (tombo_client_destroy). */
void transport_tls_free(tombo_client_t *c);

#endif
