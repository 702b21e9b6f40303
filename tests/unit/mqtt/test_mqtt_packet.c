/* test_mqtt_packet.c -- round trips of every packet type for MQTT 3.1, 3.1.1 and 5.0 with every
 * property the packet may carry: encode, check mqtt_encoded_len, decode, compare fields, re-encode to
 * the same bytes. Plus fixed byte vectors as real clients send them. */
#include <string.h>

#include "mqtt/packet.h"
#include "unit.h"

#define B(s) ((mqtt_bytes_t){(const uint8_t *)(s), (uint32_t)(sizeof(s) - 1)})

static uint8_t buf[8192], buf2[8192];

static bool bytes_eq(mqtt_bytes_t a, mqtt_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Encode p, decode what was written as sent by `side`, re-encode the result to the same bytes. */
static size_t roundtrip(const mqtt_packet_t *p, uint8_t v, enum mqtt_side side, mqtt_packet_t *d)
{
    size_t n = mqtt_encoded_len(p, v);
    CHECK(n <= sizeof buf);
    size_t w = mqtt_encode(p, v, buf);
    CHECK_EQ(w, n);
    mqtt_header_t h;
    memset(d, 0xA5, sizeof *d); /* decode must not depend on the output's prior contents */
    CHECK_EQ(mqtt_header_parse(buf, w, &h), 1);
    CHECK_EQ(mqtt_header_parse(buf, h.header_len - 1, &h), 0);
    CHECK_EQ(mqtt_header_parse(buf, w, &h), 1);
    CHECK_EQ(h.type, p->type);
    CHECK_EQ(h.header_len + h.remaining, w);
    CHECK_EQ(mqtt_decode(&h, buf + h.header_len, v, side, d), MQTT_RC_SUCCESS);
    CHECK_EQ(d->type, p->type);
    CHECK_EQ(mqtt_encoded_len(d, v), w);
    size_t w2 = mqtt_encode(d, v, buf2);
    CHECK_MEM(buf, w, buf2, w2);
    return w;
}

static const mqtt_strpair_t users[] = {
    {{(const uint8_t *)"k1", 2}, {(const uint8_t *)"v1", 2}},
    {{(const uint8_t *)"k1", 2}, {(const uint8_t *)"second \xC3\xA9", 9}}, /* repeated key is allowed */
};
static const uint32_t sub_ids[] = {1, 127, 128, 268435455};

/* Every property allowed in `ctx` (a packet type, or 0 for the will) with distinctive values. */
static void fill_props(mqtt_props_t *p, int ctx, enum mqtt_side side)
{
    memset(p, 0, sizeof *p);
    p->user = users;
    p->user_n = 2;
    p->has |= MQTT_HAS(MQTT_PROP_USER_PROPERTY);
    switch (ctx) {
    case 0: /* will */
        p->has |= MQTT_HAS(MQTT_PROP_WILL_DELAY);
        p->will_delay = 0x01020304;
        /* the will has the PUBLISH message properties */
        __attribute__((fallthrough));
    case MQTT_PUBLISH:
        p->has |= MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) |
                  MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) |
                  MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
        p->payload_format = 1;
        p->message_expiry = 0xFFFFFFFF;
        p->content_type = B("text/plain; charset=utf-8");
        p->response_topic = B("reply/to/me");
        p->correlation_data = B("\x00\x01\xFF binary");
        if (ctx == MQTT_PUBLISH) {
            p->has |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
            p->topic_alias = 65535;
            if (side == MQTT_FROM_SERVER) {
                p->has |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
                p->sub_ids = sub_ids;
                p->sub_id_n = 4;
            }
        }
        break;
    case MQTT_CONNECT:
        p->has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_RECEIVE_MAX) |
                  MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) |
                  MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO) | MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO) |
                  MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
        p->session_expiry = 3600;
        p->receive_max = 1;
        p->max_packet_size = 268435460;
        p->topic_alias_max = 10;
        p->request_response_info = 1;
        p->request_problem_info = 0;
        p->auth_method = B("SCRAM-SHA-1");
        p->auth_data = B("\x01\x02");
        break;
    case MQTT_CONNACK:
        p->has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_RECEIVE_MAX) |
                  MQTT_HAS(MQTT_PROP_MAX_QOS) | MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE) |
                  MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) | MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID) |
                  MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_HAS(MQTT_PROP_REASON_STRING) |
                  MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE) | MQTT_HAS(MQTT_PROP_SUB_ID_AVAILABLE) |
                  MQTT_HAS(MQTT_PROP_SHARED_SUB_AVAILABLE) | MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE) |
                  MQTT_HAS(MQTT_PROP_RESPONSE_INFO) | MQTT_HAS(MQTT_PROP_SERVER_REFERENCE) |
                  MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
        p->session_expiry = 0;
        p->receive_max = 65535;
        p->max_qos = 1;
        p->retain_available = 0;
        p->max_packet_size = 1;
        p->assigned_client_id = B("auto-1234");
        p->topic_alias_max = 0;
        p->reason_string = B("welcome");
        p->wildcard_sub_available = 1;
        p->sub_id_available = 0;
        p->shared_sub_available = 1;
        p->server_keep_alive = 30;
        p->response_info = B("resp/");
        p->server_reference = B("other:1883");
        p->auth_method = B("SCRAM-SHA-1");
        p->auth_data = B("");
        break;
    case MQTT_SUBSCRIBE:
        p->has |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        p->sub_id = 268435455;
        break;
    case MQTT_DISCONNECT:
        if (side == MQTT_FROM_CLIENT) {
            p->has |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
            p->session_expiry = 7;
        }
        p->has |= MQTT_HAS(MQTT_PROP_SERVER_REFERENCE);
        p->server_reference = B("elsewhere");
        __attribute__((fallthrough));
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        p->has |= MQTT_HAS(MQTT_PROP_REASON_STRING);
        p->reason_string = B("because");
        break;
    case MQTT_AUTH:
        p->has |= MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA) |
                  MQTT_HAS(MQTT_PROP_REASON_STRING);
        p->auth_method = B("SCRAM-SHA-1");
        p->auth_data = B("challenge");
        p->reason_string = B("continue");
        break;
    }
}

/* Decoded properties equal the ones filled in. */
static void check_props(const mqtt_props_t *want, const mqtt_props_t *got)
{
    uint64_t h = want->has;
    CHECK_EQ(got->has, h);
#define F(id, field)                         \
    if (h & MQTT_HAS(id))                    \
        CHECK_EQ(got->field, want->field);
#define FB(id, field)                        \
    if (h & MQTT_HAS(id))                    \
        CHECK(bytes_eq(got->field, want->field));
    F(MQTT_PROP_PAYLOAD_FORMAT, payload_format)
    F(MQTT_PROP_REQUEST_PROBLEM_INFO, request_problem_info)
    F(MQTT_PROP_REQUEST_RESPONSE_INFO, request_response_info)
    F(MQTT_PROP_MAX_QOS, max_qos)
    F(MQTT_PROP_RETAIN_AVAILABLE, retain_available)
    F(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available)
    F(MQTT_PROP_SUB_ID_AVAILABLE, sub_id_available)
    F(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_sub_available)
    F(MQTT_PROP_SERVER_KEEP_ALIVE, server_keep_alive)
    F(MQTT_PROP_RECEIVE_MAX, receive_max)
    F(MQTT_PROP_TOPIC_ALIAS_MAX, topic_alias_max)
    F(MQTT_PROP_TOPIC_ALIAS, topic_alias)
    F(MQTT_PROP_MESSAGE_EXPIRY, message_expiry)
    F(MQTT_PROP_SESSION_EXPIRY, session_expiry)
    F(MQTT_PROP_WILL_DELAY, will_delay)
    F(MQTT_PROP_MAX_PACKET_SIZE, max_packet_size)
    FB(MQTT_PROP_CONTENT_TYPE, content_type)
    FB(MQTT_PROP_RESPONSE_TOPIC, response_topic)
    FB(MQTT_PROP_CORRELATION_DATA, correlation_data)
    FB(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id)
    FB(MQTT_PROP_AUTH_METHOD, auth_method)
    FB(MQTT_PROP_AUTH_DATA, auth_data)
    FB(MQTT_PROP_RESPONSE_INFO, response_info)
    FB(MQTT_PROP_SERVER_REFERENCE, server_reference)
    FB(MQTT_PROP_REASON_STRING, reason_string)
#undef F
#undef FB
    /* User properties, in order, through the iterator. */
    CHECK_EQ(got->user_n, want->user_n);
    CHECK(got->user == NULL);
    mqtt_bytes_t c = got->user_src;
    mqtt_strpair_t kv;
    uint32_t i = 0;
    while (mqtt_props_next_user(&c, &kv)) {
        CHECK(i < want->user_n);
        if (i < want->user_n) {
            CHECK(bytes_eq(kv.key, want->user[i].key));
            CHECK(bytes_eq(kv.val, want->user[i].val));
        }
        i++;
    }
    CHECK_EQ(i, want->user_n);
    /* Subscription identifiers. */
    if (h & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) {
        uint32_t n = want->sub_ids ? want->sub_id_n : 1;
        CHECK_EQ(got->sub_id_n, n);
        CHECK_EQ(got->sub_id, want->sub_ids ? want->sub_ids[0] : want->sub_id);
        c = got->raw;
        uint32_t id;
        i = 0;
        while (mqtt_props_next_sub_id(&c, &id)) {
            if (want->sub_ids && i < n)
                CHECK_EQ(id, want->sub_ids[i]);
            i++;
        }
        CHECK_EQ(i, n);
    }
}

static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};

static void test_connect(void)
{
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        for (int variant = 0; variant < 4; variant++) {
            CASE(variant == 0 ? "CONNECT minimal" : variant == 1 ? "CONNECT will+user+password" : variant == 2 ? "CONNECT will qos2 retain" : "CONNECT empty client id");
            mqtt_packet_t p, d;
            memset(&p, 0, sizeof p);
            p.type = MQTT_CONNECT;
            p.connect.version = v;
            p.connect.keepalive = (uint16_t)(variant * 1000 + 60);
            p.connect.clean = variant != 2;
            p.connect.client_id = variant == 3 ? B("") : B("client-\xC3\xA9");
            if (variant == 1 || variant == 2) {
                p.connect.will = 1;
                p.connect.will_qos = (uint8_t)variant;
                p.connect.will_retain = variant == 2;
                p.connect.will_topic = B("wills/a");
                p.connect.will_payload = variant == 1 ? B("gone \xE2\x9C\x93") : B("");
                p.connect.has_username = 1;
                p.connect.username = B("alice");
                p.connect.has_password = 1;
                p.connect.password = B("\x00secret\xFF");
            }
            if (v == MQTT_V5 && variant == 1) {
                fill_props(&p.props, MQTT_CONNECT, MQTT_FROM_CLIENT);
                fill_props(&p.connect.will_props, 0, MQTT_FROM_CLIENT);
            }
            roundtrip(&p, v, MQTT_FROM_CLIENT, &d);
            CHECK_EQ(d.connect.version, v);
            CHECK_EQ(d.connect.keepalive, p.connect.keepalive);
            CHECK_EQ(d.connect.clean, p.connect.clean);
            CHECK(bytes_eq(d.connect.client_id, p.connect.client_id));
            CHECK_EQ(d.connect.will, p.connect.will);
            CHECK_EQ(d.connect.will_qos, p.connect.will_qos);
            CHECK_EQ(d.connect.will_retain, p.connect.will_retain);
            CHECK_EQ(d.connect.has_username, p.connect.has_username);
            CHECK_EQ(d.connect.has_password, p.connect.has_password);
            if (p.connect.will) {
                CHECK(bytes_eq(d.connect.will_topic, p.connect.will_topic));
                CHECK(bytes_eq(d.connect.will_payload, p.connect.will_payload));
                CHECK(bytes_eq(d.connect.username, p.connect.username));
                CHECK(bytes_eq(d.connect.password, p.connect.password));
            }
            if (v == MQTT_V5) {
                check_props(&p.props, &d.props);
                if (p.connect.will)
                    check_props(&p.connect.will_props, &d.connect.will_props);
            }
        }
    }
    for (size_t vi = 0; vi < 3; vi++) {
        CASE("Mosquitto bridge CONNECT (protocol level with bit 7)");
        mqtt_packet_t b, bd;
        memset(&b, 0, sizeof b);
        b.type = MQTT_CONNECT;
        b.connect.version = versions[vi];
        b.connect.bridge = 1;
        b.connect.client_id = B("bridge");
        roundtrip(&b, versions[vi], MQTT_FROM_CLIENT, &bd);
        CHECK_EQ(buf[2 + (versions[vi] == MQTT_V31 ? 8 : 6)], versions[vi] | 0x80);
        CHECK_EQ(bd.connect.version, versions[vi]);
        CHECK_EQ(bd.connect.bridge, 1);
    }
    CASE("[MQTT-3.1.2-22] v5 CONNECT with a password and no user name");
    mqtt_packet_t p, d;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    p.connect.version = MQTT_V5;
    p.connect.client_id = B("c");
    p.connect.has_password = 1;
    p.connect.password = B("pw");
    roundtrip(&p, MQTT_V5, MQTT_FROM_CLIENT, &d);
    CHECK(bytes_eq(d.connect.password, p.connect.password));
    CHECK_EQ(d.connect.has_username, 0);
}

static void test_connack(void)
{
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        for (int sp = 0; sp < 2; sp++) {
            CASE("CONNACK");
            mqtt_packet_t p, d;
            memset(&p, 0, sizeof p);
            p.type = MQTT_CONNACK;
            p.connack.session_present = (uint8_t)sp;
            p.reason = sp ? 0 : (v == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_CONNACK_NOT_AUTHORIZED);
            if (v == MQTT_V5)
                fill_props(&p.props, MQTT_CONNACK, MQTT_FROM_SERVER);
            size_t n = roundtrip(&p, v, MQTT_FROM_SERVER, &d);
            if (v != MQTT_V5)
                CHECK_EQ(n, 4);
            CHECK_EQ(d.connack.session_present, sp);
            CHECK_EQ(d.reason, p.reason);
            if (v == MQTT_V5)
                check_props(&p.props, &d.props);
        }
    }
}

static void test_publish(void)
{
    static uint8_t big[70000];
    memset(big, 'x', sizeof big);
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        for (int side = 0; side < 2; side++) {
            for (uint8_t qos = 0; qos < 3; qos++) {
                for (int variant = 0; variant < 3; variant++) {
                    CASE("PUBLISH");
                    mqtt_packet_t p, d;
                    memset(&p, 0, sizeof p);
                    p.type = MQTT_PUBLISH;
                    p.publish.qos = qos;
                    p.publish.retain = variant == 1;
                    p.publish.dup = qos && variant == 2;
                    p.id = qos ? (uint16_t)(65535 - variant) : 0;
                    p.publish.topic = B("sensors/\xE2\x82\xAC/temp");
                    p.publish.payload = variant == 0 ? B("") : variant == 1 ? B("21.5 \xC2\xB0" "C") : (mqtt_bytes_t){big, 200};
                    if (v == MQTT_V5 && variant == 1)
                        fill_props(&p.props, MQTT_PUBLISH, (enum mqtt_side)side);
                    size_t n = roundtrip(&p, v, (enum mqtt_side)side, &d);
                    CHECK_EQ(d.publish.qos, qos);
                    CHECK_EQ(d.publish.retain, p.publish.retain);
                    CHECK_EQ(d.publish.dup, p.publish.dup);
                    CHECK_EQ(d.id, p.id);
                    CHECK(bytes_eq(d.publish.topic, p.publish.topic));
                    CHECK(bytes_eq(d.publish.payload, p.publish.payload));
                    if (v == MQTT_V5)
                        check_props(&p.props, &d.props);
                    if (qos) {
                        size_t off = mqtt_publish_id_offset(&p, v);
                        CHECK(off + 2 <= n);
                        CHECK_EQ(buf[off] << 8 | buf[off + 1], p.id);
                    }
                }
            }
        }
        CASE("PUBLISH with a 4-byte remaining length");
        mqtt_packet_t p, d;
        memset(&p, 0, sizeof p);
        p.type = MQTT_PUBLISH;
        p.publish.topic = B("t");
        p.publish.payload = (mqtt_bytes_t){big, 3000};
        CHECK_EQ(mqtt_encoded_len(&p, v), 1 + 2 + 3 + 3000 + (v == MQTT_V5));
        roundtrip(&p, v, MQTT_FROM_CLIENT, &d);
        CHECK_EQ(d.publish.payload.len, 3000);
    }
    CASE("v5 PUBLISH with a topic alias and an empty topic");
    mqtt_packet_t p, d;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.props.has = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.props.topic_alias = 3;
    p.publish.payload = B("x");
    roundtrip(&p, MQTT_V5, MQTT_FROM_CLIENT, &d);
    CHECK_EQ(d.publish.topic.len, 0);
    CHECK_EQ(d.props.topic_alias, 3);
}

static void test_acks(void)
{
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        for (size_t ti = 0; ti < 4; ti++) {
            for (int variant = 0; variant < 3; variant++) {
                CASE("PUBACK/PUBREC/PUBREL/PUBCOMP");
                mqtt_packet_t p, d;
                memset(&p, 0, sizeof p);
                p.type = types[ti];
                p.id = (uint16_t)(1 + variant * 1000);
                bool rel = p.type == MQTT_PUBREL || p.type == MQTT_PUBCOMP;
                if (v == MQTT_V5 && variant >= 1)
                    p.reason = rel ? MQTT_RC_PACKET_ID_NOT_FOUND : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
                if (v == MQTT_V5 && variant == 2)
                    fill_props(&p.props, p.type, MQTT_FROM_SERVER);
                size_t n = roundtrip(&p, v, variant ? MQTT_FROM_SERVER : MQTT_FROM_CLIENT, &d);
                /* 5.0 short forms: 2 bytes for success without properties, 3 with a reason only. */
                CHECK_EQ(n, v != MQTT_V5 || variant == 0 ? 4 : variant == 1 ? 5 : n);
                CHECK_EQ(buf[0], p.type << 4 | (p.type == MQTT_PUBREL ? 2 : 0));
                CHECK_EQ(d.id, p.id);
                CHECK_EQ(d.reason, p.reason);
                if (v == MQTT_V5)
                    check_props(&p.props, &d.props);
            }
        }
    }
}

static void test_subscribe(void)
{
    static const mqtt_sub_t subs[] = {
        {.filter = {(const uint8_t *)"test/+", 6}, .qos = 0},
        {.filter = {(const uint8_t *)"a/#", 3}, .qos = 1, .no_local = 1},
        {.filter = {(const uint8_t *)"$share/g/x/+", 12}, .qos = 2, .retain_as_published = 1, .retain_handling = 2},
        {.filter = {(const uint8_t *)"#", 1}, .options = 0x11},
    };
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        CASE("SUBSCRIBE");
        mqtt_packet_t p, d;
        memset(&p, 0, sizeof p);
        p.type = MQTT_SUBSCRIBE;
        p.id = 42;
        p.subscribe.list = subs;
        p.subscribe.count = 4;
        if (v == MQTT_V5)
            fill_props(&p.props, MQTT_SUBSCRIBE, MQTT_FROM_CLIENT);
        roundtrip(&p, v, MQTT_FROM_CLIENT, &d);
        CHECK_EQ(buf[0], 0x82);
        CHECK_EQ(d.id, 42);
        CHECK_EQ(d.subscribe.count, 4);
        CHECK(d.subscribe.list == NULL);
        mqtt_bytes_t c = d.subscribe.entries;
        mqtt_sub_t s;
        uint32_t i = 0;
        while (mqtt_sub_next(v, &c, &s)) {
            CHECK(bytes_eq(s.filter, subs[i].filter));
            CHECK_EQ(s.qos, subs[i].qos | (subs[i].options & 3));
            if (v == MQTT_V5) {
                CHECK_EQ(s.no_local, subs[i].no_local | ((subs[i].options >> 2) & 1));
                CHECK_EQ(s.retain_as_published, subs[i].retain_as_published);
                CHECK_EQ(s.retain_handling, subs[i].retain_handling | ((subs[i].options >> 4) & 3));
            } else {
                CHECK_EQ(s.no_local + s.retain_as_published + s.retain_handling, 0);
            }
            i++;
        }
        CHECK_EQ(i, 4);
        if (v == MQTT_V5)
            check_props(&p.props, &d.props);

        CASE("SUBACK");
        static const uint8_t codes5[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
        static const uint8_t codes3[] = {0x00, 0x01, 0x02, 0x80};
        memset(&p, 0, sizeof p);
        p.type = MQTT_SUBACK;
        p.id = 42;
        p.suback.codes = v == MQTT_V5 ? (mqtt_bytes_t){codes5, sizeof codes5} : (mqtt_bytes_t){codes3, sizeof codes3};
        if (v == MQTT_V5)
            fill_props(&p.props, MQTT_SUBACK, MQTT_FROM_SERVER);
        roundtrip(&p, v, MQTT_FROM_SERVER, &d);
        CHECK_EQ(d.id, 42);
        CHECK(bytes_eq(d.suback.codes, p.suback.codes));
        if (v == MQTT_V5)
            check_props(&p.props, &d.props);

        CASE("UNSUBSCRIBE");
        static const mqtt_bytes_t filters[] = {{(const uint8_t *)"a/b", 3}, {(const uint8_t *)"+/#", 3}};
        memset(&p, 0, sizeof p);
        p.type = MQTT_UNSUBSCRIBE;
        p.id = 7;
        p.unsubscribe.list = filters;
        p.unsubscribe.count = 2;
        if (v == MQTT_V5)
            fill_props(&p.props, MQTT_UNSUBSCRIBE, MQTT_FROM_CLIENT);
        roundtrip(&p, v, MQTT_FROM_CLIENT, &d);
        CHECK_EQ(buf[0], 0xA2);
        CHECK_EQ(d.id, 7);
        CHECK_EQ(d.unsubscribe.count, 2);
        c = d.unsubscribe.entries;
        mqtt_bytes_t f;
        i = 0;
        while (mqtt_unsub_next(&c, &f)) {
            CHECK(bytes_eq(f, filters[i]));
            i++;
        }
        CHECK_EQ(i, 2);
        if (v == MQTT_V5)
            check_props(&p.props, &d.props);

        CASE("UNSUBACK");
        static const uint8_t ucodes[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
        memset(&p, 0, sizeof p);
        p.type = MQTT_UNSUBACK;
        p.id = 7;
        if (v == MQTT_V5) {
            p.suback.codes = (mqtt_bytes_t){ucodes, sizeof ucodes};
            fill_props(&p.props, MQTT_UNSUBACK, MQTT_FROM_SERVER);
        }
        size_t n = roundtrip(&p, v, MQTT_FROM_SERVER, &d);
        if (v != MQTT_V5)
            CHECK_EQ(n, 4);
        CHECK_EQ(d.id, 7);
        CHECK(bytes_eq(d.suback.codes, p.suback.codes));
    }
}

static void test_small(void)
{
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        mqtt_packet_t p, d;
        CASE("PINGREQ / PINGRESP");
        memset(&p, 0, sizeof p);
        p.type = MQTT_PINGREQ;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_CLIENT, &d), 2);
        CHECK_EQ(buf[0], 0xC0);
        p.type = MQTT_PINGRESP;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_SERVER, &d), 2);
        CHECK_EQ(buf[0], 0xD0);

        CASE("DISCONNECT");
        memset(&p, 0, sizeof p);
        p.type = MQTT_DISCONNECT;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_CLIENT, &d), 2);
        CHECK_EQ(d.reason, 0);
        if (v != MQTT_V5)
            continue;
        p.reason = MQTT_RC_DISCONNECT_WITH_WILL;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_CLIENT, &d), 3);
        CHECK_EQ(d.reason, MQTT_RC_DISCONNECT_WITH_WILL);
        for (int side = 0; side < 2; side++) {
            p.reason = side ? MQTT_RC_SESSION_TAKEN_OVER : MQTT_RC_SUCCESS;
            fill_props(&p.props, MQTT_DISCONNECT, (enum mqtt_side)side);
            roundtrip(&p, v, (enum mqtt_side)side, &d);
            CHECK_EQ(d.reason, p.reason);
            check_props(&p.props, &d.props);
        }

        CASE("AUTH");
        memset(&p, 0, sizeof p);
        p.type = MQTT_AUTH;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_SERVER, &d), 2); /* Success: only a server sends it */
        p.reason = MQTT_RC_REAUTHENTICATE;
        CHECK_EQ(roundtrip(&p, v, MQTT_FROM_CLIENT, &d), 4);
        CHECK_EQ(d.reason, MQTT_RC_REAUTHENTICATE);
        p.reason = MQTT_RC_CONTINUE_AUTH;
        fill_props(&p.props, MQTT_AUTH, MQTT_FROM_SERVER);
        roundtrip(&p, v, MQTT_FROM_SERVER, &d);
        CHECK_EQ(d.reason, MQTT_RC_CONTINUE_AUTH);
        check_props(&p.props, &d.props);
    }
}

/* Bytes as real clients send them (paho-mqtt / mosquitto_pub captures). */
static void test_vectors(void)
{
    mqtt_packet_t p;
    mqtt_header_t h;
    CASE("paho 3.1.1 CONNECT bytes");
    static const uint8_t c311[] = {0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C,
                                   0x00, 0x04, 'p', 'a', 'h', 'o'};
    CHECK_EQ(mqtt_header_parse(c311, sizeof c311, &h), 1);
    CHECK_EQ(mqtt_decode(&h, c311 + 2, 0, MQTT_FROM_CLIENT, &p), 0);
    CHECK_EQ(p.connect.version, 4);
    CHECK_EQ(p.connect.keepalive, 60);
    CHECK_EQ(p.connect.clean, 1);
    CHECK_EQ(mqtt_encode(&p, 4, buf), sizeof c311);
    CHECK_MEM(buf, sizeof c311, c311, sizeof c311);

    CASE("3.1 CONNECT bytes");
    static const uint8_t c31[] = {0x10, 0x0F, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x0A,
                                  0x00, 0x01, 'x'};
    CHECK_EQ(mqtt_header_parse(c31, sizeof c31, &h), 1);
    CHECK_EQ(mqtt_decode(&h, c31 + 2, 0, MQTT_FROM_CLIENT, &p), 0);
    CHECK_EQ(p.connect.version, 3);
    CHECK_EQ(mqtt_encode(&p, 3, buf), sizeof c31);
    CHECK_MEM(buf, sizeof c31, c31, sizeof c31);

    CASE("5.0 CONNECT bytes with Session Expiry and Receive Maximum");
    static const uint8_t c5[] = {0x10, 0x16, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x08,
                                 0x11, 0x00, 0x00, 0x00, 0x0A, 0x21, 0x00, 0x14, 0x00, 0x01, 'c'};
    CHECK_EQ(mqtt_header_parse(c5, sizeof c5, &h), 1);
    CHECK_EQ(mqtt_decode(&h, c5 + 2, 0, MQTT_FROM_CLIENT, &p), 0);
    CHECK_EQ(p.connect.version, 5);
    CHECK_EQ(p.props.session_expiry, 10);
    CHECK_EQ(p.props.receive_max, 20);
    CHECK_EQ(mqtt_encode(&p, 5, buf), sizeof c5);
    CHECK_MEM(buf, sizeof c5, c5, sizeof c5);

    CASE("3.1.1 PUBLISH qos1 bytes");
    static const uint8_t pub[] = {0x32, 0x0A, 0x00, 0x04, 't', 'e', 's', 't', 0x00, 0x01, 'h', 'i'};
    CHECK_EQ(mqtt_header_parse(pub, sizeof pub, &h), 1);
    CHECK_EQ(mqtt_decode(&h, pub + 2, 4, MQTT_FROM_CLIENT, &p), 0);
    CHECK_EQ(p.id, 1);
    CHECK_EQ(p.publish.payload.len, 2);
    CHECK_EQ(mqtt_publish_id_offset(&p, 4), 8);

    CASE("varint helpers");
    uint8_t vb[4];
    static const uint32_t vals[] = {0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455};
    for (size_t i = 0; i < 8; i++) {
        int n = mqtt_varint_encode(vals[i], vb);
        CHECK_EQ(n, mqtt_varint_len(vals[i]));
        CHECK_EQ(n, 1 + (i >= 2) + (i >= 4) + (i >= 6));
        uint32_t x;
        CHECK_EQ(mqtt_varint_decode(vb, (size_t)n, &x), n);
        CHECK_EQ(x, vals[i]);
        CHECK_EQ(mqtt_varint_decode(vb, (size_t)n - 1, &x), 0);
    }
}

int main(void)
{
    test_connect();
    test_connack();
    test_publish();
    test_acks();
    test_subscribe();
    test_small();
    test_vectors();
    UNIT_DONE();
}
