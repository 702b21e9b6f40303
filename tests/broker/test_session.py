"""Sessions: clean session 0 keeps subscriptions and queues QoS 1/2 messages while offline; clean
start discards; 5.0 Session Expiry Interval; max_queued_messages; message_size_limit."""
import time

import pytest

from clients import PUBACK, PUBLISH, PacketTypes, PahoClient, Raw, V311, V5, flush, props, unique_id


def _persistent(broker, cid, protocol, expiry=300, clean=False):
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=expiry) if protocol == V5 else None
    return PahoClient(broker, client_id=cid, protocol=protocol, clean=clean, connect_props=cp)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_1_2_5_offline_session_keeps_subscriptions_and_queues_qos1_qos2(broker, protocol):
    """[MQTT-3.1.2-5] [MQTT-3.1.2-23] [MQTT-4.5.0-1] A persistent session (CleanSession 0, or Session
    Expiry > 0) keeps its subscriptions while offline and queues QoS 1 and QoS 2 messages, which
    arrive in order on reconnect with Session Present 1."""
    cid = unique_id("off")
    c = _persistent(broker, cid, protocol)
    c.connect()
    c.subscribe("off/t", 2)
    c.disconnect()
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    for i in range(5):
        pub.publish("off/t", b"q1-%d" % i, 1)
        pub.publish("off/t", b"q2-%d" % i, 2)
    c = _persistent(broker, cid, protocol)
    rc, flags, _ = c.connect()
    assert flags["session present"] == 1
    got = c.get_n(10)
    # order is kept per topic and QoS [MQTT-4.6.0-5]
    for q in (1, 2):
        assert [(m.payload, m.qos) for m in got if m.qos == q] == [(b"q%d-%d" % (q, i), q) for i in range(5)]
    # the subscription is still there
    pub.publish("off/t", b"live", 1)
    assert c.get().payload == b"live"
    pub.disconnect()
    c.disconnect()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_1_2_4_clean_start_discards_session(broker, protocol):
    """[MQTT-3.1.2-4] (5.0) / [MQTT-3.1.2-6] (3.1.1) A CONNECT with Clean Start 1 discards the
    existing Session: queued messages and subscriptions are gone."""
    cid = unique_id("clean")
    c = _persistent(broker, cid, protocol)
    c.connect()
    c.subscribe("cl/t", 1)
    c.disconnect()
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("cl/t", b"queued", 1)
    c = _persistent(broker, cid, protocol, clean=True)
    rc, flags, _ = c.connect()
    assert flags["session present"] == 0
    pub.publish("cl/t", b"after", 1)
    assert flush(pub, c) == []
    pub.disconnect()
    c.disconnect()


def test_mqtt_3_1_2_6_v311_clean_session_1_session_not_kept(broker):
    """(3.1.1) [MQTT-3.1.2-6] With CleanSession 1 the Session lasts as long as the connection: after
    reconnecting with CleanSession 0 there is no Session (Session Present 0), nothing queued."""
    cid = unique_id("cs1")
    r = Raw(broker, version=4)
    r.connect(cid, clean=True)
    r.subscribe(1, [("cs1/t", 1)])
    r.disconnect_and_wait()
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("cs1/t", b"x", 1)
    c = PahoClient(broker, client_id=cid, clean=False)
    rc, flags, _ = c.connect()
    assert flags["session present"] == 0
    assert flush(pub, c) == []
    c.disconnect()
    pub.disconnect()


def test_mqtt_4_1_0_2_v5_session_expiry_zero_ends_with_connection(broker):
    """[MQTT-3.1.2-23] [MQTT-4.1.0-2] (5.0) Session Expiry Interval absent (0): the Session ends with
    the Network Connection; a Clean Start 0 reconnect finds none (Session Present 0)."""
    cid = unique_id("se0")
    r = Raw(broker, version=5)
    r.connect(cid, clean=False)
    r.subscribe(1, [("se0/t", 1)])
    r.disconnect_and_wait(0)
    r = Raw(broker, version=5)
    assert r.connect(cid, clean=False).session_present is False
    r.disconnect(0)


def test_mqtt_4_1_0_2_v5_session_expires_after_interval(broker):
    """[MQTT-4.1.0-2] (5.0) The Server discards the Session when the connection is closed and the
    Session Expiry Interval (1 s) has passed: its queued messages are gone."""
    cid = unique_id("se1")
    c = _persistent(broker, cid, V5, expiry=1)
    c.connect()
    c.subscribe("se1/t", 1)
    c.disconnect()
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("se1/t", b"x", 1)
    time.sleep(2.5)
    c = _persistent(broker, cid, V5, expiry=1)
    rc, flags, _ = c.connect()
    assert flags["session present"] == 0
    assert flush(pub, c) == []
    pub.disconnect()
    c.disconnect()


def test_mqtt_3_1_2_23_v5_session_kept_within_expiry(broker):
    """[MQTT-3.1.2-23] (5.0) Within the Session Expiry Interval the Session is kept: reconnecting with
    Clean Start 0 after 1 s of a 5 s interval resumes it."""
    cid = unique_id("se5")
    c = _persistent(broker, cid, V5, expiry=5)
    c.connect()
    c.subscribe("se5/t", 1)
    c.disconnect()
    pub = PahoClient(broker, protocol=V5)
    pub.connect()
    pub.publish("se5/t", b"kept", 1)
    time.sleep(1.0)
    c = _persistent(broker, cid, V5, expiry=5)
    rc, flags, _ = c.connect()
    assert flags["session present"] == 1
    assert c.get().payload == b"kept"
    pub.disconnect()
    c.disconnect()


def test_v5_disconnect_can_set_session_expiry(broker):
    """(5.0, section 3.14.2.2.2) A DISCONNECT may change the Session Expiry Interval from non-zero:
    300 s at CONNECT, 0 at DISCONNECT -> the Session ends now."""
    cid = unique_id("sed")
    r = Raw(broker, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    r.subscribe(1, [("sed/t", 1)])
    r.disconnect_and_wait(0, props=[(0x11, 0)])
    r = Raw(broker, version=5)
    assert r.connect(cid, clean=False).session_present is False
    r.disconnect(0)


def _queue_offline(broker, n, qos=1):
    cid = unique_id("mq")
    r = Raw(broker, version=4)
    r.connect(cid, clean=False)
    r.subscribe(1, [("mq/t", qos)])
    r.disconnect_and_wait()
    pub = PahoClient(broker)
    pub.connect()
    for i in range(n):
        pub.publish("mq/t", b"%d" % i, qos)
    pub.disconnect()
    r = Raw(broker, version=4)
    assert r.connect(cid, clean=False).session_present
    got = []
    while True:
        try:
            p = r.recv(1.0)
        except AssertionError:
            break
        assert p.type == PUBLISH
        got.append(int(p.payload))
        r.ack(PUBACK, p.pid)
    r.disconnect()
    return got


def test_max_queued_messages_limits_offline_queue(make_broker):
    """max_queued_messages 5 (mosquitto.conf meaning): an offline session queues at most 5 QoS 1
    messages beyond those in flight; the rest are dropped; what is delivered is in order."""
    b = make_broker("allow_anonymous true\nmax_queued_messages 5\nmax_inflight_messages 1\n")
    got = _queue_offline(b, 20)
    assert 5 <= len(got) <= 6, got
    assert got == sorted(got)


def test_max_queued_messages_zero_is_unlimited(make_broker):
    """max_queued_messages 0 (the tutorial's setting): no limit, all 300 offline messages arrive."""
    b = make_broker("allow_anonymous true\nmax_queued_messages 0\n")
    got = _queue_offline(b, 300)
    assert got == list(range(300))


def test_message_size_limit_drops_oversized_publish(make_broker):
    """message_size_limit 100 (mosquitto.conf meaning): a PUBLISH with a larger payload is not
    delivered (the connection stays usable); payloads up to the limit are."""
    b = make_broker("allow_anonymous true\nmessage_size_limit 100\n")
    sub = PahoClient(b)
    sub.connect()
    sub.subscribe("msl/t", 1)
    pub = PahoClient(b)
    pub.connect()
    pub.publish("msl/t", b"a" * 100, 1)
    pub.publish("msl/t", b"b" * 101, 1)
    pub.publish("msl/t", b"c" * 5000, 1)
    pub.publish("msl/t", b"d", 1)
    got = flush(pub, sub)
    assert [m.payload for m in got] == [b"a" * 100, b"d"]
    pub.disconnect()
    sub.disconnect()


def test_message_size_limit_v5_puback_reports_failure(make_broker):
    """message_size_limit on 5.0: the oversized QoS 1 PUBLISH is answered with a PUBACK whose reason
    code is a failure (>= 0x80) [MQTT-3.4.2-1], is not delivered, and the connection carries on."""
    b = make_broker("allow_anonymous true\nmessage_size_limit 100\n")
    sub = PahoClient(b)
    sub.connect()
    sub.subscribe("msl5/t", 1)
    r = Raw(b, version=5)
    r.connect(unique_id())
    r.publish("msl5/t", b"x" * 101, qos=1, pid=1)
    p = r.recv_type(PUBACK)
    assert p.pid == 1 and p.reason >= 0x80
    r.publish("msl5/t", b"ok", qos=1, pid=2)
    p = r.recv_type(PUBACK)
    assert p.pid == 2 and p.reason < 0x80
    assert sub.get().payload == b"ok"
    pub = PahoClient(b)
    pub.connect()
    assert flush(pub, sub) == []
    r.disconnect(0)


def test_max_queued_bytes_limits_offline_queue(make_broker):
    """max_queued_bytes 500 (mosquitto.conf meaning): an offline session queues QoS 1 payloads up to
    about 500 bytes (100-byte payloads: a handful, not all 30); what is delivered is in order."""
    b = make_broker("allow_anonymous true\nmax_queued_bytes 500\nmax_queued_messages 0\n"
                    "max_inflight_messages 1\n")
    cid = unique_id("mqb")
    r = Raw(b, version=4)
    r.connect(cid, clean=False)
    r.subscribe(1, [("mqb/t", 1)])
    r.disconnect_and_wait()
    pub = PahoClient(b)
    pub.connect()
    for i in range(30):
        pub.publish("mqb/t", b"%03d" % i + b"." * 97, 1)
    pub.disconnect()
    r = Raw(b, version=4)
    assert r.connect(cid, clean=False).session_present
    got = []
    while True:
        try:
            p = r.recv(1.0)
        except AssertionError:
            break
        got.append(int(p.payload[:3]))
        r.ack(PUBACK, p.pid)
    r.disconnect()
    assert 4 <= len(got) <= 7, got
    assert got == sorted(got)
