/* route.c -- routing: a message published on a worker goes to the retained store and to every
 * matching subscriber's session, with the QoS and retain flag each subscription grants.
 *
 * The match runs under the subscription tree's read lock and takes a reference per receiver
 * (subtree_match); deliveries happen after the match: outside the lock, or still under it within
 * one socket read's batch (subtree_batch_begin: a writer waits for the end of the read), and each
 * receiver that is full
 * may hold back the publishing connection (backpressure.h). */
#include "broker/route.h"

#include "broker/backpressure.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "broker/worker.h"

/* `source`: whose identity a retained message records (check_retain_source), NULL: the broker's. */
static size_t route(worker_t *w, msg_t *msg, const session_t *from, session_t *source, struct conn *pub, bool give)
{
    broker_t *b = w->b;
    size_t nodes = 0;
    if (b->cluster && !msg->from_cluster) /* the one test a lone broker pays */
        nodes = cluster_publish(b->cluster, w, msg);
    /* A message from another node is stored by the retained bucket's watcher (cluster.c), in the
     * bucket's order, not here. */
    if (msg->retain && !msg->from_cluster) {
        bool set = msg->payload.len > 0;
        retain_src_t *src = set && source ? session_retain_src(source) : NULL;
        retain_set(b->retained, msg->topic.p, msg->topic.len, set ? msg : NULL, src);
        retain_src_release(src);
    }
    sub_result_t *r = &w->match;
    /* In a cluster, one node serves each shared group for this message (cluster.h). */
    subtree_match_groups(b->subs, msg->topic.p, msg->topic.len, from, r, b->cluster ? cluster_share_keep : NULL, w);
    size_t n = r->n;
    bool upgrade = broker_settings(b)->upgrade_outgoing_qos;
    for (size_t i = 0; i < n; i++) {
        sub_match_t *m = &r->v[i];
        session_t *s = m->owner;
        /* The lower of the two [MQTT-3.8.4-8], or the subscription's with upgrade_outgoing_qos. */
        uint8_t qos = msg->qos < m->qos && !upgrade ? msg->qos : m->qos;
        /* [MQTT-3.3.1-12] the retain flag is cleared unless retain-as-published */
        uint8_t retain = m->retain_as_published ? msg->retain : 0;
        if (give && i == n - 1)
            session_deliver_give(w, s, msg, qos, retain, sub_match_ids(r, m), m->n_ids);
        else
            session_deliver(w, s, msg, qos, retain, sub_match_ids(r, m), m->n_ids);
        if (pub)
            bp_after_delivery(pub, s);
        session_release(s); /* the reference subtree_match took */
    }
    if (give && n == 0)
        msg_release(msg);
    return n + nodes;
}

size_t route_publish(worker_t *w, msg_t *msg, session_t *from, struct conn *pub)
{
    return route(w, msg, from, from, pub, false);
}

size_t route_publish_give(worker_t *w, msg_t *msg, session_t *from, struct conn *pub)
{
    return route(w, msg, from, from, pub, true);
}

size_t route_publish_will(worker_t *w, msg_t *msg, session_t *s)
{
    return route(w, msg, NULL, s, NULL, false);
}
