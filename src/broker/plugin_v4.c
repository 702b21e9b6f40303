/* plugin_v4.c -- Mosquitto auth plugins of interface version 4 (plugin_v4.h). */
#include "broker/plugin_v4.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/plugin.h"

/* mosquitto.h's MOSQ_ERR_ values (ABI) */
enum { V4_ERR_SUCCESS = 0, V4_ERR_NOT_SUPPORTED = 10, V4_ERR_ACL_DENIED = 12, V4_ERR_PLUGIN_DEFER = 17 };

typedef struct {
    void *ud; /* the plugin's user data */
    struct mosquitto_opt *opts;
    int n_opts;
    int (*plugin_cleanup)(void *, struct mosquitto_opt *, int);
    int (*security_init)(void *, struct mosquitto_opt *, int, bool);
    int (*security_cleanup)(void *, struct mosquitto_opt *, int, bool);
    int (*acl_check)(void *, int, struct mosquitto *, const struct mosquitto_acl_msg *);
    int (*unpwd_check)(void *, struct mosquitto *, const char *, const char *);
    int (*auth_start)(void *, struct mosquitto *, const char *, bool, const void *, uint16_t, void **, uint16_t *);
    int (*auth_continue)(void *, struct mosquitto *, const char *, const void *, uint16_t, void **, uint16_t *);
    int (*psk_key_get)(void *, struct mosquitto *, const char *, const char *, char *, int);
    /* Version 2's own signatures (its init, cleanup and security functions take a struct
     * mosquitto_auth_opt, laid out as struct mosquitto_opt: Mosquitto passes the same array). */
    int (*acl_check_v2)(void *, const char *, const char *, const char *, int);
    int (*unpwd_check_v2)(void *, const char *, const char *);
    int (*psk_key_get_v2)(void *, const char *, const char *, char *, int);
    int version; /* 2, 3 or 4 */
    bool deny_special; /* auth_plugin_deny_special_chars */
} v4_t;

/* auth_plugin_deny_special_chars: a client id or user name with '+' or '#' could match other
 * clients' topics in a plugin's pattern ACLs; Mosquitto denies such a client every access before
 * asking the plugin (and before its own UNSUBSCRIBE shortcut). */
static bool special(const char *what, const char *s)
{
    if (!s || !strpbrk(s, "+#"))
        return false;
    log_printf(TLOG_NOTICE, "ACL denying access to client with dangerous %s \"%s\"", what, s);
    return true;
}

static int on_basic_auth(int event, void *data, void *userdata)
{
    (void)event;
    v4_t *v = userdata;
    struct mosquitto_evt_basic_auth *ev = data;
    if (v->version == 2)
        return v->unpwd_check_v2(v->ud, ev->username, ev->password);
    return v->unpwd_check(v->ud, ev->client, ev->username, ev->password);
}

static int on_acl_check(int event, void *data, void *userdata)
{
    (void)event;
    v4_t *v = userdata;
    struct mosquitto_evt_acl_check *ev = data;
    if (v->deny_special &&
        (special("username", mosquitto_client_username(ev->client)) || special("client id", mosquitto_client_id(ev->client))))
        return V4_ERR_ACL_DENIED;
    if (ev->access == MOSQ_ACL_UNSUBSCRIBE || (v->version == 2 && ev->access == MOSQ_ACL_SUBSCRIBE))
        return V4_ERR_SUCCESS; /* as Mosquitto 2.0: version 2 knew only READ and WRITE */
    if (v->version == 2)
        return v->acl_check_v2(v->ud, mosquitto_client_id(ev->client), mosquitto_client_username(ev->client),
                               ev->topic, ev->access);
    struct mosquitto_acl_msg msg = {ev->topic, ev->payload, (long)ev->payloadlen, ev->qos, ev->retain};
    return v->acl_check(v->ud, ev->access, ev->client, &msg);
}

/* mosquitto_auth_start / mosquitto_auth_continue. Their MOSQ_ERR_NOT_SUPPORTED lets the next
 * plugin try, as Mosquitto 2.0 does for version 4 plugins. */
static int on_ext_auth(int event, void *data, void *userdata)
{
    v4_t *v = userdata;
    struct mosquitto_evt_extended_auth *ev = data;
    int rc = event == MOSQ_EVT_EXT_AUTH_START
                 ? v->auth_start(v->ud, ev->client, ev->auth_method, ev->client && ev->client->reauth, ev->data_in,
                                 ev->data_in_len, &ev->data_out, &ev->data_out_len)
                 : v->auth_continue(v->ud, ev->client, ev->auth_method, ev->data_in, ev->data_in_len, &ev->data_out,
                                    &ev->data_out_len);
    return rc == V4_ERR_NOT_SUPPORTED ? V4_ERR_PLUGIN_DEFER : rc;
}

static int on_psk_key(int event, void *data, void *userdata)
{
    (void)event;
    v4_t *v = userdata;
    struct mosquitto_evt_psk_key *ev = data;
    if (v->version == 2)
        return v->psk_key_get_v2(v->ud, ev->hint, ev->identity, ev->key, ev->max_key_len);
    return v->psk_key_get(v->ud, ev->client, ev->hint, ev->identity, ev->key, ev->max_key_len);
}

static int on_reload(int event, void *data, void *userdata)
{
    (void)event;
    (void)data;
    v4_t *v = userdata;
    v->security_cleanup(v->ud, v->opts, v->n_opts, true);
    v->security_init(v->ud, v->opts, v->n_opts, true);
    return 0;
}

static int v4_cleanup(void *userdata, struct mosquitto_opt *opts, int n)
{
    v4_t *v = userdata;
    v->security_cleanup(v->ud, opts, n, false);
    int rc = v->plugin_cleanup(v->ud, opts, n);
    free(v);
    return rc;
}

int plugin_v4_open(struct mosquitto_plugin_id_t *id, int version, void *lib, const char *where, const char *path,
                   struct mosquitto_opt *opts, int n_opts, void **userdata,
                   int (**cleanup)(void *, struct mosquitto_opt *, int), bool deny_special, char *err,
                   size_t errlen)
{
    /* What Mosquitto 2.0 requires of each version: 4 makes the last two optional. */
    static const char *const required[] = {"mosquitto_auth_plugin_init",     "mosquitto_auth_plugin_cleanup",
                                           "mosquitto_auth_security_init",   "mosquitto_auth_security_cleanup",
                                           "mosquitto_auth_acl_check",       "mosquitto_auth_unpwd_check",
                                           "mosquitto_auth_psk_key_get"};
    void *f[7];
    for (int i = 0; i < 7; i++)
        if (!(f[i] = dlsym(lib, required[i])) && (i < 5 || version < 4)) {
            snprintf(err, errlen, "%s: auth plugin %s (version %d) lacks %s", where, path, version, required[i]);
            return -1;
        }
    void *start = version == 4 ? dlsym(lib, "mosquitto_auth_start") : NULL;
    void *cont = version == 4 ? dlsym(lib, "mosquitto_auth_continue") : NULL;
    if (start && !cont) { /* as Mosquitto 2.0 */
        snprintf(err, errlen, "%s: auth plugin %s exports mosquitto_auth_start but lacks mosquitto_auth_continue",
                 where, path);
        return -1;
    }
    v4_t *v = xcalloc(1, sizeof(*v));
    v->opts = opts;
    v->n_opts = n_opts;
    v->deny_special = deny_special;
    v->version = version;
    int (*init)(void **, struct mosquitto_opt *, int);
    *(void **)&init = f[0];
    *(void **)&v->plugin_cleanup = f[1];
    *(void **)&v->security_init = f[2];
    *(void **)&v->security_cleanup = f[3];
    if (version == 2) {
        *(void **)&v->acl_check_v2 = f[4];
        *(void **)&v->unpwd_check_v2 = f[5];
        *(void **)&v->psk_key_get_v2 = f[6];
    } else {
        *(void **)&v->acl_check = f[4];
        *(void **)&v->unpwd_check = f[5];
        *(void **)&v->psk_key_get = f[6];
    }
    *(void **)&v->auth_start = start;
    *(void **)&v->auth_continue = cont;
    int rc = init(&v->ud, opts, n_opts);
    if (rc != V4_ERR_SUCCESS) {
        snprintf(err, errlen, "%s: auth plugin %s failed to initialise (mosquitto_auth_plugin_init returned %d)",
                 where, path, rc);
        free(v);
        return -1;
    }
    rc = v->security_init(v->ud, opts, n_opts, false);
    if (rc != V4_ERR_SUCCESS) {
        snprintf(err, errlen, "%s: auth plugin %s failed to initialise (mosquitto_auth_security_init returned %d)",
                 where, path, rc);
        v->plugin_cleanup(v->ud, opts, n_opts);
        free(v);
        return -1;
    }
    if (((v->unpwd_check || v->unpwd_check_v2) &&
         mosquitto_callback_register(id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, v)) ||
        ((v->psk_key_get || v->psk_key_get_v2) && mosquitto_callback_register(id, MOSQ_EVT_PSK_KEY, on_psk_key, NULL, v)) ||
        (v->auth_start && (mosquitto_callback_register(id, MOSQ_EVT_EXT_AUTH_START, on_ext_auth, NULL, v) ||
                           mosquitto_callback_register(id, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth, NULL, v))) ||
        mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, v) ||
        mosquitto_callback_register(id, MOSQ_EVT_RELOAD, on_reload, NULL, v)) {
        snprintf(err, errlen, "%s: auth plugin %s: cannot register its callbacks", where, path);
        v4_cleanup(v, opts, n_opts);
        return -1;
    }
    *userdata = v;
    *cleanup = v4_cleanup;
    return 0;
}
