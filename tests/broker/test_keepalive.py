"""Keep alive: a silent client is disconnected after 1.5x its keep alive; PINGREQ keeps it alive;
max_keepalive and Server Keep Alive (5.0)."""
import time

import pytest

from clients import CONNACK, DISCONNECT, PINGREQ, PINGRESP, Raw, connect_packet, packet, unique_id


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_1_2_22_silent_client_disconnected_not_before_one_and_a_half_keepalive(broker, version):
    """[MQTT-3.1.2-22] (5.0) / [MQTT-3.1.2-24] (3.1.1) If the Server receives no Control Packet within
    one and a half times the Keep Alive, it MUST close the Network Connection (and not before).
    On 5.0 a DISCONNECT, if sent, carries 0x8D (Keep Alive timeout)."""
    r = Raw(broker, version=version)
    t0 = time.time()
    r.connect(unique_id("ka"), keepalive=2)
    got = r.closed(timeout=12)
    elapsed = time.time() - t0
    assert elapsed >= 2.9, "closed after %.2fs, before 1.5 x keep alive" % elapsed
    assert all(p.type == DISCONNECT for p in got), got
    if version == 5 and got:
        assert got[-1].reason == 0x8D


# Mosquitto 2.0.11 checks keep alives only every few seconds (a 2 s keep alive closes after ~5 s);
# [MQTT-3.1.2-22] asks for the close at 1.5 x Keep Alive, which tombo's timer wheel does.
@pytest.mark.reference_differs
@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_3_1_2_22_silent_client_disconnected_promptly(broker, version):
    """[MQTT-3.1.2-22] / [MQTT-3.1.2-24] (3.1.1): a client silent for 1.5 x its Keep Alive of 1 s is
    disconnected at about 1.5 s (at most 1.5 s late: timer granularity, sanitizer builds)."""
    r = Raw(broker, version=version)
    t0 = time.time()
    r.connect(unique_id("ka"), keepalive=1)
    r.closed(timeout=5)
    elapsed = time.time() - t0
    assert 1.4 <= elapsed <= 3.0, "closed after %.2fs" % elapsed


def test_mqtt_3_1_2_20_pingreq_keeps_connection_alive(broker):
    """[MQTT-3.1.2-20] [MQTT-3.12.4-1] A client that sends PINGREQ within its keep alive stays
    connected well past 1.5x keep alive, and each PINGREQ is answered."""
    r = Raw(broker, version=4)
    r.connect(unique_id("ping"), keepalive=1)
    t_end = time.time() + 3.2
    while time.time() < t_end:
        r.send(packet(PINGREQ, 0, b""))
        assert r.recv(2).type == PINGRESP
        time.sleep(0.5)
    r.disconnect()


def test_keepalive_zero_means_no_timeout(broker):
    """[MQTT-3.1.2-22] Keep Alive 0 turns the mechanism off: a silent client is not disconnected."""
    r = Raw(broker, version=4)
    r.connect(unique_id("ka0"), keepalive=0)
    time.sleep(2.0)
    r.send(packet(PINGREQ, 0, b""))
    assert r.recv().type == PINGRESP
    r.disconnect()


def test_mqtt_3_2_2_21_max_keepalive_gives_server_keep_alive(make_broker):
    """[MQTT-3.2.2-21] [MQTT-3.2.2-22] max_keepalive 10: a 5.0 client asking for 60 s gets Server Keep
    Alive 10 in CONNACK; one asking for 5 s gets none (its own value is used)."""
    b = make_broker("allow_anonymous true\nmax_keepalive 10\n")
    r = Raw(b, version=5)
    p = r.connect(unique_id(), keepalive=60)
    assert p.prop("server_keep_alive") == 10
    r.disconnect(0)
    r = Raw(b, version=5)
    p = r.connect(unique_id(), keepalive=5)
    assert p.prop("server_keep_alive") in (None, 5)
    r.disconnect(0)


def test_max_keepalive_zero_keepalive_v5_gets_server_keep_alive(make_broker):
    """max_keepalive (mosquitto.conf meaning): a 5.0 client with Keep Alive 0 (none) is told the
    maximum in Server Keep Alive [MQTT-3.2.2-21]."""
    b = make_broker("allow_anonymous true\nmax_keepalive 30\n")
    r = Raw(b, version=5)
    p = r.connect(unique_id(), keepalive=0)
    assert p.prop("server_keep_alive") == 30
    r.disconnect(0)


def test_max_keepalive_0_means_no_limit(make_broker):
    """max_keepalive 0 (accepted by Mosquitto since 2.0.13: "allow clients to set keepalive = 0"):
    no limit, so a 5.0 client gets no Server Keep Alive, whether it asks for none or for 65535 s.
    Debian's Mosquitto 2.0.11 refuses 0, so this runs against tombo only."""
    from conftest import is_reference
    if is_reference():
        pytest.skip("Mosquitto 2.0.11 refuses max_keepalive 0 (accepted since 2.0.13)")
    b = make_broker("allow_anonymous true\nmax_keepalive 0\n")
    for ka in (0, 65535):
        r = Raw(b, version=5)
        p = r.connect(unique_id("mk0"), keepalive=ka)
        assert p.prop("server_keep_alive") is None
        r.disconnect(0)


@pytest.mark.parametrize("value", ["5", "65536", "-1"])
def test_max_keepalive_out_of_range_stops_start_up_with_file_and_line(value):
    """Below 10 (other than 0) Mosquitto refuses max_keepalive ("Do not set below 10 seconds"); so
    does tombo, naming the file and line."""
    from conftest import Broker, is_reference
    b = Broker("allow_anonymous true\nmax_keepalive %s\n" % value)
    rc, log = b.run_until_exit(timeout=20)
    assert rc not in (0, None), log
    if not is_reference():
        assert "%s:3:" % b.conf_path in log and "max_keepalive" in log, log  # line 1 is the listener
