#!/usr/bin/python3
"""gen_corpus.py -- write the seed corpus for fuzz_decode (small valid packets of every type, MQTT 3.1,
3.1.1 and 5.0, with properties) and fuzz_topic (filter NUL name pairs). Run from anywhere:
    /usr/bin/python3 fuzz/gen_corpus.py
Files are named by content so re-running is idempotent."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def p8(i, v): return bytes([i, v])
def p16(i, v): return bytes([i]) + struct.pack(">H", v)
def p32(i, v): return bytes([i]) + struct.pack(">I", v)
def pstr(i, v): return bytes([i]) + s(v)
def pvar(i, v): return bytes([i]) + varint(v)
def puser(k, v): return b"\x26" + s(k) + s(v)


def connect(level, flags, keepalive, cid, prop=b"", will=None, user=None, pw=None):
    name = s("MQIsdp") if level == 3 else s("MQTT")
    body = name + bytes([level, flags]) + struct.pack(">H", keepalive)
    if level == 5:
        body += prop or b"\x00"
    body += s(cid)
    if will:
        wprops, topic, payload = will
        if level == 5:
            body += wprops or b"\x00"
        body += s(topic) + s(payload)
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body)


packets = [
    connect(4, 0x02, 60, "paho"),
    connect(3, 0x02, 10, "mosq-31"),
    connect(5, 0x02, 60, "c5", props(p32(0x11, 3600), p16(0x21, 20), p32(0x27, 1 << 20), p16(0x22, 10),
                                     p8(0x19, 1), p8(0x17, 0), puser("k", "v"))),
    connect(4, 0xEE, 30, "will", will=(None, "w/t", "bye"), user="u", pw="p"),
    connect(5, 0xF6, 30, "will5", props(pstr(0x15, "SCRAM"), pstr(0x16, b"\x01")),
            will=(props(p32(0x18, 5), p8(0x01, 1), p32(0x02, 9), pstr(0x03, "text"), pstr(0x08, "r/t"),
                        pstr(0x09, b"\x00\x01"), puser("a", "b")), "w/5", "gone"), user="u", pw="p"),
    connect(5, 0x42, 0, "", pw="only-pw"),
    pkt(0x20, b"\x00\x00"), pkt(0x20, b"\x01\x00"), pkt(0x20, b"\x00\x05"),
    pkt(0x20, b"\x00\x00" + props(pstr(0x12, "auto"), p16(0x13, 30), p8(0x24, 1), p8(0x25, 0), p8(0x28, 1),
                                  p8(0x29, 1), p8(0x2A, 0), p16(0x21, 100), p16(0x22, 5), p32(0x27, 1000),
                                  pstr(0x1A, "ri"), pstr(0x1C, "srv"), pstr(0x1F, "ok"), p32(0x11, 0))),
    pkt(0x30, s("test/0") + b"2026/11/24 19:00:00"),
    pkt(0x32, s("test/1") + b"\x00\x01hello"),
    pkt(0x3D, s("a/b") + b"\x12\x34" + b"retained dup"),
    pkt(0x30, s("t") + b"\x00" + b"v5 no props"),
    pkt(0x32, s("t/5") + b"\x00\x07" + props(p8(0x01, 1), p32(0x02, 60), pstr(0x03, "text/plain"),
                                             pstr(0x08, "reply"), pstr(0x09, b"\xff"), puser("k", "v"),
                                             p16(0x23, 1)) + "utf8 \u00e9".encode()),
    pkt(0x30, s("") + props(p16(0x23, 2)) + b"aliased"),
    pkt(0x30, s("s/1") + props(pvar(0x0B, 1), pvar(0x0B, 300)) + b"from server"),
    pkt(0x40, b"\x00\x01"), pkt(0x50, b"\x00\x02"), pkt(0x62, b"\x00\x03"), pkt(0x70, b"\x00\x04"),
    pkt(0x40, b"\x00\x01\x10"), pkt(0x50, b"\x00\x02\x80" + props(pstr(0x1F, "no"))),
    pkt(0x62, b"\x00\x03\x92\x00"), pkt(0x70, b"\x00\x04\x00" + props(puser("x", "y"))),
    pkt(0x82, b"\x00\x01" + s("test/+") + b"\x00"),
    pkt(0x82, b"\x00\x02" + s("a/#") + b"\x01" + s("+/b") + b"\x02"),
    pkt(0x82, b"\x00\x03" + props(pvar(0x0B, 7), puser("k", "v")) + s("$share/g/x") + b"\x2a" + s("#") + b"\x1d"),
    pkt(0x82, b"\x00\x04\x00" + s("x/y") + b"\x01"),
    pkt(0x90, b"\x00\x01\x00"), pkt(0x90, b"\x00\x02\x01\x80"),
    pkt(0x90, b"\x00\x03" + props(pstr(0x1F, "r")) + b"\x00\x8f\xa2"),
    pkt(0xA2, b"\x00\x05" + s("a/b") + s("c/#")),
    pkt(0xA2, b"\x00\x06\x00" + s("x")),
    pkt(0xB0, b"\x00\x05"), pkt(0xB0, b"\x00\x06\x00\x00\x11"),
    pkt(0xC0, b""), pkt(0xD0, b""), pkt(0xE0, b""), pkt(0xE0, b"\x04"),
    pkt(0xE0, b"\x8e" + props(pstr(0x1C, "other"), pstr(0x1F, "taken over"))),
    pkt(0xE0, b"\x00" + props(p32(0x11, 10))),
    pkt(0xF0, b""), pkt(0xF0, b"\x18" + props(pstr(0x15, "SCRAM"), pstr(0x16, b"\x00\x01"))),
]
# Two packets back to back, as one read returns them.
packets.append(packets[0] + packets[10])

topics = [b"test/+\x00test/0", b"#\x00$SYS/uptime", b"sport/#\x00sport", b"+/+\x00/finance",
          b"$share/g/a/+\x00a/b", b"a/+/c\x00a//c", b"$SYS/#\x00$SYS/x", b"a\xc3\xa9/#\x00a\xc3\xa9"]


def write(dirname, items):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for b in items:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)


write("decode", packets)
write("topic", topics)
