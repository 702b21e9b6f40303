"""A tombo cluster on NATS JetStream (issue 11, docs/cluster.md): three nats-server processes with
JetStream forming one NATS cluster, three tombo nodes A, B and C on it, clients on different nodes.

Every server is started by the test on free 127.0.0.1 ports and stopped by its PID; waits are
bounded. `cluster_durability jetstream` (QoS 1/2 between nodes through a JetStream stream) and T8
(a NATS cluster that lost its quorum refuses durable publishes) have tests of their own, and T5
(sessions that move with the old node up) too, at the end, as T7 (a NATS server killed) on a NATS
cluster of its own; T6 (kill -9 of a node holding sessions, `cluster_sessions jetstream`) last."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import free_port, is_reference
from clients import DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, V5, PahoClient, Raw, unique_id

NATS = os.environ.get("TOMBO_NATS", "/usr/sbin/nats-server")
pytestmark = [
    pytest.mark.skipif(not os.access(NATS, os.X_OK), reason="nats-server not installed (scripts/deps.sh test)"),
    pytest.mark.skipif(is_reference(), reason="a tombo feature"),
]


class NatsServer:
    def __init__(self, name, cluster_port, routes, extra=()):
        self.name = name
        self.port, self.mon = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="tombo-nats-")
        self.url = "nats://127.0.0.1:%d" % self.port
        cmd = [NATS, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.mon), "-n", name,
               "-js", "-sd", os.path.join(self.dir, "js")] + list(extra)
        if cluster_port:
            cmd += ["--cluster_name", "tombo-test", "--cluster", "nats://127.0.0.1:%d" % cluster_port,
                    "--routes", ",".join("nats://127.0.0.1:%d" % p for p in routes)]
        self.log = open(os.path.join(self.dir, "nats.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.mon, timeout=1) as r:
                return r.status == 200 and json.loads(r.read()).get("status") == "ok"
        except Exception:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(servers, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(s.ready() for s in servers):
            return
        time.sleep(0.2)
    raise AssertionError("NATS cluster not ready")


@pytest.fixture(scope="module")
def nats_cluster():
    cports = [free_port() for _ in range(3)]
    servers = [NatsServer("n%d" % i, cports[i], [p for k, p in enumerate(cports) if k != i]) for i in range(3)]
    try:
        wait_ready(servers)
        yield servers
    finally:
        for s in servers:
            s.stop()


def node_conf(name, servers, extra=""):
    urls = "".join("cluster_nats_url %s\n" % s.url for s in servers)
    return "allow_anonymous true\nsys_interval 1\ncluster_node %s\n%s" % (name, urls) + "cluster_kv_replicas 3\n" + extra


def start_nodes(make_broker, servers, prefix, names="ABC", extra="", store=None):
    """Nodes named NAME_PREFIX...-unique, node i told the NATS servers starting with the i-th; with
    `store` (a directory), persistence in store/NAME."""
    tag = unique_id(prefix).replace("-", "_")
    out = []
    for i, n in enumerate(names):
        conf = extra
        if store is not None:
            d = store / n
            d.mkdir()
            conf += "persistence true\npersistence_location %s/\n" % d
        out.append(make_broker(node_conf("%s_%s" % (n, tag), servers[i:] + servers[:i], conf)))
    return out


@pytest.fixture
def nodes(nats_cluster, make_broker):
    """Three tombo nodes, each told all three NATS servers (in a different order)."""
    return start_nodes(make_broker, nats_cluster, "n")


def connect(broker, **kw):
    c = PahoClient(broker, **kw)
    c.connect()
    return c


def routes_ready(pub, subs, topic, timeout=20):
    """Publish `topic` on pub's node until every subscriber got one (routes travel through the
    bucket: a SUBSCRIBE on one node is seen by the others shortly after), then drain them."""
    deadline = time.time() + timeout
    got = [False] * len(subs)
    while time.time() < deadline and not all(got):
        pub.publish(topic, b"probe", qos=0)
        t_end = time.time() + 0.3
        while time.time() < t_end:
            for i, s in enumerate(subs):
                if not s.messages.empty():
                    got[i] = True
            time.sleep(0.02)
    assert all(got), "routes not seen by the publisher's node within %ss" % timeout
    time.sleep(0.3)
    for s in subs:
        while not s.messages.empty():
            s.messages.get_nowait()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_on_a_reaches_wildcard_subscribers_on_b_and_c(nodes, qos):
    """T1-T3: QoS 0/1/2 published on node A reach subscribers on B (`+`) and C (`#`), each message
    once, in order, at the subscription's QoS."""
    a, b, c = nodes
    sb = connect(b)
    sb.subscribe("cl/+/x", qos=qos)
    sc = connect(c, protocol=V5)
    sc.subscribe("cl/#", qos=qos)
    pub = connect(a)
    routes_ready(pub, [sb, sc], "cl/probe/x")
    n = 30
    for i in range(n):
        pub.publish("cl/%d/x" % i, b"m%d" % i, qos=qos)
    for s in (sb, sc):
        msgs = s.get_n(n)
        assert [m.payload for m in msgs] == [b"m%d" % i for i in range(n)]
        assert {m.qos for m in msgs} == {qos}
        s.expect_none(0.5)
    for x in (sb, sc, pub):
        x.close()


def test_v5_puback_counts_subscribers_on_other_nodes(nodes):
    """A QoS 1 PUBLISH whose only subscriber is on another node is acknowledged with success
    (0x00), not 'no matching subscribers' (0x10) [MQTT-3.4.2.1]."""
    a, b, _ = nodes
    sb = connect(b)
    sb.subscribe("ack/#", qos=1)
    pub = connect(a, protocol=V5)
    routes_ready(pub, [sb], "ack/probe")
    acks = []
    pub.c.on_publish = lambda c, ud, mid, *rest: acks.append(mid)
    info = pub.c.publish("ack/1", b"x", qos=1)
    info.wait_for_publish(5)
    assert sb.get().payload == b"x"
    sb.close()
    pub.close()


def drain(clients, quiet=0.5):
    """Empty the clients' queues, until none got anything for `quiet` seconds."""
    while True:
        time.sleep(quiet)
        got = False
        for x in clients:
            while not x.messages.empty():
                x.messages.get_nowait()
                got = True
        if not got:
            return


def shared_routes_ready(nodes, members, topic, timeout=20):
    """Publish on each node until the group's members on every node got a message published on that
    node (the group's routes travel through the bucket), then drain them."""
    pubs = [connect(n) for n in nodes]
    deadline = time.time() + timeout
    seen = set()  # (publishing node, member)
    want = {(i, k) for i in range(len(nodes)) for k in range(len(members))}
    while time.time() < deadline and not want <= seen:
        for i, p in enumerate(pubs):
            p.publish(topic, b"probe%d" % i, qos=0)
        t_end = time.time() + 0.2
        while time.time() < t_end:
            for k, m in enumerate(members):
                while not m.messages.empty():
                    seen.add((int(m.messages.get_nowait().payload[5:]), k))
            time.sleep(0.02)
    assert want <= seen, "shared routes not seen within %ss: %r" % (timeout, sorted(want - seen))
    for p in pubs:
        p.close()
    drain(members)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_shared_subscription_one_member_of_the_group_cluster_wide(nodes, qos):
    """Issue 11: $share/GROUP/FILTER with members on A, B and C: each message published on any node
    reaches exactly one member of the group in the whole cluster [MQTT-4.8.2-3 one session of the
    group per message], every node's members get some, and an ordinary subscriber gets them all."""
    a, b, c = nodes
    group = "$share/%s/sh/+" % unique_id("g")
    members = []
    for n in (a, a, b, c):  # two members on A: A's share goes to one of them at a time
        m = connect(n, protocol=V5)
        m.subscribe(group, qos=qos)
        members.append(m)
    plain = connect(c, protocol=V5)
    plain.subscribe("sh/#", qos=qos)
    shared_routes_ready(nodes, members, "sh/probe")
    drain([plain])
    n = 30
    pubs = [connect(x) for x in nodes]
    sent = []
    for i in range(n):
        for k, p in enumerate(pubs):
            payload = b"%s-%d" % (b"ABC"[k:k + 1], i)
            p.publish("sh/%d" % k, payload, qos=qos)
            sent.append(payload)
    got = []  # (member index, payload)
    deadline = time.time() + 30
    while len(got) < len(sent) and time.time() < deadline:
        for k, m in enumerate(members):
            while not m.messages.empty():
                got.append((k, m.messages.get_nowait().payload))
        time.sleep(0.02)
    drain_t = time.time() + 1.0  # any duplicate arrives by now
    while time.time() < drain_t:
        for k, m in enumerate(members):
            while not m.messages.empty():
                got.append((k, m.messages.get_nowait().payload))
        time.sleep(0.05)
    payloads = sorted(p for _, p in got)
    assert payloads == sorted(sent), "lost %r, duplicated %r" % (
        sorted(set(sent) - set(payloads)), sorted({p for p in payloads if payloads.count(p) > 1}))
    per_node = {"A": 0, "B": 0, "C": 0}
    for k, _ in got:
        per_node["AABC"[k]] += 1
    assert all(v > 0 for v in per_node.values()), per_node
    # Each publishing node spreads its messages over the three nodes.
    for src in b"ABC":
        dest = {"AABC"[k] for k, p in got if p[0] == src}
        assert dest == {"A", "B", "C"}, (chr(src), dest)
    every = [m.payload for m in plain.get_n(len(sent))]
    assert sorted(every) == sorted(sent)
    for k in range(3):  # in order per publisher
        mine = [p for p in every if p[0] == b"ABC"[k]]
        assert mine == [b"%s-%d" % (b"ABC"[k:k + 1], i) for i in range(n)]
    plain.expect_none(0.5)
    for x in members + pubs + [plain]:
        x.close()


def test_shared_group_leaving_a_node_goes_to_the_others(nodes):
    """When a node's last member of a group unsubscribes, the other nodes stop giving it that
    group's messages: the messages go to the members left, none lost once the route is gone."""
    a, b, c = nodes
    group = "$share/%s/sl/#" % unique_id("g")
    ma, mb = connect(a, protocol=V5), connect(b, protocol=V5)
    for m in (ma, mb):
        m.subscribe(group, qos=1)
    shared_routes_ready([a, b, c], [ma, mb], "sl/probe")
    ma.unsubscribe(group)
    pc = connect(c)
    # B alone: within the bounded wait every message published on C goes to B.
    deadline = time.time() + 20
    streak = 0
    i = 0
    while streak < 10 and time.time() < deadline:
        pc.publish("sl/x", b"%d" % i, qos=1)
        i += 1
        try:
            mb.messages.get(timeout=0.5)
            streak += 1
        except Exception:
            streak = 0
    assert streak == 10, "messages still given to A's gone member"
    ma.expect_none(0.5)
    for x in (ma, mb, pc):
        x.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_bench_pairs_across_nodes(nodes, qos):
    """tombo-bench --sub-port: publishers on A, subscribers on B (bench/cluster's "across" row); the
    bench's exact counts: nothing lost, duplicated or out of order. No timing assertion."""
    a, b, _ = nodes
    bench = os.path.join(os.environ.get("TOMBO_BUILD", ""), "src", "bench", "tombo-bench")
    if not os.access(bench, os.X_OK):
        pytest.skip("no tombo-bench in TOMBO_BUILD")
    r = subprocess.run([bench, "pairs", "-p", str(a.port), "--sub-port", str(b.port), "-c", "10", "-q", str(qos),
                        "-d", "2", "--warmup", "1", "--settle", "2", "--json", "--quiet"], capture_output=True, timeout=120)
    res = json.loads(r.stdout)
    assert res["errors"] == 0 and res["received"] > 0, res
    assert (res["lost"], res["duplicated"], res["out_of_order"]) == (0, 0, 0), res


def poll_retained(broker, topic, want, timeout=20):
    """Subscribe on broker until the retained message of topic is `want` (None: none)."""
    deadline = time.time() + timeout
    last = "nothing"
    while time.time() < deadline:
        s = connect(broker)
        s.subscribe(topic, qos=1)
        try:
            m = s.messages.get(timeout=0.5)
            last = (m.payload, m.retain)
        except Exception:
            last = None
        s.close()
        if (want is None and last is None) or (want is not None and last == (want, True)):
            return
        time.sleep(0.2)
    raise AssertionError("retained %s on port %d: %r, wanted %r" % (topic, broker.port, last, want))


def test_retained_set_on_a_read_on_c_cleared_on_b(nodes):
    """T4: a retained message set on A is read by a new subscriber on C; an empty retained
    PUBLISH on B clears it on every node."""
    a, b, c = nodes
    topic = "ret/" + unique_id()
    pa = connect(a)
    pa.publish(topic, b"v1", qos=1, retain=True)
    poll_retained(c, topic, b"v1")
    poll_retained(b, topic, b"v1")
    pb = connect(b)
    pb.publish(topic, b"", qos=1, retain=True)
    for n in (a, b, c):
        poll_retained(n, topic, None)
    pa.close()
    pb.close()


def kv_last_seq(servers, bucket):
    """The last sequence of a key-value bucket's stream, as the NATS servers' monitoring reports it
    (the highest any server has: a replica may lag)."""
    best = 0
    for s in servers:
        try:
            url = "http://127.0.0.1:%d/jsz?accounts=true&streams=true" % s.mon
            with urllib.request.urlopen(url, timeout=2) as r:
                doc = json.loads(r.read())
        except Exception:
            continue
        for acc in doc.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == "KV_" + bucket:
                    best = max(best, st.get("state", {}).get("last_seq", 0))
    return best


def test_client_id_taken_on_another_node_disconnects_the_first(nodes, nats_cluster):
    """T9: client ids are unique cluster-wide: the same id connecting on B makes A disconnect its
    client with 0x8E (session taken over) on MQTT 5, as a takeover on one node does.
    A writes the client id to the bucket after its CONNACK (docs/cluster.md: two connects of one
    id at the same moment, the later write wins), so the test waits for that write before B's
    CONNECT: on a loaded machine B's write could otherwise come first and B's client lose."""
    a, b, _ = nodes
    cid = unique_id("dup")
    before = kv_last_seq(nats_cluster, "tombo_clients")
    first = Raw(a, version=5)
    first.connect(cid)
    deadline = time.time() + 15
    while kv_last_seq(nats_cluster, "tombo_clients") <= before and time.time() < deadline:
        time.sleep(0.05)
    second = Raw(b, version=5)
    second.connect(cid)
    got = first.closed(timeout=15)
    assert [p.type for p in got] == [DISCONNECT], got
    assert got[0].reason == 0x8E
    assert second.subscribe(1, "dup/t") == [0]  # the new one is untouched
    second.disconnect(0)


def test_tutorial_exchange_paho_and_mosquitto_clients_on_different_nodes(nodes):
    """T10: the tutorial's exchange (subscriber on test/+, publisher to test/{i}) with paho-mqtt
    on B, mosquitto_sub on C and mosquitto_pub on A."""
    a, b, c = nodes
    paho = connect(b)
    paho.subscribe("test/+", qos=1)
    msub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(c.port), "-t", "test/+", "-q", "1",
                             "-v", "-C", "6", "-W", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        probe = connect(a)
        # mosquitto_sub's subscription must be known on A too: it gets the probes, counted below.
        deadline = time.time() + 10
        seen = False
        while time.time() < deadline and not seen:
            probe.publish("test/probe", b"probe", qos=0)
            try:
                paho.messages.get(timeout=0.3)
                seen = True
            except Exception:
                pass
        assert seen
        time.sleep(1.0)  # mosquitto_sub subscribed before paho: its route is older
        probe.close()
        while not paho.messages.empty():
            paho.messages.get_nowait()
        for i in range(5):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(a.port), "-t", "test/%d" % i, "-q", "1",
                            "-m", "Hello World %d" % i], check=True, timeout=10)
        got = [paho.get().payload for _ in range(5)]
        assert got == [b"Hello World %d" % i for i in range(5)]
        out, _ = msub.communicate(timeout=30)
        lines = [l for l in out.decode().splitlines() if not l.startswith("test/probe")]
        assert lines[-5:] == ["test/%d Hello World %d" % (i, i) for i in range(5)], out
    finally:
        if msub.poll() is None:
            msub.kill()
            msub.wait()
    paho.close()


def test_sys_cluster_topics(nodes):
    """$SYS/broker/cluster/...: the node's name, its link to NATS, the nodes it knows, and the
    PUBLISHes it forwarded."""
    a, b, _ = nodes
    sb = connect(b)
    sb.subscribe("sysf/#", qos=0)
    pub = connect(a)
    routes_ready(pub, [sb], "sysf/probe")
    pub.publish("sysf/1", b"x", qos=0)
    sb.get()
    sysc = connect(a)
    sysc.subscribe("$SYS/broker/cluster/#", qos=0)
    vals = {}

    def done():  # the first values are the retained ones of the start: the others come each second
        return (vals.get("$SYS/broker/cluster/nodes") == "3" and vals.get("$SYS/broker/cluster/link") == "up"
                and int(vals.get("$SYS/broker/cluster/forwarded/sent", "0")) >= 1)
    deadline = time.time() + 15
    while time.time() < deadline and not done():
        try:
            m = sysc.messages.get(timeout=0.5)
            vals[m.topic] = m.payload.decode()
        except Exception:
            pass
    assert vals["$SYS/broker/cluster/link"] == "up"
    assert vals["$SYS/broker/cluster/node"].startswith("A_")
    assert int(vals["$SYS/broker/cluster/nodes"]) == 3
    assert int(vals["$SYS/broker/cluster/forwarded/sent"]) >= 1
    for x in (sb, pub, sysc):
        x.close()


@pytest.fixture
def own_nats():
    """A NATS cluster of three for one test, which may kill its servers (the module's stays intact).
    Requested before make_broker, so the tombo nodes stop before it does."""
    cports = [free_port() for _ in range(3)]
    servers = [NatsServer("k%d" % i, cports[i], [p for k, p in enumerate(cports) if k != i]) for i in range(3)]
    try:
        wait_ready(servers)
        yield servers
    finally:
        for s in servers:
            s.stop()


def nats_server_of(servers, node_name):
    """The server (index) the tombo node named node_name is connected to, from NATS's /connz."""
    for i, s in enumerate(servers):
        if s.proc.poll() is not None:
            continue
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/connz" % s.mon, timeout=2) as r:
                conns = json.loads(r.read()).get("connections") or []
        except Exception:
            continue
        if any(c.get("name") == "tombo " + node_name for c in conns):
            return i
    return None


def deliver_until(pub, sub, topic, qos, timeout=30):
    """Publish on `topic` until `sub` gets one (bounded): the service is back."""
    deadline = time.time() + timeout
    i = 0
    while time.time() < deadline:
        payload = b"try%d" % i
        i += 1
        pub.publish(topic, payload, qos=qos, wait=False)
        t_end = time.time() + 0.5
        while time.time() < t_end:
            try:
                m = sub.messages.get(timeout=0.1)
            except Exception:
                continue
            if m.topic == topic:
                drain([sub], 0.3)
                return time.time()
    raise AssertionError("%s at QoS %d did not arrive within %ss" % (topic, qos, timeout))


def test_kill_one_nats_server_service_goes_on(own_nats, make_broker):
    """T7: kill -9 the NATS server node A is connected to. nats.c reconnects A to one of the two
    left; QoS 0 and 1 messages cross between nodes again, a new subscription's route and a retained
    message still replicate (the buckets, three replicas, keep their quorum with two servers)."""
    tag = unique_id("k").replace("-", "_")
    names = ["%s_%s" % (n, tag) for n in "ABC"]
    a, b, c = [make_broker(node_conf(names[i], own_nats[i:] + own_nats[:i])) for i in range(3)]
    sb = connect(b)
    sb.subscribe("kill/#", qos=1)
    pa = connect(a)
    routes_ready(pa, [sb], "kill/probe")
    victim = nats_server_of(own_nats, names[0])
    assert victim is not None
    own_nats[victim].proc.kill()  # SIGKILL, by PID
    own_nats[victim].proc.wait()
    killed_at = time.time()
    # QoS 0 and 1 from A (its NATS link was cut) to B.
    for qos in (0, 1):
        deliver_until(pa, sb, "kill/q%d" % qos, qos)
    deadline = time.time() + 20
    while nats_server_of(own_nats, names[0]) is None and time.time() < deadline:
        time.sleep(0.2)
    assert nats_server_of(own_nats, names[0]) not in (None, victim)
    # Then every message of a QoS 1 sequence arrives, once and in order.
    for i in range(50):
        pa.publish("kill/seq", b"%d" % i, qos=1)
    assert [m.payload for m in sb.get_n(50, timeout=20)] == [b"%d" % i for i in range(50)]
    sb.expect_none(0.5)
    # A route made after the kill, on A: seen by B and C's publishers.
    sa = connect(a, protocol=V5)
    sa.subscribe("back/#", qos=1)
    pb, pc = connect(b), connect(c)
    # (The buckets' watchers whose consumer was on the dead server are watched anew: cluster.c.)
    routes_ready(pb, [sa], "back/probe", timeout=45)
    routes_ready(pc, [sa], "back/probe", timeout=45)
    pc.publish("back/x", b"from C", qos=1)
    assert sa.get(timeout=10).payload == b"from C"
    # A retained message set on A after the kill reaches every node's store; cleared on B, gone on all.
    pa.publish("kill/ret", b"kept", qos=1, retain=True)
    for n in (b, c):
        poll_retained(n, "kill/ret", b"kept", timeout=45)
    pb.publish("kill/ret", b"", qos=1, retain=True)
    for n in (a, b, c):
        poll_retained(n, "kill/ret", None, timeout=45)
    print("service back %.1fs after the kill" % (time.time() - killed_at))
    for x in (sa, sb, pa, pb, pc):
        x.close()
    for n in (a, b, c):
        assert n.alive()


def test_stopping_while_nats_is_gone_is_prompt():
    """A node asked to stop (SIGTERM) after its NATS server died exits at once: its bucket writes
    are dropped with a warning instead of each waiting out a request timeout (it took 15-30 s,
    and the bench's stop order hid it)."""
    from conftest import Broker
    nats = NatsServer("gone", None, [])
    b = None
    try:
        wait_ready([nats])
        b = Broker("allow_anonymous true\ncluster_node %s\ncluster_nats_url %s\n"
                   % (unique_id("G").replace("-", "_"), nats.url)).start()
        subs = [connect(b) for _ in range(5)]
        for i, c in enumerate(subs):
            c.subscribe("gone/%d/#" % i, qos=1)
        for c in subs:
            c.close()  # routes withdrawn: bucket writes queued for the writer
        nats.proc.kill()  # SIGKILL, by PID
        nats.proc.wait()
        t0 = time.time()
        rc = b.stop(timeout=10)
        took = time.time() - t0
        assert rc == 0, b.log()[-2000:]
        assert took < 5, "stop took %.1f s:\n%s" % (took, b.log()[-2000:])
        assert "NATS unreachable while stopping" in b.log()
    finally:
        if b:
            b.stop()
        nats.stop()


def test_metrics_show_the_cluster(nats_cluster, make_broker):
    """/metrics: tombo_cluster_* next to the broker's own."""
    port = free_port()
    a = make_broker(node_conf(unique_id("M").replace("-", "_"), nats_cluster, "http_listener %d 127.0.0.1\n" % port))
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    vals = dict(l.split(" ", 1) for l in text.splitlines() if l.startswith("tombo_cluster_"))
    assert vals["tombo_cluster_link_up"] == "1"
    assert int(vals["tombo_cluster_nodes"]) >= 1
    assert "tombo_cluster_forwarded_sent_total" in vals and "tombo_cluster_bucket_errors_total" in vals
    assert a.alive()


# ---------------------------------------------------------------- configuration

@pytest.fixture(scope="module")
def lone_nats():
    s = NatsServer("lone", None, [])
    try:
        wait_ready([s])
        yield s
    finally:
        s.stop()


def test_cluster_needs_a_node_name_and_a_url(make_broker, tmp_path):
    from conftest import Broker
    for conf, msg in (("cluster_nats_url nats://127.0.0.1:1\n", "a cluster needs cluster_node"),
                      ("cluster_node A\n", "a cluster needs cluster_nats_url"),
                      ("cluster_node A.B\ncluster_nats_url nats://127.0.0.1:1\n", "a node name is 1 to 64"),
                      ("cluster_node A\ncluster_nats_url tls://127.0.0.1:1\ncluster_nats_cafile /nonexistent\n",
                       "cluster_nats_cafile '/nonexistent': No such file"),
                      ("cluster_node A\ncluster_nats_url tls://127.0.0.1:1\ncluster_nats_certfile /etc/hostname\n",
                       "cluster_nats_certfile and cluster_nats_keyfile go together")):
        br = Broker("allow_anonymous true\n" + conf)
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None), log
        assert br.conf_path + ":" in log and msg in log, log


def test_nats_unreachable_stops_start_up_with_file_and_line(tmp_path):
    from conftest import Broker
    br = Broker("allow_anonymous true\ncluster_node A\ncluster_nats_url nats://127.0.0.1:%d\n" % free_port())
    rc, log = br.run_until_exit(30)
    assert rc not in (0, None), log
    assert "%s:3: cluster: cannot connect to NATS" % br.conf_path in log, log


@pytest.mark.parametrize("server_args,good,bad", [
    (["--user", "tombo", "--pass", "s3cret"], "cluster_nats_user tombo\ncluster_nats_password s3cret\n",
     "cluster_nats_user tombo\ncluster_nats_password wrong\n"),
    (["--auth", "t0ken"], "cluster_nats_token t0ken\n", "cluster_nats_token nope\n"),
], ids=["user-password", "token"])
def test_nats_credentials(make_broker, server_args, good, bad):
    """cluster_nats_user / cluster_nats_password, cluster_nats_token: a NATS server that wants
    them; the right ones start the node, wrong ones stop start-up."""
    from conftest import Broker
    s = NatsServer("auth", None, [], server_args)
    try:
        wait_ready([s])
        base = "allow_anonymous true\ncluster_node U1\ncluster_nats_url %s\n" % s.url
        make_broker(base + good)
        br = Broker(base + bad)
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None) and "cannot connect to NATS" in log, log
    finally:
        s.stop()


# ---------------------------------------------------------------- TLS to NATS

def test_tls_to_nats_with_client_certificates(make_broker, tmp_path):
    """cluster_nats_cafile/certfile/keyfile: a nats-server with TLS that verifies client
    certificates (mutual TLS); two nodes exchange a QoS 1 message through it. A node with the
    wrong CA, or with no client certificate, is refused; a file that is not PEM names its line."""
    from conftest import Broker
    from pki import make_pki
    f = make_pki(str(tmp_path))
    s = NatsServer("tls", None, [], ["--tlsverify", "--tlscert", f("server.crt"), "--tlskey", f("server.key"),
                                     "--tlscacert", f("ca.crt")])
    try:
        wait_ready([s])
        url = s.url.replace("nats://", "tls://")
        tls = "cluster_nats_cafile %s\ncluster_nats_certfile %s\ncluster_nats_keyfile %s\n" % (
            f("ca.crt"), f("alice.crt"), f("alice.key"))
        base = "allow_anonymous true\ncluster_node %s\ncluster_nats_url %s\n"
        a = make_broker(base % ("TA", url) + tls)
        b = make_broker(base % ("TB", s.url) + tls)  # nats:// with a cafile: TLS as well
        sub = connect(b)
        sub.subscribe("tls/#", qos=1)
        pub = connect(a)
        routes_ready(pub, [sub], "tls/probe")
        pub.publish("tls/x", b"over TLS", qos=1)
        m = sub.messages.get(timeout=10)
        assert (m.topic, m.payload) == ("tls/x", b"over TLS")
        # The wrong CA: the server's certificate is not trusted.
        br = Broker(base % ("TC", url) + tls.replace(f("ca.crt"), f("other.crt")))
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None) and "cannot connect to NATS" in log, log
        # No client certificate: the server refuses the node.
        br = Broker(base % ("TD", url) + "cluster_nats_cafile %s\n" % f("ca.crt"))
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None) and "cannot connect to NATS" in log, log
        # A CA file that is not PEM: start-up stops at its line.
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate\n")
        br = Broker(base % ("TE", url) + "cluster_nats_cafile %s\n" % junk)
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None) and "%s:5: cluster: cannot load" % br.conf_path in log, log
    finally:
        s.stop()


# ---------------------------------------------------------------- sessions that move (T5)

from clients import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL  # noqa: E402


def raw_routes_ready(pub, raw, topic, timeout=20):
    """Publish `topic` (QoS 0) on pub's node until the Raw subscriber gets one, then drain."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pub.publish(topic, b"probe", qos=0)
        try:
            p = raw.recv(0.3)
            if p.type == PUBLISH:
                break
        except AssertionError:
            pass
    else:
        raise AssertionError("route of %s not seen within %ss" % (topic, timeout))
    t_end = time.time() + 0.5
    while time.time() < t_end:
        try:
            raw.recv(0.1)
        except AssertionError:
            pass


def take_all(raw, want, timeout=20):
    """Receive until `want` application messages came (PUBLISH, or a PUBREL of a flow that began
    before this call) and every QoS 2 flow begun here is complete, acknowledging each flow to its
    end. Returns (publishes as (topic, payload, qos, dup, pid), those PUBREL ids)."""
    pubs, rels, pending = [], [], set()
    deadline = time.time() + timeout
    while (len(pubs) + len(rels) < want or pending) and time.time() < deadline:
        p = raw.recv(deadline - time.time())
        if p.type == PUBLISH:
            pubs.append((p.topic, p.payload, p.qos, p.dup, p.pid))
            if p.qos == 1:
                raw.ack(PUBACK, p.pid)
            elif p.qos == 2:
                pending.add(p.pid)
                raw.ack(PUBREC, p.pid)
        elif p.type == PUBREL:
            if p.pid in pending:
                pending.discard(p.pid)
            else:
                rels.append(p.pid)
            raw.ack(PUBCOMP, p.pid)
    assert not pending, "no PUBREL for %s" % pending
    return pubs, rels


@pytest.fixture
def pnodes(nats_cluster, make_broker, tmp_path):
    """Three nodes with persistence true."""
    return start_nodes(make_broker, nats_cluster, "p", store=tmp_path)


@pytest.mark.tsan
@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("persist", [False, True], ids=["memory", "persistence"])
def test_t5_persistent_session_moves_to_another_node_with_its_messages(request, version, persist):
    """T5 [MQTT-3.1.2-5] [MQTT-4.4.0-1]: a persistent session with QoS 1 and 2 subscriptions on A
    goes offline with a QoS 1 PUBLISH unacknowledged and a QoS 2 one past PUBREC; messages
    published on C meanwhile queue on A. It reconnects on B: session present 1, the QoS 2 in
    flight gets PUBREL (not PUBLISH) with its packet id, the QoS 1 one is resent with DUP and its
    id, every queued message arrives (QoS 2 exactly once), and its subscriptions work on B for new
    messages from A and C, which A no longer delivers."""
    a, b, c = request.getfixturevalue("pnodes" if persist else "nodes")
    cid = unique_id("mv")
    props = [(0x11, 300)] if version == 5 else None
    r = Raw(a, version=version)
    r.connect(cid, clean=False, props=props)
    assert r.subscribe(1, [("mv/q1/#", 1), ("mv/q2/#", 2)]) == [1, 2]
    pc = connect(c)
    raw_routes_ready(pc, r, "mv/q1/probe")
    pc.publish("mv/q1/unacked", b"u1", qos=1)
    p1 = r.recv_type(PUBLISH)
    assert p1.payload == b"u1" and p1.qos == 1  # no PUBACK
    pc.publish("mv/q2/inflight", b"i2", qos=2)
    p2 = r.recv_type(PUBLISH)
    assert p2.payload == b"i2" and p2.qos == 2
    r.ack(PUBREC, p2.pid)
    r.recv_type(PUBREL)  # no PUBCOMP
    r.close()
    time.sleep(0.5)
    n = 10
    for i in range(n):
        pc.publish("mv/q1/%d" % i, b"a%d" % i, qos=1)
        pc.publish("mv/q2/%d" % i, b"b%d" % i, qos=2)
    time.sleep(1.0)  # forwarded to A, queued there

    r2 = Raw(b, version=version)
    t0 = time.time()
    ack = r2.connect(cid, clean=False, props=props)
    assert ack.session_present, "CONNACK on B must say session present"
    assert time.time() - t0 < 5
    pubs, rels = take_all(r2, 2 + 2 * n)
    assert rels == [p2.pid], "QoS 2 past PUBREC resumes with PUBREL %d: %r" % (p2.pid, rels)
    assert pubs[0][:2] == ("mv/q1/unacked", b"u1") and pubs[0][3] and pubs[0][4] == p1.pid, pubs[0]
    q1 = [x[1] for x in pubs if x[0].startswith("mv/q1/")]
    q2 = [x[1] for x in pubs if x[0].startswith("mv/q2/")]
    assert q1 == [b"u1"] + [b"a%d" % i for i in range(n)], q1
    assert sorted(q2) == sorted(b"b%d" % i for i in range(n)), q2  # each once
    assert b"i2" not in q2

    # the subscriptions live on B now: new messages from A and C reach it there
    pa = connect(a)
    raw_routes_ready(pa, r2, "mv/q1/probe-a")
    raw_routes_ready(pc, r2, "mv/q1/probe-c")
    pa.publish("mv/q2/from-a", b"fa", qos=2)
    pc.publish("mv/q2/from-c", b"fc", qos=2)
    got, _ = take_all(r2, 2)
    assert sorted(x[1] for x in got) == [b"fa", b"fc"], got
    time.sleep(1.0)
    with pytest.raises(AssertionError):  # nothing twice
        r2.recv(0.5)
    r2.disconnect(0 if version == 5 else None)
    pa.close()
    pc.close()


def test_t5_connected_client_on_a_gets_0x8e_and_its_session_moves(nodes):
    """T5 [MQTT-3.1.4-3]: a client connected on A with a persistent session connects again on B:
    A's connection gets DISCONNECT 0x8E (session taken over), B's CONNACK says session present,
    and its subscription goes on on B."""
    a, b, c = nodes
    cid = unique_id("mvc")
    first = Raw(a, version=5)
    first.connect(cid, clean=False, props=[(0x11, 300)])
    assert first.subscribe(1, [("mvc/t", 1)]) == [1]
    second = Raw(b, version=5)
    ack = second.connect(cid, clean=False, props=[(0x11, 300)])
    assert ack.session_present, (a.log()[-1500:], b.log()[-1500:])
    got = first.closed(timeout=15)
    assert [p.type for p in got] == [DISCONNECT] and got[0].reason == 0x8E, got
    pc = connect(c)
    raw_routes_ready(pc, second, "mvc/t")
    pc.publish("mvc/t", b"x", qos=1)
    p = second.recv_type(PUBLISH)
    assert p.payload == b"x" and p.qos == 1
    second.ack(PUBACK, p.pid)
    second.disconnect(0)
    pc.close()


def test_t5_a_session_started_on_a_is_found_by_a_connect_on_b_right_after_its_connack(nodes):
    """T5 [MQTT-3.2.2-3]: a persistent session that starts on A is A's in tombo_clients before A's
    CONNACK goes out, so a CONNECT with the same client id on B at once (no SUBSCRIBE between, no
    pause) takes it over from A: session present 1, and A's connection gets DISCONNECT 0x8E. (Before,
    the bucket writer wrote the client id after the CONNACK, and B could read no owner.)"""
    a, b, _ = nodes
    for i in range(5):
        cid = unique_id("mvq%d" % i)
        first = Raw(a, version=5)
        first.connect(cid, clean=False, props=[(0x11, 300)])
        second = Raw(b, version=5)
        ack = second.connect(cid, clean=False, props=[(0x11, 300)])
        assert ack.session_present, "run %d: B did not find the session A had just started" % i
        got = first.closed(timeout=15)
        assert [p.type for p in got] == [DISCONNECT] and got[0].reason == 0x8E, got
        second.disconnect(0)


def test_t5_a_node_that_does_not_answer_gives_a_fresh_session_in_bounded_time(nodes):
    """T5: when the node that has the session does not answer (stopped), the client on B gets a
    fresh session (session present 0) within a few seconds, and B logs why."""
    a, b, _ = nodes
    cid = unique_id("mvs")
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    r.subscribe(1, [("mvs/t", 1)])
    r.disconnect(0)
    time.sleep(0.5)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        r2 = Raw(b, version=5, timeout=15)
        t0 = time.time()
        ack = r2.connect(cid, clean=False, props=[(0x11, 300)])
        took = time.time() - t0
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    assert not ack.session_present
    assert took < 10, took
    assert "did not answer" in b.log()
    r2.disconnect(0)


class MovingLoad:
    """T5's load: QoS 1/2 published without a pause on two nodes (each publish waits for its
    acknowledgement) while a session moves; what was sent and acknowledged, and what the moving
    session received (acknowledged as it arrives, the flows completed)."""

    def __init__(self, prefix, qos, pubs, count, pause):
        import threading
        self.prefix, self.qos = prefix, qos
        self.sent = {tag: [] for tag, _ in pubs}
        self.got = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._publish, args=(client, tag, count, pause))
                        for tag, client in pubs]
        for t in self.threads:
            t.start()

    def _publish(self, client, tag, count, pause):
        i = 0
        while not self.stop.is_set() and i < count:
            payload = b"%s%d" % (tag.encode(), i)
            client.publish("%s/%s/%d" % (self.prefix, tag, i), payload, qos=self.qos)  # waits for the ack
            self.sent[tag].append(payload)
            i += 1
            time.sleep(pause)

    def take(self, raw, timeout):
        try:
            p = raw.recv(timeout)
        except AssertionError:
            return
        if p.type == PUBLISH and not p.payload.startswith(b"probe"):
            self.got.append(p.payload)
        if p.type == PUBLISH and p.qos == 1:
            raw.ack(PUBACK, p.pid)
        elif p.type == PUBLISH and p.qos == 2:
            raw.ack(PUBREC, p.pid)
        elif p.type == PUBREL:
            raw.ack(PUBCOMP, p.pid)

    def take_for(self, raw, seconds):
        t_end = time.time() + seconds
        while time.time() < t_end:
            self.take(raw, 0.1)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def want(self):
        return set().union(*self.sent.values())

    def drain(self, raw, wait, quiet):
        """Until everything sent arrived (at most `wait` s), then `quiet` s more: a late duplicate shows."""
        deadline = time.time() + wait
        while not self.want() <= set(self.got) and time.time() < deadline:
            self.take(raw, 0.5)
        t_end = time.time() + quiet
        while time.time() < t_end:
            self.take(raw, 0.2)

    def assert_none_lost(self, more_than):
        want = self.want()
        missing = sorted(want - set(self.got))
        assert not missing, "%d of %d acknowledged messages lost: %r" % (len(missing), len(want), missing[:20])
        assert all(len(v) > more_than for v in self.sent.values())


@pytest.mark.tsan
@pytest.mark.parametrize("qos", [1, 2])
def test_t5_messages_published_during_the_move_are_not_lost(nodes, qos):
    """T5: QoS 1/2 messages published on A and on C without a pause while the subscriber leaves A
    and takes its session over on B all reach it on B: at least once at QoS 1, exactly once at
    QoS 2 [MQTT-4.3.3-1]. Those queued on A move with the session, those that reach A while it
    moves follow it (unless B got them itself), later ones come to B directly."""
    a, b, c = nodes
    cid = unique_id("mvl")
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    assert r.subscribe(1, [("mvl/#", qos)]) == [qos]
    pa, pc = connect(a), connect(c)
    raw_routes_ready(pc, r, "mvl/probe")
    load = MovingLoad("mvl", qos, [("a", pa), ("c", pc)], count=400, pause=0.005)
    try:
        time.sleep(0.5)
        r.close()  # in flight and unacknowledged on A: resent on B
        time.sleep(0.5)
        r2 = Raw(b, version=5)
        assert r2.connect(cid, clean=False, props=[(0x11, 300)]).session_present
        load.take_for(r2, 2.5)
    finally:
        load.finish()
    load.drain(r2, wait=10, quiet=1.0)
    load.assert_none_lost(more_than=50)
    assert "messages followed it" in a.log()
    r2.disconnect(0)
    pa.close()
    pc.close()
    got = load.got
    if qos == 2:
        # A message can reach the moved session both with the move (queued on A, or passed on by A
        # meanwhile) and from its publishing node directly: its cluster identity is queued once.
        dups = sorted(x for x in set(got) if got.count(x) > 1)
        assert not dups, "QoS 2 given twice during the move: %r" % dups[:20]


@pytest.mark.tsan
@pytest.mark.parametrize("qos", [1, 2])
def test_t5_moves_with_other_subscribers_on_every_node_lose_nothing_while_publishing(nodes, qos):
    """T5, messages sent to both nodes of a move: with a subscriber of a matching filter on every
    node, every message published on A and C reaches the old and the new node of a moving
    session. One that reaches the new node before the session's import there (for the other
    subscriber only) and the old one after the export is passed on by the old node with the rest
    of what queued there; the new node's window drops those the session has. The session moves
    A -> B -> C -> A -> B while QoS 1/2 is published without a pause: every acknowledged message
    arrives, QoS 2 exactly once [MQTT-4.3.3-1]."""
    a, b, c = nodes
    cid = unique_id("mvr")
    others = [connect(n) for n in (a, b, c)]
    for o in others:
        o.subscribe("mvr/#", qos=0)
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    assert r.subscribe(1, [("mvr/#", qos)]) == [qos]
    pa, pc = connect(a), connect(c)
    routes_ready(pa, others, "mvr/probe-a")
    routes_ready(pc, others, "mvr/probe-c")
    raw_routes_ready(pc, r, "mvr/probe")
    load = MovingLoad("mvr", qos, [("a", pa), ("c", pc)], count=1500, pause=0.003)
    try:
        for to in (b, c, a, b):
            load.take_for(r, 1.0)
            r.close()  # in flight and unacknowledged: resent on the next node
            r = Raw(to, version=5)
            assert r.connect(cid, clean=False, props=[(0x11, 300)]).session_present
        load.take_for(r, 1.5)
    finally:
        load.finish()
    load.drain(r, wait=15, quiet=1.5)
    load.assert_none_lost(more_than=100)
    r.disconnect(0)
    for x in others + [pa, pc]:
        x.close()
    got = load.got
    if qos == 2:
        dups = sorted(x for x in set(got) if got.count(x) > 1)
        assert not dups, "QoS 2 given twice during the moves: %r" % dups[:20]


def test_t5_inbound_qos2_awaiting_pubrel_moves_with_the_session(nodes):
    """T5 [MQTT-4.3.3-8] [MQTT-4.3.3-9]: a QoS 2 PUBLISH the client sent on A, acknowledged there
    with PUBREC, is completed on B after the move: PUBREL gets PUBCOMP 0x00 (not 0x92 "packet
    identifier not found"), and the same PUBLISH resent with DUP to B is not delivered again."""
    a, b, c = nodes
    cid = unique_id("mvi")
    sc = Raw(c, version=5)
    sc.connect(unique_id("mvis"))
    assert sc.subscribe(1, [("mvi/t", 2)]) == [2]
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    probe = connect(a)
    raw_routes_ready(probe, sc, "mvi/t")
    r.publish("mvi/t", b"once", qos=2, pid=7)
    assert r.recv_type(PUBREC).pid == 7
    p = sc.recv_type(PUBLISH)
    assert p.payload == b"once"
    sc.ack(PUBREC, p.pid)
    sc.ack(PUBCOMP, sc.recv_type(PUBREL).pid)
    r.close()  # no PUBREL
    r2 = Raw(b, version=5)
    assert r2.connect(cid, clean=False, props=[(0x11, 300)]).session_present
    r2.publish("mvi/t", b"once", qos=2, pid=7, dup=True)
    rec = r2.recv_type(PUBREC)
    assert rec.pid == 7 and rec.reason == 0
    r2.ack(PUBREL, 7)
    comp = r2.recv_type(PUBCOMP)
    assert comp.pid == 7 and comp.reason == 0, comp
    with pytest.raises(AssertionError):  # delivered once, on A
        sc.recv(1.5)
    r2.disconnect(0)
    sc.disconnect(0)
    probe.close()


# ---------------------------------------------------------------- cluster_durability jetstream

DURABLE = "cluster_durability jetstream\n"


@pytest.fixture
def durable_nodes(nats_cluster, make_broker):
    """Two nodes with cluster_durability jetstream on the module's NATS cluster."""
    return start_nodes(make_broker, nats_cluster, "d", names="AB", extra=DURABLE)


def test_cluster_durability_is_local_or_jetstream(make_broker):
    from conftest import Broker
    br = Broker("allow_anonymous true\ncluster_node A\ncluster_nats_url nats://127.0.0.1:1\n"
                "cluster_durability always\n")
    rc, log = br.run_until_exit(30)
    assert rc not in (0, None), log
    assert "%s:5: cluster_durability 'always': local" % br.conf_path in log, log


@pytest.mark.parametrize("qos", [1, 2])
def test_durable_publish_across_nodes_arrives(durable_nodes, qos):
    """cluster_durability jetstream: QoS 1/2 PUBLISHes on A for a subscriber on B go through the
    stream; each is acknowledged with success once JetStream has it [MQTT-4.3.2-4] [MQTT-4.3.3-8],
    and B gets each once, in order."""
    a, b = durable_nodes
    sb = connect(b)
    sb.subscribe("dur/#", qos=qos)
    probe = connect(a)
    routes_ready(probe, [sb], "dur/probe")
    probe.close()
    pub = Raw(a, version=5)
    pub.connect(unique_id("dp"))
    n = 20
    for i in range(n):
        pub.publish("dur/%d" % i, b"d%d" % i, qos=qos, pid=i + 1)
    acks, comps = [], []
    while len(acks) < n or len(comps) < (n if qos == 2 else 0):
        p = pub.recv(timeout=10)
        if p.type == PUBCOMP:  # a PUBCOMP may come before a later PUBREC, which waits for JetStream
            comps.append(p.pid)
            continue
        acks.append((p.type, p.pid, p.reason))
        if qos == 2:
            pub.ack(PUBREL, p.pid)
    assert acks == [(PUBACK if qos == 1 else PUBREC, i + 1, 0) for i in range(n)]
    assert comps == ([i + 1 for i in range(n)] if qos == 2 else [])
    msgs = sb.get_n(n, timeout=10)
    assert [m.payload for m in msgs] == [b"d%d" % i for i in range(n)]
    sb.expect_none(0.5)
    pub.disconnect(0)
    sb.close()


def test_jetstream_node_sends_to_a_local_node_over_core_nats(durable_nodes, make_broker, nats_cluster):
    """A node with cluster_durability local has no consumer on the stream: a jetstream node sends it
    QoS 1 over core NATS (its presence value is not j), acknowledged at once, and it arrives."""
    a, _ = durable_nodes
    loc = make_broker(node_conf("L_" + unique_id("l").replace("-", "_"), nats_cluster))
    sl = connect(loc)
    sl.subscribe("mixed/#", qos=1)
    probe = connect(a)
    routes_ready(probe, [sl], "mixed/probe")
    probe.close()
    pub = Raw(a, version=5)
    pub.connect(unique_id("mp"))
    for i in range(5):
        pub.publish("mixed/%d" % i, b"m%d" % i, qos=1, pid=i + 1)
        p = pub.recv_type(PUBACK, timeout=10)
        assert (p.pid, p.reason) == (i + 1, 0), p
    assert [m.payload for m in sl.get_n(5, timeout=10)] == [b"m%d" % i for i in range(5)]
    assert consumer_state_any(nats_cluster, "tombo_" + "L_") is None  # no consumer for a local node
    pub.disconnect(0)
    sl.close()


def consumer_state_any(servers, prefix):
    """The first consumer of tombo_msgs whose name starts with prefix, as any server sees it."""
    for s in servers:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/jsz?consumers=true" % s.mon, timeout=2) as r:
                jsz = json.loads(r.read())
        except Exception:
            continue
        for acc in jsz.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                for c in st.get("consumer_detail") or []:
                    if c.get("name", "").startswith(prefix):
                        return c
    return None


def test_durable_message_waits_for_a_node_killed_with_kill_9(durable_nodes, make_broker, nats_cluster):
    """A node killed with kill -9 (its routes stay in the bucket): QoS 1 messages published on A
    meanwhile are acknowledged (JetStream has them) and wait in the stream; once B runs again
    (persistence on), its persistent session gets them. With core NATS they would be lost."""
    a, _ = durable_nodes
    tag = unique_id("k").replace("-", "_")
    b = make_broker(node_conf("K_" + tag, nats_cluster, DURABLE + "persistence true\n"))
    cid = unique_id("kp")
    sb = PahoClient(b, client_id=cid, clean=False)
    sb.connect()
    sb.subscribe("kill/#", qos=1)
    probe = connect(a)
    routes_ready(probe, [sb], "kill/probe")
    probe.close()
    sb.close()
    time.sleep(0.5)  # the session's subscription is committed (persistence)
    b.stop(signal.SIGKILL)
    pub = Raw(a, version=5)
    pub.connect(unique_id("kpub"))
    for i in range(5):
        pub.publish("kill/%d" % i, b"k%d" % i, qos=1, pid=i + 1)
        p = pub.recv_type(PUBACK, timeout=10)
        assert (p.pid, p.reason) == (i + 1, 0), p
    pub.disconnect(0)
    b.start()
    sb = PahoClient(b, client_id=cid, clean=False)
    sb.connect()
    msgs = sb.get_n(5, timeout=20)
    assert [m.payload for m in msgs] == [b"k%d" % i for i in range(5)]
    sb.close()
    # B acknowledged them to JetStream (after its store committed them): nothing left for it.
    consumer = "tombo_K_" + tag
    deadline = time.time() + 15
    while time.time() < deadline:
        states = [consumer_state(s, consumer) for s in nats_cluster]
        leader = [st for st in states if st and st.get("leader")]
        if leader and leader[0]["num_ack_pending"] == 0 and leader[0]["num_pending"] == 0:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("consumer %s still has messages: %r" % (consumer, states))


class AckDropper:
    """A TCP proxy between one tombo node and one NATS server, for the node's only NATS URL. While
    `drop` is set it swallows the node's JetStream acknowledgements (PUB or HPUB to $JS.ACK.*, the
    subjects natsMsg_Ack publishes to): JetStream then delivers those messages again, as it does when
    a node dies after routing a message and before its acknowledgement left, or when the
    acknowledgement is lost with a NATS link. Everything else passes as it is, both ways."""

    def __init__(self, server):
        import socket
        import threading
        self.target = server.port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.url = "nats://127.0.0.1:%d" % self.port
        self.drop = threading.Event()
        self.dropped = 0
        self.socks = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [c, u]
            threading.Thread(target=self._down, args=(u, c), daemon=True).start()
            threading.Thread(target=self._up, args=(c, u), daemon=True).start()

    @staticmethod
    def _down(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        AckDropper._shut(src, dst)

    def _up(self, src, dst):
        buf = b""
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                buf += d
                out = []
                while True:
                    i = buf.find(b"\r\n")
                    if i < 0:
                        break
                    line = buf[:i]
                    op = line.split(b" ", 1)[0].upper()
                    end = i + 2
                    if op in (b"PUB", b"HPUB"):
                        end += int(line.split()[-1]) + 2
                        if len(buf) < end:
                            break
                        if self.drop.is_set() and line.split()[1].startswith(b"$JS.ACK."):
                            self.dropped += 1
                            buf = buf[end:]
                            continue
                    out.append(buf[:end])
                    buf = buf[end:]
                if out:
                    dst.sendall(b"".join(out))
        except OSError:
            pass
        AckDropper._shut(src, dst)

    @staticmethod
    def _shut(*socks):
        """shutdown, not only close: the other direction's thread blocked in recv() on the socket
        keeps the connection open through a close alone."""
        import socket
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                x.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        AckDropper._shut(self.lsock, *self.socks)


def durable_value(sysc, name, timeout=2.0):
    """The last value of $SYS/broker/cluster/durable/NAME that sysc (subscribed to it) got within
    timeout, as an int (-1: none)."""
    v, deadline = -1, time.time() + timeout
    while time.time() < deadline:
        try:
            m = sysc.messages.get(timeout=0.1)
        except Exception:
            continue
        if m.topic == "$SYS/broker/cluster/durable/" + name:
            v = int(m.payload)
    return v


def test_redelivered_stream_messages_reach_a_qos2_session_once_across_kill_9(make_broker, nats_cluster, tmp_path):
    """[MQTT-4.3.3] QoS 2 is "exactly once" delivery, also across nodes with cluster_durability
    jetstream: node B routes and stores stream messages for a persistent QoS 2 session (some
    delivered and completed, some queued while the client is away), but JetStream never gets B's
    acknowledgements (dropped by a proxy on B's only NATS link); B is killed with kill -9 and
    started again, and JetStream delivers all of those again. B recognises each by its cluster
    identity (the ranges it stored with them) and does not route it again: the subscriber, back on
    B, gets every message exactly once, including those published after the restart; the
    redeliveries are acknowledged (the consumer is drained) and counted as duplicates."""
    a = start_nodes(make_broker, nats_cluster, "rd", names="A", extra=DURABLE)[0]
    proxy = AckDropper(nats_cluster[0])
    tag = unique_id("rb").replace("-", "_")
    b = make_broker(node_conf("RB_" + tag, [proxy], DURABLE + "persistence true\npersistence_location %s/\n" % tmp_path))
    try:
        cid = unique_id("rdq2")
        sb = PahoClient(b, client_id=cid, clean=False)
        sb.connect()
        sb.subscribe("rd/#", qos=2)
        probe = connect(a)
        routes_ready(probe, [sb], "rd/probe")
        probe.close()
        got = []
        proxy.drop.set()
        pub = connect(a)
        for i in range(40):  # delivered and completed while B's acknowledgements are lost
            pub.publish("rd/%d" % i, b"r%d" % i, qos=2)
        got += [m.payload for m in sb.get_n(40, timeout=20)]
        sb.close()
        time.sleep(0.5)
        for i in range(40, 70):  # queued in the session, client away
            pub.publish("rd/%d" % i, b"r%d" % i, qos=2)
        time.sleep(1.0)  # B's store has committed them (they are in the stream: PUBCOMP above)
        assert proxy.dropped >= 70, proxy.dropped
        b.stop(signal.SIGKILL)
        proxy.drop.clear()
        time.sleep(1.0)  # the NATS servers see its connection gone: its durable consumer is free again
        b.start()
        sysc = connect(b)
        sysc.subscribe("$SYS/broker/cluster/durable/duplicates", qos=0)
        sb = PahoClient(b, client_id=cid, clean=False)
        sb.connect()

        # B, started again, withdraws its previous run's routes and announces them anew: a probe on
        # a new filter reaches it once A has seen the new announcements (written in order).
        probe_topic = "rdp/" + tag
        sb.subscribe(probe_topic, qos=0)

        def take(m):
            if m.topic != probe_topic:
                got.append(m.payload)
            return m.topic == probe_topic
        deadline, seen = time.time() + 20, False
        while not seen and time.time() < deadline:
            pub.publish(probe_topic, b"probe", qos=0)
            t_end = time.time() + 0.3
            while not seen and time.time() < t_end:
                try:
                    seen = take(sb.messages.get(timeout=0.05))
                except Exception:
                    pass
        assert seen, "B's routes not seen by A after the restart"
        for i in range(70, 80):  # after the restart: new messages still flow
            pub.publish("rd/%d" % i, b"r%d" % i, qos=2)
        # JetStream redelivers the 70 unacknowledged ones once their ack wait (30 s) has passed.
        consumer = "tombo_RB_" + tag
        deadline, dups = time.time() + 90, -1
        while time.time() < deadline:
            states = [consumer_state(s, consumer) for s in nats_cluster]
            leader = [st for st in states if st and st.get("leader")]
            dups = max(dups, durable_value(sysc, "duplicates", 1.0))
            if leader and leader[0]["num_ack_pending"] == 0 and leader[0]["num_pending"] == 0:
                break
        else:
            raise AssertionError("redeliveries not all acknowledged: consumer %r" % states)
        dups = max(dups, durable_value(sysc, "duplicates", 1.5))
        while not sb.messages.empty():
            take(sb.messages.get_nowait())
        counts = {}
        for p in got:
            counts[p] = counts.get(p, 0) + 1
        assert {p: n for p, n in counts.items() if n > 1} == {}, "delivered twice"
        missing = sorted(set(b"r%d" % i for i in range(80)) - set(counts))
        assert missing == [], missing
        assert dups == 70, dups
        pub.close()
        sb.close()
        sysc.close()
    finally:
        proxy.close()


def consumer_state(server, name):
    """A durable consumer of tombo_msgs as one NATS server sees it (its /jsz monitoring page):
    num_pending, num_ack_pending and whether this server leads it; None when it does not know it."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/jsz?consumers=true" % server.mon, timeout=2) as r:
            jsz = json.loads(r.read())
    except Exception:
        return None
    for acc in jsz.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            for c in st.get("consumer_detail") or []:
                if c.get("name") == name:
                    cl = c.get("cluster") or {}
                    return {"num_pending": c.get("num_pending", 0), "num_ack_pending": c.get("num_ack_pending", 0),
                            "leader": cl.get("leader") == server.name}
    return None


def test_t8_lost_quorum_refuses_durable_publishes(make_broker):
    """T8: of three NATS servers, two are killed. A durable QoS 1 publish (a subscriber on the
    other node) gets no success: MQTT 5 PUBACK with reason 0x80 [MQTT-3.4.2-1], 3.1.1 a closed
    connection and no PUBACK, both within a bounded time; QoS 0 and local delivery go on."""
    cports = [free_port() for _ in range(3)]
    servers = [NatsServer("q%d" % i, cports[i], [p for k, p in enumerate(cports) if k != i]) for i in range(3)]
    try:
        wait_ready(servers)
        tag = unique_id("q").replace("-", "_")
        # Both nodes prefer the server that survives: they move to it at once when the others go.
        order = [servers[0], servers[1], servers[2]]
        a = make_broker(node_conf("QA_" + tag, order, DURABLE))
        b = make_broker(node_conf("QB_" + tag, order, DURABLE))
        sb = connect(b)
        sb.subscribe("t8/#", qos=1)
        local = connect(a)
        local.subscribe("t8/#", qos=1)
        local.subscribe("t8local/#", qos=1)
        probe = connect(a)
        routes_ready(probe, [sb, local], "t8/probe")
        probe.close()
        pub5 = Raw(a, version=5)
        pub5.connect(unique_id("q5"))
        pub5.publish("t8/ok", b"before", qos=1, pid=1)  # with quorum: success
        p = pub5.recv_type(PUBACK, timeout=10)
        assert (p.pid, p.reason) == (1, 0), p
        assert sb.get(timeout=10).payload == b"before"
        for s in (sb, local):
            while not s.messages.empty():
                s.messages.get_nowait()
        for s in servers[1:]:
            s.proc.kill()
            s.proc.wait()
        t0 = time.time()
        pub5.publish("t8/x", b"refused", qos=1, pid=2)
        p = pub5.recv_type(PUBACK, timeout=30)
        assert p.pid == 2 and p.reason >= 0x80, p
        assert time.time() - t0 < 30
        pub3 = Raw(a, version=4)
        pub3.connect(unique_id("q3"))
        pub3.publish("t8/y", b"refused", qos=1, pid=3)
        got = pub3.closed(timeout=30)
        assert all(x.type != PUBACK for x in got), got
        # QoS 0 and messages with only local subscribers go on.
        q0 = connect(a)
        q0.publish("t8/zero", b"q0", qos=0)
        q0.publish("t8local/one", b"q1", qos=1)  # success PUBACK: no other node subscribes
        seen = set()
        deadline = time.time() + 10
        while time.time() < deadline and not {b"q0", b"q1"} <= seen:
            try:
                seen.add(local.messages.get(timeout=0.5).payload)
            except Exception:
                pass
        assert {b"q0", b"q1"} <= seen, seen
        sysc = connect(a)
        sysc.subscribe("$SYS/broker/cluster/durable/refused", qos=0)
        refused = 0
        deadline = time.time() + 10
        while time.time() < deadline and refused < 2:
            try:
                refused = int(sysc.messages.get(timeout=0.5).payload)
            except Exception:
                pass
        assert refused >= 2
        sysc.close()
        for x in (q0, local, sb):
            x.close()
        pub5.close()
    finally:
        for s in servers:
            s.stop()


# ---------------------------------------------------------------- cluster_sessions jetstream (T6)

# max_queued_messages: the sessions taken on B get A's queue, the messages waiting for A and the
# new ones at once, with no publisher to slow down (they come from the stream): above the default
# 1000 the newest would be dropped, as for any slow consumer (docs/cluster.md).
SESSIONS = DURABLE + "cluster_sessions jetstream\nmax_queued_messages 100000\n"


@pytest.fixture
def snodes(nats_cluster, make_broker, tmp_path):
    """Three nodes with persistence, cluster_durability jetstream and cluster_sessions jetstream."""
    return start_nodes(make_broker, nats_cluster, "s", extra=SESSIONS, store=tmp_path)


def test_cluster_sessions_needs_persistence_and_durability(make_broker):
    from conftest import Broker
    base = "allow_anonymous true\ncluster_node A\ncluster_nats_url nats://127.0.0.1:1\n"
    # The test's broker.conf has a listener line first: the directives start at line 2.
    for extra, line, why in [("cluster_sessions jetstream\n", 5, "needs persistence true"),
                             ("persistence true\ncluster_sessions jetstream\n", 6,
                              "needs cluster_durability jetstream"),
                             ("cluster_sessions always\n", 5, "cluster_sessions 'always': local")]:
        br = Broker(base + extra)
        rc, log = br.run_until_exit(30)
        assert rc not in (0, None), log
        assert "%s:%d: " % (br.conf_path, line) in log and why in log, log
    br = Broker("allow_anonymous true\npersistence true\ncluster_sessions jetstream\n")
    rc, log = br.run_until_exit(30)
    assert rc not in (0, None) and "%s:4: " % br.conf_path in log and "needs cluster_node" in log, log


class Receiver:
    """A persistent subscriber that acknowledges every flow, keeping the QoS 2 packet ids it
    acknowledged with PUBREC across connections (a receiver's part of exactly once: a PUBLISH
    again with such an id is the same message). got: payloads in arrival order, each QoS 2 once."""

    def __init__(self):
        self.got, self.pending, self.raw = [], set(), None
        self.same_id = []  # (payload, dup flag) of PUBLISHes taken as a resend of a pending id

    def poll(self, timeout):
        """Handle the first packet that comes within timeout, then every one already there (for at
        most 0.2 s). One packet per call made the test's two receivers the bottleneck: each waited
        out the other's idle timeout, about 20 packets a second, so a backlog of 500 QoS 2
        messages on B took 50 s and a run that published more missed the deadline."""
        got = False
        end = time.time() + 0.2
        while time.time() < end:
            try:
                p = self.raw.recv(timeout if not got else 0.001)
            except (AssertionError, OSError):
                break
            got = True
            self._handle(p)
        return got

    def _handle(self, p):
        if p.type == PUBLISH:
            if p.qos == 1:
                self.got.append(p.payload)
                self.raw.ack(PUBACK, p.pid)
            elif p.qos == 2:
                if p.pid not in self.pending:
                    self.got.append(p.payload)
                    self.pending.add(p.pid)
                else:
                    self.same_id.append((p.payload, p.dup))
                self.raw.ack(PUBREC, p.pid)
        elif p.type == PUBREL:
            self.pending.discard(p.pid)
            self.raw.ack(PUBCOMP, p.pid)


@pytest.mark.tsan
def test_t6_kill_9_of_the_node_sessions_resume_on_another_nothing_acknowledged_lost(snodes, nats_cluster):
    """T6: persistent QoS 1 and QoS 2 subscribers on A; a publisher on C publishes QoS 1 and 2
    without a pause; A is killed with kill -9 mid-stream; the subscribers reconnect on B without
    clean start: session present, and every message whose PUBACK (PUBREC) the publisher got
    arrives (QoS 1 maybe twice, QoS 2 once)."""
    import threading
    a, b, c = snodes
    props = [(0x11, 300)]
    cids = [unique_id("t6q1"), unique_id("t6q2")]
    recv = [Receiver(), Receiver()]
    for i, (cid, flt) in enumerate(zip(cids, [("t6/q1/#", 1), ("t6/q2/#", 2)])):
        recv[i].raw = Raw(a, version=5)
        recv[i].raw.connect(cid, clean=False, props=props)
        assert recv[i].raw.subscribe(1, [flt]) == [flt[1]]
    pc = connect(c)
    raw_routes_ready(pc, recv[0].raw, "t6/q1/probe")
    raw_routes_ready(pc, recv[1].raw, "t6/q2/probe")
    pc.close()

    acked = [[], []]
    stop = threading.Event()
    errors = []

    def publisher():
        pub = Raw(c, version=5)
        pub.connect(unique_id("t6pub"))
        i = 0
        try:
            while not stop.is_set():
                i += 1
                pid = i % 60000 + 1
                pub.publish("t6/q1/%d" % i, b"a%d" % i, qos=1, pid=pid)
                p = pub.recv_type(PUBACK, timeout=10)
                if p.reason == 0:
                    acked[0].append(b"a%d" % i)
                pub.publish("t6/q2/%d" % i, b"b%d" % i, qos=2, pid=pid)
                p = pub.recv_type(PUBREC, timeout=10)
                if p.reason == 0:
                    acked[1].append(b"b%d" % i)
                pub.ack(PUBREL, pid)
                pub.recv_type(PUBCOMP, timeout=10)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            pub.close()

    t = threading.Thread(target=publisher)
    t.start()
    try:
        end = time.time() + 2.0
        while time.time() < end:
            for r in recv:
                r.poll(0.02)
        assert recv[0].got and recv[1].got, "nothing arrived on A before the kill"
        a.stop(signal.SIGKILL)
        a.expect_exit = True
        for r in recv:
            r.raw.close()
        time.sleep(1.0)  # published meanwhile: waits in the stream for A
        for i, cid in enumerate(cids):
            recv[i].raw = Raw(b, version=5)
            t0 = time.time()
            ack = recv[i].raw.connect(cid, clean=False, props=props)
            assert ack.session_present, "CONNACK on B must say session present (%s)" % cid
            assert time.time() - t0 < 8
        end = time.time() + 2.0
        while time.time() < end:
            for r in recv:
                r.poll(0.02)
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors
    # Until every acknowledged message came (QoS 2 to the taken session is slow: each PUBLISH
    # waits for B's store and its copy in JetStream), at most 60 s, then 3 s more for duplicates.
    t_wait = time.time()
    deadline = t_wait + 60
    while time.time() < deadline:
        have = [set(recv[0].got), set(recv[1].got)]
        if all(x in have[0] for x in acked[0]) and all(x in have[1] for x in acked[1]):
            break
        for r in recv:
            r.poll(0.05)
    end = time.time() + 3.0
    while time.time() < end:
        for r in recv:
            r.poll(0.05)
    q1, q2 = recv[0].got, recv[1].got
    missing1 = [x for x in acked[0] if x not in set(q1)]
    missing2 = [x for x in acked[1] if x not in set(q2)]
    twice2 = sorted(set(x for x in q2 if q2.count(x) > 1))
    took = time.time() - t_wait - 3.0
    print("acked %d+%d, received %d+%d, the last %.1f s after the publisher stopped" % (
        len(acked[0]), len(acked[1]), len(q1), len(q2), took))
    notes = "\n".join(ln for n in (b, c) for ln in n.log().splitlines() if "luster" in ln)[-4000:]
    if missing1 or missing2:
        import re
        bname = re.search(r"node (\S+) on NATS", b.log()).group(1)
        st = [consumer_state(s, "tombo_" + bname) for s in nats_cluster]
        notes += "\nB's consumer: %r" % [x for x in st if x]
        notes += "\n" + "\n".join(ln for ln in b.log().splitlines() if cids[1] in ln)[-3000:]
    assert not missing1, "QoS 1 acknowledged, not received within 60 s: %d, %r\n%s" % (
        len(missing1), missing1[:20], notes)
    assert not missing2, "QoS 2 acknowledged, not received within 60 s: %d, %r\ntaken as resends: %r\n%s" % (
        len(missing2), missing2[:20], recv[1].same_id[:20], notes)
    for r in recv:
        r.raw.disconnect(0)
    # A message A copied with the session and was killed before acknowledging to the stream is in
    # both; its cluster identity lets the taken session's window drop the second copy.
    assert not twice2, "QoS 2 twice at the kill: %r" % twice2[:20]


def test_t6_a_restarted_node_does_not_resurrect_a_session_taken_elsewhere(snodes):
    """T6: a session taken by B from JetStream after A's kill -9 is not restored by A when it
    starts again (A drops it: tombo_clients names B): the client connecting on A again gets B's
    session, with what queued on B, not A's stale copy."""
    a, b, c = snodes
    props = [(0x11, 300)]
    cid = unique_id("t6r")
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=props)
    assert r.subscribe(1, [("t6r/#", 1)]) == [1]
    r.disconnect(0)
    time.sleep(0.5)
    a.stop(signal.SIGKILL)
    r = Raw(b, version=5)
    assert r.connect(cid, clean=False, props=props).session_present
    pc = connect(c)
    raw_routes_ready(pc, r, "t6r/probe")
    r.disconnect(0)
    time.sleep(0.5)
    pc.publish("t6r/queued-on-b", b"qb", qos=1)
    pc.close()
    time.sleep(0.5)
    a.start()
    assert "was taken by node" in a.log(), a.log()[-3000:]
    r = Raw(a, version=5)
    assert r.connect(cid, clean=False, props=props).session_present
    got = []
    deadline = time.time() + 15
    while b"qb" not in got and time.time() < deadline:
        try:
            p = r.recv(1)
        except AssertionError:
            continue
        if p.type == PUBLISH:
            got.append(p.payload)
            if p.qos:
                r.ack(PUBACK, p.pid)
    assert b"qb" in got, got
    r.disconnect(0)


# ---------------------------------------------------------------- a stalled node (SIGSTOP)

def wait_log(broker, text, timeout=20):
    """Wait for a log line with `text`, or, a tuple, with each of its parts."""
    parts = text if isinstance(text, tuple) else (text,)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(all(x in ln for x in parts) for ln in broker.log().splitlines()):
            return
        time.sleep(0.1)
    raise AssertionError("%r not in the log within %ss:\n%s" % (text, timeout, broker.log()[-3000:]))


def collect(raw, want, timeout=20, quiet=1.5):
    """Acknowledge every flow and return the payloads (not probes) of the PUBLISHes received until
    `want` (a set) is all there and nothing more came for `quiet` seconds."""
    got = []
    deadline = time.time() + timeout
    last = time.time()
    while time.time() < deadline:
        if want <= set(got) and time.time() - last >= quiet:
            break
        try:
            p = raw.recv(0.2)
        except AssertionError:
            continue
        last = time.time()
        if p.type == PUBLISH:
            if not p.payload.startswith(b"probe"):
                got.append(p.payload)
            if p.qos == 1:
                raw.ack(PUBACK, p.pid)
            elif p.qos == 2:
                raw.ack(PUBREC, p.pid)
        elif p.type == PUBREL:
            raw.ack(PUBCOMP, p.pid)
    return got


@pytest.mark.tsan
@pytest.mark.parametrize("sessions", ["local", "jetstream"])
def test_stalled_node_ends_the_session_it_lost_and_the_new_node_gets_every_message(request, sessions):
    """A node stuck longer than the take request's 3 s (SIGSTOP) while its client, connected
    there with a persistent session and QoS 1/2 subscriptions, reconnects on B without clean
    start: B gives the client a session (the JetStream copy with `cluster_sessions jetstream`,
    a fresh one with `local`) and tells A. When A runs again (SIGCONT) its connection of the
    client gets DISCONNECT 0x8E and its copy of the session ends (routes, store); the messages
    published on A and C after the client connected on B reach it on B, each once; and a later
    CONNECT on A takes the session from B instead of finding a copy of its own (also after A
    restarts: the stored copy went too)."""
    a, b, c = request.getfixturevalue("snodes" if sessions == "jetstream" else "pnodes")
    props = [(0x11, 300)]
    cid = unique_id("stl")
    first = Raw(a, version=5)
    first.connect(cid, clean=False, props=props)
    assert first.subscribe(1, [("stl/q1/#", 1), ("stl/q2/#", 2)]) == [1, 2]
    pa, pc = connect(a), connect(c)
    raw_routes_ready(pc, first, "stl/q1/probe")
    pa.publish("stl/q1/before", b"before", qos=1)
    p = first.recv_type(PUBLISH)
    assert p.payload == b"before"
    first.ack(PUBACK, p.pid)
    time.sleep(1.0)  # A's store (and JetStream copy) has the acknowledgement

    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        r = Raw(b, version=5, timeout=20)
        t0 = time.time()
        ack = r.connect(cid, clean=False, props=props)
        took = time.time() - t0
        assert took >= 2.5, "A is alive: B waits for its answer (%.1fs)" % took
        if sessions == "jetstream":
            assert ack.session_present, "B imports the JetStream copy"
        else:
            assert not ack.session_present
            assert r.subscribe(1, [("stl/q1/#", 1), ("stl/q2/#", 2)]) == [1, 2]
        raw_routes_ready(pc, r, "stl/q1/probe-c")
        n = 10
        during = []
        for i in range(n):  # A is stopped: C sends to B (and to A's stale routes)
            pc.publish("stl/q1/d%d" % i, b"d1-%d" % i, qos=1)
            pc.publish("stl/q2/d%d" % i, b"d2-%d" % i, qos=2)
            during += [b"d1-%d" % i, b"d2-%d" % i]
        time.sleep(0.5)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    # What reached A while it was stopped may still be written to the old connection in the
    # moment before A reads B's word; then it is closed with 0x8E, and that is the end.
    gone = first.closed(timeout=15)
    assert gone and gone[-1].type == DISCONNECT and gone[-1].reason == 0x8E, (gone, a.log()[-3000:])
    assert all(x.type == PUBLISH for x in gone[:-1]), gone
    # Whichever A reads first, B's word on the take subject or B's write in tombo_clients
    wait_log(a, ("Cluster: client %s" % cid, "ended"))
    assert "is up but did not answer in 3000 ms: client %s's session" % cid in b.log()

    got = collect(r, set(during))  # acknowledged before raw_routes_ready drains without acking
    raw_routes_ready(pa, r, "stl/q1/probe-a")
    after = []
    for i in range(n):
        for tag, cl in (("a", pa), ("c", pc)):
            cl.publish("stl/q1/%s%d" % (tag, i), b"%s1-%d" % (tag.encode(), i), qos=1)
            cl.publish("stl/q2/%s%d" % (tag, i), b"%s2-%d" % (tag.encode(), i), qos=2)
            after += [b"%s1-%d" % (tag.encode(), i), b"%s2-%d" % (tag.encode(), i)]
    want = set(during) | set(after)
    got += collect(r, set(after))
    missing = sorted(want - set(got))
    assert not missing, "lost on B: %r\n%s\n%s" % (missing, a.log()[-2000:], b.log()[-3000:])
    twice = sorted(x for x in set(got) if got.count(x) > 1 and x in want)
    assert not twice, "given twice on B: %r" % twice
    r.disconnect(0)

    # Nothing of the client is left on A: a CONNECT there takes B's session (B logs the move),
    # also after A restarts from its store.
    time.sleep(0.5)
    pc.publish("stl/q1/offline", b"offline", qos=1)
    pa.close()
    pc.close()
    a.stop()
    a.start()
    r3 = Raw(a, version=5)
    assert r3.connect(cid, clean=False, props=props).session_present
    wait_log(b, "Cluster: client %s's session (" % cid)
    got = collect(r3, {b"offline"}, quiet=0.5)
    assert b"offline" in got, got
    r3.disconnect(0)


def test_clean_start_on_another_node_ends_the_session_left_on_the_first(nodes):
    """A persistent session left on A, its client connecting on B with clean start: A sees the
    client id written by B (tombo_clients) after its own write and ends its copy, so a later
    CONNECT without clean start (on A) finds no session (session present 0) rather than A's
    stale one."""
    a, b, _ = nodes
    cid = unique_id("cln")
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    assert r.subscribe(1, [("cln/t", 1)]) == [1]
    r.disconnect(0)
    r = Raw(b, version=5)
    assert not r.connect(cid, clean=True).session_present
    wait_log(a, "Cluster: client %s connected on another node since it was here" % cid)
    r.disconnect(0)
    time.sleep(0.5)
    r = Raw(a, version=5)
    assert not r.connect(cid, clean=False, props=[(0x11, 300)]).session_present
    r.disconnect(0)


def test_dead_node_no_responders_takes_over_at_once(nodes):
    """kill -9 of the node holding a session closes its NATS connection: B's take request gets
    NATS's "no responders" at once and B does not wait the 3 s a stuck node gets."""
    a, b, _ = nodes
    cid = unique_id("ded")
    r = Raw(a, version=5)
    r.connect(cid, clean=False, props=[(0x11, 300)])
    r.disconnect(0)
    time.sleep(0.5)
    a.stop(signal.SIGKILL)
    a.expect_exit = True
    time.sleep(0.5)
    r = Raw(b, version=5)
    t0 = time.time()
    assert not r.connect(cid, clean=False, props=[(0x11, 300)]).session_present
    took = time.time() - t0
    assert took < 2.0, took
    assert "no responders" in b.log().lower(), b.log()[-2000:]
    r.disconnect(0)
