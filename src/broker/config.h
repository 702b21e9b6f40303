/* config.h -- the broker's configuration: mosquitto.conf syntax and meaning, and the command line.
 *
 * config_init() sets Mosquitto 2's defaults, config_load() / config_args() read a config file (and
 * the files of its include_dir lines) and the command line, and resolve what depends on the whole
 * file (listeners, local-only mode, allow_anonymous). The result is plain data: the broker reads the
 * fields directly. Every error is "FILE:LINE: message", so a bad config stops start-up with a line
 * a user can act on. docs/config.md lists each directive with its meaning and default.
 *
 * Ownership: every char * in these structs is heap memory owned by the config and freed by
 * config_free(). Thread-safety: build the config on one thread before the workers start; afterwards
 * it is read-only and may be read from any thread. */
#ifndef TOMBO_BROKER_CONFIG_H
#define TOMBO_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* log_type and log_dest hold the log's own TLOG_* and TLOG_DEST_* bits (base/log.h); the parser
 * maps Mosquitto's names to them. */
#include "base/log.h"

/* Most -p ports the command line takes. */
#define TOMBO_MAX_CMD_PORTS 16

/* TLS directives of a listener, indexing tombo_listener.tls_where (where each was set). */
enum tls_where {
    TLSW_CAFILE, TLSW_CAPATH, TLSW_CERTFILE, TLSW_KEYFILE, TLSW_CRLFILE, TLSW_DHPARAMFILE, TLSW_TLS_VERSION,
    TLSW_CIPHERS, TLSW_CIPHERS_TLS13, TLSW_REQUIRE_CERTIFICATE, TLSW_USE_IDENTITY, TLSW_USE_SUBJECT,
    TLSW_PSK_HINT, TLSW_PSK_FILE, TLSW_N
};

/* A `plugin PATH` (or `auth_plugin PATH`) line and the `plugin_opt_KEY VALUE` / `auth_opt_KEY VALUE`
 * lines after it (plugin.h). */
struct tombo_plugin_conf {
    char *path;
    char *where; /* "FILE:LINE" of the plugin line */
    int n_opts;
    char **keys, **values; /* KEY without its plugin_opt_ / auth_opt_ prefix */
    /* auth_plugin_deny_special_chars after this plugin line (default true): a version 4 plugin's
     * ACL check denies a client whose id or user name holds '+' or '#' without asking it. */
    bool deny_special_chars;
};

/* One listening socket: MQTT over TCP, or over TLS when certfile+keyfile or psk_hint are set, and
 * either over WebSockets with `protocol websockets` (ws, or wss with TLS: transport_ws.c). No field
 * here stands for a setting the broker would ignore. The security fields hold the values that apply to clients of this
 * listener: after config_finish() they are the global ones (copied) unless per_listener_settings
 * is true, in which case they come from the lines that followed this `listener`. */
struct tombo_listener {
    uint16_t port;
    char *address;       /* bind address or host name; NULL: all interfaces (IPv4 and IPv6);
                          * with port 0, the path of a Unix socket (`listener 0 PATH`) */
    int socket_domain;   /* `socket_domain`: AF_INET or AF_INET6; AF_UNSPEC (0): both */
    char *bind_interface; /* `bind_interface`: listen on this interface's address (listener.c) */
    bool optional;       /* local-only ::1 listener: failing to bind it is not fatal */
    uint8_t max_qos;     /* `max_qos`, default 2 */
    int max_connections; /* `max_connections`, default -1 = unlimited */
    bool websockets;     /* `protocol websockets`: MQTT over WebSockets (RFC 6455) */
    char *http_dir;      /* `http_dir`: canonical directory whose files a websockets listener serves (ws_files.c) */
    int max_topic_alias; /* `max_topic_alias`: aliases a 5.0 client may set, default 10 (0: none) */
    bool use_username_as_clientid; /* the username replaces the client id; no username, no entry */
    char *mount_point;   /* `mount_point`: this listener's clients live under this prefix (mount.h) */

    /* Security (see above). */
    int allow_anonymous; /* 0/1 after config_finish (-1 while unset) */
    bool allow_zero_length_clientid;
    char *auto_id_prefix;
    char *password_file;
    char *acl_file;
    struct tombo_plugin_conf *plugins; /* with per_listener_settings true only (else cfg->plugins) */
    int n_plugins;

    /* TLS, with mosquitto.conf's meaning (docs/security.md). Strings NULL when not set. The listener
     * is TLS when certfile (+keyfile) or psk_hint is set (tombo_listener_tls). */
    char *cafile, *capath, *certfile, *keyfile, *crlfile, *dhparamfile;
    char *tls_version;   /* minimum: tlsv1.2 (default) or tlsv1.3 */
    char *ciphers;       /* TLS 1.2 cipher list */
    char *ciphers_tls13; /* `ciphers_tls1.3` */
    char *psk_hint;      /* PSK on this listener */
    char *psk_file;      /* security setting: global unless per_listener_settings */
    bool require_certificate;
    bool use_identity_as_username; /* certificate CN (or PSK identity) is the username */
    bool use_subject_as_username;  /* certificate subject (RFC 2253) is the username */
    char *tls_where[TLSW_N];       /* "FILE:LINE" of each TLS directive, for start-up errors */

    char *origin; /* where it was defined, for messages: "FILE:LINE", "command line -p" or "default" */
};

/* Bridges (mosquitto.conf's `connection` sections; bridge.c, docs/bridges.md). */
enum bridge_dir { BRIDGE_OUT = 1, BRIDGE_IN = 2, BRIDGE_BOTH = 3 };
enum bridge_start { BRIDGE_AUTOMATIC = 0, BRIDGE_LAZY, BRIDGE_ONCE };

/* `topic PATTERN [DIR [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`: local_topic and remote_topic are the
 * prefixes joined with the pattern (the filters subscribed on each side). */
struct tombo_bridge_topic {
    char *pattern;       /* "" when given as "" (the prefixes are then the whole topic) */
    char *local_prefix;  /* NULL: none */
    char *remote_prefix; /* NULL: none */
    char *local_topic;   /* local_prefix + pattern */
    char *remote_topic;  /* remote_prefix + pattern */
    uint8_t dir;         /* enum bridge_dir */
    uint8_t qos;
};

struct tombo_bridge_addr {
    char *host;
    uint16_t port;
};

struct tombo_bridge {
    char *name;          /* `connection NAME` */
    char *where;         /* "FILE:LINE" of that line */
    struct tombo_bridge_addr *addrs;
    int n_addrs;
    struct tombo_bridge_topic *topics;
    int n_topics;
    bool round_robin;              /* default false */
    char *remote_clientid;         /* default "HOSTNAME.NAME" */
    char *remote_username, *remote_password;
    char *local_clientid;          /* default "local." + remote_clientid */
    char *local_username;          /* the local session's user name (not ACL-checked, as Mosquitto 2.0); NULL: none */
    char *local_password;          /* checked with local_username against password_file/plugins (bridge.c) */
    bool cleansession;             /* default false */
    int local_cleansession;        /* default (-1 while unset): cleansession */
    uint16_t keepalive;            /* keepalive_interval, default 60 */
    bool notifications;            /* default true */
    bool notifications_local_only; /* default false */
    char *notification_topic;      /* default "$SYS/broker/connection/REMOTE_CLIENTID/state" */
    uint32_t restart_base;         /* restart_timeout BASE [CAP], seconds: default 5 30 */
    uint32_t restart_cap;          /* 0: a constant BASE */
    uint8_t start_type;            /* enum bridge_start */
    uint32_t threshold;            /* lazy: queued messages that start it, default 10 */
    uint32_t idle_timeout;         /* lazy: seconds without traffic that stop it, default 60 */
    bool try_private;              /* default true */
    uint8_t protocol_version;      /* MQTT_V31/V311/V5 (3, 4, 5), default 4 */
    bool attempt_unsubscribe;      /* default true */
    bool outgoing_retain;          /* default true */
    uint32_t max_packet_size;      /* bridge_max_packet_size, 0: none */
    char *bind_address;            /* bridge_bind_address, NULL: any */
    /* TLS (bridge_*): on when cafile, capath or psk is set (bridge_tls); NULL when not set. */
    char *cafile, *capath, *certfile, *keyfile, *tls_version, *alpn, *identity, *psk;
    bool insecure;                 /* bridge_insecure: no check that the certificate names the host */
    bool require_ocsp;             /* bridge_require_ocsp: the remote must staple a good OCSP response */
};

/* Does this bridge connect over TLS? */
static inline bool tombo_bridge_tls(const struct tombo_bridge *br)
{
    return br->cafile || br->capath || br->psk;
}

/* Every field is honoured by the broker. A directive whose meaning tombo does not implement has no
 * field: config.c refuses it (or, for pure tuning that needs no code, accepts only the values whose
 * behaviour tombo already has, e.g. `upgrade_outgoing_qos false`). */
struct tombo_config {
    char *config_file; /* -c FILE, or NULL */

    /* Listeners, in the order they were defined; the default listener (port/bind_address) first. */
    struct tombo_listener *listeners;
    int n_listeners;
    bool local_only;            /* no listener configured: 127.0.0.1 and ::1 only (Mosquitto 2) */
    bool per_listener_settings; /* default false */

    /* Global security settings (the only ones when per_listener_settings is false). */
    int allow_anonymous;             /* default: false with listeners, true in local-only mode */
    bool allow_zero_length_clientid; /* default true */
    char *auto_id_prefix;            /* default "auto-" */
    char *password_file;             /* default NULL */
    char *acl_file;                  /* default NULL */
    struct tombo_plugin_conf *plugins; /* `plugin` lines, in order (per_listener_settings false) */
    int n_plugins;
    char *psk_file;                  /* default NULL: "identity:hexkey" lines for psk_hint listeners */
    char *psk_file_where;            /* its "FILE:LINE" */

    /* Persistence. */
    bool persistence;           /* default false */
    char *persistence_location; /* directory, default NULL = current directory */
    char *pid_file;             /* written with the broker's PID at start, removed at exit (NULL: none) */
    char *persistence_file;     /* default "tombo.db" (SQLite, not Mosquitto's format) */

    /* Limits. 0 means "no limit" for every one of them. */
    uint32_t max_queued_messages;   /* default 1000 */
    uint64_t max_queued_bytes;      /* default 0 */
    uint32_t max_inflight_messages; /* default 20, at most 65535 */
    uint64_t max_inflight_bytes;    /* payload bytes in flight to one client, default 0 = no limit */
    uint32_t message_size_limit;    /* default 0, at most 268435455 */
    uint32_t max_packet_size;       /* default 0 = none; when set, 20..268435460 */
    uint32_t max_keepalive;         /* default 65535, 10..65535, or 0: no limit */
    uint32_t persistent_client_expiration; /* seconds, default 0 = never */
    uint64_t memory_limit;          /* bytes of the broker's heap accounting (mem.h), default 0 */
    uint32_t connect_timeout;       /* tombo only: seconds to send CONNECT, default 10, 1..3600 */

    /* Behaviour. */
    bool set_tcp_nodelay;      /* default false */
    uint32_t sys_interval;     /* seconds, default 10, 0 = no $SYS */
    bool retain_available;     /* default true */
    bool queue_qos0_messages;  /* default false */
    /* Re-check a retained message's publisher's write access on delivery. Default false: what
     * Mosquitto 2.0 does (config__init zeroes it), though mosquitto.conf(5) says true. */
    bool check_retain_source;
    bool upgrade_outgoing_qos; /* deliver at the subscription's QoS (non-standard), default false */
    bool connection_messages;  /* default true */
    uint32_t websockets_headers_size; /* largest WebSocket opening request head, bytes; default 4096 */
    uint32_t websockets_log_level;    /* WS_LOG_* bits (transport_ws.c) of the WebSocket events logged; 0: all */

    /* Bridges, in the order of their `connection` lines. */
    struct tombo_bridge *bridges;
    int n_bridges;

    /* Logging. */
    unsigned log_type;          /* TLOG_* bits, default TLOG_DEFAULT */
    unsigned log_dest;          /* TLOG_DEST_* bits, default TLOG_DEST_STDERR */
    char *log_file;             /* for TLOG_DEST_FILE */
    bool log_timestamp;         /* default true */
    char *log_timestamp_format; /* strftime format, default NULL = seconds since the epoch */
    int log_facility;           /* syslog: -1 (default) daemon, 0..7 local0..local7 */

    /* Process. */
    int threads; /* tombo only: worker threads; default (0 before config_finish) = online cores */
    bool daemon; /* -d: run in the background once started (main.c) */
    char *user;  /* started as root: become this user once the listeners and files are open (NULL: stay) */
    char *clientid_prefixes; /* only client ids that start with this may connect (NULL: any) */
    /* HTTP endpoint (tombo only, docs/web.md): /metrics, the REST API and the dashboard. */
    uint16_t http_port;       /* `http_listener PORT [ADDRESS]`; 0 (default): no endpoint */
    char *http_address;       /* its bind address; NULL: all interfaces */
    char *http_password_file; /* basic auth against this Mosquitto password file; NULL: none */
    char *http_where;         /* "FILE:LINE" of http_listener, for start-up errors */
    char *http_password_where; /* "FILE:LINE" of http_password_file */
    char *http_certfile, *http_keyfile; /* https: PEM certificate (chain) and key; NULL: plain HTTP */
    char *http_tls_where;     /* "FILE:LINE" of the last of them, for start-up errors */
    /* Cluster on NATS JetStream (tombo only, docs/cluster.md); no cluster_node: a lone broker. */
    char *cluster_node;        /* this node's name: [A-Za-z0-9_-], 1..64 characters */
    char **cluster_urls;       /* cluster_nats_url, in order (nats://HOST:PORT) */
    int n_cluster_urls;
    char *cluster_user, *cluster_password; /* NATS user/password; NULL: none */
    char *cluster_token;       /* NATS token; NULL: none */
    int cluster_replicas;      /* cluster_kv_replicas: JetStream replicas of the buckets it creates (1..5) */
    int cluster_durability;    /* cluster_durability: 0 local (default), 1 jetstream (cluster_js.c) */
    int cluster_sessions;      /* cluster_sessions: 0 local (default), 1 jetstream (cluster_sess.c) */
    char *cluster_sessions_where; /* "FILE:LINE" of cluster_sessions, for start-up errors */
    char *cluster_where;       /* "FILE:LINE" of the first cluster_* directive, for start-up errors */
    /* TLS to NATS: cluster_nats_cafile/certfile/keyfile (PEM) and the FILE:LINE of each; NULL: none */
    char *cluster_tls_file[3], *cluster_tls_where[3]; /* [0] cafile, [1] certfile, [2] keyfile */

    /* Notes for the log once it is open (deprecated directives, local-only mode, ignored -p):
     * log_init() prints them as warnings. */
    char **warnings;
    int n_warnings;

    /* private: parser state */
    uint16_t cmd_ports[TOMBO_MAX_CMD_PORTS];
    int n_cmd_ports;
    bool verbose;
    bool default_listener_used;
    struct tombo_listener default_listener;
};

/* Mosquitto 2's defaults. Must be called before anything else. */
void config_init(struct tombo_config *cfg);

/* Read `path` (and its include_dir files) into cfg, then config_finish(). cfg comes from
 * config_init(). Returns 0, or -1 with "FILE:LINE: message" (or "FILE: message") in err; cfg then
 * holds what was read so far and must still be passed to config_free(). */
int config_load(struct tombo_config *cfg, const char *path, char *err, size_t errlen);

/* Resolve what depends on the whole configuration: the default listener, local-only mode,
 * -p ports, allow_anonymous, per-listener security, threads. config_load() and config_args() call
 * it; call it yourself only on a config filled by hand. Returns 0 or -1 with err. */
int config_finish(struct tombo_config *cfg, char *err, size_t errlen);

/* The command line: tombo [-c FILE] [-d] [-p PORT]... [-v] [-h] [--version]
 * (long forms --config-file, --port, --verbose, --daemon, --help). Loads the config file if given
 * and finishes cfg. Returns 0 to run, 1 when help or the version was printed on stdout (exit 0),
 * -1 on error (message in err; exit 1). */
int config_args(struct tombo_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Free everything cfg owns; cfg may then be config_init()ed again. */
void config_free(struct tombo_config *cfg);

/* Does this listener speak TLS? */
static inline bool tombo_listener_tls(const struct tombo_listener *l)
{
    return l->certfile || l->psk_hint;
}

/* Are a and b the same listening socket (port, address, socket_domain)? A reload matches the
 * listeners of the new file to the open ones with it. */
bool config_listener_same(const struct tombo_listener *a, const struct tombo_listener *b);

/* Where the directive a TLS error message starts with ("keyfile /x: ...") was set: its "FILE:LINE",
 * else the listener's origin. */
const char *config_tls_where(const struct tombo_listener *l, const char *msg);

/* The persistence database path: persistence_location joined with persistence_file. */
int config_persistence_path(const struct tombo_config *cfg, char *out, size_t outlen);

/* Frees n plugin entries and the array. */
void config_plugins_free(struct tombo_plugin_conf *pl, int n);

#endif
