"""libtombo against a real broker (tombo, or mosquitto with TOMBO_REFERENCE=mosquitto): the C test
programs built from tests/client/*.c, each run with a timeout; a sanitizer report fails the test."""
import subprocess

import pytest

from conftest import binary, check_sanitizers, client_env


def run(prog, *args, timeout=60):
    p = subprocess.run([binary("tests", "client", prog)] + [str(a) for a in args], capture_output=True,
                       timeout=timeout, env=client_env())
    check_sanitizers(prog, p.stderr)
    assert p.returncode == 0, "%s failed (%s):\n%s\n%s" % (prog, p.returncode, p.stdout.decode(),
                                                            p.stderr.decode()[-4000:])
    return p.stdout.decode()


@pytest.mark.parametrize("version", [4, 5], ids=["mqttv311", "mqttv5"])
def test_basic(broker, version):
    """QoS 0/1/2, properties round trip, many filters, threads, bad input, unreachable broker."""
    assert run("test_client_basic", "127.0.0.1", broker.port, version).strip().endswith("OK")


@pytest.mark.parametrize("version", [4, 5], ids=["mqttv311", "mqttv5"])
def test_refused(make_broker, version):
    """A refused CONNACK reaches on_connect with the code and ends the loop with CONN_REFUSED."""
    broker = make_broker("allow_anonymous false\n")
    assert run("test_client_refused", "127.0.0.1", broker.port, version).strip().endswith("OK")


def test_broker_limits(make_broker):
    """Maximum Packet Size and Receive Maximum from the broker's CONNACK are honoured."""
    broker = make_broker("allow_anonymous true\nmax_packet_size 1000\nmax_inflight_messages 3\n")
    assert run("test_client_limits", "127.0.0.1", broker.port).strip().endswith("OK")


@pytest.mark.skipif(__import__("conftest").is_reference(), reason="Mosquitto 2.0 offers no enhanced authentication")
def test_scram_enhanced_authentication(make_broker, tmp_path):
    """auth_method SCRAM-SHA-256: login with the broker's proof checked, tombo_reauthenticate twice
    while messages flow, a wrong password refused with 0x87 (tests/client/test_client_scram.c)."""
    pw = str(tmp_path / "passwd")
    subprocess.run([binary("src", "tools", "tombo-passwd"), "-H", "scram-sha-256", "-c", "-b", pw, "alice", "pencil"],
                   check=True, timeout=30, env=client_env(), stdout=subprocess.DEVNULL)
    broker = make_broker("allow_anonymous false\npassword_file %s\n" % pw)
    assert run("test_client_scram", "127.0.0.1", broker.port, "alice", "pencil").strip().endswith("OK")
    log = broker.log()
    assert "authentication of user alice failed: invalid proof" in log  # the wrong password only
    assert log.count("failed: invalid proof") == 1
