/* tombo_test_plugin_v4.c -- a Mosquitto auth plugin of interface version 4 (mosquitto_plugin.h's
 * mosquitto_auth_*), as mosquitto-go-auth and most auth plugins in the wild, for
 * tests/broker/test_plugin.py: loaded by tombo and by Debian's mosquitto alike. Built with
 * TEST_VERSION=3 or 2 it is a plugin of that version (version 2's own signatures: its
 * unpwd_check, acl_check and psk_key_get take no struct mosquitto); with TEST_VERSION=1 it only
 * says version 1 (refused by tombo and Mosquitto, naming the version). Options
 * (auth_opt_KEY VALUE):
 *   users "NAME:PASSWORD ..."   the user names and passwords it accepts
 *   defer PREFIX                user names starting with it are deferred (password_file decides)
 *   deny PREFIX                 topics (and filters) starting with it are refused
 *   greeting TEXT               logged at init: "test plugin v4: greeting TEXT"
 *   psk IDENTITY:HEXKEY         (TEST_PSK) mosquitto_auth_psk_key_get's one identity and key
 * A client without user name is deferred. Built with TEST_PSK it also exports
 * mosquitto_auth_psk_key_get (option psk); with TEST_EXT_AUTH,
 * mosquitto_auth_start/continue (MQTT 5 enhanced authentication, method V4-CHAL). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto_broker.h>
#ifndef TEST_VERSION
#define TEST_VERSION 4
#endif
#if TEST_VERSION == 2 /* mosquitto_plugin.h declares version 4's signatures */
struct mosquitto_auth_opt {
    char *key;
    char *value;
};
#define OPT struct mosquitto_auth_opt
/* Version 2's functions, as mosquitto_plugin.h of Mosquitto 1.3 declared them. */
int mosquitto_auth_plugin_version(void);
int mosquitto_auth_plugin_init(void **user_data, OPT *opts, int n);
int mosquitto_auth_plugin_cleanup(void *user_data, OPT *opts, int n);
int mosquitto_auth_security_init(void *user_data, OPT *opts, int n, bool reload);
int mosquitto_auth_security_cleanup(void *user_data, OPT *opts, int n, bool reload);
int mosquitto_auth_acl_check(void *user_data, const char *id, const char *u, const char *topic, int access);
int mosquitto_auth_unpwd_check(void *user_data, const char *username, const char *password);
int mosquitto_auth_psk_key_get(void *user_data, const char *hint, const char *identity, char *key, int max_key_len);
#else
#include <mosquitto_plugin.h>
#define OPT struct mosquitto_opt
#endif
#if TEST_VERSION < 4 && TEST_VERSION >= 2
#define TEST_PSK /* required before version 4 */
#endif

#define ERR_AUTH_CONTINUE -4 /* mosquitto.h's values (libmosquitto-dev), part of the plugin ABI */
#define ERR_SUCCESS 0
#define ERR_NOT_SUPPORTED 10
#define ERR_AUTH 11
#define ERR_ACL_DENIED 12
#define ERR_PLUGIN_DEFER 17
#define LOG_NOTICE_ (1 << 1)

int mosquitto_auth_plugin_version(void)
{
    return TEST_VERSION;
}

#if TEST_VERSION >= 2
static char users[1024], deny[256], defer[256], psk[256];

static void opts_read(OPT *opts, int n)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(opts[i].key, "users"))
            snprintf(users, sizeof(users), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "deny"))
            snprintf(deny, sizeof(deny), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "psk"))
            snprintf(psk, sizeof(psk), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "defer"))
            snprintf(defer, sizeof(defer), "%s", opts[i].value);
        else if (!strcmp(opts[i].key, "greeting"))
            mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: greeting %s", opts[i].value);
    }
}

int mosquitto_auth_plugin_init(void **user_data, OPT *opts, int n)
{
    static int token;
    *user_data = &token;
    opts_read(opts, n);
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: plugin_init with %d options", n);
    return ERR_SUCCESS;
}

int mosquitto_auth_plugin_cleanup(void *user_data, OPT *opts, int n)
{
    (void)user_data;
    (void)opts;
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: plugin_cleanup with %d options", n);
    return ERR_SUCCESS;
}

int mosquitto_auth_security_init(void *user_data, OPT *opts, int n, bool reload)
{
    (void)user_data;
    (void)opts;
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: security_init reload %d with %d options", reload, n);
    return ERR_SUCCESS;
}

int mosquitto_auth_security_cleanup(void *user_data, OPT *opts, int n, bool reload)
{
    (void)user_data;
    (void)opts;
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: security_cleanup reload %d with %d options", reload, n);
    return ERR_SUCCESS;
}

#if TEST_VERSION == 2
int mosquitto_auth_unpwd_check(void *user_data, const char *username, const char *password)
{
    (void)user_data;
    const char *id = "(v2)";
#else
int mosquitto_auth_unpwd_check(void *user_data, struct mosquitto *client, const char *username,
                               const char *password)
{
    (void)user_data;
    const char *id = mosquitto_client_id(client);
#endif
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: unpwd user %s client %s", username ? username : "(none)",
                         id ? id : "(none)");
    if (!username || (defer[0] && !strncmp(username, defer, strlen(defer))))
        return ERR_PLUGIN_DEFER;
    char want[600], have[1100];
    snprintf(want, sizeof(want), " %s:%s ", username, password ? password : "");
    snprintf(have, sizeof(have), " %s ", users);
    return strstr(have, want) ? ERR_SUCCESS : ERR_AUTH;
}

#if TEST_VERSION == 2
int mosquitto_auth_acl_check(void *user_data, const char *id, const char *u, const char *topic, int access)
{
    (void)user_data;
#else
int mosquitto_auth_acl_check(void *user_data, int access, struct mosquitto *client,
                             const struct mosquitto_acl_msg *msg)
{
    (void)user_data;
    const char *topic = msg->topic, *id = mosquitto_client_id(client), *u = mosquitto_client_username(client);
#endif
    if (deny[0] && !strncmp(topic, deny, strlen(deny))) {
        mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: denied access %d to %s for %s user %s", access, topic,
                             id ? id : "(none)", u ? u : "(none)");
        return ERR_ACL_DENIED;
    }
    return ERR_SUCCESS;
}
#ifdef TEST_PSK
#if TEST_VERSION == 2
int mosquitto_auth_psk_key_get(void *user_data, const char *hint, const char *identity, char *key, int max_key_len)
{
    (void)user_data;
#else
int mosquitto_auth_psk_key_get(void *user_data, struct mosquitto *client, const char *hint, const char *identity,
                               char *key, int max_key_len)
{
    (void)user_data, (void)client;
#endif
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: psk_key_get hint %s identity %s", hint ? hint : "(none)",
                         identity);
    const char *colon = strchr(psk, ':');
    if (!colon || strlen(identity) != (size_t)(colon - psk) || strncmp(identity, psk, (size_t)(colon - psk)))
        return ERR_AUTH;
    if ((int)strlen(colon + 1) >= max_key_len)
        return ERR_AUTH;
    snprintf(key, (size_t)max_key_len, "%s", colon + 1);
    return ERR_SUCCESS;
}
#endif
#ifdef TEST_EXT_AUTH
/* Method V4-CHAL: data "direct" succeeds with "welcome", "bad" is refused, anything else gets
 * "challenge" and must answer "response" (success with "done"). Other methods: not supported. */
static int give(const char *text, void **out, uint16_t *outlen, int rc)
{
    size_t n = strlen(text);
    if (!(*out = mosquitto_malloc(n)))
        return 1;
    memcpy(*out, text, n);
    *outlen = (uint16_t)n;
    return rc;
}

static bool is(const void *d, uint16_t n, const char *text)
{
    return d && n == strlen(text) && !memcmp(d, text, n);
}

int mosquitto_auth_start(void *user_data, struct mosquitto *client, const char *method, bool reauth,
                         const void *data_in, uint16_t data_in_len, void **data_out, uint16_t *data_out_len)
{
    (void)user_data;
    mosquitto_log_printf(LOG_NOTICE_, "test plugin v4: auth_start method %s reauth %d data %.*s client %s",
                         method ? method : "(none)", reauth, (int)data_in_len, data_in ? (const char *)data_in : "",
                         mosquitto_client_id(client));
    if (!method || strcmp(method, "V4-CHAL"))
        return ERR_NOT_SUPPORTED;
    if (is(data_in, data_in_len, "direct"))
        return give("welcome", data_out, data_out_len, ERR_SUCCESS);
    if (is(data_in, data_in_len, "bad"))
        return ERR_AUTH;
    return give("challenge", data_out, data_out_len, ERR_AUTH_CONTINUE);
}

int mosquitto_auth_continue(void *user_data, struct mosquitto *client, const char *method, const void *data_in,
                            uint16_t data_in_len, void **data_out, uint16_t *data_out_len)
{
    (void)user_data;
    (void)client;
    (void)method;
    if (is(data_in, data_in_len, "response"))
        return give("done", data_out, data_out_len, ERR_SUCCESS);
    return ERR_AUTH;
}
#endif
#endif
