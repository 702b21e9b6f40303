/* client.c -- the libtombo client object: creation and options, callbacks, connect/disconnect,
 * publish, subscribe and unsubscribe. The network loop is in loop.c, the session in session.c,
 * the subscriptions kept for re-subscribing in subs.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client-int.h"
#include "alias.h"
#include "auth.h"
#include "pwhash/scram.h"
#include "base/clock.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "props.h"
#include "reconnect.h"
#include "session.h"
#include "subs.h"
#include "transport.h"
#include "mqtt/topic.h"
#include "mqtt/utf8.h"

void tombo_options_init(tombo_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->version = TOMBO_MQTT_V311;
    o->clean_start = true;
    o->max_inflight = 20;
    o->connect_timeout_ms = 10000;
    o->reconnect_min_ms = 1000;
    o->reconnect_max_ms = 30000;
    o->resubscribe = true;
}

static char *dup_str(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

static bool str_ok(const char *s)
{
    return !s || (strlen(s) <= 65535 && mqtt_utf8_wellformed((const uint8_t *)s, strlen(s)));
}

tombo_client_t *tombo_client_new(const char *client_id, const tombo_options_t *opts)
{
    tombo_options_t o;
    if (opts)
        o = *opts;
    else
        tombo_options_init(&o);
    if (o.version != TOMBO_MQTT_V31 && o.version != TOMBO_MQTT_V311 && o.version != TOMBO_MQTT_V5)
        return NULL;
    if (o.will_qos < 0 || o.will_qos > 2 || !str_ok(client_id) || !str_ok(o.username))
        return NULL;
    if (o.will_topic && !mqtt_topic_name_valid((const uint8_t *)o.will_topic, strlen(o.will_topic)))
        return NULL;
    if (o.will_payload_len > 65535 || (o.password && (o.password_len ? o.password_len : strlen(o.password)) > 65535))
        return NULL;
    if ((o.socks5_username && strlen(o.socks5_username) > 255) ||
        (o.socks5_password && strlen(o.socks5_password) > 255) || o.socks5_port < 0 || o.socks5_port > 65535)
        return NULL;
    if (o.connect_timeout_ms <= 0)
        o.connect_timeout_ms = 10000;
    if (o.auth_method && (strcmp(o.auth_method, SCRAM_METHOD) != 0 || o.version != TOMBO_MQTT_V5 || !o.username ||
                          !*o.username || !o.password || strlen(o.username) > SCRAM_MAX_USER))
        return NULL; /* SCRAM-SHA-256 is the one method; it needs MQTT 5 and both credentials */
    tombo_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = -1;
    c->tr = &transport_plain;
    c->wake_fd = -1;
    c->log_mask = ~0;
    c->server_keepalive = -1;
    bool fail = false;
    c->client_id = dup_str(client_id ? client_id : "", &fail);
    o.username = dup_str(o.username, &fail);
    if (o.password) {
        size_t n = o.password_len ? o.password_len : strlen(o.password);
        char *p = malloc(n + 1);
        if (p) {
            memcpy(p, o.password, n);
            p[n] = 0;
        } else {
            fail = true;
        }
        o.password = p;
        o.password_len = n;
    }
    o.will_topic = dup_str(o.will_topic, &fail);
    if (o.will_topic) {
        void *wp = malloc(o.will_payload_len + 1);
        if (wp && o.will_payload_len)
            memcpy(wp, o.will_payload, o.will_payload_len);
        if (!wp)
            fail = true;
        o.will_payload = wp;
    } else {
        o.will_payload = NULL;
        o.will_payload_len = 0;
    }
    o.bind_address = dup_str(o.bind_address, &fail);
    o.socks5_host = dup_str(o.socks5_host, &fail);
    o.socks5_username = dup_str(o.socks5_username, &fail);
    o.socks5_password = dup_str(o.socks5_password, &fail);
    o.auth_method = dup_str(o.auth_method, &fail);
    if (o.socks5_port <= 0)
        o.socks5_port = 1080;
    if (o.will_props && !(c->will_props = props_dup(o.will_props)))
        fail = true;
    if (o.connect_props && !(c->connect_props = props_dup(o.connect_props)))
        fail = true;
    o.will_props = o.connect_props = NULL;
    /* Limits given as CONNECT properties count as the options (the client must enforce them). */
    uint32_t v;
    if (c->connect_props) {
        if (!o.topic_alias_max && tombo_props_get_int(c->connect_props, TOMBO_PROP_TOPIC_ALIAS_MAX, &v))
            o.topic_alias_max = (uint16_t)v;
        if (!o.receive_max && tombo_props_get_int(c->connect_props, TOMBO_PROP_RECEIVE_MAX, &v))
            o.receive_max = (uint16_t)v;
        if (!o.max_packet_size && tombo_props_get_int(c->connect_props, TOMBO_PROP_MAX_PACKET_SIZE, &v))
            o.max_packet_size = v;
        if (!o.session_expiry && tombo_props_get_int(c->connect_props, TOMBO_PROP_SESSION_EXPIRY, &v))
            o.session_expiry = v;
    }
    c->opts = o;
    if (o.topic_alias_max && !(c->aliases = calloc(o.topic_alias_max, sizeof(char *))))
        fail = true;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    if (pthread_mutex_init(&c->lock, &a) != 0) {
        pthread_mutexattr_destroy(&a);
        c->wake_fd = -2; /* mark: no mutex to destroy */
        fail = true;
    }
    pthread_mutexattr_destroy(&a);
    if (!fail && (c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        fail = true;
    c->rng = (uint64_t)(uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 88172645463325252ull;
    if (fail) {
        tombo_client_destroy(c);
        return NULL;
    }
    return c;
}

void tombo_client_destroy(tombo_client_t *c)
{
    if (!c)
        return;
    bool has_lock = c->wake_fd != -2;
    if (has_lock)
        tombo_loop_stop(c);
    if (c->fd >= 0)
        net_close(c);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    session_free_msgs(c);
    subs_free(c);
    alias_out_reset(c);
    if (c->aliases)
        for (int i = 0; i < c->opts.topic_alias_max; i++)
            free(c->aliases[i]);
    free(c->aliases);
    free(c->topic_buf);
    free(c->done0);
    free(c->in.p);
    free(c->out.p);
    free(c->host);
    free(c->client_id);
    free((void *)c->opts.username);
    free((void *)c->opts.password);
    free((void *)c->opts.will_topic);
    free((void *)c->opts.will_payload);
    free((void *)c->opts.bind_address);
    free((void *)c->opts.socks5_host);
    free((void *)c->opts.socks5_username);
    free((void *)c->opts.socks5_password);
    free((void *)c->opts.auth_method);
    auth_clear(c);
    tombo_props_free(c->will_props);
    tombo_props_free(c->connect_props);
    transport_tls_free(c);
    if (has_lock)
        pthread_mutex_destroy(&c->lock);
    free(c);
}

#define SETTER(name, field, type)                     \
    void name(tombo_client_t *c, type v)              \
    {                                                 \
        if (!c)                                       \
            return;                                   \
        pthread_mutex_lock(&c->lock);                 \
        c->field = v;                                 \
        pthread_mutex_unlock(&c->lock);               \
    }
SETTER(tombo_set_user, user, void *)
SETTER(tombo_set_on_connect, on_connect, tombo_on_connect_cb)
SETTER(tombo_set_on_disconnect, on_disconnect, tombo_on_disconnect_cb)
SETTER(tombo_set_on_message, on_message, tombo_on_message_cb)
SETTER(tombo_set_on_publish, on_publish, tombo_on_publish_cb)
SETTER(tombo_set_on_subscribe, on_subscribe, tombo_on_subscribe_cb)
SETTER(tombo_set_on_unsubscribe, on_unsubscribe, tombo_on_unsubscribe_cb)
SETTER(tombo_set_on_log, on_log, tombo_on_log_cb)
SETTER(tombo_set_log_level, log_mask, int)

/* Open a connection to c->host:c->port and queue CONNECT. Lock held. */
static tombo_err_t open_locked(tombo_client_t *c)
{
    if (c->fd >= 0)
        return TOMBO_ERR_BUSY;
    c->user_disconnect = false;
    client_log(c, TOMBO_LOG_DEBUG, "connecting to %s:%d", c->host, c->port);
    tombo_err_t e = net_open(c);
    if (e != TOMBO_OK)
        return e;
    c->gen++;
    c->state = CS_CONNECTING;
    c->in.off = c->in.len = 0;
    c->out.off = c->out.len = 0;
    c->last_in_ms = c->last_out_ms = (uint64_t)now_ms();
    c->ping_sent_ms = 0;
    c->server_receive_max = 0;
    c->server_max_packet = 0;
    c->server_max_qos = 2;
    c->server_retain = true;
    c->server_keepalive = -1;
    alias_out_reset(c);
    e = session_send_connect(c);
    if (e == TOMBO_OK) {
        e = net_flush(c);
        if (e == TOMBO_ERR_AGAIN)
            e = TOMBO_OK;
    }
    if (e != TOMBO_OK) {
        net_close(c);
        c->state = CS_IDLE;
        return e;
    }
    loop_wake(c);
    return TOMBO_OK;
}

tombo_err_t tombo_connect(tombo_client_t *c, const char *host, int port, int keepalive)
{
    if (!c || !host || !*host || port < 0 || port > 65535 || keepalive < 0 || keepalive > 65535)
        return TOMBO_ERR_INVAL;
    if (c->opts.version == TOMBO_MQTT_V31 && (!c->client_id[0] || strlen(c->client_id) > 23))
        return TOMBO_ERR_INVAL;
    if (c->opts.version == TOMBO_MQTT_V311 && !c->client_id[0] && !c->opts.clean_start)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = TOMBO_ERR_BUSY;
    if (c->fd < 0) {
        char *h = strdup(host);
        if (!h) {
            pthread_mutex_unlock(&c->lock);
            return TOMBO_ERR_NOMEM;
        }
        free(c->host);
        c->host = h;
        c->port = port;
        c->keepalive = keepalive;
        reconnect_reset(c);
        e = open_locked(c);
        if (e != TOMBO_OK && c->opts.auto_reconnect)
            reconnect_schedule(c);
    }
    pthread_mutex_unlock(&c->lock);
    return e;
}

tombo_err_t tombo_reconnect(tombo_client_t *c)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = c->host ? open_locked(c) : TOMBO_ERR_INVAL;
    pthread_mutex_unlock(&c->lock);
    return e;
}

tombo_err_t tombo_reauthenticate(tombo_client_t *c)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = auth_reauthenticate(c);
    if (e == TOMBO_OK)
        loop_wake(c); /* a loop thread flushes it */
    pthread_mutex_unlock(&c->lock);
    return e;
}

tombo_err_t tombo_disconnect(tombo_client_t *c, int reason, const tombo_props_t *props)
{
    if (!c || reason < 0 || reason > 255)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    c->user_disconnect = true;
    c->reconnect_pending = false;
    tombo_err_t e = TOMBO_ERR_NO_CONN;
    if (c->fd >= 0 && c->state != CS_CLOSING) {
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        p.reason = (uint8_t)reason;
        if (props)
            p.props = props->mp;
        e = net_send_packet(c, &p);
        /* Give the socket a bounded moment to take what is pending (and DISCONNECT). */
        uint64_t deadline = (uint64_t)now_ms() + 1000;
        while (net_flush(c) == TOMBO_ERR_AGAIN && (uint64_t)now_ms() < deadline)
            usleep(1000);
        conn_lost(c, TOMBO_OK, reason, NULL);
        e = TOMBO_OK;
    } else {
        loop_wake(c);
    }
    pthread_mutex_unlock(&c->lock);
    return e;
}

tombo_err_t tombo_publish(tombo_client_t *c, int *mid, const char *topic, const void *payload, size_t len,
                          int qos, bool retain, const tombo_props_t *props)
{
    if (!c || !topic || (!payload && len))
        return TOMBO_ERR_INVAL;
    if (qos < 0 || qos > 2)
        return TOMBO_ERR_QOS_INVALID;
    size_t tl = strlen(topic);
    if (tl > 65535 || !mqtt_topic_name_valid((const uint8_t *)topic, tl))
        return TOMBO_ERR_TOPIC_INVALID;
    if (len > MQTT_MAX_REMAINING)
        return TOMBO_ERR_PAYLOAD_SIZE;
    if (props && c->opts.send_topic_alias_max && (props->mp.has & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = TOMBO_OK;
    if (c->fd < 0) {
        if (!c->opts.offline_queue)
            e = TOMBO_ERR_NO_CONN;
        else if (c->queued >= c->opts.offline_queue)
            e = TOMBO_ERR_QUEUE_FULL;
    } else if (c->state == CS_CONNECTED && (qos > c->server_max_qos || (retain && !c->server_retain))) {
        e = TOMBO_ERR_NOT_SUPPORTED;
    }
    if (e != TOMBO_OK) {
        pthread_mutex_unlock(&c->lock);
        return e;
    }
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.id = qos ? session_next_mid(c) : 0;
    p.publish.qos = (uint8_t)qos;
    p.publish.retain = retain;
    p.publish.topic.p = (const uint8_t *)topic;
    p.publish.topic.len = (uint32_t)tl;
    p.publish.payload.p = payload;
    p.publish.payload.len = (uint32_t)len;
    if (props && c->opts.version == MQTT_V5)
        p.props = props->mp;
    size_t n = mqtt_encoded_len(&p, (uint8_t)c->opts.version);
    if (n - 2 > MQTT_MAX_REMAINING + 3) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_PAYLOAD_SIZE;
    }
    if (c->server_max_packet && n > c->server_max_packet && c->state == CS_CONNECTED) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_PACKET_TOO_LARGE;
    }
    omsg_t *m = malloc(sizeof(*m) + n);
    if (!m) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_NOMEM;
    }
    m->next = NULL;
    m->qos = (uint8_t)qos;
    m->state = OM_QUEUED;
    m->len = mqtt_encode(&p, (uint8_t)c->opts.version, m->data);
    /* QoS 0 messages carry no id on the wire, but get one for on_publish. */
    m->mid = qos ? p.id : (uint16_t)(++c->last_mid ? c->last_mid : ++c->last_mid);
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->queued++;
    if (mid)
        *mid = m->mid;
    session_pump(c);
    if (c->fd >= 0)
        net_flush(c); /* on an error the loop, woken below, sees it again and closes */
    loop_wake(c);
    pthread_mutex_unlock(&c->lock);
    return TOMBO_OK;
}

tombo_err_t tombo_subscribe_many(tombo_client_t *c, int *mid, int count, const char *const *filters,
                                 const tombo_sub_opts_t *opts, const tombo_props_t *props)
{
    if (!c || count <= 0 || count > 65535 || !filters)
        return TOMBO_ERR_INVAL;
    for (int i = 0; i < count; i++) {
        if (!filters[i] || strlen(filters[i]) > 65535 ||
            !mqtt_topic_filter_valid((const uint8_t *)filters[i], strlen(filters[i])))
            return TOMBO_ERR_TOPIC_INVALID;
        if (opts && (opts[i].qos < 0 || opts[i].qos > 2 || opts[i].retain_handling < 0 || opts[i].retain_handling > 2))
            return TOMBO_ERR_QOS_INVALID;
    }
    mqtt_sub_t *list = calloc((size_t)count, sizeof(*list));
    if (!list)
        return TOMBO_ERR_NOMEM;
    bool v5 = c->opts.version == MQTT_V5;
    for (int i = 0; i < count; i++) {
        tombo_sub_opts_t o = opts ? opts[i] : (tombo_sub_opts_t){0};
        list[i].filter.p = (const uint8_t *)filters[i];
        list[i].filter.len = (uint32_t)strlen(filters[i]);
        list[i].qos = (uint8_t)o.qos;
        if (v5) {
            list[i].no_local = o.no_local;
            list[i].retain_as_published = o.retain_as_published;
            list[i].retain_handling = (uint8_t)o.retain_handling;
        }
        list[i].options = (uint8_t)(list[i].qos | (list[i].no_local << 2) | (list[i].retain_as_published << 3) |
                                    (list[i].retain_handling << 4));
    }
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = TOMBO_ERR_NO_CONN;
    if (c->fd >= 0 && c->state != CS_CLOSING) {
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBSCRIBE;
        p.id = session_next_mid(c);
        if (props && v5)
            p.props = props->mp;
        p.subscribe.count = (uint32_t)count;
        p.subscribe.list = list;
        e = net_send_packet(c, &p);
        for (int i = 0; e == TOMBO_OK && i < count; i++)
            e = subs_remember(c, filters[i], opts ? &opts[i] : &(tombo_sub_opts_t){0}, props);
        if (e == TOMBO_OK) {
            if (mid)
                *mid = p.id;
            net_flush(c);
            loop_wake(c);
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(list);
    return e;
}

tombo_err_t tombo_subscribe(tombo_client_t *c, int *mid, const char *filter, int qos, const tombo_sub_opts_t *opts,
                            const tombo_props_t *props)
{
    tombo_sub_opts_t o = {.qos = qos};
    if (opts)
        o = *opts;
    return tombo_subscribe_many(c, mid, 1, &filter, &o, props);
}

tombo_err_t tombo_unsubscribe_many(tombo_client_t *c, int *mid, int count, const char *const *filters,
                                   const tombo_props_t *props)
{
    if (!c || count <= 0 || count > 65535 || !filters)
        return TOMBO_ERR_INVAL;
    for (int i = 0; i < count; i++)
        if (!filters[i] || strlen(filters[i]) > 65535 ||
            !mqtt_topic_filter_valid((const uint8_t *)filters[i], strlen(filters[i])))
            return TOMBO_ERR_TOPIC_INVALID;
    mqtt_bytes_t *list = calloc((size_t)count, sizeof(*list));
    if (!list)
        return TOMBO_ERR_NOMEM;
    for (int i = 0; i < count; i++) {
        list[i].p = (const uint8_t *)filters[i];
        list[i].len = (uint32_t)strlen(filters[i]);
    }
    pthread_mutex_lock(&c->lock);
    tombo_err_t e = TOMBO_ERR_NO_CONN;
    if (c->fd >= 0 && c->state != CS_CLOSING) {
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_UNSUBSCRIBE;
        p.id = session_next_mid(c);
        if (props && c->opts.version == MQTT_V5)
            p.props = props->mp;
        p.unsubscribe.count = (uint32_t)count;
        p.unsubscribe.list = list;
        e = net_send_packet(c, &p);
        if (e == TOMBO_OK) {
            for (int i = 0; i < count; i++)
                subs_forget(c, filters[i]);
            if (mid)
                *mid = p.id;
            net_flush(c);
            loop_wake(c);
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(list);
    return e;
}

tombo_err_t tombo_unsubscribe(tombo_client_t *c, int *mid, const char *filter, const tombo_props_t *props)
{
    return tombo_unsubscribe_many(c, mid, 1, &filter, props);
}

int tombo_socket(tombo_client_t *c)
{
    if (!c)
        return -1;
    pthread_mutex_lock(&c->lock);
    int fd = c->fd;
    pthread_mutex_unlock(&c->lock);
    return fd;
}

bool tombo_want_write(tombo_client_t *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->lock);
    bool w = c->fd >= 0 && (net_events(c) & POLLOUT);
    pthread_mutex_unlock(&c->lock);
    return w;
}

bool tombo_is_connected(tombo_client_t *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->lock);
    bool r = c->state == CS_CONNECTED;
    pthread_mutex_unlock(&c->lock);
    return r;
}

int tombo_version(const tombo_client_t *c)
{
    return c ? c->opts.version : 0;
}

const char *tombo_client_id(tombo_client_t *c)
{
    return c ? c->client_id : NULL;
}

size_t tombo_pending(tombo_client_t *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = 0;
    for (omsg_t *m = c->head; m; m = m->next)
        n++;
    pthread_mutex_unlock(&c->lock);
    return n;
}
