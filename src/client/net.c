/* net.c -- the client's TCP socket and its byte buffers: connect with a timeout, non-blocking
 * reads into the input buffer, and writing the output buffer as far as the socket takes it,
 * through the connection's transport (plain or TLS, transport.h). */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"
#include "log.h"
#include "socks5.h"
#include "transport.h"

tombo_err_t buf_reserve(tbuf_t *b, size_t extra)
{
    /* Reclaim consumed space first. */
    if (b->off && b->off == b->len) {
        b->off = b->len = 0;
    } else if (b->off && b->cap - b->len < extra) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    /* Always keep one spare byte: the loop NUL-terminates payloads in place. */
    if (b->cap - b->len >= extra + 1)
        return TOMBO_OK;
    size_t need = b->len + extra + 1;
    if (need < b->len)
        return TOMBO_ERR_NOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return TOMBO_ERR_NOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return TOMBO_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return TOMBO_OK;
}

static tombo_err_t connect_one(tombo_client_t *c, const struct addrinfo *ai, int *out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return TOMBO_ERR_ERRNO;
    if (c->opts.bind_address && ai->ai_family != AF_UNIX) {
        struct addrinfo hints = {.ai_family = ai->ai_family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
        struct addrinfo *b = NULL;
        if (getaddrinfo(c->opts.bind_address, NULL, &hints, &b) != 0 || !b) {
            close(fd);
            return TOMBO_ERR_LOOKUP;
        }
        int r = bind(fd, b->ai_addr, b->ai_addrlen);
        freeaddrinfo(b);
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return TOMBO_ERR_ERRNO;
        }
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && !(ai->ai_family == AF_UNIX && errno == EAGAIN)) {
            int e = errno;
            close(fd);
            errno = e;
            return TOMBO_ERR_ERRNO;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int r;
        do
            r = poll(&pfd, 1, c->opts.connect_timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            close(fd);
            errno = ETIMEDOUT;
            return TOMBO_ERR_TIMEOUT;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            close(fd);
            errno = err ? err : errno;
            return TOMBO_ERR_ERRNO;
        }
    }
    int one = 1;
    if (ai->ai_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    return TOMBO_OK;
}

/* The TCP (or Unix) connection is up: start the transport on it (TLS: before any byte is sent). */
static tombo_err_t start_transport(tombo_client_t *c)
{
    c->tr = transport_for(c);
    tombo_err_t e = c->tr->start(c);
    if (e != TOMBO_OK) {
        close(c->fd);
        c->fd = -1;
        c->tr = &transport_plain;
    }
    return e;
}

/* port 0: c->host is the path of a Unix domain socket (as libmosquitto's port 0). */
static tombo_err_t open_unix(tombo_client_t *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(c->host);
    if (n >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return TOMBO_ERR_ERRNO;
    }
    memcpy(sa.sun_path, c->host, n + 1);
    struct addrinfo ai = {.ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM, .ai_addr = (struct sockaddr *)&sa,
                          .ai_addrlen = (socklen_t)sizeof(sa)};
    tombo_err_t e = connect_one(c, &ai, &c->fd);
    return e == TOMBO_OK ? start_transport(c) : e;
}

/* Resolve c->host and connect to the first address that answers; sets c->fd. */
tombo_err_t net_open(tombo_client_t *c)
{
    if (c->port == 0)
        return open_unix(c);
    /* Through a SOCKS5 proxy: connect to the proxy, which connects to the broker. */
    const char *host = c->opts.socks5_host ? c->opts.socks5_host : c->host;
    char port[16];
    snprintf(port, sizeof(port), "%d", c->opts.socks5_host ? c->opts.socks5_port : c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gr = getaddrinfo(host, port, &hints, &res);
    if (gr != 0 || !res) {
        if (gr == EAI_MEMORY)
            return TOMBO_ERR_NOMEM;
        return TOMBO_ERR_LOOKUP;
    }
    tombo_err_t err = TOMBO_ERR_LOOKUP;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd;
        err = connect_one(c, ai, &fd);
        if (err == TOMBO_OK) {
            c->fd = fd;
            break;
        }
    }
    int e = errno;
    freeaddrinfo(res);
    if (err == TOMBO_OK && c->opts.socks5_host && (err = socks5_handshake(c, c->fd)) != TOMBO_OK) {
        e = errno;
        close(c->fd);
        c->fd = -1;
    }
    if (err == TOMBO_OK)
        err = start_transport(c);
    errno = e;
    return err;
}

void net_close(tombo_client_t *c)
{
    if (c->fd >= 0) {
        c->tr->close(c);
        close(c->fd);
    }
    c->fd = -1;
    c->tr = &transport_plain;
    c->in.off = c->in.len = 0;
    c->out.off = c->out.len = 0;
    c->gen++;
}

tombo_err_t net_flush(tombo_client_t *c)
{
    tbuf_t *b = &c->out;
    while (c->fd >= 0 && b->off < b->len) {
        size_t n = 0;
        tombo_err_t e = c->tr->send(c, b->p + b->off, b->len - b->off, &n);
        if (e != TOMBO_OK)
            return e;
        b->off += n;
        c->last_out_ms = (uint64_t)now_ms();
    }
    if (b->off == b->len)
        b->off = b->len = 0;
    return TOMBO_OK;
}

/* Read what the socket has (bounded, so one busy connection cannot starve the caller).
 * Returns OK, or CONN_LOST at EOF or on an error, or the TLS error that failed the handshake. */
tombo_err_t net_read(tombo_client_t *c)
{
    for (int round = 0; round < 16; round++) {
        tombo_err_t e = buf_reserve(&c->in, 65536);
        if (e != TOMBO_OK)
            return e;
        size_t n = 0;
        e = c->tr->recv(c, c->in.p + c->in.len, c->in.cap - c->in.len - 1, &n);
        if (e == TOMBO_ERR_AGAIN)
            return TOMBO_OK;
        if (e != TOMBO_OK)
            return e;
        c->in.len += n;
        c->last_in_ms = (uint64_t)now_ms();
    }
    return TOMBO_OK;
}

short net_events(tombo_client_t *c)
{
    return c->tr->events(c, c->out.off < c->out.len);
}

bool net_pending(tombo_client_t *c)
{
    return c->fd >= 0 && c->tr->pending(c);
}

tombo_err_t net_send_bytes(tombo_client_t *c, const uint8_t *data, size_t len)
{
    if (c->fd < 0)
        return TOMBO_ERR_NO_CONN;
    tombo_err_t e = buf_reserve(&c->out, len);
    if (e != TOMBO_OK)
        return e;
    memcpy(c->out.p + c->out.len, data, len);
    c->out.len += len;
    return TOMBO_OK;
}

/* Encode p at the connection's version and append it to the output buffer. */
tombo_err_t net_send_packet(tombo_client_t *c, const mqtt_packet_t *p)
{
    if (c->fd < 0)
        return TOMBO_ERR_NO_CONN;
    size_t n = mqtt_encoded_len(p, (uint8_t)c->opts.version);
    tombo_err_t e = buf_reserve(&c->out, n);
    if (e != TOMBO_OK)
        return e;
    size_t w = mqtt_encode(p, (uint8_t)c->opts.version, c->out.p + c->out.len);
    c->out.len += w;
    client_log(c, TOMBO_LOG_DEBUG, "Client %s sending %s", c->client_id ? c->client_id : "", mqtt_type_name(p->type));
    return TOMBO_OK;
}
