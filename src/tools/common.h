/* common.h -- what tombo-pub and tombo-sub share: the mosquitto_pub/sub common flags, -D MQTT 5
 * properties, building the client from them, and mosquitto-compatible error messages. */
#ifndef TOMBO_TOOLS_COMMON_H
#define TOMBO_TOOLS_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "tombo/client.h"

enum tool_kind { TOOL_PUB, TOOL_SUB };

/* Ownership: strings point into argv, url_buf or file_lines; props and file_lines are owned and freed
 * by tool_cfg_free. */
typedef struct tool_cfg {
    enum tool_kind kind;
    const char *name;         /* "tombo-pub" / "tombo-sub" */
    const char *host;
    int port;                 /* 0: host is a Unix socket path (--unix) */
    const char *id;
    const char *id_prefix;
    char id_buf[64];
    char url_buf[1024];       /* -L: host, user, password and topic point in here */
    int keepalive;
    const char *username, *password;
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
    char **file_lines;        /* options file lines that argv-like pointers above may point into (owned) */
    int nfile_lines;
    /* -D properties per command. */
    tombo_props_t *p_connect, *p_publish, *p_subscribe, *p_unsubscribe, *p_disconnect, *p_will;
} tool_cfg_t;

void tool_cfg_init(tool_cfg_t *cfg, enum tool_kind kind);
void tool_cfg_free(tool_cfg_t *cfg);
/* Try the common flag at argv[*i] (advancing *i past its arguments). Returns 1 when handled,
 * 0 when the flag is not a common one, -1 after printing an error. */
int tool_parse_common(tool_cfg_t *cfg, int argc, char **argv, int *i);
/* Read the options file mosquitto_pub/sub read before their arguments: $XDG_CONFIG_HOME/tombo_pub
 * (or ~/.config/tombo_pub; tombo_sub for tombo-sub), or when that does not exist mosquitto's own
 * (mosquitto_pub / mosquitto_sub), so existing setups carry over. Each line not starting with '#'
 * is a flag and, after the first space, its argument, given to parse(argc, argv) with argv[0] NULL.
 * Returns 0 (also when there is no file) or parse's negative result. */
int tool_options_file(tool_cfg_t *cfg, int (*parse)(int argc, char **argv));
/* Checks after parsing (version-dependent rules, client id). Returns 0 or -1 after an error. */
int tool_cfg_finish(tool_cfg_t *cfg);
/* Print "Error: ..." (unless --quiet) followed by the usage hint as mosquitto does. */
void tool_usage_error(const tool_cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Create the client from cfg (debug logging to stdout with -d). NULL after printing an error. */
tombo_client_t *tool_client_new(tool_cfg_t *cfg);
/* Connect, printing mosquitto's message on failure. Returns 0, or the exit code: 1, or 16 when the
 * SOCKS5 proxy failed (as mosquitto_pub). */
int tool_connect(tool_cfg_t *cfg, tombo_client_t *c);
/* Print the CONNACK refusal text. */
void tool_connack_error(const tool_cfg_t *cfg, int reason);
/* Message for stderr unless --quiet. */
void tool_err(const tool_cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
