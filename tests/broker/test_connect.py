"""CONNECT / CONNACK on MQTT 3.1, 3.1.1 and 5.0: client identifier rules, session takeover, the second
CONNECT, the session present flag."""
import pytest

from clients import (CONNACK, DISCONNECT, PUBLISH, PahoClient, Raw, V311, V5, connect_packet, flush,
                     unique_id)


def test_mqtt_3_1_3_8_v311_empty_client_id_with_clean_session_0_refused(broker):
    """[MQTT-3.1.3-8] (3.1.1) A zero-byte ClientId with CleanSession 0 gets CONNACK return code 0x02
    (Identifier rejected) and the connection is closed."""
    r = Raw(broker, version=4)
    p = r.connect("", clean=False, expect_reason=None)
    assert p.reason == 0x02
    assert not p.session_present
    r.closed()


def test_mqtt_3_1_3_6_v311_empty_client_id_with_clean_session_1_accepted(broker):
    """[MQTT-3.1.3-6] (3.1.1) A zero-byte ClientId with CleanSession 1 is accepted; the Server
    assigns a unique ClientId."""
    r = Raw(broker, version=4)
    r.connect("", clean=True)
    assert r.subscribe(1, "cid/empty") == [0]
    r.disconnect()


def test_mqtt_3_1_3_7_v5_empty_client_id_gets_assigned_client_identifier(broker):
    """[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] (5.0) A zero-length ClientID is replaced by a
    unique one, returned in the CONNACK's Assigned Client Identifier; two clients get two ids."""
    ids = []
    conns = []
    for _ in range(2):
        r = Raw(broker, version=5)
        p = r.connect("", clean=True)
        cid = p.prop("assigned_client_id")
        assert cid, "no Assigned Client Identifier in CONNACK"
        ids.append(cid)
        conns.append(r)
    assert ids[0] != ids[1]
    for r in conns:
        r.disconnect(0)


def test_mqtt_3_1_3_7_v5_given_client_id_not_reassigned(broker):
    """[MQTT-3.1.3-7] (5.0) Only a zero-length ClientID is assigned: a client that supplies one gets
    no Assigned Client Identifier."""
    r = Raw(broker, version=5)
    p = r.connect(unique_id(), clean=True)
    assert p.prop("assigned_client_id") is None
    r.disconnect(0)


def test_mqtt_3_1_3_5_v31_client_id_up_to_23_characters(broker):
    """MQTT 3.1 (protocol name MQIsdp, level 3): a 23-character client id is accepted, a client can
    subscribe and receive."""
    cid = "abcdefghijABCDEFGHIJ012"
    r = Raw(broker, version=3)
    r.connect(cid, clean=True)
    assert r.subscribe(1, [("v31/t", 1)]) == [1]
    r.publish("v31/t", b"hello", qos=1, pid=2)
    got = {}
    for _ in range(2):
        p = r.recv()
        got[p.type] = p
    assert got[PUBLISH].topic == "v31/t" and got[PUBLISH].payload == b"hello"
    r.disconnect()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_1_3_5_allowed_client_id_characters_and_length(broker, protocol):
    """[MQTT-3.1.3-5] The Server MUST allow ClientIDs of 1 to 23 bytes of [0-9a-zA-Z]."""
    for cid in ["a", "0123456789abcdefghijXYZ"]:
        c = PahoClient(broker, client_id=cid, protocol=protocol)
        c.connect()
        c.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_1_4_3_session_takeover_closes_existing_connection(broker, version):
    """[MQTT-3.1.4-3] (5.0) / [MQTT-3.1.4-2] (3.1.1) The Server MUST close the Network Connection of
    the existing Client with the same ClientID."""
    cid = unique_id("take")
    old = Raw(broker, version=version)
    old.connect(cid)
    new = Raw(broker, version=version)
    new.connect(cid)
    old.closed()
    assert new.subscribe(1, "take/t") == [0]
    new.disconnect()


# Mosquitto 2.0.11 closes the old connection without the DISCONNECT 0x8E that [MQTT-3.1.4-3] names.
@pytest.mark.reference_differs
def test_mqtt_3_1_4_3_v5_session_takeover_sends_disconnect_0x8e(broker):
    """[MQTT-3.1.4-3] (5.0) The Server sends the existing Client a DISCONNECT with Reason Code 0x8E
    (Session taken over) and closes its Network Connection."""
    cid = unique_id("take5")
    old = Raw(broker, version=5)
    old.connect(cid)
    new = Raw(broker, version=5)
    new.connect(cid)
    got = old.closed()
    assert [p.type for p in got] == [DISCONNECT], got
    assert got[0].reason == 0x8E
    assert new.subscribe(1, "take5/t") == [0]
    new.disconnect(0)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqttv311", "mqttv5"])
def test_mqtt_3_1_4_3_takeover_keeps_the_session(broker, protocol):
    """[MQTT-3.1.4-3] [MQTT-3.1.2-5] A takeover with Clean Start 0 resumes the existing Session: its
    subscriptions deliver to the new connection."""
    cid = unique_id("takesess")
    props = None
    if protocol == V5:
        from clients import props as mkprops, PacketTypes
        props = mkprops(PacketTypes.CONNECT, SessionExpiryInterval=60)
    old = PahoClient(broker, client_id=cid, protocol=protocol, clean=False, connect_props=props)
    old.connect()
    old.subscribe("takesess/t", 1)
    new = PahoClient(broker, client_id=cid, protocol=protocol, clean=False, connect_props=props)
    rc, flags, _ = new.connect()
    assert flags["session present"] == 1
    assert old.disconnected.wait(5)
    pub = PahoClient(broker, protocol=protocol)
    pub.connect()
    pub.publish("takesess/t", b"x", 1)
    m = new.get()
    assert (m.topic, m.payload) == ("takesess/t", b"x")
    pub.disconnect()
    new.disconnect()
    old.close()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_1_0_2_second_connect_is_a_protocol_error(broker, version):
    """[MQTT-3.1.0-2] The Server MUST process a second CONNECT packet from a Client as a Protocol
    Error and close the Network Connection (on 5.0 a DISCONNECT, if sent, carries 0x82)."""
    r = Raw(broker, version=version)
    cid = unique_id("twice")
    r.connect(cid)
    r.send(connect_packet(cid, version))
    got = r.closed()
    assert all(p.type == DISCONNECT for p in got), got
    if version == 5 and got:
        assert got[0].reason == 0x82
    # the broker carries on
    other = Raw(broker, version=version)
    other.connect(unique_id())
    other.disconnect()


@pytest.mark.parametrize("version", [3, 4, 5])
def test_mqtt_3_2_2_2_clean_start_gives_session_present_0(broker, version):
    """[MQTT-3.2.2-2] (5.0) / [MQTT-3.2.2-1] (3.1.1) A connection accepted with Clean Start
    (CleanSession) 1 has Session Present 0, even when a session existed."""
    cid = unique_id("sp")[:23]
    props = [(0x11, 60)] if version == 5 else None
    r = Raw(broker, version=version)
    r.connect(cid, clean=False, props=props)
    r.subscribe(1, "sp/t")
    r.disconnect(0 if version == 5 else None)
    r = Raw(broker, version=version)
    p = r.connect(cid, clean=True, props=props)
    assert p.session_present is False
    r.disconnect(0 if version == 5 else None)


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_2_2_3_resumed_session_gives_session_present_1(broker, version):
    """[MQTT-3.2.2-3] (5.0) / [MQTT-3.2.2-2] (3.1.1) Clean Start 0 with stored Session State gives
    Session Present 1; without stored state, Session Present 0 [MQTT-3.1.2-6]."""
    cid = unique_id("sp1")
    props = [(0x11, 60)] if version == 5 else None
    r = Raw(broker, version=version)
    p = r.connect(cid, clean=False, props=props)
    assert p.session_present is False
    r.subscribe(1, "sp1/t")
    r.disconnect(0 if version == 5 else None)
    r = Raw(broker, version=version)
    p = r.connect(cid, clean=False, props=props)
    assert p.session_present is True
    r.disconnect(0 if version == 5 else None)


def test_mqtt_3_2_0_2_only_one_connack_and_pingresp(broker):
    """[MQTT-3.12.4-1] The Server answers PINGREQ with PINGRESP; [MQTT-3.2.0-2] no second CONNACK."""
    from clients import PINGRESP, packet, PINGREQ
    r = Raw(broker, version=4)
    r.connect(unique_id())
    r.send(packet(PINGREQ, 0, b""))
    assert r.recv().type == PINGRESP
    r.disconnect()
