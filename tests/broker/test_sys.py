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


def _kind(topic, payload):
    """The type of a $SYS payload, as Mosquitto writes it."""
    if topic == "$SYS/broker/version":
        return "version"
    if re.fullmatch(rb"\d+ seconds", payload):
        return "seconds"
    if re.fullmatch(rb"\d+\.\d\d", payload):
        return "load"
    if re.fullmatch(rb"\d+", payload):
        return "count"
    return "other: %r" % payload


def _sys_snapshot(b, settle=2.5):
    """Every $SYS topic and its latest payload, from a subscriber on $SYS/# after some traffic."""
    c = PahoClient(b)
    c.connect()
    assert c.subscribe("$SYS/#", 0) == [0]
    p = PahoClient(b)
    p.connect()
    for i in range(5):
        p.publish("sys/x/%d" % i, b"payload", 1)
    seen = {}
    deadline = time.time() + settle
    while time.time() < deadline:
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:
            continue
        seen[m.topic] = m.payload
    p.disconnect()
    c.disconnect()
    return seen


def test_sys_topics_match_mosquitto_by_name_and_type(make_broker, monkeypatch):
    """tombo publishes the same 53 $SYS topics as Debian's Mosquitto 2.0.11, started in the same
    test with the same config, each with a payload of the same type (a count, a load average with
    two decimals, "N seconds", the version string)."""
    conf = "allow_anonymous true\nsys_interval 1\n"
    ours = _sys_snapshot(make_broker(conf))
    from conftest import Broker
    monkeypatch.setenv("TOMBO_REFERENCE", "mosquitto")
    ref = Broker(conf).start()
    monkeypatch.delenv("TOMBO_REFERENCE")
    try:
        theirs = _sys_snapshot(ref)
    finally:
        ref.stop()
    assert len(theirs) == 53, sorted(theirs)
    assert sorted(set(theirs) - set(ours)) == [], "topics Mosquitto has and tombo lacks"
    assert sorted(set(ours) - set(theirs)) == [], "topics tombo has and Mosquitto lacks"
    kinds = {t: (_kind(t, ours[t]), _kind(t, theirs[t])) for t in theirs}
    assert {t: k for t, k in kinds.items() if k[0] != k[1]} == {}
    assert ours["$SYS/broker/version"].startswith(b"tombo version ")


def test_sys_topics_published_at_start(make_broker):
    """All $SYS topics are there (retained) as soon as the broker runs, not only after the first
    sys_interval (60 s here), as with Mosquitto."""
    b = make_broker("allow_anonymous true\nsys_interval 60\n")
    c = PahoClient(b)
    c.connect()
    assert c.subscribe("$SYS/#", 0) == [0]
    seen = {}
    deadline = time.time() + 3
    while len(seen) < 53 and time.time() < deadline:
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:
            continue
        seen[m.topic] = m
    assert len(seen) == 53, sorted(seen)
    assert all(m.retain for m in seen.values())
    c.disconnect()


def test_sys_load_averages_and_publish_counters_move(make_broker):
    """After 200 PUBLISHes of 10 bytes: publish/messages/received and publish/bytes/received
    count them, load/publish/received/1min becomes positive, messages/received (every packet)
    exceeds the PUBLISH count, and a $share subscription shows in shared_subscriptions/count."""
    b = make_broker("allow_anonymous true\nsys_interval 1\n")
    s = PahoClient(b)
    s.connect()
    assert s.subscribe("$share/g/load/#", 0) == [0]
    p = PahoClient(b)
    p.connect()
    for i in range(200):
        p.publish("load/%d" % (i % 10), b"0123456789", 0)
    c = PahoClient(b)
    c.connect()
    c.subscribe("$SYS/#", 0)
    latest = {}

    def ok():
        def num(t):
            return float(latest.get(t, b"0"))
        return (num("$SYS/broker/publish/messages/received") >= 200
                and num("$SYS/broker/publish/bytes/received") >= 2000
                and num("$SYS/broker/load/publish/received/1min") > 0
                and num("$SYS/broker/messages/received") > num("$SYS/broker/publish/messages/received")
                and num("$SYS/broker/shared_subscriptions/count") == 1)
    deadline = time.time() + 6
    while not ok():
        assert time.time() < deadline, {t: v for t, v in latest.items() if "load/publish" in t or "publish/" in t
                                        or "shared" in t or t.endswith("messages/received")}
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:
            continue
        latest[m.topic] = m.payload
    for x in (s, p, c):
        x.disconnect()


def test_log_dest_topic_publishes_the_log_on_sys_broker_log(make_broker):
    """log_dest topic: log lines go to $SYS/broker/log/<level> (N for notices such as a new
    client, M/subscribe for log_type subscribe), not retained, as Mosquitto does; debug never."""
    b = make_broker("allow_anonymous true\nlog_dest stderr\nlog_dest topic\nlog_type all\n")
    c = PahoClient(b)
    c.connect()
    assert c.subscribe("$SYS/broker/log/#", 0) == [0]
    other = PahoClient(b, client_id="log-watched-client")
    other.connect()
    other.subscribe("some/filter", 0)
    got = {}
    deadline = time.time() + 5
    while time.time() < deadline and not ("$SYS/broker/log/N" in got and "$SYS/broker/log/M/subscribe" in got):
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:
            continue
        if b"log-watched-client" in m.payload:
            got.setdefault(m.topic, m)
    assert "$SYS/broker/log/N" in got, got
    # The line as logged, timestamp first ("1796410387: New client connected from ...").
    assert re.match(rb"\d+: New client connected from 127\.0\.0\.1:\d+ as log-watched-client ",
                    got["$SYS/broker/log/N"].payload), got["$SYS/broker/log/N"].payload
    assert b"some/filter" in got["$SYS/broker/log/M/subscribe"].payload
    assert not got["$SYS/broker/log/N"].retain
    assert not any(t.endswith("/D") for t in got)
    other.disconnect()
    c.disconnect()
