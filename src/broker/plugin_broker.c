/* plugin_broker.c -- the broker functions of mosquitto_broker.h that act on the broker itself:
 * publishing from a plugin and kicking clients (plugin.h). The Mosquitto API has no broker
 * argument, so the broker a plugin acts on is the one plugin_broker_attach() names: one per
 * process, as in Mosquitto.
 *
 * Publishing: Mosquitto queues a plugin's message and sends it from its loop, never from inside
 * the call (a plugin may publish from within a callback, e.g. the answer to a $CONTROL request).
 * tombo does the same: mosquitto_broker_publish() appends to a queue under a mutex and wakes worker
 * 0 (INBOX_PLUGIN_PUBLISH), which routes the messages (plugin_publish_drain).
 *
 * Kicks go through the same queue: a plugin is called with its mutex held, sometimes under a
 * session's lock (an ACL check), and a kick takes sessions' locks: done inside the call, two
 * workers could each hold what the other waits for. Worker 0 does it outside every plugin. */
#include "broker/plugin.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto_broker.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/msg.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "mqtt/mqtt.h"
#include "mqtt/topic.h"

enum { MOSQ_ERR_SUCCESS = 0, MOSQ_ERR_INVAL = 3, MOSQ_ERR_NOT_SUPPORTED = 10 };

/* One thing a plugin asked for: a message to send, or clients to kick. */
typedef struct pmsg {
    struct pmsg *next;
    enum { PM_PUBLISH, PM_KICK_ID, PM_KICK_USER } kind;
    bool with_will;  /* kicks */
    char *clientid; /* publish: NULL to every subscriber; kicks: the id or user name (NULL: all / none) */
    char *topic;
    void *payload; /* the plugin's, freed here (mosquitto_free is free) */
    uint32_t len;
    uint8_t qos, retain;
} pmsg_t;

static struct {
    pthread_mutex_t lock;
    broker_t *b;
    pmsg_t *head, **tail; /* guarded by lock */
} pb = {.lock = PTHREAD_MUTEX_INITIALIZER};

void plugin_broker_attach(struct broker *b)
{
    pthread_mutex_lock(&pb.lock);
    pb.b = b;
    if (!pb.tail)
        pb.tail = &pb.head;
    pthread_mutex_unlock(&pb.lock);
}

static void pmsg_free(pmsg_t *m)
{
    free(m->clientid);
    free(m->topic);
    free(m->payload);
    free(m);
}

/* A new request of this kind about `name` (copied), with pb.lock taken for enqueue_locked(); NULL
 * (lock not held) when no broker is attached. */
static pmsg_t *pmsg_start(int kind, const char *name, broker_t **b)
{
    pthread_mutex_lock(&pb.lock);
    *b = pb.b;
    if (!*b) {
        pthread_mutex_unlock(&pb.lock);
        return NULL;
    }
    pmsg_t *m = xcalloc(1, sizeof(*m));
    m->kind = kind;
    m->clientid = name ? xstrdup(name) : NULL;
    return m;
}

/* Append m (pb.lock held; released here) and wake worker 0 if the queue was empty. */
static void enqueue_locked(broker_t *b, pmsg_t *m)
{
    bool was_empty = !pb.head;
    *pb.tail = m;
    pb.tail = &m->next;
    pthread_mutex_unlock(&pb.lock);
    if (was_empty) {
        inbox_item_t it = {.kind = INBOX_PLUGIN_PUBLISH};
        worker_post(&b->workers[0], &it);
    }
}

static int kick(bool by_username, const char *name, bool with_will);

static int publish(const char *clientid, const char *topic, int payloadlen, void *payload, int qos, bool retain,
                   mosquitto_property *properties)
{
    if (!topic || payloadlen < 0 || (payloadlen > 0 && !payload) || qos < 0 || qos > 2 ||
        !mqtt_topic_name_valid((const uint8_t *)topic, strlen(topic)))
        return MOSQ_ERR_INVAL;
    if (properties) {
        /* tombo has no mosquitto_property (libmosquitto's): refusing beats dropping them. */
        log_printf(TLOG_ERR, "Error: a plugin published to %s with MQTT 5 properties, which tombo does not "
                             "support yet; the message is not sent.",
                   topic);
        return MOSQ_ERR_NOT_SUPPORTED;
    }
    broker_t *b;
    pmsg_t *m = pmsg_start(PM_PUBLISH, clientid, &b);
    if (!m)
        return MOSQ_ERR_INVAL;
    m->topic = xstrdup(topic);
    m->payload = payloadlen ? payload : NULL;
    if (!payloadlen)
        free(payload);
    m->len = (uint32_t)payloadlen;
    m->qos = (uint8_t)qos;
    m->retain = retain;
    enqueue_locked(b, m);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_broker_publish(const char *clientid, const char *topic, int payloadlen, void *payload, int qos,
                             bool retain, mosquitto_property *properties)
{
    return publish(clientid, topic, payloadlen, payload, qos, retain, properties);
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen, const void *payload,
                                  int qos, bool retain, mosquitto_property *properties)
{
    if (payloadlen < 0 || (payloadlen > 0 && !payload))
        return MOSQ_ERR_INVAL;
    void *copy = xmalloc((size_t)payloadlen + 1);
    if (payloadlen)
        memcpy(copy, payload, (size_t)payloadlen);
    int rc = publish(clientid, topic, payloadlen, copy, qos, retain, properties);
    if (rc != MOSQ_ERR_SUCCESS)
        free(copy);
    return rc;
}

/* Everything queued so far, now the caller's; with detach, no broker is attached any more. */
static pmsg_t *take_all(bool detach)
{
    pthread_mutex_lock(&pb.lock);
    if (detach)
        pb.b = NULL;
    pmsg_t *m = pb.head;
    pb.head = NULL;
    pb.tail = &pb.head;
    pthread_mutex_unlock(&pb.lock);
    return m;
}

void plugin_publish_drain(struct worker *w)
{
    pmsg_t *m = take_all(false);
    while (m) {
        pmsg_t *next = m->next;
        if (m->kind != PM_PUBLISH) {
            kick(m->kind == PM_KICK_USER, m->clientid, m->with_will);
            pmsg_free(m);
            m = next;
            continue;
        }
        msg_t *msg = msg_new((mqtt_bytes_t){(const uint8_t *)m->topic, (uint32_t)strlen(m->topic)},
                             (mqtt_bytes_t){(const uint8_t *)m->payload, m->len}, m->qos, m->clientid ? 0 : m->retain,
                             NULL, w->now);
        if (!m->clientid) {
            route_publish(w, msg, NULL, NULL);
        } else {
            /* To that client only, whatever it subscribed to, not retained; its read access is
             * checked on delivery, as for every message (mosquitto_broker.h). */
            session_t *s = registry_find(w->b, m->clientid, strlen(m->clientid));
            if (s && atomic_load(&s->worker) < 0) { /* not connected: dropped (mosquitto_broker.h) */
                session_release(s);
                s = NULL;
            }
            if (s) {
                session_deliver(w, s, msg, m->qos, 0, NULL, 0);
                session_release(s);
            }
        }
        msg_release(msg);
        pmsg_free(m);
        m = next;
    }
}

void plugin_broker_detach(void)
{
    pmsg_t *m = take_all(true);
    while (m) {
        pmsg_t *next = m->next;
        pmsg_free(m);
        m = next;
    }
}

/* Worker 0, outside every plugin: disconnect every connected client whose user name / client id is `name` (NULL: every client
 * without user name / every client, as mosquitto_broker.h says); without its will unless
 * with_will. Returns how many were asked to go. */
static int kick(bool by_username, const char *name, bool with_will)
{
    pthread_mutex_lock(&pb.lock);
    broker_t *b = pb.b;
    pthread_mutex_unlock(&pb.lock);
    if (!b)
        return 0;
    size_t n;
    session_t **v = registry_list(b, &n);
    int kicked = 0;
    for (size_t i = 0; i < n; i++) {
        session_t *s = v[i];
        bool match;
        if (by_username) {
            char *user = session_username_dup(s);
            match = name ? user && !strcmp(user, name) : !user;
            free(user);
        } else {
            match = !name || !strcmp(s->client_id, name);
        }
        inbox_item_t it = {.kind = INBOX_PLUGIN_KICK, .rc = MQTT_RC_ADMINISTRATIVE_ACTION};
        int wk;
        if (match && session_conn_target(s, b->n_workers, &wk, &it.fd, &it.conn_id)) {
            if (!with_will)
                msg_release(session_take_will(s));
            worker_post(&b->workers[wk], &it);
            kicked++;
        }
        session_release(s);
    }
    free(v);
    return kicked;
}

static int kick_later(bool by_username, const char *name, bool with_will)
{
    broker_t *b;
    pmsg_t *m = pmsg_start(by_username ? PM_KICK_USER : PM_KICK_ID, name, &b);
    if (!m)
        return MOSQ_ERR_INVAL;
    m->with_will = with_will;
    enqueue_locked(b, m);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will)
{
    return kick_later(false, clientid, with_will);
}

int mosquitto_kick_client_by_username(const char *username, bool with_will)
{
    return kick_later(true, username, with_will);
}
