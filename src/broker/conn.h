/* conn.h -- one client network connection, owned for life by one worker thread.
 *
 * A connection reads up to 64 KB at a time, handles every complete packet in the buffer, appends
 * replies and deliveries to `out`, and is flushed once per loop turn (the worker's flush list).
 * Nothing here is touched by other threads: they reach a connection only through its worker's
 * inbox. Input is conn.c, output conn_out.c, the end of a connection conn_close.c. */
#ifndef TOMBO_BROKER_CONN_H
#define TOMBO_BROKER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "broker/outq.h"
#include "broker/config.h"
#include "broker/session.h"
#include "broker/transport.h"
#include "mqtt/packet.h"

struct worker;

#define CONNECT_MAX_BYTES (256u << 10) /* a larger CONNECT is refused from its fixed header */
#define LINGER_MS 2000          /* a closing connection's input is drained this long at most ... */
#define LINGER_BYTES (1u << 20) /* ... and this much */

enum conn_state { CONN_NEW = 0, CONN_ACTIVE, CONN_CLOSED };
/* MQTT 5 enhanced authentication: the method a connection authenticated with (handle_auth.c). */
enum conn_auth_method { AUTH_METHOD_NONE = 0, AUTH_METHOD_SCRAM_SHA256, AUTH_METHOD_PLUGIN };
enum conn_wait {
    WAIT_NONE = 0,
    WAIT_TAKEOVER, /* for the session's old connection to close (INBOX_TAKEOVER_DONE) */
    WAIT_AUTH,     /* for the password check on the auth thread (INBOX_AUTH_DONE) */
    WAIT_CLUSTER,  /* for the node that has its session to hand it over (cluster.c, CL_TAKE_REPLY) */
};

typedef struct conn {
    /* Fields are ordered to leave no padding: one per client, a million clients. */
    int fd;
    uint8_t state;
    uint8_t version;        /* protocol level from CONNECT */
    uint8_t got_disconnect; /* normal DISCONNECT received: no will (unless 0x04) */
    uint8_t in_flush_list;
    uint64_t id;
    struct worker *w;
    const struct tombo_listener *l; /* the listener it came in on (its security settings) */
    uint8_t want_write;     /* EPOLLOUT armed */
    uint8_t taken_over;
    uint8_t waiting;        /* enum conn_wait: the CONNECT waits for another thread; nothing is read */
    uint8_t request_problem_info;
    uint8_t bp_paused;      /* not read until bp_on drains (backpressure.h) */
    uint8_t out_full;       /* its session's queue waits for `out` to drain below BP_OUT_HIGH */
    uint8_t linger;         /* closing after a reason code: drain the input before closing the fd */
    uint8_t close_rc;       /* the reason code conn_fail closed it with (0: none), for plugins */
    uint8_t draining;       /* CONN_CLOSED, write side shut, input read and discarded (fd still open) */
    uint16_t keepalive;
    uint16_t topic_alias_max_in;
    uint8_t tp_flags;       /* transport state (TP_* in transport.h) */
    uint8_t bridge;         /* our own bridge's connection (BRIDGE_CONN_* in bridge.h; c->l is in it) */
    uint8_t peer_bridge;    /* the client is a bridge that set try_private (0x80 in its protocol level) */
    uint8_t counted;        /* holds one of its listener's max_connections places (listen_clients) */
    uint8_t auth_method;    /* enum conn_auth_method: the CONNECT's Authentication Method */
    uint8_t traced;         /* its packets go to the trace (trace.h), as of generation trace_gen */
    uint8_t trace_gen;      /* the trace's generation, mod 256, when `traced` was decided */
    uint8_t plugin_auth;    /* a plugin's enhanced-authentication exchange is in progress (handle_auth.c) */
    struct connect_req *pending; /* that CONNECT, until it is answered */
    struct scram_server *scram; /* an enhanced-authentication exchange in progress (owned), or NULL */
    char *auth_method_name; /* AUTH_METHOD_PLUGIN: the CONNECT's Authentication Method (owned) */
    buf_t in;
    outq_t out;             /* own bytes and references to shared encodings (outq.h) */
    uint64_t out_sent;      /* bytes of `out` written to the socket since the connection began */
    struct conn_holds *holds; /* output waiting for the persistence store (NULL: none) */
    uint32_t cluster_acks;  /* its PUBACK/PUBRECs waiting behind JetStream (cluster_js.c) */
    const struct transport *tr; /* how bytes move: TCP, TLS or WebSocket (transport.h) */
    struct ssl_st *ssl;     /* TLS: the connection's SSL, owned (NULL: plain TCP) */
    struct ws_conn *ws;     /* WebSocket state, owned (NULL: not a WebSocket listener) */
    session_t *session;     /* one reference while attached */
    session_t *bp_on;       /* the receiver this connection's publishing waits for (one reference) */
    /* "HOST:PORT" (IPv6 numeric host at most 45 characters: 52 with the port and NUL) or
     * "unix:SOCKET-NAME", cut at 55 characters; 56 keeps conn_t at 360 bytes, one malloc chunk of
     * 368 per idle connection. */
    char peer[56];

    /* keepalive: deadline on the worker's timer wheel */
    int64_t last_rx;        /* ms */
    struct conn *tw_next, **tw_prev;
    struct conn *flush_next;

    /* MQTT 5 limits the client told us */
    uint32_t max_packet_out;      /* 0: none */
    /* Our limits as CONNACK announced them, kept for the connection's life (a reload changes them
     * for new connections only: a client must not be cut off for a limit it was never told). */
    uint32_t max_packet_in;       /* max_packet_size; 0: none */
    uint32_t receive_max_in;      /* max_inflight_messages (Receive Maximum, 5.0); 0: none */
    uint16_t topic_alias_max_out; /* aliases we may use towards the client */
    uint16_t aliases_out_used;
    struct alias_out *aliases_out; /* hash of topic -> alias we assigned (lazily allocated) */
    /* topic aliases the client set towards us, indexed 1..topic_alias_max_in */
    char **aliases_in;
    uint16_t *aliases_in_len;
} conn_t;

/* ---- input: reads and the packet dispatcher (conn.c) ---- */

/* Read and handle everything available. */
void conn_on_readable(conn_t *c);
/* It may be read again: handle what waits in its input buffer, then read the socket. */
void conn_resume_input(conn_t *c);
/* Its session takeover completed: answer the CONNECT and go on reading. */
void conn_connect_resumed(conn_t *c);
/* Re-arm its epoll interest after reading or writing interest changed (waiting, bp_paused,
 * want_write). */
void conn_update_events(conn_t *c);
/* Owning worker, on accept: enter c in the worker's fd-indexed table (grown as needed). */
void conn_register(struct worker *w, conn_t *c);
/* The connection's worker: the connection with this fd and id, or NULL when it is gone. */
conn_t *conn_lookup(struct worker *w, int fd, uint64_t id);

/* ---- output: encoding, holds for the persistence store, writing (conn_out.c) ---- */

/* Encode a packet onto the output buffer (at the connection's protocol level). Drops it (returning
 * false) when it exceeds the client's Maximum Packet Size. */
bool conn_send(conn_t *c, const mqtt_packet_t *p);
/* Encode a PUBLISH of msg for this connection: the shared encoding by reference when it fits the
 * receiver, else its own (v5 properties, topic alias, DUP). False when it exceeds the client's
 * Maximum Packet Size or the connection is closed; counts msgs_out otherwise. */
bool conn_send_publish(conn_t *c, msg_t *m, uint8_t qos, uint8_t retain, uint8_t dup, uint16_t id,
                       const uint32_t *ids, uint32_t n_ids);
/* Ask the worker to flush this connection at the end of the loop turn. */
void conn_want_flush(conn_t *c);
/* Write as much output as the socket takes (up to the first hold). Returns false if the connection
 * broke; the caller closes it. Arms EPOLLOUT when the socket is full. */
bool conn_write(conn_t *c);
/* Persistence: what is appended next must not reach the client before the records this thread
 * gave the store are committed (a PUBACK for a message, a QoS 2 packet id). No-op without
 * persistence or when everything is already committed. */
void conn_hold_durable(conn_t *c);
/* Bytes of c->out that may be written now (everything before the first hold). */
size_t conn_writable(const conn_t *c);
/* Owning worker (worker_release_holds): drop c's holds up to `committed`; true if some remain, the
 * oldest waiting for *first. */
bool conn_release_holds(conn_t *c, uint64_t committed, uint64_t *first);
/* Closing c with a reason: write the output not held for the store and, once all of it went, drop
 * the held rest (the packets that wait for a commit: as a crash would; the session keeps their
 * state) so that what is sent next (a DISCONNECT) is not stuck behind them and discarded with
 * them. False when some output is still held. */
bool conn_drop_held(conn_t *c);

/* ---- the end of a connection (conn_close.c) ---- */

/* A protocol error: log `why`, send CONNACK (before CONNECT completed) or DISCONNECT (v5) carrying
 * reason code `rc` where the spec allows, then close. */
void conn_fail(conn_t *c, uint8_t rc, const char *why);
/* Close: flush what can be flushed, detach from the session (its will: will.c). Does nothing when
 * c is already closed, so any path may call it; c stays valid until the end of the turn. With
 * c->linger set (conn_fail after a DISCONNECT or CONNACK with a reason code), the socket's write
 * side is shut and what the client still sends is read and discarded for a while (at most
 * LINGER_MS and LINGER_BYTES) before the fd is closed: closing a socket with unread input resets
 * it, and the client would fail on a broken pipe instead of reading why it was disconnected. */
void conn_close(conn_t *c, const char *why);
/* A draining connection (c->draining): read and discard; the fd is closed at EOF, error, or once
 * the time or byte budget is spent (`expired`). */
void conn_drain(conn_t *c, bool expired);
/* Free a closed connection (CONN_CLOSED, fd released): only from the worker's flush of the end of
 * the loop turn, when nothing on the stack refers to it any more. */
void conn_free(conn_t *c);

/* Packet handlers (handle_*.c), called by the dispatcher in conn.c. Each returns MQTT_RC_SUCCESS or
 * the reason code to fail the connection with. */
uint8_t handle_connect(conn_t *c, mqtt_packet_t *p);
uint8_t handle_publish(conn_t *c, mqtt_packet_t *p);
uint8_t handle_ack(conn_t *c, mqtt_packet_t *p); /* PUBACK PUBREC PUBREL PUBCOMP */
uint8_t handle_subscribe(conn_t *c, mqtt_packet_t *p);
uint8_t handle_unsubscribe(conn_t *c, mqtt_packet_t *p);
uint8_t handle_disconnect(conn_t *c, mqtt_packet_t *p);
/* AUTH: the rest of a SCRAM exchange begun by CONNECT, or a re-authentication (handle_auth.c). */
uint8_t handle_auth(conn_t *c, mqtt_packet_t *p);
/* CONNECT named an Authentication Method: 0x8C if it is not one this listener offers, else parse
 * the client-first message in its Authentication Data into a new c->scram and return success with
 * *user set (malloc'ed: the SCRAM user name) -- or MQTT_RC_NOT_AUTHORIZED when it is malformed. */
uint8_t auth_begin_connect(conn_t *c, const mqtt_props_t *props, char **user);
/* Answer the client-first kept in c->scram with AUTH 0x18 (server-first). */
void auth_send_challenge(conn_t *c);
/* The server-final message waiting for the CONNACK (connect_req), set by handle_auth. */
void connect_req_set_auth_final(struct connect_req *rq, const char *final, size_t n);
/* CONNECT named an Authentication Method and a plugin registered MOSQ_EVT_EXT_AUTH_START: ask the
 * plugins (plugin.h). Returns MQTT_RC_SUCCESS when a plugin took the method (it answers the CONNECT
 * itself once c->pending is set: auth_plugin_connect), MQTT_RC_BAD_AUTH_METHOD when none did (the
 * caller goes on to SCRAM), else the CONNACK's refusal. */
struct auth_plugin_answer {
    int rc;         /* PLUGIN_EXT_SUCCESS or PLUGIN_EXT_CONTINUE */
    void *data;     /* for the CONNACK / AUTH (owned), or NULL */
    uint16_t len;
    char *username; /* mosquitto_set_username during the call (owned), when changed */
    bool username_changed;
};
uint8_t auth_plugin_start(conn_t *c, const mqtt_packet_t *p, const char *id, size_t idlen,
                          struct auth_plugin_answer *a);
/* After auth_plugin_start took the method and c->pending is set: the CONNACK now (plugin said
 * success), or AUTH 0x18 and wait for the client's AUTH. */
uint8_t auth_plugin_connect(conn_t *c, struct auth_plugin_answer *a);
/* A plugin gave the client another user name while authenticating it (mosquitto_set_username):
 * rq takes `name` (heap, NULL: none). */
void connect_req_set_username(struct connect_req *rq, char *name);
/* Its session was moved here from cluster node `owner` (cluster.c): once attached, that node is
 * told to let it go (cluster_take_confirm). */
void connect_req_set_moved(struct connect_req *rq, const char *owner);
/* The waiting CONNECT's client id and user name (NULL: none), for the plugins (handle_auth.c). */
const char *connect_req_id(const struct connect_req *rq);
const char *connect_req_username(const struct connect_req *rq);
/* The session's old connection is gone: attach and answer the waiting CONNECT. */
uint8_t connect_resume(conn_t *c);
void connect_req_free(struct connect_req *rq);

/* Free the topic alias tables in both directions (conn_out.c; called by conn_free). */
void conn_free_aliases(conn_t *c);

/* The client's address as Mosquitto gives it to plugins (mosquitto_client_address): c->peer
 * without its port ("unix:NAME" as is). */
void conn_address(const conn_t *c, char *out, size_t n);

#endif
