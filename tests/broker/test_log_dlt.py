"""log_dest dlt: log lines go to a GENIVI/COVESA DLT daemon through libdlt, as Mosquitto built
WITH_DLT sends them (application and context MQTT, the line with its timestamp, levels mapped as in
its logging.c: information -> info, notice -> verbose, ...).

Each test starts a dlt-daemon of its own: its FIFO and user pipes in a temporary directory (-t DIR;
the broker finds it through DLT_PIPE_DIR, as any libdlt application does), its TCP port picked
free and bound to 127.0.0.1, no UDP multicast; dlt-receive reads the lines back from that port.
Everything is stopped by PID."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import free_port, is_reference

pytestmark = [
    pytest.mark.skipif(not shutil.which("dlt-daemon") or not shutil.which("dlt-receive"),
                       reason="dlt-daemon/dlt-receive not installed (scripts/deps.sh test)"),
    pytest.mark.skipif(is_reference(), reason="Debian's mosquitto is built without WITH_DLT"),
]


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Dlt:
    """A dlt-daemon on 127.0.0.1:port with its pipes in self.dir, and a dlt-receive printing what it
    gets (-a: payload as ASCII) to self.out, line-buffered (stdbuf)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tombo-dlt-")
        self.port = free_port()
        conf = os.path.join(self.dir, "dlt.conf")
        with open(conf, "w") as f:
            f.write("SendContextRegistration = 1\nECUId = ECU1\nSharedMemorySize = 100000\nLoggingMode = 0\n"
                    "LoggingLevel = 6\nLoggingFilename = %s/dlt.log\nTimeOutOnSend = 4\n"
                    "RingbufferMinSize = 500000\nRingbufferMaxSize = 10000000\nRingbufferStepSize = 500000\n"
                    "ControlSocketPath = %s/ctrl.sock\nPersistanceStoragePath = %s\n"
                    "UDPConnectionSetup = 0\nBindAddress = ::ffff:127.0.0.1\n" % (self.dir, self.dir, self.dir))
        self.daemon_log = open(os.path.join(self.dir, "daemon.out"), "wb")
        self.daemon = subprocess.Popen(["dlt-daemon", "-c", conf, "-t", self.dir, "-p", str(self.port)],
                                       stdout=self.daemon_log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.recv = None
        fifo = os.path.join(self.dir, "dlt")
        if not wait_for(lambda: os.path.exists(fifo) and self._port_open()):
            self.stop()
            raise RuntimeError("dlt-daemon did not start:\n" + self.daemon_text())
        self.out = os.path.join(self.dir, "recv.out")
        self.recv_log = open(self.out, "wb")
        self.recv = subprocess.Popen(["stdbuf", "-oL", "dlt-receive", "-a", "-p", str(self.port), "127.0.0.1"],
                                     stdout=self.recv_log, stderr=subprocess.STDOUT, cwd=self.dir)
        # The daemon greets each client ("Daemon launched..." or a new-connection line).
        if not wait_for(lambda: "DLTD" in self.text()):
            self.stop()
            raise RuntimeError("dlt-receive got nothing:\n" + self.text())

    def _port_open(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def text(self):
        with open(self.out, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def daemon_text(self):
        with open(os.path.join(self.dir, "daemon.out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self, app="MQTT"):
        """The received log lines of application `app`: (level word, payload)."""
        got = []
        for ln in self.text().splitlines():
            parts = ln.split()
            # date time timestamp counter ECU APID CTID "log" LEVEL V N [payload]
            if len(parts) > 8 and parts[5] == app and parts[7] == "log" and "[" in ln:
                level = parts[8] if parts[8] != "V" else ""
                got.append((level, ln[ln.index("[") + 1:ln.rindex("]")]))
        return got

    def stop(self):
        for p in (self.recv, self.daemon):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.daemon_log.close()
        if self.recv is not None:
            self.recv_log.close()


@pytest.fixture
def dlt(monkeypatch):
    d = Dlt()
    monkeypatch.setenv("DLT_PIPE_DIR", d.dir)  # the broker's environment (conftest copies os.environ)
    yield d
    d.stop()
    shutil.rmtree(d.dir, ignore_errors=True)


def connect_and_leave(port, client_id):
    c = mqtt.Client(client_id=client_id)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert wait_for(c.is_connected, 5)
    c.disconnect()
    c.loop_stop()


def test_log_dest_dlt_lines_reach_the_daemon(make_broker, dlt):
    """Lines reach the daemon under application and context MQTT, each with its timestamp, at
    Mosquitto's levels: an error as error. Notices go out as verbose, which libdlt's default
    context level (info) filters. The other destinations still get every line."""
    b = make_broker("allow_anonymous true\nlog_dest dlt\nlog_dest stderr\nlog_timestamp_format %Y-%m-%d\n")
    with open(b.conf_path, "a") as f:
        f.write("max_keepalive abc\n")  # a reload that fails: an error line
    b.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: any("configuration is not reloaded" in p for _, p in dlt.lines()), 10), \
        dlt.text() + b.log()
    level, payload = next((lv, p) for lv, p in dlt.lines() if "configuration is not reloaded" in p)
    assert level == "error"
    assert payload.startswith(time.strftime("%Y-%m-%d") + ": Error: %s:" % b.conf_path), payload
    assert "configuration is not reloaded" in b.log()  # stderr too
    assert "Opening ipv4/ipv6 listen socket" in b.log()
    assert not any("listen socket" in p for _, p in dlt.lines())  # a notice: verbose, filtered
    assert "Warning: log_dest dlt" not in b.log()


def test_log_dest_dlt_levels_as_mosquitto(make_broker, dlt, monkeypatch):
    """With the context's level raised to verbose (DLT_INITIAL_LOG_LEVEL, libdlt's own variable),
    notices and subscribe lines arrive as verbose, as Mosquitto's get_dlt_level maps them; the
    config's warnings, logged as soon as the log is set up, arrive as warnings."""
    monkeypatch.setenv("DLT_INITIAL_LOG_LEVEL", "MQTT:MQTT:6")
    b = make_broker("allow_anonymous true\nlog_type all\nlog_dest dlt\nretry_interval 20\n")
    c = mqtt.Client(client_id="dlt-client-1")
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    assert wait_for(c.is_connected, 5)
    c.subscribe("dlt/topic", 1)
    assert wait_for(lambda: any("dlt/topic" in p for _, p in dlt.lines()), 10), dlt.text() + b.log()
    c.disconnect()
    c.loop_stop()
    assert wait_for(lambda: any("dlt-client-1" in p and "disconnected" in p for _, p in dlt.lines()), 10), \
        dlt.text() + b.log()
    got = dlt.lines()
    assert any(lv == "verbose" and "Opening ipv4/ipv6 listen socket" in p for lv, p in got), got
    assert any(lv == "verbose" and "New client connected" in p and "dlt-client-1" in p for lv, p in got), got
    assert any(lv == "verbose" and "dlt-client-1 1 dlt/topic" in p for lv, p in got), got
    assert any(lv == "warn" and "retry_interval" in p for lv, p in got), got
    assert b.log() == ""  # log_dest dlt alone: nothing on stderr


def test_log_dest_dlt_without_daemon(make_broker, monkeypatch):
    """No daemon reads the FIFO: a warning says so, the other destinations keep the lines, and the
    broker starts and stops promptly (libdlt is not registered, so nothing waits for a flush)."""
    empty = tempfile.mkdtemp(prefix="tombo-nodlt-")
    monkeypatch.setenv("DLT_PIPE_DIR", empty)
    b = make_broker("allow_anonymous true\nlog_dest dlt\nlog_dest stderr\n")
    assert "Warning: log_dest dlt: no DLT daemon reads %s/dlt" % empty in b.log()
    connect_and_leave(b.port, "nodlt")
    assert "New client connected" in b.log()
    t = time.time()
    assert b.stop() == 0
    b.expect_exit = True
    assert time.time() - t < 5
    shutil.rmtree(empty, ignore_errors=True)
