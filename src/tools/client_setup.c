/* client_setup.c -- from settings to a connected libtombo client (client_setup.h): the client's
 * options, debug logging, and mosquitto's messages when connecting or the CONNACK fails. */
#include "client_setup.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
    o.auth_method = cfg->auth_method;
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
    const tombo_tls_options_t *t = &cfg->tls;
    if (t->cafile || t->capath || t->psk || cfg->tls_os_certs) {
        tombo_err_t e = tombo_set_tls(c, &cfg->tls);
        if (e != TOMBO_OK) {
            tool_err(cfg, "Error: %s\n", e == TOMBO_ERR_TLS_CONFIG ? tombo_tls_error(c) : tombo_strerror(e));
            tombo_client_destroy(c);
            return NULL;
        }
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
    if (tool_tls_failed(cfg, c, e))
        return 1;
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

bool tool_tls_failed(const tool_cfg_t *cfg, tombo_client_t *c, tombo_err_t err)
{
    if (err != TOMBO_ERR_TLS_HANDSHAKE && err != TOMBO_ERR_TLS_VERIFY && err != TOMBO_ERR_TLS_HOSTNAME &&
        err != TOMBO_ERR_TLS_CONFIG)
        return false;
    const char *why = tombo_tls_error(c);
    tool_err(cfg, "Error: %s\n", *why ? why : tombo_strerror(err));
    return true;
}

void tool_connack_error(const tool_cfg_t *cfg, int reason)
{
    const char *text = tombo_reason_string(cfg->version, true, reason);
    if (cfg->version == TOMBO_MQTT_V5) /* mosquitto capitalises the v5 reason texts */
        tool_err(cfg, "Connection error: %c%s\n", toupper((unsigned char)text[0]), text + 1);
    else
        tool_err(cfg, "Connection error: %s\n", text);
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

bool tool_run(const tool_cfg_t *cfg, tombo_client_t *c, long long timeout, bool *done)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!*done) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        bool timed_out = timeout && now.tv_sec - start.tv_sec >= timeout;
        if (stop_signal || timed_out) {
            *done = true;
            tombo_disconnect(c, 0, cfg->p_disconnect);
            if (timed_out && !stop_signal) {
                tool_err(cfg, "Timed out\n");
                return true;
            }
            return false;
        }
        if (tombo_loop(c, 100) == TOMBO_ERR_NO_CONN)
            break;
    }
    return false;
}
