/* fixture.c -- the hand-built broker of the broker unit tests (see fixture.h). */
#include "fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/slab.h"
#include "broker/backpressure.h"
#include "broker/registry.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/store.h"
#include "broker/trace.h"
#include "broker/worker.h"

static void hold_session(void *s) { session_hold(s); }
static void hold_msg(void *m) { msg_hold(m); }
static void release_msg(void *m) { msg_release(m); }
static void retained_changed(void *st, const uint8_t *topic, size_t n, void *m, const retain_src_t *src)
{
    store_retain(st, topic, n, m, src);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fixture: %s: %s\n", what, err);
    exit(1);
}

broker_t *fixture_broker_new(void)
{
    broker_t *b = calloc(1, sizeof(*b));
    if (!b)
        die("calloc", "out of memory");
    config_init(&b->cfg);
    return b;
}

void fixture_broker_start(broker_t *b, int n_workers, const char *store_path)
{
    char err[512];
    pthread_mutex_init(&b->reg_lock, NULL);
    timers_init(&b->timers);
    b->reg = registry_new();
    b->trace = trace_new();
    settings_publish(b, settings_new(&b->cfg, &b->cfg, NULL, true));
    b->subs = subtree_new(hold_session);
    b->retained = retain_new(hold_msg, release_msg);
    b->auth = calloc(1, sizeof(*b->auth));
    b->n_workers = n_workers;
    b->workers = calloc((size_t)n_workers, sizeof(worker_t));
    for (int i = 0; i < n_workers; i++)
        if (worker_init(&b->workers[i], b, i, err, sizeof(err)) != 0)
            die("worker_init", err);
    slab_thread_attach(b->workers[0].pool); /* this thread plays worker 0 */
    if (!store_path)
        return;
    b->store = store_open(store_path, err, sizeof(err));
    if (!b->store)
        die("store_open", err);
    if (store_load(b->store, b, err, sizeof(err)) != 0)
        die("store_load", err);
    retain_observe(b->retained, retained_changed, b->store);
}

void fixture_broker_free(broker_t *b)
{
    slab_thread_attach(NULL);
    broker_free(b); /* stops the store first: the teardown records nothing */
    config_free(&b->cfg);
    free(b);
}

void fixture_conn(conn_t *c, worker_t *w, uint64_t id, uint8_t version)
{
    static const struct tombo_listener plain = {.port = 1883, .max_qos = 2, .max_connections = -1};
    memset(c, 0, sizeof(*c));
    c->l = &plain; /* a plain listener: no mount_point, no limits (conn_out.c reads it) */
    c->fd = -1;
    c->id = id;
    c->w = w;
    c->l = &w->b->cfg.default_listener; /* its settings (mount_point...) are read on the output path */
    c->state = CONN_ACTIVE;
    c->version = version;
}
