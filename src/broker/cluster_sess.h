/* cluster_sess.h -- `cluster_sessions jetstream`: every persistent session's state, as the store
 * commits it, also copied to the JetStream bucket tombo_sessions, so that another node can take
 * the session when its node was killed (design note in cluster_sess.c, guide docs/cluster.md).
 *
 * Without `cluster_sessions jetstream`, b->cluster_sess is NULL and nothing here runs. */
#ifndef TOMBO_BROKER_CLUSTER_SESS_H
#define TOMBO_BROKER_CLUSTER_SESS_H

#include <stddef.h>
#include <stdint.h>

struct broker;
struct worker;
struct session;
struct inbox_item;
struct jrec;

typedef struct cluster_sess cluster_sess_t;

/* inbox_item.rc of the INBOX_CLUSTER item this file handles (below cluster_js.h's CL_JS_ACK). */
enum { CL_SESS_DRAIN = 12 };

/* Broker's thread, from cluster_init once NATS is connected: open (or create) the bucket
 * tombo_sessions and set b->cluster_sess. Returns 0, or -1 after logging "Error: ...". */
int cluster_sess_init(struct broker *b);
/* Broker's thread, after the store's recovery: end the sessions restored from this node's store
 * whose client id another node has taken meanwhile (its owner in tombo_clients is not this node). */
void cluster_sess_recovered(struct broker *b);
/* The store's thread (journal hook, store.c): the batch v[0..n) is in the database; copy each
 * persistent session it touched to the bucket (or delete a session that ended here) and wait until
 * JetStream has them all, retrying, so that nothing the store acknowledges is missing there. */
void cluster_sess_mirror(struct broker *b, const struct jrec *v, size_t n);
/* Worker of a connection that took client id's session from the bucket because its node `owner`
 * did not answer: deliver to s the messages that wait for `owner` in the stream tombo_msgs (those
 * published up to stream sequence `upto` all; later ones only when they were not also sent here),
 * now and twice more while the other nodes learn this node's routes (a thread of this file). */
void cluster_sess_drain(struct broker *b, struct session *s, const char *owner, uint64_t upto);
/* Worker 0: an INBOX_CLUSTER item with rc CL_SESS_DRAIN; cluster_sess_item_free frees one not run. */
void cluster_sess_on_item(struct worker *w, struct inbox_item *it);
void cluster_sess_item_free(struct inbox_item *it);
/* Broker's thread, cluster_stop before NATS closes: stop the drain thread; and after: free. */
void cluster_sess_stop(struct broker *b);
void cluster_sess_free(struct broker *b);

#endif
