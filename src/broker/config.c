/* config.c -- the mosquitto.conf reader: the directive table, the general handlers and the checks
 * run once the file is read. Bridges are in config_bridge.c, a listener's TLS checks in
 * config_tls.c, the command line in config_args.c; what they share is config_parse.h.
 *
 * Design: one table, `directives[]`, says for each directive its value type, where the value goes
 * (the config, the current listener, or the security settings, which are per listener only when
 * per_listener_settings is true), its range, or the handler that parses it. The reader splits each
 * line into a name and a value and lets the table do the rest; nothing is silently ignored: a name
 * that is not in the table is an error.
 *
 * The project's rule: a directive that is accepted works. A Mosquitto directive whose meaning the
 * broker does not implement (TLS, WebSockets, bridges, plugins, ...) is in `unsupported[]` and
 * stops start-up with "FILE:LINE: NAME: not supported yet by tombo (what to do instead)", never a
 * silent no-op: a TLS listener that quietly served plain MQTT would be the worst bug tombo could
 * have. The same goes for single values (`protocol websockets`, `log_dest topic`). Pure tuning
 * that needs no code because tombo's behaviour already is what the value asks for is accepted
 * (autosave_interval: tombo commits every message).
 * tests/broker/test_directives.py holds every mosquitto.conf(5) directive with its status and
 * fails when this file accepts a directive it does not list.
 *
 * Syntax (mosquitto.conf): one directive per line; the name, then the value after the first run of
 * blanks. Lines whose first non-blank character is '#' are comments; blank lines are skipped;
 * trailing blanks and CR are dropped. String values (paths, prefixes, formats) are the rest of the
 * line, as in Mosquitto. For single-word values (numbers, booleans, keywords) anything after the
 * word must be a '#' comment: Mosquitto ignores such trailing text, tombo only accepts comments. */
#include "broker/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "broker/config_parse.h"

#define MAX_INCLUDE_DEPTH 8

/* ---- small helpers ------------------------------------------------------------------------- */

void set_str(char **field, const char *v)
{
    free(*field);
    *field = xstrdup(v);
}

void add_warning(struct tombo_config *cfg, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char **w = realloc(cfg->warnings, (size_t)(cfg->n_warnings + 1) * sizeof(*w));
    if (!w)
        abort();
    cfg->warnings = w;
    w[cfg->n_warnings++] = xstrdup(buf);
}

/* ---- listeners ----------------------------------------------------------------------------- */

static void listener_defaults(struct tombo_listener *l)
{
    memset(l, 0, sizeof(*l));
    l->port = 1883;
    l->max_qos = 2;
    l->max_connections = -1;
    l->max_topic_alias = 10;
    l->allow_anonymous = -1;
    l->allow_zero_length_clientid = true;
    l->auto_id_prefix = xstrdup("auto-");
}

/* The TLS directives, indexed by enum tls_where. */
static const char *const tls_names[TLSW_N] = {
    "cafile", "capath", "certfile", "keyfile", "crlfile", "dhparamfile", "tls_version", "ciphers",
    "ciphers_tls1.3", "require_certificate", "use_identity_as_username", "use_subject_as_username",
    "psk_hint", "psk_file",
};

/* The listener's owned strings, for freeing and copying. */
#define LISTENER_STRS(l)                                                                                   \
    &(l)->address, &(l)->auto_id_prefix, &(l)->password_file, &(l)->acl_file, &(l)->origin, &(l)->cafile,  \
        &(l)->capath, &(l)->certfile, &(l)->keyfile, &(l)->crlfile, &(l)->dhparamfile, &(l)->tls_version,  \
        &(l)->ciphers, &(l)->ciphers_tls13, &(l)->psk_hint, &(l)->psk_file, &(l)->bind_interface,      \
        &(l)->mount_point, &(l)->http_dir

void config_plugins_free(struct tombo_plugin_conf *pl, int n)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < pl[i].n_opts; k++) {
            free(pl[i].keys[k]);
            free(pl[i].values[k]);
        }
        free(pl[i].keys);
        free(pl[i].values);
        free(pl[i].path);
        free(pl[i].where);
    }
    free(pl);
}

static struct tombo_plugin_conf *plugins_copy(const struct tombo_plugin_conf *src, int n)
{
    if (n == 0)
        return NULL;
    struct tombo_plugin_conf *d = xcalloc((size_t)n, sizeof(*d));
    for (int i = 0; i < n; i++) {
        d[i].path = xstrdup(src[i].path);
        d[i].where = xstrdup(src[i].where);
        d[i].n_opts = src[i].n_opts;
        d[i].deny_special_chars = src[i].deny_special_chars;
        d[i].keys = xcalloc((size_t)src[i].n_opts + 1, sizeof(char *));
        d[i].values = xcalloc((size_t)src[i].n_opts + 1, sizeof(char *));
        for (int k = 0; k < src[i].n_opts; k++) {
            d[i].keys[k] = xstrdup(src[i].keys[k]);
            d[i].values[k] = xstrdup(src[i].values[k]);
        }
    }
    return d;
}

static void listener_free(struct tombo_listener *l)
{
    config_plugins_free(l->plugins, l->n_plugins);
    char **strs[] = {LISTENER_STRS(l)};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    for (int i = 0; i < TLSW_N; i++)
        free(l->tls_where[i]);
    memset(l, 0, sizeof(*l));
}

/* Deep copy (the copy owns its strings). */
static void listener_copy(struct tombo_listener *dst, const struct tombo_listener *src)
{
    *dst = *src;
    char **strs[] = {LISTENER_STRS(dst)};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        *strs[i] = xstrdup(*strs[i]);
    for (int i = 0; i < TLSW_N; i++)
        dst->tls_where[i] = xstrdup(src->tls_where[i]);
    dst->plugins = plugins_copy(src->plugins, src->n_plugins);
}

static struct tombo_listener *listener_add(struct tombo_config *cfg)
{
    struct tombo_listener *a = realloc(cfg->listeners, (size_t)(cfg->n_listeners + 1) * sizeof(*a));
    if (!a)
        abort();
    cfg->listeners = a;
    struct tombo_listener *l = &a[cfg->n_listeners++];
    listener_defaults(l);
    return l;
}

/* ---- the parser ---------------------------------------------------------------------------- */


int perr(struct parser *ps, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ps->err && ps->errlen) {
        if (ps->line > 0)
            snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->file, ps->line, msg);
        else
            snprintf(ps->err, ps->errlen, "%s: %s", ps->file, msg);
    }
    return -1;
}

/* The listener that per-listener directives apply to: the current one, or, before any `listener`
 * line, the default listener (which this then enables, as Mosquitto does). */
static struct tombo_listener *cur_listener(struct parser *ps, const char *name)
{
    struct tombo_config *cfg = ps->cfg;
    if (ps->cur >= 0)
        return &cfg->listeners[ps->cur];
    if (!cfg->default_listener_used) {
        cfg->default_listener_used = true;
        add_warning(cfg,
                    "%s:%d: '%s' before any 'listener' line configures the default listener "
                    "(port 1883 on all interfaces unless 'port'/'bind_address' say otherwise), "
                    "as in Mosquitto",
                    ps->file, ps->line, name);
    }
    return &cfg->default_listener;
}


#define CFG_FIELD(f) offsetof(struct tombo_config, f), 0
#define LST_FIELD(f) 0, offsetof(struct tombo_listener, f)
#define SEC_FIELD(f) offsetof(struct tombo_config, f), offsetof(struct tombo_listener, f)
#define CFG_SIZE(f) sizeof(((struct tombo_config *)0)->f)
#define LST_SIZE(f) sizeof(((struct tombo_listener *)0)->f)

#define BOOL_G(n) {#n, V_BOOL, S_GLOBAL, 0, CFG_FIELD(n), 0, 0, NULL}
#define INT_G(n, lo, hi) {#n, V_INT, S_GLOBAL, CFG_SIZE(n), CFG_FIELD(n), lo, hi, NULL}
#define STR_G(n) {#n, V_STR, S_GLOBAL, 0, CFG_FIELD(n), 0, 0, NULL}
#define BOOL_L(n) {#n, V_BOOL, S_LISTENER, 0, LST_FIELD(n), 0, 0, NULL}
#define INT_L(n, lo, hi) {#n, V_INT, S_LISTENER, LST_SIZE(n), LST_FIELD(n), lo, hi, NULL}
#define STR_L(n) {#n, V_STR, S_LISTENER, 0, LST_FIELD(n), 0, 0, NULL}
#define BOOL_S(n) {#n, V_BOOL, S_SECURITY, 0, SEC_FIELD(n), 0, 0, NULL}
#define STR_S(n) {#n, V_STR, S_SECURITY, 0, SEC_FIELD(n), 0, 0, NULL}
#define FN(n, f) {#n, V_FN, S_GLOBAL, 0, 0, 0, 0, 0, f}
#define BR_FIELD(f) 0, offsetof(struct tombo_bridge, f)
#define BR_SIZE(f) sizeof(((struct tombo_bridge *)0)->f)
#define BOOL_B(n, f) {#n, V_BOOL, S_BRIDGE, 0, BR_FIELD(f), 0, 0, NULL}
#define INT_B(n, f, lo, hi) {#n, V_INT, S_BRIDGE, BR_SIZE(f), BR_FIELD(f), lo, hi, NULL}
#define STR_B(n, f) {#n, V_STR, S_BRIDGE, 0, BR_FIELD(f), 0, 0, NULL}
#define FN_B(n, f) {#n, V_FN, S_BRIDGE, 0, 0, 0, 0, 0, f}

/* Split the next blank-separated word off *p (NUL-terminating it); NULL at end of line. */
char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

/* After the last word of a value: only blanks or a '#' comment may follow. */
int expect_end(struct parser *ps, const char *name, char *rest)
{
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (*rest && *rest != '#')
        return perr(ps, "'%s': unexpected extra argument '%s'", name, rest);
    return 0;
}

/* One word value: the whole value must be that word (plus an optional comment). */
char *one_word(struct parser *ps, const char *name, char *val)
{
    char *p = val;
    char *w = next_word(&p);
    if (!w || *w == '#') {
        perr(ps, "'%s' needs a value", name);
        return NULL;
    }
    if (expect_end(ps, name, p) < 0)
        return NULL;
    return w;
}

int parse_bool(struct parser *ps, const char *name, char *val, bool *out)
{
    char *w = one_word(ps, name, val);
    if (!w)
        return -1;
    if (!strcmp(w, "true"))
        *out = true;
    else if (!strcmp(w, "false"))
        *out = false;
    else
        return perr(ps, "'%s' must be true or false, not '%s'", name, w);
    return 0;
}

int parse_int(struct parser *ps, const char *name, char *val, long long lo, long long hi, long long *out)
{
    char *w = one_word(ps, name, val);
    if (!w)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(w, &end, 10);
    if (end == w || *end || errno == ERANGE || !(isdigit((unsigned char)w[0]) || w[0] == '-'))
        return perr(ps, "'%s' must be a number from %lld to %lld, not '%s'", name, lo, hi, w);
    if (v < lo || v > hi)
        return perr(ps, "'%s' must be a number from %lld to %lld, not %lld", name, lo, hi, v);
    *out = v;
    return 0;
}

static void store_int(void *field, size_t size, long long v)
{
    switch (size) {
    case 1: { int8_t x = (int8_t)v; memcpy(field, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(field, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(field, &x, 4); break; }
    default: { int64_t x = (int64_t)v; memcpy(field, &x, 8); break; }
    }
}

/* The struct a directive's value goes to. */
static char *target(struct parser *ps, const struct directive *d)
{
    struct tombo_config *cfg = ps->cfg;
    switch (d->scope) {
    case S_BRIDGE:
        if (ps->bridge < 0) {
            perr(ps, "'%s' is a bridge setting: it needs a 'connection NAME' line before it", d->name);
            return NULL;
        }
        return (char *)&cfg->bridges[ps->bridge] + d->loff;
    case S_LISTENER:
        return (char *)cur_listener(ps, d->name) + d->loff;
    case S_SECURITY:
        ps->security_set = true;
        if (cfg->per_listener_settings) {
            if (ps->cur < 0) {
                /* As Mosquitto does: the default listener's settings. They apply to it if `port` or
                 * `bind_address` enable it, and to the local-only listeners when no listener is
                 * configured; never to the `listener` blocks below, which is easy to miss. */
                add_warning(cfg,
                            "%s:%d: '%s' before any 'listener' line with per_listener_settings true "
                            "applies to the default listener only (as in Mosquitto), not to the "
                            "listeners defined below",
                            ps->file, ps->line, d->name);
                return (char *)&cfg->default_listener + d->loff;
            }
            return (char *)&cfg->listeners[ps->cur] + d->loff;
        }
        return (char *)cfg + d->off;
    default:
        return (char *)cfg + d->off;
    }
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* The plugin list that `plugin` lines go to in the current scope (global, or the current
 * listener's with per_listener_settings true): like target() for S_SECURITY. */
static int plugin_list(struct parser *ps, const struct directive *d, struct tombo_plugin_conf **pl, int **n)
{
    char *t = target(ps, d);
    if (!t)
        return -1;
    if (t == (char *)ps->cfg + d->off) {
        *pl = ps->cfg->plugins;
        *n = &ps->cfg->n_plugins;
        return 0;
    }
    struct tombo_listener *l = (struct tombo_listener *)(t - d->loff);
    *pl = l->plugins;
    *n = &l->n_plugins;
    return 0;
}

/* `plugin PATH` / `auth_plugin PATH`: loaded at start-up (plugin.c), in the order of the lines. */
static int h_plugin(struct parser *ps, const struct directive *d, char *val)
{
    while (*val == ' ' || *val == '\t')
        val++;
    if (!*val)
        return perr(ps, "'%s' needs the path of a plugin (a .so file)", d->name);
    struct tombo_plugin_conf *pl;
    int *n;
    if (plugin_list(ps, d, &pl, &n) < 0)
        return -1;
    pl = realloc(pl, (size_t)(*n + 1) * sizeof(*pl));
    if (!pl)
        abort();
    struct tombo_plugin_conf *c = &pl[*n];
    memset(c, 0, sizeof(*c));
    c->path = xstrdup(val);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    c->where = xstrdup(where);
    c->keys = xcalloc(1, sizeof(char *));
    c->values = xcalloc(1, sizeof(char *));
    c->deny_special_chars = true; /* Mosquitto's default */
    /* n and the array live side by side in the config or the listener */
    if (n == &ps->cfg->n_plugins)
        ps->cfg->plugins = pl;
    else
        ((struct tombo_listener *)((char *)n - offsetof(struct tombo_listener, n_plugins)))->plugins = pl;
    (*n)++;
    return 0;
}

static const struct directive plugin_directive;

/* `plugin_opt_KEY VALUE` / `auth_opt_KEY VALUE`: an option of the last plugin of the same scope,
 * handed to its mosquitto_plugin_init() as KEY and VALUE (the rest of the line), as in Mosquitto. */
static int h_plugin_opt(struct parser *ps, const char *name, char *val)
{
    const char *key = name + (name[0] == 'p' ? 11 : 9);
    while (*val == ' ' || *val == '\t')
        val++;
    if (!*key)
        return perr(ps, "'%s' needs a key after the prefix (plugin_opt_KEY VALUE)", name);
    if (!*val)
        return perr(ps, "'%s' needs a value", name);
    struct tombo_plugin_conf *pl;
    int *n;
    if (plugin_list(ps, &plugin_directive, &pl, &n) < 0)
        return -1;
    if (*n == 0)
        return perr(ps, "'%s' without a 'plugin' line before it%s", name,
                    ps->cfg->per_listener_settings ? " in this listener's section" : "");
    struct tombo_plugin_conf *c = &pl[*n - 1];
    c->keys = realloc(c->keys, (size_t)(c->n_opts + 2) * sizeof(char *));
    c->values = realloc(c->values, (size_t)(c->n_opts + 2) * sizeof(char *));
    if (!c->keys || !c->values)
        abort();
    c->keys[c->n_opts] = xstrdup(key);
    c->values[c->n_opts] = xstrdup(val);
    c->n_opts++;
    c->keys[c->n_opts] = c->values[c->n_opts] = NULL;
    return 0;
}

/* `auth_plugin_deny_special_chars true|false`: of the last plugin line of the same scope, as in
 * Mosquitto 2.0 (which refuses it before any plugin line too). */
static int h_deny_special(struct parser *ps, const struct directive *d, char *val)
{
    bool v = true;
    if (parse_bool(ps, d->name, val, &v) < 0)
        return -1;
    struct tombo_plugin_conf *pl;
    int *n;
    if (plugin_list(ps, &plugin_directive, &pl, &n) < 0)
        return -1;
    if (*n == 0)
        return perr(ps, "'%s' without a 'plugin' or 'auth_plugin' line before it%s", d->name,
                    ps->cfg->per_listener_settings ? " in this listener's section" : "");
    pl[*n - 1].deny_special_chars = v;
    return 0;
}

/* What to do instead of the features tombo does not have yet; see unsupported[]. */
#define WHY_TLS_ENGINE                                                                                      \
    "keys in OpenSSL engines (hardware tokens) are not supported; give keyfile a PEM private key file"
/* A Mosquitto directive (or one value of it) that tombo does not implement: the start-up error. */
static int refuse(struct parser *ps, const char *what, const char *why)
{
    return perr(ps, "%s: not supported yet by tombo (%s)", what, why);
}

/* `NAME PORT [ADDRESS]` (listener, http_listener): *port 1..65535 (or 0 when unix_ok: then ADDRESS
 * is a socket path) and *addr (NULL: none). */
static int port_address(struct parser *ps, const char *name, char *val, bool unix_ok, long *port, char **addr)
{
    char *p = val;
    char *port_s = next_word(&p);
    if (!port_s || *port_s == '#')
        return perr(ps, "'%s' needs a port: %s PORT [ADDRESS]", name, name);
    *addr = next_word(&p);
    if (*addr && **addr == '#')
        *addr = NULL;
    else if (*addr && expect_end(ps, name, p) < 0)
        return -1;
    char *end;
    errno = 0;
    *port = strtol(port_s, &end, 10);
    if (end == port_s || *end || errno || *port < 0 || *port > 65535 || (*port == 0 && !unix_ok))
        return perr(ps, "'%s' port must be a number from 1 to 65535%s, not '%s'", name,
                    unix_ok ? " (or 0 and a Unix socket path)" : "", port_s);
    return 0;
}

static int h_listener(struct parser *ps, const struct directive *d, char *val)
{
    long port;
    char *addr;
    if (port_address(ps, d->name, val, true, &port, &addr) < 0)
        return -1;
    if (port == 0 && !addr)
        return perr(ps, "'listener 0' needs the path of a Unix socket: listener 0 PATH");
    struct tombo_listener *l = listener_add(ps->cfg);
    l->port = (uint16_t)port;
    l->address = xstrdup(addr);
    char origin[300];
    snprintf(origin, sizeof(origin), "%s:%d", ps->file, ps->line);
    l->origin = xstrdup(origin);
    ps->cur = ps->cfg->n_listeners - 1;
    return 0;
}

static int h_port(struct parser *ps, const struct directive *d, char *val)
{
    long long v = 0;
    if (parse_int(ps, d->name, val, 1, 65535, &v) < 0)
        return -1;
    struct tombo_listener *l = &ps->cfg->default_listener;
    ps->cfg->default_listener_used = true;
    l->port = (uint16_t)v;
    add_warning(ps->cfg, "%s:%d: 'port' is deprecated in Mosquitto: use 'listener %lld'", ps->file, ps->line, v);
    return 0;
}

static int h_bind_address(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    ps->cfg->default_listener_used = true;
    set_str(&ps->cfg->default_listener.address, w);
    add_warning(ps->cfg, "%s:%d: 'bind_address' is deprecated in Mosquitto: use 'listener PORT %s'", ps->file,
                ps->line, w);
    return 0;
}

/* socket_domain ipv4|ipv6: the listener's IP family (both when not given). */
static int h_socket_domain(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    int family;
    if (!strcmp(w, "ipv4"))
        family = AF_INET;
    else if (!strcmp(w, "ipv6"))
        family = AF_INET6;
    else
        return perr(ps, "'socket_domain' must be ipv4 or ipv6, not '%s'", w);
    struct tombo_listener *l = cur_listener(ps, d->name);
    if (l->port == 0 && l->address && ps->cur >= 0)
        return perr(ps, "'socket_domain' has no meaning on a Unix socket listener");
    l->socket_domain = family;
    return 0;
}

static int h_bind_interface(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    if (strlen(w) >= IF_NAMESIZE)
        return perr(ps, "'bind_interface' %s: an interface name has at most %d characters", w, IF_NAMESIZE - 1);
    struct tombo_listener *l = cur_listener(ps, d->name);
    if (l->port == 0 && l->address && ps->cur >= 0)
        return perr(ps, "'bind_interface' has no meaning on a Unix socket listener");
    set_str(&l->bind_interface, w);
    return 0;
}

/* mount_point PREFIX: a topic prefix for the listener's clients (mount.h); it becomes part of topic
 * names, so it may not hold a wildcard. */
static int h_mount_point(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    if (strpbrk(w, "+#"))
        return perr(ps, "'mount_point' %s: a topic prefix cannot hold the wildcards + or #", w);
    if (strlen(w) > 1024)
        return perr(ps, "'mount_point' is longer than 1024 bytes");
    set_str(&cur_listener(ps, d->name)->mount_point, w);
    return 0;
}

/* http_dir DIR: the directory whose files the current (websockets) listener serves to plain HTTP
 * requests. Kept canonical (realpath), so ws_files.c can tell whether a file's real path is in it. */
static int h_http_dir(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    char *real = realpath(w, NULL);
    if (!real)
        return perr(ps, "'http_dir' %s: %s", w, strerror(errno));
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(real);
        return perr(ps, "'http_dir' %s: not a directory", w);
    }
    struct tombo_listener *l = cur_listener(ps, d->name);
    free(l->http_dir);
    l->http_dir = real;
    return 0;
}

/* protocol mqtt | websockets: of the current listener. */
static int h_protocol(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    bool ws = !strcmp(w, "websockets");
    if (!ws && strcmp(w, "mqtt"))
        return perr(ps, "'protocol' must be mqtt or websockets, not '%s'", w);
    /* as in Mosquitto, it applies to the default listener before any `listener` line */
    cur_listener(ps, d->name)->websockets = ws;
    return 0;
}

/* A boolean whose both values tombo's one behaviour satisfies, so it is checked and needs no field:
 * autosave_on_changes only decides when Mosquitto writes its snapshot, and tombo commits every change
 * before acknowledging it; allow_duplicate_messages true lets a broker send a client one copy per
 * matching subscription, false requires one copy in all, and tombo always sends one [MQTT-3.3.5-1]. */
static int h_bool_either(struct parser *ps, const struct directive *d, char *val)
{
    bool v = false;
    return parse_bool(ps, d->name, val, &v);
}

/* autosave_interval SECONDS: Mosquitto's snapshot period; tombo commits every change (see above). */
static int h_autosave_interval(struct parser *ps, const struct directive *d, char *val)
{
    long long v = 0;
    return parse_int(ps, d->name, val, 0, INT32_MAX, &v);
}

/* max_keepalive: 10..65535 as in Mosquitto 2.0.11, or 0, which Mosquitto accepts since 2.0.13
 * ("allow clients to set keepalive = 0"): no limit at all, so no Server Keep Alive is sent. */
static int h_max_keepalive(struct parser *ps, const struct directive *d, char *val)
{
    long long v = 0;
    if (parse_int(ps, d->name, val, 0, 65535, &v) < 0)
        return -1;
    if (v > 0 && v < 10)
        return perr(ps, "'%s' must be 0 (no limit) or a number from 10 to 65535, not %lld", d->name, v);
    ps->cfg->max_keepalive = (uint32_t)v;
    return 0;
}

/* retry_interval: Mosquitto 2 accepts it with a warning and does nothing; so does tombo. */
static int h_retry_interval(struct parser *ps, const struct directive *d, char *val)
{
    long long v = 0;
    if (parse_int(ps, d->name, val, 0, INT32_MAX, &v) < 0)
        return -1;
    add_warning(ps->cfg, "%s:%d: the retry_interval option is no longer available (as in Mosquitto 2)", ps->file,
                ps->line);
    return 0;
}

static int h_per_listener_settings(struct parser *ps, const struct directive *d, char *val)
{
    bool v = false;
    if (parse_bool(ps, d->name, val, &v) < 0)
        return -1;
    if (v && ps->security_set)
        return perr(ps, "per_listener_settings must be set before any other security settings");
    ps->cfg->per_listener_settings = v;
    return 0;
}

static int h_allow_anonymous(struct parser *ps, const struct directive *d, char *val)
{
    bool v = false;
    if (parse_bool(ps, d->name, val, &v) < 0)
        return -1;
    char *t = target(ps, d);
    if (!t)
        return -1;
    int iv = v;
    memcpy(t, &iv, sizeof(int));
    return 0;
}

/* log_type TYPE...: the first log_type line replaces the default set, later ones add to it. */
static int h_log_type(struct parser *ps, const struct directive *d, char *val)
{
    static const struct { const char *name; unsigned bits; } types[] = {
        {"error", TLOG_ERR},         {"warning", TLOG_WARNING},         {"notice", TLOG_NOTICE},
        {"information", TLOG_INFO},  {"debug", TLOG_DEBUG},             {"subscribe", TLOG_SUBSCRIBE},
        {"unsubscribe", TLOG_UNSUBSCRIBE}, {"websockets", TLOG_WEBSOCKETS}, {"all", TLOG_ALL},
        {"none", TLOG_NONE},
    };
    struct tombo_config *cfg = ps->cfg;
    if (!ps->log_type_set) {
        cfg->log_type = 0;
        ps->log_type_set = true;
    }
    char *p = val;
    int n = 0;
    for (char *w; (w = next_word(&p)) && *w != '#'; n++) {
        size_t i;
        for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcmp(w, types[i].name))
                break;
        if (i == sizeof(types) / sizeof(types[0]))
            return perr(ps, "unknown log_type '%s' (expected error, warning, notice, information, debug, "
                            "subscribe, unsubscribe, websockets, none or all)", w);
        if (types[i].bits == TLOG_NONE)
            cfg->log_type = 0;
        else
            cfg->log_type |= types[i].bits;
    }
    if (!n)
        return perr(ps, "'%s' needs a value", d->name);
    return 0;
}

/* log_dest DEST...: stdout stderr syslog topic none, or `file PATH` (the rest of the line). */
static int h_log_dest(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_config *cfg = ps->cfg;
    if (!ps->log_dest_set) {
        cfg->log_dest = 0;
        ps->log_dest_set = true;
    }
    char *p = val;
    int n = 0;
    for (char *w; (w = next_word(&p)) && *w != '#'; n++) {
        if (!strcmp(w, "stdout"))
            cfg->log_dest |= TLOG_DEST_STDOUT;
        else if (!strcmp(w, "stderr"))
            cfg->log_dest |= TLOG_DEST_STDERR;
        else if (!strcmp(w, "syslog"))
            cfg->log_dest |= TLOG_DEST_SYSLOG;
        else if (!strcmp(w, "topic"))
            cfg->log_dest |= TLOG_DEST_TOPIC;
        else if (!strcmp(w, "none"))
            cfg->log_dest = 0;
        else if (!strcmp(w, "file")) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (!*p)
                return perr(ps, "'log_dest file' needs a file name");
            if (ps->log_file_set)
                return perr(ps, "only one 'log_dest file' may be configured");
            ps->log_file_set = true;
            set_str(&cfg->log_file, p);
            cfg->log_dest |= TLOG_DEST_FILE;
            return 0;
        } else if (!strcmp(w, "dlt"))
            cfg->log_dest |= TLOG_DEST_DLT; /* the DLT daemon through libdlt (broker/log.c) */
        else
            return perr(ps, "unknown log_dest '%s' (expected stdout, stderr, file PATH, syslog, topic, dlt or none)", w);
    }
    if (!n)
        return perr(ps, "'%s' needs a value", d->name);
    return 0;
}

/* persistent_client_expiration N{h,d,w,m,y}: hours, days, weeks, months (30 days), years (365 days). */
static int h_persistent_client_expiration(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(w, &end, 10);
    long long unit = 0;
    switch (*end) {
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    case 'm': unit = 30 * 86400; break;
    case 'y': unit = 365 * 86400; break;
    }
    if (end == w || !isdigit((unsigned char)w[0]) || errno || !unit || end[1] || n <= 0)
        return perr(ps, "'%s' must be a positive number followed by h, d, w, m or y (e.g. 14d), not '%s'",
                    d->name, w);
    if (n > (long long)(UINT32_MAX - 1) / unit)
        return perr(ps, "'%s' %s is too long (at most about 136 years)", d->name, w);
    ps->cfg->persistent_client_expiration = (uint32_t)(n * unit);
    return 0;
}


static int read_file(struct parser *ps, const char *path);

/* include_dir DIR: every *.conf in DIR, in Mosquitto's order (see include_cmp). */
static int include_cmp(const void *a, const void *b)
{
    /* Case-insensitive first, then upper case before lower case: 00 01 A a B b (mosquitto.conf(5)). */
    const unsigned char *s1 = *(const unsigned char *const *)a, *s2 = *(const unsigned char *const *)b;
    for (; *s1 && *s2; s1++, s2++) {
        int d = toupper(*s1) - toupper(*s2);
        if (d)
            return d;
        if (*s1 != *s2)
            return *s1 - *s2;
    }
    return *s1 - *s2;
}

static int h_include_dir(struct parser *ps, const struct directive *d, char *val)
{
    while (*val == ' ' || *val == '\t')
        val++;
    if (!*val)
        return perr(ps, "'%s' needs a directory", d->name);
    if (ps->depth >= MAX_INCLUDE_DEPTH)
        return perr(ps, "include_dir nested more than %d deep", MAX_INCLUDE_DEPTH);
    DIR *dir = opendir(val);
    if (!dir)
        return perr(ps, "cannot open include_dir '%s': %s", val, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn)
                abort();
            names = nn;
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dir);
    if (n > 1)
        qsort(names, n, sizeof(*names), include_cmp);
    int rc = 0;
    const char *file = ps->file;
    int line = ps->line;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(val) + strlen(names[i]) + 2;
        char *path = xcalloc(1, len);
        snprintf(path, len, "%s%s%s", val, val[strlen(val) - 1] == '/' ? "" : "/", names[i]);
        ps->depth++;
        rc = read_file(ps, path);
        ps->depth--;
        ps->file = file;
        ps->line = line;
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* websockets_headers_size N: the largest WebSocket opening request head (bytes) tombo reads; 0 is
 * the default (4096). Mosquitto hands N to libwebsockets; its default drops heads near 4 KB. */
static int h_websockets_headers_size(struct parser *ps, const struct directive *d, char *val)
{
    long long v = 0;
    if (parse_int(ps, d->name, val, 0, 65536, &v) < 0)
        return -1;
    ps->cfg->websockets_headers_size = v ? (uint32_t)v : 4096;
    return 0;
}

/* Every directive tombo implements. Ranges follow Mosquitto 2.0.11 where it checks them; where it
 * takes any integer (atoi), tombo refuses what makes no sense (negative counts). */
/* http_listener PORT [ADDRESS] (tombo only): the HTTP endpoint of metrics, REST API and dashboard. */
static int h_http_listener(struct parser *ps, const struct directive *d, char *val)
{
    long port;
    char *addr;
    if (port_address(ps, d->name, val, false, &port, &addr) < 0)
        return -1;
    if (ps->cfg->http_port)
        return perr(ps, "'http_listener' given twice: tombo has one HTTP endpoint");
    ps->cfg->http_port = (uint16_t)port;
    set_str(&ps->cfg->http_address, addr);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    set_str(&ps->cfg->http_where, where);
    return 0;
}

static int h_http_password_file(struct parser *ps, const struct directive *d, char *val)
{
    while (*val == ' ' || *val == '\t')
        val++;
    if (!*val)
        return perr(ps, "'%s' needs a value", d->name);
    set_str(&ps->cfg->http_password_file, val);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    set_str(&ps->cfg->http_password_where, where);
    return 0;
}

/* cluster_* (tombo only, docs/cluster.md): this broker as one node of a cluster on NATS JetStream. */
static void cluster_where(struct parser *ps)
{
    if (ps->cfg->cluster_where)
        return;
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    set_str(&ps->cfg->cluster_where, where);
}

static int h_cluster(struct parser *ps, const struct directive *d, char *val)
{
    while (*val == ' ' || *val == '\t')
        val++;
    size_t n = strlen(val);
    while (n && (val[n - 1] == ' ' || val[n - 1] == '\t'))
        val[--n] = 0;
    if (!n)
        return perr(ps, "'%s' needs a value", d->name);
    cluster_where(ps);
    if (!strcmp(d->name, "cluster_node")) {
        if (n > 64 || strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
            return perr(ps, "cluster_node '%s': a node name is 1 to 64 letters, digits, '_' or '-' "
                            "(it is part of NATS subjects and keys)", val);
        if (ps->cfg->cluster_node)
            return perr(ps, "'cluster_node' given twice: a broker is one node");
        set_str(&ps->cfg->cluster_node, val);
    } else if (!strcmp(d->name, "cluster_nats_url")) {
        if (strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/@[]%") != n)
            return perr(ps, "cluster_nats_url '%s': one URL (nats://HOST:PORT) per directive", val);
        if (ps->cfg->n_cluster_urls >= 32)
            return perr(ps, "more than 32 cluster_nats_url");
        char **v = realloc(ps->cfg->cluster_urls, (size_t)(ps->cfg->n_cluster_urls + 1) * sizeof(*v));
        if (!v)
            return perr(ps, "out of memory");
        ps->cfg->cluster_urls = v;
        v[ps->cfg->n_cluster_urls] = NULL;
        set_str(&v[ps->cfg->n_cluster_urls++], val);
    } else if (!strcmp(d->name, "cluster_kv_replicas")) {
        long long v = 0;
        if (parse_int(ps, d->name, val, 1, 5, &v) < 0)
            return -1;
        ps->cfg->cluster_replicas = (int)v;
    } else if (!strcmp(d->name, "cluster_durability")) {
        if (strcmp(val, "local") && strcmp(val, "jetstream"))
            return perr(ps, "cluster_durability '%s': local (acknowledged once this node has the message) or "
                            "jetstream (once JetStream has it, for messages to other nodes)", val);
        ps->cfg->cluster_durability = !strcmp(val, "jetstream");
    } else if (!strcmp(d->name, "cluster_sessions")) {
        if (strcmp(val, "local") && strcmp(val, "jetstream"))
            return perr(ps, "cluster_sessions '%s': local (a persistent session lives in this node's store) or "
                            "jetstream (copied to JetStream, taken by another node when this one is dead)", val);
        ps->cfg->cluster_sessions = !strcmp(val, "jetstream");
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
        set_str(&ps->cfg->cluster_sessions_where, where);
    } else if (!strcmp(d->name, "cluster_nats_user")) {
        set_str(&ps->cfg->cluster_user, val);
    } else if (!strcmp(d->name, "cluster_nats_password")) {
        set_str(&ps->cfg->cluster_password, val);
    } else if (!strncmp(d->name, "cluster_nats_", 13) && strcmp(d->name, "cluster_nats_token")) {
        /* cafile, certfile, keyfile: read by nats.c at start-up (cluster.c); unreadable is an error here */
        int i = !strcmp(d->name, "cluster_nats_cafile") ? 0 : !strcmp(d->name, "cluster_nats_certfile") ? 1 : 2;
        FILE *f = fopen(val, "r");
        if (!f)
            return perr(ps, "%s '%s': %s", d->name, val, strerror(errno));
        fclose(f);
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
        set_str(&ps->cfg->cluster_tls_file[i], val);
        set_str(&ps->cfg->cluster_tls_where[i], where);
    } else {
        set_str(&ps->cfg->cluster_token, val);
    }
    return 0;
}

/* http_certfile / http_keyfile: the HTTP endpoint over TLS. */
static int h_http_tls(struct parser *ps, const struct directive *d, char *val)
{
    while (*val == ' ' || *val == '\t')
        val++;
    if (!*val)
        return perr(ps, "'%s' needs a value", d->name);
    set_str(!strcmp(d->name, "http_certfile") ? &ps->cfg->http_certfile : &ps->cfg->http_keyfile, val);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    set_str(&ps->cfg->http_tls_where, where);
    return 0;
}

static const struct directive directives[] = {
    /* listeners */
    FN(listener, h_listener),
    FN(port, h_port),
    FN(bind_address, h_bind_address),
    FN(protocol, h_protocol), /* mqtt or websockets */
    FN(http_dir, h_http_dir),
    FN(websockets_headers_size, h_websockets_headers_size),
    /* Which of tombo's WebSocket events log_type websockets logs, as a mask of libwebsockets' levels
     * (Mosquitto hands N to lws_set_log_level): 1 errors (refused handshakes, protocol errors), 2
     * warnings (HTTP requests answered with an error), 4 notices (handshakes, closes), 8 information
     * (files served); other bits select nothing more. 0, the default as in Mosquitto, logs all. */
    INT_G(websockets_log_level, 0, INT32_MAX),
    FN(socket_domain, h_socket_domain),
    FN(bind_interface, h_bind_interface),
    INT_L(max_connections, -1, INT_MAX),
    INT_L(max_qos, 0, 2),
    INT_L(max_topic_alias, 0, 65535),
    BOOL_L(use_username_as_clientid),
    FN(mount_point, h_mount_point),
    /* TLS (listeners; psk_file is a security setting) */
    STR_L(cafile),
    STR_L(capath),
    STR_L(certfile),
    STR_L(keyfile),
    STR_L(crlfile),
    STR_L(dhparamfile),
    STR_L(tls_version),
    STR_L(ciphers),
    {"ciphers_tls1.3", V_STR, S_LISTENER, 0, LST_FIELD(ciphers_tls13), 0, 0, NULL},
    BOOL_L(require_certificate),
    BOOL_L(use_identity_as_username),
    BOOL_L(use_subject_as_username),
    STR_L(psk_hint),
    STR_S(psk_file),
    /* security */
    FN(per_listener_settings, h_per_listener_settings),
    {"allow_anonymous", V_TRIBOOL, S_SECURITY, 0, SEC_FIELD(allow_anonymous), 0, 0, h_allow_anonymous},
    STR_S(password_file),
    STR_S(acl_file),
    {"plugin", V_FN, S_SECURITY, 0, SEC_FIELD(plugins), 0, 0, h_plugin},
    {"auth_plugin", V_FN, S_SECURITY, 0, SEC_FIELD(plugins), 0, 0, h_plugin},
    {"auth_plugin_deny_special_chars", V_FN, S_SECURITY, 0, SEC_FIELD(plugins), 0, 0, h_deny_special},
    BOOL_S(allow_zero_length_clientid),
    STR_S(auto_id_prefix),
    /* persistence */
    BOOL_G(persistence),
    {"retained_persistence", V_BOOL, S_GLOBAL, 0, CFG_FIELD(persistence), 0, 0, NULL}, /* Mosquitto's alias */
    STR_G(persistence_location),
    STR_G(pid_file),
    STR_G(user),
    STR_G(clientid_prefixes),
    INT_G(log_facility, 0, 7),
    STR_G(persistence_file),
    FN(autosave_interval, h_autosave_interval),       /* accepted: tombo commits every change */
    FN(autosave_on_changes, h_bool_either),           /* the same */
    FN(persistent_client_expiration, h_persistent_client_expiration),
    /* limits */
    INT_G(max_queued_messages, 0, INT32_MAX),
    INT_G(max_queued_bytes, 0, INT64_MAX),
    INT_G(max_inflight_messages, 0, 65535),
    INT_G(max_inflight_bytes, 0, INT64_MAX), /* payload bytes of outgoing QoS 1/2 in flight per client (0: no limit) */
    INT_G(message_size_limit, 0, 268435455),
    INT_G(max_packet_size, 20, 268435460),
    FN(max_keepalive, h_max_keepalive),
    INT_G(memory_limit, 0, INT64_MAX),
    INT_G(connect_timeout, 1, 3600), /* tombo only */
    /* behaviour */
    BOOL_G(set_tcp_nodelay),
    INT_G(sys_interval, 0, 65535),
    BOOL_G(retain_available),
    BOOL_G(upgrade_outgoing_qos), /* non-standard: the spec forbids it; Mosquitto offers it */
    BOOL_G(queue_qos0_messages),
    FN(allow_duplicate_messages, h_bool_either),      /* tombo always sends one copy */
    BOOL_G(check_retain_source), /* Mosquitto: re-check a retained message's publisher on delivery */
    FN(retry_interval, h_retry_interval),             /* a warning, as in Mosquitto 2 */
    BOOL_G(connection_messages),
    /* logging */
    FN(log_type, h_log_type),
    FN(log_dest, h_log_dest),
    BOOL_G(log_timestamp),
    STR_G(log_timestamp_format),
    /* bridges (docs/bridges.md) */
    FN(connection, h_connection),
    FN_B(address, h_address),
    FN_B(addresses, h_address),
    BOOL_B(round_robin, round_robin),
    FN_B(topic, h_topic),
    STR_B(remote_clientid, remote_clientid),
    STR_B(clientid, remote_clientid), /* Mosquitto's old name */
    STR_B(remote_username, remote_username),
    STR_B(username, remote_username), /* old name */
    STR_B(remote_password, remote_password),
    STR_B(password, remote_password), /* old name */
    STR_B(local_clientid, local_clientid),
    STR_B(local_username, local_username),
    STR_B(local_password, local_password), /* checked against password_file (bridge.c), unlike Mosquitto */
    BOOL_B(cleansession, cleansession),
    FN_B(local_cleansession, h_local_cleansession),
    INT_B(keepalive_interval, keepalive, 0, 65535),
    BOOL_B(notifications, notifications),
    BOOL_B(notifications_local_only, notifications_local_only),
    STR_B(notification_topic, notification_topic),
    FN_B(restart_timeout, h_restart_timeout),
    FN_B(start_type, h_start_type),
    INT_B(threshold, threshold, 1, INT32_MAX),
    INT_B(idle_timeout, idle_timeout, 1, INT32_MAX),
    BOOL_B(try_private, try_private),
    FN_B(bridge_protocol_version, h_bridge_protocol_version),
    BOOL_B(bridge_attempt_unsubscribe, attempt_unsubscribe),
    BOOL_B(bridge_outgoing_retain, outgoing_retain),
    INT_B(bridge_max_packet_size, max_packet_size, 0, 268435460),
    STR_B(bridge_bind_address, bind_address),
    STR_B(bridge_cafile, cafile),
    STR_B(bridge_capath, capath),
    STR_B(bridge_certfile, certfile),
    STR_B(bridge_keyfile, keyfile),
    BOOL_B(bridge_insecure, insecure),
    BOOL_B(bridge_require_ocsp, require_ocsp),
    STR_B(bridge_tls_version, tls_version),
    STR_B(bridge_alpn, alpn),
    STR_B(bridge_identity, identity),
    STR_B(bridge_psk, psk),
    /* process */
    FN(include_dir, h_include_dir),
    INT_G(threads, 1, 1024), /* tombo only */
    FN(http_listener, h_http_listener), /* tombo only */
    FN(http_password_file, h_http_password_file), /* tombo only */
    FN(http_certfile, h_http_tls),                 /* tombo only */
    FN(http_keyfile, h_http_tls),                  /* tombo only */
    FN(cluster_node, h_cluster),                   /* tombo only */
    FN(cluster_nats_url, h_cluster),               /* tombo only */
    FN(cluster_nats_user, h_cluster),              /* tombo only */
    FN(cluster_nats_password, h_cluster),          /* tombo only */
    FN(cluster_nats_token, h_cluster),             /* tombo only */
    FN(cluster_nats_cafile, h_cluster),            /* tombo only */
    FN(cluster_nats_certfile, h_cluster),          /* tombo only */
    FN(cluster_nats_keyfile, h_cluster),           /* tombo only */
    FN(cluster_kv_replicas, h_cluster),            /* tombo only */
    FN(cluster_durability, h_cluster),             /* tombo only */
    FN(cluster_sessions, h_cluster),               /* tombo only */
};

/* Mosquitto 2.0 directives whose meaning tombo does not implement yet, with what to do instead.
 * Each stops start-up: accepting one and doing nothing would break the user's expectation, and for
 * the TLS, certificate and plugin ones would open the broker to clients it was meant to refuse. */
static const struct {
    const char *name;
    const char *why;
} unsupported[] = {
    /* TLS (listeners): keys in hardware engines */
    {"tls_engine", WHY_TLS_ENGINE}, {"tls_engine_kpass_sha1", WHY_TLS_ENGINE}, {"tls_keyform", WHY_TLS_ENGINE},
    /* general */
};

/* Why `name` is refused, or NULL if it is not a Mosquitto directive tombo knows of. */
static const char *unsupported_why(const char *name)
{
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        if (!strcmp(name, unsupported[i].name))
            return unsupported[i].why;
    return NULL;
}

static int apply(struct parser *ps, const struct directive *d, char *val)
{
    switch (d->type) {
    case V_FN:
    case V_TRIBOOL:
        return d->fn(ps, d, val);
    case V_BOOL: {
        bool v = false;
        if (parse_bool(ps, d->name, val, &v) < 0)
            return -1;
        char *t = target(ps, d);
        if (!t)
            return -1;
        *(bool *)t = v;
        return 0;
    }
    case V_INT: {
        long long v = 0;
        if (parse_int(ps, d->name, val, d->min, d->max, &v) < 0)
            return -1;
        char *t = target(ps, d);
        if (!t)
            return -1;
        store_int(t, d->size, v);
        return 0;
    }
    case V_STR: {
        while (*val == ' ' || *val == '\t')
            val++;
        if (!*val)
            return perr(ps, "'%s' needs a value", d->name);
        char *t = target(ps, d);
        if (!t)
            return -1;
        set_str((char **)t, val);
        return 0;
    }
    }
    return perr(ps, "internal error: bad directive type for '%s'", d->name);
}

/* A TLS directive was applied: remember its FILE:LINE where its value went, for the errors that
 * loading its file may give at start-up (config_tls_where). */
static void note_tls_where(struct parser *ps, const struct directive *d)
{
    for (int i = 0; i < TLSW_N; i++) {
        if (strcmp(d->name, tls_names[i]))
            continue;
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
        if (d->scope == S_SECURITY && !ps->cfg->per_listener_settings)
            set_str(&ps->cfg->psk_file_where, where);
        else
            set_str(&(ps->cur >= 0 ? &ps->cfg->listeners[ps->cur] : &ps->cfg->default_listener)->tls_where[i],
                    where);
        return;
    }
}

bool config_listener_same(const struct tombo_listener *a, const struct tombo_listener *b)
{
    return a->port == b->port && a->socket_domain == b->socket_domain &&
           (a->address && b->address ? !strcmp(a->address, b->address) : a->address == b->address);
}

const char *config_tls_where(const struct tombo_listener *l, const char *msg)
{
    for (int i = 0; i < TLSW_N; i++) {
        size_t n = strlen(tls_names[i]);
        if (l->tls_where[i] && !strncmp(msg, tls_names[i], n) && (msg[n] == ' ' || msg[n] == ':'))
            return l->tls_where[i];
    }
    return l->origin ? l->origin : "config";
}

/* One line, already without its newline. */
static const struct directive plugin_directive = {"plugin", V_FN, S_SECURITY, 0, SEC_FIELD(plugins), 0, 0, h_plugin};

static int parse_line(struct parser *ps, char *line)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '#')
        return 0;
    char *name = next_word(&p);
    for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++)
        if (!strcmp(name, directives[i].name)) {
            if (apply(ps, &directives[i], p) < 0)
                return -1;
            note_tls_where(ps, &directives[i]);
            return 0;
        }
    if (!strncmp(name, "plugin_opt_", 11) || !strncmp(name, "auth_opt_", 9))
        return h_plugin_opt(ps, name, p);
    const char *why = unsupported_why(name);
    if (why)
        return refuse(ps, name, why);
    return perr(ps, "unknown directive '%s'", name);
}

static int read_file(struct parser *ps, const char *path)
{
    ps->file = path;
    ps->line = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return perr(ps, "cannot open config file: %s", strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&buf, &cap, f)) >= 0) {
        ps->line++;
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (strlen(buf) != (size_t)n)
            rc = perr(ps, "NUL byte in line");
        else
            rc = parse_line(ps, buf);
    }
    if (rc == 0 && ferror(f)) {
        ps->line = 0;
        rc = perr(ps, "read error: %s", strerror(errno));
    }
    free(buf);
    fclose(f);
    return rc;
}

int load_file(struct tombo_config *cfg, const char *path, char *err, size_t errlen)
{
    struct parser ps = {.cfg = cfg, .err = err, .errlen = errlen, .cur = -1, .bridge = -1};
    set_str(&cfg->config_file, path);
    return read_file(&ps, path);
}

/* ---- public -------------------------------------------------------------------------------- */

void config_init(struct tombo_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->allow_anonymous = -1;
    cfg->allow_zero_length_clientid = true;
    cfg->auto_id_prefix = xstrdup("auto-");
    cfg->persistence_file = xstrdup("tombo.db");
    cfg->max_queued_messages = 1000;
    cfg->max_inflight_messages = 20;
    cfg->max_keepalive = 65535;
    cfg->connect_timeout = 10;
    cfg->sys_interval = 10;
    cfg->retain_available = true;
    cfg->connection_messages = true;
    cfg->websockets_headers_size = 4096;
    cfg->log_type = TLOG_DEFAULT;
    cfg->log_dest = TLOG_DEST_STDERR;
    cfg->log_timestamp = true;
    cfg->log_facility = -1;
    listener_defaults(&cfg->default_listener);
}

void config_free(struct tombo_config *cfg)
{
    for (int i = 0; i < cfg->n_listeners; i++)
        listener_free(&cfg->listeners[i]);
    free(cfg->listeners);
    listener_free(&cfg->default_listener);
    for (int i = 0; i < cfg->n_warnings; i++)
        free(cfg->warnings[i]);
    free(cfg->warnings);
    free(cfg->config_file);
    free(cfg->auto_id_prefix);
    free(cfg->password_file);
    free(cfg->acl_file);
    config_plugins_free(cfg->plugins, cfg->n_plugins);
    free(cfg->psk_file);
    free(cfg->psk_file_where);
    free(cfg->persistence_location);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->clientid_prefixes);
    free(cfg->persistence_file);
    free(cfg->log_file);
    free(cfg->log_timestamp_format);
    free(cfg->http_address);
    free(cfg->http_password_file);
    free(cfg->http_where);
    free(cfg->http_password_where);
    free(cfg->http_certfile);
    free(cfg->http_keyfile);
    free(cfg->http_tls_where);
    free(cfg->cluster_node);
    for (int i = 0; i < cfg->n_cluster_urls; i++)
        free(cfg->cluster_urls[i]);
    free(cfg->cluster_urls);
    free(cfg->cluster_user);
    free(cfg->cluster_password);
    free(cfg->cluster_token);
    free(cfg->cluster_where);
    free(cfg->cluster_sessions_where);
    for (int i = 0; i < 3; i++) {
        free(cfg->cluster_tls_file[i]);
        free(cfg->cluster_tls_where[i]);
    }
    for (int i = 0; i < cfg->n_bridges; i++)
        bridge_free(&cfg->bridges[i]);
    free(cfg->bridges);
    memset(cfg, 0, sizeof(*cfg));
}

int config_finish(struct tombo_config *cfg, char *err, size_t errlen)
{
    if (cfg->cluster_where) {
        const char *why = NULL;
        if (!cfg->cluster_node)
            why = "a cluster needs cluster_node (this node's name)";
        else if (!cfg->n_cluster_urls)
            why = "a cluster needs cluster_nats_url (at least one NATS server)";
        else if (!cfg->cluster_user != !cfg->cluster_password)
            why = "cluster_nats_user and cluster_nats_password go together";
        else if (cfg->cluster_token && cfg->cluster_user)
            why = "cluster_nats_token or cluster_nats_user/cluster_nats_password, not both";
        else if (!cfg->cluster_tls_file[1] != !cfg->cluster_tls_file[2])
            why = "cluster_nats_certfile and cluster_nats_keyfile go together (a client certificate and its key)";
        if (why) {
            snprintf(err, errlen, "%s: %s", cfg->cluster_where, why);
            return -1;
        }
    }
    if (cfg->cluster_sessions) { /* docs/cluster.md "Sessions after kill -9" */
        const char *why = NULL;
        if (!cfg->cluster_node)
            why = "cluster_sessions jetstream needs cluster_node (it copies sessions to the cluster's JetStream)";
        else if (!cfg->persistence)
            why = "cluster_sessions jetstream needs persistence true (it copies what the store commits)";
        else if (!cfg->cluster_durability)
            why = "cluster_sessions jetstream needs cluster_durability jetstream (the messages for a dead node "
                  "wait in its stream)";
        if (why) {
            snprintf(err, errlen, "%s: %s", cfg->cluster_sessions_where, why);
            return -1;
        }
    }
    if (cfg->http_password_file && !cfg->http_port) {
        snprintf(err, errlen, "%s: http_password_file needs http_listener (there is no HTTP endpoint to protect)",
                 cfg->http_password_where ? cfg->http_password_where : "config");
        return -1;
    }
    if ((cfg->http_certfile || cfg->http_keyfile) && !cfg->http_port) {
        snprintf(err, errlen, "%s: http_certfile and http_keyfile need http_listener", cfg->http_tls_where);
        return -1;
    }
    if (!cfg->http_certfile != !cfg->http_keyfile) {
        snprintf(err, errlen, "%s: %s", cfg->http_tls_where,
                 cfg->http_certfile ? "http_certfile needs http_keyfile (the certificate's private key)"
                                    : "http_keyfile needs http_certfile (the certificate of that key)");
        return -1;
    }
    /* The listeners the config file named explicitly. */
    int n_explicit = cfg->n_listeners;
    struct tombo_listener *explicit_l = cfg->listeners;
    cfg->listeners = NULL;
    cfg->n_listeners = 0;

    cfg->local_only = n_explicit == 0 && !cfg->default_listener_used;
    if (cfg->local_only) {
        /* Mosquitto 2: no listener configured, so listen on the loopback interfaces only. */
        int nports = cfg->n_cmd_ports ? cfg->n_cmd_ports : 1;
        for (int i = 0; i < nports; i++) {
            uint16_t port = cfg->n_cmd_ports ? cfg->cmd_ports[i] : 1883;
            for (int v6 = 0; v6 < 2; v6++) {
                struct tombo_listener *l = listener_add(cfg);
                listener_free(l);
                listener_copy(l, &cfg->default_listener);
                l->port = port;
                set_str(&l->address, v6 ? "::1" : "127.0.0.1");
                l->optional = v6;
                set_str(&l->origin, cfg->n_cmd_ports ? "command line -p" : "default");
            }
        }
        add_warning(cfg, "Starting in local only mode. Connections will only be possible from clients "
                         "running on this machine.");
        add_warning(cfg, "Create a configuration file which defines a listener to allow remote access.");
        if (cfg->allow_anonymous < 0)
            cfg->allow_anonymous = 1;
    } else if (cfg->default_listener_used) {
        /* `port` / `bind_address` (or per-listener lines before any `listener`): the default listener,
         * whose port -p replaces, as Mosquitto does. */
        int nports = cfg->n_cmd_ports ? cfg->n_cmd_ports : 1;
        for (int i = 0; i < nports; i++) {
            struct tombo_listener *l = listener_add(cfg);
            listener_free(l);
            listener_copy(l, &cfg->default_listener);
            if (cfg->n_cmd_ports)
                l->port = cfg->cmd_ports[i];
            set_str(&l->origin, cfg->n_cmd_ports ? "command line -p" : "default listener");
        }
    } else if (cfg->n_cmd_ports) {
        add_warning(cfg, "-p ignored: the config file defines listeners (as in Mosquitto 2)");
    }
    for (int i = 0; i < n_explicit; i++) {
        struct tombo_listener *l = listener_add(cfg);
        listener_free(l);
        *l = explicit_l[i]; /* moves the strings */
    }
    free(explicit_l);

    /* allow_anonymous: false once listeners are configured, as in Mosquitto 2. */
    if (cfg->allow_anonymous < 0)
        cfg->allow_anonymous = 0;
    for (int i = 0; i < cfg->n_listeners; i++) {
        struct tombo_listener *l = &cfg->listeners[i];
        if (cfg->per_listener_settings) {
            if (l->allow_anonymous < 0)
                l->allow_anonymous = cfg->local_only ? 1 : 0;
        } else {
            l->allow_anonymous = cfg->allow_anonymous;
            l->allow_zero_length_clientid = cfg->allow_zero_length_clientid;
            set_str(&l->auto_id_prefix, cfg->auto_id_prefix);
            set_str(&l->password_file, cfg->password_file);
            set_str(&l->acl_file, cfg->acl_file);
            set_str(&l->psk_file, cfg->psk_file);
            set_str(&l->tls_where[TLSW_PSK_FILE], cfg->psk_file_where);
        }
    }
    bool psk_used = false;
    for (int i = 0; i < cfg->n_listeners; i++) {
        bool plugins = cfg->per_listener_settings ? cfg->listeners[i].n_plugins > 0 : cfg->n_plugins > 0;
        if (check_tls(&cfg->listeners[i], plugins, err, errlen) < 0)
            return -1;
        if (cfg->listeners[i].http_dir && !cfg->listeners[i].websockets) { /* it would serve nothing */
            if (err && errlen)
                snprintf(err, errlen, "%s: http_dir needs protocol websockets on this listener (an MQTT "
                         "listener serves no files)", cfg->listeners[i].origin ? cfg->listeners[i].origin : "config");
            return -1;
        }
        psk_used |= cfg->listeners[i].psk_hint != NULL;
    }
    if (cfg->psk_file && !cfg->per_listener_settings && !psk_used)
        add_warning(cfg, "%s: psk_file is used only by listeners with psk_hint; no listener has one",
                    cfg->psk_file_where ? cfg->psk_file_where : "config");

    for (int i = 0; i < cfg->n_bridges; i++)
        if (bridge_finish(cfg, &cfg->bridges[i], err, errlen) < 0)
            return -1;

    if (cfg->verbose)
        cfg->log_type = TLOG_ALL;
    if (cfg->threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
    }
    if (cfg->n_listeners == 0) {
        if (err && errlen)
            snprintf(err, errlen, "no listener configured");
        return -1;
    }
    return 0;
}

int config_load(struct tombo_config *cfg, const char *path, char *err, size_t errlen)
{
    if (load_file(cfg, path, err, errlen) < 0)
        return -1;
    return config_finish(cfg, err, errlen);
}

int config_persistence_path(const struct tombo_config *cfg, char *out, size_t outlen)
{
    const char *loc = cfg->persistence_location;
    const char *file = cfg->persistence_file ? cfg->persistence_file : "tombo.db";
    int n;
    if (!loc || !*loc)
        n = snprintf(out, outlen, "%s", file);
    else
        n = snprintf(out, outlen, "%s%s%s", loc, loc[strlen(loc) - 1] == '/' ? "" : "/", file);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
