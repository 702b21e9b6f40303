"""The tutorial in C (examples/publisher.c, examples/subscriber.c): the subscriber on test/+ prints
the ten timestamps the publisher sends to test/0 .. test/9 as topic:payload."""
import queue
import re
import signal
import subprocess
import threading
import time

from conftest import binary, check_sanitizers, client_env


def test_publisher_and_subscriber(broker):
    sub = subprocess.Popen([binary("examples", "subscriber"), "127.0.0.1", str(broker.port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.decode().rstrip("\n")) for l in iter(sub.stdout.readline, b"")],
                     daemon=True).start()
    try:
        assert lines.get(timeout=10) == "Connected with result code 0"
        time.sleep(0.5)  # its SUBSCRIBE is sent from on_connect
        pub = subprocess.run([binary("examples", "publisher"), "--interval", "0.05", "127.0.0.1", str(broker.port)],
                             capture_output=True, timeout=30, env=client_env())
        check_sanitizers("publisher", pub.stderr)
        assert pub.returncode == 0, pub.stderr.decode()
        out = pub.stdout.decode().splitlines()
        assert "Connected with result code 0" in out
        sent = [l for l in out if l.startswith("Send")]
        assert len(sent) == 10
        expected = []
        for i, line in enumerate(sent):
            m = re.fullmatch(r"Send `(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)` to topic `test/(\d)`", line)
            assert m and int(m.group(2)) == i, line
            expected.append("test/%d:%s" % (i, m.group(1)))
        got = [lines.get(timeout=10) for _ in range(10)]
        assert got == expected
    finally:
        sub.send_signal(signal.SIGTERM)
        try:
            sub.wait(5)
        except subprocess.TimeoutExpired:
            sub.kill()
            sub.wait()
    check_sanitizers("subscriber", sub.stderr.read())


def test_publisher_no_broker():
    """No broker listening: the publisher says so and fails, no crash."""
    from conftest import free_port
    pub = subprocess.run([binary("examples", "publisher"), "--interval", "0", "127.0.0.1", str(free_port())],
                         capture_output=True, timeout=30, env=client_env())
    check_sanitizers("publisher", pub.stderr)
    assert pub.returncode == 1
    assert pub.stderr.decode().startswith("Failed to connect")
