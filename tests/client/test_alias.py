"""Topic aliases libtombo assigns to the topics it publishes (options.send_topic_alias_max), MQTT 5.

Against the real broker (tombo, or mosquitto with TOMBO_REFERENCE=mosquitto): every message reaches a
subscriber on its own topic while the publisher sends most of them as a bare alias
(test_client_alias.c, mode "broker").

Against a recording broker written here on raw sockets: the PUBLISH packets the library writes are
decoded byte by byte and checked against the rules: an alias never above the CONNACK's Topic Alias
Maximum [MQTT-3.3.2-10], a bare alias only after this connection bound it [MQTT-3.3.2-7], the
least-recently-used replacement the library documents, a retransmission (DUP) after a reconnect
carries its full topic, and no alias at all when the broker allows none [MQTT-3.3.2-9].
"""
import socket
import subprocess
import threading

import pytest

from conftest import binary, check_sanitizers, client_env


def run_client(port, mode):
    p = subprocess.run([binary("tests", "client", "test_client_alias"), "127.0.0.1", str(port), mode],
                       capture_output=True, timeout=60, env=client_env())
    check_sanitizers("test_client_alias", p.stderr)
    assert p.returncode == 0, "test_client_alias failed (%s):\n%s\n%s" % (p.returncode, p.stdout.decode(),
                                                                         p.stderr.decode()[-4000:])
    return p.stdout.decode()


def test_aliases_reach_the_subscriber_on_their_topics(broker):
    """[MQTT-3.3.2-12] the broker resolves our aliases: right topics, bare aliases used, max honoured."""
    out = run_client(broker.port, "broker")
    assert out.strip().endswith("OK"), out


# ---- the recording broker ----

def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_packet(sock):
    b0 = read_exact(sock, 1)[0]
    mult, rem = 1, 0
    while True:
        d = read_exact(sock, 1)[0]
        rem += (d & 127) * mult
        mult *= 128
        if not d & 128:
            break
    return b0, read_exact(sock, rem)


def varint(buf, i):
    mult, v = 1, 0
    while True:
        d = buf[i]
        i += 1
        v += (d & 127) * mult
        mult *= 128
        if not d & 128:
            return v, i


def parse_publish(b0, body):
    """A v5 PUBLISH as the client wrote it: dict of dup, qos, id, topic, alias (None), payload."""
    qos = (b0 >> 1) & 3
    tl = int.from_bytes(body[0:2], "big")
    topic = body[2:2 + tl].decode()
    i = 2 + tl
    pid = None
    if qos:
        pid = int.from_bytes(body[i:i + 2], "big")
        i += 2
    plen, i = varint(body, i)
    end = i + plen
    alias = None
    while i < end:
        ident = body[i]
        i += 1
        if ident == 0x23:
            assert alias is None, "two Topic Alias properties"
            alias = int.from_bytes(body[i:i + 2], "big")
            i += 2
        elif ident == 0x01:
            i += 1
        elif ident == 0x02:
            i += 4
        elif ident in (0x03, 0x08, 0x09):
            i += 2 + int.from_bytes(body[i:i + 2], "big")
        elif ident == 0x26:
            for _ in range(2):
                i += 2 + int.from_bytes(body[i:i + 2], "big")
        else:
            raise AssertionError("unexpected PUBLISH property 0x%02x" % ident)
    return {"dup": bool(b0 & 8), "qos": qos, "id": pid, "topic": topic, "alias": alias, "payload": body[end:]}


class RecordingBroker:
    """Two connections. The first: CONNACK granting `alias_max` aliases, PUBACK for the first 3
    PUBLISHes, drop the connection after the 8th. The second: session present, PUBACK everything,
    until the client's DISCONNECT. Every PUBLISH is recorded with its connection number."""

    def __init__(self, alias_max):
        self.alias_max = alias_max
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.srv.settimeout(30)
        self.port = self.srv.getsockname()[1]
        self.publishes = []
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def connack(self, sock, session_present):
        props = bytes([0x22]) + self.alias_max.to_bytes(2, "big") if self.alias_max else b""
        body = bytes([1 if session_present else 0, 0, len(props)]) + props
        sock.sendall(bytes([0x20, len(body)]) + body)

    def serve(self, conn_no):
        sock, _ = self.srv.accept()
        sock.settimeout(30)
        with sock:
            b0, _ = read_packet(sock)
            assert b0 >> 4 == 1, "CONNECT expected"
            self.connack(sock, conn_no == 2)
            n = 0
            while True:
                try:
                    b0, body = read_packet(sock)
                except EOFError:
                    return
                kind = b0 >> 4
                if kind == 14:  # DISCONNECT
                    return
                if kind == 12:  # PINGREQ
                    sock.sendall(b"\xd0\x00")
                    continue
                assert kind == 3, "unexpected packet type %d" % kind
                p = parse_publish(b0, body)
                p["conn"] = conn_no
                self.publishes.append(p)
                n += 1
                if conn_no == 2 or n <= 3:
                    sock.sendall(bytes([0x40, 2]) + p["id"].to_bytes(2, "big"))
                if conn_no == 1 and n == 8:
                    return  # drop it: five messages stay unacknowledged

    def run(self):
        try:
            self.serve(1)
            self.serve(2)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.srv.close()


def expected_topic(p):
    return p["payload"].decode().split(" ", 1)[1]


@pytest.mark.parametrize("alias_max", [2, 0])
def test_aliases_on_the_wire(alias_max):
    """[MQTT-3.3.2-7] [MQTT-3.3.2-9] [MQTT-3.3.2-10] aliases per connection, within the maximum, LRU."""
    fake = RecordingBroker(alias_max)
    out = run_client(fake.port, "fake")
    fake.thread.join(10)
    assert fake.error is None, fake.error
    pubs = fake.publishes
    # Every message reached the broker (12 distinct), the five unacknowledged ones twice.
    assert sorted({int(p["payload"].split(b" ")[0]) for p in pubs}) == list(range(12)), pubs
    assert len([p for p in pubs if p["conn"] == 1]) == 8
    dups = [p for p in pubs if p["dup"]]
    assert [p["conn"] for p in dups] == [2] * 5
    for p in dups:  # a retransmission carries its full topic: the old connection's aliases are gone
        assert p["alias"] is None and p["topic"] == expected_topic(p), p
    bare = 0
    for conn in (1, 2):
        # Replay the documented policy: aliases 1..max in order, then the least recently used one.
        lru, table = [], {}
        for p in (p for p in pubs if p["conn"] == conn and not p["dup"]):
            want = expected_topic(p)
            if alias_max == 0:
                assert p["alias"] is None and p["topic"] == want, p
                continue
            assert p["alias"] is not None and 1 <= p["alias"] <= alias_max, p
            if want in table:
                assert (p["topic"], p["alias"]) == ("", table[want]), (p, table)
                lru.remove(want)
                bare += 1
            else:
                assert p["topic"] == want, p
                if len(table) < alias_max:
                    assert p["alias"] == len(table) + 1, (p, table)
                else:
                    victim = lru.pop(0)
                    assert p["alias"] == table.pop(victim), (p, table, victim)
                table[want] = p["alias"]
            lru.append(want)
    if alias_max:
        assert bare >= 4, out
    assert out.strip().endswith("OK"), out
