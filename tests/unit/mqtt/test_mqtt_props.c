/* test_mqtt_props.c -- every MQTT 5 property in every packet: allowed where MQTT 5.0 table 2-4 says
 * (decodes), a Protocol Error anywhere else, and a Protocol Error when a single-valued property
 * appears twice ("It is a Protocol Error to include the X more than once"). The allowed sets are
 * written out here independently of props.c so the two cross-check. */
#include <string.h>

#include "mqtt/packet.h"
#include "unit.h"

enum { WILL = 0 }; /* context 0: the will properties of CONNECT */

static const struct {
    uint8_t id;
    const char *name;
    const char *where; /* contexts: C=CONNECT W=will K=CONNACK P=PUBLISH A=PUBACK..PUBCOMP S=SUBSCRIBE
                        * s=SUBACK U=UNSUBSCRIBE u=UNSUBACK D=DISCONNECT H=AUTH */
    uint8_t value[8];  /* a valid value */
    uint8_t vlen;
} props[] = {
    {0x01, "Payload Format Indicator", "WP", {1}, 1},
    {0x02, "Message Expiry Interval", "WP", {0, 0, 0, 1}, 4},
    {0x03, "Content Type", "WP", {0, 1, 'a'}, 3},
    {0x08, "Response Topic", "WP", {0, 1, 'a'}, 3},
    {0x09, "Correlation Data", "WP", {0, 1, 0xFF}, 3},
    {0x0B, "Subscription Identifier", "PS", {1}, 1},
    {0x11, "Session Expiry Interval", "CKD", {0, 0, 0, 1}, 4},
    {0x12, "Assigned Client Identifier", "K", {0, 1, 'a'}, 3},
    {0x13, "Server Keep Alive", "K", {0, 1}, 2},
    {0x15, "Authentication Method", "CKH", {0, 1, 'a'}, 3},
    {0x16, "Authentication Data", "CKH", {0, 1, 0}, 3},
    {0x17, "Request Problem Information", "C", {1}, 1},
    {0x18, "Will Delay Interval", "W", {0, 0, 0, 1}, 4},
    {0x19, "Request Response Information", "C", {1}, 1},
    {0x1A, "Response Information", "K", {0, 1, 'a'}, 3},
    {0x1C, "Server Reference", "KD", {0, 1, 'a'}, 3},
    {0x1F, "Reason String", "KAsuDH", {0, 1, 'a'}, 3},
    {0x21, "Receive Maximum", "CK", {0, 1}, 2},
    {0x22, "Topic Alias Maximum", "CK", {0, 1}, 2},
    {0x23, "Topic Alias", "P", {0, 1}, 2},
    {0x24, "Maximum QoS", "K", {1}, 1},
    {0x25, "Retain Available", "K", {1}, 1},
    {0x26, "User Property", "CWKPASsUuDH", {0, 1, 'k', 0, 1, 'v'}, 6},
    {0x27, "Maximum Packet Size", "CK", {0, 0, 0, 1}, 4},
    {0x28, "Wildcard Subscription Available", "K", {1}, 1},
    {0x29, "Subscription Identifier Available", "K", {1}, 1},
    {0x2A, "Shared Subscription Available", "K", {1}, 1},
};

static const struct {
    char code;
    uint8_t type; /* packet type; WILL for the will */
    enum mqtt_side side;
} contexts[] = {
    {'C', MQTT_CONNECT, MQTT_FROM_CLIENT}, {'W', WILL, MQTT_FROM_CLIENT},
    {'K', MQTT_CONNACK, MQTT_FROM_SERVER}, {'P', MQTT_PUBLISH, MQTT_FROM_SERVER},
    {'A', MQTT_PUBACK, MQTT_FROM_CLIENT},  {'A', MQTT_PUBREC, MQTT_FROM_SERVER},
    {'A', MQTT_PUBREL, MQTT_FROM_CLIENT},  {'A', MQTT_PUBCOMP, MQTT_FROM_SERVER},
    {'S', MQTT_SUBSCRIBE, MQTT_FROM_CLIENT}, {'s', MQTT_SUBACK, MQTT_FROM_SERVER},
    {'U', MQTT_UNSUBSCRIBE, MQTT_FROM_CLIENT}, {'u', MQTT_UNSUBACK, MQTT_FROM_SERVER},
    {'D', MQTT_DISCONNECT, MQTT_FROM_CLIENT}, {'H', MQTT_AUTH, MQTT_FROM_CLIENT},
};

static size_t put(uint8_t *o, const void *p, size_t n)
{
    memcpy(o, p, n);
    return n;
}

/* A minimal valid packet of context `ctx` whose (will) property block holds `pb[0..pn)`. */
static size_t build(uint8_t type, const uint8_t *pb, size_t pn, uint8_t *out)
{
    uint8_t body[256];
    size_t n = 0;
    uint8_t first = (uint8_t)(type << 4);
    uint8_t plen = (uint8_t)pn; /* blocks here are < 128 bytes: one-byte length */
    switch (type) {
    case MQTT_CONNECT:
    case WILL:
        first = 0x10;
        n += put(body + n, "\x00\x04MQTT\x05", 7);
        body[n++] = type == WILL ? 0x06 : 0x02;
        n += put(body + n, "\x00\x3C", 2);
        if (type == WILL)
            body[n++] = 0;
        else
            body[n++] = plen, n += put(body + n, pb, pn);
        n += put(body + n, "\x00\x01" "c", 3);
        if (type == WILL) {
            body[n++] = plen, n += put(body + n, pb, pn);
            n += put(body + n, "\x00\x01t\x00\x01x", 6);
        }
        break;
    case MQTT_CONNACK:
        n += put(body + n, "\x00\x00", 2);
        body[n++] = plen, n += put(body + n, pb, pn);
        break;
    case MQTT_PUBLISH:
        n += put(body + n, "\x00\x01t", 3);
        body[n++] = plen, n += put(body + n, pb, pn);
        n += put(body + n, "x", 1);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        if (type == MQTT_PUBREL)
            first |= 2;
        n += put(body + n, "\x00\x01\x00", 3);
        body[n++] = plen, n += put(body + n, pb, pn);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        first |= 2;
        n += put(body + n, "\x00\x01", 2);
        body[n++] = plen, n += put(body + n, pb, pn);
        n += put(body + n, "\x00\x01" "a", 3);
        if (type == MQTT_SUBSCRIBE)
            body[n++] = 0;
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        n += put(body + n, "\x00\x01", 2);
        body[n++] = plen, n += put(body + n, pb, pn);
        body[n++] = 0;
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        body[n++] = type == MQTT_AUTH ? MQTT_RC_CONTINUE_AUTH : 0;
        body[n++] = plen, n += put(body + n, pb, pn);
        break;
    }
    out[0] = first;
    int vl = mqtt_varint_encode((uint32_t)n, out + 1);
    memcpy(out + 1 + vl, body, n);
    return 1 + (size_t)vl + n;
}

static uint8_t decode(const uint8_t *b, size_t n, enum mqtt_side side, mqtt_packet_t *p)
{
    mqtt_header_t h;
    CHECK_EQ(mqtt_header_parse(b, n, &h), 1);
    CHECK_EQ(h.header_len + h.remaining, n);
    return mqtt_decode(&h, b + h.header_len, MQTT_V5, side, p);
}

/* Property `i` `times` times, preceded by an Authentication Method when it is Authentication Data. */
static size_t block(size_t i, int times, uint8_t *pb)
{
    size_t pn = 0;
    if (props[i].id == MQTT_PROP_AUTH_DATA)
        pn += put(pb + pn, "\x15\x00\x01m", 4);
    for (int t = 0; t < times; t++) {
        pb[pn++] = props[i].id;
        pn += put(pb + pn, props[i].value, props[i].vlen);
    }
    return pn;
}

int main(void)
{
    static char name[160];
    uint8_t pkt[512], pb[64];
    mqtt_packet_t p;
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++) {
            bool allowed = strchr(props[i].where, contexts[c].code) != NULL;
            const char *ctx = contexts[c].type == WILL ? "will" : mqtt_type_name(contexts[c].type);
            snprintf(name, sizeof name, "%s in %s: %s", props[i].name, ctx, allowed ? "allowed" : "Malformed (2.2.2.2)");
            CASE(name);
            size_t pn = block(i, 1, pb);
            size_t n = build(contexts[c].type, pb, pn, pkt);
            uint8_t rc = decode(pkt, n, contexts[c].side, &p);
            CHECK_EQ(rc, allowed ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET);
            if (allowed) {
                const mqtt_props_t *got = contexts[c].type == WILL ? &p.connect.will_props : &p.props;
                CHECK(got->has & MQTT_HAS(props[i].id));
            }
            if (!allowed)
                continue;
            /* Twice: only User Property, and Subscription Identifier in a PUBLISH, may repeat. */
            bool repeatable = props[i].id == MQTT_PROP_USER_PROPERTY ||
                              (props[i].id == MQTT_PROP_SUBSCRIPTION_ID && contexts[c].type == MQTT_PUBLISH);
            snprintf(name, sizeof name, "%s twice in %s: %s", props[i].name, ctx,
                     repeatable ? "allowed" : "Protocol Error");
            CASE(name);
            pn = block(i, 2, pb);
            n = build(contexts[c].type, pb, pn, pkt);
            CHECK_EQ(decode(pkt, n, contexts[c].side, &p), repeatable ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR);
            /* Truncated value: Malformed Packet. */
            snprintf(name, sizeof name, "%s truncated in %s: Malformed Packet", props[i].name, ctx);
            CASE(name);
            pn = block(i, 1, pb) - 1;
            n = build(contexts[c].type, pb, pn, pkt);
            CHECK_EQ(decode(pkt, n, contexts[c].side, &p), MQTT_RC_MALFORMED_PACKET);
        }
    }

    CASE("property identifiers never assigned are Malformed");
    for (unsigned id = 0; id < 256; id++) {
        bool known = false;
        for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
            known |= props[i].id == id;
        if (known)
            continue;
        uint8_t b[3] = {(uint8_t)id, 0, 0};
        size_t n = build(MQTT_PUBLISH, b, 3, pkt);
        CHECK_EQ(decode(pkt, n, MQTT_FROM_SERVER, &p), MQTT_RC_MALFORMED_PACKET);
    }

    CASE("Subscription Identifier 268435455 (largest) from a server");
    static const uint8_t big[] = {0x0B, 0xFF, 0xFF, 0xFF, 0x7F};
    size_t n = build(MQTT_PUBLISH, big, sizeof big, pkt);
    CHECK_EQ(decode(pkt, n, MQTT_FROM_SERVER, &p), MQTT_RC_SUCCESS);
    CHECK_EQ(p.props.sub_id, 268435455);
    UNIT_DONE();
}
