"""Mosquitto plugins (`plugin`, `auth_plugin`, `plugin_opt_*`, `auth_opt_*`): a version 5 plugin
built against Debian's mosquitto_broker.h / mosquitto_plugin.h (tests/broker/plugins/) is loaded by
tombo as by Mosquitto, with the same meaning. Each behaviour test runs against tombo and against
Debian's mosquitto 2.0.11 with the same plugin file, so the two are compared in one run.

The plugin accepts the user names and passwords of plugin_opt_users, defers clients without a user
name (allow_anonymous decides), and refuses every access to topics starting with plugin_opt_deny.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt
import pytest

from clients import PahoClient, rc_value
from conftest import Broker
import rawmqtt

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))
PLUGIN = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin.so")
DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

BROKERS = ["tombo", "mosquitto"]


def plugin_conf(anonymous=False, extra=""):
    return ("allow_anonymous %s\nplugin %s\nplugin_opt_users alice:secret bob:pw2\n"
            "plugin_opt_deny secret/\nplugin_opt_greeting hello there\n%s"
            % ("true" if anonymous else "false", PLUGIN, extra))


@pytest.fixture(autouse=True)
def need_plugin():
    if not os.path.exists(PLUGIN):
        pytest.skip("%s not built" % PLUGIN)


def start(make_broker, which, conf):
    return make_broker(conf, mosquitto=(which == "mosquitto"))


def only_allowed_arrives(b, proto, denied, allowed):
    """bob subscribes to everything, alice publishes to `denied` then to `allowed` at QoS 1: only the
    second arrives. Returns alice's client id."""
    sub = PahoClient(b, protocol=V5, username="bob", password="pw2")
    sub.connect()
    assert sub.subscribe("#", qos=1) == [1]
    pub = PahoClient(b, protocol=proto, username="alice", password="secret")
    pub.connect()
    pub.publish(denied, b"no", qos=1)
    pub.publish(allowed, b"yes", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == (allowed, b"yes")
    sub.expect_none()
    pub.close()
    sub.close()
    return pub.client_id


def wait_log(b, text, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in b.log():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_accepts_its_users_and_gets_its_options(make_broker, which, proto):
    b = start(make_broker, which, plugin_conf())
    assert wait_log(b, "test plugin: greeting hello there"), b.log()  # plugin_opt_ reached init
    c = PahoClient(b, protocol=proto, username="alice", password="secret")
    c.connect()
    c.close()
    # The plugin saw the client: its id, address and protocol version (mosquitto_client_*).
    assert wait_log(b, "test plugin: basic auth user alice client %s address 127.0.0.1 protocol %d"
                    % (c.client_id, 5 if proto == V5 else 4)), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("carol", "secret"), ("alice", None)])
def test_plugin_refuses_bad_credentials_not_authorized(make_broker, which, proto, user, password):
    """MOSQ_ERR_AUTH from the plugin: CONNACK 5 (3.1.1) / 0x87 Not authorized (5.0), as Mosquitto."""
    b = start(make_broker, which, plugin_conf())
    c = PahoClient(b, protocol=proto, username=user, password=password)
    rc = rc_value(c.connect(expect_success=False)[0])
    c.close()
    assert rc == (0x87 if proto == V5 else 5)


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("anonymous", [False, True])
def test_plugin_defers_anonymous_clients_to_allow_anonymous(make_broker, which, anonymous):
    b = start(make_broker, which, plugin_conf(anonymous=anonymous))
    c = PahoClient(b, protocol=V5)
    rc = rc_value(c.connect(expect_success=False)[0])
    c.close()
    assert rc == (0 if anonymous else 0x87)


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_acl_denied_publish_is_not_delivered(make_broker, which, proto):
    b = start(make_broker, which, plugin_conf())
    pub_id = only_allowed_arrives(b, proto, "secret/plans", "public/news")
    assert wait_log(b, "test plugin: denied access 2 to secret/plans for %s user alice" % pub_id), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_acl_denied_subscribe_refused_in_suback(make_broker, which, proto):
    b = start(make_broker, which, plugin_conf())
    c = PahoClient(b, protocol=proto, username="bob", password="pw2")
    c.connect()
    assert c.subscribe("secret/#", qos=1) == [0x87 if proto == V5 else 0x80]
    assert c.subscribe("public/#", qos=1) == [1]
    c.close()


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_acl_denied_unsubscribe_not_authorized(make_broker, which):
    """MOSQ_ACL_UNSUBSCRIBE: a refused UNSUBSCRIBE gets 0x87 in the 5.0 UNSUBACK."""
    b = start(make_broker, which, plugin_conf())
    c = PahoClient(b, protocol=V5, username="bob", password="pw2")
    c.connect()
    assert c.subscribe("public/#", qos=1) == [1]
    assert c.unsubscribe("secret/x") == [0x87]
    assert c.unsubscribe("public/#") == [0]
    c.close()
    assert wait_log(b, "test plugin: denied access 8 to secret/x"), b.log()


@pytest.mark.parametrize("which", BROKERS)
def test_auth_plugin_and_auth_opt_are_the_old_names(make_broker, which):
    """auth_plugin / auth_opt_KEY: Mosquitto 1.x's names, the same as plugin / plugin_opt_KEY."""
    b = start(make_broker, which, "allow_anonymous false\nauth_plugin %s\nauth_opt_users carol:c4\n" % PLUGIN)
    c = PahoClient(b, protocol=V5, username="carol", password="c4")
    c.connect()
    c.close()
    c = PahoClient(b, protocol=V5, username="alice", password="secret")
    assert rc_value(c.connect(expect_success=False)[0]) == 0x87
    c.close()


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_gets_reload_on_sighup(make_broker, which):
    b = start(make_broker, which, plugin_conf())
    assert wait_log(b, "test plugin: greeting")
    b.proc.send_signal(signal.SIGHUP)
    # Mosquitto 2.0 hands no options with MOSQ_EVT_RELOAD (options NULL, option_count 0).
    assert wait_log(b, "test plugin: reload with 0 options"), b.log()


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_gets_ticks(make_broker, which):
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_tick yes\n"))
    assert wait_log(b, "test plugin: tick"), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_set_username_while_authenticating(make_broker, which, proto):
    """mosquitto_set_username in MOSQ_EVT_BASIC_AUTH: the client has the new name from then on (its
    ACL checks see it)."""
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_rename alice:alice-renamed\n"))
    c = PahoClient(b, protocol=proto, username="alice", password="secret")
    c.connect()
    c.publish("secret/x", b"no", qos=1)
    c.close()
    assert wait_log(b, "test plugin: denied access 2 to secret/x for %s user alice-renamed" % c.client_id), b.log()


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_told_of_disconnects(make_broker, which):
    """MOSQ_EVT_DISCONNECT with the client's id and user name. tombo's reason is MOSQ_ERR_SUCCESS (0)
    after a DISCONNECT and MOSQ_ERR_CONN_LOST (7) when the connection just drops; Mosquitto 2.0.11
    passes -1 whatever the cause (a difference: a reason a plugin can use)."""
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_disconnect yes\n"))
    c = PahoClient(b, protocol=V5, username="alice", password="secret")
    c.connect()
    c.disconnect()
    c.close()
    reason = "-1" if which == "mosquitto" else "0"
    assert wait_log(b, "test plugin: disconnect %s user alice reason %s" % (c.client_id, reason)), b.log()
    c = PahoClient(b, protocol=V311, username="bob", password="pw2")
    c.connect()
    c.drop()
    reason = "-1" if which == "mosquitto" else "7"
    assert wait_log(b, "test plugin: disconnect %s user bob reason %s" % (c.client_id, reason)), b.log()


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_per_listener_settings(make_broker, which):
    """per_listener_settings true: the plugin guards the listener whose section names it; the other
    listener has its own settings (anonymous clients, no plugin)."""
    b = Broker("x", mosquitto=(which == "mosquitto"))
    from conftest import free_port
    p2 = free_port()
    b.conf_text = ("per_listener_settings true\n" + plugin_conf() +
                   "listener %d 127.0.0.1\nallow_anonymous true\n" % p2)
    b.start()
    try:
        c = PahoClient(b, protocol=V5)
        assert rc_value(c.connect(expect_success=False)[0]) == 0x87
        c.close()
        other = Broker("x")
        other.port = p2
        c = PahoClient(other, protocol=V5)
        c.connect()
        assert c.subscribe("secret/#", qos=1) == [1]  # no plugin on this listener
        c.close()
    finally:
        b.stop()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_message_event_sees_and_rewrites_messages(make_broker, which, proto):
    """MOSQ_EVT_MESSAGE: the plugin sees each PUBLISH (topic, payload, qos, retain, client) before
    it is routed, and what it changes (topic, payload, retain) is what subscribers get."""
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_message yes\n"))
    sub = PahoClient(b, protocol=V5, username="bob", password="pw2")
    sub.connect()
    assert sub.subscribe("#", qos=1) == [1]
    pub = PahoClient(b, protocol=proto, username="alice", password="secret")
    pub.connect()
    pub.publish("plain/x", b"as is", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == ("plain/x", b"as is")
    pub.publish("rewrite/y", b"world", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == ("rewritten/y", b"hello world")
    pub.publish("unretain/z", b"r", qos=0, retain=True)
    assert sub.get().payload == b"r"
    pub.close()
    sub.close()
    assert wait_log(b, "test plugin: message plain/x payload as is qos 1 retain 0 from %s" % pub.client_id), b.log()
    assert wait_log(b, "test plugin: message unretain/z payload r qos 0 retain 1 from %s" % pub.client_id), b.log()
    # the retain flag the plugin cleared: nothing was retained
    late = PahoClient(b, protocol=V5, username="bob", password="pw2")
    late.connect()
    assert late.subscribe("unretain/#", qos=1) == [1]
    late.expect_none()
    late.close()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_plugin_message_event_denies_not_authorized(make_broker, which, proto):
    """MOSQ_ERR_ACL_DENIED from MOSQ_EVT_MESSAGE: the message is not delivered (the QoS 1 flow still
    completes: a 5.0 PUBACK says 0x87, Not authorized)."""
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_message yes\n"))
    only_allowed_arrives(b, proto, "deny/x", "ok/x")


@pytest.mark.parametrize("which", BROKERS)
def test_plugin_message_event_error_closes_the_connection(make_broker, which):
    """Another error from MOSQ_EVT_MESSAGE (MOSQ_ERR_INVAL): the message is dropped and the client
    disconnected, as Mosquitto 2.0 does."""
    b = start(make_broker, which, plugin_conf(extra="plugin_opt_message yes\n"))
    sub = PahoClient(b, protocol=V5, username="bob", password="pw2")
    sub.connect()
    assert sub.subscribe("#", qos=1) == [1]
    pub = PahoClient(b, protocol=V311, username="alice", password="secret")
    pub.connect()
    pub.publish("fail/x", b"no", qos=0, wait=False)
    assert pub.disconnected.wait(10), "not disconnected"
    sub.expect_none()
    pub.close()
    sub.close()


# ---- interface version 4 auth plugins (mosquitto_auth_*), as mosquitto-go-auth -------------------

PLUGIN_V4 = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin_v4.so")


def v4_conf(anonymous=False, extra=""):
    return ("allow_anonymous %s\nauth_plugin %s\nauth_opt_users alice:secret bob:pw2\n"
            "auth_opt_deny secret/\nauth_opt_greeting hello v4\n%s"
            % ("true" if anonymous else "false", PLUGIN_V4, extra))


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("proto", [V311, V5])
def test_v4_plugin_accepts_its_users_and_gets_its_options(make_broker, which, proto):
    b = start(make_broker, which, v4_conf())
    assert wait_log(b, "test plugin v4: greeting hello v4"), b.log()
    assert wait_log(b, "test plugin v4: plugin_init with 3 options"), b.log()
    assert wait_log(b, "test plugin v4: security_init reload 0 with 3 options"), b.log()
    c = PahoClient(b, protocol=proto, username="alice", password="secret")
    c.connect()
    c.close()
    assert wait_log(b, "test plugin v4: unpwd user alice client %s" % c.client_id), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("carol", "secret")])
def test_v4_plugin_refuses_bad_credentials_not_authorized(make_broker, which, user, password):
    b = start(make_broker, which, v4_conf())
    for proto in (V311, V5):
        c = PahoClient(b, protocol=proto, username=user, password=password)
        rc = rc_value(c.connect(expect_success=False)[0])
        c.close()
        assert rc == (0x87 if proto == V5 else 5)


@pytest.mark.parametrize("which", BROKERS)
def test_v4_plugin_acl_read_write_subscribe(make_broker, which):
    b = start(make_broker, which, v4_conf())
    sub = PahoClient(b, protocol=V5, username="bob", password="pw2")
    sub.connect()
    assert sub.subscribe("secret/#", qos=1) == [0x87]  # MOSQ_ACL_SUBSCRIBE
    assert sub.subscribe("#", qos=1) == [1]
    pub = PahoClient(b, protocol=V5, username="alice", password="secret")
    pub.connect()
    pub.publish("secret/plans", b"no", qos=1)  # MOSQ_ACL_WRITE refused
    pub.publish("public/news", b"yes", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == ("public/news", b"yes")
    sub.expect_none()
    pub.close()
    sub.close()
    assert wait_log(b, "test plugin v4: denied access 4 to secret/# for %s user bob" % sub.client_id), b.log()
    assert wait_log(b, "test plugin v4: denied access 2 to secret/plans for %s user alice" % pub.client_id), \
        b.log()


@pytest.mark.parametrize("which", BROKERS)
def test_v4_plugin_defer_falls_through_to_password_file(make_broker, which):
    d = tempfile.mkdtemp()
    os.chmod(d, 0o755)
    pw = os.path.join(d, "pw")
    subprocess.run(["/usr/bin/mosquitto_passwd", "-c", "-b", pw, "dave", "d4"], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    try:
        b = start(make_broker, which, v4_conf(extra="auth_opt_defer da\npassword_file %s\n" % pw))
        c = PahoClient(b, protocol=V5, username="dave", password="d4")
        c.connect()
        c.close()
        c = PahoClient(b, protocol=V5, username="dave", password="bad")
        assert rc_value(c.connect(expect_success=False)[0]) == 0x87
        c.close()
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("which", BROKERS)
def test_v4_plugin_reload_cleans_up_then_inits_with_reload(make_broker, which):
    b = start(make_broker, which, v4_conf())
    assert wait_log(b, "test plugin v4: security_init reload 0"), b.log()
    b.proc.send_signal(signal.SIGHUP)
    assert wait_log(b, "test plugin v4: security_init reload 1 with 3 options"), b.log()
    log = b.log()
    assert log.index("security_cleanup reload 1") < log.index("security_init reload 1"), log


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("setting", [None, "true", "false"])
@pytest.mark.parametrize("client_id,user,password", [("dev+1", "alice", "secret"), ("dev2", "b#b", "pw3")])
def test_v4_plugin_deny_special_chars(make_broker, which, setting, client_id, user, password):
    """auth_plugin_deny_special_chars (default true), as Mosquitto 2.0's security.c: a client whose
    id or user name holds '+' or '#' still logs in (the plugin's unpwd_check is asked), but every
    ACL check of the plugin is denied without asking it, UNSUBSCRIBE included; false asks the
    plugin as for any client."""
    extra = "auth_opt_users alice:secret bob:pw2 b#b:pw3\n"
    if setting is not None:
        extra += "auth_plugin_deny_special_chars %s\n" % setting
    b = start(make_broker, which, v4_conf(extra=extra))
    deny = setting != "false"
    c = PahoClient(b, client_id=client_id, protocol=V5, username=user, password=password)
    c.connect()
    assert wait_log(b, "test plugin v4: unpwd user %s client %s" % (user, client_id)), b.log()
    assert c.subscribe("public/#", qos=1) == [0x87 if deny else 1]
    assert c.unsubscribe("public/#") == [0x87 if deny else 0]
    watcher = PahoClient(b, protocol=V5, username="bob", password="pw2")
    watcher.connect()
    assert watcher.subscribe("public/#", qos=1) == [1]
    c.publish("public/x", b"hi", qos=1)
    if deny:
        watcher.expect_none()
        assert wait_log(b, "ACL denying access to client with dangerous"), b.log()
    else:
        assert watcher.get().payload == b"hi"
        assert "dangerous" not in b.log()
    watcher.close()
    c.close()


def test_deny_special_chars_without_plugin_line_is_refused():
    log = refused("auth_plugin_deny_special_chars false\n")
    assert ("broker.conf:2: 'auth_plugin_deny_special_chars' without a 'plugin' or 'auth_plugin' line "
            "before it") in log, log


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("version", [3, 2])
def test_old_auth_plugin_versions_load(make_broker, which, version):
    """Auth plugins of interface versions 3 and 2 (Mosquitto 1.4-1.5 and 1.3), as Mosquitto 2.0
    loads them: logins through unpwd_check, ACL checks through acl_check (version 2's takes the
    client id, user name, topic and access, and is never asked about SUBSCRIBE), SIGHUP reloads."""
    so = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin_v%d.so" % version)
    b = start(make_broker, which, "allow_anonymous false\nauth_plugin %s\nauth_opt_users alice:secret bob:pw2\n"
              "auth_opt_deny secret/\nauth_opt_greeting hello v%d\n" % (so, version))
    assert wait_log(b, "test plugin v4: greeting hello v%d" % version), b.log()
    c = PahoClient(b, protocol=V5, username="alice", password="wrong")
    assert rc_value(c.connect(expect_success=False)[0]) == 0x87
    c.close()
    sub = PahoClient(b, protocol=V5, username="bob", password="pw2")
    sub.connect()
    assert sub.subscribe("secret/#", qos=1) == [0x87 if version == 3 else 1]
    assert sub.subscribe("#", qos=1) == [1]
    pub = PahoClient(b, protocol=V311, username="alice", password="secret")
    pub.connect()
    pub.publish("secret/plans", b"no", qos=1)
    pub.publish("public/news", b"yes", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == ("public/news", b"yes")
    sub.expect_none()
    pub.close()
    sub.close()
    who = "(v2)" if version == 2 else pub.client_id
    assert wait_log(b, "test plugin v4: unpwd user alice client %s" % who), b.log()
    assert wait_log(b, "test plugin v4: denied access 2 to secret/plans for %s user alice" % pub.client_id), b.log()
    b.proc.send_signal(signal.SIGHUP)
    assert wait_log(b, "test plugin v4: security_init reload 1 with 3 options"), b.log()


# ---- MQTT 5 enhanced authentication by a plugin (MOSQ_EVT_EXT_AUTH_*, mosquitto_auth_start) ------

CONTINUE, REAUTH, NOT_AUTHORIZED, BAD_AUTH_METHOD = 0x18, 0x19, 0x87, 0x8C
PLUGIN_V4_EXT = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin_v4_EXT_AUTH.so")


def ext_broker(make_broker, which, kind):
    """A broker with allow_anonymous false whose plugin offers an enhanced-authentication method:
    the version 5 test plugin (MOSQ_EVT_EXT_AUTH_START/CONTINUE) or the version 4 one
    (mosquitto_auth_start/continue). Returns (broker, method)."""
    if kind == "v5":
        return start(make_broker, which, plugin_conf(extra="plugin_opt_ext_auth TEST-CHAL\n")), "TEST-CHAL"
    return start(make_broker, which, "allow_anonymous false\nauth_plugin %s\n" % PLUGIN_V4_EXT), "V4-CHAL"


def ext_props(method, data):
    return [("auth_method", method), ("auth_data", data)]


def ext_connect(b, method, data, client_id="ext1"):
    c = rawmqtt.Client(b.port)
    c.send(rawmqtt.connect(rawmqtt.V5, client_id=client_id, properties=ext_props(method, data)))
    return c, c.read_packet()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
def test_plugin_enhanced_auth_challenge_MQTT_4_12_0_2(make_broker, which, kind):
    """[MQTT-4.12.0-2] the plugin's AUTH_CONTINUE is an AUTH 0x18 with its data; its success at the
    client's AUTH is the CONNACK, with the method [MQTT-4.12.0-5] and the plugin's data. No password
    is asked for (allow_anonymous false, no user name), as in Mosquitto."""
    b, method = ext_broker(make_broker, which, kind)
    c, ch = ext_connect(b, method, b"hi")
    assert ch.type == rawmqtt.AUTH and ch.reason == CONTINUE, ch
    assert ch.props["auth_method"] == method and ch.props["auth_data"] == b"challenge"
    c.send(rawmqtt.auth(CONTINUE, ext_props(method, b"response")))
    ack = c.read_packet()
    assert ack.type == rawmqtt.CONNACK and ack.reason == 0, ack
    assert ack.props["auth_method"] == method and ack.props["auth_data"] == b"done"
    c.send(rawmqtt.pingreq())
    assert c.read_packet().type == rawmqtt.PINGRESP
    c.close()
    if kind == "v5":
        assert wait_log(b, "test plugin: ext auth start method TEST-CHAL data hi client ext1 user (none)"), b.log()
    else:
        assert wait_log(b, "test plugin v4: auth_start method V4-CHAL reauth 0 data hi client ext1"), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
def test_plugin_enhanced_auth_at_once_and_reauthentication_MQTT_4_12_1_1(make_broker, which, kind):
    """Success at the first step: CONNACK 0 with the plugin's data. Then re-authentication
    [MQTT-4.12.1-1]: AUTH 0x19 goes to the plugin's start (reauth), 0x18 to its continue, and the
    plugin's success is AUTH 0x00 with its data; the connection goes on."""
    b, method = ext_broker(make_broker, which, kind)
    c, ack = ext_connect(b, method, b"direct")
    assert ack.type == rawmqtt.CONNACK and ack.reason == 0, ack
    assert ack.props["auth_method"] == method and ack.props["auth_data"] == b"welcome"
    c.send(rawmqtt.auth(REAUTH, ext_props(method, b"again")))
    ch = c.read_packet()
    assert ch.type == rawmqtt.AUTH and ch.reason == CONTINUE and ch.props["auth_data"] == b"challenge", ch
    c.send(rawmqtt.auth(CONTINUE, ext_props(method, b"response")))
    done = c.read_packet()
    assert done.type == rawmqtt.AUTH and done.reason == 0 and done.props["auth_data"] == b"done", done
    c.send(rawmqtt.pingreq())
    assert c.read_packet().type == rawmqtt.PINGRESP
    c.close()
    if kind == "v4":
        assert wait_log(b, "test plugin v4: auth_start method V4-CHAL reauth 1 data again"), b.log()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
@pytest.mark.parametrize("step", ["start", "continue"])
def test_plugin_enhanced_auth_refused_not_authorized_MQTT_4_12_0_4(make_broker, which, kind, step):
    """[MQTT-4.12.0-4] MOSQ_ERR_AUTH from the plugin, at the first step or the next: CONNACK 0x87."""
    b, method = ext_broker(make_broker, which, kind)
    c, p = ext_connect(b, method, b"bad" if step == "start" else b"hi")
    if step == "continue":
        assert p.type == rawmqtt.AUTH, p
        c.send(rawmqtt.auth(CONTINUE, ext_props(method, b"wrong")))
        p = c.read_packet()
    assert p.type == rawmqtt.CONNACK and p.reason == NOT_AUTHORIZED, p
    c.expect_closed()


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
def test_plugin_enhanced_auth_failed_reauthentication_disconnects_MQTT_4_12_1_2(make_broker, which, kind):
    """[MQTT-4.12.1-2] a re-authentication the plugin refuses: DISCONNECT 0x87 and close. Differs:
    Mosquitto 2.0.11 answers with a CONNACK 0x87 on the open connection (a second CONNACK, which
    MQTT 5 does not allow), then closes."""
    b, method = ext_broker(make_broker, which, kind)
    c, ack = ext_connect(b, method, b"direct")
    assert ack.reason == 0
    c.send(rawmqtt.auth(REAUTH, ext_props(method, b"bad")))
    if which == "mosquitto":
        p = c.read_packet()
        assert p.type == rawmqtt.CONNACK and p.reason == NOT_AUTHORIZED, p
        c.expect_closed()
    else:
        c.expect_disconnect(NOT_AUTHORIZED)


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
def test_plugin_enhanced_auth_unknown_method_MQTT_4_12_0_1(make_broker, which, kind):
    """[MQTT-4.12.0-1] a method no plugin supports (MOSQ_ERR_NOT_SUPPORTED): CONNACK 0x8C."""
    b, method = ext_broker(make_broker, which, kind)
    c, ack = ext_connect(b, "OTHER-METHOD", b"hi")
    assert ack.type == rawmqtt.CONNACK and ack.reason == BAD_AUTH_METHOD, ack
    c.expect_closed()


# ---- TLS-PSK keys from a plugin (MOSQ_EVT_PSK_KEY, mosquitto_auth_psk_key_get) ----------------

PLUGIN_V4_PSK = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin_v4_PSK.so")


def psk_pub(b, identity, key):
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "--psk", key, "--psk-identity",
                        identity, "-t", "psk/x", "-m", "y", "-q", "1"], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("which", BROKERS)
@pytest.mark.parametrize("kind", ["v5", "v4"])
def test_plugin_gives_psk_keys(make_broker, which, kind):
    """psk_hint without psk_file: the key of a TLS-PSK identity comes from the plugin (hex, as a
    psk_file's); a wrong key or an identity the plugin refuses fails the handshake."""
    if not shutil.which("mosquitto_pub"):
        pytest.skip("no mosquitto_pub")
    if kind == "v5":
        conf = "psk_hint tombohint\nallow_anonymous true\nplugin %s\nplugin_opt_psk dev1:0123456789abcdef\n" % PLUGIN
    else:
        conf = ("psk_hint tombohint\nallow_anonymous true\nauth_plugin %s\nauth_opt_psk dev1:0123456789abcdef\n"
                "auth_opt_users a:b\n" % PLUGIN_V4_PSK)
    b = start(make_broker, which, conf)
    rc, out = psk_pub(b, "dev1", "0123456789abcdef")
    assert rc == 0, out
    rc, out = psk_pub(b, "dev1", "ffffffffffffffff")
    assert rc != 0, out
    rc, out = psk_pub(b, "dev2", "0123456789abcdef")
    assert rc != 0, out
    if kind == "v5":
        assert wait_log(b, "test plugin: psk key hint tombohint identity dev1"), b.log()
    else:
        assert wait_log(b, "test plugin v4: psk_key_get hint tombohint identity dev2"), b.log()


# ---- tombo's start-up refusals: FILE:LINE and what is wrong ----------------------------------

def refused(conf):
    b = Broker(conf)
    rc, log = b.run_until_exit(timeout=30)
    assert rc not in (0, None), log
    return log


def test_plugin_failing_init_stops_startup_with_file_line():
    log = refused(plugin_conf(extra="plugin_opt_fail_init yes\n"))
    assert re.search(r"broker\.conf:3: plugin .*tombo_test_plugin\.so failed to initialise "
                     r"\(mosquitto_plugin_init returned 3\)", log), log


def test_auth_plugin_of_version_1_is_refused_naming_its_version():
    v1 = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin_v1.so")
    log = refused("auth_plugin %s\nauth_opt_x y\n" % v1)
    assert ("broker.conf:2: plugin %s is an auth plugin of interface version 1 (mosquitto_auth_plugin_version); "
            "tombo loads versions 2 to 5, as Mosquitto 2.0" % v1) in log, log


def test_psk_hint_without_psk_file_or_plugin_keys_is_refused():
    """A plugin that gives no PSK keys does not make psk_hint without psk_file work."""
    log = refused("listener 0 127.0.0.1\npsk_hint hint\nallow_anonymous true\nplugin %s\n" % PLUGIN)
    assert re.search(r"broker\.conf:3: psk_hint needs psk_file .* or a plugin that gives keys", log), log


def test_plugin_missing_file_is_refused():
    log = refused("plugin /nonexistent/plugin.so\n")
    assert "broker.conf:2: cannot load plugin /nonexistent/plugin.so" in log, log


def test_plugin_not_a_mosquitto_plugin_is_refused():
    log = refused("plugin %s\n" % "/lib/x86_64-linux-gnu/libz.so.1")
    assert "broker.conf:2: /lib/x86_64-linux-gnu/libz.so.1 is not a Mosquitto plugin" in log, log


def test_plugin_opt_without_plugin_is_refused():
    log = refused("plugin_opt_users alice:secret\n")
    assert "broker.conf:2: 'plugin_opt_users' without a 'plugin' line before it" in log, log


# ---- Mosquitto's dynamic-security plugin, driven by mosquitto_ctrl ----------------------------

def ctrl(b, *args):
    """mosquitto_ctrl as the dynsec admin against broker b; returns (exit code, output)."""
    r = subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(b.port), "-u", "admin", "-P", "adminpw",
                        "dynsec"] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def dynsec_broker(make_broker, which):
    if not os.path.exists(DYNSEC) or not shutil.which("mosquitto_ctrl"):
        pytest.skip("no dynamic-security plugin or mosquitto_ctrl")
    d = tempfile.mkdtemp(prefix="tombo-dynsec-")
    os.chmod(d, 0o777)  # Mosquitto run as root saves the file as the mosquitto user
    path = os.path.join(d, "dynsec.json")
    r = subprocess.run(["mosquitto_ctrl", "dynsec", "init", path, "admin", "adminpw"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    os.chmod(path, 0o666)
    return make_broker("plugin %s\nplugin_opt_config_file %s\n" % (DYNSEC, path), mosquitto=(which == "mosquitto"))


@pytest.mark.parametrize("which", BROKERS)
def test_dynamic_security_plugin_manages_clients(make_broker, which):
    """The dynamic-security plugin: its $CONTROL/dynamic-security/v1 topic (MOSQ_EVT_CONTROL), its
    answers (mosquitto_broker_publish to the requesting client), its logins and ACLs."""
    b = dynsec_broker(make_broker, which)
    rc, out = ctrl(b, "createClient", "bob", "-p", "bobpw")
    assert rc == 0, out
    rc, out = ctrl(b, "listClients")
    assert rc == 0 and "bob" in out.split() and "admin" in out.split(), out
    c = PahoClient(b, protocol=V5, username="bob", password="bobpw")
    c.connect()
    # dynsec's default ACL: a client without roles may not subscribe
    assert c.subscribe("a/b", qos=1) == [0x87]
    c.close()
    c = PahoClient(b, protocol=V5, username="bob", password="wrong")
    assert rc_value(c.connect(expect_success=False)[0]) == 0x87
    c.close()
    # a role that lets bob subscribe
    assert ctrl(b, "createRole", "reader")[0] == 0
    assert ctrl(b, "addRoleACL", "reader", "subscribePattern", "a/#", "allow")[0] == 0
    assert ctrl(b, "addClientRole", "bob", "reader")[0] == 0
    c = PahoClient(b, protocol=V5, username="bob", password="bobpw")
    c.connect()
    assert c.subscribe("a/b", qos=1) == [1]
    c.close()


@pytest.mark.parametrize("which", BROKERS)
def test_dynamic_security_disable_client_kicks_it(make_broker, which):
    """disableClient disconnects the client's connections (mosquitto_kick_client_by_username)."""
    b = dynsec_broker(make_broker, which)
    assert ctrl(b, "createClient", "bob", "-p", "bobpw")[0] == 0
    c = PahoClient(b, protocol=V5, username="bob", password="bobpw")
    c.connect()
    assert ctrl(b, "disableClient", "bob")[0] == 0
    assert c.disconnected.wait(10), "bob was not disconnected"
    c.close()
    c = PahoClient(b, protocol=V5, username="bob", password="bobpw")
    assert rc_value(c.connect(expect_success=False)[0]) == 0x87
    c.close()
