"""Every mosquitto.conf(5) directive of Mosquitto 2.0, one row each, with tombo's status, proved by
starting the real broker binary with a config holding that directive.

The project's rule: a directive that is accepted works; one whose meaning the broker does not
implement stops start-up with `FILE:LINE: NAME: not supported yet by tombo (what to do instead)`.
A directive that is accepted and ignored (a TLS listener serving plain MQTT) is the worst bug tombo
can have, so this table cannot be bypassed:
  - every directive of Mosquitto 2.0 has a row (the list below, and the installed manpage when
    there is one);
  - every directive src/broker/config.c accepts has a row that says it works, and every one it
    refuses has a row that says so (the test reads config.c's two tables);
  - each row is run against the binary: WORKS / NOOP / TOMBO rows start and listen, REFUSED rows
    exit non-zero with FILE:LINE and the message, without ever listening;
  - a WORKS row names the test file that proves the directive's behaviour, and that file must use
    the directive.
docs/config.md has the same table for users. The behaviour tests at the end cover the directives
no other test file exercised.
"""
import atexit
import gzip
import os
import re
import socket
import subprocess
import tempfile
import time
import types

import pytest

from conftest import ROOT, broker_cmd, free_port, is_reference
from clients import PUBACK, PUBLISH, SUBACK, PahoClient, Raw, V5, rc_value, unique_id

CONFIG_C = os.path.join(ROOT, "src", "broker", "config.c")
MANPAGE = "/usr/share/man/man5/mosquitto.conf.5.gz"
TESTS = os.path.join(ROOT, "tests")
BUILD_DIR = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))

WORKS = "works"        # implemented with Mosquitto's meaning; `where` is the test file proving it
NOOP = "no-op"         # accepted; tombo's one behaviour already is what every accepted value asks for
REFUSED = "refused"    # stops start-up with FILE:LINE: ... not supported yet by tombo (...)
TOMBO = "tombo-only"   # not a Mosquitto directive

# Mosquitto 2.0's directives: the mosquitto.conf(5) headings of Mosquitto 2.0.11, plus the ones
# its parser accepts without documenting them (clientid/username/password: old names of the
# bridge's remote_*, plugin/plugin_opt_*: 2.0 names of auth_plugin/auth_opt_*, retry_interval:
# "no longer available", retained_persistence: alias of persistence).
MOSQUITTO_20 = """
acl_file allow_anonymous allow_duplicate_messages allow_zero_length_clientid auth_opt_*
auth_plugin auth_plugin_deny_special_chars auto_id_prefix autosave_interval autosave_on_changes
check_retain_source clientid_prefixes connection_messages include_dir log_dest log_facility
log_timestamp log_timestamp_format log_type max_inflight_bytes max_inflight_messages max_keepalive
max_packet_size max_queued_bytes max_queued_messages memory_limit message_size_limit password_file
per_listener_settings persistence persistence_file persistence_location
persistent_client_expiration pid_file psk_file queue_qos0_messages retain_available
set_tcp_nodelay sys_interval upgrade_outgoing_qos user
bind_address bind_interface http_dir listener max_connections max_qos max_topic_alias mount_point
port protocol socket_domain use_username_as_clientid websockets_log_level websockets_headers_size
cafile capath certfile ciphers ciphers_tls1.3 crlfile dhparamfile keyfile require_certificate
tls_engine tls_engine_kpass_sha1 tls_keyform tls_version use_identity_as_username
use_subject_as_username psk_hint
address addresses bridge_attempt_unsubscribe bridge_bind_address bridge_max_packet_size
bridge_outgoing_retain bridge_protocol_version cleansession local_cleansession connection
keepalive_interval idle_timeout local_clientid local_password local_username notifications
notifications_local_only notification_topic remote_clientid remote_password remote_username
restart_timeout round_robin start_type threshold topic try_private bridge_alpn bridge_cafile
bridge_capath bridge_certfile bridge_identity bridge_insecure bridge_keyfile bridge_psk
bridge_require_ocsp bridge_tls_version
clientid username password plugin plugin_opt_* retry_interval retained_persistence
""".split()

# (directive, config line(s), status, where/why). The lines follow `listener PORT 127.0.0.1` (line 1)
# and precede `allow_anonymous true`; tokens: PORT2 (a second free port), DIR (a fresh directory),
# FILE (an empty file), PLUGIN (tests/broker/plugins' test plugin), TLSCRT/TLSKEY/TLSCA/TLSCAPATH/TLSCRL/TLSDH/TLSPSK (a server certificate and
# its key, its CA as a file and as a hashed directory, a CRL, DH parameters, a PSK file; made with
# `openssl` once). A directive may have several rows (one value works, another is refused).
TLS = "certfile TLSCRT\nkeyfile TLSKEY\n"
TB = "broker/test_bridge.py"
BR = "connection b1\naddress 127.0.0.1:PORT2\ntopic # both 0\n"  # a bridge section, then the row's line
ROWS = [
    # ---- general
    ("acl_file", "acl_file FILE", WORKS, "broker/test_auth.py"),
    ("allow_anonymous", "allow_anonymous false", WORKS, "broker/test_config.py"),
    ("allow_duplicate_messages", "allow_duplicate_messages true", NOOP,
     "tombo always sends one copy per client, which both values allow (test_subscribe.py [MQTT-3.3.5-1])"),
    ("allow_zero_length_clientid", "allow_zero_length_clientid false", WORKS, "broker/test_directives.py"),
    ("auth_opt_*", "auth_plugin PLUGIN\nauth_opt_users a:b", WORKS, "broker/test_plugin.py"),
    ("auth_plugin", "auth_plugin PLUGIN", WORKS, "broker/test_plugin.py"),
    ("auth_plugin_deny_special_chars", "auth_plugin PLUGIN\nauth_plugin_deny_special_chars false", WORKS,
     "broker/test_plugin.py"),
    ("auto_id_prefix", "auto_id_prefix gen-", WORKS, "broker/test_directives.py"),
    ("autosave_interval", "autosave_interval 60", NOOP,
     "tombo commits every message before acknowledging it (docs/persistence.md)"),
    ("autosave_on_changes", "autosave_on_changes true", NOOP, "as autosave_interval"),
    ("check_retain_source", "check_retain_source false", WORKS, "broker/test_retain.py"),
    ("check_retain_source", "check_retain_source true", WORKS, "broker/test_retain.py"),
    ("clientid_prefixes", "clientid_prefixes secure-", WORKS, "broker/test_directives.py"),
    ("connection_messages", "connection_messages false", WORKS, "broker/test_directives.py"),
    ("include_dir", "include_dir DIR", WORKS, "broker/test_config.py"),
    ("log_dest", "log_dest file DIR/x.log", WORKS, "broker/test_config.py"),
    ("log_dest", "log_dest stderr\nlog_dest topic", WORKS, "broker/test_sys.py"),
    ("log_dest", "log_dest dlt", WORKS, "broker/test_log_dlt.py"),
    ("log_facility", "log_facility 5", WORKS, "broker/test_directives.py"),
    ("log_timestamp", "log_timestamp false", WORKS, "broker/test_directives.py"),
    ("log_timestamp_format", "log_timestamp_format %Y-%m-%dT%H:%M:%S", WORKS, "broker/test_directives.py"),
    ("log_type", "log_type all", WORKS, "broker/test_config.py"),
    ("max_inflight_bytes", "max_inflight_bytes 1000", WORKS, "broker/test_directives.py"),
    ("max_inflight_messages", "max_inflight_messages 5", WORKS, "broker/test_publish_qos.py"),
    ("max_keepalive", "max_keepalive 60", WORKS, "broker/test_keepalive.py"),
    ("max_packet_size", "max_packet_size 1000", WORKS, "broker/test_malformed.py"),
    ("max_queued_bytes", "max_queued_bytes 10000", WORKS, "broker/test_session.py"),
    ("max_queued_messages", "max_queued_messages 10", WORKS, "broker/test_session.py"),
    ("memory_limit", "memory_limit 100000000", WORKS, "broker/test_limits.py"),
    ("message_size_limit", "message_size_limit 1000", WORKS, "broker/test_session.py"),
    ("password_file", "password_file FILE", WORKS, "broker/test_auth.py"),
    ("per_listener_settings", "per_listener_settings true", WORKS, "broker/test_auth.py"),
    ("persistence", "persistence true", WORKS, "broker/test_persistence.py"),
    ("persistence_file", "persistence true\npersistence_file x.db", WORKS, "broker/test_directives.py"),
    ("persistence_location", "persistence true\npersistence_location DIR/", WORKS, "broker/test_directives.py"),
    # An hour at least: its parsing is unit-tested; the session expiry it sets is the one
    # test_session.py exercises through MQTT 5's Session Expiry Interval.
    ("persistent_client_expiration", "persistent_client_expiration 2d", WORKS, "unit/broker/test_broker_config.c"),
    ("pid_file", "pid_file DIR/tombo.pid", WORKS, "broker/test_directives.py"),
    ("psk_file", "psk_hint tombo\npsk_file TLSPSK", WORKS, "broker/test_tls.py"),
    ("queue_qos0_messages", "queue_qos0_messages true", WORKS, "broker/test_directives.py"),
    ("retain_available", "retain_available false", WORKS, "broker/test_directives.py"),
    ("set_tcp_nodelay", "set_tcp_nodelay true", WORKS, "broker/test_tutorial.py"),
    ("sys_interval", "sys_interval 1", WORKS, "broker/test_sys.py"),
    ("upgrade_outgoing_qos", "upgrade_outgoing_qos true", WORKS, "broker/test_directives.py"),
    ("user", "user nobody", WORKS, "broker/test_directives.py"),
    # ---- listeners
    ("bind_address", "port PORT2\nbind_address 127.0.0.1", WORKS, "broker/test_directives.py"),
    ("bind_interface", "bind_interface lo", WORKS, "broker/test_listener_options.py"),
    ("http_dir", "protocol websockets\nhttp_dir DIR", WORKS, "broker/test_http_dir.py"),
    ("listener", "listener PORT2 127.0.0.1", WORKS, "broker/test_config.py"),
    ("listener", "listener 0 DIR/mqtt.sock", WORKS, "broker/test_listener_options.py"),
    ("max_connections", "max_connections 10", WORKS, "broker/test_directives.py"),
    ("max_qos", "max_qos 1", WORKS, "broker/test_directives.py"),
    ("max_topic_alias", "max_topic_alias 5", WORKS, "broker/test_listener_options.py"),
    ("mount_point", "mount_point site1/", WORKS, "broker/test_listener_options.py"),
    ("port", "port PORT2\nbind_address 127.0.0.1", WORKS, "broker/test_directives.py"),
    ("protocol", "protocol mqtt", WORKS, "broker/test_directives.py"),
    ("protocol", "protocol websockets", WORKS, "broker/test_websockets.py"),
    ("socket_domain", "socket_domain ipv4", WORKS, "broker/test_listener_options.py"),
    ("use_username_as_clientid", "use_username_as_clientid true", WORKS, "broker/test_listener_options.py"),
    ("websockets_log_level", "websockets_log_level 255", WORKS, "broker/test_websockets.py"),
    ("websockets_headers_size", "protocol websockets\nwebsockets_headers_size 8192", WORKS,
     "broker/test_websockets.py"),
    # ---- TLS (listeners) are above; keys in OpenSSL engines are refused
    ("cafile", TLS + "cafile TLSCA", WORKS, "broker/test_tls.py"),
    ("capath", TLS + "capath TLSCAPATH", WORKS, "broker/test_tls.py"),
    ("certfile", "keyfile TLSKEY\ncertfile TLSCRT", WORKS, "broker/test_tls.py"),
    ("keyfile", "certfile TLSCRT\nkeyfile TLSKEY", WORKS, "broker/test_tls.py"),
    ("ciphers", TLS + "ciphers ECDHE-ECDSA-AES256-GCM-SHA384", WORKS, "broker/test_tls.py"),
    ("ciphers_tls1.3", TLS + "ciphers_tls1.3 TLS_AES_256_GCM_SHA384", WORKS, "broker/test_tls.py"),
    ("crlfile", TLS + "cafile TLSCA\nrequire_certificate true\ncrlfile TLSCRL", WORKS, "broker/test_tls.py"),
    ("dhparamfile", TLS + "dhparamfile TLSDH", WORKS, "broker/test_tls.py"),
    ("require_certificate", TLS + "cafile TLSCA\nrequire_certificate true", WORKS, "broker/test_tls.py"),
    ("require_certificate", TLS + "require_certificate false", WORKS, "broker/test_tls.py"),
    ("tls_engine", "tls_engine pkcs11", REFUSED, "keys in engines"),
    ("tls_engine_kpass_sha1", "tls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567", REFUSED,
     "keys in engines"),
    ("tls_keyform", "tls_keyform pem", REFUSED, "keys in engines"),
    ("tls_version", TLS + "tls_version tlsv1.3", WORKS, "broker/test_tls.py"),
    ("use_identity_as_username", TLS + "cafile TLSCA\nrequire_certificate true\nuse_identity_as_username true",
     WORKS, "broker/test_tls.py"),
    ("use_subject_as_username", TLS + "cafile TLSCA\nrequire_certificate true\nuse_subject_as_username true",
     WORKS, "broker/test_tls.py"),
    ("psk_hint", "psk_file TLSPSK\npsk_hint tombo", WORKS, "broker/test_tls.py"),
    # ---- bridges (docs/bridges.md): the local side is not checked against the ACL (its password is, tombo only)
    ("connection", "connection b1\naddress 127.0.0.1:PORT2\ntopic # both 0", WORKS, TB),
    ("address", "connection b1\ntopic # both 0\naddress 127.0.0.1:PORT2", WORKS, TB),
    ("addresses", "connection b1\ntopic # both 0\naddresses 127.0.0.1:PORT2 127.0.0.1:1", WORKS, TB),
    ("bridge_attempt_unsubscribe", BR + "bridge_attempt_unsubscribe false", WORKS, TB),
    ("bridge_bind_address", BR + "bridge_bind_address 127.0.0.1", WORKS, TB),
    ("bridge_max_packet_size", BR + "bridge_max_packet_size 1000", WORKS, TB),
    ("bridge_outgoing_retain", BR + "bridge_outgoing_retain false", WORKS, TB),
    ("bridge_protocol_version", BR + "bridge_protocol_version mqttv50", WORKS, TB),
    ("cleansession", BR + "cleansession true", WORKS, TB),
    ("local_cleansession", BR + "local_cleansession true", WORKS, TB),
    ("keepalive_interval", BR + "keepalive_interval 30", WORKS, TB),
    ("idle_timeout", BR + "start_type lazy\nidle_timeout 30", WORKS, TB),
    ("local_clientid", BR + "local_clientid x", WORKS, TB),
    ("notifications", BR + "notifications false", WORKS, TB),
    ("notifications_local_only", BR + "notifications_local_only true", WORKS, TB),
    ("notification_topic", BR + "notification_topic a/b", WORKS, TB),
    ("remote_clientid", BR + "remote_clientid x", WORKS, TB),
    ("remote_password", BR + "remote_username u\nremote_password x", WORKS, TB),
    ("remote_username", BR + "remote_username x", WORKS, TB),
    ("restart_timeout", BR + "restart_timeout 5 30", WORKS, TB),
    ("round_robin", BR + "round_robin true", WORKS, TB),
    ("start_type", BR + "start_type lazy", WORKS, TB),
    ("threshold", BR + "start_type lazy\nthreshold 5", WORKS, TB),
    ("topic", "connection b1\naddress 127.0.0.1:PORT2\ntopic a/# in 1 local/ remote/", WORKS, TB),
    ("try_private", BR + "try_private false", WORKS, TB),
    ("local_password", BR + "local_username u\nlocal_password x", WORKS, TB),
    ("local_username", BR + "local_username x", WORKS, TB),
    ("bridge_alpn", BR + "bridge_cafile TLSCA\nbridge_alpn mqtt", WORKS, TB),
    ("bridge_cafile", BR + "bridge_cafile TLSCA", WORKS, TB),
    ("bridge_capath", BR + "bridge_capath TLSCAPATH", WORKS, TB),
    ("bridge_certfile", BR + "bridge_cafile TLSCA\nbridge_keyfile TLSKEY\nbridge_certfile TLSCRT", WORKS, TB),
    ("bridge_identity", BR + "bridge_psk 00112233\nbridge_identity bob", WORKS, TB),
    ("bridge_insecure", BR + "bridge_cafile TLSCA\nbridge_insecure true", WORKS, TB),
    ("bridge_keyfile", BR + "bridge_cafile TLSCA\nbridge_certfile TLSCRT\nbridge_keyfile TLSKEY", WORKS, TB),
    ("bridge_psk", BR + "bridge_identity bob\nbridge_psk 00112233", WORKS, TB),
    ("bridge_require_ocsp", BR + "bridge_cafile TLSCA\nbridge_require_ocsp true", WORKS, "broker/test_bridge_ocsp.py"),
    ("bridge_tls_version", BR + "bridge_cafile TLSCA\nbridge_tls_version tlsv1.3", WORKS, TB),
    # ---- accepted by Mosquitto 2.0.11 without a manpage entry
    ("clientid", BR + "clientid x", WORKS, TB),
    ("username", BR + "username x", WORKS, TB),
    ("password", BR + "username u\npassword x", WORKS, TB),
    ("plugin", "plugin PLUGIN", WORKS, "broker/test_plugin.py"),
    ("plugin_opt_*", "plugin PLUGIN\nplugin_opt_users a:b", WORKS, "broker/test_plugin.py"),
    ("retry_interval", "retry_interval 20", NOOP, "Mosquitto 2 ignores it too, with a warning; so does tombo"),
    ("retained_persistence", "retained_persistence true", WORKS, "broker/test_directives.py"),
    # ---- tombo's own
    ("threads", "threads 2", TOMBO, "broker/test_directives.py"),
    ("http_listener", "http_listener PORT2 127.0.0.1", TOMBO, "broker/test_http.py"),
    ("http_password_file", "http_listener PORT2 127.0.0.1\nhttp_password_file FILE", TOMBO, "broker/test_http.py"),
    ("http_certfile", "http_listener PORT2 127.0.0.1\nhttp_keyfile TLSKEY\nhttp_certfile TLSCRT", TOMBO,
     "broker/test_http.py"),
    ("http_keyfile", "http_listener PORT2 127.0.0.1\nhttp_certfile TLSCRT\nhttp_keyfile TLSKEY", TOMBO,
     "broker/test_http.py"),
    ("connect_timeout", "connect_timeout 5", TOMBO, "broker/test_limits.py"),
    # the cluster (docs/cluster.md): NATSURL is a nats-server with JetStream started for these rows
    ("cluster_node", "cluster_node rowA\ncluster_nats_url NATSURL", TOMBO, "broker/test_cluster.py"),
    ("cluster_nats_url", "cluster_node rowB\ncluster_nats_url NATSURL", TOMBO, "broker/test_cluster.py"),
    ("cluster_kv_replicas", "cluster_node rowC\ncluster_nats_url NATSURL\ncluster_kv_replicas 1", TOMBO,
     "broker/test_cluster.py"),
    ("cluster_durability", "cluster_node rowJ\ncluster_nats_url NATSURL\ncluster_durability jetstream", TOMBO,
     "broker/test_cluster.py"),
    ("cluster_sessions", "cluster_node rowK\ncluster_nats_url NATSURL\ncluster_durability jetstream\n"
     "persistence true\npersistence_location DIR/\ncluster_sessions jetstream", TOMBO, "broker/test_cluster.py"),
    ("cluster_nats_user", "cluster_node rowD\ncluster_nats_url NATSURL\ncluster_nats_password p\ncluster_nats_user u",
     TOMBO, "broker/test_cluster.py"),
    ("cluster_nats_password", "cluster_node rowE\ncluster_nats_url NATSURL\ncluster_nats_user u\n"
     "cluster_nats_password p", TOMBO, "broker/test_cluster.py"),
    ("cluster_nats_token", "cluster_node rowF\ncluster_nats_url NATSURL\ncluster_nats_token t", TOMBO,
     "broker/test_cluster.py"),
    # NATSTLSURL: a nats-server with TLS (the TLSCRT certificate, clients not verified)
    ("cluster_nats_cafile", "cluster_node rowG\ncluster_nats_url NATSTLSURL\ncluster_nats_cafile TLSCA", TOMBO,
     "broker/test_cluster.py"),
    ("cluster_nats_certfile", "cluster_node rowH\ncluster_nats_url NATSTLSURL\ncluster_nats_cafile TLSCA\n"
     "cluster_nats_keyfile TLSKEY\ncluster_nats_certfile TLSCRT", TOMBO, "broker/test_cluster.py"),
    ("cluster_nats_keyfile", "cluster_node rowI\ncluster_nats_url NATSTLSURL\ncluster_nats_cafile TLSCA\n"
     "cluster_nats_certfile TLSCRT\ncluster_nats_keyfile TLSKEY", TOMBO, "broker/test_cluster.py"),
]

# tombo's own directives that are refused until they work (REFUSED rows above).
TOMBO_NOT_YET = set()

ROW_IDS = ["%s:%s" % (r[0], r[1].split("\n")[-1].split(" ", 1)[-1][:24]) for r in ROWS]


def _matches(pattern, name):
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _table_names():
    return {r[0] for r in ROWS}


def _c_tables():
    """The names config.c accepts (directives[]) and refuses (unsupported[] and the prefixes)."""
    with open(CONFIG_C) as f:
        src = f.read()
    acc = src[src.index("static const struct directive directives[] = {"):]
    acc = acc[:acc.index("\n};")]
    accepted = set(re.findall(r"^\s*(?:FN|[A-Z]+_[GLSB])\(([\w.]+)", acc, re.M))
    accepted |= set(re.findall(r'^\s*\{"([\w.]+)"', acc, re.M))
    ref = src[src.index("} unsupported[] = {"):]
    ref = ref[:ref.index("\n};")]
    refused = set(re.findall(r'\{"([\w.]+)",', ref))
    why = src[src.index("static const char *unsupported_why"):]
    why = why[:why.index("\n}")]
    refused |= {p + "*" for p in re.findall(r'strncmp\(name, "(\w+_)", \d+\)', why)}
    pl = src[src.index("static int parse_line"):]  # prefixes it hands to a handler (plugin_opt_*)
    pl = pl[:pl.index("\n}")]
    accepted |= {p + "*" for p in re.findall(r'strncmp\(name, "(\w+_)", \d+\)', pl)}
    return accepted, refused


def _manpage_names():
    with gzip.open(MANPAGE, "rt", errors="replace") as f:
        lines = f.read().split("\n")
    names = set()
    for prev, line in zip(lines, lines[1:]):
        m = re.match(r"\\fB([a-z_0-9.]+(?:\\\*)?)\\fR", line)
        if prev == ".PP" and m:
            names.add(m.group(1).replace("\\*", "*"))
    names.discard("mosquitto")
    return names


# ---------------------------------------------------------------- the table is complete

def test_every_mosquitto_directive_has_a_row():
    """Each directive of Mosquitto 2.0 has at least one row, and the table names nothing else
    (besides tombo's own)."""
    names = _table_names()
    missing = [d for d in MOSQUITTO_20 if d not in names]
    assert not missing, "directives without a row: %s" % missing
    extra = sorted(n for n in names if n not in MOSQUITTO_20 and n not in TOMBO_NOT_YET
                   and not all(r[2] == TOMBO for r in ROWS if r[0] == n))
    assert not extra, "rows for names that are not Mosquitto 2.0 directives: %s" % extra


@pytest.mark.skipif(not os.path.exists(MANPAGE), reason="mosquitto.conf(5) is not installed")
def test_the_installed_manpage_has_no_directive_without_a_row():
    """The list above against the mosquitto.conf(5) installed with Debian's mosquitto package."""
    man = _manpage_names()
    assert len(man) > 100, sorted(man)
    missing = sorted(d for d in man if d not in MOSQUITTO_20)
    assert not missing, "mosquitto.conf(5) directives missing from MOSQUITTO_20: %s" % missing


def test_config_c_accepts_and_refuses_only_what_the_table_says():
    """A directive added to config.c's directives[] without a WORKS/NOOP/TOMBO row here, or to
    unsupported[] without a REFUSED row, fails this test: nothing slips in unclassified."""
    accepted, refused = _c_tables()
    # refused: tls_engine, tls_engine_kpass_sha1, tls_keyform (keys in OpenSSL engines)
    assert len(accepted) > 30 and len(refused) >= 3, (accepted, refused)
    status = {}
    for name, _, st, _ in ROWS:
        status.setdefault(name, set()).add(st)
    for name in sorted(accepted):
        assert name in status, "config.c accepts '%s', which has no row in ROWS" % name
        assert status[name] & {WORKS, NOOP, TOMBO}, "config.c accepts '%s', but ROWS says %s" % (
            name, status[name])
    for name in sorted(refused):
        assert name in status, "config.c refuses '%s', which has no row in ROWS" % name
        assert status[name] == {REFUSED}, "config.c refuses '%s', but ROWS says %s" % (name, status[name])
    for name, sts in status.items():
        if sts & {WORKS, NOOP, TOMBO}:
            assert name in accepted, "ROWS says '%s' is accepted, but config.c's directives[] lacks it" % name
        else:
            assert name in refused, "ROWS says '%s' is refused, but config.c's unsupported[] lacks it" % name


def test_works_rows_name_a_test_file_that_uses_the_directive():
    """A WORKS row's `where` is a test file that sets the directive (proof of its behaviour)."""
    for name, _, st, where in ROWS:
        if st not in (WORKS, TOMBO):
            continue
        path = os.path.join(TESTS, where)
        assert os.path.exists(path), "%s: %s does not exist" % (name, where)
        with open(path) as f:
            text = f.read()
        pat = re.escape(name[:-1]) + r"\w+" if name.endswith("*") else re.escape(name)  # plugin_opt_KEY
        assert re.search(r"(^|[\"\s]|\\n)%s " % pat, text, re.M), "%s: %s never sets it" % (name, where)


# ---------------------------------------------------------------- each row against the binary

def _write_conf(row_text):
    d = tempfile.mkdtemp(prefix="tombo-dir-")
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    os.chmod(d, 0o777)
    empty = os.path.join(d, "empty.file")
    open(empty, "w").close()
    port, port2 = free_port(), free_port()
    if "TLS" in row_text:
        for token, path in _tls_files().items():
            row_text = row_text.replace(token, path)
    if "NATSURL" in row_text:
        row_text = row_text.replace("NATSURL", _nats_url())
    if "NATSTLSURL" in row_text:
        row_text = row_text.replace("NATSTLSURL", _nats_url(tls=True))
    row_text = row_text.replace("PLUGIN", os.path.join(BUILD_DIR, "tests", "broker", "plugins",
                                                          "tombo_test_plugin.so"))
    text = row_text.replace("PORT2", str(port2)).replace("DIR", sub).replace("FILE", empty)
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\n%s\nallow_anonymous true\n" % (port, text))
    return d, conf, port


_TLS_FILES = {}
_NATS = {}


def _nats_url(tls=False):
    """A nats-server with JetStream for the cluster_* rows (one plain, one with TLS), each started
    once, stopped by its PID at exit (not installed: the rows fail, as they would without openssl
    for the TLS ones)."""
    if tls not in _NATS:
        d = tempfile.mkdtemp(prefix="tombo-nats-rows-")
        port, mon = free_port(), free_port()
        extra = ["--tls", "--tlscert", _tls_files()["TLSCRT"], "--tlskey", _tls_files()["TLSKEY"]] if tls else []
        p = subprocess.Popen(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(mon), "-js",
                              "-sd", d] + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        atexit.register(stop)
        deadline = time.time() + 20
        while time.time() < deadline and not _listening(mon):
            time.sleep(0.1)
        time.sleep(0.5)  # JetStream ready a moment after the monitor port
        _NATS[tls] = ("tls://localhost:%d" if tls else "nats://127.0.0.1:%d") % port  # TLSCRT: CN=localhost
    return _NATS[tls]


def _tls_files():
    """The files the TLS rows name, made once per run with the openssl CLI."""
    if _TLS_FILES:
        return _TLS_FILES
    d = tempfile.mkdtemp(prefix="tombo-tls-rows-")
    os.chmod(d, 0o755)

    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=60)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rows CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\n"
                "default_crl_days=2\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("01\n")
    run("ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-gencrl", "-out", "ca.crl")
    run("genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", "dh.pem")
    os.mkdir(os.path.join(d, "capath"))
    with open(os.path.join(d, "ca.crt"), "rb") as f, open(os.path.join(d, "capath", "ca.pem"), "wb") as g:
        g.write(f.read())
    run("rehash", "capath")
    with open(os.path.join(d, "psk.txt"), "w") as f:
        f.write("bob:00112233\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o755 if f == "capath" else 0o644)
    # longest token first: TLSCA is a prefix of TLSCAPATH
    _TLS_FILES.update({"TLSCAPATH": d + "/capath", "TLSCRT": d + "/server.crt", "TLSKEY": d + "/server.key",
                       "TLSCA": d + "/ca.crt", "TLSCRL": d + "/ca.crl", "TLSDH": d + "/dh.pem",
                       "TLSPSK": d + "/psk.txt"})
    return _TLS_FILES


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@pytest.mark.skipif(is_reference(), reason="tombo's classification")
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_directive_row(row):
    name, text, status, _ = row
    d, conf, port = _write_conf(text)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    log = open(os.path.join(d, "out.log"), "wb")
    p = subprocess.Popen(broker_cmd(conf), stdout=log, stderr=subprocess.STDOUT, cwd=d, env=env)
    try:
        deadline = time.time() + 10
        listened = False
        while time.time() < deadline and p.poll() is None:
            if _listening(port):
                listened = True
                break
            time.sleep(0.05)
        if status == REFUSED:
            p.wait(10)
        else:
            assert listened and p.poll() is None, "did not start"
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(15)
        log.close()
    with open(os.path.join(d, "out.log"), "rb") as f:
        out = f.read().decode("utf-8", "replace")
    assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out, out
    if status == REFUSED:
        line = 2 + text.count("\n")
        word = text.split("\n")[-1].split()[0]
        assert p.returncode != 0, out
        assert not listened, "a refused directive must stop start-up before listening: " + out
        assert re.search(r"%s:%d: %s[^\n]*: not supported yet by tombo \(.+\)" % (
            re.escape(conf), line, re.escape(word)), out), out
    else:
        assert p.returncode == 0, out
        assert "not supported" not in out, out


# ---------------------------------------------------------------- TLS never falls back to plain MQTT

def _make_certs(d):
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=tombo test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def _plain_connack(port):
    """Send a plain MQTT 3.1.1 CONNECT; True if a CONNACK comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(1)
            s.sendall(bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"x")
            return s.recv(4)[:1] == b"\x20"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/usr/bin/openssl"), reason="openssl is needed for the certificates")
def test_tls_listener_never_serves_plain_mqtt():
    """A listener with certfile, keyfile, cafile and require_certificate true (real files): tombo
    serves TLS there, and no plain MQTT CONNECT is ever answered on that port (the handshake fails
    and says why in the log); the same as Mosquitto. test_tls.py has the TLS side."""
    d = tempfile.mkdtemp(prefix="tombo-tls-")
    os.chmod(d, 0o755)
    _make_certs(d)
    port = free_port()
    conf = os.path.join(d, "tls.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\n"
                "certfile %s/server.crt\n"
                "keyfile %s/server.key\n"
                "cafile %s/ca.crt\n"
                "require_certificate true\n"
                "allow_anonymous true\n" % (port, d, d, d))
    log = open(os.path.join(d, "out.log"), "wb")
    p = subprocess.Popen(broker_cmd(conf), stdout=log, stderr=subprocess.STDOUT, cwd=d)
    answered = False
    try:
        deadline = time.time() + 3
        while time.time() < deadline:
            answered |= _plain_connack(port)
            if p.poll() is not None:
                break
            time.sleep(0.05)
        answered |= _plain_connack(port)
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(15)
        log.close()
    with open(os.path.join(d, "out.log"), "rb") as f:
        out = f.read().decode("utf-8", "replace")
    assert not answered, "plain MQTT served on a TLS listener:\n" + out
    if not is_reference():
        assert p.returncode == 0, out  # it ran until we stopped it
        assert "TLS handshake failed: wrong version number (not TLS: a plain MQTT client on a TLS port?)" in out, out


@pytest.mark.skipif(is_reference(), reason="tombo's classification")
@pytest.mark.parametrize("where", ["before", "include"])
def test_tls_lines_anywhere_are_checked(where, tmp_path):
    """TLS lines before any `listener` (the default listener) or in an include_dir file that would
    not make a TLS listener are refused just the same, with that file and line."""
    port = free_port()
    inc = tmp_path / "conf.d"
    inc.mkdir()
    if where == "before":
        conf = tmp_path / "a.conf"
        conf.write_text("keyfile /etc/ssl/k.pem\nlistener %d 127.0.0.1\n" % port)
        want = "%s:1: keyfile needs certfile" % conf
    else:
        (inc / "tls.conf").write_text("# TLS\nlistener %d 127.0.0.1\ncafile /etc/ssl/ca.pem\n" % port)
        conf = tmp_path / "a.conf"
        conf.write_text("allow_anonymous true\ninclude_dir %s\n" % inc)
        want = "%s:3: this listener has no certfile/keyfile (nor psk_hint), so it is not a TLS listener" % (
            inc / "tls.conf")
    r = subprocess.run(broker_cmd(str(conf)), capture_output=True, timeout=15, cwd=str(tmp_path))
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode != 0 and want in out, out


@pytest.mark.skipif(is_reference(), reason="tombo's own start-up contract for -d")
def test_dash_d_daemonises(tmp_path):
    """-d: the command returns 0 once the broker serves, which then runs in its own session with the
    PID its pid_file names; a broker that cannot start makes -d fail with the reason on stderr."""
    port = free_port()
    pidf, logf = tmp_path / "tombo.pid", tmp_path / "tombo.log"
    conf = tmp_path / "d.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\nlog_dest file %s\n" % (port, pidf, logf))
    r = subprocess.run([broker_cmd("x")[0], "-d", "-c", str(conf)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pid = int(pidf.read_text())
    try:
        assert os.getsid(pid) == pid  # a session of its own, away from the test's terminal
        c = PahoClient(types.SimpleNamespace(host="127.0.0.1", port=port))
        c.connect()
        c.disconnect()
    finally:
        os.kill(pid, 15)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the daemon did not stop on SIGTERM")
    log = logf.read_text()
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log
    # the port is free again; hold it so the next start fails
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        conf.write_text("listener %d 127.0.0.1\n" % port)
        r = subprocess.run([broker_cmd("x")[0], "-d", "-c", str(conf)], capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"Address already in use" in r.stderr + r.stdout


# ---------------------------------------------------------------- behaviour of the directives
# that no other test file covered

def _log_text(b, path, want, timeout=5):
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if want is None or want in text:
                return text
        time.sleep(0.1)
    return text


def test_port_and_bind_address(make_broker):
    """port PORT with bind_address 127.0.0.1 (deprecated in Mosquitto, still honoured): a
    listener on that port and address, besides the `listener` one."""
    port2 = free_port()
    make_broker("port %d\nbind_address 127.0.0.1\nallow_anonymous true\n" % port2)

    class Other:
        host = "127.0.0.1"
        port = port2
    c = PahoClient(Other)
    c.connect()
    c.disconnect()


def test_protocol_mqtt(make_broker):
    """protocol mqtt: the listener speaks MQTT over TCP."""
    b = make_broker("protocol mqtt\nallow_anonymous true\n")
    c = PahoClient(b)
    c.connect()
    c.subscribe("pm/t", 1)
    c.publish("pm/t", b"x", 1)
    assert c.get().payload == b"x"
    c.disconnect()


@pytest.mark.skipif(is_reference(), reason="Mosquitto 2.0.11 let the second client in here; not investigated yet")
def test_max_connections(make_broker):
    """max_connections 1: a second client is turned away while the first is connected, and gets in
    once it has left (the count is exact with any number of workers: test_limits.py)."""
    b = make_broker("max_connections 1\nallow_anonymous true\n")

    def connect_when_room(why):
        """The place is taken from accept to close, CONNECT or not (as in Mosquitto): the probe
        that saw the broker listen, or a client that just left, holds it until the broker has
        read its close."""
        deadline = time.time() + 5
        while True:
            try:
                c = Raw(b)
                c.connect(unique_id())
                return c
            except (AssertionError, ConnectionError, OSError):
                assert time.time() < deadline, why
                time.sleep(0.1)

    first = connect_when_room("no room for the first client")
    second = Raw(b)
    with pytest.raises((AssertionError, ConnectionError, OSError)):
        second.connect(unique_id())
    first.disconnect()
    first.close()
    connect_when_room("no room after the first client left").close()


def test_max_qos(make_broker):
    """max_qos 1: told to MQTT 5 clients in CONNACK (Maximum QoS 1); a subscription at QoS 2 is
    granted QoS 1."""
    b = make_broker("max_qos 1\nallow_anonymous true\n")
    r = Raw(b, version=5)
    p = r.connect(unique_id())
    assert p.prop("maximum_qos") == 1
    r.close()
    c = PahoClient(b)
    c.connect()
    assert c.subscribe("mq/t", 2) == [1]
    c.disconnect()


def test_allow_zero_length_clientid(make_broker):
    """allow_zero_length_clientid false: an empty client id is refused, 0x02 on 3.1.1 and 0x85 on
    5.0 [MQTT-3.1.3-8]; with the default (true) it is accepted."""
    b = make_broker("allow_zero_length_clientid false\nallow_anonymous true\n")
    assert Raw(b, version=4).connect("", expect_reason=None).reason == 0x02
    # 0x85 Client Identifier not valid; Mosquitto 2.0.11 answers 0x80 (unspecified error)
    assert Raw(b, version=5).connect("", expect_reason=None).reason == (0x80 if is_reference() else 0x85)
    b2 = make_broker("allow_anonymous true\n")
    assert Raw(b2, version=4).connect("", expect_reason=None).reason == 0


def test_auto_id_prefix(make_broker):
    """auto_id_prefix gen-: a client id assigned to an MQTT 5 client that sent none starts with it."""
    b = make_broker("auto_id_prefix gen-\nallow_anonymous true\n")
    p = Raw(b, version=5).connect("")
    assert p.prop("assigned_client_id").startswith("gen-"), p


@pytest.mark.parametrize("directive", ["persistence", "retained_persistence"])
def test_persistence_location_and_file(make_broker, directive):
    """persistence_location DIR/ and persistence_file NAME: the database is DIR/NAME, and a
    retained message survives a restart from it (retained_persistence is Mosquitto's old name of
    persistence)."""
    d = tempfile.mkdtemp(prefix="tombo-db-")
    os.chmod(d, 0o777)
    b = make_broker("%s true\npersistence_location %s/\npersistence_file my.db\nallow_anonymous true\n"
                    % (directive, d))
    c = PahoClient(b)
    c.connect()
    c.publish("pl/t", b"kept", 1, retain=True)
    c.disconnect()
    b.restart()
    assert os.path.exists(os.path.join(d, "my.db")), os.listdir(d)
    c = PahoClient(b)
    c.connect()
    c.subscribe("pl/t", 1)
    assert c.get().payload == b"kept"
    c.disconnect()


def test_queue_qos0_messages(make_broker):
    """queue_qos0_messages true: a QoS 0 message published while a persistent client is offline is
    delivered when it comes back."""
    b = make_broker("queue_qos0_messages true\nallow_anonymous true\n")
    cid = unique_id("q0")
    c = PahoClient(b, client_id=cid, clean=False)
    c.connect()
    c.subscribe("q0/t", 0)
    c.disconnect()
    pub = PahoClient(b)
    pub.connect()
    pub.publish("q0/t", b"while away", 0)
    pub.disconnect()
    c = PahoClient(b, client_id=cid, clean=False)
    c.connect()
    assert c.get().payload == b"while away"
    c.disconnect()


def test_connection_messages(make_broker):
    """connection_messages false: no `New client connected` line; true (the default): one, naming
    the client."""
    d = tempfile.mkdtemp(prefix="tombo-log-")
    os.chmod(d, 0o777)
    for flag in ("false", "true"):
        path = os.path.join(d, "%s.log" % flag)
        b = make_broker("connection_messages %s\nlog_dest file %s\nallow_anonymous true\n" % (flag, path))
        cid = unique_id("cm")
        c = PahoClient(b, client_id=cid)
        c.connect()
        c.disconnect()
        text = _log_text(b, path, cid if flag == "true" else None, timeout=3 if flag == "false" else 5)
        if flag == "true":
            assert "New client connected" in text and cid in text, text
        else:
            time.sleep(0.5)
            text = _log_text(b, path, None)
            assert "New client connected" not in text and cid not in text, text


def test_log_timestamp_and_format(make_broker):
    """log_timestamp false: lines start with the message; log_timestamp_format: lines start with
    the strftime date."""
    d = tempfile.mkdtemp(prefix="tombo-log-")
    os.chmod(d, 0o777)
    p1 = os.path.join(d, "plain.log")
    make_broker("log_timestamp false\nlog_dest file %s\nallow_anonymous true\n" % p1)
    text = _log_text(None, p1, "\n")
    first = text.splitlines()[0]
    assert not re.match(r"^\d+: ", first), text
    p2 = os.path.join(d, "fmt.log")
    make_broker("log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\nlog_dest file %s\nallow_anonymous true\n" % p2)
    text = _log_text(None, p2, "\n")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: ", text.splitlines()[0]), text


def test_retain_available_false(make_broker):
    """retain_available false: told to MQTT 5 clients (Retain Available 0), and a client that
    publishes a retained message is disconnected (0x9A on 5.0)."""
    b = make_broker("retain_available false\nallow_anonymous true\n")
    r = Raw(b, version=5)
    p = r.connect(unique_id())
    assert p.prop("retain_available") == 0, p
    r.publish("ra/t", b"x", qos=0, retain=True)
    got = r.closed()
    assert got and got[-1].reason == 0x9A, got


@pytest.mark.skipif(is_reference(), reason="tombo only")
def test_threads(make_broker):
    """threads 3 (tombo only): three worker threads, said in the start-up log."""
    b = make_broker("threads 3\nallow_anonymous true\n")
    deadline = time.time() + 5
    while "with 3 worker threads" not in b.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "with 3 worker threads" in b.log(), b.log()


def test_pid_file(make_broker, tmp_path):
    """pid_file (Debian's stock mosquitto.conf has one): the broker writes its PID there at start
    and removes the file when it stops."""
    path = tmp_path / "tombo.pid"
    b = make_broker("allow_anonymous true\npid_file %s\n" % path)
    assert path.read_text() == "%d\n" % b.proc.pid
    b.expect_exit = True
    assert b.stop() == 0
    assert not path.exists()


def test_clientid_prefixes(make_broker):
    """clientid_prefixes secure-: only client ids that start with it may connect; others get Not
    authorized (5 on 3.1.1, 0x87 on 5.0), as in Mosquitto."""
    b = make_broker("clientid_prefixes secure-\nallow_anonymous true\n")
    PahoClient(b, client_id="secure-1").connect()
    for version, want in ((4, 5), (V5, 0x87)):
        c = PahoClient(b, client_id="plain-1", protocol=version)
        rc, _, _ = c.connect(expect_success=False)
        assert rc_value(rc) == want
        c.close()


@pytest.mark.skipif(is_reference(), reason="the reference runs with 'user root'")
def test_user_drops_root(make_broker):
    """user nobody: started as root, the broker serves as nobody once its listeners are open."""
    if os.geteuid() != 0:
        pytest.skip("needs root to be dropped (the test runs as uid %d)" % os.geteuid())
    import pwd
    nobody = pwd.getpwnam("nobody")
    b = make_broker("user nobody\nallow_anonymous true\n")
    with open("/proc/%d/status" % b.proc.pid) as f:
        status = f.read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    assert uids == [str(nobody.pw_uid)] * 4, status
    assert gids == [str(nobody.pw_gid)] * 4, status
    c = PahoClient(b)
    c.connect()
    c.disconnect()
    assert "Running as user nobody" in b.log()


def test_user_unknown_stops_startup(tmp_path):
    """user NO-SUCH: the broker does not start (as root) rather than serve as root."""
    if os.geteuid() != 0 or is_reference():
        pytest.skip("as root, against tombo")
    conf = tmp_path / "u.conf"
    conf.write_text("listener %d 127.0.0.1\nuser no-such-user-x\n" % free_port())
    p = subprocess.run(broker_cmd(str(conf)), capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "Invalid user 'no-such-user-x'" in p.stdout + p.stderr


SYSLOG_CHILD = r"""
import os, socket, subprocess, sys, time
cmd, conf = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(20)
p = subprocess.Popen(cmd.split() + ["-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    lines = []
    while True:
        d = s.recv(65536).decode("utf-8", "replace")
        lines.append(d)
        if "running" in d:
            break
    print("\n".join(lines))
finally:
    p.terminate()
    p.wait(20)
"""


@pytest.mark.skipif(is_reference(), reason="runs the tombo binary in a private mount namespace")
@pytest.mark.parametrize("facility,pri", [(None, 3 * 8), (5, (16 + 5) * 8)])
def test_log_dest_syslog_and_log_facility(tmp_path, facility, pri):
    """log_dest syslog writes to /dev/log with facility daemon, or localN with log_facility N (Mosquitto's
    meaning). The broker runs in a private mount namespace whose /dev is a tmpfs holding the test's
    own /dev/log socket, so the machine's syslog is never touched."""
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs root and unshare -m for a private /dev/log")
    conf = tmp_path / "s.conf"
    conf.write_text("listener %d 127.0.0.1\nlog_dest syslog\nlog_type all\n%s" % (
        free_port(), "" if facility is None else "log_facility %d\n" % facility))
    child = tmp_path / "child.py"
    child.write_text(SYSLOG_CHILD)
    real = tmp_path / "realdev"
    real.mkdir()
    keep = " ".join("&& touch /dev/%s && mount --bind %s/%s /dev/%s" % (n, real, n, n)
                    for n in ("null", "zero", "urandom", "random"))
    script = "mount --bind /dev %s && mount -t tmpfs tmpfs /dev %s && exec %s %s '%s' %s" % (
        real, keep, "/usr/bin/python3", child, " ".join(broker_cmd("X")[:-2]), conf)
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # "<PRI>" + the syslog header; PRI = facility * 8 + severity (notice 5, info 6)
    pris = [int(x) for x in re.findall(r"^<(\d+)>", p.stdout, re.M)]
    assert pris, p.stdout
    assert all(x & ~7 == pri for x in pris), (pris, p.stdout)
    assert "tombo" in p.stdout and "running" in p.stdout


@pytest.mark.parametrize("upgrade", [False, True])
def test_upgrade_outgoing_qos(make_broker, upgrade):
    """upgrade_outgoing_qos true (non-standard, as in Mosquitto): a QoS 0 message reaches a QoS 2
    subscriber at QoS 2, live and retained; false (the default) keeps the lower QoS [MQTT-3.8.4-8]."""
    b = make_broker("allow_anonymous true\n" + ("upgrade_outgoing_qos true\n" if upgrade else ""))
    pub = PahoClient(b)
    pub.connect()
    pub.publish("up/r", b"kept", qos=0, retain=True)
    sub = PahoClient(b)
    sub.connect()
    sub.subscribe("up/#", 2)
    pub.publish("up/live", b"x", qos=0)
    got = {m.topic: m.qos for m in sub.get_n(2)}
    assert got == ({"up/r": 2, "up/live": 2} if upgrade else {"up/r": 0, "up/live": 0})
    pub.publish("up/r", b"", qos=0, retain=True)
    pub.disconnect()
    sub.disconnect()


@pytest.mark.reference_differs  # Mosquitto 2.0.11 sends the second message at once (it weighs bytes otherwise)
def test_max_inflight_bytes(make_broker):
    """max_inflight_bytes 100: QoS 1 messages go to a client while their payloads in flight stay within
    100 bytes; one larger than the limit still goes, alone (mosquitto.conf(5))."""
    b = make_broker("allow_anonymous true\nmax_inflight_bytes 100\n")
    sub = Raw(b, version=4)
    sub.connect(unique_id())
    sub.subscribe(1, [("ib/#", 1)])
    pub = PahoClient(b)
    pub.connect()
    for i in range(3):
        pub.publish("ib/%d" % i, b"x" * 60, qos=1)
    pub.publish("ib/big", b"y" * 150, qos=1)
    first = sub.recv_type(PUBLISH)
    assert first.topic == "ib/0"
    with pytest.raises(AssertionError):
        sub.recv_type(PUBLISH, timeout=0.5)  # 60 + 60 > 100: the second waits for the PUBACK
    got = [first.topic]
    while len(got) < 4:
        sub.ack(PUBACK, first.pid)
        first = sub.recv_type(PUBLISH)
        got.append(first.topic)
    assert got == ["ib/0", "ib/1", "ib/2", "ib/big"]
    sub.ack(PUBACK, first.pid)
    pub.disconnect()


def test_http_password_file_needs_http_listener(make_broker, tmp_path):
    """http_password_file alone would protect nothing: start-up stops with FILE:LINE."""
    if is_reference():
        pytest.skip("tombo only")
    pw = tmp_path / "pw"
    pw.write_text("")
    conf = tmp_path / "t.conf"
    conf.write_text("listener %d 127.0.0.1\nhttp_password_file %s\n" % (free_port(), pw))
    r = subprocess.run(broker_cmd(str(conf)), capture_output=True, timeout=20)
    assert r.returncode != 0
    assert re.search(r"%s:2: http_password_file needs http_listener" % re.escape(str(conf)),
                     r.stdout.decode() + r.stderr.decode())
