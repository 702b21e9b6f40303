"""Client helpers for the broker behaviour tests.

PahoClient: a paho-mqtt 1.6.1 client driven by its own network thread that never reconnects on its own
(paho's loop_start() would, which spoils takeover and will tests). Every wait has a timeout.

Raw: a tiny MQTT encoder/decoder over a plain socket, for the cases where a client library hides the
bytes (DUP flags, packet ids, reason codes, topic aliases, a connection dropped in mid-flow).
"""
import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V31 = mqtt.MQTTv31
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5

TIMEOUT = 5.0

_ids = [0]
_ids_lock = threading.Lock()


def unique_id(prefix="t"):
    with _ids_lock:
        _ids[0] += 1
        return "%s-%d-%d" % (prefix, int(time.time() * 1000) % 100000000, _ids[0])


def props(packet_type, **kw):
    """props(PacketTypes.PUBLISH, MessageExpiryInterval=5, UserProperty=[("a", "b")])"""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


class PahoClient:
    def __init__(self, broker, client_id=None, protocol=V311, clean=True, keepalive=60,
                 will=None, connect_props=None, username=None, password=None):
        self.broker = broker
        self.protocol = protocol
        self.client_id = unique_id() if client_id is None else client_id
        self.clean = clean
        self.keepalive = keepalive
        self.connect_props = connect_props
        if protocol == V5:
            self.c = mqtt.Client(client_id=self.client_id, protocol=V5)
        else:
            self.c = mqtt.Client(client_id=self.client_id, clean_session=clean, protocol=protocol)
        if will:
            self.c.will_set(**will)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = {}
        self.unsubacks = {}
        self.acked = {}
        self.cond = threading.Condition()
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self.disconnect_props = None
        self._stop = threading.Event()
        self._thread = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect

    # -- callbacks (network thread) --
    def _on_connect(self, c, ud, flags, rc, properties=None):
        self.connack.put((rc, flags, properties))

    def _on_message(self, c, ud, msg):
        self.messages.put(msg)

    def _on_subscribe(self, c, ud, mid, granted, properties=None):
        with self.cond:
            self.subacks[mid] = granted
            self.cond.notify_all()

    def _on_unsubscribe(self, c, ud, mid, properties=None, reasons=None):
        with self.cond:
            self.unsubacks[mid] = reasons
            self.cond.notify_all()

    def _on_publish(self, c, ud, mid):
        with self.cond:
            self.acked[mid] = True
            self.cond.notify_all()

    def _on_disconnect(self, c, ud, rc, properties=None):
        self.disconnect_rc = rc
        self.disconnect_props = properties
        self.disconnected.set()

    def _run(self):
        while not self._stop.is_set():
            rc = self.c.loop(0.02)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
        self.disconnected.set()

    # -- API --
    def connect(self, timeout=TIMEOUT, expect_success=True):
        """Connect and wait for CONNACK; returns (rc, flags, properties). rc is an int (3.x) or
        a paho ReasonCodes (5.0); int(rc) works on both ... use rc_value()."""
        if self.protocol == V5:
            self.c.connect(self.broker.host, self.broker.port, self.keepalive,
                           clean_start=self.clean, properties=self.connect_props)
        else:
            self.c.connect(self.broker.host, self.broker.port, self.keepalive)
        self._thread = threading.Thread(target=self._run, daemon=True)
        # Tell paho a network thread exists, so publish()/disconnect() called from the test thread
        # queue their packets for our thread instead of writing (and closing) the socket
        # themselves while our thread reads it.
        self.c._thread = self._thread
        self._thread.start()
        try:
            res = self.connack.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no CONNACK within %ss" % timeout)
        if expect_success:
            assert rc_value(res[0]) == 0, "CONNACK refused: %s" % res[0]
        return res

    def wait(self, table, mid, timeout):
        deadline = time.time() + timeout
        with self.cond:
            while mid not in table:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("no ack for mid %d within %ss" % (mid, timeout))
                self.cond.wait(left)
            return table.pop(mid)

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=TIMEOUT):
        """Returns the granted QoS list (3.x) or the reason code values (5.0)."""
        if self.protocol == V5:
            if options is None:
                options = mqtt.SubscribeOptions(qos=qos)
            rc, mid = self.c.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        granted = self.wait(self.subacks, mid, timeout)
        return [rc_value(g) for g in granted]

    def unsubscribe(self, topic, timeout=TIMEOUT):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        reasons = self.wait(self.unsubacks, mid, timeout)
        if reasons is None:
            return None
        if not isinstance(reasons, list):
            reasons = [reasons]
        return [rc_value(r) for r in reasons]

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True, timeout=TIMEOUT):
        """Publish; with wait, return once the flow is complete (sent for QoS 0, PUBACK, PUBCOMP)."""
        info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        if wait:
            self.wait(self.acked, info.mid, timeout)
        return info.mid

    def get(self, timeout=TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %ss" % timeout)

    def get_n(self, n, timeout=TIMEOUT):
        deadline = time.time() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("got %d of %d messages within %ss: %r" %
                                     (len(out), n, timeout, [(m.topic, m.payload) for m in out]))
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def expect_none(self, timeout=0.5):
        """Assert that no message arrives within `timeout` (used after a sync point, see sync())."""
        deadline = time.time() + timeout
        while True:
            try:
                m = self.messages.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                return
            if not m.topic.startswith(MARKER_PREFIX):
                break
        raise AssertionError("unexpected message on %s: %r" % (m.topic, m.payload))

    def sync(self, topic=None, timeout=TIMEOUT):
        """Round trip through the broker: subscribe to a private topic, publish to it at QoS 1 and
        wait for it. Everything the broker sent this client before is then already queued here,
        so expect_none() afterwards proves absence without a guess at timing. Returns the other
        messages received meanwhile (they stay in order in the returned list)."""
        topic = topic or "sync/" + unique_id("s")
        self.subscribe(topic, 1)
        self.publish(topic, b"sync", 1)
        others = []
        deadline = time.time() + timeout
        while True:
            m = self.get(max(0.01, deadline - time.time()))
            if m.topic == topic:
                break
            others.append(m)
        self.unsubscribe(topic)
        return others

    def drain_until(self, topic, timeout=TIMEOUT):
        """Receive until a message on `topic` arrives; return the messages before it, leaving out
        any other copy of a marker topic (see flush())."""
        others = []
        deadline = time.time() + timeout
        while True:
            m = self.get(max(0.01, deadline - time.time()))
            if m.topic == topic:
                return others
            if not m.topic.startswith(MARKER_PREFIX):
                others.append(m)

    def disconnect(self, reasoncode=None, properties=None):
        if self._thread is None:
            return
        if not self.disconnected.is_set():
            if self.protocol == V5 and (reasoncode is not None or properties is not None):
                from paho.mqtt.reasoncodes import ReasonCodes
                rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode or 0)
                self.c.disconnect(reasoncode=rc, properties=properties)
            else:
                self.c.disconnect()
            self.disconnected.wait(TIMEOUT)
        self.close()

    def close(self):
        """Stop the network thread; the socket is closed without DISCONNECT if still open."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(TIMEOUT)
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def drop(self):
        """Abnormal close: stop the thread and close the socket without sending DISCONNECT."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT)
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


MARKER_PREFIX = "marker/"


def flush(pub, sub, timeout=TIMEOUT):
    """Publish a QoS 1 marker from `pub` after what it sent before, and receive on `sub` until the
    marker arrives: returns the messages `sub` got before it. Messages from one publisher reach a
    subscriber in the order they were sent [MQTT-4.6.0-5], so anything the broker meant to send
    `sub` because of `pub`'s earlier publishes has arrived by then; expect_none() can then prove
    absence with a short bound instead of a guess."""
    topic = MARKER_PREFIX + unique_id("m")
    if sub.protocol == V5:
        sub.subscribe(topic, 1)
    else:
        sub.subscribe(topic, 1)
    pub.publish(topic, b"marker", 1)
    got = sub.drain_until(topic, timeout)
    sub.unsubscribe(topic)
    return got


def rc_value(rc):
    if isinstance(rc, int):
        return rc
    return rc.value


# ---------------------------------------------------------------------------------------------
# Raw MQTT over a socket.

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, \
    UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(1, 16)

# property id -> kind
_PROP_KIND = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "vbi", 0x11: "u32",
    0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32", 0x19: "byte",
    0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16", 0x24: "byte",
    0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte", 0x29: "byte", 0x2A: "byte",
}
PROP = dict(payload_format=0x01, message_expiry=0x02, content_type=0x03, response_topic=0x08,
            correlation_data=0x09, subscription_id=0x0B, session_expiry=0x11, assigned_client_id=0x12,
            server_keep_alive=0x13, reason_string=0x1F, receive_maximum=0x21, topic_alias_maximum=0x22,
            topic_alias=0x23, maximum_qos=0x24, retain_available=0x25, user_property=0x26,
            maximum_packet_size=0x27)


def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def enc_props(plist):
    """plist: list of (id, value); user property value is (k, v)."""
    if plist is None:
        return b""
    body = bytearray()
    for pid, val in plist:
        kind = _PROP_KIND[pid]
        body += vbi(pid)
        if kind == "byte":
            body.append(val)
        elif kind == "u16":
            body += struct.pack("!H", val)
        elif kind == "u32":
            body += struct.pack("!I", val)
        elif kind == "vbi":
            body += vbi(val)
        elif kind in ("str", "bin"):
            body += s16(val)
        else:
            body += s16(val[0]) + s16(val[1])
    return vbi(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + body


def connect_packet(client_id, version=4, clean=True, keepalive=60, props=None, will=None):
    """will: dict(topic, payload, qos, retain, props)."""
    name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0x02 if clean else 0
    wpart = b""
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            wpart += enc_props(will.get("props", []))
        wpart += s16(will["topic"]) + s16(will.get("payload", b""))
    body = s16(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += enc_props(props or [])
    body += s16(client_id) + wpart
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, version=4, props=None):
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = s16(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == 5:
        body += enc_props(props or [])
    return packet(PUBLISH, flags, body + payload)


def ack_packet(ptype, pid, reason=None, version=4):
    flags = 2 if ptype == PUBREL else 0
    body = struct.pack("!H", pid)
    if version == 5 and reason is not None:
        body += bytes([reason])
    return packet(ptype, flags, body)


def subscribe_packet(pid, filters, version=4, props=None):
    """filters: list of (filter, options byte)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += enc_props(props or [])
    for f, o in filters:
        body += s16(f) + bytes([o])
    return packet(SUBSCRIBE, 2, body)


def disconnect_packet(reason=None, version=4, props=None):
    if version == 5 and reason is not None:
        return packet(DISCONNECT, 0, bytes([reason]) + enc_props(props or []))
    return packet(DISCONNECT, 0, b"")


class Packet:
    def __init__(self, ptype, flags, body, version):
        self.type = ptype
        self.flags = flags
        self.body = body
        self.version = version
        self.props = []
        self.reason = None
        self.pid = None
        self.topic = None
        self.payload = None
        self._parse()

    @property
    def qos(self):
        return (self.flags >> 1) & 3

    @property
    def dup(self):
        return bool(self.flags & 8)

    @property
    def retain(self):
        return bool(self.flags & 1)

    def prop(self, name, default=None):
        pid = PROP[name]
        for k, v in self.props:
            if k == pid:
                return v
        return default

    def prop_all(self, name):
        pid = PROP[name]
        return [v for k, v in self.props if k == pid]

    def _props_at(self, i):
        n, i = _dec_vbi(self.body, i)
        end = i + n
        out = []
        while i < end:
            pid, i = _dec_vbi(self.body, i)
            kind = _PROP_KIND[pid]
            if kind == "byte":
                v = self.body[i]
                i += 1
            elif kind == "u16":
                v = struct.unpack_from("!H", self.body, i)[0]
                i += 2
            elif kind == "u32":
                v = struct.unpack_from("!I", self.body, i)[0]
                i += 4
            elif kind == "vbi":
                v, i = _dec_vbi(self.body, i)
            elif kind in ("str", "bin"):
                ln = struct.unpack_from("!H", self.body, i)[0]
                v = bytes(self.body[i + 2:i + 2 + ln])
                if kind == "str":
                    v = v.decode()
                i += 2 + ln
            else:
                ln = struct.unpack_from("!H", self.body, i)[0]
                k = bytes(self.body[i + 2:i + 2 + ln]).decode()
                i += 2 + ln
                ln = struct.unpack_from("!H", self.body, i)[0]
                val = bytes(self.body[i + 2:i + 2 + ln]).decode()
                i += 2 + ln
                v = (k, val)
            out.append((pid, v))
        self.props = out
        return i

    def _parse(self):
        b = self.body
        v5 = self.version == 5
        t = self.type
        if t == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.reason = b[1]
            if v5 and len(b) > 2:
                self._props_at(2)
        elif t == PUBLISH:
            ln = struct.unpack_from("!H", b, 0)[0]
            self.topic = bytes(b[2:2 + ln]).decode()
            i = 2 + ln
            if self.qos:
                self.pid = struct.unpack_from("!H", b, i)[0]
                i += 2
            if v5:
                i = self._props_at(i)
            self.payload = bytes(b[i:])
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = struct.unpack_from("!H", b, 0)[0]
            self.reason = b[2] if len(b) > 2 else 0
            if v5 and len(b) > 3:
                self._props_at(3)
        elif t in (SUBACK, UNSUBACK):
            self.pid = struct.unpack_from("!H", b, 0)[0]
            i = 2
            if v5:
                i = self._props_at(i)
            self.reasons = list(b[i:])
        elif t in (DISCONNECT, AUTH):
            self.reason = b[0] if b else 0
            if v5 and len(b) > 1:
                self._props_at(1)

    def __repr__(self):
        return "<Packet type=%d flags=%x reason=%s pid=%s topic=%s>" % (
            self.type, self.flags, self.reason, self.pid, self.topic)


def _dec_vbi(b, i):
    mult, val = 1, 0
    while True:
        c = b[i]
        i += 1
        val += (c & 0x7F) * mult
        if not c & 0x80:
            return val, i
        mult *= 128


class Raw:
    """A raw MQTT connection. recv() returns Packet or raises AssertionError on timeout; closed()
    tells whether the broker closed the connection."""

    def __init__(self, broker, version=4, timeout=TIMEOUT):
        self.version = version
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by broker")
            self.buf += chunk

    def recv(self, timeout=TIMEOUT):
        deadline = time.time() + timeout
        try:
            self._fill(2, deadline)
            i = 1
            while True:
                self._fill(i + 1, deadline)
                if not self.buf[i] & 0x80:
                    break
                i += 1
                if i > 4:
                    raise AssertionError("bad remaining length")
            ln, start = _dec_vbi(self.buf, 1)
            self._fill(start + ln, deadline)
        except socket.timeout:
            raise AssertionError("no packet within %ss" % timeout)
        h = self.buf[0]
        body = self.buf[start:start + ln]
        self.buf = self.buf[start + ln:]
        return Packet(h >> 4, h & 15, body, self.version)

    def recv_type(self, ptype, timeout=TIMEOUT):
        p = self.recv(timeout)
        assert p.type == ptype, "expected packet type %d, got %r" % (ptype, p)
        return p

    def closed(self, timeout=TIMEOUT):
        """Wait until the broker closes the connection; return the packets received before
        (e.g. a DISCONNECT). Raises AssertionError if it stays open past the timeout."""
        deadline = time.time() + timeout
        got = []
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("connection still open after %ss" % timeout)
            try:
                got.append(self.recv(left))
            except ConnectionError:
                return got
            except OSError:
                return got
            except AssertionError:
                if self.buf:
                    raise
                raise AssertionError("connection still open after %ss" % timeout)

    def connect(self, client_id, clean=True, keepalive=60, props=None, will=None, expect_reason=0):
        self.send(connect_packet(client_id, self.version, clean, keepalive, props, will))
        p = self.recv_type(CONNACK)
        if expect_reason is not None:
            assert p.reason == expect_reason, "CONNACK reason %d" % p.reason
        return p

    def publish(self, topic, payload=b"", qos=0, pid=None, retain=False, dup=False, props=None):
        self.send(publish_packet(topic, payload, qos, pid, retain, dup, self.version, props))

    def ack(self, ptype, pid, reason=None):
        self.send(ack_packet(ptype, pid, reason, self.version))

    def subscribe(self, pid, filters, props=None):
        """filters: list of (filter, options) or a single filter string (QoS 0)."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe_packet(pid, filters, self.version, props))
        p = self.recv_type(SUBACK)
        assert p.pid == pid
        return p.reasons

    def disconnect(self, reason=None, props=None):
        try:
            self.send(disconnect_packet(reason, self.version, props))
        except OSError:
            pass
        self.close()

    def disconnect_and_wait(self, reason=None, props=None, timeout=TIMEOUT):
        """Send DISCONNECT and wait until the broker closes the connection, i.e. until it has
        handled the DISCONNECT (session end, will discard): a following CONNECT with the same
        client id cannot race with it."""
        self.send(disconnect_packet(reason, self.version, props))
        self.closed(timeout)
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
