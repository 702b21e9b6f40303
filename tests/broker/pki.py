"""pki.py -- certificates and keys made with the `openssl` CLI at test time, for every TLS test
(tests/broker/test_tls.py, tests/client/test_tls.py, tests/tools/test_tools_tls.py,
tests/bench/test_bench_tls.py), with the commands docs/security.md gives: a private CA, a server
certificate for localhost and 127.0.0.1 (subjectAltName), one for another name, client certificates
(alice, bob), an expired one, a revoked one with its CRL, a second CA the broker does not know, a
hashed CA directory (capath) and a psk_file."""
import os
import subprocess

CA_CNF = """[ ca ]
default_ca = tombo_ca
[ tombo_ca ]
database = index.txt
unique_subject = no
new_certs_dir = .
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
copy_extensions = copy
[ policy_any ]
commonName = supplied
"""

PSK_KEY = "00112233445566778899aabbccddeeff"


def openssl(d, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr)


def new_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "30", "-subj", "/CN=" + name)


def issue(d, name, cn, san=None, expired=False):
    """A key and a certificate for CN=cn, signed by the CA `ca` (openssl ca keeps index.txt for
    the CRL)."""
    req = ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn]
    if san:
        req += ["-addext", "subjectAltName=" + san]
    openssl(d, *req)
    sign = ["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
            "-in", name + ".csr", "-out", name + ".crt"]
    if expired:
        sign += ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
    openssl(d, *sign)



def make_pki(d):
    """Make everything in directory d; returns name -> path in d."""
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CNF)
    open(os.path.join(d, "index.txt"), "w").close()
    for n in ("serial", "crlnumber"):
        with open(os.path.join(d, n), "w") as f:
            f.write("1000\n")
    new_ca(d, "ca")
    issue(d, "server", "localhost", san="DNS:localhost,IP:127.0.0.1")
    issue(d, "server2", "localhost", san="DNS:localhost,IP:127.0.0.1")  # SIGHUP's new certificate
    # An RSA server certificate, for DHE (dhparamfile): DHE suites sign with RSA.
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-rsa.key", "-out", "server-rsa.csr",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
            "-in", "server-rsa.csr", "-out", "server-rsa.crt")
    openssl(d, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", "dh.pem")
    # The CA as a hashed directory (capath).
    os.mkdir(os.path.join(d, "capath"))
    with open(os.path.join(d, "ca.crt"), "rb") as f, open(os.path.join(d, "capath", "ca.pem"), "wb") as g:
        g.write(f.read())
    openssl(d, "rehash", "capath")
    issue(d, "alice", "alice")
    issue(d, "bob", "bob")
    issue(d, "expired", "alice", expired=True)
    issue(d, "revoked", "alice")
    openssl(d, "ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-revoke", "revoked.crt")
    openssl(d, "ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-gencrl", "-out", "ca.crl")
    # A second, unknown CA and a client certificate it signed.
    new_ca(d, "other")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "stranger.key", "-out", "stranger.csr", "-subj", "/CN=alice")
    openssl(d, "x509", "-req", "-in", "stranger.csr", "-CA", "other.crt", "-CAkey", "other.key",
            "-CAcreateserial", "-days", "30", "-out", "stranger.crt")
    with open(os.path.join(d, "psk.txt"), "w") as f:
        f.write("# identity:hexkey\nbob:%s\n" % PSK_KEY)
    # A server certificate for another name: hostname checks must refuse it for 127.0.0.1/localhost.
    issue(d, "wrongname", "elsewhere.example", san="DNS:elsewhere.example")
    return lambda name: os.path.join(d, name)


