/* stats.c -- one snapshot of the broker's statistics for $SYS (sys.c) and the HTTP endpoint
 * (api.c): see stats.h. */
#include "broker/stats.h"

#include <stddef.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/registry.h"
#include "broker/store.h"
#include "broker/worker.h"

static uint64_t ld(const atomic_ulong *c) { return atomic_load_explicit(c, memory_order_relaxed); }

void stats_gather(broker_t *b, stats_t *s)
{
    *s = (stats_t){0};
    int n = b->n_workers;
    s->n_workers = n;
    s->workers = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*s->workers));
    uint64_t made = 0, freed = 0, bmade = 0, bfreed = 0;
    long long connected = 0;
    for (int i = 0; i < n; i++) {
        const worker_t *w = &b->workers[i];
        s->bytes_in += ld(&w->bytes_in);
        s->bytes_out += ld(&w->bytes_out);
        s->pkts_in += ld(&w->pkts_in);
        s->pkts_out += ld(&w->pkts_out);
        for (int q = 0; q < 3; q++) {
            s->pub_in[q] += ld(&w->msgs_in[q]);
            s->pub_out[q] += ld(&w->msgs_out[q]);
        }
        s->pub_bytes_in += ld(&w->pub_bytes_in);
        s->pub_bytes_out += ld(&w->pub_bytes_out);
        s->pub_dropped += ld(&w->pub_dropped);
        s->sockets += ld(&w->sockets);
        s->connects += ld(&w->connects);
        long cl = atomic_load_explicit(&w->clients, memory_order_relaxed);
        connected += cl;
        s->workers[i].clients = cl > 0 ? (uint64_t)cl : 0;
        s->workers[i].turns = ld(&w->loop_turns);
        s->workers[i].busy_ns = ld(&w->loop_busy_ns);
        made += ld(&w->msg_stats.made);
        freed += ld(&w->msg_stats.freed);
        bmade += ld(&w->msg_stats.bytes_made);
        bfreed += ld(&w->msg_stats.bytes_freed);
    }
    const msg_stats_t *sh = msg_stats_shared();
    made += ld(&sh->made);
    freed += ld(&sh->freed);
    bmade += ld(&sh->bytes_made);
    bfreed += ld(&sh->bytes_freed);
    /* Counted by different threads at different moments: a freeing may be seen before its making. */
    s->msgs_alive = made > freed ? made - freed : 0;
    s->msg_bytes_alive = bmade > bfreed ? bmade - bfreed : 0;
    for (int q = 0; q < 3; q++) {
        s->pub_in_total += s->pub_in[q];
        s->pub_out_total += s->pub_out[q];
    }
    s->pub_dropped += ld(&b->msgs_dropped);
    s->clients_connected = connected > 0 ? (uint64_t)connected : 0;
    /* The highest count seen by any reader, $SYS or /metrics alike. */
    unsigned long max = atomic_load(&b->clients_maximum);
    while (s->clients_connected > max &&
           !atomic_compare_exchange_weak(&b->clients_maximum, &max, (unsigned long)s->clients_connected))
        ;
    s->clients_maximum = ld(&b->clients_maximum);
    s->clients_expired = ld(&b->clients_expired);
    s->sessions = registry_count(b);
    s->subscriptions = subtree_count(b->subs);
    s->shared_subscriptions = subtree_shared_count(b->subs);
    s->retained = retain_count(b->retained);
    if (b->store) {
        s->persistence = true;
        store_commit_hist(b->store, &s->commit);
    }
    int64_t up = now_ms() - b->started_ms;
    s->uptime_s = up > 0 ? (uint64_t)up / 1000 : 0;
}

void stats_done(stats_t *s)
{
    free(s->workers);
    s->workers = NULL;
}
