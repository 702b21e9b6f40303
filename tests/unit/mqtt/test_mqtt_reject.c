/* test_mqtt_reject.c -- every packet the decoder must refuse, with the exact reason code, each case
 * named after the spec statement it proves. Packets are written as hex so the bytes are explicit. */
#include <ctype.h>

#include "mqtt/packet.h"
#include "unit.h"

#define C MQTT_FROM_CLIENT
#define S MQTT_FROM_SERVER
#define MAL MQTT_RC_MALFORMED_PACKET
#define PROTO MQTT_RC_PROTOCOL_ERROR
#define OK MQTT_RC_SUCCESS

static const struct {
    const char *name;
    uint8_t version;
    enum mqtt_side side;
    uint8_t rc;
    const char *hex; /* first byte and body: the remaining length is filled in */
} tab[] = {
    /* ---- fixed header ---- */
    {"[MQTT-2.1.3-1] reserved packet type 0", 4, C, MAL, "00"},
    {"[MQTT-2.1.3-1] PUBACK flags 0001", 4, C, MAL, "41 00 01"},
    {"[MQTT-2.1.3-1] PUBREL flags 0000", 4, C, MAL, "60 00 01"},
    {"[MQTT-2.1.3-1] PUBREL flags 0010", 4, C, OK, "62 00 01"},
    {"[MQTT-2.1.3-1] SUBSCRIBE flags 0000", 4, C, MAL, "80 00 01 00 01 61 00"},
    {"[MQTT-2.1.3-1] UNSUBSCRIBE flags 0011", 5, C, MAL, "A3 00 01 00 00 01 61"},
    {"[MQTT-2.1.3-1] PINGREQ flags 1000", 4, C, MAL, "C8"},
    {"[MQTT-2.1.3-1] DISCONNECT flags 0001", 5, C, MAL, "E1"},
    {"[MQTT-2.1.3-1] CONNECT flags 0010 (3.1.1)", 0, C, MAL, "12 00 04 4D 51 54 54 04 02 00 3C 00 01 63"},
    {"3.1 SUBSCRIBE with DUP set is fine", 3, C, OK, "8A 00 01 00 01 61 00"},
    {"PINGREQ with a body", 4, C, MAL, "C0 00"},
    {"PINGRESP with a body", 5, S, MAL, "D0 00"},
    {"3.1.1 DISCONNECT with a body", 4, C, MAL, "E0 00"},
    /* ---- who may send what ---- */
    {"CONNACK from a client", 5, C, PROTO, "20 00 00 00"},
    {"SUBACK from a client", 4, C, PROTO, "90 00 01 00"},
    {"UNSUBACK from a client", 4, C, PROTO, "B0 00 01"},
    {"PINGRESP from a client", 4, C, PROTO, "D0"},
    {"CONNECT from a server", 4, S, PROTO, "10 00 04 4D 51 54 54 04 02 00 3C 00 01 63"},
    {"SUBSCRIBE from a server", 4, S, PROTO, "82 00 01 00 01 61 00"},
    {"UNSUBSCRIBE from a server", 4, S, PROTO, "A2 00 01 00 01 61"},
    {"PINGREQ from a server", 4, S, PROTO, "C0"},
    {"3.1.1 DISCONNECT from a server", 4, S, PROTO, "E0"},
    {"5.0 DISCONNECT from a server", 5, S, OK, "E0"},
    {"AUTH on 3.1.1 (reserved type)", 4, C, PROTO, "F0"},
    {"AUTH on 5.0 (short form, Success) from a server", 5, S, OK, "F0"},
    {"AUTH Success from a client (table 3-13: sent by the server)", 5, C, PROTO, "F0"},
    {"AUTH Re-authenticate from a server (table 3-13: sent by the client)", 5, S, PROTO, "F0 19 00"},
    /* ---- CONNECT ---- */
    {"[MQTT-3.1.2-1] protocol name MQTX", 0, C, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
     "10 00 04 4D 51 54 58 04 02 00 3C 00 01 63"},
    {"[MQTT-3.1.2-2] MQTT level 6", 0, C, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
     "10 00 04 4D 51 54 54 06 02 00 3C 00 01 63"},
    {"[MQTT-3.1.2-2] MQTT level 3", 0, C, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
     "10 00 04 4D 51 54 54 03 02 00 3C 00 01 63"},
    {"[MQTT-3.1.2-2] MQIsdp level 4", 0, C, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
     "10 00 06 4D 51 49 73 64 70 04 02 00 3C 00 01 63"},
    {"[MQTT-3.1.2-2] level 0x86 (bridge bit on an unknown level)", 0, C, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
     "10 00 04 4D 51 54 54 86 02 00 3C 00 01 63"},
    {"bridge level 0x84 accepted", 0, C, OK, "10 00 04 4D 51 54 54 84 02 00 3C 00 01 63"},
    {"CONNECT truncated protocol name", 0, C, MAL, "10 00 04 4D"},
    {"[MQTT-3.1.2-3] reserved connect flag", 0, C, MAL, "10 00 04 4D 51 54 54 04 03 00 3C 00 01 63"},
    {"[MQTT-3.1.2-3] 5.0 reserved connect flag", 0, C, MAL, "10 00 04 4D 51 54 54 05 03 00 3C 00 00 01 63"},
    {"[MQTT-3.1.2-11] will flag 0 with will QoS 1", 0, C, MAL, "10 00 04 4D 51 54 54 04 0A 00 3C 00 01 63"},
    {"[MQTT-3.1.2-13] will flag 0 with will retain", 0, C, MAL, "10 00 04 4D 51 54 54 04 22 00 3C 00 01 63"},
    {"[MQTT-3.1.2-12] will QoS 3", 0, C, MAL, "10 00 04 4D 51 54 54 04 1E 00 3C 00 01 63 00 01 74 00 01 78"},
    {"[MQTT-3.1.2-22] 3.1.1 password without user name", 0, C, MAL,
     "10 00 04 4D 51 54 54 04 42 00 3C 00 01 63 00 02 70 77"},
    {"[MQTT-3.1.2-22] 3.1 password without user name", 0, C, MAL,
     "10 00 06 4D 51 49 73 64 70 03 42 00 3C 00 01 63 00 02 70 77"},
    {"5.0 password without user name is allowed", 0, C, OK,
     "10 00 04 4D 51 54 54 05 42 00 3C 00 00 01 63 00 02 70 77"},
    {"[MQTT-3.1.3-4] client id ill-formed UTF-8", 0, C, MAL, "10 00 04 4D 51 54 54 04 02 00 3C 00 01 FF"},
    {"[MQTT-1.5.4-2] client id with U+0000", 0, C, MAL, "10 00 04 4D 51 54 54 04 02 00 3C 00 02 61 00"},
    {"client id longer than the packet", 0, C, MAL, "10 00 04 4D 51 54 54 04 02 00 3C 00 05 63"},
    {"CONNECT trailing bytes", 0, C, MAL, "10 00 04 4D 51 54 54 04 02 00 3C 00 01 63 00"},
    {"CONNECT missing password", 0, C, MAL, "10 00 04 4D 51 54 54 04 C2 00 3C 00 01 63 00 01 75"},
    {"[MQTT-3.1.3-12] user name ill-formed", 0, C, MAL, "10 00 04 4D 51 54 54 04 82 00 3C 00 01 63 00 01 C3"},
    {"will topic with a wildcard", 0, C, MQTT_RC_TOPIC_NAME_INVALID,
     "10 00 04 4D 51 54 54 04 06 00 3C 00 01 63 00 01 23 00 01 78"},
    {"will topic empty", 0, C, MQTT_RC_TOPIC_NAME_INVALID,
     "10 00 04 4D 51 54 54 04 06 00 3C 00 01 63 00 00 00 01 78"},
    {"will topic ill-formed", 0, C, MAL, "10 00 04 4D 51 54 54 04 06 00 3C 00 01 63 00 01 80 00 01 78"},
    {"will payload missing", 0, C, MAL, "10 00 04 4D 51 54 54 04 06 00 3C 00 01 63 00 01 74"},
    {"5.0 will payload not UTF-8 with payload format 1", 0, C, MQTT_RC_PAYLOAD_FORMAT_INVALID,
     "10 00 04 4D 51 54 54 05 06 00 3C 00 00 01 63 02 01 01 00 01 74 00 01 FF"},
    {"5.0 will properties: Topic Alias not allowed (2.2.2.2)", 0, C, MAL,
     "10 00 04 4D 51 54 54 05 06 00 3C 00 00 01 63 03 23 00 01 00 01 74 00 01 78"},
    {"5.0 CONNECT property not allowed (2.2.2.2): Will Delay", 0, C, MAL,
     "10 00 04 4D 51 54 54 05 02 00 3C 05 18 00 00 00 01 00 01 63"},
    {"5.0 CONNECT Receive Maximum 0", 0, C, PROTO, "10 00 04 4D 51 54 54 05 02 00 3C 03 21 00 00 00 01 63"},
    {"5.0 CONNECT Maximum Packet Size 0", 0, C, PROTO,
     "10 00 04 4D 51 54 54 05 02 00 3C 05 27 00 00 00 00 00 01 63"},
    {"5.0 CONNECT Request Problem Information 2", 0, C, PROTO,
     "10 00 04 4D 51 54 54 05 02 00 3C 02 17 02 00 01 63"},
    {"5.0 CONNECT Request Response Information 2", 0, C, PROTO,
     "10 00 04 4D 51 54 54 05 02 00 3C 02 19 02 00 01 63"},
    {"5.0 CONNECT Session Expiry twice", 0, C, PROTO,
     "10 00 04 4D 51 54 54 05 02 00 3C 0A 11 00 00 00 01 11 00 00 00 02 00 01 63"},
    {"5.0 CONNECT Authentication Data without Method", 0, C, PROTO,
     "10 00 04 4D 51 54 54 05 02 00 3C 03 16 00 00 00 01 63"},
    {"5.0 CONNECT unknown property 0x7F", 0, C, MAL, "10 00 04 4D 51 54 54 05 02 00 3C 02 7F 00 00 01 63"},
    {"5.0 CONNECT property length past the packet", 0, C, MAL,
     "10 00 04 4D 51 54 54 05 02 00 3C 09 00 01 63"},
    {"5.0 CONNECT property value truncated", 0, C, MAL, "10 00 04 4D 51 54 54 05 02 00 3C 02 11 00"},
    {"5.0 CONNECT two user properties are fine", 0, C, OK,
     "10 00 04 4D 51 54 54 05 02 00 3C 0E 26 00 01 6B 00 01 76 26 00 01 6B 00 01 77 00 01 63"},
    {"5.0 user property key ill-formed", 0, C, MAL,
     "10 00 04 4D 51 54 54 05 02 00 3C 07 26 00 01 C0 00 01 76 00 01 63"},
    {"5.0 user property with control characters is fine (wellformed only)", 0, C, OK,
     "10 00 04 4D 51 54 54 05 02 00 3C 07 26 00 01 01 00 01 0A 00 01 63"},
    {"5.0 non-minimal property length", 0, C, MAL, "10 00 04 4D 51 54 54 05 02 00 3C 80 00 00 01 63"},
    /* ---- CONNACK ---- */
    {"[MQTT-3.2.2-1] CONNACK reserved ack flags", 4, S, MAL, "20 02 00"},
    {"CONNACK 3.1.1 return code 6", 4, S, PROTO, "20 00 06"},
    {"[MQTT-3.2.2-4] 3.1.1 session present with a refusal", 4, S, PROTO, "20 01 05"},
    {"[MQTT-3.2.2-6] 5.0 session present with a refusal", 5, S, PROTO, "20 01 87 00"},
    {"5.0 CONNACK reason 0x8B not allowed", 5, S, PROTO, "20 00 8B 00"},
    {"5.0 CONNACK without property length", 5, S, MAL, "20 00 00"},
    {"3.1.1 CONNACK too long", 4, S, MAL, "20 00 00 00"},
    {"5.0 CONNACK Maximum QoS 2", 5, S, PROTO, "20 00 00 02 24 02"},
    {"5.0 CONNACK Retain Available 2", 5, S, PROTO, "20 00 00 02 25 02"},
    {"5.0 CONNACK Wildcard Subscription Available 2", 5, S, PROTO, "20 00 00 02 28 02"},
    {"5.0 CONNACK Subscription Identifiers Available 2", 5, S, PROTO, "20 00 00 02 29 02"},
    {"5.0 CONNACK Shared Subscription Available 2", 5, S, PROTO, "20 00 00 02 2A 02"},
    {"5.0 CONNACK Receive Maximum 0", 5, S, PROTO, "20 00 00 03 21 00 00"},
    {"5.0 CONNACK Request Problem Information not allowed (2.2.2.2)", 5, S, MAL, "20 00 00 02 17 01"},
    /* ---- PUBLISH ---- */
    {"[MQTT-3.3.1-4] QoS 3", 4, C, MAL, "36 00 01 61 00 01"},
    {"[MQTT-3.3.1-2] DUP with QoS 0", 4, C, PROTO, "38 00 01 61"},
    {"[MQTT-3.3.1-2] 5.0 DUP with QoS 0", 5, C, PROTO, "38 00 01 61 00"},
    {"3.1 DUP with QoS 0 tolerated", 3, C, OK, "38 00 01 61"},
    {"[MQTT-2.2.1-3] QoS 1 packet id 0", 4, C, PROTO, "32 00 01 61 00 00"},
    {"[MQTT-2.2.1-3] QoS 2 packet id 0", 5, C, PROTO, "34 00 01 61 00 00 00"},
    {"QoS 1 packet id missing", 4, C, MAL, "32 00 01 61 00"},
    {"topic longer than the packet", 4, C, MAL, "30 00 05 61"},
    {"[MQTT-3.3.2-2] topic with +", 4, C, MQTT_RC_TOPIC_NAME_INVALID, "30 00 03 61 2F 2B"},
    {"[MQTT-3.3.2-2] topic with #", 5, C, MQTT_RC_TOPIC_NAME_INVALID, "30 00 03 61 2F 23 00"},
    {"[MQTT-4.7.3-1] empty topic on 3.1.1", 4, C, PROTO, "30 00 00"},
    {"empty topic without Topic Alias on 5.0", 5, C, PROTO, "30 00 00 00"},
    {"empty topic with Topic Alias on 5.0", 5, C, OK, "30 00 00 03 23 00 01"},
    {"[MQTT-1.5.4-1] topic ill-formed UTF-8", 4, C, MAL, "30 00 02 C3 28"},
    {"[MQTT-1.5.4-1] topic with a surrogate", 4, C, MAL, "30 00 03 ED A0 80"},
    {"[MQTT-1.5.4-2] topic with U+0000", 4, C, MAL, "30 00 02 61 00"},
    {"[MQTT-1.5.4-3] topic with a control character", 4, C, MAL, "30 00 02 61 01"},
    {"[MQTT-3.3.2-8] Topic Alias 0", 5, C, MQTT_RC_TOPIC_ALIAS_INVALID, "30 00 01 61 03 23 00 00"},
    {"[MQTT-3.3.4-6] Subscription Identifier from a client", 5, C, PROTO, "30 00 01 61 02 0B 01"},
    {"Subscription Identifiers from a server", 5, S, OK, "30 00 01 61 04 0B 01 0B 02"},
    {"Subscription Identifier 0 from a server", 5, S, PROTO, "30 00 01 61 02 0B 00"},
    {"Subscription Identifier non-minimal", 5, S, MAL, "30 00 01 61 03 0B 81 00"},
    {"Subscription Identifier too long", 5, S, MAL, "30 00 01 61 06 0B FF FF FF FF 01"},
    {"3.3.2.3.2 Payload Format Indicator 1, payload not UTF-8", 5, C, MQTT_RC_PAYLOAD_FORMAT_INVALID,
     "30 00 01 61 02 01 01 FF FE"},
    {"Payload Format Indicator 1, UTF-8 payload with U+0000 and newline", 5, C, OK,
     "30 00 01 61 02 01 01 00 0A 61"},
    {"Payload Format Indicator 2", 5, C, PROTO, "30 00 01 61 02 01 02"},
    {"Payload Format Indicator twice", 5, C, PROTO, "30 00 01 61 04 01 00 01 00"},
    {"Message Expiry twice", 5, C, PROTO, "30 00 01 61 0A 02 00 00 00 01 02 00 00 00 01"},
    {"Topic Alias twice", 5, C, PROTO, "30 00 01 61 06 23 00 01 23 00 02"},
    {"[MQTT-3.3.2-14] Response Topic with a wildcard", 5, C, PROTO, "30 00 01 61 05 08 00 02 61 23"},
    {"Response Topic ill-formed", 5, C, MAL, "30 00 01 61 04 08 00 01 FF"},
    {"Content Type ill-formed", 5, C, MAL, "30 00 01 61 04 03 00 01 FF"},
    {"Correlation Data is binary", 5, C, OK, "30 00 01 61 04 09 00 01 FF"},
    {"PUBLISH property not allowed (2.2.2.2): Session Expiry", 5, C, MAL, "30 00 01 61 05 11 00 00 00 01"},
    {"PUBLISH property not allowed (2.2.2.2): Reason String", 5, C, MAL, "30 00 01 61 04 1F 00 01 61"},
    {"PUBLISH property not allowed (2.2.2.2): Will Delay", 5, C, MAL, "30 00 01 61 05 18 00 00 00 01"},
    /* ---- PUBACK .. PUBCOMP ---- */
    {"3.1.1 PUBACK too long", 4, C, MAL, "40 00 01 00"},
    {"3.1.1 PUBACK too short", 4, C, MAL, "40 00"},
    {"[MQTT-2.2.1-3] PUBACK packet id 0", 4, C, PROTO, "40 00 00"},
    {"5.0 PUBACK short form", 5, C, OK, "40 00 01"},
    {"5.0 PUBACK reason only", 5, C, OK, "40 00 01 10"},
    {"5.0 PUBACK reason 0x92 not allowed", 5, C, PROTO, "40 00 01 92"},
    {"5.0 PUBREC reason 0x99 allowed", 5, C, OK, "50 00 01 99"},
    {"5.0 PUBREL reason 0x10 not allowed", 5, C, PROTO, "62 00 01 10"},
    {"5.0 PUBCOMP reason 0x92 allowed", 5, C, OK, "70 00 01 92"},
    {"5.0 PUBCOMP reason 0x80 not allowed", 5, C, PROTO, "70 00 01 80"},
    {"5.0 PUBACK property length past the packet", 5, C, MAL, "40 00 01 00 05"},
    {"5.0 PUBACK property not allowed (2.2.2.2): Topic Alias", 5, C, MAL, "40 00 01 00 03 23 00 01"},
    {"5.0 PUBACK Reason String twice", 5, C, PROTO, "40 00 01 00 08 1F 00 01 61 1F 00 01 62"},
    {"5.0 PUBACK trailing bytes", 5, C, MAL, "40 00 01 00 00 00"},
    /* ---- SUBSCRIBE ---- */
    {"[MQTT-3.8.3-3] 3.1.1 SUBSCRIBE with no topic filter", 4, C, PROTO, "82 00 01"},
    {"[MQTT-3.8.3-2] 5.0 SUBSCRIBE with no topic filter", 5, C, PROTO, "82 00 01 00"},
    {"[MQTT-2.2.1-3] SUBSCRIBE packet id 0", 4, C, PROTO, "82 00 00 00 01 61 00"},
    {"SUBSCRIBE missing options byte", 4, C, MAL, "82 00 01 00 01 61"},
    {"[MQTT-3-8.3-4] 3.1.1 requested QoS 3", 4, C, MAL, "82 00 01 00 01 61 03"},
    {"[MQTT-3-8.3-4] 3.1.1 reserved option bits", 4, C, MAL, "82 00 01 00 01 61 04"},
    {"[MQTT-3.8.3-5] 5.0 reserved option bits", 5, C, MAL, "82 00 01 00 00 01 61 40"},
    {"5.0 Maximum QoS 3", 5, C, PROTO, "82 00 01 00 00 01 61 03"},
    {"5.0 Retain Handling 3", 5, C, PROTO, "82 00 01 00 00 01 61 30"},
    {"5.0 all option bits", 5, C, OK, "82 00 01 00 00 01 61 2E"},
    {"[MQTT-3.8.3-4] No Local on a shared subscription", 5, C, PROTO,
     "82 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 61 04"},
    {"shared subscription without No Local", 5, C, OK, "82 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 61 00"},
    {"[MQTT-4.7.1-1] filter a/#/b", 4, C, MQTT_RC_TOPIC_FILTER_INVALID, "82 00 01 00 05 61 2F 23 2F 62 00"},
    {"[MQTT-4.7.1-2] filter a+", 5, C, MQTT_RC_TOPIC_FILTER_INVALID, "82 00 01 00 00 02 61 2B 00"},
    {"[MQTT-4.7.3-1] empty filter", 4, C, MQTT_RC_TOPIC_FILTER_INVALID, "82 00 01 00 00 00"},
    {"filter ill-formed UTF-8", 4, C, MAL, "82 00 01 00 01 FF 00"},
    {"malformed entry after an invalid filter: Malformed wins", 4, C, MAL, "82 00 01 00 02 61 2B 00 00 05"},
    {"Subscription Identifier 0", 5, C, PROTO, "82 00 01 02 0B 00 00 01 61 00"},
    {"Subscription Identifier twice in SUBSCRIBE", 5, C, PROTO, "82 00 01 04 0B 01 0B 02 00 01 61 00"},
    {"SUBSCRIBE property not allowed (2.2.2.2): Reason String", 5, C, MAL, "82 00 01 04 1F 00 01 61 00 01 61 00"},
    /* ---- UNSUBSCRIBE ---- */
    {"[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter", 4, C, PROTO, "A2 00 01"},
    {"[MQTT-3.10.3-2] 5.0 UNSUBSCRIBE with no topic filter", 5, C, PROTO, "A2 00 01 00"},
    {"UNSUBSCRIBE packet id 0", 4, C, PROTO, "A2 00 00 00 01 61"},
    {"UNSUBSCRIBE filter invalid", 4, C, MQTT_RC_TOPIC_FILTER_INVALID, "A2 00 01 00 02 23 61"},
    {"UNSUBSCRIBE filter truncated", 4, C, MAL, "A2 00 01 00 05 61"},
    {"UNSUBSCRIBE property not allowed (2.2.2.2): Subscription Identifier", 5, C, MAL, "A2 00 01 02 0B 01 00 01 61"},
    /* ---- SUBACK / UNSUBACK ---- */
    {"SUBACK without codes", 4, S, PROTO, "90 00 01"},
    {"[MQTT-3.9.3-2] 3.1.1 SUBACK code 3", 4, S, PROTO, "90 00 01 03"},
    {"3.1.1 SUBACK code 0x80", 4, S, OK, "90 00 01 80"},
    {"5.0 SUBACK code 0x8F", 5, S, OK, "90 00 01 00 8F"},
    {"5.0 SUBACK code 0x11 not allowed", 5, S, PROTO, "90 00 01 00 11"},
    {"5.0 UNSUBACK code 0x11", 5, S, OK, "B0 00 01 00 11"},
    {"5.0 UNSUBACK code 0x01 not allowed", 5, S, PROTO, "B0 00 01 00 01"},
    {"3.1.1 UNSUBACK with a payload", 4, S, MAL, "B0 00 01 00"},
    {"SUBACK packet id 0", 4, S, PROTO, "90 00 00 00"},
    /* ---- DISCONNECT / AUTH ---- */
    {"5.0 DISCONNECT reason only", 5, C, OK, "E0 04"},
    {"5.0 DISCONNECT 0x04 from a server", 5, S, PROTO, "E0 04"},
    {"5.0 DISCONNECT 0x8E from a client", 5, C, PROTO, "E0 8E"},
    {"5.0 DISCONNECT 0x8E from a server", 5, S, OK, "E0 8E"},
    {"5.0 DISCONNECT reason 0x01", 5, C, PROTO, "E0 01"},
    {"[MQTT-3.14.2-2] Session Expiry in DISCONNECT from a server", 5, S, PROTO, "E0 00 05 11 00 00 00 01"},
    {"Session Expiry in DISCONNECT from a client", 5, C, OK, "E0 00 05 11 00 00 00 01"},
    {"DISCONNECT property not allowed (2.2.2.2): Topic Alias", 5, C, MAL, "E0 00 03 23 00 01"},
    {"DISCONNECT property length past the packet", 5, C, MAL, "E0 00 01"},
    {"AUTH reason 0x18", 5, S, OK, "F0 18 00"},
    {"AUTH reason only", 5, C, OK, "F0 19"},
    {"AUTH reason 0x04 not allowed", 5, C, PROTO, "F0 04 00"},
    {"AUTH Authentication Data without Method", 5, C, PROTO, "F0 18 03 16 00 00"},
};

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (*s) {
        if (isspace((unsigned char)*s)) {
            s++;
            continue;
        }
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

int main(void)
{
    static uint8_t bytes[512], raw[512];
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        CASE(tab[i].name);
        size_t n = unhex(tab[i].hex, raw);
        bytes[0] = raw[0];
        int vl = mqtt_varint_encode((uint32_t)(n - 1), bytes + 1);
        memcpy(bytes + 1 + vl, raw + 1, n - 1);
        n += (size_t)vl;
        mqtt_header_t h;
        mqtt_packet_t p;
        CHECK_EQ(mqtt_header_parse(bytes, n, &h), 1);
        uint8_t rc = mqtt_decode(&h, bytes + h.header_len, tab[i].version, tab[i].side, &p);
        if (rc != tab[i].rc)
            fprintf(stderr, "  got %s, want %s\n", mqtt_rc_name(rc), mqtt_rc_name(tab[i].rc));
        CHECK_EQ(rc, tab[i].rc);
        CHECK_EQ(p.type, h.type);
    }

    CASE("[MQTT-1.5.5-1] 5.0 non-minimal remaining length");
    mqtt_header_t h;
    mqtt_packet_t p;
    static const uint8_t nonmin[] = {0xC0, 0x80, 0x00};
    CHECK_EQ(mqtt_header_parse(nonmin, sizeof nonmin, &h), 1);
    CHECK_EQ(h.header_len, 3);
    CHECK_EQ(mqtt_decode(&h, nonmin + 3, 5, C, &p), MAL);
    CASE("3.1.1 accepts a non-minimal remaining length");
    CHECK_EQ(mqtt_decode(&h, nonmin + 3, 4, C, &p), OK);
    static const uint8_t nonmin_connect5[] = {0x10, 0x8D, 0x00, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01, 'c'};
    CASE("[MQTT-1.5.5-1] 5.0 CONNECT with a non-minimal remaining length");
    CHECK_EQ(mqtt_header_parse(nonmin_connect5, sizeof nonmin_connect5, &h), 1);
    CHECK_EQ(h.remaining, 13);
    CHECK_EQ(mqtt_decode(&h, nonmin_connect5 + 3, 0, C, &p), MAL);

    CASE("[MQTT-1.5.5] remaining length of five bytes");
    static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    CHECK_EQ(mqtt_header_parse(five, sizeof five, &h), -1);
    static const uint8_t four[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
    CHECK_EQ(mqtt_header_parse(four, sizeof four, &h), 1);
    CHECK_EQ(h.remaining, MQTT_MAX_REMAINING);
    CHECK_EQ(h.header_len, 5);
    CHECK_EQ(mqtt_header_parse(four, 4, &h), 0);
    CHECK_EQ(mqtt_header_parse(four, 1, &h), 0);
    CHECK_EQ(mqtt_header_parse(four, 0, &h), 0);

    CASE("reason code names");
    CHECK(strcmp(mqtt_rc_name(0x81), "MALFORMED_PACKET") == 0);
    CHECK(strcmp(mqtt_rc_message(0x82), "protocol error") == 0);
    CHECK(strcmp(mqtt_rc_name(0x03), "UNKNOWN") == 0);
    CHECK(strcmp(mqtt_rc_message(0xFF), "unknown reason code") == 0);
    CHECK(strcmp(mqtt_type_name(MQTT_SUBSCRIBE), "SUBSCRIBE") == 0);
    CHECK(strcmp(mqtt_type_name(0), "RESERVED") == 0);
    CHECK(strcmp(mqtt_type_name(16), "RESERVED") == 0);
    UNIT_DONE();
}
