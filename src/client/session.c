/* session.c -- the MQTT session as the client sees it: CONNECT and CONNACK, the ordered list of
 * outgoing publishes (in-flight window, waiting messages, offline queue), their acknowledgement
 * flows (PUBACK; PUBREC/PUBREL/PUBCOMP) and retransmission with DUP when a session resumes. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "alias.h"
#include "auth.h"
#include "base/clock.h"
#include "log.h"
#include "net.h"
#include "props.h"
#include "reconnect.h"
#include "subs.h"

tombo_err_t session_send_connect(tombo_client_t *c)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.connect.version = (uint8_t)c->opts.version;
    p.connect.clean = c->opts.clean_start;
    p.connect.keepalive = (uint16_t)c->keepalive;
    const char *id = c->client_id ? c->client_id : "";
    p.connect.client_id.p = (const uint8_t *)id;
    p.connect.client_id.len = (uint32_t)strlen(id);
    if (c->connect_props)
        p.props = c->connect_props->mp;
    if (c->opts.session_expiry) {
        p.props.session_expiry = c->opts.session_expiry;
        p.props.has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    }
    if (c->opts.receive_max) {
        p.props.receive_max = c->opts.receive_max;
        p.props.has |= MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
    }
    if (c->opts.max_packet_size) {
        p.props.max_packet_size = c->opts.max_packet_size;
        p.props.has |= MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
    }
    if (c->opts.topic_alias_max) {
        p.props.topic_alias_max = c->opts.topic_alias_max;
        p.props.has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX);
    }
    if (c->opts.will_topic) {
        p.connect.will = 1;
        p.connect.will_qos = (uint8_t)c->opts.will_qos;
        p.connect.will_retain = c->opts.will_retain;
        p.connect.will_topic.p = (const uint8_t *)c->opts.will_topic;
        p.connect.will_topic.len = (uint32_t)strlen(c->opts.will_topic);
        p.connect.will_payload.p = c->opts.will_payload;
        p.connect.will_payload.len = (uint32_t)c->opts.will_payload_len;
        if (c->will_props)
            p.connect.will_props = c->will_props->mp;
    }
    if (c->opts.username) {
        p.connect.has_username = 1;
        p.connect.username.p = (const uint8_t *)c->opts.username;
        p.connect.username.len = (uint32_t)strlen(c->opts.username);
    }
    tombo_err_t ae = auth_connect_props(c, &p.props);
    if (ae != TOMBO_OK)
        return ae;
    if (c->opts.password && !c->opts.auth_method) { /* with SCRAM the password is never sent */
        p.connect.has_password = 1;
        p.connect.password.p = (const uint8_t *)c->opts.password;
        p.connect.password.len = (uint32_t)c->opts.password_len;
    }
    c->connect_sent_ms = (uint64_t)now_ms();
    return net_send_packet(c, &p);
}

static void unlink_msg(tombo_client_t *c, omsg_t *prev, omsg_t *m)
{
    if (prev)
        prev->next = m->next;
    else
        c->head = m->next;
    if (c->tail == m)
        c->tail = prev;
}

void session_free_msgs(tombo_client_t *c)
{
    omsg_t *m = c->head;
    while (m) {
        omsg_t *n = m->next;
        free(m);
        m = n;
    }
    c->head = c->tail = NULL;
    c->inflight = c->queued = 0;
}

static size_t window(const tombo_client_t *c)
{
    size_t w = c->opts.max_inflight > 0 ? (size_t)c->opts.max_inflight : 65535;
    if (c->server_receive_max && c->server_receive_max < w)
        w = c->server_receive_max;
    return w;
}

static void send_pubrel(tombo_client_t *c, uint16_t mid, uint8_t reason)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBREL;
    p.id = mid;
    p.reason = reason;
    net_send_packet(c, &p);
}

/* Send waiting messages, in order, while the window allows. Only once CONNACK accepted us. */
void session_pump(tombo_client_t *c)
{
    if (c->state != CS_CONNECTED)
        return;
    omsg_t *prev = NULL, *m = c->head;
    while (m) {
        if (m->state != OM_QUEUED) {
            prev = m;
            m = m->next;
            continue;
        }
        if (m->qos > 0 && c->inflight >= window(c))
            break;
        if (c->server_max_packet && m->len > c->server_max_packet) {
            /* Queued before we knew the broker's limit: it can never be sent. */
            omsg_t *n = m->next;
            uint16_t mid = m->mid;
            unlink_msg(c, prev, m);
            free(m);
            c->queued--;
            client_log(c, TOMBO_LOG_WARNING, "message %u dropped: larger than the broker's maximum packet size",
                       mid);
            if (c->on_publish)
                c->on_publish(c, c->user, mid, MQTT_RC_PACKET_TOO_LARGE, &props_empty);
            m = n;
            continue;
        }
        uint16_t alias;
        bool topic_sent;
        if (alias_send_publish(c, m->data, m->len, &alias, &topic_sent) != TOMBO_OK)
            break;
        if (alias)
            client_log(c, TOMBO_LOG_DEBUG, "Client %s sending PUBLISH (d%d, q%d, r%d, m%u, alias %u%s)",
                       c->client_id ? c->client_id : "", (m->data[0] >> 3) & 1, m->qos, m->data[0] & 1, m->mid,
                       alias, topic_sent ? " with topic" : "");
        else
            client_log(c, TOMBO_LOG_DEBUG, "Client %s sending PUBLISH (d%d, q%d, r%d, m%u, %zu bytes)",
                       c->client_id ? c->client_id : "", (m->data[0] >> 3) & 1, m->qos, m->data[0] & 1, m->mid,
                       m->len);
        c->queued--;
        if (m->qos == 0) {
            omsg_t *n = m->next;
            if (c->done0_n == c->done0_cap) {
                size_t cap = c->done0_cap ? c->done0_cap * 2 : 16;
                uint16_t *d = realloc(c->done0, cap * sizeof(*d));
                if (d) {
                    c->done0 = d;
                    c->done0_cap = cap;
                }
            }
            if (c->done0_n < c->done0_cap)
                c->done0[c->done0_n++] = m->mid;
            unlink_msg(c, prev, m);
            free(m);
            m = n;
            continue;
        }
        m->state = m->qos == 1 ? OM_WAIT_PUBACK : OM_WAIT_PUBREC;
        c->inflight++;
        prev = m;
        m = m->next;
    }
}

/* on_publish for QoS 0 messages handed to the socket (called by the loop, outside publish). */
void session_report_done0(tombo_client_t *c)
{
    if (!c->done0_n || c->out.len != c->out.off)
        return;
    /* Report the ones present now; callbacks may append more (realloc: re-read c->done0). */
    size_t k = c->done0_n, i;
    unsigned gen = c->gen;
    for (i = 0; i < k && i < c->done0_n && gen == c->gen; i++)
        if (c->on_publish)
            c->on_publish(c, c->user, c->done0[i], 0, &props_empty);
    if (i >= c->done0_n) {
        c->done0_n = 0;
        return;
    }
    memmove(c->done0, c->done0 + i, (c->done0_n - i) * sizeof(*c->done0));
    c->done0_n -= i;
}

/* A session resumes: re-send in-flight messages with their ids, DUP set, and PUBRELs
 * [MQTT-4.4.0-1]. A new session: the broker knows none of them, so they start over (without DUP);
 * those already released (waiting for PUBCOMP) were delivered and are complete. */
static void resume_inflight(tombo_client_t *c, bool session_present)
{
    omsg_t *prev = NULL, *m = c->head;
    c->inflight = 0;
    while (m) {
        omsg_t *n = m->next;
        if (m->state == OM_QUEUED) {
            prev = m;
            m = n;
            continue;
        }
        if (!session_present) {
            if (m->state == OM_WAIT_PUBCOMP) {
                uint16_t mid = m->mid;
                unlink_msg(c, prev, m);
                free(m);
                if (c->on_publish)
                    c->on_publish(c, c->user, mid, 0, &props_empty);
                m = n;
                continue;
            }
            m->data[0] &= (uint8_t)~0x08;
            m->state = OM_QUEUED;
            c->queued++;
        } else if (m->state == OM_WAIT_PUBCOMP) {
            send_pubrel(c, m->mid, 0);
            c->inflight++;
        } else {
            /* The stored bytes carry the full topic and no alias: the mapping of the old
             * connection is gone [MQTT-3.3.2-7]. */
            m->data[0] |= 0x08;
            net_send_bytes(c, m->data, m->len);
            client_log(c, TOMBO_LOG_DEBUG, "Client %s sending PUBLISH (d1, q%d, m%u) again", c->client_id,
                       m->qos, m->mid);
            c->inflight++;
        }
        prev = m;
        m = n;
    }
}

void session_on_connack(tombo_client_t *c, const mqtt_packet_t *p)
{
    tombo_props_t view;
    props_view(&view, &p->props);
    bool sp = p->connack.session_present;
    client_log(c, TOMBO_LOG_DEBUG, "Client %s received CONNACK (%d)", c->client_id ? c->client_id : "", p->reason);
    if (p->reason != 0) {
        if (c->on_connect)
            c->on_connect(c, c->user, p->reason, sp, &view);
        if (c->fd >= 0)
            conn_lost(c, TOMBO_ERR_CONN_REFUSED, p->reason, &view);
        return;
    }
    unsigned gen = c->gen;
    c->state = CS_CONNECTED;
    c->ping_sent_ms = 0;
    const mqtt_props_t *mp = &p->props;
    c->server_receive_max = (mp->has & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) ? mp->receive_max : 0;
    c->server_max_packet = (mp->has & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE)) ? mp->max_packet_size : 0;
    c->server_max_qos = (mp->has & MQTT_HAS(MQTT_PROP_MAX_QOS)) ? mp->max_qos : 2;
    c->server_retain = (mp->has & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE)) ? mp->retain_available : 1;
    c->server_keepalive = (mp->has & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) ? mp->server_keep_alive : -1;
    if ((mp->has & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID)) && mp->assigned_client_id.len) {
        char *id = malloc(mp->assigned_client_id.len + 1);
        if (id) {
            memcpy(id, mp->assigned_client_id.p, mp->assigned_client_id.len);
            id[mp->assigned_client_id.len] = 0;
            free(c->client_id);
            c->client_id = id;
        }
    }
    if (alias_out_init(c, (mp->has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) ? mp->topic_alias_max : 0) != TOMBO_OK)
        client_log(c, TOMBO_LOG_WARNING, "out of memory: no topic aliases on this connection");
    if (!sp) {
        memset(c->qos2_in, 0, sizeof(c->qos2_in));
        c->qos2_in_n = 0;
    }
    resume_inflight(c, sp);
    bool renew = !sp && c->was_connected && c->opts.resubscribe;
    c->was_connected = true;
    reconnect_reset(c);
    if (renew)
        subs_resubscribe(c);
    if (c->on_connect)
        c->on_connect(c, c->user, 0, sp, &view);
    if (gen != c->gen)
        return;
    session_pump(c);
}

static omsg_t *find_msg(tombo_client_t *c, uint16_t mid, int state, omsg_t **prevp)
{
    omsg_t *prev = NULL;
    for (omsg_t *m = c->head; m; prev = m, m = m->next)
        if (m->mid == mid && m->state == state) {
            *prevp = prev;
            return m;
        }
    return NULL;
}

static void complete(tombo_client_t *c, omsg_t *prev, omsg_t *m, int reason, const mqtt_props_t *mp)
{
    uint16_t mid = m->mid;
    unlink_msg(c, prev, m);
    free(m);
    c->inflight--;
    tombo_props_t view;
    props_view(&view, mp);
    if (c->on_publish)
        c->on_publish(c, c->user, mid, reason, &view);
}

/* PUBACK, PUBREC, PUBCOMP, PUBREL, SUBACK, UNSUBACK. */
void session_ack(tombo_client_t *c, const mqtt_packet_t *p)
{
    omsg_t *prev, *m;
    unsigned gen = c->gen;
    tombo_props_t view;
    props_view(&view, &p->props);
    const char *id = c->client_id ? c->client_id : "";
    switch (p->type) {
    case MQTT_PUBACK:
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received PUBACK (Mid: %u, RC:%d)", id, p->id, p->reason);
        if ((m = find_msg(c, p->id, OM_WAIT_PUBACK, &prev)))
            complete(c, prev, m, p->reason, &p->props);
        break;
    case MQTT_PUBREC:
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received PUBREC (Mid: %u)", id, p->id);
        if ((m = find_msg(c, p->id, OM_WAIT_PUBREC, &prev))) {
            if (p->reason >= 0x80) {
                complete(c, prev, m, p->reason, &p->props);
                break;
            }
            m->state = OM_WAIT_PUBCOMP;
            send_pubrel(c, p->id, 0);
        } else if (!find_msg(c, p->id, OM_WAIT_PUBCOMP, &prev)) {
            send_pubrel(c, p->id, c->opts.version == MQTT_V5 ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
        } else {
            send_pubrel(c, p->id, 0);
        }
        break;
    case MQTT_PUBCOMP:
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received PUBCOMP (Mid: %u)", id, p->id);
        if ((m = find_msg(c, p->id, OM_WAIT_PUBCOMP, &prev)))
            complete(c, prev, m, p->reason, &p->props);
        break;
    case MQTT_PUBREL: {
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received PUBREL (Mid: %u)", id, p->id);
        bool known = c->qos2_in[p->id >> 3] & (1u << (p->id & 7));
        c->qos2_in[p->id >> 3] &= (uint8_t) ~(1u << (p->id & 7));
        if (known)
            c->qos2_in_n--;
        mqtt_packet_t a;
        memset(&a, 0, sizeof(a));
        a.type = MQTT_PUBCOMP;
        a.id = p->id;
        a.reason = (!known && c->opts.version == MQTT_V5) ? MQTT_RC_PACKET_ID_NOT_FOUND : 0;
        net_send_packet(c, &a);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        client_log(c, TOMBO_LOG_DEBUG, "Client %s received %s", id, mqtt_type_name(p->type));
        int n = (int)p->suback.codes.len;
        const uint8_t *codes = p->suback.codes.p;
        if (p->type == MQTT_SUBACK && c->on_subscribe)
            c->on_subscribe(c, c->user, p->id, n, codes, &view);
        else if (p->type == MQTT_UNSUBACK && c->on_unsubscribe)
            c->on_unsubscribe(c, c->user, p->id, n, codes, &view);
        break;
    }
    default:
        break;
    }
    if (gen == c->gen)
        session_pump(c);
}

/* Next free packet id (never 0, skipping ids of messages still in the list). */
uint16_t session_next_mid(tombo_client_t *c)
{
    for (int tries = 0; tries < 65536; tries++) {
        c->last_mid = (uint16_t)(c->last_mid + 1);
        if (c->last_mid == 0)
            c->last_mid = 1;
        bool used = false;
        for (omsg_t *m = c->head; m && !used; m = m->next)
            used = m->mid == c->last_mid && m->qos > 0;
        if (!used)
            return c->last_mid;
    }
    return c->last_mid;
}
