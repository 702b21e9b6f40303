/* sys.c -- the $SYS/broker/... topics, Mosquitto 2.0's 53 with their names, payload formats and
 * meaning, published (retained, QoS 0) by worker 0: all of them at start, then every sys_interval
 * seconds those whose value changed (uptime always), as Mosquitto does.
 *
 * Sources: one snapshot of stats.h (the same the HTTP endpoint's /metrics reads) and the broker's
 * heap accounting (mem.h: what its allocators hold, the same count memory_limit is checked against;
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
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/stats.h"
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

/* The load-average sources of a snapshot (stats.h: one source for $SYS and /metrics). */
static void load_counts(const stats_t *s, unsigned long long v[N_LOADS])
{
    v[L_BYTES_IN] = s->bytes_in;
    v[L_BYTES_OUT] = s->bytes_out;
    v[L_CONNECTS] = s->connects;
    v[L_PKTS_IN] = s->pkts_in;
    v[L_PKTS_OUT] = s->pkts_out;
    v[L_PUB_DROPPED] = s->pub_dropped;
    v[L_PUB_IN] = s->pub_in_total;
    v[L_PUB_OUT] = s->pub_out_total;
    v[L_SOCKETS] = s->sockets;
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
    stats_t s;
    stats_gather(b, &s);
    unsigned long long v[N_LOADS];
    load_counts(&s, v);
    bool first = st->last_ms == 0;

    /* Load averages. */
    double dt = first ? 0 : (double)(w->now - st->last_ms) / 1000.0;
    for (int k = 0; k < N_LOADS; k++) {
        double rate = dt > 0 ? (double)(v[k] - st->count[k]) * 60.0 / dt : 0;
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
        st->count[k] = v[k];
    }
    st->last_ms = w->now ? w->now : 1;

    unsigned long long connected = s.clients_connected;
    unsigned long long total = s.sessions;
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
    put_u(w, st, "$SYS/broker/clients/maximum", s.clients_maximum);
    put_u(w, st, "$SYS/broker/clients/expired", s.clients_expired);
    put_u(w, st, "$SYS/broker/heap/current", heap);
    put_u(w, st, "$SYS/broker/heap/maximum", mem_peak());
    put_u(w, st, "$SYS/broker/messages/received", s.pkts_in);
    put_u(w, st, "$SYS/broker/messages/sent", s.pkts_out);
    put_u(w, st, "$SYS/broker/messages/stored", s.msgs_alive);
    put_u(w, st, "$SYS/broker/store/messages/count", s.msgs_alive);
    put_u(w, st, "$SYS/broker/store/messages/bytes", s.msg_bytes_alive);
    put_u(w, st, "$SYS/broker/publish/messages/received", s.pub_in_total);
    put_u(w, st, "$SYS/broker/publish/messages/sent", s.pub_out_total);
    put_u(w, st, "$SYS/broker/publish/messages/dropped", s.pub_dropped);
    put_u(w, st, "$SYS/broker/publish/bytes/received", s.pub_bytes_in);
    put_u(w, st, "$SYS/broker/publish/bytes/sent", s.pub_bytes_out);
    put_u(w, st, "$SYS/broker/bytes/received", s.bytes_in);
    put_u(w, st, "$SYS/broker/bytes/sent", s.bytes_out);
    put_u(w, st, "$SYS/broker/subscriptions/count", s.subscriptions);
    put_u(w, st, "$SYS/broker/shared_subscriptions/count", s.shared_subscriptions);
    put_u(w, st, "$SYS/broker/retained messages/count", s.retained);
    if (b->cluster) { /* tombo's own: docs/cluster.md */
        cluster_stats_t cs;
        cluster_stats(b->cluster, &cs);
        put(w, st, "$SYS/broker/cluster/node", cs.node, false);
        put(w, st, "$SYS/broker/cluster/link", cs.link_up ? "up" : "down", false);
        put_u(w, st, "$SYS/broker/cluster/nodes", cs.nodes);
        put_u(w, st, "$SYS/broker/cluster/forwarded/sent", cs.fwd_sent);
        put_u(w, st, "$SYS/broker/cluster/forwarded/received", cs.fwd_received);
        put_u(w, st, "$SYS/broker/cluster/forwarded/bytes/sent", cs.fwd_bytes_sent);
        put_u(w, st, "$SYS/broker/cluster/forwarded/bytes/received", cs.fwd_bytes_received);
        put_u(w, st, "$SYS/broker/cluster/bucket_errors", cs.kv_errors);
    }
    if (b->cluster_js) { /* cluster_durability jetstream */
        cluster_js_stats_t js;
        cluster_js_stats(b->cluster_js, &js);
        put_u(w, st, "$SYS/broker/cluster/durable/sent", js.sent);
        put_u(w, st, "$SYS/broker/cluster/durable/acked", js.acked);
        put_u(w, st, "$SYS/broker/cluster/durable/refused", js.refused);
        put_u(w, st, "$SYS/broker/cluster/durable/received", js.received);
        put_u(w, st, "$SYS/broker/cluster/durable/duplicates", js.duplicates);
    }
    stats_done(&s);
}

void sys_free(broker_t *b)
{
    free(b->sys);
    b->sys = NULL;
}
