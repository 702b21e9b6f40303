"""rawws: MQTT over a WebSocket (RFC 6455) on a raw socket, for tests that control every frame:
rawmqtt's Client with the opening handshake done first, what it sends wrapped in masked binary
frames, and what it reads taken out of the server's frames.

    c = WsClient(port)                         handshake (subprotocol mqtt), then as rawmqtt.Client:
    c.connect(...), c.publish(...), c.read_packet(), c.expect_closed()
    c.send(mqtt_bytes)                         in one masked binary frame (c.chunk = N: frames of N
                                               bytes; c.fragment = True: one message in fragments)
    c.send_frame(payload, opcode=0x2, fin=True, mask=True, rsv=0)   any frame, as it is
    c.send_raw(bytes)                          bytes as they are (cut frame headers, ...)
    c.close_code                               the code of the server's close frame, once read
    c.frames                                   (fin, opcode, masked, payload) of every server frame
    handshake(port, headers) -> (status, header dict, leftover bytes) for refused handshakes
"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import time

import rawmqtt

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def request(key, protocol="mqtt", extra="", path="/mqtt"):
    r = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, key))
    if protocol is not None:
        r += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    return (r + extra + "\r\n").encode()


def read_head(sock, timeout=3.0):
    """(status, {lower-case name: value}, bytes after the head); status None when the server
    closed without answering."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            d = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            d = b""
        if not d:
            return None, {}, data
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def handshake(port, protocol="mqtt", extra="", raw=None, host="127.0.0.1"):
    """Send one opening request (or the bytes `raw`) and return read_head()'s answer."""
    with socket.create_connection((host, port), timeout=3) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(raw if raw is not None else request(key, protocol, extra))
        return read_head(s)


def frame(payload, opcode=0x2, fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, m | 126, n)
    else:
        h = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class WsClient(rawmqtt.Client):
    def __init__(self, port, host="127.0.0.1", timeout=rawmqtt.TIMEOUT, version=rawmqtt.V5, protocol="mqtt",
                 tls_ca=None, rcvbuf=None):
        self.timeout = timeout
        self.version = version
        if rcvbuf:  # a small receive buffer, set before connecting: the broker's writes hit EAGAIN
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
        else:
            sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = bytearray()
        self.pending = []
        self._next_id = 0
        self.chunk = None
        self.fragment = False
        self.close_code = None
        self.frames = []
        self.raw = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(request(key, protocol))
        status, headers, rest = read_head(sock, timeout)
        assert status == 101, "handshake answered %r" % status
        assert headers.get("sec-websocket-accept") == accept_for(key)
        self.headers = headers
        self.raw += rest

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_frame(self, payload, opcode=0x2, fin=True, mask=True, rsv=0):
        self.send_raw(frame(payload, opcode, fin, mask, rsv))

    def send(self, data):
        if self.chunk:
            pieces = [data[i:i + self.chunk] for i in range(0, len(data), self.chunk)] or [b""]
        else:
            pieces = [data]
        if self.fragment:
            out = b"".join(frame(p, 0x2 if i == 0 else 0x0, fin=i == len(pieces) - 1) for i, p in enumerate(pieces))
        else:
            out = b"".join(frame(p) for p in pieces)
        self.send_raw(out)

    def _take_frames(self):
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, pos = struct.unpack("!H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, pos = struct.unpack("!Q", self.raw[2:10])[0], 10
            masked = bool(b1 & 0x80)
            if masked:
                pos += 4
            if len(self.raw) < pos + n:
                return
            payload = bytes(self.raw[pos:pos + n])
            del self.raw[:pos + n]
            fin, opcode = bool(b0 & 0x80), b0 & 0x0F
            self.frames.append((fin, opcode, masked, payload))
            if opcode in (0x0, 0x2):
                self.buf += payload
            elif opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005

    def _fill(self, deadline):
        if self.close_code is not None:
            raise rawmqtt.Closed("WebSocket close %d" % self.close_code)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the broker within %.1fs" % self.timeout)
        before = len(self.buf)
        self._take_frames()
        if len(self.buf) > before or self.close_code is not None:
            return
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the broker within %.1fs" % self.timeout)
        except (ConnectionResetError, ConnectionAbortedError):
            raise rawmqtt.Closed("connection reset")
        if not data:
            raise rawmqtt.Closed("connection closed")
        self.raw += data
        self._take_frames()

    def expect_ws_close(self, code, timeout=None):
        """Assert the server sends a close frame with `code` and then closes the TCP connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.close_code is None:
            try:
                self._fill(deadline)
            except rawmqtt.Closed:
                break
        assert self.close_code == code, "expected close %d, got %r (frames %r)" % (code, self.close_code,
                                                                                 self.frames[-3:])
        # then EOF
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("connection still open after the close frame")
