/* handle_connect.c -- CONNECT: protocol level, client identifier, keepalive, session resume or
 * takeover, will, CONNACK with the MQTT 5 limits of this broker. Also DISCONNECT. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "base/mem.h"
#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/plugin.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/conn.h"
#include "broker/will.h"
#include "broker/worker.h"
#include "broker/log.h"
#include "broker/mount.h"
#include "broker/registry.h"
#include "broker/store.h"
#include "broker/wheel.h"
#include "pwhash/scram.h"

/* Topic aliases we accept from each client (CONNACK Topic Alias Maximum), as Mosquitto's default. */


static void assign_client_id(broker_t *b, const listener_settings_t *l, char *out, size_t outlen)
{
    unsigned long n = atomic_fetch_add(&b->auto_id_counter, 1) + 1;
    const char *prefix = l->auto_id_prefix;
    snprintf(out, outlen, "%s%08lX-%04lX", prefix, (unsigned long)(b->started_ms & 0xffffffff), n);
}

/* What a CONNECT asked for, validated and copied out of the read buffer, so that attaching to the
 * session can wait for a session takeover to complete. Owned by the connection (c->pending). */
struct connect_req {
    char *id;
    size_t idlen;
    char *username;     /* NULL: none (or empty) */
    const auth_t *auth;
    msg_t *will;        /* one reference, or NULL */
    uint32_t will_delay;
    uint32_t expiry;
    uint32_t inflight_max;
    uint16_t keepalive;
    uint8_t clean;
    uint8_t assigned;   /* the broker chose the client id (5.0 Assigned Client Identifier) */
    uint8_t server_ka;  /* keepalive was lowered to max_keepalive (5.0 Server Keep Alive) */
    char *auth_final;   /* SCRAM server-final for the CONNACK's Authentication Data, or NULL */
    size_t auth_final_len;
    uint8_t cluster_asked; /* the cluster was asked for the session on another node (once) */
    char *moved_from;   /* the node the session was moved from (cluster.c), or NULL */
};

void connect_req_set_moved(struct connect_req *rq, const char *owner)
{
    free(rq->moved_from);
    rq->moved_from = xstrdup(owner);
}

void connect_req_set_auth_final(struct connect_req *rq, const char *final, size_t n)
{
    free(rq->auth_final);
    rq->auth_final = xmalloc(n + 1); /* a plugin's data may hold any byte */
    memcpy(rq->auth_final, final, n);
    rq->auth_final[n] = '\0';
    rq->auth_final_len = n;
}

const char *connect_req_id(const struct connect_req *rq)
{
    return rq->id;
}

const char *connect_req_username(const struct connect_req *rq)
{
    return rq->username;
}

void connect_req_set_username(struct connect_req *rq, char *name)
{
    free(rq->username);
    rq->username = name;
}

void connect_req_free(struct connect_req *rq)
{
    if (!rq)
        return;
    free(rq->id);
    free(rq->username);
    free(rq->auth_final);
    free(rq->moved_from);
    msg_release(rq->will);
    free(rq);
}

/* Attach c to its session and answer CONNACK. If another connection still holds the session,
 * ask its worker to drain and close it and return without answering: that worker replies with
 * INBOX_TAKEOVER_DONE and connect_resume() calls this again. So the old connection's last packets
 * (a PUBCOMP, a DISCONNECT) are always handled before the new one sees the session. */
static uint8_t connect_attach(conn_t *c)
{
    worker_t *w = c->w;
    broker_t *b = w->b;
    const settings_t *cfg = broker_settings(b);
    struct connect_req *rq = c->pending;
    bool v5 = c->version == MQTT_V5;

    session_login_t login = {.will = rq->will, .username = rq->username, .auth = rq->auth,
                             .will_delay = rq->will_delay, .expiry = rq->expiry, .inflight_max = rq->inflight_max};
    session_holder_t old;
    bool existed;
    if (b->cluster && !rq->clean && !rq->cluster_asked) {
        /* A session that is not here may be on another node: it moves here first (cluster.c).
         * The connection waits, reading nothing; the cluster answers within a bounded time. */
        rq->cluster_asked = 1;
        session_t *here = registry_find(b, rq->id, rq->idlen);
        if (!here) {
            c->waiting = WAIT_CLUSTER;
            cluster_take(b->cluster, w->index, c->fd, c->id, rq->id, rq->idlen);
            return MQTT_RC_SUCCESS;
        }
        session_release(here);
    }
    session_t *s = registry_get(b, rq->id, rq->idlen, &existed);
    int r = session_attach(s, c, &login, existed && rq->clean, &old);
    if (r == SESSION_MOVING) {
        /* Its session is on its way to another cluster node: come back later (there). */
        log_printf(TLOG_NOTICE, "Client %s refused: its session is moving to another cluster node.", rq->id);
        session_release(s);
        return MQTT_RC_SERVER_BUSY;
    }
    if (r == SESSION_STALE) {
        /* [MQTT-3.1.2-4] clean start discards the old session; a will still waiting for its delay
         * goes out as that session ends. */
        will_publish_now(w, s);
        session_end(s);
        session_release(s);
        s = registry_get(b, rq->id, rq->idlen, &existed);
        r = session_attach(s, c, &login, false, &old);
    }
    if (r == SESSION_BUSY) {
        /* Session takeover [MQTT-3.1.4-3]: the old connection gets DISCONNECT 0x8E and is closed
         * by its own worker, which then tells us to go on. */
        inbox_item_t it = {.kind = INBOX_KICK_CONN, .rc = MQTT_RC_SESSION_TAKEN_OVER, .fd = old.fd,
                           .conn_id = old.conn_id, .reply_worker = w->index, .reply_fd = c->fd,
                           .reply_id = c->id};
        session_release(s);
        c->waiting = WAIT_TAKEOVER;
        worker_post(&b->workers[old.worker], &it);
        return MQTT_RC_SUCCESS;
    }
    rq->will = NULL; /* the session's now */
    rq->username = NULL;
    c->session = s; /* the registry_get reference becomes the connection's */
    c->state = CONN_ACTIVE;
    if (b->cluster) { /* client ids are unique cluster-wide */
        cluster_client_connected(b->cluster, s);
        if (rq->moved_from) /* after the store has the whole session (session_attach journaled it) */
            cluster_take_confirm(b->cluster, s, rq->moved_from, b->store ? store_need(b->store) : 0);
    }
    c->keepalive = rq->keepalive;
    c->max_packet_in = cfg->max_packet_size;
    c->receive_max_in = cfg->max_inflight_messages;

    mqtt_packet_t ack;
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_CONNACK;
    ack.connack.session_present = existed && !rq->clean;
    if (v5) {
        mqtt_props_t *pr = &ack.props;
        if (rq->assigned) {
            pr->has |= MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr->assigned_client_id = (mqtt_bytes_t){(const uint8_t *)s->client_id, (uint32_t)s->client_id_len};
        }
        if (cfg->max_inflight_messages && cfg->max_inflight_messages < 65535) {
            pr->has |= MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
            pr->receive_max = (uint16_t)cfg->max_inflight_messages;
        }
        if (c->topic_alias_max_in) { /* absent means 0: no alias may be used [MQTT-3.2.2-17] */
            pr->has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX);
            pr->topic_alias_max = c->topic_alias_max_in;
        }
        if (c->l->max_qos < 2) {
            pr->has |= MQTT_HAS(MQTT_PROP_MAX_QOS);
            pr->max_qos = (uint8_t)c->l->max_qos;
        }
        if (!cfg->retain_available) {
            pr->has |= MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE);
            pr->retain_available = 0;
        }
        if (cfg->max_packet_size) {
            pr->has |= MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
            pr->max_packet_size = cfg->max_packet_size;
        }
        if (rq->server_ka) {
            pr->has |= MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE);
            pr->server_keep_alive = rq->keepalive;
        }
        if (c->auth_method != AUTH_METHOD_NONE) {
            /* [MQTT-4.12.0-5] the CONNECT's method; the SCRAM server-final (or the plugin's data) as its data. */
            const char *method = c->auth_method == AUTH_METHOD_PLUGIN ? c->auth_method_name : SCRAM_METHOD;
            pr->has |= MQTT_HAS(MQTT_PROP_AUTH_METHOD);
            pr->auth_method = (mqtt_bytes_t){(const uint8_t *)method, (uint32_t)strlen(method)};
            if (rq->auth_final) {
                pr->has |= MQTT_HAS(MQTT_PROP_AUTH_DATA);
                pr->auth_data = (mqtt_bytes_t){(const uint8_t *)rq->auth_final, (uint32_t)rq->auth_final_len};
            }
        }
    }
    conn_hold_durable(c); /* with persistence: a persistent session exists once it is committed */
    conn_send(c, &ack);
    atomic_fetch_add(&b->clients_total, 1);
    if (cfg->connection_messages) {
        log_printf(TLOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%d).", c->peer, s->client_id,
                   c->version == MQTT_V31 ? 1 : c->version == MQTT_V311 ? 2 : 5, rq->clean, rq->keepalive);
    }
    connect_req_free(rq);
    c->pending = NULL;
    wheel_schedule(c);

    /* A resumed session gets its in-flight messages again, then what queued while it was away. */
    if (ack.connack.session_present)
        session_resend(s, c);
    session_flush(s, c);
    return MQTT_RC_SUCCESS;
}

uint8_t connect_resume(conn_t *c)
{
    c->waiting = WAIT_NONE;
    return connect_attach(c);
}

uint8_t handle_connect(conn_t *c, mqtt_packet_t *p)
{
    worker_t *w = c->w;
    broker_t *b = w->b;
    const settings_t *cfg = broker_settings(b);
    const listener_settings_t *ls = &cfg->l[c->l - b->cfg.listeners];
    if (c->pending)
        return MQTT_RC_PROTOCOL_ERROR; /* a second CONNECT during enhanced authentication [MQTT-3.1.0-2] */
    c->version = p->connect.version;
    c->peer_bridge = p->connect.bridge && c->version != MQTT_V5;
    bool v5 = c->version == MQTT_V5;
    stat_add(&w->connects, 1);
    if (w->mem_over) {
        /* memory_limit: no new client while the broker holds that much (CONNACK 0x89 on 5.0, 3
         * "server unavailable" on 3.1.1: conn_fail). */
        log_printf(TLOG_NOTICE, "Client [%s] refused: memory_limit of %llu bytes reached.", c->peer,
                   (unsigned long long)cfg->memory_limit);
        return MQTT_RC_SERVER_BUSY;
    }

    /* Client identifier [MQTT-3.1.3-5..8]. */
    char idbuf[96];
    const char *id = (const char *)p->connect.client_id.p;
    size_t idlen = p->connect.client_id.len;
    bool assigned = false;
    if (idlen == 0) {
        if (!ls->allow_zero_length_clientid || c->version == MQTT_V31 || (!v5 && !p->connect.clean))
            return MQTT_RC_CLIENT_ID_NOT_VALID; /* [MQTT-3.1.3-8] */
        assign_client_id(b, ls, idbuf, sizeof(idbuf));
        id = idbuf;
        idlen = strlen(idbuf);
        assigned = true;
    } else if (c->version == MQTT_V31 && idlen > 23) {
        return MQTT_RC_CLIENT_ID_NOT_VALID; /* MQTT 3.1: 1 to 23 characters */
    }
    /* clientid_prefixes (deprecated in Mosquitto, which answers Not authorized as here). */
    if (cfg->clientid_prefixes) {
        size_t pn = strlen(cfg->clientid_prefixes);
        if (idlen < pn || memcmp(id, cfg->clientid_prefixes, pn))
            return MQTT_RC_NOT_AUTHORIZED;
    }

    const auth_t *auth = b->auth[c->l - b->cfg.listeners];

    /* Keepalive, bounded by max_keepalive through Server Keep Alive: an MQTT 5 mechanism only, as
     * Mosquitto's max_keepalive is [MQTT-3.2.2-21]. */
    uint16_t ka = p->connect.keepalive;
    bool server_ka = false;
    if (v5 && cfg->max_keepalive && (ka > cfg->max_keepalive || (ka == 0 && cfg->max_keepalive < 65535))) {
        ka = (uint16_t)cfg->max_keepalive;
        server_ka = true;
    }

    /* MQTT 5 limits the client sets for what we send it. */
    uint32_t client_recv_max = 65535;
    if (v5) {
        const mqtt_props_t *pr = &p->props;
        if (pr->has & MQTT_HAS(MQTT_PROP_RECEIVE_MAX))
            client_recv_max = pr->receive_max;
        if (pr->has & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE))
            c->max_packet_out = pr->max_packet_size;
        if (pr->has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX))
            c->topic_alias_max_out = pr->topic_alias_max > 1024 ? 1024 : pr->topic_alias_max;
        c->request_problem_info = (pr->has & MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO)) ? pr->request_problem_info : 1;
        c->topic_alias_max_in = (uint16_t)c->l->max_topic_alias;
    }
    uint32_t inflight_max = cfg->max_inflight_messages;
    if (inflight_max == 0 || inflight_max > client_recv_max)
        inflight_max = client_recv_max;

    /* Session expiry: 5.0 says it in CONNECT; 3.x sessions live forever unless clean, or for
     * persistent_client_expiration. */
    uint32_t expiry;
    if (v5)
        expiry = (p->props.has & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) ? p->props.session_expiry : 0;
    else if (p->connect.clean)
        expiry = 0;
    else
        expiry = cfg->persistent_client_expiration ? cfg->persistent_client_expiration : UINT32_MAX;

    /* The will, kept on the session until it is published or discarded. */
    msg_t *will = NULL;
    uint32_t will_delay = 0;
    if (p->connect.will) {
        if (p->connect.will_qos > c->l->max_qos)
            return MQTT_RC_QOS_NOT_SUPPORTED;
        if (p->connect.will_retain && !cfg->retain_available)
            return MQTT_RC_RETAIN_NOT_SUPPORTED;
        mqtt_bytes_t topic = p->connect.will_topic;
        uint8_t mbuf[512];
        int mowned = 0;
        if (c->l->mount_point) { /* the will lives under the listener's prefix too */
            size_t mn;
            uint8_t *t = mount_add(c->l, false, topic.p, topic.len, mbuf, sizeof(mbuf), &mn, &mowned);
            if (!t)
                return v5 ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_MALFORMED_PACKET;
            topic = (mqtt_bytes_t){t, (uint32_t)mn};
        }
        will = msg_new(topic, p->connect.will_payload, p->connect.will_qos, p->connect.will_retain,
                       v5 ? &p->connect.will_props : NULL, w->now);
        if (mowned)
            free((void *)topic.p);
        if (v5 && (p->connect.will_props.has & MQTT_HAS(MQTT_PROP_WILL_DELAY)))
            will_delay = p->connect.will_props.will_delay;
    }

    /* use_identity_as_username / use_subject_as_username: the TLS identity (certificate CN or
     * subject, PSK identity) is the username whatever the CONNECT says, and no password is
     * checked, as in Mosquitto; no identity, no entry. */
    char *tls_user = NULL;
    if (c->l->use_identity_as_username || c->l->use_subject_as_username) {
        tls_user = conn_tls_identity(c, c->l->use_subject_as_username);
        if (!tls_user) {
            msg_release(will);
            return MQTT_RC_NOT_AUTHORIZED;
        }
    }

    /* Enhanced authentication (handle_auth.c): the SCRAM user is the user name; a CONNECT User Name,
     * if any, must be the same; a Password is not looked at. */
    char *scram_user = NULL;
    bool by_plugin = false; /* a plugin took the method (MOSQ_EVT_EXT_AUTH_START) */
    struct auth_plugin_answer pa = {0, NULL, 0, NULL, false};
    if (v5 && (p->props.has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) && plugin_set_has_ext_auth(auth_plugins(auth))) {
        uint8_t rc = auth_plugin_start(c, p, id, idlen, &pa);
        if (rc != MQTT_RC_SUCCESS && rc != MQTT_RC_BAD_AUTH_METHOD) {
            free(tls_user);
            msg_release(will);
            return rc;
        }
        by_plugin = rc == MQTT_RC_SUCCESS;
    }
    if (v5 && (p->props.has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) && !by_plugin) {
        uint8_t rc = auth_begin_connect(c, &p->props, &scram_user);
        if (rc == MQTT_RC_SUCCESS && p->connect.has_username && p->connect.username.len &&
            (p->connect.username.len != strlen(scram_user) ||
             memcmp(p->connect.username.p, scram_user, p->connect.username.len) != 0)) {
            log_printf(TLOG_NOTICE, "Client [%s] SCRAM-SHA-256 refused: CONNECT User Name is not the SCRAM user.",
                       c->peer);
            free(scram_user);
            rc = MQTT_RC_NOT_AUTHORIZED;
        }
        if (rc != MQTT_RC_SUCCESS) {
            free(tls_user);
            msg_release(will);
            return rc;
        }
    }

    struct connect_req *rq = xcalloc(1, sizeof(*rq));
    if (scram_user)
        rq->username = scram_user;
    else if (tls_user)
        rq->username = tls_user;
    else if (p->connect.has_username && p->connect.username.len)
        rq->username = xstrndup((const char *)p->connect.username.p, p->connect.username.len);
    /* use_username_as_clientid: the (TLS identity or CONNECT) username is the client id, so a
     * client can only ever take over its own session; no username, no entry, as in Mosquitto. */
    if (c->l->use_username_as_clientid) {
        if (!rq->username) {
            msg_release(will);
            connect_req_free(rq);
            free(pa.data);
            free(pa.username);
            return MQTT_RC_NOT_AUTHORIZED;
        }
        id = rq->username;
        idlen = strlen(rq->username);
    }
    rq->id = xstrndup(id, idlen);
    rq->idlen = idlen;
    rq->auth = auth;
    rq->will = will;
    rq->will_delay = will_delay;
    rq->expiry = expiry;
    rq->inflight_max = inflight_max;
    rq->keepalive = ka;
    rq->clean = p->connect.clean;
    rq->assigned = assigned;
    rq->server_ka = server_ka;
    c->pending = rq;

    /* Authentication: the listener's password file and allow_anonymous. Hashing a password is
     * slow, so that check runs on the auth thread and the CONNECT is answered when it is back
     * (INBOX_AUTH_DONE); the connection reads nothing meanwhile. */
    if (c->scram) {
        auth_send_challenge(c); /* the CONNACK waits for the client-final AUTH */
        return MQTT_RC_SUCCESS;
    }
    if (by_plugin) {
        return auth_plugin_connect(c, &pa); /* no password check after a plugin's, as in Mosquitto */
    }
    if (tls_user)
        return connect_attach(c);
    /* What a Mosquitto plugin may ask about the client (plugin.h): the address without its port. */
    char addr[sizeof(c->peer)];
    conn_address(c, addr, sizeof(addr));
    struct mosquitto who = {.id = rq->id, .address = addr, .protocol_version = c->version, .keepalive = ka,
                            .clean_session = p->connect.clean, .websockets = c->ws != NULL};
    authq_t *aq = atomic_load_explicit(&b->authq, memory_order_acquire);
    if (aq && authq_needed(auth, p->connect.has_username, p->connect.username.len)) {
        authq_submit(aq, w->index, c->fd, c->id, auth, ls->allow_anonymous, &who, p->connect.username.p,
                     p->connect.username.len, p->connect.has_username, p->connect.password.p, p->connect.password.len, p->connect.has_password);
        c->waiting = WAIT_AUTH;
        return MQTT_RC_SUCCESS;
    }
    uint8_t arc = auth_connect_client(auth, ls->allow_anonymous, &who, p->connect.username.p, p->connect.username.len,
                                      p->connect.has_username, p->connect.password.p, p->connect.password.len,
                                      p->connect.has_password);
    if (who.username_changed && arc == MQTT_RC_SUCCESS)
        connect_req_set_username(rq, who.set_username);
    else
        free(who.set_username);
    if (arc != MQTT_RC_SUCCESS)
        return MQTT_RC_NOT_AUTHORIZED; /* the caller fails the connection, which frees c->pending */
    return connect_attach(c);
}

uint8_t handle_disconnect(conn_t *c, mqtt_packet_t *p)
{
    session_t *s = c->session;
    if (c->version == MQTT_V5 && (p->props.has & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY))) {
        if (!session_disconnect_expiry(s, p->props.session_expiry))
            return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.14.2-2] */
    }
    /* 0x04 Disconnect with Will Message keeps the will; anything else discards it [MQTT-3.14.4-3]. */
    c->got_disconnect = (c->version == MQTT_V5 && p->reason == MQTT_RC_DISCONNECT_WITH_WILL) ? 2 : 1;
    conn_close(c, "client disconnected");
    return MQTT_RC_SUCCESS;
}
