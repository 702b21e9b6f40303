"""SUBSCRIBE / UNSUBSCRIBE: wildcards, $-topics, overlapping subscriptions, subscription options
(No Local, Retain As Published, Retain Handling), shared subscriptions, QoS downgrade, unsubscribe."""
import paho.mqtt.client as mqtt
import pytest

from clients import (PUBLISH, SUBACK, UNSUBACK, PacketTypes, PahoClient, Raw, V311, V5, flush, packet,
                     props, s16, unique_id)
import struct

MATCH_TABLE = [
    ("sport/tennis/player1/#", ["sport/tennis/player1", "sport/tennis/player1/ranking",
                                "sport/tennis/player1/score/wimbledon"], ["sport/tennis/player2", "sport"]),
    ("sport/#", ["sport", "sport/tennis", "sport/tennis/x"], ["sports", "other/sport"]),
    ("sport/tennis/+", ["sport/tennis/player1", "sport/tennis/player2"],
     ["sport/tennis/player1/ranking", "sport/tennis"]),
    ("sport/+", ["sport/", "sport/x"], ["sport", "sport/x/y"]),
    ("+/+", ["/finance", "a/b"], ["a", "a/b/c"]),
    ("/+", ["/finance"], ["finance", "a/b"]),
    ("+", ["finance", "x"], ["/finance", "a/b"]),
    ("#", ["a", "a/b/c", "/x"], []),
    ("+/tennis/#", ["sport/tennis", "sport/tennis/p1", "x/tennis/a/b"], ["sport/golf/tennis"]),
    ("a//b", ["a//b"], ["a/b", "a/x/b"]),
    ("A/b", ["A/b"], ["a/b"]),
]


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
@pytest.mark.parametrize("filt,matching,other", MATCH_TABLE, ids=[m[0] for m in MATCH_TABLE])
def test_mqtt_4_7_1_wildcard_matching(broker, protocol, filt, matching, other):
    """[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-3.3.2-3] '#' matches the parent and any number of levels,
    '+' exactly one level (empty levels count); matching is case sensitive, no normalisation
    [MQTT-4.7.3-4]; the delivered Topic Name is the published one."""
    sub = PahoClient(broker, protocol=protocol)
    sub.connect()
    sub.subscribe(filt, 1)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    for t in other + matching:
        pub.publish(t, t.encode(), 1)
    got = flush(pub, sub)
    assert sorted(m.topic for m in got) == sorted(matching)
    assert all(m.payload == m.topic.encode() for m in got)
    pub.disconnect()
    sub.disconnect()


def test_mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcards(broker):
    """[MQTT-4.7.2-1] Topic Filters starting with '#' or '+' do not match Topic Names beginning with
    '$'; a filter starting with '$' does."""
    wild = PahoClient(broker)
    wild.connect()
    assert wild.subscribe("#", 1) == [1]
    assert wild.subscribe("+/info", 1) == [1]
    assert wild.subscribe("+", 1) == [1]
    dollar = PahoClient(broker)
    dollar.connect()
    dollar.subscribe("$app/#", 1)
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("$app/info", b"d", 1)
    pub.publish("$app", b"d", 1)
    pub.publish("app/info", b"n", 1)
    assert [m.topic for m in flush(pub, wild)] == ["app/info"]
    assert sorted(m.topic for m in flush(pub, dollar)) == ["$app", "$app/info"]
    pub.disconnect()


def test_mqtt_3_8_4_2_suback_reason_codes_in_order(broker):
    """[MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.9.3-1] One SUBSCRIBE with several
    filters: one SUBACK with the same Packet Identifier and one code per filter, in order, each the
    granted QoS [MQTT-3.8.4-7]."""
    r = Raw(broker, version=4)
    r.connect(unique_id())
    assert r.subscribe(4242, [("m/a", 2), ("m/b", 0), ("m/c", 1), ("m/+/d", 2)]) == [2, 0, 1, 2]
    r.disconnect()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
@pytest.mark.parametrize("sub_qos,pub_qos", [(0, 2), (1, 2), (0, 1), (2, 1), (1, 0), (2, 2)])
def test_mqtt_3_8_4_8_delivered_qos_is_min_of_published_and_granted(broker, protocol, sub_qos, pub_qos):
    """[MQTT-3.8.4-8] (5.0) / [MQTT-3.8.4-6] (3.1.1) The QoS of a delivered message is the minimum of
    the published QoS and the granted QoS."""
    sub = PahoClient(broker, protocol=protocol)
    sub.connect()
    assert sub.subscribe("dg/t", sub_qos) == [sub_qos]
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("dg/t", b"x", pub_qos)
    m = sub.get()
    assert m.qos == min(sub_qos, pub_qos)
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_8_4_3_resubscribe_replaces_subscription(broker, protocol):
    """[MQTT-3.8.4-3] A SUBSCRIBE with a filter identical to an existing one replaces it: one copy,
    at the new QoS."""
    sub = PahoClient(broker, protocol=protocol)
    sub.connect()
    sub.subscribe("rs/t", 2)
    sub.subscribe("rs/t", 1)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("rs/t", b"x", 2)
    got = flush(pub, sub)
    assert [(m.topic, m.qos) for m in got] == [("rs/t", 1)]
    pub.disconnect()
    sub.disconnect()


# Mosquitto 2.0.11 sends one copy but at the QoS of one of the subscriptions (0 here), not the
# maximum: [MQTT-3.3.5-1] (3.1.1) / [MQTT-3.3.4-2] (5.0).
@pytest.mark.reference_differs
def test_mqtt_3_3_5_1_v311_overlapping_subscriptions_one_copy_at_max_qos(broker):
    """[MQTT-3.3.5-1] (3.1.1) Overlapping subscriptions: the message is delivered respecting the
    maximum QoS of all matching subscriptions; tombo sends exactly one copy."""
    sub = PahoClient(broker)
    sub.connect()
    sub.subscribe("ov/+", 1)
    sub.subscribe("ov/#", 2)
    sub.subscribe("ov/b", 0)
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("ov/b", b"x", 2)
    got = flush(pub, sub)
    assert [(m.topic, m.qos) for m in got] == [("ov/b", 2)]
    pub.disconnect()
    sub.disconnect()


def _sub_v5(client, filt, qos=0, sub_id=None, **opts):
    p = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id) if sub_id else None
    return client.subscribe(filt, options=mqtt.SubscribeOptions(qos=qos, **opts), properties=p)


def _sub_ids(m):
    ids = getattr(m.properties, "SubscriptionIdentifier", [])
    return sorted(ids if isinstance(ids, list) else [ids])


# Mosquitto 2.0.11 sends one copy per matching subscription (allowed by the spec, [MQTT-3.3.4-5]);
# issue 2 asks for ONE copy at the maximum QoS carrying every identifier [MQTT-3.3.4-2] [MQTT-3.3.4-4].
@pytest.mark.reference_differs
def test_mqtt_3_3_4_4_v5_overlapping_subscriptions_one_copy_with_all_identifiers(broker):
    """[MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4] (5.0) Overlapping subscriptions give one copy at
    the highest matching QoS carrying the Subscription Identifiers of all matching subscriptions."""
    sub = PahoClient(broker, protocol=V5)
    sub.connect()
    _sub_v5(sub, "ov5/+", 1, sub_id=1)
    _sub_v5(sub, "ov5/#", 2, sub_id=2)
    _sub_v5(sub, "ov5/b", 0)
    _sub_v5(sub, "+/b", 0, sub_id=77)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("ov5/b", b"x", 2)
    got = flush(pub, sub)
    assert len(got) == 1, [(m.topic, m.qos) for m in got]
    assert got[0].qos == 2
    assert _sub_ids(got[0]) == [1, 2, 77]
    pub.disconnect()
    sub.disconnect()


def test_mqtt_3_3_4_3_v5_overlapping_subscriptions_carry_identifiers(broker):
    """[MQTT-3.3.4-2] [MQTT-3.3.4-3] (5.0) With overlapping subscriptions, the delivered copies
    together carry every matching Subscription Identifier and one copy has the maximum QoS
    (holds whether the server sends one copy [MQTT-3.3.4-4] or one per subscription [MQTT-3.3.4-5])."""
    sub = PahoClient(broker, protocol=V5)
    sub.connect()
    _sub_v5(sub, "ovx/+", 1, sub_id=5)
    _sub_v5(sub, "ovx/#", 2, sub_id=6)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("ovx/b", b"x", 2)
    got = flush(pub, sub)
    assert 1 <= len(got) <= 2
    assert sorted(i for m in got for i in _sub_ids(m)) == [5, 6]
    assert max(m.qos for m in got) == 2
    pub.disconnect()
    sub.disconnect()


def test_mqtt_3_8_3_3_no_local(broker):
    """[MQTT-3.8.3-3] With No Local 1, the Server does not forward a client's own messages back to
    it; other subscribers (and the same client without No Local) still get them."""
    me = PahoClient(broker, protocol=V5)
    me.connect()
    _sub_v5(me, "nl/t", 1, noLocal=True)
    other = PahoClient(broker, protocol=V5)
    other.connect()
    _sub_v5(other, "nl/t", 1, noLocal=True)
    me.publish("nl/t", b"mine", 1)
    marker_pub = PahoClient(broker, protocol=V5)
    marker_pub.connect()
    assert flush(marker_pub, me) == []
    got = flush(marker_pub, other)
    assert [(m.topic, m.payload) for m in got] == [("nl/t", b"mine")]
    # without No Local the client gets its own message
    _sub_v5(me, "nl/u", 1)
    me.publish("nl/u", b"echo", 1)
    assert me.get().payload == b"echo"
    for c in (me, other, marker_pub):
        c.disconnect()


def test_mqtt_3_3_1_12_and_13_retain_as_published(broker):
    """[MQTT-3.3.1-12] Retain As Published 0: forwarded messages have RETAIN 0; [MQTT-3.3.1-13] with
    1: RETAIN as in the received PUBLISH."""
    rap = PahoClient(broker, protocol=V5)
    rap.connect()
    _sub_v5(rap, "rap/t", 1, retainAsPublished=True)
    norap = PahoClient(broker, protocol=V5)
    norap.connect()
    _sub_v5(norap, "rap/t", 1, retainAsPublished=False)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("rap/t", b"r", 1, retain=True)
    pub.publish("rap/t", b"n", 1, retain=False)
    assert [(m.payload, m.retain) for m in rap.get_n(2)] == [(b"r", True), (b"n", False)]
    assert [(m.payload, m.retain) for m in norap.get_n(2)] == [(b"r", False), (b"n", False)]
    pub.publish("rap/t", b"", 1, retain=True)
    for c in (rap, norap, pub):
        c.disconnect()


def test_mqtt_3_3_1_9_to_11_retain_handling(broker):
    """[MQTT-3.3.1-9] Retain Handling 0: retained messages sent at every subscribe (also on
    re-subscribe [MQTT-3.8.4-4]); [MQTT-3.3.1-10] 1: only if the subscription is new;
    [MQTT-3.3.1-11] 2: never."""
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("rh/t", b"kept", 1, retain=True)
    c = PahoClient(broker, protocol=V5)
    c.connect()
    _sub_v5(c, "rh/+", 1, retainHandling=0)
    assert c.get().payload == b"kept"
    _sub_v5(c, "rh/+", 1, retainHandling=0)
    assert c.get().payload == b"kept"
    _sub_v5(c, "rh/#", 1, retainHandling=1)
    m = c.get()
    assert m.payload == b"kept" and m.retain
    _sub_v5(c, "rh/#", 1, retainHandling=1)
    _sub_v5(c, "+/t", 1, retainHandling=2)
    assert flush(pub, c) == []
    pub.publish("rh/t", b"", 1, retain=True)
    c.disconnect()
    pub.disconnect()


def test_mqtt_4_8_2_shared_subscription_round_robin(broker):
    """[MQTT-4.8.2-1] [MQTT-4.8.2-2] Shared subscription $share/g/filter: each message goes to one
    member of the group (round robin: 20 messages -> 10 each); a non-shared subscriber of the same
    filter gets all; a second group gets its own copy."""
    a = PahoClient(broker, protocol=V5)
    b = PahoClient(broker, protocol=V5)
    other_group = PahoClient(broker, protocol=V5)
    plain = PahoClient(broker, protocol=V5)
    for c in (a, b, other_group, plain):
        c.connect()
    assert _sub_v5(a, "$share/g1/sh/+", 1) == [1]
    assert _sub_v5(b, "$share/g1/sh/+", 1) == [1]
    assert _sub_v5(other_group, "$share/g2/sh/+", 1) == [1]
    _sub_v5(plain, "sh/+", 1)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    for i in range(20):
        pub.publish("sh/t", b"%d" % i, 1)
    ga = flush(pub, a)
    gb = flush(pub, b)
    assert sorted([int(m.payload) for m in ga + gb]) == list(range(20))
    assert len(ga) == 10 and len(gb) == 10
    assert all(m.topic == "sh/t" for m in ga + gb)
    assert [int(m.payload) for m in flush(pub, other_group)] == list(range(20))
    assert [int(m.payload) for m in flush(pub, plain)] == list(range(20))
    for c in (a, b, other_group, plain, pub):
        c.disconnect()


def test_mqtt_4_8_2_3_shared_subscription_respects_granted_qos(broker):
    """[MQTT-4.8.2-3] The Server respects the granted QoS of the member's shared subscription."""
    a = PahoClient(broker, protocol=V5)
    a.connect()
    _sub_v5(a, "$share/q/shq/t", 0)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("shq/t", b"x", 2)
    assert a.get().qos == 0
    a.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_10_4_2_unsubscribe_stops_delivery(broker, protocol):
    """[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] After UNSUBSCRIBE (answered by UNSUBACK) the
    Server stops delivering messages for that filter; other subscriptions are unaffected."""
    sub = PahoClient(broker, protocol=protocol)
    sub.connect()
    sub.subscribe("us/a", 1)
    sub.subscribe("us/+", 1)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("us/a", b"1", 1)
    assert len(flush(pub, sub)) in (1, 2)     # overlapping: one or two copies
    sub.unsubscribe("us/+")
    sub.unsubscribe("us/a")
    pub.publish("us/a", b"2", 1)
    assert flush(pub, sub) == []
    pub.disconnect()
    sub.disconnect()


def _unsubscribe_raw(r, pid, filters):
    body = struct.pack("!H", pid)
    if r.version == 5:
        body += b"\x00"
    for f in filters:
        body += s16(f)
    r.send(packet(10, 2, body))
    p = r.recv_type(UNSUBACK)
    assert p.pid == pid
    return p


def test_mqtt_3_11_3_2_v5_unsuback_reason_codes(broker):
    """[MQTT-3.10.4-5] [MQTT-3.10.4-6] [MQTT-3.11.3-1] [MQTT-3.11.3-2] (5.0) UNSUBACK has the
    UNSUBSCRIBE's Packet Identifier and one reason code per filter in order: 0x00 for an existing
    subscription, 0x11 (No subscription existed) otherwise."""
    r = Raw(broker, version=5)
    r.connect(unique_id())
    r.subscribe(1, [("ua/x", 1), ("ua/#", 0)])
    p = _unsubscribe_raw(r, 77, ["ua/x", "ua/none", "ua/#", "ua/x"])
    assert p.reasons == [0x00, 0x11, 0x00, 0x11]
    r.disconnect(0)


def test_mqtt_3_10_4_5_v311_unsuback_even_without_subscription(broker):
    """[MQTT-3.10.4-5] (3.1.1: [MQTT-3.10.4-5]) The Server answers UNSUBSCRIBE with UNSUBACK with the
    same Packet Identifier even when no subscription is deleted."""
    r = Raw(broker, version=4)
    r.connect(unique_id())
    p = _unsubscribe_raw(r, 999, ["never/subscribed"])
    assert p.body == struct.pack("!H", 999)
    r.disconnect()


def test_subscription_identifier_on_delivery(broker):
    """[MQTT-3.3.4-3] (5.0) A message delivered because of a subscription made with a Subscription
    Identifier carries that identifier; one without carries none."""
    sub = PahoClient(broker, protocol=V5)
    sub.connect()
    _sub_v5(sub, "sid/a", 1, sub_id=268435455)
    _sub_v5(sub, "sid/b", 1)
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("sid/a", b"a", 1)
    pub.publish("sid/b", b"b", 1)
    got = sub.get_n(2)
    assert _sub_ids(got[0]) == [268435455]
    assert _sub_ids(got[1]) == []
    pub.disconnect()
    sub.disconnect()
