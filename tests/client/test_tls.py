"""libtombo over TLS (tombo_set_tls, issue 14 item 3) against tombo and against Debian's mosquitto,
both started here on 127.0.0.1 with certificates made by openssl at test time (tests/broker/pki.py).
The C side is test_client_tls.c: it connects, subscribes, publishes QoS 1 to itself and prints "OK",
or "ERR NAME: <tombo_tls_error()>" when the connection failed."""
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import binary, check_sanitizers, client_env, pki_module

BROKERS = ["tombo", "mosquitto"]


def run(port, *args, host="127.0.0.1", timeout=60):
    p = subprocess.run([binary("tests", "client", "test_client_tls"), host, str(port)] + [str(a) for a in args],
                       capture_output=True, timeout=timeout, env=client_env())
    check_sanitizers("test_client_tls", p.stderr)
    out = p.stdout.decode()
    assert p.returncode == 0, "test_client_tls failed (%s):\n%s\n%s" % (p.returncode, out, p.stderr.decode()[-4000:])
    return out.strip().splitlines()[-1], out


def start(make_broker, which, conf):
    """tombo or mosquitto with conf. Mosquitto started as root drops to the user `mosquitto`, which
    cannot read pytest's temporary directory: it stays root here."""
    if which == "mosquitto":
        return make_broker(conf + "user root\n", mosquitto=True)
    return make_broker(conf)


def tls_broker(make_broker, pki, which, extra=""):
    conf = "allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key")) + extra
    return start(make_broker, which, conf)


@pytest.mark.parametrize("which", BROKERS)
def test_verified_roundtrip(make_broker, pki, which):
    """--cafile: the broker's certificate is verified and names 127.0.0.1 and localhost."""
    b = tls_broker(make_broker, pki, which)
    assert run(b.port, "--cafile", pki("ca.crt"))[0] == "OK"
    assert run(b.port, "--cafile", pki("ca.crt"), host="localhost")[0] == "OK"
    assert run(b.port, "--capath", pki("capath"), "--mqtt-version", 5)[0] == "OK"


@pytest.mark.parametrize("which", BROKERS)
def test_unknown_ca_refused(make_broker, pki, which):
    """A broker certificate no CA of ours signed: TLS_VERIFY with OpenSSL's reason."""
    b = tls_broker(make_broker, pki, which)
    last, _ = run(b.port, "--cafile", pki("other.crt"))
    assert last == "ERR TLS_VERIFY: TLS: certificate verify failed: unable to get local issuer certificate"


@pytest.mark.parametrize("which", BROKERS)
def test_hostname_mismatch_refused_unless_insecure(make_broker, pki, which):
    """A valid certificate for another name is refused (TLS_HOSTNAME); --insecure skips the name
    check only; a server_name that matches makes it pass."""
    conf = "allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("wrongname.crt"), pki("wrongname.key"))
    b = start(make_broker, which, conf)
    last, _ = run(b.port, "--cafile", pki("ca.crt"))
    assert last.startswith("ERR TLS_HOSTNAME: TLS: certificate verify failed: the certificate does not name 127.0.0.1")
    assert run(b.port, "--cafile", pki("ca.crt"), "--insecure")[0] == "OK"
    assert run(b.port, "--cafile", pki("ca.crt"), "--server-name", "elsewhere.example")[0] == "OK"
    # insecure does not mean "any CA": the chain is still verified when a cafile is given.
    assert run(b.port, "--cafile", pki("other.crt"), "--insecure")[0].startswith("ERR TLS_VERIFY")


# The broker's alert and its closing of the socket race with the CONNECT the client sends at the
# end of its handshake: when the broker's TCP reset arrives first, the alert is lost with it.
RESET = "ERR CONN_LOST: "


@pytest.mark.parametrize("which", BROKERS)
def test_mutual_tls(make_broker, pki, which):
    """require_certificate: with our certificate and key we get in; without one, or with one of an
    unknown CA, the broker's alert ends the handshake: TLS_HANDSHAKE with the alert's text (TLS 1.3
    delivers it after the client's side of the handshake is done, before any CONNACK)."""
    b = tls_broker(make_broker, pki, which, "cafile %s\nrequire_certificate true\n" % pki("ca.crt"))
    assert run(b.port, "--cafile", pki("ca.crt"), "--cert", pki("alice.crt"), "--key", pki("alice.key"))[0] == "OK"
    last, _ = run(b.port, "--cafile", pki("ca.crt"))
    assert last in ("ERR TLS_HANDSHAKE: TLS: handshake failed: tlsv13 alert certificate required", RESET), last
    last, _ = run(b.port, "--cafile", pki("ca.crt"), "--cert", pki("stranger.crt"), "--key", pki("stranger.key"))
    assert last in ("ERR TLS_HANDSHAKE: TLS: handshake failed: tlsv1 alert unknown ca", RESET), last


@pytest.mark.parametrize("which", BROKERS)
def test_psk(make_broker, pki, which):
    """PSK instead of certificates (psk_hint + psk_file on the broker); a wrong key is refused."""
    extra = "psk_hint tombo\npsk_file %s\n" % pki("psk.txt")
    b = start(make_broker, which, "allow_anonymous true\n" + extra)
    assert run(b.port, "--psk", pki_module.PSK_KEY, "--psk-identity", "bob", "--tls-version", "tlsv1.2")[0] == "OK"
    if which == "tombo":  # mosquitto 2.0 has no TLS 1.3 external PSK
        assert run(b.port, "--psk", pki_module.PSK_KEY, "--psk-identity", "bob")[0] == "OK"
    last, _ = run(b.port, "--psk", "ffff" * 8, "--psk-identity", "bob", "--tls-version", "tlsv1.2")
    assert last.startswith("ERR TLS_HANDSHAKE"), last


def test_bad_settings_refused_at_once(pki, tmp_path):
    """tombo_set_tls reports an unreadable file or a key that is not the certificate's at once."""
    last, _ = run(1, "--cafile", str(tmp_path / "missing.crt"))
    assert last.startswith("ERR TLS_CONFIG: TLS: cafile ") and "missing.crt" in last, last
    last, _ = run(1, "--cafile", pki("ca.crt"), "--cert", pki("alice.crt"), "--key", pki("bob.key"))
    assert last.startswith("ERR TLS_CONFIG") and "does not match" in last, last
    last, _ = run(1, "--cafile", pki("ca.crt"), "--ciphers", "NO-SUCH-CIPHER")
    assert last.startswith("ERR TLS_CONFIG"), last


def test_versions_and_ciphers(make_broker, pki):
    """--tls-version tlsv1.3 with a TLS 1.3 suite, and a TLS 1.2 cipher list, as libtombo's debug log
    reports them."""
    b = tls_broker(make_broker, pki, "tombo")
    last, out = run(b.port, "--cafile", pki("ca.crt"), "--tls-version", "tlsv1.3",
                    "--ciphers13", "TLS_CHACHA20_POLY1305_SHA256")
    assert last == "OK" and "TLS handshake done: TLSv1.3, TLS_CHACHA20_POLY1305_SHA256" in out, out
    # A server that stops at TLS 1.2 (tombo's and mosquitto's tls_version are minimums): our list.
    port, th, seen = one_shot_server(pki, max_version=ssl.TLSVersion.TLSv1_2)
    last, out = run(port, "--cafile", pki("ca.crt"), "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    th.join(30)
    assert seen.get("cipher") == ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2"), (seen, out)
    assert "TLS handshake done: TLSv1.2, ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


@pytest.mark.parametrize("which", BROKERS)
def test_reconnect_resumes_session(make_broker, pki, which):
    """The connection is cut; automatic reconnect comes back over TLS, resuming the session."""
    b = tls_broker(make_broker, pki, which)
    last, out = run(b.port, "--cafile", pki("ca.crt"), "--reconnect")
    assert last == "OK", out
    assert "session resumed" in out, out


@pytest.mark.parametrize("which", BROKERS)
def test_loop_thread_and_publishing_thread(make_broker, pki, which):
    """The loop on libtombo's thread, 500 QoS 1 publishes from another: every one comes back (TLS
    reads and writes from two threads under the client's lock; `make tsan-test` runs this file)."""
    b = tls_broker(make_broker, pki, which)
    last, out = run(b.port, "--cafile", pki("ca.crt"), "--threads")
    assert last == "OK", out[-3000:]


def one_shot_server(pki, alpn=None, max_version=None):
    """A one-shot TLS server (Python's ssl) that records the ALPN protocol and the cipher the
    handshake chose, then closes (it speaks no MQTT)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki("server.crt"), pki("server.key"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(20)
    seen = {}

    def serve():
        try:
            s, _ = ls.accept()
            with ctx.wrap_socket(s, server_side=True) as t:
                seen["alpn"] = t.selected_alpn_protocol()
                seen["cipher"] = t.cipher()[:2]
        except (OSError, ssl.SSLError) as e:
            seen["error"] = str(e)
        finally:
            ls.close()

    th = threading.Thread(target=serve)
    th.start()
    return ls.getsockname()[1], th, seen


def test_alpn(pki):
    """ALPN: the protocols we offer reach the server, which picks one; a server that knows none of
    them picks none (OpenSSL's servers do not fail the handshake for that)."""
    port, th, seen = one_shot_server(pki, alpn=["mqtt"])
    last, out = run(port, "--cafile", pki("ca.crt"), "--alpn", "x-other,mqtt")
    th.join(30)
    assert seen.get("alpn") == "mqtt", (seen, out)
    assert last.startswith("ERR CONN_LOST"), last  # that server speaks no MQTT and closes
    port, th, seen = one_shot_server(pki, alpn=["h2"])
    last, out = run(port, "--cafile", pki("ca.crt"), "--alpn", "mqtt")
    th.join(30)
    assert seen.get("alpn") is None and "error" not in seen, (seen, out)
    assert last.startswith("ERR CONN_LOST"), last
