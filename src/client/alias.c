/* alias.c -- MQTT 5 topic aliases the client assigns to the topics it publishes, and the one
 * function that writes an outgoing PUBLISH (with or without an alias) to the output buffer.
 *
 * Design: a message is encoded once, at tombo_publish, with its full topic and no alias, because
 * aliases belong to one network connection [MQTT-3.3.2-7] and the message may be sent on a later
 * one (offline queue, retransmission after a reconnect). When it is written to a connection whose
 * CONNACK allowed aliases and the user asked for them (options.send_topic_alias_max), the stored
 * bytes are decoded by the shared codec and re-encoded with a Topic Alias: the topic and the alias
 * the first time a topic is sent on this connection, the alias alone (an empty topic) afterwards.
 *
 * Replacement: least recently used. Aliases 1..max are handed out in order; once all are taken, the
 * topic sent least recently gives its alias to the new topic (the PUBLISH carries the topic and
 * the alias, which rebinds it [MQTT-3.3.2-12]). A workload cycling over more topics than aliases
 * then pays 3 bytes per message over no aliases at all; a steady set of hot topics pays the
 * topic once per connection.
 *
 * A retransmitted PUBLISH (DUP) always carries its full topic and no alias: it is only ever sent
 * on a new connection, and a broker that already has the message may handle it apart from the
 * stream of new ones. A packet that would exceed the broker's Maximum Packet Size with the alias
 * added is sent without one.
 *
 * Table: entries indexed by alias (1..max), a hash chain per bucket for lookup by topic, and a
 * doubly linked recency list. All under the client's lock; reset with every new connection. */
#include "alias.h"

#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "net.h"

struct alias_ent {
    char *topic;           /* owned copy, NULL while the alias is unused */
    uint32_t len, hash;
    uint16_t chain;        /* next alias in the same hash bucket, 0 = end */
    uint16_t prev, next;   /* recency list: prev is more recent, 0 = end */
};

void alias_out_reset(tombo_client_t *c)
{
    alias_out_t *t = &c->alias_out;
    if (t->ent)
        for (uint32_t a = 1; a <= t->max; a++)
            free(t->ent[a].topic);
    free(t->ent);
    free(t->bucket);
    memset(t, 0, sizeof(*t));
}

tombo_err_t alias_out_init(tombo_client_t *c, uint16_t broker_max)
{
    alias_out_reset(c);
    uint16_t max = c->opts.send_topic_alias_max < broker_max ? c->opts.send_topic_alias_max : broker_max;
    if (c->opts.version != MQTT_V5 || max == 0)
        return TOMBO_OK;
    alias_out_t *t = &c->alias_out;
    uint32_t nb = 16;
    while (nb < max)
        nb *= 2;
    t->ent = calloc((size_t)max + 1, sizeof(*t->ent));
    t->bucket = calloc(nb, sizeof(*t->bucket));
    if (!t->ent || !t->bucket) {
        alias_out_reset(c); /* no aliases on this connection rather than none at all */
        return TOMBO_ERR_NOMEM;
    }
    t->max = max;
    t->mask = nb - 1;
    return TOMBO_OK;
}

static void lru_unlink(alias_out_t *t, uint16_t a)
{
    struct alias_ent *e = &t->ent[a];
    if (e->prev)
        t->ent[e->prev].next = e->next;
    else
        t->head = e->next;
    if (e->next)
        t->ent[e->next].prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = 0;
}

static void lru_push_front(alias_out_t *t, uint16_t a)
{
    struct alias_ent *e = &t->ent[a];
    e->prev = 0;
    e->next = t->head;
    if (t->head)
        t->ent[t->head].prev = a;
    t->head = a;
    if (!t->tail)
        t->tail = a;
}

static uint16_t find(const alias_out_t *t, const uint8_t *topic, uint32_t len, uint32_t h)
{
    for (uint16_t a = t->bucket[h & t->mask]; a; a = t->ent[a].chain) {
        const struct alias_ent *e = &t->ent[a];
        if (e->hash == h && e->len == len && !memcmp(e->topic, topic, len))
            return a;
    }
    return 0;
}

/* The alias a new topic would get: the next unused one, or the least recently used. */
static uint16_t victim(const alias_out_t *t)
{
    return t->used < t->max ? (uint16_t)(t->used + 1) : t->tail;
}

/* Bind alias a to topic, dropping what it was bound to. False on out-of-memory (a unchanged). */
static bool bind_alias(alias_out_t *t, uint16_t a, const uint8_t *topic, uint32_t len, uint32_t h)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    memcpy(copy, topic, len);
    copy[len] = 0;
    struct alias_ent *e = &t->ent[a];
    if (e->topic) {
        for (uint16_t *pp = &t->bucket[e->hash & t->mask]; *pp; pp = &t->ent[*pp].chain)
            if (*pp == a) {
                *pp = e->chain;
                break;
            }
        lru_unlink(t, a);
        free(e->topic);
    } else {
        t->used++;
    }
    e->topic = copy;
    e->len = len;
    e->hash = h;
    e->chain = t->bucket[h & t->mask];
    t->bucket[h & t->mask] = a;
    lru_push_front(t, a);
    return true;
}

/* Write one outgoing PUBLISH (the stored full-topic encoding `data`) to the output buffer, with
 * a topic alias when this connection uses them (see the design note). *alias_used gets the alias
 * sent (0: none) and *topic_sent whether the topic name went on the wire, for the debug log.
 * Lock held. Returns what net_send_bytes returns (NO_CONN, NOMEM). */
tombo_err_t alias_send_publish(tombo_client_t *c, const uint8_t *data, size_t len, uint16_t *alias_used,
                               bool *topic_sent)
{
    alias_out_t *t = &c->alias_out;
    *alias_used = 0;
    *topic_sent = true;
    if (!t->max || (data[0] & 0x08))
        return net_send_bytes(c, data, len);
    mqtt_header_t h;
    mqtt_packet_t p;
    if (mqtt_header_parse(data, len, &h) != 1 ||
        mqtt_decode(&h, data + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS ||
        (p.props.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
        return net_send_bytes(c, data, len); /* not ours to alias (cannot happen: we encoded it) */
    const uint8_t *topic = p.publish.topic.p;
    uint32_t tl = p.publish.topic.len, hash = fnv1a32(topic, tl);
    uint16_t a = find(t, topic, tl, hash);
    bool known = a != 0;
    if (!known)
        a = victim(t);
    p.props.has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.props.topic_alias = a;
    if (known)
        p.publish.topic.len = 0;
    size_t n = mqtt_encoded_len(&p, MQTT_V5);
    if (!known && c->server_max_packet && n > c->server_max_packet)
        return net_send_bytes(c, data, len);
    tombo_err_t e = buf_reserve(&c->out, n);
    if (e != TOMBO_OK)
        return e;
    if (!known && !bind_alias(t, a, topic, tl, hash))
        return net_send_bytes(c, data, len);
    if (known && t->head != a) {
        lru_unlink(t, a);
        lru_push_front(t, a);
    }
    c->out.len += mqtt_encode(&p, MQTT_V5, c->out.p + c->out.len);
    *alias_used = a;
    *topic_sent = !known;
    return TOMBO_OK;
}
