/* sys.c -- the $SYS/broker/... topics, Mosquitto 2.0's 53 with their names, payload formats and
 * meaning, published (retained, QoS 0) by worker 0: all of them at start, then every sys_interval
 * seconds those whose value changed (uptime always), as Mosquitto does.
 *
 * Sources: the workers' own counters (worker.h, written by each worker without locked
 * instructions, summed here), the broker's (clients, drops, expiries), the tree's subscription
 * counts, the retained store, the messages alive (msg.h's per-thread counts) and the broker's heap
 * accounting (mem.h: what its allocators hold, the same count memory_limit is checked against;
 * heap/maximum is the highest value seen when it was read, where Mosquitto tracks every
 * allocation).
 *
 * Load averages (load/<what>/1min, 5min, 15min): Mosquitto's exponentially weighted moving
 * averages of a per-minute rate: at each publication, rate = (count - count before) * 60 / dt and
 * load = e * load + (1 - e) * rate, with e = exp(-dt / (60 * minutes)); published with two
 * decimals when they move by 0.01 or more. "messages" are MQTT packets of every type, "publish"
 * PUBLISH packets; "connections" CONNECT packets, "sockets" accepted sockets. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/worker.h"

enum load_src { L_BYTES_IN, L_BYTES_OUT, L_CONNECTS, L_PKTS_IN, L_PKTS_OUT, L_PUB_DROPPED, L_PUB_IN, L_PUB_OUT,
                L_SOCKETS, N_LOADS };
static const char *const load_topic[N_LOADS] = {
    "bytes/received", "bytes/sent",      "connections",       "messages/received", "messages/sent",
    "publish/dropped", "publish/received", "publish/sent", "sockets",
};
static const int load_minutes[3] = {1, 5, 15};

#define N_LAST 64 /* topics whose last payload is kept (every one but the load averages) */

struct sys_state {
    int64_t last_ms;                   /* time of the previous publication, 0: none yet */
    unsigned long long count[N_LOADS]; /* the counters then */
    double load[N_LOADS][3];
    int n_last;
    struct last { const char *topic; char value[40]; } last[N_LAST];
};

struct counters {
    unsigned long long v[N_LOADS];
    long long connected;
    unsigned long long msgs_alive, msg_bytes_alive;
};

static void sys_pub(worker_t *w, const char *topic, const char *value)
{
    msg_t *m = msg_new((mqtt_bytes_t){(const uint8_t *)topic, (uint32_t)strlen(topic)},
                       (mqtt_bytes_t){(const uint8_t *)value, (uint32_t)strlen(value)}, 0, 1, NULL, w->now);
    route_publish(w, m, NULL, NULL);
    msg_release(m);
}

/* Publish topic = value if it changed since the last publication (or always). */
static void put(worker_t *w, struct sys_state *st, const char *topic, const char *value, bool always)
{
    struct last *l = NULL;
    for (int i = 0; i < st->n_last; i++)
        if (st->last[i].topic == topic || strcmp(st->last[i].topic, topic) == 0) {
            l = &st->last[i];
            break;
        }
    if (!l && st->n_last < N_LAST) {
        l = &st->last[st->n_last++];
        l->topic = topic;
        l->value[0] = '\0';
        always = true;
    }
    if (!always && l && strcmp(l->value, value) == 0)
        return;
    if (l)
        snprintf(l->value, sizeof(l->value), "%s", value);
    sys_pub(w, topic, value);
}

static void put_u(worker_t *w, struct sys_state *st, const char *topic, unsigned long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", v);
    put(w, st, topic, buf, false);
}

static unsigned long long sum(const worker_t *ws, int n, size_t off)
{
    unsigned long long t = 0;
    for (int i = 0; i < n; i++)
        t += atomic_load_explicit((const atomic_ulong *)((const char *)&ws[i] + off), memory_order_relaxed);
    return t;
}

static void gather(broker_t *b, struct counters *c)
{
    const worker_t *ws = b->workers;
    int n = b->n_workers;
#define SUM(field) sum(ws, n, offsetof(worker_t, field))
    c->v[L_BYTES_IN] = SUM(bytes_in);
    c->v[L_BYTES_OUT] = SUM(bytes_out);
    c->v[L_CONNECTS] = SUM(connects);
    c->v[L_PKTS_IN] = SUM(pkts_in);
    c->v[L_PKTS_OUT] = SUM(pkts_out);
    c->v[L_PUB_DROPPED] = SUM(pub_dropped) + atomic_load_explicit(&b->msgs_dropped, memory_order_relaxed);
    c->v[L_PUB_IN] = SUM(msgs_in);
    c->v[L_PUB_OUT] = SUM(msgs_out);
    c->v[L_SOCKETS] = SUM(sockets);
#undef SUM
    c->connected = 0;
    unsigned long long made = 0, freed = 0, bmade = 0, bfreed = 0;
    for (int i = 0; i < n; i++) {
        c->connected += atomic_load_explicit(&ws[i].clients, memory_order_relaxed);
        made += atomic_load_explicit(&ws[i].msg_stats.made, memory_order_relaxed);
        freed += atomic_load_explicit(&ws[i].msg_stats.freed, memory_order_relaxed);
        bmade += atomic_load_explicit(&ws[i].msg_stats.bytes_made, memory_order_relaxed);
        bfreed += atomic_load_explicit(&ws[i].msg_stats.bytes_freed, memory_order_relaxed);
    }
    const msg_stats_t *sh = msg_stats_shared();
    made += atomic_load_explicit(&sh->made, memory_order_relaxed);
    freed += atomic_load_explicit(&sh->freed, memory_order_relaxed);
    bmade += atomic_load_explicit(&sh->bytes_made, memory_order_relaxed);
    bfreed += atomic_load_explicit(&sh->bytes_freed, memory_order_relaxed);
    /* Counted by different threads at different moments: a freeing may be seen before its making. */
    c->msgs_alive = made > freed ? made - freed : 0;
    c->msg_bytes_alive = bmade > bfreed ? bmade - bfreed : 0;
}

void sys_publish(broker_t *b)
{
    worker_t *w = &b->workers[0];
    struct sys_state *st = b->sys;
    if (!st) {
        st = b->sys = calloc(1, sizeof(*st));
        if (!st)
            return; /* no $SYS this time rather than no broker */
    }
    struct counters c;
    gather(b, &c);
    bool first = st->last_ms == 0;

    /* Load averages. */
    double dt = first ? 0 : (double)(w->now - st->last_ms) / 1000.0;
    for (int k = 0; k < N_LOADS; k++) {
        double rate = dt > 0 ? (double)(c.v[k] - st->count[k]) * 60.0 / dt : 0;
        for (int m = 0; m < 3; m++) {
            double e = dt > 0 ? exp(-dt / (60.0 * load_minutes[m])) : 1.0;
            double now = e * st->load[k][m] + (1.0 - e) * rate;
            if (first || fabs(now - st->load[k][m]) >= 0.01) {
                char topic[80], val[32];
                snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%dmin", load_topic[k], load_minutes[m]);
                snprintf(val, sizeof(val), "%.2f", now);
                sys_pub(w, topic, val);
            }
            st->load[k][m] = now;
        }
        st->count[k] = c.v[k];
    }
    st->last_ms = w->now ? w->now : 1;

    unsigned long long connected = c.connected > 0 ? (unsigned long long)c.connected : 0;
    if (connected > atomic_load(&b->clients_maximum))
        atomic_store(&b->clients_maximum, (unsigned long)connected);
    unsigned long long total = registry_count(b);
    unsigned long long disconnected = total > connected ? total - connected : 0;
    size_t heap = mem_used();

    char buf[64];
    put(w, st, "$SYS/broker/version", "tombo version " TOMBO_VERSION, false);
    snprintf(buf, sizeof(buf), "%lld seconds", (long long)((w->now - b->started_ms) / 1000));
    put(w, st, "$SYS/broker/uptime", buf, true);
    put_u(w, st, "$SYS/broker/clients/connected", connected);
    put_u(w, st, "$SYS/broker/clients/active", connected); /* deprecated name, as Mosquitto */
    put_u(w, st, "$SYS/broker/clients/total", total);
    put_u(w, st, "$SYS/broker/clients/disconnected", disconnected);
    put_u(w, st, "$SYS/broker/clients/inactive", disconnected); /* deprecated name */
    put_u(w, st, "$SYS/broker/clients/maximum", atomic_load(&b->clients_maximum));
    put_u(w, st, "$SYS/broker/clients/expired", atomic_load(&b->clients_expired));
    put_u(w, st, "$SYS/broker/heap/current", heap);
    put_u(w, st, "$SYS/broker/heap/maximum", mem_peak());
    put_u(w, st, "$SYS/broker/messages/received", c.v[L_PKTS_IN]);
    put_u(w, st, "$SYS/broker/messages/sent", c.v[L_PKTS_OUT]);
    put_u(w, st, "$SYS/broker/messages/stored", c.msgs_alive);
    put_u(w, st, "$SYS/broker/store/messages/count", c.msgs_alive);
    put_u(w, st, "$SYS/broker/store/messages/bytes", c.msg_bytes_alive);
    put_u(w, st, "$SYS/broker/publish/messages/received", c.v[L_PUB_IN]);
    put_u(w, st, "$SYS/broker/publish/messages/sent", c.v[L_PUB_OUT]);
    put_u(w, st, "$SYS/broker/publish/messages/dropped", c.v[L_PUB_DROPPED]);
    put_u(w, st, "$SYS/broker/publish/bytes/received", sum(b->workers, b->n_workers, offsetof(worker_t, pub_bytes_in)));
    put_u(w, st, "$SYS/broker/publish/bytes/sent", sum(b->workers, b->n_workers, offsetof(worker_t, pub_bytes_out)));
    put_u(w, st, "$SYS/broker/bytes/received", c.v[L_BYTES_IN]);
    put_u(w, st, "$SYS/broker/bytes/sent", c.v[L_BYTES_OUT]);
    put_u(w, st, "$SYS/broker/subscriptions/count", subtree_count(b->subs));
    put_u(w, st, "$SYS/broker/shared_subscriptions/count", subtree_shared_count(b->subs));
    put_u(w, st, "$SYS/broker/retained messages/count", retain_count(b->retained));
}

void sys_free(broker_t *b)
{
    free(b->sys);
    b->sys = NULL;
}
