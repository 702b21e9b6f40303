/* scenarios.c -- who publishes where and who listens to what, for each mode:
 *   conn    N clients that only hold a connection
 *   pub     N publishers, publisher i to topic(i)
 *   sub     N subscribers, subscriber i on topic(i) (or -F filter)
 *   pairs   N publishers and N subscribers, subscriber i hears exactly publisher i
 *   fanin   N publishers to topic(i), S subscribers (1) on topic(+), each hears all
 *   fanout  P publishers (1) to topic(i), N subscribers on topic(0) (topic(+) when P > 1)
 *   retained  P publishers (10) store -n retained messages on topic(0..n-1) at QoS 1, then
 *           S subscribers (1) subscribe to "#" (or -F) and receive them all
 *   storm   N clients connect, get their CONNACK, disconnect and connect again, as fast as
 *           the broker answers
 * --topics N spreads each publisher's messages over topic(0..N-1): publisher p's k-th message
 * goes to topic((p + k * P) mod N), the index zero-padded so the topic keeps its length and the
 * encoded PUBLISH is patched in place. -F takes a comma-separated list of filter templates;
 * subscriber i takes the (i mod count)-th.
 * Subscribers are clients 0..S-1 so they connect first; publishers follow. */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"conn", "pub", "sub", "pairs", "fanin", "fanout", "retained", "storm"};

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

uint32_t scenario_topic_digits(const bench_cfg_t *c)
{
    uint64_t n = c->mode == MODE_RETAINED ? c->count : c->topics;
    uint32_t d = 1;
    for (uint64_t v = n > 1 ? n - 1 : 0; v >= 10; v /= 10)
        d++;
    return n ? d : 0;
}

uint64_t scenario_topic_of(const bench_run_t *r, const pub_state_t *p, uint64_t seq)
{
    const bench_cfg_t *c = &r->cfg;
    uint64_t i = p->pub_id + seq * c->pubs;
    return c->mode == MODE_RETAINED ? i : i % c->topics;
}

/* The `which`-th template of a comma-separated list (taken modulo their number), expanded for
 * index i. Caller frees. */
static char *filter_pick(const char *list, uint32_t which, uint32_t i)
{
    uint32_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    which %= n;
    const char *b = list;
    while (which--)
        b = strchr(b, ',') + 1;
    const char *e = strchr(b, ',');
    char *one = strndup(b, e ? (size_t)(e - b) : strlen(b));
    if (!one)
        return NULL;
    char *out = topic_index(one, i);
    free(one);
    return out;
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
    case MODE_RETAINED:
        c->pubs = c->pubs ? c->pubs : n;
        c->subs = c->subs ? c->subs : 1;
        if (!c->count)
            c->count = 100000;
        if (c->pubs > c->count)
            c->pubs = (uint32_t)c->count;
        break;
    case MODE_STORM:
        c->idle = n, c->pubs = 0, c->subs = 0;
        break;
    }
    if (c->topics || c->mode == MODE_RETAINED) {
        const char *p = strstr(c->topic, "%i");
        if (!p || strstr(p + 2, "%i")) {
            fprintf(stderr, "tombo-bench: --topics and retained need exactly one %%i in the topic template\n");
            return -1;
        }
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
    if (cfg->mode == MODE_CONN || cfg->mode == MODE_STORM)
        return 0;
    if (idx < cfg->subs) {
        sub_state_t *s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        c->role = ROLE_SUB;
        c->sub = s;
        s->expect_one = UINT32_MAX;
        if (cfg->filter)
            s->filter = filter_pick(cfg->filter, idx, idx);
        else if (cfg->mode == MODE_RETAINED)
            s->filter = strdup("#");
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
    uint32_t digits = scenario_topic_digits(cfg);
    if (digits) {
        char num[24];
        snprintf(num, sizeof(num), "%0*lu", (int)digits, (unsigned long)scenario_topic_of(r, p, 0));
        p->topic = topic_expand(cfg->topic, num);
        p->topic_digits = digits;
    } else {
        p->topic = topic_index(cfg->topic, p->pub_id);
    }
    p->window = cfg->window;
    p->next_id = 1;
    if (scenario_pub_qos(cfg) > 0 && !(p->ids = calloc(1024, sizeof(uint64_t))))
        return -1;
    if (cfg->qos == 2 && !(p->rel = calloc(1024, sizeof(uint64_t))))
        return -1;
    return p->topic ? 0 : -1;
}

int scenario_pub_qos(const bench_cfg_t *c)
{
    return c->mode == MODE_RETAINED ? 1 : c->qos;
}

uint64_t scenario_pub_share(const bench_run_t *r, const pub_state_t *p)
{
    const bench_cfg_t *c = &r->cfg;
    if (c->mode != MODE_RETAINED)
        return UINT64_MAX;
    return c->count / c->pubs + (p->pub_id < c->count % c->pubs);
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
    case MODE_RETAINED:
        *expected = sent_total * r->cfg.subs;
        return true;
    default:
        *expected = 0;
        return false;
    }
}
