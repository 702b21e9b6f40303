"""bridge_require_ocsp (mosquitto.conf(5): "the bridge requires the remote's OCSP stapled response
to be valid"): the bridge asks the remote for its certificate status in the TLS handshake and fails
the handshake unless the stapled OCSP response is signed by the CA (or a responder it delegated),
is about the remote's very certificate, is current, and says "good".

The remote is `openssl s_server -status_file RESP` on 127.0.0.1: it staples a response made by
`openssl ocsp -index ... -rsigner ... -respout` at test time. Neither Debian's Mosquitto nor tombo's
own listeners staple, and s_server speaks no MQTT, so these tests prove the handshake's outcome:
with a good response the bridge's CONNECT (its client id) reaches s_server through TLS; otherwise
the bridge logs why and s_server sees the handshake fail with the bridge's alert; the bridge then
retries with its restart backoff as after any failed connection."""
import os
import re
import subprocess
import time

import pytest

import pki as pkimod
from conftest import free_port

pytestmark = pytest.mark.skipif(os.environ.get("TOMBO_REFERENCE") == "mosquitto",
                                reason="tombo's bridge against openssl s_server")

SAN = "DNS:localhost,IP:127.0.0.1"


def openssl(d, *args):
    pkimod.openssl(d, *args)


def key_and_csr(d, name, cn, *addext):
    args = ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn]
    for e in addext:
        args += ["-addext", e]
    openssl(d, *args)


def ca_sign(d, name):
    openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
            "-in", name + ".csr", "-out", name + ".crt")


def respond(d, out, cert, signer="ocsp", ndays=1):
    """An OCSP response about cert.crt from the CA's index.txt, signed by signer.crt/key."""
    openssl(d, "ocsp", "-index", "index.txt", "-CA", "ca.crt", "-rsigner", signer + ".crt", "-rkey", signer + ".key",
            "-issuer", "ca.crt", "-cert", cert + ".crt", "-respout", out, "-ndays", str(ndays))


@pytest.fixture(scope="module")
def ocsp_pki(tmp_path_factory):
    """A CA with a delegated OCSP responder (extendedKeyUsage OCSPSigning), a server certificate, a
    revoked one, one the CA signed outside its index (status unknown), a CA-signed certificate
    without OCSPSigning and a self-signed one (neither may sign responses), and the responses."""
    d = str(tmp_path_factory.mktemp("ocsp-pki"))
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(pkimod.CA_CNF)
    open(os.path.join(d, "index.txt"), "w").close()
    for n in ("serial", "crlnumber"):
        with open(os.path.join(d, n), "w") as f:
            f.write("2000\n")
    pkimod.new_ca(d, "ca")
    pkimod.new_ca(d, "rogue")
    key_and_csr(d, "ocsp", "ocsp-responder", "extendedKeyUsage=OCSPSigning")
    ca_sign(d, "ocsp")
    key_and_csr(d, "plain", "not-a-responder")
    ca_sign(d, "plain")
    for name in ("server", "other", "revoked"):
        key_and_csr(d, name, "localhost", "subjectAltName=" + SAN)
        ca_sign(d, name)
    openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
            "-revoke", "revoked.crt", "-crl_reason", "keyCompromise")
    # Signed by the CA but not through `openssl ca`: not in index.txt, so the responder does not know it.
    key_and_csr(d, "unknown", "localhost", "subjectAltName=" + SAN)
    openssl(d, "x509", "-req", "-in", "unknown.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "77",
            "-days", "30", "-copy_extensions", "copy", "-out", "unknown.crt")
    respond(d, "good.der", "server")
    respond(d, "by-ca.der", "server", signer="ca")  # the CA itself may sign its certificates' status
    respond(d, "revoked.der", "revoked")
    respond(d, "unknown.der", "unknown")
    respond(d, "rogue.der", "server", signer="rogue")
    respond(d, "plain.der", "server", signer="plain")
    respond(d, "other.der", "other")
    return lambda name: os.path.join(d, name)


class SServer:
    """openssl s_server on 127.0.0.1:port with cert/key, stapling `status` (a DER file) if given.
    Its stdin stays open (EOF would end its session); stopped by its PID."""

    def __init__(self, p, cert, status=None, version=None):
        self.port = free_port()
        self.out = open(p("s_server-%d.log" % self.port), "wb+")
        cmd = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port, "-cert", p(cert + ".crt"),
               "-key", p(cert + ".key")]
        if status:
            cmd += ["-status_file", p(status)]
        if version:
            cmd.append(version)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while "ACCEPT" not in self.text():
            assert time.time() < deadline and self.proc.poll() is None, self.text()
            time.sleep(0.05)

    def text(self):
        self.out.flush()
        with open(self.out.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self.out.close()


@pytest.fixture
def s_server(ocsp_pki):
    servers = []

    def make(cert="server", status=None, version=None):
        s = SServer(ocsp_pki, cert, status, version)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def bridge(make_broker, p, remote, name, extra=""):
    return make_broker("allow_anonymous true\nconnection %s\naddress 127.0.0.1:%d\nremote_clientid %s\n"
                       "restart_timeout 1\ntopic o/# out 1\nbridge_cafile %s\nbridge_require_ocsp true\n%s"
                       % (name, remote.port, name, p("ca.crt"), extra))


def wait_for(what, cond, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = cond()
        if r:
            return r
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("status", ["good.der", "by-ca.der"])
def test_a_good_stapled_response_lets_the_handshake_complete(make_broker, ocsp_pki, s_server, version, status):
    """Signed by the delegated responder or by the CA itself, about this certificate, current,
    "good": the handshake completes (TLS 1.2's CertificateStatus message, TLS 1.3's extension of the
    Certificate entry) and the bridge's CONNECT, carrying its client id, reaches the remote."""
    remote = s_server(status=status, version=version)
    local = bridge(make_broker, ocsp_pki, remote, "okbridge")
    wait_for("the CONNECT at s_server", lambda: "okbridge" in remote.text())
    assert "TLS handshake" not in local.log()
    assert "bridge_require_ocsp" not in local.log()


@pytest.mark.parametrize("cert,status,why", [
    ("server", None, "no OCSP response was stapled"),
    ("revoked", "revoked.der", r"the OCSP response says the certificate is revoked \(keyCompromise\)"),
    ("unknown", "unknown.der", r"the OCSP responder does not know the certificate \(status unknown\)"),
    ("server", "rogue.der", r"the OCSP response's signer is not trusted"),
    ("server", "plain.der", r"the OCSP response's signer is not trusted"),
    ("server", "other.der", "the OCSP response is not about the server's certificate"),
])
def test_a_missing_revoked_unknown_or_untrusted_response_fails_the_handshake_and_is_retried(
        make_broker, ocsp_pki, s_server, cert, status, why):
    """No response, a revoked or unknown status, a response signed by a key the CA did not
    delegate (a self-signed one, or a CA-issued certificate without OCSPSigning), or one about
    another certificate: the handshake fails with the reason in the log, s_server sees the bridge's
    alert and no CONNECT, and the bridge tries again after restart_timeout."""
    remote = s_server(cert=cert, status=status)
    local = bridge(make_broker, ocsp_pki, remote, "nobridge")
    pat = (r"Error: bridge nobridge: TLS handshake with 127\.0\.0\.1:%d failed: bridge_require_ocsp: %s"
           % (remote.port, why))
    wait_for("two refused handshakes", lambda: len(re.findall(pat, local.log())) >= 2)
    assert re.search(r"Bridge nobridge: next attempt in 1 s", local.log())
    assert "Bridge nobridge connected" not in local.log()
    wait_for("the alert at s_server", lambda: "bad certificate status response" in remote.text())
    assert "nobridge" not in remote.text()


def test_without_bridge_require_ocsp_no_status_is_needed(make_broker, ocsp_pki, s_server):
    """The check is the directive's: the same remote, stapling nothing, is fine for a bridge that
    does not require OCSP (as Mosquitto's default, false)."""
    remote = s_server()
    make_broker("allow_anonymous true\nconnection plain\naddress 127.0.0.1:%d\nremote_clientid plainbr\n"
                "restart_timeout 1\ntopic o/# out 1\nbridge_cafile %s\nbridge_require_ocsp false\n"
                % (remote.port, ocsp_pki("ca.crt")))
    wait_for("the CONNECT at s_server", lambda: "plainbr" in remote.text())
