"""PUBLISH at QoS 0, 1 and 2 in both directions: the acknowledgement flows, redelivery with DUP on
reconnect, exactly-once for QoS 2 across a reconnect, in-flight windows (max_inflight_messages,
Receive Maximum both ways), ordering."""
import pytest

from clients import (DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, PahoClient, Raw, V311, V5,
                     flush, unique_id)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_4_3_qos_flow_end_to_end(broker, protocol, qos):
    """[MQTT-3.3.4-1] [MQTT-4.3.1-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] A message published at QoS n to a
    subscription granted QoS n arrives once at QoS n, with payload and topic intact."""
    sub = PahoClient(broker, protocol=protocol)
    sub.connect()
    assert sub.subscribe("q/%d" % qos, qos) == [qos]
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    payloads = [bytes([i]) * (i + 1) for i in range(20)]
    for p in payloads:
        pub.publish("q/%d" % qos, p, qos)
    got = sub.get_n(20)
    assert [m.payload for m in got] == payloads
    assert all(m.qos == qos and m.topic == "q/%d" % qos for m in got)
    assert flush(pub, sub) == []
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_3_2_4_puback_carries_the_packet_identifier(broker, version):
    """[MQTT-4.3.2-4] [MQTT-2.2.1-5] The Server answers a QoS 1 PUBLISH with a PUBACK with the same
    Packet Identifier."""
    r = Raw(broker, version=version)
    r.connect(unique_id())
    for pid in (1, 300, 65535):
        r.publish("raw/q1", b"x", qos=1, pid=pid)
        p = r.recv_type(PUBACK)
        # 0x10 (No matching subscribers) is a success code a 5.0 server may use here
        assert p.pid == pid and p.reason in (0, 0x10)
    r.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_3_3_8_and_11_qos2_inbound_flow(broker, version):
    """[MQTT-4.3.3-8] PUBREC with the PUBLISH's Packet Identifier; [MQTT-4.3.3-11] PUBCOMP with the
    PUBREL's; the message is delivered once [MQTT-4.3.3-10] even if the PUBLISH is repeated with DUP
    before the PUBREL."""
    sub = PahoClient(broker)
    sub.connect()
    sub.subscribe("raw/q2", 2)
    r = Raw(broker, version=version)
    r.connect(unique_id())
    r.publish("raw/q2", b"once", qos=2, pid=7)
    p = r.recv_type(PUBREC)
    assert p.pid == 7
    r.publish("raw/q2", b"once", qos=2, pid=7, dup=True)
    p = r.recv_type(PUBREC)
    assert p.pid == 7
    r.ack(PUBREL, 7)
    p = r.recv_type(PUBCOMP)
    assert p.pid == 7
    m = sub.get()
    assert m.payload == b"once" and m.qos == 2
    pub = PahoClient(broker)
    pub.connect()
    assert flush(pub, sub) == []
    r.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_3_3_qos2_outbound_flow(broker, version):
    """[MQTT-4.3.3-1..5] [MQTT-2.2.1-4] The Server sends QoS 2 with a non-zero Packet Identifier and DUP
    0, answers PUBREC with PUBREL (same id, flags 0x2), and completes on PUBCOMP."""
    r = Raw(broker, version=version)
    r.connect(unique_id())
    assert r.subscribe(1, [("out/q2", 2)]) == [2]
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("out/q2", b"two", 2)
    p = r.recv_type(PUBLISH)
    assert p.qos == 2 and p.pid != 0 and not p.dup and p.payload == b"two"
    r.ack(PUBREC, p.pid)
    rel = r.recv_type(PUBREL)
    assert rel.pid == p.pid and rel.flags == 0x2
    r.ack(PUBCOMP, p.pid)
    # the flow is complete: the next message uses the window normally
    pub.publish("out/q2", b"three", 2)
    p2 = r.recv_type(PUBLISH)
    assert p2.payload == b"three"
    r.ack(PUBREC, p2.pid)
    r.recv_type(PUBREL)
    r.ack(PUBCOMP, p2.pid)
    pub.disconnect()
    r.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_3_1_1_redelivery_with_dup_on_reconnect(broker, version):
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1] An unacknowledged QoS 1 PUBLISH is resent on reconnect of the
    persistent session, with the original Packet Identifier and DUP 1; the first send had DUP 0
    [MQTT-4.3.2-2]."""
    cid = unique_id("dup")
    props = [(0x11, 300)] if version == 5 else None
    r = Raw(broker, version=version)
    r.connect(cid, clean=False, props=props)
    assert r.subscribe(1, [("dup/t", 1)]) == [1]
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("dup/t", b"redeliver", 1)
    p = r.recv_type(PUBLISH)
    assert not p.dup and p.qos == 1
    r.close()                      # no PUBACK
    r = Raw(broker, version=version)
    c = r.connect(cid, clean=False, props=props)
    assert c.session_present
    p2 = r.recv_type(PUBLISH)
    assert p2.dup and p2.pid == p.pid and p2.payload == b"redeliver"
    r.ack(PUBACK, p2.pid)
    pub.disconnect()
    r.disconnect(0 if version == 5 else None)


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_4_0_1_pubrel_resent_on_reconnect_not_publish(broker, version):
    """[MQTT-4.4.0-1] [MQTT-4.3.3-6] After PUBREC, the Server resends the PUBREL (not the PUBLISH) on
    reconnect of the session, with the original Packet Identifier."""
    cid = unique_id("rel")
    props = [(0x11, 300)] if version == 5 else None
    r = Raw(broker, version=version)
    r.connect(cid, clean=False, props=props)
    r.subscribe(1, [("rel/t", 2)])
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("rel/t", b"q2", 2)
    p = r.recv_type(PUBLISH)
    r.ack(PUBREC, p.pid)
    r.recv_type(PUBREL)
    r.close()                      # no PUBCOMP
    r = Raw(broker, version=version)
    assert r.connect(cid, clean=False, props=props).session_present
    rel = r.recv_type(PUBREL)
    assert rel.pid == p.pid
    r.ack(PUBCOMP, rel.pid)
    # nothing else is resent
    pub.publish("rel/t", b"next", 2)
    p2 = r.recv_type(PUBLISH)
    assert p2.payload == b"next"
    r.ack(PUBREC, p2.pid)
    r.recv_type(PUBREL)
    r.ack(PUBCOMP, p2.pid)
    pub.disconnect()
    r.disconnect(0 if version == 5 else None)


@pytest.mark.parametrize("resend", ["publish_dup_then_pubrel", "pubrel_only"])
@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_3_3_10_qos2_exactly_once_across_reconnect(broker, version, resend):
    """[MQTT-4.3.3-10] [MQTT-4.4.0-1] A QoS 2 PUBLISH acknowledged with PUBREC, then the connection
    lost before PUBREL: on reconnect of the session the client resends (the PUBLISH with DUP, or the
    PUBREL) and the subscriber gets the message exactly once."""
    sub = PahoClient(broker)
    sub.connect()
    sub.subscribe("eo/t", 2)
    cid = unique_id("eo")
    props = [(0x11, 300)] if version == 5 else None
    r = Raw(broker, version=version)
    r.connect(cid, clean=False, props=props)
    r.publish("eo/t", b"exactly-once", qos=2, pid=42)
    assert r.recv_type(PUBREC).pid == 42
    r.close()
    r = Raw(broker, version=version)
    assert r.connect(cid, clean=False, props=props).session_present
    if resend == "publish_dup_then_pubrel":
        r.publish("eo/t", b"exactly-once", qos=2, pid=42, dup=True)
        assert r.recv_type(PUBREC).pid == 42
    r.ack(PUBREL, 42)
    assert r.recv_type(PUBCOMP).pid == 42
    # a new message with the same id after PUBCOMP is a new message [MQTT-4.3.3-12]
    r.publish("eo/t", b"second", qos=2, pid=42)
    assert r.recv_type(PUBREC).pid == 42
    r.ack(PUBREL, 42)
    assert r.recv_type(PUBCOMP).pid == 42
    got = sub.get_n(2)
    assert [m.payload for m in got] == [b"exactly-once", b"second"]
    pub = PahoClient(broker)
    pub.connect()
    assert flush(pub, sub) == []
    r.disconnect(0 if version == 5 else None)


def _window(r, limit, total, qos):
    """Receive `total` PUBLISHes, acknowledging one at a time only when nothing else arrives, and
    check that at no time more than `limit` are in flight (received and not yet completed: PUBACK
    sent for QoS 1, PUBCOMP sent for QoS 2 [MQTT-4.9.0-2]), and that all arrive in order."""
    inflight = []      # pids received, not completed
    got = []
    while len(got) < total or inflight:
        try:
            p = r.recv(0.5)
        except AssertionError:
            p = None
        if p is None:
            # quiet: the window must be full (or everything received); complete the oldest
            assert inflight, "stalled after %d of %d messages" % (len(got), total)
            assert len(inflight) == limit or len(got) == total, \
                "only %d in flight with %d queued" % (len(inflight), total - len(got))
            pid = inflight[0]
            if qos == 1:
                r.ack(PUBACK, pid)
                inflight.pop(0)
            else:
                r.ack(PUBREC, pid)
            continue
        if p.type == PUBLISH:
            got.append(p)
            inflight.append(p.pid)
            assert len(inflight) <= limit, "%d PUBLISHes in flight, limit %d" % (len(inflight), limit)
        elif p.type == PUBREL:
            r.ack(PUBCOMP, p.pid)
            inflight.remove(p.pid)
        else:
            raise AssertionError("unexpected %r" % p)
    assert [p.payload for p in got] == [b"%d" % i for i in range(total)]


def _first_window(r, limit):
    """Before any acknowledgement exactly `limit` PUBLISHes arrive, then nothing for 0.5 s."""
    got = [r.recv_type(PUBLISH) for _ in range(limit)]
    try:
        extra = r.recv(0.5)
    except AssertionError:
        extra = None
    assert extra is None, "in-flight window of %d exceeded: %r" % (limit, extra)
    return got


def _inflight_setup(make_broker, broker, kind, qos):
    if kind == "max_inflight_messages":
        b = make_broker("allow_anonymous true\nmax_inflight_messages 2\n")
        r = Raw(b, version=4)
        r.connect(unique_id())
        limit = 2
    else:
        b = broker
        r = Raw(b, version=5)
        r.connect(unique_id(), props=[(0x21, 3)])
        limit = 3
    r.subscribe(1, [("win/t", qos)])
    pub = PahoClient(b)
    pub.connect()
    for i in range(limit + 4):
        pub.publish("win/t", b"%d" % i, qos)
    return r, pub, limit


KINDS = ["max_inflight_messages", "receive_maximum_v5"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qos", [1, 2])
def test_mqtt_3_3_4_9_inflight_window_before_acks(make_broker, broker, kind, qos):
    """[MQTT-3.3.4-9] [MQTT-4.9.0-2] With nothing acknowledged, the Server sends at most the window:
    max_inflight_messages 2 (3.1.1), or the client's Receive Maximum 3 (5.0)."""
    r, pub, limit = _inflight_setup(make_broker, broker, kind, qos)
    _first_window(r, limit)
    pub.disconnect()
    r.close()


# Mosquitto 2.0.11 sends two new PUBLISHes per acknowledgement once the window is full (and for
# QoS 2 frees the slot at PUBREC, not PUBCOMP), overrunning the window: [MQTT-3.3.4-9] and
# [MQTT-4.9.0-2] (the send quota comes back only on PUBACK / PUBCOMP).
@pytest.mark.reference_differs
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qos", [1, 2])
def test_mqtt_3_3_4_9_inflight_window_kept_while_acknowledging(make_broker, broker, kind, qos):
    """[MQTT-3.3.4-9] [MQTT-4.9.0-2] The window holds for the whole flow: acknowledging one message
    lets exactly one more through; all arrive in order [MQTT-4.6.0-5]."""
    r, pub, limit = _inflight_setup(make_broker, broker, kind, qos)
    _window(r, limit, limit + 4, qos)
    pub.disconnect()
    r.close()


# Mosquitto 2.0.11 advertises Receive Maximum but does not enforce it on incoming PUBLISHes
# ([MQTT-3.3.4-7]; the Server's reaction is DISCONNECT 0x93, section 4.9).
@pytest.mark.reference_differs
def test_mqtt_3_3_4_7_client_exceeding_receive_maximum_gets_disconnect_0x93(make_broker):
    """[MQTT-3.3.4-7] A client sending more unacknowledged QoS 2 PUBLISHes than the Receive Maximum
    in the broker's CONNACK gets DISCONNECT 0x93 (Receive Maximum exceeded) and is closed."""
    b = make_broker("allow_anonymous true\nmax_inflight_messages 2\n")
    r = Raw(b, version=5)
    c = r.connect(unique_id())
    rm = c.prop("receive_maximum", 65535)
    assert rm == 2
    for pid in range(1, rm + 1):
        r.publish("rmx/t", b"x", qos=2, pid=pid)
        assert r.recv_type(PUBREC).pid == pid
    r.publish("rmx/t", b"x", qos=2, pid=rm + 1)   # no PUBREL sent for the others
    got = r.closed()
    assert [p.type for p in got] == [DISCONNECT] and got[0].reason == 0x93, got
    other = PahoClient(b)
    other.connect()
    other.disconnect()


def test_mqtt_4_6_0_5_order_preserved_per_publisher(broker):
    """[MQTT-4.6.0-5] [MQTT-4.6.0-6] Messages from one client on one topic reach a subscriber in the
    order they were published (200 QoS 1 messages)."""
    sub = PahoClient(broker)
    sub.connect()
    sub.subscribe("ord/t", 1)
    pub = PahoClient(broker)
    pub.connect()
    for i in range(200):
        pub.publish("ord/t", b"%d" % i, 1, wait=False)
    got = sub.get_n(200, timeout=15)
    assert [m.payload for m in got] == [b"%d" % i for i in range(200)]
    pub.disconnect()
    sub.disconnect()


def test_mqtt_3_3_1_2_qos0_never_has_dup(broker):
    """[MQTT-3.3.1-2] [MQTT-4.3.1-1] A QoS 0 PUBLISH from the Server has DUP 0, and no Packet
    Identifier (the payload is exactly what was sent) [MQTT-2.2.1-2]."""
    r = Raw(broker, version=4)
    r.connect(unique_id())
    r.subscribe(1, [("q0/t", 2)])
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("q0/t", b"\x00\x01zero", 0)
    p = r.recv_type(PUBLISH)
    assert p.qos == 0 and not p.dup and p.payload == b"\x00\x01zero"
    pub.disconnect()
    r.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_4_4_0_1_qos2_publish_resent_with_dup_before_pubrec(broker, version):
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1] A QoS 2 PUBLISH the client never acknowledged is resent on
    reconnect with DUP 1 and its Packet Identifier; completing that flow ends it: nothing more is
    resent on the next reconnect."""
    cid = unique_id("q2dup")
    props = [(0x11, 300)] if version == 5 else None
    r = Raw(broker, version=version)
    r.connect(cid, clean=False, props=props)
    r.subscribe(1, [("q2dup/t", 2)])
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("q2dup/t", b"two", 2)
    p = r.recv_type(PUBLISH)
    assert p.qos == 2 and not p.dup
    r.close()                          # no PUBREC
    r = Raw(broker, version=version)
    assert r.connect(cid, clean=False, props=props).session_present
    p2 = r.recv_type(PUBLISH)
    assert p2.dup and p2.pid == p.pid and p2.payload == b"two"
    r.ack(PUBREC, p2.pid)
    assert r.recv_type(PUBREL).pid == p2.pid
    r.ack(PUBCOMP, p2.pid)
    r.disconnect(0 if version == 5 else None)
    r = Raw(broker, version=version)
    assert r.connect(cid, clean=False, props=props).session_present
    try:
        extra = r.recv(0.5)
    except AssertionError:
        extra = None
    assert extra is None, "completed flow resent: %r" % extra
    r.disconnect(0 if version == 5 else None)
    pub.disconnect()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_v31_publish_subscribe(broker, qos):
    """MQTT 3.1 (MQIsdp): a paho MQTTv31 subscriber and publisher exchange messages at QoS 0..2."""
    from clients import V31
    sub = PahoClient(broker, protocol=V31)
    sub.connect()
    assert sub.subscribe("v31/t", qos) == [qos]
    pub = PahoClient(broker, protocol=V31)
    pub.connect()
    for i in range(5):
        pub.publish("v31/t", b"%d" % i, qos)
    got = sub.get_n(5)
    assert [(m.payload, m.qos) for m in got] == [(b"%d" % i, qos) for i in range(5)]
    pub.disconnect()
    sub.disconnect()
