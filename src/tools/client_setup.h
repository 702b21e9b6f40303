/* client_setup.h -- the libtombo client of tombo-pub and tombo-sub, made and connected from their
 * settings with mosquitto_pub/sub's messages (client_setup.c). */
#ifndef TOMBO_TOOLS_CLIENT_SETUP_H
#define TOMBO_TOOLS_CLIENT_SETUP_H

#include "tool_cfg.h"

/* Create the client from cfg (debug logging to stdout with -d). NULL after printing an error. */
tombo_client_t *tool_client_new(tool_cfg_t *cfg);
/* Connect, printing mosquitto's message on failure. Returns 0, or the exit code: 1, or 16 when the
 * SOCKS5 proxy failed (as mosquitto_pub). */
int tool_connect(tool_cfg_t *cfg, tombo_client_t *c);
/* Print the CONNACK refusal text. */
void tool_connack_error(const tool_cfg_t *cfg, int reason);

/* After a connection ended with err: when it is a TLS failure, print "Error: <why>" (the detail
 * of tombo_tls_error) and return true; the tools then stop, as mosquitto_pub/sub do after a TLS
 * error, instead of reconnecting. */
bool tool_tls_failed(const tool_cfg_t *cfg, tombo_client_t *c, tombo_err_t err);

/* tombo-sub's and tombo-rr's wait: run c's network loop on this thread until *done (set by the
 * callbacks), the connection is gone for good, SIGINT/SIGTERM, or `timeout` seconds (-W; 0: no
 * limit). A signal or the timeout disconnects with -D disconnect's properties. Returns true when
 * the timeout ended it, after printing "Timed out" (the tools then exit 27, as mosquitto's). */
bool tool_run(const tool_cfg_t *cfg, tombo_client_t *c, long long timeout, bool *done);

#endif
