"""Smoke test of bench/cluster (issue 11 "Benchmark", docs/cluster.md): one short QoS 1 run of every
row -- lone, one node, across A->B and A->B,C, durable, NATS's MQTT listener on one server and
across a NATS cluster -- with a few clients, checking that every row is in the table and the JSON
and that QoS 1 lost nothing. Never a timing assertion: the machine may be busy.

  TOMBO_BUILD=<cmake build dir>   broker <dir>/src/broker/tombo, bench <dir>/src/bench/tombo-bench
  TOMBO_NATS=<path>               nats-server (default /usr/sbin/nats-server)
"""
import json
import os
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))
NATS = os.environ.get("TOMBO_NATS", "/usr/sbin/nats-server")
LABELS = ["lone", "one node", "across A->B", "across A->B,C", "durable A->B", "nats-mqtt one server",
          "nats-mqtt across"]

pytestmark = [
    pytest.mark.skipif(not os.access(NATS, os.X_OK), reason="nats-server not installed (scripts/deps.sh test)"),
    pytest.mark.skipif(os.environ.get("TOMBO_REFERENCE") == "mosquitto", reason="a tombo feature"),
]


def test_every_row_runs_and_qos1_loses_nothing():
    out = os.path.join(tempfile.mkdtemp(prefix="tombo-bench-cluster-test-"), "runs.json")
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "cluster"),
           "--tombo", os.path.join(BUILD, "src", "broker", "tombo"),
           "--bench", os.path.join(BUILD, "src", "bench", "tombo-bench"), "--nats", NATS,
           "-c", "4", "-d", "1", "--warmup", "0", "--settle", "0.5", "--qos", "1", "--json", out]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=170)
    text = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in LABELS:
            table[cells[0]] = cells
    assert sorted(table) == sorted(LABELS), text + r.stderr.decode(errors="replace")[-3000:]
    for label, cells in table.items():
        assert cells[2] != "failed", (label, text, r.stderr.decode(errors="replace")[-3000:])
        assert cells[1] == "1", (label, cells)
        if not label.startswith("nats-mqtt"):
            assert cells[6] == "0", (label, cells)  # QoS 1, lost 0
    assert "check QoS 1: one node vs lone" in text, text
    runs = json.load(open(out))
    assert sorted({x["label"] for x in runs}) == sorted(LABELS)
    for x in runs:
        # NATS's MQTT listener is the peer measured, not the code under test: its rows must run,
        # and what they lose or fail (a client of 4 timing out under load, CI 2026-12-06) is
        # reported by bench/cluster, not asserted here.
        if x["label"].startswith("nats-mqtt"):
            assert x["accepted"] > 0, x
            continue
        assert x["lost"] == 0 and x["errors"] == 0, (x["label"], x)
        assert x["accepted"] > 0 and x["distinct"] == x["accepted"], (x["label"], x)
        assert x["server_us_per_msg"] is not None and x["servers_alive"], x
