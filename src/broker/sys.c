/* sys.c -- $SYS/broker/... statistics, published (retained) every sys_interval seconds by worker 0,
 * with Mosquitto's topic names. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/broker.h"
#include "broker/registry.h"
#include "broker/route.h"
#include "broker/worker.h"

static void sys_pub(worker_t *w, const char *topic, const char *value)
{
    msg_t *m = msg_new((mqtt_bytes_t){(const uint8_t *)topic, (uint32_t)strlen(topic)},
                       (mqtt_bytes_t){(const uint8_t *)value, (uint32_t)strlen(value)}, 0, 1, NULL, w->now);
    route_publish(w, m, NULL, NULL);
    msg_release(m);
}

static void sys_pub_u(worker_t *w, const char *topic, unsigned long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", v);
    sys_pub(w, topic, buf);
}

void sys_publish(broker_t *b)
{
    worker_t *w = &b->workers[0];
    unsigned long long in = 0, out = 0, bin = 0, bout = 0, dropped = 0;
    long long connected = 0;
    for (int i = 0; i < b->n_workers; i++) {
        worker_t *x = &b->workers[i];
        in += atomic_load_explicit(&x->msgs_in, memory_order_relaxed);
        out += atomic_load_explicit(&x->msgs_out, memory_order_relaxed);
        bin += atomic_load_explicit(&x->bytes_in, memory_order_relaxed);
        bout += atomic_load_explicit(&x->bytes_out, memory_order_relaxed);
        dropped += atomic_load_explicit(&x->pub_dropped, memory_order_relaxed);
        connected += atomic_load_explicit(&x->clients, memory_order_relaxed);
    }
    dropped += atomic_load_explicit(&b->msgs_dropped, memory_order_relaxed);
    unsigned long long total = registry_count(b);
    unsigned long max = atomic_load(&b->clients_maximum);
    if ((unsigned long long)connected > max)
        atomic_store(&b->clients_maximum, (unsigned long)connected);
    char buf[64];
    sys_pub(w, "$SYS/broker/version", "tombo version " TOMBO_VERSION);
    snprintf(buf, sizeof(buf), "%lld seconds", (long long)((w->now - b->started_ms) / 1000));
    sys_pub(w, "$SYS/broker/uptime", buf);
    sys_pub_u(w, "$SYS/broker/clients/connected", (unsigned long long)connected);
    sys_pub_u(w, "$SYS/broker/clients/active", (unsigned long long)connected);
    sys_pub_u(w, "$SYS/broker/clients/total", total);
    sys_pub_u(w, "$SYS/broker/clients/disconnected", total > (unsigned long long)connected ? total - (unsigned long long)connected : 0);
    sys_pub_u(w, "$SYS/broker/clients/maximum", atomic_load(&b->clients_maximum));
    sys_pub_u(w, "$SYS/broker/messages/received", in);
    sys_pub_u(w, "$SYS/broker/messages/sent", out);
    sys_pub_u(w, "$SYS/broker/publish/messages/received", in);
    sys_pub_u(w, "$SYS/broker/publish/messages/sent", out);
    sys_pub_u(w, "$SYS/broker/publish/messages/dropped", dropped);
    sys_pub_u(w, "$SYS/broker/bytes/received", bin);
    sys_pub_u(w, "$SYS/broker/bytes/sent", bout);
    sys_pub_u(w, "$SYS/broker/subscriptions/count", subtree_count(b->subs));
    sys_pub_u(w, "$SYS/broker/retained messages/count", retain_count(b->retained));
}
