/* listener.h -- opening a listener's socket as mosquitto.conf describes it: TCP on an address or
 * host name (both IP families on one dual-stack socket when none is given), narrowed by
 * `socket_domain`, placed on an interface's address by `bind_interface`, or a Unix socket
 * (`listener 0 PATH`). The workers accept on the fds; this file only makes and names them. */
#ifndef TOMBO_BROKER_LISTENER_H
#define TOMBO_BROKER_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

struct tombo_listener;

/* Open, bind and listen. Returns the non-blocking fd, or -1 with a message in err naming the
 * listener ("listener 127.0.0.1:1883: Address already in use"). */
int listener_open(const struct tombo_listener *l, char *err, size_t errlen);
/* After the fd is closed at shutdown: remove a Unix socket's file. */
void listener_cleanup(const struct tombo_listener *l);
/* What the "Opening ... listen socket" line says: "ipv4/ipv6 listen socket on * port 1883". */
void listener_describe(const struct tombo_listener *l, char *out, size_t outlen);
/* A peer address for log lines: "127.0.0.1:53722" or "::1:53722" (no brackets), and for a Unix
 * socket peer, which has no name, "unix:" and the socket's file name. */
void listener_peer_name(const struct tombo_listener *l, const struct sockaddr_storage *ss, socklen_t sl,
                        char *out, size_t outlen);

#endif
