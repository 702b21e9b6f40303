/* props.c -- MQTT 5 properties (MQTT 5.0 section 2.2.2): decoding with every placement, duplicate
 * and value rule of the spec, encoding in identifier order, and the iterators over repeated
 * properties. Decoding is zero-copy: strings are views into the input. */
#include <string.h>

#include "mqtt/topic.h"
#include "mqtt/utf8.h"
#include "mqtt/wire.h"

/* Property table indexed by identifier: value type (`known` is 0 for an unassigned identifier) and the packets the
 * property may appear in, as a bit mask of packet types with bit 0 for the will properties
 * (MQTT 5.0 table 2-4). */
#define P(t) (1u << (t))
#define W P(MQTT_PROPS_WILL)
#define NPROP 0x2B
static const struct {
    uint8_t known;
    uint8_t type;
    uint16_t where;
} prop_tab[NPROP] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {1, MQTT_PT_BYTE, P(MQTT_PUBLISH) | W},
    [MQTT_PROP_MESSAGE_EXPIRY] = {1, MQTT_PT_U32, P(MQTT_PUBLISH) | W},
    [MQTT_PROP_CONTENT_TYPE] = {1, MQTT_PT_STR, P(MQTT_PUBLISH) | W},
    [MQTT_PROP_RESPONSE_TOPIC] = {1, MQTT_PT_STR, P(MQTT_PUBLISH) | W},
    [MQTT_PROP_CORRELATION_DATA] = {1, MQTT_PT_BIN, P(MQTT_PUBLISH) | W},
    [MQTT_PROP_SUBSCRIPTION_ID] = {1, MQTT_PT_VARINT, P(MQTT_PUBLISH) | P(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {1, MQTT_PT_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {1, MQTT_PT_STR, P(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {1, MQTT_PT_U16, P(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {1, MQTT_PT_STR, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {1, MQTT_PT_BIN, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {1, MQTT_PT_BYTE, P(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {1, MQTT_PT_U32, W},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {1, MQTT_PT_BYTE, P(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {1, MQTT_PT_STR, P(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {1, MQTT_PT_STR, P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {1, MQTT_PT_STR, P(MQTT_CONNACK) | P(MQTT_PUBACK) | P(MQTT_PUBREC) | P(MQTT_PUBREL) |
                                                   P(MQTT_PUBCOMP) | P(MQTT_SUBACK) | P(MQTT_UNSUBACK) |
                                                   P(MQTT_DISCONNECT) | P(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAX] = {1, MQTT_PT_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {1, MQTT_PT_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {1, MQTT_PT_U16, P(MQTT_PUBLISH)},
    [MQTT_PROP_MAX_QOS] = {1, MQTT_PT_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {1, MQTT_PT_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_USER_PROPERTY] = {1, MQTT_PT_PAIR, 0xFFFF & ~P(MQTT_PINGREQ) & ~P(MQTT_PINGRESP)},
    [MQTT_PROP_MAX_PACKET_SIZE] = {1, MQTT_PT_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {1, MQTT_PT_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {1, MQTT_PT_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {1, MQTT_PT_BYTE, P(MQTT_CONNACK)},
};
#undef P
#undef W

/* Read one property identifier and its raw value without validating the value. Returns false when the
 * block is truncated or the identifier unknown (both Malformed: its value cannot be parsed). */
typedef struct prop_val {
    uint8_t id;
    uint32_t num;
    bool minimal; /* varint value used the fewest bytes */
    mqtt_bytes_t a, b;
} prop_val_t;

static bool prop_read(rd_t *r, prop_val_t *v)
{
    uint8_t id, b8;
    uint16_t u16;
    if (!rd_u8(r, &id) || id >= NPROP || !prop_tab[id].known)
        return false;
    v->id = id;
    v->minimal = true;
    switch (prop_tab[id].type) {
    case MQTT_PT_BYTE:
        if (!rd_u8(r, &b8))
            return false;
        v->num = b8;
        return true;
    case MQTT_PT_U16:
        if (!rd_u16(r, &u16))
            return false;
        v->num = u16;
        return true;
    case MQTT_PT_U32:
        return rd_u32(r, &v->num);
    case MQTT_PT_VARINT:
        return rd_varint(r, &v->num, &v->minimal);
    case MQTT_PT_STR:
    case MQTT_PT_BIN:
        return rd_bin(r, &v->a);
    case MQTT_PT_PAIR:
        return rd_bin(r, &v->a) && rd_bin(r, &v->b);
    }
    return false;
}

uint8_t mqtt_props_decode(rd_t *r, unsigned ctx, enum mqtt_side side, mqtt_props_t *out)
{
    uint32_t len;
    bool minimal;
    if (!rd_varint(r, &len, &minimal) || !minimal || rd_left(r) < len)
        return MQTT_RC_MALFORMED_PACKET;
    rd_t pr = {r->p, r->p + len};
    r->p += len;
    out->raw = (mqtt_bytes_t){pr.p, len};
    out->user_src = out->raw;
    while (pr.p < pr.end) {
        prop_val_t v;
        if (!prop_read(&pr, &v) || !v.minimal)
            return MQTT_RC_MALFORMED_PACKET;
        /* "A Control Packet which contains an Identifier which is not valid for its packet type
         * ... is a Malformed Packet" (5.0 section 2.2.2.2). */
        if (!(prop_tab[v.id].where & (1u << ctx)))
            return MQTT_RC_MALFORMED_PACKET;
        uint64_t bit = MQTT_HAS(v.id);
        if (v.id == MQTT_PROP_USER_PROPERTY) {
            /* Pairs of UTF-8 strings [MQTT-1.5.7-1]; may repeat. */
            if (!mqtt_utf8_wellformed(v.a.p, v.a.len) || !mqtt_utf8_wellformed(v.b.p, v.b.len))
                return MQTT_RC_MALFORMED_PACKET;
            out->user_n++;
            out->has |= bit;
            continue;
        }
        if (v.id == MQTT_PROP_SUBSCRIPTION_ID) {
            /* Value 1..268435455, 0 is a Protocol Error; only one in SUBSCRIBE; never in a PUBLISH
             * sent by a client [MQTT-3.3.4-6]. */
            if (v.num == 0 || (ctx == MQTT_PUBLISH && side == MQTT_FROM_CLIENT))
                return MQTT_RC_PROTOCOL_ERROR;
            if ((out->has & bit) && ctx != MQTT_PUBLISH)
                return MQTT_RC_PROTOCOL_ERROR;
            if (!(out->has & bit))
                out->sub_id = v.num;
            out->sub_id_n++;
            out->has |= bit;
            continue;
        }
        /* Every other property: "It is a Protocol Error to include the X more than once." */
        if (out->has & bit)
            return MQTT_RC_PROTOCOL_ERROR;
        out->has |= bit;
        if (prop_tab[v.id].type == MQTT_PT_STR && !mqtt_utf8_wellformed(v.a.p, v.a.len))
            return MQTT_RC_MALFORMED_PACKET; /* [MQTT-1.5.4-1], [MQTT-1.5.4-2] */
        switch (v.id) {
        case MQTT_PROP_PAYLOAD_FORMAT:
        case MQTT_PROP_REQUEST_PROBLEM_INFO:
        case MQTT_PROP_REQUEST_RESPONSE_INFO:
        case MQTT_PROP_MAX_QOS:
        case MQTT_PROP_RETAIN_AVAILABLE:
        case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        case MQTT_PROP_SUB_ID_AVAILABLE:
        case MQTT_PROP_SHARED_SUB_AVAILABLE:
            /* Byte flags: "a Protocol Error ... to have a value other than 0 or 1". */
            if (v.num > 1)
                return MQTT_RC_PROTOCOL_ERROR;
            break;
        case MQTT_PROP_RECEIVE_MAX:
        case MQTT_PROP_MAX_PACKET_SIZE:
            if (v.num == 0) /* "a Protocol Error ... for the value to be 0" */
                return MQTT_RC_PROTOCOL_ERROR;
            break;
        case MQTT_PROP_TOPIC_ALIAS:
            if (v.num == 0) /* [MQTT-3.3.2-8]; 0x94 names the failure */
                return MQTT_RC_TOPIC_ALIAS_INVALID;
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            /* A Topic Name: no wildcards [MQTT-3.3.2-14]; ill-formed UTF-8 was caught above. */
            if (!mqtt_topic_name_valid(v.a.p, v.a.len))
                return MQTT_RC_PROTOCOL_ERROR;
            break;
        case MQTT_PROP_SESSION_EXPIRY:
            /* "The Session Expiry Interval MUST NOT be sent on a DISCONNECT by the Server" [MQTT-3.14.2-2]. */
            if (ctx == MQTT_DISCONNECT && side == MQTT_FROM_SERVER)
                return MQTT_RC_PROTOCOL_ERROR;
            break;
        }
        switch (v.id) {
        case MQTT_PROP_PAYLOAD_FORMAT: out->payload_format = (uint8_t)v.num; break;
        case MQTT_PROP_REQUEST_PROBLEM_INFO: out->request_problem_info = (uint8_t)v.num; break;
        case MQTT_PROP_REQUEST_RESPONSE_INFO: out->request_response_info = (uint8_t)v.num; break;
        case MQTT_PROP_MAX_QOS: out->max_qos = (uint8_t)v.num; break;
        case MQTT_PROP_RETAIN_AVAILABLE: out->retain_available = (uint8_t)v.num; break;
        case MQTT_PROP_WILDCARD_SUB_AVAILABLE: out->wildcard_sub_available = (uint8_t)v.num; break;
        case MQTT_PROP_SUB_ID_AVAILABLE: out->sub_id_available = (uint8_t)v.num; break;
        case MQTT_PROP_SHARED_SUB_AVAILABLE: out->shared_sub_available = (uint8_t)v.num; break;
        case MQTT_PROP_SERVER_KEEP_ALIVE: out->server_keep_alive = (uint16_t)v.num; break;
        case MQTT_PROP_RECEIVE_MAX: out->receive_max = (uint16_t)v.num; break;
        case MQTT_PROP_TOPIC_ALIAS_MAX: out->topic_alias_max = (uint16_t)v.num; break;
        case MQTT_PROP_TOPIC_ALIAS: out->topic_alias = (uint16_t)v.num; break;
        case MQTT_PROP_MESSAGE_EXPIRY: out->message_expiry = v.num; break;
        case MQTT_PROP_SESSION_EXPIRY: out->session_expiry = v.num; break;
        case MQTT_PROP_WILL_DELAY: out->will_delay = v.num; break;
        case MQTT_PROP_MAX_PACKET_SIZE: out->max_packet_size = v.num; break;
        case MQTT_PROP_CONTENT_TYPE: out->content_type = v.a; break;
        case MQTT_PROP_RESPONSE_TOPIC: out->response_topic = v.a; break;
        case MQTT_PROP_CORRELATION_DATA: out->correlation_data = v.a; break;
        case MQTT_PROP_ASSIGNED_CLIENT_ID: out->assigned_client_id = v.a; break;
        case MQTT_PROP_AUTH_METHOD: out->auth_method = v.a; break;
        case MQTT_PROP_AUTH_DATA: out->auth_data = v.a; break;
        case MQTT_PROP_RESPONSE_INFO: out->response_info = v.a; break;
        case MQTT_PROP_SERVER_REFERENCE: out->server_reference = v.a; break;
        case MQTT_PROP_REASON_STRING: out->reason_string = v.a; break;
        }
    }
    /* "It is a Protocol Error to include Authentication Data if there is no Authentication Method." */
    if ((out->has & MQTT_HAS(MQTT_PROP_AUTH_DATA)) && !(out->has & MQTT_HAS(MQTT_PROP_AUTH_METHOD)))
        return MQTT_RC_PROTOCOL_ERROR;
    return MQTT_RC_SUCCESS;
}

/* Advance *cursor past the next property `id` in a decoded block, filling *v; false (cursor
 * emptied) when there is none left. */
static bool props_next(mqtt_bytes_t *cursor, uint8_t id, prop_val_t *v)
{
    rd_t r = {cursor->p, cursor->p + cursor->len};
    while (r.p < r.end) {
        if (!prop_read(&r, v))
            break;
        if (v->id == id) {
            cursor->len -= (uint32_t)(r.p - cursor->p);
            cursor->p = r.p;
            return true;
        }
    }
    cursor->p += cursor->len;
    cursor->len = 0;
    return false;
}

bool mqtt_props_next_user(mqtt_bytes_t *cursor, mqtt_strpair_t *out)
{
    prop_val_t v;
    if (!props_next(cursor, MQTT_PROP_USER_PROPERTY, &v))
        return false;
    out->key = v.a;
    out->val = v.b;
    return true;
}

bool mqtt_props_next_sub_id(mqtt_bytes_t *cursor, uint32_t *out)
{
    prop_val_t v;
    if (!props_next(cursor, MQTT_PROP_SUBSCRIPTION_ID, &v))
        return false;
    *out = v.num;
    return true;
}

/* ---- encoding ---- */

/* Subscription identifiers come from sub_ids[], else from `raw` when decode counted several, else
 * sub_id once (see packet.h). */
static bool sub_ids_from_raw(const mqtt_props_t *p)
{
    return p->sub_ids == NULL && p->sub_id_n > 1 && p->raw.len > 0;
}

size_t mqtt_props_len(const mqtt_props_t *p)
{
    uint64_t h = p->has;
    size_t n = 0;
    if (h == 0 && p->user == NULL && p->user_src.len == 0 && p->sub_ids == NULL)
        return 0;
    if (h & ~(MQTT_HAS(MQTT_PROP_USER_PROPERTY) | MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID))) {
        if (h & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) n += 5;
        if (h & MQTT_HAS(MQTT_PROP_CONTENT_TYPE)) n += 3 + p->content_type.len;
        if (h & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC)) n += 3 + p->response_topic.len;
        if (h & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)) n += 3 + p->correlation_data.len;
        if (h & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) n += 5;
        if (h & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID)) n += 3 + p->assigned_client_id.len;
        if (h & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) n += 3;
        if (h & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) n += 3 + p->auth_method.len;
        if (h & MQTT_HAS(MQTT_PROP_AUTH_DATA)) n += 3 + p->auth_data.len;
        if (h & MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_WILL_DELAY)) n += 5;
        if (h & MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_RESPONSE_INFO)) n += 3 + p->response_info.len;
        if (h & MQTT_HAS(MQTT_PROP_SERVER_REFERENCE)) n += 3 + p->server_reference.len;
        if (h & MQTT_HAS(MQTT_PROP_REASON_STRING)) n += 3 + p->reason_string.len;
        if (h & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) n += 3;
        if (h & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) n += 3;
        if (h & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)) n += 3;
        if (h & MQTT_HAS(MQTT_PROP_MAX_QOS)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE)) n += 5;
        if (h & MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_SUB_ID_AVAILABLE)) n += 2;
        if (h & MQTT_HAS(MQTT_PROP_SHARED_SUB_AVAILABLE)) n += 2;
    }
    if (p->sub_ids) {
        for (uint32_t i = 0; i < p->sub_id_n; i++)
            n += 1 + (size_t)mqtt_varint_len(p->sub_ids[i]);
    } else if (sub_ids_from_raw(p)) {
        mqtt_bytes_t c = p->raw;
        uint32_t id;
        while (mqtt_props_next_sub_id(&c, &id))
            n += 1 + (size_t)mqtt_varint_len(id);
    } else if (h & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) {
        n += 1 + (size_t)mqtt_varint_len(p->sub_id);
    }
    if (p->user) {
        for (uint32_t i = 0; i < p->user_n; i++)
            n += 5 + p->user[i].key.len + p->user[i].val.len;
    }
    if (p->user_src.len) {
        mqtt_bytes_t c = p->user_src;
        mqtt_strpair_t kv;
        while (mqtt_props_next_user(&c, &kv))
            n += 5 + kv.key.len + kv.val.len;
    }
    return n;
}

static uint8_t *wr_str_prop(uint8_t *o, uint8_t id, mqtt_bytes_t b)
{
    *o++ = id;
    return wr_bin(o, b);
}

uint8_t *mqtt_props_write(uint8_t *o, const mqtt_props_t *p, size_t len)
{
    uint64_t h = p->has;
    o = wr_varint(o, (uint32_t)len);
    if (len == 0)
        return o; /* the common case of a PUBLISH or ack without properties */
    if (h & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) o = wr_u8(wr_u8(o, MQTT_PROP_PAYLOAD_FORMAT), p->payload_format);
    if (h & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) o = wr_u32(wr_u8(o, MQTT_PROP_MESSAGE_EXPIRY), p->message_expiry);
    if (h & MQTT_HAS(MQTT_PROP_CONTENT_TYPE)) o = wr_str_prop(o, MQTT_PROP_CONTENT_TYPE, p->content_type);
    if (h & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC)) o = wr_str_prop(o, MQTT_PROP_RESPONSE_TOPIC, p->response_topic);
    if (h & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)) o = wr_str_prop(o, MQTT_PROP_CORRELATION_DATA, p->correlation_data);
    if (p->sub_ids) {
        for (uint32_t i = 0; i < p->sub_id_n; i++)
            o = wr_varint(wr_u8(o, MQTT_PROP_SUBSCRIPTION_ID), p->sub_ids[i]);
    } else if (sub_ids_from_raw(p)) {
        mqtt_bytes_t c = p->raw;
        uint32_t id;
        while (mqtt_props_next_sub_id(&c, &id))
            o = wr_varint(wr_u8(o, MQTT_PROP_SUBSCRIPTION_ID), id);
    } else if (h & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) {
        o = wr_varint(wr_u8(o, MQTT_PROP_SUBSCRIPTION_ID), p->sub_id);
    }
    if (h & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) o = wr_u32(wr_u8(o, MQTT_PROP_SESSION_EXPIRY), p->session_expiry);
    if (h & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID)) o = wr_str_prop(o, MQTT_PROP_ASSIGNED_CLIENT_ID, p->assigned_client_id);
    if (h & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) o = wr_u16(wr_u8(o, MQTT_PROP_SERVER_KEEP_ALIVE), p->server_keep_alive);
    if (h & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) o = wr_str_prop(o, MQTT_PROP_AUTH_METHOD, p->auth_method);
    if (h & MQTT_HAS(MQTT_PROP_AUTH_DATA)) o = wr_str_prop(o, MQTT_PROP_AUTH_DATA, p->auth_data);
    if (h & MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO)) o = wr_u8(wr_u8(o, MQTT_PROP_REQUEST_PROBLEM_INFO), p->request_problem_info);
    if (h & MQTT_HAS(MQTT_PROP_WILL_DELAY)) o = wr_u32(wr_u8(o, MQTT_PROP_WILL_DELAY), p->will_delay);
    if (h & MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO)) o = wr_u8(wr_u8(o, MQTT_PROP_REQUEST_RESPONSE_INFO), p->request_response_info);
    if (h & MQTT_HAS(MQTT_PROP_RESPONSE_INFO)) o = wr_str_prop(o, MQTT_PROP_RESPONSE_INFO, p->response_info);
    if (h & MQTT_HAS(MQTT_PROP_SERVER_REFERENCE)) o = wr_str_prop(o, MQTT_PROP_SERVER_REFERENCE, p->server_reference);
    if (h & MQTT_HAS(MQTT_PROP_REASON_STRING)) o = wr_str_prop(o, MQTT_PROP_REASON_STRING, p->reason_string);
    if (h & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) o = wr_u16(wr_u8(o, MQTT_PROP_RECEIVE_MAX), p->receive_max);
    if (h & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) o = wr_u16(wr_u8(o, MQTT_PROP_TOPIC_ALIAS_MAX), p->topic_alias_max);
    if (h & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)) o = wr_u16(wr_u8(o, MQTT_PROP_TOPIC_ALIAS), p->topic_alias);
    if (h & MQTT_HAS(MQTT_PROP_MAX_QOS)) o = wr_u8(wr_u8(o, MQTT_PROP_MAX_QOS), p->max_qos);
    if (h & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE)) o = wr_u8(wr_u8(o, MQTT_PROP_RETAIN_AVAILABLE), p->retain_available);
    if (p->user) {
        for (uint32_t i = 0; i < p->user_n; i++)
            o = wr_bin(wr_bin(wr_u8(o, MQTT_PROP_USER_PROPERTY), p->user[i].key), p->user[i].val);
    }
    if (p->user_src.len) {
        mqtt_bytes_t c = p->user_src;
        mqtt_strpair_t kv;
        while (mqtt_props_next_user(&c, &kv))
            o = wr_bin(wr_bin(wr_u8(o, MQTT_PROP_USER_PROPERTY), kv.key), kv.val);
    }
    if (h & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE)) o = wr_u32(wr_u8(o, MQTT_PROP_MAX_PACKET_SIZE), p->max_packet_size);
    if (h & MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE)) o = wr_u8(wr_u8(o, MQTT_PROP_WILDCARD_SUB_AVAILABLE), p->wildcard_sub_available);
    if (h & MQTT_HAS(MQTT_PROP_SUB_ID_AVAILABLE)) o = wr_u8(wr_u8(o, MQTT_PROP_SUB_ID_AVAILABLE), p->sub_id_available);
    if (h & MQTT_HAS(MQTT_PROP_SHARED_SUB_AVAILABLE)) o = wr_u8(wr_u8(o, MQTT_PROP_SHARED_SUB_AVAILABLE), p->shared_sub_available);
    return o;
}
