/* api.c -- the HTTP endpoint's routes (api.h): the dashboard's files, /metrics in Prometheus text
 * format, and the JSON REST API under /api/v1. Every number comes from stats.h's snapshot (the one
 * $SYS publishes) or from the sessions themselves, read under their own locks; nothing here touches
 * a connection, which belongs to its worker. */
#include "broker/api.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/registry.h"
#include "broker/session.h"
#include "broker/stats.h"
#include "broker/trace.h"
#include "broker/web_assets.h"
#include "broker/worker.h"
#include "http/uri.h"
#include "mqtt/mqtt.h"
#include "mqtt/topic.h"

#define JSON "application/json; charset=utf-8"
#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define DETAIL_MAX 100 /* queued / in-flight messages listed for one client */

void api_resp_init(api_resp_t *r)
{
    r->status = 200;
    r->type = JSON;
    r->extra = NULL;
    hb_init(&r->body);
}

void api_resp_free(api_resp_t *r) { hb_free(&r->body); }

static void error(api_resp_t *r, int status, const char *msg)
{
    r->status = status;
    r->type = JSON;
    r->body.len = 0;
    hb_puts(&r->body, "{\"error\":");
    hb_json_cstr(&r->body, msg);
    hb_puts(&r->body, "}\n");
}

/* ---- sessions ---------------------------------------------------------------------------- */

static int by_client_id(const void *a, const void *b)
{
    const session_t *x = *(session_t *const *)a, *y = *(session_t *const *)b;
    size_t n = x->client_id_len < y->client_id_len ? x->client_id_len : y->client_id_len;
    int c = memcmp(x->client_id, y->client_id, n);
    return c ? c : (x->client_id_len > y->client_id_len) - (x->client_id_len < y->client_id_len);
}

/* Every session, sorted by client id (references: release with release_all). */
static session_t **sessions_sorted(broker_t *b, size_t *n)
{
    session_t **v = registry_list(b, n);
    qsort(v, *n, sizeof(*v), by_client_id);
    return v;
}

static void release_all(session_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        session_release(v[i]);
    free(v);
}

/* Messages waiting in every session's queue and in flight (the sessions' locks, one at a time). */
static void queue_totals(broker_t *b, uint64_t *queued, uint64_t *inflight)
{
    size_t n;
    session_t **v = registry_list(b, &n);
    *queued = *inflight = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->lock);
        *queued += v[i]->queue.n;
        *inflight += v[i]->inflight_live;
        pthread_mutex_unlock(&v[i]->lock);
    }
    release_all(v, n);
}

static const char *version_name(uint8_t v)
{
    return v == MQTT_V5 ? "5.0" : v == MQTT_V311 ? "3.1.1" : v == MQTT_V31 ? "3.1" : "";
}

/* One client's summary as a JSON object; s is locked (session_inspect). */
static void client_summary(hbuf_t *o, const session_t *s)
{
    int w = atomic_load(&s->worker);
    hb_puts(o, "{\"client_id\":");
    hb_json_str(o, s->client_id, s->client_id_len);
    hb_printf(o, ",\"connected\":%s,\"worker\":%d,\"protocol\":\"%s\",\"username\":", w >= 0 && s->conn ? "true" : "false",
              w, version_name(s->version));
    hb_json_cstr(o, s->username);
    hb_printf(o, ",\"session_expiry\":%lld,\"subscriptions\":%u,\"queued\":%u,\"queued_bytes\":%zu,"
                 "\"inflight\":%u,\"inflight_max\":%u,\"awaiting_pubrel\":%u,\"will\":%s}",
              s->expiry == UINT32_MAX ? -1LL : (long long)s->expiry, s->n_subs, s->queue.n, s->queued_bytes,
              s->inflight_live, s->inflight_max, s->in_qos2_n, s->will ? "true" : "false");
}

/* The paging and filter parameters of a list: ?offset=&limit=&filter=TEXT. */
typedef struct page {
    long offset, limit;
    long fl; /* filter length, or <= 0: none */
    char filter[1024];
} page_t;

static long query_long(const http_request_t *req, const char *name, long dflt, long min, long max);

/* False (and r holds the 400) when the parameters are malformed. */
static bool page_params(const http_request_t *req, page_t *pg, api_resp_t *r)
{
    pg->offset = query_long(req, "offset", 0, 0, (long)1 << 40);
    pg->limit = query_long(req, "limit", PAGE_DEFAULT, 0, PAGE_MAX);
    pg->fl = uri_query(req->target, "filter", pg->filter, sizeof(pg->filter));
    if (pg->fl == -2) {
        error(r, 400, "bad filter parameter");
        return false;
    }
    return true;
}

static long query_long(const http_request_t *req, const char *name, long dflt, long min, long max)
{
    char buf[24];
    long n = uri_query(req->target, name, buf, sizeof(buf));
    if (n <= 0)
        return dflt;
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end)
        return dflt;
    return v < min ? min : v > max ? max : v;
}

/* A page of a list being written: rows before pg->offset are counted, not shown. */
struct list_ctx {
    hbuf_t *o;
    const page_t *pg;
    int want_conn; /* clients: -1 all, 0 offline, 1 connected */
    long total, shown;
};

/* Is the next row on the page? Counts it either way. */
static bool list_row(struct list_ctx *x)
{
    bool on_page = x->total++ >= x->pg->offset && x->shown < x->pg->limit;
    if (on_page && x->shown++)
        hb_puts(x->o, ",");
    return on_page;
}

static void client_row(const session_t *s, void *arg)
{
    struct list_ctx *x = arg;
    bool connected = atomic_load(&s->worker) >= 0 && s->conn;
    if ((x->want_conn < 0 || x->want_conn == connected) && list_row(x))
        client_summary(x->o, s);
}

/* GET /api/v1/clients?offset=&limit=&filter=SUBSTRING&connected=true|false */
static void clients_list(broker_t *b, const http_request_t *req, api_resp_t *r)
{
    page_t pg;
    if (!page_params(req, &pg, r))
        return;
    char conn[8];
    long cl = uri_query(req->target, "connected", conn, sizeof(conn));
    int want_conn = cl < 0 ? -1 : !strcmp(conn, "true") ? 1 : !strcmp(conn, "false") ? 0 : -2;
    if (want_conn == -2)
        return error(r, 400, "connected must be true or false");
    size_t n;
    session_t **v = sessions_sorted(b, &n);
    struct list_ctx x = {.o = &r->body, .pg = &pg, .want_conn = want_conn};
    hb_puts(x.o, "{\"clients\":[");
    for (size_t i = 0; i < n; i++) {
        session_t *s = v[i];
        if (pg.fl > 0 && !memmem(s->client_id, s->client_id_len, pg.filter, (size_t)pg.fl))
            continue;
        session_inspect(s, client_row, &x);
    }
    hb_printf(x.o, "],\"total\":%ld,\"offset\":%ld,\"limit\":%ld}\n", x.total, pg.offset, pg.limit);
    release_all(v, n);
}

static const char *state_name(uint8_t st)
{
    switch (st) {
    case OUT_WAIT_PUBACK: return "wait_puback";
    case OUT_WAIT_PUBREC: return "wait_pubrec";
    case OUT_WAIT_PUBCOMP: return "wait_pubcomp";
    default: return "queued";
    }
}

static void outmsgs(hbuf_t *o, const outring_t *ring, bool only_live)
{
    hb_puts(o, "[");
    uint32_t shown = 0;
    for (uint32_t i = 0; i < ring->n && shown < DETAIL_MAX; i++) {
        const outmsg_t *m = &ring->v[(ring->head + i) % ring->cap];
        if (only_live && (!m->msg && m->state != OUT_WAIT_PUBCOMP))
            continue;
        if (shown++)
            hb_puts(o, ",");
        hb_printf(o, "{\"packet_id\":%u,\"qos\":%u,\"state\":\"%s\",\"topic\":", m->id, m->qos, state_name(m->state));
        if (m->msg) {
            hb_json_str(o, m->msg->topic.p, m->msg->topic.len);
            hb_printf(o, ",\"payload_bytes\":%u}", m->msg->payload.len);
        } else {
            hb_puts(o, "null}");
        }
    }
    hb_puts(o, "]");
}

/* GET /api/v1/clients/{id} */
static void client_detail_locked(const session_t *s, void *arg)
{
    hbuf_t *o = arg;
    client_summary(o, s);
    o->len--; /* reopen the object */
    hb_puts(o, ",\"subscription_list\":[");
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const sess_sub_t *sub = &s->subs[i];
        hb_puts(o, i ? ",{\"filter\":" : "{\"filter\":");
        hb_json_str(o, sub->filter, sub->len);
        hb_printf(o, ",\"qos\":%u,\"no_local\":%s,\"retain_as_published\":%s,\"retain_handling\":%u,"
                     "\"subscription_id\":%u}",
                  SUB_OPT_QOS(sub->options), sub->options & SUB_OPT_NO_LOCAL ? "true" : "false",
                  sub->options & SUB_OPT_RAP ? "true" : "false", SUB_OPT_RETAIN_HANDLING(sub->options), sub->sub_id);
    }
    hb_puts(o, "],\"inflight_list\":");
    outmsgs(o, &s->inflight, true);
    hb_puts(o, ",\"queue_list\":");
    outmsgs(o, &s->queue, false);
    hb_puts(o, ",\"will_topic\":");
    if (s->will)
        hb_json_str(o, s->will->topic.p, s->will->topic.len);
    else
        hb_puts(o, "null");
    hb_puts(o, "}\n");
}

static void client_detail(session_t *s, api_resp_t *r) { session_inspect(s, client_detail_locked, &r->body); }

/* DELETE /api/v1/clients/{id}: its worker closes the connection (DISCONNECT 0x98 on MQTT 5). */
static void client_kick(broker_t *b, session_t *s, api_resp_t *r)
{
    inbox_item_t it = {.kind = INBOX_DISCONNECT, .rc = MQTT_RC_ADMINISTRATIVE_ACTION};
    int w;
    if (!session_conn_target(s, b->n_workers, &w, &it.fd, &it.conn_id))
        return error(r, 404, "client not connected");
    worker_post(&b->workers[w], &it);
    hb_puts(&r->body, "{\"kicked\":");
    hb_json_str(&r->body, s->client_id, s->client_id_len);
    hb_puts(&r->body, "}\n");
}

static void subscription_rows(const session_t *s, void *arg)
{
    struct list_ctx *x = arg;
    const page_t *pg = x->pg;
    for (uint32_t k = 0; k < s->n_subs; k++) {
        const sess_sub_t *sub = &s->subs[k];
        if (pg->fl > 0 && !memmem(sub->filter, sub->len, pg->filter, (size_t)pg->fl))
            continue;
        if (!list_row(x))
            continue;
        hb_puts(x->o, "{\"client_id\":");
        hb_json_str(x->o, s->client_id, s->client_id_len);
        hb_puts(x->o, ",\"filter\":");
        hb_json_str(x->o, sub->filter, sub->len);
        hb_printf(x->o, ",\"qos\":%u,\"shared\":%s}", SUB_OPT_QOS(sub->options),
                  sub->len > 7 && !memcmp(sub->filter, "$share/", 7) ? "true" : "false");
    }
}

/* GET /api/v1/subscriptions?offset=&limit=&filter=SUBSTRING */
static void subscriptions_list(broker_t *b, const http_request_t *req, api_resp_t *r)
{
    page_t pg;
    if (!page_params(req, &pg, r))
        return;
    size_t n;
    session_t **v = sessions_sorted(b, &n);
    struct list_ctx x = {.o = &r->body, .pg = &pg};
    hb_puts(x.o, "{\"subscriptions\":[");
    for (size_t i = 0; i < n; i++)
        session_inspect(v[i], subscription_rows, &x);
    hb_printf(x.o, "],\"total\":%ld,\"offset\":%ld,\"limit\":%ld}\n", x.total, pg.offset, pg.limit);
    release_all(v, n);
}

/* ---- retained messages ------------------------------------------------------------------- */

struct collected {
    msg_t **v;
    size_t n, cap;
};

static void collect(void *m, const retain_src_t *src, void *arg)
{
    struct collected *c = arg;
    (void)src;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = m; /* its reference is ours (retain_match) */
}

static int by_topic(const void *a, const void *b)
{
    const msg_t *x = *(msg_t *const *)a, *y = *(msg_t *const *)b;
    size_t n = x->topic.len < y->topic.len ? x->topic.len : y->topic.len;
    int c = memcmp(x->topic.p, y->topic.p, n);
    return c ? c : (x->topic.len > y->topic.len) - (x->topic.len < y->topic.len);
}

/* GET /api/v1/topics?filter=TOPIC_FILTER&limit=: the retained messages, by topic. */
static void topics_list(broker_t *b, const http_request_t *req, api_resp_t *r)
{
    char filter[1024];
    long fl = uri_query(req->target, "filter", filter, sizeof(filter));
    if (fl == -1) {
        strcpy(filter, "#");
        fl = 1;
    }
    if (fl <= 0 || !mqtt_topic_filter_valid((const uint8_t *)filter, (size_t)fl) || !strncmp(filter, "$share/", 7))
        return error(r, 400, "filter must be a topic filter (default #)");
    long limit = query_long(req, "limit", PAGE_MAX, 0, 10 * PAGE_MAX);
    struct collected c = {0};
    if (retain_match(b->retained, (const uint8_t *)filter, (size_t)fl, collect, &c) < 0)
        return error(r, 503, "out of memory");
    if (c.n)
        qsort(c.v, c.n, sizeof(*c.v), by_topic);
    hbuf_t *o = &r->body;
    hb_puts(o, "{\"topics\":[");
    for (size_t i = 0; i < c.n; i++) {
        msg_t *m = c.v[i];
        if ((long)i < limit) {
            hb_puts(o, i ? ",{\"topic\":" : "{\"topic\":");
            hb_json_str(o, m->topic.p, m->topic.len);
            hb_puts(o, ",\"payload\":");
            hb_json_str(o, m->payload.p, m->payload.len > 4096 ? 4096 : m->payload.len);
            hb_printf(o, ",\"payload_bytes\":%u,\"qos\":%u}", m->payload.len, m->qos);
        }
        msg_release(m);
    }
    hb_printf(o, "],\"total\":%zu}\n", c.n);
    free(c.v);
}

/* ---- statistics -------------------------------------------------------------------------- */

/* GET /api/v1/stats: the same snapshot as /metrics and $SYS. */
static void stats_json(broker_t *b, api_resp_t *r)
{
    stats_t s;
    stats_gather(b, &s);
    uint64_t queued, inflight;
    queue_totals(b, &queued, &inflight);
    hbuf_t *o = &r->body;
    hb_printf(o,
              "{\"version\":\"%s\",\"uptime_seconds\":%llu,\"clients_connected\":%llu,\"sessions\":%llu,"
              "\"clients_maximum\":%llu,\"clients_expired\":%llu,\"sockets_accepted\":%llu,\"connects\":%llu,"
              "\"bytes_received\":%llu,\"bytes_sent\":%llu,\"packets_received\":%llu,\"packets_sent\":%llu,",
              TOMBO_VERSION, (unsigned long long)s.uptime_s, (unsigned long long)s.clients_connected,
              (unsigned long long)s.sessions, (unsigned long long)s.clients_maximum,
              (unsigned long long)s.clients_expired, (unsigned long long)s.sockets, (unsigned long long)s.connects,
              (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out, (unsigned long long)s.pkts_in,
              (unsigned long long)s.pkts_out);
    hb_printf(o,
              "\"publish_received\":%llu,\"publish_sent\":%llu,\"publish_received_by_qos\":[%llu,%llu,%llu],"
              "\"publish_sent_by_qos\":[%llu,%llu,%llu],\"publish_bytes_received\":%llu,\"publish_bytes_sent\":%llu,"
              "\"publish_dropped\":%llu,",
              (unsigned long long)s.pub_in_total, (unsigned long long)s.pub_out_total,
              (unsigned long long)s.pub_in[0], (unsigned long long)s.pub_in[1], (unsigned long long)s.pub_in[2],
              (unsigned long long)s.pub_out[0], (unsigned long long)s.pub_out[1], (unsigned long long)s.pub_out[2],
              (unsigned long long)s.pub_bytes_in, (unsigned long long)s.pub_bytes_out,
              (unsigned long long)s.pub_dropped);
    hb_printf(o,
              "\"messages_queued\":%llu,\"messages_inflight\":%llu,\"messages_stored\":%llu,"
              "\"messages_stored_bytes\":%llu,\"retained\":%llu,\"subscriptions\":%llu,\"shared_subscriptions\":%llu,"
              "\"persistence\":%s,\"workers\":[",
              (unsigned long long)queued, (unsigned long long)inflight, (unsigned long long)s.msgs_alive,
              (unsigned long long)s.msg_bytes_alive, (unsigned long long)s.retained,
              (unsigned long long)s.subscriptions, (unsigned long long)s.shared_subscriptions,
              s.persistence ? "true" : "false");
    for (int i = 0; i < s.n_workers; i++)
        hb_printf(o, "%s{\"clients\":%llu,\"loop_turns\":%llu,\"busy_seconds\":%.6f}", i ? "," : "",
                  (unsigned long long)s.workers[i].clients, (unsigned long long)s.workers[i].turns,
                  (double)s.workers[i].busy_ns / 1e9);
    hb_puts(o, "]}\n");
    stats_done(&s);
}

static void metric(hbuf_t *o, const char *name, const char *type, const char *help)
{
    hb_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric1(hbuf_t *o, const char *name, const char *type, const char *help, unsigned long long v)
{
    metric(o, name, type, help);
    hb_printf(o, "%s %llu\n", name, v);
}

/* GET /metrics: Prometheus text exposition format 0.0.4. */
static void metrics(broker_t *b, api_resp_t *r)
{
    stats_t s;
    stats_gather(b, &s);
    uint64_t queued, inflight;
    queue_totals(b, &queued, &inflight);
    hbuf_t *o = &r->body;
    r->type = "text/plain; version=0.0.4; charset=utf-8";
    metric1(o, "tombo_uptime_seconds", "gauge", "Seconds since the broker started.", s.uptime_s);
    metric1(o, "tombo_clients_connected", "gauge", "Client connections open now.", s.clients_connected);
    metric1(o, "tombo_sessions", "gauge", "Sessions known (connected or not).", s.sessions);
    metric1(o, "tombo_clients_maximum", "gauge", "Most connections open at once so far.", s.clients_maximum);
    metric1(o, "tombo_clients_expired_total", "counter", "Sessions ended by their expiry interval.",
            s.clients_expired);
    metric1(o, "tombo_sockets_accepted_total", "counter", "Client sockets accepted.", s.sockets);
    metric1(o, "tombo_connects_total", "counter", "CONNECT packets received.", s.connects);
    metric1(o, "tombo_bytes_received_total", "counter", "Bytes read from client sockets.", s.bytes_in);
    metric1(o, "tombo_bytes_sent_total", "counter", "Bytes written to client sockets.", s.bytes_out);
    metric1(o, "tombo_packets_received_total", "counter", "MQTT packets received, every type.", s.pkts_in);
    metric1(o, "tombo_packets_sent_total", "counter", "MQTT packets sent, every type.", s.pkts_out);
    metric(o, "tombo_publish_received_total", "counter", "PUBLISH packets received, by QoS.");
    for (int q = 0; q < 3; q++)
        hb_printf(o, "tombo_publish_received_total{qos=\"%d\"} %llu\n", q, (unsigned long long)s.pub_in[q]);
    metric(o, "tombo_publish_sent_total", "counter", "PUBLISH packets sent, by QoS.");
    for (int q = 0; q < 3; q++)
        hb_printf(o, "tombo_publish_sent_total{qos=\"%d\"} %llu\n", q, (unsigned long long)s.pub_out[q]);
    metric1(o, "tombo_publish_bytes_received_total", "counter", "PUBLISH payload bytes received.", s.pub_bytes_in);
    metric1(o, "tombo_publish_bytes_sent_total", "counter", "PUBLISH payload bytes sent.", s.pub_bytes_out);
    metric1(o, "tombo_publish_dropped_total", "counter",
            "Messages dropped (queue limits, slow consumers, expiry, oversize).", s.pub_dropped);
    metric1(o, "tombo_messages_queued", "gauge", "Messages waiting in sessions' queues.", queued);
    metric1(o, "tombo_messages_inflight", "gauge", "Messages sent and not yet acknowledged.", inflight);
    metric1(o, "tombo_messages_stored", "gauge", "Messages held in memory.", s.msgs_alive);
    metric1(o, "tombo_messages_stored_bytes", "gauge", "Payload bytes of the messages held in memory.",
            s.msg_bytes_alive);
    metric1(o, "tombo_retained_messages", "gauge", "Retained messages.", s.retained);
    metric1(o, "tombo_subscriptions", "gauge", "Subscriptions, shared ones included.", s.subscriptions);
    metric1(o, "tombo_shared_subscriptions", "gauge", "Members of shared subscriptions.", s.shared_subscriptions);
    if (b->cluster) { /* docs/cluster.md */
        cluster_stats_t cs;
        cluster_stats(b->cluster, &cs);
        metric1(o, "tombo_cluster_link_up", "gauge", "1 when this node is connected to NATS.", (unsigned)cs.link_up);
        metric1(o, "tombo_cluster_nodes", "gauge", "Cluster nodes up, this one included.", cs.nodes);
        metric1(o, "tombo_cluster_forwarded_sent_total", "counter", "PUBLISHes sent to other nodes.", cs.fwd_sent);
        metric1(o, "tombo_cluster_forwarded_received_total", "counter", "PUBLISHes received from other nodes.",
                cs.fwd_received);
        metric1(o, "tombo_cluster_forwarded_bytes_sent_total", "counter", "Bytes of PUBLISHes sent to other nodes.",
                cs.fwd_bytes_sent);
        metric1(o, "tombo_cluster_forwarded_bytes_received_total", "counter",
                "Bytes of PUBLISHes received from other nodes.", cs.fwd_bytes_received);
        metric1(o, "tombo_cluster_bucket_errors_total", "counter", "Key-value bucket writes that failed and were retried.",
                cs.kv_errors);
    }
    if (b->cluster_js) { /* cluster_durability jetstream (docs/cluster.md) */
        cluster_js_stats_t js;
        cluster_js_stats(b->cluster_js, &js);
        metric1(o, "tombo_cluster_durable_sent_total", "counter", "Messages for other nodes published to JetStream.",
                js.sent);
        metric1(o, "tombo_cluster_durable_acked_total", "counter", "Of those, stored by JetStream.", js.acked);
        metric1(o, "tombo_cluster_durable_refused_total", "counter",
                "Publishers refused because JetStream did not take their message.", js.refused);
        metric1(o, "tombo_cluster_durable_received_total", "counter", "Messages taken from JetStream for this node.",
                js.received);
        metric1(o, "tombo_cluster_durable_duplicates_total", "counter",
                "Of those, redeliveries not routed: this node had routed them already.", js.duplicates);
    }
    metric(o, "tombo_worker_clients", "gauge", "Connections owned by each worker thread.");
    for (int i = 0; i < s.n_workers; i++)
        hb_printf(o, "tombo_worker_clients{worker=\"%d\"} %llu\n", i, (unsigned long long)s.workers[i].clients);
    metric(o, "tombo_worker_loop_turns_total", "counter", "Event loop turns of each worker thread.");
    for (int i = 0; i < s.n_workers; i++)
        hb_printf(o, "tombo_worker_loop_turns_total{worker=\"%d\"} %llu\n", i, (unsigned long long)s.workers[i].turns);
    metric(o, "tombo_worker_busy_seconds_total", "counter",
           "Time each worker thread spent in its loop turns (not waiting in epoll_wait).");
    for (int i = 0; i < s.n_workers; i++)
        hb_printf(o, "tombo_worker_busy_seconds_total{worker=\"%d\"} %.9f\n", i, (double)s.workers[i].busy_ns / 1e9);
    if (s.persistence) {
        metric(o, "tombo_store_commit_seconds", "histogram",
               "Duration of the persistence store's group commits (one SQLite transaction each).");
        uint64_t cum = 0;
        for (int i = 0; i < JOURNAL_HIST_N; i++) {
            cum += s.commit.bucket[i];
            hb_printf(o, "tombo_store_commit_seconds_bucket{le=\"%g\"} %llu\n", journal_hist_le[i],
                      (unsigned long long)cum);
        }
        cum += s.commit.bucket[JOURNAL_HIST_N];
        hb_printf(o, "tombo_store_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        hb_printf(o, "tombo_store_commit_seconds_sum %.9f\n", (double)s.commit.sum_ns / 1e9);
        hb_printf(o, "tombo_store_commit_seconds_count %llu\n", (unsigned long long)cum);
    }
    stats_done(&s);
}

/* ---- the packet trace -------------------------------------------------------------------- */

static const char *type_name(uint8_t t)
{
    static const char *const names[] = {"?",      "CONNECT", "CONNACK",  "PUBLISH",   "PUBACK",
                                        "PUBREC", "PUBREL",  "PUBCOMP",  "SUBSCRIBE", "SUBACK",
                                        "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* GET /api/v1/trace?after=SEQ: the traced client and its packets since SEQ. */
static void trace_get(broker_t *b, const http_request_t *req, api_resp_t *r)
{
    long after = query_long(req, "after", 0, 0, (long)1 << 62);
    trace_event_t *ev = xmalloc(TRACE_CAP * sizeof(*ev));
    char id[1024];
    size_t id_len;
    size_t n = trace_read(b->trace, (uint64_t)after, ev, TRACE_CAP, id, sizeof(id), &id_len);
    hbuf_t *o = &r->body;
    hb_puts(o, "{\"client_id\":");
    if (id_len || (atomic_load(&b->trace->gen) & 1))
        hb_json_str(o, id, id_len);
    else
        hb_puts(o, "null");
    hb_puts(o, ",\"events\":[");
    for (size_t i = 0; i < n; i++) {
        const trace_event_t *e = &ev[i];
        hb_printf(o, "%s{\"seq\":%llu,\"time_ms\":%lld,\"dir\":\"%s\",\"type\":\"%s\",\"packet_id\":%u,", i ? "," : "",
                  (unsigned long long)e->seq, (long long)e->wall_ms, e->out ? "out" : "in", type_name(e->type), e->id);
        if (e->type == MQTT_PUBLISH)
            hb_printf(o, "\"qos\":%u,\"retain\":%s,\"dup\":%s,", e->qos, e->retain ? "true" : "false",
                      e->dup ? "true" : "false");
        hb_puts(o, "\"detail\":");
        hb_json_str(o, e->detail, e->detail_len);
        hb_puts(o, "}");
    }
    hb_puts(o, "]}\n");
    free(ev);
}

/* POST /api/v1/trace?client=ID starts tracing that client id (whether or not it is connected);
 * DELETE /api/v1/trace stops. */
static void trace_set_route(broker_t *b, const http_request_t *req, api_resp_t *r, bool start)
{
    if (!start) {
        trace_set(b->trace, NULL, 0);
        hb_puts(&r->body, "{\"client_id\":null}\n");
        return;
    }
    char id[1024];
    long n = uri_query(req->target, "client", id, sizeof(id));
    if (n <= 0)
        return error(r, 400, "give the client id: POST /api/v1/trace?client=ID");
    trace_set(b->trace, id, (size_t)n);
    hb_puts(&r->body, "{\"client_id\":");
    hb_json_str(&r->body, id, (size_t)n);
    hb_puts(&r->body, "}\n");
}

/* ---- routing ----------------------------------------------------------------------------- */

static bool path_is(http_str_t p, const char *s) { return p.n == strlen(s) && !memcmp(p.p, s, p.n); }

static bool method_is(const http_request_t *req, const char *m)
{
    return req->method.n == strlen(m) && !memcmp(req->method.p, m, req->method.n);
}

static void not_allowed(api_resp_t *r, const char *allow)
{
    error(r, 405, "method not allowed");
    r->extra = allow;
}

#define ALLOW_GET "Allow: GET, HEAD\r\n"

void api_handle(broker_t *b, const http_request_t *req, api_resp_t *r)
{
    http_str_t path = uri_path(req->target);
    bool get = method_is(req, "GET") || method_is(req, "HEAD");
    static const char clients[] = "/api/v1/clients/";
    if (path.n > sizeof(clients) - 1 && !memcmp(path.p, clients, sizeof(clients) - 1)) {
        char id[1024];
        long n = uri_decode((http_str_t){path.p + sizeof(clients) - 1, path.n - (sizeof(clients) - 1)}, id,
                            sizeof(id));
        if (n <= 0)
            return error(r, 400, "bad client id in the path (percent-encode it)");
        bool del = method_is(req, "DELETE");
        if (!get && !del)
            return not_allowed(r, "Allow: GET, HEAD, DELETE\r\n");
        session_t *s = registry_find(b, id, (size_t)n);
        if (!s)
            return error(r, 404, "no such client");
        if (del)
            client_kick(b, s, r);
        else
            client_detail(s, r);
        session_release(s);
        return;
    }
    if (path_is(path, "/api/v1/trace")) {
        if (get)
            return trace_get(b, req, r);
        if (method_is(req, "POST") || method_is(req, "DELETE"))
            return trace_set_route(b, req, r, method_is(req, "POST"));
        return not_allowed(r, "Allow: GET, HEAD, POST, DELETE\r\n");
    }
    static const struct {
        const char *path;
        void (*fn)(broker_t *, const http_request_t *, api_resp_t *);
    } gets[] = {
        {"/api/v1/clients", clients_list},
        {"/api/v1/subscriptions", subscriptions_list},
        {"/api/v1/topics", topics_list},
    };
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++)
        if (path_is(path, gets[i].path)) {
            if (!get)
                return not_allowed(r, ALLOW_GET);
            return gets[i].fn(b, req, r);
        }
    if (path_is(path, "/api/v1/stats") || path_is(path, "/metrics")) {
        if (!get)
            return not_allowed(r, ALLOW_GET);
        return path.p[1] == 'm' ? metrics(b, r) : stats_json(b, r);
    }
    if (path_is(path, "/"))
        path = (http_str_t){"/index.html", 11};
    for (size_t i = 0; i < web_assets_n; i++)
        if (path_is(path, web_assets[i].path)) {
            if (!get)
                return not_allowed(r, ALLOW_GET);
            r->type = web_assets[i].type;
            hb_put(&r->body, web_assets[i].data, web_assets[i].len);
            return;
        }
    error(r, 404, "not found");
}
