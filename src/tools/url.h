/* url.h -- the URL arguments of tombo-pub and tombo-sub, as mosquitto_pub/sub take them (url.c). */
#ifndef TOMBO_TOOLS_URL_H
#define TOMBO_TOOLS_URL_H

#include "tool_cfg.h"

/* -L mqtt://[username[:password]@]host[:port]/topic: sets host, port (1883), username, password and
 * adds the topic; the parts are copied into cfg->url_buf. mqtts:// is the same with TLS on and port
 * 8883 by default.
 * Returns 1, or -1 after printing an error. */
int tool_parse_url(tool_cfg_t *cfg, const char *url);
/* --proxy socks5h://[username[:password]@]host[:port] (port 1080 by default; %25, %3A and %40
 * escapes in the user and password), copied into cfg->proxy_buf. Returns 1, or -1 after printing
 * an error. */
int tool_parse_proxy(tool_cfg_t *cfg, const char *url);

#endif
