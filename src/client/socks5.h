/* socks5.h -- connecting through a SOCKS5 proxy (socks5.c), called by net.c once the TCP connection
 * to the proxy is up. */
#ifndef TOMBO_CLIENT_SOCKS5_H
#define TOMBO_CLIENT_SOCKS5_H

#include "client-int.h"

/* The proxy handshake on a connected socket. */
tombo_err_t socks5_handshake(tombo_client_t *c, int fd);

#endif
