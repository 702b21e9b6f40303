"""The Debian package as a user gets it: `cpack -G DEB` from the release build configured for /usr
(`make package-build`, TOMBO_PACKAGE_BUILD), unpacked with `dpkg-deb -x` into a temporary root --
never installed on this machine -- and what it installed run from there: the broker with the
installed /etc/tombo/tombo.conf (paths moved into the root, a listener on a free port added through
its conf.d), the installed tombo-pub and tombo-sub, the man pages, and a program compiled with the
installed pkg-config file against the installed libtombo.

    make install-test          (or: TOMBO_PACKAGE_BUILD=build/package /usr/bin/python3 -m pytest tests/install)
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TOMBO_PACKAGE_BUILD", os.path.join(ROOT, "build", "package"))

MAN_PAGES = ["man8/tombo.8", "man5/tombo.conf.5", "man1/tombo-pub.1", "man1/tombo-sub.1", "man1/tombo-rr.1",
             "man1/tombo-passwd.1"]


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(tombo VERSION ([\d.]+)", f.read()).group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """Build the package with the command `make package` runs, into a directory of our own."""
    cache = os.path.join(BUILD, "CMakeCache.txt")
    if not os.path.exists(cache):
        pytest.fail("no package build in %s: run `make package-build` first" % BUILD)
    assert re.search(r"^CMAKE_INSTALL_PREFIX:PATH=/usr$", open(cache).read(), re.M), \
        "the package build must be configured with -DCMAKE_INSTALL_PREFIX=/usr (make package-build)"
    out = tmp_path_factory.mktemp("cpack")
    subprocess.run(["cpack", "-G", "DEB", "-B", str(out)], cwd=BUILD, check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    debs = [p for p in out.iterdir() if p.name.endswith(".deb")]
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    r = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(r)], check=True, timeout=60)
    return r


def run_env(root):
    return dict(os.environ, LD_LIBRARY_PATH=str(root / "usr" / "lib"))


class InstalledBroker:
    """The installed /usr/sbin/tombo with the installed /etc/tombo/tombo.conf, its absolute paths
    (/etc/tombo, /var/lib/tombo) moved into the temporary root, plus conf.d/test.conf."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.var = root / "var" / "lib" / "tombo"
        self.var.mkdir(parents=True, exist_ok=True)
        conf = root / "etc" / "tombo" / "tombo.conf"
        text = conf.read_text()
        assert "persistence_location /var/lib/tombo/" in text and "include_dir /etc/tombo/conf.d" in text
        text = text.replace("/var/lib/tombo/", str(self.var) + "/").replace("/etc/tombo/", str(root / "etc/tombo") + "/")
        conf.write_text(text)
        self.conf = conf
        self.log_path = root / "broker.log"
        self.proc = None

    def start(self):
        # The stock configuration is Mosquitto 2's local-only mode on port 1883; the drop-in opens a
        # free port instead, the way an administrator opens one (tombo.conf(5)).
        (self.root / "etc/tombo/conf.d/test.conf").write_text(
            "listener %d 127.0.0.1\nallow_anonymous true\n" % self.port)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.root / "usr/sbin/tombo"), "-c", str(self.conf)],
                                     stdout=self.logf, stderr=subprocess.STDOUT, cwd=str(self.root))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("installed broker exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("installed broker did not listen on %d:\n%s" % (self.port, self.log()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        self.logf.close()
        return rc

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def broker(root):
    b = InstalledBroker(root).start()
    yield b
    b.stop()


def test_control_fields(deb, tmp_path):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture", "Depends",
                             "Maintainer"], capture_output=True, text=True, check=True).stdout
    assert "Package: tombo\n" in fields
    assert "Version: %s\n" % project_version() in fields
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert "Architecture: %s\n" % arch in fields
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    names = {d.strip().split()[0] for d in depends.split(",")}
    assert {"libssl3", "libsqlite3-0", "libc6", "adduser"} <= names, depends
    assert re.search(r"^Maintainer: .+<.+@.+>$", fields, re.M), fields
    ctrl = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    assert (ctrl / "conffiles").read_text().split() == ["/etc/tombo/tombo.conf"]
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(ctrl / script, os.X_OK), script
        subprocess.run(["sh", "-n", str(ctrl / script)], check=True)


def run_maintainer_script(ctrl, tmp_path, script, args, user_exists):
    """Run a maintainer script with every command it calls replaced by a stub that logs its
    arguments: what it would do to a machine, without doing it."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.write_text("")
    for cmd in ("getent", "adduser", "mkdir", "chown", "chmod", "rm", "systemctl"):
        rc = 0 if cmd != "getent" or user_exists else 2
        (stubs / cmd).write_text('#!/bin/sh\necho "%s $*" >> %s\nexit %d\n' % (cmd, log, rc))
        (stubs / cmd).chmod(0o755)
    subprocess.run(["/bin/sh", str(ctrl / script)] + args, env={"PATH": str(stubs)}, check=True, timeout=30)
    return [line for line in log.read_text().split("\n") if line and not line.startswith("systemctl")]


def test_maintainer_scripts(deb, tmp_path):
    ctrl = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    state = ["mkdir -p /var/lib/tombo", "chown tombo:tombo /var/lib/tombo", "chmod 750 /var/lib/tombo"]
    assert run_maintainer_script(ctrl, tmp_path, "postinst", ["configure", ""], user_exists=False) == [
        "getent passwd tombo",
        "adduser --system --group --quiet --no-create-home --home /var/lib/tombo tombo"] + state
    # An existing user (the Docker image makes it with eclipse-mosquitto's uid) is kept.
    assert run_maintainer_script(ctrl, tmp_path, "postinst", ["configure", "0.1.0"], user_exists=True) == [
        "getent passwd tombo"] + state
    assert run_maintainer_script(ctrl, tmp_path, "postrm", ["remove"], user_exists=True) == []
    assert run_maintainer_script(ctrl, tmp_path, "postrm", ["purge"], user_exists=True) == ["rm -rf /var/lib/tombo"]
    assert run_maintainer_script(ctrl, tmp_path, "prerm", ["remove"], user_exists=True) == []


def test_every_file_in_place(root):
    for path in ["usr/sbin/tombo", "usr/bin/tombo-pub", "usr/bin/tombo-sub", "usr/bin/tombo-rr",
                 "usr/bin/tombo-passwd", "usr/bin/tombo-bench", "usr/lib/libtombo.a", "usr/lib/libtombo.so.0",
                 "usr/include/tombo/client.h", "usr/lib/pkgconfig/tombo.pc", "etc/tombo/tombo.conf",
                 "etc/tombo/conf.d/README", "usr/lib/systemd/system/tombo.service"] + \
            ["usr/share/man/" + p for p in MAN_PAGES]:
        assert (root / path).exists(), path
    for exe in ["usr/sbin/tombo", "usr/bin/tombo-pub", "usr/bin/tombo-sub", "usr/bin/tombo-rr",
                "usr/bin/tombo-passwd"]:
        assert os.access(root / exe, os.X_OK), exe
    # Only the runtime libraries the control file names (and libc) are needed.
    for exe in ["usr/sbin/tombo", "usr/bin/tombo-passwd", "usr/bin/tombo-pub"]:
        ldd = subprocess.run(["ldd", str(root / exe)], capture_output=True, text=True, check=True).stdout
        for lib in re.findall(r"^\s*(\S+\.so\S*) =>", ldd, re.M):
            assert re.match(r"lib(c|m|ssl|crypto|sqlite3|nats|protobuf-c|dlt)\.so\.", lib), (exe, lib)  # libssl3: TLS; libnats (and its libprotobuf-c): the cluster; libdlt: log_dest dlt


def test_systemd_unit(root):
    unit = (root / "usr/lib/systemd/system/tombo.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) -c (\S+)$", unit, re.M)
    assert exec_start.groups() == ("/usr/sbin/tombo", "/etc/tombo/tombo.conf")
    assert re.search(r"^User=tombo$", unit, re.M) and re.search(r"^StateDirectory=tombo$", unit, re.M)
    assert re.search(r"^RuntimeDirectory=tombo$", unit, re.M) and re.search(r"^LogsDirectory=tombo$", unit, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    assert re.search(r"^WantedBy=multi-user.target$", unit, re.M)
    # The broker must run in the foreground (Type=simple): -d is refused.
    assert re.search(r"^Type=simple$", unit, re.M)


def test_systemd_unit_verifies(root, tmp_path):
    """systemd's own check of the unit (syntax, the commands exist, the man pages it names)."""
    if not os.path.exists("/usr/bin/systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (package systemd)")
    unit = (root / "usr/lib/systemd/system/tombo.service").read_text()
    copy = tmp_path / "tombo.service"
    copy.write_text(unit.replace("ExecStart=/usr/sbin/tombo", "ExecStart=%s" % (root / "usr/sbin/tombo")))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MANPATH=str(root / "usr/share/man")))
    # systemd-analyze also loads the machine's other units and warns about them (Debian's
    # dlt-daemon.service, installed for log_dest dlt's test, runs as nobody): only tombo's count.
    ours = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("/lib/systemd/")
            and not line.startswith("/usr/lib/systemd/system/") or "tombo" in line]
    assert r.returncode == 0 and ours == [], r.stderr


def test_installed_tools_relay_through_installed_broker(root, broker):
    env = run_env(root)
    pub = [str(root / "usr/bin/tombo-pub"), "-h", "127.0.0.1", "-p", str(broker.port)]
    sub = [str(root / "usr/bin/tombo-sub"), "-h", "127.0.0.1", "-p", str(broker.port)]
    # A live message: the subscriber is up (it got its SUBACK for the retained probe) before the
    # publisher sends.
    subprocess.run(pub + ["-t", "install/probe", "-m", "ready", "-r", "-q", "1"], env=env, check=True, timeout=10)
    s = subprocess.Popen(sub + ["-t", "install/#", "-v", "-C", "2", "-W", "10", "-q", "1"], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert s.stdout.readline() == "install/probe ready\n"
        subprocess.run(pub + ["-t", "install/live", "-m", "hello from the package", "-q", "1"], env=env,
                       check=True, timeout=10)
        out, _ = s.communicate(timeout=10)
    finally:
        if s.poll() is None:
            s.kill()
            s.wait()
    assert out == "install/live hello from the package\n"
    assert s.returncode == 0


def test_installed_config_persists_retained_messages(root, broker):
    """The stock configuration has persistence on, in (what stands for) /var/lib/tombo."""
    env = run_env(root)
    pub = [str(root / "usr/bin/tombo-pub"), "-h", "127.0.0.1", "-p", str(broker.port)]
    subprocess.run(pub + ["-t", "install/kept", "-m", "across restarts", "-r", "-q", "1"], env=env, check=True,
                   timeout=10)
    assert broker.stop() == 0, broker.log()
    assert (broker.var / "tombo.db").exists()
    broker.start()
    out = subprocess.run([str(root / "usr/bin/tombo-sub"), "-h", "127.0.0.1", "-p", str(broker.port),
                          "-t", "install/kept", "-C", "1", "-W", "10"], env=env, capture_output=True, text=True,
                         timeout=15)
    assert out.stdout == "across restarts\n", (out, broker.log())


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_renders_without_warnings(root, page):
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--warnings", "-l", str(root / "usr/share/man" / page)], env=env,
                       capture_output=True, text=True, timeout=30)
    # systemd-analyze also loads the machine's other units and warns about them (Debian's
    # dlt-daemon.service, installed for log_dest dlt's test, runs as nobody): only tombo's count.
    ours = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("/lib/systemd/")
            and not line.startswith("/usr/lib/systemd/system/") or "tombo" in line]
    assert r.returncode == 0 and ours == [], r.stderr
    # The version in the page's title line is the project's.
    th = re.search(r"^\.TH .*$", (root / "usr/share/man" / page).read_text(), re.M).group(0)
    assert '"tombo %s"' % project_version() in th, th
    name = os.path.basename(page).rsplit(".", 1)[0]
    assert re.search(r"^NAME\n\s+%s\s+- " % re.escape(name), r.stdout, re.M), r.stdout[:300]


def test_pkg_config_builds_the_tutorial_against_the_installed_library(root, broker, tmp_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(root / "usr/lib/pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tombo"], env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert "-I%s" % (root / "usr/include") in [os.path.normpath(f) if f.startswith("-I") else f for f in flags] or \
        any(os.path.samefile(f[2:], root / "usr/include") for f in flags if f.startswith("-I")), flags
    exe = tmp_path / "subscriber"
    subprocess.run(["gcc", "-Wall", "-o", str(exe), os.path.join(ROOT, "examples", "subscriber.c")] + flags,
                   check=True, timeout=120)
    # The program uses the installed shared library, not one from the build tree.
    ldd = subprocess.run(["ldd", str(exe)], env=run_env(root), capture_output=True, text=True, check=True).stdout
    so = re.search(r"libtombo\.so\.0 => (\S+)", ldd).group(1)
    assert os.path.samefile(so, root / "usr/lib/libtombo.so.0"), ldd
    p = subprocess.Popen([str(exe), "127.0.0.1", str(broker.port)], stdout=subprocess.PIPE, env=run_env(root))
    try:
        assert p.stdout.readline().decode().strip() == "Connected with result code 0"
    finally:
        p.kill()
        p.wait()


# ---- tombo.conf(5) says what docs/config.md says about each directive -------------------------

STATUSES = ["supported, differs", "supported (no effect needed)", "supported", "refused", "tombo-only"]


def status_kind(text):
    text = text.replace("\\-", "-").strip()
    for s in STATUSES:
        if text.startswith(s):
            return s
    raise AssertionError("unknown status %r" % text)


def config_md_statuses():
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        md = f.read()
    table = md[md.index("| directive | status | notes |"):]
    rows = re.findall(r"^\| `([\w.*]+)` \| ([^|]+) \|", table, re.M)
    assert len(rows) > 100, rows
    return {name: status_kind(status) for name, status in rows}


def man_statuses():
    """{directive: status} from the roff source of tombo.conf(5): a .TP entry's names (the first
    word of the line after .TP or .TQ) take the entry's `Status:`; in the TLS and bridge sections,
    each `.BR name ,` line takes the section's."""
    with open(os.path.join(ROOT, "man", "tombo.conf.5")) as f:
        lines = f.read().split("\n")
    result, names, section, want_name = {}, [], "", False

    def flush(status):
        for n in names:
            result[n] = status_kind(status)

    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            section, names, want_name = line[4:].strip('"'), [], False
            continue
        if section not in ("GENERAL OPTIONS", "LISTENERS") and not section.endswith(("SUPPORT", "BRIDGES")):
            continue
        if line in (".TP", ".TQ"):
            if line == ".TP":
                names = []
            want_name = True
            continue
        if want_name:
            word = line.split(None, 1)[1].lstrip('"').split()[0].rstrip('"').replace("\\-", "-")
            names.append(word + "*" if word.endswith("_") else word)
            want_name = False
            continue
        if not section.startswith(("GENERAL", "LISTENERS")) and re.match(r"^\.BR? [\w.]+( ,| \.)?$", line):
            names.append(line.split()[1])
        if line.startswith("Status:"):
            flush(line[len("Status:"):])
            if section.startswith(("GENERAL", "LISTENERS")):
                names = []
    return result


def test_man_page_statuses_match_config_md():
    md, man = config_md_statuses(), man_statuses()
    assert sorted(set(md) - set(man)) == [], "directives of docs/config.md missing from tombo.conf(5)"
    assert sorted(set(man) - set(md)) == [], "directives of tombo.conf(5) missing from docs/config.md"
    differ = {n: (md[n], man[n]) for n in md if md[n] != man[n]}
    assert differ == {}, "status in docs/config.md vs tombo.conf(5)"


# ---- the Docker image's pieces that can be checked without Docker ------------------------------
# (This machine has no Docker daemon: the image itself is not built here. README "Install".)

def test_dockerfile_builds_what_this_test_checks(deb):
    """The Dockerfile's build stage runs `make package` (make package-build, then the cpack command
    the `deb` fixture runs) and installs the .deb it produces."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    assert re.search(r"^RUN make package$", text, re.M)
    with open(os.path.join(ROOT, "Makefile")) as f:
        mk = f.read()
    assert re.search(r"^package: package-build\n\t@cd build/package && cpack -G DEB$", mk, re.M)
    assert re.search(r"^install-test: package-build$", mk, re.M)
    glob = re.search(r"^COPY --from=build /src/build/package/(\S+) /tmp/$", text, re.M).group(1)
    assert re.fullmatch(glob.replace(".", r"\.").replace("*", ".*"), deb.name), (glob, deb.name)
    assert re.search(r'^CMD \["/usr/sbin/tombo", "-c", "/mosquitto/config/mosquitto.conf"\]$', text, re.M)
    assert re.search(r"^FROM debian:bookworm-slim$", text, re.M)


def run_image_config(root, tmp_path, name):
    """Start the installed broker with docker/NAME as the image would, the container's port 1883
    moved to a free port of 127.0.0.1 and /mosquitto/data to a temporary directory."""
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(ROOT, "docker", name)) as f:
        text = f.read()
    assert re.search(r"^listener 1883$", text, re.M)
    text = text.replace("listener 1883\n", "listener %d 127.0.0.1\n" % port)
    text = text.replace("/mosquitto/data/", str(data) + "/")
    conf = tmp_path / name
    conf.write_text(text)
    p = subprocess.Popen([str(root / "usr/sbin/tombo"), "-c", str(conf)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=str(tmp_path))
    deadline = time.time() + 10
    while time.time() < deadline:
        assert p.poll() is None, p.stdout.read().decode()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return p, port, data
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError("broker did not listen")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.returncode


def test_image_default_config_refuses_anonymous_clients_and_persists(root, tmp_path):
    p, port, data = run_image_config(root, tmp_path, "mosquitto.conf")
    try:
        r = subprocess.run([str(root / "usr/bin/tombo-pub"), "-h", "127.0.0.1", "-p", str(port), "-t", "t",
                            "-m", "x"], env=run_env(root), capture_output=True, text=True, timeout=10)
        assert r.returncode == 5 and "not authorised" in r.stderr, r   # CONNACK 5, as Mosquitto 2
    finally:
        assert stop(p) == 0
    assert (data / "tombo.db").exists()
    # log_dest stdout: what `docker logs` shows.
    log = p.stdout.read().decode()
    assert re.search(r"^\d+: tombo version %s running" % re.escape(project_version()), log, re.M), log


def test_image_no_auth_config_relays(root, tmp_path):
    p, port, _ = run_image_config(root, tmp_path, "mosquitto-no-auth.conf")
    try:
        env = run_env(root)
        base = ["-h", "127.0.0.1", "-p", str(port), "-t", "docker/x"]
        subprocess.run([str(root / "usr/bin/tombo-pub")] + base + ["-m", "no auth", "-r"], env=env, check=True,
                       timeout=10)
        out = subprocess.run([str(root / "usr/bin/tombo-sub")] + base + ["-C", "1", "-W", "10"], env=env,
                             capture_output=True, text=True, timeout=15).stdout
        assert out == "no auth\n"
    finally:
        assert stop(p) == 0
