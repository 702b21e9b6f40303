"""$SYS/broker/... topics, published every sys_interval seconds."""
import re
import time

from clients import PahoClient, unique_id

REQUIRED = [
    "$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
    "$SYS/broker/clients/total", "$SYS/broker/messages/received", "$SYS/broker/messages/sent",
    "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent", "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
]


def _collect(c, until, timeout):
    """Collect $SYS messages into {topic: [messages]} until `until(seen)` or the timeout."""
    seen = {}
    deadline = time.time() + timeout
    while not until(seen):
        assert time.time() < deadline, "missing $SYS topics: %s" % sorted(
            t for t in REQUIRED if t not in seen)
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:
            continue
        seen.setdefault(m.topic, []).append(m)
    return seen


def _live(seen, topic):
    return [m for m in seen.get(topic, []) if not m.retain]


def test_sys_topics_published_every_sys_interval(make_broker):
    """$SYS/broker/{version, uptime, clients/connected, clients/total, messages/received|sent,
    bytes/received|sent, subscriptions/count, retained messages/count} are published every
    sys_interval (1 s): each is seen live, uptime at least twice and growing, and the counters
    reflect this client."""
    b = make_broker("allow_anonymous true\nsys_interval 1\n")
    pub = PahoClient(b)
    pub.connect()
    pub.publish("sys/retained", b"r", 1, retain=True)
    c = PahoClient(b)
    c.connect()
    assert c.subscribe("$SYS/#", 0) == [0]
    t0 = time.time()

    def done(seen):
        return (all(t in seen for t in REQUIRED) and len(_live(seen, "$SYS/broker/uptime")) >= 2
                and _live(seen, "$SYS/broker/clients/connected"))
    seen = _collect(c, done, timeout=8)
    assert time.time() - t0 < 6
    assert seen["$SYS/broker/version"][-1].payload.strip()
    ups = [int(re.match(rb"(\d+)", m.payload).group(1)) for m in _live(seen, "$SYS/broker/uptime")]
    assert ups == sorted(ups)
    connected = int(_live(seen, "$SYS/broker/clients/connected")[-1].payload)
    assert connected >= 2          # pub and c
    for t in ["$SYS/broker/messages/received", "$SYS/broker/bytes/received",
              "$SYS/broker/subscriptions/count", "$SYS/broker/retained messages/count",
              "$SYS/broker/clients/total"]:
        vals = [int(m.payload) for m in seen[t]]
        assert max(vals) >= 1, (t, vals)
    pub.disconnect()
    c.disconnect()


def test_sys_clients_connected_follows_connections(make_broker):
    """$SYS/broker/clients/connected rises when clients connect (3 more here)."""
    b = make_broker("allow_anonymous true\nsys_interval 1\n")
    c = PahoClient(b)
    c.connect()
    c.subscribe("$SYS/broker/clients/connected", 0)
    extra = [PahoClient(b) for _ in range(3)]
    for e in extra:
        e.connect()
    deadline = time.time() + 6
    while True:
        assert time.time() < deadline, "clients/connected never reached 4"
        m = c.get(timeout=max(0.1, deadline - time.time()))
        if not m.retain and int(m.payload) >= 4:
            break
    for e in extra:
        e.disconnect()
    c.disconnect()


def test_mqtt_4_7_2_1_sys_not_delivered_to_hash_subscriber(make_broker):
    """[MQTT-4.7.2-1] A '#' subscriber gets no $SYS messages (two sys_intervals)."""
    b = make_broker("allow_anonymous true\nsys_interval 1\n")
    c = PahoClient(b)
    c.connect()
    c.subscribe("#", 0)
    s = PahoClient(b)
    s.connect()
    s.subscribe("$SYS/broker/uptime", 0)
    # wait for two live uptime publications, then nothing may have reached c
    n = 0
    deadline = time.time() + 6
    while n < 2:
        m = s.get(timeout=max(0.1, deadline - time.time()))
        n += 0 if m.retain else 1
    c.expect_none(0.2)
    c.disconnect()
    s.disconnect()
