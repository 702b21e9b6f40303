/* client-int.h -- libtombo's internal types, shared by the files of src/client (never installed).
 * Types only: each file's functions are declared in the header named after it (net.h, session.h,
 * ...), so a file's includes say what it calls.
 *
 * Design: one struct per client, guarded by one recursive mutex (callbacks run with it held so
 * they may call back into the library). Outgoing publishes are encoded once, at tombo_publish,
 * into an omsg_t kept in one ordered list: the in-flight QoS 1/2 messages and, behind them, the
 * messages waiting for a window slot or a connection. Retransmission after a reconnect re-sends the
 * same bytes with the DUP bit set. Input is read into one growable buffer and every complete packet
 * in it is decoded zero-copy by the shared codec (src/mqtt) and dispatched. */
#ifndef TOMBO_CLIENT_INT_H
#define TOMBO_CLIENT_INT_H

#include <pthread.h>

#include "mqtt/packet.h"
#include "tombo/client.h"

/* A property list: an mqtt_props_t the codec can encode directly, plus the storage its views
 * point into when we own it (`owned`). A callback's view wraps a decoded mqtt_props_t and owns
 * nothing. Ownership: strings[] and users[] are malloc'd copies freed by tombo_props_free. */
struct tombo_props {
    mqtt_props_t mp;
    bool owned;
    uint8_t *strings[16];      /* owned copies of string/binary values, indexed by slot */
    mqtt_strpair_t *users;     /* owned user property array (mp.user points here) */
    uint32_t users_cap;
};

/* Byte buffer: data in p[off..len). */
typedef struct tbuf {
    uint8_t *p;
    size_t off, len, cap;
} tbuf_t;

enum omsg_state { OM_QUEUED, OM_WAIT_PUBACK, OM_WAIT_PUBREC, OM_WAIT_PUBCOMP };

/* One outgoing PUBLISH, encoded. Ownership: the client's list owns it. */
typedef struct omsg {
    struct omsg *next;
    uint16_t mid;
    uint8_t qos;
    uint8_t state;     /* enum omsg_state */
    size_t len;
    uint8_t data[];    /* the whole encoded PUBLISH; data[0] bit 3 is DUP */
} omsg_t;

/* A subscription kept for re-subscribing after a lost session. */
typedef struct subrec {
    struct subrec *next;
    char *filter;
    tombo_sub_opts_t opts;
    tombo_props_t *props; /* owned copy or NULL */
} subrec_t;

enum conn_state { CS_IDLE, CS_CONNECTING, CS_CONNECTED, CS_CLOSING };

/* How bytes move on the socket (transport.c): plain TCP or TLS. net.c reads and writes through it
 * and nothing else in the library knows which one a connection uses. */
typedef struct transport_ops transport_ops_t;

/* The client's TLS state (transport.c). Ownership: ctx, ssl, session and sni are the client's;
 * ssl lives from the TCP connect to net_close, session (the last connection's, for resumption)
 * until the settings change or the client is destroyed. */
typedef struct client_tls {
    struct ssl_ctx_st *ctx;          /* NULL: plain TCP */
    struct ssl_st *ssl;              /* the current connection's */
    struct ssl_session_st *session;  /* offered to the next handshake */
    char *sni;                       /* tombo_tls_options_t.server_name, or NULL */
    bool insecure;
    bool handshake_done;
    tombo_err_t failed;              /* the handshake's failure, returned again until closed */
    char err[600];                   /* tombo_tls_error() */
} client_tls_t;

/* Topic aliases we assign to the topics we publish, for the current connection (alias.c).
 * Ownership: ent[1..max] topics and both arrays belong to the client; alias_out_reset frees them. */
typedef struct alias_out {
    struct alias_ent *ent;  /* indexed by alias 1..max; ent[0] unused */
    uint16_t *bucket;       /* hash buckets: first alias of each chain, 0 = empty */
    uint32_t mask;          /* buckets - 1 */
    uint16_t max;           /* aliases usable now: min(option, broker's Topic Alias Maximum); 0 = off */
    uint16_t used;          /* aliases 1..used are bound */
    uint16_t head, tail;    /* recency list: most and least recently sent */
} alias_out_t;

struct tombo_client {
    pthread_mutex_t lock;

    /* Options; every pointer inside is an owned copy. */
    tombo_options_t opts;
    char *client_id;
    tombo_props_t *will_props, *connect_props;
    /* Enhanced authentication (auth.c): the exchange in progress (owned) or NULL, and the last
     * SCRAM message we made, which the CONNECT or AUTH being encoded points into. */
    struct scram_client *scram;
    char scram_out[1024];

    /* Callbacks. */
    void *user;
    tombo_on_connect_cb on_connect;
    tombo_on_disconnect_cb on_disconnect;
    tombo_on_message_cb on_message;
    tombo_on_publish_cb on_publish;
    tombo_on_subscribe_cb on_subscribe;
    tombo_on_unsubscribe_cb on_unsubscribe;
    tombo_on_log_cb on_log;
    int log_mask;

    /* Connection. */
    char *host;
    int port;
    int keepalive;          /* seconds, ours; server_keepalive overrides it once connected */
    int fd;                 /* -1 when not connected */
    const transport_ops_t *tr; /* the transport of the open connection (transport.h) */
    client_tls_t tls;
    int wake_fd;            /* eventfd: wakes a loop sleeping in poll() */
    enum conn_state state;
    unsigned gen;           /* bumped each time a connection is opened or closed */
    int polling;            /* loop threads inside poll() on fd: closing is deferred to them */
    bool user_disconnect;   /* tombo_disconnect() was called: no reconnect, loop_forever ends */
    tombo_err_t close_err;  /* why a deferred close happens */
    tombo_err_t last_err;   /* why the last connection ended (TOMBO_OK: tombo_disconnect) */
    tbuf_t in, out;
    uint64_t last_in_ms, last_out_ms, ping_sent_ms, connect_sent_ms;

    /* Limits the broker gave in CONNACK (v5). */
    uint16_t server_receive_max;
    uint32_t server_max_packet;
    uint8_t server_max_qos;
    bool server_retain;
    int server_keepalive;   /* -1: none */

    /* Outgoing publishes (see the design note). */
    omsg_t *head, *tail;
    size_t inflight, queued;
    uint16_t last_mid;
    uint16_t *done0;        /* QoS 0 mids written, reported by the loop through on_publish */
    size_t done0_n, done0_cap;

    /* Incoming. */
    uint8_t qos2_in[8192];  /* bit per packet id: QoS 2 PUBLISH received, PUBREL not yet */
    uint32_t qos2_in_n;     /* bits set in qos2_in: our side of the broker's Receive Maximum */
    char **aliases;         /* topic alias table, opts.topic_alias_max entries */
    alias_out_t alias_out;  /* outgoing aliases (ours), reset per connection */
    char *topic_buf;
    size_t topic_cap;

    /* Subscriptions, for re-subscribing. */
    subrec_t *subs;

    /* Reconnect. */
    bool reconnect_pending;
    uint64_t reconnect_at_ms;
    int reconnect_tries;
    uint64_t rng;
    bool was_connected;

    /* Loop thread. */
    pthread_t thread;
    bool thread_running;
    volatile int stop_thread;
};

#endif
