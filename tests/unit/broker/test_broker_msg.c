/* test_broker_msg.c -- unit tests of reference-counted messages (src/broker/msg.c): msg_new keeps
 * topic, payload and the forwardable MQTT 5 properties of a decoded PUBLISH and nothing else; its
 * message expiry becomes a deadline; msg_encoded gives, per class, bytes the codec decodes back to
 * the same PUBLISH, made once and shared; the last msg_release (only) calls the store's hook. */
#include <stdint.h>
#include <string.h>

#include "base/slab.h"
#include "broker/msg.h"
#include "broker/msg_hook.h"
#include "mqtt/mqtt.h"
#include "unit.h"

#define B(s) ((mqtt_bytes_t){(const uint8_t *)(s), (uint32_t)strlen(s)})

static int bytes_eq(mqtt_bytes_t a, const char *s)
{
    return a.len == strlen(s) && (a.len == 0 || memcmp(a.p, s, a.len) == 0);
}

/* Decode one whole packet at buf[0..n): 1 on success (n must be exactly the packet). */
static int decode(const uint8_t *buf, size_t n, uint8_t version, mqtt_packet_t *p)
{
    mqtt_header_t h;
    if (mqtt_header_parse(buf, n, &h) != 1 || h.header_len + h.remaining != n)
        return 0;
    return mqtt_decode(&h, buf + h.header_len, version, MQTT_FROM_SERVER, p) == MQTT_RC_SUCCESS;
}

/* A PUBLISH as a v5 client sends it, decoded as handle_publish gets it: every forwardable property,
 * two user properties, a message expiry and a topic alias (neither of which is forwarded as is). */
static uint8_t wire[512];
static mqtt_packet_t client_publish(uint32_t expiry_s)
{
    static const mqtt_strpair_t user[2] = {{{(const uint8_t *)"k1", 2}, {(const uint8_t *)"v1", 2}},
                                           {{(const uint8_t *)"k2", 2}, {(const uint8_t *)"", 0}}};
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.id = 7;
    p.publish.qos = 1;
    p.publish.topic = B("a/b");
    p.publish.payload = B("hello");
    p.props.has = MSG_FORWARD_PROPS | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.props.payload_format = 1;
    p.props.content_type = B("text/plain");
    p.props.response_topic = B("reply/here");
    p.props.correlation_data = B("\x01\x02\x03");
    p.props.user = user;
    p.props.user_n = 2;
    p.props.topic_alias = 3;
    if (expiry_s) {
        p.props.has |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
        p.props.message_expiry = expiry_s;
    }
    size_t n = mqtt_encode(&p, MQTT_V5, wire);
    mqtt_header_t h;
    mqtt_packet_t d;
    memset(&d, 0, sizeof(d));
    CHECK_EQ(mqtt_header_parse(wire, n, &h), 1);
    CHECK_EQ(mqtt_decode(&h, wire + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &d), MQTT_RC_SUCCESS);
    return d;
}

/* The user properties of a property block as "k=v;k=v;". */
static void users(mqtt_bytes_t src, char *out, size_t cap)
{
    mqtt_strpair_t kv;
    size_t o = 0;
    out[0] = 0;
    while (mqtt_props_next_user(&src, &kv) && o + kv.key.len + kv.val.len + 3 < cap) {
        memcpy(out + o, kv.key.p, kv.key.len);
        o += kv.key.len;
        out[o++] = '=';
        memcpy(out + o, kv.val.p, kv.val.len);
        o += kv.val.len;
        out[o++] = ';';
        out[o] = 0;
    }
}

static void test_new_copies(void)
{
    CASE("msg_new copies topic, payload and the forwardable properties: the source may go");
    mqtt_packet_t d = client_publish(0);
    msg_t *m = msg_new(d.publish.topic, d.publish.payload, 1, 1, &d.props, 1000);
    memset(wire, 0xEE, sizeof(wire)); /* what the views of d pointed into */
    CHECK_EQ(atomic_load(&m->refs), 1);
    CHECK_EQ(m->qos, 1);
    CHECK_EQ(m->retain, 1);
    CHECK(bytes_eq(m->topic, "a/b"));
    CHECK(bytes_eq(m->payload, "hello"));
    CHECK(m->topic.p >= m->data && m->payload.p >= m->data); /* in the message's own block */
    CHECK_EQ(m->has_expiry, 0);
    CHECK_EQ(m->store_id, 0);

    CASE("[MQTT-3.3.2-4..20] the forwarded properties, and not the topic alias");
    mqtt_props_t pr;
    msg_props(m, &pr);
    CHECK_EQ(pr.has & ~MSG_FORWARD_PROPS, 0);
    CHECK(!(pr.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)));
    CHECK(!(pr.has & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)));
    CHECK_EQ(pr.payload_format, 1);
    CHECK(bytes_eq(pr.content_type, "text/plain"));
    CHECK(bytes_eq(pr.response_topic, "reply/here"));
    CHECK(bytes_eq(pr.correlation_data, "\x01\x02\x03"));
    CHECK_EQ(pr.user_n, 2);
    char u[128];
    users(pr.user_src, u, sizeof(u));
    CHECK_STR(u, "k1=v1;k2=;");
    msg_release(m);

    CASE("a v3 publisher's message (props NULL) and an empty payload");
    m = msg_new(B("t"), (mqtt_bytes_t){NULL, 0}, 0, 0, NULL, 0);
    msg_props(m, &pr);
    CHECK_EQ(pr.has, 0);
    CHECK_EQ(pr.user_n, 0);
    CHECK_EQ(m->payload.len, 0);
    CHECK(bytes_eq(m->topic, "t"));
    msg_release(m);

    CASE("properties with only some set: absent ones stay absent");
    /* Through the codec: msg_new's views must point into props->raw, as decoded ones do. */
    mqtt_packet_t q;
    memset(&q, 0, sizeof(q));
    q.type = MQTT_PUBLISH;
    q.publish.topic = B("t");
    q.publish.payload = B("x");
    q.props.has = MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    q.props.content_type = B("ct");
    q.props.topic_alias = 1;
    mqtt_header_t h;
    size_t n = mqtt_encode(&q, MQTT_V5, wire);
    memset(&d, 0, sizeof(d));
    CHECK(mqtt_header_parse(wire, n, &h) == 1 &&
          mqtt_decode(&h, wire + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &d) == MQTT_RC_SUCCESS);
    m = msg_new(d.publish.topic, d.publish.payload, 0, 0, &d.props, 0);
    msg_props(m, &pr);
    CHECK_EQ(pr.has, MQTT_HAS(MQTT_PROP_CONTENT_TYPE));
    CHECK(bytes_eq(pr.content_type, "ct"));
    CHECK_EQ(pr.correlation_data.len, 0);
    msg_release(m);
}

static void test_expiry(void)
{
    CASE("[MQTT-3.3.2-5] message expiry becomes a deadline from the time it was built");
    mqtt_packet_t d = client_publish(10);
    int64_t t0 = 50000;
    msg_t *m = msg_new(d.publish.topic, d.publish.payload, 1, 0, &d.props, t0);
    CHECK_EQ(m->has_expiry, 1);
    CHECK_EQ(m->expiry_at, t0 + 10000);
    CHECK_EQ(msg_expiry_left(m, t0), 10);
    CHECK_EQ(msg_expiry_left(m, t0 + 1), 10);    /* rounded up: never 0 while alive */
    CHECK_EQ(msg_expiry_left(m, t0 + 1000), 9);
    CHECK_EQ(msg_expiry_left(m, t0 + 9999), 1);
    CHECK_EQ(msg_expiry_left(m, t0 + 10000), 0);
    CHECK_EQ(msg_expiry_left(m, t0 + 99999), 0);
    CHECK(!msg_expired(m, t0));
    CHECK(!msg_expired(m, t0 + 9999));
    CHECK(msg_expired(m, t0 + 10000));
    CHECK(msg_expired(m, t0 + 20000));
    msg_release(m);

    CASE("without the property it never expires");
    d = client_publish(0);
    m = msg_new(d.publish.topic, d.publish.payload, 1, 0, &d.props, t0);
    CHECK(!msg_expired(m, INT64_MAX / 2));
    msg_release(m);

    CASE("an expiry of 0 seconds is due at once");
    mqtt_props_t z = {0};
    z.has = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    z.message_expiry = 0;
    m = msg_new(B("t"), B("x"), 0, 0, &z, t0);
    CHECK_EQ(m->has_expiry, 1);
    CHECK(msg_expired(m, t0));
    msg_release(m);
}

static void check_class(msg_t *m, uint8_t version, uint8_t qos, uint8_t retain)
{
    const msg_enc_t *e = msg_encoded(m, version, qos, retain);
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    CHECK(e != NULL && e->len > 0);
    CHECK(decode(e->bytes, e->len, version, &p));
    CHECK_EQ(p.type, MQTT_PUBLISH);
    CHECK_EQ(p.publish.qos, qos);
    CHECK_EQ(p.publish.retain, retain);
    CHECK_EQ(p.publish.dup, 0);
    CHECK(bytes_eq(p.publish.topic, "a/b"));
    CHECK(bytes_eq(p.publish.payload, "hello"));
    if (version == MQTT_V5) {
        CHECK_EQ(p.props.has & ~MSG_FORWARD_PROPS, 0); /* no expiry, alias, subscription id */
        CHECK(bytes_eq(p.props.content_type, "text/plain"));
        CHECK(bytes_eq(p.props.response_topic, "reply/here"));
        CHECK(bytes_eq(p.props.correlation_data, "\x01\x02\x03"));
        CHECK_EQ(p.props.payload_format, 1);
        char u[128];
        users(p.props.raw, u, sizeof(u));
        CHECK_STR(u, "k1=v1;k2=;");
    } else {
        CHECK_EQ(p.props.has, 0);
    }
    if (qos) {
        /* The packet id sits at id_off: the receiver's own id is patched in there. */
        CHECK(e->id_off > 0 && e->id_off + 2 <= e->len);
        CHECK_EQ(p.id, (e->bytes[e->id_off] << 8) | e->bytes[e->id_off + 1]);
        uint8_t copy[512];
        memcpy(copy, e->bytes, e->len);
        copy[e->id_off] = 0xAB;
        copy[e->id_off + 1] = 0xCD;
        mqtt_packet_t q;
        memset(&q, 0, sizeof(q));
        CHECK(decode(copy, e->len, version, &q));
        CHECK_EQ(q.id, 0xABCD);
        CHECK(bytes_eq(q.publish.payload, "hello"));
    } else {
        CHECK_EQ(e->id_off, 0);
        CHECK_EQ(p.id, 0);
    }
    CHECK(msg_encoded(m, version, qos, retain) == e); /* made once, shared */
}

static void test_encoded(void)
{
    CASE("msg_encoded: every class decodes back to the same PUBLISH");
    mqtt_packet_t d = client_publish(30); /* with an expiry: not in the shared encoding */
    msg_t *m = msg_new(d.publish.topic, d.publish.payload, 2, 1, &d.props, 0);
    const msg_enc_t *seen[MSG_ENC_CLASSES];
    int n = 0;
    for (int v = 0; v < 2; v++) {
        uint8_t version = v ? MQTT_V5 : MQTT_V311;
        for (uint8_t qos = 0; qos <= 2; qos++) {
            for (uint8_t retain = 0; retain <= 1; retain++) {
                check_class(m, version, qos, retain);
                seen[n++] = msg_encoded(m, version, qos, retain);
            }
        }
    }
    CASE("the twelve classes are twelve encodings; 3.1 shares 3.1.1's");
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            CHECK(seen[i] != seen[k]);
    CHECK(msg_encoded(m, MQTT_V31, 1, 0) == msg_encoded(m, MQTT_V311, 1, 0));
    CHECK(msg_encoded(m, MQTT_V5, 1, 0)->len > msg_encoded(m, MQTT_V311, 1, 0)->len); /* properties */
    msg_release(m); /* frees the twelve encodings with it (ASan: no leak) */

    CASE("a message without properties encodes the same length on 3.1.1 and 5.0 plus the empty block");
    m = msg_new(B("a/b"), B("hello"), 1, 0, NULL, 0);
    CHECK_EQ(msg_encoded(m, MQTT_V5, 1, 0)->len, msg_encoded(m, MQTT_V311, 1, 0)->len + 1);
    msg_release(m);

    CASE("a large payload (slab class boundary) round-trips");
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31);
    m = msg_new(B("big"), (mqtt_bytes_t){big, sizeof(big)}, 1, 0, NULL, 0);
    const msg_enc_t *e = msg_encoded(m, MQTT_V311, 1, 0);
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    CHECK(decode(e->bytes, e->len, MQTT_V311, &p));
    CHECK_MEM(p.publish.payload.p, p.publish.payload.len, big, sizeof(big));
    msg_release(m);
}

static int gone_calls;
static uint64_t gone_id;
static struct store *gone_store;
static void on_gone(struct store *st, uint64_t id)
{
    gone_calls++;
    gone_id = id;
    gone_store = st;
}

static void test_refs_and_hook(void)
{
    CASE("reference counting: hold/release, freed on the last (ASan watches the block)");
    msg_set_gone_hook(on_gone);
    msg_t *m = msg_new(B("t"), B("x"), 1, 0, NULL, 0);
    msg_hold(m);
    msg_hold(m);
    CHECK_EQ(atomic_load(&m->refs), 3);
    msg_release(m);
    msg_release(m);
    CHECK_EQ(atomic_load(&m->refs), 1);
    msg_release(m);
    msg_release(NULL); /* a no-op */
    CHECK_EQ(gone_calls, 0); /* not stored: the hook is not called */

    CASE("the hook hears of a stored message once, on its last release, with its row id");
    int fake_store;
    m = msg_new(B("t"), B("x"), 1, 0, NULL, 0);
    m->store_id = 42;
    m->store = (struct store *)&fake_store;
    msg_hold(m);
    msg_release(m);
    CHECK_EQ(gone_calls, 0);
    msg_release(m);
    CHECK_EQ(gone_calls, 1);
    CHECK_EQ(gone_id, 42);
    CHECK(gone_store == (struct store *)&fake_store);
    msg_set_gone_hook(NULL);
}

static void test_on_a_pool(void)
{
    CASE("built on a worker's slab: the same, the blocks go back to the pool");
    slab_pool_t *pool = slab_pool_new();
    slab_thread_attach(pool);
    for (int i = 0; i < 100; i++) {
        mqtt_packet_t d = client_publish((uint32_t)i);
        msg_t *m = msg_new(d.publish.topic, d.publish.payload, 1, 0, &d.props, 0);
        check_class(m, MQTT_V5, 1, 0);
        check_class(m, MQTT_V311, 0, 1);
        msg_release(m);
    }
    slab_stats_t st = slab_stats(pool);
    CHECK(st.allocs >= 300);
    CHECK(st.mallocs < 10); /* reused, not malloc'ed each time */
    slab_thread_attach(NULL);
    slab_pool_free(pool);
}

int main(void)
{
    test_new_copies();
    test_expiry();
    test_encoded();
    test_refs_and_hook();
    test_on_a_pool();
    UNIT_DONE();
}
