"""tombo-pub and tombo-sub over TLS (issue 14 item 3): --cafile, --capath, --cert/--key, --insecure,
--tls-version, --ciphers, --psk/--psk-identity, --tls-alpn and -L mqtts://, with mosquitto_pub/sub's
meaning, against tombo AND against Debian's mosquitto; and mosquitto_sub receiving from tombo-pub.
Certificates are made by openssl at test time (tests/broker/pki.py)."""
import os
import subprocess
import time

import pytest

from conftest import binary, check_sanitizers, client_env, client_conftest

SETTLE = 1.5  # seconds for a subscriber's SUBSCRIBE to be in place (ASan, busy machine)
BROKERS = ["tombo", "mosquitto"]


def start_broker(make_broker, which, conf):
    """Mosquitto started as root drops to the user `mosquitto`, which cannot read pytest's
    temporary directory: it stays root here."""
    if which == "mosquitto":
        return make_broker(conf + "user root\n", mosquitto=True)
    return make_broker(conf)


def tls_broker(make_broker, pki, which, extra=""):
    conf = "allow_anonymous true\ncertfile %s\nkeyfile %s\n" % (pki("server.crt"), pki("server.key")) + extra
    return start_broker(make_broker, which, conf)


def tool(name):
    return binary("src", "tools", name)


def sub(broker, args, host="127.0.0.1", cmd=None):
    argv = [cmd or tool("tombo-sub"), "-h", host, "-p", str(broker.port)] + list(args)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())


def pub(args, cmd=None, timeout=20):
    p = subprocess.run([cmd or tool("tombo-pub")] + list(args), capture_output=True, timeout=timeout,
                       env=client_env(), text=True)
    check_sanitizers("tombo-pub", p.stderr)
    return p


def finish(proc, timeout=20):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    check_sanitizers("subscriber", err)
    return out.decode(), err.decode(), proc.returncode


def roundtrip(broker, sub_tls, pub_args, topic, host="127.0.0.1", sub_cmd=None):
    """A subscriber with sub_tls on `topic` (-C 1), then a publisher with pub_args; the subscriber's
    output."""
    s = sub(broker, sub_tls + ["-t", topic, "-C", "1", "-W", "15"], host=host, cmd=sub_cmd)
    time.sleep(SETTLE)
    p = pub(pub_args)
    assert p.returncode == 0, p.stderr
    out, err, rc = finish(s)
    assert rc == 0, (out, err)
    return out


@pytest.mark.parametrize("which", BROKERS)
def test_cafile_roundtrip(make_broker, pki, which):
    """tombo-sub --cafile receives what tombo-pub --cafile publishes (by name and by address)."""
    b = tls_broker(make_broker, pki, which)
    ca = ["--cafile", pki("ca.crt")]
    out = roundtrip(b, ca, ["-h", "localhost", "-p", str(b.port), "-t", "tls/a", "-m", "hello tls", "-q", "1"] + ca,
                    "tls/a", host="localhost")
    assert out == "hello tls\n"
    out = roundtrip(b, ["--capath", pki("capath")],
                    ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/b", "-m", "capath"] + ca, "tls/b")
    assert out == "capath\n"


@pytest.mark.parametrize("which", BROKERS)
def test_mutual_tls(make_broker, pki, which):
    """--cert/--key against require_certificate; without them the tools fail with a TLS error."""
    b = tls_broker(make_broker, pki, which, "cafile %s\nrequire_certificate true\n" % pki("ca.crt"))
    auth = ["--cafile", pki("ca.crt"), "--cert", pki("alice.crt"), "--key", pki("alice.key")]
    out = roundtrip(b, auth, ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/m", "-m", "mutual"] + auth, "tls/m")
    assert out == "mutual\n"
    p = pub(["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/m", "-m", "x", "--cafile", pki("ca.crt")])
    assert p.returncode != 0 and "Error:" in p.stderr, p.stderr


@pytest.mark.parametrize("which", BROKERS)
def test_mqtts_url(make_broker, pki, which):
    """-L mqtts://user:pass@host:port/topic with --cafile; the default port of mqtts:// is 8883
    (seen as the refused port when nothing listens there)."""
    b = tls_broker(make_broker, pki, which)
    url = "mqtts://user:pw@localhost:%d/tls/url" % b.port
    out = roundtrip(b, ["--cafile", pki("ca.crt")], ["-L", url, "--cafile", pki("ca.crt"), "-m", "by url"],
                    "tls/url", host="localhost")
    assert out == "by url\n"
    p = pub(["-L", "mqtts://127.0.0.1/tls/x", "--cafile", pki("ca.crt"), "-m", "x", "-d"])
    assert p.returncode != 0 and "connecting to 127.0.0.1:8883" in p.stdout, (p.stdout, p.stderr)


@pytest.mark.parametrize("which", BROKERS)
def test_refusals(make_broker, pki, which):
    """Unknown CA and a certificate for another name are refused with the reason; --insecure skips
    the name check only."""
    b = tls_broker(make_broker, pki, which)
    base = ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/r", "-m", "x"]
    p = pub(base + ["--cafile", pki("other.crt")])
    assert p.returncode == 1
    assert "Error: TLS: certificate verify failed: unable to get local issuer certificate" in p.stderr, p.stderr
    s = sub(b, ["-t", "tls/r", "--cafile", pki("other.crt"), "-W", "10"])
    out, err, rc = finish(s)
    assert rc == 1 and "certificate verify failed" in err, (out, err)
    w = start_broker(make_broker, which, "allow_anonymous true\ncertfile %s\nkeyfile %s\n"
                     % (pki("wrongname.crt"), pki("wrongname.key")))
    base = ["-h", "localhost", "-p", str(w.port), "-t", "tls/r", "-m", "x", "--cafile", pki("ca.crt")]
    p = pub(base)
    assert p.returncode == 1 and "the certificate does not name localhost" in p.stderr, p.stderr
    p = pub(base + ["--insecure"])
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("which", BROKERS)
def test_psk(make_broker, pki, which):
    """--psk/--psk-identity against psk_hint + psk_file (TLS 1.2 PSK suites on mosquitto)."""
    b = start_broker(make_broker, which, "allow_anonymous true\npsk_hint tombo\npsk_file %s\n" % pki("psk.txt"))
    psk = ["--psk", client_conftest.pki_module.PSK_KEY, "--psk-identity", "bob", "--tls-version", "tlsv1.2"]
    out = roundtrip(b, psk, ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/p", "-m", "psk"] + psk, "tls/p")
    assert out == "psk\n"


def test_versions_ciphers_alpn(make_broker, pki):
    """--tls-version, --ciphers and --tls-alpn are taken and used (the debug log names them)."""
    b = tls_broker(make_broker, pki, "tombo")
    ca = ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/v", "-m", "x", "-d", "--cafile", pki("ca.crt")]
    p = pub(ca + ["--tls-version", "tlsv1.3", "--tls-alpn", "mqtt"])
    assert p.returncode == 0 and "TLS handshake done: TLSv1.3" in p.stdout, (p.stdout, p.stderr)
    p = pub(ca + ["--ciphers", "NO-SUCH-CIPHER"])
    assert p.returncode != 0 and "Error: TLS:" in p.stderr, p.stderr


def test_mosquitto_sub_receives_from_tombo_pub(make_broker, pki):
    """Interoperation: Debian's mosquitto_sub (its own TLS) receives what tombo-pub sends over TLS."""
    b = tls_broker(make_broker, pki, "tombo")
    out = roundtrip(b, ["--cafile", pki("ca.crt")],
                    ["-h", "127.0.0.1", "-p", str(b.port), "-t", "tls/i", "-m", "interop", "--cafile", pki("ca.crt")],
                    "tls/i", sub_cmd="mosquitto_sub")
    assert out == "interop\n"


def test_tls_flags_need_tls(pki):
    """A TLS flag that would do nothing is refused (mosquitto_pub ignores it silently), and the
    pairs mosquitto requires are required."""
    p = pub(["-t", "a", "-m", "x", "--cert", pki("alice.crt"), "--key", pki("alice.key")])
    assert p.returncode == 1 and "TLS is not enabled" in p.stderr, p.stderr
    p = pub(["-t", "a", "-m", "x", "--cafile", pki("ca.crt"), "--cert", pki("alice.crt")])
    assert "Both certfile and keyfile must be provided" in p.stderr, p.stderr
    p = pub(["-t", "a", "-m", "x", "--cafile", pki("ca.crt"), "--psk", "00ff", "--psk-identity", "x"])
    assert "Only one of --psk or --cafile/--capath may be used at once." in p.stderr, p.stderr
    p = pub(["-t", "a", "-m", "x", "--psk", "00ff"])
    assert "--psk-identity required if --psk used." in p.stderr, p.stderr


def test_options_file(make_broker, pki, tmp_path):
    """TLS flags from the options file ($XDG_CONFIG_HOME/tombo_pub), as mosquitto_pub reads its own."""
    b = tls_broker(make_broker, pki, "tombo")
    (tmp_path / "tombo_pub").write_text("--cafile %s\n-p %d\n" % (pki("ca.crt"), b.port))
    s = sub(b, ["-t", "tls/o", "-C", "1", "-W", "15", "--cafile", pki("ca.crt")])
    time.sleep(SETTLE)
    env = dict(client_env(), XDG_CONFIG_HOME=str(tmp_path))
    p = subprocess.run([tool("tombo-pub"), "-h", "127.0.0.1", "-t", "tls/o", "-m", "from file"], capture_output=True,
                       text=True, timeout=20, env=env)
    assert p.returncode == 0, p.stderr
    out, err, rc = finish(s)
    assert out == "from file\n", (out, err)
