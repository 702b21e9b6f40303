/* args.c -- the flags tombo-pub and tombo-sub share with mosquitto_pub/mosquitto_sub (args.h), with
 * the same meaning, defaults and error messages: the -D property parser among them, and the
 * checks that need the whole command line. */
#include "args.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "url.h"

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
        e = tool_parse_int(v, 0, 4294967295LL, &n) ? tombo_props_set_int(*slot, id, (uint32_t)n) : TOMBO_ERR_INVAL;
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

const char tool_tls_usage[] =
    " --cafile : path to a file containing trusted CA certificates to enable encrypted\n"
    "            communication.\n"
    " --capath : path to a directory containing trusted CA certificates to enable encrypted\n"
    "            communication.\n"
    " --cert : client certificate for authentication, if required by server.\n"
    " --key : client private key for authentication, if required by server.\n"
    " --ciphers : openssl compatible list of TLS 1.2 ciphers to support.\n"
    " --tls-version : minimum TLS protocol version, tlsv1.3 or tlsv1.2 (the default).\n"
    " --tls-alpn : TLS application layer protocol negotiation protocols, e.g. mqtt.\n"
    " --tls-use-os-certs : verify the broker against the system's CA certificates.\n"
    " --insecure : do not check that the server certificate hostname matches the remote\n"
    "              hostname. Using this option means that you cannot be sure that the\n"
    "              remote host is the server you wish to connect to and so is insecure.\n"
    "              Do not use this option in a production environment.\n"
    " --psk : pre-shared-key in hexadecimal (no leading 0x) to enable TLS-PSK mode.\n"
    " --psk-identity : client identity string for TLS-PSK mode.\n";

/* The TLS flags (mosquitto_pub/sub's names). Returns 1 when handled, 0 when not a TLS flag, -1
 * after an error. */
static int parse_tls(tool_cfg_t *cfg, int argc, char **argv, int *i);

int tool_parse_common(tool_cfg_t *cfg, int argc, char **argv, int *i)
{
    int t = parse_tls(cfg, argc, argv, i);
    if (t != 0)
        return t;
    const char *a = argv[*i], *v;
    long long n;
    if (!strcmp(a, "-h") || !strcmp(a, "--host")) {
        if (!(v = arg(cfg, argc, argv, i, "host")))
            return -1;
        cfg->host = v;
    } else if (!strcmp(a, "-p") || !strcmp(a, "--port")) {
        if (!(v = arg(cfg, argc, argv, i, "port")))
            return -1;
        if (!tool_parse_int(v, 1, 65535, &n)) {
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
        return tool_parse_proxy(cfg, v);
    } else if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
        if (!(v = arg(cfg, argc, argv, i, "topic")))
            return -1;
        if (!tool_add_topic(cfg, v))
            return -1;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--qos")) {
        if (!(v = arg(cfg, argc, argv, i, "QoS")))
            return -1;
        if (!tool_parse_int(v, 0, 2, &n)) {
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
        if (!tool_parse_int(v, 0, 65535, &n) || (n > 0 && n < 5)) {
            tool_usage_error(cfg, "Invalid keepalive given, it must be between 5 and 65535 inclusive.\n");
            return -1;
        }
        cfg->keepalive = (int)n;
    } else if (!strcmp(a, "-u") || !strcmp(a, "--username")) {
        if (!(v = arg(cfg, argc, argv, i, "username")))
            return -1;
        cfg->username = v;
    } else if (!strcmp(a, "--auth-method")) {
        if (!(v = arg(cfg, argc, argv, i, "authentication method")))
            return -1;
        if (strcmp(v, "SCRAM-SHA-256") != 0) {
            tool_usage_error(cfg, "Error: Unknown authentication method '%s' (SCRAM-SHA-256 is the one supported).\n", v);
            return -1;
        }
        cfg->auth_method = v;
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
        else if (!tool_parse_int(v, 0, 4294967295LL, &n)) {
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
        if (!tool_parse_int(v, 1, 65535, &n)) {
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
        if (!tool_parse_int(v, 0, 2, &n)) {
            tool_usage_error(cfg, "Invalid will QoS %s.\n", v);
            return -1;
        }
        cfg->will_qos = (int)n;
    } else if (!strcmp(a, "--will-retain")) {
        cfg->will_retain = true;
    } else if (!strcmp(a, "-L") || !strcmp(a, "--url")) {
        if (!(v = arg(cfg, argc, argv, i, "URL")))
            return -1;
        return tool_parse_url(cfg, v);
    } else if (!strcmp(a, "-D") || !strcmp(a, "--property")) {
        return parse_property(cfg, argc, argv, i);
    } else {
        return 0;
    }
    return 1;
}

static int parse_tls(tool_cfg_t *cfg, int argc, char **argv, int *i)
{
    static const struct {
        const char *flag, *what;
        size_t off;
    } strs[] = {
        {"--cafile", "cafile", offsetof(tombo_tls_options_t, cafile)},
        {"--capath", "capath", offsetof(tombo_tls_options_t, capath)},
        {"--cert", "cert", offsetof(tombo_tls_options_t, certfile)},
        {"--key", "key", offsetof(tombo_tls_options_t, keyfile)},
        {"--ciphers", "ciphers", offsetof(tombo_tls_options_t, ciphers)},
        {"--tls-version", "version", offsetof(tombo_tls_options_t, tls_version)},
        {"--tls-alpn", "protocol", offsetof(tombo_tls_options_t, alpn)},
        {"--psk", "key", offsetof(tombo_tls_options_t, psk)},
        {"--psk-identity", "identity", offsetof(tombo_tls_options_t, psk_identity)},
    };
    const char *a = argv[*i];
    if (!strcmp(a, "--insecure")) {
        cfg->tls.insecure = true;
        return 1;
    }
    if (!strcmp(a, "--tls-use-os-certs")) {
        cfg->tls_os_certs = true;
        return 1;
    }
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
        if (strcmp(a, strs[k].flag) != 0)
            continue;
        const char *v = arg(cfg, argc, argv, i, strs[k].what);
        if (!v)
            return -1;
        *(const char **)((char *)&cfg->tls + strs[k].off) = v;
        return 1;
    }
    return 0;
}

/* mosquitto_pub/sub's rules for the TLS flags; a flag that would do nothing is refused. */
static int tls_finish(tool_cfg_t *cfg)
{
    const tombo_tls_options_t *t = &cfg->tls;
    if (!!t->certfile != !!t->keyfile) {
        tool_usage_error(cfg, "Both certfile and keyfile must be provided if one of them is set.\n");
        return -1;
    }
    if ((t->cafile || t->capath) && t->psk) {
        tool_usage_error(cfg, "Only one of --psk or --cafile/--capath may be used at once.\n");
        return -1;
    }
    if (t->psk && !t->psk_identity) {
        tool_usage_error(cfg, "--psk-identity required if --psk used.\n");
        return -1;
    }
    if (t->psk_identity && !t->psk) {
        tool_usage_error(cfg, "--psk required if --psk-identity used.\n");
        return -1;
    }
    bool on = t->cafile || t->capath || t->psk || cfg->tls_os_certs;
    if (!on && (t->certfile || t->insecure || t->ciphers || t->tls_version || t->alpn)) {
        tool_usage_error(cfg, "TLS options given, but TLS is not enabled: add --cafile, --capath, "
                              "--tls-use-os-certs, --psk or use an mqtts:// URL.\n");
        return -1;
    }
    if (on && cfg->port == 0) {
        tool_usage_error(cfg, "TLS over a unix socket (--unix) is not supported.\n");
        return -1;
    }
    return 0;
}

int tool_cfg_finish(tool_cfg_t *cfg)
{
    if (tls_finish(cfg) < 0)
        return -1;
    if (cfg->will_payload && !cfg->will_topic) {
        tool_usage_error(cfg, "Will payload given, but no will topic given.\n");
        return -1;
    }
    if (cfg->will_retain && !cfg->will_topic) {
        tool_usage_error(cfg, "Will retain given, but no will topic given.\n");
        return -1;
    }
    if (cfg->auth_method && (cfg->version != TOMBO_MQTT_V5 || !cfg->username || !cfg->password)) {
        tool_usage_error(cfg, "Error: --auth-method needs -V 5, a username (-u) and a password (-P).\n");
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
            snprintf(cfg->id_buf, sizeof(cfg->id_buf), "%s_%d", cfg->file_name,
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
