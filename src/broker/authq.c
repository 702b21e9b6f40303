/* authq.c -- the auth thread(s): a FIFO of password checks (see authq.h). */
#include "broker/authq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/plugin.h"
#include "broker/worker.h"
#include "mqtt/mqtt.h"

typedef struct job {
    struct job *next;
    /* A $CONTROL/ PUBLISH for a plugin (authq_submit_control) or a MOSQ_EVT_DISCONNECT (disconnect
     * >= 0) when ps is set, else a CONNECT. */
    struct plugin_set *ps;
    int disconnect;
    uint8_t *data; /* control: topic then payload, one allocation */
    size_t topic_len;
    uint8_t qos;
    bool retain;
    int worker, fd;
    uint64_t conn_id;
    const auth_t *auth;
    bool allow_anonymous, has_user, has_pw;
    size_t ulen, pwlen;
    uint8_t *user, *pw; /* one allocation: user then password */
    struct mosquitto client; /* for plugins: id and address are copies owned by the job */
} job_t;

/* A user name a plugin set while authenticating connection conn_id (mosquitto_set_username), until
 * its worker takes it (authq_take_username). */
typedef struct renamed {
    struct renamed *next;
    uint64_t conn_id;
    char *username;
} renamed_t;

struct authq {
    struct broker *b;
    renamed_t *renamed; /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *head, **tail; /* guarded by lock */
    bool stop;           /* guarded by lock */
    int n_threads;
    pthread_t *threads;
};

static void job_free(job_t *j)
{
    if (j->user) /* the password does not linger in freed memory */
        explicit_bzero(j->user, j->ulen + j->pwlen);
    free(j->user);
    free((char *)j->client.id);
    free((char *)j->client.address);
    free((char *)j->client.username);
    free(j->client.set_username);
    free(j->data);
    free(j);
}

static void *authq_main(void *arg)
{
    authq_t *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->stop)
            break;
        job_t *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = &q->head;
        pthread_mutex_unlock(&q->lock);

        if (j->ps && j->disconnect >= 0) {
            plugin_disconnect(j->ps, &j->client, j->disconnect);
        } else if (j->ps) {
            plugin_control(j->ps, &j->client, j->data, j->topic_len, j->data + j->topic_len, (uint32_t)j->pwlen,
                           j->qos, j->retain);
        } else {
            uint8_t rc = auth_connect_client(j->auth, j->allow_anonymous, &j->client, j->user, j->ulen, j->has_user,
                                             j->pw, j->pwlen, j->has_pw);
            inbox_item_t it = {.kind = INBOX_AUTH_DONE, .rc = rc, .fd = j->fd, .conn_id = j->conn_id};
            if (rc == MQTT_RC_SUCCESS && j->client.username_changed) {
                renamed_t *r = xcalloc(1, sizeof(*r));
                r->conn_id = j->conn_id;
                r->username = j->client.set_username;
                j->client.set_username = NULL;
                pthread_mutex_lock(&q->lock);
                r->next = q->renamed;
                q->renamed = r;
                pthread_mutex_unlock(&q->lock);
                it.reply_fd = 1; /* a new user name waits (authq_take_username) */
            }
            worker_post(&q->b->workers[j->worker], &it);
        }
        job_free(j);

        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

authq_t *authq_start(struct broker *b, int threads)
{
    authq_t *q = xcalloc(1, sizeof(*q));
    q->b = b;
    q->tail = &q->head;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->threads = xcalloc((size_t)threads, sizeof(pthread_t));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[i], NULL, authq_main, q) != 0)
            break;
        q->n_threads++;
    }
    if (q->n_threads == 0) {
        authq_stop(q);
        return NULL;
    }
    return q;
}

void authq_stop(authq_t *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    while (q->head) {
        job_t *j = q->head;
        q->head = j->next;
        job_free(j);
    }
    while (q->renamed) {
        renamed_t *r = q->renamed;
        q->renamed = r->next;
        free(r->username);
        free(r);
    }
    free(q->threads);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

bool authq_needed(const auth_t *a, bool has_user, size_t ulen)
{
    return auth_needs_thread(a, has_user, ulen);
}

static void push(authq_t *q, job_t *j)
{
    pthread_mutex_lock(&q->lock);
    *q->tail = j;
    q->tail = &j->next;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void authq_submit(authq_t *q, int worker, int fd, uint64_t conn_id, const auth_t *a, bool allow_anonymous,
                  const struct mosquitto *client, const uint8_t *user, size_t ulen, bool has_user, const uint8_t *pw,
                  size_t pwlen, bool has_pw)
{
    job_t *j = xcalloc(1, sizeof(*j));
    if (client) {
        j->client = *client;
        j->client.id = client->id ? xstrdup(client->id) : NULL;
        j->client.address = client->address ? xstrdup(client->address) : NULL;
        j->client.username = NULL; /* auth_connect_client sets it from user */
    }
    j->worker = worker;
    j->fd = fd;
    j->conn_id = conn_id;
    j->auth = a;
    j->allow_anonymous = allow_anonymous;
    j->has_user = has_user;
    j->has_pw = has_pw;
    j->ulen = ulen;
    j->pwlen = pwlen;
    j->user = xmalloc(ulen + pwlen + 1);
    if (ulen)
        memcpy(j->user, user, ulen);
    if (pwlen)
        memcpy(j->user + ulen, pw, pwlen);
    j->pw = j->user + ulen;
    push(q, j);
}

/* A plugin job about client (copied). */
static job_t *plugin_job(struct plugin_set *ps, const struct mosquitto *client)
{
    job_t *j = xcalloc(1, sizeof(*j));
    j->ps = ps;
    j->disconnect = -1;
    j->client = *client;
    j->client.id = client->id ? xstrdup(client->id) : NULL;
    j->client.address = client->address ? xstrdup(client->address) : NULL;
    j->client.username = client->username ? xstrdup(client->username) : NULL;
    return j;
}

void authq_submit_disconnect(authq_t *q, struct plugin_set *ps, const struct mosquitto *client, int reason)
{
    job_t *j = plugin_job(ps, client);
    j->disconnect = reason;
    push(q, j);
}

void authq_submit_control(authq_t *q, struct plugin_set *ps, const struct mosquitto *client, const uint8_t *topic,
                          size_t topic_len, const uint8_t *payload, size_t len, uint8_t qos, bool retain)
{
    job_t *j = plugin_job(ps, client);
    j->data = xmalloc(topic_len + len + 1);
    memcpy(j->data, topic, topic_len);
    if (len)
        memcpy(j->data + topic_len, payload, len);
    j->topic_len = topic_len;
    j->pwlen = len; /* the payload's length (j->user stays NULL: job_free wipes nothing) */
    j->qos = qos;
    j->retain = retain;
    push(q, j);
}

char *authq_take_username(authq_t *q, uint64_t conn_id)
{
    char *name = NULL;
    pthread_mutex_lock(&q->lock);
    for (renamed_t **pp = &q->renamed; *pp; pp = &(*pp)->next)
        if ((*pp)->conn_id == conn_id) {
            renamed_t *r = *pp;
            *pp = r->next;
            name = r->username;
            free(r);
            break;
        }
    pthread_mutex_unlock(&q->lock);
    return name;
}
