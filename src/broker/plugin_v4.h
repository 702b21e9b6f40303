/* plugin_v4.h -- Mosquitto auth plugins of interface versions 2, 3 and 4 (mosquitto_plugin.h's
 * mosquitto_auth_plugin_version(); version 4 is mosquitto-go-auth's and most in the wild), loaded
 * as Mosquitto 2.0 loads them. plugin.c dispatches on the version in one place (plugin_load) and,
 * for 2 to 4, calls plugin_v4_open(); the plugin's functions are then reached through ordinary v5
 * callbacks registered on the plugin (MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_ACL_CHECK, MOSQ_EVT_PSK_KEY,
 * MOSQ_EVT_EXT_AUTH_*, MOSQ_EVT_RELOAD), so every check goes through the same call sites, order
 * and mutex as a version 5 plugin's.
 *
 * Calls, as in Mosquitto 2.0: load: mosquitto_auth_plugin_init, then
 * mosquitto_auth_security_init(reload=false); SIGHUP: security_cleanup(reload=true), then
 * security_init(reload=true); unload: security_cleanup(reload=false), then plugin_cleanup.
 * unpwd_check answers MOSQ_EVT_BASIC_AUTH (optional in version 4); acl_check answers READ, WRITE
 * and SUBSCRIBE (UNSUBSCRIBE is allowed without asking, as Mosquitto does; version 2, whose
 * acl_check takes (client id, user name, topic, access), is not asked about SUBSCRIBE either);
 * with auth_plugin_deny_special_chars true (the default, deny_special) every access, UNSUBSCRIBE
 * included, is denied without asking when the client id or user name holds '+' or '#', as in
 * Mosquitto 2.0's security.c (the login itself is not: unpwd_check is still asked).
 * mosquitto_auth_start/continue (version 4: MQTT 5 enhanced authentication) answer
 * MOSQ_EVT_EXT_AUTH_START / _CONTINUE (their MOSQ_ERR_NOT_SUPPORTED lets the next plugin try;
 * start without continue is refused at load, as in Mosquitto); mosquitto_auth_psk_key_get
 * (optional in version 4) answers MOSQ_EVT_PSK_KEY. */
#ifndef TOMBO_BROKER_PLUGIN_V4_H
#define TOMBO_BROKER_PLUGIN_V4_H

#include <stdbool.h>
#include <stddef.h>

struct mosquitto_opt;
struct mosquitto_plugin_id_t;

/* Resolve lib's version 4 functions, run its plugin_init and security_init(false) and register
 * the callbacks on id. On success returns 0 with *userdata / *cleanup set for plugin.c's
 * unload (cleanup(userdata, opts, n) runs security_cleanup(false) then plugin_cleanup);
 * On failure returns -1
 * with "WHERE: message" in err, nothing left to clean up. */
int plugin_v4_open(struct mosquitto_plugin_id_t *id, int version, void *lib, const char *where, const char *path,
                   struct mosquitto_opt *opts, int n_opts, void **userdata,
                   int (**cleanup)(void *, struct mosquitto_opt *, int), bool deny_special, char *err,
                   size_t errlen);

#endif
