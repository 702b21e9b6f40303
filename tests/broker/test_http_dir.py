"""http_dir on WebSocket listeners (issue 9 item 1): a plain HTTP GET or HEAD (no Upgrade field) on
a `protocol websockets` listener with `http_dir` gets the file under that directory; the WebSocket
upgrade keeps working on the same port. The same requests go to Debian's Mosquitto 2.0.11 as the
reference where it behaves the same: 200 and the body, index.html for `/`, 302 to `dir/` for a
directory, 404, 403 for a symlink that leads out, 405 for POST, one request per connection.
Measured Mosquitto quirks tombo does not copy: no Content-Type, a body after HEAD, and 404 (not
403) for `..` paths, which its libwebsockets folds away before looking. Without http_dir, Mosquitto
closes a plain request without an answer and tombo answers 400 (test_websockets.py)."""
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

import rawws
from conftest import broker_cmd, free_port
from rawmqtt import V5
from test_tls import pki  # noqa: F401 (the module's CA and server certificate)
from test_websockets import WS, wss_conf

INDEX = b"<!doctype html><title>tombo</title>\n"
CSS = b"body { color: black }\n"
SECRET = b"not for the web\n"


@pytest.fixture
def www():
    """tmp/www: index.html, sub/app.css, sub/index.html, data.bin, big.bin (over 1 MiB), a symlink
    to a file outside (tmp/secret.txt) and one to a file inside. Not under pytest's tmp_path:
    Mosquitto started as root drops to the user mosquitto, which cannot enter that 0700 tree."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="tombo-www-"))
    os.chmod(str(tmp_path), 0o755)
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "sub" / "app.css").write_bytes(CSS)
    (root / "sub" / "index.html").write_bytes(b"sub index\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB: several socket writes
    (root / "big.bin").write_bytes(b"x" * (1024 * 1024 + 1))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(str(tmp_path / "secret.txt"), str(root / "out.txt"))
    os.symlink(str(tmp_path), str(root / "outdir"))
    os.symlink("sub/app.css", str(root / "in.css"))
    yield root
    shutil.rmtree(str(tmp_path))


def http(port, target, method="GET", tls_ca=None, rcvbuf=None):
    """One request: (status, {lower-case name: value}, body, closed after the answer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    if tls_ca:
        sock = ssl.create_default_context(cafile=tls_ca).wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, target)).encode())
        status, headers, body = rawws.read_head(sock, 5)
        closed = False
        while True:
            try:
                d = sock.recv(65536)
            except (ConnectionResetError, socket.timeout, ssl.SSLError):
                d = b""
            if not d:
                closed = True
                break
            body += d
        return status, headers, body, closed


def tombo(make_broker, www):
    return make_broker(WS + "http_dir %s\n" % www)


def mosquitto(make_broker, www):
    conf = ("listener %d 127.0.0.1\nlistener PORT 127.0.0.1\nprotocol websockets\nhttp_dir %s\n"
            "allow_anonymous true\n" % (free_port(), www))
    return make_broker(conf, raw_conf=True, mosquitto=True)


BROKERS = pytest.mark.parametrize("start", [tombo, mosquitto], ids=["tombo", "mosquitto"])


@BROKERS
def test_files_served(make_broker, www, start):
    b = start(make_broker, www)
    for target, body in [("/", INDEX), ("/index.html", INDEX), ("/sub/app.css", CSS), ("/sub/", b"sub index\n"),
                         ("/in.css", CSS), ("/index.html?v=2", INDEX), ("/sub/app%2ecss", CSS)]:
        status, headers, got, closed = http(b.port, target)
        assert (status, got) == (200, body), target
        assert int(headers["content-length"]) == len(body)
        assert closed  # one request per connection, as Mosquitto
    status, _, got, _ = http(b.port, "/data.bin")
    assert status == 200 and got == bytes(range(256)) * 1024


def test_content_type_and_head(make_broker, www):
    """Content-Type by extension; HEAD gets the same head and no body (Mosquitto 2.0.11 sends the
    body and no Content-Type)."""
    b = tombo(make_broker, www)
    for target, ctype in [("/", "text/html"), ("/sub/app.css", "text/css"), ("/data.bin", "application/octet-stream")]:
        status, headers, _, _ = http(b.port, target)
        assert status == 200 and headers["content-type"].split(";")[0] == ctype
    status, headers, body, closed = http(b.port, "/index.html", "HEAD")
    assert status == 200 and body == b"" and closed
    assert headers["content-length"] == str(len(INDEX))
    assert headers["content-type"].startswith("text/html")


@BROKERS
def test_missing_404_and_directory_redirect(make_broker, www, start):
    b = start(make_broker, www)
    assert http(b.port, "/nope.html")[0] == 404
    assert http(b.port, "/sub/nope/x")[0] == 404
    status, headers, _, _ = http(b.port, "/sub")
    assert status == 302 and headers["location"] == "/sub/"


@BROKERS
@pytest.mark.parametrize("target", ["/out.txt", "/outdir/secret.txt", "/../secret.txt", "/%2e%2e/secret.txt",
                                    "/sub/%2E%2E/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt",
                                    "/%2e%2e%2fsecret.txt", "/./../secret.txt", "/index.html%00.css"])
def test_escaping_the_directory_refused(make_broker, www, start, target):
    """Nothing outside http_dir is served: `..` segments (plain or percent-encoded, slashes
    included), symlinks pointing out, a NUL escape. tombo answers 403 (400 for the NUL); Mosquitto
    answers 403 or 404."""
    b = start(make_broker, www)
    status, _, body, _ = http(b.port, target)
    assert SECRET not in body
    assert status in (400, 403, 404, None)  # None: Mosquitto closes on %00 without an answer
    if start is tombo:
        assert status == (400 if "%00" in target else 403)


@BROKERS
def test_other_methods_405(make_broker, www, start):
    """Only GET and HEAD are served. Mosquitto 2.0.11 refuses POST only (it serves the file to
    PUT and DELETE: measured); tombo refuses every other method."""
    b = start(make_broker, www)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _, closed = http(b.port, "/index.html", method)
        if start is mosquitto and method != "POST":
            continue
        assert status == 405 and closed
        if start is tombo:
            assert headers["allow"] == "GET, HEAD"


def test_large_file_refused(make_broker, www):
    """A file over 1 MiB is not served (403): files are read whole by the worker, so only small
    static assets are served."""
    b = tombo(make_broker, www)
    status, _, body, closed = http(b.port, "/big.bin")
    assert status == 403 and body == b"" and closed


def test_slow_reader_gets_the_whole_file(make_broker, www):
    """A client with a small receive buffer: the answer goes out as the socket drains."""
    b = tombo(make_broker, www)
    status, _, body, _ = http(b.port, "/data.bin", rcvbuf=4096)
    assert status == 200 and body == bytes(range(256)) * 1024


@BROKERS
def test_websocket_upgrade_on_the_same_port(make_broker, www, start):
    b = start(make_broker, www)
    assert http(b.port, "/")[0] == 200
    c = rawws.WsClient(b.port)
    assert c.connect(version=V5, client_id="ws-and-files").reason == 0
    c.subscribe([("t", 1)])
    c.close()
    assert http(b.port, "/sub/app.css")[2] == CSS


def test_wss(make_broker, www, pki):
    b = make_broker(wss_conf(pki) + "http_dir %s\n" % www)
    status, headers, body, closed = http(b.port, "/sub/app.css", tls_ca=pki("ca.crt"))
    assert status == 200 and body == CSS and closed
    assert http(b.port, "/out.txt", tls_ca=pki("ca.crt"))[0] == 403
    status, _, body, _ = http(b.port, "/data.bin", tls_ca=pki("ca.crt"), rcvbuf=4096)
    assert status == 200 and body == bytes(range(256)) * 1024
    c = rawws.WsClient(b.port, tls_ca=pki("ca.crt"))
    assert c.connect(version=V5, client_id="wss-and-files").reason == 0
    c.close()


def test_bad_http_dir_refused(tmp_path):
    """A directory that does not exist (or a file) stops start-up with FILE:LINE; so does http_dir
    on an MQTT listener, where it would serve nothing (Mosquitto ignores it there)."""
    (tmp_path / "f").write_text("x")
    for d, why in [(tmp_path / "none", "No such file or directory"), (tmp_path / "f", "not a directory")]:
        conf = tmp_path / "t.conf"
        conf.write_text("listener %d 127.0.0.1\nprotocol websockets\nhttp_dir %s\n" % (free_port(), d))
        r = subprocess.run(broker_cmd(str(conf)), capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "t.conf:3: 'http_dir' %s: %s" % (d, why) in r.stderr + r.stdout
    conf = tmp_path / "t.conf"
    conf.write_text("listener %d 127.0.0.1\nhttp_dir %s\n" % (free_port(), tmp_path))
    r = subprocess.run(broker_cmd(str(conf)), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "t.conf:1: http_dir needs protocol websockets" in r.stderr + r.stdout


def test_reload_keeps_http_dir(make_broker, www, tmp_path):
    """A listener setting: a SIGHUP with another http_dir logs that it needs a restart, and the
    files in force stay served (as Mosquitto, whose listeners are not reloaded either)."""
    from test_reload import reload
    b = tombo(make_broker, www)
    (tmp_path / "other").mkdir()
    reload(b, WS + "http_dir %s\n" % (tmp_path / "other"))
    assert "http_dir of " in b.log() and "cannot be reloaded: restart to apply." in b.log()
    assert http(b.port, "/")[2] == INDEX
