/* cluster_watch.c -- the bucket watchers of a cluster node: a thread per key-value bucket applies
 * its changes (routes into `remote`, retained messages to worker 0, client ids that connected
 * elsewhere), and watches anew when its NATS server is gone (design note in cluster.c). */
#include "broker/cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/inbox.h"
#include "broker/registry.h"
#include "broker/worker.h"

/* ---- what a bucket's changes do ---- */

static void on_route(cluster_t *c, kvEntry *e)
{
    const char *k = kvEntry_Key(e);
    const char *dot = strchr(k, '.');
    size_t nl = dot ? (size_t)(dot - k) : strlen(k);
    if (nl == c->node_len && !memcmp(k, c->node, nl))
        return; /* our own */
    bool put = kvEntry_Operation(e) == kvOp_Put;
    cnode_t *x = cluster_node_get(c, k, nl);
    if (!x)
        return;
    if (!dot) {
        pthread_mutex_lock(&c->nodes_lock);
        x->present = put;
        atomic_store(&x->durable, put && kvEntry_ValueLen(e) == 1 && *(const char *)kvEntry_Value(e) == 'j');
        pthread_mutex_unlock(&c->nodes_lock);
        return;
    }
    size_t fl = strlen(dot + 1);
    uint8_t *f = xmalloc(fl + 1);
    long n = cluster_b64_decode(dot + 1, fl, f);
    if (n > 0) {
        if (put ? subtree_add(c->remote, f, (size_t)n, x, 0, 0) == 0 : subtree_remove(c->remote, f, (size_t)n, x))
            atomic_fetch_add(&c->n_remote, put ? 1 : -1);
    }
    free(f);
}

/* A retained message or its removal: to worker 0, which owns no more of the store than any other
 * but keeps the bucket's order. */
static void on_retain(cluster_t *c, kvEntry *e)
{
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_RETAIN, .data = e};
    worker_post(&c->b->workers[0], &it);
}

void cluster_kick_if_older(cluster_t *c, session_t *s, uint64_t rev, const char *other)
{
    broker_t *b = c->b;
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_KICK};
    int w;
    if (session_cluster_kick_target(s, rev, b->n_workers, &w, &it.fd, &it.conn_id)) {
        log_printf(TLOG_NOTICE, "Client %.*s connected on cluster node %s: disconnecting it here.",
                   (int)s->client_id_len, s->client_id, other);
        worker_post(&b->workers[w], &it);
    }
    cluster_lost(c, s, rev);
}

static void on_client(cluster_t *c, kvEntry *e)
{
    if (kvEntry_Operation(e) != kvOp_Put)
        return;
    const char *v = kvEntry_ValueString(e);
    if (!v || !strcmp(v, c->node))
        return;
    const char *k = kvEntry_Key(e);
    size_t kl = strlen(k);
    uint8_t *id = xmalloc(kl + 1);
    long n = cluster_b64_decode(k, kl, id);
    session_t *s = n > 0 ? registry_find(c->b, (const char *)id, (size_t)n) : NULL;
    free(id);
    if (!s)
        return;
    uint64_t rev = kvEntry_Revision(e);
    if (session_cluster_foreign(s, rev))
        cluster_kick_if_older(c, s, rev, v);
    session_release(s);
}

/* ---- watchers that outlive a NATS server ----
 *
 * A bucket watcher is an ordered JetStream consumer, in memory on one NATS server. When that server
 * dies, nats.c recreates the consumer on reconnect or after missed heartbeats, but a try made while
 * the NATS cluster elects new leaders fails and the next waits for the next heartbeat (tens of
 * seconds measured, and sometimes none came). So each watcher thread checks every WATCH_CHECK_MS
 * that it is not behind its bucket (the stream's last sequence against the last revision it
 * delivered) and, behind twice in a row with nothing delivered in between, watches the bucket anew:
 * the new watcher delivers every key's last value or deletion, which the handlers apply again
 * (adding a route or setting a retained message twice changes nothing; a client id's revision
 * decides whether to disconnect). */

#define WATCH_CHECK_MS 1000
#define WATCH_RENEW_WAIT_MS 2000 /* a try while JetStream elects its leaders does not wait 5 s */

/* The buckets again, through a JetStream context whose requests wait less, for watch_renew. */
natsStatus cluster_watch_init(cluster_t *c)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = WATCH_RENEW_WAIT_MS;
    natsStatus s = natsConnection_JetStream(&c->js_renew, c->nc, &o);
    for (int i = 0; s == NATS_OK && i < N_BUCKETS; i++)
        s = js_KeyValue(&c->kv_renew[i], c->js_renew, cluster_bucket_name[i]);
    return s;
}

/* The last sequence of a bucket's stream, 0 when NATS does not answer. */
static uint64_t stream_last_seq(cluster_t *c, int bucket)
{
    char stream[64];
    snprintf(stream, sizeof(stream), "KV_%s", cluster_bucket_name[bucket]);
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, c->js_renew, stream, NULL, NULL) != NATS_OK)
        return 0;
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return last;
}

/* Watcher thread: whether wt's watcher has stopped delivering what its bucket has (see above). */
static bool watch_stalled(watch_t *wt)
{
    int64_t now = now_ms();
    if (now - wt->check_at < WATCH_CHECK_MS || atomic_load(&wt->c->b->stop) || !atomic_load(&wt->c->link_up))
        return false; /* stopping: the workers no longer take what a new watcher would deliver;
                       * NATS unreachable: a request would only wait out its timeout */
    wt->check_at = now;
    uint64_t last = stream_last_seq(wt->c, wt->bucket);
    if (!last)
        return false; /* NATS unreachable or electing: next time */
    bool behind = last > wt->rev;
    bool stalled = behind && wt->behind && wt->check_rev == wt->rev;
    wt->behind = behind && !stalled;
    wt->check_rev = wt->rev;
    return stalled;
}

/* Watcher thread: replace wt's watcher with a new one, trying until it works or the cluster stops.
 * Returns false when stopping. */
static bool watch_renew(watch_t *wt)
{
    cluster_t *c = wt->c;
    log_printf(TLOG_WARNING, "Warning: cluster: the watch of bucket %s stalled (its NATS server gone?); "
                             "watching it anew.", cluster_bucket_name[wt->bucket]);
    for (;;) {
        pthread_mutex_lock(&wt->mu);
        if (atomic_load(&c->stopping)) {
            pthread_mutex_unlock(&wt->mu);
            return false;
        }
        if (!atomic_load(&c->link_up)) { /* nats.c is reconnecting: try once it is back */
            pthread_mutex_unlock(&wt->mu);
            usleep(200 * 1000);
            continue;
        }
        kvWatcher *w = NULL;
        uint64_t base = stream_last_seq(c, wt->bucket);
        natsStatus s = kvStore_WatchAll(&w, c->kv_renew[wt->bucket], NULL);
        if (s == NATS_OK) {
            kvWatcher_Stop(wt->w);
            kvWatcher_Destroy(wt->w);
            wt->w = w;
            wt->base = base;
            wt->behind = false;
        }
        pthread_mutex_unlock(&wt->mu);
        if (s == NATS_OK)
            return true;
        usleep(500 * 1000);
    }
}

static void *watch_main(void *arg)
{
    watch_t *wt = arg;
    cluster_t *c = wt->c;
    bool initial = true; /* the bucket's state at start, until a NULL entry */
    wt->check_at = now_ms();
    for (;;) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, wt->w, 1000);
        if (s == NATS_TIMEOUT || (s == NATS_OK && !e)) {
            if (s == NATS_OK) { /* the bucket's state is delivered: what came before base is in it,
                                 * or was purged (a last sequence no entry will ever reach) */
                initial = false;
                if (wt->base > wt->rev)
                    wt->rev = wt->base;
            }
            if (watch_stalled(wt) && !watch_renew(wt))
                break;
            continue;
        }
        if (s != NATS_OK)
            break; /* kvWatcher_Stop */
        if (kvEntry_Revision(e) > wt->rev)
            wt->rev = kvEntry_Revision(e);
        if (wt->bucket == B_ROUTES) {
            on_route(c, e);
        } else if (wt->bucket == B_RETAIN) {
            on_retain(c, e);
            continue; /* the worker destroys it */
        } else if (!initial) { /* old owners of client ids kicked nobody here: we just started */
            on_client(c, e);
        }
        kvEntry_Destroy(e);
    }
    return NULL;
}

natsStatus cluster_watch_start(cluster_t *c, const char **what)
{
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        wt->c = c;
        wt->bucket = i;
        pthread_mutex_init(&wt->mu, NULL);
        wt->base = stream_last_seq(c, i);
        natsStatus s = kvStore_WatchAll(&wt->w, c->kv[i], NULL);
        if (s != NATS_OK) {
            *what = "cannot watch a bucket";
            return s;
        }
        if (pthread_create(&wt->thread, NULL, watch_main, wt) != 0) {
            *what = "cannot start a watcher thread";
            return NATS_NO_MEMORY;
        }
        wt->started = true;
    }
    return NATS_OK;
}

void cluster_watch_stop(cluster_t *c)
{
    for (int i = 0; i < N_BUCKETS; i++) {
        watch_t *wt = &c->watch[i];
        if (!wt->c)
            continue; /* cluster_start did not get this far */
        pthread_mutex_lock(&wt->mu); /* stopping is set: watch_renew makes no new one */
        if (wt->w)
            kvWatcher_Stop(wt->w);
        pthread_mutex_unlock(&wt->mu);
        if (wt->started)
            pthread_join(wt->thread, NULL);
        kvWatcher_Destroy(wt->w);
        pthread_mutex_destroy(&wt->mu);
    }
}
