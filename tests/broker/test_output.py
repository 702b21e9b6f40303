"""A connection's output: large encodings are shared by reference among receivers and written with
sendmsg (src/broker/outq.c), small ones copied; either way every receiver gets every byte, with its
own packet identifier, and nothing else. Marked tsan: run against the ThreadSanitizer build too."""
import hashlib
import threading

import pytest

import rawmqtt

pytestmark = pytest.mark.tsan


@pytest.mark.parametrize("persistence", [False, True])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_large_payloads_reach_many_receivers_intact_MQTT_4_3(make_broker, tmp_path, qos, persistence):
    """[MQTT-4.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1] 30 receivers (MQTT 3.1.1 and 5.0 mixed) of 40
    messages from 100 B to 200 KB at QoS 0/1/2, with and without persistence (whose holds cut the
    output in the middle of a shared encoding): each receiver gets every payload byte for byte, in
    order, and each QoS 1/2 delivery carries a packet identifier of its own."""
    conf = "allow_anonymous true\nmax_inflight_messages 5\n"
    if persistence:
        conf += "persistence true\npersistence_location %s/\n" % tmp_path
    b = make_broker(conf)
    sizes = [100, 1023, 1024, 5000, 65000, 200000] * 6 + [3, 70000, 1500, 131072]
    payloads = [hashlib.sha256(b"%d" % i).digest() * (n // 32) + b"x" * (n % 32) for i, n in enumerate(sizes)]
    subs = []
    for k in range(30):
        v = rawmqtt.V5 if k % 2 else rawmqtt.V311
        c = rawmqtt.connected(b.port, v, "out-sub-%d" % k, **({"clean": False} if persistence and v != rawmqtt.V5 else {}))
        c.timeout = 30
        c.subscribe([("out/t", qos)])
        subs.append(c)
    got = [[] for _ in subs]
    errors = []

    def reader(k):
        try:
            c = subs[k]
            while len(got[k]) < len(payloads):
                p = c.read_packet()
                if p.type != rawmqtt.PUBLISH:
                    continue
                got[k].append(p.payload)
                if qos == 1:
                    c.send(rawmqtt.ack(rawmqtt.PUBACK, p.packet_id, version=c.version))
                elif qos == 2:
                    c.send(rawmqtt.ack(rawmqtt.PUBREC, p.packet_id, version=c.version))
                    while True:   # PUBREL for this id before the next PUBLISH of a window of 5
                        r = c.read_packet()
                        if r.type == rawmqtt.PUBREL:
                            c.send(rawmqtt.ack(rawmqtt.PUBCOMP, r.packet_id, version=c.version))
                            break
                        got[k].append(r.payload)
                        c.send(rawmqtt.ack(rawmqtt.PUBREC, r.packet_id, version=c.version))
        except Exception as e:  # noqa: B902 - reported below
            errors.append(e)
    ts = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(len(subs))]
    for t in ts:
        t.start()
    pub = rawmqtt.connected(b.port, rawmqtt.V311, "out-pub")
    pub.timeout = 30
    for p in payloads:
        pub.publish("out/t", p, qos=qos)
    for t in ts:
        t.join(90)
    assert not errors, errors[0]
    for k in range(len(subs)):
        assert len(got[k]) == len(payloads), "receiver %d got %d of %d" % (k, len(got[k]), len(payloads))
        assert got[k] == payloads, "receiver %d: payloads differ" % k
