"""tombo-passwd against mosquitto_passwd: same options, messages, exit codes and file format, so a
password file made or edited by either tool works with both brokers.

The cross-checks start Debian's mosquitto (always, whatever TOMBO_REFERENCE says) on a password file
written by tombo-passwd and log in over a raw socket; tests/broker/test_auth.py does the other
direction (files from mosquitto_passwd against the broker under test).
"""
import os
import re
import socket
import stat
import struct
import subprocess

import pytest

from conftest import binary, check_sanitizers, client_env

HASH7 = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")
HASH6 = re.compile(r"^\$6\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


def tool(name):
    return binary("src", "tools", "tombo-passwd") if name == "tombo" else "/usr/bin/mosquitto_passwd"


def run(name, *args, stdin=b""):
    """Run tombo-passwd or mosquitto_passwd; (exit code, stdout, stderr) as text."""
    p = subprocess.run([tool(name)] + list(args), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, env=client_env())
    check_sanitizers(name, p.stderr)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def entries(path):
    """{user: hash} of a password file (comment and blank lines left out)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                user, _, h = line.partition(":")
                out[user] = h
    return out


def mqtt_login(port, username, password):
    """CONNECT (MQTT 3.1.1) with a user name and password; return the CONNACK return code."""
    def s(b):
        return struct.pack("!H", len(b)) + b
    body = s(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30) + s(b"pwtest") + s(username.encode()) + \
        s(password.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        data = b""
        while len(data) < 4:
            chunk = sock.recv(4 - len(data))
            if not chunk:
                break
            data += chunk
    assert len(data) == 4 and data[0] == 0x20, "no CONNACK: %r" % data
    return data[3]


@pytest.fixture
def mosquitto(make_broker, monkeypatch):
    """Factory: a Debian mosquitto broker using password file `path`."""
    def make(path):
        monkeypatch.setenv("TOMBO_REFERENCE", "mosquitto")
        try:
            # As root, mosquitto drops to user "mosquitto", which cannot read a 0600 file in a
            # private directory: "user root" keeps it root (ignored when not run as root).
            return make_broker("user root\nallow_anonymous false\npassword_file %s\n" % path)
        finally:
            monkeypatch.delenv("TOMBO_REFERENCE")
    return make


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
def test_create_batch_writes_pbkdf2_line(tmp_path, name):
    """-c -b writes `user:$7$101$SALT$HASH` (12-byte salt, 64-byte hash, base64), nothing on stdout."""
    f = str(tmp_path / "pw")
    rc, out, err = run(name, "-c", "-b", f, "alice", "secret")
    assert (rc, out, err) == (0, "", "")
    e = entries(f)
    assert list(e) == ["alice"]
    assert HASH7.match(e["alice"]), e["alice"]


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
def test_sha512_option_writes_old_format(tmp_path, name):
    f = str(tmp_path / "pw")
    assert run(name, "-H", "sha512", "-c", "-b", f, "carol", "c1")[0] == 0
    assert HASH6.match(entries(f)["carol"])
    assert run(name, "-H", "sha512-pbkdf2", "-b", f, "dave", "d1")[0] == 0
    assert HASH7.match(entries(f)["dave"])


def test_new_file_is_private(tmp_path):
    """tombo-passwd creates the file 0600 (mosquitto_passwd follows the umask); an edited file
    keeps its mode."""
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", "-b", f, "alice", "secret")[0] == 0
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    os.chmod(f, 0o640)
    assert run("tombo", "-b", f, "bob", "x")[0] == 0
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640
    assert not [n for n in os.listdir(str(tmp_path)) if n != "pw"], "temporary file left behind"


def test_salts_are_random(tmp_path):
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", "-b", f, "a", "same")[0] == 0
    assert run("tombo", "-b", f, "b", "same")[0] == 0
    e = entries(f)
    assert e["a"].split("$")[3] != e["b"].split("$")[3]


def test_mosquitto_accepts_tombo_passwd_file(tmp_path, mosquitto):
    """Both hash formats written by tombo-passwd log in on Mosquitto 2.0.11; a wrong password, a
    deleted user and an unknown user are refused (return code 5, as Mosquitto answers)."""
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", "-b", f, "alice", "secret")[0] == 0
    assert run("tombo", "-H", "sha512", "-b", f, "carol", "c1")[0] == 0
    assert run("tombo", "-b", f, "bob", "p w:ü")[0] == 0
    assert run("tombo", "-b", f, "gone", "x")[0] == 0
    assert run("tombo", "-D", f, "gone")[0] == 0
    b = mosquitto(f)
    assert mqtt_login(b.port, "alice", "secret") == 0
    assert mqtt_login(b.port, "carol", "c1") == 0
    assert mqtt_login(b.port, "bob", "p w:ü") == 0
    assert mqtt_login(b.port, "alice", "Secret") == 5
    assert mqtt_login(b.port, "gone", "x") == 5
    assert mqtt_login(b.port, "nobody", "x") == 5


def test_tools_edit_each_others_files(tmp_path, mosquitto):
    """A file started by mosquitto_passwd, edited by tombo-passwd, edited again by mosquitto_passwd,
    keeps every user working on Mosquitto."""
    f = str(tmp_path / "pw")
    assert run("mosquitto", "-c", "-b", f, "m1", "pw1")[0] == 0
    assert run("tombo", "-b", f, "t1", "pw2")[0] == 0
    assert run("tombo", "-b", f, "m1", "pw1-new")[0] == 0   # update in place
    assert run("mosquitto", "-b", f, "m2", "pw3")[0] == 0
    assert run("mosquitto", "-D", f, "t1")[0] == 0
    assert run("tombo", "-b", f, "t1", "pw4")[0] == 0
    assert list(entries(f)) == ["m1", "m2", "t1"]
    b = mosquitto(f)
    assert mqtt_login(b.port, "m1", "pw1-new") == 0
    assert mqtt_login(b.port, "m1", "pw1") == 5
    assert mqtt_login(b.port, "m2", "pw3") == 0
    assert mqtt_login(b.port, "t1", "pw4") == 0


def test_update_keeps_other_lines_and_order(tmp_path):
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", "-b", f, "a", "1")[0] == 0
    assert run("tombo", "-b", f, "b", "2")[0] == 0
    assert run("tombo", "-b", f, "c", "3")[0] == 0
    before = entries(f)
    assert run("tombo", "-b", f, "b", "22")[0] == 0
    after = entries(f)
    assert list(after) == ["a", "b", "c"]
    assert after["a"] == before["a"] and after["c"] == before["c"] and after["b"] != before["b"]


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
def test_prompted_password(tmp_path, name):
    """Without -b the password is read twice (prompts on stdout); a mismatch or an empty password
    fails and leaves the file alone."""
    f = str(tmp_path / "pw")
    rc, out, err = run(name, "-c", f, "alice", stdin=b"secret\nsecret\n")
    assert rc == 0, err
    assert "Password: " in out and "Reenter password: " in out
    first = entries(f)["alice"]
    rc, out, err = run(name, f, "alice", stdin=b"one\ntwo\n")
    assert rc != 0 and "Error: Passwords do not match." in err
    rc, out, err = run(name, f, "alice", stdin=b"\n\n")
    assert rc == 1 and "Error: Empty password." in err
    assert entries(f)["alice"] == first


def test_prompted_password_logs_in(tmp_path, mosquitto):
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", f, "alice", stdin=b"typed pw\ntyped pw\n")[0] == 0
    b = mosquitto(f)
    assert mqtt_login(b.port, "alice", "typed pw") == 0


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
def test_delete(tmp_path, name):
    f = str(tmp_path / "pw")
    assert run(name, "-c", "-b", f, "a", "1")[0] == 0
    assert run(name, "-b", f, "b", "2")[0] == 0
    assert run(name, "-D", f, "a")[0] == 0
    assert list(entries(f)) == ["b"]
    rc, out, err = run(name, "-D", f, "nobody")
    assert rc == 1 and "Warning: User nobody not found in password file." in err
    assert list(entries(f)) == ["b"]


def test_update_plain_text_file(tmp_path, mosquitto):
    """-U hashes each plain-text password in place; comments, blank lines and lines already hashed
    are kept (mosquitto_passwd 2.0.11 refuses blank lines and would hash a hash again)."""
    f = str(tmp_path / "pw")
    assert run("tombo", "-c", "-b", f, "h", "hashed")[0] == 0
    hashed = entries(f)["h"]
    with open(f, "w") as fp:
        fp.write("# users\np1:pass1\n\np2:pass 2\nh:%s\n" % hashed)
    rc, out, err = run("tombo", "-U", f)
    assert (rc, out, err) == (0, "", "")
    with open(f) as fp:
        lines = fp.read().split("\n")
    assert lines[0] == "# users" and lines[2] == ""
    e = entries(f)
    assert HASH7.match(e["p1"]) and HASH7.match(e["p2"]) and e["h"] == hashed
    b = mosquitto(f)
    assert mqtt_login(b.port, "p1", "pass1") == 0
    assert mqtt_login(b.port, "p2", "pass 2") == 0
    assert mqtt_login(b.port, "h", "hashed") == 0


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
@pytest.mark.parametrize("args,message", [
    (["-b", "{f}", "a:b", "x"], "Error: Username must not contain the ':' character."),
    (["-H", "md5", "-b", "{f}", "a", "x"], "Error: Unknown hash type 'md5'"),
    (["-c", "-D", "{f}", "a"], "Error: -c and -D cannot be used together."),
    (["-b", "{missing}", "a", "x"], "Error: Unable to open password file {missing}. No such file or directory."),
    (["-D", "{missing}", "a"], "Error: Unable to open password file {missing}. No such file or directory."),
    (["-U"], "Error: -U argument given but password file missing."),
    (["-c", "{f}"], "Error: -c argument given but password file or username missing."),
    (["-D", "{f}"], "Error: -D argument given but password file or username missing."),
])
def test_errors_match_mosquitto_passwd(tmp_path, name, args, message):
    f = str(tmp_path / "pw")
    missing = str(tmp_path / "nofile")
    assert run("tombo", "-c", "-b", f, "keep", "x")[0] == 0
    before = open(f).read()
    args = [a.format(f=f, missing=missing) for a in args]
    rc, out, err = run(name, *args)
    assert rc == 1
    assert message.format(missing=missing) in err
    assert open(f).read() == before


@pytest.mark.parametrize("name", ["tombo", "mosquitto"])
def test_usage(name):
    rc, out, err = run(name)
    assert rc == 1
    assert "Usage:" in out and "[-H sha512 | -H sha512-pbkdf2] [-c | -D] passwordfile username" in out
