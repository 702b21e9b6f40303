/* bridge.c -- bridges: tombo as a client of another MQTT broker, with Mosquitto's syntax and meaning
 * (mosquitto.conf(5) `connection` sections; docs/bridges.md).
 *
 * Design. A bridge belongs to one worker for life and is driven by that worker's loop
 * (bridges_tick, once per turn) and by its connection's events. Its connection is an ordinary
 * conn_t, so reading, writing, keepalive deadlines (the wheel), output queues and closing are the
 * clients' code; only the handshake is reversed: a non-blocking connect() (a host name resolved by
 * getaddrinfo on a thread of its own, a numeric address at once), with TLS the listeners' transport
 * as a client (transport_tls.c, the context from src/tls), CONNECT sent, CONNACK awaited
 * (bridge_on_packet), packets decoded as coming from a server.
 *
 * Outgoing: the bridge owns a local session (local_clientid) that never expires and, with
 * `persistence true`, is durable. The `out`/`both` topics are that session's subscriptions, made
 * with no-local (what the bridge itself brings in never goes back) and retain-as-published, as
 * Mosquitto's bridges subscribe. While the remote is away the session is offline and queues QoS 1/2
 * messages like any offline client's (max_queued_messages); once connected, session_resend and
 * session_flush send what was in flight and queued, and the remote's PUBACK/PUBREC/PUBCOMP go to
 * handle_ack as a client's would. The topic is remapped when the message is encoded
 * (bridge_out_topic, from conn_send_publish).
 *
 * Incoming: after CONNACK the bridge subscribes on the remote to the `in`/`both` topics (with
 * no-local and retain-as-published on MQTT 5; on 3.1/3.1.1 the CONNECT carries Mosquitto's
 * "try_private" bit 0x80 in the protocol level, which tells a Mosquitto or tombo remote to treat
 * those subscriptions so). A PUBLISH from the remote gets its topic remapped and goes to
 * handle_publish, which routes it locally and answers PUBACK/PUBREC as to a client.
 *
 * Restart: a failed attempt moves to the next address and waits restart_timeout (a constant, or
 * Mosquitto's decorrelated jittered backoff between BASE and CAP); a connection that ends after it
 * was up waits restart_timeout's BASE and starts again at the first address unless round_robin.
 * start_type once never restarts, lazy starts when `threshold` messages wait and stops after
 * idle_timeout seconds without a PUBLISH either way.
 *
 * Notifications: the bridge's state, "1" connected / "0" not, is published retained (QoS 1) on
 * notification_topic (default $SYS/broker/connection/REMOTE_CLIENTID/state) locally, and unless
 * notifications_local_only on the remote too: "1" after CONNACK, "0" as the CONNECT's will. */
#include "broker/bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/slab.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/plugin.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/subtree.h"
#include "broker/wheel.h"
#include "broker/worker.h"
#include "mqtt/topic.h"
#include "tls/tls.h"

enum br_state {
    BR_INIT = 0,   /* its session is not set up yet (first tick) */
    BR_WAIT,       /* waiting for next_at (restart_timeout), or for lazy's threshold */
    BR_RESOLVING,  /* the address being resolved (resolver thread for a host name) */
    BR_CONNECTING, /* TCP connect, then CONNECT sent and CONNACK awaited (br->c set) */
    BR_UP,         /* CONNACK accepted */
    BR_STOPPED,    /* start_type once: ended for good */
};

#define TOPIC_SCRATCH (65535 + 1)

/* Ownership: the broker owns the array of bridges (bridges_init/free); each bridge is touched only
 * by its worker after start-up. `lst` is what its connections point to as c->l (bridge_of). */
typedef struct bridge {
    struct tombo_listener lst;      /* first: a connection's c->l leads back to its bridge */
    const struct tombo_bridge *cfg;
    broker_t *b;
    worker_t *w;
    session_t *s;                   /* the local session, one reference (after BR_INIT) */
    conn_t *c;                      /* the current connection, NULL when none */
    uint8_t state;                  /* enum br_state */
    uint8_t was_up;                 /* the current connection reached CONNACK */
    int addr;                       /* index in cfg->addrs being tried or used */
    int64_t next_at;                /* BR_WAIT: ms when the next attempt may start */
    uint32_t backoff;               /* seconds: the current restart wait */
    unsigned seed;                  /* for the jitter */
    int64_t last_ping, last_activity;
    uint16_t next_pid;              /* SUBSCRIBE/UNSUBSCRIBE ids, counting down from 65535 */
    /* Name resolution (BR_RESOLVING): a numeric address at once, a host name on a thread of its own
     * (getaddrinfo may block on DNS) that sets `resolved` when res/gai_rc are written. */
    pthread_t resolver;
    atomic_int resolved;
    uint8_t resolver_running;
    int gai_rc;
    struct addrinfo *res, *ai;      /* the resolved addresses, the one being connected to */
    uint8_t next_ai;                /* the connect to `ai` failed: try the next one */
    char port[8];
    uint8_t *scratch;               /* remapped topics (TOPIC_SCRATCH bytes) */
    SSL_CTX *ctx;                   /* TLS client context (NULL: plain TCP); one reference */
    atomic_bool login_refused;      /* local_password no longer accepted (set by a reload on worker 0):
                                     * the bridge is down until a reload accepts it again */
} bridge_t;

static bridge_t *bridge_of(const conn_t *c) { return (bridge_t *)(void *)c->l; }

/* ---- topics ---- */

/* Remap `topic` between the two sides: for the first bridge topic of direction `dir` that has a
 * prefix and whose filter on the `from` side matches, the from-prefix is replaced by the
 * to-prefix (mosquitto.conf(5)). Returns topic unchanged when nothing applies; .p NULL when the
 * result would be longer than an MQTT string. */
static mqtt_bytes_t remap(bridge_t *br, mqtt_bytes_t topic, bool outgoing)
{
    const struct tombo_bridge *cfg = br->cfg;
    for (int i = 0; i < cfg->n_topics; i++) {
        const struct tombo_bridge_topic *t = &cfg->topics[i];
        if (!(t->dir & (outgoing ? BRIDGE_OUT : BRIDGE_IN)) || (!t->local_prefix && !t->remote_prefix))
            continue;
        const char *filter = outgoing ? t->local_topic : t->remote_topic;
        if (!mqtt_topic_match((const uint8_t *)filter, strlen(filter), topic.p, topic.len))
            continue;
        const char *from = outgoing ? t->local_prefix : t->remote_prefix;
        const char *to = outgoing ? t->remote_prefix : t->local_prefix;
        size_t fn = from ? strlen(from) : 0, tn = to ? strlen(to) : 0;
        if (fn > topic.len || (fn && memcmp(topic.p, from, fn)))
            fn = 0; /* cannot happen (the filter starts with the prefix), but never read past it */
        size_t n = tn + topic.len - fn;
        if (n > 65535 || n == 0)
            return (mqtt_bytes_t){NULL, 0};
        if (tn)
            memcpy(br->scratch, to, tn);
        memcpy(br->scratch + tn, topic.p + fn, topic.len - fn);
        return (mqtt_bytes_t){br->scratch, (uint32_t)n};
    }
    return topic;
}

mqtt_bytes_t bridge_out_topic(conn_t *c, mqtt_bytes_t topic, uint8_t *retain)
{
    bridge_t *br = bridge_of(c);
    if (!br->cfg->outgoing_retain)
        *retain = 0;
    br->last_activity = c->w->now;
    return remap(br, topic, true);
}

uint32_t bridge_max_packet_in(const conn_t *c) { return bridge_of(c)->cfg->max_packet_size; }

/* ---- notifications ---- */

/* The bridge's state, "1" or "0", retained at QoS 1 on its notification topic: locally, and with
 * `remote` through the bridge's own session to the remote broker. */
static void notify(bridge_t *br, bool up, bool remote)
{
    if (!br->cfg->notifications)
        return;
    const char *t = br->cfg->notification_topic;
    mqtt_bytes_t topic = {(const uint8_t *)t, (uint32_t)strlen(t)};
    mqtt_bytes_t payload = {(const uint8_t *)(up ? "1" : "0"), 1};
    msg_t *m = msg_new(topic, payload, 1, 1, NULL, br->w->now);
    route_publish(br->w, m, br->s, NULL); /* from the bridge's session: its no-local keeps it here */
    if (remote && !br->cfg->notifications_local_only)
        session_deliver(br->w, br->s, m, 1, 1, NULL, 0);
    msg_release(m);
}

/* ---- set-up: the local session and its subscriptions ---- */

/* The local session (never expires; durable with persistence), subscribed to the `out` topics
 * with no-local and retain-as-published. Subscriptions a previous configuration left on a stored
 * session are removed; local_cleansession true starts from an empty session. */
static void bridge_setup(bridge_t *br)
{
    broker_t *b = br->b;
    const struct tombo_bridge *cfg = br->cfg;
    const char *id = cfg->local_clientid;
    bool existed;
    session_t *s = registry_get(b, id, strlen(id), &existed);
    if (existed && cfg->local_cleansession) {
        session_end(s);
        session_release(s);
        s = registry_get(b, id, strlen(id), &existed);
    }
    session_set_internal(s);
    uint32_t n_old = 0;
    char **old = session_sub_filters(s, &n_old);
    for (uint32_t i = 0; i < n_old; i++) { /* forget subscriptions that are no longer `out` topics */
        bool keep = false;
        for (int k = 0; k < cfg->n_topics && !keep; k++)
            keep = (cfg->topics[k].dir & BRIDGE_OUT) && !strcmp(cfg->topics[k].local_topic, old[i]);
        if (!keep) {
            subtree_remove(b->subs, (const uint8_t *)old[i], strlen(old[i]), s);
            session_sub_remove(s, (const uint8_t *)old[i], strlen(old[i]));
        }
        free(old[i]);
    }
    free(old);
    for (int k = 0; k < cfg->n_topics; k++) {
        const struct tombo_bridge_topic *t = &cfg->topics[k];
        if (!(t->dir & BRIDGE_OUT))
            continue;
        const uint8_t *f = (const uint8_t *)t->local_topic;
        size_t n = strlen(t->local_topic);
        uint8_t options = (uint8_t)(t->qos | 0x04 /* no local */ | 0x08 /* retain as published */);
        if (subtree_add(b->subs, f, n, s, options, 0) < 0) {
            log_printf(TLOG_ERR, "Error: bridge %s: cannot subscribe to %s locally.", cfg->name, t->local_topic);
            continue;
        }
        session_sub_add(s, f, n, options, 0);
    }
    br->s = s;
}

/* ---- connecting ---- */

static uint32_t jitter(bridge_t *br)
{
    const struct tombo_bridge *cfg = br->cfg;
    if (!cfg->restart_cap)
        return cfg->restart_base;
    /* Decorrelated jitter, as Mosquitto: between BASE and three times the last wait, at most CAP. */
    uint32_t hi = br->backoff * 3;
    uint32_t v = cfg->restart_base + (uint32_t)(rand_r(&br->seed) % (hi - cfg->restart_base + 1));
    return v > cfg->restart_cap ? cfg->restart_cap : v;
}

/* The next attempt waits `secs`. */
static void wait_for(bridge_t *br, uint32_t secs)
{
    br->state = BR_WAIT;
    br->next_at = br->w->now + (int64_t)secs * 1000;
}

/* An attempt failed: the next address, after a longer wait. */
static void attempt_failed(bridge_t *br)
{
    if (br->cfg->start_type == BRIDGE_ONCE) {
        br->state = BR_STOPPED;
        log_printf(TLOG_NOTICE, "Bridge %s stopped (start_type once).", br->cfg->name);
        return;
    }
    br->addr = (br->addr + 1) % br->cfg->n_addrs;
    br->backoff = jitter(br);
    log_printf(TLOG_NOTICE, "Bridge %s: next attempt in %u s, to %s:%u.", br->cfg->name, br->backoff,
               br->cfg->addrs[br->addr].host, br->cfg->addrs[br->addr].port);
    wait_for(br, br->backoff);
}

static void *resolver_main(void *arg)
{
    bridge_t *br = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    br->gai_rc = getaddrinfo(br->cfg->addrs[br->addr].host, br->port, &hints, &br->res);
    atomic_store_explicit(&br->resolved, 1, memory_order_release);
    return NULL;
}

/* Resolve the current address: a numeric one here (never blocks), a name on the resolver thread. */
static void start_resolve(bridge_t *br)
{
    const struct tombo_bridge_addr *a = &br->cfg->addrs[br->addr];
    snprintf(br->port, sizeof(br->port), "%u", a->port);
    log_printf(TLOG_NOTICE, "Connecting bridge %s (%s:%u)", br->cfg->name, a->host, a->port);
    br->res = NULL;
    br->state = BR_RESOLVING;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    br->gai_rc = getaddrinfo(a->host, br->port, &hints, &br->res);
    if (br->gai_rc != EAI_NONAME) {
        atomic_store(&br->resolved, 1);
        return;
    }
    atomic_store(&br->resolved, 0);
    if (pthread_create(&br->resolver, NULL, resolver_main, br) != 0) {
        log_printf(TLOG_ERR, "Error: bridge %s: cannot start a thread to resolve %s.", br->cfg->name, a->host);
        attempt_failed(br);
        return;
    }
    br->resolver_running = 1;
}

/* Bind to bridge_bind_address (numeric) before connecting, when it is set. */
static int bind_local(bridge_t *br, int fd, int family)
{
    const char *ba = br->cfg->bind_address;
    if (!ba)
        return 0;
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *res;
    if (getaddrinfo(ba, NULL, &hints, &res) != 0) {
        log_printf(TLOG_ERR, "Error: bridge %s: bridge_bind_address %s is not an address of this family.",
                   br->cfg->name, ba);
        return -1;
    }
    int rc = bind(fd, res->ai_addr, res->ai_addrlen);
    if (rc < 0)
        log_printf(TLOG_ERR, "Error: bridge %s: bind to %s: %s.", br->cfg->name, ba, strerror(errno));
    freeaddrinfo(res);
    return rc;
}

/* The name is resolved: open a socket to the first address that takes a non-blocking connect and
 * make it a connection of this worker. */
static void free_res(bridge_t *br)
{
    if (br->res)
        freeaddrinfo(br->res);
    br->res = NULL;
    br->ai = NULL;
}

/* Connect to br->ai, or the first address after it that takes a non-blocking connect (a name may
 * resolve to several, ::1 and 127.0.0.1 for localhost: bridge_on_close comes back here for the
 * next one when a connect fails later). */
static void connect_next(bridge_t *br)
{
    const struct tombo_bridge_addr *a = &br->cfg->addrs[br->addr];
    int fd = -1;
    for (; br->ai && fd < 0; br->ai = fd < 0 ? br->ai->ai_next : br->ai) {
        struct addrinfo *ai = br->ai;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (bind_local(br, fd, ai->ai_family) < 0 ||
            (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        log_printf(TLOG_NOTICE, "Bridge %s: cannot connect to %s:%u: %s.", br->cfg->name, a->host, a->port,
                   strerror(errno));
        free_res(br);
        attempt_failed(br);
        return;
    }
    worker_t *w = br->w;
    if (broker_settings(w->b)->set_tcp_nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    conn_t *c = mem_zalloc_counted(sizeof(*c)); /* as accepted connections: conn_free gives it back */
    c->fd = fd;
    c->tr = &transport_tcp;
    c->id = ++w->next_conn_id;
    c->w = w;
    c->l = &br->lst;
    c->state = CONN_NEW;
    c->bridge = BRIDGE_CONN_CONNECTING;
    c->version = br->cfg->protocol_version;
    c->last_rx = w->now;
    snprintf(c->peer, sizeof(c->peer), "%.48s:%u", a->host, a->port);
    conn_register(w, c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    atomic_fetch_add_explicit(&w->clients, 1, memory_order_relaxed); /* conn_close counts it out */
    wheel_schedule(c); /* the CONNECT timeout bounds the TCP handshake and the CONNACK */
    br->c = c;
    br->was_up = 0;
    br->state = BR_CONNECTING;
}

static void start_connect(bridge_t *br)
{
    br->ai = br->res;
    connect_next(br);
}

/* TCP (and TLS) is up: CONNECT. */
static void send_connect(bridge_t *br, conn_t *c)
{
    const struct tombo_bridge *cfg = br->cfg;
    c->bridge = BRIDGE_CONN_OPEN;
    bool v5 = c->version == MQTT_V5;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.connect.version = c->version;
    p.connect.bridge = cfg->try_private && !v5;
    p.connect.clean = cfg->cleansession;
    p.connect.keepalive = cfg->keepalive;
    p.connect.client_id = (mqtt_bytes_t){(const uint8_t *)cfg->remote_clientid, (uint32_t)strlen(cfg->remote_clientid)};
    if (cfg->remote_username) {
        p.connect.has_username = 1;
        p.connect.username = (mqtt_bytes_t){(const uint8_t *)cfg->remote_username, (uint32_t)strlen(cfg->remote_username)};
    }
    if (cfg->remote_password) {
        p.connect.has_password = 1;
        p.connect.password = (mqtt_bytes_t){(const uint8_t *)cfg->remote_password, (uint32_t)strlen(cfg->remote_password)};
    }
    if (cfg->notifications && !cfg->notifications_local_only) {
        p.connect.will = 1;
        p.connect.will_qos = 1;
        p.connect.will_retain = 1;
        p.connect.will_topic = (mqtt_bytes_t){(const uint8_t *)cfg->notification_topic,
                                              (uint32_t)strlen(cfg->notification_topic)};
        p.connect.will_payload = (mqtt_bytes_t){(const uint8_t *)"0", 1};
    }
    if (v5) {
        if (!cfg->cleansession) {
            p.props.has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
            p.props.session_expiry = UINT32_MAX;
        }
        if (cfg->max_packet_size) {
            p.props.has |= MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
            p.props.max_packet_size = cfg->max_packet_size;
        }
    }
    conn_send(c, &p);
    conn_update_events(c); /* EPOLLIN only from now on (EPOLLOUT again when output waits) */
}

static void tls_progress(bridge_t *br, conn_t *c)
{
    int r = tls_conn_handshake(c);
    if (r == 1) {
        send_connect(br, c);
    } else if (!(r < 0 && errno == EAGAIN)) {
        const char *ocsp = c->ssl ? tls_ocsp_failure(c->ssl) : NULL;
        if (ocsp)
            log_printf(TLOG_ERR, "Error: bridge %s: TLS handshake with %s failed: bridge_require_ocsp: %s.",
                       br->cfg->name, c->peer, ocsp);
        else
            log_printf(TLOG_ERR, "Error: bridge %s: TLS handshake with %s failed.", br->cfg->name, c->peer);
        conn_close(c, NULL);
    }
}

void bridge_on_event(conn_t *c)
{
    bridge_t *br = bridge_of(c);
    const struct tombo_bridge *cfg = br->cfg;
    if (c->bridge == BRIDGE_CONN_TLS) {
        tls_progress(br, c);
        return;
    }
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err) {
        log_printf(TLOG_NOTICE, "Bridge %s: connection to %s failed: %s.", cfg->name, c->peer, strerror(err));
        br->next_ai = 1;
        conn_close(c, NULL);
        return;
    }
    if (!br->ctx) {
        send_connect(br, c);
        return;
    }
    char msg[TLS_ERR_MAX];
    if (!tls_conn_start_client(c, br->ctx, cfg->addrs[br->addr].host, cfg->insecure, msg, sizeof(msg))) {
        log_printf(TLOG_ERR, "Error: bridge %s: TLS to %s: %s.", cfg->name, c->peer, msg);
        conn_close(c, NULL);
        return;
    }
    c->bridge = BRIDGE_CONN_TLS;
    tls_progress(br, c); /* the ClientHello */
}

/* ---- the remote's packets ---- */

static void send_topics(bridge_t *br, conn_t *c)
{
    const struct tombo_bridge *cfg = br->cfg;
    for (int i = 0; i < cfg->n_topics; i++) {
        const struct tombo_bridge_topic *t = &cfg->topics[i];
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        if (--br->next_pid < 32768)
            br->next_pid = 65535;
        p.id = br->next_pid;
        mqtt_bytes_t f = {(const uint8_t *)t->remote_topic, (uint32_t)strlen(t->remote_topic)};
        if (t->dir & BRIDGE_IN) {
            mqtt_sub_t e = {.filter = f, .qos = t->qos};
            if (c->version == MQTT_V5) {
                e.no_local = 1;
                e.retain_as_published = 1;
            }
            p.type = MQTT_SUBSCRIBE;
            p.subscribe.list = &e;
            p.subscribe.count = 1;
            conn_send(c, &p);
        } else if (cfg->attempt_unsubscribe) {
            /* Clean what an earlier configuration may have subscribed on a persistent remote
             * session (bridge_attempt_unsubscribe, as Mosquitto). */
            p.type = MQTT_UNSUBSCRIBE;
            p.unsubscribe.list = &f;
            p.unsubscribe.count = 1;
            conn_send(c, &p);
        }
    }
}

static uint8_t on_connack(bridge_t *br, conn_t *c, mqtt_packet_t *p)
{
    const struct tombo_bridge *cfg = br->cfg;
    if (p->type != MQTT_CONNACK)
        return MQTT_RC_PROTOCOL_ERROR;
    bool v5 = c->version == MQTT_V5;
    if (p->reason != 0) {
        const char *why;
        if (v5) {
            why = mqtt_rc_message(p->reason);
        } else {
            static const char *const v3[] = {"accepted", "unacceptable protocol version", "identifier rejected",
                                             "broker unavailable", "bad user name or password", "not authorised"};
            why = p->reason < 6 ? v3[p->reason] : "unknown return code";
        }
        log_printf(TLOG_ERR, "Error: bridge %s: connection refused by %s: %s (%u).", cfg->name, c->peer, why, p->reason);
        conn_close(c, NULL);
        return MQTT_RC_SUCCESS;
    }
    uint32_t inflight_max = broker_settings(br->b)->max_inflight_messages;
    if (v5) {
        const mqtt_props_t *pr = &p->props;
        if ((pr->has & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) && (inflight_max == 0 || pr->receive_max < inflight_max))
            inflight_max = pr->receive_max;
        if (pr->has & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE))
            c->max_packet_out = pr->max_packet_size;
    }
    /* local_username names the local session (seen by the HTTP API); with no listener's auth, the
     * bridge's local side is not ACL-checked, as in Mosquitto 2.0 (docs/bridges.md). */
    session_login_t login = {.expiry = UINT32_MAX, .inflight_max = inflight_max,
                             .username = cfg->local_username ? strdup(cfg->local_username) : NULL};
    session_holder_t old;
    if (session_attach(br->s, c, &login, false, &old) != SESSION_ATTACHED) {
        free(login.username);
        log_printf(TLOG_ERR, "Error: bridge %s: a client is connected with its local_clientid %s.", cfg->name,
                   cfg->local_clientid);
        conn_close(c, NULL);
        return MQTT_RC_SUCCESS;
    }
    session_hold(br->s);
    c->session = br->s;
    c->state = CONN_ACTIVE;
    c->keepalive = cfg->keepalive;
    if (v5 && (p->props.has & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)))
        c->keepalive = p->props.server_keep_alive;
    wheel_schedule(c);
    br->state = BR_UP;
    br->was_up = 1;
    br->backoff = cfg->restart_base;
    br->last_ping = br->last_activity = c->w->now;
    log_printf(TLOG_NOTICE, "Bridge %s connected to %s as %s.", cfg->name, c->peer, cfg->remote_clientid);
    send_topics(br, c);
    notify(br, true, true);
    session_resend(br->s, c);
    session_flush(br->s, c);
    return MQTT_RC_SUCCESS;
}

uint8_t bridge_on_packet(conn_t *c, mqtt_packet_t *p)
{
    bridge_t *br = bridge_of(c);
    if (c->state == CONN_NEW)
        return on_connack(br, c, p);
    switch (p->type) {
    case MQTT_PUBLISH: {
        br->last_activity = c->w->now;
        mqtt_bytes_t t = remap(br, p->publish.topic, false);
        if (!t.p) {
            log_printf(TLOG_NOTICE, "Bridge %s: dropped a message on %.*s: remapped, its topic is too long.",
                       br->cfg->name, (int)p->publish.topic.len, (const char *)p->publish.topic.p);
            if (p->publish.qos) { /* acknowledged, so the remote does not send it again */
                mqtt_packet_t a = {.type = p->publish.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, .id = p->id};
                conn_send(c, &a);
            }
            return MQTT_RC_SUCCESS;
        }
        p->publish.topic = t;
        return handle_publish(c, p);
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_ack(c, p);
    case MQTT_SUBACK:
        for (uint32_t i = 0; i < p->suback.codes.len; i++)
            if (p->suback.codes.p[i] >= 0x80)
                log_printf(TLOG_WARNING, "Warning: bridge %s: the remote %s refused a subscription (%s).",
                           br->cfg->name, c->peer, mqtt_rc_message(p->suback.codes.p[i]));
        return MQTT_RC_SUCCESS;
    case MQTT_UNSUBACK:
    case MQTT_PINGRESP:
        return MQTT_RC_SUCCESS;
    case MQTT_DISCONNECT:
        log_printf(TLOG_NOTICE, "Bridge %s: the remote %s disconnected it (%s).", br->cfg->name, c->peer,
                   mqtt_rc_message(p->reason));
        conn_close(c, NULL);
        return MQTT_RC_SUCCESS;
    default:
        return MQTT_RC_PROTOCOL_ERROR; /* CONNACK again, or a packet only a client sends */
    }
}

void bridge_on_close(conn_t *c)
{
    bridge_t *br = bridge_of(c);
    if (br->c != c)
        return;
    br->c = NULL;
    const struct tombo_bridge *cfg = br->cfg;
    bool stopping = atomic_load(&br->b->stop);
    if (br->was_up) {
        if (!stopping)
            notify(br, false, false);
        log_printf(TLOG_NOTICE, "Bridge %s: disconnected from %s.", cfg->name, c->peer);
    }
    if (stopping) {
        br->state = BR_STOPPED;
        return;
    }
    if (br->next_ai && br->ai && br->ai->ai_next) { /* the same name's next address */
        br->next_ai = 0;
        br->ai = br->ai->ai_next;
        connect_next(br);
        return;
    }
    br->next_ai = 0;
    free_res(br);
    if (!br->was_up) {
        attempt_failed(br);
        return;
    }
    if (cfg->start_type == BRIDGE_ONCE) {
        br->state = BR_STOPPED;
        log_printf(TLOG_NOTICE, "Bridge %s stopped (start_type once).", cfg->name);
        return;
    }
    if (cfg->round_robin)
        br->addr = (br->addr + 1) % cfg->n_addrs;
    else
        br->addr = 0; /* back to the main address */
    wait_for(br, cfg->start_type == BRIDGE_LAZY ? 0 : br->backoff);
}

/* ---- the worker's tick ---- */

static void tick_one(bridge_t *br)
{
    worker_t *w = br->w;
    const struct tombo_bridge *cfg = br->cfg;
    if (atomic_load_explicit(&br->login_refused, memory_order_relaxed) &&
        (br->state == BR_CONNECTING || br->state == BR_UP || br->state == BR_WAIT)) {
        if (br->c) {
            if (br->state == BR_UP) {
                mqtt_packet_t p = {.type = MQTT_DISCONNECT};
                conn_send(br->c, &p);
                br->c->got_disconnect = 1;
            }
            conn_close(br->c, NULL); /* bridge_on_close: BR_WAIT, where it stays while refused */
        }
        return;
    }
    switch (br->state) {
    case BR_INIT:
        bridge_setup(br);
        br->backoff = cfg->restart_base;
        br->state = BR_WAIT;
        br->next_at = 0;
        if (cfg->notifications)
            notify(br, false, false);
        break;
    case BR_WAIT:
        if (w->now < br->next_at)
            break;
        if (cfg->start_type == BRIDGE_LAZY && atomic_load(&br->s->backlog_n) < cfg->threshold)
            break;
        start_resolve(br);
        break;
    case BR_RESOLVING: {
        if (!atomic_load_explicit(&br->resolved, memory_order_acquire))
            break;
        if (br->resolver_running) {
            pthread_join(br->resolver, NULL);
            br->resolver_running = 0;
        }
        if (br->gai_rc != 0) {
            log_printf(TLOG_ERR, "Error: bridge %s: resolving %s: %s.", cfg->name, cfg->addrs[br->addr].host,
                       gai_strerror(br->gai_rc));
            free_res(br);
            attempt_failed(br);
            break;
        }
        start_connect(br);
        break;
    }
    case BR_UP: {
        conn_t *c = br->c;
        if (c->keepalive && w->now - br->last_ping >= (int64_t)c->keepalive * 1000) { /* Server Keep Alive may set it */
            mqtt_packet_t p = {.type = MQTT_PINGREQ};
            conn_send(c, &p);
            br->last_ping = w->now;
        }
        if (cfg->start_type == BRIDGE_LAZY && w->now - br->last_activity >= (int64_t)cfg->idle_timeout * 1000 &&
            atomic_load(&br->s->backlog_n) == 0) {
            log_printf(TLOG_NOTICE, "Bridge %s: idle for %u s, stopping it (start_type lazy).", cfg->name,
                       cfg->idle_timeout);
            mqtt_packet_t p = {.type = MQTT_DISCONNECT};
            conn_send(c, &p);
            c->got_disconnect = 1;
            conn_close(c, NULL);
        }
        break;
    }
    default:
        break;
    }
}

void bridges_tick(worker_t *w)
{
    broker_t *b = w->b;
    for (int i = 0; i < b->n_bridges; i++)
        if (b->bridges[i].w == w)
            tick_one(&b->bridges[i]);
}

/* ---- the local side's password ---- */

/* Do the broker's password checks (password_file or auth plugins, of any listener's set with
 * per_listener_settings) accept the bridge's local_username/local_password? *checked: whether any
 * set checks passwords at all; with none, local_password means nothing (as in Mosquitto). */
static bool local_login_ok(broker_t *b, const struct tombo_bridge *cfg, bool *checked)
{
    *checked = false;
    int n = b->cfg.per_listener_settings ? b->cfg.n_listeners : (b->cfg.n_listeners > 0);
    for (int i = 0; i < n; i++) {
        const auth_t *a = b->auth[i];
        if (!auth_has_password_file(a) && !plugin_set_has_basic_auth(auth_plugins(a)))
            continue;
        *checked = true;
        if (auth_connect_client(a, false, NULL, (const uint8_t *)cfg->local_username, strlen(cfg->local_username),
                                true, (const uint8_t *)cfg->local_password, strlen(cfg->local_password),
                                true) == MQTT_RC_SUCCESS)
            return true;
    }
    return !*checked;
}

/* Start-up: a bridge whose local_password the password checks refuse does not start (nor the
 * broker): a password that is configured is either checked or said to be unused. */
static int check_local_login(broker_t *b, const struct tombo_bridge *cfg)
{
    if (!cfg->local_password)
        return 0;
    bool checked;
    if (local_login_ok(b, cfg, &checked)) {
        if (!checked)
            log_printf(TLOG_WARNING, "Warning: %s: bridge %s: local_password is not used: no password_file or "
                                     "auth plugin checks it (Mosquitto ignores it too).", cfg->where, cfg->name);
        return 0;
    }
    log_printf(TLOG_ERR, "Error: %s: bridge %s: local_username %s with local_password is refused by the "
                         "password_file (or auth plugin): the bridge's local side would not be allowed to log in.",
               cfg->where, cfg->name, cfg->local_username);
    return -1;
}

void bridges_reload(broker_t *b)
{
    for (int i = 0; i < b->n_bridges; i++) {
        bridge_t *br = &b->bridges[i];
        const struct tombo_bridge *cfg = br->cfg;
        if (!cfg->local_password)
            continue;
        bool checked, refused = !local_login_ok(b, cfg, &checked);
        bool was = atomic_exchange(&br->login_refused, refused);
        if (refused && !was)
            log_printf(TLOG_ERR, "Error: %s: bridge %s: local_username %s with local_password is refused by the "
                                 "reloaded password_file (or auth plugin): the bridge stops until a reload "
                                 "accepts it.", cfg->where, cfg->name, cfg->local_username);
        else if (!refused && was)
            log_printf(TLOG_NOTICE, "Bridge %s: local_username %s is accepted again: the bridge starts.", cfg->name,
                       cfg->local_username);
    }
}

/* ---- lifetime ---- */

int bridges_init(broker_t *b)
{
    b->n_bridges = b->cfg.n_bridges;
    if (!b->n_bridges)
        return 0;
    b->bridges = xcalloc((size_t)b->n_bridges, sizeof(bridge_t));
    for (int i = 0; i < b->n_bridges; i++) {
        bridge_t *br = &b->bridges[i];
        br->cfg = &b->cfg.bridges[i];
        br->b = b;
        br->w = &b->workers[i % b->n_workers];
        br->lst.max_qos = 2;
        br->lst.max_connections = -1;
        br->lst.allow_anonymous = 1;
        br->lst.origin = br->cfg->where;
        br->next_pid = 65535;
        br->seed = (unsigned)(b->started_ms ^ (i * 2654435761u));
        br->scratch = xmalloc(TOPIC_SCRATCH);
        const struct tombo_bridge *cfg = br->cfg;
        atomic_init(&br->login_refused, false);
        if (check_local_login(b, cfg) != 0)
            return -1;
        if (!tombo_bridge_tls(cfg))
            continue;
        tls_options_t o = {.cafile = cfg->cafile, .capath = cfg->capath, .certfile = cfg->certfile,
                           .keyfile = cfg->keyfile, .tls_version = cfg->tls_version, .insecure = cfg->insecure,
                           .alpn = cfg->alpn, .psk_identity = cfg->identity, .psk_key = cfg->psk,
                           .require_ocsp = cfg->require_ocsp};
        char err[TLS_ERR_MAX];
        br->ctx = tls_client_ctx(&o, err, sizeof(err));
        if (!br->ctx) {
            log_printf(TLOG_ERR, "Error: %s: bridge %s: %s", cfg->where, cfg->name, err);
            return -1;
        }
    }
    return 0;
}

void bridges_free(broker_t *b)
{
    for (int i = 0; i < b->n_bridges; i++) {
        bridge_t *br = &b->bridges[i];
        if (br->resolver_running)
            pthread_join(br->resolver, NULL); /* getaddrinfo ends within the resolver's timeouts */
        free_res(br);
        if (br->s)
            session_release(br->s);
        SSL_CTX_free(br->ctx);
        free(br->scratch);
    }
    free(b->bridges);
    b->bridges = NULL;
    b->n_bridges = 0;
}
