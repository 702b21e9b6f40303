/* mqtt.h -- MQTT protocol constants shared by the broker, libtombo and the tools.
 * Reason codes and property identifiers come from one X-macro table each, so names,
 * values and messages cannot drift apart (libuv's UV_ERRNO_MAP). */
#ifndef TOMBO_MQTT_H
#define TOMBO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol levels as carried in CONNECT. */
#define MQTT_V31 3
#define MQTT_V311 4
#define MQTT_V5 5

/* Largest remaining length a 4-byte variable byte integer can carry. */
#define MQTT_MAX_REMAINING 268435455u
/* Largest fixed header: 1 type byte + 4 length bytes. */
#define MQTT_MAX_HEADER 5

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5 reason codes: X(NAME, value, message). */
#define MQTT_RC_MAP(X)                                                            \
    X(SUCCESS, 0x00, "success")                                                   \
    X(GRANTED_QOS1, 0x01, "granted QoS 1")                                        \
    X(GRANTED_QOS2, 0x02, "granted QoS 2")                                        \
    X(DISCONNECT_WITH_WILL, 0x04, "disconnect with will message")                 \
    X(NO_MATCHING_SUBSCRIBERS, 0x10, "no matching subscribers")                   \
    X(NO_SUBSCRIPTION_EXISTED, 0x11, "no subscription existed")                   \
    X(CONTINUE_AUTH, 0x18, "continue authentication")                             \
    X(REAUTHENTICATE, 0x19, "re-authenticate")                                    \
    X(UNSPECIFIED, 0x80, "unspecified error")                                     \
    X(MALFORMED_PACKET, 0x81, "malformed packet")                                 \
    X(PROTOCOL_ERROR, 0x82, "protocol error")                                     \
    X(IMPL_SPECIFIC, 0x83, "implementation specific error")                       \
    X(UNSUPPORTED_PROTOCOL_VERSION, 0x84, "unsupported protocol version")         \
    X(CLIENT_ID_NOT_VALID, 0x85, "client identifier not valid")                   \
    X(BAD_USERNAME_OR_PASSWORD, 0x86, "bad user name or password")                \
    X(NOT_AUTHORIZED, 0x87, "not authorized")                                     \
    X(SERVER_UNAVAILABLE, 0x88, "server unavailable")                             \
    X(SERVER_BUSY, 0x89, "server busy")                                           \
    X(BANNED, 0x8A, "banned")                                                     \
    X(SERVER_SHUTTING_DOWN, 0x8B, "server shutting down")                         \
    X(BAD_AUTH_METHOD, 0x8C, "bad authentication method")                         \
    X(KEEP_ALIVE_TIMEOUT, 0x8D, "keep alive timeout")                             \
    X(SESSION_TAKEN_OVER, 0x8E, "session taken over")                             \
    X(TOPIC_FILTER_INVALID, 0x8F, "topic filter invalid")                         \
    X(TOPIC_NAME_INVALID, 0x90, "topic name invalid")                             \
    X(PACKET_ID_IN_USE, 0x91, "packet identifier in use")                         \
    X(PACKET_ID_NOT_FOUND, 0x92, "packet identifier not found")                   \
    X(RECEIVE_MAX_EXCEEDED, 0x93, "receive maximum exceeded")                     \
    X(TOPIC_ALIAS_INVALID, 0x94, "topic alias invalid")                           \
    X(PACKET_TOO_LARGE, 0x95, "packet too large")                                 \
    X(MESSAGE_RATE_TOO_HIGH, 0x96, "message rate too high")                       \
    X(QUOTA_EXCEEDED, 0x97, "quota exceeded")                                     \
    X(ADMINISTRATIVE_ACTION, 0x98, "administrative action")                       \
    X(PAYLOAD_FORMAT_INVALID, 0x99, "payload format invalid")                     \
    X(RETAIN_NOT_SUPPORTED, 0x9A, "retain not supported")                         \
    X(QOS_NOT_SUPPORTED, 0x9B, "QoS not supported")                               \
    X(USE_ANOTHER_SERVER, 0x9C, "use another server")                             \
    X(SERVER_MOVED, 0x9D, "server moved")                                         \
    X(SHARED_SUBS_NOT_SUPPORTED, 0x9E, "shared subscriptions not supported")      \
    X(CONNECTION_RATE_EXCEEDED, 0x9F, "connection rate exceeded")                 \
    X(MAX_CONNECT_TIME, 0xA0, "maximum connect time")                             \
    X(SUB_IDS_NOT_SUPPORTED, 0xA1, "subscription identifiers not supported")      \
    X(WILDCARD_SUBS_NOT_SUPPORTED, 0xA2, "wildcard subscriptions not supported")

enum mqtt_rc {
#define MQTT_RC_ENUM(name, val, msg) MQTT_RC_##name = val,
    MQTT_RC_MAP(MQTT_RC_ENUM)
#undef MQTT_RC_ENUM
};

/* MQTT 3.1.1 CONNACK return codes. */
enum mqtt_connack_v3 {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL = 1,
    MQTT_CONNACK_ID_REJECTED = 2,
    MQTT_CONNACK_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* Property value types. */
enum mqtt_prop_type { MQTT_PT_BYTE, MQTT_PT_U16, MQTT_PT_U32, MQTT_PT_VARINT, MQTT_PT_STR, MQTT_PT_BIN, MQTT_PT_PAIR };

/* MQTT 5 properties: X(NAME, identifier, type). */
#define MQTT_PROP_MAP(X)                                   \
    X(PAYLOAD_FORMAT, 0x01, MQTT_PT_BYTE)                  \
    X(MESSAGE_EXPIRY, 0x02, MQTT_PT_U32)                   \
    X(CONTENT_TYPE, 0x03, MQTT_PT_STR)                     \
    X(RESPONSE_TOPIC, 0x08, MQTT_PT_STR)                   \
    X(CORRELATION_DATA, 0x09, MQTT_PT_BIN)                 \
    X(SUBSCRIPTION_ID, 0x0B, MQTT_PT_VARINT)               \
    X(SESSION_EXPIRY, 0x11, MQTT_PT_U32)                   \
    X(ASSIGNED_CLIENT_ID, 0x12, MQTT_PT_STR)               \
    X(SERVER_KEEP_ALIVE, 0x13, MQTT_PT_U16)                \
    X(AUTH_METHOD, 0x15, MQTT_PT_STR)                      \
    X(AUTH_DATA, 0x16, MQTT_PT_BIN)                        \
    X(REQUEST_PROBLEM_INFO, 0x17, MQTT_PT_BYTE)            \
    X(WILL_DELAY, 0x18, MQTT_PT_U32)                       \
    X(REQUEST_RESPONSE_INFO, 0x19, MQTT_PT_BYTE)           \
    X(RESPONSE_INFO, 0x1A, MQTT_PT_STR)                    \
    X(SERVER_REFERENCE, 0x1C, MQTT_PT_STR)                 \
    X(REASON_STRING, 0x1F, MQTT_PT_STR)                    \
    X(RECEIVE_MAX, 0x21, MQTT_PT_U16)                      \
    X(TOPIC_ALIAS_MAX, 0x22, MQTT_PT_U16)                  \
    X(TOPIC_ALIAS, 0x23, MQTT_PT_U16)                      \
    X(MAX_QOS, 0x24, MQTT_PT_BYTE)                         \
    X(RETAIN_AVAILABLE, 0x25, MQTT_PT_BYTE)                \
    X(USER_PROPERTY, 0x26, MQTT_PT_PAIR)                   \
    X(MAX_PACKET_SIZE, 0x27, MQTT_PT_U32)                  \
    X(WILDCARD_SUB_AVAILABLE, 0x28, MQTT_PT_BYTE)          \
    X(SUB_ID_AVAILABLE, 0x29, MQTT_PT_BYTE)                \
    X(SHARED_SUB_AVAILABLE, 0x2A, MQTT_PT_BYTE)

enum mqtt_prop_id {
#define MQTT_PROP_ENUM(name, id, type) MQTT_PROP_##name = id,
    MQTT_PROP_MAP(MQTT_PROP_ENUM)
#undef MQTT_PROP_ENUM
};

/* Bit for property `id` in mqtt_props_t.has. */
#define MQTT_HAS(id) (1ull << (id))

/* Name of a reason code ("MALFORMED_PACKET") and its message ("malformed packet");
 * "UNKNOWN" / "unknown reason code" for values outside the table. */
const char *mqtt_rc_name(uint8_t rc);
const char *mqtt_rc_message(uint8_t rc);
/* Name of a packet type ("PUBLISH"), "RESERVED" outside 1..15. */
const char *mqtt_type_name(uint8_t type);

#endif
