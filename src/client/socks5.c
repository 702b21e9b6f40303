/* socks5.c -- connecting through a SOCKS5 proxy (RFC 1928), with the username/password method
 * (RFC 1929): the greeting, the optional login and the CONNECT request are exchanged on the freshly
 * connected socket before any MQTT byte, blocking up to connect_timeout_ms in total, like the TCP
 * connect itself. The broker's name goes to the proxy unresolved ("socks5h"), so names that only
 * the proxy can resolve work. */
#include "socks5.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "log.h"

/* Move all of buf through the socket (send when `out`, else receive), before the deadline. */
static tombo_err_t xfer(int fd, void *buf, size_t len, bool out, uint64_t deadline)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return TOMBO_ERR_PROXY; /* the proxy hung up */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return TOMBO_ERR_ERRNO;
        uint64_t now = (uint64_t)now_ms();
        if (now >= deadline) {
            errno = ETIMEDOUT;
            return TOMBO_ERR_TIMEOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = out ? POLLOUT : POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return TOMBO_ERR_ERRNO;
    }
    return TOMBO_OK;
}

tombo_err_t socks5_handshake(tombo_client_t *c, int fd)
{
    uint64_t deadline = (uint64_t)now_ms() + (uint64_t)c->opts.connect_timeout_ms;
    const char *user = c->opts.socks5_username, *pass = c->opts.socks5_password ? c->opts.socks5_password : "";
    uint8_t buf[600];
    tombo_err_t e;
    /* Greeting: the methods we accept. */
    size_t n = 0;
    buf[n++] = 5;
    buf[n++] = user ? 2 : 1;
    buf[n++] = 0x00;
    if (user)
        buf[n++] = 0x02;
    if ((e = xfer(fd, buf, n, true, deadline)) != TOMBO_OK || (e = xfer(fd, buf, 2, false, deadline)) != TOMBO_OK)
        return e;
    if (buf[0] != 5 || (buf[1] != 0x00 && !(buf[1] == 0x02 && user))) {
        client_log(c, TOMBO_LOG_ERROR, "SOCKS5 proxy accepts none of our authentication methods");
        return TOMBO_ERR_PROXY;
    }
    if (buf[1] == 0x02) {
        size_t ul = strlen(user), pl = strlen(pass);
        n = 0;
        buf[n++] = 1;
        buf[n++] = (uint8_t)ul;
        memcpy(buf + n, user, ul);
        n += ul;
        buf[n++] = (uint8_t)pl;
        memcpy(buf + n, pass, pl);
        n += pl;
        if ((e = xfer(fd, buf, n, true, deadline)) != TOMBO_OK || (e = xfer(fd, buf, 2, false, deadline)) != TOMBO_OK)
            return e;
        if (buf[1] != 0) {
            client_log(c, TOMBO_LOG_ERROR, "SOCKS5 proxy refused the username and password");
            return TOMBO_ERR_PROXY;
        }
    }
    /* CONNECT to the broker: an address literal as such, anything else by name. */
    n = 0;
    buf[n++] = 5;
    buf[n++] = 1; /* CONNECT */
    buf[n++] = 0;
    uint8_t addr[16];
    size_t hl = strlen(c->host);
    if (inet_pton(AF_INET, c->host, addr) == 1) {
        buf[n++] = 1;
        memcpy(buf + n, addr, 4);
        n += 4;
    } else if (inet_pton(AF_INET6, c->host, addr) == 1) {
        buf[n++] = 4;
        memcpy(buf + n, addr, 16);
        n += 16;
    } else if (hl <= 255) {
        buf[n++] = 3;
        buf[n++] = (uint8_t)hl;
        memcpy(buf + n, c->host, hl);
        n += hl;
    } else {
        return TOMBO_ERR_LOOKUP;
    }
    buf[n++] = (uint8_t)(c->port >> 8);
    buf[n++] = (uint8_t)c->port;
    if ((e = xfer(fd, buf, n, true, deadline)) != TOMBO_OK || (e = xfer(fd, buf, 4, false, deadline)) != TOMBO_OK)
        return e;
    if (buf[0] != 5 || buf[1] != 0) {
        client_log(c, TOMBO_LOG_ERROR, "SOCKS5 proxy could not connect to %s:%d (reply %u)", c->host, c->port,
                   buf[1]);
        return TOMBO_ERR_PROXY;
    }
    /* The address the proxy bound: read and ignored. */
    size_t rest;
    if (buf[3] == 1)
        rest = 4 + 2;
    else if (buf[3] == 4)
        rest = 16 + 2;
    else if (buf[3] == 3) {
        if ((e = xfer(fd, buf, 1, false, deadline)) != TOMBO_OK)
            return e;
        rest = (size_t)buf[0] + 2;
    } else {
        return TOMBO_ERR_PROXY;
    }
    return xfer(fd, buf, rest, false, deadline);
}
