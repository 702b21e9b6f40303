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
    # Widths, precision and padding as mosquitto_sub 2.0.11 applies them: a width cuts the payload,
    # "-" pads by the payload's length when no width is given, hex counts two columns per byte.
    ("format-widths", ["-t", "t/#", "-F", "[%3p][%-8p][%08p][%3x][%-x][%-5X][%.2t][%6.2t][%-6.2t][%-08l][%05m]"
                       "[%q%3q][%5r][%-p][%10.1t]", "-C", "3"], P, [], 5),
    ("format-v5-padding", ["-t", "t/#", "-V", "5", "-D", "subscribe", "subscription-identifier", "42", "-F",
                           "[%5E][%-5F][%05S][%3C][%3R][%.3C][%3A][%-05E][%03F][%-4S][%.1R][%6.3C]", "-C", "2"],
     [["-t", "t/a", "-m", "m1", "-V", "5", "-D", "publish", "content-type", "text/plain", "-D", "publish",
       "message-expiry-interval", "30"],
      ["-t", "t/b", "-m", "m2", "-V", "5", "-D", "publish", "payload-format-indicator", "1", "-D", "publish",
       "response-topic", "resp"]], [], 5),
    ("format-qos-mid", ["-t", "t/#", "-q", "2", "-F", "%m %q %t", "-C", "3"],
     [["-t", "t/a", "-m", "x", "-q", "1"], ["-t", "t/b", "-m", "y", "-q", "2"], ["-t", "t/c", "-m", "z"]], [], 5),
    ("pretty-without-json", ["-t", "t/#", "--pretty", "-v", "-C", "3"], P, [], 5),
    ("random-filter-all", ["-t", "t/#", "--random-filter", "1000", "-v", "-C", "3"], P, [], 5),
    ("exit-after-sub", ["-t", "t/#", "-E", "-v"], [], [], 5),
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
    ("format-flag-at-end", ["-t", "a", "-F", "%-"]),
    ("format-precision-at-end", ["-t", "a", "-F", "%5."]),
    ("format-two-flags", ["-t", "a", "-F", "%0-5p"]),
    ("format-two-dots", ["-t", "a", "-F", "%1.2.3p"]),
    ("format-at-end", ["-t", "a", "-F", "abc@"]),
    ("format-json-upper", ["-t", "a", "-F", "%J", "-W", "1"]),
    ("random-filter-missing", ["-t", "a", "--random-filter"]),
    ("random-filter-low", ["-t", "a", "--random-filter", "0.05"]),
    ("random-filter-text", ["-t", "a", "--random-filter", "abc"]),
    ("unix-missing", ["-t", "a", "--unix"]),
    ("unix-no-socket", ["-t", "a", "--unix", "/nonexistent/tombo-test.sock"]),
    ("proxy-missing", ["-t", "a", "--proxy"]),
    ("proxy-scheme", ["-t", "a", "--proxy", "socks4://h"]),
    ("proxy-no-host", ["-t", "a", "--proxy", "socks5h://"]),
    ("proxy-bad-port", ["-t", "a", "--proxy", "socks5h://u:p@h:99999"]),
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
    ("unix-missing", ["-t", "a", "-m", "x", "--unix"]),
    ("unix-no-socket", ["-t", "a", "-m", "x", "--unix", "/nonexistent/tombo-test.sock"]),
    ("proxy-scheme", ["-t", "a", "-m", "x", "--proxy", "http://h"]),
    ("proxy-bad-port", ["-t", "a", "-m", "x", "--proxy", "socks5h://h:0"]),
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


# Payloads for the JSON rows: JSON of every shape cJSON re-prints differently (numbers, escapes,
# white space, nesting, duplicate keys), text that is not JSON, a NUL inside, an empty payload.
JSON_PAYLOADS = [
    b'{"a": 1.50, "b":[1,2,{"c":null}], "d":"x\\/y\\u00e9", "e":{}, "f":[], "g":1e400, "h":-0.0, "i":3e10}',
    b' [1, "two" ,true, false, null, -.5, 01, 0.1, 1e-7, 123456789012345678901234567890]  ',
    b'{"k":1,"k":2,"nested":{"deeper":[[[]],{"x":{}}]},"s":"tab\\there \\"q\\" \\ud83d\\ude00 \\u0041"}',
    b"not json",
    b"[1, 2",
    b"[1]\x00",
    b'"a string"',
    b"",
    b'q"\\\x01\n\t\xc3\xa9',
    b"\xef\xbb\xbf{\"bom\": true}",
]


def strip_tst(out):
    import re
    return re.sub(rb'"tst":\t?"[^"]*"', b"", out)


@pytest.mark.parametrize("fmt", ["%j", "%J", "%J|%j|%t"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
@pytest.mark.parametrize("version,qos", [("mqttv311", "0"), ("mqttv5", "1")])
def test_sub_json_format(broker, fmt, pretty, version, qos):
    """-F %j / %J (and --pretty): the same bytes as mosquitto_sub (the "tst" receive time aside), the
    same "not valid JSON" errors on stderr, "mid" at QoS 1, v5 properties in the order received."""
    flags = ["-t", "j/#", "-V", version, "-q", qos, "-C", str(len(JSON_PAYLOADS) + 1), "-F", fmt]
    if pretty:
        flags.append("--pretty")
    subs = {t: start(c, broker, flags)
            for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    mpub(broker, "-t", "j/props", "-m", '{"p": 1}', "-q", "1", "-V", "5", "-D", "publish", "content-type",
         "application/json", "-D", "publish", "user-property", "k", "v", "-D", "publish", "user-property", "k",
         "v2", "-D", "publish", "response-topic", "rt", "-D", "publish", "correlation-data", "cd", "-D", "publish",
         "payload-format-indicator", "1", "-D", "publish", "message-expiry-interval", "3600")
    for i, payload in enumerate(JSON_PAYLOADS):
        if payload:
            mpub(broker, "-t", "j/%d" % i, "-s", "-q", qos, stdin=payload)
        else:
            mpub(broker, "-t", "j/%d" % i, "-n", "-q", qos)
    outs = {t: finish(s, 10) for t, s in subs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0].count(b"j/") >= len(JSON_PAYLOADS) - 3
    assert strip_tst(outs["tombo-sub"][0]) == strip_tst(outs["mosquitto_sub"][0])
    assert outs["tombo-sub"][1] == outs["mosquitto_sub"][1]
    assert outs["tombo-sub"][2] == outs["mosquitto_sub"][2]


# ---- transports and the options file ----

class Socks5Proxy:
    """A SOCKS5 proxy (RFC 1928, with RFC 1929 login when `auth` is a (user, password) pair) that
    relays to the requested host and records each client's greeting and CONNECT request."""

    def __init__(self, auth=None):
        import socket
        import threading
        self.auth = auth
        self.requests = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.threading = threading
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def recv_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def serve(self, c):
        import socket
        rx = self.recv_exact
        try:
            c.settimeout(20)
            ver, n = rx(c, 2)
            methods = list(rx(c, n))
            login = None
            if self.auth:
                if 2 not in methods:
                    c.sendall(b"\x05\xff")
                    return
                c.sendall(b"\x05\x02")
                rx(c, 1)
                user = rx(c, rx(c, 1)[0]).decode()
                pw = rx(c, rx(c, 1)[0]).decode()
                login = (user, pw)
                if login != self.auth:
                    c.sendall(b"\x01\x01")
                    return
                c.sendall(b"\x01\x00")
            else:
                c.sendall(b"\x05\x00")
            _, cmd, _, atyp = rx(c, 4)
            if atyp == 1:
                host = socket.inet_ntoa(rx(c, 4))
            elif atyp == 4:
                host = socket.inet_ntop(socket.AF_INET6, rx(c, 16))
            else:
                host = rx(c, rx(c, 1)[0]).decode()
            port = int.from_bytes(rx(c, 2), "big")
            self.requests.append({"methods": methods, "login": login, "cmd": cmd, "atyp": atyp, "host": host,
                                  "port": port})
            up = socket.create_connection((host, port), timeout=10)
            c.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
            c.settimeout(None)
            up.settimeout(None)

            def pump(a, b):
                try:
                    while True:
                        d = a.recv(65536)
                        if not d:
                            break
                        b.sendall(d)
                except OSError:
                    pass
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            self.threading.Thread(target=pump, args=(up, c), daemon=True).start()
            pump(c, up)
        except (EOFError, OSError):
            pass
        finally:
            c.close()

    def close(self):
        self.srv.close()


# mosquitto_pub/sub 2.0.11 decode %40 in the proxy password as ':' (not '@'), so the login here uses
# the two escapes both decode alike.
@pytest.mark.parametrize("auth", [None, ("proxyuser", "proxy:pw%1")], ids=["no-auth", "login"])
def test_through_socks5_proxy(broker, auth):
    """--proxy socks5h://[user[:password]@]host:port: both tools reach the broker through a SOCKS5
    proxy, ask it for the same host (by name, resolved by the proxy) and print the same messages."""
    proxy = Socks5Proxy(auth)
    cred = "" if not auth else "%s:%s@" % (auth[0], auth[1].replace("%", "%25").replace(":", "%3A"))
    url = "socks5h://%s127.0.0.1:%d" % (cred, proxy.port)
    try:
        subs = {t: subprocess.Popen([c, "-h", "localhost", "-p", str(broker.port), "--proxy", url, "-t", "px/#",
                                     "-v", "-C", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=client_env())
                for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
        time.sleep(SETTLE)
        for cmd in ("mosquitto_pub", binary("src", "tools", "tombo-pub")):
            p = subprocess.run([cmd, "-h", "localhost", "-p", str(broker.port), "--proxy", url, "-t", "px/" +
                                os.path.basename(cmd), "-m", "via proxy", "-q", "1"], capture_output=True, timeout=15,
                               env=client_env())
            check_sanitizers(cmd, p.stderr)
            assert p.returncode == 0, p.stderr
        outs = {t: finish(s, 10) for t, s in subs.items()}
    finally:
        proxy.close()
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0] == outs["mosquitto_sub"][0] == b"px/mosquitto_pub via proxy\npx/tombo-pub via proxy\n"
    # Four clients went through the proxy, each asking for "localhost" by name (socks5h).
    assert len(proxy.requests) == 4, proxy.requests
    for r in proxy.requests:
        assert (r["cmd"], r["atyp"], r["host"], r["port"], r["login"]) == (1, 3, "localhost", broker.port, auth), r
        assert r["methods"] == ([0, 2] if auth else [0]), r


def test_proxy_refuses_login(broker):
    """A proxy that refuses the login: tombo-pub fails as mosquitto_pub does (message, exit code 16)."""
    proxy = Socks5Proxy(("right", "pw"))
    try:
        p = subprocess.run([binary("src", "tools", "tombo-pub"), "-h", "127.0.0.1", "-p", str(broker.port),
                            "--proxy", "socks5h://wrong:pw@127.0.0.1:%d" % proxy.port, "-t", "a", "-m", "x"],
                           capture_output=True, timeout=15, env=client_env())
        check_sanitizers("tombo-pub", p.stderr)
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "--proxy",
                            "socks5h://wrong:pw@127.0.0.1:%d" % proxy.port, "-t", "a", "-m", "x"],
                           capture_output=True, timeout=15)
    finally:
        proxy.close()
    assert (p.returncode, p.stderr) == (r.returncode, r.stderr) == (16, b"Error: Proxy error.\n")


@pytest.fixture
def unix_mosquitto():
    """Debian's mosquitto listening on a Unix socket only (tombo has no Unix listener yet)."""
    import shutil
    d = tempfile.mkdtemp(prefix="tombo-unix-")
    os.chmod(d, 0o777)  # mosquitto started as root runs as the mosquitto user
    sock = os.path.join(d, "broker.sock")
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener 0 %s\nallow_anonymous true\n" % sock)
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    try:
        assert os.path.exists(sock), proc.stderr.read1(4096) if proc.poll() is not None else "no socket"
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_unix_socket(unix_mosquitto):
    """--unix PATH: both tools talk to a broker over a Unix domain socket, with the same output."""
    subs = {t: subprocess.Popen([c, "--unix", unix_mosquitto, "-t", "ux/#", "-F", "%t %p %q", "-C", "2", "-q", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
            for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    for cmd in ("mosquitto_pub", binary("src", "tools", "tombo-pub")):
        p = subprocess.run([cmd, "--unix", unix_mosquitto, "-t", "ux/" + os.path.basename(cmd), "-m", "local",
                            "-q", "2"], capture_output=True, timeout=15, env=client_env())
        check_sanitizers(cmd, p.stderr)
        assert p.returncode == 0, p.stderr
    outs = {t: finish(s, 10) for t, s in subs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0] == outs["mosquitto_sub"][0] == b"ux/mosquitto_pub local 1\nux/tombo-pub local 1\n"


def test_options_file(broker, tmp_path):
    """The options file read before the arguments: mosquitto_sub's own file works for tombo-sub, and
    a tombo_sub file takes precedence; tombo-pub reads tombo_pub (or mosquitto_pub)."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "mosquitto_sub").write_text("# options\n-p %d\n-h 127.0.0.1\n-t of/#\n-F %%t=%%p [%%l]\n\n-C 2\n"
                                       % broker.port)
    (xdg / "mosquitto_pub").write_text("-p %d\n-h 127.0.0.1\n-q 1\n" % broker.port)
    env = dict(client_env(), XDG_CONFIG_HOME=str(xdg))
    subs = {t: subprocess.Popen([c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for t, c in (("mosquitto_sub", "mosquitto_sub"), ("tombo-sub", binary("src", "tools", "tombo-sub")))}
    time.sleep(SETTLE)
    for cmd in ("mosquitto_pub", binary("src", "tools", "tombo-pub")):
        p = subprocess.run([cmd, "-t", "of/x", "-m", os.path.basename(cmd)], capture_output=True, timeout=15, env=env)
        check_sanitizers(cmd, p.stderr)
        assert p.returncode == 0, p.stderr
    outs = {t: finish(s, 10) for t, s in subs.items()}
    check_sanitizers("tombo-sub", outs["tombo-sub"][1])
    assert outs["tombo-sub"][0] == outs["mosquitto_sub"][0] == b"of/x=mosquitto_pub [13]\nof/x=tombo-pub [9]\n"
    # A tombo_sub file wins over mosquitto_sub's.
    (xdg / "tombo_sub").write_text("-p %d\n-h 127.0.0.1\n-t of/#\n-F tombo:%%p\n-C 1\n" % broker.port)
    sub = subprocess.Popen([binary("src", "tools", "tombo-sub")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env)
    time.sleep(SETTLE)
    mpub(broker, "-t", "of/y", "-m", "again")
    out, err, rc = finish(sub, 10)
    check_sanitizers("tombo-sub", err)
    assert (out, rc) == (b"tombo:again\n", 0)
