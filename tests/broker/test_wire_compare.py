"""The same exchanges, byte for byte, with tombo and with Debian's Mosquitto 2.0.11 in one test: what
the broker answers to CONNECT, PUBLISH at each QoS, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and to input it must
refuse, on MQTT 3.1.1 and 5.0. Every exchange must be identical, except the ones listed in DIFFERENT,
each with the reason tombo answers otherwise; a listed exchange that became identical fails too, so
the list stays the true list of differences (issue 13: "differences are deliberate and documented").
"""
import os
import socket
import struct
import time

import pytest

from clients import (CONNECT, DISCONNECT, PINGREQ, PUBACK, PUBCOMP, PUBREC, PUBREL, UNSUBSCRIBE, ack_packet,
                     connect_packet, disconnect_packet, packet, publish_packet, s16, subscribe_packet)
from conftest import Broker, is_reference

V311, V5 = 4, 5


def unsubscribe_packet(pid, filters, version):
    body = struct.pack("!H", pid) + (b"\x00" if version == V5 else b"")
    for f in filters:
        body += s16(f)
    return packet(UNSUBSCRIBE, 2, body)


def ping():
    return packet(PINGREQ, 0, b"")


# name -> (version, steps). A step is bytes to send (the client id "w" everywhere: no assigned id).
# One connection per exchange; a step's answer is everything the broker sends until it is quiet.
SCENARIOS = {
    "CONNECT 3.1.1": (V311, [connect_packet("w", V311)]),
    "CONNECT 3.1.1 persistent, again": (V311, [connect_packet("wp", V311, clean=False),
                                                disconnect_packet(), "reconnect",
                                                connect_packet("wp", V311, clean=False)]),
    "CONNECT 5.0": (V5, [connect_packet("w", V5)]),
    "CONNECT 3.1.1 unknown protocol level 6": (V311, [connect_packet("w", 6)]),
    "CONNECT 5.0 unknown Authentication Method": (V5, [connect_packet("w", V5, props=[(0x15, "SCRAM-SHA-1")])]),
    "PINGREQ": (V311, [connect_packet("w", V311), ping()]),
    "PUBLISH QoS 1, no subscriber, 3.1.1": (V311, [connect_packet("w", V311), publish_packet("wc/a", b"x", 1, 7)]),
    "PUBLISH QoS 1, no subscriber, 5.0": (V5, [connect_packet("w", V5), publish_packet("wc/a", b"x", 1, 7, version=V5)]),
    "PUBLISH QoS 1 to itself, 5.0": (V5, [connect_packet("w", V5), subscribe_packet(1, [("wc/#", 1)], V5),
                                          publish_packet("wc/a", b"x", 1, 7, version=V5),
                                          ack_packet(PUBACK, 1, version=V5)]),
    "PUBLISH QoS 2 flow, 3.1.1": (V311, [connect_packet("w", V311), publish_packet("wc/a", b"x", 2, 9),
                                         ack_packet(PUBREL, 9)]),
    "PUBLISH QoS 2 flow to itself, 5.0": (V5, [connect_packet("w", V5), subscribe_packet(1, [("wc/#", 2)], V5),
                                               publish_packet("wc/a", b"x", 2, 9, version=V5),
                                               ack_packet(PUBREL, 9, version=V5),
                                               ack_packet(PUBREC, 1, version=V5),
                                               ack_packet(PUBCOMP, 1, version=V5)]),
    "SUBSCRIBE QoS 0, 1, 2, 3.1.1": (V311, [connect_packet("w", V311),
                                            subscribe_packet(3, [("a/0", 0), ("a/1", 1), ("a/2", 2)])]),
    "SUBSCRIBE QoS 0, 1, 2, 5.0": (V5, [connect_packet("w", V5),
                                        subscribe_packet(3, [("a/0", 0), ("a/1", 1), ("a/2", 2)], V5)]),
    "retained message on SUBSCRIBE, 3.1.1": (V311, [connect_packet("w", V311),
                                                    publish_packet("wc/r", b"kept", 1, 2, retain=True),
                                                    subscribe_packet(3, [("wc/r", 1)]),
                                                    ack_packet(PUBACK, 1),
                                                    publish_packet("wc/r", b"", 0, retain=True)]),
    "UNSUBSCRIBE, 3.1.1": (V311, [connect_packet("w", V311), subscribe_packet(3, [("a/b", 0)]),
                                  unsubscribe_packet(4, ["a/b"], V311)]),
    "UNSUBSCRIBE existing and not, 5.0": (V5, [connect_packet("w", V5), subscribe_packet(3, [("a/b", 0)], V5),
                                               unsubscribe_packet(4, ["a/b", "x/y"], V5)]),
    "DISCONNECT 0x04 with will, 5.0": (V5, [connect_packet("w", V5, will={"topic": "wc/w", "payload": b"bye"}),
                                            disconnect_packet(0x04, V5)]),
    "second CONNECT, 3.1.1": (V311, [connect_packet("w", V311), connect_packet("w", V311)]),
    "second CONNECT, 5.0": (V5, [connect_packet("w", V5), connect_packet("w", V5)]),
    "PUBLISH before CONNECT": (V311, [publish_packet("wc/a", b"x")]),
    "SUBSCRIBE reserved option bits, 5.0": (V5, [connect_packet("w", V5), subscribe_packet(1, [("a/b", 0xC0)], V5)]),
    "SUBSCRIBE QoS 3, 3.1.1": (V311, [connect_packet("w", V311), subscribe_packet(1, [("a/b", 3)])]),
    "PUBLISH to a wildcard topic, 5.0": (V5, [connect_packet("w", V5), publish_packet("a/+", b"x", version=V5)]),
    "PUBLISH QoS 3, 3.1.1": (V311, [connect_packet("w", V311), packet(3, 6, s16("a") + b"\x00\x01x")]),
    "PUBLISH topic alias 0, 5.0": (V5, [connect_packet("w", V5), publish_packet("a", b"x", props=[(0x23, 0)],
                                                                               version=V5)]),
    "DISCONNECT with reserved flags, 3.1.1": (V311, [connect_packet("w", V311), packet(DISCONNECT, 1, b"")]),
}

# Exchanges where tombo answers otherwise, and why (docs/config.md, "Differences from Mosquitto").
DIFFERENT = {
    "PUBLISH QoS 1 to itself, 5.0":
        "order: tombo writes the PUBACK before the delivery it routed (deliveries are flushed at the end of "
        "the worker's turn); the specification orders neither against the other",
    "PUBLISH QoS 2 flow to itself, 5.0":
        "tombo delivers a QoS 2 message onward when its PUBLISH arrives (the specification's method A, "
        "Figure 4.3), Mosquitto when the PUBREL does (method B): one round trip less before delivery",
    "PUBLISH to a wildcard topic, 5.0":
        "[MQTT-3.3.2-2] tombo disconnects with 0x90 Topic Name invalid, the specific code, where Mosquitto "
        "sends 0x82 Protocol Error",
    "PUBLISH topic alias 0, 5.0":
        "[MQTT-3.3.2-8] tombo disconnects with 0x94 Topic Alias invalid, the specific code, where Mosquitto "
        "sends 0x81 Malformed Packet",
    "second CONNECT, 5.0":
        "[MQTT-3.1.0-2] tombo says why it closes (DISCONNECT 0x82 Protocol Error); Mosquitto closes without "
        "a word",
}

# Property sizes by identifier, to put a CONNACK's properties in one order (the specification
# leaves the order free: tombo writes them by identifier, Mosquitto otherwise).
_FIXED = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1,
          0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}


def _vbi(b, i):
    n, mul = 0, 1
    while True:
        n += (b[i] & 0x7F) * mul
        mul *= 128
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


def _props_sorted(b):
    items, i = [], 0
    while i < len(b):
        pid = b[i]
        j = i + 1
        if pid in _FIXED:
            j += _FIXED[pid]
        elif pid == 0x0B:
            _, j = _vbi(b, j)
        else:  # string / binary, or a user property's pair of strings
            for _ in range(2 if pid == 0x26 else 1):
                j += 2 + struct.unpack("!H", b[j:j + 2])[0]
        items.append(bytes(b[i:j]))
        i = j
    return b"".join(sorted(items))


def normalise(data, version):
    """The received bytes with each MQTT 5 CONNACK's properties in identifier order."""
    out, i = b"", 0
    while i < len(data):
        start = i
        n, j = _vbi(data, i + 1)
        body = data[j:j + n]
        if data[start] >> 4 == 2 and version == V5 and n > 2:
            plen, k = _vbi(body, 2)
            body = body[:k] + _props_sorted(body[k:k + plen]) + body[k + plen:]
        out += data[start:j] + body
        i = j + n
    return out


def _quiet_read(sock, quiet=0.3, limit=5.0):
    """Everything the broker sends until it is quiet for `quiet` s; and whether it closed."""
    data = b""
    end = time.monotonic() + limit
    sock.settimeout(quiet)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def exchange(port, version, steps):
    """Run the steps on fresh connections; the answer to each step as (hex, closed)."""
    out = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for step in steps:
            if step == "reconnect":
                sock.close()
                time.sleep(0.1)
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                continue
            try:
                sock.sendall(step)
            except OSError:
                out.append(("", True))
                break
            data, closed = _quiet_read(sock)
            out.append((normalise(data, version).hex(" "), closed))
            if closed:
                break
    finally:
        sock.close()
    return out


@pytest.fixture(scope="module")
def both():
    if is_reference():
        pytest.skip("compares tombo with the reference itself")
    saved = os.environ.get("TOMBO_REFERENCE")
    os.environ["TOMBO_REFERENCE"] = "mosquitto"
    try:
        mosq = Broker("user root\nallow_anonymous true\n").start()
    finally:
        if saved is None:
            del os.environ["TOMBO_REFERENCE"]
        else:
            os.environ["TOMBO_REFERENCE"] = saved
    tombo = Broker("allow_anonymous true\n").start()
    yield tombo, mosq
    rc = tombo.stop()
    mosq.stop()
    log = tombo.log()
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log
    assert rc == 0, log


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_bytes_as_mosquitto(both, name):
    tombo, mosq = both
    version, steps = SCENARIOS[name]
    got = exchange(tombo.port, version, steps)
    want = exchange(mosq.port, version, steps)
    print("tombo:     %s\nmosquitto: %s" % (got, want))
    if name in DIFFERENT:
        assert got != want, "%s: listed as different (%s) but now the same" % (name, DIFFERENT[name])
    else:
        assert got == want
