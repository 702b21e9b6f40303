/* cluster.h -- this broker as one node of a tombo cluster on NATS JetStream (cluster_* directives,
 * user guide docs/cluster.md, design note in cluster.c).
 *
 * Without cluster_node, b->cluster is NULL and nothing here runs: the broker's only cost is the
 * pointer test in route.c, handle_connect.c and worker.c. nats.c is linked into the broker only. */
#ifndef TOMBO_BROKER_CLUSTER_H
#define TOMBO_BROKER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct worker;
struct msg;
struct inbox_item;

typedef struct cluster cluster_t;

/* Broker's thread, after the subscription tree exists and before anything subscribes (the store's
 * recovery): connect to NATS, create or open the key-value buckets, watch the subscription tree.
 * Returns 0, or -1 after logging "Error: FILE:LINE: ..." (NATS unreachable, JetStream off). */
int cluster_init(struct broker *b);
/* Broker's thread, once the workers' inboxes exist, before the workers run: start the threads that
 * write and watch the buckets and the subscription to this node's subject. Returns 0 or -1. */
int cluster_start(struct broker *b);
/* Broker's thread, after the workers have been joined and before they are freed: stop every
 * cluster thread, withdraw this node's routes, close the NATS connection, free. NULL: no-op. */
void cluster_stop(struct broker *b);

/* Worker w, from route.c, for a message published on this node (not one that came from another
 * node): forward it to each node with a matching subscription, and replicate it to the retained
 * bucket when it has the retain flag. Returns the number of nodes it was sent to. '$SYS' topics
 * stay local. */
size_t cluster_publish(cluster_t *c, struct worker *w, struct msg *m);
/* Worker w (ctx), from route.c, as the sub_group_fn of the local match of the message it routes:
 * whether this node serves the shared group `share` ("$share/GROUP/FILTER") for it. For a message
 * published here, cluster_publish (called first) gave some groups to other nodes; a message from
 * another node lists the groups this node serves. One member of each group cluster-wide. */
bool cluster_share_keep(void *w, const uint8_t *share, size_t n);
/* Worker thread: a client was attached to session s here (CONNACK follows): any other node where
 * its client id is connected disconnects it (0x8E on MQTT 5), unless that node's connect is the
 * later one in the bucket's order. */
struct session;
void cluster_client_connected(cluster_t *c, struct session *s);
/* Worker `worker`: connection (fd, conn_id) sent a CONNECT without clean start for client id `id`,
 * which has no session here. A cluster thread asks the node that last had the client for its
 * session and answers the worker (INBOX_CLUSTER, CL_TAKE_REPLY) within a bounded time: with the
 * session, imported into the registry before the connection resumes (connect_resume), or with
 * nothing (a fresh session; a node that does not answer is logged). */
void cluster_take(cluster_t *c, int worker, int fd, uint64_t conn_id, const char *id, size_t idlen);
/* Worker thread: s, moved here from node `owner`, is attached; once the store has committed up to
 * store_seq (0: nothing to wait for) and this node's routes for its filters are written, `owner`
 * is told to drop its copy, and sends back what queued there meanwhile. */
void cluster_take_confirm(cluster_t *c, struct session *s, const char *owner, uint64_t store_seq);
/* Worker 0, each loop turn: sessions moved away whose grace period is over are ended here. */
void cluster_tick(struct worker *w);
/* Worker w: an INBOX_KICK_CONN the cluster sent (reply_fd < 0) is done: the session's connection
 * here is closed, so its move goes on. */
void cluster_kicked(struct worker *w, const struct inbox_item *it);
/* Worker w: an INBOX_CLUSTER item a cluster thread posted (a forwarded PUBLISH, a retained message
 * of the bucket, a kick). */
void cluster_on_item(struct worker *w, struct inbox_item *it);
/* Any thread: free an INBOX_CLUSTER item, or an INBOX_KICK_CONN of the cluster (reply_fd < 0),
 * that will not be handled (shutdown). */
void cluster_item_free(struct inbox_item *it);

/* For $SYS and /metrics: a consistent-enough read of the counters (any thread). */
typedef struct cluster_stats {
    const char *node;
    int link_up;                 /* connected to a NATS server now */
    unsigned long nodes;         /* nodes that announced themselves, this one included */
    unsigned long fwd_sent, fwd_received; /* PUBLISHes sent to / received from other nodes */
    unsigned long fwd_bytes_sent, fwd_bytes_received;
    unsigned long kv_errors;     /* bucket writes that failed and were retried */
} cluster_stats_t;
void cluster_stats(cluster_t *c, cluster_stats_t *out);

#endif
