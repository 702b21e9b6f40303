/* handle.c -- turns the bytes read from the broker into packets (via the shared codec) and hands
 * each to its handler: PUBLISH delivery (QoS 0/1/2, topic aliases), CONNACK, acks, PINGRESP,
 * DISCONNECT. A protocol violation closes the connection with the reason code the codec gives. */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "net.h"
#include "props.h"
#include "reconnect.h"
#include "session.h"

/* Close with a v5 DISCONNECT carrying `reason` (when the version has one). */
static void protocol_error(tombo_client_t *c, uint8_t reason)
{
    client_log(c, TOMBO_LOG_ERROR, "protocol error from broker: %s", mqtt_rc_message(reason));
    if (c->opts.version == MQTT_V5 && c->fd >= 0) {
        mqtt_packet_t d;
        memset(&d, 0, sizeof(d));
        d.type = MQTT_DISCONNECT;
        d.reason = reason;
        net_send_packet(c, &d);
        net_flush(c);
    }
    conn_lost(c, TOMBO_ERR_PROTOCOL, reason, NULL);
}

static bool set_topic(tombo_client_t *c, const uint8_t *s, size_t n)
{
    if (n + 1 > c->topic_cap) {
        char *t = realloc(c->topic_buf, n + 1);
        if (!t)
            return false;
        c->topic_buf = t;
        c->topic_cap = n + 1;
    }
    memcpy(c->topic_buf, s, n);
    c->topic_buf[n] = 0;
    return true;
}

static void handle_publish(tombo_client_t *c, mqtt_packet_t *p, uint8_t *end)
{
    unsigned gen = c->gen;
    mqtt_bytes_t topic = p->publish.topic;
    if (c->opts.version == MQTT_V5 && (p->props.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS))) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > c->opts.topic_alias_max || !c->aliases) {
            protocol_error(c, MQTT_RC_TOPIC_ALIAS_INVALID);
            return;
        }
        if (topic.len) {
            char *t = malloc(topic.len + 1);
            if (!t) {
                conn_lost(c, TOMBO_ERR_NOMEM, 0, NULL);
                return;
            }
            memcpy(t, topic.p, topic.len);
            t[topic.len] = 0;
            free(c->aliases[a - 1]);
            c->aliases[a - 1] = t;
        } else if (!c->aliases[a - 1]) {
            protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
            return;
        } else {
            topic.p = (const uint8_t *)c->aliases[a - 1];
            topic.len = (uint32_t)strlen(c->aliases[a - 1]);
        }
    } else if (topic.len == 0) {
        protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
        return;
    }
    if (!set_topic(c, topic.p, topic.len)) {
        conn_lost(c, TOMBO_ERR_NOMEM, 0, NULL);
        return;
    }
    uint8_t qos = p->publish.qos;
    client_log(c, TOMBO_LOG_DEBUG, "Client %s received PUBLISH (d%d, q%d, r%d, m%u, '%s', ... (%u bytes))",
               c->client_id ? c->client_id : "", p->publish.dup, qos, p->publish.retain, p->id, c->topic_buf,
               p->publish.payload.len);
    bool deliver = true;
    if (qos == 2) {
        uint8_t bit = (uint8_t)(1u << (p->id & 7));
        if (c->qos2_in[p->id >> 3] & bit) {
            deliver = false; /* a re-sent PUBLISH we already delivered: only acknowledge again */
        } else {
            /* QoS 1 is acknowledged at once, so only QoS 2 awaiting PUBREL counts against the
             * Receive Maximum we announced [MQTT-3.3.4-9]. */
            if (c->opts.version == MQTT_V5 && c->opts.receive_max && c->qos2_in_n >= c->opts.receive_max) {
                protocol_error(c, MQTT_RC_RECEIVE_MAX_EXCEEDED);
                return;
            }
            c->qos2_in[p->id >> 3] |= bit;
            c->qos2_in_n++;
        }
    }
    if (deliver && c->on_message) {
        tombo_props_t view;
        props_view(&view, &p->props);
        tombo_message_t m = {
            .topic = c->topic_buf,
            .payload = p->publish.payload.len ? (const void *)p->publish.payload.p : (const void *)end,
            .payload_len = p->publish.payload.len,
            .qos = qos,
            .retain = p->publish.retain,
            .dup = p->publish.dup,
            .mid = p->id,
            .props = &view,
        };
        /* NUL after the payload for the caller's convenience; buf_reserve keeps a spare byte. */
        uint8_t saved = *end;
        *end = 0;
        c->on_message(c, c->user, &m);
        *end = saved;
        if (gen != c->gen)
            return;
    }
    if (qos > 0) {
        mqtt_packet_t a;
        memset(&a, 0, sizeof(a));
        a.type = qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
        a.id = p->id;
        net_send_packet(c, &a);
    }
}

static void dispatch(tombo_client_t *c, mqtt_packet_t *p, uint8_t *end)
{
    if (c->state == CS_CONNECTING && p->type != MQTT_CONNACK && p->type != MQTT_AUTH) {
        protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
        return;
    }
    switch (p->type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNECTING) {
            protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
            return;
        }
        if (p->reason == 0 && !auth_connack_ok(c, p)) {
            protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
            return;
        }
        session_on_connack(c, p);
        break;
    case MQTT_PUBLISH:
        handle_publish(c, p, end);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        session_ack(c, p);
        break;
    case MQTT_PINGRESP:
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received PINGRESP", c->client_id ? c->client_id : "");
        c->ping_sent_ms = 0;
        break;
    case MQTT_DISCONNECT: {
        tombo_props_t view;
        props_view(&view, &p->props);
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received DISCONNECT (%d)", c->client_id ? c->client_id : "",
                   p->reason);
        conn_lost(c, TOMBO_ERR_SERVER_DISCONNECT, p->reason, &view);
        break;
    }
    case MQTT_AUTH:
        auth_on_auth(c, p);
        break;
    default: /* client-only packets */
        protocol_error(c, MQTT_RC_PROTOCOL_ERROR);
        break;
    }
}

/* Decode and dispatch every complete packet in the input buffer. Stops when a handler (or a
 * callback) closed or replaced the connection: the buffer then belongs to the new one. */
void handle_packets(tombo_client_t *c)
{
    unsigned gen = c->gen;
    tbuf_t *b = &c->in;
    while (c->fd >= 0 && gen == c->gen && b->off < b->len) {
        mqtt_header_t h;
        int r = mqtt_header_parse(b->p + b->off, b->len - b->off, &h);
        if (r == 0)
            break;
        if (r < 0) {
            protocol_error(c, MQTT_RC_MALFORMED_PACKET);
            return;
        }
        size_t total = (size_t)h.header_len + h.remaining;
        if (c->opts.max_packet_size && total > c->opts.max_packet_size) {
            protocol_error(c, MQTT_RC_PACKET_TOO_LARGE);
            return;
        }
        if (b->len - b->off < total) {
            if (buf_reserve(b, total - (b->len - b->off)) != TOMBO_OK)
                conn_lost(c, TOMBO_ERR_NOMEM, 0, NULL);
            break;
        }
        uint8_t *body = b->p + b->off + h.header_len;
        mqtt_packet_t p;
        uint8_t rc = mqtt_decode(&h, body, (uint8_t)c->opts.version, MQTT_FROM_SERVER, &p);
        if (rc != MQTT_RC_SUCCESS) {
            protocol_error(c, rc);
            return;
        }
        b->off += total;
        dispatch(c, &p, body + h.remaining);
    }
    if (gen == c->gen && b->off == b->len)
        b->off = b->len = 0;
}
