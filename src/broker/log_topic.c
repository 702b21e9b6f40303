/* log_topic.c -- the log on $SYS/broker/log/<X> (see log_topic.h). */
#include "broker/log_topic.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/route.h"
#include "broker/worker.h"

struct log_line {
    struct log_line *next;
    const char *suffix; /* "E", "W", "N", "I", "M/subscribe", "M/unsubscribe", "WS" */
    uint32_t len;
    char msg[];
};

struct log_topic {
    pthread_mutex_t lock;
    struct log_line *head, **tail;
    uint32_t n;
    atomic_int waiting;       /* n > 0, read without the lock by worker 0 */
    atomic_ullong dropped;
};

static const char *suffix(unsigned level)
{
    switch (level) {
    case TLOG_SUBSCRIBE: return "M/subscribe";
    case TLOG_UNSUBSCRIBE: return "M/unsubscribe";
    case TLOG_WEBSOCKETS: return "WS";
    default: return log_level_letter(level);
    }
}

static void hook(unsigned level, const char *msg, size_t len, void *ud)
{
    struct log_topic *q = ud;
    pthread_mutex_lock(&q->lock);
    if (q->n >= LOG_TOPIC_MAX) {
        pthread_mutex_unlock(&q->lock);
        atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
        return;
    }
    struct log_line *l = malloc(sizeof(*l) + len);
    if (!l) {
        pthread_mutex_unlock(&q->lock);
        atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
        return;
    }
    l->next = NULL;
    l->suffix = suffix(level);
    l->len = (uint32_t)len;
    memcpy(l->msg, msg, len);
    *q->tail = l;
    q->tail = &l->next;
    q->n++;
    atomic_store_explicit(&q->waiting, 1, memory_order_release);
    pthread_mutex_unlock(&q->lock);
}

void log_topic_start(broker_t *b)
{
    /* Always: a reload may turn log_dest topic on; the log calls the hook only when it is. */
    struct log_topic *q = xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    q->tail = &q->head;
    b->log_topic = q;
    log_set_topic_hook(hook, q);
}

void log_topic_drain(worker_t *w)
{
    struct log_topic *q = w->b->log_topic;
    if (!q || !atomic_load_explicit(&q->waiting, memory_order_acquire))
        return;
    pthread_mutex_lock(&q->lock);
    struct log_line *l = q->head;
    q->head = NULL;
    q->tail = &q->head;
    q->n = 0;
    atomic_store_explicit(&q->waiting, 0, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    while (l) {
        struct log_line *next = l->next;
        char topic[40];
        int tn = snprintf(topic, sizeof(topic), "$SYS/broker/log/%s", l->suffix);
        msg_t *m = msg_new((mqtt_bytes_t){(const uint8_t *)topic, (uint32_t)tn},
                           (mqtt_bytes_t){(const uint8_t *)l->msg, l->len}, 0, 0, NULL, w->now);
        route_publish(w, m, NULL, NULL);
        msg_release(m);
        free(l);
        l = next;
    }
}

void log_topic_stop(broker_t *b)
{
    struct log_topic *q = b->log_topic;
    if (!q)
        return;
    log_set_topic_hook(NULL, NULL);
    for (struct log_line *l = q->head, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
    b->log_topic = NULL;
}

uint64_t log_topic_dropped(const broker_t *b)
{
    return b->log_topic ? atomic_load_explicit(&b->log_topic->dropped, memory_order_relaxed) : 0;
}
