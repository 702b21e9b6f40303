/* scenarios.c -- who publishes where and who listens to what, for each mode:
 *   conn    N clients that only hold a connection
 *   pub     N publishers, publisher i to topic(i)
 *   sub     N subscribers, subscriber i on topic(i) (or -F filter)
 *   pairs   N publishers and N subscribers, subscriber i hears exactly publisher i
 *   fanin   N publishers to topic(i), S subscribers (1) on topic(+), each hears all
 *   fanout  P publishers (1) to topic(i), N subscribers on topic(0) (topic(+) when P > 1)
 * Subscribers are clients 0..S-1 so they connect first; publishers follow. */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"conn", "pub", "sub", "pairs", "fanin", "fanout"};

const char *mode_name(enum bench_mode m)
{
    return mode_names[m];
}

int mode_parse(const char *s, enum bench_mode *m)
{
    for (int i = 0; i < (int)(sizeof(mode_names) / sizeof(mode_names[0])); i++)
        if (!strcmp(s, mode_names[i])) {
            *m = (enum bench_mode)i;
            return 0;
        }
    if (!strcmp(s, "fan-in"))
        return *m = MODE_FANIN, 0;
    if (!strcmp(s, "fan-out"))
        return *m = MODE_FANOUT, 0;
    return -1;
}

/* Expand the template: every %i becomes `val`. Caller frees. */
static char *topic_expand(const char *tmpl, const char *val)
{
    size_t n = strlen(tmpl), vn = strlen(val), cnt = 0;
    for (const char *p = tmpl; (p = strstr(p, "%i")); p += 2)
        cnt++;
    char *out = malloc(n + cnt * vn + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '%' && p[1] == 'i') {
            memcpy(o, val, vn);
            o += vn;
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static char *topic_index(const char *tmpl, uint32_t i)
{
    char num[16];
    snprintf(num, sizeof(num), "%u", i);
    return topic_expand(tmpl, num);
}

int scenario_setup(bench_run_t *r)
{
    bench_cfg_t *c = &r->cfg;
    uint32_t n = c->clients ? c->clients : 10;
    switch (c->mode) {
    case MODE_CONN:
        c->idle = n, c->pubs = 0, c->subs = 0;
        break;
    case MODE_PUB:
        c->pubs = c->pubs ? c->pubs : n, c->subs = 0;
        break;
    case MODE_SUB:
        c->subs = c->subs ? c->subs : n, c->pubs = 0;
        break;
    case MODE_PAIRS:
        if (!c->pubs)
            c->pubs = c->subs ? c->subs : n;
        if (!c->subs)
            c->subs = c->pubs;
        if (c->pubs != c->subs) {
            fprintf(stderr, "tombo-bench: pairs needs as many publishers as subscribers\n");
            return -1;
        }
        break;
    case MODE_FANIN:
        c->pubs = c->pubs ? c->pubs : n;
        c->subs = c->subs ? c->subs : 1;
        break;
    case MODE_FANOUT:
        c->pubs = c->pubs ? c->pubs : 1;
        c->subs = c->subs ? c->subs : n;
        break;
    }
    r->nclients = c->idle + c->pubs + c->subs;
    if (!r->nclients) {
        fprintf(stderr, "tombo-bench: no clients\n");
        return -1;
    }
    return 0;
}

int scenario_client(bench_run_t *r, uint32_t idx, conn_t *c)
{
    const bench_cfg_t *cfg = &r->cfg;
    c->role = ROLE_IDLE;
    if (cfg->mode == MODE_CONN)
        return 0;
    if (idx < cfg->subs) {
        sub_state_t *s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        c->role = ROLE_SUB;
        c->sub = s;
        s->expect_one = UINT32_MAX;
        if (cfg->filter)
            s->filter = topic_index(cfg->filter, idx);
        else if (cfg->mode == MODE_FANIN || (cfg->mode == MODE_FANOUT && cfg->pubs > 1))
            s->filter = topic_expand(cfg->topic, "+");
        else if (cfg->mode == MODE_FANOUT)
            s->filter = topic_index(cfg->topic, 0);
        else
            s->filter = topic_index(cfg->topic, idx);
        if (cfg->mode == MODE_PAIRS)
            s->expect_one = idx;
        if (cfg->qos == 2 && !(s->rel_ids = calloc(1024, sizeof(uint64_t))))
            return -1;
        return s->filter ? 0 : -1;
    }
    pub_state_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    c->role = ROLE_PUB;
    c->pub = p;
    p->pub_id = idx - cfg->subs;
    p->topic = topic_index(cfg->topic, p->pub_id);
    p->window = cfg->window;
    p->next_id = 1;
    if (cfg->qos > 0 && !(p->ids = calloc(1024, sizeof(uint64_t))))
        return -1;
    if (cfg->qos == 2 && !(p->rel = calloc(1024, sizeof(uint64_t))))
        return -1;
    return p->topic ? 0 : -1;
}

void scenario_client_free(conn_t *c)
{
    if (c->sub) {
        for (uint32_t i = 0; i < c->sub->ntr; i++)
            track_free(&c->sub->tr[i]);
        free(c->sub->tr);
        free(c->sub->rel_ids);
        free(c->sub->filter);
        free(c->sub);
        c->sub = NULL;
    }
    if (c->pub) {
        free(c->pub->tmpl);
        free(c->pub->ids);
        free(c->pub->rel);
        free(c->pub->topic);
        free(c->pub);
        c->pub = NULL;
    }
}

bool scenario_expected(const bench_run_t *r, uint64_t sent_total, uint64_t *expected)
{
    switch (r->cfg.mode) {
    case MODE_PAIRS:
        *expected = sent_total;
        return true;
    case MODE_FANIN:
    case MODE_FANOUT:
        *expected = sent_total * r->cfg.subs;
        return true;
    default:
        *expected = 0;
        return false;
    }
}
