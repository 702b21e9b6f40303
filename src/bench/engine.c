/* engine.c -- tombo-bench's I/O engine: T threads, each with its own epoll and its own set of
 * connections. Each loop turn reads up to 64 KB per readable socket and decodes every packet in
 * it (shared codec), lets every publisher append the messages now due to its output buffer, and
 * flushes each connection that has output once. The main thread (run.c) only moves the run
 * through its phases and samples counters once a second.
 *
 * Design: a connection is owned by one thread for life, so nothing on the message path is locked
 * or atomic; each thread publishes its counters with relaxed stores once per turn. A PUBLISH is
 * encoded once per publisher with mqtt_encode and then copied and patched per message (sequence,
 * timestamp, packet id), which keeps generation at a memcpy per message. */
#include "bench/bench.h"
#include "mqtt/packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF_SIZE (3 * BENCH_READ_SIZE)
#define MAX_PACKET (BENCH_PAYLOAD_MAX + BENCH_READ_SIZE)
#define KEEPALIVE 60
#define EVENTS 512

static void put_le32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* x86/arm little-endian hosts; the payload is only read by tombo-bench */
}
static void put_le64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int errors_printed;

static void conn_error(bench_thread_t *t, conn_t *c, const char *what, int err)
{
    t->t.errors++;
    if (__atomic_fetch_add(&errors_printed, 1, __ATOMIC_RELAXED) < 10)
        fprintf(stderr, "tombo-bench: client %u: %s%s%s\n", c->idx, what, err ? ": " : "",
                err ? strerror(err) : "");
}

static void conn_close(bench_thread_t *t, conn_t *c)
{
    if (c->state == CS_CLOSED)
        return;
    tls_close(t, c);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == CS_CONNECTING || c->state == CS_CONNACK) {
        t->pending--;
        t->handshakes_done++;
    } else if (c->state == CS_SUBACK || c->state == CS_READY || c->state == CS_CLOSING || c->state == CS_WAIT) {
        t->conns_up--;
    }
    if (c->pub)
        t->inflight -= c->pub->inflight, c->pub->inflight = 0;
    c->state = CS_CLOSED;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = c->ws_framed = 0;
    free(c->ws_rd);
    c->ws_rd = NULL;
}

static void conn_fail(bench_thread_t *t, conn_t *c, const char *what, int err)
{
    conn_error(t, c, what, err);
    conn_close(t, c);
}

/* Room for n more output bytes; marks the connection for this turn's flush. NULL on OOM. */
static uint8_t *out_reserve(bench_thread_t *t, conn_t *c, size_t n)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = c->ws_framed = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->ws_framed -= c->ws_framed ? c->out_off : 0; /* only framed bytes were sent */
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 256;
            while (cap < c->out_len + n)
                cap *= 2;
            uint8_t *nb = realloc(c->out, cap);
            if (!nb)
                return NULL;
            c->out = nb;
            c->out_cap = (uint32_t)cap;
        }
    }
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = t->dirty;
        t->dirty = c;
    }
    return c->out + c->out_len;
}

/* Encode p with the shared codec onto c's output. */
static int out_packet(bench_thread_t *t, conn_t *c, const mqtt_packet_t *p)
{
    uint8_t v = (uint8_t)t->run->cfg.version;
    size_t n = mqtt_encoded_len(p, v);
    uint8_t *o = out_reserve(t, c, n);
    if (!o)
        return -1;
    c->out_len += (uint32_t)mqtt_encode(p, v, o);
    return 0;
}

static int out_ack(bench_thread_t *t, conn_t *c, uint8_t type, uint16_t id)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.id = id;
    return out_packet(t, c, &p);
}

static void epoll_set(bench_thread_t *t, conn_t *c, bool want_out)
{
    if (c->epollout == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = want_out;
}

/* send(2) or, on a TLS connection, its tls.c look-alike. */
static ssize_t io_send(bench_thread_t *t, conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->ssl)
        return tls_send(t, c, buf, len);
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t io_recv(bench_thread_t *t, conn_t *c, uint8_t *buf, size_t len)
{
    if (c->ssl)
        return tls_recv(t, c, buf, len);
    return recv(c->fd, buf, len, 0);
}

static void conn_flush(bench_thread_t *t, conn_t *c, uint64_t now)
{
    if (c->fd < 0 || c->state == CS_CONNECTING) /* storm: reconnecting; EPOLLOUT says when */
        return;
    if (t->run->cfg.ws && ws_client_frame(c) < 0) {
        conn_fail(t, c, "out of memory", 0);
        return;
    }
    while (c->out_off < c->out_len) {
        ssize_t n = io_send(t, c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (uint32_t)n;
            c->last_tx_ns = now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            epoll_set(t, c, !tls_want_read(c)); /* a TLS handshake may wait for input instead */
            return;
        }
        conn_fail(t, c, "write", n < 0 ? errno : EPIPE);
        return;
    }
    c->out_off = c->out_len = c->ws_framed = 0;
    epoll_set(t, c, false);
    if (c->role == ROLE_IDLE && c->state == CS_READY) { /* idle clients keep no buffer */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

static int send_connect(bench_thread_t *t, conn_t *c)
{
    const bench_cfg_t *cfg = &t->run->cfg;
    char id[64];
    int n = snprintf(id, sizeof(id), "%s-%d-%u", cfg->id_prefix, (int)getpid(), c->idx);
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.connect.version = (uint8_t)cfg->version;
    p.connect.clean = 1; /* client ids are new each run: so are sessions */
    if (cfg->session_expiry) {
        if (cfg->version == MQTT_V5) {
            p.props.has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
            p.props.session_expiry = cfg->session_expiry;
        } else {
            p.connect.clean = 0;
        }
    }
    p.connect.keepalive = KEEPALIVE;
    p.connect.client_id.p = (const uint8_t *)id;
    p.connect.client_id.len = (uint32_t)n;
    c->state = CS_CONNACK;
    return out_packet(t, c, &p);
}

static void conn_start(bench_thread_t *t, conn_t *c, uint64_t now)
{
    bench_run_t *r = t->run;
    t->pending++;
    c->state = CS_CONNECTING;
    c->fd = socket(r->dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(t, c, "socket", errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (r->cfg.src_addrs > 1 && r->dst->ss_family == AF_INET) {
        /* Spread clients over 127.0.0.1..N: each source address has its own ephemeral ports. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + c->idx % (uint32_t)r->cfg.src_addrs);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            conn_fail(t, c, "bind", errno);
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(t, c, "epoll_ctl", errno);
        return;
    }
    c->epollout = true;
    c->last_tx_ns = c->started_ns = now;
    /* subscribers are clients 0..subs-1: idx round-robin over the --sub-port list */
    bool sub = c->role == ROLE_SUB && r->dst_sub;
    uint32_t k = sub ? c->idx % (uint32_t)r->cfg.nsub_ports : 0;
    if (connect(c->fd, (struct sockaddr *)(sub ? &r->dst_sub[k] : r->dst), sub ? r->dst_sub_len[k] : r->dst_len) < 0 &&
        errno != EINPROGRESS) {
        conn_fail(t, c, "connect", errno);
        return;
    }
}

static void conn_connected(bench_thread_t *t, conn_t *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_fail(t, c, "connect", err);
        return;
    }
    if (t->run->tls_ctx && tls_attach(t, c) < 0) {
        conn_fail(t, c, "TLS setup", 0);
        return;
    }
    if (t->run->cfg.ws) {
        /* The opening handshake first; CONNECT goes once the 101 is read (conn_read). */
        c->state = CS_CONNACK;
        if (ws_client_request(c, t->run->cfg.host, t->run->cfg.port) < 0) {
            conn_fail(t, c, "out of memory", 0);
            return;
        }
    } else if (send_connect(t, c) < 0) {
        conn_fail(t, c, "out of memory", 0);
        return;
    }
    conn_flush(t, c, now);
}

/* recv() of the MQTT stream: plain, or out of the broker's WebSocket frames. */
static ssize_t conn_recv(bench_thread_t *t, conn_t *c, uint8_t *buf, size_t len)
{
    return t->run->cfg.ws ? ws_client_recv(c, buf, len) : io_recv(t, c, buf, len);
}

/* --ws: read the answer to the opening request; then send CONNECT. 1: done (read on), 0: wait,
 * -1: the connection failed. */
static int ws_handshake_read(bench_thread_t *t, conn_t *c)
{
    ssize_t n = recv(c->fd, t->rbuf + c->in_len, 4096, 0);
    if (n == 0) {
        conn_fail(t, c, "WebSocket handshake: connection closed by the broker", 0);
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        conn_fail(t, c, "read", errno);
        return -1;
    }
    if (c->in_len)
        memcpy(t->rbuf, c->in, c->in_len);
    size_t have = c->in_len + (size_t)n, used = 0;
    int r = ws_client_response(c, t->rbuf, have, &used);
    if (r < 0) {
        conn_fail(t, c, "WebSocket handshake refused by the broker", 0);
        return -1;
    }
    if (r == 0) {
        uint8_t *nb = realloc(c->in, have);
        if (!nb) {
            conn_fail(t, c, "out of memory", 0);
            return -1;
        }
        memcpy(nb, t->rbuf, have);
        c->in = nb;
        c->in_len = c->in_cap = (uint32_t)have;
        return 0;
    }
    if (used != have) {
        conn_fail(t, c, "WebSocket handshake: data before CONNECT", 0);
        return -1;
    }
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (send_connect(t, c) < 0) {
        conn_fail(t, c, "out of memory", 0);
        return -1;
    }
    conn_flush(t, c, now_ns());
    return c->fd >= 0 ? 1 : -1;
}

/* ---- receiving ---- */

static void on_publish(bench_thread_t *t, conn_t *c, const mqtt_packet_t *p, uint64_t now)
{
    sub_state_t *s = c->sub;
    bench_run_t *r = t->run;
    if (!s) {
        conn_fail(t, c, "PUBLISH to a client that did not subscribe", 0);
        return;
    }
    if (p->publish.qos == 1) {
        out_ack(t, c, MQTT_PUBACK, p->id);
    } else if (p->publish.qos == 2) {
        uint64_t bit = 1ull << (p->id & 63);
        bool again = s->rel_ids && (s->rel_ids[p->id >> 6] & bit);
        out_ack(t, c, MQTT_PUBREC, p->id);
        if (again) /* a resend of a message we hold: exactly once means not delivered again */
            return;
        if (s->rel_ids)
            s->rel_ids[p->id >> 6] |= bit;
    }
    t->t.recv++;
    const uint8_t *pl = p->publish.payload.p;
    if (p->publish.payload.len < BENCH_PAYLOAD_MIN || get_le32(pl) != BENCH_MAGIC ||
        (r->cfg.mode != MODE_SUB && get_le32(pl + 4) != r->cfg.nonce)) {
        t->t.foreign++;
        return;
    }
    uint32_t pub_id = get_le32(pl + 8);
    uint64_t seq = get_le64(pl + 16), ts = get_le64(pl + 24);
    uint32_t slot;
    if (s->expect_one != UINT32_MAX) {
        if (pub_id != s->expect_one) {
            t->t.foreign++;
            return;
        }
        slot = 0;
    } else {
        if ((r->cfg.pubs && pub_id >= r->cfg.pubs) || pub_id >= (1u << 20)) {
            t->t.foreign++;
            return;
        }
        slot = pub_id;
    }
    if (slot >= s->ntr) {
        uint32_t n = slot + 1;
        if (r->cfg.pubs && n < r->cfg.pubs && s->expect_one == UINT32_MAX)
            n = r->cfg.pubs;
        track_t *nt = realloc(s->tr, n * sizeof(track_t));
        if (!nt) {
            conn_fail(t, c, "out of memory", 0);
            return;
        }
        memset(nt + s->ntr, 0, (n - s->ntr) * sizeof(track_t));
        s->tr = nt;
        s->ntr = n;
    }
    switch (track_seen(&s->tr[slot], seq)) {
    case 0:
        t->t.distinct++;
        break;
    case 1:
        t->t.distinct++;
        t->t.ooo++;
        break;
    case 2:
        t->t.dup++;
        return;
    default:
        conn_fail(t, c, "out of memory", 0);
        return;
    }
    if (r->e2e) {
        /* seq_cst pairs with the publisher's store of `blocked` then load of `delivered`, so a
         * publisher that blocked is always either seen here or sees this delivery itself */
        pub_state_t *ps = r->pub_by_id[pub_id];
        atomic_fetch_add(&ps->delivered, 1);
        if (ps->owner != t && atomic_load(&ps->blocked) && atomic_exchange(&ps->blocked, 0))
            t->wake_mask |= 1ull << ps->owner->id;
    }
    /* the window counts what arrives in it: throughput by receive time, latency of those */
    uint64_t m0 = atomic_load_explicit(&r->meas_start_ns, memory_order_relaxed);
    uint64_t m1 = atomic_load_explicit(&r->meas_end_ns, memory_order_relaxed);
    if (m0 && now >= m0 && now < m1) {
        t->t.meas_recv++;
        if (r->cfg.mode == MODE_RETAINED) /* stored long ago: the latency is time since subscribing */
            ts = atomic_load_explicit(&r->sub_ns, memory_order_relaxed);
        hist_record(&t->t.lat, now > ts ? now - ts : 0);
    }
}

static void on_ack(bench_thread_t *t, conn_t *c, const mqtt_packet_t *p)
{
    pub_state_t *ps = c->pub;
    uint16_t id = p->id;
    uint64_t bit = 1ull << (id & 63);
    if (!ps || !ps->ids || !(ps->ids[id >> 6] & bit)) {
        conn_fail(t, c, "acknowledgement for a packet id not in flight", 0);
        return;
    }
    if (p->reason >= 0x80) /* MQTT 5: the flow ends here, without PUBREL for a refused PUBREC */
        conn_error(t, c, "PUBLISH refused by the broker", 0);
    if (p->type == MQTT_PUBREC && p->reason < 0x80) {
        if (!(ps->rel[id >> 6] & bit)) {
            ps->rel[id >> 6] |= bit;
            mqtt_packet_t rel;
            memset(&rel, 0, sizeof(rel));
            rel.type = MQTT_PUBREL;
            rel.id = id;
            out_packet(t, c, &rel);
        }
        return;
    }
    if (p->type == MQTT_PUBCOMP && !(ps->rel[id >> 6] & bit)) {
        conn_fail(t, c, "PUBCOMP before PUBREC", 0);
        return;
    }
    if (p->type == MQTT_PUBACK && scenario_pub_qos(&t->run->cfg) != 1) {
        conn_fail(t, c, "PUBACK for a QoS 2 message", 0);
        return;
    }
    ps->ids[id >> 6] &= ~bit;
    if (ps->rel)
        ps->rel[id >> 6] &= ~bit;
    ps->inflight--;
    ps->done++;
    t->inflight--;
    t->t.done++;
}

static void send_subscribe(bench_thread_t *t, conn_t *c)
{
    const bench_cfg_t *cfg = &t->run->cfg;
    mqtt_sub_t sub;
    memset(&sub, 0, sizeof(sub));
    sub.filter.p = (const uint8_t *)c->sub->filter;
    sub.filter.len = (uint32_t)strlen(c->sub->filter);
    sub.qos = (uint8_t)cfg->qos;
    sub.options = (uint8_t)cfg->qos;
    mqtt_packet_t s;
    memset(&s, 0, sizeof(s));
    s.type = MQTT_SUBSCRIBE;
    s.id = 1;
    s.subscribe.list = &sub;
    s.subscribe.count = 1;
    c->state = CS_SUBACK;
    out_packet(t, c, &s);
}

/* Storm: one more handshake done; say DISCONNECT and wait for the broker to close. */
static void storm_cycle(bench_thread_t *t, conn_t *c, uint64_t now)
{
    bench_run_t *r = t->run;
    uint64_t m0 = atomic_load_explicit(&r->meas_start_ns, memory_order_relaxed);
    uint64_t m1 = atomic_load_explicit(&r->meas_end_ns, memory_order_relaxed);
    t->t.cycles++;
    if (m0 && now >= m0 && now < m1) {
        t->t.meas_cycles++;
        hist_record(&t->t.lat, now - c->started_ns);
    }
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_DISCONNECT;
    out_packet(t, c, &p);
    c->state = CS_CLOSING;
}

static void on_packet(bench_thread_t *t, conn_t *c, const mqtt_header_t *h, const uint8_t *body, uint64_t now)
{
    const bench_cfg_t *cfg = &t->run->cfg;
    mqtt_packet_t p;
    uint8_t rc = mqtt_decode(h, body, (uint8_t)cfg->version, MQTT_FROM_SERVER, &p);
    if (rc != MQTT_RC_SUCCESS) {
        char what[96];
        snprintf(what, sizeof(what), "bad %s from the broker (%s)", mqtt_type_name(p.type), mqtt_rc_name(rc));
        conn_fail(t, c, what, 0);
        return;
    }
    switch (p.type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNACK) {
            conn_fail(t, c, "unexpected CONNACK", 0);
            return;
        }
        if (p.reason != 0) {
            char what[96];
            snprintf(what, sizeof(what), "connection refused (%u)", p.reason);
            conn_fail(t, c, what, 0);
            return;
        }
        t->pending--;
        t->handshakes_done++;
        t->conns_up++;
        if (c->pub && cfg->version == MQTT_V5 && (p.props.has & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) &&
            p.props.receive_max < c->pub->window)
            c->pub->window = p.props.receive_max; /* the broker's Receive Maximum caps our window */
        if (c->sub && cfg->mode == MODE_RETAINED)
            c->state = CS_WAIT; /* subscribes once every retained message is stored */
        else if (c->sub)
            send_subscribe(t, c);
        else
            c->state = CS_READY;
        if (cfg->mode == MODE_STORM && atomic_load_explicit(&t->run->phase, memory_order_relaxed) == PH_RUN)
            storm_cycle(t, c, now);
        break;
    case MQTT_SUBACK:
        if (c->state != CS_SUBACK || p.suback.codes.len < 1 || p.suback.codes.p[0] >= 0x80) {
            conn_fail(t, c, "subscription refused", 0);
            return;
        }
        c->state = CS_READY;
        t->subs_ready++;
        break;
    case MQTT_PUBLISH:
        on_publish(t, c, &p, now);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        on_ack(t, c, &p);
        break;
    case MQTT_PUBREL:
        if (c->sub && c->sub->rel_ids)
            c->sub->rel_ids[p.id >> 6] &= ~(1ull << (p.id & 63));
        out_ack(t, c, MQTT_PUBCOMP, p.id);
        break;
    case MQTT_PINGRESP:
        break;
    case MQTT_DISCONNECT:
        conn_fail(t, c, "DISCONNECT from the broker", 0);
        break;
    default:
        conn_fail(t, c, "unexpected packet", 0);
        break;
    }
}

/* The broker closed the connection: expected in storm mode after our DISCONNECT (then connect
 * again while the run lasts), a failure otherwise. */
static void conn_eof(bench_thread_t *t, conn_t *c)
{
    if (c->state != CS_CLOSING) {
        conn_fail(t, c, "connection closed by the broker", 0);
        return;
    }
    conn_close(t, c);
    if (atomic_load_explicit(&t->run->phase, memory_order_relaxed) == PH_RUN)
        conn_start(t, c, now_ns());
}

/* A packet larger than one read whose start is in c->in: read the rest of it straight into
 * c->in (no copy through the read buffer) and handle it. 1: handled, read on; 0: no such
 * packet pending; -1: stop reading this connection for now (incomplete, or closed). */
static int conn_read_big(bench_thread_t *t, conn_t *c)
{
    mqtt_header_t h;
    if (!c->in_len || mqtt_header_parse(c->in, c->in_len, &h) <= 0)
        return 0;
    size_t total = (size_t)h.header_len + h.remaining;
    if (total <= BENCH_READ_SIZE)
        return 0;
    if (c->in_cap < total) {
        uint8_t *nb = realloc(c->in, total);
        if (!nb) {
            conn_fail(t, c, "out of memory", 0);
            return -1;
        }
        c->in = nb;
        c->in_cap = (uint32_t)total;
    }
    while (c->in_len < total) {
        ssize_t n = conn_recv(t, c, c->in + c->in_len, total - c->in_len);
        if (n == 0) {
            conn_eof(t, c);
            return -1;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                conn_fail(t, c, "read", errno);
            return -1;
        }
        c->in_len += (uint32_t)n;
    }
    on_packet(t, c, &h, c->in + h.header_len, now_ns());
    if (c->fd < 0)
        return -1;
    free(c->in); /* thousands of fan-out subscribers must not each keep a big buffer */
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    return 1;
}

/* Read up to 64 KB at a time (a few times while the socket keeps filling them) and handle every
 * complete packet; a partial packet is carried in c->in to the next read. */
static void conn_read(bench_thread_t *t, conn_t *c)
{
    if (t->run->cfg.ws && !c->ws_open && ws_handshake_read(t, c) <= 0)
        return;
    /* Four reads a turn; more while OpenSSL holds records it read ahead (no epoll event for them). */
    for (int round = 0; (round < 4 || tls_pending(c)) && c->fd >= 0; round++) {
        int big = conn_read_big(t, c);
        if (big < 0)
            return;
        if (big > 0)
            continue;
        uint32_t have = c->in_len;
        if (have)
            memcpy(t->rbuf, c->in, have);
        ssize_t n = conn_recv(t, c, t->rbuf + have, BENCH_READ_SIZE);
        if (n == 0) {
            conn_eof(t, c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            conn_fail(t, c, "read", errno);
            return;
        }
        uint64_t now = now_ns();
        size_t total = have + (size_t)n, off = 0;
        while (off < total && c->fd >= 0) {
            mqtt_header_t h;
            int hr = mqtt_header_parse(t->rbuf + off, total - off, &h);
            if (hr == 0)
                break;
            if (hr < 0 || (size_t)h.header_len + h.remaining > MAX_PACKET) {
                conn_fail(t, c, "malformed or oversized packet from the broker", 0);
                return;
            }
            if (off + h.header_len + h.remaining > total)
                break;
            on_packet(t, c, &h, t->rbuf + off + h.header_len, now);
            off += h.header_len + h.remaining;
        }
        if (c->fd < 0)
            return;
        size_t left = total - off;
        if (left) {
            uint8_t *nb = realloc(c->in, left);
            if (!nb) {
                conn_fail(t, c, "out of memory", 0);
                return;
            }
            memmove(nb, t->rbuf + off, left);
            c->in = nb;
            c->in_cap = (uint32_t)left;
        } else {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        c->in_len = (uint32_t)left;
        if ((size_t)n < BENCH_READ_SIZE)
            return;
    }
}

/* ---- publishing ---- */

static int pub_prepare(bench_thread_t *t, conn_t *c)
{
    const bench_cfg_t *cfg = &t->run->cfg;
    pub_state_t *ps = c->pub;
    uint8_t *payload = calloc(1, cfg->payload);
    if (!payload)
        return -1;
    int qos = scenario_pub_qos(cfg);
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.id = qos ? 1 : 0;
    p.publish.qos = (uint8_t)qos;
    p.publish.retain = cfg->mode == MODE_RETAINED;
    p.publish.topic.p = (const uint8_t *)ps->topic;
    p.publish.topic.len = (uint32_t)strlen(ps->topic);
    p.publish.payload.p = payload;
    p.publish.payload.len = cfg->payload;
    size_t n = mqtt_encoded_len(&p, (uint8_t)cfg->version);
    ps->tmpl = malloc(n);
    if (!ps->tmpl) {
        free(payload);
        return -1;
    }
    ps->tmpl_len = (uint32_t)mqtt_encode(&p, (uint8_t)cfg->version, ps->tmpl);
    ps->id_off = qos ? (uint32_t)mqtt_publish_id_offset(&p, (uint8_t)cfg->version) : 0;
    ps->pl_off = ps->tmpl_len - cfg->payload;
    if (ps->topic_digits) { /* the index digits: fixed header, 2 length bytes, the literal prefix */
        mqtt_header_t h;
        if (mqtt_header_parse(ps->tmpl, ps->tmpl_len, &h) <= 0) {
            free(payload);
            return -1;
        }
        ps->topic_off = h.header_len + 2 + (uint32_t)(strstr(cfg->topic, "%i") - cfg->topic);
    }
    put_le32(ps->tmpl + ps->pl_off, BENCH_MAGIC);
    put_le32(ps->tmpl + ps->pl_off + 4, cfg->nonce);
    put_le32(ps->tmpl + ps->pl_off + 8, ps->pub_id);
    free(payload);
    return 0;
}

/* Append the messages due now. Returns true when the publisher could send more right away
 * (max rate, room in window and buffer), so the loop should not sleep. */
static bool pub_generate(bench_thread_t *t, conn_t *c, uint64_t now)
{
    bench_run_t *r = t->run;
    pub_state_t *ps = c->pub;
    if (c->state != CS_READY)
        return false;
    uint64_t want = UINT64_MAX;
    if (r->cfg.rate > 0) {
        uint64_t due = (uint64_t)((double)(now - r->t_run_ns) * r->cfg.rate / 1e9) + 1;
        want = due > ps->seq ? due - ps->seq : 0;
    }
    uint64_t m0 = atomic_load_explicit(&r->meas_start_ns, memory_order_relaxed);
    uint64_t m1 = atomic_load_explicit(&r->meas_end_ns, memory_order_relaxed);
    bool measured = m0 && now >= m0 && now < m1;
    int qos = scenario_pub_qos(&r->cfg);
    uint64_t limit = scenario_pub_share(r, ps); /* highest seq + 1 allowed */
    if (r->e2e) {
        uint64_t got = atomic_load_explicit(&ps->delivered, memory_order_relaxed) + ps->e2e_base;
        limit = got / r->fan + ps->window;
        if (ps->seq >= limit) {
            atomic_store(&ps->blocked, 1);
            got = atomic_load(&ps->delivered) + ps->e2e_base;
            limit = got / r->fan + ps->window;
        }
        if (ps->seq >= limit) {
            /* Blocked on the subscribers. A message the broker dropped never arrives, so after
             * 1 s without progress forgive the deficit (it is counted as lost at the end). */
            if (!ps->blocked_since) {
                ps->blocked_since = now;
            } else if (now - ps->blocked_since > 1000000000ull) {
                ps->e2e_base = ps->seq * r->fan - (got - ps->e2e_base);
                ps->blocked_since = 0;
                t->t.stalls++;
            }
            return false;
        }
        ps->blocked_since = 0;
        atomic_store_explicit(&ps->blocked, 0, memory_order_relaxed);
    }
    while (want && c->out_len - c->out_off < BENCH_OUT_HIGH) {
        if (qos && ps->inflight >= ps->window)
            return false;
        if (ps->seq >= limit)
            return false;
        uint8_t *o = out_reserve(t, c, ps->tmpl_len);
        if (!o) {
            conn_fail(t, c, "out of memory", 0);
            return false;
        }
        memcpy(o, ps->tmpl, ps->tmpl_len);
        if (ps->topic_digits) {
            uint64_t v = scenario_topic_of(r, ps, ps->seq);
            for (uint32_t k = ps->topic_digits; k-- > 0; v /= 10)
                o[ps->topic_off + k] = (uint8_t)('0' + v % 10);
        }
        put_le64(o + ps->pl_off + 16, ps->seq);
        put_le64(o + ps->pl_off + 24, now);
        if (qos) {
            uint16_t id = ps->next_id;
            while (ps->ids[id >> 6] & (1ull << (id & 63)))
                id = (uint16_t)(id == 65535 ? 1 : id + 1);
            ps->ids[id >> 6] |= 1ull << (id & 63);
            ps->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
            o[ps->id_off] = (uint8_t)(id >> 8);
            o[ps->id_off + 1] = (uint8_t)id;
            ps->inflight++;
            t->inflight++;
        }
        c->out_len += ps->tmpl_len;
        ps->seq++;
        t->t.sent++;
        if (measured)
            t->t.meas_sent++;
        if (want != UINT64_MAX)
            want--;
    }
    return r->cfg.rate <= 0 && c->out_len - c->out_off < BENCH_OUT_HIGH;
}

/* ---- the loop ---- */

static void publish_counters(bench_thread_t *t)
{
    live_counters_t *l = &t->live;
    atomic_store_explicit(&l->sent, t->t.sent, memory_order_relaxed);
    atomic_store_explicit(&l->cycles, t->t.cycles, memory_order_relaxed);
    atomic_store_explicit(&l->recv, t->t.recv, memory_order_relaxed);
    atomic_store_explicit(&l->distinct, t->t.distinct, memory_order_relaxed);
    atomic_store_explicit(&l->done, t->t.done, memory_order_relaxed);
    atomic_store_explicit(&l->inflight, t->inflight, memory_order_relaxed);
    atomic_store_explicit(&l->errors, t->t.errors, memory_order_relaxed);
    atomic_store_explicit(&l->conns, t->conns_up, memory_order_relaxed);
    atomic_store_explicit(&l->subs_ready, t->subs_ready, memory_order_relaxed);
    atomic_store_explicit(&l->handshakes, t->handshakes_done, memory_order_relaxed);
}

static void keepalive_scan(bench_thread_t *t, uint64_t now)
{
    if (now - t->last_ka_ns < 1000000000ull)
        return;
    t->last_ka_ns = now;
    for (uint32_t i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        if (c->state >= CS_SUBACK && c->state != CS_CLOSED && now - c->last_tx_ns > KEEPALIVE / 2 * 1000000000ull) {
            mqtt_packet_t p;
            memset(&p, 0, sizeof(p));
            p.type = MQTT_PINGREQ;
            out_packet(t, c, &p);
            c->last_tx_ns = now;
        }
    }
}

void *engine_thread(void *arg)
{
    bench_thread_t *t = arg;
    bench_run_t *r = t->run;
    struct epoll_event evs[EVENTS];
    int timeout = 0;
    t->last_ka_ns = now_ns();
    for (;;) {
        int phase = atomic_load_explicit(&r->phase, memory_order_acquire);
        if (phase == PH_STOP)
            break;
        uint64_t now = now_ns();
        while (t->next_start < t->nconns && t->pending < r->cfg.max_pending)
            conn_start(t, &t->conns[t->next_start++], now);
        int n = epoll_wait(t->ep, evs, EVENTS, timeout);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) { /* our eventfd */
                uint64_t v;
                if (read(t->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    conn_error(t, &t->conns[0], "eventfd read", errno);
                continue;
            }
            if (c->fd < 0)
                continue;
            if (c->state == CS_CONNECTING) {
                conn_connected(t, c, now);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(t, c);
            /* TLS: a handshake finished by that read lets the CONNECT waiting behind it go. */
            if (c->fd >= 0 && ((evs[i].events & EPOLLOUT) || (c->ssl && c->out_off < c->out_len)))
                conn_flush(t, c, now);
        }
        if (phase == PH_RUN && r->cfg.mode == MODE_STORM && !t->kicked) {
            t->kicked = true; /* connected during the connect phase: start cycling */
            for (uint32_t i = 0; i < t->nconns; i++)
                if (t->conns[i].state == CS_READY)
                    storm_cycle(t, &t->conns[i], now);
        }
        if (r->cfg.mode == MODE_RETAINED && !t->kicked && atomic_load(&r->retained_go)) {
            t->kicked = true;
            uint64_t zero = 0;
            atomic_compare_exchange_strong(&r->sub_ns, &zero, now);
            for (uint32_t i = 0; i < t->nconns; i++)
                if (t->conns[i].state == CS_WAIT)
                    send_subscribe(t, &t->conns[i]);
        }
        bool busy = false;
        uint64_t next_due = UINT64_MAX;
        if (phase == PH_RUN) {
            for (uint32_t i = 0; i < t->npubs; i++) {
                conn_t *c = t->pubs[i];
                if (pub_generate(t, c, now))
                    busy = true;
                if (r->cfg.rate > 0 && c->state == CS_READY) {
                    uint64_t due = r->t_run_ns + (uint64_t)((double)c->pub->seq * 1e9 / r->cfg.rate);
                    if (due < next_due)
                        next_due = due;
                }
            }
        }
        while (t->dirty) {
            conn_t *c = t->dirty;
            t->dirty = c->next_dirty;
            c->dirty = false;
            conn_flush(t, c, now);
        }
        while (t->wake_mask) {
            int k = __builtin_ctzll(t->wake_mask);
            uint64_t one = 1;
            t->wake_mask &= t->wake_mask - 1;
            if (write(r->thr[k].efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                conn_error(t, &t->conns[0], "eventfd write", errno);
        }
        keepalive_scan(t, now);
        publish_counters(t);
        if (phase == PH_DRAIN)
            atomic_store_explicit(&t->live.drain_seen, 1, memory_order_release);
        if (busy)
            timeout = 0;
        else if (next_due != UINT64_MAX) {
            uint64_t after = now_ns();
            timeout = next_due <= after ? 0 : (int)((next_due - after + 999999) / 1000000);
            if (timeout > 100)
                timeout = 100;
        } else {
            timeout = 10;
        }
    }
    /* Say goodbye properly, best effort, then close. */
    uint64_t now = now_ns();
    for (uint32_t i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        if (c->fd >= 0 && c->state >= CS_SUBACK && c->state != CS_CLOSING) {
            mqtt_packet_t p;
            memset(&p, 0, sizeof(p));
            p.type = MQTT_DISCONNECT;
            if (out_packet(t, c, &p) == 0)
                conn_flush(t, c, now);
        }
    }
    for (uint32_t i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        if (c->sub)
            for (uint32_t k = 0; k < c->sub->ntr; k++)
                if (c->sub->tr[k].next > c->sub->tr[k].distinct)
                    t->t.gaps += c->sub->tr[k].next - c->sub->tr[k].distinct;
        tls_close(t, c);
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    publish_counters(t);
    return NULL;
}

static int resolve(bench_run_t *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    if (r->cfg.nsub_ports) { /* the subscribers' nodes: same host, their own ports */
        r->dst_sub = calloc((size_t)r->cfg.nsub_ports, sizeof(*r->dst_sub));
        if (!r->dst_sub)
            return -1;
        for (int i = 0; i < r->cfg.nsub_ports; i++) {
            snprintf(port, sizeof(port), "%d", r->cfg.sub_ports[i]);
            int e = getaddrinfo(r->cfg.host, port, &hints, &ai);
            if (e) {
                fprintf(stderr, "tombo-bench: %s: %s\n", r->cfg.host, gai_strerror(e));
                return -1;
            }
            memcpy(&r->dst_sub[i], ai->ai_addr, ai->ai_addrlen);
            r->dst_sub_len[i] = (unsigned)ai->ai_addrlen;
            freeaddrinfo(ai);
            ai = NULL;
        }
    }
    snprintf(port, sizeof(port), "%d", r->cfg.port);
    int e = getaddrinfo(r->cfg.host, port, &hints, &ai);
    if (e) {
        fprintf(stderr, "tombo-bench: %s: %s\n", r->cfg.host, gai_strerror(e));
        return -1;
    }
    r->dst = calloc(1, sizeof(*r->dst));
    if (!r->dst) {
        freeaddrinfo(ai);
        return -1;
    }
    memcpy(r->dst, ai->ai_addr, ai->ai_addrlen);
    r->dst_len = (unsigned)ai->ai_addrlen;
    bool loopback = ai->ai_family == AF_INET &&
                    (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    freeaddrinfo(ai);
    if (!loopback)
        r->cfg.src_addrs = 1;
    else if (r->cfg.src_addrs <= 0)
        r->cfg.src_addrs = 1 + (int)(r->nclients / 16000);
    return 0;
}

int engine_init(bench_run_t *r)
{
    if (resolve(r) < 0 || bench_tls_init(r) < 0)
        return -1;
    int nt = r->cfg.threads;
    r->thr = calloc((size_t)nt, sizeof(bench_thread_t));
    if (!r->thr)
        return -1;
    for (int i = 0; i < nt; i++) {
        bench_thread_t *t = &r->thr[i];
        t->id = i;
        t->run = r;
        t->ep = -1;
        t->efd = -1;
        hist_init(&t->t.lat);
        t->nconns = r->nclients / (uint32_t)nt + ((uint32_t)i < r->nclients % (uint32_t)nt);
        t->conns = calloc(t->nconns ? t->nconns : 1, sizeof(conn_t));
        t->pubs = calloc(t->nconns ? t->nconns : 1, sizeof(conn_t *));
        t->rbuf = malloc(RBUF_SIZE);
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!t->conns || !t->pubs || !t->rbuf || t->ep < 0 || t->efd < 0)
            return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &ev) < 0)
            return -1;
    }
    r->fan = r->cfg.mode == MODE_PAIRS ? 1 : r->cfg.subs;
    r->e2e = r->cfg.rate <= 0 && !r->cfg.open_loop && r->cfg.pubs && r->cfg.subs && r->cfg.mode != MODE_PUB &&
             r->cfg.mode != MODE_SUB && r->cfg.mode != MODE_RETAINED;
    r->pub_by_id = calloc(r->cfg.pubs ? r->cfg.pubs : 1, sizeof(pub_state_t *));
    if (!r->pub_by_id)
        return -1;
    /* client k goes to thread k % T, so subscribers and publishers spread over every thread */
    for (uint32_t k = 0; k < r->nclients; k++) {
        bench_thread_t *t = &r->thr[k % (uint32_t)nt];
        conn_t *c = &t->conns[k / (uint32_t)nt];
        c->fd = -1;
        c->idx = k;
        if (scenario_client(r, k, c) < 0)
            return -1;
        if (c->pub) {
            if (pub_prepare(t, c) < 0)
                return -1;
            t->pubs[t->npubs++] = c;
            c->pub->owner = t;
            r->pub_by_id[c->pub->pub_id] = c->pub;
        }
    }
    return 0;
}

void engine_free(bench_run_t *r)
{
    if (r->thr) {
        for (int i = 0; i < r->cfg.threads; i++) {
            bench_thread_t *t = &r->thr[i];
            for (uint32_t k = 0; t->conns && k < t->nconns; k++) {
                free(t->conns[k].in);
                free(t->conns[k].out);
                free(t->conns[k].ws_rd);
                SSL_SESSION_free(t->conns[k].session);
                scenario_client_free(&t->conns[k]);
            }
            free(t->conns);
            free(t->pubs);
            free(t->rbuf);
            if (t->ep >= 0)
                close(t->ep);
            if (t->efd >= 0)
                close(t->efd);
        }
    }
    free(r->thr);
    bench_tls_free(r);
    free(r->pub_by_id);
    free(r->dst);
    free(r->dst_sub);
    free(r->samples);
}
