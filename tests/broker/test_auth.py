"""password_file, allow_anonymous and acl_file: who may connect, publish and receive, with Mosquitto
2.0.11's meaning (checked against it with TOMBO_REFERENCE=mosquitto).

Mosquitto 2.0.11 refuses every failed authentication with CONNACK 5 (3.1.1) / 0x87 Not authorized
(5.0), never 4 / 0x86; an ACL-denied PUBLISH is acknowledged (3.1.1) or answered 0x87 (5.0) and
dropped; an acl_file does not restrict SUBSCRIBE (the SUBACK grants the filter) but every delivery,
retained messages included, needs read access.

Password files are made by mosquitto_passwd and by tombo-passwd (when built), both hash formats, so
each broker is shown to take either tool's files.
"""
import base64
import hashlib
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import is_reference
import rawmqtt
from rawmqtt import (CONNACK, PUBACK, PUBLISH, PUBREC, V311, V5, Client, Closed, connected)

NOT_AUTHORIZED = 0x87
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))

USERS = {"alice": "secret", "bob": "b0b pw", "admin": "adm1n", "ann": "ann-pw"}


def tombo_passwd():
    return os.path.join(BUILD, "src", "tools", "tombo-passwd")


def make_pwfile(path, tool, hash_type="sha512-pbkdf2", users=USERS):
    exe = "/usr/bin/mosquitto_passwd" if tool == "mosquitto_passwd" else tombo_passwd()
    if not os.path.exists(exe):
        pytest.skip("%s not built" % exe)
    first = True
    for user, pw in users.items():
        args = [exe, "-H", hash_type] + (["-c"] if first else []) + ["-b", path, user, pw]
        subprocess.run(args, check=True, timeout=30, stdout=subprocess.DEVNULL)
        first = False
    return path


def security_conf(allow_anonymous, pwfile=None, aclfile=None):
    # As root, Mosquitto drops to user "mosquitto", which cannot read files in the test's private
    # directory: "user root" keeps it root. tombo refuses `user` (it never changes user).
    conf = "user root\n" if is_reference() else ""
    conf += "allow_anonymous %s\n" % ("true" if allow_anonymous else "false")
    if pwfile:
        conf += "password_file %s\n" % pwfile
    if aclfile:
        conf += "acl_file %s\n" % aclfile
    return conf


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def refused(port, version, **kw):
    """CONNECT; assert the refusal code Mosquitto 2 uses (5 / 0x87) and that the connection closes."""
    c = Client(port, version=version)
    ack = c.connect(version, client_id="refused-%d" % version, **kw)
    want = NOT_AUTHORIZED if version == V5 else 5
    assert ack.reason == want, "expected CONNACK 0x%02x, got %r" % (want, ack)
    c.expect_closed()
    c.close()


# ---------------------------------------------------------------- password_file

@pytest.fixture(params=[("mosquitto_passwd", "sha512-pbkdf2"), ("mosquitto_passwd", "sha512"),
                        ("tombo-passwd", "sha512-pbkdf2"), ("tombo-passwd", "sha512")],
                ids=["mosquitto_passwd-pbkdf2", "mosquitto_passwd-sha512", "tombo-passwd-pbkdf2",
                     "tombo-passwd-sha512"])
def pwfile(request, tmp_path):
    tool, hash_type = request.param
    return make_pwfile(str(tmp_path / "passwords"), tool, hash_type)


@pytest.mark.parametrize("version", [V311, V5])
def test_password_file_right_password_accepted(make_broker, pwfile, version):
    b = make_broker(security_conf(False, pwfile))
    for user, pw in USERS.items():
        c = connected(b.port, version, "ok-" + user, username=user, password=pw)
        c.ping()
        c.disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_password_file_wrong_password_refused(make_broker, pwfile, version):
    b = make_broker(security_conf(False, pwfile))
    refused(b.port, version, username="alice", password="Secret")
    refused(b.port, version, username="alice", password="")
    refused(b.port, version, username="bob", password="secret")  # alice's password


@pytest.mark.parametrize("version", [V311, V5])
@pytest.mark.parametrize("anonymous", [False, True])
def test_password_file_unknown_user_refused(make_broker, tmp_path, version, anonymous):
    """A user name not in the file is refused even when anonymous clients are allowed."""
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    b = make_broker(security_conf(anonymous, pw))
    refused(b.port, version, username="mallory", password="secret")
    refused(b.port, version, username="alic", password="secret")


@pytest.mark.parametrize("version", [V311, V5])
@pytest.mark.parametrize("anonymous", [False, True])
def test_empty_user_name_is_anonymous(make_broker, tmp_path, version, anonymous):
    """Mosquitto reads a zero-length user name as none: the client is anonymous."""
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    b = make_broker(security_conf(anonymous, pw))
    if anonymous:
        connected(b.port, version, "empty-user", username="", password="secret").disconnect()
    else:
        refused(b.port, version, username="", password="secret")


@pytest.mark.parametrize("version", [V311, V5])
def test_password_file_user_without_password_refused(make_broker, tmp_path, version):
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    b = make_broker(security_conf(True, pw))
    refused(b.port, version, username="alice")


@pytest.mark.parametrize("version", [V311, V5])
def test_anonymous_refused_when_not_allowed(make_broker, tmp_path, version):
    """allow_anonymous false: a CONNECT without user name gets 5 / 0x87 (also a 5.0 CONNECT with a
    password but no user name)."""
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    b = make_broker(security_conf(False, pw))
    refused(b.port, version)
    if version == V5:
        refused(b.port, version, password="secret")


@pytest.mark.parametrize("version", [V311, V5])
def test_anonymous_accepted_when_allowed(make_broker, tmp_path, version):
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    b = make_broker(security_conf(True, pw))
    c = connected(b.port, version, "anon")
    c.ping()
    c.disconnect()
    # Still checked when a user name is given.
    connected(b.port, version, "alice", username="alice", password="secret").disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_no_password_file_and_no_anonymous_refuses_everyone(make_broker, version):
    """allow_anonymous false without a password file: nobody can log in, user name or not."""
    b = make_broker(security_conf(False))
    refused(b.port, version)
    refused(b.port, version, username="alice", password="secret")


def test_no_password_file_user_names_accepted_with_anonymous(make_broker):
    b = make_broker(security_conf(True))
    connected(b.port, V311, "u", username="anyone", password="anything").disconnect()


def test_missing_password_file_stops_startup(tmp_path):
    from conftest import Broker
    b = Broker(security_conf(False, str(tmp_path / "nonexistent")))
    rc, log = b.run_until_exit()
    assert rc == 1, log
    assert "nonexistent" in log
    assert "Sanitizer" not in log  # not a crash on the way out


def test_plain_text_entries_cannot_log_in(make_broker, tmp_path):
    """A line with a plain-text password (not hashed by the tool) is ignored: that user cannot log
    in, the others still can."""
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd", users={"alice": "secret"})
    with open(pw, "a") as f:
        f.write("dave:plain\n")
    b = make_broker(security_conf(False, pw))
    refused(b.port, V311, username="dave", password="plain")
    connected(b.port, V311, "alice", username="alice", password="secret").disconnect()


# ---------------------------------------------------------------- acl_file

ACL = """# clients without user name
topic read public/#
topic write public/in

user alice
topic readwrite a/#
topic deny a/secret
topic read ro/#
topic write wo/#

user admin
topic readwrite #

# everyone: their own client id and user name
pattern readwrite clients/%c/#
pattern read users/%u/#
"""


@pytest.fixture
def acl_broker(make_broker, tmp_path):
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd")
    acl = write(tmp_path / "acl", ACL)
    return make_broker(security_conf(True, pw, acl))


def admin(b, version=V5, cid="admin"):
    """A client allowed everything, subscribed to '#' (QoS 1)."""
    c = connected(b.port, version, cid, username="admin", password="adm1n")
    assert c.subscribe([("#", 1)]).reason_codes == [1]
    return c


def next_publish(c, timeout=2.0):
    p = c.read_packet(timeout)
    while p.type != PUBLISH:
        p = c.read_packet(timeout)
    return p


def expect_topic(c, topic):
    """The next PUBLISH received is on `topic` (anything published before it was dropped)."""
    p = next_publish(c)
    assert p.topic == topic, "expected a message on %s, got %r" % (topic, p)
    if p.qos == 1:
        c.send(bytes([PUBACK << 4, 2]) + p.packet_id.to_bytes(2, "big"))
    return p


def marker(b):
    """Publish an allowed message (as admin) that ends the observation window."""
    m = connected(b.port, V311, "marker", username="admin", password="adm1n")
    m.publish("marker", b"end", qos=1)
    m.disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_acl_denied_publish_not_delivered(acl_broker, version):
    """A PUBLISH outside the user's write access is dropped: QoS 0 silently, QoS 1 with PUBACK
    (0x87 on 5.0), QoS 2 with PUBREC 0x87 on 5.0; only allowed ones reach a subscriber."""
    watcher = admin(acl_broker)
    c = connected(acl_broker.port, version, "alice-c", username="alice", password="secret")
    c.publish("x/y", b"denied0", qos=0)
    ack = c.publish("x/y", b"denied1", qos=1)
    assert ack.type == PUBACK
    if version == V5:
        assert ack.reason == NOT_AUTHORIZED
        rec = c.publish("ro/z", b"denied2", qos=2)  # read-only topic
        assert rec.type == PUBREC and rec.reason == NOT_AUTHORIZED
    ack = c.publish("a/secret", b"denied3", qos=1)  # deny wins over readwrite a/#
    if version == V5:
        assert ack.reason == NOT_AUTHORIZED
    ack = c.publish("a/ok", b"allowed", qos=1)
    assert ack.reason < 0x80
    assert expect_topic(watcher, "a/ok").payload == b"allowed"
    ack = c.publish("wo/1", b"allowed too", qos=1)
    assert ack.reason < 0x80
    expect_topic(watcher, "wo/1")
    c.disconnect()
    watcher.disconnect()


def test_acl_denied_retained_publish_not_stored(acl_broker):
    c = connected(acl_broker.port, V5, "alice-r", username="alice", password="secret")
    assert c.publish("x/retained", b"r", qos=1, retain=True).reason == NOT_AUTHORIZED
    c.disconnect()
    watcher = admin(acl_broker, cid="late")
    marker(acl_broker)
    expect_topic(watcher, "marker")
    watcher.disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_acl_subscribe_refused_when_nothing_it_matches_is_readable(acl_broker, version):
    """A filter under which the ACL lets the client read no topic at all is refused in the SUBACK
    (0x80 on 3.1.1, 0x87 Not authorized on 5.0 [MQTT-3.9.3-1]: one return code per filter). A filter
    that can match some readable topic is granted, and READ then filters every delivery (read-only,
    write-only, denied and foreign topics). Mosquitto 2.0's acl_file grants every filter and
    delivers nothing (a deliberate difference, docs/config.md); its dynamic-security plugin, and the
    paho interoperability suite's "subscribe failure" test, refuse as tombo does."""
    refused = 0x87 if version == V5 else 0x80
    c = connected(acl_broker.port, version, "alice-s", username="alice", password="secret")
    filters = [("#", 1), ("x/y", 1), ("a/secret", 1), ("wo/+", 1), ("$share/g/ro/+", 1), ("+/+", 1),
               ("users/+/t", 1), ("users/bob/t", 1), ("clients/alice-s/#", 1)]
    suback = c.subscribe(filters)
    if is_reference():
        assert suback.reason_codes == [1] * len(filters)  # Mosquitto grants them all
    else:
        # #: a/#, ro/# readable; x/y: no rule; a/secret: a/# grants (the deny is per topic, at
        # delivery); wo/+: write only; $share/g/ro/+: the ACL sees ro/+; +/+: a/x; users/+/t:
        # users/alice/t (pattern %u); users/bob/t: not alice's; clients/alice-s/#: pattern %c.
        assert suback.reason_codes == [1, refused, 1, refused, 1, 1, 1, refused, 1]
    pub = connected(acl_broker.port, V311, "admin-pub", username="admin", password="adm1n")
    for topic in ("x/y", "a/secret", "wo/1", "public/1", "users/bob/1"):
        pub.publish(topic, b"hidden", qos=1)
    pub.publish("ro/1", b"visible", qos=1)
    p = expect_topic(c, "ro/1")  # from '#' or '$share/g/ro/+': the first of them
    assert p.payload == b"visible"
    pub.publish("a/b", b"visible", qos=1)
    p = next_publish(c)
    while p.topic == "ro/1":  # the other subscription's copy
        if p.qos == 1:
            c.send(bytes([PUBACK << 4, 2]) + p.packet_id.to_bytes(2, "big"))
        p = next_publish(c)
    assert p.topic == "a/b"
    pub.disconnect()
    c.disconnect()


def test_acl_retained_messages_need_read_access(acl_broker):
    pub = connected(acl_broker.port, V311, "admin-ret", username="admin", password="adm1n")
    pub.publish("x/kept", b"no", qos=1, retain=True)
    pub.publish("ro/kept", b"yes", qos=1, retain=True)
    pub.disconnect()
    c = connected(acl_broker.port, V5, "alice-ret", username="alice", password="secret")
    # +/kept is granted (a/kept would be readable) and matches both retained messages: READ lets
    # only ro/kept through.
    assert c.subscribe([("+/kept", 1)]).reason_codes == [1]
    p = expect_topic(c, "ro/kept")
    assert p.payload == b"yes"
    try:
        extra = c.read_packet(timeout=0.5)
    except TimeoutError:
        extra = None
    assert extra is None, "unexpected %r" % extra
    c.disconnect()


def test_acl_anonymous_section(acl_broker):
    """`topic` lines before the first `user` line are for clients without user name."""
    watcher = admin(acl_broker)
    c = connected(acl_broker.port, V5, "anon-1")
    assert c.publish("public/x", b"no", qos=1).reason == NOT_AUTHORIZED  # read only
    assert c.publish("a/b", b"no", qos=1).reason == NOT_AUTHORIZED       # alice's
    assert c.publish("public/in", b"yes", qos=1).reason < 0x80  # 0x10 (no subscribers) is success too
    expect_topic(watcher, "public/in")
    c.subscribe([("public/#", 1)])
    marker(acl_broker)
    pub = connected(acl_broker.port, V311, "admin-anon", username="admin", password="adm1n")
    pub.publish("public/news", b"n", qos=1)
    pub.disconnect()
    expect_topic(c, "public/news")
    c.disconnect()
    watcher.disconnect()


def test_acl_users_do_not_get_anonymous_rules(acl_broker):
    c = connected(acl_broker.port, V5, "bob-1", username="bob", password="b0b pw")
    assert c.publish("public/in", b"no", qos=1).reason == NOT_AUTHORIZED
    assert c.publish("a/b", b"no", qos=1).reason == NOT_AUTHORIZED
    c.disconnect()


def test_acl_patterns_client_id_and_user_name(acl_broker):
    """`pattern` lines apply to everyone, %c replaced by the client id and %u by the user name;
    %u patterns do not apply to clients without user name."""
    c = connected(acl_broker.port, V5, "dev7", username="ann", password="ann-pw")
    assert c.publish("clients/dev7/t", b"ok", qos=1).reason < 0x80  # 0x10 (no subscribers) is success too
    assert c.publish("clients/dev8/t", b"no", qos=1).reason == NOT_AUTHORIZED
    assert c.publish("users/ann/t", b"no", qos=1).reason == NOT_AUTHORIZED  # read only
    c.subscribe([("clients/#", 1), ("users/#", 1)])
    pub = connected(acl_broker.port, V311, "admin-pat", username="admin", password="adm1n")
    pub.publish("clients/dev8/t", b"other client", qos=1)
    pub.publish("users/bob/t", b"other user", qos=1)
    pub.publish("users/ann/t", b"mine", qos=1)
    p = next_publish(c)
    # our own clients/dev7/t may come back first
    if p.topic == "clients/dev7/t":
        p = next_publish(c)
    assert (p.topic, p.payload) == ("users/ann/t", b"mine")
    pub.disconnect()
    c.disconnect()
    anon = connected(acl_broker.port, V5, "dev9")
    assert anon.publish("clients/dev9/x", b"ok", qos=1).reason < 0x80  # 0x10 (no subscribers) is success too
    anon.disconnect()


def test_acl_file_denies_everything_else(make_broker, tmp_path):
    """An ACL file is default deny: a user without a section and no matching pattern may do nothing."""
    acl = write(tmp_path / "acl", "user alice\ntopic a\n")
    b = make_broker(security_conf(True, None, acl))
    c = connected(b.port, V5, "someone", username="zed", password="x")
    assert c.publish("a", b"no", qos=1).reason == NOT_AUTHORIZED
    c.disconnect()
    # Without a password file user names are not checked: "alice" gets alice's rules.
    c = connected(b.port, V5, "claims-alice", username="alice")
    assert c.publish("a", b"yes", qos=1).reason < 0x80  # 0x10 (no subscribers) is success too
    c.disconnect()


def test_bad_acl_file_stops_startup(tmp_path):
    from conftest import Broker
    acl = write(tmp_path / "acl", "topic read a\nbogus line\n")
    b = Broker(security_conf(True, None, acl))
    rc, log = b.run_until_exit()
    assert rc == 1, log
    assert "acl" in log.lower()
    assert "Sanitizer" not in log


def test_acl_denied_qos2_v311_flow_completes_without_delivery(acl_broker):
    """3.1.1 has no reason codes: a denied QoS 2 PUBLISH still gets PUBREC and PUBCOMP."""
    watcher = admin(acl_broker)
    c = connected(acl_broker.port, V311, "alice-q2", username="alice", password="secret")
    comp = c.publish("x/q2", b"denied", qos=2)
    assert comp is not None
    c.publish("a/q2", b"allowed", qos=2)
    expect_topic(watcher, "a/q2")
    c.disconnect()
    watcher.disconnect()


def test_acl_will_needs_write_access(acl_broker):
    """The will topic is checked when the will is published: a will on a topic the client may not
    write is accepted at CONNECT but never delivered."""
    watcher = admin(acl_broker)
    for cid, topic in (("will-denied", "x/will"), ("will-ok", "a/will")):
        c = Client(acl_broker.port, version=V5)
        ack = c.connect(V5, client_id=cid, username="alice", password="secret", will_topic=topic,
                        will_payload=b"gone")
        assert ack.reason == 0
        c.close()  # no DISCONNECT: the will is due
        if topic == "a/will":
            expect_topic(watcher, "a/will")
    watcher.disconnect()


def test_acl_dollar_topics_need_dollar_rules(make_broker, tmp_path):
    """'#' in an ACL does not give access to $SYS: only ACL topics starting with '$' match topics
    starting with '$'."""
    acl = write(tmp_path / "acl", "user admin\ntopic readwrite #\nuser sys\ntopic read $SYS/#\n")
    b = make_broker(security_conf(True, None, acl) + "sys_interval 1\n")
    a = connected(b.port, V5, "adm", username="admin")
    s = connected(b.port, V5, "sysu", username="sys")
    # Nothing under $SYS is readable for admin: tombo refuses the filter (Mosquitto grants it).
    assert a.subscribe([("$SYS/#", 0)]).reason_codes == ([0] if is_reference() else [NOT_AUTHORIZED])
    assert s.subscribe([("$SYS/#", 0)]).reason_codes == [0]
    p = next_publish(s, timeout=5)
    assert p.topic.startswith("$SYS/")
    try:
        got = a.read_packet(timeout=2.5)
    except TimeoutError:
        got = None
    assert got is None, "admin received %r without a $SYS rule" % got
    a.disconnect()
    s.disconnect()


def test_per_listener_settings(make_broker, tmp_path):
    """per_listener_settings true: each listener has its own password file and allow_anonymous."""
    from conftest import free_port
    pw = make_pwfile(str(tmp_path / "pw"), "mosquitto_passwd", users={"alice": "secret"})
    open_port = free_port()
    conf = ("user root\n" if is_reference() else "") + (
        "per_listener_settings true\n"
        "listener PORT 127.0.0.1\n"
        "allow_anonymous false\n"
        "password_file %s\n"
        "listener %d 127.0.0.1\n"
        "allow_anonymous true\n" % (pw, open_port))
    b = make_broker(conf, raw_conf=True)
    refused(b.port, V311)
    connected(b.port, V311, "p1", username="alice", password="secret").disconnect()
    connected(open_port, V311, "p2").disconnect()
    connected(open_port, V311, "p3", username="anyone", password="x").disconnect()


def test_per_listener_settings_before_any_listener(make_broker):
    """per_listener_settings true, then a security line before any `listener`: as in Mosquitto, it
    configures the default listener only, so the explicit listener below keeps its own default
    (no anonymous clients). tombo says so at start-up instead of refusing the file."""
    conf = ("user root\n" if is_reference() else "") + (
        "per_listener_settings true\n"
        "allow_anonymous true\n"
        "listener PORT 127.0.0.1\n")
    b = make_broker(conf, raw_conf=True)
    refused(b.port, V311)
    if not is_reference():
        assert "applies to the default listener only" in b.log()


@pytest.mark.tsan
@pytest.mark.skipif(is_reference(), reason="Mosquitto checks passwords on its only thread")
def test_password_check_runs_off_the_worker_thread(make_broker, tmp_path):
    """A slow password hash (here PBKDF2 with 600,000 iterations, a good fraction of a second) is checked on
    the auth thread: a client already connected to the same (only) worker keeps being served while
    another client's CONNECT waits for its check."""
    salt = b"0123456789ab"
    iters = 600000
    digest = hashlib.pbkdf2_hmac("sha512", b"slowpass", salt, iters)
    pw = write(tmp_path / "pw", "slow:$7$%d$%s$%s\n" % (iters, base64.b64encode(salt).decode(),
                                                          base64.b64encode(digest).decode()))
    b = make_broker("threads 1\n" + security_conf(True, pw))
    # How long the check takes depends on the build and the load: about 0.5 s in a release build,
    # but under ASan OpenSSL's PBKDF2 (allocations in every iteration) takes 6 s the first time
    # even alone, and 30 s on a loaded machine. So wait as long as the broker lets a CONNECT wait
    # for its check: connect_timeout (10 s) plus 60 s (WAITING_MS in src/broker/wheel.c).
    limit = 75
    fast = connected(b.port, V311, "anon")
    slow = Client(b.port, version=V311, timeout=limit)
    t0 = time.monotonic()
    slow.send(rawmqtt.connect(V311, client_id="slow", username="slow", password="slowpass"))
    time.sleep(0.05)  # the CONNECT is in the broker's hands
    pings = 0
    while True:
        fast.ping()  # answered while the password is being checked
        pings += 1
        r, _, _ = select.select([slow.sock], [], [], 0.05)
        if r:
            break
        assert time.monotonic() - t0 < limit
    ack = slow.expect(rawmqtt.CONNACK)
    assert ack.reason == 0
    print("pings answered during the check: %d" % pings)
    assert pings >= 3, "the worker answered only %d pings during the check" % pings
    # A wrong password goes the same way and is refused.
    bad = Client(b.port, version=V311, timeout=limit)
    bad.send(rawmqtt.connect(V311, client_id="bad", username="slow", password="wrong"))
    assert bad.expect(rawmqtt.CONNACK).reason == 5
    fast.ping()
    fast.disconnect()


def wait_log(b, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while text not in b.log():
        assert time.monotonic() < deadline, "%r not in the log:\n%s" % (text, b.log()[-2000:])
        time.sleep(0.05)


@pytest.mark.tsan
@pytest.mark.skipif(is_reference(), reason="tombo's log lines are checked")
def test_sighup_reloads_password_and_acl_files(make_broker, tmp_path):
    """SIGHUP reads password_file and acl_file again, as Mosquitto does: a user added with
    tombo-passwd can log in, a changed password takes effect, and connected clients are checked
    against the new rules. A file that no longer loads is reported and the previous one stays."""
    pw = make_pwfile(str(tmp_path / "pw"), "tombo-passwd", users={"alice": "secret"})
    acl = write(tmp_path / "acl", "user alice\ntopic readwrite a/#\n")
    b = make_broker(security_conf(False, pw, acl))
    assert Client(b.port, version=V311).connect(V311, client_id="c1", username="carol", password="c").reason == 5
    alice = connected(b.port, V5, "alice", username="alice", password="secret")
    alice.subscribe([("#", 1)])
    alice.publish("b/1", b"denied", qos=1)

    subprocess.run([tombo_passwd(), "-b", pw, "carol", "c"], check=True, timeout=30)
    subprocess.run([tombo_passwd(), "-b", pw, "alice", "new"], check=True, timeout=30)
    write(tmp_path / "acl", "user alice\ntopic readwrite a/#\ntopic readwrite b/#\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, "Reloaded the password and ACL files.")

    carol = connected(b.port, V311, "c2", username="carol", password="c")
    assert Client(b.port, version=V311).connect(V311, client_id="c3", username="alice",
                                                  password="secret").reason == 5
    connected(b.port, V311, "c4", username="alice", password="new").disconnect()
    alice.publish("b/2", b"allowed now", qos=1)  # the connected client: new rules apply
    got = [p.payload for p in drain_publishes(alice)]
    assert got == [b"allowed now"]

    write(tmp_path / "acl", "user alice\nbogus line\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, "the previous ones stay in force")
    alice.publish("b/3", b"still allowed", qos=1)
    assert [p.payload for p in drain_publishes(alice)] == [b"still allowed"]
    carol.disconnect()
    alice.disconnect()


def drain_publishes(c, timeout=0.5):
    out = []
    try:
        while True:
            p = c.read_packet(timeout)
            if p.type == PUBLISH:
                out.append(p)
                if p.qos == 1:
                    c.send(rawmqtt.ack(PUBACK, p.packet_id, version=c.version))
    except (TimeoutError, OSError):
        return out
