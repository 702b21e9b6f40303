"""Bridges (mosquitto.conf(5) `connection` sections), between real brokers on 127.0.0.1: tombo and
Debian's Mosquitto 2.0.11 in both roles, and tombo with tombo.

Each test names the behaviour it proves. A bridge needs a moment to connect and subscribe on the
remote, so tests first wait until a probe message crosses (flows()), then count exactly: every
message that should cross does, once, and nothing else arrives (a round trip through each broker,
clients.sync(), proves absence without guessing at timing)."""
import http.client
import json
import os
import re
import signal
import socket
import time

import pytest

from clients import PahoClient, V5, V311, unique_id
from conftest import free_port

pytestmark = pytest.mark.skipif(os.environ.get("TOMBO_REFERENCE") == "mosquitto",
                                reason="bridges are tested between tombo and mosquitto explicitly")

PROTOCOLS = ["mqttv311", "mqttv50"]


def client(broker, protocol=V311, **kw):
    c = PahoClient(broker, protocol=protocol, **kw)
    c.connect()
    return c


def bridge_conf(name, remote, topics, extra=""):
    """A `connection` section to `remote` (a Broker, or a list of (host, port))."""
    if isinstance(remote, list):
        addr = " ".join("%s:%d" % hp for hp in remote)
    else:
        addr = "127.0.0.1:%d" % remote.port
    lines = ["connection %s" % name, "address %s" % addr, "remote_clientid %s" % name,
             "restart_timeout 1"]
    lines += ["topic %s" % t for t in topics]
    return "\n".join(lines) + "\n" + extra


def flows(pub, pub_topic, sub, sub_topic, timeout=15.0):
    """Publish probes on pub until one reaches sub (subscribed to sub_topic at QoS 0): the bridge
    is connected and subscribed. Drains the probes that follow."""
    sub.subscribe(sub_topic, 0)
    deadline = time.time() + timeout
    while time.time() < deadline:
        pub.publish(pub_topic, b"probe", 0)
        try:
            m = sub.messages.get(timeout=0.3)
        except Exception:
            continue
        if m.payload == b"probe":
            time.sleep(0.3)
            while not sub.messages.empty():
                sub.messages.get()
            sub.unsubscribe(sub_topic)
            return
    raise AssertionError("nothing crossed the bridge from %s to %s in %ss" % (pub_topic, sub_topic, timeout))


def wait_log(broker, pattern, timeout=15.0, count=1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.findall(pattern, broker.log())
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError("%r not %d times in the log of port %d:\n%s" % (pattern, count, broker.port,
                                                                          broker.log()[-3000:]))


def payloads(msgs):
    return sorted(m.payload for m in msgs)


# ---- tombo <-> mosquitto ----------------------------------------------------------------------

@pytest.mark.parametrize("proto", ["mqttv31"] + PROTOCOLS)
def test_tombo_bridge_to_mosquitto_forwards_qos012_with_prefixes_both_ways(make_broker, proto):
    """tombo bridges to Mosquitto: `out` messages leave with the local prefix replaced by the
    remote one, `in` messages arrive with the remote prefix replaced by the local one, at QoS
    0, 1 and 2 (the lower of the publish and the topic line's QoS), each once."""
    remote = make_broker(mosquitto=True)
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "b1", remote, ["sensors/# out 2 site/ cloud/", "cmd/# in 2 site/ cloud/"],
        "bridge_protocol_version %s\n" % proto))
    lc, rc = client(local), client(remote)
    flows(lc, "site/sensors/probe", rc, "cloud/sensors/probe")
    flows(rc, "cloud/cmd/probe", lc, "site/cmd/probe")

    rc.subscribe("cloud/sensors/#", 2)
    lc.subscribe("site/cmd/#", 2)
    for q in (0, 1, 2):
        lc.publish("site/sensors/t%d" % q, b"up%d" % q, q)
        rc.publish("cloud/cmd/t%d" % q, b"down%d" % q, q)
    up = rc.get_n(3)
    down = lc.get_n(3)
    assert sorted((m.topic, m.payload, m.qos) for m in up) == [
        ("cloud/sensors/t0", b"up0", 0), ("cloud/sensors/t1", b"up1", 1), ("cloud/sensors/t2", b"up2", 2)]
    assert sorted((m.topic, m.payload, m.qos) for m in down) == [
        ("site/cmd/t0", b"down0", 0), ("site/cmd/t1", b"down1", 1), ("site/cmd/t2", b"down2", 2)]
    rc.sync()
    lc.sync()
    rc.expect_none()
    lc.expect_none()
    # Topics outside the patterns stay where they are.
    lc.publish("site/other", b"x", 1)
    rc.subscribe("#", 1)
    rc.sync()
    assert [m.topic for m in rc.sync() if m.topic.startswith("cloud/other") or m.topic == "site/other"] == []


@pytest.mark.parametrize("proto", ["mqttv31"] + PROTOCOLS)
def test_mosquitto_bridge_to_tombo_forwards_both_ways(make_broker, proto):
    """Mosquitto bridges to tombo (tombo is the remote): tombo accepts its CONNECT (try_private on
    3.1.1), its subscriptions and its publications, QoS 1 and 2 both ways, prefixes remapped."""
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "mb", remote, ["a/# both 2 l/ r/"], "bridge_protocol_version %s\n" % proto), mosquitto=True)
    lc, rc = client(local), client(remote)
    flows(lc, "l/a/probe", rc, "r/a/probe")
    flows(rc, "r/a/probe2", lc, "l/a/probe2")
    lc.subscribe("l/a/down", 2)
    rc.subscribe("r/a/up", 2)
    for q in (1, 2):
        lc.publish("l/a/up", b"u%d" % q, q)
        rc.publish("r/a/down", b"d%d" % q, q)
    assert payloads(rc.get_n(2)) == [b"u1", b"u2"]
    assert payloads(lc.get_n(2)) == [b"d1", b"d2"]
    rc.sync()
    lc.sync()
    rc.expect_none()
    lc.expect_none()


def test_retained_messages_cross_with_their_retain_flag(make_broker):
    """A retained message published locally is retained on the remote too (the bridge subscribes
    with retain-as-published and bridge_outgoing_retain is true); and a retained message on the
    remote reaches the local broker retained when the bridge subscribes."""
    remote = make_broker(mosquitto=True)
    rc = client(remote)
    rc.publish("r/in/kept", b"from-remote", 1, retain=True)
    local = make_broker("allow_anonymous true\n" + bridge_conf("rt", remote, ["out/# out 1 l/ r/", "in/# in 1 l/ r/"]))
    lc = client(local)
    flows(lc, "l/out/probe", rc, "r/out/probe")
    lc.publish("l/out/kept", b"from-local", 1, retain=True)
    late = client(remote)
    late.subscribe("r/out/kept", 1)
    m = late.get()
    assert (m.topic, m.payload, m.retain) == ("r/out/kept", b"from-local", True)
    wait = time.time() + 10
    while True:  # the retained message arrived through the bridge's subscription at connect
        late2 = client(local)
        late2.subscribe("l/in/kept", 1)
        try:
            m = late2.get(timeout=0.5)
            break
        except AssertionError:
            late2.close()
            assert time.time() < wait, local.log()
    assert (m.topic, m.payload, m.retain) == ("l/in/kept", b"from-remote", True)


def test_bridge_outgoing_retain_false_clears_the_retain_flag(make_broker):
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf("nr", remote, ["x/# out 1"],
                                                               "bridge_outgoing_retain false\n"))
    lc, rc = client(local), client(remote)
    flows(lc, "x/probe", rc, "x/probe")
    lc.publish("x/r", b"v", 1, retain=True)
    late = client(remote)
    late.subscribe("x/r", 1)
    late.sync()
    late.expect_none()


# ---- loops ----------------------------------------------------------------------------------

@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("remote_kind", ["tombo", "mosquitto"])
def test_bridge_both_ways_on_everything_does_not_loop(make_broker, proto, remote_kind):
    """`topic # both` between two brokers: each message published on either side arrives once on
    each side and is never echoed back (try_private on 3.1.1, no-local on 5.0; the bridge's own
    local subscription is no-local too)."""
    remote = make_broker(mosquitto=remote_kind == "mosquitto")
    local = make_broker("allow_anonymous true\n" + bridge_conf("lp", remote, ["# both 1"],
                                                               "bridge_protocol_version %s\n"
                                                               "notifications false\n" % proto))
    lc, rc = client(local), client(remote)
    flows(lc, "probe/1", rc, "probe/1")
    flows(rc, "probe/2", lc, "probe/2")
    lc.subscribe("loop/#", 1)
    rc.subscribe("loop/#", 1)
    lc.publish("loop/a", b"from-local", 1)
    rc.publish("loop/b", b"from-remote", 1)
    time.sleep(1.5)  # a loop would have multiplied them by now
    got_l = [m.payload for m in lc.sync() if m.topic.startswith("loop/")]
    got_r = [m.payload for m in rc.sync() if m.topic.startswith("loop/")]
    while not lc.messages.empty():
        got_l.append(lc.messages.get().payload)
    while not rc.messages.empty():
        got_r.append(rc.messages.get().payload)
    assert sorted(got_l) == [b"from-local", b"from-remote"], got_l
    assert sorted(got_r) == [b"from-local", b"from-remote"], got_r


# ---- tombo chains, restarts -------------------------------------------------------------------

def test_three_tombos_in_a_chain_forward_end_to_end(make_broker):
    """a -> b -> c: a message published on the first reaches the last, and back."""
    c = make_broker()
    b = make_broker("allow_anonymous true\n" + bridge_conf("bc", c, ["chain/# both 2"]))
    a = make_broker("allow_anonymous true\n" + bridge_conf("ab", b, ["chain/# both 2"]))
    ac, cc = client(a), client(c)
    flows(ac, "chain/probe", cc, "chain/probe")
    flows(cc, "chain/probe2", ac, "chain/probe2")
    cc.subscribe("chain/fwd", 2)
    ac.subscribe("chain/back", 2)
    for i in range(5):
        ac.publish("chain/fwd", b"f%d" % i, 2)
        cc.publish("chain/back", b"b%d" % i, 1)
    assert [m.payload for m in cc.get_n(5)] == [b"f%d" % i for i in range(5)]
    assert payloads(ac.get_n(5)) == [b"b%d" % i for i in range(5)]
    cc.sync()
    ac.sync()
    cc.expect_none()
    ac.expect_none()


def test_remote_killed_and_restarted_gets_qos12_published_meanwhile_once(make_broker):
    """The remote (tombo, persistence true) is killed with SIGKILL; QoS 1 and 2 messages published
    on the bridging broker meanwhile wait in the bridge's session and arrive when the remote is
    back; none of the QoS 2 ones twice."""
    remote = make_broker("allow_anonymous true\npersistence true\n")
    local = make_broker("allow_anonymous true\npersistence true\n" +
                        bridge_conf("k9", remote, ["q/# out 2"], "cleansession false\n"))
    lc = client(local)
    sub_id = unique_id("persub")
    rs = client(remote, client_id=sub_id, clean=False)
    rs.subscribe("q/#", 2)
    flows(lc, "q/probe", rs, "q/probe")
    rs.subscribe("q/#", 2)
    lc.publish("q/before", b"before", 2)
    assert rs.get().payload == b"before"
    rs.drop()
    remote.stop(signal.SIGKILL)
    remote.expect_exit = True
    for i in range(10):
        lc.publish("q/one", b"one-%d" % i, 1)
        lc.publish("q/two", b"two-%d" % i, 2)
    time.sleep(0.5)
    remote.start()
    rs = client(remote, client_id=sub_id, clean=False)
    got = rs.get_n(20, timeout=20)
    time.sleep(1.0)
    while not rs.messages.empty():
        got.append(rs.messages.get())
    two = [m.payload for m in got if m.topic == "q/two"]
    one = [m.payload for m in got if m.topic == "q/one"]
    assert sorted(two) == sorted(b"two-%d" % i for i in range(10)), "QoS 2 lost or duplicated: %r" % two
    assert set(one) == set(b"one-%d" % i for i in range(10))


def test_bridge_queue_survives_a_kill_of_the_bridging_broker_with_persistence(make_broker):
    """With persistence true, QoS 1/2 messages queued for a remote that is down are kept across a
    SIGKILL of the bridging broker and sent, in order for each QoS, once the remote is up (paho
    hands a QoS 2 message to the application at PUBREL, so the two QoS are compared apart)."""
    remote = make_broker("allow_anonymous true\npersistence true\n")
    sub_id = unique_id("persub")
    rc = client(remote, client_id=sub_id, clean=False)
    rc.subscribe("p/#", 2)
    rc.close()
    remote.stop()
    local = make_broker("allow_anonymous true\npersistence true\n" + bridge_conf("pq", remote, ["p/# out 2"]))
    lc = client(local)
    for i in range(5):
        lc.publish("p/m", b"m%d" % i, 2 if i % 2 else 1)
    lc.close()
    local.stop(signal.SIGKILL)
    local.start()
    remote.start()
    rc = client(remote, client_id=sub_id, clean=False)
    got = rc.get_n(5, timeout=20)
    assert [m.payload for m in got if m.qos == 1] == [b"m0", b"m2", b"m4"]
    assert [m.payload for m in got if m.qos == 2] == [b"m1", b"m3"]
    rc.sync()
    rc.expect_none()


# ---- connecting: failover, lazy start, credentials, notifications ------------------------------

def test_failover_to_the_next_address_when_the_first_is_down(make_broker):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "fo", [("127.0.0.1", dead), ("127.0.0.1", remote.port)], ["f/# out 1"]))
    lc, rc = client(local), client(remote)
    flows(lc, "f/probe", rc, "f/probe")
    assert re.search(r"Bridge fo connected to 127\.0\.0\.1:%d" % remote.port, local.log())


def test_round_robin_false_returns_to_the_first_address(make_broker):
    """After the connection to a secondary address ends, the next attempt is the first address
    again (round_robin false, the default)."""
    first = make_broker()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    second_port = s.getsockname()[1]
    s.close()
    second = make_broker(port=second_port)
    fport = first.port
    first.stop()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "rr", [("127.0.0.1", fport), ("127.0.0.1", second_port)], ["r/# out 1"]))
    wait_log(local, r"Bridge rr connected to 127\.0\.0\.1:%d" % second_port)
    first.start()
    second.stop()
    second.expect_exit = True
    wait_log(local, r"Bridge rr connected to 127\.0\.0\.1:%d" % fport)


def test_lazy_start_connects_at_threshold_and_stops_when_idle(make_broker):
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "lz", remote, ["z/# out 1"], "start_type lazy\nthreshold 3\nidle_timeout 2\n"))
    rc = client(remote)
    rc.subscribe("z/#", 1)
    lc = client(local)
    lc.subscribe("$SYS/broker/connection/lz/state", 1)
    assert lc.get().payload == b"0"
    lc.publish("z/1", b"1", 1)
    lc.publish("z/2", b"2", 1)
    time.sleep(1.5)
    assert "Bridge lz connected" not in local.log()
    rc.sync()
    rc.expect_none()
    lc.publish("z/3", b"3", 1)
    assert [m.payload for m in rc.get_n(3, timeout=10)] == [b"1", b"2", b"3"]
    assert lc.get(timeout=5).payload == b"1"
    assert lc.get(timeout=10).payload == b"0"  # idle_timeout: stopped
    wait_log(local, r"Bridge lz: idle for 2 s")


def test_bad_remote_credentials_are_logged_and_retried_with_backoff(make_broker, tmp_path):
    pwfile = tmp_path / "pw"
    subprocess_run = __import__("subprocess").run
    subprocess_run(["mosquitto_passwd", "-b", "-c", str(pwfile), "bridge", "right"], check=True)
    remote = make_broker("allow_anonymous false\npassword_file %s\n" % pwfile)
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "cr", remote, ["c/# out 1"], "remote_username bridge\nremote_password wrong\nrestart_timeout 1 4\n"))
    refusals = wait_log(local, r"Error: bridge cr: connection refused by 127\.0\.0\.1:%d: [^\n]*" % remote.port,
                        timeout=20, count=3)
    assert "bad user name or password" in refusals[0] or "not authorised" in refusals[0]
    waits = [int(w) for w in re.findall(r"Bridge cr: next attempt in (\d+) s", local.log())]
    assert len(waits) >= 3 and all(1 <= w <= 4 for w in waits), waits
    assert "Bridge cr connected" not in local.log()


def test_notifications_local_and_remote_state_with_will(make_broker):
    """$SYS/broker/connection/REMOTE_CLIENTID/state is 1 while the bridge is up, on both brokers,
    retained; when the bridging broker dies the remote publishes the bridge's will, 0."""
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf("nt", remote, ["n/# out 1"]))
    rc = client(remote)
    rc.subscribe("$SYS/broker/connection/nt/state", 1)
    deadline = time.time() + 10
    while True:
        m = rc.get(timeout=10)
        if m.payload == b"1":
            break
        assert time.time() < deadline
    lc = client(local)
    lc.subscribe("$SYS/broker/connection/nt/state", 1)
    m = lc.get()
    assert (m.payload, m.retain) == (b"1", True)
    local.stop(signal.SIGKILL)
    local.expect_exit = True
    m = rc.get(timeout=10)
    assert m.payload == b"0"


def test_notification_topic_and_local_only(make_broker):
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "nl", remote, ["n/# out 1"], "notification_topic bridges/nl\nnotifications_local_only true\n"))
    lc, rc = client(local), client(remote)
    rc.subscribe("bridges/#", 1)
    flows(lc, "n/probe", rc, "n/probe")
    lc.subscribe("bridges/nl", 1)
    assert lc.get().payload == b"1"
    rc.sync()
    rc.expect_none()


# ---- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("lines,message", [
    ("topic a/# out 1\n", "needs a 'connection NAME' line before it"),
    ("connection x\ntopic a/# out\n", "this bridge has no 'address' line"),
    ("connection x\naddress 127.0.0.1\n", "this bridge has no 'topic' line"),
    ("connection x\naddress 127.0.0.1\ntopic a/# sideways\n", "direction must be in, out or both"),
    ("connection x\naddress 127.0.0.1\ntopic a/# out 3\n", "QoS must be 0, 1 or 2"),
    ("connection x\naddress 127.0.0.1\ntopic a/# out 1 l/+/\n", "needs a remote prefix"),
    ("connection x\naddress 127.0.0.1\ntopic a/# out 1 l/+/ r/\n", "cannot contain the wildcards"),
    ("connection x\naddress 127.0.0.1\ntopic a/#/b\n", "not a valid topic filter"),
    ("connection x\naddress 127.0.0.1:0\ntopic a\n", "port must be a number"),
    ("connection x\naddress h\ntopic a\nbridge_protocol_version mqttv4\n", "mqttv31, mqttv311 or mqttv50"),
    ("connection x\naddress h\ntopic a\nstart_type sometimes\n", "automatic, lazy or once"),
    ("connection x\naddress h\ntopic a\nrestart_timeout 10 5\n", "cap must be"),
    ("connection x\naddress h\ntopic a\nconnection x\n", "duplicate bridge name"),
    ("connection x\naddress h\ntopic a\nbridge_require_ocsp true\n", "this bridge does not use TLS"),
    ("connection x\naddress h\ntopic a\nbridge_identity i\nbridge_psk 00\nbridge_require_ocsp true\n",
     "bridge_require_ocsp checks the remote's certificate"),
    ("connection x\naddress h\ntopic a\nbridge_certfile c.pem\n", "bridge_certfile and bridge_keyfile go together"),
    ("connection x\naddress h\ntopic a\nbridge_insecure true\n", "this bridge does not use TLS"),
    ("connection x\naddress h\ntopic a\nbridge_psk 00\n", "bridge_identity and bridge_psk go together"),
    ("connection x\naddress h\ntopic a\nbridge_cafile c\nbridge_tls_version tlsv1.1\n", "tlsv1.2 or tlsv1.3"),
    ("connection x\naddress h\ntopic a\nlocal_password p\n", "local_password needs local_username"),
])
def test_bad_bridge_configuration_stops_start_up_with_file_and_line(tmp_path, lines, message):
    from conftest import broker_cmd
    import subprocess
    conf = tmp_path / "b.conf"
    conf.write_text("listener 1 127.0.0.1\nallow_anonymous true\n" + lines)
    r = subprocess.run(broker_cmd(str(conf)), capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert message in out, out
    assert re.search(re.escape(str(conf)) + r":\d+:", out), out


# ---- the other directives, each shown doing what mosquitto.conf(5) says ------------------------

def test_addresses_and_round_robin_true_go_on_to_the_next_address(make_broker):
    """round_robin true: after the connection to the first address ends, the next attempt is the
    second address, not the first again (`addresses` is `address`'s other name)."""
    first, second = make_broker(), make_broker()
    local = make_broker("allow_anonymous true\nconnection rr\naddresses 127.0.0.1:%d 127.0.0.1:%d\n"
                        "round_robin true\nrestart_timeout 1\ntopic r/# out 1\n" % (first.port, second.port))
    wait_log(local, r"Bridge rr connected to 127\.0\.0\.1:%d" % first.port)
    first.stop()
    first.expect_exit = True
    wait_log(local, r"Bridge rr connected to 127\.0\.0\.1:%d" % second.port)
    after = local.log().split("Bridge rr: disconnected", 1)[1]
    assert re.findall(r"Connecting bridge rr \(([^)]*)\)", after)[0] == "127.0.0.1:%d" % second.port


def test_client_ids_keepalive_and_cleansession_reach_the_remote(make_broker):
    """remote_clientid (old name clientid), keepalive_interval and cleansession are what the
    CONNECT says; local_clientid names the bridge's local session."""
    remote = make_broker()
    local = make_broker("allow_anonymous true\nconnection ids\naddress 127.0.0.1:%d\nclientid far-end\n"
                        "local_clientid near-end\nkeepalive_interval 7\ncleansession true\n"
                        "restart_timeout 1\ntopic i/# out 1\n" % remote.port)
    wait_log(remote, r"New client connected from 127\.0\.0\.1:\d+ as far-end \(p2, c1, k7\)")
    remote.stop()
    remote.expect_exit = True
    wait_log(local, r"Client near-end \[127\.0\.0\.1:%d\] disconnected" % remote.port)


def test_username_and_password_old_names_log_in(make_broker, tmp_path):
    pwfile = tmp_path / "pw"
    __import__("subprocess").run(["mosquitto_passwd", "-b", "-c", str(pwfile), "bridge", "right"], check=True)
    remote = make_broker("allow_anonymous false\npassword_file %s\n" % pwfile)
    local = make_broker("allow_anonymous true\n" + bridge_conf("up", remote, ["u/# out 1"],
                                                               "username bridge\npassword right\n"))
    wait_log(local, r"Bridge up connected")


def test_try_private_false_lets_the_remote_echo_back_once(make_broker):
    """Without try_private a 3.1.1 remote does not know the bridge is one, so it sends a `both`
    message back: it arrives twice locally (the bridge's own no-local subscription still stops it
    from going out again, so it is twice, not a loop)."""
    remote = make_broker(mosquitto=True)
    local = make_broker("allow_anonymous true\n" + bridge_conf("tp", remote, ["e/# both 1"],
                                                               "try_private false\nnotifications false\n"))
    lc, rc = client(local), client(remote)
    flows(lc, "e/probe", rc, "e/probe")
    lc.subscribe("e/x", 1)
    lc.publish("e/x", b"once", 1)
    got = [lc.get().payload, lc.get(timeout=5).payload]
    time.sleep(1)
    lc.sync()
    lc.expect_none()
    assert got == [b"once", b"once"]


def test_bridge_attempt_unsubscribe_unsubscribes_out_topics_on_the_remote(make_broker):
    remote = make_broker("allow_anonymous true\nlog_type all\n")
    make_broker("allow_anonymous true\n" + bridge_conf("au", remote, ["out/# out 1", "in/# in 1"]))
    wait_log(remote, r"\d+: au 1 in/#")  # log_type subscribe: CLIENT QOS FILTER
    wait_log(remote, r"\d+: au out/#")   # log_type unsubscribe: CLIENT FILTER
    other = make_broker("allow_anonymous true\n" + bridge_conf("nu", remote, ["out2/# out 1"],
                                                               "bridge_attempt_unsubscribe false\n"))
    wait_log(other, r"Bridge nu connected")
    time.sleep(0.5)
    assert not re.search(r"\d+: nu out2/#", remote.log())


def test_bridge_max_packet_size_keeps_larger_messages_away(make_broker):
    """MQTT 5: the CONNECT's Maximum Packet Size; the remote drops what would be larger."""
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "mp", remote, ["m/# in 1"], "bridge_protocol_version mqttv50\nbridge_max_packet_size 200\n"))
    lc, rc = client(local), client(remote)
    flows(rc, "m/probe", lc, "m/probe")
    lc.subscribe("m/#", 1)
    rc.publish("m/big", b"x" * 400, 1)
    rc.publish("m/small", b"y" * 20, 1)
    assert lc.get().payload == b"y" * 20
    lc.sync()
    lc.expect_none()


def test_bridge_bind_address_is_the_source_address(make_broker):
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf("ba", remote, ["b/# out 1"],
                                                               "bridge_bind_address 127.0.0.2\n"))
    wait_log(local, r"Bridge ba connected")
    wait_log(remote, r"New client connected from 127\.0\.0\.2:")


def test_local_cleansession_true_forgets_the_queue_at_restart(make_broker):
    """local_cleansession true: the bridge's local session starts empty at each start, so what
    was queued for a remote that was down is not sent after a restart (false keeps it: see
    test_bridge_queue_survives_a_kill_of_the_bridging_broker_with_persistence)."""
    remote = make_broker("allow_anonymous true\npersistence true\n")
    sub_id = unique_id("persub")
    rc = client(remote, client_id=sub_id, clean=False)
    rc.subscribe("lc/#", 1)
    rc.close()
    remote.stop()
    local = make_broker("allow_anonymous true\npersistence true\n" +
                        bridge_conf("lcs", remote, ["lc/# out 1"], "local_cleansession true\n"))
    lc = client(local)
    lc.publish("lc/m", b"queued", 1)
    lc.close()
    local.stop()
    local.start()
    remote.start()
    wait_log(local, r"Bridge lcs connected")
    rc = client(remote, client_id=sub_id, clean=False)
    lc = client(local)
    lc.publish("lc/m", b"after", 1)
    assert rc.get().payload == b"after"
    rc.sync()
    rc.expect_none()


# ---- bridges over TLS ------------------------------------------------------------------------

from test_tls import PSK_KEY, paho_tls, pki  # noqa: E402,F401  (the module's certificates: a CA, server and client)


def readable(pki):
    """The certificates in a directory Mosquitto can read (started as root, it drops to the
    mosquitto user; pytest's temporary directories are private)."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="tombo-bridge-pki-")
    os.chmod(d, 0o755)
    for name in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(pki(name), os.path.join(d, name))
        os.chmod(os.path.join(d, name), 0o644)
    return lambda name: os.path.join(d, name) if name in ("ca.crt", "server.crt", "server.key") else pki(name)


@pytest.mark.parametrize("remote_kind", ["mosquitto", "tombo"])
def test_tls_bridge_verifies_the_remote_and_forwards(make_broker, pki, remote_kind):
    """bridge_cafile: TLS to the remote, its certificate checked against the CA and the address;
    messages cross both ways."""
    pki = readable(pki)
    remote = make_broker("allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key")),
                         mosquitto=remote_kind == "mosquitto")
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "tl", remote, ["s/# both 2"], "bridge_cafile %s\nbridge_tls_version tlsv1.2\n" % pki("ca.crt")))
    lc = client(local)
    rc = paho_tls(remote, ca=pki("ca.crt"))
    rc.connect()
    flows(lc, "s/probe", rc, "s/probe")
    flows(rc, "s/probe2", lc, "s/probe2")
    lc.subscribe("s/down", 2)
    rc.subscribe("s/up", 2)
    lc.publish("s/up", b"up", 2)
    rc.publish("s/down", b"down", 1)
    assert rc.get().payload == b"up"
    assert lc.get().payload == b"down"


def test_tls_bridge_mutual_tls_and_capath(make_broker, pki):
    pki = readable(pki)
    remote = make_broker("allow_anonymous true\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n"
                         % (pki("server.crt"), pki("server.key"), pki("ca.crt")), mosquitto=True)
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "mt", remote, ["m/# out 1"], "bridge_capath %s\nbridge_certfile %s\nbridge_keyfile %s\n"
        % (pki("capath"), pki("alice.crt"), pki("alice.key"))))
    wait_log(local, r"Bridge mt connected")


def test_tls_bridge_refuses_a_remote_of_an_unknown_ca_and_insecure_skips_the_name(make_broker, pki):
    remote = make_broker("listener PORT\nallow_anonymous true\ncertfile %s\nkeyfile %s\n"
                         % (pki("server.crt"), pki("server.key")), raw_conf=True)
    bad = make_broker("allow_anonymous true\n" + bridge_conf("uk", remote, ["u/# out 1"],
                                                             "bridge_cafile %s\n" % pki("other.crt")))
    wait_log(bad, r"Error: bridge uk: TLS handshake with 127\.0\.0\.1:%d failed" % remote.port)
    assert "Bridge uk connected" not in bad.log()
    # The certificate names localhost and 127.0.0.1; reached as 127.0.0.2 it only passes insecure.
    wrong = make_broker("allow_anonymous true\nconnection wn\naddress 127.0.0.2:%d\nrestart_timeout 1\n"
                        "topic w/# out 1\nbridge_cafile %s\n" % (remote.port, pki("ca.crt")))
    wait_log(wrong, r"Error: bridge wn: TLS handshake")
    ok = make_broker("allow_anonymous true\nconnection wi\naddress 127.0.0.2:%d\nrestart_timeout 1\n"
                     "topic w/# out 1\nbridge_cafile %s\nbridge_insecure true\n" % (remote.port, pki("ca.crt")))
    wait_log(ok, r"Bridge wi connected")


def test_tls_bridge_psk(make_broker, pki):
    remote = make_broker("allow_anonymous true\npsk_hint tombo\npsk_file %s\n" % pki("psk.txt"))
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "pk", remote, ["p/# out 1"], "bridge_identity bob\nbridge_psk %s\n" % PSK_KEY))
    wait_log(local, r"Bridge pk connected")
    wrong = make_broker("allow_anonymous true\n" + bridge_conf(
        "pw", remote, ["p/# out 1"], "bridge_identity bob\nbridge_psk %s\n" % ("ff" * 16)))
    wait_log(wrong, r"Error: bridge pw: TLS handshake")


def test_tls_bridge_alpn_is_offered(make_broker, pki):
    remote = make_broker("allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key")))
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "al", remote, ["a/# out 1"], "bridge_cafile %s\nbridge_alpn mqtt\n" % pki("ca.crt")))
    wait_log(local, r"Bridge al connected")


def test_tls_bridge_file_errors_stop_start_up(tmp_path, pki):
    from conftest import broker_cmd
    import subprocess
    conf = tmp_path / "b.conf"
    conf.write_text("listener 1 127.0.0.1\nallow_anonymous true\nconnection bad\naddress 127.0.0.1\n"
                    "topic a\nbridge_cafile /nonexistent/ca.crt\n")
    r = subprocess.run(broker_cmd(str(conf)), capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert re.search(re.escape(str(conf)) + r":3: bridge bad: .*nonexistent", r.stdout + r.stderr), r.stdout + r.stderr


def test_a_host_name_is_resolved_off_the_worker(make_broker):
    """`address localhost:PORT`: a name (not a numeric address) is resolved on the bridge's
    resolver thread, and the bridge connects in its first attempt. (Were the name to give several
    addresses, ::1 then 127.0.0.1, a refused one is followed by the next within the attempt; this
    machine's localhost has one.)"""
    remote = make_broker()
    local = make_broker("allow_anonymous true\nconnection ln\naddress localhost:%d\nrestart_timeout 30\n"
                        "topic l/# out 1\n" % remote.port)
    wait_log(local, r"Bridge ln connected to localhost:%d" % remote.port)
    assert "next attempt" not in local.log()


def test_start_type_once_does_not_reconnect(make_broker):
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf("on", remote, ["o/# out 1"], "start_type once\n"))
    wait_log(local, r"Bridge on connected")
    remote.stop()
    remote.start()
    wait_log(local, r"Bridge on stopped \(start_type once\)")
    time.sleep(2.5)  # restart_timeout is 1 s: an automatic bridge would be back by now
    assert len(re.findall(r"Bridge on connected", local.log())) == 1


@pytest.mark.parametrize("local_kind", ["tombo", "mosquitto"])
def test_local_username_names_the_local_side_which_the_acl_does_not_restrict(make_broker, tmp_path, local_kind):
    """mosquitto.conf(5) local_username: the user name of the bridge's local side. Mosquitto 2.0
    (checked here against Debian's 2.0.11) does not apply the local ACL to a bridge: with a
    `user NAME` section allowing only allowed/#, the bridge still forwards denied/# both ways.
    tombo does the same and shows the name on the bridge's local client (HTTP API)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tombo-bridge-acl-")  # Mosquitto drops to its user: not tmp_path
    os.chmod(d, 0o755)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("topic readwrite #\nuser bob\ntopic readwrite allowed/#\n")
    os.chmod(acl, 0o644)
    remote = make_broker(mosquitto=True)
    port = free_port()
    conf = "allow_anonymous true\nacl_file %s\n" % acl
    if local_kind == "tombo":
        conf += "http_listener %d 127.0.0.1\n" % port
    local = make_broker(conf + bridge_conf("bl", remote, ["denied/# both 1"], "local_username bob\n"),
                        mosquitto=local_kind == "mosquitto")
    lc, rc = client(local), client(remote)
    flows(lc, "denied/out", rc, "denied/out")
    flows(rc, "denied/in", lc, "denied/in")
    if local_kind == "tombo":
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/v1/clients/local.bl")
        r = c.getresponse()
        body = json.loads(r.read().decode("utf-8"))
        c.close()
        assert r.status == 200 and body["username"] == "bob", body


def passwd_dir(users):
    """A password file (mosquitto_passwd) in a directory Mosquitto can read (it drops to its user)."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="tombo-bridge-pw-")
    os.chmod(d, 0o755)
    pw = os.path.join(d, "pw")
    for i, (user, password) in enumerate(users):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [pw, user, password], check=True)
    os.chmod(pw, 0o644)
    return pw


@pytest.mark.parametrize("local_kind", ["tombo", "mosquitto"])
def test_local_password_of_the_password_file_starts_the_bridge(make_broker, local_kind):
    """local_username/local_password that the broker's password_file accepts: the bridge runs (on
    Mosquitto 2.0.11 as well, which accepts local_password and never checks it)."""
    pw = passwd_dir([("bridgeuser", "right")])
    remote = make_broker()
    local = make_broker("allow_anonymous true\npassword_file %s\n" % pw + bridge_conf(
        "lp", remote, ["lp/# both 1"], "local_username bridgeuser\nlocal_password right\n"),
        mosquitto=local_kind == "mosquitto")
    lc, rc = client(local), client(remote)
    flows(lc, "lp/out", rc, "lp/out")
    flows(rc, "lp/in", lc, "lp/in")
    if local_kind == "tombo":
        assert "local_password is not used" not in local.log()


def test_local_password_the_password_file_refuses_stops_start_up_with_file_and_line(make_broker):
    """tombo, unlike Mosquitto: a local_password that the password_file refuses (a wrong password,
    an unknown user) stops start-up at the bridge's `connection` line, so a configured password is
    never silently meaningless. Debian's Mosquitto starts with the same config and runs the bridge."""
    from conftest import Broker
    pw = passwd_dir([("bridgeuser", "right")])
    remote = make_broker()
    for user, password in (("bridgeuser", "wrong"), ("nobody", "right")):
        conf = "allow_anonymous true\npassword_file %s\n" % pw + bridge_conf(
            "lw", remote, ["lw/# out 1"], "local_username %s\nlocal_password %s\n" % (user, password))
        b = Broker(conf)
        rc, log = b.run_until_exit(timeout=30)
        assert rc not in (0, None), log
        assert re.search(re.escape(b.conf_path) + r":4: bridge lw: local_username %s with local_password is "
                         r"refused by the password_file" % user, log), log
    mosq = make_broker(conf, mosquitto=True)
    lc, rc = client(mosq), client(remote)
    flows(lc, "lw/out", rc, "lw/out")


def test_local_password_without_password_file_warns_that_it_is_not_used(make_broker):
    """With no password_file (nor auth plugin) nothing could check local_password: the bridge runs,
    as on Mosquitto (which ignores it), and tombo says once that it is not used."""
    remote = make_broker()
    local = make_broker("allow_anonymous true\n" + bridge_conf(
        "ln", remote, ["ln/# out 1"], "local_username u\nlocal_password p\n"))
    lc, rc = client(local), client(remote)
    flows(lc, "ln/out", rc, "ln/out")
    assert len(re.findall(r"Warning: [^\n]*:\d+: bridge ln: local_password is not used", local.log())) == 1


def test_a_reload_that_refuses_local_password_stops_the_bridge_until_one_accepts_it(make_broker):
    """SIGHUP reads the password file again and checks the bridge's local_password with it: a file
    that no longer accepts it stops the bridge (disconnected, not restarted), one that accepts it
    again starts it."""
    import shutil
    pw = passwd_dir([("bridgeuser", "right")])
    good = pw + ".good"
    shutil.copy(pw, good)
    other = passwd_dir([("bridgeuser", "changed")])
    remote = make_broker()
    local = make_broker("allow_anonymous true\npassword_file %s\n" % pw + bridge_conf(
        "lr", remote, ["lr/# out 1"], "local_username bridgeuser\nlocal_password right\n"))
    lc, rc = client(local), client(remote)
    flows(lc, "lr/out", rc, "lr/out")
    shutil.copy(other, pw)
    local.proc.send_signal(signal.SIGHUP)
    wait_log(local, r"Error: [^\n]*:\d+: bridge lr: local_username bridgeuser with local_password is refused by "
                    r"the reloaded password_file")
    wait_log(local, r"Bridge lr: disconnected from")
    time.sleep(2.5)  # restart_timeout is 1 s: a running bridge would be back by now
    assert len(re.findall(r"Bridge lr connected", local.log())) == 1
    shutil.copy(good, pw)
    local.proc.send_signal(signal.SIGHUP)
    wait_log(local, r"Bridge lr: local_username bridgeuser is accepted again")
    wait_log(local, r"Bridge lr connected", count=2)
    flows(lc, "lr/out", rc, "lr/out")
