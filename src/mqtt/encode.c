/* encode.c -- mqtt_packet_t -> bytes, the exact inverse of decode.c. Lengths are computed first
 * (mqtt_encoded_len), then bytes written in one pass with no bounds checks: the caller provides
 * mqtt_encoded_len() bytes. A PUBLISH costs one property-length pass and a few memcpy calls. */
#include <string.h>

#include "mqtt/wire.h"

/* Property and will-property content lengths of a packet, computed once per encode. */
typedef struct lens {
    size_t props, will_props;
} lens_t;

static size_t sub_list_len(const mqtt_packet_t *p)
{
    if (!p->subscribe.list)
        return p->subscribe.entries.len;
    size_t n = 0;
    for (uint32_t i = 0; i < p->subscribe.count; i++)
        n += 3 + p->subscribe.list[i].filter.len;
    return n;
}

static size_t unsub_list_len(const mqtt_packet_t *p)
{
    if (!p->unsubscribe.list)
        return p->unsubscribe.entries.len;
    size_t n = 0;
    for (uint32_t i = 0; i < p->unsubscribe.count; i++)
        n += 2 + p->unsubscribe.list[i].len;
    return n;
}

static size_t props_block(size_t content) { return (size_t)mqtt_varint_len((uint32_t)content) + content; }

/* The CONNECT level: the packet's own when set, else the connection's. */
static uint8_t connect_level(const mqtt_packet_t *p, uint8_t version)
{
    return p->connect.version ? p->connect.version : version;
}

/* 5.0 acks and DISCONNECT/AUTH use short forms when the reason is 0 and/or there are no properties. */
static size_t body_len(const mqtt_packet_t *p, uint8_t version, lens_t *l)
{
    bool v5 = version == MQTT_V5;
    l->props = l->will_props = 0;
    switch (p->type) {
    case MQTT_CONNECT: {
        uint8_t lv = connect_level(p, version);
        size_t n = (lv == MQTT_V31 ? 8 : 6) + 4 + 2 + p->connect.client_id.len;
        if (lv == MQTT_V5)
            n += props_block(l->props = mqtt_props_len(&p->props));
        if (p->connect.will) {
            if (lv == MQTT_V5)
                n += props_block(l->will_props = mqtt_props_len(&p->connect.will_props));
            n += 4 + p->connect.will_topic.len + p->connect.will_payload.len;
        }
        if (p->connect.has_username)
            n += 2 + p->connect.username.len;
        if (p->connect.has_password)
            n += 2 + p->connect.password.len;
        return n;
    }
    case MQTT_CONNACK:
        return 2 + (v5 ? props_block(l->props = mqtt_props_len(&p->props)) : 0);
    case MQTT_PUBLISH: {
        size_t n = 2 + p->publish.topic.len + (p->publish.qos ? 2 : 0) + p->publish.payload.len;
        if (v5)
            n += props_block(l->props = mqtt_props_len(&p->props));
        return n;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        if (!v5)
            return 2;
        l->props = mqtt_props_len(&p->props);
        if (l->props)
            return 3 + props_block(l->props);
        return p->reason ? 3 : 2;
    case MQTT_SUBSCRIBE:
        return 2 + (v5 ? props_block(l->props = mqtt_props_len(&p->props)) : 0) + sub_list_len(p);
    case MQTT_UNSUBSCRIBE:
        return 2 + (v5 ? props_block(l->props = mqtt_props_len(&p->props)) : 0) + unsub_list_len(p);
    case MQTT_SUBACK:
        return 2 + (v5 ? props_block(l->props = mqtt_props_len(&p->props)) : 0) + p->suback.codes.len;
    case MQTT_UNSUBACK:
        if (!v5)
            return 2;
        return 2 + props_block(l->props = mqtt_props_len(&p->props)) + p->suback.codes.len;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (!v5)
            return 0;
        l->props = mqtt_props_len(&p->props);
        if (l->props)
            return 1 + props_block(l->props);
        if (p->type == MQTT_AUTH)
            return p->reason ? 2 : 0; /* AUTH: reason and property length, or neither */
        return p->reason ? 1 : 0;
    default: /* PINGREQ, PINGRESP */
        return 0;
    }
}

static uint8_t first_byte(const mqtt_packet_t *p)
{
    uint8_t b = (uint8_t)(p->type << 4);
    switch (p->type) {
    case MQTT_PUBLISH:
        return (uint8_t)(b | (p->publish.dup ? 0x08 : 0) | (p->publish.qos & 3) << 1 | (p->publish.retain ? 1 : 0));
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return b | 0x02;
    default:
        return b;
    }
}

size_t mqtt_encoded_len(const mqtt_packet_t *p, uint8_t version)
{
    lens_t l;
    size_t n = body_len(p, version, &l);
    return 1 + (size_t)mqtt_varint_len((uint32_t)n) + n;
}

size_t mqtt_publish_id_offset(const mqtt_packet_t *p, uint8_t version)
{
    lens_t l;
    size_t n = body_len(p, version, &l);
    return 1 + (size_t)mqtt_varint_len((uint32_t)n) + 2 + p->publish.topic.len;
}

/* Subscription options byte: the raw `options` OR-ed with the decoded fields, masked to what the
 * version defines (so a caller may set either). */
static uint8_t sub_options(const mqtt_sub_t *s, uint8_t version)
{
    uint8_t o = s->options | (s->qos & 3);
    if (version != MQTT_V5)
        return o & 3;
    o |= (uint8_t)((s->no_local ? 0x04 : 0) | (s->retain_as_published ? 0x08 : 0) | (s->retain_handling & 3) << 4);
    return o & 0x3F;
}

static uint8_t *wr_raw(uint8_t *o, mqtt_bytes_t b)
{
    if (b.len)
        memcpy(o, b.p, b.len);
    return o + b.len;
}

size_t mqtt_encode(const mqtt_packet_t *p, uint8_t version, uint8_t *out)
{
    lens_t l;
    size_t n = body_len(p, version, &l);
    bool v5 = version == MQTT_V5;
    uint8_t *o = out;
    *o++ = first_byte(p);
    o = wr_varint(o, (uint32_t)n);
    switch (p->type) {
    case MQTT_CONNECT: {
        uint8_t lv = connect_level(p, version);
        if (lv == MQTT_V31)
            o = wr_bin(o, (mqtt_bytes_t){(const uint8_t *)"MQIsdp", 6});
        else
            o = wr_bin(o, (mqtt_bytes_t){(const uint8_t *)"MQTT", 4});
        *o++ = (uint8_t)(p->connect.bridge ? lv | 0x80 : lv);
        uint8_t f = (uint8_t)((p->connect.clean ? 0x02 : 0) | (p->connect.has_password ? 0x40 : 0) |
                              (p->connect.has_username ? 0x80 : 0));
        if (p->connect.will)
            f |= (uint8_t)(0x04 | (p->connect.will_qos & 3) << 3 | (p->connect.will_retain ? 0x20 : 0));
        *o++ = f;
        o = wr_u16(o, p->connect.keepalive);
        if (lv == MQTT_V5)
            o = mqtt_props_write(o, &p->props, l.props);
        o = wr_bin(o, p->connect.client_id);
        if (p->connect.will) {
            if (lv == MQTT_V5)
                o = mqtt_props_write(o, &p->connect.will_props, l.will_props);
            o = wr_bin(o, p->connect.will_topic);
            o = wr_bin(o, p->connect.will_payload);
        }
        if (p->connect.has_username)
            o = wr_bin(o, p->connect.username);
        if (p->connect.has_password)
            o = wr_bin(o, p->connect.password);
        break;
    }
    case MQTT_CONNACK:
        *o++ = p->connack.session_present ? 1 : 0;
        *o++ = p->reason;
        if (v5)
            o = mqtt_props_write(o, &p->props, l.props);
        break;
    case MQTT_PUBLISH:
        o = wr_bin(o, p->publish.topic);
        if (p->publish.qos)
            o = wr_u16(o, p->id);
        if (v5)
            o = mqtt_props_write(o, &p->props, l.props);
        o = wr_raw(o, p->publish.payload);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        o = wr_u16(o, p->id);
        if (n >= 3)
            *o++ = p->reason;
        if (n >= 4)
            o = mqtt_props_write(o, &p->props, l.props);
        break;
    case MQTT_SUBSCRIBE:
        o = wr_u16(o, p->id);
        if (v5)
            o = mqtt_props_write(o, &p->props, l.props);
        if (p->subscribe.list) {
            for (uint32_t i = 0; i < p->subscribe.count; i++) {
                o = wr_bin(o, p->subscribe.list[i].filter);
                *o++ = sub_options(&p->subscribe.list[i], version);
            }
        } else {
            o = wr_raw(o, p->subscribe.entries);
        }
        break;
    case MQTT_UNSUBSCRIBE:
        o = wr_u16(o, p->id);
        if (v5)
            o = mqtt_props_write(o, &p->props, l.props);
        if (p->unsubscribe.list) {
            for (uint32_t i = 0; i < p->unsubscribe.count; i++)
                o = wr_bin(o, p->unsubscribe.list[i]);
        } else {
            o = wr_raw(o, p->unsubscribe.entries);
        }
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        o = wr_u16(o, p->id);
        if (v5)
            o = mqtt_props_write(o, &p->props, l.props);
        if (v5 || p->type == MQTT_SUBACK)
            o = wr_raw(o, p->suback.codes);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (n >= 1)
            *o++ = p->reason;
        if (n >= 2)
            o = mqtt_props_write(o, &p->props, l.props);
        break;
    default:
        break;
    }
    return (size_t)(o - out);
}
