/* tool_cfg.h -- the settings tombo-pub and tombo-sub run with, filled from the options file and the
 * command line (args.h, url.h, options_file.h) and turned into a client (client_setup.h); and the
 * rules and messages all of those share. */
#ifndef TOMBO_TOOLS_TOOL_CFG_H
#define TOMBO_TOOLS_TOOL_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "tombo/client.h"

enum tool_kind { TOOL_PUB, TOOL_SUB, TOOL_RR };

/* Ownership: strings point into argv, url_buf or file_lines; props and file_lines are owned and freed
 * by tool_cfg_free. */
typedef struct tool_cfg {
    enum tool_kind kind;
    const char *name;         /* "tombo-pub" / "tombo-sub" / "tombo-rr" */
    const char *file_name;    /* "tombo_pub" ...: options file, default client id */
    const char *mosquitto_name; /* "mosquitto_pub" ...: its options file */
    const char *host;
    int port;                 /* 0: host is a Unix socket path (--unix) */
    const char *id;
    const char *id_prefix;
    char id_buf[64];
    char url_buf[1024];       /* -L: host, user, password and topic point in here */
    int keepalive;
    const char *username, *password;
    const char *auth_method;  /* --auth-method: v5 enhanced authentication (SCRAM-SHA-256) */
    int version;
    bool debug, quiet;
    bool clean;
    long long session_expiry; /* -1: not given */
    int qos;
    bool retain;
    const char **topics;
    int ntopics;
    const char *will_topic, *will_payload;
    int will_qos;
    bool will_retain;
    const char *bind_address;
    int max_inflight;
    bool reconnect;           /* reconnect (1 s delay) after a lost connection, as mosquitto_sub does */
    const char *socks5_host, *socks5_username, *socks5_password; /* --proxy, in proxy_buf */
    int socks5_port;
    char proxy_buf[1024];
    /* TLS (--cafile ... --tls-alpn, mqtts://): on when a CA source, a PSK or mqtts:// is given. */
    tombo_tls_options_t tls;
    bool tls_os_certs;        /* --tls-use-os-certs or mqtts://: the system's CAs */
    char **file_lines;        /* options file lines that argv-like pointers above may point into (owned) */
    int nfile_lines;
    /* -D properties per command. */
    tombo_props_t *p_connect, *p_publish, *p_subscribe, *p_unsubscribe, *p_disconnect, *p_will;
} tool_cfg_t;

void tool_cfg_init(tool_cfg_t *cfg, enum tool_kind kind);
void tool_cfg_free(tool_cfg_t *cfg);
/* Print "Error: ..." (unless --quiet) followed by the usage hint as mosquitto does. */
void tool_usage_error(const tool_cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Message for stderr unless --quiet. */
void tool_err(const tool_cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decimal number in [lo, hi], the whole of s. False for anything else (no message). */
bool tool_parse_int(const char *s, long long lo, long long hi, long long *out);
/* The help lines of the TLS flags both tools take (args.c). */
extern const char tool_tls_usage[];
/* Add a topic (-t, -L): tombo-pub takes one. False after printing an error, or out of memory. */
bool tool_add_topic(tool_cfg_t *cfg, const char *t);

#endif
