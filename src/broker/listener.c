/* listener.c -- a listener's socket: TCP (address, socket_domain, bind_interface) or Unix. */
#include "broker/listener.h"

#include "broker/config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *family_name(int family)
{
    return family == AF_INET ? "ipv4" : family == AF_INET6 ? "ipv6" : "ipv4/ipv6";
}

static int listen_fd(int family, const struct sockaddr *sa, socklen_t salen, bool v6only, const char *what,
                     char *err, size_t errlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", what, strerror(errno));
        return -1;
    }
    int one = 1, v6 = v6only;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
    if (bind(fd, sa, salen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listener %s: %s", what, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* `listener 0 PATH`. A socket file left by an earlier run is replaced, as Mosquitto does; any other
 * kind of file at that path is not (the bind then fails with "Address already in use"). */
static int open_unix(const struct tombo_listener *l, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(l->address) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "listener 0 %s: the path is longer than %zu bytes", l->address,
                 sizeof(sun.sun_path) - 1);
        return -1;
    }
    strcpy(sun.sun_path, l->address);
    struct stat st;
    if (lstat(l->address, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(l->address);
    char what[sizeof(sun.sun_path) + 4];
    snprintf(what, sizeof(what), "0 %s", l->address);
    return listen_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), false, what, err, errlen);
}

/* bind_interface: the interface's address of `family` (AF_UNSPEC: IPv4 if it has one, else IPv6),
 * as Mosquitto does with getifaddrs (SO_BINDTODEVICE would need root). With a listener address
 * too, that address must be one of the interface's. */
static int interface_addr(const struct tombo_listener *l, int family, const struct sockaddr *want,
                          struct sockaddr_storage *out, char *err, size_t errlen)
{
    struct ifaddrs *ifs, *best = NULL;
    if (getifaddrs(&ifs) < 0) {
        snprintf(err, errlen, "bind_interface %s: getifaddrs: %s", l->bind_interface, strerror(errno));
        return -1;
    }
    bool exists = false;
    for (struct ifaddrs *a = ifs; a; a = a->ifa_next) {
        if (strcmp(a->ifa_name, l->bind_interface) || !a->ifa_addr)
            continue;
        exists = true;
        int f = a->ifa_addr->sa_family;
        if (f != AF_INET && f != AF_INET6)
            continue;
        if (family != AF_UNSPEC && f != family)
            continue;
        if (want) {
            if (f != want->sa_family)
                continue;
            if (f == AF_INET && memcmp(&((const struct sockaddr_in *)want)->sin_addr,
                                       &((struct sockaddr_in *)a->ifa_addr)->sin_addr, sizeof(struct in_addr)))
                continue;
            if (f == AF_INET6 && memcmp(&((const struct sockaddr_in6 *)want)->sin6_addr,
                                        &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, sizeof(struct in6_addr)))
                continue;
        }
        if (!best || (family == AF_UNSPEC && best->ifa_addr->sa_family == AF_INET6 && f == AF_INET))
            best = a;
    }
    if (best) {
        memset(out, 0, sizeof(*out));
        memcpy(out, best->ifa_addr,
               best->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    } else if (!exists) {
        snprintf(err, errlen, "bind_interface %s: no such interface", l->bind_interface);
    } else if (want) {
        snprintf(err, errlen, "bind_interface %s: the interface does not have address %s", l->bind_interface,
                 l->address);
    } else {
        snprintf(err, errlen, "bind_interface %s: the interface has no %s address", l->bind_interface,
                 family_name(family));
    }
    freeifaddrs(ifs);
    return best ? 0 : -1;
}

int listener_open(const struct tombo_listener *l, char *err, size_t errlen)
{
    if (l->port == 0)
        return open_unix(l, err, errlen);
    const char *host = l->address && *l->address ? l->address : NULL;
    char what[300];
    snprintf(what, sizeof(what), "%s:%d", host ? host : "*", l->port);
    struct addrinfo hints = {.ai_family = l->socket_domain, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", l->port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "listener %s: %s", what, gai_strerror(rc));
        return -1;
    }
    /* No address: the IPv6 wildcard serves both families (dual stack) unless socket_domain says
     * which one. */
    struct addrinfo *ai = res;
    if (!host)
        for (struct addrinfo *a = res; a; a = a->ai_next)
            if (a->ai_family == AF_INET6)
                ai = a;
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    int family = ai->ai_family;
    bool v6only = l->socket_domain == AF_INET6;
    freeaddrinfo(res);
    if (l->bind_interface) {
        /* bind_interface takes priority over the address, which must then be the interface's. */
        if (interface_addr(l, l->socket_domain, host ? (struct sockaddr *)&ss : NULL, &ss, err, errlen) < 0)
            return -1;
        family = ss.ss_family;
        v6only = true;
        if (family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(l->port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(l->port);
    }
    socklen_t salen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return listen_fd(family, (struct sockaddr *)&ss, salen, v6only, what, err, errlen);
}

void listener_cleanup(const struct tombo_listener *l)
{
    struct stat st;
    if (l->port == 0 && l->address && lstat(l->address, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(l->address);
}

void listener_describe(const struct tombo_listener *l, char *out, size_t outlen)
{
    if (l->port == 0)
        snprintf(out, outlen, "unix listen socket on path %s", l->address);
    else if (l->bind_interface)
        snprintf(out, outlen, "%s listen socket on interface %s port %u", family_name(l->socket_domain),
                 l->bind_interface, l->port);
    else
        snprintf(out, outlen, "%s listen socket on %s port %u", family_name(l->socket_domain),
                 l->address ? l->address : "*", l->port);
}

void listener_peer_name(const struct tombo_listener *l, const struct sockaddr_storage *ss, socklen_t sl, char *out,
                        size_t outlen)
{
    if (ss->ss_family == AF_UNIX) { /* the peer has no name: say which socket it came in on */
        const char *base = strrchr(l->address, '/');
        snprintf(out, outlen, "unix:%s", base ? base + 1 : l->address);
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "";
    getnameinfo((const struct sockaddr *)ss, sl, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, outlen, "%s:%s", host, port);
}
