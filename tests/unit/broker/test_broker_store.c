/* test_broker_store.c -- unit tests of persistence (src/broker/store.c, journal.c, recovery.c) on a
 * temporary SQLite file: a persistent session, its subscriptions, queued messages, inbound QoS 2 ids,
 * will and a retained message are journaled, committed and read back into a fresh broker_t; a row
 * written and deleted within one batch never reaches the database (seen by SQL triggers on the file);
 * store_committed advances, a group is never split; a second store_open on the file fails. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/slab.h"
#include "broker/backpressure.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/journal.h"
#include "broker/registry.h"
#include "broker/session.h"
#include "broker/store.h"
#include "broker/worker.h"
#include "mqtt/mqtt.h"
#include "fixture.h"
#include "unit.h"

#define B(s) ((mqtt_bytes_t){(const uint8_t *)(s), (uint32_t)strlen(s)})

/* The hand-built broker of fixture.h with a store open on `path` and bound, as broker_init's
 * open_store does (store_load included). */
static broker_t *broker_up(const char *path)
{
    broker_t *b = fixture_broker_new();
    fixture_broker_start(b, 1, path);
    return b;
}

/* Until every record this thread made is committed (the store thread runs). */
static bool wait_committed(store_t *st)
{
    for (int i = 0; i < 5000 && store_need(st) != 0; i++)
        usleep(1000);
    return store_need(st) == 0;
}

static void conn_fake(conn_t *c, worker_t *w) { fixture_conn(c, w, 1, MQTT_V5); }

/* A persistent session (expiry > 0) carried by c, as a CONNECT makes it. */
static session_t *connect_durable(broker_t *b, const char *id, conn_t *c, const char *user, msg_t *will)
{
    bool existed;
    session_t *s = registry_get(b, id, strlen(id), &existed);
    session_login_t login = {.will = will, .username = user ? strdup(user) : NULL, .will_delay = 5,
                             .expiry = 3600};
    session_holder_t holder;
    CHECK_EQ(session_attach(s, c, &login, false, &holder), SESSION_ATTACHED);
    CHECK_EQ(s->persist, 1);
    return s;
}

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    CHECK_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    return db;
}

static long long db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    else
        fprintf(stderr, "SQL failed: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(q);
    return v;
}

static bool payload_is(const msg_t *m, const char *s) { return m && m->payload.len == strlen(s) && !memcmp(m->payload.p, s, m->payload.len); }

static int retained_seen;
static const char *retained_src; /* "client_id/username" of the last match ("-" for none) */
static void on_retained(void *m, const retain_src_t *src, void *arg)
{
    static char buf[64];
    if (payload_is(m, arg))
        retained_seen++;
    if (src)
        snprintf(buf, sizeof(buf), "%s/%s", src->client_id, src->username ? src->username : "(none)");
    retained_src = src ? buf : "-";
    msg_release(m);
}

static char dir[64];
static char path[128];

static void test_round_trip(void)
{
    snprintf(path, sizeof(path), "%s/round.db", dir);
    broker_t *b = broker_up(path);
    store_t *st = b->store;
    worker_t *w0 = &b->workers[0];
    conn_t c;
    conn_fake(&c, w0);

    CASE("a persistent session with a will, subscriptions, queued messages and a QoS 2 id is journaled");
    msg_t *will = msg_new(B("will/t"), B("bye"), 1, 0, NULL, 0);
    session_t *s = connect_durable(b, "dur", &c, "bob", will); /* the session takes our reference */
    CHECK(session_sub_add(s, (const uint8_t *)"a/+", 3, 1, 7) == false);
    subtree_add(b->subs, (const uint8_t *)"a/+", 3, s, 1, 7);
    session_sub_add(s, (const uint8_t *)"gone/#", 6, 0, 0);
    session_sub_remove(s, (const uint8_t *)"gone/#", 6);
    CHECK(session_qos2_begin(s, 9));
    msg_t *f1 = msg_new(B("a/f"), B("f1"), 1, 0, NULL, 0), *f2 = msg_new(B("a/f"), B("f2"), 2, 0, NULL, 0);
    session_deliver(w0, s, f1, 1, 0, NULL, 0);
    session_deliver(w0, s, f2, 2, 0, NULL, 0);
    session_flush(s, &c); /* in flight as ids 1 and 2 */
    CHECK(session_pubrec(s, 2, false)); /* 2 waits for PUBCOMP, its message delivered */
    CHECK_EQ(s->inflight.n, 2);
    uint32_t expiry;
    CHECK(session_detach_conn(s, &c, &expiry));
    CHECK_EQ(expiry, 3600);
    session_start_expiry(s, expiry, now_ms() + 3600 * 1000);
    msg_t *m1 = msg_new(B("a/x"), B("m1"), 1, 0, NULL, 0), *m2 = msg_new(B("a/y"), B("m2"), 2, 0, NULL, 0);
    msg_t *m0 = msg_new(B("a/z"), B("m0"), 0, 0, NULL, 0);
    uint32_t ids[2] = {7, 8};
    session_deliver(w0, s, m1, 1, 0, ids, 2);
    session_deliver(w0, s, m2, 2, 1, NULL, 0);
    session_deliver(w0, s, m0, 0, 0, NULL, 0); /* offline QoS 0: not kept, not stored */
    mqtt_props_t pr = {0};
    pr.has = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    pr.message_expiry = 100;
    msg_t *mx = msg_new(B("a/e"), B("mx"), 1, 0, &pr, now_ms());
    session_deliver(w0, s, mx, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 3);
    /* each one's first durable reference: kept in its queue row, no msgs row */
    CHECK(m1->store_inline && m2->store_inline && m1->store_id == 0 && m2->store_id == 0);
    CHECK_EQ(m0->store_id, 0);
    CHECK_EQ(m0->store_inline, 0);

    CASE("a clean session's state is not journaled");
    bool existed;
    session_t *cs = registry_get(b, "clean", 5, &existed);
    session_sub_add(cs, (const uint8_t *)"c/#", 3, 1, 0);
    session_deliver(w0, cs, m1, 1, 0, NULL, 0);
    CHECK_EQ(cs->persist, 0);

    CASE("a retained message, through the retained store's observer");
    msg_t *mr = msg_new(B("r/1"), B("kept"), 1, 1, NULL, 0);
    retain_src_t *rsrc = retain_src_new("pub1", 4, "alice", 5, b->auth[0]);
    CHECK_EQ(retain_set(b->retained, (const uint8_t *)"r/1", 3, mr, rsrc), 0);
    retain_src_release(rsrc);
    CHECK(mr->store_id != 0);

    CASE("store_committed advances to the last record once the thread has run");
    CHECK_EQ(store_committed(st), 0);
    CHECK(store_need(st) != 0);
    CHECK_EQ(store_start(st, b), 0);
    CHECK(wait_committed(st));
    uint64_t c1 = store_committed(st);
    CHECK(c1 > 0);
    CHECK_EQ(store_need(st), 0);

    CASE("records of an open group wait for its end, and go in together");
    msg_t *mr2 = msg_new(B("r/2"), B("kept2"), 0, 1, NULL, 0);
    store_group_begin(st);
    CHECK_EQ(retain_set(b->retained, (const uint8_t *)"r/2", 3, mr2, NULL), 0);
    usleep(50 * 1000);
    CHECK(store_need(st) != 0);
    CHECK_EQ(store_committed(st), c1);
    store_group_end(st);
    CHECK(wait_committed(st));
    CHECK(store_committed(st) > c1);
    msg_release(f2); /* now the last reference */

    session_release(s);
    session_release(cs);
    msg_release(m0);
    msg_release(m1);
    msg_release(m2);
    msg_release(mr);
    msg_release(mr2);
    msg_release(mx);
    msg_release(f1);
    free(c.holds); /* the QoS 2 PUBLISH waited for the store (conn_hold_durable) */
    outq_free(&c.out);
    fixture_broker_free(b); /* store_stop first: ending the sessions in memory does not touch the file */

    CASE("the rows on the file, read with sqlite3");
    sqlite3 *db = db_open(path);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM sessions"), 1);
    CHECK_EQ(db_int(db, "SELECT expiry FROM sessions WHERE client_id = CAST('dur' AS BLOB)"), 3600);
    CHECK_EQ(db_int(db, "SELECT username = CAST('bob' AS BLOB) FROM sessions"), 1);
    CHECK_EQ(db_int(db, "SELECT offline_since IS NOT NULL FROM sessions"), 1);
    CHECK_EQ(db_int(db, "SELECT will_delay FROM sessions"), 5);
    CHECK_EQ(db_int(db, "SELECT will_msg_id IS NOT NULL FROM sessions"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM subs"), 1);
    CHECK_EQ(db_int(db, "SELECT options * 1000 + sub_id FROM subs WHERE filter = CAST('a/+' AS BLOB)"), 1007);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq"), 5);
    CHECK_EQ(db_int(db, "SELECT length(ids) FROM outq WHERE ids IS NOT NULL"), 8);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE msg_id IS NULL AND state = 3 AND pid = 2"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM inq2 WHERE pid = 9"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM retained"), 2);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM msgs"), 3); /* will, mr, mr2; f1, m1, m2, mx are in their outq rows */
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NOT NULL AND msg_id IS NULL"), 4);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NULL AND state = 3"), 1); /* f2: delivered */
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE expire_wall IS NOT NULL"), 1);
    CHECK_EQ(db_int(db, "PRAGMA user_version"), 4);
    CASE("a retained message's row keeps its source: client id, username and listener (or NULLs)");
    CHECK_EQ(db_int(db, "SELECT source_id = CAST('pub1' AS BLOB) AND source_username = CAST('alice' AS BLOB)"
                        " AND source_listener = 0 FROM retained WHERE topic = CAST('r/1' AS BLOB)"), 1);
    CHECK_EQ(db_int(db, "SELECT source_id IS NULL AND source_username IS NULL AND source_listener IS NULL"
                        " FROM retained WHERE topic = CAST('r/2' AS BLOB)"), 1);
    sqlite3_close(db);

    CASE("recovery into a fresh broker: the session, its state and the retained messages come back");
    b = broker_up(path);
    CHECK_EQ(registry_count(b), 1);
    s = registry_get(b, "dur", 3, &existed);
    CHECK(existed);
    CHECK_EQ(s->expiry, 3600);
    CHECK_STR(s->username, "bob");
    CHECK_EQ(s->persist, 1);
    CHECK(s->expire_at > 0);
    CHECK(payload_is(s->will, "bye"));
    CHECK_EQ(s->will_delay, 5);
    CHECK_EQ(s->n_subs, 1);
    CHECK(s->n_subs == 1 && s->subs[0].len == 3 && !memcmp(s->subs[0].filter, "a/+", 3));
    CHECK(s->n_subs == 1 && s->subs[0].options == 1 && s->subs[0].sub_id == 7);
    CHECK_EQ(subtree_count(b->subs), 1);
    CASE("[MQTT-4.4.0-1] in-flight messages come back in flight with their ids, to be resent");
    CHECK_EQ(s->inflight.n, 2);
    CHECK_EQ(s->inflight_live, 2);
    if (s->inflight.n == 2) {
        outmsg_t *i1 = &s->inflight.v[s->inflight.head], *i2 = &s->inflight.v[(s->inflight.head + 1) % s->inflight.cap];
        CHECK(payload_is(i1->msg, "f1") && i1->id == 1 && i1->state == OUT_WAIT_PUBACK && i1->dup == 1);
        CHECK(i2->msg == NULL && i2->id == 2 && i2->state == OUT_WAIT_PUBCOMP && i2->qos == 2);
    }
    CHECK(!session_puback(s, 2));
    CHECK(session_pubcomp(s, 2));
    CASE("queued messages come back queued, in order, with their expiry still counting");
    CHECK_EQ(s->queue.n, 3);
    if (s->queue.n == 3) {
        msg_t *e = s->queue.v[(s->queue.head + 2) % s->queue.cap].msg;
        CHECK(payload_is(e, "mx") && e->has_expiry);
        uint32_t left = msg_expiry_left(e, now_ms());
        CHECK(left >= 98 && left <= 100);
        outmsg_t *o1 = &s->queue.v[s->queue.head], *o2 = &s->queue.v[(s->queue.head + 1) % s->queue.cap];
        CHECK(payload_is(o1->msg, "m1") && o1->qos == 1 && o1->n_ids == 2);
        CHECK(outmsg_ids(o1)[0] == 7 && outmsg_ids(o1)[1] == 8);
        CHECK(payload_is(o2->msg, "m2") && o2->qos == 2 && o2->retain == 1);
        CHECK(o1->seq < o2->seq);
        CHECK(o1->msg->store_id == 0 && o1->msg->store_inline); /* its row holds it, as before */
    }
    CHECK_EQ(atomic_load(&s->backlog_n), 3);
    bool dup;
    CHECK_EQ(session_qos2_pending(s, 9, &dup), 1);
    CHECK(dup);
    CHECK_EQ(retain_count(b->retained), 2);
    retained_seen = 0;
    retain_match(b->retained, (const uint8_t *)"r/1", 3, on_retained, "kept");
    CHECK_STR(retained_src, "pub1/alice");
    retain_match(b->retained, (const uint8_t *)"r/2", 3, on_retained, "kept2");
    CHECK_STR(retained_src, "-");
    CHECK_EQ(retained_seen, 2);
    session_release(s);
    s = registry_get(b, "clean", 5, &existed);
    CHECK(!existed);
    session_end(s);
    session_release(s);
    fixture_broker_free(b);
}

/* Count, by triggers stored in the database itself, every row the journal's connection writes. */
static void add_triggers(const char *p)
{
    sqlite3 *db = db_open(p);
    char *e = NULL;
    CHECK_EQ(sqlite3_exec(db,
                          "CREATE TABLE seen(what TEXT);"
                          "CREATE TRIGGER seen_msg AFTER INSERT ON msgs BEGIN INSERT INTO seen VALUES('msg'); END;"
                          "CREATE TRIGGER seen_out AFTER INSERT ON outq BEGIN INSERT INTO seen VALUES('out'); END;"
                          "CREATE TRIGGER seen_upd AFTER UPDATE ON outq BEGIN INSERT INTO seen VALUES('upd'); END;"
                          "CREATE TRIGGER seen_odel AFTER DELETE ON outq BEGIN INSERT INTO seen VALUES('odel'); END;"
                          "CREATE TRIGGER seen_mdel AFTER DELETE ON msgs BEGIN INSERT INTO seen VALUES('mdel'); END;",
                          NULL, NULL, &e),
             SQLITE_OK);
    if (e)
        fprintf(stderr, "%s\n", e);
    sqlite3_free(e);
    sqlite3_close(db);
}

/* The store thread records a message's deletion itself when it gives back the last reference (the
 * one its MSG_ADD record held): after our own records are committed, one more record of ours and a
 * second wait make sure those are committed too (they were queued before it). */
static void sync_journal(store_t *st, session_t *s)
{
    session_qos2_begin(s, 4242);
    session_qos2_end(s, 4242);
    CHECK(wait_committed(st));
}

static void test_coalesce(void)
{
    snprintf(path, sizeof(path), "%s/coalesce.db", dir);
    broker_t *b = broker_up(path);
    store_t *st = b->store;
    add_triggers(path);
    worker_t *w0 = &b->workers[0];
    conn_t c;
    conn_fake(&c, w0);
    session_t *s = connect_durable(b, "co", &c, NULL, NULL);

    CASE("within one batch: a message queued, sent and acknowledged writes no outq and no msgs row");
    msg_t *gone = msg_new(B("t"), B("acked"), 1, 0, NULL, 0), *kept = msg_new(B("t"), B("unacked"), 1, 0, NULL, 0);
    /* As if another session's queue row held each already: this session's rows point to msgs rows
     * (test_inline covers the first reference, kept in the row). */
    gone->store_inline = kept->store_inline = 1;
    session_deliver(w0, s, gone, 1, 0, NULL, 0); /* persistent: queued under the lock, journaled */
    session_deliver(w0, s, kept, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 2);
    session_flush(s, &c); /* both in flight: OUT_STATE records */
    CHECK_EQ(s->inflight.n, 2);
    CHECK(session_puback(s, 1)); /* `gone` acknowledged: OUT_DEL */
    msg_release(gone);           /* its last reference: MSG_DEL */
    CHECK_EQ(store_committed(st), 0);
    CHECK_EQ(store_start(st, b), 0); /* the thread takes everything above as one batch */
    CHECK(wait_committed(st));
    sync_journal(st, s);
    sqlite3 *db = db_open(path);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'out'"), 1); /* `kept` only */
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'odel'"), 0);
    /* The MSG_ADD record holds a reference on its message until its batch is written, so the
     * MSG_DEL of the last release comes in a later batch: the journal drops a MSG_ADD that no
     * other record of its batch names and whose message has no other holder (drop_unused_msgs). */
    CASE("a message stored and acknowledged within one batch never writes its msgs row");
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'msg'"), 1); /* `kept` only */
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'mdel'"), 0);
    CASE("the OUT_STATE of a row written in the same batch is folded into its insert");
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'upd'"), 0);
    CHECK_EQ(db_int(db, "SELECT state * 100000 + pid FROM outq"), OUT_WAIT_PUBACK * 100000 + 2);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM msgs"), 1);

    CASE("across batches the same flow reaches the file: the delete follows the insert");
    CHECK(session_puback(s, 2));
    msg_release(kept);
    CHECK(wait_committed(st));
    sync_journal(st, s);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'odel'"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq"), 0);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM msgs"), 0);

    CASE("a row of an earlier batch sent and acknowledged within one batch: its UPDATE is not run, only the DELETE");
    long long upd = db_int(db, "SELECT count(*) FROM seen WHERE what = 'upd'");
    msg_t *late = msg_new(B("t"), B("late"), 1, 0, NULL, 0);
    session_deliver(w0, s, late, 1, 0, NULL, 0); /* queued, not sent: its row is written alone */
    CHECK(wait_committed(st));
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq"), 1);
    store_group_begin(st); /* one batch for both: a group is never split */
    session_flush(s, &c); /* OUT_STATE */
    CHECK_EQ(s->inflight.n, 1);
    CHECK(session_puback(s, s->inflight.v[s->inflight.head].id)); /* OUT_DEL */
    store_group_end(st);
    msg_release(late);
    CHECK(wait_committed(st));
    sync_journal(st, s);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'upd'"), upd);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'odel'"), 2);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq"), 0);

    CASE("two state changes of a row of an earlier batch within one batch: only the last is run");
    late = msg_new(B("t"), B("late2"), 2, 0, NULL, 0);
    session_deliver(w0, s, late, 2, 0, NULL, 0);
    CHECK(wait_committed(st));
    store_group_begin(st);
    session_flush(s, &c); /* OUT_STATE: sent, waiting for PUBREC */
    uint16_t pid = s->inflight.v[s->inflight.head].id;
    CHECK(session_pubrec(s, pid, false)); /* OUT_STATE: waiting for PUBCOMP, the packet cleared */
    store_group_end(st);
    CHECK(wait_committed(st));
    CHECK_EQ(db_int(db, "SELECT count(*) FROM seen WHERE what = 'upd'"), upd + 1);
    CHECK_EQ(db_int(db, "SELECT state FROM outq"), OUT_WAIT_PUBCOMP);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NULL AND msg_id IS NULL"), 1);
    CHECK(session_pubcomp(s, pid));
    msg_release(late);
    CHECK(wait_committed(st));
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq"), 0);
    sqlite3_close(db);

    CASE("session_end deletes the session's rows");
    uint32_t expiry;
    session_detach_conn(s, &c, &expiry);
    session_end(s);
    CHECK(wait_committed(st));
    db = db_open(path);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM sessions"), 0);
    sqlite3_close(db);
    session_release(s);
    outq_free(&c.out);
    free(c.holds); /* the QoS 2 PUBLISH waited for the store (conn_hold_durable) */
    fixture_broker_free(b);
}

static void test_one_broker_per_file(void)
{
    snprintf(path, sizeof(path), "%s/lock.db", dir);
    char err[512] = "";
    CASE("a second store_open on the same file fails while the first holds it (flock)");
    store_t *a = store_open(path, err, sizeof(err));
    CHECK(a != NULL);
    store_t *b = store_open(path, err, sizeof(err));
    CHECK(b == NULL);
    CHECK(strstr(err, "in use") != NULL);
    store_free(b);
    CASE("once the first is closed the file opens again");
    store_free(a);
    a = store_open(path, err, sizeof(err));
    CHECK(a != NULL);
    store_free(a);
    CASE("a path that cannot be opened fails with a message");
    err[0] = 0;
    CHECK(store_open("/nonexistent-dir/x/tombo.db", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x/tombo.db") != NULL);
}

/* A persistent session's queue row keeps its message itself when it is the message's first
 * durable reference; a second one (another session) gets a msgs row; both come back. */
static void test_inline(void)
{
    snprintf(path, sizeof(path), "%s/inline.db", dir);
    broker_t *b = broker_up(path);
    store_t *st = b->store;
    worker_t *w0 = &b->workers[0];
    conn_t c1, c2;
    conn_fake(&c1, w0);
    conn_fake(&c2, w0);
    session_t *s1 = connect_durable(b, "in1", &c1, NULL, NULL), *s2 = connect_durable(b, "in2", &c2, NULL, NULL);
    CASE("a message queued for one persistent session: in its outq row, no msgs row");
    msg_t *one = msg_new(B("t/1"), B("solo"), 1, 0, NULL, 0), *two = msg_new(B("t/2"), B("both"), 1, 0, NULL, 0);
    session_deliver(w0, s1, one, 1, 0, NULL, 0);
    CHECK(one->store_inline && one->store_id == 0);
    CASE("a message queued for two: the first row holds it, the second points to one msgs row");
    session_deliver(w0, s1, two, 1, 0, NULL, 0);
    session_deliver(w0, s2, two, 1, 0, NULL, 0);
    CHECK(two->store_inline && two->store_id != 0);
    CHECK_EQ(store_start(st, b), 0);
    CHECK(wait_committed(st));
    sqlite3 *db = db_open(path);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NOT NULL AND msg_id IS NULL"), 2);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NULL AND msg_id IS NOT NULL"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM msgs"), 1);
    sqlite3_close(db);
    session_release(s1);
    session_release(s2);
    msg_release(one);
    msg_release(two);
    outq_free(&c1.out);
    outq_free(&c2.out);
    fixture_broker_free(b);

    CASE("after a restart both sessions have their messages queued");
    b = broker_up(path);
    bool existed;
    s1 = registry_get(b, "in1", 3, &existed);
    s2 = registry_get(b, "in2", 3, &existed);
    CHECK_EQ(s1->queue.n, 2);
    CHECK_EQ(s2->queue.n, 1);
    if (s1->queue.n == 2 && s2->queue.n == 1) {
        CHECK(payload_is(s1->queue.v[s1->queue.head].msg, "solo"));
        CHECK(payload_is(s1->queue.v[(s1->queue.head + 1) % s1->queue.cap].msg, "both"));
        CHECK(payload_is(s2->queue.v[s2->queue.head].msg, "both"));
    }
    session_release(s1);
    session_release(s2);
    fixture_broker_free(b);
}

/* A database of format 1 (no outq.packet): upgraded in place on open, its rows read back. */
static void test_upgrade_v1(void)
{
    snprintf(path, sizeof(path), "%s/v1.db", dir);
    CASE("a version 1 database (outq without packet, retained without source) is upgraded to version 4 and its "
         "queue and retained message restored");
    /* The v1 message row: an MQTT 5 PUBLISH as store.c encodes it. */
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.publish.qos = 1;
    p.publish.topic = B("old/t");
    p.publish.payload = B("from v1");
    p.id = 1;
    size_t n = mqtt_encoded_len(&p, MQTT_V5);
    uint8_t *pkt = malloc(n);
    mqtt_encode(&p, MQTT_V5, pkt);
    sqlite3 *db = NULL;
    CHECK_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    char *e = NULL;
    /* journal.c's schema as of format 1 */
    CHECK_EQ(sqlite3_exec(db,
                          "CREATE TABLE msgs(id INTEGER PRIMARY KEY, packet BLOB NOT NULL, expire_wall INTEGER);"
                          "CREATE TABLE retained(topic BLOB PRIMARY KEY, msg_id INTEGER NOT NULL) WITHOUT ROWID;"
                          "CREATE TABLE sessions(client_id BLOB PRIMARY KEY, expiry INTEGER NOT NULL, username BLOB,"
                          " listener INTEGER NOT NULL, offline_since INTEGER, will_msg_id INTEGER,"
                          " will_delay INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
                          "CREATE TABLE subs(client_id BLOB, filter BLOB, options INTEGER NOT NULL,"
                          " sub_id INTEGER NOT NULL, PRIMARY KEY(client_id, filter)) WITHOUT ROWID;"
                          "CREATE TABLE outq(client_id BLOB, seq INTEGER, msg_id INTEGER, qos INTEGER NOT NULL,"
                          " retain INTEGER NOT NULL, state INTEGER NOT NULL, pid INTEGER NOT NULL, ids BLOB,"
                          " PRIMARY KEY(client_id, seq)) WITHOUT ROWID;"
                          "CREATE TABLE inq2(client_id BLOB, pid INTEGER, PRIMARY KEY(client_id, pid)) WITHOUT ROWID;"
                          "INSERT INTO sessions VALUES(CAST('v1' AS BLOB), 3600, NULL, 0, NULL, NULL, 0);"
                          "INSERT INTO outq VALUES(CAST('v1' AS BLOB), 1, 5, 1, 0, 0, 0, NULL);"
                          "INSERT INTO retained VALUES(CAST('old/t' AS BLOB), 5);"
                          "PRAGMA user_version = 1;",
                          NULL, NULL, &e),
             SQLITE_OK);
    if (e)
        fprintf(stderr, "%s\n", e);
    sqlite3_free(e);
    sqlite3_stmt *q = NULL;
    CHECK_EQ(sqlite3_prepare_v2(db, "INSERT INTO msgs(id, packet) VALUES (5, ?1)", -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_blob(q, 1, pkt, (int)n, SQLITE_STATIC);
    CHECK_EQ(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    free(pkt);

    broker_t *b = broker_up(path);
    bool existed;
    session_t *s = registry_get(b, "v1", 2, &existed);
    CHECK(existed);
    CHECK_EQ(s->queue.n, 1);
    if (s->queue.n == 1)
        CHECK(payload_is(s->queue.v[s->queue.head].msg, "from v1"));
    retained_seen = 0;
    retain_match(b->retained, (const uint8_t *)"old/#", 5, on_retained, "from v1");
    CHECK_EQ(retained_seen, 1);
    CHECK_STR(retained_src, "-"); /* no source: never re-checked */
    session_release(s);
    fixture_broker_free(b);
    db = db_open(path);
    CHECK_EQ(db_int(db, "PRAGMA user_version"), 4);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM js_seen"), 0); /* created empty */
    CHECK_EQ(db_int(db, "SELECT count(*) FROM retained WHERE source_id IS NULL AND source_listener IS NULL"), 1);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM outq WHERE packet IS NULL AND msg_id = 5"), 1);
    sqlite3_close(db);

    CASE("a database of a later format is refused with a message");
    snprintf(path, sizeof(path), "%s/v9.db", dir);
    CHECK_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[512] = "";
    CHECK(store_open(path, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "newer") != NULL);
}

static uint64_t seen_rows[8][3];
static int n_seen_rows;
static void on_seen(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi)
{
    (void)ctx;
    if (n_seen_rows < 8) {
        seen_rows[n_seen_rows][0] = origin;
        seen_rows[n_seen_rows][1] = lo;
        seen_rows[n_seen_rows][2] = hi;
    }
    n_seen_rows++;
}

/* cluster_durability jetstream's ranges of routed stream messages (cluster_js.c): one row per
 * (origin, lo), the batch's last hi written, 64-bit values kept, read back before the next start. */
static void test_js_seen(void)
{
    snprintf(path, sizeof(path), "%s/js_seen.db", dir);
    broker_t *b = broker_up(path);
    store_t *st = b->store;
    const uint64_t o1 = 0xF00DFACE12345678ull, o2 = 7, w1 = 1ull << 48;
    CASE("a range growing within one batch writes its last value; another key its own row; unsee deletes");
    for (uint64_t hi = w1 | 5; hi <= (w1 | 9); hi++)
        store_js_seen(st, o1, w1 | 5, hi);
    store_js_seen(st, o2, 3, 3);
    store_js_seen(st, o2, 10, 10);
    store_js_unsee(st, o2, 10);
    uint64_t last = store_last(st);
    CHECK(last != 0);
    CHECK_EQ(store_last(st), last); /* nothing recorded in between: equal */
    CHECK_EQ(store_start(st, b), 0);
    CHECK(wait_committed(st));
    sqlite3 *db = db_open(path);
    CHECK_EQ(db_int(db, "SELECT count(*) FROM js_seen"), 2);
    sqlite3_close(db);
    fixture_broker_free(b);

    CASE("the rows are read back, before the store starts, as the uint64 values written");
    char err[512];
    st = store_open(path, err, sizeof(err));
    CHECK(st != NULL);
    n_seen_rows = 0;
    CHECK_EQ(store_js_seen_load(st, on_seen, NULL), 0);
    CHECK_EQ(n_seen_rows, 2);
    int k1 = seen_rows[0][0] == o1 ? 0 : 1;
    CHECK(seen_rows[k1][0] == o1 && seen_rows[k1][1] == (w1 | 5) && seen_rows[k1][2] == (w1 | 9));
    CHECK(seen_rows[1 - k1][0] == o2 && seen_rows[1 - k1][1] == 3 && seen_rows[1 - k1][2] == 3);
    store_free(st);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tombo-unit-store-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_one_broker_per_file();
    test_round_trip();
    test_coalesce();
    test_inline();
    test_upgrade_v1();
    test_js_seen();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    UNIT_DONE();
}
