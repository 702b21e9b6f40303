/* cluster_js.h -- `cluster_durability jetstream`: QoS 1/2 messages between cluster nodes through a
 * JetStream stream, acknowledged to the publisher only once JetStream has them (design note in
 * cluster_js.c, user guide docs/cluster.md).
 *
 * Without `cluster_durability jetstream`, b->cluster_js is NULL and nothing here runs. */
#ifndef TOMBO_BROKER_CLUSTER_JS_H
#define TOMBO_BROKER_CLUSTER_JS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct worker;
struct conn;
struct inbox_item;
struct __natsConnection;
struct __natsMsg;
struct __natsSubscription;

typedef struct cluster_js cluster_js_t;

/* inbox_item.rc of the INBOX_CLUSTER items this file handles (cluster.c's own are below 16). */
enum { CL_JS_ACK = 16 };

/* Broker's thread, from cluster_init once NATS is connected: create (or open) the stream
 * tombo_msgs and set b->cluster_js. Returns 0, or -1 after logging "Error: FILE:LINE: ...". */
int cluster_js_init(struct broker *b, struct __natsConnection *nc, const char *node);
/* Broker's thread, once the store has recovered and before it starts (nothing without persistence):
 * read the ranges of stream messages earlier runs routed (js_seen). Returns 0, or -1 after logging. */
int cluster_js_recovered(struct broker *b);
/* Broker's thread, from cluster_start: consume this node's subject through the durable consumer
 * tombo_NODE; each message goes to `handler` (cluster.c's forwarded-message callback). */
typedef void (*cluster_js_handler)(struct __natsConnection *, struct __natsSubscription *, struct __natsMsg *,
                                   void *);
int cluster_js_start(struct broker *b, cluster_js_handler handler, void *closure);
/* Broker's thread, from cluster_stop before the NATS connection closes: stop consuming (the durable
 * consumer stays on the servers: what arrives meanwhile waits for this node), forget pending
 * publishes. */
void cluster_js_stop(struct broker *b);
/* Broker's thread, after nats_CloseAndWait: free. NULL: no-op. */
void cluster_js_free(struct broker *b);

/* Worker w, from cluster_publish: a new message is being forwarded (forget any earlier one). */
void cluster_js_publish_begin(cluster_js_t *j, struct worker *w);
/* Worker w: send the forwarding encoding data[0..len) of the current message to node `node` through
 * the stream. The publisher's acknowledgement waits for JetStream (cluster_js_take_ack). Returns
 * false when it could not even be sent (the message then counts as refused). */
bool cluster_js_send(cluster_js_t *j, struct worker *w, const char *node, const void *data, size_t len);
/* Worker of c, from handle_publish after routing (routed: the message was routed, so any JetStream
 * publish it made is this PUBLISH's): should the cluster send this QoS 1/2 acknowledgement (type
 * PUBACK/PUBREC, packet id, reason) instead of the caller? True when the message went to JetStream,
 * or when an earlier acknowledgement of c still waits (acknowledgements keep their order). Once
 * JetStream answered: sent as given; refused or timed out: reason 0x80 on MQTT 5, the connection
 * closed without an acknowledgement on 3.1.1. */
bool cluster_js_take_ack(cluster_js_t *j, struct conn *c, bool routed, uint8_t type, uint16_t id, uint8_t reason);
/* Worker w: a forwarded message was routed here; takes nm. One from the stream is acknowledged
 * to JetStream once what routing it wrote to this node's store is committed (at once without
 * persistence); one from core NATS (no reply subject) is just destroyed. j may be NULL. */
void cluster_js_delivered(cluster_js_t *j, struct worker *w, struct __natsMsg *nm);
/* Worker w: a message from the stream (nm, decoded into m, of which this takes the reference):
 * routed as a forwarded message, unless it is a redelivery of one this node routed already (in this
 * run or, with persistence, an earlier one: design note in cluster_js.c); then nm goes to
 * cluster_js_delivered. */
struct msg;
void cluster_js_route(cluster_js_t *j, struct worker *w, struct __natsMsg *nm, struct msg *m);
/* Worker w, from worker_release_holds: does it hold stream messages waiting for the store? */
bool cluster_js_commit_pending(cluster_js_t *j, struct worker *w);
/* Worker w: acknowledge those the store has committed (up to `committed`); returns the store
 * sequence the oldest one left waits for, 0: none. */
uint64_t cluster_js_committed(cluster_js_t *j, struct worker *w, uint64_t committed);
/* Worker w: an INBOX_CLUSTER item with rc >= CL_JS_ACK. */
void cluster_js_on_item(struct worker *w, struct inbox_item *it);

/* Statistics (any thread). */
typedef struct cluster_js_stats {
    unsigned long sent, acked, refused, received;
    unsigned long duplicates; /* redeliveries not routed: this node had routed them */
} cluster_js_stats_t;
void cluster_js_stats(cluster_js_t *j, cluster_js_stats_t *out);

#endif
