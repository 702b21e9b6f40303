/* conn_close.c -- the end of a connection: failing it with a reason code, closing it, detaching it
 * from its session (will, session end or expiry), lingering to drain its input, and freeing it.
 *
 * Design: a closed connection is not freed at once: its fd is closed and it goes on the worker's
 * flush list, which frees it at the end of the loop turn, once nothing on the stack can refer to it
 * (conn_free). A connection closed after a reason code lingers: its write side is shut and its input
 * drained (conn_drain) so the client reads the reason instead of a reset. */
#include "base/buf.h"
#include "base/slab.h"
#include "broker/conn.h"
#include "base/mem.h"
#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/bridge.h"
#include "broker/broker.h"
#include "broker/worker.h"
#include "broker/log.h"
#include "broker/store.h"
#include "broker/wheel.h"
#include "broker/will.h"
#include "pwhash/scram.h"

/* ---- errors and close ---- */

/* The MQTT 3.1.1 CONNACK return code for a v5 reason code, or -1 when there is none (just close). */
static int connack_v3_code(uint8_t rc)
{
    switch (rc) {
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return MQTT_CONNACK_BAD_PROTOCOL;
    case MQTT_RC_CLIENT_ID_NOT_VALID: return MQTT_CONNACK_ID_REJECTED;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY: return MQTT_CONNACK_UNAVAILABLE;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return MQTT_CONNACK_BAD_CREDENTIALS;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED: return MQTT_CONNACK_NOT_AUTHORIZED;
    default: return -1;
    }
}

void conn_fail(conn_t *c, uint8_t rc, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    const char *id = c->session ? c->session->client_id : "";
    log_printf(TLOG_NOTICE, "Client %s [%s] disconnected: %s (%s).", *id ? id : "<unknown>", c->peer, why,
               mqtt_rc_message(rc));
    if (c->state == CONN_NEW && !c->bridge) {
        /* CONNECT was refused. An unsupported protocol level gets the 3.1.1-form answer, as the
         * client may not speak 5.0 [MQTT-3.1.2-2]. */
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_CONNACK;
        if (c->version == MQTT_V5 && rc != MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            p.reason = rc;
            conn_send(c, &p);
        } else {
            int v3 = connack_v3_code(rc);
            if (v3 >= 0) {
                uint8_t ver = c->version;
                c->version = MQTT_V311;
                p.reason = (uint8_t)v3;
                conn_send(c, &p);
                c->version = ver;
            }
        }
    } else if (c->version == MQTT_V5 && rc >= 0x80) {
        /* A session taken over while a QoS 2 PUBLISH to it waits for its packet id to be durable
         * (cluster takes, tests/broker/test_cluster.py's stalled node) got no DISCONNECT. */
        conn_drop_held(c);
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        p.reason = rc;
        conn_send(c, &p);
    }
    c->linger = outq_pending(&c->out) > 0; /* the client should read what we answered */
    c->close_rc = rc;
    conn_close(c, NULL);
}

void conn_free(conn_t *c)
{
    if (c->tr && c->tr->close)
        c->tr->close(c); /* normally done by conn_close already (idempotent) */
    connect_req_free(c->pending);
    free(c->auth_method_name);
    if (c->scram) {
        scram_server_clear(c->scram);
        free(c->scram);
    }
    buf_free(&c->in);
    outq_free(&c->out);
    free(c->holds);
    conn_free_aliases(c);
    mem_free_counted(c, sizeof(*c));
}

/* Close the fd and forget it; the connection is freed at the end of the loop turn, once nothing
 * on the stack can still refer to it. */
static void conn_release_fd(conn_t *c)
{
    worker_t *w = c->w;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->fd < w->conns_cap && w->conns[c->fd] == c)
        w->conns[c->fd] = NULL;
    close(c->fd);
    c->fd = -1;
    c->draining = 0;
    wheel_unlink(c);
    conn_want_flush(c);
}

/* MOSQ_EVT_DISCONNECT for the plugins of the connection's listener (plugin.h), with the MOSQ_ERR_
 * code Mosquitto's do_disconnect() gets for the same end. */
static void plugins_disconnect(conn_t *c, session_t *s)
{
    broker_t *b = c->w->b;
    plugin_set_t *ps = auth_plugins(b->auth[c->l - b->cfg.listeners]);
    authq_t *aq = atomic_load_explicit(&b->authq, memory_order_acquire);
    if (!plugin_set_has_disconnect(ps) || !aq)
        return;
    int reason = c->got_disconnect                                     ? PLUGIN_ERR_SUCCESS
                 : c->close_rc == MQTT_RC_KEEP_ALIVE_TIMEOUT           ? PLUGIN_ERR_KEEPALIVE
                 : c->close_rc == MQTT_RC_ADMINISTRATIVE_ACTION        ? PLUGIN_ERR_ADMINISTRATIVE_ACTION
                 : c->close_rc == MQTT_RC_MALFORMED_PACKET             ? PLUGIN_ERR_MALFORMED_PACKET
                 : c->close_rc == MQTT_RC_PROTOCOL_ERROR               ? PLUGIN_ERR_PROTOCOL
                                                                       : PLUGIN_ERR_CONN_LOST;
    char *user = session_username_dup(s);
    char addr[sizeof(c->peer)];
    conn_address(c, addr, sizeof(addr));
    struct mosquitto who = {.id = s->client_id, .username = user, .address = addr, .protocol_version = c->version,
                            .keepalive = c->keepalive, .websockets = c->ws != NULL};
    authq_submit_disconnect(aq, ps, &who, reason);
    free(user);
}

/* Detach from the session: its will (will.c), then its end or its expiry timer. */
static void conn_detach(conn_t *c)
{
    session_t *s = c->session;
    if (!s)
        return;
    broker_t *b = c->w->b;
    if (c->state == CONN_CLOSED && !c->bridge)
        plugins_disconnect(c, s);
    c->session = NULL;
    uint32_t expiry;
    bool mine = session_detach_conn(s, c, &expiry);
    bool end = mine && expiry == 0;
    will_on_disconnect(c->w, s, mine, c->got_disconnect == 1, end);
    if (end) {
        session_end(s);
    } else if (mine) {
        int64_t at = c->w->now + (int64_t)expiry * 1000;
        session_start_expiry(s, expiry, at);
        if (expiry != UINT32_MAX)
            broker_timer_add(b, at, BT_SESSION_EXPIRY, s);
    }
    session_release(s);
}

void conn_close(conn_t *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    worker_t *w = c->w;
    bool was_active = c->state == CONN_ACTIVE;
    if (why && was_active && broker_settings(c->w->b)->connection_messages) {
        log_printf(TLOG_NOTICE, "Client %s [%s] disconnected: %s.", c->session ? c->session->client_id : "?",
                   c->peer, why);
    }
    /* Best effort: send what is buffered (a CONNACK or DISCONNECT with the reason). */
    if (outq_pending(&c->out) > 0)
        conn_write(c);
    if (c->tr->close)
        c->tr->close(c); /* TLS: close_notify, then the SSL is freed */
    c->state = CONN_CLOSED;
    wheel_unlink(c);
    atomic_fetch_sub_explicit(&w->clients, 1, memory_order_relaxed);
    worker_release_place(c);
    bp_conn_closed(c);
    conn_detach(c);
    if (c->bridge)
        bridge_on_close(c);
    if (c->linger && !atomic_load(&w->b->stop)) {
        /* The fd stays open, its output is shut (FIN after what the kernel holds), and its input
         * is drained until EOF or the budget runs out (conn_drain). */
        shutdown(c->fd, SHUT_WR);
        c->draining = 1;
        c->last_rx = w->now;
        c->out_sent = 0; /* from here on: bytes discarded */
        buf_free(&c->in);
        c->want_write = 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        wheel_schedule(c);
        return;
    }
    conn_release_fd(c);
}


void conn_drain(conn_t *c, bool expired)
{
    while (!expired) {
        ssize_t n = recv(c->fd, c->w->rbuf, 64 * 1024, 0);
        if (n > 0) {
            c->out_sent += (uint64_t)n;
            if (c->out_sent > LINGER_BYTES)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* more may come: wait for it, until the deadline */
        break;      /* EOF or error */
    }
    conn_release_fd(c);
}
