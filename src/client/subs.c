/* subs.c -- the subscriptions a client keeps so that it can subscribe again when the broker lost
 * its session (opts.resubscribe): remembered at SUBSCRIBE, forgotten at UNSUBSCRIBE, sent again
 * after a CONNACK without a session (subs.h). */
#include "subs.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net.h"
#include "props.h"
#include "session.h"

tombo_err_t subs_remember(tombo_client_t *c, const char *filter, const tombo_sub_opts_t *o,
                           const tombo_props_t *props)
{
    subrec_t *s;
    for (s = c->subs; s; s = s->next)
        if (!strcmp(s->filter, filter))
            break;
    tombo_props_t *pc = NULL;
    if (props && c->opts.version == MQTT_V5 && !(pc = props_dup(props)))
        return TOMBO_ERR_NOMEM;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || !(s->filter = strdup(filter))) {
            free(s);
            tombo_props_free(pc);
            return TOMBO_ERR_NOMEM;
        }
        s->next = c->subs;
        c->subs = s;
    }
    tombo_props_free(s->props);
    s->props = pc;
    s->opts = *o;
    return TOMBO_OK;
}

void subs_forget(tombo_client_t *c, const char *filter)
{
    for (subrec_t **pp = &c->subs; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->filter, filter)) {
            subrec_t *s = *pp;
            *pp = s->next;
            free(s->filter);
            tombo_props_free(s->props);
            free(s);
            return;
        }
}

void subs_free(tombo_client_t *c)
{
    subrec_t *s = c->subs;
    while (s) {
        subrec_t *n = s->next;
        free(s->filter);
        tombo_props_free(s->props);
        free(s);
        s = n;
    }
    c->subs = NULL;
}

void subs_resubscribe(tombo_client_t *c)
{
    for (subrec_t *s = c->subs; s; s = s->next) {
        mqtt_sub_t e;
        memset(&e, 0, sizeof(e));
        e.filter.p = (const uint8_t *)s->filter;
        e.filter.len = (uint32_t)strlen(s->filter);
        e.qos = (uint8_t)s->opts.qos;
        e.no_local = s->opts.no_local;
        e.retain_as_published = s->opts.retain_as_published;
        e.retain_handling = (uint8_t)s->opts.retain_handling;
        e.options = (uint8_t)(e.qos | (e.no_local << 2) | (e.retain_as_published << 3) | (e.retain_handling << 4));
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBSCRIBE;
        p.id = session_next_mid(c);
        if (s->props)
            p.props = s->props->mp;
        p.subscribe.count = 1;
        p.subscribe.list = &e;
        client_log(c, TOMBO_LOG_INFO, "re-subscribing to %s", s->filter);
        net_send_packet(c, &p);
    }
}
