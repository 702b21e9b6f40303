"""The classic MQTT tutorial (issue 2): the Mosquitto config file runs unchanged (only the port is
the test's), a paho subscriber on test/+ gets the ten timestamps a paho publisher sends to
test/0 .. test/9, at QoS 0, 1 and 2, on 3.1.1 and 5.0; mosquitto_pub/mosquitto_sub interoperate."""
import queue
import subprocess
import threading
import time

import pytest

from clients import PahoClient, V311, V5

TUTORIAL_CONF = "set_tcp_nodelay true\nlistener PORT\nallow_anonymous true\nmax_queued_messages 0\n"


@pytest.fixture
def tutorial_broker(make_broker):
    return make_broker(TUTORIAL_CONF, raw_conf=True)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_tutorial_paho(tutorial_broker, protocol, qos):
    sub = PahoClient(tutorial_broker, protocol=protocol)
    sub.connect()
    assert sub.subscribe("test/+", qos) == [qos]
    pub = PahoClient(tutorial_broker, protocol=protocol)
    pub.connect()
    sent = []
    for i in range(10):
        payload = ("%.6f" % time.time()).encode()
        sent.append(("test/%d" % i, payload))
        pub.publish("test/%d" % i, payload, qos)
    got = sub.get_n(10)
    assert [(m.topic, m.payload) for m in got] == sent
    assert all(m.qos == qos for m in got)
    sub.expect_none(0.2)
    pub.disconnect()
    sub.disconnect()


class LineReader:
    """Reads a subprocess's stdout lines on a thread into a queue, so every read has a timeout."""

    def __init__(self, proc):
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._run, args=(proc.stdout,), daemon=True)
        self.t.start()

    def _run(self, f):
        for line in iter(f.readline, b""):
            self.q.put(line.decode().rstrip("\n"))

    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output line within %ss" % timeout)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_tutorial_mosquitto_clients(tutorial_broker, version, qos):
    """mosquitto_sub on test/+ receives the ten timestamps sent by mosquitto_pub."""
    port = str(tutorial_broker.port)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", version, "-q", str(qos),
                            "-t", "test/+", "-v", "-W", "30"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        reader = LineReader(sub)
        # mosquitto_sub's subscription is in place once a probe on test/probe reaches it.
        probe = PahoClient(tutorial_broker)
        probe.connect()
        deadline = time.time() + 5
        while True:
            assert time.time() < deadline, "mosquitto_sub never received a probe"
            probe.publish("test/probe", b"probe", 1)
            try:
                if reader.get(0.2).startswith("test/probe"):
                    break
            except AssertionError:
                pass
        probe.disconnect()
        expected = []
        for i in range(10):
            payload = "%.6f" % time.time()
            expected.append("test/%d %s" % (i, payload))
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", version, "-q", str(qos),
                            "-t", "test/%d" % i, "-m", payload], check=True, timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = []
        while len(got) < 10:
            line = reader.get(5)
            if not line.startswith("test/probe"):
                got.append(line)
        assert got == expected
    finally:
        sub.terminate()
        try:
            sub.wait(5)
        except subprocess.TimeoutExpired:
            sub.kill()
            sub.wait()
