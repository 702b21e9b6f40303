"""Fixtures for the client tests (libtombo, its C test programs, the examples); tests/tools/conftest.py
loads this file too.

The broker comes from tests/broker/conftest.py's rules (same Broker class, loaded from there):
  TOMBO_BUILD=<cmake build dir>  binaries under it: src/broker/tombo (the broker), src/tools/tombo-*,
                                 examples/*, tests/client/test_client_* (the C test programs)
  TOMBO_REFERENCE=mosquitto      run the tests against Debian's mosquitto instead of tombo.
Every client process is started with a timeout; a sanitizer report on its stderr fails the test.
"""
import importlib.util
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_spec = importlib.util.spec_from_file_location("tombo_broker_conftest", os.path.join(ROOT, "tests", "broker",
                                                                                      "conftest.py"))
broker_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(broker_conftest)
Broker = broker_conftest.Broker
_spec = importlib.util.spec_from_file_location("tombo_pki", os.path.join(ROOT, "tests", "broker", "pki.py"))
pki_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pki_module)
free_port = broker_conftest.free_port
is_reference = broker_conftest.is_reference

BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))


def binary(*parts):
    path = os.path.join(BUILD, *parts)
    if not os.path.exists(path):
        pytest.fail("missing binary %s (build first, or set TOMBO_BUILD)" % path)
    return path


def client_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def check_sanitizers(name, stderr):
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer"):
        assert marker not in text, "%s: sanitizer report:\n%s" % (name, text[-6000:])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Certificates and keys made by openssl for this module (tests/broker/pki.py): name -> path."""
    return pki_module.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def make_broker(request):
    """Factory: make_broker(conf_text) -> started Broker, stopped after the test; mosquitto=True
    starts Debian's mosquitto instead of tombo."""
    brokers = []

    def make(conf="allow_anonymous true\n", port=None, mosquitto=False):
        b = Broker(conf, port, mosquitto=mosquitto).start()
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()
        text = b.log()
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text[-6000:]


@pytest.fixture
def broker(make_broker):
    return make_broker()
