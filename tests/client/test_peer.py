"""libtombo (through tombo-sub) against a scripted broker peer: a raw socket speaking MQTT 5 with
the builders of tests/broker/rawmqtt.py, to show the client behaviour neither mosquitto nor a correct
broker would provoke: topic aliases from the broker, an alias out of range, a QoS 2 PUBLISH re-sent
with DUP (delivered once), a DISCONNECT from the server, a malformed packet."""
import os
import signal
import socket
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, binary, check_sanitizers, client_env

sys.path.insert(0, os.path.join(ROOT, "tests", "broker"))
import rawmqtt as rm  # noqa: E402

TIMEOUT = 10


class Peer:
    """One listening socket; accept() gives the client's connection."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(TIMEOUT)
        self.port = self.lsock.getsockname()[1]
        self.sock = None
        self.buf = b""

    def accept(self):
        self.sock, _ = self.lsock.accept()
        self.sock.settimeout(TIMEOUT)

    def read(self):
        """(type, flags, body) of the next packet from the client; None when it closed."""
        while True:
            if len(self.buf) >= 2:
                n, mult, pos = 0, 1, 1
                while pos < len(self.buf):
                    b = self.buf[pos]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    pos += 1
                    if not b & 0x80:
                        if len(self.buf) >= pos + n:
                            t, f = self.buf[0] >> 4, self.buf[0] & 0x0F
                            body, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
                            return t, f, body
                        break
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def expect(self, ptype):
        p = self.read()
        assert p is not None and p[0] == ptype, "expected %s, got %r" % (rm.TYPE_NAMES[ptype], p)
        return p

    def handshake(self):
        """CONNECT -> CONNACK, SUBSCRIBE -> SUBACK granting QoS 2."""
        self.accept()
        self.expect(rm.CONNECT)
        self.sock.sendall(rm.packet(rm.CONNACK, 0, b"\x00\x00" + rm.props()))
        _, _, body = self.expect(rm.SUBSCRIBE)
        pid = struct.unpack("!H", body[:2])[0]
        self.sock.sendall(rm.packet(rm.SUBACK, 0, rm.u16(pid) + rm.props() + b"\x02"))

    def close(self):
        for s in (self.sock, self.lsock):
            if s:
                s.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def tombo_sub(peer, *args):
    return subprocess.Popen([binary("src", "tools", "tombo-sub"), "-h", "127.0.0.1", "-p", str(peer.port), "-V", "5",
                             "-t", "#", "-q", "2"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=client_env())


def reconnected_then_stopped(peer, proc):
    """As mosquitto_sub, tombo-sub reconnects after losing the connection: accept that second
    CONNECT, then stop it with SIGTERM (a clean DISCONNECT, exit code 0)."""
    peer.sock.close()
    peer.buf = b""
    peer.accept()
    peer.expect(rm.CONNECT)
    proc.send_signal(signal.SIGTERM)
    return done(proc)


def done(proc):
    out, err = proc.communicate(timeout=TIMEOUT)
    check_sanitizers("tombo-sub", err)
    return proc.returncode, out.decode(), err.decode()


def test_topic_aliases_from_broker(peer):
    """[MQTT-3.3.2-12] an alias set with a topic, then used with an empty topic, gives that topic."""
    proc = tombo_sub(peer, "-D", "connect", "topic-alias-maximum", "2", "-v", "-C", "3")
    peer.handshake()
    peer.sock.sendall(rm.publish("a/b", b"one", properties=[("topic_alias", 1)]) +
                      rm.publish("", b"two", properties=[("topic_alias", 1)]) +
                      rm.publish("c", b"three", properties=[("topic_alias", 2)]))
    peer.expect(rm.DISCONNECT)
    rc, out, err = done(proc)
    assert (rc, out) == (0, "a/b one\na/b two\nc three\n"), err


@pytest.mark.parametrize("alias", [0, 3])
def test_topic_alias_out_of_range(peer, alias):
    """[MQTT-3.3.2-9] an alias of 0 or above our Topic Alias Maximum: DISCONNECT 0x94, no delivery."""
    proc = tombo_sub(peer, "-D", "connect", "topic-alias-maximum", "2", "-v")
    peer.handshake()
    peer.sock.sendall(rm.publish("x", b"bad", properties=[("topic_alias", alias)]))
    _, _, body = peer.expect(rm.DISCONNECT)
    assert body[:1] == bytes([rm.TOPIC_ALIAS_INVALID])
    rc, out, err = reconnected_then_stopped(peer, proc)
    assert rc == 0 and out == ""


def test_qos2_resent_publish_delivered_once(peer):
    """A QoS 2 PUBLISH re-sent with DUP before PUBREL is acknowledged again but not delivered twice."""
    proc = tombo_sub(peer, "-v", "-C", "2")
    peer.handshake()
    peer.sock.sendall(rm.publish("q", b"once", qos=2, packet_id=7))
    _, _, body = peer.expect(rm.PUBREC)
    assert body[:2] == rm.u16(7)
    peer.sock.sendall(rm.publish("q", b"once", qos=2, packet_id=7, dup=True))
    _, _, body = peer.expect(rm.PUBREC)
    assert body[:2] == rm.u16(7)
    peer.sock.sendall(rm.ack(rm.PUBREL, 7))
    _, _, body = peer.expect(rm.PUBCOMP)
    assert body[:2] == rm.u16(7)
    peer.sock.sendall(rm.publish("q", b"end"))
    peer.expect(rm.DISCONNECT)
    rc, out, err = done(proc)
    assert (rc, out) == (0, "q once\nq end\n"), err


def test_server_disconnect(peer):
    """A DISCONNECT from the server: tombo-sub (-d) says why and connects again."""
    proc = tombo_sub(peer, "-v", "-d")
    peer.handshake()
    peer.sock.sendall(rm.disconnect(0x8B))
    rc, out, err = reconnected_then_stopped(peer, proc)
    assert rc == 0 and "Disconnected by the broker: server shutting down" in out


@pytest.mark.parametrize("bad", [
    rm.packet(rm.PUBLISH, 0, rm.utf8("t") + b"\x05"),                 # property length past the end
    rm.packet(rm.PUBLISH, 0, b"\x00\x02\xc3\x28" + rm.props()),       # topic not UTF-8
    rm.packet(rm.PUBLISH, 6, rm.utf8("t") + rm.u16(1) + rm.props()),  # QoS 3
    rm.packet(rm.CONNACK, 0, b"\x00\x00" + rm.props()),               # second CONNACK
    rm.packet(0, 0, b""),                                             # reserved type 0
], ids=["props-overrun", "bad-utf8", "qos3", "second-connack", "type0"])
def test_malformed_from_server(peer, bad):
    """A broker breaking the protocol: the client sends DISCONNECT with an error reason and closes,
    then reconnects; nothing is printed, nothing crashes or leaks."""
    proc = tombo_sub(peer, "-v")
    peer.handshake()
    peer.sock.sendall(bad)
    p = peer.read()
    assert p is None or (p[0] == rm.DISCONNECT and p[2][:1] >= b"\x80"), p
    rc, out, err = reconnected_then_stopped(peer, proc)
    assert rc == 0 and out == ""


def test_receive_maximum_exceeded(peer):
    """[MQTT-3.3.4-9] more unacknowledged QoS 2 PUBLISHes than our Receive Maximum: DISCONNECT 0x93."""
    proc = tombo_sub(peer, "-D", "connect", "receive-maximum", "2", "-v")
    peer.handshake()
    for pid in (1, 2):
        peer.sock.sendall(rm.publish("r", b"%d" % pid, qos=2, packet_id=pid))
        peer.expect(rm.PUBREC)
    peer.sock.sendall(rm.publish("r", b"3", qos=2, packet_id=3))
    _, _, body = peer.expect(rm.DISCONNECT)
    assert body[:1] == bytes([rm.RECEIVE_MAX_EXCEEDED])
    rc, out, err = reconnected_then_stopped(peer, proc)
    assert rc == 0 and out == "r 1\nr 2\n"
