"""tombo-sub and tombo-pub against mosquitto_sub and mosquitto_pub: for each row of the tables, the
same flags must give the same output and exit code (issue 3: scripts work after a rename).

Subscriber rows: mosquitto_sub and tombo-sub run side by side on the same broker, the same messages
are published (by mosquitto_pub), and their stdout and exit codes are compared.
Publisher rows: mosquitto_pub and tombo-pub publish with the same flags to topics of their own; one
mosquitto_sub per tool prints what arrived; the outputs are compared.
"""
import os
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import binary, check_sanitizers, client_env

SETTLE = 1.5  # seconds for subscribers to have their subscriptions in place (generous: ASan, busy CI)


def mpub(broker, *args, stdin=None):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port)] + list(args), check=True,
                   timeout=10, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start(cmd, broker, args, stdin=subprocess.DEVNULL):
    return subprocess.Popen([cmd, "-h", "127.0.0.1", "-p", str(broker.port)] + list(args), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())


def finish(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    return out, err, proc.returncode


# (id, subscriber flags, publishes (mosquitto_pub flags each), messages retained before subscribing,
#  seconds to wait for the subscribers to exit by themselves before SIGTERM)
P = [["-t", "t/a", "-m", "hello"], ["-t", "t/b", "-m", "two words"], ["-t", "t/c", "-n"]]
SUB_ROWS = [
    ("plain", ["-t", "t/#", "-C", "3"], P, [], 5),
    ("verbose", ["-t", "t/#", "-v", "-C", "3"], P, [], 5),
    ("no-eol", ["-t", "t/#", "-N", "-C", "3"], P, [], 5),
    ("verbose-no-eol", ["-t", "t/#", "-v", "-N", "-C", "3"], P, [], 5),
    ("qos1", ["-t", "t/#", "-q", "1", "-v", "-C", "2"], [["-t", "t/a", "-m", "x", "-q", "1"],
                                                          ["-t", "t/b", "-m", "y", "-q", "2"]], [], 5),
    ("qos2", ["-t", "t/#", "-q", "2", "-F", "%t %p %q", "-C", "2"], [["-t", "t/a", "-m", "x", "-q", "2"],
                                                                      ["-t", "t/b", "-m", "y", "-q", "1"]], [], 5),
    ("two-topics", ["-t", "t/a", "-t", "t/b", "-v", "-C", "2"], P, [], 5),
    ("format", ["-t", "t/#", "-F", "%t|%p|%q|%r|%l|%x|%X|%%", "-C", "3"], P, [], 5),
    ("format-width", ["-t", "t/#", "-F", "[%10t][%-10t][%5l][%3m]", "-C", "3"], P, [], 5),
    ("format-escapes", ["-t", "t/#", "-F", "%t\\t%p\\n\\\\@@", "-C", "3"], P, [], 5),
    ("format-no-eol", ["-t", "t/#", "-F", "%t=%p;", "-N", "-C", "3"], P, [], 5),
    ("filter-out", ["-t", "t/#", "-T", "t/b", "-v"], P, [], 2),
    ("no-retained", ["-t", "t/#", "-R", "-v"], P, [["-t", "t/old", "-m", "stale", "-r"]], 2),
    ("retained", ["-t", "t/#", "-F", "%t %p %r", "-C", "4"], P, [["-t", "t/old", "-m", "stale", "-r"]], 5),
    ("retained-only", ["-t", "t/#", "--retained-only", "-v"], P, [["-t", "t/old", "-m", "stale", "-r"]], 5),
    ("count", ["-t", "t/#", "-v", "-C", "1"], P, [], 5),
    ("mqttv5", ["-t", "t/#", "-V", "mqttv5", "-v", "-C", "3"], P, [], 5),
    ("mqttv31", ["-t", "t/#", "-V", "mqttv31", "-v", "-C", "3"], P, [], 5),
    ("v5-props", ["-t", "t/#", "-V", "5", "-F", "%t %p %C %R %D %P %F", "-C", "1"],
     [["-t", "t/p", "-m", "m", "-V", "5", "-D", "publish", "content-type", "text/plain", "-D", "publish",
       "response-topic", "r/t", "-D", "publish", "correlation-data", "abc", "-D", "publish", "user-property",
       "k1", "v1", "-D", "publish", "user-property", "k2", "v2", "-D", "publish", "payload-format-indicator",
       "1"]], [], 5),
    ("v5-sub-id", ["-t", "t/#", "-V", "5", "-D", "subscribe", "subscription-identifier", "7", "-F", "%t %S",
                   "-C", "1"], P, [], 5),
    ("id-keepalive-user", ["-t", "t/#", "-i", "fixed-sub-id", "-k", "30", "-u", "user", "-P", "pw", "-v",
                           "-C", "3"], P, [], 5),
    ("id-prefix", ["-t", "t/#", "-I", "pre-", "-v", "-C", "3"], P, [], 5),
    ("timeout", ["-t", "t/#", "-v", "-W", "4"], P, [], 10),
    ("unsubscribe", ["-t", "t/#", "-U", "t/#", "-v", "-W", "4"], P, [], 10),
    ("v5-connect-props", ["-t", "t/#", "-V", "5", "-D", "connect", "user-property", "a", "b", "-D", "connect",
                          "receive-maximum", "10", "-x", "60", "-v", "-C", "3"], P, [], 5),
    ("will", ["-t", "t/#", "--will-topic", "w/t", "--will-payload", "bye", "--will-qos", "1",
              "--will-retain", "-v", "-C", "3"], P, [], 5),
]


@pytest.mark.parametrize("row", SUB_ROWS, ids=[r[0] for r in SUB_ROWS])
def test_sub_same_output(make_broker, row):
    name, flags, pubs, retained, wait = row
    broker = make_broker()
    for r in retained:
        mpub(broker, *r)
    suffix = {"mosquitto_sub": [], "tombo-sub": []}
    if "-i" in flags:  # two clients cannot share an id
        i = flags.index("-i")
        flags = flags[:i] + flags[i + 2:]
        suffix = {"mosquitto_sub": ["-i", "fixed-sub-m"], "tombo-sub": ["-i", "fixed-sub-t"]}
    ref = start("mosquitto_sub", broker, flags + suffix["mosquitto_sub"])
    ours = start(binary("src", "tools", "tombo-sub"), broker, flags + suffix["tombo-sub"])
    time.sleep(SETTLE)
    for p in pubs:
        mpub(broker, *p)
    r_out, r_err, r_rc = finish(ref, wait)
    o_out, o_err, o_rc = finish(ours, wait)
    check_sanitizers("tombo-sub", o_err)
    assert o_out == r_out, "stdout differs:\nmosquitto_sub: %r\ntombo-sub:     %r\nstderr: %s" % (r_out, o_out, o_err)
    assert o_rc == r_rc, "exit code: mosquitto_sub %s, tombo-sub %s (%s)" % (r_rc, o_rc, o_err)
    assert o_err.splitlines()[:1] == r_err.splitlines()[:1]


# Invalid command lines: same exit code and same first line of stderr.
BAD_SUB = [
    ("no-topic", []),
    ("bad-qos", ["-t", "a", "-q", "3"]),
    ("bad-version", ["-t", "a", "-V", "7"]),
    ("bad-filter", ["-t", "a/#/b"]),
    ("bad-format", ["-t", "a", "-F", "%z"]),
    ("incomplete-format", ["-t", "a", "-F", "abc%"]),
    ("bad-escape", ["-t", "a", "-F", "\\q"]),
    ("bad-property", ["-t", "a", "-V", "5", "-D", "connect", "no-such-prop", "1"]),
    ("unknown-option", ["-t", "a", "--no-such-option"]),
    ("url-no-topic", ["-L", "mqtt://127.0.0.1"]),
    ("help", ["--help"]),
]


@pytest.mark.parametrize("row", BAD_SUB, ids=[r[0] for r in BAD_SUB])
def test_sub_bad_args(broker, row):
    name, flags = row
    r = subprocess.run(["mosquitto_sub", "-p", str(broker.port)] + flags, capture_output=True, timeout=10)
    o = subprocess.run([binary("src", "tools", "tombo-sub"), "-p", str(broker.port)] + flags, capture_output=True,
                       timeout=10, env=client_env())
    check_sanitizers("tombo-sub", o.stderr)
    assert o.returncode == r.returncode
    assert o.stderr.splitlines()[:1] == r.stderr.splitlines()[:1]


def test_sub_connection_refused():
    from conftest import free_port
    port = str(free_port())
    r = subprocess.run(["mosquitto_sub", "-p", port, "-t", "a"], capture_output=True, timeout=10)
    o = subprocess.run([binary("src", "tools", "tombo-sub"), "-p", port, "-t", "a"], capture_output=True,
                       timeout=10, env=client_env())
    check_sanitizers("tombo-sub", o.stderr)
    assert (o.returncode, o.stderr) == (r.returncode, r.stderr)


# Publisher rows: (id, publisher flags, stdin bytes, subscriber -F format, messages expected)
PUB_ROWS = [
    ("message", ["-m", "hello"], None, "%p %q %r", 1),
    ("null", ["-n"], None, "%l %q", 1),
    ("qos1", ["-m", "q1", "-q", "1"], None, "%p %q", 1),
    ("qos2", ["-m", "q2", "-q", "2"], None, "%p %q", 1),
    ("stdin-file", ["-s"], b"all of\nstdin\n", "%p|%l", 1),
    ("stdin-lines", ["-l"], b"line one\nline two\nthree\n", "%p", 3),
    ("stdin-lines-qos2", ["-l", "-q", "2"], b"a\nb\nc\nd\n", "%p %q", 4),
    ("repeat", ["-m", "again", "--repeat", "3"], None, "%p", 3),
    ("mqttv5", ["-m", "five", "-V", "mqttv5"], None, "%p", 1),
    ("mqttv31", ["-m", "three-one", "-V", "mqttv31"], None, "%p", 1),
    ("v5-props", ["-m", "props", "-V", "5", "-D", "publish", "content-type", "text/plain", "-D", "publish",
                  "user-property", "k", "v", "-D", "publish", "response-topic", "resp", "-D", "publish",
                  "correlation-data", "cd", "-D", "publish", "message-expiry-interval", "100"], None,
     "%p %C %P %R %D", 1),
    ("user-pass-id", ["-m", "x", "-u", "u", "-P", "p", "-k", "20", "-I", "pref"], None, "%p", 1),
    ("persistent", ["-m", "x", "-c", "-i", "pubid", "-q", "1"], None, "%p %q", 1),
    ("session-expiry", ["-m", "x", "-V", "5", "-x", "30", "-i", "pubid5"], None, "%p", 1),
    ("will", ["-m", "w", "--will-topic", "w/x", "--will-payload", "gone", "--will-qos", "1"], None, "%p", 1),
]


@pytest.mark.parametrize("row", PUB_ROWS, ids=[r[0] for r in PUB_ROWS])
def test_pub_same_result(make_broker, row, tmp_path):
    name, flags, stdin, fmt, count = row
    broker = make_broker()
    results = {}
    subs = {}
    for tool in ("mosquitto_pub", "tombo-pub"):
        topic = "pub/%s" % tool
        subs[tool] = start("mosquitto_sub", broker, ["-t", topic, "-V", "5", "-q", "2", "-F", fmt, "-C", str(count)])
    time.sleep(SETTLE)
    for tool in ("mosquitto_pub", "tombo-pub"):
        topic = "pub/%s" % tool
        f = list(flags)
        if "-i" in f:
            f[f.index("-i") + 1] += tool
        cmd = tool if tool == "mosquitto_pub" else binary("src", "tools", "tombo-pub")
        p = subprocess.run([cmd, "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic] + f, input=stdin or b"",
                           capture_output=True, timeout=15, env=client_env())
        if tool == "tombo-pub":
            check_sanitizers(tool, p.stderr)
        results[tool] = (p.returncode, p.stdout, p.stderr)
    outs = {tool: finish(s, 5) for tool, s in subs.items()}
    assert results["tombo-pub"] == results["mosquitto_pub"]
    assert outs["tombo-pub"][0] == outs["mosquitto_pub"][0], outs


def test_pub_file(broker, tmp_path):
    path = tmp_path / "payload.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    sub = start("mosquitto_sub", broker, ["-t", "f/#", "-C", "2", "-F", "%t %l %x"])
    time.sleep(SETTLE)
    mpub(broker, "-t", "f/m", "-f", str(path))
    p = subprocess.run([binary("src", "tools", "tombo-pub"), "-h", "127.0.0.1", "-p", str(broker.port), "-t", "f/t",
                        "-f", str(path)], capture_output=True, timeout=10, env=client_env())
    check_sanitizers("tombo-pub", p.stderr)
    assert p.returncode == 0
    out, _, _ = finish(sub, 5)
    lines = out.decode().splitlines()
    assert lines == ["f/m 10240 " + data.hex(), "f/t 10240 " + data.hex()]


def test_pub_retain(broker):
    for tool, topic in (("mosquitto_pub", "ret/m"), (binary("src", "tools", "tombo-pub"), "ret/t")):
        subprocess.run([tool, "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-m", "kept", "-r", "-q", "1"],
                       check=True, timeout=10, env=client_env())
    out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "ret/#", "-C", "2", "-W", "5", "-F",
                          "%t %p %r"], capture_output=True, timeout=10).stdout.decode().splitlines()
    assert sorted(out) == ["ret/m kept 1", "ret/t kept 1"]


BAD_PUB = [
    ("wildcard-topic", ["-t", "a/#", "-m", "x"]),
    ("no-message", ["-t", "a"]),
    ("no-topic", ["-m", "x"]),
    ("bad-qos", ["-t", "a", "-m", "x", "-q", "3"]),
    ("bad-version", ["-t", "a", "-m", "x", "-V", "7"]),
    ("bad-property", ["-t", "a", "-m", "x", "-V", "5", "-D", "connect", "foo", "1"]),
    ("unknown-option", ["--foo"]),
    ("two-modes", ["-t", "a", "-m", "x", "-n"]),
    ("help", ["--help"]),
]


@pytest.mark.parametrize("row", BAD_PUB, ids=[r[0] for r in BAD_PUB])
def test_pub_bad_args(broker, row):
    name, flags = row
    r = subprocess.run(["mosquitto_pub", "-p", str(broker.port)] + flags, capture_output=True, timeout=10)
    o = subprocess.run([binary("src", "tools", "tombo-pub"), "-p", str(broker.port)] + flags, capture_output=True,
                       timeout=10, env=client_env())
    check_sanitizers("tombo-pub", o.stderr)
    assert o.returncode == r.returncode
    assert o.stderr.splitlines()[:1] == r.stderr.splitlines()[:1]


def test_pub_connection_refused():
    from conftest import free_port
    port = str(free_port())
    r = subprocess.run(["mosquitto_pub", "-p", port, "-t", "a", "-m", "x"], capture_output=True, timeout=10)
    o = subprocess.run([binary("src", "tools", "tombo-pub"), "-p", port, "-t", "a", "-m", "x"], capture_output=True,
                       timeout=10, env=client_env())
    check_sanitizers("tombo-pub", o.stderr)
    assert (o.returncode, o.stderr) == (r.returncode, r.stderr)


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
@pytest.mark.parametrize("tool", ["pub", "sub"])
def test_refused_connack(make_broker, tool, version):
    """A refused CONNACK (anonymous not allowed): same message and exit code as mosquitto_pub/sub."""
    broker = make_broker("allow_anonymous false\n")
    args = ["-p", str(broker.port), "-t", "a", "-V", version] + (["-m", "x"] if tool == "pub" else [])
    r = subprocess.run(["mosquitto_" + tool] + args, capture_output=True, timeout=10)
    o = subprocess.run([binary("src", "tools", "tombo-" + tool)] + args, capture_output=True, timeout=10,
                       env=client_env())
    check_sanitizers("tombo-" + tool, o.stderr)
    assert (o.returncode, o.stderr) == (r.returncode, r.stderr)


def test_sub_will_on_kill(broker):
    """--will-* flags: killing each subscriber makes the broker publish its will."""
    watcher = start("mosquitto_sub", broker, ["-t", "will/#", "-F", "%t %p %q %r", "-C", "2", "-q", "1"])
    time.sleep(SETTLE)
    procs = []
    for tool, topic in (("mosquitto_sub", "will/m"), (binary("src", "tools", "tombo-sub"), "will/t")):
        procs.append(start(tool, broker, ["-t", "x", "--will-topic", topic, "--will-payload", "bye",
                                          "--will-qos", "1"]))
    time.sleep(SETTLE)
    for p in procs:
        p.kill()
        p.wait()
    out, _, _ = finish(watcher, 5)
    assert sorted(out.decode().splitlines()) == ["will/m bye 1 0", "will/t bye 1 0"]


def test_sub_reconnects_after_broker_restart(broker):
    """mosquitto_sub reconnects (and subscribes again) when the broker comes back; so does tombo-sub."""
    procs = {tool: start(cmd, broker, ["-t", "rs/#", "-v", "-C", "1"])
             for tool, cmd in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    broker.stop()
    broker.start()
    time.sleep(2.5)  # both retry every second
    mpub(broker, "-t", "rs/x", "-m", "after restart")
    outs = {tool: finish(p, 10) for tool, p in procs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0] == outs["mosquitto_sub"][0] == b"rs/x after restart\n"
    assert outs["tombo-sub"][2] == outs["mosquitto_sub"][2] == 0


def test_url_flag(broker):
    """-L mqtt://[user[:password]@]host:port/topic, for both tools."""
    url = "mqtt://user:pw@127.0.0.1:%d/u/x" % broker.port
    subs = {t: subprocess.Popen([c, "-L", url, "-v", "-C", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=client_env())
            for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    mpub(broker, "-t", "u/x", "-m", "one")
    p = subprocess.run([binary("src", "tools", "tombo-pub"), "-L", url, "-m", "two"], capture_output=True, timeout=10,
                       env=client_env())
    check_sanitizers("tombo-pub", p.stderr)
    assert p.returncode == 0
    outs = {t: finish(s, 5) for t, s in subs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0] == outs["mosquitto_sub"][0] == b"u/x one\nu/x two\n"


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_sub_json_format(broker, version):
    """-F %j: the same JSON objects as mosquitto_sub (the "tst" receive time aside)."""
    import re
    subs = {t: start(c, broker, ["-t", "j/#", "-V", version, "-C", "3", "-F", "%j"])
            for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    mpub(broker, "-t", "j/1", "-m", "hi", "-q", "1", "-V", "5", "-D", "publish", "content-type", "text/plain",
         "-D", "publish", "user-property", "k", "v", "-D", "publish", "response-topic", "rt",
         "-D", "publish", "correlation-data", "cd", "-D", "publish", "payload-format-indicator", "1")
    mpub(broker, "-t", "j/2", "-n")
    mpub(broker, "-t", "j/3", "-m", 'q"\\\x01\n\t\u00e9')
    outs = {t: finish(s, 5) for t, s in subs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    strip = lambda b: re.sub(rb'"tst":"[^"]*"', b"", b)  # noqa: E731
    assert outs["tombo-sub"][0].count(b"\n") == 3
    assert strip(outs["tombo-sub"][0]) == strip(outs["mosquitto_sub"][0])
