"""Will messages: published on abnormal close, not on normal DISCONNECT, published on 5.0
DISCONNECT 0x04, Will Delay Interval, Will Retain, Will QoS, on keep alive timeout."""
import time

import pytest

from clients import PahoClient, Raw, V311, V5, flush, unique_id


def _watcher(broker, topic="will/#", qos=2, protocol=V311):
    w = PahoClient(broker, protocol=protocol)
    w.connect()
    w.subscribe(topic, qos)
    return w


def _will(topic="will/t", payload=b"gone", qos=1, retain=False, props=None):
    d = dict(topic=topic, payload=payload, qos=qos, retain=retain)
    if props:
        d["props"] = props
    return d


@pytest.mark.parametrize("version", [3, 4, 5])
def test_mqtt_3_1_2_8_will_published_on_abnormal_close(broker, version):
    """[MQTT-3.1.2-8] (5.0) / [MQTT-3.1.2-8] (3.1.1) The Will Message is published when the Network
    Connection is closed without a DISCONNECT; it is published once [MQTT-3.1.2-10]."""
    w = _watcher(broker)
    r = Raw(broker, version=version)
    r.connect(unique_id("w")[:23], will=_will(payload=b"abnormal-%d" % version))
    r.close()                          # socket closed, no DISCONNECT
    m = w.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/t", b"abnormal-%d" % version, 1, False)
    pub = PahoClient(broker)
    pub.connect()
    assert flush(pub, w) == []
    w.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_14_4_3_no_will_on_normal_disconnect(broker, version):
    """[MQTT-3.14.4-3] [MQTT-3.1.2-10] On a DISCONNECT (Reason Code 0x00 on 5.0) the Server discards
    the Will Message without publishing it."""
    w = _watcher(broker)
    r = Raw(broker, version=version)
    r.connect(unique_id("w"), will=_will(payload=b"must-not"))
    r.send(b"\xe0\x00")                # DISCONNECT (0x00 normal disconnection on 5.0)
    r.closed()                         # the broker closes after handling it
    pub = PahoClient(broker)
    pub.connect()
    assert flush(pub, w) == []
    w.expect_none(0.3)
    w.disconnect()


def test_mqtt_3_14_v5_disconnect_0x04_publishes_will(broker):
    """[MQTT-3.1.2-8] (5.0) DISCONNECT with Reason Code 0x04 (Disconnect with Will Message): the
    Server publishes the Will Message."""
    w = _watcher(broker)
    r = Raw(broker, version=5)
    r.connect(unique_id("w"), will=_will(payload=b"asked-for"))
    r.disconnect(0x04)
    m = w.get()
    assert m.payload == b"asked-for"
    w.disconnect()


@pytest.mark.parametrize("retain", [False, True])
def test_mqtt_3_1_2_14_and_15_will_retain(broker, retain):
    """[MQTT-3.1.2-15] Will Retain 1: the Will Message is published as a retained message (a later
    subscriber gets it with RETAIN 1); [MQTT-3.1.2-14] Will Retain 0: non-retained (a later
    subscriber gets nothing)."""
    live = _watcher(broker, "will/ret")
    r = Raw(broker, version=4)
    r.connect(unique_id("wr"), will=_will(topic="will/ret", payload=b"last", retain=retain))
    r.close()
    assert live.get().payload == b"last"      # published
    later = _watcher(broker, "will/ret")
    pub = PahoClient(broker)
    pub.connect()
    got = flush(pub, later)
    if retain:
        assert [(m.payload, m.retain) for m in got] == [(b"last", True)]
    else:
        assert got == []
    live.disconnect()
    later.disconnect()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_3_1_2_12_will_qos(broker, qos):
    """[MQTT-3.1.2-12] The Will Message is published at its Will QoS (subscriber granted QoS 2)."""
    w = _watcher(broker, "will/q")
    r = Raw(broker, version=4)
    r.connect(unique_id("wq"), will=_will(topic="will/q", payload=b"q", qos=qos))
    r.close()
    assert w.get().qos == qos
    w.disconnect()


def test_will_published_on_keepalive_timeout(broker):
    """[MQTT-3.1.2-22] [MQTT-3.1.2-8] A client closed for keep alive timeout ("as if the network had
    failed") has its Will Message published."""
    w = _watcher(broker)
    r = Raw(broker, version=4)
    r.connect(unique_id("wk"), keepalive=1, will=_will(payload=b"timeout"))
    assert w.get(timeout=12).payload == b"timeout"
    r.close()
    w.disconnect()


def test_mqtt_3_1_2_8_will_delay_interval(broker):
    """[MQTT-3.1.2-8] (5.0) With a Will Delay Interval of 2 s (and a longer session), the Will
    Message is published about 2 s after the abnormal close, not before."""
    w = _watcher(broker)
    r = Raw(broker, version=5)
    r.connect(unique_id("wd"), props=[(0x11, 60)], will=_will(payload=b"delayed", props=[(0x18, 2)]))
    t0 = time.time()
    r.close()
    m = w.get(timeout=8)
    elapsed = time.time() - t0
    assert m.payload == b"delayed"
    assert elapsed >= 1.8, "will published after %.2fs, delay is 2s" % elapsed
    w.disconnect()


def test_mqtt_3_1_3_9_no_will_if_client_reconnects_within_delay(broker):
    """[MQTT-3.1.3-9] [MQTT-3.1.2-8] If a new Network Connection to the Session is made before the
    Will Delay Interval has passed, the Will Message is not sent."""
    w = _watcher(broker)
    cid = unique_id("wn")
    r = Raw(broker, version=5)
    r.connect(cid, props=[(0x11, 60)], will=_will(payload=b"must-not", props=[(0x18, 2)]))
    r.close()
    r2 = Raw(broker, version=5)
    assert r2.connect(cid, clean=False, props=[(0x11, 60)]).session_present
    w.expect_none(3.0)
    r2.disconnect(0)
    w.disconnect()


def test_mqtt_3_1_2_8_will_published_when_session_ends_before_delay(broker):
    """[MQTT-3.1.2-8] (5.0) The Will Message is published when the Will Delay Interval passes or the
    Session ends, whichever is first: Session Expiry 1 s, Will Delay 30 s -> published after ~1 s."""
    w = _watcher(broker)
    r = Raw(broker, version=5)
    r.connect(unique_id("we"), props=[(0x11, 1)], will=_will(payload=b"session-end", props=[(0x18, 30)]))
    t0 = time.time()
    r.close()
    m = w.get(timeout=8)
    assert m.payload == b"session-end"
    assert time.time() - t0 < 8
    w.disconnect()


def test_mqtt_3_1_3_10_will_properties_forwarded(broker):
    """[MQTT-3.1.3-10] (5.0) The Will Message keeps its User Properties, in order, and its other
    properties (content type, response topic, payload format indicator)."""
    w = _watcher(broker, protocol=V5)
    r = Raw(broker, version=5)
    wp = [(0x26, ("k", "2")), (0x26, ("a", "1")), (0x26, ("k", "1")), (0x03, "text/plain"),
          (0x08, "reply/here"), (0x01, 1)]
    r.connect(unique_id("wp"), will=_will(payload=b"props", props=wp))
    r.close()
    m = w.get()
    assert m.payload == b"props"
    assert m.properties.UserProperty == [("k", "2"), ("a", "1"), ("k", "1")]
    assert m.properties.ContentType == "text/plain"
    assert m.properties.ResponseTopic == "reply/here"
    assert m.properties.PayloadFormatIndicator == 1
    w.disconnect()
