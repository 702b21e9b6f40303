/* handle_publish.c -- PUBLISH from a client and the QoS 1/2 acknowledgements in both directions.
 * Routing the accepted message to its subscribers is route.c's. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/cluster_js.h"
#include "broker/conn.h"
#include "broker/route.h"
#include "broker/worker.h"
#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/plugin.h"
#include "broker/log.h"
#include "broker/mount.h"
#include "broker/store.h"
#include "mqtt/topic.h"

static void send_ack(conn_t *c, uint8_t type, uint16_t id, uint8_t reason)
{
    mqtt_packet_t a;
    memset(&a, 0, sizeof(a));
    a.type = type;
    a.id = id;
    a.reason = reason;
    conn_hold_durable(c); /* with persistence: sent once what it acknowledges is committed */
    conn_send(c, &a);
}

/* Resolve an MQTT 5 topic alias [MQTT-3.3.2-12..3.3.2-13]: remember a new mapping, or look the
 * topic up. Returns a reason code. */
static uint8_t resolve_alias(conn_t *c, mqtt_packet_t *p)
{
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->topic_alias_max_in)
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    if (!c->aliases_in) {
        c->aliases_in = xcalloc((size_t)c->topic_alias_max_in + 1, sizeof(char *));
        c->aliases_in_len = xcalloc((size_t)c->topic_alias_max_in + 1, sizeof(uint16_t));
    }
    if (p->publish.topic.len > 0) {
        free(c->aliases_in[a]);
        c->aliases_in[a] = xstrndup((const char *)p->publish.topic.p, p->publish.topic.len);
        c->aliases_in_len[a] = (uint16_t)p->publish.topic.len;
    } else {
        if (!c->aliases_in[a])
            return MQTT_RC_PROTOCOL_ERROR; /* an alias the client never set */
        p->publish.topic = (mqtt_bytes_t){(const uint8_t *)c->aliases_in[a], c->aliases_in_len[a]};
    }
    return MQTT_RC_SUCCESS;
}

/* May this PUBLISH go to a $SYS topic? Only from bridges (see handle_publish). */
static bool sys_allowed(const conn_t *c, const mqtt_packet_t *p)
{
    static const char conn_prefix[] = "$SYS/broker/connection/";
    size_t n = sizeof(conn_prefix) - 1;
    return c->bridge || c->peer_bridge ||
           (p->publish.topic.len > n && memcmp(p->publish.topic.p, conn_prefix, n) == 0);
}

static uint8_t publish_mounted(conn_t *c, mqtt_packet_t *p);

/* A PUBLISH to $CONTROL/...: to the plugin that registered its topic, if one did (plugin.h), on
 * the auth thread (the callback may be slow). The client's user name is copied out of the session. */
static bool control_publish(conn_t *c, const mqtt_packet_t *p)
{
    broker_t *b = c->w->b;
    plugin_set_t *ps = auth_plugins(b->auth[c->l - b->cfg.listeners]);
    if (!plugin_control_handles(ps, p->publish.topic.p, p->publish.topic.len))
        return false;
    session_t *s = c->session;
    char *user = session_username_dup(s);
    struct mosquitto who = {.id = s->client_id, .username = user, .protocol_version = c->version,
                            .keepalive = c->keepalive, .websockets = c->ws != NULL};
    authq_t *aq = atomic_load_explicit(&b->authq, memory_order_acquire);
    if (aq)
        authq_submit_control(aq, ps, &who, p->publish.topic.p, p->publish.topic.len, p->publish.payload.p,
                             p->publish.payload.len, p->publish.qos, p->publish.retain != 0);
    else /* no auth thread could be started (broker.c): as Mosquitto, on this thread */
        plugin_control(ps, &who, p->publish.topic.p, p->publish.topic.len, p->publish.payload.p,
                       p->publish.payload.len, p->publish.qos, p->publish.retain != 0);
    free(user);
    return true;
}

/* MOSQ_EVT_MESSAGE (plugin.h), for a client's PUBLISH the ACL let through: the plugins may change
 * its topic, payload and retain flag, or refuse it. Returns PLUGIN_MSG_OK with *m what to route
 * (free m->topic, and m->payload when it is not p's), PLUGIN_MSG_DENIED, or PLUGIN_MSG_ERROR. */
static int message_plugins(conn_t *c, plugin_set_t *ps, const mqtt_packet_t *p, struct plugin_msg *m)
{
    session_t *s = c->session;
    char *user = session_username_dup(s);
    char addr[64];
    conn_address(c, addr, sizeof(addr));
    struct mosquitto who = {.id = s->client_id, .username = user, .address = addr, .protocol_version = c->version,
                            .keepalive = c->keepalive, .websockets = c->ws != NULL};
    char *topic = xstrndup((const char *)p->publish.topic.p, p->publish.topic.len);
    *m = (struct plugin_msg){topic, (void *)p->publish.payload.p, p->publish.payload.len, p->publish.qos,
                             p->publish.retain != 0, false};
    int rc = plugin_message(ps, &who, m);
    free(user);
    const char *why = NULL;
    if (m->properties_set)
        why = "set MQTT 5 properties, which tombo does not support yet";
    else if (!m->topic || !mqtt_topic_name_valid((const uint8_t *)m->topic, strlen(m->topic)) ||
             strlen(m->topic) > 65535)
        why = "made the topic invalid";
    else if (!m->payload && m->payloadlen)
        why = "gave a payload length without a payload";
    if (why && rc == PLUGIN_MSG_OK) {
        log_printf(TLOG_ERR, "Error: a plugin %s for the PUBLISH from %s to %.*s; the message is refused.", why,
                   s->client_id, (int)p->publish.topic.len, (const char *)p->publish.topic.p);
        rc = PLUGIN_MSG_DENIED;
    }
    if (rc != PLUGIN_MSG_OK) {
        free(m->topic);
        if (m->payload != (void *)p->publish.payload.p)
            free(m->payload);
        m->topic = NULL;
        m->payload = NULL;
    }
    return rc;
}

uint8_t handle_publish(conn_t *c, mqtt_packet_t *p)
{
    worker_t *w = c->w;
    bool v5 = c->version == MQTT_V5;
    stat_add(&w->msgs_in[p->publish.qos > 2 ? 2 : p->publish.qos], 1);
    stat_add(&w->pub_bytes_in, p->publish.payload.len);

    if (v5 && (p->props.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS))) {
        uint8_t rc = resolve_alias(c, p);
        if (rc)
            return rc;
    } else if (p->publish.topic.len == 0) {
        return v5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.2-1] */
    }
    /* mount_point: the client's topic lives under the listener's prefix. */
    uint8_t mbuf[512];
    int mowned = 0;
    if (c->l->mount_point) {
        size_t mn;
        uint8_t *t = mount_add(c->l, false, p->publish.topic.p, p->publish.topic.len, mbuf, sizeof(mbuf), &mn, &mowned);
        if (!t)
            return v5 ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_MALFORMED_PACKET;
        p->publish.topic = (mqtt_bytes_t){t, (uint32_t)mn};
    }
    uint8_t rc = publish_mounted(c, p);
    if (mowned)
        free((void *)p->publish.topic.p);
    return rc;
}

/* handle_publish once the topic is the one the broker routes. */
static uint8_t publish_mounted(conn_t *c, mqtt_packet_t *p)
{
    worker_t *w = c->w;
    broker_t *b = w->b;
    session_t *s = c->session;
    uint8_t qos = p->publish.qos;
    bool v5 = c->version == MQTT_V5;
    if (qos > c->l->max_qos)
        return MQTT_RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-11] */
    const settings_t *set = broker_settings(b);
    if (p->publish.retain && !set->retain_available)
        return MQTT_RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-14] */

    /* Receive Maximum: QoS 2 messages awaiting PUBREL count against what we announced
     * [MQTT-3.3.4-7]; QoS 1 is acknowledged at once. 3.1.1 has no such limit: its clients are
     * never told one. */
    if (qos == 2 && v5 && c->receive_max_in) {
        bool dup;
        uint32_t pending = session_qos2_pending(s, p->id, &dup);
        if (!dup && pending >= c->receive_max_in)
            return MQTT_RC_RECEIVE_MAX_EXCEEDED;
    }

    uint8_t reason = MQTT_RC_SUCCESS;
    bool accept = true;
    if (set->message_size_limit && p->publish.payload.len > set->message_size_limit) {
        /* Not forwarded, but the QoS flow completes (Mosquitto's message_size_limit). */
        log_printf(TLOG_NOTICE, "Client %s: PUBLISH to %.*s dropped: payload of %u bytes exceeds message_size_limit.",
                   s->client_id, (int)p->publish.topic.len, (const char *)p->publish.topic.p, p->publish.payload.len);
        accept = false;
        reason = MQTT_RC_IMPL_SPECIFIC;
        stat_add(&w->pub_dropped, 1);
    }
    if (accept && w->mem_over) {
        /* memory_limit: the message is not taken. 5.0 says so in the PUBACK/PUBREC (QoS 0 is
         * dropped, counted); 3.1.1 has no way to, so the client is disconnected, as Mosquitto
         * drops a client whose allocation fails its memory_limit. */
        if (!v5)
            return MQTT_RC_QUOTA_EXCEEDED;
        accept = false;
        reason = MQTT_RC_QUOTA_EXCEEDED;
        stat_add(&w->pub_dropped, 1);
    }
    if (accept && p->publish.topic.len >= 4 && memcmp(p->publish.topic.p, "$SYS", 4) == 0 && !sys_allowed(c, p)) {
        /* $SYS belongs to the broker: clients cannot publish there. Bridges may: ours bring in
         * another broker's $SYS, other brokers' bridges announce themselves (try_private), and any
         * bridge publishes its state under $SYS/broker/connection/ (docs/bridges.md). */
        accept = false;
        reason = MQTT_RC_NOT_AUTHORIZED;
    }
    /* The ACL, when there is one; without, no lock is taken on this path. */
    if (accept && !c->bridge && auth_has_acl(b->auth[c->l - b->cfg.listeners])) { /* bridges: no ACL */
        if (!session_acl_write(s, p->publish.topic.p, p->publish.topic.len,
                               &(auth_msg_t){p->publish.payload.p, p->publish.payload.len, p->publish.qos,
                                             p->publish.retain != 0})) {
            log_printf(TLOG_DEBUG, "Denied PUBLISH from %s to %.*s.", s->client_id, (int)p->publish.topic.len,
                       (const char *)p->publish.topic.p);
            accept = false;
            reason = MQTT_RC_NOT_AUTHORIZED;
        }
    }
    /* With persistence, the QoS 2 id and every durable copy of the message commit together: a
     * crash between them would either lose the message (id kept, so the client's resend is taken
     * for a duplicate) or deliver it twice (copies kept, id lost). */
    store_t *st = qos > 0 ? b->store : NULL;
    store_group_begin(st);
    if (qos == 2 && !session_qos2_begin(s, p->id))
        accept = false; /* a retransmission of a message we already have: ack it, do not deliver twice */

    /* $CONTROL/...: a plugin's control topic (MOSQ_EVT_CONTROL, e.g. the dynamic-security plugin's
     * $CONTROL/dynamic-security/v1) takes the message instead of the subscribers, as in Mosquitto. */
    if (accept && p->publish.topic.len > 9 && memcmp(p->publish.topic.p, "$CONTROL/", 9) == 0 && !c->bridge &&
        control_publish(c, p)) {
        accept = false;
    }
    /* MOSQ_EVT_MESSAGE: only when a plugin registered for it (one atomic load otherwise). */
    struct plugin_msg pm = {NULL, NULL, 0, 0, false, false};
    uint8_t close_rc = MQTT_RC_SUCCESS;
    if (accept && !c->bridge) {
        plugin_set_t *ps = auth_plugins(b->auth[c->l - b->cfg.listeners]);
        if (plugin_set_has_message(ps)) {
            int prc = message_plugins(c, ps, p, &pm);
            if (prc != PLUGIN_MSG_OK) {
                log_printf(TLOG_DEBUG, "Denied PUBLISH from %s to %.*s (plugin).", s->client_id,
                           (int)p->publish.topic.len, (const char *)p->publish.topic.p);
                accept = false;
                reason = MQTT_RC_NOT_AUTHORIZED;
                if (prc == PLUGIN_MSG_ERROR)
                    close_rc = MQTT_RC_UNSPECIFIED; /* Mosquitto closes the connection */
            }
        }
    }
    bool routed = accept;
    if (accept) {
        mqtt_bytes_t topic = p->publish.topic, payload = p->publish.payload;
        bool retain = p->publish.retain;
        if (pm.topic) { /* through the plugins: what they left */
            topic = (mqtt_bytes_t){(const uint8_t *)pm.topic, (uint32_t)strlen(pm.topic)};
            payload = (mqtt_bytes_t){pm.payload, pm.payloadlen};
            retain = pm.retain && set->retain_available;
        }
        msg_t *m = msg_new(topic, payload, qos, retain, v5 ? &p->props : NULL, w->now);
        size_t n = route_publish_give(w, m, s, c); /* our reference goes to the last receiver */
        if (n == 0 && v5 && qos > 0 && reason == MQTT_RC_SUCCESS)
            reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
        if (pm.topic) {
            free(pm.topic);
            if (pm.payload != (void *)p->publish.payload.p)
                free(pm.payload);
        }
    }
    store_group_end(st);
    if (close_rc != MQTT_RC_SUCCESS) {
        if (qos == 2)
            session_qos2_end(s, p->id);
        return close_rc;
    }
    /* cluster_durability jetstream: a message for other nodes is acknowledged once JetStream has
     * it (cluster_js.c), and the acknowledgements after it wait for it. */
    if (qos > 0 && b->cluster_js &&
        cluster_js_take_ack(b->cluster_js, c, routed, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->id, reason))
        return MQTT_RC_SUCCESS;
    if (qos == 1)
        send_ack(c, MQTT_PUBACK, p->id, reason);
    else if (qos == 2)
        send_ack(c, MQTT_PUBREC, p->id, reason);
    if (qos == 2 && reason >= 0x80)
        session_qos2_end(s, p->id); /* a failed PUBREC ends the flow [MQTT-4.3.3-?] */
    return MQTT_RC_SUCCESS;
}

uint8_t handle_ack(conn_t *c, mqtt_packet_t *p)
{
    session_t *s = c->session;
    switch (p->type) {
    case MQTT_PUBACK:
        if (!session_puback(s, p->id))
            log_printf(TLOG_DEBUG, "Client %s: PUBACK for unknown id %u.", s->client_id, p->id);
        break;
    case MQTT_PUBREC: {
        bool failed = c->version == MQTT_V5 && p->reason >= 0x80;
        if (session_pubrec(s, p->id, failed)) {
            if (!failed)
                send_ack(c, MQTT_PUBREL, p->id, MQTT_RC_SUCCESS);
        } else if (!failed) {
            /* [MQTT-4.3.3-?] answer so the client can finish its flow */
            send_ack(c, MQTT_PUBREL, p->id, c->version == MQTT_V5 ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
        }
        break;
    }
    case MQTT_PUBREL: {
        bool had = session_qos2_end(s, p->id);
        send_ack(c, MQTT_PUBCOMP, p->id, had || c->version != MQTT_V5 ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND);
        return MQTT_RC_SUCCESS;
    }
    case MQTT_PUBCOMP:
        session_pubcomp(s, p->id);
        break;
    }
    session_flush(s, c); /* a freed window slot lets queued messages go */
    return MQTT_RC_SUCCESS;
}
