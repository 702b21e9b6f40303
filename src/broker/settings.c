/* settings.c -- the reloadable settings' snapshots: built from a configuration, published to the
 * workers, freed once no worker can hold one (see settings.h). */
#include "broker/settings.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/worker.h"

/* A snapshot replaced but perhaps still in use: freed when every worker's turn count has passed
 * the one seen at the swap. */
struct settings_retired {
    struct settings_retired *next;
    settings_t *s;
    uint64_t seen[]; /* each worker's `quiescent` at the swap */
};

static void listener_settings_set(listener_settings_t *d, const struct tombo_listener *l)
{
    d->allow_anonymous = l->allow_anonymous > 0;
    d->allow_zero_length_clientid = l->allow_zero_length_clientid;
    d->auto_id_prefix = xstrdup(l->auto_id_prefix ? l->auto_id_prefix : "auto-");
}

settings_t *settings_new(const struct tombo_config *cfg, const struct tombo_config *boot, const settings_t *prev,
                         bool security)
{
    settings_t *s = xcalloc(1, sizeof(*s));
    s->max_queued_messages = cfg->max_queued_messages;
    s->max_queued_bytes = cfg->max_queued_bytes;
    s->max_inflight_messages = cfg->max_inflight_messages;
    s->max_inflight_bytes = cfg->max_inflight_bytes;
    s->memory_limit = (uint64_t)cfg->memory_limit;
    s->message_size_limit = cfg->message_size_limit;
    s->max_packet_size = cfg->max_packet_size;
    s->max_keepalive = cfg->max_keepalive;
    s->persistent_client_expiration = cfg->persistent_client_expiration;
    s->sys_interval = cfg->sys_interval;
    s->set_tcp_nodelay = cfg->set_tcp_nodelay;
    s->retain_available = cfg->retain_available;
    s->queue_qos0_messages = cfg->queue_qos0_messages;
    s->connection_messages = cfg->connection_messages;
    s->upgrade_outgoing_qos = cfg->upgrade_outgoing_qos;
    s->check_retain_source = cfg->check_retain_source;
    s->clientid_prefixes = cfg->clientid_prefixes ? xstrdup(cfg->clientid_prefixes) : NULL;
    bp_marks_init(&s->bp, cfg->max_queued_messages, cfg->max_queued_bytes);
    s->n_listeners = boot->n_listeners;
    s->l = xcalloc((size_t)boot->n_listeners + 1, sizeof(*s->l));
    for (int i = 0; i < boot->n_listeners; i++) {
        const struct tombo_listener *match = NULL;
        for (int k = 0; security && k < cfg->n_listeners && !match; k++)
            if (config_listener_same(&boot->listeners[i], &cfg->listeners[k]))
                match = &cfg->listeners[k];
        if (match)
            listener_settings_set(&s->l[i], match);
        else if (prev) {
            s->l[i] = prev->l[i];
            s->l[i].auto_id_prefix = xstrdup(prev->l[i].auto_id_prefix);
        } else
            listener_settings_set(&s->l[i], &boot->listeners[i]);
    }
    return s;
}

void settings_free(settings_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_listeners; i++)
        free(s->l[i].auto_id_prefix);
    free(s->l);
    free(s->clientid_prefixes);
    free(s);
}

void settings_publish(broker_t *b, settings_t *s)
{
    settings_t *old = atomic_exchange(&b->settings, s);
    if (!old)
        return;
    if (!b->workers) { /* start-up: nobody reads it yet */
        settings_free(old);
        return;
    }
    struct settings_retired *r = xcalloc(1, sizeof(*r) + (size_t)b->n_workers * sizeof(uint64_t));
    r->s = old;
    for (int i = 0; i < b->n_workers; i++)
        r->seen[i] = atomic_load(&b->workers[i].quiescent);
    r->next = b->retired;
    b->retired = r;
}

void settings_reclaim(broker_t *b)
{
    for (struct settings_retired **p = &b->retired, *r; (r = *p);) {
        bool done = true;
        /* Worker 0 calls this between loop turns: only the others may still hold r->s. */
        for (int i = 1; i < b->n_workers && done; i++)
            done = atomic_load(&b->workers[i].quiescent) != r->seen[i];
        if (!done) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        settings_free(r->s);
        free(r);
    }
}

void settings_free_all(broker_t *b)
{
    while (b->retired) {
        struct settings_retired *r = b->retired;
        b->retired = r->next;
        settings_free(r->s);
        free(r);
    }
    settings_free(atomic_exchange(&b->settings, NULL));
}
