"""Smoke test of tombo-bench --tls (issue 14): short runs over TLS against tombo (and Debian's
mosquitto for the storm) with certificates made by openssl at test time (tests/broker/pki.py),
checking the bench's exact counts -- accepted, delivered, lost -- and that --tls-resume resumes.
Never a timing assertion: the machine may be busy.

  TOMBO_BUILD=<cmake build dir>   broker <dir>/src/broker/tombo, bench <dir>/src/bench/tombo-bench
"""
import importlib.util
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))
BENCH = os.environ.get("TOMBO_BENCH", os.path.join(BUILD, "src", "bench", "tombo-bench"))

_spec = importlib.util.spec_from_file_location("tombo_pki", os.path.join(ROOT, "tests", "broker", "pki.py"))
pki_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pki_module)
_spec = importlib.util.spec_from_file_location("tombo_broker_conftest", os.path.join(ROOT, "tests", "broker",
                                                                                      "conftest.py"))
broker_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(broker_conftest)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return pki_module.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_broker(pki):
    started = []

    def start(which="tombo"):
        conf = "allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key"))
        if which == "mosquitto":
            conf += "user root\n"  # as root mosquitto would drop to a user who cannot read the certificates
        b = broker_conftest.Broker(conf, mosquitto=(which == "mosquitto")).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
        assert "ERROR: AddressSanitizer" not in b.log() and "runtime error:" not in b.log(), b.log()[-4000:]


def bench(port, *args, timeout=120):
    cmd = [BENCH] + list(args) + ["-p", str(port), "--json", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, "%s\n%s\n%s" % (" ".join(cmd), p.stdout, p.stderr)
    assert "AddressSanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("qos", [0, 1])
def test_pairs_over_tls(tls_broker, pki, qos):
    """pairs --tls --cafile: every message accepted is delivered, none lost or duplicated."""
    b = tls_broker()
    r = bench(b.port, "pairs", "-c", "2", "-q", str(qos), "-d", "2", "--warmup", "0.5", "--cafile", pki("ca.crt"))
    assert r["tls"] is True and r["tls_full"] == 4 and r["errors"] == 0, r
    assert r["accepted"] > 0 and r["received"] == r["expected"] and r["lost"] == 0, r
    assert r["duplicated"] == 0 and r["out_of_order"] == 0, r


@pytest.mark.parametrize("which", ["tombo", "mosquitto"])
def test_storm_full_and_resumed(tls_broker, pki, which):
    """storm --tls: full handshakes only; with --tls-resume nearly all later ones resume (the first
    of each client is full)."""
    b = tls_broker(which)
    full = bench(b.port, "storm", "-c", "4", "-d", "2", "--warmup", "0.5", "--cafile", pki("ca.crt"))
    assert full["errors"] == 0 and full["cycles"] > 0, full
    assert full["tls_resumed"] == 0 and full["tls_full"] >= full["cycles"], full
    res = bench(b.port, "storm", "-c", "4", "-d", "2", "--warmup", "0.5", "--cafile", pki("ca.crt"), "--tls-resume")
    assert res["errors"] == 0 and res["cycles"] > 0, res
    assert res["tls_resumed"] >= res["cycles"] - 8, res


def test_tls_refused_without_the_ca(tls_broker, pki):
    """A broker certificate the bench cannot verify: no connection, a clear message, exit 1."""
    b = tls_broker()
    p = subprocess.run([BENCH, "pairs", "-c", "1", "-d", "1", "-p", str(b.port), "--cafile", pki("other.crt"),
                        "--quiet", "--connect-timeout", "5"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "certificate verify failed: unable to get local issuer certificate" in p.stderr, p.stderr
