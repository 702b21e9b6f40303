/* config_bridge.c -- the bridge directives of mosquitto.conf (docs/bridges.md): `connection` starts
 * a bridge, the lines below it configure it; bridge_finish checks a bridge's settings together and
 * fills the defaults that depend on others. The reader itself is config.c (config_parse.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "broker/config_parse.h"

static void bridge_topic_free(struct tombo_bridge_topic *t)
{
    free(t->pattern);
    free(t->local_prefix);
    free(t->remote_prefix);
    free(t->local_topic);
    free(t->remote_topic);
}

void bridge_free(struct tombo_bridge *br)
{
    for (int i = 0; i < br->n_addrs; i++)
        free(br->addrs[i].host);
    free(br->addrs);
    for (int i = 0; i < br->n_topics; i++)
        bridge_topic_free(&br->topics[i]);
    free(br->topics);
    char **strs[] = {&br->name, &br->where, &br->remote_clientid, &br->remote_username, &br->remote_password,
                     &br->local_clientid, &br->local_username, &br->local_password, &br->notification_topic,
                     &br->bind_address, &br->cafile, &br->capath, &br->certfile, &br->keyfile, &br->tls_version,
                     &br->alpn, &br->identity, &br->psk};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    memset(br, 0, sizeof(*br));
}

/* The bridge a bridge directive applies to, or NULL (error set) before any `connection`. */
static struct tombo_bridge *cur_bridge(struct parser *ps, const char *name)
{
    if (ps->bridge < 0) {
        perr(ps, "'%s' is a bridge setting: it needs a 'connection NAME' line before it", name);
        return NULL;
    }
    return &ps->cfg->bridges[ps->bridge];
}

/* connection NAME: a new bridge, with Mosquitto 2.0's defaults; the bridge lines that follow
 * configure it. */
int h_connection(struct parser *ps, const struct directive *d, char *val)
{
    char *w = one_word(ps, d->name, val);
    if (!w)
        return -1;
    struct tombo_config *cfg = ps->cfg;
    for (int i = 0; i < cfg->n_bridges; i++)
        if (!strcmp(cfg->bridges[i].name, w))
            return perr(ps, "duplicate bridge name '%s' (first at %s)", w, cfg->bridges[i].where);
    cfg->bridges = xrealloc(cfg->bridges, (size_t)(cfg->n_bridges + 1) * sizeof(*cfg->bridges));
    struct tombo_bridge *br = &cfg->bridges[cfg->n_bridges];
    memset(br, 0, sizeof(*br));
    br->name = xstrdup(w);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d", ps->file, ps->line);
    br->where = xstrdup(where);
    br->local_cleansession = -1;
    br->keepalive = 60;
    br->notifications = true;
    br->restart_base = 5;
    br->restart_cap = 30;
    br->threshold = 10;
    br->idle_timeout = 60;
    br->try_private = true;
    br->protocol_version = 4;
    br->attempt_unsubscribe = true;
    br->outgoing_retain = true;
    ps->bridge = cfg->n_bridges++;
    return 0;
}

/* address HOST[:PORT] [HOST[:PORT] ...] (and `addresses`): the remote broker, and the addresses to
 * fail over to, in order. An IPv6 address with a port is written [ADDR]:PORT. */
int h_address(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    if (!br)
        return -1;
    char *p = val, *w;
    int n = 0;
    while ((w = next_word(&p)) && *w != '#') {
        char *host = w, *port_s = NULL;
        if (*w == '[') {
            char *close = strchr(w, ']');
            if (!close || (close[1] && close[1] != ':'))
                return perr(ps, "'%s': bad address '%s' (expected [IPV6]:PORT)", d->name, w);
            *close = '\0';
            host = w + 1;
            port_s = close[1] ? close + 2 : NULL;
        } else {
            char *colon = strchr(w, ':');
            if (colon && !strchr(colon + 1, ':')) { /* one colon: HOST:PORT; more: a bare IPv6 address */
                *colon = '\0';
                port_s = colon + 1;
            }
        }
        long port = 1883;
        if (port_s) {
            char *end;
            errno = 0;
            port = strtol(port_s, &end, 10);
            if (end == port_s || *end || errno || port < 1 || port > 65535)
                return perr(ps, "'%s': port must be a number from 1 to 65535, not '%s'", d->name, port_s);
        }
        if (!*host)
            return perr(ps, "'%s': empty host name", d->name);
        br->addrs = xrealloc(br->addrs, (size_t)(br->n_addrs + 1) * sizeof(*br->addrs));
        br->addrs[br->n_addrs++] = (struct tombo_bridge_addr){xstrdup(host), (uint16_t)port};
        n++;
    }
    if (n == 0)
        return perr(ps, "'%s' needs at least one HOST[:PORT]", d->name);
    return 0;
}

/* One word of a `topic` line: "" stands for the empty string (Mosquitto's syntax). After the
 * pattern (which may be `#`), a word starting with '#' begins a comment. */
static char *topic_word(char **p, bool pattern)
{
    char *w = next_word(p);
    if (w && *w == '#' && !pattern)
        return NULL;
    if (w && !strcmp(w, "\"\""))
        w[0] = '\0';
    return w;
}

static bool has_wildcard(const char *s) { return strchr(s, '+') || strchr(s, '#'); }

static char *join(const char *a, const char *b)
{
    size_t na = a ? strlen(a) : 0, nb = strlen(b);
    char *r = xmalloc(na + nb + 1);
    if (na)
        memcpy(r, a, na);
    memcpy(r + na, b, nb + 1);
    return r;
}

/* topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]] */
int h_topic(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    if (!br)
        return -1;
    char *p = val;
    char *pattern = topic_word(&p, true);
    if (!pattern)
        return perr(ps, "'topic' needs a pattern: topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]");
    char *dir_s = topic_word(&p, false), *qos_s = dir_s ? topic_word(&p, false) : NULL;
    char *lp = qos_s ? topic_word(&p, false) : NULL, *rp = lp ? topic_word(&p, false) : NULL;
    if (rp && expect_end(ps, d->name, p) < 0)
        return -1;
    uint8_t dir = BRIDGE_OUT;
    if (dir_s) {
        if (!strcmp(dir_s, "out"))
            dir = BRIDGE_OUT;
        else if (!strcmp(dir_s, "in"))
            dir = BRIDGE_IN;
        else if (!strcmp(dir_s, "both"))
            dir = BRIDGE_BOTH;
        else
            return perr(ps, "'topic' direction must be in, out or both, not '%s'", dir_s);
    }
    uint8_t qos = 0;
    if (qos_s) {
        if (strlen(qos_s) != 1 || qos_s[0] < '0' || qos_s[0] > '2')
            return perr(ps, "'topic' QoS must be 0, 1 or 2, not '%s'", qos_s);
        qos = (uint8_t)(qos_s[0] - '0');
    }
    if (lp && !rp)
        return perr(ps, "'topic' with a local prefix needs a remote prefix too (\"\" for none)");
    if (lp && !*lp)
        lp = NULL;
    if (rp && !*rp)
        rp = NULL;
    if ((lp && has_wildcard(lp)) || (rp && has_wildcard(rp)))
        return perr(ps, "'topic' prefixes cannot contain the wildcards + or #");
    if (!*pattern && !lp && !rp)
        return perr(ps, "'topic \"\"' needs a local or a remote prefix: the prefix is then the whole topic");
    if (!*pattern && ((lp && has_wildcard(lp)) || (rp && has_wildcard(rp))))
        return perr(ps, "'topic' prefixes cannot contain wildcards");
    /* The pattern must be a valid topic filter: '#' last and alone in its level, '+' alone. */
    for (const char *c = pattern; *c; c++) {
        if ((*c == '+' || *c == '#') && ((c > pattern && c[-1] != '/') || (c[1] && c[1] != '/')))
            return perr(ps, "'topic' pattern '%s' is not a valid topic filter", pattern);
        if (*c == '#' && c[1])
            return perr(ps, "'topic' pattern '%s' is not a valid topic filter ('#' must be last)", pattern);
    }
    br->topics = xrealloc(br->topics, (size_t)(br->n_topics + 1) * sizeof(*br->topics));
    struct tombo_bridge_topic *t = &br->topics[br->n_topics++];
    memset(t, 0, sizeof(*t));
    t->pattern = xstrdup(pattern);
    t->local_prefix = xstrdup(lp);
    t->remote_prefix = xstrdup(rp);
    t->local_topic = join(lp, pattern);
    t->remote_topic = join(rp, pattern);
    t->dir = dir;
    t->qos = qos;
    return 0;
}

/* restart_timeout BASE [CAP]: a constant wait, or a jittered backoff from BASE up to CAP seconds. */
int h_restart_timeout(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    if (!br)
        return -1;
    char *p = val;
    char *a = next_word(&p), *b = next_word(&p);
    if (b && *b == '#')
        b = NULL;
    if (!a || *a == '#')
        return perr(ps, "'restart_timeout' needs a value: restart_timeout SECONDS or restart_timeout BASE CAP");
    if (b && expect_end(ps, d->name, p) < 0)
        return -1;
    char *end;
    errno = 0;
    long base = strtol(a, &end, 10);
    if (end == a || *end || errno || base < 1 || base > 86400)
        return perr(ps, "'restart_timeout' must be a number of seconds from 1 to 86400, not '%s'", a);
    long cap = 0;
    if (b) {
        errno = 0;
        cap = strtol(b, &end, 10);
        if (end == b || *end || errno || cap < base || cap > 86400)
            return perr(ps, "'restart_timeout' cap must be a number of seconds from %ld to 86400, not '%s'", base, b);
    }
    br->restart_base = (uint32_t)base;
    br->restart_cap = (uint32_t)cap;
    return 0;
}

int h_start_type(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    char *w = br ? one_word(ps, d->name, val) : NULL;
    if (!w)
        return -1;
    if (!strcmp(w, "automatic"))
        br->start_type = BRIDGE_AUTOMATIC;
    else if (!strcmp(w, "lazy"))
        br->start_type = BRIDGE_LAZY;
    else if (!strcmp(w, "once"))
        br->start_type = BRIDGE_ONCE;
    else
        return perr(ps, "'start_type' must be automatic, lazy or once, not '%s'", w);
    return 0;
}

int h_bridge_protocol_version(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    char *w = br ? one_word(ps, d->name, val) : NULL;
    if (!w)
        return -1;
    if (!strcmp(w, "mqttv31"))
        br->protocol_version = 3;
    else if (!strcmp(w, "mqttv311"))
        br->protocol_version = 4;
    else if (!strcmp(w, "mqttv50"))
        br->protocol_version = 5;
    else
        return perr(ps, "'bridge_protocol_version' must be mqttv31, mqttv311 or mqttv50, not '%s'", w);
    return 0;
}

int h_local_cleansession(struct parser *ps, const struct directive *d, char *val)
{
    struct tombo_bridge *br = cur_bridge(ps, d->name);
    bool v = false;
    if (!br || parse_bool(ps, d->name, val, &v) < 0)
        return -1;
    br->local_cleansession = v;
    return 0;
}

int bridge_finish(struct tombo_config *cfg, struct tombo_bridge *br, char *err, size_t errlen)
{
    const char *msg = NULL;
    if (br->n_addrs == 0)
        msg = "this bridge has no 'address' line (the remote broker to connect to)";
    else if (br->n_topics == 0)
        msg = "this bridge has no 'topic' line (what it forwards)";
    else if (br->protocol_version == 3 && br->remote_clientid && strlen(br->remote_clientid) > 23)
        msg = "remote_clientid: MQTT 3.1 (bridge_protocol_version mqttv31) allows at most 23 characters";
    else if (br->remote_password && !br->remote_username)
        msg = "remote_password needs remote_username";
    else if (!br->certfile != !br->keyfile)
        msg = "bridge_certfile and bridge_keyfile go together (a client certificate and its key)";
    else if (br->local_password && !br->local_username)
        msg = "local_password needs local_username";
    else if (!br->identity != !br->psk)
        msg = "bridge_identity and bridge_psk go together (a PSK identity and its key)";
    else if (br->psk && (br->cafile || br->capath))
        msg = "bridge_psk and bridge_cafile/bridge_capath exclude each other: PSK or certificates";
    else if (br->require_ocsp && br->psk)
        msg = "bridge_require_ocsp checks the remote's certificate: it needs bridge_cafile or bridge_capath, "
              "not bridge_psk";
    else if (!tombo_bridge_tls(br) &&
             (br->certfile || br->insecure || br->tls_version || br->alpn || br->require_ocsp))
        msg = "TLS settings without bridge_cafile or bridge_capath (or bridge_identity/bridge_psk): this bridge "
              "does not use TLS; add them or remove the TLS lines";
    else if (br->tls_version && strcmp(br->tls_version, "tlsv1.2") && strcmp(br->tls_version, "tlsv1.3"))
        msg = "bridge_tls_version must be tlsv1.2 or tlsv1.3";
    if (msg) {
        snprintf(err, errlen, "%s: bridge '%s': %s", br->where, br->name, msg);
        return -1;
    }
    if (!br->remote_clientid) {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        size_t n = strlen(host) + strlen(br->name) + 2;
        br->remote_clientid = xmalloc(n);
        snprintf(br->remote_clientid, n, "%s.%s", host, br->name);
    }
    if (!br->local_clientid)
        br->local_clientid = join("local.", br->remote_clientid);
    if (!br->notification_topic) {
        size_t n = strlen(br->remote_clientid) + 40;
        br->notification_topic = xmalloc(n);
        snprintf(br->notification_topic, n, "$SYS/broker/connection/%s/state", br->remote_clientid);
    }
    if (br->local_cleansession < 0)
        br->local_cleansession = br->cleansession;
    for (int i = 0; i < cfg->n_bridges; i++) {
        const struct tombo_bridge *o = &cfg->bridges[i];
        if (o != br && o->local_clientid && !strcmp(o->local_clientid, br->local_clientid)) {
            snprintf(err, errlen, "%s: bridge '%s': local_clientid '%s' is also bridge '%s''s", br->where, br->name,
                     br->local_clientid, o->name);
            return -1;
        }
    }
    return 0;
}

