"""Limits that hold under abuse (docs/security.md, "Limits"): connections that never send CONNECT,
CONNECT headers declaring huge packets, TLS handshakes started and abandoned, a flood beyond
max_connections, memory_limit, and a subscriber that never reads. Bounded in count and time, on
127.0.0.1; the broker's memory is read from /proc/PID/status while the abuse goes on, and another
client must keep working meanwhile."""
import os
import re
import resource
import selectors
import socket
import ssl
import threading
import time

import pytest

import rawmqtt
from clients import V311, V5
from conftest import is_reference
from test_backpressure import Reader, _connect, _run_publishers, _sys_value
from test_tls import pki, rss_kb, start_handshakes, tls_conf  # noqa: F401 - pki: the fixture making a CA and certificates

QUOTA_EXCEEDED = 0x97

pytestmark = pytest.mark.skipif(is_reference(), reason="tombo's limits (connect_timeout is tombo only)")


def raise_nofile(n):
    """Let this process (and the broker it starts, which inherits it) open n files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n:
        pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, n))


@pytest.fixture
def small_quarantine(monkeypatch):
    """Under ASan, freed memory is held in a quarantine (256 MB by default) before it is reused,
    which would show in RSS as memory the broker does not hold: keep it small where RSS is
    asserted."""
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4")


def roundtrip(port, tag, version=V311):
    """Another client still works: subscribe, publish QoS 1 to itself, receive it."""
    c = rawmqtt.connected(port, version, "other-" + tag)
    c.subscribe([("limits/" + tag, 1)])
    c.publish("limits/" + tag, b"still here", qos=1)
    p = c.expect(rawmqtt.PUBLISH, timeout=10)
    assert p.payload == b"still here"
    c.disconnect()


def open_sockets(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def wait_all_closed(socks, deadline):
    """Wait until every socket reached EOF (or reset), or the deadline; return how many are still
    open and the seconds waited."""
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    try:
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                s = key.fileobj
                try:
                    data = socket.socket.recv(s, 65536)  # the raw bytes, TLS or not: never a handshake step
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    left -= 1
    finally:
        sel.close()
    return left, time.monotonic() - t0


def test_2000_sockets_that_never_send_connect_are_closed_after_connect_timeout(make_broker):
    """Slowloris: 2,000 TCP connections that never send a byte hold nothing for long: each is
    closed `connect_timeout` (here 2 s) after it was accepted, none much earlier, and a client
    connecting meanwhile works."""
    raise_nofile(8192)
    b = make_broker("allow_anonymous true\nconnect_timeout 2\n")
    t0 = time.monotonic()
    socks = open_sockets(b.port, 2000)
    opened = time.monotonic() - t0
    try:
        roundtrip(b.port, "slowloris")
        if opened < 1.0:  # none is closed before its time
            left, _ = wait_all_closed(socks, t0 + 1.2)
            assert left == 2000, "%d closed before connect_timeout" % (2000 - left)
        left, _ = wait_all_closed(socks, t0 + opened + 2 + 3)
        assert left == 0, "%d of 2000 sockets still open %.1f s after connect_timeout" % (left, 3.0)
        roundtrip(b.port, "slowloris2")
    finally:
        for s in socks:
            s.close()


def test_200_connect_headers_declaring_250MB_keep_the_broker_under_64MB(small_quarantine, make_broker):
    """Memory before CONNECT: 200 connections each send a CONNECT fixed header declaring a 250 MB
    remaining length and then stream bytes, with no max_packet_size set. Each is refused from its
    header (a CONNECT is at most 256 KB), so the broker's RSS stays under 64 MB (it reached 2.97 GB
    with 20 such connections before) and another client keeps working meanwhile."""
    raise_nofile(4096)
    b = make_broker("allow_anonymous true\n")
    base = rss_kb(b.proc.pid)
    header = b"\x10" + rawmqtt.varint(250 * 1024 * 1024)
    chunk = b"\x00\x04MQTT\x05" + b"x" * 65536
    stop = threading.Event()
    sent, peak = [0], [base]

    def attacker(k):
        for _ in range(20):  # 200 connections from 10 threads
            try:
                s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
                s.sendall(header)
                t_end = time.monotonic() + 1.0
                while time.monotonic() < t_end and not stop.is_set():
                    s.sendall(chunk)
                    sent[0] += len(chunk)
            except OSError:
                pass  # refused: reset or broken pipe
            finally:
                s.close()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(b.proc.pid))
            time.sleep(0.05)

    ts = [threading.Thread(target=attacker, args=(k,), daemon=True) for k in range(10)]
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    for t in ts:
        t.start()
    roundtrip(b.port, "bigconnect")
    for t in ts:
        t.join(60)
    stop.set()
    w.join(5)
    assert not any(t.is_alive() for t in ts)
    assert peak[0] < 64 * 1024, "broker RSS reached %d KB (started at %d KB)" % (peak[0], base)
    assert len(re.findall(r"CONNECT of 26214\d+ bytes \(the limit is 262144\)", b.log())) >= 190, b.log()[-2000:]
    roundtrip(b.port, "bigconnect2")


def test_a_connect_just_over_256KB_is_refused_whatever_max_packet_size_says(make_broker):
    """The cap holds even where max_packet_size allows more; a CONNECT under it is read as usual."""
    b = make_broker("allow_anonymous true\nmax_packet_size 100000000\n")
    c = rawmqtt.Client(b.port, timeout=5)
    c.send(b"\x10" + rawmqtt.varint(256 * 1024 + 1) + b"\x00\x04MQTT\x04\x02\x00\x3c")
    c.expect_closed()
    big = rawmqtt.connect(V311, client_id="big-will", will_topic="w/t", will_payload=b"x" * 65000,
                          username="u" * 65000, password=b"p" * 65000)
    assert len(big) > 195000
    ok = rawmqtt.Client(b.port, timeout=5)
    ok.send(big)
    ok.expect_connack(0)
    ok.close()


def test_1000_tls_handshakes_started_and_abandoned(small_quarantine, make_broker, pki):  # noqa: F811
    """1,000 TLS clients send their ClientHello and then nothing: the broker holds them no longer
    than connect_timeout (2 s here), its RSS stays bounded, and a TLS client connecting meanwhile
    works."""
    raise_nofile(8192)
    b = make_broker(tls_conf(pki, "allow_anonymous true\nconnect_timeout 2\n"))
    base = rss_kb(b.proc.pid)
    t0 = time.monotonic()
    socks = start_handshakes(b.port, 1000)
    opened = time.monotonic() - t0
    peak = rss_kb(b.proc.pid)
    try:
        ctx = ssl.create_default_context(cafile=pki("ca.crt"))
        good = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port), timeout=10),
                               server_hostname="localhost")
        good.sendall(rawmqtt.connect(V311, client_id="tls-good"))
        assert good.recv(4)[:2] == b"\x20\x02"
        good.close()
        # Answering 1,000 ClientHellos is CPU work (a key exchange and a signature each): under
        # ThreadSanitizer the broker takes tens of seconds to get through them.
        slack = 40 if os.environ.get("TOMBO_TSAN") else 5
        left, _ = wait_all_closed(socks, t0 + opened + 2 + slack)
        peak = max(peak, rss_kb(b.proc.pid))
        assert left == 0, "%d of 1000 abandoned handshakes still open after connect_timeout" % left
    finally:
        for s in socks:
            s.close()
    print("RSS %d KB at start, %d KB at most" % (base, peak))
    # OpenSSL's state for a handshake in progress (about 60 KB under ASan) is not in the broker's
    # heap count; ThreadSanitizer's shadow memory triples what RSS shows.
    bound = (3 if os.environ.get("TOMBO_TSAN") else 1) * 128 * 1024
    assert peak - base < bound, "RSS grew from %d KB to %d KB" % (base, peak)


@pytest.mark.tsan
def test_connection_flood_beyond_max_connections_is_exact(make_broker):
    """max_connections 50 on a listener served by 2 worker threads: of 200 connections opened at
    once, exactly 50 are accepted (CONNACK), the other 150 are closed at accept, each logged as
    Mosquitto does ("Client connection from ... denied: max_connections exceeded."). Once 10 of the
    50 close, exactly 10 more get in."""
    raise_nofile(4096)
    b = make_broker("allow_anonymous true\nmax_connections 50\nthreads 2\n")
    socks = []
    lock = threading.Lock()

    def opener():
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            with lock:
                socks.append(s)

    ts = [threading.Thread(target=opener) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert len(socks) == 200

    def outcome(s):
        try:
            s.sendall(rawmqtt.connect(V311, client_id="flood-%d" % s.fileno()))
            s.settimeout(10)
            d = s.recv(4)
        except OSError:
            return "refused"
        return "accepted" if d[:2] == b"\x20\x02" and d[3:4] == b"\x00" else "refused"

    results = [outcome(s) for s in socks]
    accepted = [s for s, r in zip(socks, results) if r == "accepted"]
    assert len(accepted) == 50, "%d accepted" % len(accepted)
    deadline = time.time() + 5
    while b.log().count("denied: max_connections exceeded.") < 150 and time.time() < deadline:
        time.sleep(0.1)
    assert b.log().count("denied: max_connections exceeded.") == 150
    assert re.search(r"Client connection from 127\.0\.0\.1 denied: max_connections exceeded\.", b.log())
    for s in accepted[:10]:
        s.close()
    time.sleep(0.5)
    more = [socket.create_connection(("127.0.0.1", b.port), timeout=10) for _ in range(11)]
    again = [outcome(s) for s in more]
    assert again.count("accepted") == 10, again
    for s in socks + more:
        s.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_out_of_file_descriptors_the_listener_does_not_spin(make_broker):
    """The broker's RLIMIT_NOFILE lowered to 128 and 300 connections coming: once accept() fails
    with EMFILE the broker gives up its spare descriptor to accept and close the next connection,
    so the pending ones do not wake it again and again (it uses little CPU meanwhile), logs
    Mosquitto's warning, and serves new clients once descriptors are free again."""
    b = make_broker("allow_anonymous true\nthreads 1\n")
    resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (128, 128))  # it raises its own at start
    socks = []
    for _ in range(300):
        try:
            socks.append(socket.create_connection(("127.0.0.1", b.port), timeout=5))
        except OSError:
            break
    time.sleep(0.5)
    before = cpu_seconds(b.proc.pid)
    time.sleep(2)
    used = cpu_seconds(b.proc.pid) - before
    assert used < 0.5, "the broker used %.2f s of CPU in 2 s out of descriptors" % used
    assert "system socket count has been exceeded" in b.log()
    left, _ = wait_all_closed(socks[150:], time.monotonic() + 5)  # beyond the limit: accepted and closed
    assert left == 0, "%d connections beyond the descriptor limit left hanging" % left
    for s in socks:
        s.close()
    time.sleep(0.5)
    roundtrip(b.port, "emfile")


def _fill_retained(c, n, size):
    """Publish n retained messages of `size` bytes (QoS 1); the reason codes of the PUBACKs."""
    codes = []
    for k in range(n):
        ack = c.publish("fill/%d" % k, b"m" * size, qos=1, retain=True)
        codes.append(ack.reason)
        if ack.reason == QUOTA_EXCEEDED:
            break
    return codes


@pytest.mark.tsan
def test_memory_limit_refuses_publish_and_connect_with_the_right_codes(make_broker):
    """memory_limit 2 MB: retained messages of 100 KB are taken until the broker's heap count
    passes the limit; from then on a QoS 1 or 2 PUBLISH on 5.0 is answered 0x97 (quota exceeded)
    instead of taken, a 3.1.1 client that publishes is disconnected (it has no way to be told, as
    with Mosquitto), and a new CONNECT is refused: CONNACK 0x89 (server busy) on 5.0, 3 (server
    unavailable) on 3.1.1. $SYS/broker/heap/current reports the count the limit is checked
    against. Clearing the retained messages is not possible through publishes then; stopping the
    broker frees everything (ASan checks no leak)."""
    b = make_broker("allow_anonymous true\nmemory_limit 2000000\nsys_interval 1\nthreads 2\n")
    v5 = rawmqtt.connected(b.port, V5, "mem-v5")
    v3 = rawmqtt.connected(b.port, V311, "mem-v3")
    codes = _fill_retained(v5, 100, 100 * 1024)
    assert codes[-1] == QUOTA_EXCEEDED, codes
    assert len(codes) >= 15 and all(rc in (0, 0x10) for rc in codes[:-1]), codes
    # A message of the size just refused is refused again: the refused one's input buffer is
    # freed after its answer, so a 1-byte PUBLISH could find the count back under the limit (seen
    # once under TSan in the full run).
    assert v5.publish("fill/q2", b"x" * (100 * 1024), qos=2).reason == QUOTA_EXCEEDED
    v5.publish("fill/q0", b"x", qos=0)  # dropped, counted; the connection stays
    v5.ping()
    with rawmqtt.Client(b.port, timeout=5) as c:
        c.send(rawmqtt.connect(V5, client_id="mem-new5"))
        c.version = V5
        c.expect_connack(0x89)
    with rawmqtt.Client(b.port, timeout=5) as c:
        c.send(rawmqtt.connect(V311, client_id="mem-new3"))
        c.version = V311
        c.expect_connack(3)
    v3.send(rawmqtt.publish("fill/v3", b"x", qos=1, packet_id=1, version=V311))
    v3.expect_closed()
    assert "memory_limit of 2000000 bytes reached" in b.log()
    v5.subscribe([("$SYS/broker/heap/current", 0)])
    heap = [int(v5.expect(rawmqtt.PUBLISH, timeout=5).payload) for _ in range(2)]  # retained, then the next
    assert heap[-1] > 2000000, heap
    v5.close()


@pytest.mark.tsan
@pytest.mark.parametrize("qos", [0, 1])
def test_subscriber_that_never_reads_while_10_others_receive_everything(small_quarantine, make_broker, qos):
    """One subscriber never reads; 10 others read as fast as they can; 4 publishers flood 20,000
    messages of 500 bytes to all of them. The silent one's output is bounded (a slow consumer: its
    QoS 0 dropped, its QoS 1 queued up to max_queued_messages 100, the drops counted in
    $SYS/broker/publish/messages/dropped), the broker's RSS stays bounded, and each of the 10
    receives every message, in order, within the time limit."""
    b = make_broker("allow_anonymous true\nsys_interval 1\nmax_queued_messages 100\n")
    stuck = _connect(b.port, "never-reads", rcvbuf=4096)
    stuck.sendall(rawmqtt.subscribe(1, [("bp/#", qos)], version=4))
    time.sleep(0.2)
    n, per = 4, 5000
    t0 = time.monotonic()
    readers = [Reader(b.port, "reader-%d" % k, "bp/#", qos, n * per, timeout=90).start() for k in range(10)]
    _run_publishers(b.port, n, per, qos, pad=500)
    for r in readers:
        r.join()
        r.assert_complete(n, per)
    elapsed = time.monotonic() - t0
    assert elapsed < 90
    assert rss_kb(b.proc.pid) < 512 * 1024
    assert re.search(r"Client never-reads is a slow consumer", b.log())
    deadline = time.time() + 10
    while _sys_value(b.port, "$SYS/broker/publish/messages/dropped") == 0:
        assert time.time() < deadline, "no drop counted in $SYS"
        time.sleep(0.5)
    stuck.close()
