"""The dashboard (docs/web.md) in Debian's headless Chromium, against the real broker under load:
the live counters change from one second to the next, a client appears in the client list, the
packet trace of a chosen client shows its PUBLISH packets, and a screenshot is saved to
docs/web.png (the one docs/web.md shows) and checked to be a non-empty PNG.

Chromium runs with --virtual-time-budget: the page's timers run in virtual time, which stands
still while its requests to the broker are pending, so each one-second tick of the page really
asks the broker; the page records the counter it showed at each tick in data-samples."""
import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import ROOT, free_port, is_reference
from clients import PahoClient

pytestmark = pytest.mark.skipif(is_reference(), reason="tombo's own dashboard")

CHROMIUM = "/usr/bin/chromium"


def chromium(args, timeout=120):
    assert os.path.exists(CHROMIUM), "Chromium is missing (%s): run scripts/deps.sh test (Debian package chromium)" % CHROMIUM
    profile = tempfile.mkdtemp(prefix="tombo-chromium-")
    try:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--user-data-dir=" + profile, "--hide-scrollbars"] + args
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Load:
    """A publisher sending QoS 1 messages to load/<n> until stopped (a few hundred per second)."""

    def __init__(self, b):
        self.pub = PahoClient(b)
        self.pub.connect()
        self.stop = threading.Event()
        self.n = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.pub.publish("load/%d" % (self.n % 5), b"value %d" % self.n, qos=1, retain=self.n % 50 == 0)
            self.n += 1
            time.sleep(0.005)

    def close(self):
        self.stop.set()
        self.t.join(10)
        self.pub.close()


@pytest.fixture
def busy_broker(make_broker):
    port = free_port()
    b = make_broker("allow_anonymous true\nhttp_listener %d 127.0.0.1\n" % port)
    b.http_port = port
    watcher = PahoClient(b, client_id="dashboard-watcher")
    watcher.connect()
    watcher.subscribe("load/#", qos=1)
    load = Load(b)
    yield b
    load.close()
    watcher.close()


def test_dashboard_live_counters_clients_and_trace(busy_broker):
    """The page shows counters that change while a load runs, the traced client in the client
    list, and PUBLISH arrows in its packet trace."""
    b = busy_broker
    url = "http://127.0.0.1:%d/?trace=dashboard-watcher" % b.http_port
    dom, err = chromium(["--window-size=1280,1200", "--virtual-time-budget=20000", "--dump-dom", url])
    assert "<main>" in dom, "Chromium gave no page:\n" + err[-3000:]
    m = re.search(r'id="counters"[^>]*data-samples="([^"]*)"', dom)
    assert m, dom[:2000]
    samples = json.loads(html.unescape(m.group(1)))
    assert len(samples) >= 3, samples
    assert samples == sorted(samples) and samples[-1] > samples[0], samples  # live, growing under load
    shown = re.search(r'id="c-pub-in">(\d+)<', dom)
    assert shown and int(shown.group(1)) == samples[-1]
    assert 'status ok">live<' in dom
    assert re.search(r'<tr data-client="dashboard-watcher">.*?connected', dom), "client missing from the list"
    types = re.findall(r'data-type="([A-Z]+)"', dom)
    assert "PUBLISH" in types and "PUBACK" in types, types[:40]
    assert "load/" in dom  # the topic tree or the trace's details


def test_dashboard_screenshot(busy_broker):
    """A screenshot of the dashboard under load, saved as docs/web.png for docs/web.md: a PNG of
    the window's size, not empty."""
    b = busy_broker
    out = os.path.join(ROOT, "docs", "web.png")
    tmp = out + ".tmp.png"
    url = "http://127.0.0.1:%d/?trace=dashboard-watcher" % b.http_port
    if os.path.exists(tmp):
        os.unlink(tmp)
    _, err = chromium(["--window-size=1280,1400", "--virtual-time-budget=8000", "--screenshot=" + tmp, url])
    assert os.path.exists(tmp), "no screenshot:\n" + err[-3000:]
    with open(tmp, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1280, 1400) and len(data) > 30000, (w, h, len(data))
    os.replace(tmp, out)
