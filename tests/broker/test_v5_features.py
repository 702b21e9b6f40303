"""MQTT 5.0 features: topic aliases both ways, message expiry, maximum packet size both ways, user
properties, response topic / correlation data, payload format indicator / content type, reason
strings and Request Problem Information."""
import time

import pytest

from clients import (DISCONNECT, PUBACK, PUBLISH, UNSUBACK, PacketTypes, PahoClient, Raw, V5, flush,
                     packet, props, s16, unique_id)
import struct


def _v5(broker, **kw):
    c = PahoClient(broker, protocol=V5, **kw)
    c.connect()
    return c


# ---------------------------------------------------------------- topic aliases


def test_mqtt_3_3_2_12_client_to_server_topic_alias(broker):
    """[MQTT-3.3.2-12] The Server accepts Topic Alias values from 1 to its Topic Alias Maximum: a
    PUBLISH with topic + alias sets the mapping, an empty topic + alias uses it, and a later
    topic + same alias replaces it."""
    sub = _v5(broker)
    sub.subscribe("ta/#", 1)
    r = Raw(broker, version=5)
    c = r.connect(unique_id())
    tam = c.prop("topic_alias_maximum", 0)
    assert tam >= 1
    r.publish("ta/x", b"1", qos=1, pid=1, props=[(0x23, 1)])
    r.publish("", b"2", qos=1, pid=2, props=[(0x23, 1)])
    r.publish("ta/y", b"3", qos=1, pid=3, props=[(0x23, 1)])
    r.publish("", b"4", qos=1, pid=4, props=[(0x23, 1)])
    r.publish("ta/z", b"5", qos=1, pid=5, props=[(0x23, tam)])
    r.publish("", b"6", qos=1, pid=6, props=[(0x23, tam)])
    for pid in range(1, 7):
        p = r.recv_type(PUBACK)
        assert p.pid == pid and p.reason < 0x80
    got = sub.get_n(6)
    assert [(m.topic, m.payload) for m in got] == [
        ("ta/x", b"1"), ("ta/x", b"2"), ("ta/y", b"3"), ("ta/y", b"4"), ("ta/z", b"5"), ("ta/z", b"6")]
    # no alias is leaked to the subscriber (it did not allow any) [MQTT-3.1.2-27]
    assert all(getattr(m.properties, "TopicAlias", None) is None for m in got)
    r.disconnect(0)
    sub.disconnect()


def test_mqtt_3_3_2_7_topic_aliases_not_carried_across_connections(broker):
    """[MQTT-3.3.2-7] A receiver does not carry Topic Alias mappings from one Network Connection to
    the next: an alias-only PUBLISH on a new connection is a Protocol Error (DISCONNECT 0x82)."""
    cid = unique_id()
    r = Raw(broker, version=5)
    r.connect(cid, props=[(0x11, 60)])
    r.publish("tac/x", b"1", qos=0, props=[(0x23, 1)])
    r.disconnect(0)
    r = Raw(broker, version=5)
    r.connect(cid, clean=False, props=[(0x11, 60)])
    r.publish("", b"2", qos=0, props=[(0x23, 1)])
    got = r.closed()
    assert [p.type for p in got] in ([], [DISCONNECT])
    if got:
        assert got[0].reason == 0x82
    other = _v5(broker)
    other.disconnect()


def _resolve(p, aliases):
    """Resolve a received PUBLISH's topic through the alias map of this connection."""
    alias = p.prop("topic_alias")
    if alias is not None:
        if p.topic:
            aliases[alias] = p.topic
        else:
            assert alias in aliases, "alias %d used before being set" % alias
        return aliases[alias]
    assert p.topic, "empty topic without alias"
    return p.topic


def test_mqtt_3_3_2_11_server_topic_alias_within_client_maximum(broker):
    """[MQTT-3.3.2-11] [MQTT-3.1.2-26] [MQTT-3.3.2-8] Aliases the Server sends are in 1..the client's
    Topic Alias Maximum (2 here), and every PUBLISH resolves to the right topic (over 5 topics, so
    aliases must be reused or left out)."""
    r = Raw(broker, version=5)
    r.connect(unique_id(), props=[(0x22, 2)])
    r.subscribe(1, [("tao/#", 0)])
    pub = _v5(broker)
    topics = ["tao/%d" % (i % 5) for i in range(20)]
    for i, t in enumerate(topics):
        pub.publish(t, b"%d" % i, 1)
    aliases = {}
    for i, t in enumerate(topics):
        p = r.recv_type(PUBLISH)
        a = p.prop("topic_alias")
        assert a is None or 1 <= a <= 2
        assert _resolve(p, aliases) == t and p.payload == b"%d" % i
    pub.disconnect()
    r.disconnect(0)


# Mosquitto 2.0.11 never sends Topic Aliases to clients (the spec allows that); issue 2 asks the
# broker to assign them within the client's Topic Alias Maximum [MQTT-3.3.2-11].
@pytest.mark.reference_differs
def test_mqtt_3_3_2_11_server_assigns_topic_aliases(broker):
    """[MQTT-3.3.2-11] (issue 2: "the broker assigns aliases on messages it sends") A client with
    Topic Alias Maximum 10 receiving the same topic repeatedly gets an alias and then empty topics."""
    r = Raw(broker, version=5)
    r.connect(unique_id(), props=[(0x22, 10)])
    r.subscribe(1, [("tas/t", 0)])
    pub = _v5(broker)
    for i in range(3):
        pub.publish("tas/t", b"%d" % i, 1)
    got = [r.recv_type(PUBLISH) for _ in range(3)]
    aliases = {}
    assert [_resolve(p, aliases) for p in got] == ["tas/t"] * 3
    assert got[0].topic == "tas/t" and got[0].prop("topic_alias") is not None
    assert all(p.topic == "" and p.prop("topic_alias") == got[0].prop("topic_alias") for p in got[1:])
    pub.disconnect()
    r.disconnect(0)


def test_mqtt_3_1_2_27_no_topic_alias_without_client_maximum(broker):
    """[MQTT-3.1.2-27] If the client's Topic Alias Maximum is absent or 0, the Server sends no Topic
    Alias."""
    r = Raw(broker, version=5)
    r.connect(unique_id(), props=[(0x22, 0)])
    r.subscribe(1, [("tan/t", 0)])
    pub = _v5(broker)
    for i in range(3):
        pub.publish("tan/t", b"%d" % i, 1)
    for i in range(3):
        p = r.recv_type(PUBLISH)
        assert p.topic == "tan/t" and p.prop("topic_alias") is None
    pub.disconnect()
    r.disconnect(0)


# ---------------------------------------------------------------- message expiry


def test_mqtt_3_3_2_5_expired_message_not_delivered_to_offline_session(broker):
    """[MQTT-3.3.2-5] A message whose Message Expiry Interval passed while queued for an offline
    session is not delivered; [MQTT-3.3.2-6] one still valid arrives with the interval reduced by
    the time it waited in the Server."""
    cid = unique_id("exp")
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=300)
    r = Raw(broker, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    r.subscribe(1, [("exp/t", 1)])
    r.disconnect_and_wait(0)          # offline for sure before the publishes
    pub = _v5(broker)
    pub.publish("exp/t", b"short", 1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("exp/t", b"long", 1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    pub.publish("exp/t", b"forever", 1)
    time.sleep(2.5)
    c = PahoClient(broker, client_id=cid, protocol=V5, clean=False, connect_props=cp)
    c.connect()
    got = c.get_n(2)
    assert [m.payload for m in got] == [b"long", b"forever"]
    assert 55 <= got[0].properties.MessageExpiryInterval <= 58
    assert getattr(got[1].properties, "MessageExpiryInterval", None) is None
    assert flush(pub, c) == []
    pub.disconnect()
    c.disconnect()


def test_mqtt_3_3_2_6_message_expiry_forwarded_to_online_subscriber(broker):
    """[MQTT-3.3.2-6] A message forwarded at once carries the Message Expiry Interval it was published
    with (minus at most the time it waited, here < 1 s)."""
    sub = _v5(broker)
    sub.subscribe("expo/t", 1)
    pub = _v5(broker)
    pub.publish("expo/t", b"x", 1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=100))
    m = sub.get()
    assert m.properties.MessageExpiryInterval in (99, 100)
    pub.disconnect()
    sub.disconnect()


def test_mqtt_3_3_2_5_expired_retained_message_not_sent(broker):
    """[MQTT-3.3.2-5] A retained message whose Message Expiry Interval has passed is not sent to a
    new subscriber; a non-expired one is sent with the reduced interval [MQTT-3.3.2-6]."""
    pub = _v5(broker)
    pub.publish("expr/a", b"a", 1, retain=True, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("expr/b", b"b", 1, retain=True, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.5)
    sub = _v5(broker)
    sub.subscribe("expr/+", 1)
    got = flush(pub, sub)
    assert [m.payload for m in got] == [b"b"]
    assert 55 <= got[0].properties.MessageExpiryInterval <= 58
    pub.disconnect()
    sub.disconnect()


# ---------------------------------------------------------------- maximum packet size


def test_mqtt_3_1_2_24_and_25_server_respects_client_maximum_packet_size(broker):
    """[MQTT-3.1.2-24] [MQTT-3.1.2-25] The Server does not send a packet larger than the client's
    Maximum Packet Size (200): that message is dropped for this client, the next ones arrive."""
    r = Raw(broker, version=5)
    r.connect(unique_id(), props=[(0x27, 200)])
    r.subscribe(1, [("mps/t", 1)])
    pub = _v5(broker)
    pub.publish("mps/t", b"small-1", 1)
    pub.publish("mps/t", b"L" * 400, 1)
    pub.publish("mps/t", b"small-2", 1)
    for want in (b"small-1", b"small-2"):
        p = r.recv_type(PUBLISH)
        assert p.payload == want
        r.ack(PUBACK, p.pid)
    try:
        extra = r.recv(0.5)
    except AssertionError:
        extra = None
    assert extra is None
    pub.disconnect()
    r.disconnect(0)


def test_mqtt_3_2_2_15_client_exceeding_server_maximum_packet_size(make_broker):
    """max_packet_size 1000: the CONNACK carries Maximum Packet Size 1000; a bigger PUBLISH from the
    client is a violation [MQTT-3.2.2-15] answered with DISCONNECT 0x95 (Packet too large); other
    clients carry on."""
    b = make_broker("allow_anonymous true\nmax_packet_size 1000\n")
    r = Raw(b, version=5)
    c = r.connect(unique_id())
    assert c.prop("maximum_packet_size") == 1000
    r.publish("mpc/t", b"x" * 2000, qos=0)
    got = r.closed()
    assert [p.type for p in got] in ([], [DISCONNECT])
    if got:
        assert got[0].reason == 0x95
    other = _v5(b)
    other.subscribe("mpc/t", 0)
    other.disconnect()


# ---------------------------------------------------------------- properties passed through


def test_mqtt_3_3_2_17_and_18_user_properties_forwarded_in_order(broker):
    """[MQTT-3.3.2-17] [MQTT-3.3.2-18] User Properties are forwarded unaltered and in order, repeated
    keys included."""
    sub = _v5(broker)
    sub.subscribe("up/t", 1)
    pub = _v5(broker)
    ups = [("z", "1"), ("a", "2"), ("z", "0"), ("key with space", "välue ✓"), ("a", "2")]
    pub.publish("up/t", b"x", 1, properties=props(PacketTypes.PUBLISH, UserProperty=ups))
    m = sub.get()
    assert m.properties.UserProperty == ups
    pub.disconnect()
    sub.disconnect()


def test_mqtt_3_3_2_15_and_16_response_topic_and_correlation_data(broker):
    """[MQTT-3.3.2-15] [MQTT-3.3.2-16] Response Topic and Correlation Data are forwarded unaltered:
    a request/response round trip."""
    responder = _v5(broker)
    responder.subscribe("rr/request", 1)
    requester = _v5(broker)
    requester.subscribe("rr/reply/1", 1)
    corr = bytes(range(256))
    requester.publish("rr/request", b"ping", 1,
                      properties=props(PacketTypes.PUBLISH, ResponseTopic="rr/reply/1", CorrelationData=corr))
    req = responder.get()
    assert req.properties.ResponseTopic == "rr/reply/1"
    assert req.properties.CorrelationData == corr
    responder.publish(req.properties.ResponseTopic, b"pong", 1,
                      properties=props(PacketTypes.PUBLISH, CorrelationData=req.properties.CorrelationData))
    rep = requester.get()
    assert (rep.topic, rep.payload, rep.properties.CorrelationData) == ("rr/reply/1", b"pong", corr)
    responder.disconnect()
    requester.disconnect()


def test_mqtt_3_3_2_4_and_20_payload_format_and_content_type(broker):
    """[MQTT-3.3.2-4] [MQTT-3.3.2-20] Payload Format Indicator and Content Type are forwarded
    unaltered (also on a retained message)."""
    sub = _v5(broker)
    sub.subscribe("pf/t", 1)
    pub = _v5(broker)
    pp = props(PacketTypes.PUBLISH, PayloadFormatIndicator=1, ContentType="application/json; charset=utf-8")
    pub.publish("pf/t", b'{"a": 1}', 1, retain=True, properties=pp)
    for m in (sub.get(),):
        assert m.properties.PayloadFormatIndicator == 1
        assert m.properties.ContentType == "application/json; charset=utf-8"
    late = _v5(broker)
    late.subscribe("pf/t", 1)
    m = late.get()
    assert m.retain and m.properties.PayloadFormatIndicator == 1
    assert m.properties.ContentType == "application/json; charset=utf-8"
    pub.publish("pf/t", b"", 1, retain=True)
    for c in (sub, pub, late):
        c.disconnect()


def test_mqtt_3_1_2_29_no_reason_string_when_problem_information_not_requested(broker):
    """[MQTT-3.1.2-29] With Request Problem Information 0, the Server sends no Reason String or User
    Property on packets other than PUBLISH, CONNACK and DISCONNECT (here: an UNSUBACK with 0x11 and a
    PUBACK with 0x10)."""
    r = Raw(broker, version=5)
    r.connect(unique_id(), props=[(0x17, 0)])
    r.send(packet(10, 2, struct.pack("!H", 5) + b"\x00" + s16("rs/none")))
    p = r.recv_type(UNSUBACK)
    assert p.reasons == [0x11]
    assert p.prop("reason_string") is None and p.prop_all("user_property") == []
    r.publish("rs/nobody", b"x", qos=1, pid=6)
    p = r.recv_type(PUBACK)
    assert p.prop("reason_string") is None and p.prop_all("user_property") == []
    r.disconnect(0)


def test_v5_connack_properties(broker):
    """(5.0, section 3.2.2.3) CONNACK properties are well formed: Receive Maximum, if present, is
    > 0; Maximum QoS, if present, 0 or 1 [MQTT-3.2.2-9]; Retain Available 0 or 1; Topic Alias Maximum
    a 16-bit value."""
    r = Raw(broker, version=5)
    c = r.connect(unique_id())
    assert c.reason == 0
    assert c.prop("receive_maximum", 65535) > 0
    assert c.prop("maximum_qos", 0) in (0, 1)
    assert c.prop("retain_available", 1) in (0, 1)
    assert 0 <= c.prop("topic_alias_maximum", 0) <= 65535
    r.disconnect(0)


def test_mqtt_4_12_0_1_unsupported_authentication_method_refused(broker):
    """[MQTT-4.12.0-1] A CONNECT with an Authentication Method the Server does not support is refused
    with CONNACK 0x8C (Bad authentication method) or 0x87 (Not authorized), and closed."""
    r = Raw(broker, version=5)
    # CONNECT with an Authentication Method property (0x15), encoded by hand
    body = s16("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60)
    pl = b"\x15" + s16("NO-SUCH-METHOD-x1")
    body += bytes([len(pl)]) + pl + s16(unique_id())
    r.send(packet(1, 0, body))
    c = r.recv()
    assert c.type == 2 and c.reason in (0x8C, 0x87), c
    r.closed()


def test_mqtt_4_12_0_6_no_auth_packet_without_authentication_method(broker):
    """[MQTT-4.12.0-6] Without an Authentication Method in CONNECT, the Server sends no AUTH packet
    and no Authentication Method in CONNACK."""
    r = Raw(broker, version=5)
    c = r.connect(unique_id())
    assert all(pid != 0x15 for pid, _ in c.props)
    r.subscribe(1, [("auth/t", 0)])
    r.disconnect(0)
