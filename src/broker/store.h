/* store.h -- durable broker state (`persistence true`): persistent sessions, their subscriptions,
 * queued and in-flight QoS 1/2 messages and inbound QoS 2 packet ids, and retained messages, in an
 * SQLite database.
 *
 * Design: a journal with group commit. A thread that changes durable state in memory appends a
 * record to the store's queue at that moment, under the lock that orders the change (the session's
 * lock, the retained store's write lock), so the journal's order is the memory's order. The store's
 * own thread takes the whole queue, applies it in one transaction, commits, and then publishes the
 * sequence number it reached (store_committed). Nothing on a worker waits for the disk.
 *
 * What must not be seen before it is durable waits instead on the connection: a PUBACK, PUBREC,
 * PUBREL, PUBCOMP, SUBACK or UNSUBACK, and a QoS 2 PUBLISH to a persistent session, are appended
 * behind a hold (conn_hold) when the thread has records not yet committed (store_need); the bytes
 * from the hold on are written once the store has committed that far. So a client that got a PUBACK
 * knows its message survives `kill -9`.
 *
 * Only persistent sessions (session expiry > 0, or 3.x clean session 0) are written (with their
 * will and the time they went offline), and only their QoS 1 and 2 messages: clean sessions and QoS 0 live in memory only, as in Mosquitto. A
 * message's first durable reference in a session's queue stores it in that queue row itself (deleted
 * with the row); any further durable reference (another session, a will, a retained message) writes
 * it once to the msgs table, deleted when the last in-memory reference goes (msg_release calls the
 * hook of msg_hook.h, which the store sets when it opens).
 *
 * Files: store.c (this interface: the broker's changes as records) over journal.c (the queue, the
 * thread and the SQL; no broker knowledge); recovery.c reads the database back at start-up. */
#ifndef TOMBO_BROKER_STORE_H
#define TOMBO_BROKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/msg.h"
#include "broker/recovery.h" /* store_load, for the callers that reach it through this header */
#include "broker/session.h"

struct broker;
typedef struct store store_t;

/* Open (creating if needed) the database at `path`. NULL with a message in err on failure. */
store_t *store_open(const char *path, char *err, size_t errlen);
/* Start the store thread. */
int store_start(store_t *st, struct broker *b);
/* Write everything submitted so far and stop the thread. Records submitted afterwards (the
 * in-memory teardown at shutdown) are ignored, so stopping keeps the database as it was. */
void store_stop(store_t *st);
void store_free(store_t *st);

/* Records a thread makes between these two calls are committed in one transaction, never split
 * by a crash: an inbound QoS 2 id and the copies of its message queued for subscribers, a session
 * and its state. Nestable; st may be NULL. */
void store_group_begin(store_t *st);
void store_group_end(store_t *st);

/* The sequence number of the last record the store has committed. */
uint64_t store_committed(store_t *st);
/* Any thread: the histogram of commit durations (journal.h), for /metrics. */
struct journal_hist;
void store_commit_hist(store_t *st, struct journal_hist *out);
/* 0 when every record the calling thread submitted is committed, else the sequence number it must
 * wait for before sending what depends on them. */
uint64_t store_need(store_t *st);
/* The sequence number of the calling thread's last record, committed or not (0: none): equal before
 * and after a call when the call recorded nothing. */
uint64_t store_last(store_t *st);

/* Journal records. Each is called where the in-memory change happens, under the lock named. */
/* s->lock: the session became persistent, or its expiry, identity, will or connection changed
 * (connect, disconnect, will published); `full` also writes its
 * subscriptions, queued and in-flight messages and inbound QoS 2 ids (it was not persistent). */
void store_session_put(store_t *st, session_t *s, bool full);
void store_session_del(store_t *st, session_t *s);            /* s->lock */
void store_sub_put(store_t *st, session_t *s, const sess_sub_t *sub); /* s->lock */
void store_sub_del(store_t *st, session_t *s, const char *filter, size_t n); /* s->lock */
void store_out_put(store_t *st, session_t *s, const outmsg_t *o);   /* s->lock; o->seq is the key */
void store_out_state(store_t *st, session_t *s, const outmsg_t *o); /* s->lock */
void store_out_del(store_t *st, session_t *s, uint32_t seq);        /* s->lock */
void store_in2(store_t *st, session_t *s, uint16_t id, bool add);   /* s->lock */
/* The retained store's write lock: topic's retained message is now m (NULL: cleared), published by
 * src (NULL: no source; retain.h). */
struct retain_src;
void store_retain(store_t *st, const uint8_t *topic, size_t n, msg_t *m, const struct retain_src *src);
/* msg_release (through msg_hook.h): the last reference to a stored message is gone. */
void store_msg_gone(store_t *st, uint64_t id);
/* cluster_durability jetstream (cluster_js.c), in the store group of the routing it vouches for:
 * every stream message from `origin` with a cluster sequence in lo..hi was routed here (row
 * (origin, lo), replaced as hi grows). store_js_unsee deletes the row (origin, lo). */
void store_js_seen(store_t *st, uint64_t origin, uint64_t lo, uint64_t hi);
void store_js_unsee(store_t *st, uint64_t origin, uint64_t lo);
/* Before store_start: each row store_js_seen wrote (and no unsee deleted) to `each`. 0, or an SQLite
 * error code. */
int store_js_seen_load(store_t *st, void (*each)(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi), void *ctx);

/* For recovery.c, before the thread starts: the broker the store serves, the journal under it,
 * and a message read back from its row `id` (it is stored already). */
struct journal;
void store_bind(store_t *st, struct broker *b);
struct journal *store_journal(store_t *st);
void store_msg_loaded(store_t *st, msg_t *m, uint64_t id);

#endif
