/* common.c -- the flags tombo-pub and tombo-sub share with mosquitto_pub/mosquitto_sub, with the
 * same meaning, defaults and error messages, and the -D property parser. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tool_cfg_init(tool_cfg_t *cfg, enum tool_kind kind)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = kind;
    cfg->name = kind == TOOL_PUB ? "tombo-pub" : "tombo-sub";
    cfg->host = "localhost";
    cfg->port = 1883;
    cfg->keepalive = 60;
    cfg->version = TOMBO_MQTT_V311;
    cfg->clean = true;
    cfg->session_expiry = -1;
    cfg->max_inflight = 20;
}

void tool_cfg_free(tool_cfg_t *cfg)
{
    for (int i = 0; i < cfg->nfile_lines; i++)
        free(cfg->file_lines[i]);
    free(cfg->file_lines);
    free(cfg->topics);
    tombo_props_free(cfg->p_connect);
    tombo_props_free(cfg->p_publish);
    tombo_props_free(cfg->p_subscribe);
    tombo_props_free(cfg->p_unsubscribe);
    tombo_props_free(cfg->p_disconnect);
    tombo_props_free(cfg->p_will);
}

void tool_err(const tool_cfg_t *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void tool_usage_error(const tool_cfg_t *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUse '%s --help' to see usage.\n", cfg->name);
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* -D property names, as mosquitto spells them. */
static const struct {
    const char *name;
    int id;
} prop_names[] = {
    {"payload-format-indicator", TOMBO_PROP_PAYLOAD_FORMAT},
    {"message-expiry-interval", TOMBO_PROP_MESSAGE_EXPIRY},
    {"content-type", TOMBO_PROP_CONTENT_TYPE},
    {"response-topic", TOMBO_PROP_RESPONSE_TOPIC},
    {"correlation-data", TOMBO_PROP_CORRELATION_DATA},
    {"subscription-identifier", TOMBO_PROP_SUBSCRIPTION_ID},
    {"session-expiry-interval", TOMBO_PROP_SESSION_EXPIRY},
    {"authentication-method", TOMBO_PROP_AUTH_METHOD},
    {"authentication-data", TOMBO_PROP_AUTH_DATA},
    {"request-problem-information", TOMBO_PROP_REQUEST_PROBLEM_INFO},
    {"will-delay-interval", TOMBO_PROP_WILL_DELAY},
    {"request-response-information", TOMBO_PROP_REQUEST_RESPONSE_INFO},
    {"reason-string", TOMBO_PROP_REASON_STRING},
    {"receive-maximum", TOMBO_PROP_RECEIVE_MAX},
    {"topic-alias-maximum", TOMBO_PROP_TOPIC_ALIAS_MAX},
    {"topic-alias", TOMBO_PROP_TOPIC_ALIAS},
    {"user-property", TOMBO_PROP_USER_PROPERTY},
    {"maximum-packet-size", TOMBO_PROP_MAX_PACKET_SIZE},
};

/* Which properties each command accepts (MQTT 5.0 section 2.2.2.2). */
static bool prop_allowed(const char *cmd, int id)
{
    if (id == TOMBO_PROP_USER_PROPERTY)
        return true;
    if (!strcmp(cmd, "connect"))
        return id == TOMBO_PROP_SESSION_EXPIRY || id == TOMBO_PROP_AUTH_METHOD || id == TOMBO_PROP_AUTH_DATA ||
               id == TOMBO_PROP_REQUEST_PROBLEM_INFO || id == TOMBO_PROP_REQUEST_RESPONSE_INFO ||
               id == TOMBO_PROP_RECEIVE_MAX || id == TOMBO_PROP_TOPIC_ALIAS_MAX || id == TOMBO_PROP_MAX_PACKET_SIZE;
    if (!strcmp(cmd, "publish"))
        return id == TOMBO_PROP_PAYLOAD_FORMAT || id == TOMBO_PROP_MESSAGE_EXPIRY || id == TOMBO_PROP_CONTENT_TYPE ||
               id == TOMBO_PROP_RESPONSE_TOPIC || id == TOMBO_PROP_CORRELATION_DATA;
    if (!strcmp(cmd, "will"))
        return id == TOMBO_PROP_PAYLOAD_FORMAT || id == TOMBO_PROP_MESSAGE_EXPIRY || id == TOMBO_PROP_CONTENT_TYPE ||
               id == TOMBO_PROP_RESPONSE_TOPIC || id == TOMBO_PROP_CORRELATION_DATA || id == TOMBO_PROP_WILL_DELAY;
    if (!strcmp(cmd, "subscribe"))
        return id == TOMBO_PROP_SUBSCRIPTION_ID;
    if (!strcmp(cmd, "disconnect"))
        return id == TOMBO_PROP_SESSION_EXPIRY || id == TOMBO_PROP_REASON_STRING;
    return false; /* unsubscribe: user properties only */
}

static int parse_property(tool_cfg_t *cfg, int argc, char **argv, int *i)
{
    if (*i + 2 >= argc) {
        tool_usage_error(cfg, "--property argument given but not enough arguments specified.\n");
        return -1;
    }
    const char *cmd = argv[*i + 1], *pname = argv[*i + 2];
    tombo_props_t **slot = !strcmp(cmd, "connect")       ? &cfg->p_connect
                           : !strcmp(cmd, "publish")     ? &cfg->p_publish
                           : !strcmp(cmd, "subscribe")   ? &cfg->p_subscribe
                           : !strcmp(cmd, "unsubscribe") ? &cfg->p_unsubscribe
                           : !strcmp(cmd, "disconnect")  ? &cfg->p_disconnect
                           : !strcmp(cmd, "will")        ? &cfg->p_will
                                                         : NULL;
    if (!slot) {
        tool_usage_error(cfg, "Invalid command %s given in --property argument.\n", cmd);
        return -1;
    }
    int id = -1;
    for (size_t k = 0; k < sizeof(prop_names) / sizeof(prop_names[0]); k++)
        if (!strcmp(prop_names[k].name, pname))
            id = prop_names[k].id;
    if (id < 0) {
        tool_usage_error(cfg, "Invalid property name given in --property argument.\n");
        return -1;
    }
    if (!prop_allowed(cmd, id)) {
        tool_usage_error(cfg, "Property %s not allowed for %s in --property argument.\n", pname, cmd);
        return -1;
    }
    int need = id == TOMBO_PROP_USER_PROPERTY ? 2 : 1;
    if (*i + 2 + need >= argc) {
        tool_usage_error(cfg, "--property argument given but not enough arguments specified.\n");
        return -1;
    }
    if (!*slot && !(*slot = tombo_props_new())) {
        tool_err(cfg, "Error: Out of memory.\n");
        return -1;
    }
    const char *v = argv[*i + 3];
    tombo_err_t e;
    if (id == TOMBO_PROP_USER_PROPERTY) {
        e = tombo_props_add_user(*slot, v, argv[*i + 4]);
    } else if (id == TOMBO_PROP_CONTENT_TYPE || id == TOMBO_PROP_RESPONSE_TOPIC || id == TOMBO_PROP_AUTH_METHOD ||
               id == TOMBO_PROP_REASON_STRING) {
        e = tombo_props_set_string(*slot, id, v);
    } else if (id == TOMBO_PROP_CORRELATION_DATA || id == TOMBO_PROP_AUTH_DATA) {
        e = tombo_props_set_binary(*slot, id, v, strlen(v));
    } else {
        long long n;
        e = parse_int(v, 0, 4294967295LL, &n) ? tombo_props_set_int(*slot, id, (uint32_t)n) : TOMBO_ERR_INVAL;
    }
    if (e != TOMBO_OK) {
        tool_usage_error(cfg, "Invalid property value given in --property argument.\n");
        return -1;
    }
    *i += 2 + need;
    return 1;
}

/* The argument of the flag at argv[*i], or NULL after an error. */
static const char *arg(tool_cfg_t *cfg, int argc, char **argv, int *i, const char *what)
{
    if (*i + 1 >= argc) {
        tool_usage_error(cfg, "%s argument given but no %s specified.\n", argv[*i], what);
        return NULL;
    }
    return argv[++*i];
}

static bool add_topic(tool_cfg_t *cfg, const char *t)
{
    if (cfg->kind == TOOL_PUB && cfg->ntopics) {
        tool_usage_error(cfg, "Only one topic can be used.\n");
        return false;
    }
    const char **l = realloc(cfg->topics, (size_t)(cfg->ntopics + 1) * sizeof(*l));
    if (!l)
        return false;
    cfg->topics = l;
    cfg->topics[cfg->ntopics++] = t;
    return true;
}

/* -L mqtt://[username[:password]@]host[:port]/topic. The parts are copied into cfg->url_buf
 * (the only strings cfg owns besides props). mqtts:// needs TLS, which comes later. */
static int parse_url(tool_cfg_t *cfg, const char *url)
{
    if (strncmp(url, "mqtt://", 7) != 0) {
        if (!strncmp(url, "mqtts://", 8))
            tool_usage_error(cfg, "TLS (mqtts://) is not supported yet.\n");
        else
            tool_usage_error(cfg, "Unsupported URL scheme.\n");
        return -1;
    }
    size_t n = strlen(url + 7);
    if (n >= sizeof(cfg->url_buf)) {
        tool_usage_error(cfg, "URL too long.\n");
        return -1;
    }
    char *s = memcpy(cfg->url_buf, url + 7, n + 1);
    char *slash = strchr(s, '/');
    if (!slash || !slash[1]) {
        tool_usage_error(cfg, "Invalid URL for -L argument specified - topic missing.\n");
        return -1;
    }
    *slash = 0;
    char *at = strrchr(s, '@');
    if (at) {
        *at = 0;
        char *colon = strchr(s, ':');
        if (colon) {
            *colon = 0;
            cfg->password = colon + 1;
        }
        cfg->username = s;
        s = at + 1;
    }
    char *colon = strrchr(s, ':');
    if (colon) {
        *colon = 0;
        long long port;
        if (!parse_int(colon + 1, 1, 65535, &port)) {
            tool_usage_error(cfg, "Invalid port given: %s\n", colon + 1);
            return -1;
        }
        cfg->port = (int)port;
    }
    if (!*s) {
        tool_usage_error(cfg, "Invalid URL for -L argument specified - host missing.\n");
        return -1;
    }
    cfg->host = s;
    return add_topic(cfg, slash + 1) ? 1 : -1;
}

/* %25 -> %, %3a/%3A -> :, %40 -> @ in place (the escapes mosquitto_sub decodes in --proxy). */
static bool url_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s != '%') {
            *o++ = *s;
            continue;
        }
        if (s[1] == '2' && s[2] == '5')
            *o++ = '%';
        else if (s[1] == '3' && (s[2] == 'a' || s[2] == 'A'))
            *o++ = ':';
        else if (s[1] == '4' && s[2] == '0')
            *o++ = '@';
        else
            return false;
        s += 2;
    }
    *o = 0;
    return true;
}

/* --proxy socks5h://[username[:password]@]host[:port] (port 1080 by default). */
static int parse_proxy(tool_cfg_t *cfg, const char *url)
{
    if (strncmp(url, "socks5h://", 10) != 0) {
        tool_usage_error(cfg, "Unsupported proxy protocol: %s\n", url);
        return -1;
    }
    size_t n = strlen(url + 10);
    if (n >= sizeof(cfg->proxy_buf)) {
        tool_usage_error(cfg, "Invalid proxy.\n");
        return -1;
    }
    char *s = memcpy(cfg->proxy_buf, url + 10, n + 1);
    char *at = strchr(s, '@');
    const char *user = NULL, *pass = NULL;
    if (at) {
        *at = 0;
        char *colon = strchr(s, ':');
        if (colon) {
            *colon = 0;
            pass = colon + 1;
        }
        user = s;
        s = at + 1;
        if (!*user || strchr(s, '@') || !url_decode((char *)user) || (pass && !url_decode((char *)pass))) {
            tool_usage_error(cfg, "Invalid proxy.\n");
            return -1;
        }
    }
    char *colon = strchr(s, ':');
    int port = 1080;
    if (colon) {
        *colon = 0;
        port = atoi(colon + 1);
        if (port < 1 || port > 65535) {
            tool_usage_error(cfg, "Invalid proxy port %d\n", port);
            return -1;
        }
    }
    if (!*s) {
        tool_usage_error(cfg, "Invalid proxy.\n");
        return -1;
    }
    cfg->socks5_host = s;
    cfg->socks5_port = port;
    cfg->socks5_username = user;
    cfg->socks5_password = pass;
    return 1;
}

int tool_parse_common(tool_cfg_t *cfg, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    long long n;
    if (!strcmp(a, "-h") || !strcmp(a, "--host")) {
        if (!(v = arg(cfg, argc, argv, i, "host")))
            return -1;
        cfg->host = v;
    } else if (!strcmp(a, "-p") || !strcmp(a, "--port")) {
        if (!(v = arg(cfg, argc, argv, i, "port")))
            return -1;
        if (!parse_int(v, 1, 65535, &n)) {
            tool_usage_error(cfg, "Invalid port given: %s\n", v);
            return -1;
        }
        cfg->port = (int)n;
    } else if (!strcmp(a, "--unix")) {
        if (!(v = arg(cfg, argc, argv, i, "socket path")))
            return -1;
        cfg->host = v;
        cfg->port = 0; /* as mosquitto: a later -p makes host a TCP host name again */
    } else if (!strcmp(a, "--proxy")) {
        if (!(v = arg(cfg, argc, argv, i, "proxy url")))
            return -1;
        return parse_proxy(cfg, v);
    } else if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
        if (!(v = arg(cfg, argc, argv, i, "topic")))
            return -1;
        if (!add_topic(cfg, v))
            return -1;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--qos")) {
        if (!(v = arg(cfg, argc, argv, i, "QoS")))
            return -1;
        if (!parse_int(v, 0, 2, &n)) {
            tool_usage_error(cfg, "Invalid QoS given: %s\n", v);
            return -1;
        }
        cfg->qos = (int)n;
    } else if (!strcmp(a, "-i") || !strcmp(a, "--id")) {
        if (!(v = arg(cfg, argc, argv, i, "id")))
            return -1;
        cfg->id = v;
    } else if (!strcmp(a, "-I") || !strcmp(a, "--id-prefix")) {
        if (!(v = arg(cfg, argc, argv, i, "id prefix")))
            return -1;
        cfg->id_prefix = v;
    } else if (!strcmp(a, "-k") || !strcmp(a, "--keepalive")) {
        if (!(v = arg(cfg, argc, argv, i, "keepalive")))
            return -1;
        if (!parse_int(v, 0, 65535, &n) || (n > 0 && n < 5)) {
            tool_usage_error(cfg, "Invalid keepalive given, it must be between 5 and 65535 inclusive.\n");
            return -1;
        }
        cfg->keepalive = (int)n;
    } else if (!strcmp(a, "-u") || !strcmp(a, "--username")) {
        if (!(v = arg(cfg, argc, argv, i, "username")))
            return -1;
        cfg->username = v;
    } else if (!strcmp(a, "-P") || !strcmp(a, "--pw")) {
        if (!(v = arg(cfg, argc, argv, i, "password")))
            return -1;
        cfg->password = v;
    } else if (!strcmp(a, "-V") || !strcmp(a, "--protocol-version")) {
        if (!(v = arg(cfg, argc, argv, i, "protocol version")))
            return -1;
        if (!strcmp(v, "mqttv31") || !strcmp(v, "31"))
            cfg->version = TOMBO_MQTT_V31;
        else if (!strcmp(v, "mqttv311") || !strcmp(v, "311"))
            cfg->version = TOMBO_MQTT_V311;
        else if (!strcmp(v, "mqttv5") || !strcmp(v, "5"))
            cfg->version = TOMBO_MQTT_V5;
        else {
            tool_usage_error(cfg, "Invalid protocol version argument given.\n");
            return -1;
        }
    } else if (!strcmp(a, "-d") || !strcmp(a, "--debug")) {
        cfg->debug = true;
    } else if (!strcmp(a, "--quiet")) {
        cfg->quiet = true;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--disable-clean-session")) {
        cfg->clean = false;
    } else if (!strcmp(a, "-x")) {
        if (!(v = arg(cfg, argc, argv, i, "session expiry interval")))
            return -1;
        if (!strcmp(v, "-1") || !strcmp(v, "∞"))
            n = 4294967295LL;
        else if (!parse_int(v, 0, 4294967295LL, &n)) {
            tool_usage_error(cfg, "Invalid session-expiry-interval given.\n");
            return -1;
        }
        cfg->session_expiry = n;
    } else if (!strcmp(a, "-r") || !strcmp(a, "--retain")) {
        if (cfg->kind != TOOL_PUB)
            return 0;
        cfg->retain = true;
    } else if (!strcmp(a, "-A")) {
        if (!(v = arg(cfg, argc, argv, i, "address")))
            return -1;
        cfg->bind_address = v;
    } else if (!strcmp(a, "--nodelay")) {
        /* libtombo always sets TCP_NODELAY. */
    } else if (!strcmp(a, "-M")) {
        if (!(v = arg(cfg, argc, argv, i, "max inflight")))
            return -1;
        if (!parse_int(v, 1, 65535, &n)) {
            tool_usage_error(cfg, "Invalid max inflight given.\n");
            return -1;
        }
        cfg->max_inflight = (int)n;
    } else if (!strcmp(a, "--will-topic")) {
        if (!(v = arg(cfg, argc, argv, i, "will topic")))
            return -1;
        cfg->will_topic = v;
    } else if (!strcmp(a, "--will-payload")) {
        if (!(v = arg(cfg, argc, argv, i, "will payload")))
            return -1;
        cfg->will_payload = v;
    } else if (!strcmp(a, "--will-qos")) {
        if (!(v = arg(cfg, argc, argv, i, "will QoS")))
            return -1;
        if (!parse_int(v, 0, 2, &n)) {
            tool_usage_error(cfg, "Invalid will QoS %s.\n", v);
            return -1;
        }
        cfg->will_qos = (int)n;
    } else if (!strcmp(a, "--will-retain")) {
        cfg->will_retain = true;
    } else if (!strcmp(a, "-L") || !strcmp(a, "--url")) {
        if (!(v = arg(cfg, argc, argv, i, "URL")))
            return -1;
        return parse_url(cfg, v);
    } else if (!strcmp(a, "-D") || !strcmp(a, "--property")) {
        return parse_property(cfg, argc, argv, i);
    } else {
        return 0;
    }
    return 1;
}

static FILE *open_options_file(const tool_cfg_t *cfg)
{
    const char *names[2] = {cfg->kind == TOOL_PUB ? "tombo_pub" : "tombo_sub",
                            cfg->kind == TOOL_PUB ? "mosquitto_pub" : "mosquitto_sub"};
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    for (int k = 0; k < 2; k++) {
        char path[4096];
        if (xdg)
            snprintf(path, sizeof(path), "%s/%s", xdg, names[k]);
        else if (home)
            snprintf(path, sizeof(path), "%s/.config/%s", home, names[k]);
        else
            return NULL;
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    return NULL;
}

int tool_options_file(tool_cfg_t *cfg, int (*parse)(int argc, char **argv))
{
    FILE *f = open_options_file(cfg);
    if (!f)
        return 0;
    char line[1024];
    int rc = 0;
    while (rc >= 0 && fgets(line, sizeof(line), f)) {
        if (line[0] == '#')
            continue;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        char **l = realloc(cfg->file_lines, (size_t)(cfg->nfile_lines + 1) * sizeof(*l));
        char *copy = strdup(line);
        if (l)
            cfg->file_lines = l;
        if (!l || !copy) {
            free(copy);
            tool_err(cfg, "Error: Out of memory.\n");
            rc = -1;
            break;
        }
        cfg->file_lines[cfg->nfile_lines++] = copy;
        /* As mosquitto: the flag is the first word, its argument all the rest of the line. */
        char *save = NULL, *args[3] = {NULL, NULL, NULL};
        args[1] = strtok_r(copy, " ", &save);
        if (!args[1])
            continue;
        args[2] = strtok_r(NULL, "", &save);
        rc = parse(args[2] ? 3 : 2, args);
    }
    fclose(f);
    return rc < 0 ? rc : 0;
}

int tool_cfg_finish(tool_cfg_t *cfg)
{
    if (cfg->will_payload && !cfg->will_topic) {
        tool_usage_error(cfg, "Will payload given, but no will topic given.\n");
        return -1;
    }
    if (cfg->will_retain && !cfg->will_topic) {
        tool_usage_error(cfg, "Will retain given, but no will topic given.\n");
        return -1;
    }
    if (cfg->password && !cfg->username) {
        tool_err(cfg, "Warning: Not using password since username not set.\n");
        cfg->password = NULL;
    }
    if (cfg->id_prefix && !cfg->id) {
        snprintf(cfg->id_buf, sizeof(cfg->id_buf), "%s%d", cfg->id_prefix, (int)getpid());
        cfg->id = cfg->id_buf;
    }
    if (!cfg->id) {
        /* mosquitto_pub/sub 2.0 let a v3.1.1/v5 broker assign the id; v3.1 needs one. */
        if (cfg->version == TOMBO_MQTT_V31 || !cfg->clean) {
            snprintf(cfg->id_buf, sizeof(cfg->id_buf), "%s_%d", cfg->kind == TOOL_PUB ? "tombo_pub" : "tombo_sub",
                     (int)getpid());
            cfg->id = cfg->id_buf;
        } else {
            cfg->id = "";
        }
    }
    if (!cfg->clean && cfg->session_expiry < 0)
        cfg->session_expiry = 4294967295LL;
    if (cfg->version == TOMBO_MQTT_V31 && strlen(cfg->id) > 23) {
        tool_usage_error(cfg, "Client id too long for MQTT v3.1 (23 characters maximum).\n");
        return -1;
    }
    return 0;
}

static void on_log(tombo_client_t *c, void *user, int level, const char *line)
{
    (void)c;
    (void)user;
    (void)level;
    printf("%s\n", line);
}

tombo_client_t *tool_client_new(tool_cfg_t *cfg)
{
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = cfg->version;
    o.clean_start = cfg->clean;
    if (cfg->session_expiry > 0 && cfg->version == TOMBO_MQTT_V5)
        o.session_expiry = (uint32_t)cfg->session_expiry;
    o.username = cfg->username;
    o.password = cfg->password;
    o.will_topic = cfg->will_topic;
    o.will_payload = cfg->will_payload;
    o.will_payload_len = cfg->will_payload ? strlen(cfg->will_payload) : 0;
    o.will_qos = cfg->will_qos;
    o.will_retain = cfg->will_retain;
    o.will_props = cfg->p_will;
    o.connect_props = cfg->p_connect;
    o.max_inflight = cfg->max_inflight;
    o.bind_address = cfg->bind_address;
    o.socks5_host = cfg->socks5_host;
    o.socks5_port = cfg->socks5_port;
    o.socks5_username = cfg->socks5_username;
    o.socks5_password = cfg->socks5_password;
    if (cfg->reconnect) {
        /* libmosquitto's default: retry every second; the tool subscribes again in on_connect. */
        o.auto_reconnect = true;
        o.reconnect_min_ms = 1000;
        o.reconnect_max_ms = 1000;
        o.resubscribe = false;
    }
    tombo_client_t *c = tombo_client_new(cfg->id, &o);
    if (!c) {
        tool_err(cfg, "Error: Unable to create the client (invalid options or out of memory).\n");
        return NULL;
    }
    if (cfg->debug) {
        tombo_set_on_log(c, on_log);
        tombo_set_log_level(c, TOMBO_LOG_DEBUG | TOMBO_LOG_INFO | TOMBO_LOG_WARNING | TOMBO_LOG_ERROR);
    } else {
        tombo_set_log_level(c, 0);
    }
    return c;
}

int tool_connect(tool_cfg_t *cfg, tombo_client_t *c)
{
    tombo_err_t e = tombo_connect(c, cfg->host, cfg->port, cfg->keepalive); /* port 0: --unix */
    if (e == TOMBO_OK)
        return 0;
    if (e == TOMBO_ERR_ERRNO)
        tool_err(cfg, "Error: %s\n", strerror(errno));
    else if (e == TOMBO_ERR_LOOKUP)
        tool_err(cfg, "Unable to connect (Lookup error.).\n");
    else if (e == TOMBO_ERR_PROXY) {
        tool_err(cfg, "Error: Proxy error.\n");
        return 16; /* libmosquitto's MOSQ_ERR_PROXY, mosquitto_pub's exit code */
    }
    else
        tool_err(cfg, "Unable to connect (%s).\n", tombo_strerror(e));
    return 1;
}

void tool_connack_error(const tool_cfg_t *cfg, int reason)
{
    const char *text = tombo_reason_string(cfg->version, true, reason);
    if (cfg->version == TOMBO_MQTT_V5) /* mosquitto capitalises the v5 reason texts */
        tool_err(cfg, "Connection error: %c%s\n", toupper((unsigned char)text[0]), text + 1);
    else
        tool_err(cfg, "Connection error: %s\n", text);
}
