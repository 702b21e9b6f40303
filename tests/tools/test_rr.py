"""tombo-rr, mosquitto_rr's equivalent (issue 13): one MQTT 5 request/response exchange. A paho
responder answers each request on its Response Topic with its Correlation Data; tombo-rr and
mosquitto_rr run with the same flags against tombo and Debian's mosquitto and must print the same.
tombo-rr also sends a Correlation Data of its own and ignores a response carrying another one
(mosquitto_rr sends none and takes the first message: the one documented difference)."""
import json
import os
import subprocess
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

from conftest import binary, check_sanitizers, client_env

BROKERS = ["tombo", "mosquitto"]
RR = binary("src", "tools", "tombo-rr")


def start_broker(make_broker, which, conf="allow_anonymous true\n"):
    if which == "mosquitto":
        return make_broker(conf + "user root\n", mosquitto=True)
    return make_broker(conf)


class Responder:
    """Subscribes to `topic`; answers each request with b"re:" + payload on its Response Topic (or
    `fallback` for v3.1.1 requests), copying its Correlation Data. decoy: first answer with another
    correlation and the payload b"wrong". Records the requests' (correlation, response topic)."""

    def __init__(self, port, topic="req", decoy=False, fallback="resp", tls_ca=None):
        self.seen = []
        self.decoy = decoy
        self.fallback = fallback
        self.subscribed = threading.Event()
        self.c = paho.Client(client_id="responder-%d" % os.getpid(), protocol=paho.MQTTv5)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("localhost" if tls_ca else "127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        assert self.subscribed.wait(10)

    def on_message(self, client, userdata, m):
        props = m.properties
        corr = getattr(props, "CorrelationData", None)
        rt = getattr(props, "ResponseTopic", None) or self.fallback
        self.seen.append((corr, rt))
        if self.decoy:
            p = Properties(PacketTypes.PUBLISH)
            p.CorrelationData = b"another request"
            client.publish(rt, b"wrong", qos=1, properties=p)
        p = Properties(PacketTypes.PUBLISH)
        if corr is not None:
            p.CorrelationData = corr
        client.publish(rt, b"re:" + m.payload, qos=1, properties=p)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def responder():
    made = []

    def make(*a, **kw):
        r = Responder(*a, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def rr(cmd, broker, args, timeout=30, host="127.0.0.1", stdin=None):
    t0 = time.monotonic()
    p = subprocess.run([cmd, "-h", host, "-p", str(broker.port)] + list(args), capture_output=True,
                       timeout=timeout, env=client_env(), input=stdin)
    check_sanitizers(os.path.basename(cmd), p.stderr.decode(errors="replace"))
    return p.stdout, p.stderr.decode(errors="replace"), p.returncode, time.monotonic() - t0


ROWS = [
    ("plain", ["-m", "hello"]),
    ("verbose", ["-m", "hello", "-v"]),
    ("no-eol", ["-m", "hello", "-N"]),
    ("qos1", ["-m", "hello", "-q", "1", "-v"]),
    ("qos2", ["-m", "hello", "-q", "2"]),
    ("null", ["-n", "-v"]),
    ("format", ["-m", "x", "-F", "%t|%p|%l|%q|%r|%x"]),
    # the same correlation for both (tombo-rr's own would differ from mosquitto_rr's none)
    ("json", ["-m", "x", "-F", "%j", "-D", "publish", "correlation-data", "abc"]),
    ("correlation", ["-m", "x", "-F", "%D %p", "-D", "publish", "correlation-data", "abc"]),
]


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("name,args", ROWS, ids=[r[0] for r in ROWS])
def test_same_output_as_mosquitto_rr(make_broker, responder, which, name, args):
    """tombo-rr and mosquitto_rr, same flags, same broker and responder: same stdout, exit 0."""
    b = start_broker(make_broker, which)
    responder(b.port)
    outs = []
    for cmd in (RR, "mosquitto_rr"):
        out, err, rc, _ = rr(cmd, b, ["-t", "req", "-e", "resp", "-W", "10"] + args)
        assert rc == 0, (cmd, err)
        outs.append(out)
    if name == "json":  # the receive time differs
        outs = [{k: v for k, v in json.loads(o).items() if k != "tst"} for o in outs]
    assert outs[0] == outs[1]
    if name != "json":
        assert outs[0].startswith(b"resp " if "-v" in args else b"re:") or name in ("format", "correlation")


@pytest.mark.parametrize("which", BROKERS)
def test_request_carries_response_topic_and_correlation(make_broker, responder, which):
    """[MQTT-3.3.2.3.8]-style request: the request has Response Topic -e and a Correlation Data
    (tombo-rr's own, or -D publish correlation-data's), which the response echoes."""
    b = start_broker(make_broker, which)
    r = responder(b.port)
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "answers/me", "-m", "a", "-W", "10"])
    assert (out, rc) == (b"re:a\n", 0), err
    corr, rt = r.seen[-1]
    assert rt == "answers/me" and corr
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "answers/me", "-m", "b", "-W", "10",
                                 "-D", "publish", "correlation-data", "mine"])
    assert (out, rc) == (b"re:b\n", 0), err
    assert r.seen[-1] == (b"mine", "answers/me")


@pytest.mark.parametrize("which", BROKERS)
def test_other_correlation_ignored(make_broker, responder, which):
    """A response with another request's Correlation Data is not the answer: tombo-rr waits on and
    prints the matching one. (mosquitto_rr prints the first message: "wrong".)"""
    b = start_broker(make_broker, which)
    responder(b.port, decoy=True)
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "resp", "-m", "hello", "-q", "1", "-W", "10"])
    assert (out, rc) == (b"re:hello\n", 0), err
    out, err, rc, _ = rr("mosquitto_rr", b, ["-t", "req", "-e", "resp", "-m", "hello", "-q", "1", "-W", "10"])
    assert (out, rc) == (b"wrong\n", 0), err


@pytest.mark.parametrize("which", BROKERS)
def test_timeout(make_broker, which):
    """No responder: -W 1 ends after about a second with "Timed out" and exit code 27, as
    mosquitto_rr."""
    b = start_broker(make_broker, which)
    for cmd in (RR, "mosquitto_rr"):
        out, err, rc, took = rr(cmd, b, ["-t", "req", "-e", "resp", "-m", "x", "-W", "1"])
        assert (out, rc) == (b"", 27), (cmd, err)
        assert "Timed out" in err
        assert took < 8


def test_mosquitto_rr_with_tombo_responder(make_broker):
    """mosquitto_rr against tombo, answered by a tombo-sub | tombo-pub pipeline: the response
    topic and correlation travel through the broker and tombo-pub's -D."""
    b = start_broker(make_broker, "tombo")
    sub = subprocess.Popen([binary("src", "tools", "tombo-sub"), "-h", "127.0.0.1", "-p", str(b.port), "-V", "5",
                            "-t", "req", "-C", "1", "-F", "%R %p"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=client_env())
    try:
        time.sleep(1.5)
        rrp = subprocess.Popen(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(b.port), "-t", "req", "-e", "r/1",
                                "-m", "ping", "-W", "15"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line, err = sub.communicate(timeout=15)
        check_sanitizers("tombo-sub", err.decode())
        rt, payload = line.decode().rstrip("\n").split(" ", 1)
        assert (rt, payload) == ("r/1", "ping")
        p = subprocess.run([binary("src", "tools", "tombo-pub"), "-h", "127.0.0.1", "-p", str(b.port), "-V", "5",
                            "-t", rt, "-m", "pong:" + payload], capture_output=True, timeout=15, env=client_env())
        assert p.returncode == 0, p.stderr
        out, err = rrp.communicate(timeout=15)
        assert (out, rrp.returncode) == (b"pong:ping\n", 0), err
    finally:
        for p in (sub,):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_v311(make_broker, responder):
    """-V mqttv311: no properties, so no Response Topic or correlation; the first message on -e is
    the response, as mosquitto_rr."""
    b = start_broker(make_broker, "tombo")
    r = responder(b.port)
    out, err, rc, _ = rr(RR, b, ["-V", "mqttv311", "-t", "req", "-e", "resp", "-m", "old", "-W", "10"])
    assert (out, rc) == (b"re:old\n", 0), err
    assert r.seen[-1] == (None, "resp")


def test_usage_errors(make_broker):
    """Missing topic, message or response topic: mosquitto_rr's message, exit 1; wildcards refused."""
    b = start_broker(make_broker, "tombo")
    for args in (["-t", "req", "-m", "x"], ["-e", "resp", "-m", "x"], ["-t", "req", "-e", "resp"]):
        for cmd in (RR, "mosquitto_rr"):
            out, err, rc, _ = rr(cmd, b, args)
            assert rc == 1 and "All of topic, message, and response topic must be supplied." in err, (cmd, err)
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "resp/#", "-m", "x"])
    assert rc == 1 and "Invalid response topic" in err
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "resp", "-l"])
    assert rc == 1 and "Unknown option '-l'" in err


@pytest.mark.parametrize("which", BROKERS)
def test_tls_pass_through(make_broker, pki, responder, which):
    """The shared TLS flags work for tombo-rr: --cafile against a TLS listener."""
    conf = "allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key"))
    b = start_broker(make_broker, which, conf)
    responder(b.port, tls_ca=pki("ca.crt"))
    out, err, rc, _ = rr(RR, b, ["--cafile", pki("ca.crt"), "-t", "req", "-e", "resp", "-m", "tls", "-W", "10"],
                         host="localhost")
    assert (out, rc) == (b"re:tls\n", 0), err
    out, err, rc, _ = rr(RR, b, ["-t", "req", "-e", "resp", "-m", "tls", "-W", "5"], host="localhost")
    assert rc != 0 and out == b""
