/* trace.c -- the packet trace of one client (design note in trace.h). */
#include "broker/trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/mem.h"

trace_t *trace_new(void)
{
    trace_t *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    t->ring = xcalloc(TRACE_CAP, sizeof(*t->ring));
    t->next_seq = 1;
    return t;
}

void trace_free(trace_t *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->client);
    free(t->ring);
    free(t);
}

void trace_set(trace_t *t, const char *id, size_t len)
{
    pthread_mutex_lock(&t->lock);
    free(t->client);
    t->client = NULL;
    t->client_len = 0;
    if (id) {
        t->client = xmalloc(len + 1);
        memcpy(t->client, id, len);
        t->client[len] = '\0';
        t->client_len = len;
    }
    /* A new client's events start after the old one's: readers see a fresh trace. */
    t->next_seq += TRACE_CAP;
    unsigned g = atomic_load(&t->gen);
    /* odd while someone is traced; a new value each time, so connections look again */
    atomic_store(&t->gen, id ? (g & 1 ? g + 2 : g + 1) : (g & 1 ? g + 1 : g + 2));
    pthread_mutex_unlock(&t->lock);
}

bool trace_match_slow(trace_t *t, unsigned gen, const char *id, size_t len)
{
    if (!id)
        return false;
    pthread_mutex_lock(&t->lock);
    bool m = atomic_load(&t->gen) == gen && t->client && t->client_len == len && memcmp(t->client, id, len) == 0;
    pthread_mutex_unlock(&t->lock);
    return m;
}

/* Append bytes to an event's detail (cut at TRACE_DETAIL). */
static void put(trace_event_t *e, const void *s, size_t n)
{
    size_t room = TRACE_DETAIL - e->detail_len;
    if (n > room)
        n = room;
    memcpy(e->detail + e->detail_len, s, n);
    e->detail_len = (uint16_t)(e->detail_len + n);
}

static void putf(trace_event_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(trace_event_t *e, const char *fmt, ...)
{
    char buf[TRACE_DETAIL];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(e, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* What a learner wants to read next to the arrow. */
static void describe(trace_event_t *e, uint8_t version, const mqtt_packet_t *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        putf(e, "v%s clean=%u keepalive=%u id=", p->connect.version == MQTT_V5 ? "5" : p->connect.version == MQTT_V311 ? "3.1.1" : "3.1",
             p->connect.clean, p->connect.keepalive);
        put(e, p->connect.client_id.p, p->connect.client_id.len);
        if (p->connect.has_username) {
            put(e, " user=", 6);
            put(e, p->connect.username.p, p->connect.username.len);
        }
        if (p->connect.will) {
            put(e, " will=", 6);
            put(e, p->connect.will_topic.p, p->connect.will_topic.len);
        }
        break;
    case MQTT_CONNACK:
        putf(e, "session_present=%u rc=0x%02x", p->connack.session_present, p->reason);
        break;
    case MQTT_PUBLISH:
        put(e, p->publish.topic.p, p->publish.topic.len);
        putf(e, " (%u bytes) ", (unsigned)p->publish.payload.len);
        put(e, p->publish.payload.p, p->publish.payload.len > 48 ? 48 : p->publish.payload.len);
        break;
    case MQTT_SUBSCRIBE:
        if (p->subscribe.list) {
            for (uint32_t i = 0; i < p->subscribe.count; i++) {
                if (i)
                    put(e, " ", 1);
                put(e, p->subscribe.list[i].filter.p, p->subscribe.list[i].filter.len);
                putf(e, " q%u", p->subscribe.list[i].qos);
            }
        } else {
            mqtt_bytes_t it = p->subscribe.entries;
            mqtt_sub_t s;
            bool first = true;
            while (mqtt_sub_next(version, &it, &s)) {
                if (!first)
                    put(e, " ", 1);
                first = false;
                put(e, s.filter.p, s.filter.len);
                putf(e, " q%u", s.qos);
            }
        }
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        for (uint32_t i = 0; i < p->suback.codes.len; i++)
            putf(e, "%s0x%02x", i ? " " : "", p->suback.codes.p[i]);
        break;
    case MQTT_DISCONNECT:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        if (p->reason)
            putf(e, "rc=0x%02x", p->reason);
        break;
    default:
        break;
    }
}

void trace_packet(trace_t *t, bool out, uint8_t version, const mqtt_packet_t *p)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pthread_mutex_lock(&t->lock);
    trace_event_t *e = &t->ring[t->next_seq % TRACE_CAP];
    memset(e, 0, sizeof(*e));
    e->seq = t->next_seq++;
    e->wall_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    e->out = out;
    e->type = p->type;
    e->id = p->id;
    e->reason = p->reason;
    if (p->type == MQTT_PUBLISH) {
        e->qos = p->publish.qos;
        e->retain = p->publish.retain;
        e->dup = p->publish.dup;
    }
    describe(e, version, p);
    pthread_mutex_unlock(&t->lock);
}

size_t trace_read(trace_t *t, uint64_t after, trace_event_t *ev, size_t max, char *id, size_t cap, size_t *id_len)
{
    pthread_mutex_lock(&t->lock);
    uint64_t first = t->next_seq > TRACE_CAP ? t->next_seq - TRACE_CAP : 1;
    if (after + 1 > first)
        first = after + 1;
    size_t n = 0;
    for (uint64_t s = first; s < t->next_seq && n < max; s++) {
        const trace_event_t *e = &t->ring[s % TRACE_CAP];
        if (e->seq == s) /* slots of a previous client's trace were skipped over */
            ev[n++] = *e;
    }
    size_t l = t->client ? t->client_len : 0;
    if (l >= cap)
        l = cap - 1;
    if (l)
        memcpy(id, t->client, l);
    id[l] = '\0';
    *id_len = l;
    pthread_mutex_unlock(&t->lock);
    return n;
}
