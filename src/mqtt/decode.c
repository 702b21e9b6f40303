/* decode.c -- bytes -> mqtt_packet_t for MQTT 3.1, 3.1.1 and 5.0, validating every rule the specs
 * put on a single packet and returning the MQTT 5 reason code the receiver must close with.
 *
 * Design note. Parsing is straight-line over a bounds-checked cursor (wire.h) and zero-copy: every
 * string in the result points into `body`. Within one packet, structural problems (a length that runs
 * past the packet, ill-formed UTF-8, reserved bits, trailing bytes) are Malformed Packet; a packet that
 * parses but carries something the protocol forbids is Protocol Error or the more specific code the
 * spec names (MQTT 5.0 section 4.13). Where the spec names no code for a MUST, Protocol Error is used
 * for data that parsed and Malformed Packet for anything that did not. v3.x has no reason codes: the
 * same codes tell the caller to close the connection. State-dependent rules (topic alias maximum,
 * receive maximum, packet identifiers in use, a second CONNECT) belong to the caller.
 *
 * Choices where the spec names no code (so they are easy to find and to change):
 *   DUP=1 on QoS 0 [MQTT-3.3.1-2]                       Protocol Error (not checked for 3.1)
 *   unassigned property identifier                      Malformed (its value cannot be parsed)
 *   property not allowed in this packet                 Malformed (5.0 section 2.2.2.2)
 *   Payload Format Indicator > 1                        Protocol Error
 *   Response Topic with a wildcard [MQTT-3.3.2-14]      Protocol Error
 *   reason code not in the packet's table               Protocol Error (also v3 SUBACK/CONNACK)
 *   packet identifier 0 where one is needed             Protocol Error
 *   will topic empty or with a wildcard                 Topic Name invalid (a CONNACK code)
 *   will flag 0 with will QoS/retain set                Malformed (a connect-flags error, like
 *                                                       will QoS 3, which 5.0 calls Malformed)
 *   unknown protocol name                               Unsupported Protocol Version (the caller may
 *                                                       close silently instead, [MQTT-3.1.2-1])
 *   control characters / non-characters in the strict  Malformed ([MQTT-1.5.4-3] lets the receiver
 *   strings (topics, client id, user name)              treat them as Malformed)
 * Codes the spec names: Topic Alias 0 -> Topic Alias invalid (3.3.2.3.4); Retain Handling 3 and
 * Maximum QoS 3 in SUBSCRIBE -> Protocol Error; reserved subscription option bits -> Malformed
 * [MQTT-3.8.3-5]; No Local on a shared subscription -> Protocol Error [MQTT-3.8.3-4]. */
#include <string.h>

#include "mqtt/topic.h"
#include "mqtt/utf8.h"
#include "mqtt/wire.h"

int mqtt_header_parse(const uint8_t *buf, size_t len, mqtt_header_t *h)
{
    if (len < 2)
        return 0;
    uint32_t rem;
    int n = mqtt_varint_decode(buf + 1, len - 1, &rem);
    if (n <= 0)
        return n;
    h->type = buf[0] >> 4;
    h->flags = buf[0] & 0x0F;
    h->header_len = (uint8_t)(1 + n);
    h->remaining = rem;
    return 1;
}

/* Reason codes each packet may carry (MQTT 5.0 sections 3.2.2.2, 3.4.2.1 .. 3.15.2.1). */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                     0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}; /* and PUBREC */
static const uint8_t rc_pubrel[] = {0x00, 0x92};                                           /* and PUBCOMP */
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
/* AUTH (table 3-13): Success is sent by the server, Re-authenticate by the client, Continue by both. */
static const uint8_t rc_auth_client[] = {0x18, 0x19};
static const uint8_t rc_auth_server[] = {0x00, 0x18};
/* DISCONNECT (table 3-10): codes both sides may send, and those only a client / only a server sends. */
static const uint8_t rc_disc_both[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94,
                                       0x95, 0x96, 0x97, 0x98, 0x99};
static const uint8_t rc_disc_server[] = {0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x9A, 0x9B,
                                         0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};

static bool rc_allowed(const uint8_t *codes, size_t n, uint8_t rc)
{
    /* Tables are tiny; a linear scan of <= 22 bytes beats building sets on the hot path. */
    for (size_t i = 0; i < n; i++)
        if (codes[i] == rc)
            return true;
    return false;
}
#define RC_OK(tab, rc) rc_allowed(tab, sizeof tab, rc)

static bool disconnect_rc_allowed(uint8_t rc, enum mqtt_side side)
{
    if (RC_OK(rc_disc_both, rc))
        return true;
    if (side == MQTT_FROM_CLIENT)
        return rc == 0x04; /* Disconnect with Will Message */
    return RC_OK(rc_disc_server, rc);
}

/* Which side may send each packet type (bit 0: client, bit 1: server). */
static const uint8_t senders[16] = {
    [MQTT_CONNECT] = 1, [MQTT_CONNACK] = 2, [MQTT_PUBLISH] = 3, [MQTT_PUBACK] = 3, [MQTT_PUBREC] = 3,
    [MQTT_PUBREL] = 3, [MQTT_PUBCOMP] = 3, [MQTT_SUBSCRIBE] = 1, [MQTT_SUBACK] = 2, [MQTT_UNSUBSCRIBE] = 1,
    [MQTT_UNSUBACK] = 2, [MQTT_PINGREQ] = 1, [MQTT_PINGRESP] = 2, [MQTT_DISCONNECT] = 3, [MQTT_AUTH] = 3,
};

/* Fixed header flags [MQTT-2.1.3-1]: PUBREL, SUBSCRIBE, UNSUBSCRIBE carry 0010, all others but
 * PUBLISH 0000; anything else is a Malformed Packet. MQTT 3.1 only required QoS 1 on those three
 * (DUP and RETAIN were "not used") and ignored the flags of the others, so v3.1 is checked that way. */
static bool header_flags_ok(uint8_t type, uint8_t flags, uint8_t version)
{
    bool qos1 = type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE;
    if (version == MQTT_V31)
        return qos1 ? (flags & 0x6) == 0x2 : true;
    return flags == (qos1 ? 0x2 : 0x0);
}

/* [MQTT-1.5.5-1] (5.0 only): the remaining length must use the fewest bytes. MQTT 3.1.1 does not
 * require it, so a non-minimal header is accepted there. */
static bool header_minimal(const mqtt_header_t *h)
{
    return h->header_len == 1 + mqtt_varint_len(h->remaining);
}

/* A UTF-8 string field with the strict rules (topics, client id, user name): ill-formed or forbidden
 * code points are a Malformed Packet [MQTT-1.5.4-1..3]. */
static bool rd_str_valid(rd_t *r, mqtt_bytes_t *s)
{
    return rd_bin(r, s) && mqtt_utf8_valid(s->p, s->len);
}

static uint8_t decode_connect(rd_t *r, const mqtt_header_t *h, mqtt_packet_t *out)
{
    mqtt_bytes_t name;
    uint8_t level, cflags;
    memset(&out->connect, 0, sizeof out->connect);
    if (!rd_bin(r, &name) || !rd_u8(r, &level))
        return MQTT_RC_MALFORMED_PACKET;
    out->connect.version = level;
    /* Mosquitto bridges set bit 7 of the level ("try_private"); Mosquitto accepts them, so do we. */
    if (level & 0x80) {
        uint8_t base = level & 0x7F;
        if (base == MQTT_V31 || base == MQTT_V311 || base == MQTT_V5) {
            out->connect.bridge = 1;
            level = base;
            out->connect.version = level;
        }
    }
    /* [MQTT-3.1.2-1], [MQTT-3.1.2-2]: "MQTT" level 4 or 5, or MQTT 3.1's "MQIsdp" level 3. The raw
     * level stays in connect.version so the caller can answer in the client's CONNACK format. */
    bool mqtt = name.len == 4 && memcmp(name.p, "MQTT", 4) == 0;
    bool mqisdp = name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0;
    if (!((mqtt && (level == MQTT_V311 || level == MQTT_V5)) || (mqisdp && level == MQTT_V31)))
        return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    if (!header_flags_ok(h->type, h->flags, level) || (level == MQTT_V5 && !header_minimal(h)))
        return MQTT_RC_MALFORMED_PACKET;
    if (!rd_u8(r, &cflags) || !rd_u16(r, &out->connect.keepalive))
        return MQTT_RC_MALFORMED_PACKET;
    /* [MQTT-3.1.2-3]: the reserved flag must be 0, else Malformed Packet. */
    if (cflags & 0x01)
        return MQTT_RC_MALFORMED_PACKET;
    out->connect.clean = (cflags >> 1) & 1;
    out->connect.will = (cflags >> 2) & 1;
    out->connect.will_qos = (cflags >> 3) & 3;
    out->connect.will_retain = (cflags >> 5) & 1;
    out->connect.has_password = (cflags >> 6) & 1;
    out->connect.has_username = (cflags >> 7) & 1;
    /* Will QoS 3 is a Malformed Packet [MQTT-3.1.2-12]; with the Will Flag 0, Will QoS and Will Retain
     * must be 0 [MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1: [MQTT-3.1.2-13], [MQTT-3.1.2-15]). */
    if (out->connect.will_qos == 3)
        return MQTT_RC_MALFORMED_PACKET;
    if (!out->connect.will && (out->connect.will_qos || out->connect.will_retain))
        return MQTT_RC_MALFORMED_PACKET;
    /* 3.1.1 [MQTT-3.1.2-22]: no password without a user name (5.0 allows it). */
    if (level != MQTT_V5 && out->connect.has_password && !out->connect.has_username)
        return MQTT_RC_MALFORMED_PACKET;
    uint8_t rc;
    if (level == MQTT_V5 && (rc = mqtt_props_decode(r, MQTT_CONNECT, MQTT_FROM_CLIENT, &out->props)))
        return rc;
    /* Payload: client id [MQTT-3.1.3-4], will (topic [MQTT-3.1.3-11]), user name [MQTT-3.1.3-12],
     * password. */
    if (!rd_str_valid(r, &out->connect.client_id))
        return MQTT_RC_MALFORMED_PACKET;
    if (out->connect.will) {
        if (level == MQTT_V5 && (rc = mqtt_props_decode(r, MQTT_PROPS_WILL, MQTT_FROM_CLIENT, &out->connect.will_props)))
            return rc;
        if (!rd_str_valid(r, &out->connect.will_topic) || !rd_bin(r, &out->connect.will_payload))
            return MQTT_RC_MALFORMED_PACKET;
    }
    if (out->connect.has_username && !rd_str_valid(r, &out->connect.username))
        return MQTT_RC_MALFORMED_PACKET;
    if (out->connect.has_password && !rd_bin(r, &out->connect.password))
        return MQTT_RC_MALFORMED_PACKET;
    if (rd_left(r))
        return MQTT_RC_MALFORMED_PACKET;
    if (out->connect.will) {
        /* The will topic is a Topic Name: no wildcards, not empty (CONNACK 0x90). */
        if (!mqtt_topic_name_valid(out->connect.will_topic.p, out->connect.will_topic.len))
            return MQTT_RC_TOPIC_NAME_INVALID;
        const mqtt_props_t *wp = &out->connect.will_props;
        if ((wp->has & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) && wp->payload_format == 1 &&
            !mqtt_utf8_unicode_valid(out->connect.will_payload.p, out->connect.will_payload.len))
            return MQTT_RC_PAYLOAD_FORMAT_INVALID; /* 3.1.3.2.3: CONNACK 0x99 */
    }
    return MQTT_RC_SUCCESS;
}

static uint8_t decode_connack(rd_t *r, uint8_t version, mqtt_packet_t *out)
{
    uint8_t af;
    out->connack.session_present = 0;
    if (!rd_u8(r, &af) || !rd_u8(r, &out->reason))
        return MQTT_RC_MALFORMED_PACKET;
    /* Bits 7-1 of the acknowledge flags are reserved [MQTT-3.2.2-1]; MQTT 3.1 had no flags there. */
    if (version != MQTT_V31 && (af & 0xFE))
        return MQTT_RC_MALFORMED_PACKET;
    out->connack.session_present = af & 1;
    if (version == MQTT_V5) {
        uint8_t rc = mqtt_props_decode(r, MQTT_CONNACK, MQTT_FROM_SERVER, &out->props);
        if (rc)
            return rc;
    }
    if (rd_left(r))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5 ? !RC_OK(rc_connack, out->reason) : out->reason > MQTT_CONNACK_NOT_AUTHORIZED)
        return MQTT_RC_PROTOCOL_ERROR;
    /* A refused connection has Session Present 0 [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4]). */
    if (out->reason != 0 && out->connack.session_present)
        return MQTT_RC_PROTOCOL_ERROR;
    return MQTT_RC_SUCCESS;
}

static uint8_t decode_publish(rd_t *r, const mqtt_header_t *h, uint8_t version, enum mqtt_side side,
                              mqtt_packet_t *out)
{
    uint8_t qos = (h->flags >> 1) & 3;
    out->publish.qos = qos;
    out->publish.retain = h->flags & 1;
    out->publish.dup = (h->flags >> 3) & 1;
    out->publish.topic = (mqtt_bytes_t){NULL, 0};
    out->publish.payload = (mqtt_bytes_t){NULL, 0};
    /* [MQTT-3.3.1-4]: both QoS bits set is a Malformed Packet. */
    if (qos == 3)
        return MQTT_RC_MALFORMED_PACKET;
    if (!rd_bin(r, &out->publish.topic))
        return MQTT_RC_MALFORMED_PACKET;
    if (qos && !rd_u16(r, &out->id))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5) {
        uint8_t rc = mqtt_props_decode(r, MQTT_PUBLISH, side, &out->props);
        if (rc)
            return rc;
    }
    out->publish.payload = (mqtt_bytes_t){r->p, (uint32_t)rd_left(r)};
    r->p = r->end;
    const mqtt_bytes_t *t = &out->publish.topic;
    int scan = mqtt_utf8_topic_scan(t->p, t->len);
    if (scan < 0)
        return MQTT_RC_MALFORMED_PACKET; /* [MQTT-1.5.4-1..3] */
    /* [MQTT-3.3.1-2]: DUP must be 0 for QoS 0 (not a 3.1 rule). The packet parsed: Protocol Error. */
    if (qos == 0 && out->publish.dup && version != MQTT_V31)
        return MQTT_RC_PROTOCOL_ERROR;
    /* [MQTT-2.2.1-3]: QoS 1 and 2 need a non-zero packet identifier. */
    if (qos && out->id == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    if (t->len == 0) {
        /* "It is a Protocol Error if the Topic Name is zero length and there is no Topic Alias";
         * before 5.0 topic names are at least one character [MQTT-4.7.3-1]. */
        if (!(out->props.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
            return MQTT_RC_PROTOCOL_ERROR;
    } else if (scan) {
        return MQTT_RC_TOPIC_NAME_INVALID; /* [MQTT-3.3.2-2] */
    }
    /* 3.3.2.3.2: Payload Format Indicator 1 means a well-formed UTF-8 payload; 0x99 names it. */
    if (out->props.payload_format == 1 && (out->props.has & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) &&
        !mqtt_utf8_unicode_valid(out->publish.payload.p, out->publish.payload.len))
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    return MQTT_RC_SUCCESS;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. In 5.0 a remaining length of 2 means reason 0 and no properties,
 * 3 a reason code and no properties (3.4.2.1: "If the Remaining Length is less than 4 there is no
 * Property Length and the value of 0 is used"). Reason codes outside the packet's table break
 * [MQTT-3.4.2-1] (and its PUBREC/PUBREL/PUBCOMP twins): Protocol Error. */
static uint8_t decode_ack(rd_t *r, uint8_t type, uint8_t version, enum mqtt_side side, mqtt_packet_t *out)
{
    if (!rd_u16(r, &out->id))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5) {
        if (rd_left(r) && !rd_u8(r, &out->reason))
            return MQTT_RC_MALFORMED_PACKET;
        if (rd_left(r)) {
            uint8_t rc = mqtt_props_decode(r, type, side, &out->props);
            if (rc)
                return rc;
        }
    }
    if (rd_left(r))
        return MQTT_RC_MALFORMED_PACKET;
    if (out->id == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* acknowledges a packet that had a non-zero id [MQTT-2.2.1-3] */
    bool ok = type == MQTT_PUBACK || type == MQTT_PUBREC ? RC_OK(rc_puback, out->reason)
                                                         : RC_OK(rc_pubrel, out->reason);
    return ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
}

/* Parse one SUBSCRIBE entry (filter and options) and check what makes it unparseable: returns
 * SUCCESS or MALFORMED_PACKET. The rules a well-formed entry can break are sub_entry_semantic's, checked
 * only after the whole packet parsed, so a later malformed entry still wins. */
static uint8_t sub_entry(rd_t *r, uint8_t version, mqtt_sub_t *e)
{
    if (!rd_bin(r, &e->filter) || !rd_u8(r, &e->options))
        return MQTT_RC_MALFORMED_PACKET;
    if (!mqtt_utf8_valid(e->filter.p, e->filter.len))
        return MQTT_RC_MALFORMED_PACKET;
    e->qos = e->options & 3;
    if (version == MQTT_V5) {
        e->no_local = (e->options >> 2) & 1;
        e->retain_as_published = (e->options >> 3) & 1;
        e->retain_handling = (e->options >> 4) & 3;
        if (e->options & 0xC0) /* [MQTT-3.8.3-5] */
            return MQTT_RC_MALFORMED_PACKET;
    } else {
        e->no_local = e->retain_as_published = e->retain_handling = 0;
        if ((e->options & 0xFC) || e->qos == 3) /* 3.1.1 [MQTT-3-8.3-4] */
            return MQTT_RC_MALFORMED_PACKET;
    }
    return MQTT_RC_SUCCESS;
}

static uint8_t sub_entry_semantic(const mqtt_sub_t *e)
{
    /* 5.0: "It is a Protocol Error if the Maximum QoS field has the value 3" and "... to send a Retain
     * Handling value of 3". */
    if (e->qos == 3 || e->retain_handling == 3)
        return MQTT_RC_PROTOCOL_ERROR;
    if (!mqtt_topic_filter_valid(e->filter.p, e->filter.len))
        return MQTT_RC_TOPIC_FILTER_INVALID;
    /* [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error. */
    if (e->no_local && e->filter.len >= 7 && memcmp(e->filter.p, "$share/", 7) == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    return MQTT_RC_SUCCESS;
}

static uint8_t decode_subscribe(rd_t *r, uint8_t version, mqtt_packet_t *out)
{
    uint8_t rc;
    out->subscribe.entries = (mqtt_bytes_t){NULL, 0};
    out->subscribe.count = 0;
    out->subscribe.list = NULL;
    if (!rd_u16(r, &out->id))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5 && (rc = mqtt_props_decode(r, MQTT_SUBSCRIBE, MQTT_FROM_CLIENT, &out->props)))
        return rc;
    out->subscribe.entries = (mqtt_bytes_t){r->p, (uint32_t)rd_left(r)};
    uint8_t semantic = MQTT_RC_SUCCESS;
    while (rd_left(r)) {
        mqtt_sub_t e;
        if ((rc = sub_entry(r, version, &e)))
            return rc;
        out->subscribe.count++;
        if (!semantic)
            semantic = sub_entry_semantic(&e);
    }
    if (out->id == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-2.2.1-3] */
    if (out->subscribe.count == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* 5.0 [MQTT-3.8.3-2], 3.1.1 [MQTT-3.8.3-3] */
    return semantic;
}

static uint8_t decode_unsubscribe(rd_t *r, uint8_t version, mqtt_packet_t *out)
{
    uint8_t rc;
    out->unsubscribe.entries = (mqtt_bytes_t){NULL, 0};
    out->unsubscribe.count = 0;
    out->unsubscribe.list = NULL;
    if (!rd_u16(r, &out->id))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5 && (rc = mqtt_props_decode(r, MQTT_UNSUBSCRIBE, MQTT_FROM_CLIENT, &out->props)))
        return rc;
    out->unsubscribe.entries = (mqtt_bytes_t){r->p, (uint32_t)rd_left(r)};
    uint8_t semantic = MQTT_RC_SUCCESS;
    while (rd_left(r)) {
        mqtt_bytes_t f;
        if (!rd_str_valid(r, &f))
            return MQTT_RC_MALFORMED_PACKET;
        out->unsubscribe.count++;
        if (!semantic && !mqtt_topic_filter_valid(f.p, f.len))
            semantic = MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (out->id == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-2.2.1-3] */
    if (out->unsubscribe.count == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.10.3-2] */
    return semantic;
}

/* SUBACK and UNSUBACK: one reason code per filter (UNSUBACK has none before 5.0). */
static uint8_t decode_suback(rd_t *r, uint8_t type, uint8_t version, mqtt_packet_t *out)
{
    uint8_t rc;
    out->suback.codes = (mqtt_bytes_t){NULL, 0};
    if (!rd_u16(r, &out->id))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5 && (rc = mqtt_props_decode(r, type, MQTT_FROM_SERVER, &out->props)))
        return rc;
    out->suback.codes = (mqtt_bytes_t){r->p, (uint32_t)rd_left(r)};
    r->p = r->end;
    if (type == MQTT_UNSUBACK && version != MQTT_V5) {
        if (out->suback.codes.len)
            return MQTT_RC_MALFORMED_PACKET;
    } else if (out->suback.codes.len == 0) {
        return MQTT_RC_PROTOCOL_ERROR; /* one code per filter, and a (UN)SUBSCRIBE has at least one */
    }
    if (out->id == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    for (uint32_t i = 0; i < out->suback.codes.len; i++) {
        uint8_t c = out->suback.codes.p[i];
        bool ok = version == MQTT_V5 ? (type == MQTT_SUBACK ? RC_OK(rc_suback, c) : RC_OK(rc_unsuback, c))
                                     : (c <= 2 || c == 0x80); /* 3.1.1 [MQTT-3.9.3-2] */
        if (!ok)
            return MQTT_RC_PROTOCOL_ERROR;
    }
    return MQTT_RC_SUCCESS;
}

/* DISCONNECT and AUTH in 5.0: remaining length 0 means reason 0 and no properties; 1 means no
 * properties ("If the Remaining Length is less than 2, a value of 0 is used"). */
static uint8_t decode_reason_props(rd_t *r, uint8_t type, enum mqtt_side side, mqtt_packet_t *out)
{
    if (rd_left(r) && !rd_u8(r, &out->reason))
        return MQTT_RC_MALFORMED_PACKET;
    if (rd_left(r)) {
        uint8_t rc = mqtt_props_decode(r, type, side, &out->props);
        if (rc)
            return rc;
    }
    if (rd_left(r))
        return MQTT_RC_MALFORMED_PACKET;
    bool ok;
    if (type == MQTT_AUTH)
        ok = side == MQTT_FROM_CLIENT ? RC_OK(rc_auth_client, out->reason) : RC_OK(rc_auth_server, out->reason);
    else
        ok = disconnect_rc_allowed(out->reason, side);
    return ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
}

uint8_t mqtt_decode(const mqtt_header_t *h, const uint8_t *body, uint8_t version, enum mqtt_side side,
                    mqtt_packet_t *out)
{
    uint8_t type = h->type;
    rd_t r = {body, body + h->remaining};
    out->type = type;
    out->id = 0;
    out->reason = 0;
    _Static_assert(sizeof(mqtt_props_t) % 8 == 0, "wire_zero needs a multiple of 8");
    wire_zero(&out->props, sizeof out->props);
    if (type == 0 || type > 15)
        return MQTT_RC_MALFORMED_PACKET; /* type 0 is reserved/forbidden */
    /* A packet the receiving side must never get (CONNACK from a client, SUBSCRIBE from a server,
     * DISCONNECT from a v3 server, AUTH before 5.0) is a Protocol Error. */
    if (!(senders[type] & (1u << side)))
        return MQTT_RC_PROTOCOL_ERROR;
    if (type == MQTT_CONNECT)
        return decode_connect(&r, h, out);
    if (type == MQTT_AUTH && version != MQTT_V5)
        return MQTT_RC_PROTOCOL_ERROR;
    if (type == MQTT_DISCONNECT && version != MQTT_V5 && side == MQTT_FROM_SERVER)
        return MQTT_RC_PROTOCOL_ERROR;
    if (type != MQTT_PUBLISH && !header_flags_ok(type, h->flags, version))
        return MQTT_RC_MALFORMED_PACKET;
    if (version == MQTT_V5 && !header_minimal(h))
        return MQTT_RC_MALFORMED_PACKET;
    switch (type) {
    case MQTT_CONNACK:
        return decode_connack(&r, version, out);
    case MQTT_PUBLISH:
        return decode_publish(&r, h, version, side, out);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(&r, type, version, side, out);
    case MQTT_SUBSCRIBE:
        return decode_subscribe(&r, version, out);
    case MQTT_UNSUBSCRIBE:
        return decode_unsubscribe(&r, version, out);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_suback(&r, type, version, out);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return h->remaining ? MQTT_RC_MALFORMED_PACKET : MQTT_RC_SUCCESS;
    case MQTT_DISCONNECT:
        if (version != MQTT_V5)
            return h->remaining ? MQTT_RC_MALFORMED_PACKET : MQTT_RC_SUCCESS;
        return decode_reason_props(&r, type, side, out);
    case MQTT_AUTH:
        return decode_reason_props(&r, type, side, out);
    }
    return MQTT_RC_MALFORMED_PACKET;
}

bool mqtt_sub_next(uint8_t version, mqtt_bytes_t *cursor, mqtt_sub_t *out)
{
    rd_t r = {cursor->p, cursor->p + cursor->len};
    if (!cursor->len || sub_entry(&r, version, out) != MQTT_RC_SUCCESS)
        return false;
    cursor->len -= (uint32_t)(r.p - cursor->p);
    cursor->p = r.p;
    return true;
}

bool mqtt_unsub_next(mqtt_bytes_t *cursor, mqtt_bytes_t *filter)
{
    rd_t r = {cursor->p, cursor->p + cursor->len};
    if (!cursor->len || !rd_bin(&r, filter))
        return false;
    cursor->len -= (uint32_t)(r.p - cursor->p);
    cursor->p = r.p;
    return true;
}
