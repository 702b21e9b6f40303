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
