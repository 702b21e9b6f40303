"""Listener options of mosquitto.conf(5) that change what a client of that listener may do:
use_username_as_clientid and max_topic_alias. Each test runs against tombo and, with
TOMBO_REFERENCE=mosquitto, against Debian's Mosquitto, whose behaviour they were written from."""
import time

from clients import DISCONNECT, PUBACK, PahoClient, Raw, V311, V5, rc_value, unique_id
from conftest import is_reference


def _conf(extra):
    return ("user root\n" if is_reference() else "") + "listener PORT 127.0.0.1\nallow_anonymous true\n" + extra


def test_use_username_as_clientid_replaces_the_client_id(make_broker):
    """use_username_as_clientid true: the username is the client id, so two clients with the same
    username and different client ids share one session, and the second takes it over (the first
    is disconnected, [MQTT-3.1.4-3]); a client without a username is refused (Not authorized)."""
    b = make_broker(_conf("use_username_as_clientid true\n"), raw_conf=True)
    first = PahoClient(b, client_id="id-one", username="alice", password="x")
    first.connect()
    second = PahoClient(b, client_id="id-two", username="alice", password="x")
    second.connect()
    assert first.disconnected.wait(5), "the first client was not taken over"
    # a third client with another username is its own session and stays connected with the second
    other = PahoClient(b, client_id="id-one", username="bob", password="x")
    other.connect()
    time.sleep(0.2)
    assert not second.disconnected.is_set() and not other.disconnected.is_set()
    if not is_reference():
        assert "as alice (" in b.log() and "as bob (" in b.log()
    for version, want in ((V311, 5), (V5, 0x87)):
        anon = PahoClient(b, client_id=unique_id(), protocol=version)
        rc, _, _ = anon.connect(expect_success=False)
        assert rc_value(rc) == want
        anon.close()
    second.disconnect()
    other.disconnect()


def test_max_topic_alias_announced_and_enforced(make_broker):
    """max_topic_alias 3: CONNACK's Topic Alias Maximum is 3 [MQTT-3.2.2-17 and 3.3.2-12]; an alias of 3
    works, 4 is refused with DISCONNECT 0x94 Topic Alias invalid [MQTT-3.3.2-10]."""
    b = make_broker(_conf("max_topic_alias 3\n"), raw_conf=True)
    r = Raw(b, version=5)
    ack = r.connect(unique_id())
    assert ack.prop("topic_alias_maximum") == 3
    r.publish("alias/x", b"1", qos=1, pid=1, props=[(0x23, 3)])
    assert r.recv_type(PUBACK).reason < 0x80  # 0x10: no subscribers
    r.publish("alias/y", b"2", qos=1, pid=2, props=[(0x23, 4)])
    got = r.closed()
    assert [p.type for p in got] == [DISCONNECT] and got[0].reason == 0x94


def test_max_topic_alias_zero_allows_none(make_broker):
    """max_topic_alias 0: no Topic Alias Maximum in CONNACK, which means 0: the client must not send
    one [MQTT-3.2.2-17]; one sent anyway is refused with DISCONNECT 0x94."""
    b = make_broker(_conf("max_topic_alias 0\n"), raw_conf=True)
    r = Raw(b, version=5)
    ack = r.connect(unique_id())
    assert ack.prop("topic_alias_maximum", 0) == 0
    r.publish("alias/x", b"1", qos=0, props=[(0x23, 1)])
    got = r.closed()
    assert [p.type for p in got] == [DISCONNECT] and got[0].reason == 0x94
