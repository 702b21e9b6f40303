/* relay.c -- tombo-bench-relay: the smallest thing tombo-bench can talk to, used to find where
 * the bench itself saturates (docs/benchmarks.md). One thread, epoll, QoS 0 only, exact topics:
 * CONNECT gets a CONNACK, SUBSCRIBE (first filter, taken literally) a SUBACK, and each PUBLISH is
 * copied byte for byte to the client subscribed to its topic. Reads 64 KB at a time and flushes
 * each connection once per loop turn. Not a broker: no wildcards, no QoS, no sessions.
 *
 *   tombo-bench-relay PORT       (listens on 127.0.0.1:PORT until SIGINT/SIGTERM) */
#include "base/hash.h"
#include "mqtt/packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE 65536
#define NBUCKETS 65536 /* topic table: open addressing, power of two */

typedef struct rconn {
    int fd;
    uint8_t version;
    bool dirty, epollout;
    uint8_t *in;
    uint32_t in_len;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    struct rconn *next_dirty;
    char *topic; /* subscribed topic, owned */
} rconn_t;

typedef struct slot {
    char *topic; /* points at the subscriber's topic */
    size_t len;
    rconn_t *c;
} slot_t;

static slot_t table[NBUCKETS];
static rconn_t *dirty;
static int ep;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static slot_t *lookup(const uint8_t *t, size_t n)
{
    for (uint32_t i = fnv1a32(t, n) & (NBUCKETS - 1), k = 0; k < NBUCKETS; i = (i + 1) & (NBUCKETS - 1), k++) {
        if (!table[i].topic)
            return &table[i];
        if (table[i].len == n && !memcmp(table[i].topic, t, n))
            return &table[i];
    }
    return NULL;
}

static uint8_t *reserve(rconn_t *c, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->out, cap);
        if (!nb)
            abort();
        c->out = nb;
        c->out_cap = cap;
    }
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = dirty;
        dirty = c;
    }
    return c->out + c->out_len;
}

static void send_packet(rconn_t *c, const mqtt_packet_t *p)
{
    uint8_t *o = reserve(c, mqtt_encoded_len(p, c->version));
    c->out_len += mqtt_encode(p, c->version, o);
}

static void conn_close(rconn_t *c)
{
    if (c->topic) {
        slot_t *s = lookup((const uint8_t *)c->topic, strlen(c->topic));
        if (s && s->c == c)
            s->c = NULL; /* the slot keeps pointing at nothing; topics are never reused here */
    }
    close(c->fd);
    c->fd = -1;
}

/* Returns false when the connection must close. */
static bool on_packet(rconn_t *c, const mqtt_header_t *h, const uint8_t *pkt)
{
    const uint8_t *body = pkt + h->header_len;
    if (h->type == MQTT_PUBLISH) {
        if (h->remaining < 2)
            return false;
        size_t tl = (size_t)body[0] << 8 | body[1];
        if (tl + 2 > h->remaining || ((h->flags >> 1) & 3))
            return false; /* QoS 0 only */
        slot_t *s = lookup(body + 2, tl);
        if (s && s->topic && s->c && s->c->fd >= 0) {
            size_t n = h->header_len + h->remaining;
            memcpy(reserve(s->c, n), pkt, n);
            s->c->out_len += n;
        }
        return true;
    }
    mqtt_packet_t p, r;
    if (mqtt_decode(h, body, c->version, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS)
        return false;
    memset(&r, 0, sizeof(r));
    switch (p.type) {
    case MQTT_CONNECT:
        c->version = p.connect.version;
        r.type = MQTT_CONNACK;
        send_packet(c, &r);
        return true;
    case MQTT_SUBSCRIBE: {
        mqtt_bytes_t cur = p.subscribe.entries;
        mqtt_sub_t sub;
        if (!mqtt_sub_next(c->version, &cur, &sub) || c->topic)
            return false;
        c->topic = strndup((const char *)sub.filter.p, sub.filter.len);
        slot_t *s = lookup(sub.filter.p, sub.filter.len);
        if (!c->topic || !s)
            return false;
        s->topic = c->topic;
        s->len = sub.filter.len;
        s->c = c;
        uint8_t granted = 0;
        r.type = MQTT_SUBACK;
        r.id = p.id;
        r.suback.codes.p = &granted;
        r.suback.codes.len = 1;
        send_packet(c, &r);
        return true;
    }
    case MQTT_PINGREQ:
        r.type = MQTT_PINGRESP;
        send_packet(c, &r);
        return true;
    default:
        return false; /* DISCONNECT and anything this relay does not do */
    }
}

static void conn_read(rconn_t *c, uint8_t *buf)
{
    uint32_t have = c->in_len;
    memcpy(buf, c->in, have);
    ssize_t n = recv(c->fd, buf + have, READ_SIZE, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    size_t total = have + (size_t)n, off = 0;
    while (off < total) {
        mqtt_header_t h;
        int hr = mqtt_header_parse(buf + off, total - off, &h);
        if (hr < 0 || (hr > 0 && h.header_len + h.remaining > READ_SIZE)) {
            conn_close(c);
            return;
        }
        if (hr == 0 || off + h.header_len + h.remaining > total)
            break;
        if (!on_packet(c, &h, buf + off)) {
            conn_close(c);
            return;
        }
        off += h.header_len + h.remaining;
    }
    c->in_len = (uint32_t)(total - off);
    memcpy(c->in, buf + off, c->in_len);
}

static void conn_flush(rconn_t *c)
{
    while (c->fd >= 0 && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else if (!(n < 0 && errno == EINTR)) {
            conn_close(c);
            return;
        }
    }
    if (c->fd < 0)
        return;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    bool want = c->out_len > 0;
    if (want != c->epollout) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->epollout = want;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tombo-bench-relay PORT\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0) {
        perror("tombo-bench-relay: listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[512];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    uint8_t *buf = malloc(2 * READ_SIZE);
    rconn_t **all = NULL;
    size_t nall = 0, capall = 0;
    while (!stop) {
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            rconn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    c = calloc(1, sizeof(*c));
                    c->in = malloc(READ_SIZE);
                    c->fd = fd;
                    c->version = MQTT_V311;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                    if (nall == capall) {
                        capall = capall ? capall * 2 : 256;
                        all = realloc(all, capall * sizeof(*all));
                    }
                    all[nall++] = c;
                }
                continue;
            }
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_read(c, buf);
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                conn_flush(c);
        }
        while (dirty) {
            rconn_t *c = dirty;
            dirty = c->next_dirty;
            c->dirty = false;
            conn_flush(c);
        }
    }
    for (size_t i = 0; i < nall; i++) {
        if (all[i]->fd >= 0)
            close(all[i]->fd);
        free(all[i]->in);
        free(all[i]->out);
        free(all[i]->topic);
        free(all[i]);
    }
    free(all);
    free(buf);
    close(ep);
    close(lfd);
    return 0;
}
