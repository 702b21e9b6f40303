"""libtombo across a broker restart (test_client_reconnect.c does the client side): automatic
reconnect with backoff, offline queue flushed on reconnect, in-flight QoS 1/2 completed, QoS 2 not
duplicated when the broker keeps sessions (persistence), re-subscribe when it does not."""
import os
import signal
import queue
import subprocess
import tempfile
import threading

import pytest

from conftest import Broker, binary, check_sanitizers, client_env, is_reference


class Proc:
    def __init__(self, args):
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=client_env())
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in iter(self.p.stdout.readline, b""):
            self.lines.put(line.decode().strip())
        self.lines.put(None)

    def expect(self, prefix, timeout=30):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None or not line.startswith(prefix):
            self.p.kill()
            raise AssertionError("expected %r, got %r; stderr:\n%s" % (prefix, line, self.p.stderr.read().decode()))
        return line

    def send(self, text):
        self.p.stdin.write((text + "\n").encode())
        self.p.stdin.flush()


@pytest.mark.parametrize("version", [4, 5], ids=["mqttv311", "mqttv5"])
# "crash": the broker is killed with SIGKILL. tombo commits before it acknowledges, so nothing is lost;
# Mosquitto would lose what came after its last snapshot, so that case runs against tombo only.
@pytest.mark.parametrize("mode", ["persist", pytest.param("crash", marks=pytest.mark.skipif(
    is_reference(), reason="Mosquitto loses what it did not snapshot on a crash")), "clean"])
def test_reconnect_after_broker_restart(version, mode, tmp_path):
    conf = "allow_anonymous true\n"
    if mode in ("persist", "crash"):
        # World-writable: mosquitto started as root drops to the mosquitto user before saving.
        pdir = tempfile.mkdtemp(prefix="tombo-persist-")
        os.chmod(pdir, 0o777)
        conf += "persistence true\npersistence_location %s/\n" % pdir
    broker = Broker(conf).start()
    proc = None
    try:
        proc = Proc([binary("tests", "client", "test_client_reconnect"), "127.0.0.1", str(broker.port), str(version),
                     mode])
        proc.expect("READY")
        proc.expect("BURST")
        broker.stop(signal.SIGKILL if mode == "crash" else signal.SIGTERM)
        proc.send("DOWN")
        proc.expect("QUEUED")
        broker.start()
        proc.send("UP")
        done = proc.expect("DONE", timeout=60)
        proc.p.wait(timeout=20)
        err = proc.p.stderr.read().decode()
        check_sanitizers("test_client_reconnect", err)
        assert proc.p.returncode == 0, done + "\n" + err
        if mode in ("persist", "crash"):
            assert "session_present=1" in done  # so in-flight messages were re-sent with DUP
        if mode == "clean":
            assert "session_present=0" in done  # so the subscription was renewed by the library
    finally:
        if proc and proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait()
        broker.stop()
