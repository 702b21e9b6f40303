"""Persistence (`persistence true`): sessions, subscriptions, queued and in-flight QoS 1/2
messages, inbound QoS 2 state and retained messages survive a restart -- and, on tombo, a crash:
what the broker acknowledged survives `kill -9`.

Graceful restarts (SIGTERM) run against Mosquitto too. The `kill -9` cases are tombo's promise
(Mosquitto saves snapshots, so a crash loses what came after the last one): they are skipped on
the reference broker."""
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import Broker, broker_cmd, is_reference
from rawmqtt import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, UNSUBACK, V311, V5, Client, ack, connected,
                     publish, unsubscribe)

tombo_only = pytest.mark.skipif(is_reference(), reason="Mosquitto loses what it did not snapshot on a crash")

# Mosquitto started as root drops to the mosquitto user before writing its database.
CONF = ("user root\n" if is_reference() else "") + "allow_anonymous true\npersistence true\n"


def crash(b):
    """kill -9 the broker and start it again on the same port and database."""
    b.stop(signal.SIGKILL)
    b.start()


def restart(b):
    """Stop the broker cleanly (SIGTERM) and start it again."""
    b.stop()
    b.start()


def settle_subscriber(port, cid, filters, version=V311):
    """Create a persistent session subscribed to filters, then go offline."""
    kw = {"clean": False} if version == V311 else {"clean": True, "properties": [("session_expiry", 3600)]}
    c = connected(port, version, cid, **kw)
    ack_ = c.subscribe(filters)
    assert all(code < 0x80 for code in ack_.reason_codes)
    c.disconnect()


def resume(port, cid, version=V311):
    kw = {"clean": False} if version == V311 else {"clean": False, "properties": [("session_expiry", 3600)]}
    c = connected(port, version, cid, **kw)
    return c


def drain(c, timeout=1.0):
    """Every packet that arrives until `timeout` seconds of silence."""
    got = []
    while True:
        try:
            got.append(c.read_packet(timeout))
        except (TimeoutError, socket.timeout):
            return got


@pytest.mark.tsan
@pytest.mark.parametrize("how", [pytest.param("crash", marks=tombo_only), "restart"])
def test_session_state_survives_restart_MQTT_3_1_2_4_and_3_1_2_5(make_broker, how):
    """[MQTT-3.1.2-4] a session with CleanSession 0 resumes from its stored state, and
    [MQTT-3.1.2-5] QoS 1 and 2 messages published while it was away are part of it: across a
    broker restart, in order, with their QoS."""
    b = make_broker(CONF)
    settle_subscriber(b.port, "keeper", [("p/#", 2)])
    pub = connected(b.port, V311, "pub")
    for i in range(5):
        pub.publish("p/%d" % i, b"m%d" % i, qos=1 + i % 2)
    pub.disconnect()
    crash(b) if how == "crash" else restart(b)

    c = resume(b.port, "keeper")
    assert c.connack.session_present
    got = [p for p in drain(c) if p.type == PUBLISH]
    assert [(p.topic, p.payload, p.qos) for p in got] == [("p/%d" % i, b"m%d" % i, 1 + i % 2) for i in range(5)]
    for p in got:
        if p.qos == 1:
            c.send(ack(PUBACK, p.packet_id, version=V311))
        else:
            c.send(ack(PUBREC, p.packet_id, version=V311))
            assert c.expect(PUBREL).packet_id == p.packet_id
            c.send(ack(PUBCOMP, p.packet_id, version=V311))
    c.disconnect()
    # Acknowledged: gone for good, also after another restart.
    restart(b)
    c = resume(b.port, "keeper")
    assert c.connack.session_present
    assert [p for p in drain(c, 0.5) if p.type == PUBLISH] == []
    # The subscription itself survived both restarts.
    pub = connected(b.port, V311, "pub2")
    pub.publish("p/x", b"again", qos=1)
    p = c.expect(PUBLISH)
    assert (p.topic, p.payload) == ("p/x", b"again")
    c.close()
    pub.disconnect()


@pytest.mark.tsan
@tombo_only
def test_every_puback_survives_kill9(make_broker):
    """The durability promise: a message the broker sent PUBACK for reaches the persistent
    subscriber although the broker was killed with SIGKILL right after, mid-stream."""
    b = make_broker(CONF + "max_queued_messages 0\n")
    settle_subscriber(b.port, "durable", [("load/#", 1)])
    pub = Client(b.port, version=V311)
    pub.connect(V311, client_id="loader", clean=True)
    n = 20000  # packet ids 1..20000, each used once
    data = b"".join(publish("load/%d" % i, b"%d" % i, qos=1, packet_id=i + 1, version=V311) for i in range(n))
    sender = threading.Thread(target=pub.send, args=(data,), daemon=True)  # blocks while the broker reads
    sender.start()
    acked = set()
    while len(acked) < 200:
        p = pub.read_packet(5)
        if p.type == PUBACK:
            acked.add(p.packet_id - 1)
    os.kill(b.proc.pid, signal.SIGKILL)
    # PUBACKs the broker had sent before it died count too.
    try:
        while True:
            p = pub.read_packet(1)
            if p.type == PUBACK:
                acked.add(p.packet_id - 1)
    except Exception:
        pass
    pub.close()
    sender.join(10)
    b.stop()
    b.start()

    c = resume(b.port, "durable")
    received = set()
    while True:
        try:
            p = c.read_packet(1.5)
        except (TimeoutError, socket.timeout):
            break
        if p.type == PUBLISH:
            received.add(int(p.payload))
            c.send(ack(PUBACK, p.packet_id, version=V311))
    c.close()
    lost = sorted(acked - received)
    assert not lost, "%d acknowledged messages lost, e.g. %s" % (len(lost), lost[:10])
    assert 200 <= len(acked)
    print("acked %d of %d before the kill, received %d after" % (len(acked), n, len(received)))


@tombo_only
def test_inflight_qos1_and_qos2_resent_with_original_ids_after_kill9_MQTT_4_4_0_1(make_broker):
    """[MQTT-4.4.0-1] on reconnect with CleanSession 0 the server re-sends unacknowledged
    PUBLISH packets and PUBREL packets with their original packet identifiers -- after a crash
    too. A QoS 2 message whose PUBREC was answered with PUBREL is never sent again as a PUBLISH."""
    b = make_broker(CONF)
    settle_subscriber(b.port, "inflight", [("q/#", 2)])
    pub = connected(b.port, V311, "pub")
    pub.publish("q/1", b"one", qos=1)
    pub.publish("q/2", b"two", qos=2)
    pub.disconnect()

    c = resume(b.port, "inflight")
    first = [p for p in drain(c) if p.type == PUBLISH]
    assert [(p.topic, p.qos, p.dup) for p in first] == [("q/1", 1, False), ("q/2", 2, False)]
    ids = {p.topic: p.packet_id for p in first}
    crash(b)

    c = resume(b.port, "inflight")
    assert c.connack.session_present
    again = [p for p in drain(c) if p.type == PUBLISH]
    assert [(p.topic, p.payload, p.qos, p.dup, p.packet_id) for p in again] == [
        ("q/1", b"one", 1, True, ids["q/1"]), ("q/2", b"two", 2, True, ids["q/2"])]
    c.send(ack(PUBACK, ids["q/1"], version=V311))
    c.send(ack(PUBREC, ids["q/2"], version=V311))
    assert c.expect(PUBREL).packet_id == ids["q/2"]
    crash(b)

    c = resume(b.port, "inflight")
    left = drain(c)
    assert [(p.name, p.packet_id) for p in left] == [("PUBREL", ids["q/2"])]
    c.send(ack(PUBCOMP, ids["q/2"], version=V311))
    c.disconnect()
    restart(b)
    c = resume(b.port, "inflight")
    assert drain(c, 0.5) == []
    c.close()


@tombo_only
def test_inbound_qos2_not_delivered_twice_after_kill9_MQTT_4_3_3_2(make_broker):
    """[MQTT-4.3.3-2] until the PUBREL arrives, a PUBLISH with the same packet identifier is
    acknowledged with PUBREC and not delivered again -- the receiver remembers the id across a
    crash of the broker."""
    b = make_broker(CONF)
    settle_subscriber(b.port, "sink", [("once/#", 2)])
    pub = Client(b.port, version=V311)
    pub.connect(V311, client_id="qos2pub", clean=False)
    pub.send(publish("once/x", b"exactly", qos=2, packet_id=7, version=V311))
    assert pub.expect(PUBREC).packet_id == 7
    pub.close()
    crash(b)

    pub = Client(b.port, version=V311)
    assert pub.connect(V311, client_id="qos2pub", clean=False).session_present
    pub.send(publish("once/x", b"exactly", qos=2, dup=True, packet_id=7, version=V311))
    assert pub.expect(PUBREC).packet_id == 7
    pub.send(ack(PUBREL, 7, version=V311))
    assert pub.expect(PUBCOMP).packet_id == 7
    pub.disconnect()

    c = resume(b.port, "sink")
    got = [p for p in drain(c) if p.type == PUBLISH]
    assert [(p.topic, p.payload) for p in got] == [("once/x", b"exactly")]
    c.close()


@pytest.mark.parametrize("how", [pytest.param("crash", marks=tombo_only), "restart"])
def test_retained_messages_survive_restart_MQTT_3_3_1_5(make_broker, how):
    """[MQTT-3.3.1-5] the server stores a retained message to deliver it to future subscribers --
    across restarts; a retained message cleared with an empty payload [MQTT-3.3.1-10] stays
    cleared."""
    b = make_broker(CONF)
    pub = connected(b.port, V5, "ret")
    pub.publish("r/keep", b"kept", qos=1, retain=True, properties=[("content_type", "text/plain")])
    pub.publish("r/gone", b"soon gone", qos=1, retain=True)
    pub.publish("r/gone", b"", qos=1, retain=True)
    pub.publish("r/q0", b"qos0 retained", qos=0, retain=True)
    pub.disconnect()
    time.sleep(0.2)  # QoS 0 has no acknowledgement to wait for
    crash(b) if how == "crash" else restart(b)

    c = connected(b.port, V5, "reader")
    c.subscribe([("r/#", 1)])
    got = {p.topic: p for p in drain(c) if p.type == PUBLISH}
    assert sorted(got) == ["r/keep", "r/q0"]
    assert got["r/keep"].payload == b"kept" and got["r/keep"].retain
    assert got["r/keep"].props.get("content_type") == "text/plain"
    assert got["r/q0"].payload == b"qos0 retained"
    c.close()


@pytest.mark.parametrize("how", [pytest.param("crash", marks=tombo_only), "restart"])
def test_clean_sessions_and_unsubscribed_filters_are_not_restored(make_broker, how):
    """A clean session ends with its connection [MQTT-3.1.2-6]: nothing of it comes back after a
    restart. An UNSUBSCRIBE made before the restart stays made."""
    b = make_broker(CONF)
    clean = connected(b.port, V311, "cleanone", clean=True)
    clean.subscribe([("c/#", 1)])
    keeper = connected(b.port, V311, "keeper2", clean=False)
    keeper.subscribe([("k/a", 1), ("k/b", 1)])
    keeper.send(unsubscribe(9, ["k/a"], version=V311))
    assert keeper.expect(UNSUBACK).packet_id == 9
    keeper.disconnect()
    time.sleep(0.1)
    crash(b) if how == "crash" else restart(b)

    again = connected(b.port, V311, "cleanone", clean=False)
    assert not again.connack.session_present
    again.disconnect()
    keeper = resume(b.port, "keeper2")
    assert keeper.connack.session_present
    pub = connected(b.port, V311, "pubk")
    pub.publish("k/a", b"a", qos=1)
    pub.publish("k/b", b"b", qos=1)
    got = [p.topic for p in drain(keeper) if p.type == PUBLISH]
    assert got == ["k/b"]
    keeper.close()
    pub.disconnect()


@tombo_only
def test_mqtt5_session_expiry_and_message_expiry_count_on_across_restart(make_broker):
    """[MQTT-3.1.2-23] a session ends Session Expiry Interval seconds after its connection closed:
    the time the broker was down counts too. A queued message keeps its Message Expiry Interval
    and is sent with the time left [MQTT-3.3.2-6]."""
    b = make_broker(CONF)
    c = connected(b.port, V5, "shortlived", clean=True, properties=[("session_expiry", 4)])
    c.subscribe([("e/#", 1)])
    c.disconnect()
    gone = time.monotonic()
    settle_subscriber(b.port, "longlived", [("e/#", 1)], version=V5)
    pub = connected(b.port, V5, "pube")
    pub.publish("e/1", b"expiring", qos=1, properties=[("message_expiry", 30)])
    pub.disconnect()
    b.stop(signal.SIGKILL)
    time.sleep(3)  # the broker is down for 3 of the 4 seconds
    b.start()
    up = time.monotonic()

    c = resume(b.port, "longlived", version=V5)
    assert c.connack.session_present
    p = c.expect(PUBLISH)
    assert p.payload == b"expiring"
    assert 1 <= p.props["message_expiry"] <= 27
    c.close()
    time.sleep(max(0.0, gone + 4.5 - time.monotonic()))
    assert time.monotonic() - up < 3.5  # so counting from the restart would still keep it
    c = connected(b.port, V5, "shortlived", clean=False, properties=[("session_expiry", 4)])
    assert not c.connack.session_present
    c.close()


@tombo_only
@pytest.mark.parametrize("delay", [0, 2])
def test_will_of_a_client_connected_at_the_crash_is_published_after_restart_MQTT_3_1_2_8(make_broker, delay):
    """[MQTT-3.1.2-8] the will is published when the network connection closes without a
    DISCONNECT -- a broker crash closes it too. A persistent session's will survives the crash and
    is published after the restart, after its Will Delay Interval; a will that a normal DISCONNECT
    discarded [MQTT-3.1.2-10] is not."""
    b = make_broker(CONF)
    settle_subscriber(b.port, "watcher", [("will/#", 1)], version=V5)
    dying = connected(b.port, V5, "dying", clean=True, properties=[("session_expiry", 300)],
                      will_topic="will/dying", will_payload=b"dying is gone", will_qos=1,
                      will_properties=[("will_delay", delay)] if delay else None)
    polite = connected(b.port, V5, "polite", clean=True, properties=[("session_expiry", 300)],
                       will_topic="will/polite", will_payload=b"not sent", will_qos=1)
    polite.disconnect()
    time.sleep(0.2)
    crash(b)
    dying.close()
    c = resume(b.port, "watcher", version=V5)
    got = [p for p in drain(c, delay + 1.5) if p.type == PUBLISH]
    assert [(p.topic, p.payload) for p in got] == [("will/dying", b"dying is gone")]
    c.close()


@tombo_only
def test_reconnect_within_will_delay_after_restart_cancels_the_will_MQTT_3_1_3_9(make_broker):
    """[MQTT-3.1.3-9] a client that reconnects before its Will Delay Interval has passed cancels
    the will -- also when the delay started with a broker crash."""
    b = make_broker(CONF)
    settle_subscriber(b.port, "watcher2", [("will/#", 1)], version=V5)
    props = [("session_expiry", 300)]
    dying = connected(b.port, V5, "back", clean=True, properties=props, will_topic="will/back",
                      will_payload=b"should not be sent", will_qos=1, will_properties=[("will_delay", 3)])
    crash(b)
    dying.close()
    back = connected(b.port, V5, "back", clean=False, properties=props)
    assert back.connack.session_present
    c = resume(b.port, "watcher2", version=V5)
    assert [p for p in drain(c, 4) if p.type == PUBLISH] == []
    c.close()
    back.disconnect()


@tombo_only
def test_database_is_sqlite_and_one_broker_per_database(make_broker, tmp_path):
    """The database is a plain SQLite file (inspectable with sqlite3); a second broker pointed at
    the same file refuses to start with a clear error instead of corrupting it."""
    b = make_broker("allow_anonymous true\npersistence true\npersistence_location %s/\n" % tmp_path)
    settle_subscriber(b.port, "inspect", [("i/#", 1)])
    time.sleep(0.2)
    other = Broker("allow_anonymous true\npersistence true\npersistence_location %s/\n" % tmp_path)
    other.write_conf()
    r = subprocess.run(broker_cmd(other.conf_path), cwd=other.dir, capture_output=True, timeout=30)
    assert r.returncode == 1 and b"Sanitizer" not in r.stderr  # an error exit, not a crash
    assert b"persistence database" in r.stderr and b"in use by another broker" in r.stderr
    db = sqlite3.connect(str(tmp_path / "tombo.db"))  # readable while the broker runs
    rows = db.execute("SELECT client_id FROM sessions").fetchall()
    subs = db.execute("SELECT filter, options FROM subs").fetchall()
    db.close()
    assert rows == [(b"inspect",)]
    assert subs == [(b"i/#", 1)]


@pytest.mark.tsan
@tombo_only
def test_qos2_exactly_once_through_kill9_MQTT_4_3_3(make_broker):
    """QoS 2 is exactly once [MQTT-4.3.3] even when the broker is killed in the middle of a
    stream: the publisher, resuming its session, re-sends what was not PUBREC'd (PUBLISH with DUP)
    and what was not PUBCOMP'd (PUBREL) [MQTT-4.4.0-1], and the persistent subscriber gets every
    message exactly once -- none lost with the broker's memory, none delivered twice because the
    broker forgot it had one."""
    b = make_broker(CONF + "max_queued_messages 0\n")
    settle_subscriber(b.port, "exact-sub", [("x/#", 2)])
    n = 3000
    state = {}  # packet id -> "sent" | "rec" (PUBREL sent) | "comp"
    pub = Client(b.port, version=V311, timeout=5)
    pub.connect(V311, client_id="exact-pub", clean=False)

    def handle(p, c):
        if p.type == PUBREC:
            state[p.packet_id] = "rec"
            c.send(ack(PUBREL, p.packet_id, version=V311))
        elif p.type == PUBCOMP:
            state[p.packet_id] = "comp"

    killed = False
    for start in range(1, n + 1, 250):
        ids = range(start, min(start + 250, n + 1))
        pub.send(b"".join(publish("x/%d" % i, b"%d" % i, qos=2, packet_id=i, version=V311) for i in ids))
        for i in ids:
            state[i] = "sent"
        while sum(1 for i in ids if state[i] == "sent") > 50:
            handle(pub.read_packet(5), pub)
        if sum(1 for v in state.values() if v == "comp") >= 1000:
            os.kill(b.proc.pid, signal.SIGKILL)
            killed = True
            break
    assert killed
    try:
        while True:
            handle(pub.read_packet(1), pub)
    except Exception:
        pass
    pub.close()
    b.stop()
    b.start()

    pub = Client(b.port, version=V311, timeout=5)
    assert pub.connect(V311, client_id="exact-pub", clean=False).session_present
    for i, v in sorted(state.items()):
        if v == "sent":
            pub.send(publish("x/%d" % i, b"%d" % i, qos=2, dup=True, packet_id=i, version=V311))
        elif v == "rec":
            pub.send(ack(PUBREL, i, version=V311))
    while any(v != "comp" for v in state.values()):
        handle(pub.read_packet(5), pub)
    # Publish the rest of the stream, then see what the subscriber got.
    for start in range(max(state) + 1, n + 1, 250):
        ids = range(start, min(start + 250, n + 1))
        pub.send(b"".join(publish("x/%d" % i, b"%d" % i, qos=2, packet_id=i, version=V311) for i in ids))
        for i in ids:
            state[i] = "sent"
        while any(state[i] != "comp" for i in ids):
            handle(pub.read_packet(5), pub)
    pub.disconnect()

    c = resume(b.port, "exact-sub")
    counts = {}
    try:
        while True:
            p = c.read_packet(1.5)
            if p.type == PUBLISH:
                counts[int(p.payload)] = counts.get(int(p.payload), 0) + 1
                c.send(ack(PUBREC, p.packet_id, version=V311))
            elif p.type == PUBREL:
                c.send(ack(PUBCOMP, p.packet_id, version=V311))
    except (TimeoutError, socket.timeout):
        pass
    c.close()
    lost = sorted(set(range(1, n + 1)) - set(counts))
    twice = sorted(k for k, v in counts.items() if v > 1)
    assert not lost and not twice, "lost %d (e.g. %s), delivered twice %d (e.g. %s)" % (
        len(lost), lost[:5], len(twice), twice[:5])
