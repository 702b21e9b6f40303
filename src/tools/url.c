/* url.c -- the two URL-shaped arguments of mosquitto_pub/sub: -L mqtt://user:pass@host:port/topic
 * and --proxy socks5h://user:pass@host:port, taken apart into the settings (url.h). */
#include "url.h"

#include <stdlib.h>
#include <string.h>

int tool_parse_url(tool_cfg_t *cfg, const char *url)
{
    size_t skip;
    if (!strncmp(url, "mqtt://", 7)) {
        skip = 7;
        cfg->port = 1883;
    } else if (!strncmp(url, "mqtts://", 8)) {
        /* As mosquitto_pub/sub: port 8883, TLS verified against the system's CAs unless
         * --cafile/--capath say otherwise. */
        skip = 8;
        cfg->port = 8883;
        cfg->tls_os_certs = true;
    } else {
        tool_usage_error(cfg, "Unsupported URL scheme.\n");
        return -1;
    }
    size_t n = strlen(url + skip);
    if (n >= sizeof(cfg->url_buf)) {
        tool_usage_error(cfg, "URL too long.\n");
        return -1;
    }
    char *s = memcpy(cfg->url_buf, url + skip, n + 1);
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
        if (!tool_parse_int(colon + 1, 1, 65535, &port)) {
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
    return tool_add_topic(cfg, slash + 1) ? 1 : -1;
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
int tool_parse_proxy(tool_cfg_t *cfg, const char *url)
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
