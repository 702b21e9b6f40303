"""The HTTP endpoint (`http_listener PORT [ADDRESS]`, `http_password_file FILE`; docs/web.md):
Prometheus /metrics parsed by Debian's prometheus_client and compared with $SYS and with what the
clients did; the REST API's answers (clients, one client, topics, subscriptions, stats) checked
against the clients' actions, with client ids and topics in arbitrary UTF-8; DELETE kicks a client
through its worker; the packet trace; Basic authentication; malformed requests get 400 and the
broker lives on."""
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import broker_cmd, free_port, is_reference
from clients import PahoClient, Raw, V5, unique_id

pytestmark = pytest.mark.skipif(is_reference(), reason="tombo's own HTTP endpoint")

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # deps.sh installs python3-prometheus-client: say so rather than skip
    text_string_to_metric_families = None


def http_broker(make_broker, extra=""):
    port = free_port()
    b = make_broker("allow_anonymous true\nhttp_listener %d 127.0.0.1\n%s" % (port, extra))
    b.http_port = port
    return b


def request(b, method, path, headers=None, body=None):
    """(status, headers, body bytes) of one request on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def get_json(b, path, status=200):
    st, hdr, body = request(b, "GET", path)
    assert st == status, (path, st, body)
    assert hdr["Content-Type"].startswith("application/json")
    return json.loads(body.decode("utf-8"))  # strict: invalid JSON or UTF-8 fails here


def metrics(b):
    assert text_string_to_metric_families, "python3-prometheus-client is missing: run scripts/deps.sh test"
    st, hdr, body = request(b, "GET", "/metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body.decode("utf-8")):
        for s in fam.samples:
            key = s.name + ("{%s}" % ",".join("%s=%s" % kv for kv in sorted(s.labels.items())) if s.labels else "")
            out[key] = s.value
    return out


def sys_snapshot(b, topics, timeout=10):
    """$SYS's values of `topics` as of its next publication (sys_interval 1), from a client that then
    leaves: a value unchanged since the previous publication is not published again, so the
    retained one is current once a live uptime (published every time) has come."""
    c = PahoClient(b)
    c.connect()
    c.subscribe("$SYS/broker/#")
    seen, live = {}, False
    deadline = time.time() + timeout
    while True:
        assert time.time() < deadline, "no $SYS for %s" % [t for t in topics if t not in seen]
        try:
            m = c.messages.get(timeout=0.3)
        except Exception:
            if live and all(t in seen for t in topics):
                break
            continue
        if m.topic == "$SYS/broker/uptime" and not m.retain:
            live = True
        seen[m.topic] = m.payload.decode()
    c.close()
    return seen


def test_metrics_parse_and_agree_with_sys(make_broker):
    """/metrics parses as Prometheus text; PUBLISH counts by QoS are what the clients did; the
    counters that both expose equal $SYS's at the same quiet moment (one source: stats.c)."""
    b = http_broker(make_broker, "sys_interval 1\n")
    sub = PahoClient(b)
    sub.connect()
    sub.subscribe("t/#", qos=2)
    pub = PahoClient(b)
    pub.connect()
    for qos, n in ((0, 5), (1, 3), (2, 2)):
        for i in range(n):
            pub.publish("t/%d" % qos, b"x" * (10 + i), qos=qos)
    sub.get_n(10)
    m = metrics(b)
    assert m["tombo_publish_received_total{qos=0}"] == 5
    assert m["tombo_publish_received_total{qos=1}"] == 3
    assert m["tombo_publish_received_total{qos=2}"] == 2
    assert m["tombo_publish_sent_total{qos=1}"] == 3  # delivered at min(published, granted 2)
    assert m["tombo_publish_sent_total{qos=2}"] == 2
    assert m["tombo_clients_connected"] == 2
    assert m["tombo_subscriptions"] == 1
    assert m["tombo_publish_bytes_received_total"] == sum(10 + i for n in (5, 3, 2) for i in range(n))
    for name in ("tombo_worker_loop_turns_total", "tombo_worker_busy_seconds_total", "tombo_worker_clients"):
        assert any(k.startswith(name + "{worker=") for k in m), name
    # $SYS at a quiet moment, then /metrics: the counters nobody moves in between must agree.
    pairs = {
        "$SYS/broker/publish/messages/received": lambda m: sum(m["tombo_publish_received_total{qos=%d}" % q] for q in range(3)),
        "$SYS/broker/publish/bytes/received": lambda m: m["tombo_publish_bytes_received_total"],
    }
    sys = sys_snapshot(b, list(pairs))
    time.sleep(0.2)
    m = metrics(b)
    for topic, f in pairs.items():
        assert int(sys[topic]) == f(m), (topic, sys[topic], f(m))
    # The $SYS client left; connected, subscriptions and retained agree with the next publication.
    sys = sys_snapshot(b, ["$SYS/broker/retained messages/count", "$SYS/broker/subscriptions/count",
                           "$SYS/broker/clients/total", "$SYS/broker/clients/connected"])
    time.sleep(0.2)
    m = metrics(b)
    # the $SYS client was there for $SYS's count and gone for /metrics'
    assert int(sys["$SYS/broker/subscriptions/count"]) == m["tombo_subscriptions"] + 1
    assert int(sys["$SYS/broker/clients/total"]) == m["tombo_sessions"] + 1
    assert int(sys["$SYS/broker/clients/connected"]) == m["tombo_clients_connected"] + 1
    assert int(sys["$SYS/broker/retained messages/count"]) <= m["tombo_retained_messages"]
    sub.close()
    pub.close()


def test_store_commit_histogram(make_broker, tmp_path):
    """With persistence, /metrics has the store's commit latency histogram, counting commits."""
    b = http_broker(make_broker, "persistence true\npersistence_location %s/\n" % tmp_path)
    c = PahoClient(b)
    c.connect()
    for i in range(5):
        c.publish("h/%d" % i, b"p", qos=1)
    m = metrics(b)
    assert m["tombo_store_commit_seconds_count"] >= 1
    assert m['tombo_store_commit_seconds_bucket{le=+Inf}'] == m["tombo_store_commit_seconds_count"]
    assert m["tombo_store_commit_seconds_sum"] > 0
    c.close()


WEIRD_ID = 'ü-客户-"quote"\\back\u2028-' + unique_id()[:6]
WEIRD_TOPIC = 'säl/"t"/\\/🐝'


def test_rest_api_answers_what_clients_did(make_broker):
    """clients (paged, filtered by id and state), one client (subscriptions, queue), topics with
    retained values, subscriptions and stats, with UTF-8 ids and topics escaped as valid JSON."""
    b = http_broker(make_broker)
    weird = PahoClient(b, client_id=WEIRD_ID, protocol=V5)
    weird.connect()
    weird.subscribe(WEIRD_TOPIC, qos=1)
    weird.subscribe("plain/+", qos=0)
    offline = PahoClient(b, client_id="offline-" + unique_id(), clean=False)
    offline.connect()
    offline.subscribe("q/#", qos=1)
    offline.drop()
    others = [PahoClient(b, client_id="page-%02d" % i) for i in range(5)]
    for o in others:
        o.connect()
    pub = PahoClient(b)
    pub.connect()
    pub.publish(WEIRD_TOPIC, "välue \"1\"\n".encode(), qos=1, retain=True)
    pub.publish("bin/x", b"\xff\xfe\x00raw", qos=0, retain=True)
    for i in range(3):
        pub.publish("q/%d" % i, b"queued", qos=1)
    time.sleep(0.3)

    all_ = get_json(b, "/api/v1/clients?limit=1000")
    ids = [c["client_id"] for c in all_["clients"]]
    assert WEIRD_ID in ids and offline.client_id in ids
    assert all_["total"] == 5 + 3  # the pages, weird, offline, pub
    assert ids == sorted(ids, key=lambda s: s.encode())
    page = get_json(b, "/api/v1/clients?filter=page-&offset=2&limit=2")
    assert page["total"] == 5 and [c["client_id"] for c in page["clients"]] == ["page-02", "page-03"]
    off = get_json(b, "/api/v1/clients?connected=false")
    assert [c["client_id"] for c in off["clients"]] == [offline.client_id]
    assert off["clients"][0]["queued"] == 3

    one = get_json(b, "/api/v1/clients/" + urllib.parse.quote(WEIRD_ID, safe=""))
    assert one["client_id"] == WEIRD_ID and one["connected"] and one["protocol"] == "5.0"
    assert {(s["filter"], s["qos"]) for s in one["subscription_list"]} == {(WEIRD_TOPIC, 1), ("plain/+", 0)}
    q = get_json(b, "/api/v1/clients/" + urllib.parse.quote(offline.client_id))
    assert [m["topic"] for m in q["queue_list"]] == ["q/0", "q/1", "q/2"] and not q["connected"]
    get_json(b, "/api/v1/clients/nobody-" + unique_id(), status=404)

    topics = {t["topic"]: t for t in get_json(b, "/api/v1/topics")["topics"]}
    assert topics[WEIRD_TOPIC]["payload"] == 'välue "1"\n' and topics[WEIRD_TOPIC]["qos"] == 1
    assert topics["bin/x"]["payload_bytes"] == 6 and topics["bin/x"]["payload"].endswith("raw")
    assert not any(t.startswith("$SYS") for t in topics)
    assert [t["topic"] for t in get_json(b, "/api/v1/topics?filter=bin%2F%2B")["topics"]] == ["bin/x"]
    get_json(b, "/api/v1/topics?filter=a%2F%23%2Fb", status=400)

    subs = get_json(b, "/api/v1/subscriptions?limit=1000")
    got = {(s["client_id"], s["filter"]) for s in subs["subscriptions"]}
    assert got == {(WEIRD_ID, WEIRD_TOPIC), (WEIRD_ID, "plain/+"), (offline.client_id, "q/#")}

    st = get_json(b, "/api/v1/stats")
    assert st["clients_connected"] == 7 and st["sessions"] == 8
    assert st["publish_received"] == 5 and st["publish_received_by_qos"] == [1, 4, 0]
    assert st["retained"] >= 2 and st["messages_queued"] == 3
    for c in [weird, pub] + others:
        c.close()


def test_delete_kicks_the_client(make_broker):
    """DELETE /api/v1/clients/{id} closes the client's connection from its own worker: an MQTT 5
    client reads DISCONNECT 0x98 (administrative action), a 3.1.1 client sees the socket close;
    its session stays; an unknown or offline client is 404."""
    b = http_broker(make_broker)
    v5 = Raw(b, version=5)
    v5.connect("kick-v5")
    v3 = PahoClient(b, client_id="kick-v3")
    v3.connect()
    st, _, body = request(b, "DELETE", "/api/v1/clients/kick-v5")
    assert st == 200 and json.loads(body) == {"kicked": "kick-v5"}
    p = v5.recv_type(14)  # DISCONNECT
    assert p.body[0] == 0x98
    v5.closed()
    st, _, _ = request(b, "DELETE", "/api/v1/clients/kick-v3")
    assert st == 200
    assert v3.disconnected.wait(5)
    deadline = time.time() + 5
    while get_json(b, "/api/v1/clients?connected=true")["total"] and time.time() < deadline:
        time.sleep(0.05)
    assert get_json(b, "/api/v1/clients?connected=true")["total"] == 0
    assert request(b, "DELETE", "/api/v1/clients/kick-v3")[0] in (200, 404)
    assert request(b, "DELETE", "/api/v1/clients/nobody")[0] == 404
    assert "disconnected through the HTTP API" in b.log()


def test_packet_trace_of_one_client(make_broker):
    """POST /api/v1/trace?client=ID records that client's packets both ways, in order; others'
    are not recorded; DELETE stops."""
    b = http_broker(make_broker)
    assert request(b, "POST", "/api/v1/trace?client=traced")[0] == 200
    other = PahoClient(b)
    other.connect()
    c = PahoClient(b, client_id="traced")
    c.connect()
    c.subscribe("tr/#", qos=1)
    other.publish("tr/x", b"hello", qos=1)
    c.get()
    c.publish("tr/y", b"mine", qos=2)
    c.get()
    time.sleep(0.2)
    t = get_json(b, "/api/v1/trace?after=0")
    assert t["client_id"] == "traced"
    seq = [(e["dir"], e["type"]) for e in t["events"]]
    for step in [("in", "CONNECT"), ("out", "CONNACK"), ("in", "SUBSCRIBE"), ("out", "SUBACK"),
                 ("out", "PUBLISH"), ("in", "PUBACK"), ("in", "PUBLISH"), ("out", "PUBREC"),
                 ("in", "PUBREL"), ("out", "PUBCOMP")]:
        assert step in seq, (step, seq)
    assert seq.index(("in", "CONNECT")) < seq.index(("in", "SUBSCRIBE")) < seq.index(("out", "PUBLISH"))
    pubs = [e for e in t["events"] if e["type"] == "PUBLISH" and e["dir"] == "out"]
    assert "tr/x" in pubs[0]["detail"] and pubs[0]["qos"] == 1
    last = t["events"][-1]["seq"]
    assert get_json(b, "/api/v1/trace?after=%d" % last)["events"] == []
    assert request(b, "DELETE", "/api/v1/trace")[0] == 200
    other.publish("tr/z", b"after", qos=1)
    c.get()
    t = get_json(b, "/api/v1/trace?after=%d" % last)
    assert t["client_id"] is None and t["events"] == []
    c.close()
    other.close()


def make_pwfile(path, users):
    open(path, "w").close()
    for u, p in users.items():
        subprocess.run(["/usr/bin/mosquitto_passwd", "-b", path, u, p], check=True, timeout=10)
    return path


def test_basic_auth(make_broker, tmp_path):
    """http_password_file: no or wrong credentials get 401 with a Basic challenge, the right ones
    200, checked like MQTT passwords (a Mosquitto password file); SIGHUP reloads the file."""
    import base64
    pw = make_pwfile(str(tmp_path / "pw"), {"admin": "s3cret", "ops": "other"})
    b = http_broker(make_broker, "http_password_file %s\n" % pw)
    auth = lambda u, p: {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (u, p)).encode()).decode()}
    st, hdr, _ = request(b, "GET", "/metrics")
    assert st == 401 and hdr["WWW-Authenticate"].startswith("Basic realm=")
    assert request(b, "GET", "/api/v1/stats", auth("admin", "wrong"))[0] == 401
    assert request(b, "GET", "/api/v1/stats", auth("nobody", "s3cret"))[0] == 401
    assert request(b, "GET", "/api/v1/stats", {"Authorization": "Basic !!!"})[0] == 401
    assert request(b, "GET", "/api/v1/stats", {"Authorization": "Bearer abc"})[0] == 401
    assert request(b, "GET", "/api/v1/stats", auth("admin", "s3cret"))[0] == 200
    assert request(b, "GET", "/", auth("ops", "other"))[0] == 200
    assert request(b, "DELETE", "/api/v1/clients/x")[0] == 401
    # SIGHUP reads the file again, as for password_file.
    make_pwfile(pw, {"admin": "n3w"})
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while request(b, "GET", "/api/v1/stats", auth("admin", "n3w"))[0] != 200 and time.time() < deadline:
        time.sleep(0.1)
    assert request(b, "GET", "/api/v1/stats", auth("admin", "n3w"))[0] == 200
    assert request(b, "GET", "/api/v1/stats", auth("admin", "s3cret"))[0] == 401
    assert request(b, "GET", "/api/v1/stats", auth("ops", "other"))[0] == 401


def raw_http(b, data, timeout=5):
    """Send bytes, read until the server closes (or the timeout): the whole answer."""
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_malformed_requests_get_400(make_broker):
    """Garbage, a bad request line, obs-fold, a head over the limit, chunked or oversized bodies,
    bad escapes: 400 (or 431, 404, 405) and a closed connection, never a crash; keep-alive
    and pipelined requests are answered in order."""
    b = http_broker(make_broker)
    cases = [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/2.0\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nBad Header : x\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (b"POST /api/v1/trace HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
        (b"POST /api/v1/trace HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", b"400"),
        (b"POST /api/v1/trace HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
        (b"GET /api/v1/clients/%zz HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /api/v1/clients?filter=%4 HTTP/1.1\r\n\r\n", b"400"),
        (b"PUT /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", b"405"),
        (b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
        (b"\x00\x01\x02\xff\r\n\r\n", b"400"),
    ]
    for data, status in cases:
        out = raw_http(b, data)
        assert out.startswith(b"HTTP/1.1 " + status), (data[:60], out[:200])
    # Pipelined keep-alive requests, then one that closes.
    out = raw_http(b, b"GET /api/v1/stats HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"
                      b"GET /api/v1/topics HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 3 and b"tombo_uptime_seconds" in out
    # Random bytes in bulk, and a client that sends half a head and leaves.
    raw_http(b, os.urandom(20000), timeout=2)
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.sendall(b"GET /metr")
    s.close()
    assert request(b, "GET", "/metrics")[0] == 200
    assert b.alive()


def test_dashboard_is_served_from_the_binary(make_broker):
    """/ is the dashboard, its script and style come from the binary (web/ embedded at build time)
    and nothing is fetched from elsewhere (no CDN)."""
    b = http_broker(make_broker)
    st, hdr, body = request(b, "GET", "/")
    assert st == 200 and hdr["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'src="/app.js"' in page and 'href="/style.css"' in page
    root = os.path.join(os.path.dirname(__file__), "..", "..", "web")
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        st, hdr, body = request(b, "GET", "/" + name)
        assert st == 200 and hdr["Content-Type"].startswith(ctype)
        assert body == open(os.path.join(root, name), "rb").read()
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in body
    st, _, body = request(b, "HEAD", "/")
    assert st == 200 and body == b""


def test_off_by_default(make_broker):
    """Without http_listener there is no endpoint, and the start-up log says nothing of one."""
    b = make_broker()
    assert "HTTP endpoint" not in b.log()


def self_signed(d):
    """A certificate for 127.0.0.1 (IP SAN) and its key, made with the openssl CLI."""
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], cwd=d, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "c.pem"), os.path.join(d, "k.pem")


def test_https(make_broker, tmp_path):
    """http_certfile + http_keyfile: the endpoint speaks HTTPS (certificate verified by the
    client, keep-alive, Basic auth inside TLS), and never plain HTTP on that port."""
    import base64
    import ssl
    crt, key = self_signed(str(tmp_path))
    pw = make_pwfile(str(tmp_path / "pw"), {"admin": "s3cret"})
    b = http_broker(make_broker, "http_certfile %s\nhttp_keyfile %s\nhttp_password_file %s\n" % (crt, key, pw))
    ctx = ssl.create_default_context(cafile=crt)
    c = http.client.HTTPSConnection("127.0.0.1", b.http_port, context=ctx, timeout=10)
    hdr = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    for path in ("/api/v1/stats", "/metrics", "/"):  # one TLS connection, kept alive
        c.request("GET", path, headers=hdr)
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status, body)
    assert b"<main>" in body
    c.request("GET", "/metrics")
    r = c.getresponse()
    r.read()
    assert r.status == 401
    c.close()
    assert "(TLS) with basic authentication" in b.log()
    out = raw_http(b, b"GET /metrics HTTP/1.1\r\n\r\n")  # plain HTTP to the TLS port
    assert b"HTTP/1.1" not in out and b"tombo_" not in out
    for _ in range(3):  # broken handshakes do not hurt the endpoint
        raw_http(b, b"\x16\x03\x01\x00\x05hello", timeout=1)
    c = http.client.HTTPSConnection("127.0.0.1", b.http_port, context=ctx, timeout=10)
    c.request("GET", "/api/v1/stats", headers=hdr)
    assert c.getresponse().status == 200
    c.close()


def test_https_bad_key_stops_start_up(tmp_path):
    """A key that does not load, or half of the pair, stops start-up with FILE:LINE."""
    crt, key = self_signed(str(tmp_path))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    for lines, line, msg in (
            ("http_certfile %s\nhttp_keyfile %s\n" % (crt, bad), 3, "keyfile"),
            ("http_certfile %s\n" % crt, 2, "http_certfile needs http_keyfile")):
        conf = tmp_path / "t.conf"
        conf.write_text("listener %d 127.0.0.1\nhttp_listener %d 127.0.0.1\n%s" % (free_port(), free_port(), lines))
        r = subprocess.run(broker_cmd(str(conf)), capture_output=True, timeout=30)
        out = r.stdout.decode() + r.stderr.decode()
        assert r.returncode != 0, out
        where = "%s:%d" % (conf, line + 1 if "needs" not in msg else line + 1)
        assert where in out and msg in out, out
