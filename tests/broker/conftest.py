"""Shared fixtures for the black-box broker tests.

Every test talks to a real broker binary over 127.0.0.1 on a port picked for it:
  TOMBO_BUILD=<cmake build dir>   run <dir>/src/broker/tombo   (what `make test` does)
  TOMBO_REFERENCE=mosquitto       run Debian's /usr/sbin/mosquitto instead, to check a test
                                  against the reference broker.
The broker is started with a config file written by the test (mosquitto.conf syntax), and
stopped by its PID. Its log is kept and shown when a test fails.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_cmd(conf_path, mosquitto=False):
    if mosquitto or os.environ.get("TOMBO_REFERENCE") == "mosquitto":
        return ["/usr/sbin/mosquitto", "-c", conf_path]
    build = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))
    return [os.path.join(build, "src", "broker", "tombo"), "-c", conf_path]


def is_reference():
    return os.environ.get("TOMBO_REFERENCE") == "mosquitto"


class Broker:
    """A broker process. `conf` is the config text without the listener line(s); a
    `listener PORT 127.0.0.1` line is added for self.port."""

    def __init__(self, conf="allow_anonymous true\n", port=None, raw_conf=False, mosquitto=False):
        self.port = port or free_port()
        self.mosquitto = mosquitto  # run Debian's mosquitto whatever TOMBO_REFERENCE says (A/B tests)
        self.picked_port = port is None   # free to pick another port if this one is taken
        # raw_conf: write `conf` verbatim (after replacing the token PORT by self.port), with no
        # listener line added, e.g. to run the tutorial's config file unchanged.
        self.raw_conf = raw_conf
        self.host = "127.0.0.1"
        self.dir = tempfile.mkdtemp(prefix="tombo-test-")
        self.conf_text = conf
        self.conf_path = os.path.join(self.dir, "broker.conf")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.proc = None

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            if self.raw_conf:
                f.write(self.conf_text.replace("PORT", str(self.port)))
                return
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write(self.conf_text)

    def _popen(self, logf):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        cmd = ["/usr/sbin/mosquitto", "-c", self.conf_path] if self.mosquitto else broker_cmd(self.conf_path)
        return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir, env=env)

    def run_until_exit(self, timeout=60.0):
        """For a config that must stop start-up: run the broker, wait (bounded) for it to exit and
        return (exit code, log); None if it had to be killed. start() cannot tell: with several
        listeners, the first accepts connections before a later one fails to open."""
        self.write_conf()
        with open(self.log_path, "ab") as logf:
            proc = self._popen(logf)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = None
        return rc, self.log()

    def start(self, timeout=10.0, port_retries=3):
        self.write_conf()
        self.logf = open(self.log_path, "ab")
        self.proc = self._popen(self.logf)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                # Another process (tests run in parallel on this machine) may have taken the free
                # port between free_port() and the broker's bind: pick another one and retry.
                if port_retries > 0 and self.picked_port and "in use" in self.log():
                    self.logf.close()
                    self.proc = None
                    self.port = free_port()
                    return self.start(timeout, port_retries - 1)
                raise RuntimeError("broker exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            # The listener that answered must be ours: a broker that failed to bind exits at once.
            time.sleep(0.05)
            if self.proc.poll() is None:
                return self
        raise RuntimeError("broker did not listen on %d:\n%s" % (self.port, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop the broker by its PID; return its exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                self.logf.close()
                return None
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def pytest_collection_modifyitems(config, items):
    """Tests marked reference_differs assert the spec where Mosquitto 2.0.11 does not follow it:
    skip them when running against the reference broker."""
    if not is_reference():
        return
    skip = pytest.mark.skip(reason="reference_differs: Mosquitto deviates from the spec here")
    for item in items:
        if "reference_differs" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_broker(request):
    """Factory: make_broker(conf_text) -> started Broker. All are stopped after the test; a
    sanitizer report or a non-zero exit on SIGTERM fails the test."""
    brokers = []

    def make(conf="allow_anonymous true\n", port=None, raw_conf=False, mosquitto=False):
        b = Broker(conf, port, raw_conf=raw_conf, mosquitto=mosquitto).start()
        brokers.append(b)
        return b

    yield make
    failures = []
    for b in brokers:
        was_alive = b.alive()
        rc = b.stop()
        text = b.log()
        if "ERROR: AddressSanitizer" in text or "runtime error:" in text or "WARNING: ThreadSanitizer" in text:
            failures.append("sanitizer report from broker on port %d:\n%s" % (b.port, text[-6000:]))
        elif was_alive and rc not in (0, None) and not is_reference() and not b.mosquitto:
            failures.append("broker on port %d exited with %s on SIGTERM:\n%s" % (b.port, rc, text[-4000:]))
        elif not was_alive and not getattr(b, "expect_exit", False):
            failures.append("broker on port %d died during the test:\n%s" % (b.port, text[-4000:]))
    if failures:
        pytest.fail("\n\n".join(failures))


@pytest.fixture
def broker(make_broker):
    """A broker with the default test config: anonymous clients allowed."""
    return make_broker()
