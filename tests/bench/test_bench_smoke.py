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
    port = free_port()
    d = tempfile.mkdtemp(prefix="tombo-bench-smoke-")
    conf = os.path.join(d, "broker.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
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
