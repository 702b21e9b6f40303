"""Backpressure: a broker must not accept more than it can deliver. Unthrottled publishers are slowed
down by TCP (the broker stops reading them while their receivers are full) instead of having their
messages dropped; a subscriber that never reads becomes a slow consumer on its own and does not stall
the others; a client disconnected with a reason code reads that reason even while it keeps sending.

The clients here are raw sockets with a minimal stream parser, so that a Python subscriber can take
a few hundred thousand messages in seconds. Marked tsan: they run against the ThreadSanitizer build
too (make tsan-test)."""
import re
import socket
import struct
import threading
import time

import pytest

import rawmqtt
from clients import V311

pytestmark = pytest.mark.tsan


def _connect(port, client_id, version=4, rcvbuf=None, clean=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(rawmqtt.connect(version, client_id=client_id, clean=clean))
    buf = _recv_exact(s, 4)
    assert buf[0] == 0x20 and buf[3] == 0, "CONNACK refused: %r" % buf
    return s


def _recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError("closed")
        out += d
    return out


def _publish_v4(topic, payload, qos, pid):
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", pid) if qos else b"") + payload
    return rawmqtt.packet(3, qos << 1, body)


class Reader:
    """A subscriber that reads as fast as it can: parses PUBLISH packets from the stream, records
    (topic, payload) and acknowledges QoS 1 in batches, on its own thread."""

    def __init__(self, port, client_id, filt, qos, expect, timeout=120):
        self.sock = _connect(port, client_id)
        self.sock.sendall(rawmqtt.subscribe(1, [(filt, qos)], version=4))
        self.expect, self.timeout = expect, timeout
        self.got = {}          # topic -> list of payload ints, in arrival order
        self.n = 0
        self.suback = False
        self.error = None
        self.buf = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        deadline = time.time() + 10
        while not self.suback and time.time() < deadline:  # SUBACK before publishers start
            self._read_once()
        assert self.suback, "no SUBACK"
        self.thread.start()
        return self

    def _read_once(self):
        buf = self.buf
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError("subscriber closed by the broker")
        buf += data
        acks = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first = buf[pos]
            rl, mul, i = 0, 1, pos + 1
            while True:
                if i >= end:
                    rl = None
                    break
                b = buf[i]
                rl += (b & 0x7F) * mul
                mul *= 128
                i += 1
                if not b & 0x80:
                    break
            if rl is None or end - i < rl:
                break
            ptype = first >> 4
            if ptype == 3:
                qos = (first >> 1) & 3
                tl = (buf[i] << 8) | buf[i + 1]
                topic = bytes(buf[i + 2:i + 2 + tl]).decode()
                j = i + 2 + tl
                if qos:
                    acks.append(b"\x40\x02" + bytes(buf[j:j + 2]))
                    j += 2
                self.got.setdefault(topic, []).append(int(buf[j:i + rl]))
                self.n += 1
            elif ptype == 9:
                self.suback = True
            pos = i + rl
        del buf[:pos]
        if acks:
            self.sock.sendall(b"".join(acks))

    def _run(self):
        deadline = time.time() + self.timeout
        try:
            while self.n < self.expect and time.time() < deadline:
                self._read_once()
        except socket.timeout:
            self.error = AssertionError("received %d of %d messages, then nothing for 30 s" % (self.n, self.expect))
        except Exception as e:  # noqa: B902 - reported by join()
            self.error = e

    def join(self):
        self.thread.join(self.timeout + 5)
        if self.error:
            raise self.error

    def assert_complete(self, publishers, per):
        """Every publisher's messages, each exactly once and in order [MQTT-4.6.0-5]."""
        assert self.n == publishers * per, "received %d of %d" % (self.n, publishers * per)
        for i in range(publishers):
            seq = self.got.get("bp/%d" % i, [])
            assert seq == list(range(per)), "publisher %d: %d messages, first gap at %s" % (
                i, len(seq), next((k for k, v in enumerate(seq) if v != k), len(seq)))


def _publisher(port, i, per, qos, errors, pad=0):
    """Send `per` messages as fast as the socket takes them (no waiting for acknowledgements), then
    count the PUBACKs: every message was accepted."""
    def run():
        try:
            s = _connect(port, "bp-pub-%d" % i)
            chunk = []
            for k in range(per):
                chunk.append(_publish_v4("bp/%d" % i, b"%d" % k + b" " * pad, qos, k % 65535 + 1))
                if len(chunk) == 500:
                    s.sendall(b"".join(chunk))
                    chunk = []
            s.sendall(b"".join(chunk))
            if qos == 1:
                need, data = per * 4, b""
                s.settimeout(120)
                while len(data) < need:
                    d = s.recv(1 << 16)
                    if not d:
                        raise EOFError("publisher %d closed after %d PUBACKs" % (i, len(data) // 4))
                    data += d
                assert data == b"".join(b"\x40\x02" + struct.pack("!H", k % 65535 + 1) for k in range(per))
            s.sendall(rawmqtt.disconnect(version=4))
            s.close()
        except Exception as e:  # noqa: B902 - reported by the test
            errors.append(e)
    return threading.Thread(target=run, daemon=True)


def _run_publishers(port, n, per, qos, pad=0):
    """n publishers, `per` messages each (payload: the message's number, then `pad` blanks)."""
    errors = []
    ts = [_publisher(port, i, per, qos, errors, pad) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(150)
    assert not any(t.is_alive() for t in ts), "publishers still blocked"
    if errors:
        raise errors[0]


def test_qos1_fan_in_200k_from_20_unthrottled_publishers_arrives_complete_MQTT_4_6_0_5(broker):
    """A QoS 1 stream of 200,000 messages from 20 publishers that never wait for PUBACK, to one
    subscriber that reads as fast as it can, with the default limits (max_queued_messages 1000,
    max_inflight_messages 20): every message is acknowledged to its publisher and delivered once,
    in order per publisher [MQTT-4.6.0-5]. Before backpressure the broker took them all and
    dropped what the subscriber's queue could not hold."""
    n, per = 20, 10000
    sub = Reader(broker.port, "bp-sub", "bp/+", 1, n * per).start()
    _run_publishers(broker.port, n, per, 1)
    sub.join()
    sub.assert_complete(n, per)


def test_qos0_fan_in_from_unthrottled_publishers_loses_nothing_a_reader_takes(broker):
    """QoS 0 has no acknowledgement to wait for, and still: 10 publishers flooding one subscriber
    that reads as fast as it can lose nothing, because the broker stops reading the publishers
    while the subscriber is behind (TCP pushes back) instead of dropping."""
    n, per = 10, 10000
    sub = Reader(broker.port, "bp-sub0", "bp/+", 0, n * per).start()
    _run_publishers(broker.port, n, per, 0)
    sub.join()
    sub.assert_complete(n, per)


def _sys_value(port, topic):
    c = rawmqtt.connected(port, V311, "bp-sys")
    c.subscribe([(topic, 0)])
    p = c.expect(rawmqtt.PUBLISH, timeout=10)
    c.close()
    return int(p.payload)


@pytest.mark.parametrize("qos", [0, 1])
def test_subscriber_that_never_reads_does_not_stall_the_others(make_broker, qos):
    """One subscriber never reads a byte; three others read as fast as they can; four publishers
    flood QoS 0 or 1 to all of them (10 MB each, more than the socket buffers and the broker's
    per-connection output can hold for the silent one). The silent one becomes a slow consumer (logged; its QoS 0
    dropped, its QoS 1 queued up to max_queued_messages, the drops counted in
    $SYS/broker/publish/messages/dropped) and the readers still get every message, in order."""
    b = make_broker("allow_anonymous true\nsys_interval 1\n")
    stuck = _connect(b.port, "bp-stuck", rcvbuf=4096)
    stuck.sendall(rawmqtt.subscribe(1, [("bp/#", qos)], version=4))
    time.sleep(0.2)
    n, per = 4, 5000
    readers = [Reader(b.port, "bp-r%d" % k, "bp/#", qos, n * per).start() for k in range(3)]
    _run_publishers(b.port, n, per, qos, pad=500)
    for r in readers:
        r.join()
        r.assert_complete(n, per)
    assert re.search(r"Client bp-stuck is a slow consumer", b.log())
    deadline = time.time() + 10
    while _sys_value(b.port, "$SYS/broker/publish/messages/dropped") == 0:
        assert time.time() < deadline, "no drop counted in $SYS"
        time.sleep(0.5)
    stuck.close()


@pytest.mark.reference_differs  # Mosquitto 2.0.11 does not enforce Receive Maximum
def test_mqtt_3_3_4_7_disconnect_0x93_reaches_a_client_that_keeps_sending(make_broker):
    """[MQTT-3.3.4-7] A client over the Receive Maximum with QoS 2 gets DISCONNECT 0x93, also when
    it keeps sending behind the offending PUBLISH (here 400 KB of PINGREQs in the same write, as a
    client that goes on acknowledging and pinging would): the broker shuts its side and drains the
    client's input before closing, so the client's writes do not fail with a broken pipe and it
    reads the DISCONNECT, then end of stream, not a connection reset."""
    b = make_broker("allow_anonymous true\nmax_inflight_messages 2\n")
    c = rawmqtt.Client(b.port, version=rawmqtt.V5, timeout=10)
    c.connect(rawmqtt.V5, client_id="rmx")
    data = b"".join(rawmqtt.publish("rmx/t", b"x", qos=2, packet_id=k) for k in (1, 2, 3))
    c.sock.settimeout(10)
    c.sock.sendall(data + rawmqtt.pingreq() * 200000)  # raises on a reset: the failure we prevent
    got = []
    with pytest.raises(rawmqtt.Closed, match="connection closed"):
        while True:
            got.append(c.read_packet())
    c.close()
    assert [p.type for p in got] == [rawmqtt.PUBREC, rawmqtt.PUBREC, rawmqtt.DISCONNECT], got
    assert got[-1].reason == rawmqtt.RECEIVE_MAX_EXCEEDED


@pytest.mark.parametrize("qos", [0, 1])
def test_retained_burst_of_100k_reaches_a_new_subscriber_MQTT_3_3_1_6(broker, qos):
    """[MQTT-3.3.1-6] [MQTT-3.3.1-8] A new subscription to '#' gets every retained message, with
    RETAIN set: 100,000 of them, far more than the broker writes to one connection at a time (its
    output stops at 1 MB and goes on as the socket drains, with no other delivery to wake it)."""
    n = 100000
    pub = _connect(broker.port, "bp-ret-pub")
    pad = b" " * 200  # 20 MB in all: many times what the broker writes to one connection at once
    pub.sendall(b"".join(rawmqtt.packet(3, 0x01, struct.pack("!H", len(t)) + t + b"%d" % k + pad)
                         for k, t in ((k, b"ret/%d" % k) for k in range(n))))
    pub.sendall(rawmqtt.pingreq())
    assert _recv_exact(pub, 2) == b"\xd0\x00"  # PINGRESP: every PUBLISH before it was handled
    sub = Reader(broker.port, "bp-ret-sub", "#", qos, n, timeout=60).start()
    sub.join()
    assert sub.n == n, "received %d of %d retained messages" % (sub.n, n)
    assert all(v == [int(t[4:])] for t, v in sub.got.items())
    pub.close()
