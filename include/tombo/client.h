/* tombo/client.h -- libtombo, the tombo MQTT client library (MQTT 3.1, 3.1.1 and 5.0).
 *
 * Shape (as paho-mqtt): create a client, set callbacks, connect, subscribe/publish, run a loop.
 *
 *     tombo_client_t *c = tombo_client_new("my-id", NULL);
 *     tombo_set_on_message(c, on_message);
 *     tombo_connect(c, "localhost", 1883, 60);
 *     tombo_subscribe(c, "test/+", 0, NULL, NULL);
 *     tombo_loop_forever(c);
 *     tombo_client_destroy(c);
 *
 * Three ways to run the network loop: tombo_loop_forever() (blocks), tombo_loop_start()/stop()
 * (a background thread), or tombo_socket() + tombo_loop() from the application's own event loop.
 *
 * Threads: every function taking a client is thread-safe (one recursive mutex per client) unless
 * its comment says otherwise. Callbacks run on the thread running the loop, with the client's lock
 * held, so a callback may call any tombo_ function on its own client except tombo_loop_stop() and
 * tombo_client_destroy(); a callback must not block waiting for another thread that uses the same
 * client.
 *
 * Errors: functions return tombo_err_t (0 = TOMBO_OK, failures negative); the library never aborts
 * on bad input or out-of-memory. */
#ifndef TOMBO_CLIENT_H
#define TOMBO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions. libtombo is built with hidden visibility, so these, and
 * nothing else, are in libtombo.so's dynamic symbol table (checked by
 * tests/client/check_exports.py). */
#if defined(__GNUC__)
#define TOMBO_API __attribute__((visibility("default")))
#else
#define TOMBO_API
#endif

/* ---- Errors ---------------------------------------------------------------------------------- */

/* X(NAME, value, message): one table gives the enum, tombo_strerror() and tombo_errname(). */
#define TOMBO_ERR_MAP(X)                                                                    \
    X(OK, 0, "success")                                                                     \
    X(AGAIN, -1, "operation would block, try again")                                        \
    X(NOMEM, -2, "out of memory")                                                           \
    X(INVAL, -3, "invalid argument")                                                        \
    X(NO_CONN, -4, "not connected")                                                         \
    X(CONN_LOST, -5, "connection lost")                                                     \
    X(CONN_REFUSED, -6, "connection refused by the broker")                                 \
    X(PROTOCOL, -7, "protocol error")                                                       \
    X(ERRNO, -8, "system call failed (see errno)")                                          \
    X(LOOKUP, -9, "host name lookup failed")                                                \
    X(TIMEOUT, -10, "timed out")                                                            \
    X(PAYLOAD_SIZE, -11, "payload too large")                                               \
    X(PACKET_TOO_LARGE, -12, "packet larger than the broker's maximum packet size")         \
    X(QUEUE_FULL, -13, "offline queue full")                                                \
    X(NOT_SUPPORTED, -14, "not supported by this protocol version or broker")               \
    X(TOPIC_INVALID, -15, "invalid topic name or filter")                                   \
    X(UTF8_INVALID, -16, "string is not valid MQTT UTF-8")                                  \
    X(QOS_INVALID, -17, "invalid QoS")                                                      \
    X(THREAD, -18, "thread error")                                                          \
    X(SERVER_DISCONNECT, -19, "the broker closed the connection with a DISCONNECT")        \
    X(KEEPALIVE, -20, "no answer from the broker within the keepalive")                    \
    X(BUSY, -21, "already running")                                                        \
    X(PROXY, -22, "the SOCKS5 proxy refused or failed")                                    \
    X(TLS_CONFIG, -23, "TLS: the settings cannot be used (see tombo_tls_error)")           \
    X(TLS_HANDSHAKE, -24, "TLS: handshake failed")                                         \
    X(TLS_VERIFY, -25, "TLS: certificate verify failed")                                   \
    X(TLS_HOSTNAME, -26, "TLS: the certificate does not match the host name")

typedef enum tombo_err {
#define TOMBO_ERR_ENUM(name, val, msg) TOMBO_ERR_##name = val,
    TOMBO_ERR_MAP(TOMBO_ERR_ENUM)
#undef TOMBO_ERR_ENUM
} tombo_err_t;
#define TOMBO_OK TOMBO_ERR_OK

/* A short message for err ("out of memory"); "unknown error" for values outside the table. */
TOMBO_API const char *tombo_strerror(int err);
/* The name of err without prefix ("NOMEM"); "UNKNOWN" outside the table. */
TOMBO_API const char *tombo_errname(int err);

/* Text for an MQTT reason code as reported to callbacks. `version` is TOMBO_MQTT_V31/V311/V5:
 * for v3 CONNACK return codes pass connack = true ("Connection Refused: not authorised."). */
TOMBO_API const char *tombo_reason_string(int version, bool connack, int reason);

/* Protocol versions (the protocol level byte of CONNECT). */
#define TOMBO_MQTT_V31 3
#define TOMBO_MQTT_V311 4
#define TOMBO_MQTT_V5 5

/* ---- MQTT 5 properties ---------------------------------------------------------------------- */

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum tombo_prop_id {
    TOMBO_PROP_PAYLOAD_FORMAT = 0x01,         /* byte */
    TOMBO_PROP_MESSAGE_EXPIRY = 0x02,         /* u32 */
    TOMBO_PROP_CONTENT_TYPE = 0x03,           /* string */
    TOMBO_PROP_RESPONSE_TOPIC = 0x08,         /* string */
    TOMBO_PROP_CORRELATION_DATA = 0x09,       /* binary */
    TOMBO_PROP_SUBSCRIPTION_ID = 0x0B,        /* varint */
    TOMBO_PROP_SESSION_EXPIRY = 0x11,         /* u32 */
    TOMBO_PROP_ASSIGNED_CLIENT_ID = 0x12,     /* string */
    TOMBO_PROP_SERVER_KEEP_ALIVE = 0x13,      /* u16 */
    TOMBO_PROP_AUTH_METHOD = 0x15,            /* string */
    TOMBO_PROP_AUTH_DATA = 0x16,              /* binary */
    TOMBO_PROP_REQUEST_PROBLEM_INFO = 0x17,   /* byte */
    TOMBO_PROP_WILL_DELAY = 0x18,             /* u32 */
    TOMBO_PROP_REQUEST_RESPONSE_INFO = 0x19,  /* byte */
    TOMBO_PROP_RESPONSE_INFO = 0x1A,          /* string */
    TOMBO_PROP_SERVER_REFERENCE = 0x1C,       /* string */
    TOMBO_PROP_REASON_STRING = 0x1F,          /* string */
    TOMBO_PROP_RECEIVE_MAX = 0x21,            /* u16 */
    TOMBO_PROP_TOPIC_ALIAS_MAX = 0x22,        /* u16 */
    TOMBO_PROP_TOPIC_ALIAS = 0x23,            /* u16 */
    TOMBO_PROP_MAX_QOS = 0x24,                /* byte */
    TOMBO_PROP_RETAIN_AVAILABLE = 0x25,       /* byte */
    TOMBO_PROP_USER_PROPERTY = 0x26,          /* string pair, may repeat */
    TOMBO_PROP_MAX_PACKET_SIZE = 0x27,        /* u32 */
    TOMBO_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte */
    TOMBO_PROP_SUB_ID_AVAILABLE = 0x29,       /* byte */
    TOMBO_PROP_SHARED_SUB_AVAILABLE = 0x2A,   /* byte */
};

/* A list of MQTT 5 properties. Lists you create are owned by you (tombo_props_free); functions
 * that take a list copy what they need, so it may be freed right after the call. Lists given to
 * callbacks are read-only views valid only during the callback. Properties are sent only on
 * MQTT 5 connections and silently dropped on 3.1/3.1.1. */
typedef struct tombo_props tombo_props_t;

/* A new empty list, NULL on out-of-memory. */
TOMBO_API tombo_props_t *tombo_props_new(void);
/* Free a list made by tombo_props_new(); NULL is allowed. Never pass a callback's view. */
TOMBO_API void tombo_props_free(tombo_props_t *p);

/* Set a numeric property (byte, u16, u32 or varint identifiers). Returns TOMBO_ERR_INVAL for an
 * unknown or non-numeric identifier or a value out of its range. Setting twice replaces. */
TOMBO_API tombo_err_t tombo_props_set_int(tombo_props_t *p, int id, uint32_t value);
/* Set a string property (NUL-terminated, must be valid MQTT UTF-8) or, with _binary, a binary one
 * (CORRELATION_DATA, AUTH_DATA). Returns INVAL for a wrong identifier, UTF8_INVALID, NOMEM. */
TOMBO_API tombo_err_t tombo_props_set_string(tombo_props_t *p, int id, const char *value);
TOMBO_API tombo_err_t tombo_props_set_binary(tombo_props_t *p, int id, const void *data, size_t len);
/* Append a user property (may repeat, order kept). */
TOMBO_API tombo_err_t tombo_props_add_user(tombo_props_t *p, const char *key, const char *value);
/* Convenience setters for the common PUBLISH properties. */
TOMBO_API tombo_err_t tombo_props_set_content_type(tombo_props_t *p, const char *type);
TOMBO_API tombo_err_t tombo_props_set_response_topic(tombo_props_t *p, const char *topic);
TOMBO_API tombo_err_t tombo_props_set_correlation_data(tombo_props_t *p, const void *data, size_t len);
TOMBO_API tombo_err_t tombo_props_set_message_expiry(tombo_props_t *p, uint32_t seconds);

/* Read a property from any list (yours or a callback's view).
 * get_int: true and *out set when the numeric property is present.
 * get_string (string and binary properties): true and data, len set (not NUL-terminated; valid while the list is).
 * user_count/get_user: the user properties, index 0..count-1, in the order received. */
TOMBO_API bool tombo_props_get_int(const tombo_props_t *p, int id, uint32_t *out);
TOMBO_API bool tombo_props_get_string(const tombo_props_t *p, int id, const char **data, size_t *len);
TOMBO_API size_t tombo_props_user_count(const tombo_props_t *p);
TOMBO_API bool tombo_props_get_user(const tombo_props_t *p, size_t index, const char **key, size_t *key_len,
                                    const char **value, size_t *value_len);
/* The properties in their order: count (each user property and subscription identifier counted),
 * and the identifier of the index-th one (0 when out of range). A received list keeps the order
 * of the packet; a list you built gives ascending identifiers, then user properties. */
TOMBO_API size_t tombo_props_count(const tombo_props_t *p);
TOMBO_API int tombo_props_id_at(const tombo_props_t *p, size_t index);
/* Subscription identifiers carried by a received PUBLISH: count, and the index-th one. */
TOMBO_API size_t tombo_props_sub_id_count(const tombo_props_t *p);
TOMBO_API bool tombo_props_get_sub_id(const tombo_props_t *p, size_t index, uint32_t *out);

/* ---- Client ---------------------------------------------------------------------------------- */

typedef struct tombo_client tombo_client_t;

/* Log levels given to on_log. */
enum tombo_log_level { TOMBO_LOG_ERROR = 1, TOMBO_LOG_WARNING = 2, TOMBO_LOG_INFO = 4, TOMBO_LOG_DEBUG = 8 };

/* Client options. Initialise with tombo_options_init() and change what you need; the client copies
 * everything it keeps (strings and property lists), so the struct may be freed after
 * tombo_client_new(). */
typedef struct tombo_options {
    int version;                  /* TOMBO_MQTT_V31 / V311 (default) / V5 */
    bool clean_start;             /* clean session (v3) / clean start (v5); default true */
    uint32_t session_expiry;      /* v5 Session Expiry Interval in CONNECT; default 0 */
    const char *username;         /* NULL: none */
    const char *password;         /* NULL: none; password_len bytes (strlen when password_len == 0) */
    size_t password_len;
    /* Will: sent when will_topic != NULL. */
    const char *will_topic;
    const void *will_payload;
    size_t will_payload_len;
    int will_qos;
    bool will_retain;
    const tombo_props_t *will_props; /* v5 will properties (e.g. WILL_DELAY), copied */
    const tombo_props_t *connect_props; /* extra v5 CONNECT properties (user properties...), copied */
    int max_inflight;             /* QoS 1/2 publishes in flight at once; default 20 (the broker's
                                     Receive Maximum lowers it) */
    uint16_t receive_max;         /* v5 Receive Maximum sent in CONNECT; 0: not sent (65535) */
    uint32_t max_packet_size;     /* v5 Maximum Packet Size we accept; 0: not sent (no limit but
                                     the protocol's 256 MB). Larger packets close the connection. */
    uint16_t topic_alias_max;     /* v5 Topic Alias Maximum we accept from the broker; default 0 */
    uint16_t send_topic_alias_max; /* v5: topic aliases we may assign to the topics we publish, at
                                     most this many and never more than the broker's CONNACK
                                     Topic Alias Maximum allows; default 0 (never). The first
                                     PUBLISH to a topic on a connection carries the topic and an
                                     alias, later ones the alias alone; when all are in use the
                                     least recently used alias is rebound. Aliases start afresh
                                     on every connection; a retransmission (DUP) carries its full
                                     topic. A publish whose props hold a TOPIC_ALIAS fails INVAL
                                     when this is on (the library owns the aliases then). */
    int connect_timeout_ms;       /* TCP connect timeout; default 10000 */
    /* Automatic reconnect (used by tombo_loop, tombo_loop_forever and the loop thread) after a lost
     * connection, never after tombo_disconnect(). Delay doubles from reconnect_min_ms up to
     * reconnect_max_ms, each try randomly shortened by up to half (jitter). */
    bool auto_reconnect;          /* default false */
    int reconnect_min_ms;         /* default 1000 */
    int reconnect_max_ms;         /* default 30000 */
    bool resubscribe;             /* after a reconnect whose session was not kept, subscribe again
                                     to every filter still subscribed; default true */
    size_t offline_queue;         /* publishes kept while not connected (sent on (re)connect);
                                     0 (default): publishing while disconnected fails NO_CONN */
    const char *bind_address;     /* local address to bind to; NULL: any */
    /* SOCKS5 proxy (RFC 1928, as libmosquitto's mosquitto_socks5_set): when socks5_host is set,
     * every connection goes to the proxy, which is asked to CONNECT to the broker by name (the
     * proxy resolves it; an IPv4/IPv6 literal is sent as an address). With socks5_username the
     * username/password method (RFC 1929) is offered as well as none. Failures: TOMBO_ERR_PROXY. */
    const char *socks5_host;
    int socks5_port;              /* default 1080 when 0 */
    const char *socks5_username;
    const char *socks5_password;
    /* MQTT 5 enhanced authentication: NULL (none, the default) or "SCRAM-SHA-256" (RFC 5802/7677,
     * as tombo and EMQX offer it). username and password are then the SCRAM credentials: the
     * password is not sent, the broker proves it knows the user's verifier (a CONNACK that does
     * not is a protocol error: on_disconnect(TOMBO_ERR_PROTOCOL)), and a wrong password is a
     * refused CONNACK (0x87 from tombo). Needs version 5, a username and a password. */
    const char *auth_method;
} tombo_options_t;

/* Fill *o with the defaults described above. */
TOMBO_API void tombo_options_init(tombo_options_t *o);

/* A received message, valid only during on_message (copy what you keep). topic is NUL-terminated;
 * payload is followed by a NUL byte that is not counted in payload_len, so text payloads can be
 * printed directly. props is an empty list on v3 connections. */
typedef struct tombo_message {
    const char *topic;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;
    bool dup;
    int mid;
    const tombo_props_t *props;
} tombo_message_t;

/* Callbacks. `user` is the pointer given to tombo_set_user(). Lists and arrays are views valid only
 * during the call.
 * on_connect: a CONNACK arrived. reason is the v3 return code or v5 reason code (0 = accepted);
 *   a refused connection is followed by on_disconnect(TOMBO_ERR_CONN_REFUSED).
 * on_disconnect: the connection is gone. err is TOMBO_OK after tombo_disconnect(),
 *   TOMBO_ERR_SERVER_DISCONNECT with the reason and props of the broker's DISCONNECT, or another
 *   error (CONN_LOST, KEEPALIVE, PROTOCOL, ...) with the reason code we sent, if any.
 * on_publish: a publish completed: QoS 0 when written to the socket, QoS 1 at PUBACK, QoS 2 at
 *   PUBCOMP (or a v5 PUBREC with an error reason). reason is the v5 ack reason code (0 otherwise).
 * on_subscribe / on_unsubscribe: SUBACK / UNSUBACK with one code per filter (v3 UNSUBACK: count 0).
 * on_log: a line of text about what the client does, filtered by tombo_set_log_level(). */
typedef void (*tombo_on_connect_cb)(tombo_client_t *c, void *user, int reason, bool session_present,
                                    const tombo_props_t *props);
typedef void (*tombo_on_disconnect_cb)(tombo_client_t *c, void *user, tombo_err_t err, int reason,
                                       const tombo_props_t *props);
typedef void (*tombo_on_message_cb)(tombo_client_t *c, void *user, const tombo_message_t *msg);
typedef void (*tombo_on_publish_cb)(tombo_client_t *c, void *user, int mid, int reason,
                                    const tombo_props_t *props);
typedef void (*tombo_on_subscribe_cb)(tombo_client_t *c, void *user, int mid, int count,
                                      const uint8_t *codes, const tombo_props_t *props);
typedef void (*tombo_on_unsubscribe_cb)(tombo_client_t *c, void *user, int mid, int count,
                                        const uint8_t *codes, const tombo_props_t *props);
typedef void (*tombo_on_log_cb)(tombo_client_t *c, void *user, int level, const char *line);

/* Create a client. client_id may be NULL or "" to let the broker assign one (v3.1.1 requires
 * clean_start then; v3.1 requires an id). opts may be NULL for the defaults. Returns NULL on
 * out-of-memory or invalid options (an id that is not valid UTF-8, a bad version or will QoS). */
TOMBO_API tombo_client_t *tombo_client_new(const char *client_id, const tombo_options_t *opts);
/* Close the connection (without DISCONNECT: the will is sent), stop the loop thread, free
 * everything. NULL is allowed. Must not be called from a callback. */
TOMBO_API void tombo_client_destroy(tombo_client_t *c);

/* Set the callbacks and the user pointer given to them; any may be NULL. */
TOMBO_API void tombo_set_user(tombo_client_t *c, void *user);
TOMBO_API void tombo_set_on_connect(tombo_client_t *c, tombo_on_connect_cb cb);
TOMBO_API void tombo_set_on_disconnect(tombo_client_t *c, tombo_on_disconnect_cb cb);
TOMBO_API void tombo_set_on_message(tombo_client_t *c, tombo_on_message_cb cb);
TOMBO_API void tombo_set_on_publish(tombo_client_t *c, tombo_on_publish_cb cb);
TOMBO_API void tombo_set_on_subscribe(tombo_client_t *c, tombo_on_subscribe_cb cb);
TOMBO_API void tombo_set_on_unsubscribe(tombo_client_t *c, tombo_on_unsubscribe_cb cb);
TOMBO_API void tombo_set_on_log(tombo_client_t *c, tombo_on_log_cb cb);
/* Only log lines whose level is in the mask (default: all). */
TOMBO_API void tombo_set_log_level(tombo_client_t *c, int mask);

/* Open the TCP connection and send CONNECT. Blocks for the TCP connect only (connect_timeout_ms);
 * the TLS handshake (tombo_set_tls) and the CONNACK are handled by the loop, the CONNACK reported
 * through on_connect. keepalive in seconds
 * (0 disables). Port 0 connects to the Unix domain socket whose path is `host` (as libmosquitto
 * does). Returns TOMBO_OK, LOOKUP, ERRNO (connection refused, no such socket...), TIMEOUT, INVAL,
 * BUSY (already connected), NOMEM, or a TLS_* error when a TLS handshake failed before the call
 * returned (it usually fails later, in the loop). Call it before starting the loop, or from the loop's thread. */
TOMBO_API tombo_err_t tombo_connect(tombo_client_t *c, const char *host, int port, int keepalive);
/* Reconnect now to the last host and port, e.g. from on_disconnect. */
TOMBO_API tombo_err_t tombo_reconnect(tombo_client_t *c);
/* MQTT 5 re-authentication with the client's auth_method (AUTH 0x19, section 4.12.1): the same
 * SCRAM exchange again on the open connection, which goes on meanwhile; a failure makes the broker
 * disconnect (on_disconnect with its reason, 0x87 from tombo). Returns INVAL without auth_method,
 * NO_CONN when not connected, BUSY while an exchange is going on. */
TOMBO_API tombo_err_t tombo_reauthenticate(tombo_client_t *c);

/* Send DISCONNECT with a v5 reason code (0 = normal) and optional properties, then close the
 * connection; the loop (tombo_loop_forever returns) and automatic reconnect stop. The will is not
 * sent (unless reason is 0x04 on v5). Returns NO_CONN when not connected. */
TOMBO_API tombo_err_t tombo_disconnect(tombo_client_t *c, int reason, const tombo_props_t *props);

/* Publish payload[0..len) to topic. Copies everything; returns at once. *mid (may be NULL) gets
 * the message id, also given to on_publish (QoS 0 messages get ids too, for on_publish).
 * QoS 1/2 messages beyond the in-flight window wait in order. While not connected the message
 * goes to the offline queue when options.offline_queue > 0, else NO_CONN; QUEUE_FULL when full.
 * Errors: INVAL, TOPIC_INVALID (wildcards, empty, bad UTF-8), QOS_INVALID, PAYLOAD_SIZE (over
 * 268435455 bytes), PACKET_TOO_LARGE (over the broker's maximum packet size), NOT_SUPPORTED (QoS
 * above the broker's Maximum QoS, retain when not available), NOMEM. */
TOMBO_API tombo_err_t tombo_publish(tombo_client_t *c, int *mid, const char *topic, const void *payload, size_t len,
                                    int qos, bool retain, const tombo_props_t *props);

/* Subscription options (MQTT 5; only qos is used on v3). */
typedef struct tombo_sub_opts {
    int qos;                  /* 0..2 */
    bool no_local;            /* v5: do not receive our own publishes */
    bool retain_as_published; /* v5: keep the retain flag as published */
    int retain_handling;      /* v5: 0 send retained, 1 only for new subscriptions, 2 never */
} tombo_sub_opts_t;

/* Subscribe to one filter with the given QoS (opts may be NULL; when given its qos is used and
 * `qos` ignored). props: v5 SUBSCRIBE properties (subscription identifier, user properties).
 * Returns INVAL, TOPIC_INVALID, QOS_INVALID, NO_CONN, NOMEM. */
TOMBO_API tombo_err_t tombo_subscribe(tombo_client_t *c, int *mid, const char *filter, int qos,
                                      const tombo_sub_opts_t *opts, const tombo_props_t *props);
/* Subscribe to count filters in one SUBSCRIBE; opts has count entries (NULL: QoS 0 each). */
TOMBO_API tombo_err_t tombo_subscribe_many(tombo_client_t *c, int *mid, int count, const char *const *filters,
                                           const tombo_sub_opts_t *opts, const tombo_props_t *props);
/* Unsubscribe from one or count filters. */
TOMBO_API tombo_err_t tombo_unsubscribe(tombo_client_t *c, int *mid, const char *filter, const tombo_props_t *props);
TOMBO_API tombo_err_t tombo_unsubscribe_many(tombo_client_t *c, int *mid, int count, const char *const *filters,
                                             const tombo_props_t *props);

/* Run the network once: wait up to timeout_ms (-1: until something happens) for the socket, read
 * and handle every complete packet, write what is pending, send keepalive pings, and reconnect
 * when automatic reconnect is due. Returns TOMBO_OK, or NO_CONN when not connected and not
 * reconnecting, or the error that closed the connection. Not to be called while the loop thread
 * runs. */
TOMBO_API tombo_err_t tombo_loop(tombo_client_t *c, int timeout_ms);
/* Run tombo_loop until tombo_disconnect() or tombo_loop_stop() is called, or the connection is
 * lost without auto_reconnect. Returns TOMBO_OK after tombo_disconnect, else the error. */
TOMBO_API tombo_err_t tombo_loop_forever(tombo_client_t *c);
/* Run tombo_loop_forever in a new thread. BUSY if already running, THREAD if it cannot start. */
TOMBO_API tombo_err_t tombo_loop_start(tombo_client_t *c);
/* Stop the loop thread and wait for it (it finishes its current step); TOMBO_OK if it was not
 * running. Does not disconnect. Must not be called from a callback. */
TOMBO_API tombo_err_t tombo_loop_stop(tombo_client_t *c);

/* The socket to watch (POLLIN; and POLLOUT when tombo_want_write()), -1 when not connected. When
 * it is readable or writable, or at least every second for keepalive, call tombo_loop(c, 0). */
TOMBO_API int tombo_socket(tombo_client_t *c);
/* True when output is waiting for the socket to become writable. */
TOMBO_API bool tombo_want_write(tombo_client_t *c);
/* True between a successful CONNACK and the end of that connection. */
TOMBO_API bool tombo_is_connected(tombo_client_t *c);
/* Protocol version in use, and the client id (the broker's assigned one once connected). The id
 * string belongs to the client and may be replaced by the next CONNACK: read it from a callback or
 * while no loop runs, and copy it to keep it. */
TOMBO_API int tombo_version(const tombo_client_t *c);
TOMBO_API const char *tombo_client_id(tombo_client_t *c);
/* Number of QoS 1/2 publishes not yet completed plus messages waiting to be sent. */
TOMBO_API size_t tombo_pending(tombo_client_t *c);

/* ---- TLS ------------------------------------------------------------------------------------- */

/* TLS settings, with libmosquitto's (mosquitto_tls_set, _tls_opts_set, _tls_psk_set) meaning.
 * Initialise with tombo_tls_options_init(); NULL / false mean "not set". The client builds its
 * TLS context from them at once (so a bad file is reported by tombo_set_tls) and copies what it
 * keeps: the struct and its strings may be freed after the call. */
typedef struct tombo_tls_options {
    const char *cafile;        /* PEM CA certificates that verify the broker */
    const char *capath;        /* directory of hashed CA certificates (c_rehash / openssl rehash) */
    const char *certfile;      /* client certificate (PEM) for mutual TLS; needs keyfile */
    const char *keyfile;       /* its private key (PEM, unencrypted) */
    bool insecure;             /* do not check that the certificate names the host (mosquitto's
                                * --insecure); with no cafile/capath either, do not verify it at all */
    const char *tls_version;   /* minimum version: "tlsv1.2" (default) or "tlsv1.3" */
    const char *ciphers;       /* OpenSSL cipher list for TLS 1.2 */
    const char *ciphers_tls13; /* OpenSSL ciphersuites for TLS 1.3 */
    const char *alpn;          /* ALPN protocols offered, comma-separated ("mqtt") */
    const char *psk;           /* pre-shared key in hex digits, with psk_identity: PSK instead of
                                * certificates (TLS 1.2 PSK suites and TLS 1.3 external PSK) */
    const char *psk_identity;
    const char *server_name;   /* name sent as SNI and checked against the certificate; NULL: the
                                * host given to tombo_connect (an IP literal is checked as an
                                * address and not sent as SNI) */
} tombo_tls_options_t;

/* Fill *o with "not set". */
TOMBO_API void tombo_tls_options_init(tombo_tls_options_t *o);
/* Use TLS for every later connection (tombo_connect, tombo_reconnect, automatic reconnect); opts
 * NULL goes back to plain TCP. The handshake runs inside the loop, non-blocking, after the TCP
 * connect; it counts against connect_timeout_ms like the CONNACK does. A failed handshake ends the
 * connection with TOMBO_ERR_TLS_VERIFY (certificate not trusted, expired...), TLS_HOSTNAME
 * (certificate for another name) or TLS_HANDSHAKE (anything else: no shared version or cipher,
 * wrong PSK, the broker refused our certificate), reported by on_disconnect and tombo_loop; the
 * detail is in tombo_tls_error(). A reconnect offers the previous session for resumption.
 * Returns TOMBO_OK, INVAL, BUSY (connected: call it before tombo_connect), NOMEM, or TLS_CONFIG
 * with the reason in tombo_tls_error() (unreadable file, key not matching the certificate, bad
 * cipher list or PSK). */
TOMBO_API tombo_err_t tombo_set_tls(tombo_client_t *c, const tombo_tls_options_t *opts);
/* The last TLS failure in words, e.g. "TLS: certificate verify failed: unable to get local issuer
 * certificate"; "" when there was none. Owned by the client, replaced by the next failure: read it
 * from on_disconnect or while no loop runs. */
TOMBO_API const char *tombo_tls_error(tombo_client_t *c);
/* True when the current connection uses TLS and its handshake is done. */
TOMBO_API bool tombo_tls_active(tombo_client_t *c);

/* Library version string ("0.1.0"). */
TOMBO_API const char *tombo_lib_version(void);

#ifdef __cplusplus
}
#endif
#endif
