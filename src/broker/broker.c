/* broker.c -- the broker's lifetime: configuration to running workers and back (shared stores,
 * listening sockets, authentication, persistence), and SIGHUP's reload. */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/plugin.h"
#include "broker/bridge.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/cluster_sess.h"
#include "broker/httpd.h"
#include "broker/log.h"
#include "broker/listener.h"
#include "broker/log_topic.h"
#include "broker/registry.h"
#include "broker/store.h"
#include "broker/trace.h"
#include "broker/transport.h"
#include "broker/worker.h"

static void hold_session(void *s) { session_hold(s); }
static void hold_msg(void *m) { msg_hold(m); }
static void release_msg(void *m) { msg_release(m); }
static void retained_changed(void *st, const uint8_t *topic, size_t n, void *m, const retain_src_t *src)
{
    store_retain(st, topic, n, m, src);
}

/* Persistence: open the database, restore what it holds, and journal changes from now on. */
static int open_store(broker_t *b)
{
    char path[4096], err[4352];
    if (config_persistence_path(&b->cfg, path, sizeof(path)) != 0) {
        log_printf(TLOG_ERR, "Error: the persistence database path is too long.");
        return -1;
    }
    b->store = store_open(path, err, sizeof(err));
    if (!b->store || store_load(b->store, b, err, sizeof(err)) != 0) {
        log_printf(TLOG_ERR, "Error: %s.", err);
        return -1;
    }
    retain_observe(b->retained, retained_changed, b->store);
    log_printf(TLOG_NOTICE, "Persistence: %s (each acknowledged message is committed first).", path);
    return 0;
}

int broker_init(broker_t *b)
{
    b->started_ms = now_ms();
    b->started_wall = time(NULL);
    log_topic_start(b); /* first: the start-up lines wait for worker 0 too */
    pthread_mutex_init(&b->reg_lock, NULL);
    timers_init(&b->timers);
    b->reg = registry_new();
    b->trace = trace_new();
    settings_publish(b, settings_new(&b->cfg, &b->cfg, NULL, true));
    b->subs = subtree_new(hold_session);
    b->retained = retain_new(hold_msg, release_msg);
    if (!b->subs || !b->retained)
        return -1;
    b->n_workers = b->cfg.threads > 0 ? b->cfg.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (b->n_workers < 1)
        b->n_workers = 1;
    char err[256];
    {
        char aerr[512];
        b->auth = xcalloc((size_t)b->cfg.n_listeners + 1, sizeof(*b->auth));
        plugin_broker_attach(b); /* what plugins publish and kick acts on this broker */
        for (int i = 0; i < b->cfg.n_listeners; i++) {
            struct tombo_listener *l = &b->cfg.listeners[i];
            if (i > 0 && !b->cfg.per_listener_settings) {
                b->auth[i] = b->auth[0];
                continue;
            }
            b->auth[i] = auth_load(l->password_file, l->acl_file, aerr, sizeof(aerr));
            if (!b->auth[i]) {
                log_printf(TLOG_ERR, "Error: %s", aerr);
                return -1;
            }
            for (int k = 0; auth_warning(b->auth[i], k); k++)
                log_printf(TLOG_WARNING, "Warning: %s", auth_warning(b->auth[i], k));
            /* Mosquitto plugins: the broker's, or this listener's with per_listener_settings. */
            const struct tombo_plugin_conf *pc = b->cfg.per_listener_settings ? l->plugins : b->cfg.plugins;
            int npc = b->cfg.per_listener_settings ? l->n_plugins : b->cfg.n_plugins;
            if (npc > 0) {
                struct plugin_set *ps = plugin_set_load(pc, npc, aerr, sizeof(aerr));
                if (!ps) {
                    log_printf(TLOG_ERR, "Error: %s", aerr);
                    return -1;
                }
                auth_set_plugins(b->auth[i], ps);
            }
        }
    }
    if (tls_listeners_init(b) != 0)
        return -1;
    /* Before the store's recovery subscribes sessions: the cluster announces every filter. */
    if (b->cfg.cluster_node && cluster_init(b) != 0)
        return -1;
    if (b->cfg.persistence && open_store(b) != 0)
        return -1;
    if (b->cluster_js && cluster_js_recovered(b) != 0) /* redeliveries of what it routed before */
        return -1;
    if (b->cluster_sess) /* sessions another node took while this one was down stay there */
        cluster_sess_recovered(b);
    /* Before the MQTT listeners: once a client can connect, the endpoint answers too. */
    if (httpd_open(b) != 0)
        return -1;
    b->listen_fds = xmalloc(((size_t)b->cfg.n_listeners + 1) * sizeof(int));
    b->listen_clients = xcalloc((size_t)b->cfg.n_listeners + 1, sizeof(*b->listen_clients));
    for (int i = 0; i <= b->cfg.n_listeners; i++) {
        b->listen_fds[i] = -1;
        atomic_init(&b->listen_clients[i], 0);
    }
    for (int i = 0; i < b->cfg.n_listeners; i++) {
        struct tombo_listener *l = &b->cfg.listeners[i];
        b->listen_fds[i] = listener_open(l, err, sizeof(err));
        if (b->listen_fds[i] < 0 && !l->optional) {
            log_printf(TLOG_ERR, "Error: %s", err);
            b->n_workers = 0;
            return -1; /* broker_free closes the ones opened */
        }
    }
    b->workers = xcalloc((size_t)b->n_workers, sizeof(worker_t));
    for (int i = 0; i < b->n_workers; i++) {
        if (worker_init(&b->workers[i], b, i, err, sizeof(err)) < 0) {
            log_printf(TLOG_ERR, "Error: %s", err);
            b->n_workers = i + 1; /* broker_free frees what was set up */
            return -1;
        }
    }
    if (bridges_init(b) != 0)
        return -1;
    for (int i = 0; i < b->cfg.n_listeners; i++) {
        struct tombo_listener *l = &b->cfg.listeners[i];
        if (b->listen_fds[i] >= 0) {
            char what[300];
            listener_describe(l, what, sizeof(what));
            log_printf(TLOG_NOTICE, "Opening %s%s%s.", l->websockets ? "websockets " : "", what,
                       tombo_listener_tls(l) ? " (TLS)" : "");
        }
    }
    return 0;
}

int broker_run(broker_t *b)
{
    log_printf(TLOG_NOTICE, "tombo version %s running with %d worker thread%s.", TOMBO_VERSION, b->n_workers,
               b->n_workers == 1 ? "" : "s");
    if (b->store && store_start(b->store, b) != 0) {
        log_printf(TLOG_ERR, "Error: cannot start the persistence thread.");
        return -1;
    }
    bool passwords = false;
    for (int i = 0; i < b->cfg.n_listeners; i++)
        passwords |= auth_has_password_file(b->auth[i]) || plugin_set_has_basic_auth(auth_plugins(b->auth[i])) ||
                     plugin_set_has_control(auth_plugins(b->auth[i])) ||
                     plugin_set_has_disconnect(auth_plugins(b->auth[i]));
    if (passwords) { /* else a reload may start it later (reload.c) */
        struct authq *q = authq_start(b, 1);
        if (!q) {
            log_printf(TLOG_ERR, "Error: cannot start the authentication thread.");
            return -1;
        }
        atomic_store(&b->authq, q);
    }
    if (b->cluster && cluster_start(b) != 0)
        return -1;
    for (int i = 0; i < b->n_workers; i++) {
        if (worker_start(&b->workers[i]) != 0) {
            log_printf(TLOG_ERR, "Error: cannot start worker thread %d.", i);
            atomic_store(&b->stop, 1);
            for (int k = 0; k < i; k++)
                pthread_join(b->workers[k].thread, NULL);
            return -1;
        }
    }
    if (httpd_start(b) != 0)
        log_printf(TLOG_ERR, "Error: cannot start the HTTP endpoint's thread; the broker runs without it.");
    for (int i = 0; i < b->n_workers; i++)
        pthread_join(b->workers[i].thread, NULL);
    httpd_stop(b); /* it reads the workers' statistics: stopped while they exist */
    log_printf(TLOG_NOTICE, "tombo version %s terminating", TOMBO_VERSION);
    return 0;
}

void broker_free(broker_t *b)
{
    /* The store writes what the workers left it, then records nothing more: tearing down the
     * in-memory state below must not erase the durable one. */
    store_stop(b->store);
    httpd_stop(b); /* when start-up failed after it opened */
    authq_stop(b->authq); /* it posts to the workers' inboxes: stopped before they are freed */
    cluster_stop(b);      /* the same */
    for (int i = 0; b->workers && i < b->n_workers; i++) /* none if start-up failed before them */
        worker_free(&b->workers[i]);
    bridges_free(b);
    plugin_broker_detach(); /* no worker drains plugins' messages any more */
    for (int i = 0; b->listen_fds && i < b->cfg.n_listeners; i++)
        if (b->listen_fds[i] >= 0) {
            close(b->listen_fds[i]);
            listener_cleanup(&b->cfg.listeners[i]);
        }
    free(b->listen_fds);
    free(b->listen_clients);
    tls_listeners_free(b);
    for (int i = 0; b->auth && i < b->cfg.n_listeners; i++)
        if (i == 0 || b->cfg.per_listener_settings)
            auth_free(b->auth[i]);
    free(b->auth);
    timers_free(&b->timers);
    sys_free(b);
    settings_free_all(b);
    registry_free(b);
    subtree_free(b->subs);
    retain_free(b->retained);
    store_free(b->store);
    /* Last: the messages released above went back to their workers' pools. */
    for (int i = 0; b->workers && i < b->n_workers; i++)
        slab_pool_free(b->workers[i].pool);
    free(b->workers);
    trace_free(b->trace);
    log_topic_stop(b); /* every thread that logs has stopped */
    pthread_mutex_destroy(&b->reg_lock);
}
