"""SIGHUP reloads what Mosquitto reloads (mosquitto.conf(5): "Reloaded on reload signal"), with
real clients: each test changes the config file, sends SIGHUP to the broker's PID and watches the
new behaviour. Connected clients keep what their CONNACK told them (Receive Maximum, Maximum
Packet Size); the rest applies to everyone at once. A file that no longer parses keeps the old
settings; a change that needs a restart (listeners, persistence, ...) is logged as such.

Against Debian's Mosquitto (TOMBO_REFERENCE=mosquitto) 2.0.11 passes the tests of sys_interval,
message_size_limit, upgrade_outgoing_qos and password_file; it did not apply the others on reload
in this set-up (marked mosquitto_does_not; why is not investigated yet), and the tests that read
tombo's log lines are skipped there."""
import os
import re
import signal
import threading
import time

import pytest

from conftest import free_port, is_reference
import rawmqtt
from rawmqtt import CONNACK, PUBLISH, PUBACK, PUBREC, V311, V5, Client, Closed, connected
from test_auth import make_pwfile

NOT_AUTHORIZED = 0x87
RETAIN_NOT_SUPPORTED = 0x9A
tombo_only = pytest.mark.skipif(is_reference(), reason="tombo's log lines are checked")
# As root, Mosquitto becomes user "mosquitto", which cannot read the config file again from the
# test's private directory: "user root" keeps it root (tombo accepts the line too).
ROOT = "user root\n" if is_reference() else ""
# Run against it, Mosquitto 2.0.11 passes the tests without this mark; with it, the new value
# never reached new clients there, though mosquitto.conf(5) says the directive is reloaded.
mosquitto_does_not = pytest.mark.skipif(is_reference(), reason="Mosquitto 2.0.11 did not apply it on reload here")


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def reload(b, conf, expect="Reloaded the configuration"):
    """Write `conf` as the broker's config (after its listener line), SIGHUP it by PID and wait
    until the reload is done (`expect` in tombo's log; Mosquitto: its "Reloading config." and a
    moment)."""
    mark = "Reloading config." if is_reference() else expect
    before = b.log().count(mark)
    b.conf_text = ROOT + conf
    b.write_conf()
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_for(lambda: b.log().count(mark) > before, "no %r after SIGHUP:\n%s" % (mark, b.log()[-3000:]))
    if is_reference():
        time.sleep(0.5)


def drain(c, timeout=0.5):
    """The PUBLISHes that arrive within `timeout` (QoS 1 acknowledged)."""
    out = []
    try:
        while True:
            p = c.read_packet(timeout)
            if p.type == PUBLISH:
                out.append(p)
                if p.qos == 1:
                    c.send(rawmqtt.ack(PUBACK, p.packet_id, version=c.version))
    except (TimeoutError, Closed):
        return out


# ------------------------------------------------------------------------------------ security

@mosquitto_does_not
def test_allow_anonymous_refuses_new_clients_connected_ones_stay(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    old = connected(b.port, V5, "early")
    reload(b, "allow_anonymous false\n")
    c = Client(b.port, version=V5)
    assert c.connect(V5, client_id="late").reason == NOT_AUTHORIZED
    c.close()
    c = Client(b.port, version=V311)
    assert c.connect(V311, client_id="late3").reason == 5
    c.close()
    old.ping()  # the client connected before the reload stays
    old.publish("a/b", b"x", qos=1)
    reload(b, "allow_anonymous true\n")
    connected(b.port, V5, "again").disconnect()


def test_password_file_added_by_reload(make_broker, tmp_path):
    """A password_file the start-up config did not have: its users log in after SIGHUP,
    anonymous clients are refused, a wrong password too."""
    pw = make_pwfile(str(tmp_path / "pw"), "tombo-passwd", users={"alice": "secret"})
    b = make_broker(ROOT + "allow_anonymous true\n")
    c = Client(b.port, version=V311)
    assert c.connect(V311, client_id="x", username="alice", password="wrong").reason == 0  # no file yet
    c.close()
    reload(b, "allow_anonymous false\npassword_file %s\n" % pw)
    connected(b.port, V311, "a1", username="alice", password="secret").disconnect()
    for kw in ({"username": "alice", "password": "wrong"}, {}):
        c = Client(b.port, version=V311)
        assert c.connect(V311, client_id="a2", **kw).reason == 5
        c.close()


@mosquitto_does_not
def test_client_id_settings(make_broker):
    """auto_id_prefix, allow_zero_length_clientid and clientid_prefixes."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    assert connected(b.port, V5, "").connack.props["assigned_client_id"].startswith("auto-")
    reload(b, "allow_anonymous true\nauto_id_prefix reloaded-\n")
    assert connected(b.port, V5, "").connack.props["assigned_client_id"].startswith("reloaded-")
    reload(b, "allow_anonymous true\nallow_zero_length_clientid false\n")
    c = Client(b.port, version=V5)
    assert c.connect(V5, client_id="").reason == 0x85  # Client Identifier not valid
    c.close()
    reload(b, "allow_anonymous true\nclientid_prefixes ok-\n")
    c = Client(b.port, version=V5)
    assert c.connect(V5, client_id="other").reason == NOT_AUTHORIZED
    c.close()
    connected(b.port, V5, "ok-1").disconnect()


@mosquitto_does_not
def test_acl_file_new_rules_apply_to_connected_clients(make_broker, tmp_path):
    """acl_file: the file named by the new config (another path) replaces the rules; clients
    connected before the reload are checked against the new ones at once (publish and delivery)."""
    acl1, acl2 = tmp_path / "acl1", tmp_path / "acl2"
    acl1.write_text("topic readwrite a/#\n")
    acl2.write_text("topic readwrite a/x\n")
    b = make_broker(ROOT + "allow_anonymous true\nacl_file %s\n" % acl1)
    sub = connected(b.port, V311, "sub")
    sub.subscribe([("a/#", 1)])
    pub = connected(b.port, V311, "pub")
    pub.publish("a/1", b"before", qos=1)
    assert [p.payload for p in drain(sub)] == [b"before"]
    reload(b, "allow_anonymous true\nacl_file %s\n" % acl2)
    pub.publish("a/1", b"denied now", qos=1)  # acknowledged, not forwarded (3.1.1)
    pub.publish("a/x", b"still allowed", qos=1)
    assert [p.payload for p in drain(sub)] == [b"still allowed"]


# -------------------------------------------------------------------------------------- limits

@mosquitto_does_not
def test_max_packet_size_new_clients_get_the_new_limit(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    old = connected(b.port, V5, "old")
    assert "max_packet_size" not in old.connack.props
    reload(b, "allow_anonymous true\nmax_packet_size 100\n")
    new = connected(b.port, V5, "new")
    assert new.connack.props["max_packet_size"] == 100
    # The client told no limit goes on with none; the new one is held to 100 bytes.
    assert old.publish("big", b"x" * 200, qos=1).reason < 0x80  # 0x10: no subscriber
    new.send(rawmqtt.publish("big", b"x" * 200, qos=1, packet_id=1))
    new.expect_disconnect(0x95)  # Packet too large


@mosquitto_does_not
def test_max_inflight_messages_is_the_new_receive_maximum(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    old = connected(b.port, V5, "old")
    assert old.connack.props["receive_max"] == 20
    reload(b, "allow_anonymous true\nmax_inflight_messages 3\n")
    new = connected(b.port, V5, "new")
    assert new.connack.props["receive_max"] == 3
    for c in (old, new):
        for pid in range(1, 4):  # QoS 2 messages left unreleased count against Receive Maximum
            c.send(rawmqtt.publish("q2", b"x", qos=2, packet_id=pid))
            assert c.expect(PUBREC).reason < 0x80  # 0x10: no subscriber
    old.send(rawmqtt.publish("q2", b"x", qos=2, packet_id=4))
    assert old.expect(PUBREC).reason < 0x80  # told 20
    new.send(rawmqtt.publish("q2", b"x", qos=2, packet_id=4))
    new.expect_disconnect(0x93)  # Receive Maximum exceeded [MQTT-3.3.4-9]


@mosquitto_does_not
def test_max_keepalive_in_connack(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\nmax_keepalive 60\n")
    assert connected(b.port, V5, "k1", keepalive=100).connack.props["server_keep_alive"] == 60
    reload(b, "allow_anonymous true\nmax_keepalive 30\n")
    assert connected(b.port, V5, "k2", keepalive=100).connack.props["server_keep_alive"] == 30


def test_message_size_limit(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    sub = connected(b.port, V311, "sub")
    sub.subscribe([("m/#", 1)])
    pub = connected(b.port, V311, "pub")
    pub.publish("m/1", b"twenty bytes payload", qos=1)
    assert [p.payload for p in drain(sub)] == [b"twenty bytes payload"]
    reload(b, "allow_anonymous true\nmessage_size_limit 10\n")
    pub.publish("m/2", b"twenty bytes payload", qos=1)  # acknowledged, not forwarded
    pub.publish("m/3", b"short", qos=1)
    assert [p.payload for p in drain(sub)] == [b"short"]


@mosquitto_does_not
def test_max_queued_messages_and_queue_qos0_messages(make_broker):
    """An offline session's queue: max_queued_messages lowered, QoS 0 kept once
    queue_qos0_messages is on."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    s = connected(b.port, V311, "offline", clean=False)
    s.subscribe([("q/#", 1)])
    s.disconnect()
    reload(b, "allow_anonymous true\nmax_queued_messages 2\nqueue_qos0_messages true\n")
    pub = connected(b.port, V311, "pub")
    pub.publish("q/0", b"qos0", qos=0)
    for i in range(1, 5):
        pub.publish("q/%d" % i, b"m%d" % i, qos=1)
    s = connected(b.port, V311, "offline", clean=False)
    assert [p.payload for p in drain(s)] == [b"qos0", b"m1"]  # two kept, the oldest, as Mosquitto does
    s.disconnect()


def test_upgrade_outgoing_qos(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    sub = connected(b.port, V311, "sub")
    sub.subscribe([("u/t", 1)])
    pub = connected(b.port, V311, "pub")
    pub.publish("u/t", b"a", qos=0)
    assert [p.qos for p in drain(sub)] == [0]
    reload(b, "allow_anonymous true\nupgrade_outgoing_qos true\n")
    pub.publish("u/t", b"b", qos=0)
    assert [p.qos for p in drain(sub)] == [1]  # the subscription's QoS, as Mosquitto's option does


@mosquitto_does_not
def test_retain_available(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\n")
    reload(b, "allow_anonymous true\nretain_available false\n")
    c = connected(b.port, V5, "r1")
    assert c.connack.props["retain_available"] == 0
    c.send(rawmqtt.publish("r/t", b"x", qos=0, retain=True))
    c.expect_disconnect(RETAIN_NOT_SUPPORTED)
    reload(b, "allow_anonymous true\n")
    c = connected(b.port, V5, "r2")
    assert "retain_available" not in c.connack.props
    c.publish("r/t", b"kept", qos=1, retain=True)
    s = connected(b.port, V5, "r3")
    s.subscribe([("r/t", 0)])
    assert [p.payload for p in drain(s)] == [b"kept"]


def test_sys_interval(make_broker):
    """sys_interval 0: no $SYS; reloaded to 1: published at once, then every second."""
    b = make_broker(ROOT + "allow_anonymous true\nsys_interval 0\n")
    s = connected(b.port, V311, "sys")
    s.subscribe([("$SYS/broker/uptime", 0)])
    assert drain(s, 1.5) == []
    reload(b, "allow_anonymous true\nsys_interval 1\n")
    got, deadline = [], time.monotonic() + 2.5
    while time.monotonic() < deadline:
        try:
            got.append(s.expect(PUBLISH, timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
    assert len(got) >= 2 and all(p.topic == "$SYS/broker/uptime" for p in got), got


@mosquitto_does_not
def test_max_queued_bytes(make_broker):
    """max_queued_bytes lowered by a reload: an offline session then queues QoS 1 payloads up to
    about 500 bytes (100-byte payloads: a handful of the 30), in order."""
    b = make_broker(ROOT + "allow_anonymous true\nmax_queued_messages 0\n")
    s = connected(b.port, V311, "offline-b", clean=False)
    s.subscribe([("qb/#", 1)])
    s.disconnect()
    reload(b, "allow_anonymous true\nmax_queued_messages 0\nmax_queued_bytes 500\n")
    pub = connected(b.port, V311, "pub")
    for i in range(30):
        pub.publish("qb/t", b"%03d" % i + b"." * 97, qos=1)
    s = connected(b.port, V311, "offline-b", clean=False)
    got = [int(p.payload[:3]) for p in drain(s, 1.0)]
    assert 4 <= len(got) <= 7 and got == sorted(got), got
    s.disconnect()


@mosquitto_does_not
def test_max_inflight_bytes(make_broker):
    """max_inflight_bytes 100 by a reload: a connected subscriber then has at most 100 bytes of
    QoS 1 payloads in flight; the next message waits for a PUBACK."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    sub = connected(b.port, V311, "sub")
    sub.subscribe([("ib/#", 1)])
    reload(b, "allow_anonymous true\nmax_inflight_bytes 100\n")
    pub = connected(b.port, V311, "pub")
    for i in range(3):
        pub.publish("ib/%d" % i, b"x" * 60, qos=1)
    first = sub.expect(PUBLISH)
    assert first.topic == "ib/0"
    with pytest.raises(TimeoutError):
        sub.expect(PUBLISH, timeout=0.5)  # 60 + 60 > 100
    sub.send(rawmqtt.ack(PUBACK, first.packet_id, version=V311))
    assert sub.expect(PUBLISH).topic == "ib/1"


QUOTA_EXCEEDED = 0x97


@mosquitto_does_not
def test_memory_limit(make_broker):
    """memory_limit set by a reload: retained 100 KB messages are taken until the heap count passes
    2 MB, then refused with 0x97; reloaded back to 0 (no limit), publishes are taken again."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    c = connected(b.port, V5, "mem")
    reload(b, "allow_anonymous true\nmemory_limit 2000000\n")
    codes = []
    for k in range(100):
        codes.append(c.publish("fill/%d" % k, b"m" * 100 * 1024, qos=1, retain=True).reason)
        if codes[-1] == QUOTA_EXCEEDED:
            break
    assert codes[-1] == QUOTA_EXCEEDED and len(codes) >= 10, codes
    reload(b, "allow_anonymous true\n")
    time.sleep(0.2)  # each worker checks the limit on its next loop turn
    assert c.publish("fill/after", b"x", qos=1).reason in (0, 0x10)
    for k in range(100):  # clear the retained messages (ASan checks the broker frees the rest)
        c.publish("fill/%d" % k, b"", qos=0, retain=True)


@tombo_only
def test_persistent_client_expiration(make_broker):
    """persistent_client_expiration set by a reload: a 3.1.1 persistent session made after it expires
    after that time instead of never (the session expiry tombo's REST API reports)."""
    import json
    import urllib.request
    http_port = free_port()
    conf = "allow_anonymous true\nhttp_listener %d 127.0.0.1\n" % http_port

    def expiry(cid):
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/clients/%s" % (http_port, cid), timeout=5) as r:
            return json.loads(r.read())["session_expiry"]

    b = make_broker(conf)
    connected(b.port, V311, "pce-1", clean=False).disconnect()
    assert expiry("pce-1") == -1  # never
    reload(b, conf + "persistent_client_expiration 2h\n")
    connected(b.port, V311, "pce-2", clean=False).disconnect()
    assert expiry("pce-2") == 7200


# ------------------------------------------------------------------------------------- logging

@tombo_only
def test_log_settings(make_broker, tmp_path):
    """log_type, log_dest, log_timestamp_format and connection_messages."""
    b = make_broker(ROOT + "allow_anonymous true\nlog_type notice\n")
    s = connected(b.port, V311, "before")
    s.subscribe([("before/t", 0)])
    wait_for(lambda: "New client connected" in b.log(), "no connection message")
    assert "before 0 before/t" not in b.log()  # subscribe lines are off
    logfile = tmp_path / "tombo.log"
    reload(b, "allow_anonymous true\nlog_type notice subscribe\nconnection_messages false\n"
              "log_dest stderr\nlog_dest file %s\nlog_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n" % logfile)
    s.subscribe([("after/t", 0)])
    connected(b.port, V311, "quiet").disconnect()
    wait_for(lambda: logfile.exists() and "before 0 after/t" in logfile.read_text(),
             "no subscribe line in the new log file")
    text = logfile.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: before 0 after/t$", text, re.M), text
    assert "as quiet" not in b.log() and "as quiet" not in text  # connection_messages false


# ------------------------------------------------------------------------ what does not reload

@tombo_only
def test_config_error_keeps_the_previous_settings(make_broker):
    b = make_broker(ROOT + "allow_anonymous true\nmax_keepalive 60\n")
    reload(b, "allow_anonymous false\nmax_keepalive abc\n", expect="the previous one stays in force")
    assert re.search(r"broker\.conf:3: 'max_keepalive' must be a number", b.log()), b.log()
    c = connected(b.port, V5, "still", keepalive=100)  # allow_anonymous true still
    assert c.connack.props["server_keep_alive"] == 60
    reload(b, "allow_anonymous true\nmax_qos 3\n", expect="the previous one stays in force")
    assert "broker.conf:3: 'max_qos' must be a number from 0 to 2, not 3" in b.log()
    reload(b, "allow_anonymous true\nmax_keepalive 30\n")  # fixed: applied
    assert connected(b.port, V5, "k", keepalive=100).connack.props["server_keep_alive"] == 30


@tombo_only
def test_listener_and_persistence_changes_are_logged_not_applied(make_broker, tmp_path):
    b = make_broker(ROOT + "allow_anonymous true\n")
    port2 = free_port()
    reload(b, "max_qos 1\nallow_anonymous false\nlistener %d 127.0.0.1\npersistence true\nthreads 1\n" % port2)
    log = b.log()
    assert "broker.conf:1: max_qos of ipv4/ipv6 listen socket on 127.0.0.1 port %d: cannot be reloaded: " \
           "restart to apply." % b.port in log, log
    assert "new ipv4/ipv6 listen socket on 127.0.0.1 port %d: cannot be reloaded: restart to apply." % port2 in log
    assert "broker.conf: persistence: cannot be reloaded: restart to apply." in log
    assert "broker.conf: threads: cannot be reloaded: restart to apply." in log
    with pytest.raises(OSError):
        Client(port2)  # not opened
    c = Client(b.port, version=V5)
    assert c.connect(V5, client_id="anon").reason == NOT_AUTHORIZED  # the reloadable part applied
    c.close()
    assert not (tmp_path / "tombo.db").exists()


@tombo_only
def test_persistence_and_per_listener_settings_changes_are_logged(make_broker, tmp_path):
    """persistence_file, persistence_location and per_listener_settings, which Mosquitto reloads,
    need a restart in tombo: each change is logged as such, the rest of the file applies."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    reload(b, "per_listener_settings true\nallow_anonymous false\npersistence_file other.db\n"
              "persistence_location %s/\n" % tmp_path)
    log = b.log()
    for what in ("per_listener_settings", "persistence_file", "persistence_location"):
        assert "broker.conf: %s: cannot be reloaded: restart to apply." % what in log, log
    c = Client(b.port, version=V5)
    assert c.connect(V5, client_id="still-anon").reason == 0  # security kept while per_listener_settings changes
    c.close()
    assert not list(tmp_path.iterdir())


@tombo_only
def test_settings_with_nothing_to_apply_are_checked_again(make_broker):
    """autosave_interval, autosave_on_changes, allow_duplicate_messages (one behaviour in tombo) and
    log_facility reload without a restart warning; a bad value keeps the previous configuration."""
    b = make_broker(ROOT + "allow_anonymous true\n")
    reload(b, "allow_anonymous true\nautosave_interval 60\nautosave_on_changes true\n"
              "allow_duplicate_messages false\nlog_facility 3\n")
    assert "cannot be reloaded" not in b.log()
    reload(b, "allow_anonymous true\nautosave_on_changes maybe\n", expect="the previous one stays in force")
    assert "broker.conf:3: 'autosave_on_changes' must be true or false, not 'maybe'" in b.log()


@tombo_only
def test_same_file_reports_nothing(make_broker):
    """The same file again: nothing is reported as needing a restart."""
    b = make_broker(ROOT + "allow_anonymous true\nmax_qos 1\n")
    reload(b, "allow_anonymous true\nmax_qos 1\n")
    assert "cannot be reloaded" not in b.log()


# --------------------------------------------------------------------------------- concurrency

@pytest.mark.tsan
@tombo_only
def test_reloads_while_clients_publish(make_broker):
    """SIGHUPs that change every reloadable setting while publishers, a subscriber and new
    connections keep the workers busy: no lost acknowledgement, no crash, no data race under
    TSan (make tsan; TOMBO_BUILD=build/tsan)."""
    confs = ["allow_anonymous true\nmax_queued_messages 50\nmessage_size_limit 1000\nlog_type all\n"
             "max_packet_size 5000\nmax_inflight_messages 5\nsys_interval 1\nauto_id_prefix a-\n",
             "allow_anonymous true\nmax_queued_messages 0\nretain_available false\nlog_type error notice\n"
             "max_keepalive 30\nconnection_messages false\nqueue_qos0_messages true\nset_tcp_nodelay true\n"]
    b = make_broker(confs[0])
    stop = threading.Event()
    errors = []
    sub = connected(b.port, V311, "sub")
    sub.subscribe([("load/#", 1)])

    def subscriber():
        while not stop.is_set():
            drain(sub, 0.2)

    def publisher(n):
        try:
            i = 0
            while not stop.is_set():
                c = connected(b.port, V5 if n % 2 else V311, "")
                for _ in range(20):
                    assert c.publish("load/%d" % n, b"p%d" % i, qos=1).reason == 0
                    i += 1
                c.disconnect()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=subscriber))
    for t in threads:
        t.start()
    try:
        for k in range(8):
            reload(b, confs[k % 2])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert not errors, errors
    assert b.alive()
