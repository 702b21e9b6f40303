/* handle_subscribe.c -- SUBSCRIBE (with retained-message delivery per Retain Handling) and
 * UNSUBSCRIBE. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "broker/log.h"
#include "broker/mount.h"
#include "mqtt/topic.h"

/* Retained messages go to one new subscription; collected by retain_match. */
struct retained_ctx {
    worker_t *w;
    session_t *s;
    uint8_t qos;
    uint32_t sub_id;
    int64_t now;
};

/* check_retain_source: may the message's publisher still write its topic under the ACL in force
 * and its plugins (which a reload may have changed since)? As Mosquitto's retain__process: a message with no
 * source (the broker's own, a bridge's) is not checked. */
static bool source_may_write(const retain_src_t *src, const msg_t *msg)
{
    if (!src || !auth_has_acl(src->auth))
        return true;
    auth_msg_t am = {msg->payload.p, msg->payload.len, msg->qos, true};
    if (auth_acl_msg(src->auth, src->client_id, src->username, msg->topic.p, msg->topic.len, AUTH_WRITE, &am))
        return true;
    log_printf(TLOG_DEBUG, "Retained message on %.*s not sent: its publisher %s may no longer write it "
               "(check_retain_source).", (int)msg->topic.len, (const char *)msg->topic.p, src->client_id);
    return false;
}

static void deliver_retained(void *m, const retain_src_t *src, void *arg)
{
    struct retained_ctx *x = arg;
    msg_t *msg = m;
    const settings_t *set = broker_settings(x->w->b);
    if (!msg_expired(msg, x->now) && (!set->check_retain_source || source_may_write(src, msg))) {
        uint8_t qos = msg->qos < x->qos && !set->upgrade_outgoing_qos ? msg->qos : x->qos;
        /* [MQTT-3.3.1-8] a retained message sent for a new subscription has RETAIN set */
        session_deliver(x->w, x->s, msg, qos, 1, &x->sub_id, x->sub_id ? 1 : 0);
    }
    msg_release(msg);
}

uint8_t handle_subscribe(conn_t *c, mqtt_packet_t *p)
{
    broker_t *b = c->w->b;
    session_t *s = c->session;
    bool v5 = c->version == MQTT_V5;
    uint32_t sub_id = (p->props.has & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) ? p->props.sub_id : 0;

    uint8_t codes[256];
    uint8_t *rc = p->subscribe.count <= sizeof(codes) ? codes : xmalloc(p->subscribe.count);
    /* Retained messages are sent after the SUBACK; remember which subscriptions want them. */
    struct pending { const uint8_t *f; uint32_t n; uint8_t qos; } *want = xmalloc(p->subscribe.count * sizeof(*want));
    uint32_t n_want = 0, i = 0;

    uint8_t **mounted = NULL; /* mount_point: the prefixed filters, freed at the end */
    uint32_t n_mounted = 0;
    if (c->l->mount_point)
        mounted = xcalloc(p->subscribe.count, sizeof(*mounted));

    mqtt_bytes_t cur = p->subscribe.entries;
    mqtt_sub_t e;
    while (mqtt_sub_next(c->version, &cur, &e)) {
        if (mounted) {
            size_t mn;
            int owned;
            uint8_t *f = mount_add(c->l, true, e.filter.p, e.filter.len, NULL, 0, &mn, &owned);
            if (!f) {
                rc[i++] = v5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
                continue;
            }
            mounted[n_mounted++] = f;
            e.filter = (mqtt_bytes_t){f, (uint32_t)mn};
        }
        const uint8_t *group, *plain;
        size_t gn, pn;
        bool shared = mqtt_share_split(e.filter.p, e.filter.len, &group, &gn, &plain, &pn);
        if (shared && e.no_local) {
            for (uint32_t k = 0; k < n_mounted; k++)
                free(mounted[k]);
            free(mounted);
            free(want);
            if (rc != codes)
                free(rc);
            return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-4] */
        }
        /* An ACL under which nothing the filter matches is readable: refused, not granted for
         * nothing (auth.h, AUTH_SUBSCRIBE). */
        const uint8_t *af = shared ? plain : e.filter.p; /* $share/group/F: the ACL sees F */
        size_t an = shared ? pn : e.filter.len;
        if (!auth_acl(s->auth, s->client_id, s->username, af, an, AUTH_SUBSCRIBE)) {
            rc[i++] = v5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            log_printf(TLOG_NOTICE, "Denied SUBSCRIBE from %s to '%.*s' by the ACL (or a plugin)",
                       s->client_id, (int)e.filter.len, (const char *)e.filter.p);
            continue;
        }
        uint8_t qos = e.qos > c->l->max_qos ? (uint8_t)c->l->max_qos : e.qos;
        uint8_t options = (uint8_t)((e.options & ~0x03) | qos);
        if (c->peer_bridge)
            options |= 0x04 | 0x08; /* a 3.1.1 bridge (try_private): no-local, retain-as-published, as Mosquitto */
        int r = subtree_add(b->subs, e.filter.p, e.filter.len, s, options, sub_id);
        if (r < 0) {
            rc[i++] = v5 ? MQTT_RC_UNSPECIFIED : 0x80;
            continue;
        }
        session_sub_add(s, e.filter.p, e.filter.len, options, sub_id);
        rc[i++] = qos;
        if (log_enabled(TLOG_SUBSCRIBE))
            log_printf(TLOG_SUBSCRIBE, "%s %d %.*s", s->client_id, qos, (int)e.filter.len, (const char *)e.filter.p);
        /* Retain Handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11];
         * never for shared subscriptions [MQTT-3.8.4-?]. */
        if (!shared && (e.retain_handling == 0 || (e.retain_handling == 1 && r == 0)))
            want[n_want++] = (struct pending){e.filter.p, e.filter.len, qos};
    }

    mqtt_packet_t ack;
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_SUBACK;
    ack.id = p->id;
    ack.suback.codes = (mqtt_bytes_t){rc, i};
    conn_hold_durable(c); /* with persistence: the subscriptions are committed first */
    conn_send(c, &ack);

    for (uint32_t k = 0; k < n_want; k++) {
        struct retained_ctx x = {c->w, s, want[k].qos, sub_id, c->w->now};
        retain_match(b->retained, want[k].f, want[k].n, deliver_retained, &x);
    }
    for (uint32_t k = 0; k < n_mounted; k++)
        free(mounted[k]);
    free(mounted);
    free(want);
    if (rc != codes)
        free(rc);
    return MQTT_RC_SUCCESS;
}

uint8_t handle_unsubscribe(conn_t *c, mqtt_packet_t *p)
{
    broker_t *b = c->w->b;
    session_t *s = c->session;
    uint8_t codes[256];
    uint8_t *rc = p->unsubscribe.count <= sizeof(codes) ? codes : xmalloc(p->unsubscribe.count);
    uint32_t i = 0;
    mqtt_bytes_t cur = p->unsubscribe.entries, f;
    while (mqtt_unsub_next(&cur, &f)) {
        uint8_t mbuf[512];
        int mowned = 0;
        if (c->l->mount_point) {
            size_t mn;
            uint8_t *m = mount_add(c->l, true, f.p, f.len, mbuf, sizeof(mbuf), &mn, &mowned);
            if (!m) {
                rc[i++] = MQTT_RC_TOPIC_FILTER_INVALID;
                continue;
            }
            f = (mqtt_bytes_t){m, (uint32_t)mn};
        }
        /* MOSQ_ACL_UNSUBSCRIBE for plugins (auth.h); $share/group/F: the ACL sees F, as for SUBSCRIBE. */
        const uint8_t *group, *plain;
        size_t gn, pn;
        bool shared = mqtt_share_split(f.p, f.len, &group, &gn, &plain, &pn);
        if (!auth_acl_msg(s->auth, s->client_id, s->username, shared ? plain : f.p, shared ? pn : f.len,
                          AUTH_UNSUBSCRIBE, NULL)) {
            rc[i++] = MQTT_RC_NOT_AUTHORIZED; /* 3.1.1's UNSUBACK has no codes: the 5.0 one only */
            if (mowned)
                free((void *)f.p);
            continue;
        }
        bool had = subtree_remove(b->subs, f.p, f.len, s);
        session_sub_remove(s, f.p, f.len);
        rc[i++] = had ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        if (log_enabled(TLOG_UNSUBSCRIBE))
            log_printf(TLOG_UNSUBSCRIBE, "%s %.*s", s->client_id, (int)f.len, (const char *)f.p);
        if (mowned)
            free((void *)f.p);
    }
    mqtt_packet_t ack;
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_UNSUBACK;
    ack.id = p->id;
    ack.suback.codes = (mqtt_bytes_t){rc, i};
    conn_hold_durable(c);
    conn_send(c, &ack);
    if (rc != codes)
        free(rc);
    return MQTT_RC_SUCCESS;
}
