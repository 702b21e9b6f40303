"""Many concurrent clients: exact delivery counts under load, concurrent takeovers, shared
subscriptions and retained messages from many connections. Marked tsan: they also run against the
ThreadSanitizer build (make tsan-test)."""
import threading
import time

import pytest

from clients import PUBACK, PUBLISH, PahoClient, Raw, V311, V5, subscribe_packet

pytestmark = pytest.mark.tsan


def _run_all(fns, timeout=60):
    """Run callables in threads; re-raise the first failure."""
    errors = []

    def wrap(f):
        try:
            f()
        except BaseException as e:     # noqa: B902 - reported below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(f,), daemon=True) for f in fns]
    for t in ts:
        t.start()
    deadline = time.time() + timeout
    for t in ts:
        t.join(max(0.1, deadline - time.time()))
    assert not any(t.is_alive() for t in ts), "threads still running after %ss" % timeout
    if errors:
        raise errors[0]


def test_20_publishers_20_subscribers_qos1_exact_counts(broker):
    """20 publishers x 50 QoS 1 messages each, 20 subscribers on a wildcard: every subscriber gets
    exactly 1000 messages, no loss, no duplicate, each publisher's messages in order
    [MQTT-4.6.0-5]."""
    n_pub, n_sub, per = 20, 20, 50
    subs = []
    for i in range(n_sub):
        s = PahoClient(broker, protocol=V5 if i % 2 else V311)
        s.connect()
        s.subscribe("load/+", 1)
        subs.append(s)
    pubs = []
    for i in range(n_pub):
        p = PahoClient(broker, protocol=V311 if i % 2 else V5)
        p.connect()
        pubs.append(p)

    def publisher(i):
        def run():
            for k in range(per):
                pubs[i].publish("load/%d" % i, b"%d:%d" % (i, k), 1, timeout=30)
        return run
    _run_all([publisher(i) for i in range(n_pub)])
    for s in subs:
        got = s.get_n(n_pub * per, timeout=30)
        by_pub = {}
        for m in got:
            i, k = m.payload.split(b":")
            by_pub.setdefault(int(i), []).append(int(k))
        assert sorted(by_pub) == list(range(n_pub))
        for i, ks in by_pub.items():
            assert ks == list(range(per)), "publisher %d order/loss/duplicate: %r" % (i, ks)
        s.expect_none(0.1)
    for c in subs + pubs:
        c.disconnect()


def test_qos2_many_clients_exactly_once(broker):
    """10 publishers x 30 QoS 2 messages to 10 QoS 2 subscribers: exactly 300 each, no duplicate."""
    n, per = 10, 30
    subs = [PahoClient(broker, protocol=V5) for _ in range(n)]
    for s in subs:
        s.connect()
        s.subscribe("l2/#", 2)
    pubs = [PahoClient(broker) for _ in range(n)]
    for p in pubs:
        p.connect()

    def publisher(i):
        def run():
            for k in range(per):
                pubs[i].publish("l2/%d" % i, b"%d:%d" % (i, k), 2, timeout=30)
        return run
    _run_all([publisher(i) for i in range(n)])
    for s in subs:
        got = s.get_n(n * per, timeout=30)
        assert sorted(m.payload for m in got) == sorted(b"%d:%d" % (i, k) for i in range(n) for k in range(per))
        assert all(m.qos == 2 for m in got)
        s.expect_none(0.1)
    for c in subs + pubs:
        c.disconnect()


def test_concurrent_connect_disconnect_and_takeover_churn(broker):
    """Clients connecting, subscribing, publishing, being taken over and dropping, from 8 threads at
    once, while a watcher counts a steady stream: the broker stays up and loses nothing for the
    steady client."""
    watcher = PahoClient(broker)
    watcher.connect()
    watcher.subscribe("steady/t", 1)
    steady = PahoClient(broker)
    steady.connect()
    stop = threading.Event()

    def churn(t):
        def run():
            for k in range(15):
                cid = "churn-%d-%d" % (t, k % 3)      # ids repeat: takeovers
                r = None
                try:
                    r = Raw(broker, version=5 if k % 2 else 4)
                    r.connect(cid, clean=bool(k % 3), props=[(0x11, 5)] if k % 2 else None,
                              will={"topic": "churn/will", "payload": b"w", "qos": 1})
                    r.send(subscribe_packet(1, [("churn/#", 1)], r.version))
                    r.publish("churn/x", b"c", qos=1, pid=1)
                    # read until our PUBACK, acking deliveries (a resumed session may deliver first)
                    deadline = time.time() + 10
                    while time.time() < deadline:
                        p = r.recv(5)
                        if p.type == PUBACK and p.pid == 1:
                            break
                        if p.type == PUBLISH and p.qos == 1:
                            r.ack(PUBACK, p.pid)
                except (AssertionError, OSError):
                    # taken over by a sibling thread using the same client id: expected
                    if r is not None:
                        r.close()
                    continue
                if k % 4 == 0:
                    r.close()                   # abnormal: will published
                else:
                    r.disconnect(0 if k % 2 else None)
        return run

    def steady_pub():
        for k in range(100):
            steady.publish("steady/t", b"%d" % k, 1, timeout=30)
    _run_all([churn(t) for t in range(8)] + [steady_pub])
    stop.set()
    got = watcher.get_n(100, timeout=30)
    assert [m.payload for m in got] == [b"%d" % k for k in range(100)]
    assert broker.alive()
    watcher.disconnect()
    steady.disconnect()


def test_shared_subscription_under_load(broker):
    """A shared group of 6 members, 6 publishers x 50 QoS 1: every message reaches exactly one member
    [MQTT-4.8.2-2], round robin keeps every member busy."""
    members = [PahoClient(broker, protocol=V5) for _ in range(6)]
    import paho.mqtt.client as mqtt
    for m in members:
        m.connect()
        m.subscribe("$share/grp/shl/#", options=mqtt.SubscribeOptions(qos=1))
    pubs = [PahoClient(broker, protocol=V5) for _ in range(6)]
    for p in pubs:
        p.connect()

    def publisher(i):
        def run():
            for k in range(50):
                pubs[i].publish("shl/%d" % i, b"%d:%d" % (i, k), 1, timeout=30)
        return run
    _run_all([publisher(i) for i in range(6)])
    total = []
    counts = []
    deadline = time.time() + 30
    expected = 300
    while len(total) < expected:
        assert time.time() < deadline, "got %d of %d" % (len(total), expected)
        for m in members:
            try:
                total.append(m.messages.get(timeout=0.05).payload)
            except Exception:
                pass
    for m in members:
        m.expect_none(0.2)
    assert sorted(total) == sorted(b"%d:%d" % (i, k) for i in range(6) for k in range(50))
    del counts
    for c in members + pubs:
        c.disconnect()


def test_retained_from_many_publishers(broker):
    """16 threads set and replace retained messages on 16 topics concurrently; afterwards a new
    subscriber gets exactly one retained message per topic, the last one each thread wrote."""
    pubs = [PahoClient(broker) for _ in range(16)]
    for p in pubs:
        p.connect()

    def writer(i):
        def run():
            for k in range(20):
                pubs[i].publish("rt/%d" % i, b"%d:%d" % (i, k), 1, retain=True, timeout=30)
        return run
    _run_all([writer(i) for i in range(16)])
    s = PahoClient(broker)
    s.connect()
    s.subscribe("rt/+", 1)
    got = s.get_n(16, timeout=10)
    assert sorted((m.topic, m.payload) for m in got) == sorted(("rt/%d" % i, b"%d:19" % i) for i in range(16))
    assert all(m.retain for m in got)
    s.expect_none(0.2)
    for c in pubs + [s]:
        c.disconnect()


def test_subscribers_dropping_and_resuming_under_load_lose_nothing_MQTT_3_1_2_5(make_broker):
    """[MQTT-3.1.2-5] QoS 1 messages for a session that is offline are kept for it -- also while
    its client drops and comes back many times in the middle of a stream from other workers
    (deliveries race with the session going offline and online again). Every message arrives
    at least once."""
    import rawmqtt
    broker = make_broker("allow_anonymous true\nmax_queued_messages 0\n")  # no queue limit drops
    n_pairs, n_msgs = 4, 1500
    for i in range(n_pairs):
        c = rawmqtt.connected(broker.port, V311, "churn-%d" % i, clean=False)
        c.subscribe([("churn/%d" % i, 1)])
        c.disconnect()
    seen = [set() for _ in range(n_pairs)]

    def publisher(i):
        def run():
            c = rawmqtt.Client(broker.port, version=V311, timeout=30)
            c.connect(V311, client_id="churn-pub-%d" % i)
            for start in range(0, n_msgs, 100):
                c.send(b"".join(rawmqtt.publish("churn/%d" % i, b"%d" % k, qos=1, packet_id=k % 65535 + 1,
                                                version=V311) for k in range(start, start + 100)))
                acks = 0
                while acks < 100:
                    if c.read_packet().type == PUBACK:
                        acks += 1
            c.disconnect()
        return run

    def subscriber(i):
        def run():
            rounds = 0
            deadline = time.time() + 50
            while len(seen[i]) < n_msgs and time.time() < deadline:
                c = rawmqtt.Client(broker.port, version=V311, timeout=5)
                c.connect(V311, client_id="churn-%d" % i, clean=False)
                rounds += 1
                got = 0
                try:
                    # Read a few, then drop the connection without DISCONNECT.
                    while got < 37:
                        p = c.read_packet(1)
                        if p.type == PUBLISH:
                            seen[i].add(int(p.payload))
                            c.send(rawmqtt.ack(PUBACK, p.packet_id, version=V311))
                            got += 1
                except (TimeoutError, OSError):
                    pass
                c.close()
            assert rounds > 10
        return run

    _run_all([publisher(i) for i in range(n_pairs)] + [subscriber(i) for i in range(n_pairs)], timeout=60)
    for i in range(n_pairs):
        missing = sorted(set(range(n_msgs)) - seen[i])
        assert not missing, "subscriber %d never got %d messages, e.g. %s" % (i, len(missing), missing[:10])


def test_connections_spread_evenly_over_the_workers(make_broker):
    """EPOLLEXCLUSIVE wakes whichever worker waits, so a burst of connections could land mostly on
    one worker (200 bench clients were measured 189 / 11 before): a worker that accepts while
    another has two clients fewer hands the connection over. 101 sockets opened at once on 4
    workers end up within two of each other (two workers accepting at the same moment may each
    keep theirs: CI under TSan saw 24 / 25 / 26 / 26), and the handed-over connections work
    (CONNECT, SUBSCRIBE, PUBLISH), over max_connections' exact count too."""
    import json
    import socket
    import urllib.request
    from conftest import free_port
    http = free_port()
    b = make_broker("allow_anonymous true\nthreads 4\nhttp_listener %d 127.0.0.1\nmax_connections 150\n" % http)

    def workers():
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/stats" % http, timeout=10) as r:
            return [w["clients"] for w in json.loads(r.read())["workers"]]

    socks = [socket.create_connection(("127.0.0.1", b.port), timeout=10) for _ in range(101)]
    try:
        deadline = time.time() + 10
        while sum(workers()) != 101 and time.time() < deadline:
            time.sleep(0.05)
        counts = workers()
        assert len(counts) == 4 and sum(counts) == 101 and max(counts) - min(counts) <= 2, counts
    finally:
        for s in socks:
            s.close()
    deadline = time.time() + 10
    while sum(workers()) and time.time() < deadline:
        time.sleep(0.05)
    assert sum(workers()) == 0
    subs = [PahoClient(b, "spread-sub-%d" % i) for i in range(12)]
    for i, s in enumerate(subs):
        s.connect()
        s.subscribe("spread/%d" % i, qos=1)
    pub = PahoClient(b, "spread-pub")
    pub.connect()
    for i in range(12):
        pub.publish("spread/%d" % i, b"m%d" % i, qos=1)
    for i, s in enumerate(subs):
        assert s.get().payload == b"m%d" % i
    counts = workers()
    assert max(counts) - min(counts) <= 2, counts
    for c in subs + [pub]:
        c.disconnect()
