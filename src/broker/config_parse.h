/* config_parse.h -- what the pieces of the mosquitto.conf reader share (config.c: the reader, the
 * directive table and the general handlers; config_bridge.c: the bridge directives; config_args.c:
 * the command line; config_tls.c: a listener's TLS settings checked together). Private to
 * the config*.c files: the rest of the broker uses config.h. */
#ifndef TOMBO_BROKER_CONFIG_PARSE_H
#define TOMBO_BROKER_CONFIG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"

struct parser {
    struct tombo_config *cfg;
    const char *file;
    int line;
    char *err;
    size_t errlen;
    int cur;       /* index of the listener being configured, -1 before the first `listener` */
    int bridge;    /* index of the bridge being configured, -1 before the first `connection` */
    int depth;     /* include_dir nesting */
    bool log_type_set, log_dest_set, security_set, log_file_set;
};

enum vtype { V_BOOL, V_TRIBOOL, V_INT, V_STR, V_FN };
enum scope {
    S_GLOBAL,   /* field of struct tombo_config */
    S_LISTENER, /* field of the current listener */
    S_SECURITY, /* global, or the current listener's when per_listener_settings is true */
    S_BRIDGE,   /* field of the current bridge (after a `connection` line) */
};

struct directive;
typedef int (*handler_fn)(struct parser *ps, const struct directive *d, char *val);

struct directive {
    const char *name;
    uint8_t type;
    uint8_t scope;
    uint8_t size;     /* V_INT: size of the field */
    size_t off;       /* offset in struct tombo_config (S_GLOBAL, S_SECURITY) */
    size_t loff;      /* offset in struct tombo_listener (S_LISTENER, S_SECURITY) */
    long long min, max;
    handler_fn fn;
};

/* The reader's helpers (config.c). perr: "FILE:LINE: message" into the parser's error, returns -1. */
int perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void add_warning(struct tombo_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void set_str(char **field, const char *v);
char *next_word(char **p);
int expect_end(struct parser *ps, const char *name, char *rest);
char *one_word(struct parser *ps, const char *name, char *val);
int parse_bool(struct parser *ps, const char *name, char *val, bool *out);
int parse_int(struct parser *ps, const char *name, char *val, long long lo, long long hi, long long *out);

/* Read one file and what it includes into cfg (config.c); -1 with err set on a bad line. */
int load_file(struct tombo_config *cfg, const char *path, char *err, size_t errlen);

/* The TLS settings of one listener make sense together (config_tls.c); -1 with err set. */
/* plugins: the listener has plugin lines in its scope (one may give PSK keys: checked at start-up). */
int check_tls(struct tombo_listener *l, bool plugins, char *err, size_t errlen);

/* The bridge directives (config_bridge.c). */
int h_connection(struct parser *ps, const struct directive *d, char *val);
int h_address(struct parser *ps, const struct directive *d, char *val);
int h_topic(struct parser *ps, const struct directive *d, char *val);
int h_restart_timeout(struct parser *ps, const struct directive *d, char *val);
int h_start_type(struct parser *ps, const struct directive *d, char *val);
int h_bridge_protocol_version(struct parser *ps, const struct directive *d, char *val);
int h_local_cleansession(struct parser *ps, const struct directive *d, char *val);
void bridge_free(struct tombo_bridge *br);
/* A bridge's settings make sense together; fill in the defaults that depend on others. */
int bridge_finish(struct tombo_config *cfg, struct tombo_bridge *br, char *err, size_t errlen);

#endif
