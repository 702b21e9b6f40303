"""Fixtures for the tools tests (tombo-pub, tombo-sub, tombo-passwd).

The tools are libtombo clients run as processes, so they use the client tests' fixtures and rules
(TOMBO_BUILD, TOMBO_REFERENCE, the sanitizer checks): tests/client/conftest.py, loaded from there.
"""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_spec = importlib.util.spec_from_file_location("tombo_client_conftest", os.path.join(ROOT, "tests", "client",
                                                                                      "conftest.py"))
client_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(client_conftest)
Broker = client_conftest.Broker
free_port = client_conftest.free_port
is_reference = client_conftest.is_reference
BUILD = client_conftest.BUILD
binary = client_conftest.binary
client_env = client_conftest.client_env
check_sanitizers = client_conftest.check_sanitizers
make_broker = client_conftest.make_broker  # fixture
broker = client_conftest.broker  # fixture
pki = client_conftest.pki  # fixture
