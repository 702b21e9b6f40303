/* plugin.h -- Mosquitto plugins (interface version 5, mosquitto_plugin.h of Mosquitto 2.0, and auth
 * plugins of version 4 through plugin_v4.h) loaded
 * into tombo, so a Mosquitto user's authentication / authorisation plugin keeps working.
 *
 * Design: one plugin_set_t per set of security settings (the broker's, or one per listener with
 * per_listener_settings true), owned by that auth_t (auth.h). plugin_set_load() dlopen()s each
 * `plugin` line's file in order, checks mosquitto_plugin_version() says 5, and calls its
 * mosquitto_plugin_init() with its plugin_opt_ lines; the plugin registers callbacks with
 * mosquitto_callback_register(). Checks call the callbacks of every plugin in load order, and
 * within a plugin in registration order; the first answer that is not "defer" decides, as in
 * Mosquitto (auth.c combines it with password_file and acl_file, which come after the plugins).
 *
 * Thread-safety: Mosquitto calls a plugin from its one thread; tombo's checks come from the auth
 * thread (MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_CONTROL) and from every worker (MOSQ_EVT_ACL_CHECK), so
 * each plugin has a
 * mutex of its own, held for every call into it (init, callbacks, cleanup): a plugin never runs on
 * two threads at once, two plugins may. The mutex is recursive so that a callback may register or
 * unregister callbacks. The broker functions a plugin calls (mosquitto_client_id, ...) only read
 * what the call was given; those that act on the broker (publish, kick) queue the work for worker 0
 * (plugin_broker.c), so no session or registry lock is taken under a plugin's mutex. Cost: with an
 * ACL callback, every PUBLISH received and every message
 * delivered takes the plugin's mutex, as every such check in Mosquitto runs on its one thread;
 * without one (a plugin that only authenticates), ACL checks never touch the plugin.
 *
 * Events: all of Mosquitto 2.0's: MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_EXT_AUTH_START/CONTINUE,
 * MOSQ_EVT_PSK_KEY, MOSQ_EVT_ACL_CHECK, MOSQ_EVT_MESSAGE, MOSQ_EVT_CONTROL, MOSQ_EVT_DISCONNECT,
 * MOSQ_EVT_RELOAD (SIGHUP) and MOSQ_EVT_TICK; another number is MOSQ_ERR_INVAL, as in Mosquitto. */
#ifndef TOMBO_BROKER_PLUGIN_H
#define TOMBO_BROKER_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tombo_plugin_conf;
typedef struct plugin_set plugin_set_t;

/* The client a callback is about: mosquitto_broker.h's opaque `struct mosquitto`, read by
 * mosquitto_client_id() and the like. Built by the caller for one call; every field may be NULL
 * / 0 when the caller does not know it (an ACL check on a message delivered to a session knows its
 * client id and user name only). */
struct mosquitto {
    const char *id;
    const char *username;
    const char *address;
    int protocol_version; /* 3, 4 or 5; 0: unknown */
    int keepalive;
    bool clean_session;
    bool websockets;
    /* mosquitto_set_username, allowed during MOSQ_EVT_BASIC_AUTH only (can_set_username): the new
     * user name (heap, NULL: none) for the caller to take when username_changed. */
    bool can_set_username, username_changed;
    char *set_username;
    bool reauth; /* MOSQ_EVT_EXT_AUTH_START: a re-authentication (for version 4 plugins' auth_start) */
};

/* Mosquitto's MOSQ_ERR_ codes a MOSQ_EVT_DISCONNECT carries (mosquitto.h values, fixed by the ABI). */
enum {
    PLUGIN_ERR_SUCCESS = 0,
    PLUGIN_ERR_PROTOCOL = 2,
    PLUGIN_ERR_CONN_LOST = 7,
    PLUGIN_ERR_ACL_DENIED = 12,
    PLUGIN_ERR_KEEPALIVE = 19,
    PLUGIN_ERR_MALFORMED_PACKET = 21,
    PLUGIN_ERR_ADMINISTRATIVE_ACTION = 30,
};

/* What the plugins said. */
enum plugin_answer { PLUGIN_DEFER, PLUGIN_ALLOW, PLUGIN_DENY };

/* Load n plugins (n may be 0: NULL is returned, no error). Returns the set, or NULL with
 * "FILE:LINE: message" in err (the plugin line's place). Runs the plugins' init. */
plugin_set_t *plugin_set_load(const struct tombo_plugin_conf *confs, int n, char *err, size_t errlen);
/* Calls each plugin's mosquitto_plugin_cleanup and unloads it. ps may be NULL. */
void plugin_set_free(plugin_set_t *ps);

/* Has some plugin a callback for this check? Lock-free (an atomic count). ps may be NULL: no. */
bool plugin_set_has_basic_auth(const plugin_set_t *ps);
bool plugin_set_has_acl(const plugin_set_t *ps);
/* MOSQ_EVT_PSK_KEY (or a version 4 plugin's mosquitto_auth_psk_key_get): has a plugin a callback
 * for it? plugin_psk_lookup is a tls_psk_lookup_fn (tls.h) for a psk_hint listener without
 * psk_file: arg is a struct plugin_psk_arg that outlives the TLS context. Called on the worker
 * doing the handshake, under each plugin's mutex; the client it passes has no fields set (the
 * connection is not an MQTT client yet). */
bool plugin_set_has_psk(const plugin_set_t *ps);
struct plugin_psk_arg {
    plugin_set_t *ps;
    char *hint; /* owned */
};
size_t plugin_psk_lookup(void *arg, const char *identity, unsigned char *key, size_t max);

/* MOSQ_EVT_BASIC_AUTH with this user name and password (NULL: none). May block as long as the
 * plugin does: call it from the auth thread. */
enum plugin_answer plugin_basic_auth(plugin_set_t *ps, const struct mosquitto *client, const char *username,
                                     const char *password);

/* MOSQ_EVT_ACL_CHECK: access is auth.h's AUTH_READ / AUTH_WRITE / AUTH_SUBSCRIBE (the same bits
 * as MOSQ_ACL_*). topic is n bytes, not NUL-terminated; payload may be NULL. */
enum plugin_answer plugin_acl_check(plugin_set_t *ps, const struct mosquitto *client, const uint8_t *topic,
                                    size_t n, int access, const void *payload, uint32_t payloadlen, uint8_t qos,
                                    bool retain);

/* MOSQ_EVT_CONTROL: has some plugin registered a control callback for exactly this topic
 * ($CONTROL/..., n bytes)? Then a PUBLISH to it is the plugin's, not routed to subscribers, as in
 * Mosquitto. Cheap and never waits for a plugin: for the workers. */
bool plugin_control_handles(plugin_set_t *ps, const uint8_t *topic, size_t n);
bool plugin_set_has_control(const plugin_set_t *ps);
/* Call the control callback of `topic` under its plugin's mutex; false if none (any more). It may
 * be slow (the dynamic-security plugin saves its file): the auth thread calls it (authq.h). */
bool plugin_control(plugin_set_t *ps, const struct mosquitto *client, const uint8_t *topic, size_t n,
                    const void *payload, uint32_t payloadlen, uint8_t qos, bool retain);

/* MOSQ_EVT_MESSAGE: a PUBLISH a client sent, once it passed the ACL check, before it is routed
 * or retained (as Mosquitto 2.0's handle__publish). Lock-free test first: without a callback for
 * it the publish path does nothing more. The callbacks run on the calling worker under their
 * plugin's mutex, as ACL checks do. */
struct plugin_msg {
    char *topic;      /* in: heap, NUL-terminated; out: the plugin's when it differs (caller frees) */
    void *payload;    /* in: the caller's; out: the plugin's mosquitto_malloc'ed one when it differs */
    uint32_t payloadlen;
    uint8_t qos;      /* read only, as in Mosquitto 2.0 */
    bool retain;
    bool properties_set; /* out: a plugin set MQTT 5 properties, which tombo cannot read (refused) */
};
enum { PLUGIN_MSG_OK, PLUGIN_MSG_DENIED, PLUGIN_MSG_ERROR };
bool plugin_set_has_message(const plugin_set_t *ps);
/* Returns PLUGIN_MSG_OK (route m as it is now), PLUGIN_MSG_DENIED (MOSQ_ERR_ACL_DENIED: not
 * authorised) or PLUGIN_MSG_ERROR (any other answer: Mosquitto closes the client's connection). */
int plugin_message(plugin_set_t *ps, const struct mosquitto *client, struct plugin_msg *m);

/* MOSQ_EVT_EXT_AUTH_START / _CONTINUE: MQTT 5 enhanced authentication by a plugin, as Mosquitto
 * 2.0: the plugins' callbacks in order until one answers other than MOSQ_ERR_PLUGIN_DEFER.
 * *out (NULL or the plugin's mosquitto_malloc'ed data, *outlen bytes; the caller frees it) goes
 * in the server's AUTH or CONNACK. client->reauth says whether a START is a re-authentication.
 * Runs on the caller's thread (the worker) under each plugin's mutex. */
enum { PLUGIN_EXT_SUCCESS, PLUGIN_EXT_CONTINUE, PLUGIN_EXT_DENIED, PLUGIN_EXT_NOT_SUPPORTED, PLUGIN_EXT_ERROR };
bool plugin_set_has_ext_auth(const plugin_set_t *ps);
int plugin_ext_auth(plugin_set_t *ps, bool start, struct mosquitto *client, const char *method, const void *in,
                    uint16_t inlen, void **out, uint16_t *outlen);

/* MOSQ_EVT_DISCONNECT: a client's connection ended (reason: a PLUGIN_ERR_ code). The callbacks'
 * answers are ignored, as in Mosquitto. Called on the auth thread (authq_submit_disconnect). */
bool plugin_set_has_disconnect(const plugin_set_t *ps);
void plugin_disconnect(plugin_set_t *ps, const struct mosquitto *client, int reason);

/* plugin_broker.c: the broker plugins act on (mosquitto_broker_publish, mosquitto_kick_client_*):
 * attach before loading plugins, detach once the workers are stopped (queued messages dropped). */
struct broker;
struct worker;
void plugin_broker_attach(struct broker *b);
void plugin_broker_detach(void);
/* Worker 0, on INBOX_PLUGIN_PUBLISH: route what plugins published since the last call. */
void plugin_publish_drain(struct worker *w);

/* MOSQ_EVT_RELOAD (SIGHUP), with no options (options NULL, option_count 0) as Mosquitto 2.0 does;
 * plugin lines are not read again on a reload (nor by Mosquitto): a new plugin or option needs a
 * restart. */
void plugin_set_reload(plugin_set_t *ps);
/* MOSQ_EVT_TICK: worker 0 calls it every 100 ms when busy, at least every 250 ms when idle (its
 * loop wakes up for its timer wheel). */
void plugin_set_tick(plugin_set_t *ps);

#endif
