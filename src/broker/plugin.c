/* plugin.c -- loading Mosquitto version 5 plugins, calling their callbacks (plugin.h), and the
 * broker functions of mosquitto_broker.h that plugins call. The executable exports these functions
 * (plugin_exports.list, linked with --dynamic-list) so that dlopen() resolves a plugin's
 * references to them, as it does inside Mosquitto. */
#include "broker/plugin.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/config.h"
#include "broker/plugin_v4.h"
#include "mqtt/topic.h"
#include "mqtt/utf8.h"

/* Return codes of Mosquitto 2.0's mosquitto.h (libmosquitto-dev), part of the plugin ABI: the
 * values are fixed. Only the broker headers (mosquitto-dev) are a build dependency. */
enum {
    MOSQ_ERR_AUTH_CONTINUE = -4,
    MOSQ_ERR_SUCCESS = 0,
    MOSQ_ERR_NOMEM = 1,
    MOSQ_ERR_INVAL = 3,
    MOSQ_ERR_NOT_FOUND = 6,
    MOSQ_ERR_NOT_SUPPORTED = 10,
    MOSQ_ERR_AUTH = 11,
    MOSQ_ERR_PLUGIN_DEFER = 17,
    MOSQ_ERR_MALFORMED_UTF8 = 18,
    MOSQ_ERR_ALREADY_EXISTS = 31,
};

#define N_EVENTS 11 /* enum mosquitto_plugin_event runs from 1 to 10: tombo delivers them all */

typedef struct {
    MOSQ_FUNC_generic_callback cb;
    void *userdata;
    char *topic; /* MOSQ_EVT_CONTROL: the $CONTROL/ topic it handles (owned) */
} callback_t;

/* One loaded plugin: mosquitto_plugin_id_t for the plugin. Its callbacks and every call into it
 * are under mu (plugin.h, thread-safety). Ownership: the set owns it; opts point into the config's
 * strings copied here. */
struct mosquitto_plugin_id_t {
    pthread_mutex_t mu;
    void *lib;
    void *userdata;
    char *path, *where;
    struct mosquitto_opt *opts;
    int n_opts;
    int (*cleanup)(void *, struct mosquitto_opt *, int);
    callback_t *cbs[N_EVENTS]; /* guarded by mu */
    int n_cbs[N_EVENTS];
    struct plugin_set *set;
};
typedef struct mosquitto_plugin_id_t plugin_t;

struct plugin_set {
    int n;
    plugin_t **p;
    atomic_int n_cbs[N_EVENTS]; /* all plugins' callbacks per event, for the lock-free has_* */
    /* The $CONTROL/ topics registered, for plugin_control_handles() on the workers: its own lock,
     * never a plugin's mutex (a plugin may be busy in a slow callback on the auth thread). */
    pthread_mutex_t ctl_lock;
    char **ctl_topics; /* guarded by ctl_lock; one entry per registration */
    int n_ctl;
};

/* ---- loading ------------------------------------------------------------------------------- */

static void plugin_unload(plugin_t *p, bool initialised)
{
    if (initialised && p->cleanup) {
        pthread_mutex_lock(&p->mu);
        p->cleanup(p->userdata, p->opts, p->n_opts);
        pthread_mutex_unlock(&p->mu);
    }
    if (p->lib)
        dlclose(p->lib);
    for (int e = 0; e < N_EVENTS; e++) {
        for (int k = 0; k < p->n_cbs[e]; k++)
            free(p->cbs[e][k].topic);
        free(p->cbs[e]);
    }
    for (int i = 0; i < p->n_opts; i++) {
        free(p->opts[i].key);
        free(p->opts[i].value);
    }
    free(p->opts);
    free(p->path);
    free(p->where);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static plugin_t *plugin_load(plugin_set_t *set, const struct tombo_plugin_conf *c, char *err, size_t errlen)
{
    plugin_t *p = xcalloc(1, sizeof(*p));
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&p->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    p->set = set;
    p->path = xstrdup(c->path);
    p->where = xstrdup(c->where);
    p->n_opts = c->n_opts;
    p->opts = xcalloc((size_t)c->n_opts + 1, sizeof(*p->opts));
    for (int i = 0; i < c->n_opts; i++) {
        p->opts[i].key = xstrdup(c->keys[i]);
        p->opts[i].value = xstrdup(c->values[i]);
    }
    /* RTLD_NOW: a reference to a broker function tombo lacks fails here, by name, not at the
     * first call. RTLD_GLOBAL as Mosquitto, for plugins that share symbols. */
    p->lib = dlopen(c->path, RTLD_NOW | RTLD_GLOBAL);
    if (!p->lib) {
        snprintf(err, errlen, "%s: cannot load plugin %s: %s", c->where, c->path, dlerror());
        goto fail;
    }
    /* The one place the interface version is dispatched on: 5 (mosquitto_plugin_version) below,
     * 2 to 4 (mosquitto_auth_plugin_version) in plugin_v4.c, onto the same callbacks. */
    int (*version)(int, const int *) = (int (*)(int, const int *))dlsym(p->lib, "mosquitto_plugin_version");
    if (!version) {
        int (*old)(void) = (int (*)(void))dlsym(p->lib, "mosquitto_auth_plugin_version");
        if (!old) {
            snprintf(err, errlen, "%s: %s is not a Mosquitto plugin (it has no mosquitto_plugin_version)", c->where,
                     c->path);
            goto fail;
        }
        int v = old();
        if (v < 2 || v > 4) {
            snprintf(err, errlen,
                     "%s: plugin %s is an auth plugin of interface version %d (mosquitto_auth_plugin_version); "
                     "tombo loads versions 2 to 5, as Mosquitto 2.0",
                     c->where, c->path, v);
            goto fail;
        }
        pthread_mutex_lock(&p->mu);
        int rc = plugin_v4_open(p, v, p->lib, c->where, c->path, p->opts, p->n_opts, &p->userdata, &p->cleanup,
                                c->deny_special_chars, err, errlen);
        pthread_mutex_unlock(&p->mu);
        if (rc != 0)
            goto fail;
        return p;
    }
    static const int supported[] = {5};
    int v = version(1, supported);
    if (v != 5) {
        snprintf(err, errlen, "%s: plugin %s wants interface version %d; tombo offers version 5 only", c->where,
                 c->path, v);
        goto fail;
    }
    int (*init)(mosquitto_plugin_id_t *, void **, struct mosquitto_opt *, int) =
        (int (*)(mosquitto_plugin_id_t *, void **, struct mosquitto_opt *, int))dlsym(p->lib, "mosquitto_plugin_init");
    p->cleanup = (int (*)(void *, struct mosquitto_opt *, int))dlsym(p->lib, "mosquitto_plugin_cleanup");
    if (!init || !p->cleanup) {
        snprintf(err, errlen, "%s: plugin %s lacks %s", c->where, c->path,
                 !init ? "mosquitto_plugin_init" : "mosquitto_plugin_cleanup");
        p->cleanup = NULL;
        goto fail;
    }
    pthread_mutex_lock(&p->mu);
    int rc = init(p, &p->userdata, p->opts, p->n_opts);
    pthread_mutex_unlock(&p->mu);
    if (rc != MOSQ_ERR_SUCCESS) {
        p->cleanup = NULL; /* Mosquitto does not call cleanup after a failed init either */
        snprintf(err, errlen, "%s: plugin %s failed to initialise (mosquitto_plugin_init returned %d)", c->where,
                 c->path, rc);
        goto fail;
    }
    return p;
fail:
    plugin_unload(p, false);
    return NULL;
}

plugin_set_t *plugin_set_load(const struct tombo_plugin_conf *confs, int n, char *err, size_t errlen)
{
    if (n <= 0)
        return NULL;
    plugin_set_t *ps = xcalloc(1, sizeof(*ps));
    ps->p = xcalloc((size_t)n, sizeof(*ps->p));
    pthread_mutex_init(&ps->ctl_lock, NULL);
    for (int e = 0; e < N_EVENTS; e++)
        atomic_init(&ps->n_cbs[e], 0);
    for (int i = 0; i < n; i++) {
        plugin_t *p = plugin_load(ps, &confs[i], err, errlen);
        if (!p) {
            plugin_set_free(ps);
            return NULL;
        }
        ps->p[ps->n++] = p;
        log_printf(TLOG_INFO, "Loaded plugin %s (%s).", confs[i].path, confs[i].where);
    }
    return ps;
}

void plugin_set_free(plugin_set_t *ps)
{
    if (!ps)
        return;
    for (int i = ps->n - 1; i >= 0; i--) /* in reverse order of loading */
        plugin_unload(ps->p[i], true);
    free(ps->p);
    for (int i = 0; i < ps->n_ctl; i++)
        free(ps->ctl_topics[i]);
    free(ps->ctl_topics);
    pthread_mutex_destroy(&ps->ctl_lock);
    free(ps);
}

bool plugin_set_has_basic_auth(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_BASIC_AUTH], memory_order_relaxed) > 0;
}

bool plugin_set_has_psk(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_PSK_KEY], memory_order_relaxed) > 0;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* As Mosquitto 2.0's mosquitto_psk_key_get (after psk_file, which a listener with one uses
 * alone) and its TLS callback: the plugins write the key as hex into a buffer of twice the
 * binary room; it is then decoded. */
size_t plugin_psk_lookup(void *arg, const char *identity, unsigned char *key, size_t max)
{
    struct plugin_psk_arg *a = arg;
    plugin_set_t *ps = a->ps;
    if (!ps || !identity || max == 0 || max > 1024)
        return 0;
    char hex[2049];
    memset(hex, 0, sizeof(hex));
    struct mosquitto who;
    memset(&who, 0, sizeof(who));
    int rc = MOSQ_ERR_PLUGIN_DEFER;
    for (int i = 0; i < ps->n && rc == MOSQ_ERR_PLUGIN_DEFER; i++) {
        plugin_t *p = ps->p[i];
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < p->n_cbs[MOSQ_EVT_PSK_KEY] && rc == MOSQ_ERR_PLUGIN_DEFER; k++) {
            struct mosquitto_evt_psk_key ev;
            memset(&ev, 0, sizeof(ev));
            ev.client = &who;
            ev.hint = a->hint;
            ev.identity = identity;
            ev.key = hex;
            ev.max_key_len = (int)(2 * max);
            rc = p->cbs[MOSQ_EVT_PSK_KEY][k].cb(MOSQ_EVT_PSK_KEY, &ev, p->cbs[MOSQ_EVT_PSK_KEY][k].userdata);
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        log_printf(TLOG_NOTICE, "PSK identity %s refused by the plugins.", identity);
        return 0;
    }
    size_t n = strnlen(hex, 2 * max);
    if (n == 0 || n % 2) {
        log_printf(TLOG_WARNING, "Warning: a plugin gave PSK identity %s a key that is not hex.", identity);
        return 0;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            log_printf(TLOG_WARNING, "Warning: a plugin gave PSK identity %s a key that is not hex.", identity);
            memset(key, 0, max);
            return 0;
        }
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    memset(hex, 0, sizeof(hex));
    return n / 2;
}

bool plugin_set_has_acl(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_ACL_CHECK], memory_order_relaxed) > 0;
}

/* ---- calling the callbacks ----------------------------------------------------------------- */

/* Each plugin's callbacks for `event` with `data` (reset from `tmpl` before each call, as
 * Mosquitto does), until one answers other than MOSQ_ERR_PLUGIN_DEFER. Returns that answer, or
 * MOSQ_ERR_PLUGIN_DEFER. all: call every callback whatever it answers (reload, tick). */
static int call_event(plugin_set_t *ps, int event, void *data, const void *tmpl, size_t size, bool all)
{
    if (!ps || atomic_load_explicit(&ps->n_cbs[event], memory_order_relaxed) == 0)
        return MOSQ_ERR_PLUGIN_DEFER;
    for (int i = 0; i < ps->n; i++) {
        plugin_t *p = ps->p[i];
        pthread_mutex_lock(&p->mu);
        /* By index: a callback may register or unregister callbacks (the array may move). */
        for (int k = 0; k < p->n_cbs[event]; k++) {
            memcpy(data, tmpl, size);
            int rc = p->cbs[event][k].cb(event, data, p->cbs[event][k].userdata);
            if (rc != MOSQ_ERR_PLUGIN_DEFER && !all) {
                pthread_mutex_unlock(&p->mu);
                return rc;
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
    return MOSQ_ERR_PLUGIN_DEFER;
}

static enum plugin_answer answer(int rc)
{
    return rc == MOSQ_ERR_PLUGIN_DEFER ? PLUGIN_DEFER : rc == MOSQ_ERR_SUCCESS ? PLUGIN_ALLOW : PLUGIN_DENY;
}

enum plugin_answer plugin_basic_auth(plugin_set_t *ps, const struct mosquitto *client, const char *username,
                                     const char *password)
{
    struct mosquitto_evt_basic_auth tmpl, ev;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.client = (struct mosquitto *)client;
    tmpl.username = (char *)username;
    tmpl.password = (char *)password;
    return answer(call_event(ps, MOSQ_EVT_BASIC_AUTH, &ev, &tmpl, sizeof(tmpl), false));
}

enum plugin_answer plugin_acl_check(plugin_set_t *ps, const struct mosquitto *client, const uint8_t *topic,
                                    size_t n, int access, const void *payload, uint32_t payloadlen, uint8_t qos,
                                    bool retain)
{
    char buf[256];
    char *t = n < sizeof(buf) ? buf : xmalloc(n + 1);
    memcpy(t, topic, n);
    t[n] = '\0';
    struct mosquitto_evt_acl_check tmpl, ev;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.client = (struct mosquitto *)client;
    tmpl.topic = t;
    tmpl.payload = payload;
    tmpl.payloadlen = payloadlen;
    tmpl.qos = qos;
    tmpl.retain = retain;
    tmpl.access = access; /* AUTH_READ/WRITE/SUBSCRIBE are MOSQ_ACL_READ/WRITE/SUBSCRIBE */
    int rc = call_event(ps, MOSQ_EVT_ACL_CHECK, &ev, &tmpl, sizeof(tmpl), false);
    if (t != buf)
        free(t);
    return answer(rc);
}

bool plugin_control_handles(plugin_set_t *ps, const uint8_t *topic, size_t n)
{
    if (!ps || atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_CONTROL], memory_order_relaxed) == 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&ps->ctl_lock);
    for (int i = 0; i < ps->n_ctl && !found; i++)
        found = strlen(ps->ctl_topics[i]) == n && !memcmp(ps->ctl_topics[i], topic, n);
    pthread_mutex_unlock(&ps->ctl_lock);
    return found;
}

bool plugin_set_has_control(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_CONTROL], memory_order_relaxed) > 0;
}

bool plugin_control(plugin_set_t *ps, const struct mosquitto *client, const uint8_t *topic, size_t n,
                    const void *payload, uint32_t payloadlen, uint8_t qos, bool retain)
{
    if (!ps || atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_CONTROL], memory_order_relaxed) == 0)
        return false;
    for (int i = 0; i < ps->n; i++) {
        plugin_t *p = ps->p[i];
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < p->n_cbs[MOSQ_EVT_CONTROL]; k++) {
            callback_t *cb = &p->cbs[MOSQ_EVT_CONTROL][k];
            if (strlen(cb->topic) != n || memcmp(cb->topic, topic, n))
                continue;
            struct mosquitto_evt_control ev;
            memset(&ev, 0, sizeof(ev));
            ev.client = (struct mosquitto *)client;
            ev.topic = cb->topic;
            ev.payload = payload;
            ev.payloadlen = payloadlen;
            ev.qos = qos;
            ev.retain = retain;
            int rc = cb->cb(MOSQ_EVT_CONTROL, &ev, cb->userdata);
            if (rc != MOSQ_ERR_SUCCESS)
                log_printf(TLOG_WARNING, "Warning: plugin %s: its %.*s handler returned %d.", p->path, (int)n,
                           (const char *)topic, rc);
            pthread_mutex_unlock(&p->mu);
            return true;
        }
        pthread_mutex_unlock(&p->mu);
    }
    return false;
}

bool plugin_set_has_message(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_MESSAGE], memory_order_relaxed) > 0;
}

/* As Mosquitto 2.0's plugin__handle_message: every callback in turn sees the message as the ones
 * before left it (the event is not reset between them), until one answers other than
 * MOSQ_ERR_SUCCESS. A callback may replace the payload (with mosquitto_malloc'ed memory: the old
 * one is the broker's, not freed by the plugin), the topic (the plugin frees the old one with
 * mosquitto_free, as Mosquitto 2.0 leaves that to it) and retain; qos is read only. */
int plugin_message(plugin_set_t *ps, const struct mosquitto *client, struct plugin_msg *m)
{
    struct mosquitto_evt_message ev;
    memset(&ev, 0, sizeof(ev));
    ev.client = (struct mosquitto *)client;
    ev.topic = m->topic;
    ev.payload = m->payload;
    ev.payloadlen = m->payloadlen;
    ev.qos = m->qos;
    ev.retain = m->retain;
    int rc = MOSQ_ERR_SUCCESS;
    for (int i = 0; i < ps->n && rc == MOSQ_ERR_SUCCESS; i++) {
        plugin_t *p = ps->p[i];
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < p->n_cbs[MOSQ_EVT_MESSAGE] && rc == MOSQ_ERR_SUCCESS; k++)
            rc = p->cbs[MOSQ_EVT_MESSAGE][k].cb(MOSQ_EVT_MESSAGE, &ev, p->cbs[MOSQ_EVT_MESSAGE][k].userdata);
        pthread_mutex_unlock(&p->mu);
    }
    m->topic = ev.topic;
    m->payload = ev.payload;
    m->payloadlen = ev.payloadlen;
    m->retain = ev.retain;
    m->properties_set = ev.properties != NULL;
    return rc == MOSQ_ERR_SUCCESS ? PLUGIN_MSG_OK : rc == PLUGIN_ERR_ACL_DENIED ? PLUGIN_MSG_DENIED : PLUGIN_MSG_ERROR;
}

bool plugin_set_has_ext_auth(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_EXT_AUTH_START], memory_order_relaxed) > 0;
}

/* As Mosquitto 2.0's mosquitto_security_auth_start/continue: the callbacks in order until one
 * answers other than MOSQ_ERR_PLUGIN_DEFER; its data_out is the answer's. */
int plugin_ext_auth(plugin_set_t *ps, bool start, struct mosquitto *client, const char *method, const void *in,
                    uint16_t inlen, void **out, uint16_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    int event = start ? MOSQ_EVT_EXT_AUTH_START : MOSQ_EVT_EXT_AUTH_CONTINUE;
    int rc = MOSQ_ERR_PLUGIN_DEFER;
    for (int i = 0; ps && i < ps->n && rc == MOSQ_ERR_PLUGIN_DEFER; i++) {
        plugin_t *p = ps->p[i];
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < p->n_cbs[event] && rc == MOSQ_ERR_PLUGIN_DEFER; k++) {
            struct mosquitto_evt_extended_auth ev;
            memset(&ev, 0, sizeof(ev));
            ev.client = client;
            ev.auth_method = method;
            ev.data_in = in;
            ev.data_in_len = inlen;
            rc = p->cbs[event][k].cb(event, &ev, p->cbs[event][k].userdata);
            if (rc == MOSQ_ERR_PLUGIN_DEFER) {
                free(ev.data_out);
            } else {
                *out = ev.data_out;
                *outlen = ev.data_out ? ev.data_out_len : 0;
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
    switch (rc) {
    case MOSQ_ERR_SUCCESS: return PLUGIN_EXT_SUCCESS;
    case MOSQ_ERR_AUTH_CONTINUE: return PLUGIN_EXT_CONTINUE;
    case MOSQ_ERR_AUTH: return PLUGIN_EXT_DENIED;
    case MOSQ_ERR_PLUGIN_DEFER:
    case MOSQ_ERR_NOT_SUPPORTED: return PLUGIN_EXT_NOT_SUPPORTED;
    default: return PLUGIN_EXT_ERROR;
    }
}

bool plugin_set_has_disconnect(const plugin_set_t *ps)
{
    return ps && atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_DISCONNECT], memory_order_relaxed) > 0;
}

void plugin_disconnect(plugin_set_t *ps, const struct mosquitto *client, int reason)
{
    struct mosquitto_evt_disconnect tmpl, ev;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.client = (struct mosquitto *)client;
    tmpl.reason = reason;
    call_event(ps, MOSQ_EVT_DISCONNECT, &ev, &tmpl, sizeof(tmpl), true);
}

void plugin_set_reload(plugin_set_t *ps)
{
    struct mosquitto_evt_reload tmpl, ev;
    memset(&tmpl, 0, sizeof(tmpl)); /* no options: Mosquitto 2.0 passes none either */
    call_event(ps, MOSQ_EVT_RELOAD, &ev, &tmpl, sizeof(tmpl), true);
}

void plugin_set_tick(plugin_set_t *ps)
{
    if (!ps || atomic_load_explicit(&ps->n_cbs[MOSQ_EVT_TICK], memory_order_relaxed) == 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct mosquitto_evt_tick tmpl, ev;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.now_s = ts.tv_sec;
    tmpl.now_ns = ts.tv_nsec;
    tmpl.next_s = ts.tv_sec;
    tmpl.next_ns = ts.tv_nsec + 100000000L; /* the next tick, about 100 ms from now */
    if (tmpl.next_ns >= 1000000000L) {
        tmpl.next_s++;
        tmpl.next_ns -= 1000000000L;
    }
    call_event(ps, MOSQ_EVT_TICK, &ev, &tmpl, sizeof(tmpl), true);
}

/* ---- the broker functions plugins call (mosquitto_broker.h) -------------------------------- */

int mosquitto_callback_register(mosquitto_plugin_id_t *p, int event, MOSQ_FUNC_generic_callback cb,
                                const void *event_data, void *userdata)
{
    if (!p || !cb || event <= 0 || event >= N_EVENTS)
        return MOSQ_ERR_INVAL;
    /* MOSQ_EVT_CONTROL: event_data is the topic, which must be under $CONTROL/ (as Mosquitto). */
    const char *topic = event == MOSQ_EVT_CONTROL ? event_data : NULL;
    if (event == MOSQ_EVT_CONTROL && (!topic || strncmp(topic, "$CONTROL/", 9)))
        return MOSQ_ERR_INVAL;
    pthread_mutex_lock(&p->mu);
    for (int k = 0; k < p->n_cbs[event]; k++)
        if (topic ? !strcmp(p->cbs[event][k].topic, topic) : p->cbs[event][k].cb == cb) {
            pthread_mutex_unlock(&p->mu);
            return MOSQ_ERR_ALREADY_EXISTS;
        }
    callback_t *a = realloc(p->cbs[event], (size_t)(p->n_cbs[event] + 1) * sizeof(*a));
    if (!a)
        abort();
    a[p->n_cbs[event]++] = (callback_t){cb, userdata, topic ? xstrdup(topic) : NULL};
    p->cbs[event] = a;
    if (topic) {
        plugin_set_t *ps = p->set;
        pthread_mutex_lock(&ps->ctl_lock);
        char **t = realloc(ps->ctl_topics, (size_t)(ps->n_ctl + 1) * sizeof(*t));
        if (!t)
            abort();
        t[ps->n_ctl++] = xstrdup(topic);
        ps->ctl_topics = t;
        pthread_mutex_unlock(&ps->ctl_lock);
    }
    atomic_fetch_add(&p->set->n_cbs[event], 1);
    pthread_mutex_unlock(&p->mu);
    return MOSQ_ERR_SUCCESS;
}

/* One registration of `topic` is gone. */
static void ctl_forget(plugin_set_t *ps, const char *topic)
{
    pthread_mutex_lock(&ps->ctl_lock);
    for (int i = 0; i < ps->n_ctl; i++)
        if (!strcmp(ps->ctl_topics[i], topic)) {
            free(ps->ctl_topics[i]);
            ps->ctl_topics[i] = ps->ctl_topics[--ps->n_ctl];
            break;
        }
    pthread_mutex_unlock(&ps->ctl_lock);
}

int mosquitto_callback_unregister(mosquitto_plugin_id_t *p, int event, MOSQ_FUNC_generic_callback cb,
                                  const void *event_data)
{
    if (!p || event <= 0 || event >= N_EVENTS)
        return MOSQ_ERR_INVAL;
    const char *topic = event == MOSQ_EVT_CONTROL ? event_data : NULL;
    pthread_mutex_lock(&p->mu);
    for (int k = 0; k < p->n_cbs[event]; k++)
        if (p->cbs[event][k].cb == cb && (!topic || !strcmp(p->cbs[event][k].topic, topic))) {
            if (p->cbs[event][k].topic)
                ctl_forget(p->set, p->cbs[event][k].topic);
            free(p->cbs[event][k].topic);
            memmove(&p->cbs[event][k], &p->cbs[event][k + 1], (size_t)(p->n_cbs[event] - k - 1) * sizeof(callback_t));
            p->n_cbs[event]--;
            atomic_fetch_sub(&p->set->n_cbs[event], 1);
            pthread_mutex_unlock(&p->mu);
            return MOSQ_ERR_SUCCESS;
        }
    pthread_mutex_unlock(&p->mu);
    return MOSQ_ERR_NOT_FOUND;
}

void *mosquitto_calloc(size_t nmemb, size_t size)
{
    return calloc(nmemb, size);
}

void mosquitto_free(void *mem)
{
    free(mem);
}

void *mosquitto_malloc(size_t size)
{
    return malloc(size);
}

void *mosquitto_realloc(void *ptr, size_t size)
{
    return realloc(ptr, size);
}

char *mosquitto_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Mosquitto's MOSQ_LOG_* levels are tombo's TLOG_* bits (INFO 1 ... WEBSOCKETS 0x80). */
void mosquitto_log_printf(int level, const char *fmt, ...)
{
    unsigned l = (unsigned)level & TLOG_ALL;
    if (!l || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vprintf(l, fmt, ap);
    va_end(ap);
}

const char *mosquitto_client_address(const struct mosquitto *client)
{
    return client ? client->address : NULL;
}

bool mosquitto_client_clean_session(const struct mosquitto *client)
{
    return client ? client->clean_session : true;
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
    return client ? client->id : NULL;
}

int mosquitto_client_keepalive(const struct mosquitto *client)
{
    return client ? client->keepalive : -1;
}

int mosquitto_client_protocol(const struct mosquitto *client)
{
    return client && client->websockets ? mp_websockets : mp_mqtt;
}

int mosquitto_client_protocol_version(const struct mosquitto *client)
{
    return client ? client->protocol_version : 0;
}

const char *mosquitto_client_username(const struct mosquitto *client)
{
    return client ? client->username : NULL;
}

/* Mosquitto keeps the new name as the client's for the rest of its connection (ACL checks); tombo
 * takes it when the plugin sets it while authenticating the client, the one time plugins use it
 * for (mapping a login to another identity). Elsewhere it is refused, not ignored. */
int mosquitto_set_username(struct mosquitto *client, const char *username)
{
    if (!client || (username && !*username))
        return MOSQ_ERR_INVAL;
    if (username && !mqtt_utf8_valid((const uint8_t *)username, strlen(username)))
        return MOSQ_ERR_INVAL;
    if (!client->can_set_username) {
        log_printf(TLOG_ERR, "Error: a plugin called mosquitto_set_username outside MOSQ_EVT_BASIC_AUTH, which tombo "
                             "does not support yet; the user name stays.");
        return MOSQ_ERR_NOT_SUPPORTED;
    }
    free(client->set_username);
    client->set_username = username ? xstrdup(username) : NULL;
    client->username_changed = true;
    client->username = client->set_username;
    return MOSQ_ERR_SUCCESS;
}

/* The three libmosquitto functions Mosquitto's broker exports to its plugins (its dynamic-security
 * plugin uses them), with its meaning, on tombo's topic rules. */
int mosquitto_topic_matches_sub(const char *sub, const char *topic, bool *result);
int mosquitto_sub_topic_check(const char *str);
int mosquitto_validate_utf8(const char *str, int len);

int mosquitto_topic_matches_sub(const char *sub, const char *topic, bool *result)
{
    if (!result)
        return MOSQ_ERR_INVAL;
    *result = false;
    if (!sub || !topic || !*sub || !*topic)
        return MOSQ_ERR_INVAL;
    size_t sn = strlen(sub), tn = strlen(topic);
    if (!mqtt_topic_filter_valid((const uint8_t *)sub, sn) || strpbrk(topic, "+#"))
        return MOSQ_ERR_INVAL;
    *result = mqtt_topic_match((const uint8_t *)sub, sn, (const uint8_t *)topic, tn);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_sub_topic_check(const char *str)
{
    if (!str)
        return MOSQ_ERR_INVAL;
    size_t n = strlen(str);
    if (n > 65535 || !mqtt_topic_filter_valid((const uint8_t *)str, n))
        return MOSQ_ERR_INVAL;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_validate_utf8(const char *str, int len)
{
    if (!str || len < 0 || len > 65535)
        return MOSQ_ERR_INVAL;
    return mqtt_utf8_valid((const uint8_t *)str, (size_t)len) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_MALFORMED_UTF8;
}
