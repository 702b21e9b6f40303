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


# ---------------------------------------------------------------------------- check_retain_source
# mosquitto.conf(5): "If check_retain_source is set to true, the default, the source of a retained
# message will be checked for access rights before it is republished." The source is the
# publisher's client id, username and listener, kept with the message (and in the persistence
# store); the check is the ACL in force at delivery, which SIGHUP may have changed.

import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from conftest import is_reference  # noqa: E402
from test_auth import make_pwfile  # noqa: E402

# alice writes plant/#; bob reads it; "dev-<id>" clients write their own dev/<id>/# by pattern
# (the client id is part of the source). Everyone may use the flush markers.
ACL_GRANTED = ("pattern write dev/%c/#\npattern readwrite marker/#\npattern read dev/#\n"
               "user alice\ntopic write plant/#\nuser bob\ntopic read plant/#\n")
ACL_REVOKED = ("pattern write dev/%c/#\npattern readwrite marker/#\npattern read dev/#\n"
               "user alice\ntopic write other/#\nuser bob\ntopic read plant/#\n")
SRC_USERS = {"alice": "secret", "bob": "b0b pw"}


def _src_broker(make_broker, check, mosquitto=False, persistence=None):
    """A broker with alice's write access and the given check_retain_source (None: left out,
    Mosquitto's default true); returns (broker, acl file path)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tombo-retsrc-")
    pw = make_pwfile(os.path.join(d, "pw"), "mosquitto_passwd", users=SRC_USERS)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write(ACL_GRANTED)
    conf = "user root\n" if (mosquitto or is_reference()) else ""
    conf += "allow_anonymous true\npassword_file %s\nacl_file %s\n" % (pw, acl)
    if check is not None:
        conf += "check_retain_source %s\n" % ("true" if check else "false")
    if persistence:
        conf += "persistence true\npersistence_location %s/\n" % persistence
    return make_broker(conf, mosquitto=mosquitto), acl


def _revoke_and_reload(b, acl):
    with open(acl, "w") as f:
        f.write(ACL_REVOKED)
    before = b.log().count("Reloading config.")
    os.kill(b.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while b.log().count("Reloading config.") <= before:
        assert time.monotonic() < deadline, b.log()[-2000:]
        time.sleep(0.05)
    time.sleep(0.3)  # the reload runs after the log line


def _publish_retained(b, protocol):
    alice = PahoClient(b, protocol=protocol, username="alice", password="secret")
    alice.connect()
    alice.publish("plant/a", b"from alice", 1, retain=True)
    dev = PahoClient(b, protocol=protocol, client_id="dev-7")
    dev.connect()
    dev.publish("dev/dev-7/state", b"from dev-7", 1, retain=True)
    alice.disconnect()
    dev.disconnect()


def _bob_gets(b, protocol, filt):
    bob = PahoClient(b, protocol=protocol, username="bob", password="b0b pw")
    bob.connect()
    bob.subscribe(filt, 1)
    marker = PahoClient(b, protocol=protocol)
    marker.connect()
    got = flush(marker, bob)
    bob.disconnect()
    marker.disconnect()
    return sorted((m.topic, m.payload) for m in got)


BROKERS = pytest.mark.parametrize("ref", [False, True], ids=["tombo", "mosquitto"])


@BROKERS
@PROTOS
def test_check_retain_source_true_withholds_retained_message_of_publisher_without_write_access(
        make_broker, protocol, ref):
    """check_retain_source true: alice retains plant/a while the ACL lets her write it; the ACL file
    changes and SIGHUP reloads it; a new subscriber allowed to read plant/# does not get alice's
    message (she may no longer write it), but does get dev-7's, whose pattern (by client id) still
    grants it. Run against Debian's Mosquitto 2.0.11 in the same test (ref)."""
    b, acl = _src_broker(make_broker, True, mosquitto=ref)
    _publish_retained(b, protocol)
    assert _bob_gets(b, protocol, "plant/#") == [("plant/a", b"from alice")]
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, protocol, "plant/#") == []
    assert _bob_gets(b, protocol, "dev/#") == [("dev/dev-7/state", b"from dev-7")]


@BROKERS
def test_check_retain_source_left_out_behaves_as_false_as_in_mosquitto(make_broker, ref):
    """Left out, check_retain_source behaves as false, as Debian's Mosquitto 2.0.11 does (checked
    here, ref): mosquitto.conf(5) calls true the default, but Mosquitto's config__init leaves the
    flag zeroed, so it never checks unless told to. tombo follows the behaviour: a config that
    relied on it keeps working the same (docs/config.md)."""
    b, acl = _src_broker(make_broker, None, mosquitto=ref)
    _publish_retained(b, V311)
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, V311, "plant/#") == [("plant/a", b"from alice")]


@BROKERS
def test_check_retain_source_false_delivers_retained_message_whatever_its_publisher_may_do(make_broker, ref):
    """check_retain_source false: no check, the retained message is always sent."""
    b, acl = _src_broker(make_broker, False, mosquitto=ref)
    _publish_retained(b, V5)
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, V5, "plant/#") == [("plant/a", b"from alice")]


def test_check_retain_source_survives_a_restart_with_persistence(make_broker, tmp_path):
    """With persistence, the source is stored with the message: after a restart with the revoked
    ACL, alice's message is withheld (a message restored without its source would be sent); after
    another restart with her access back, it is sent (the message itself was kept)."""
    b, acl = _src_broker(make_broker, True, persistence=str(tmp_path))
    _publish_retained(b, V311)
    with open(acl, "w") as f:
        f.write(ACL_REVOKED)
    b.restart()
    assert _bob_gets(b, V311, "plant/#") == []
    assert _bob_gets(b, V311, "dev/#") == [("dev/dev-7/state", b"from dev-7")]
    with open(acl, "w") as f:
        f.write(ACL_GRANTED)
    b.restart()
    assert _bob_gets(b, V311, "plant/#") == [("plant/a", b"from alice")]


def test_check_retain_source_applies_to_a_retained_will(make_broker):
    """A retained will records its client as the source, as Mosquitto does: once the client may no
    longer write the will's topic, new subscribers do not get it."""
    b, acl = _src_broker(make_broker, True)
    alice = PahoClient(b, username="alice", password="secret",
                       will={"topic": "plant/will", "payload": b"gone", "qos": 1, "retain": True})
    alice.connect()
    alice.c.socket().close()  # no DISCONNECT: the will is published
    deadline = time.monotonic() + 5
    while _bob_gets(b, V311, "plant/will") != [("plant/will", b"gone")]:
        assert time.monotonic() < deadline
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, V311, "plant/will") == []


def test_check_retain_source_is_reloaded(make_broker):
    """check_retain_source itself changes on SIGHUP (Mosquitto rereads it with the rest of the
    file): false, then true after a reload, withholds alice's message from then on."""
    b, acl = _src_broker(make_broker, False)
    _publish_retained(b, V5)
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, V5, "plant/#") == [("plant/a", b"from alice")]
    b.conf_text = b.conf_text.replace("check_retain_source false", "check_retain_source true")
    b.write_conf()
    _revoke_and_reload(b, acl)
    assert _bob_gets(b, V5, "plant/#") == []
