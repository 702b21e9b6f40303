/* tombo_test_plugin.c -- a Mosquitto version 5 plugin for tests/broker/test_plugin.py, built
 * against Debian's mosquitto_broker.h / mosquitto_plugin.h (mosquitto-dev) and loaded by tombo and
 * by Mosquitto alike. Options (plugin_opt_KEY VALUE):
 *   users "NAME:PASSWORD NAME:PASSWORD ..."  the only user names and passwords it accepts
 *   deny PREFIX                            topics (and filters) starting with it are refused
 *   greeting TEXT                          logged at init: "test plugin: greeting TEXT"
 *   fail_init VALUE                        mosquitto_plugin_init fails
 *   psk IDENTITY:HEXKEY                    MOSQ_EVT_PSK_KEY: that identity's key (others: MOSQ_ERR_AUTH)
 *   ext_auth METHOD                        MQTT 5 enhanced authentication with METHOD
 *                                          (MOSQ_EVT_EXT_AUTH_START/CONTINUE): data "direct":
 *                                          success with data "welcome"; "bad": MOSQ_ERR_AUTH;
 *                                          else AUTH_CONTINUE with "challenge", then "response"
 *                                          succeeds with "done", anything else MOSQ_ERR_AUTH
 *   message VALUE                          registers for MOSQ_EVT_MESSAGE: logs each message; refuses
 *                                          topics under deny/ (MOSQ_ERR_ACL_DENIED), answers
 *                                          MOSQ_ERR_INVAL under fail/; moves rewrite/X to
 *                                          rewritten/X with "hello " before the payload; clears
 *                                          the retain flag under unretain/
 *   tick VALUE                             registers for MOSQ_EVT_TICK, logs "test plugin: tick" once
 *   disconnect VALUE                       registers for MOSQ_EVT_DISCONNECT, logs each one
 *   rename FROM:TO                         user FROM, once authenticated, becomes TO (mosquitto_set_username)
 * A client without user name is deferred (the broker's allow_anonymous decides). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#if __has_include(<mosquitto.h>)
#include <mosquitto.h>
#else /* Mosquitto 2.0's values (libmosquitto-dev's mosquitto.h), part of the plugin ABI */
#define MOSQ_ERR_AUTH_CONTINUE -4
#define MOSQ_ERR_SUCCESS 0
#define MOSQ_ERR_NOMEM 1
#define MOSQ_ERR_NOT_SUPPORTED 10
#define MOSQ_ERR_INVAL 3
#define MOSQ_ERR_AUTH 11
#define MOSQ_ERR_ACL_DENIED 12
#define MOSQ_ERR_PLUGIN_DEFER 17
#define MOSQ_LOG_NOTICE (1 << 1)
#endif

static mosquitto_plugin_id_t *pid;
static char users[1024];
static char deny[256];
static char rename_from[128], rename_to[128];

int mosquitto_plugin_version(int n, const int *versions)
{
    for (int i = 0; i < n; i++)
        if (versions[i] == 5)
            return 5;
    return -1;
}

static int on_basic_auth(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_basic_auth *ev = data;
    const char *id = mosquitto_client_id(ev->client), *addr = mosquitto_client_address(ev->client);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: basic auth user %s client %s address %s protocol %d",
                         ev->username ? ev->username : "(none)", id ? id : "(none)", addr ? addr : "(none)",
                         mosquitto_client_protocol_version(ev->client));
    if (!ev->username)
        return MOSQ_ERR_PLUGIN_DEFER;
    char want[600];
    snprintf(want, sizeof(want), " %s:%s ", ev->username, ev->password ? ev->password : "");
    char have[1100];
    snprintf(have, sizeof(have), " %s ", users);
    if (!strstr(have, want))
        return MOSQ_ERR_AUTH;
    if (rename_from[0] && !strcmp(ev->username, rename_from))
        return mosquitto_set_username(ev->client, rename_to);
    return MOSQ_ERR_SUCCESS;
}

static int on_acl_check(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_acl_check *ev = data;
    if (deny[0] && !strncmp(ev->topic, deny, strlen(deny))) {
        const char *user = mosquitto_client_username(ev->client);
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: denied access %d to %s for %s user %s", ev->access,
                             ev->topic, mosquitto_client_id(ev->client), user ? user : "(none)");
        return MOSQ_ERR_ACL_DENIED;
    }
    return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_reload *ev = data;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: reload with %d options", ev->option_count);
    return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    (void)data; /* the times are not checked: with Mosquitto 2.0.11 the first tick came only without that check */
    static bool said;
    if (!said) {
        said = true;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: tick");
    }
    return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_disconnect *ev = data;
    const char *user = mosquitto_client_username(ev->client);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: disconnect %s user %s reason %d",
                         mosquitto_client_id(ev->client), user ? user : "(none)", ev->reason);
    return MOSQ_ERR_SUCCESS;
}

static char psk[256];

static int on_psk_key(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_psk_key *ev = data;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: psk key hint %s identity %s", ev->hint ? ev->hint : "(none)",
                         ev->identity);
    const char *colon = strchr(psk, ':');
    if (!colon || strlen(ev->identity) != (size_t)(colon - psk) || strncmp(ev->identity, psk, (size_t)(colon - psk)))
        return MOSQ_ERR_AUTH;
    if ((int)strlen(colon + 1) >= ev->max_key_len)
        return MOSQ_ERR_INVAL;
    snprintf(ev->key, (size_t)ev->max_key_len, "%s", colon + 1);
    return MOSQ_ERR_SUCCESS;
}

static char ext_method[128];

static int answer(struct mosquitto_evt_extended_auth *ev, const char *text, int rc)
{
    size_t n = strlen(text);
    ev->data_out = mosquitto_malloc(n);
    if (!ev->data_out)
        return MOSQ_ERR_NOMEM;
    memcpy(ev->data_out, text, n);
    ev->data_out_len = (uint16_t)n;
    return rc;
}

static bool data_is(const struct mosquitto_evt_extended_auth *ev, const char *text)
{
    return ev->data_in && ev->data_in_len == strlen(text) && !memcmp(ev->data_in, text, ev->data_in_len);
}

static int on_ext_auth(int event, void *data, void *ud)
{
    (void)ud;
    struct mosquitto_evt_extended_auth *ev = data;
    const char *user = mosquitto_client_username(ev->client);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: ext auth %s method %s data %.*s client %s user %s",
                         event == MOSQ_EVT_EXT_AUTH_START ? "start" : "continue",
                         ev->auth_method ? ev->auth_method : "(none)", (int)ev->data_in_len,
                         ev->data_in ? (const char *)ev->data_in : "", mosquitto_client_id(ev->client),
                         user ? user : "(none)");
    if (event == MOSQ_EVT_EXT_AUTH_START) {
        if (!ev->auth_method || strcmp(ev->auth_method, ext_method))
            return MOSQ_ERR_NOT_SUPPORTED;
        if (data_is(ev, "direct"))
            return answer(ev, "welcome", MOSQ_ERR_SUCCESS);
        if (data_is(ev, "bad"))
            return MOSQ_ERR_AUTH;
        return answer(ev, "challenge", MOSQ_ERR_AUTH_CONTINUE);
    }
    return data_is(ev, "response") ? answer(ev, "done", MOSQ_ERR_SUCCESS) : MOSQ_ERR_AUTH;
}

static int on_message(int event, void *data, void *ud)
{
    (void)event;
    (void)ud;
    struct mosquitto_evt_message *ev = data;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: message %s payload %.*s qos %d retain %d from %s",
                         ev->topic, (int)ev->payloadlen, ev->payload ? (const char *)ev->payload : "",
                         ev->qos, ev->retain, mosquitto_client_id(ev->client));
    if (!strncmp(ev->topic, "deny/", 5))
        return MOSQ_ERR_ACL_DENIED;
    if (!strncmp(ev->topic, "fail/", 5))
        return MOSQ_ERR_INVAL;
    if (!strncmp(ev->topic, "unretain/", 9))
        ev->retain = false;
    if (!strncmp(ev->topic, "rewrite/", 8)) {
        size_t n = strlen(ev->topic) + 3;
        char *topic = mosquitto_malloc(n);
        if (!topic)
            return MOSQ_ERR_NOMEM;
        snprintf(topic, n, "rewritten/%s", ev->topic + 8);
        mosquitto_free(ev->topic); /* Mosquitto 2.0 leaves the old topic to the plugin */
        ev->topic = topic;
        uint32_t len = ev->payloadlen + 6;
        char *payload = mosquitto_malloc(len);
        if (!payload)
            return MOSQ_ERR_NOMEM;
        memcpy(payload, "hello ", 6);
        if (ev->payloadlen)
            memcpy(payload + 6, ev->payload, ev->payloadlen);
        ev->payload = payload; /* the old payload is the broker's to free */
        ev->payloadlen = len;
    }
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **userdata, struct mosquitto_opt *opts, int n)
{
    pid = id;
    *userdata = NULL;
    bool fail = false, message = false, tick = false, disconnect = false;
    for (int i = 0; i < n; i++) {
        if (!strcmp(opts[i].key, "users"))
            snprintf(users, sizeof(users), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "deny"))
            snprintf(deny, sizeof(deny), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "greeting"))
            mosquitto_log_printf(MOSQ_LOG_NOTICE, "test plugin: greeting %s", opts[i].value);
        else if (!strcmp(opts[i].key, "fail_init"))
            fail = true;
        else if (!strcmp(opts[i].key, "psk"))
            snprintf(psk, sizeof(psk), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "ext_auth"))
            snprintf(ext_method, sizeof(ext_method), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "message"))
            message = true;
        else if (!strcmp(opts[i].key, "tick"))
            tick = true;
        else if (!strcmp(opts[i].key, "disconnect"))
            disconnect = true;
        else if (!strcmp(opts[i].key, "rename") && strchr(opts[i].value, ':')) {
            snprintf(rename_from, sizeof(rename_from), "%.*s", (int)(strchr(opts[i].value, ':') - opts[i].value),
                     opts[i].value);
            snprintf(rename_to, sizeof(rename_to), "%s", strchr(opts[i].value, ':') + 1);
        }
    }
    if (fail)
        return MOSQ_ERR_INVAL;
    int rc = mosquitto_callback_register(pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_callback_register(pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_callback_register(pid, MOSQ_EVT_RELOAD, on_reload, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && tick)
        rc = mosquitto_callback_register(pid, MOSQ_EVT_TICK, on_tick, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && disconnect)
        rc = mosquitto_callback_register(pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && message)
        rc = mosquitto_callback_register(pid, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && psk[0])
        rc = mosquitto_callback_register(pid, MOSQ_EVT_PSK_KEY, on_psk_key, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && ext_method[0])
        rc = mosquitto_callback_register(pid, MOSQ_EVT_EXT_AUTH_START, on_ext_auth, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS && ext_method[0])
        rc = mosquitto_callback_register(pid, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth, NULL, NULL);
    return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int n)
{
    (void)userdata;
    (void)opts;
    (void)n;
    mosquitto_callback_unregister(pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_RELOAD, on_reload, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_TICK, on_tick, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_MESSAGE, on_message, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_PSK_KEY, on_psk_key, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_EXT_AUTH_START, on_ext_auth, NULL);
    mosquitto_callback_unregister(pid, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth, NULL);
    return MOSQ_ERR_SUCCESS;
}
