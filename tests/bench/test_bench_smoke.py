"""Smoke test of tombo-bench: a few seconds of every mode against a real broker, checking the
bench's exact counts (nothing lost, duplicated or out of order; no errors). Never a timing
assertion: the machine may be busy.

  TOMBO_BUILD=<cmake build dir>   broker <dir>/src/broker/tombo, bench <dir>/src/bench/tombo-bench
  TOMBO_REFERENCE=mosquitto       run against Debian's /usr/sbin/mosquitto instead
  TOMBO_BENCH=<path>              tombo-bench binary to use (default: from TOMBO_BUILD)
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))
BENCH = os.environ.get("TOMBO_BENCH", os.path.join(BUILD, "src", "bench", "tombo-bench"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker():
    yield from run_broker("")


@pytest.fixture
def ws_broker():
    """A broker whose listener speaks MQTT over WebSockets (tombo-bench --ws)."""
    yield from run_broker("protocol websockets\n")


def run_broker(listener_conf):
    port = free_port()
    d = tempfile.mkdtemp(prefix="tombo-bench-smoke-")
    conf = os.path.join(d, "broker.conf")
    with open(conf, "w") as f:
        if listener_conf and os.environ.get("TOMBO_REFERENCE") == "mosquitto":
            f.write("listener %d 127.0.0.1\n" % free_port())  # Mosquitto 2.0.11 wants a plain one too
        f.write("listener %d 127.0.0.1\n%sallow_anonymous true\n" % (port, listener_conf))
    if os.environ.get("TOMBO_REFERENCE") == "mosquitto":
        cmd = ["/usr/sbin/mosquitto", "-c", conf]
    else:
        cmd = [os.path.join(BUILD, "src", "broker", "tombo"), "-c", conf]
    log = open(os.path.join(d, "broker.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=d)
    deadline = time.time() + 10
    while True:
        assert proc.poll() is None, "broker exited: %s" % open(log.name, "rb").read()[-2000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert time.time() < deadline, "broker did not listen"
            time.sleep(0.05)
    yield port
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def bench_cmd(port, *args):
    assert os.access(BENCH, os.X_OK), "tombo-bench not built at %s (set TOMBO_BUILD or TOMBO_BENCH)" % BENCH
    return [BENCH] + list(args) + ["-p", str(port), "--json", "--quiet", "--drain", "10"]


def bench(port, *args, timeout=60):
    r = subprocess.run(bench_cmd(port, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout)


def assert_exact(res):
    """Every expected delivery arrived exactly once, in order, without errors."""
    assert res["errors"] == 0, res
    assert res["connections"] == res["clients"], res
    assert res["sent"] > 0, res
    assert res["lost"] == 0, res
    assert res["duplicated"] == 0, res
    assert res["out_of_order"] == 0, res
    assert res["foreign"] == 0, res
    assert res["distinct"] == res["expected"], res
    if res["qos"] > 0:
        assert res["completed"] == res["sent"], res


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_ws_pairs(ws_broker, qos):
    """--ws: the opening handshake, masked frames out, the broker's frames in; exact counts."""
    res = bench(ws_broker, "pairs", "-c", "10", "-q", str(qos), "-r", "200", "-d", "1", "--warmup", "0.5", "--ws")
    assert_exact(res)
    assert res["expected"] == res["sent"]


def test_ws_big_messages(ws_broker):
    """Packets over one 64 KB read and frames with a 64-bit length, both ways."""
    res = bench(ws_broker, "pairs", "-c", "2", "-q", "1", "-s", "200000", "-r", "20", "-d", "1", "--warmup", "0.2",
                "--ws")
    assert_exact(res)


def test_ws_refused_by_a_plain_listener(broker):
    """--ws against a plain MQTT listener fails with a clear error instead of hanging."""
    r = subprocess.run(bench_cmd(broker, "pairs", "-c", "1", "-d", "0.5", "--warmup", "0", "--ws",
                                 "--connect-timeout", "3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode != 0 or json.loads(r.stdout)["errors"] > 0
    assert b"WebSocket handshake" in r.stderr, r.stderr


def test_conn_holds_clients(broker):
    res = bench(broker, "conn", "-c", "300", "-d", "1", "--warmup", "0", "--src", "2")
    assert res["errors"] == 0 and res["connections"] == 300, res


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pairs_rate(broker, qos):
    res = bench(broker, "pairs", "-c", "10", "-q", str(qos), "-r", "200", "-d", "1", "--warmup", "0.5")
    assert_exact(res)
    assert res["expected"] == res["sent"]


@pytest.mark.parametrize("version", [3, 5])
def test_pairs_versions(broker, version):
    res = bench(broker, "pairs", "-c", "4", "-q", "1", "-r", "200", "-d", "1", "--warmup", "0.5", "-V", str(version))
    assert_exact(res)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pairs_max_rate(broker, qos):
    # max rate with the end-to-end window (16 < Mosquitto's 20 in flight per subscriber)
    res = bench(broker, "pairs", "-c", "4", "-q", str(qos), "-w", "16", "-d", "1", "--warmup", "0.5")
    assert_exact(res)
    assert res["latency_us"]["count"] > 0


def test_fanin(broker):
    res = bench(broker, "fanin", "-c", "8", "-q", "1", "-r", "100", "-d", "1", "--warmup", "0.5")
    assert_exact(res)
    assert res["subscribers"] == 1 and res["expected"] == res["sent"]


def test_fanout(broker):
    res = bench(broker, "fanout", "-c", "20", "-q", "0", "-r", "100", "-d", "1", "--warmup", "0.5")
    assert_exact(res)
    assert res["expected"] == 20 * res["sent"]


def test_pub_then_sub_processes(broker):
    """`sub` and `pub` in two processes: the subscriber checks every publisher's sequence."""
    cmd = [a for a in bench_cmd(broker, "sub", "-c", "2", "-t", "smoke/%i", "-q", "1", "-d", "6",
                                "--warmup", "0", "--drain", "0") if a != "--quiet"]
    sub = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the live line says "run" once every subscription is acknowledged
    while True:
        line = sub.stderr.readline()
        assert line, "subscriber exited before subscribing"
        if b"] run" in line:
            break
    pub = bench(broker, "pub", "-c", "2", "-t", "smoke/%i", "-q", "1", "-r", "100", "-d", "1", "--warmup", "0")
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err.decode(errors="replace")
    res = json.loads(out)
    assert pub["errors"] == 0 and pub["completed"] == pub["sent"] > 0, pub
    assert res["errors"] == 0, res
    assert res["received"] == pub["sent"], (res, pub)
    assert res["lost"] == 0 and res["duplicated"] == 0 and res["out_of_order"] == 0, res


def test_plot_is_svg(broker, tmp_path):
    svg = tmp_path / "plot.svg"
    res = bench(broker, "pairs", "-c", "2", "-r", "100", "-d", "1", "--warmup", "0", "--plot", str(svg))
    assert_exact(res)
    root = ET.parse(str(svg)).getroot()
    assert root.tag.endswith("svg")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) >= 3


def test_open_loop_acks_everything(broker):
    """--open-loop: no end-to-end window; the broker may drop, but every QoS 1 flow completes."""
    res = bench(broker, "pairs", "-c", "4", "-q", "1", "-w", "16", "--open-loop", "-d", "1", "--warmup", "0.2")
    assert res["errors"] == 0 and res["open_loop"] and not res["e2e_window"], res
    assert res["completed"] == res["sent"] == res["accepted"] > 0, res
    assert res["distinct"] + res["lost"] == res["expected"], res


def test_many_topics_wildcards(broker):
    """--topics spreads messages over topic(0..N-1); two subscribers, +/+/temp and site/#, hear all."""
    res = bench(broker, "fanin", "-c", "4", "-S", "2", "-q", "1", "-r", "200", "-d", "1", "--warmup", "0.2",
                "-t", "site/%i/temp", "--topics", "1000", "-F", "+/+/temp,site/#")
    assert_exact(res)
    assert res["topics"] == 1000 and res["expected"] == 2 * res["sent"]


def test_large_payload(broker):
    """Packets larger than one 64 KB read are reassembled in the connection's buffer."""
    res = bench(broker, "pairs", "-c", "2", "-q", "1", "-s", "300000", "-r", "20", "-d", "1", "--warmup", "0.2")
    assert_exact(res)


@pytest.mark.parametrize("expiry", ["0", "300"])
def test_storm(broker, expiry):
    res = bench(broker, "storm", "-c", "8", "--session-expiry", expiry, "-d", "1", "--warmup", "0.2")
    assert res["errors"] == 0, res
    assert res["cycles"] > 8 and res["cycle_rate"] > 0, res
    assert res["latency_us"]["count"] > 0


def test_retained(broker):
    # 500 messages: a broker may cap what one subscription is sent (the issue-12 scenario stores 100k)
    res = bench(broker, "retained", "-c", "4", "-n", "500", "-q", "1", "-t", "smoke/ret/%i")
    # a broker sends retained messages in its store's order, not the publishers': no order check
    assert res["errors"] == 0 and res["connections"] == res["clients"], res
    assert res["lost"] == 0 and res["duplicated"] == 0 and res["foreign"] == 0, res
    assert res["accepted"] == 500 and res["distinct"] == 500, res
    assert res["retained_secs"] > 0 and res["load_secs"] > 0, res


def run_compare(tmp_path, peers, scenarios, extra=()):
    scen = tmp_path / "scenarios.txt"
    scen.write_text(scenarios)
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "compare"), "--scenarios-file", str(scen),
           "--tombo", os.path.join(BUILD, "src", "broker", "tombo"), "--bench", BENCH,
           "--relay", os.path.join(BUILD, "src", "bench", "tombo-bench-relay"),
           "--peers", peers, "-n", "1", "-d", "0.5", "--warmup", "0.2", "--json", str(tmp_path / "out.json")]
    r = subprocess.run(cmd + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode(), json.load(open(str(tmp_path / "out.json")))


NATS = os.environ.get("TOMBO_NATS", "/usr/sbin/nats-server")


@pytest.mark.skipif(not os.access(NATS, os.X_OK), reason="nats-server not installed (scripts/deps.sh test)")
def test_compare_with_nats_and_relay(tmp_path):
    out, runs = run_compare(tmp_path, "tombo,nats,relay",
                            "p0 | pairs -c 4 -q 0 -w 16 | pairs QoS 0 | target=tombo/relay>=0.01 target=tombo/nats>0\n"
                            "p2 | pairs -c 4 -q 2 -w 16 | pairs QoS 2 | target=tombo/nats>1\n",
                            ["--nats", NATS, "--plot-dir", str(tmp_path / "plots")])
    assert "tombo/nats" in out and "tombo/relay" in out, out
    assert "nats n/a: QoS 2" in out and "relay n/a" in out, out
    assert "accepted (median)" in out and "delivered (median)" in out and "lost (median)" in out, out
    assert "target tombo/relay>=0.01" in out, out
    got = sorted((r["scenario"], r["broker"]) for r in runs)
    assert got == [("p0", "nats"), ("p0", "relay"), ("p0", "tombo"), ("p2", "tombo")], (got, out)
    for r in runs:
        assert r["errors"] == 0 and r["lost"] == 0 and r["broker_rss_mb"] > 0, r
    assert sorted(os.listdir(str(tmp_path / "plots"))) == ["p0-nats.svg", "p0-relay.svg", "p0-tombo.svg",
                                                          "p2-tombo.svg"]


def test_compare_ws_against_mosquitto(tmp_path):
    """A --ws scenario runs tombo and Mosquitto each on a `protocol websockets` listener."""
    out, runs = run_compare(tmp_path, "tombo,mosquitto,relay", "w | pairs -c 4 -q 0 -w 16 --ws | ws pairs\n")
    assert "relay n/a: no MQTT over WebSockets" in out, out
    assert sorted(r["broker"] for r in runs) == ["mosquitto", "tombo"], out
    for r in runs:
        assert r["errors"] == 0 and r["lost"] == 0 and r["received"] > 0, r


def test_compare_missing_nats_is_skipped(tmp_path):
    out, runs = run_compare(tmp_path, "tombo,nats", "c | conn -c 10 | idle\n", ["--nats", "/nonexistent/nats-server"])
    assert "peer nats skipped" in out, out
    assert [r["broker"] for r in runs] == ["tombo"]


def test_compare_durable_ratio(tmp_path):
    out, runs = run_compare(tmp_path, "tombo",
                            "m | pairs -c 2 -q 1 -r 50 --session-expiry 60 | in memory\n"
                            "d | pairs -c 2 -q 1 -r 50 --session-expiry 60 | durable | persist target=tombo/@m>=0.5\n")
    assert "(persistence on)" in out and "target tombo/@m>=0.5" in out, out
    assert len(runs) == 2 and all(r["errors"] == 0 and r["lost"] == 0 for r in runs), runs


def test_compare_ratio_of_ratios(tmp_path):
    """PEER/OTHER@NAME: this scenario's tombo/Mosquitto ratio over the one of scenario NAME (the TLS
    rows' target); a bad form is refused when the scenario file is read."""
    out, runs = run_compare(tmp_path, "tombo,mosquitto",
                            "a | pairs -c 2 -q 0 -w 16 | plain\n"
                            "b | pairs -c 2 -q 0 -w 16 | again | target=tombo/mosquitto@a>0 "
                            "target=cpu:tombo/mosquitto@a>0 target=tombo/mosquitto@zz>0\n")
    assert len(runs) == 4, out
    got = {}
    for line in out.splitlines():
        if line.strip().startswith("target "):
            parts = line.split()
            got[parts[1]] = " ".join(parts[2:])
    assert got["tombo/mosquitto@a>0"].endswith("met") and "NOT" not in got["tombo/mosquitto@a>0"], out
    assert got["cpu:tombo/mosquitto@a>0"].endswith("met") and "NOT" not in got["cpu:tombo/mosquitto@a>0"], out
    assert got["tombo/mosquitto@zz>0"] == "- n/a (zz not run)", out
    scen = tmp_path / "bad.txt"
    scen.write_text("x | pairs -c 2 | bad | target=tombo@a>0\n")
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "compare"), "--scenarios-file", str(scen),
                        "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode != 0 and b"bad target" in r.stderr, r.stderr
