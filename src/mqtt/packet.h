/* packet.h -- MQTT 3.1 / 3.1.1 / 5.0 packets as C structs, decoded from and encoded to bytes.
 *
 * Design: decoding is zero-copy. Strings, binary data and payloads in a decoded packet are views
 * (mqtt_bytes_t) into the caller's input buffer, valid as long as that buffer is; nothing is
 * allocated. Decoding validates everything the specs require and returns the MQTT 5 reason code
 * a receiver must disconnect with (MQTT_RC_MALFORMED_PACKET, MQTT_RC_PROTOCOL_ERROR, ...), so the
 * callers map protocol errors in one place. Encoding is the exact inverse: decode(encode(p)) == p.
 * No I/O, no globals, no allocation: the broker, libtombo and the tools all link this. */
#ifndef TOMBO_MQTT_PACKET_H
#define TOMBO_MQTT_PACKET_H

#include "mqtt/mqtt.h"
#include "mqtt/varint.h" /* packet users frame remaining lengths with it */

/* A view of bytes owned by someone else. */
typedef struct mqtt_bytes {
    const uint8_t *p;
    uint32_t len;
} mqtt_bytes_t;

typedef struct mqtt_strpair {
    mqtt_bytes_t key, val;
} mqtt_strpair_t;

/* Fixed header. */
typedef struct mqtt_header {
    uint8_t type;        /* enum mqtt_type */
    uint8_t flags;       /* low nibble of byte 1 */
    uint8_t header_len;  /* 2..5: bytes of the fixed header */
    uint32_t remaining;  /* remaining length: bytes after the fixed header */
} mqtt_header_t;

/* MQTT 5 properties of one packet (or of a will). A property is present when its bit
 * MQTT_HAS(id) is set in `has`; the value fields of absent properties are meaningless.
 *
 * Repeated properties:
 *  - User properties. Decode sets user_n to their count, user to NULL and user_src to the whole
 *    property block (iterate with mqtt_props_next_user). Encode writes user[0..user_n) when
 *    user != NULL, then every user property found in user_src (when user_src.len > 0), in order.
 *    So a decoded PUBLISH re-encodes with its user properties passed through untouched.
 *  - Subscription identifiers. Decode sets sub_id to the first and sub_id_n to the count
 *    (iterate all with mqtt_props_next_sub_id over `raw`). Encode writes sub_ids[0..sub_id_n)
 *    when sub_ids != NULL, else sub_id once when MQTT_HAS(SUBSCRIPTION_ID) is set -- except that
 *    when sub_ids == NULL, sub_id_n > 1 and raw.len > 0 (a decoded PUBLISH that carried several),
 *    every identifier found in `raw` is written, so decode -> encode keeps them all.
 * `raw` is set by decode to the property block (without its length prefix); encode reads it only
 * in that one case. Encode writes properties in a fixed order, so a re-encoded packet may order
 * them differently from the bytes it was decoded from (same set, same values). */
typedef struct mqtt_props {
    uint64_t has;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t max_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t server_keep_alive;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t max_packet_size;
    mqtt_bytes_t content_type;
    mqtt_bytes_t response_topic;
    mqtt_bytes_t correlation_data;
    mqtt_bytes_t assigned_client_id;
    mqtt_bytes_t auth_method;
    mqtt_bytes_t auth_data;
    mqtt_bytes_t response_info;
    mqtt_bytes_t server_reference;
    mqtt_bytes_t reason_string;

    uint32_t sub_id;
    uint32_t sub_id_n;
    const uint32_t *sub_ids;

    uint32_t user_n;
    const mqtt_strpair_t *user;
    mqtt_bytes_t user_src;

    mqtt_bytes_t raw;
} mqtt_props_t;

/* One SUBSCRIBE entry. `options` is the raw options byte; the other fields are decoded from it
 * (v3: only qos). */
typedef struct mqtt_sub {
    mqtt_bytes_t filter;
    uint8_t options; /* encode writes options | the fields below, masked to the version's bits */
    uint8_t qos;
    uint8_t no_local;
    uint8_t retain_as_published;
    uint8_t retain_handling;
} mqtt_sub_t;

typedef struct mqtt_packet {
    uint8_t type;     /* enum mqtt_type */
    uint16_t id;      /* packet identifier: PUBLISH qos>0, PUBACK..PUBCOMP, (UN)SUBSCRIBE, (UN)SUBACK */
    uint8_t reason;   /* v5 reason code of acks, DISCONNECT, AUTH, CONNACK; v3 CONNACK return code */
    mqtt_props_t props;
    union {
        struct {
            uint8_t version;        /* MQTT_V31, MQTT_V311 or MQTT_V5. Decode: on
                                     * UNSUPPORTED_PROTOCOL_VERSION the raw level byte, so the
                                     * caller can answer in the client's CONNACK format. Encode:
                                     * the level written (0 = the `version` argument). */
            uint8_t clean;          /* clean session (v3) / clean start (v5) */
            uint16_t keepalive;
            mqtt_bytes_t client_id;
            uint8_t will;           /* will flag */
            uint8_t will_qos;
            uint8_t will_retain;
            mqtt_props_t will_props;
            mqtt_bytes_t will_topic;
            mqtt_bytes_t will_payload;
            uint8_t has_username, has_password;
            mqtt_bytes_t username, password;
            /* Bit 7 of the protocol level was set (0x83/0x84/0x85): a Mosquitto bridge announcing
             * itself ("try_private"). Decode strips the bit from `version`; encode sets it. */
            uint8_t bridge;
        } connect;
        struct {
            uint8_t session_present;
        } connack;
        struct {
            uint8_t qos, retain, dup;
            mqtt_bytes_t topic;     /* may be empty on v5 when a topic alias is used */
            mqtt_bytes_t payload;
        } publish;
        struct {
            /* decode: `entries` is the raw entry list, `count` entries, iterate with
             * mqtt_sub_next; list is NULL. encode: list[0..count) is written, or `entries`
             * verbatim when list is NULL (so a decoded packet re-encodes). */
            mqtt_bytes_t entries;
            uint32_t count;
            const mqtt_sub_t *list;
        } subscribe;
        struct {
            /* decode: `entries` is the raw list of filters (iterate with mqtt_unsub_next), list
             * is NULL; encode: list[0..count), or `entries` verbatim when list is NULL. */
            mqtt_bytes_t entries;
            uint32_t count;
            const mqtt_bytes_t *list;
        } unsubscribe;
        struct {
            /* SUBACK and v5 UNSUBACK: one reason code per filter. */
            mqtt_bytes_t codes;
        } suback;
    };
} mqtt_packet_t;

/* Which side sent the packet being decoded: the rules differ (only a client sends CONNECT,
 * SUBSCRIBE, PINGREQ; only a server CONNACK, SUBACK, subscription identifiers in PUBLISH...). */
enum mqtt_side { MQTT_FROM_CLIENT = 0, MQTT_FROM_SERVER = 1 };

/* Parse a fixed header at buf[0..len).
 * Returns 1 and fills *h when the header is complete, 0 when more bytes are needed,
 * -1 when it is malformed (a remaining length longer than 4 bytes). A non-minimal encoding is
 * accepted here (3.1.1 allows it); mqtt_decode refuses it on MQTT 5.0 [MQTT-1.5.5-1]. The type/flag
 * rules are checked by mqtt_decode. */
int mqtt_header_parse(const uint8_t *buf, size_t len, mqtt_header_t *h);

/* Decode the body (h->remaining bytes at `body`) of a packet whose header was parsed.
 * `version` is the connection's protocol level (ignored for CONNECT, which carries its own; the
 * decoded level is in out->connect.version). Returns MQTT_RC_SUCCESS, or the reason code the
 * receiver must close with: MALFORMED_PACKET, PROTOCOL_ERROR, UNSUPPORTED_PROTOCOL_VERSION (CONNECT
 * with an unknown protocol name/level), TOPIC_NAME_INVALID, TOPIC_FILTER_INVALID,
 * PAYLOAD_FORMAT_INVALID, TOPIC_ALIAS_INVALID (alias 0)... On error *out is partially filled
 * (out->type is always set). v3.x has no reason codes: any non-zero result means close the
 * connection. Rules that need connection state (topic alias maximum, receive maximum, packet ids
 * in use, CONNECT first / only once, AUTH method consistency) are the caller's. `body` must hold
 * h->remaining bytes. Zero-copy: views in *out point into `body`. Thread-safe (no state). */
uint8_t mqtt_decode(const mqtt_header_t *h, const uint8_t *body, uint8_t version, enum mqtt_side side,
                    mqtt_packet_t *out);

/* Iterate SUBSCRIBE entries of a decoded packet: *cursor starts as p->subscribe.entries and is
 * advanced; returns false at the end. Entries were validated by mqtt_decode. */
bool mqtt_sub_next(uint8_t version, mqtt_bytes_t *cursor, mqtt_sub_t *out);
/* Iterate UNSUBSCRIBE filters of a decoded packet, as above. */
bool mqtt_unsub_next(mqtt_bytes_t *cursor, mqtt_bytes_t *filter);
/* Iterate user properties in a decoded property block (props.user_src or props.raw). */
bool mqtt_props_next_user(mqtt_bytes_t *cursor, mqtt_strpair_t *out);
/* Iterate subscription identifiers in a decoded property block (props.raw). */
bool mqtt_props_next_sub_id(mqtt_bytes_t *cursor, uint32_t *out);

/* Bytes the whole encoded packet takes (fixed header included) at protocol level `version`.
 * Properties are written only for MQTT_V5. */
size_t mqtt_encoded_len(const mqtt_packet_t *p, uint8_t version);
/* Encode into out, which must hold mqtt_encoded_len(p, version) bytes. Returns bytes written.
 * For PUBLISH, mqtt_publish_id_offset tells where the 2-byte packet id sits so a shared encoding
 * can be patched per receiver. */
size_t mqtt_encode(const mqtt_packet_t *p, uint8_t version, uint8_t *out);
size_t mqtt_publish_id_offset(const mqtt_packet_t *p, uint8_t version);

/* Encoded size of a property block's content (without its length prefix). */
size_t mqtt_props_len(const mqtt_props_t *props);

#endif
