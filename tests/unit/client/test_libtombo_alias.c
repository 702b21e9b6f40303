/* test_libtombo_alias.c -- unit tests of libtombo's outgoing topic aliases (src/client/alias.c) on a
 * client that never connects: alias_out_init's limit (the smaller of ours and the broker's), the
 * first PUBLISH of a topic carrying topic + alias and the next ones the alias alone
 * [MQTT-3.3.2-12], least-recently-used replacement once every alias is taken, and a DUP PUBLISH
 * always going out with its full topic. What alias_send_publish appends to the output buffer is
 * decoded with the shared codec. (tests/client/test_client_alias.c proves the same against a
 * broker over a socket; this one pins the table's rules without one.) */
#include <stdint.h>
#include <string.h>

#include "alias.h"
#include "client-int.h"
#include "mqtt/mqtt.h"
#include "unit.h"

static tombo_client_t *client(uint16_t our_max)
{
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = MQTT_V5;
    o.send_topic_alias_max = our_max;
    return tombo_client_new("alias-unit", &o);
}

/* A QoS 0 PUBLISH of topic as tombo_publish stores it: full topic, no alias. */
static size_t encode_publish(const char *topic, uint8_t dup, uint8_t *out)
{
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.publish.qos = dup ? 1 : 0;
    p.id = dup ? 7 : 0;
    p.publish.dup = dup;
    p.publish.topic = (mqtt_bytes_t){(const uint8_t *)topic, (uint32_t)strlen(topic)};
    p.publish.payload = (mqtt_bytes_t){(const uint8_t *)"x", 1};
    return mqtt_encode(&p, MQTT_V5, out);
}

/* Send topic, then decode the packet it appended: the alias sent and the topic on the wire. */
static void send(tombo_client_t *c, const char *topic, uint8_t dup, uint16_t *alias, char *wire_topic)
{
    uint8_t pkt[128];
    size_t n = encode_publish(topic, dup, pkt);
    size_t before = c->out.len;
    uint16_t used = 0;
    bool topic_sent = false;
    CHECK_EQ(alias_send_publish(c, pkt, n, &used, &topic_sent), TOMBO_OK);
    mqtt_header_t h;
    mqtt_packet_t p;
    CHECK_EQ(mqtt_header_parse(c->out.p + before, c->out.len - before, &h), 1);
    CHECK_EQ(mqtt_decode(&h, c->out.p + before + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p), MQTT_RC_SUCCESS);
    *alias = (p.props.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)) ? p.props.topic_alias : 0;
    CHECK_EQ(*alias, used);
    memcpy(wire_topic, p.publish.topic.p, p.publish.topic.len);
    wire_topic[p.publish.topic.len] = 0;
    CHECK_EQ(topic_sent, p.publish.topic.len > 0);
}

static void first_then_alias_alone(void)
{
    CASE("[MQTT-3.3.2-12] topic + alias the first time, the alias alone afterwards");
    tombo_client_t *c = client(2);
    CHECK_EQ(alias_out_init(c, 10), TOMBO_OK);
    CHECK_EQ(c->alias_out.max, 2); /* ours (2) is smaller than the broker's (10) */
    uint16_t a;
    char t[64];
    send(c, "sensors/1", 0, &a, t);
    CHECK_EQ(a, 1);
    CHECK_STR(t, "sensors/1");
    send(c, "sensors/1", 0, &a, t);
    CHECK_EQ(a, 1);
    CHECK_STR(t, "");
    send(c, "sensors/2", 0, &a, t);
    CHECK_EQ(a, 2);
    CHECK_STR(t, "sensors/2");
    tombo_client_destroy(c);
}

static void least_recently_used_goes(void)
{
    CASE("all aliases taken: the least recently sent topic gives its alias to the new one");
    tombo_client_t *c = client(2);
    CHECK_EQ(alias_out_init(c, 2), TOMBO_OK);
    uint16_t a;
    char t[64];
    send(c, "a", 0, &a, t); /* a=1 */
    send(c, "b", 0, &a, t); /* b=2 */
    send(c, "a", 0, &a, t); /* a used again: b is now the least recent */
    CHECK_EQ(a, 1);
    send(c, "c", 0, &a, t); /* takes b's alias, with its topic (rebinding) */
    CHECK_EQ(a, 2);
    CHECK_STR(t, "c");
    send(c, "b", 0, &a, t); /* b lost its alias: now a (1) is the least recent */
    CHECK_EQ(a, 1);
    CHECK_STR(t, "b");
    send(c, "c", 0, &a, t); /* still bound */
    CHECK_EQ(a, 2);
    CHECK_STR(t, "");
    tombo_client_destroy(c);
}

static void broker_limit_and_dup(void)
{
    CASE("the broker's limit wins when smaller; none when it allows none");
    tombo_client_t *c = client(100);
    CHECK_EQ(alias_out_init(c, 3), TOMBO_OK);
    CHECK_EQ(c->alias_out.max, 3);
    uint16_t a;
    char t[64];
    send(c, "d", 0, &a, t);
    CHECK_EQ(a, 1);
    CASE("a DUP PUBLISH goes out as stored, full topic and no alias");
    uint8_t pkt[128];
    size_t n = encode_publish("d", 1, pkt);
    uint16_t used = 99;
    bool topic_sent = false;
    /* The unaliased path is net_send_bytes, which wants a socket: this client has none. */
    CHECK_EQ(alias_send_publish(c, pkt, n, &used, &topic_sent), TOMBO_ERR_NO_CONN);
    CHECK_EQ(used, 0);
    CHECK(topic_sent);
    tombo_client_destroy(c);

    c = client(100);
    CHECK_EQ(alias_out_init(c, 0), TOMBO_OK);
    CHECK_EQ(c->alias_out.max, 0);
    tombo_client_destroy(c);
}

int main(void)
{
    first_then_alias_alone();
    least_recently_used_goes();
    broker_limit_and_dup();
    UNIT_DONE();
}
