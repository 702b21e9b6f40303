"""tombo-pub / tombo-sub --auth-method SCRAM-SHA-256 (libtombo's enhanced authentication) against the
tombo broker, with a password file written by tombo-passwd -H scram-sha-256. Mosquitto 2.0 offers
no enhanced authentication, so there is no reference run.
"""
import subprocess
import time

import pytest

from conftest import binary, check_sanitizers, client_env, is_reference

pytestmark = pytest.mark.skipif(is_reference(), reason="Mosquitto 2.0 offers no enhanced authentication")

SCRAM = ["-V", "5", "--auth-method", "SCRAM-SHA-256"]


@pytest.fixture
def scram_broker(make_broker, tmp_path):
    pw = str(tmp_path / "passwd")
    subprocess.run([binary("src", "tools", "tombo-passwd"), "-H", "scram-sha-256", "-c", "-b", pw, "alice", "pencil"],
                   check=True, timeout=30, env=client_env(), stdout=subprocess.DEVNULL)
    return make_broker("allow_anonymous false\npassword_file %s\n" % pw)


def tool(name, broker, *args, timeout=15):
    p = subprocess.run([binary("src", "tools", name), "-h", "127.0.0.1", "-p", str(broker.port)] + list(args),
                       capture_output=True, timeout=timeout, env=client_env())
    check_sanitizers(name, p.stderr)
    return p


def test_pub_and_sub_log_in_with_scram(scram_broker):
    """Both tools complete the SCRAM exchange (the broker's proof is checked by libtombo before the
    CONNACK counts) and carry a message."""
    sub = subprocess.Popen([binary("src", "tools", "tombo-sub"), "-h", "127.0.0.1", "-p", str(scram_broker.port),
                            "-u", "alice", "-P", "pencil", "-t", "s/#", "-v", "-C", "1", "-d"] + SCRAM,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
    time.sleep(1.5)
    p = tool("tombo-pub", scram_broker, "-u", "alice", "-P", "pencil", "-t", "s/x", "-m", "hello", *SCRAM)
    assert p.returncode == 0, p.stderr
    out, err = sub.communicate(timeout=15)
    check_sanitizers("tombo-sub", err)
    assert sub.returncode == 0
    assert b"sending AUTH" in out and b"received CONNACK (0)" in out
    assert b"\ns/x hello\n" in out
    log = scram_broker.log()
    assert "SCRAM-SHA-256 authentication of user alice failed" not in log


def test_wrong_password_is_refused(scram_broker):
    """A wrong SCRAM password: CONNACK 0x87, the tool exits with that code, as for a plain refusal."""
    p = tool("tombo-pub", scram_broker, "-u", "alice", "-P", "wrong", "-t", "s/x", "-m", "x", *SCRAM)
    assert p.returncode == 0x87
    assert b"Not authorized" in p.stderr
    assert "SCRAM-SHA-256 authentication of user alice failed: invalid proof" in scram_broker.log()


@pytest.mark.parametrize("args", [["-u", "alice", "-P", "pencil", "--auth-method", "SCRAM-SHA-256"],
                                  ["-V", "5", "-u", "alice", "--auth-method", "SCRAM-SHA-256"],
                                  ["-V", "5", "-u", "alice", "-P", "pencil", "--auth-method", "PLAIN"]])
def test_auth_method_needs_v5_and_credentials(scram_broker, args):
    """--auth-method needs -V 5, -u and -P, and names SCRAM-SHA-256: anything else is a usage error."""
    p = tool("tombo-pub", scram_broker, "-t", "s/x", "-m", "x", *args)
    assert p.returncode == 1
    assert b"--auth-method" in p.stderr or b"authentication method" in p.stderr
