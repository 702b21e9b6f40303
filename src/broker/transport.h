/* transport.h -- how a connection's bytes move: one small per-connection interface (read, write,
 * close, pending), as Redis's connection types do, so packet handlers never know whether a client
 * came over plain TCP or TLS (DESIGN.md). conn.c reads through it, conn_out.c writes through it,
 * conn_close.c ends it; the TLS handshake runs inside read/write, non-blocking, on the worker's
 * epoll loop. A connection whose handshake has not finished is CONN_NEW like one that has not sent
 * CONNECT yet, so the wheel's CONNECT timeout covers both.
 *
 * Plain TCP (transport_tcp) is recv/sendmsg; TLS (transport_tls, transport_tls.c) is OpenSSL over
 * the same non-blocking fd; WebSockets (transport_ws, transport_ws.c) are layered over either. One indirect call per read or write batch; `close` and `pending` are
 * NULL for TCP, so the plain path pays a pointer test for them, not a call. */
#ifndef TOMBO_BROKER_TRANSPORT_H
#define TOMBO_BROKER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct conn;
struct broker;
struct tombo_listener;

typedef struct transport {
    const char *name;
    /* Read up to len bytes: the count (> 0), 0 at the end of the stream, or -1 with errno (EAGAIN:
     * nothing now, wait for EPOLLIN; anything else: the connection is broken and the caller closes
     * it). Owning worker only. */
    ssize_t (*read)(struct conn *c, void *buf, size_t len);
    /* Write from iov (zero-copy from the output queue): bytes taken (> 0), or -1 with errno
     * (EAGAIN: full, wait for EPOLLOUT). After an EAGAIN the next call must offer at least the same
     * bytes first (the output queue guarantees it: it only grows at its tail). */
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    /* The connection ends (before its write side is shut): say goodbye at the transport level and
     * free the transport's state; the caller closes the fd. NULL: nothing to do. */
    void (*close)(struct conn *c);
    /* Bytes already taken off the socket and waiting to be read, for which no epoll event will come.
     * NULL: never any. */
    size_t (*pending)(struct conn *c);
} transport_t;

extern const transport_t transport_tcp;
extern const transport_t transport_tls;
extern const transport_t transport_ws;

/* conn->tp_flags (transport state kept in the connection, no allocation for TCP) */
#define TP_HANDSHAKE 0x01       /* TLS handshake not finished: EPOLLOUT also drives it */
#define TP_READ_WANTS_WRITE 0x02 /* TLS, WebSocket: a read needs the socket writable (EPOLLOUT calls read) */
#define TP_DEAD 0x04            /* TLS failed: no close_notify */

/* ---- TLS listeners (transport_tls.c) ---- */

/* Build the SSL_CTX of every TLS listener (and load psk_file). Returns 0, or -1 after logging
 * "Error: FILE:LINE: ..." (the line that named the bad file). */
int tls_listeners_init(struct broker *b);
/* SIGHUP: rebuild every TLS listener's context from its files; new connections get the new one,
 * current ones keep theirs. A listener whose files no longer load keeps its old context (logged). */
void tls_listeners_reload(struct broker *b);
void tls_listeners_free(struct broker *b);
/* An accepted fd on TLS listener `li`: attach a server SSL to c (transport_tls, handshake pending).
 * Returns false when OpenSSL cannot make one (the caller closes the fd). */
bool tls_conn_start(struct conn *c, struct broker *b, int li);
/* Our bridge's connection to another broker (bridge.c), once TCP is connected: attach a client SSL
 * made from ctx (transport_tls, handshake pending), with SNI and, unless insecure, the check that
 * the server's certificate names `host`. False with a message in err. */
struct ssl_ctx_st;
bool tls_conn_start_client(struct conn *c, struct ssl_ctx_st *ctx, const char *host, bool insecure, char *err,
                           size_t errlen);
/* Drive that handshake (on any epoll event of the connection): 1 once done, -1 with errno EAGAIN
 * to wait for the next event (EPOLLOUT is armed when it needs the socket writable), otherwise it
 * failed (logged). */
int tls_conn_handshake(struct conn *c);
/* The client's identity for use_identity_as_username (certificate CN, or the PSK identity) or
 * use_subject_as_username (certificate subject), malloc'ed; NULL when it has none. */
char *conn_tls_identity(struct conn *c, bool subject);

/* ---- WebSocket listeners (transport_ws.c) ---- */

/* An accepted fd on a `protocol websockets` listener, after its TCP or TLS transport is set: layer
 * the WebSocket transport over it (opening handshake pending; c->tr becomes transport_ws). */
void ws_conn_start(struct conn *c, struct broker *b);

#endif
