"""Listener options of mosquitto.conf(5) that change what a client of that listener may do:
use_username_as_clientid and max_topic_alias. Each test runs against tombo and, with
TOMBO_REFERENCE=mosquitto, against Debian's Mosquitto, whose behaviour they were written from."""
import os
import socket
import subprocess
import time
import types

import pytest

from clients import DISCONNECT, PUBACK, PahoClient, Raw, V311, V5, rc_value, unique_id
from conftest import free_port, is_reference


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


# ---------------------------------------------------------------- where a listener listens


def _can_connect(family, addr, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((addr, port) if family != socket.AF_UNIX else addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _mosquitto_sub_unix(path, topic, count):
    return subprocess.Popen(["mosquitto_sub", "--unix", path, "-t", topic, "-C", str(count), "-W", "10", "-q", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_unix_socket_listener(make_broker, tmp_path):
    """`listener 0 PATH`: MQTT over a Unix socket, with Mosquitto's own clients (--unix); messages flow
    between it and a TCP listener of the same broker. A socket file left by an earlier run is
    replaced; tombo removes it when it stops."""
    path = str(tmp_path / "mqtt.sock")
    conf = _conf("listener 0 %s\n" % path)
    # a stale socket file, as a killed broker leaves behind
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    b = make_broker(conf, raw_conf=True)
    deadline = time.monotonic() + 10
    while not _can_connect(socket.AF_UNIX, path, 0):
        assert time.monotonic() < deadline, "no Unix socket at %s" % path
        time.sleep(0.05)
    sub = _mosquitto_sub_unix(path, "unix/#", 2)
    tcp = PahoClient(b)
    tcp.connect()
    tcp.subscribe("unix/#", 1)
    time.sleep(0.5)  # mosquitto_sub's SUBSCRIBE is in
    subprocess.run(["mosquitto_pub", "--unix", path, "-t", "unix/a", "-m", "over-unix", "-q", "1"], check=True,
                   timeout=10)
    tcp.publish("unix/b", b"over-tcp", qos=1)
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0, err
    assert sorted(out.split()) == ["over-tcp", "over-unix"]
    assert tcp.get().payload == b"over-unix"
    tcp.disconnect()
    if not is_reference():
        assert "Opening unix listen socket on path %s" % path in b.log()
        b.expect_exit = True
        assert b.stop() == 0
        assert not os.path.exists(path), "the socket file was left behind"


def test_socket_domain_and_bind_interface(make_broker):
    """bind_interface lo puts a listener on the loopback interface's address; socket_domain picks the
    family: ipv6 listens on ::1 only, ipv4 on 127.0.0.1 only (Mosquitto's meaning; tombo binds one
    address per listener, see docs/config.md)."""
    if not _can_connect(socket.AF_INET6, "::1", 9) and not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this machine")
    p6, p4 = free_port(), free_port()
    conf = _conf("listener %d\nbind_interface lo\nsocket_domain ipv6\n"
                 "listener %d\nbind_interface lo\nsocket_domain ipv4\n" % (p6, p4))
    make_broker(conf, raw_conf=True)
    # the broker answers on PORT, its first listener, before it has opened the others
    deadline = time.monotonic() + 10
    while not _can_connect(socket.AF_INET, "127.0.0.1", p4):
        assert time.monotonic() < deadline, "nothing listens on 127.0.0.1:%d" % p4
        time.sleep(0.05)
    assert _can_connect(socket.AF_INET6, "::1", p6)
    assert not _can_connect(socket.AF_INET, "127.0.0.1", p6)
    assert _can_connect(socket.AF_INET, "127.0.0.1", p4)
    assert not _can_connect(socket.AF_INET6, "::1", p4)


@pytest.mark.skipif(is_reference(), reason="tombo's start-up messages")
@pytest.mark.parametrize("lines,msg", [
    ("listener PORT2\nbind_interface no-such-if0\n", "bind_interface no-such-if0: no such interface"),
    ("listener PORT2 127.0.0.1\nsocket_domain ipv6\n", "listener 127.0.0.1:PORT2:"),
    ("listener 0\n", "'listener 0' needs the path of a Unix socket"),
    ("listener 0 /tmp/x.sock\nsocket_domain ipv4\n", "'socket_domain' has no meaning on a Unix socket listener"),
])
def test_listener_errors_stop_startup(lines, msg):
    """A listener that cannot be opened as written stops start-up with a message that says why."""
    from conftest import Broker
    p2 = free_port()
    b = Broker(_conf(lines.replace("PORT2", str(p2))), raw_conf=True)
    rc, log = b.run_until_exit()
    assert rc == 1, log
    assert msg.replace("PORT2", str(p2)) in log
    assert "Sanitizer" not in log  # not a crash on the way out


# ---------------------------------------------------------------- mount_point


def _mounted_broker(make_broker, prefix="site1/"):
    p2 = free_port()
    b = make_broker(_conf("listener %d 127.0.0.1\nmount_point %s\n" % (p2, prefix)), raw_conf=True)
    deadline = time.monotonic() + 10
    while not _can_connect(socket.AF_INET, "127.0.0.1", p2):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return b, types.SimpleNamespace(host="127.0.0.1", port=p2)


# Mosquitto 2.0.11 does not take the prefix off outgoing messages, a regression fixed in 2.0.12
# (eclipse-mosquitto/mosquitto#2244); tombo does what mosquitto.conf(5) says and 1.6/2.0.12 do.
@pytest.mark.reference_differs
@pytest.mark.parametrize("version", [V311, V5])
def test_mount_point_isolates_a_listeners_clients(make_broker, version):
    """mount_point site1/: a client of that listener publishes, subscribes and receives under site1/
    without seeing the prefix; clients elsewhere see the full topics; it sees nothing outside
    site1/ (Mosquitto's meaning)."""
    b, mounted = _mounted_broker(make_broker)
    inside = PahoClient(mounted, protocol=version)
    inside.connect()
    inside.subscribe("temp/#", 1)
    outside = PahoClient(b, protocol=version)
    outside.connect()
    outside.subscribe("#", 1)
    outside.publish("site1/temp/a", b"1", qos=1)
    outside.publish("temp/b", b"2", qos=1)  # not under site1/: never reaches the mounted client
    m = inside.get()
    assert (m.topic, m.payload) == ("temp/a", b"1")
    inside.expect_none(0.3)
    inside.publish("temp/c", b"3", qos=1)
    got = {(x.topic, x.payload) for x in outside.get_n(3)}
    assert got == {("site1/temp/a", b"1"), ("temp/b", b"2"), ("site1/temp/c", b"3")}
    assert (inside.get().topic) == "temp/c"
    inside.disconnect()
    outside.disconnect()


@pytest.mark.reference_differs  # mosquitto#2244, as above
def test_mount_point_retained_will_and_unsubscribe(make_broker):
    """Retained messages under the prefix reach a mounted subscriber without it; a mounted client's will
    is published under the prefix; UNSUBSCRIBE takes the prefix too."""
    b, mounted = _mounted_broker(make_broker)
    outside = PahoClient(b)
    outside.connect()
    outside.subscribe("site1/will", 1)
    outside.publish("site1/r/x", b"kept", qos=1, retain=True)
    inside = PahoClient(mounted)
    inside.connect()
    inside.subscribe("r/#", 1)
    m = inside.get()
    assert (m.topic, m.payload, m.retain) == ("r/x", b"kept", True)
    inside.unsubscribe("r/#")
    outside.publish("site1/r/y", b"after", qos=1)
    inside.expect_none(0.3)
    dying = PahoClient(mounted, will={"topic": "will", "payload": b"gone", "qos": 1})
    dying.connect()
    dying.drop()
    m = outside.get()
    assert (m.topic, m.payload) == ("site1/will", b"gone")
    inside.disconnect()
    outside.disconnect()


@pytest.mark.skipif(is_reference(), reason="Mosquitto prefixes the whole $share string (it then shares nothing)")
def test_mount_point_shared_subscription(make_broker):
    """$share/GROUP/FILTER on a mounted listener shares FILTER under the prefix (docs/config.md: where
    Mosquitto differs)."""
    b, mounted = _mounted_broker(make_broker)
    inside = PahoClient(mounted, protocol=V5)
    inside.connect()
    inside.subscribe("$share/g/s/#", 1)
    outside = PahoClient(b)
    outside.connect()
    outside.publish("site1/s/1", b"x", qos=1)
    m = inside.get()
    assert (m.topic, m.payload) == ("s/1", b"x")
    inside.disconnect()
    outside.disconnect()
