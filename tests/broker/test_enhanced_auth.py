"""MQTT 5 enhanced authentication (OASIS MQTT 5.0 sections 4.12 and 3.15): SCRAM-SHA-256 (RFC 5802,
RFC 7677, as EMQX offers it) against `$SCRAM-SHA-256$` entries of the password file, written by
`tombo-passwd -H scram-sha-256`, at CONNECT and as re-authentication.

The client side of SCRAM is written here in Python (hashlib/hmac), independently of the broker's C
code; packets are raw MQTT 5 bytes (rawmqtt). Mosquitto 2.0 offers no enhanced authentication
(it answers 0x8C to any method), so these are tombo-only tests.
"""
import base64
import hashlib
import hmac
import os
import subprocess

import pytest

from conftest import is_reference
import rawmqtt
from rawmqtt import AUTH, CONNACK, DISCONNECT, V5, Client

pytestmark = pytest.mark.skipif(is_reference(), reason="Mosquitto 2.0 offers no enhanced authentication")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TOMBO_BUILD", os.path.join(ROOT, "build", "asan"))

METHOD = "SCRAM-SHA-256"
CONTINUE, REAUTH = 0x18, 0x19
NOT_AUTHORIZED, BAD_AUTH_METHOD, PROTOCOL_ERROR = 0x87, 0x8C, 0x82

# alice and "we,ird=name" have SCRAM verifiers; bob only a Mosquitto PBKDF2-SHA512 hash.
SCRAM_USERS = {"alice": "s3cret pencil", "we,ird=name": "pw"}
PBKDF2_USERS = {"bob": "b0b pw"}


# ---------------------------------------------------------------- the client side of SCRAM

def b64(b):
    return base64.b64encode(b).decode()


def saslname(user):
    return user.replace("=", "=3D").replace(",", "=2C")


class Scram:
    """One SCRAM-SHA-256 exchange, client side (RFC 5802 section 3)."""

    def __init__(self, user, password, gs2="n,,"):
        self.user, self.password, self.gs2 = user, password, gs2
        self.cnonce = b64(os.urandom(18))
        self.bare = "n=%s,r=%s" % (saslname(user), self.cnonce)

    def first(self):
        return (self.gs2 + self.bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.cnonce) and len(attrs["r"]) > len(self.cnonce), server_first
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        without_proof = "c=%s,r=%s" % (b64(self.gs2.encode()), attrs["r"])
        auth_message = ",".join([self.bare, server_first, without_proof]).encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.expected_v = "v=" + b64(hmac.new(server_key, auth_message, hashlib.sha256).digest())
        return ("%s,p=%s" % (without_proof, b64(proof))).encode()


def auth_props(data):
    return [("auth_method", METHOD), ("auth_data", data)]


def scram_connect(port, user, password, client_id="scram", **kw):
    """CONNECT with SCRAM; returns (client, scram, the AUTH 0x18 the broker answered)."""
    c = Client(port)
    s = Scram(user, password)
    c.send(rawmqtt.connect(V5, client_id=client_id, properties=auth_props(s.first()), **kw))
    challenge = c.read_packet()
    return c, s, challenge


def scram_login(port, user, password, client_id="scram"):
    """The whole exchange; returns (client, CONNACK)."""
    c, s, challenge = scram_connect(port, user, password, client_id)
    assert challenge.type == AUTH and challenge.reason == CONTINUE, challenge
    c.send(rawmqtt.auth(CONTINUE, auth_props(s.final(challenge.props["auth_data"]))))
    ack = c.read_packet()
    c.scram = s
    return c, ack


# ---------------------------------------------------------------- the broker

def tombo_passwd():
    exe = os.path.join(BUILD, "src", "tools", "tombo-passwd")
    if not os.path.exists(exe):
        pytest.skip("tombo-passwd not built")
    return exe


@pytest.fixture(scope="module")
def pwfile(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("scram") / "passwd")
    first = True
    for users, hash_type in ((SCRAM_USERS, "scram-sha-256"), (PBKDF2_USERS, "sha512-pbkdf2")):
        for user, pw in users.items():
            subprocess.run([tombo_passwd(), "-H", hash_type] + (["-c"] if first else []) + ["-b", path, user, pw],
                           check=True, timeout=30, stdout=subprocess.DEVNULL)
            first = False
    return path


@pytest.fixture
def scram_broker(make_broker, pwfile):
    return make_broker("allow_anonymous false\npassword_file %s\n" % pwfile)


def test_password_file_entry_format(pwfile):
    """tombo-passwd -H scram-sha-256 writes $SCRAM-SHA-256$ITER$SALT$STOREDKEY$SERVERKEY, with the
    keys RFC 5802 defines for the password (checked here in Python)."""
    line = [l for l in open(pwfile).read().splitlines() if l.startswith("alice:")][0]
    fields = line.split(":", 1)[1].split("$")
    assert fields[:2] == ["", "SCRAM-SHA-256"], line
    iterations, salt, stored, server = int(fields[2]), base64.b64decode(fields[3]), fields[4], fields[5]
    assert iterations == 4096 and len(salt) == 16
    salted = hashlib.pbkdf2_hmac("sha256", SCRAM_USERS["alice"].encode(), salt, iterations)
    assert b64(hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()) == stored
    assert b64(hmac.new(salted, b"Server Key", hashlib.sha256).digest()) == server


def test_scram_correct_password_MQTT_4_12_0_2_and_4_12_0_5(scram_broker):
    """[MQTT-4.12.0-2] the broker asks for more with AUTH 0x18; [MQTT-4.12.0-5] every AUTH and the
    successful CONNACK carry the CONNECT's Authentication Method; the CONNACK's Authentication Data
    is the server-final message, which proves the broker knows the verifier."""
    c, s, challenge = scram_connect(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert challenge.type == AUTH and challenge.reason == CONTINUE
    assert challenge.props["auth_method"] == METHOD
    c.send(rawmqtt.auth(CONTINUE, auth_props(s.final(challenge.props["auth_data"]))))
    ack = c.read_packet()
    assert ack.type == CONNACK and ack.reason == 0, ack
    assert ack.props["auth_method"] == METHOD
    assert ack.props["auth_data"].decode() == s.expected_v
    # A working session: publish to itself.
    c.send(rawmqtt.subscribe(1, [("t/scram", 0)]))
    assert c.read_packet().type == rawmqtt.SUBACK
    c.send(rawmqtt.publish("t/scram", b"hi"))
    assert c.read_packet().payload == b"hi"
    c.close()


def test_scram_escaped_user_name(scram_broker):
    """A user name with ',' and '=' travels as =2C / =3D (RFC 5802 section 5.1)."""
    c, ack = scram_login(scram_broker.port, "we,ird=name", "pw")
    assert ack.type == CONNACK and ack.reason == 0 and ack.props["auth_data"].decode() == c.scram.expected_v
    c.close()


def test_scram_wrong_password_MQTT_4_12_0_4(scram_broker):
    """[MQTT-4.12.0-4] the server rejects the authentication with a CONNACK of 0x80 or above and
    closes the connection: 0x87 Not authorized, as for every refused login."""
    c, ack = scram_login(scram_broker.port, "alice", "wrong")
    assert ack.type == CONNACK and ack.reason == NOT_AUTHORIZED, ack
    assert "auth_data" not in ack.props
    c.expect_closed()


@pytest.mark.parametrize("user", ["nobody", "bob"])
def test_scram_unknown_user_gets_a_decoy_challenge_MQTT_4_12_0_4(scram_broker, user):
    """An unknown user (or one without a SCRAM entry) is answered like a known one -- a salt that is
    the same on every attempt, the usual count -- and fails only at the proof (RFC 5802 section 9),
    so the exchange does not tell which names exist."""
    firsts = []
    for _ in range(2):
        c, s, challenge = scram_connect(scram_broker.port, user, "whatever")
        assert challenge.type == AUTH and challenge.reason == CONTINUE
        attrs = dict(kv.split("=", 1) for kv in challenge.props["auth_data"].decode().split(","))
        firsts.append((attrs["s"], attrs["i"]))
        c.send(rawmqtt.auth(CONTINUE, auth_props(s.final(challenge.props["auth_data"]))))
        ack = c.read_packet()
        assert ack.type == CONNACK and ack.reason == NOT_AUTHORIZED
        c.expect_closed()
    assert firsts[0] == firsts[1] and firsts[0][1] == "4096"


def test_unknown_method_is_bad_authentication_method_MQTT_4_12_0_1(scram_broker):
    """[MQTT-4.12.0-1] a method the server does not support: CONNACK 0x8C and close."""
    c = Client(scram_broker.port)
    c.send(rawmqtt.connect(V5, client_id="m", properties=[("auth_method", "GS2-KRB5"), ("auth_data", b"x")]))
    ack = c.read_packet()
    assert ack.type == CONNACK and ack.reason == BAD_AUTH_METHOD
    c.expect_closed()


def test_scram_without_password_file_is_bad_authentication_method_MQTT_4_12_0_1(make_broker):
    """No password file, no store of SCRAM verifiers: SCRAM-SHA-256 is not offered (0x8C)."""
    b = make_broker("allow_anonymous true\n")
    c, s, ack = scram_connect(b.port, "alice", "x")
    assert ack.type == CONNACK and ack.reason == BAD_AUTH_METHOD
    c.expect_closed()


@pytest.mark.parametrize("first", [b"p=tls-unique,,n=alice,r=abc", b"x,,n=alice,r=abc", b"n,n=alice,r=abc",
                                   b"n,a=mallory,n=alice,r=abc", b"n,,m=ext,n=alice,r=abc", b"n,,n=alice",
                                   b"n,,n=al=ice,r=abc", b""])
def test_malformed_client_first_refused_MQTT_4_12_0_4(scram_broker, first):
    """A bad GS2 header (channel binding asked for, an unknown flag, a missing ','), an authzid
    other than the user, a mandatory extension, a missing nonce, a bad escape, no data: CONNACK
    0x87 at once, no AUTH, and the connection closes."""
    c = Client(scram_broker.port)
    c.send(rawmqtt.connect(V5, client_id="bad", properties=auth_props(first)))
    ack = c.read_packet()
    assert ack.type == CONNACK and ack.reason == NOT_AUTHORIZED, ack
    c.expect_closed()


def test_plain_password_still_works_for_a_scram_user(scram_broker):
    """The same entry checks a plain CONNECT password (PBKDF2-HMAC-SHA256 on the auth thread): the
    user logs in both ways; a wrong plain password is refused. Mosquitto-hashed users are unchanged."""
    for version in (rawmqtt.V311, V5):
        c = Client(scram_broker.port, version=version)
        assert c.connect(version, client_id="plain", username="alice", password=SCRAM_USERS["alice"]).reason == 0
        c.close()
        c = Client(scram_broker.port, version=version)
        assert c.connect(version, client_id="plain", username="alice", password="nope").reason != 0
        c.close()
    c = Client(scram_broker.port)
    assert c.connect(V5, client_id="bob", username="bob", password=PBKDF2_USERS["bob"]).reason == 0
    c.close()


def test_connect_user_name_must_be_the_scram_user(scram_broker):
    c, s, ack = scram_connect(scram_broker.port, "alice", SCRAM_USERS["alice"], username="bob")
    assert ack.type == CONNACK and ack.reason == NOT_AUTHORIZED
    c.expect_closed()


def test_other_packet_during_authentication_is_a_protocol_error_MQTT_3_1_2_30(scram_broker):
    """[MQTT-3.1.2-30] after a CONNECT with an Authentication Method the client sends only AUTH or
    DISCONNECT until the CONNACK: a PUBLISH instead is a Protocol Error (CONNACK 0x82)."""
    c, s, challenge = scram_connect(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert challenge.type == AUTH
    c.send(rawmqtt.publish("t", b"x"))
    ack = c.read_packet()
    assert ack.type == CONNACK and ack.reason == PROTOCOL_ERROR
    c.expect_closed()


def test_auth_with_another_method_is_a_protocol_error_MQTT_4_12_0_5(scram_broker):
    c, s, challenge = scram_connect(scram_broker.port, "alice", SCRAM_USERS["alice"])
    c.send(rawmqtt.auth(CONTINUE, [("auth_method", "SCRAM-SHA-1"), ("auth_data", b"x")]))
    ack = c.read_packet()
    assert ack.type == CONNACK and ack.reason == PROTOCOL_ERROR
    c.expect_closed()


def test_auth_without_method_in_connect_is_a_protocol_error_MQTT_4_12_0_7(scram_broker):
    """[MQTT-4.12.0-7] a client that gave no Authentication Method in CONNECT must not send AUTH;
    [MQTT-4.12.0-6] the server sent no AUTH and no method in its CONNACK."""
    c = Client(scram_broker.port)
    ack = c.connect(V5, client_id="plain", username="alice", password=SCRAM_USERS["alice"])
    assert ack.reason == 0 and "auth_method" not in ack.props
    c.send(rawmqtt.auth(REAUTH, auth_props(Scram("alice", SCRAM_USERS["alice"]).first())))
    c.expect_disconnect(PROTOCOL_ERROR)


def reauth(c, user, password):
    s = Scram(user, password)
    c.send(rawmqtt.auth(REAUTH, auth_props(s.first())))
    challenge = c.read_packet()
    assert challenge.type == AUTH and challenge.reason == CONTINUE, challenge
    assert challenge.props["auth_method"] == METHOD
    c.send(rawmqtt.auth(CONTINUE, auth_props(s.final(challenge.props["auth_data"]))))
    return s, c.read_packet()


def test_reauthentication_ok_MQTT_4_12_1_1(scram_broker):
    """[MQTT-4.12.1-1] AUTH 0x19 with the same method starts a re-authentication; it ends with
    AUTH 0x00 carrying the server-final message, and the connection goes on (twice)."""
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    for _ in range(2):
        s, done = reauth(c, "alice", SCRAM_USERS["alice"])
        assert done.type == AUTH and done.reason == 0, done
        assert done.props["auth_method"] == METHOD and done.props["auth_data"].decode() == s.expected_v
    c.send(rawmqtt.pingreq())
    assert c.read_packet().type == rawmqtt.PINGRESP
    c.close()


def test_reauthentication_wrong_password_disconnects_MQTT_4_12_1_2(scram_broker):
    """[MQTT-4.12.1-2] a failed re-authentication: DISCONNECT 0x87 Not authorized and close."""
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    s, done = reauth(c, "alice", "wrong")
    assert done.type == DISCONNECT and done.reason == NOT_AUTHORIZED, done
    c.expect_closed()


def test_reauthentication_as_another_user_disconnects_MQTT_4_12_1_2(scram_broker):
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    c.send(rawmqtt.auth(REAUTH, auth_props(Scram("we,ird=name", "pw").first())))
    c.expect_disconnect(NOT_AUTHORIZED)


def test_reauthentication_with_another_method_is_a_protocol_error_MQTT_4_12_1_1(scram_broker):
    """[MQTT-4.12.1-1] the client MUST use the method it authenticated with."""
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    c.send(rawmqtt.auth(REAUTH, [("auth_method", "SCRAM-SHA-512"), ("auth_data", b"n,,n=alice,r=abc")]))
    c.expect_disconnect(PROTOCOL_ERROR)


def test_continue_without_exchange_is_a_protocol_error_MQTT_3_15_2_1(scram_broker):
    """An AUTH 0x18 when no exchange is going on answers nothing the server asked: Protocol Error."""
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    c.send(rawmqtt.auth(CONTINUE, auth_props(b"c=biws,r=x,p=AAAA")))
    c.expect_disconnect(PROTOCOL_ERROR)


def test_auth_success_reason_from_client_is_a_protocol_error_MQTT_3_15_2_1(scram_broker):
    """[MQTT-3.15.2-1] 0x00 Success is the server's AUTH reason code, not the client's."""
    c, ack = scram_login(scram_broker.port, "alice", SCRAM_USERS["alice"])
    assert ack.reason == 0
    c.send(rawmqtt.auth(0x00, auth_props(b"x")))
    c.expect_disconnect(PROTOCOL_ERROR)


def test_scram_still_offered_beside_a_plugin_method(make_broker, pwfile):
    """A plugin offering its own method (MOSQ_EVT_EXT_AUTH_START, tests/broker/test_plugin.py)
    answers MOSQ_ERR_NOT_SUPPORTED to SCRAM-SHA-256: tombo's own SCRAM then takes it
    [MQTT-4.12.0-1]. The plugin is asked first, as Mosquitto asks its plugins."""
    plugin = os.path.join(BUILD, "tests", "broker", "plugins", "tombo_test_plugin.so")
    if not os.path.exists(plugin):
        pytest.skip("test plugin not built")
    b = make_broker("allow_anonymous false\npassword_file %s\nplugin %s\nplugin_opt_ext_auth TEST-CHAL\n"
                    % (pwfile, plugin))
    c, ack = scram_login(b.port, "alice", SCRAM_USERS["alice"])
    assert ack.type == CONNACK and ack.reason == 0, ack
    assert ack.props["auth_method"] == METHOD and ack.props["auth_data"].decode() == c.scram.expected_v
    c.close()
    assert "test plugin: ext auth start method SCRAM-SHA-256" in b.log()
