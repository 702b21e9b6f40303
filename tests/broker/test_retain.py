"""Retained messages: set, replace, clear with an empty payload, delivered on subscribe with the
RETAIN flag, matched by wildcards, not touched by non-retained publishes."""
import pytest

from clients import PahoClient, V311, V5, flush

PROTOS = pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])


def _retained(broker, protocol, filt, qos=1):
    """A fresh subscriber on `filt`; returns the retained messages it gets (flushed)."""
    c = PahoClient(broker, protocol=protocol)
    c.connect()
    c.subscribe(filt, qos)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    got = flush(pub, c)
    c.disconnect()
    pub.disconnect()
    return got


@PROTOS
def test_mqtt_3_3_1_5_retained_message_delivered_on_subscribe(broker, protocol):
    """[MQTT-3.3.1-5] The Server stores a RETAIN 1 message and [MQTT-3.3.1-9] (5.0) / [MQTT-3.3.1-6]
    (3.1.1) sends it to a new subscription, with RETAIN 1 ([MQTT-3.3.1-8] in 3.1.1)."""
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("ret/a", b"stored", 1, retain=True)
    got = _retained(broker, protocol, "ret/a")
    assert [(m.topic, m.payload, m.retain, m.qos) for m in got] == [("ret/a", b"stored", True, 1)]
    pub.disconnect()


@PROTOS
def test_mqtt_3_3_1_5_retained_message_replaced(broker, protocol):
    """[MQTT-3.3.1-5] A new RETAIN 1 message replaces the stored one for that topic."""
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("ret/r", b"one", 1, retain=True)
    pub.publish("ret/r", b"two", 1, retain=True)
    got = _retained(broker, protocol, "ret/r")
    assert [m.payload for m in got] == [b"two"]
    pub.disconnect()


@PROTOS
def test_mqtt_3_3_1_6_empty_payload_clears_retained(broker, protocol):
    """[MQTT-3.3.1-6] [MQTT-3.3.1-7] (5.0) / [MQTT-3.3.1-10] [MQTT-3.3.1-11] (3.1.1) A RETAIN 1 PUBLISH
    with an empty payload removes the retained message and is not stored itself; it is still
    forwarded to current subscribers."""
    live = PahoClient(broker, protocol=protocol)
    live.connect()
    live.subscribe("ret/c", 1)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("ret/c", b"x", 1, retain=True)
    pub.publish("ret/c", b"", 1, retain=True)
    assert [m.payload for m in flush(pub, live)] == [b"x", b""]
    assert _retained(broker, protocol, "ret/c") == []
    assert _retained(broker, protocol, "ret/#") == []
    pub.disconnect()
    live.disconnect()


@PROTOS
def test_mqtt_3_3_1_8_non_retained_publish_keeps_retained(broker, protocol):
    """[MQTT-3.3.1-8] (5.0) / [MQTT-3.3.1-12] (3.1.1) A RETAIN 0 PUBLISH neither stores nor replaces
    the retained message; live subscribers get it with RETAIN 0 ([MQTT-3.3.1-9] in 3.1.1)."""
    live = PahoClient(broker, protocol=protocol)
    live.connect()
    live.subscribe("ret/n", 1)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("ret/n", b"kept", 1, retain=True)
    pub.publish("ret/n", b"transient", 1, retain=False)
    got = flush(pub, live)
    assert [(m.payload, m.retain) for m in got] == [(b"kept", False), (b"transient", False)]
    assert [m.payload for m in _retained(broker, protocol, "ret/n")] == [b"kept"]
    pub.publish("ret/other", b"transient", 1, retain=False)
    assert _retained(broker, protocol, "ret/other") == []
    pub.disconnect()
    live.disconnect()


@PROTOS
def test_mqtt_3_3_1_9_retained_messages_matched_by_wildcards(broker, protocol):
    """[MQTT-3.3.1-9] (5.0) / [MQTT-3.3.1-6] (3.1.1) Every retained message on a topic matching the
    new subscription's filter is sent; '$' topics are not matched by '#' [MQTT-4.7.2-1]."""
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    for t in ["w/1", "w/2", "w/2/deep", "x/1", "$w/1"]:
        pub.publish(t, t.encode(), 1, retain=True)
    assert sorted(m.topic for m in _retained(broker, protocol, "w/+")) == ["w/1", "w/2"]
    assert sorted(m.topic for m in _retained(broker, protocol, "w/#")) == ["w/1", "w/2", "w/2/deep"]
    assert sorted(m.topic for m in _retained(broker, protocol, "+/1")) == ["w/1", "x/1"]
    all_topics = [m.topic for m in _retained(broker, protocol, "#") if not m.topic.startswith("$SYS")]
    assert sorted(all_topics) == ["w/1", "w/2", "w/2/deep", "x/1"]
    assert [m.topic for m in _retained(broker, protocol, "$w/#")] == ["$w/1"]
    pub.disconnect()


@PROTOS
@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 1), (1, 0), (0, 2), (2, 2)])
def test_mqtt_3_8_4_8_retained_delivered_at_min_qos(broker, protocol, pub_qos, sub_qos):
    """[MQTT-3.8.4-8] A retained message is sent at the minimum of its QoS and the granted QoS."""
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("rq/t", b"q", pub_qos, retain=True)
    got = _retained(broker, protocol, "rq/t", sub_qos)
    assert [(m.payload, m.qos) for m in got] == [(b"q", min(pub_qos, sub_qos))]
    pub.disconnect()


def test_retained_survives_publisher_disconnect(broker):
    """A retained message belongs to the topic, not to the publisher's session."""
    pub = PahoClient(broker)
    pub.connect()
    pub.publish("ret/s", b"stays", 2, retain=True)
    pub.disconnect()
    assert [m.payload for m in _retained(broker, V311, "ret/s")] == [b"stays"]
