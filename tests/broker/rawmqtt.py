"""rawmqtt: MQTT 3.1.1 / 5.0 packets as bytes, over a plain socket, for tests that must control
every byte (bad flags, bogus lengths, invalid UTF-8, duplicated properties...) or read every byte
the broker answers with (reason codes, properties, the moment the connection closes).

Building blocks (all return bytes; none of them validates, so anything can be built):
    varint(n), u8(n), u16(n), u32(n), utf8(s), binary(b), props([(id, value), ...])
    packet(type, flags, body, remaining=None)    fixed header + body, remaining length may lie
    connect(...), publish(...), subscribe(...), unsubscribe(...), ack(...), disconnect(...), auth(...)
A connection:
    c = Client(port)                       TCP socket with a timeout (2 s by default)
    ack = c.connect(version=5, client_id="x")   sends CONNECT, returns the CONNACK as a Packet
    c.send(bytes); p = c.read_packet()     Packet(type, flags, body) parsed for its type:
                                           p.reason, p.props, p.packet_id, p.reason_codes, ...
    c.expect_closed()                      EOF or reset within the timeout, nothing else received
    c.expect_disconnect(0x81)              DISCONNECT with that reason code (v5), then closed
    c.expect_connack(0x85)                 CONNACK with that code (the caller then checks the close)
    c = connected(port, V311, "id")        a Client after a successful CONNECT (c.connack kept)
    c.subscribe([("a/#", 1)]), c.publish("a/b", b"x", qos=2), c.ping(), c.disconnect()
                                           well-behaved flows; publish completes the QoS handshake
                                           and keeps packets that arrive meanwhile for read_packet()
"""
import socket
import struct
import time

TIMEOUT = 2.0

# Packet types.
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
              8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
              14: "DISCONNECT", 15: "AUTH"}

# Protocol levels.
V31, V311, V5 = 3, 4, 5

# MQTT 5 properties: name -> (identifier, data type). Types: byte, u16, u32, varint, utf8, binary, pair.
PROPERTIES = {
    "payload_format": (0x01, "byte"),
    "message_expiry": (0x02, "u32"),
    "content_type": (0x03, "utf8"),
    "response_topic": (0x08, "utf8"),
    "correlation_data": (0x09, "binary"),
    "subscription_id": (0x0B, "varint"),
    "session_expiry": (0x11, "u32"),
    "assigned_client_id": (0x12, "utf8"),
    "server_keep_alive": (0x13, "u16"),
    "auth_method": (0x15, "utf8"),
    "auth_data": (0x16, "binary"),
    "request_problem_info": (0x17, "byte"),
    "will_delay": (0x18, "u32"),
    "request_response_info": (0x19, "byte"),
    "response_info": (0x1A, "utf8"),
    "server_reference": (0x1C, "utf8"),
    "reason_string": (0x1F, "utf8"),
    "receive_max": (0x21, "u16"),
    "topic_alias_max": (0x22, "u16"),
    "topic_alias": (0x23, "u16"),
    "max_qos": (0x24, "byte"),
    "retain_available": (0x25, "byte"),
    "user": (0x26, "pair"),
    "max_packet_size": (0x27, "u32"),
    "wildcard_sub_available": (0x28, "byte"),
    "sub_id_available": (0x29, "byte"),
    "shared_sub_available": (0x2A, "byte"),
}
PROPERTY_BY_ID = {pid: (name, kind) for name, (pid, kind) in PROPERTIES.items()}

# Reason codes used by the tests (MQTT 5, section 2.4).
SUCCESS = 0x00
UNSPECIFIED = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_ID_NOT_VALID = 0x85
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
RECEIVE_MAX_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
PAYLOAD_FORMAT_INVALID = 0x99
# MQTT 3.1.1 CONNACK return codes.
RC3_ACCEPTED, RC3_BAD_PROTOCOL, RC3_ID_REJECTED = 0, 1, 2


class Closed(Exception):
    """The broker closed the connection (EOF or reset) while a packet was expected."""


# ---------------------------------------------------------------- encoding building blocks

def varint(n):
    """Variable Byte Integer, minimal encoding (n may exceed the MQTT maximum: no check)."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u8(n):
    return struct.pack("!B", n)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def _as_bytes(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def utf8(s):
    """UTF-8 Encoded String: 2-byte length + bytes. Pass bytes to send ill-formed UTF-8."""
    b = _as_bytes(s)
    return u16(len(b)) + b


def binary(b):
    """Binary Data: 2-byte length + bytes."""
    return u16(len(b)) + bytes(b)


def prop(ident, value):
    """One property. `ident` is a name from PROPERTIES or a numeric id (for an unknown id, pass
    value as raw bytes). Values: int for byte/u16/u32/varint, str/bytes for utf8/binary, a
    (key, value) pair for user properties; raw bytes are always sent as they are."""
    if isinstance(ident, str):
        pid, kind = PROPERTIES[ident]
    else:
        pid, kind = ident, PROPERTY_BY_ID.get(ident, (None, "raw"))[1]
    head = varint(pid)
    if isinstance(value, (bytes, bytearray)) and kind not in ("utf8", "binary"):
        return head + bytes(value)
    if kind == "byte":
        return head + u8(value)
    if kind == "u16":
        return head + u16(value)
    if kind == "u32":
        return head + u32(value)
    if kind == "varint":
        return head + varint(value)
    if kind == "utf8":
        return head + utf8(value)
    if kind == "binary":
        return head + binary(_as_bytes(value))
    if kind == "pair":
        return head + utf8(value[0]) + utf8(value[1])
    raise ValueError("property %r needs raw bytes" % (ident,))


def props(plist=(), length=None):
    """A property block: varint length + properties. `plist` is a list of (ident, value) pairs
    (see prop) or raw bytes. `length` overrides the length prefix: an int is varint-encoded,
    bytes are sent as they are (e.g. an oversize varint)."""
    body = plist if isinstance(plist, (bytes, bytearray)) else b"".join(prop(i, v) for i, v in plist)
    if length is None:
        head = varint(len(body))
    elif isinstance(length, (bytes, bytearray)):
        head = bytes(length)
    else:
        head = varint(length)
    return head + bytes(body)


def packet(ptype, flags, body, remaining=None):
    """Fixed header + body. `remaining`: None for the true length, an int for a lying length, or
    raw bytes for the whole remaining-length field (e.g. 5 continuation bytes)."""
    if remaining is None:
        rl = varint(len(body))
    elif isinstance(remaining, (bytes, bytearray)):
        rl = bytes(remaining)
    else:
        rl = varint(remaining)
    return bytes([(ptype << 4) | (flags & 0x0F)]) + rl + bytes(body)


# ---------------------------------------------------------------- packet builders

def connect(version=V5, client_id="", clean=True, keepalive=60, properties=None,
            will_topic=None, will_payload=b"", will_qos=0, will_retain=False, will_properties=None,
            username=None, password=None, protocol_name=None, flags=None, fixed_flags=0):
    """A CONNECT. will_topic=None means no will. `flags` overrides the whole connect-flags byte;
    `protocol_name` overrides "MQTT"/"MQIsdp"; `properties` / `will_properties` are prop lists
    or a ready property block (bytes), v5 only."""
    if protocol_name is None:
        protocol_name = "MQIsdp" if version == V31 else "MQTT"
    if flags is None:
        flags = 0
        if clean:
            flags |= 0x02
        if will_topic is not None:
            flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        if password is not None:
            flags |= 0x40
        if username is not None:
            flags |= 0x80
    body = utf8(protocol_name) + u8(version) + u8(flags) + u16(keepalive)
    if version == V5:
        body += _block(properties)
    body += utf8(client_id)
    if will_topic is not None:
        if version == V5:
            body += _block(will_properties)
        body += utf8(will_topic) + binary(_as_bytes(will_payload))
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(_as_bytes(password))
    return packet(CONNECT, fixed_flags, body)


def _block(p):
    if isinstance(p, (bytes, bytearray)):
        return bytes(p)
    return props(p or ())


def publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None, version=V5,
            properties=None, flags=None):
    """A PUBLISH. packet_id defaults to 1 for QoS > 0 and is left out for QoS 0; `flags`
    overrides the fixed-header flags (e.g. QoS 3)."""
    if flags is None:
        flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic)
    if packet_id is None and (flags >> 1) & 3:
        packet_id = 1
    if packet_id is not None:
        body += u16(packet_id)
    if version == V5:
        body += _block(properties)
    return packet(PUBLISH, flags, body + _as_bytes(payload))


def subscribe(packet_id, filters, version=V5, properties=None, flags=0x02):
    """A SUBSCRIBE. `filters`: list of (filter, options byte) or plain filters (options 0)."""
    body = u16(packet_id)
    if version == V5:
        body += _block(properties)
    for f in filters:
        if isinstance(f, tuple):
            body += utf8(f[0]) + u8(f[1])
        else:
            body += utf8(f) + u8(0)
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(packet_id, filters, version=V5, properties=None, flags=0x02):
    body = u16(packet_id)
    if version == V5:
        body += _block(properties)
    for f in filters:
        body += utf8(f)
    return packet(UNSUBSCRIBE, flags, body)


def ack(ptype, packet_id, reason=None, version=V5, properties=None, flags=None):
    """PUBACK / PUBREC / PUBREL / PUBCOMP. The reason code (v5) is sent when given or when
    properties are."""
    if flags is None:
        flags = 0x02 if ptype == PUBREL else 0
    body = u16(packet_id)
    if version == V5 and (reason is not None or properties is not None):
        body += u8(reason or 0)
        if properties is not None:
            body += _block(properties)
    return packet(ptype, flags, body)


def disconnect(reason=None, version=V5, properties=None):
    body = b""
    if version == V5 and (reason is not None or properties is not None):
        body = u8(reason or 0)
        if properties is not None:
            body += _block(properties)
    return packet(DISCONNECT, 0, body)


def auth(reason=0x18, properties=None, flags=0):
    return packet(AUTH, flags, u8(reason) + _block(properties))


def pingreq():
    return packet(PINGREQ, 0, b"")


# ---------------------------------------------------------------- decoding

def decode_varint(buf, pos):
    """(value, next position); ValueError when longer than 4 bytes or cut short."""
    value, mult = 0, 1
    for i in range(4):
        if pos + i >= len(buf):
            raise ValueError("varint cut short")
        b = buf[pos + i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos + i + 1
        mult *= 128
    raise ValueError("varint longer than 4 bytes")


def decode_props(buf, pos):
    """Parse a property block at buf[pos:]. Returns (dict, next position). Repeated properties
    (user, subscription_id) are lists; the others are single values."""
    length, pos = decode_varint(buf, pos)
    end = pos + length
    out = {}
    while pos < end:
        pid, pos = decode_varint(buf, pos)
        name, kind = PROPERTY_BY_ID.get(pid, ("0x%02x" % pid, None))
        if kind == "byte":
            v, pos = buf[pos], pos + 1
        elif kind == "u16":
            v, pos = struct.unpack_from("!H", buf, pos)[0], pos + 2
        elif kind == "u32":
            v, pos = struct.unpack_from("!I", buf, pos)[0], pos + 4
        elif kind == "varint":
            v, pos = decode_varint(buf, pos)
        elif kind in ("utf8", "binary"):
            n = struct.unpack_from("!H", buf, pos)[0]
            v, pos = bytes(buf[pos + 2:pos + 2 + n]), pos + 2 + n
            if kind == "utf8":
                v = v.decode("utf-8", "replace")
        elif kind == "pair":
            n = struct.unpack_from("!H", buf, pos)[0]
            k = bytes(buf[pos + 2:pos + 2 + n]).decode("utf-8", "replace")
            pos += 2 + n
            n = struct.unpack_from("!H", buf, pos)[0]
            v = (k, bytes(buf[pos + 2:pos + 2 + n]).decode("utf-8", "replace"))
            pos += 2 + n
        else:
            raise ValueError("unknown property id 0x%02x from the broker" % pid)
        if name in ("user", "subscription_id"):
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out, end


class Packet:
    """A packet read from the broker, parsed by type for protocol level `version`.

    Always: type, flags, body, version. Then, as the type has them:
      reason        CONNACK (v3 return code or v5 reason code), PUBACK..PUBCOMP, DISCONNECT, AUTH
                    (0 when a v5 packet leaves it out)
      session_present (CONNACK), packet_id, reason_codes (SUBACK, UNSUBACK), props (v5 dict),
      topic, payload, qos, retain, dup (PUBLISH)."""

    def __init__(self, ptype, flags, body, version):
        self.type, self.flags, self.body, self.version = ptype, flags, bytes(body), version
        self.reason = None
        self.props = {}
        self.packet_id = None
        self.reason_codes = None
        b = self.body
        v5 = version == V5
        if ptype == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.reason = b[1]
            if v5 and len(b) > 2:
                self.props, _ = decode_props(b, 2)
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.packet_id = struct.unpack_from("!H", b, 0)[0]
            self.reason = b[2] if v5 and len(b) > 2 else 0
            if v5 and len(b) > 3:
                self.props, _ = decode_props(b, 3)
        elif ptype in (SUBACK, UNSUBACK):
            self.packet_id = struct.unpack_from("!H", b, 0)[0]
            pos = 2
            if v5:
                self.props, pos = decode_props(b, 2)
            self.reason_codes = list(b[pos:])
        elif ptype in (DISCONNECT, AUTH):
            self.reason = b[0] if b else 0
            if v5 and len(b) > 1:
                self.props, _ = decode_props(b, 1)
        elif ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            n = struct.unpack_from("!H", b, 0)[0]
            self.topic = b[2:2 + n].decode("utf-8", "replace")
            pos = 2 + n
            if self.qos:
                self.packet_id = struct.unpack_from("!H", b, pos)[0]
                pos += 2
            if v5:
                self.props, pos = decode_props(b, pos)
            self.payload = b[pos:]

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self):
        extra = ""
        if self.reason is not None:
            extra += " reason=0x%02x" % self.reason
        if self.reason_codes is not None:
            extra += " codes=%s" % ["0x%02x" % c for c in self.reason_codes]
        if self.props:
            extra += " props=%r" % (self.props,)
        return "<%s flags=0x%x%s body=%s>" % (self.name, self.flags, extra, self.body[:40].hex())


# ---------------------------------------------------------------- a connection

def as_codes(codes):
    """A reason code or a tuple of codes, as a tuple."""
    return codes if isinstance(codes, tuple) else (codes,)


def codes_text(codes):
    """Text for one code or a tuple of codes: '0x81' or '0x81 or 0x82'."""
    return " or ".join("0x%02x" % c for c in as_codes(codes))


class Client:
    """One TCP connection to the broker on 127.0.0.1:port. Every read is bounded by `timeout`
    seconds. `version` is the protocol level used to parse what the broker sends (set by
    connect())."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, version=V5):
        self.timeout = timeout
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = []   # packets read while waiting for an ack (see _await_ack), served first
        self._next_id = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_id(self):
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def send(self, data):
        """Send bytes. A broker that already closed may reset us: that is not an error here (the
        test then checks what was received / that the connection is closed)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fill(self, deadline):
        """Read more bytes into self.buf; raise Closed on EOF/reset, TimeoutError at deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the broker within %.1fs" % self.timeout)
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the broker within %.1fs" % self.timeout)
        except (ConnectionResetError, ConnectionAbortedError):
            raise Closed("connection reset")
        if not data:
            raise Closed("connection closed")
        self.buf += data

    def read_packet(self, timeout=None):
        """Next packet from the broker as a Packet. Raises Closed when the connection closes
        first, TimeoutError when nothing complete arrives within the timeout."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    remaining, pos = decode_varint(self.buf, 1)
                except ValueError as e:
                    if "cut short" not in str(e):
                        raise
                    remaining, pos = None, None
                if remaining is not None and len(self.buf) >= pos + remaining:
                    first = self.buf[0]
                    body = self.buf[pos:pos + remaining]
                    del self.buf[:pos + remaining]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        """Read one packet and assert its type."""
        p = self.read_packet(timeout)
        assert p.type == ptype, "expected %s, got %r" % (TYPE_NAMES[ptype], p)
        return p

    def expect_closed(self, timeout=None):
        """Assert the broker closes the connection (EOF or reset) within the timeout and sends
        nothing before that."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._fill(deadline)
            except Closed:
                break
            except TimeoutError:
                raise AssertionError("connection still open after %.1fs" % (self.timeout if timeout is None
                                                                           else timeout))
        assert not self.buf and not self.pending, "broker sent %s before closing" % self._describe_buf()
        return True

    def _describe_buf(self):
        if self.pending:
            return repr(self.pending[0])
        try:
            return repr(self.read_packet(timeout=0.01))
        except Exception:
            return self.buf.hex()

    def expect_disconnect(self, reason, timeout=None):
        """Assert a DISCONNECT with `reason` (or one of a tuple of codes) arrives (v5) and the
        connection then closes."""
        want = codes_text(reason)
        try:
            p = self.read_packet(timeout)
        except Closed:
            raise AssertionError("connection closed without DISCONNECT %s" % want)
        assert p.type == DISCONNECT, "expected DISCONNECT %s, got %r" % (want, p)
        assert p.reason in as_codes(reason), "expected DISCONNECT %s, got 0x%02x %r" % (want, p.reason, p)
        self.expect_closed(timeout)
        return p

    def expect_connack(self, reason, timeout=None):
        """Assert a CONNACK with `reason` (v3 return code or v5 reason code, or a tuple of
        codes) arrives."""
        want = codes_text(reason)
        try:
            p = self.read_packet(timeout)
        except Closed:
            raise AssertionError("connection closed without CONNACK %s" % want)
        assert p.type == CONNACK, "expected CONNACK %s, got %r" % (want, p)
        assert p.reason in as_codes(reason), "expected CONNACK %s, got 0x%02x %r" % (want, p.reason, p)
        return p

    # -- well-behaved operations --

    def connect(self, version=V5, client_id="", **kw):
        """Send a CONNECT (see connect()) and return the CONNACK Packet (whatever its code)."""
        self.version = version
        self.send(connect(version=version, client_id=client_id, **kw))
        return self.expect(CONNACK)

    def subscribe(self, filters, packet_id=None, properties=None):
        """SUBSCRIBE to `filters` (see subscribe()); return the SUBACK."""
        pid = packet_id or self.next_id()
        if isinstance(filters, (str, tuple)):
            filters = [filters]
        self.send(subscribe(pid, filters, version=self.version, properties=properties))
        return self._await_ack(SUBACK, pid)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None):
        """PUBLISH and complete its QoS flow; return the PUBACK / PUBCOMP (None for QoS 0)."""
        pid = self.next_id() if qos else None
        self.send(publish(topic, payload, qos, retain, packet_id=pid, version=self.version,
                          properties=properties))
        if qos == 1:
            return self._await_ack(PUBACK, pid)
        if qos == 2:
            rec = self._await_ack(PUBREC, pid)
            if rec.reason >= 0x80:
                return rec
            self.send(ack(PUBREL, pid, version=self.version))
            return self._await_ack(PUBCOMP, pid)
        return None

    def _await_ack(self, ptype, pid):
        """Read until the `ptype` packet for packet id `pid`; other packets (e.g. our own
        message delivered back) are kept in self.pending for the next read_packet()."""
        deadline = time.monotonic() + self.timeout
        seen = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s for packet id %d within %.1fs" % (TYPE_NAMES[ptype], pid,
                                                                              self.timeout))
                p = self.read_packet(left)
                if p.type == ptype and p.packet_id == pid:
                    return p
                seen.append(p)
        finally:
            self.pending = seen + self.pending

    def ping(self):
        """PINGREQ; assert the PINGRESP."""
        self.send(pingreq())
        return self.expect(PINGRESP)

    def disconnect(self, reason=None):
        self.send(disconnect(reason, self.version))
        self.close()


def connected(port, version=V5, client_id="", **kw):
    """A Client that has completed a successful CONNECT (asserts CONNACK code 0)."""
    c = Client(port, version=version)
    ack = c.connect(version, client_id=client_id, **kw)
    assert ack.reason == 0, "CONNECT refused: %r" % ack
    c.connack = ack
    return c
