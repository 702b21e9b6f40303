/* test_broker_session.c -- unit tests of sessions (src/broker/session.c, registry.c) on a broker_t
 * built by hand (two workers initialised, none started; no listener, no socket): the registry, the
 * queueing rules of session_deliver for offline and connected sessions, the backlog counters, the
 * acknowledgement state machine of in-flight messages, inbound QoS 2 dedupe and session_end.
 * A connection is a zeroed conn_t with a worker and no socket: session_flush only appends to its
 * output queue, which is decoded here; writing it to a socket is the black-box tests' business. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/slab.h"
#include "broker/backpressure.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/registry.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "mqtt/mqtt.h"
#include "fixture.h"
#include "unit.h"

#define B(s) ((mqtt_bytes_t){(const uint8_t *)(s), (uint32_t)strlen(s)})

/* ---- the hand-built broker of fixture.h, with the queue limits under test ---- */

static broker_t *broker_up(uint32_t max_queued_messages, uint64_t max_queued_bytes, bool queue_qos0)
{
    broker_t *b = fixture_broker_new();
    b->cfg.max_queued_messages = max_queued_messages;
    b->cfg.max_queued_bytes = max_queued_bytes;
    b->cfg.queue_qos0_messages = queue_qos0;
    fixture_broker_start(b, 2, NULL);
    return b;
}

static msg_t *msg(const char *topic, const char *payload, uint8_t qos)
{
    return msg_new(B(topic), B(payload), qos, 0, NULL, 0);
}

static session_t *get(broker_t *b, const char *id, bool *existed)
{
    return registry_get(b, id, strlen(id), existed);
}

/* Items worker `from` deferred for worker `to`: their count, and how many are FLUSHes of s. */
static int outbox_items(worker_t *from, int to, session_t *s, int *flushes)
{
    int n = 0;
    *flushes = 0;
    for (inbox_batch_t *bt = from->outbox[to].newest; bt; bt = inbox_next(bt)) {
        for (uint32_t i = 0; i < bt->n; i++) {
            n++;
            if (bt->items[i].kind == INBOX_FLUSH_SESSION && bt->items[i].session == s)
                (*flushes)++;
        }
    }
    return n;
}

/* What worker `to` does with the FLUSHes worker `from` deferred (worker.c's process_items). */
/* The end of `from`'s loop turn: its staged deliveries pushed, its FLUSH requests run by `to`. */
static void run_outbox(worker_t *from, worker_t *to)
{
    session_stage_flush(from);
    inbox_batch_t *bt = inbox_chain_fifo(&from->outbox[to->index]);
    while (bt) {
        inbox_batch_t *next = inbox_next(bt);
        for (uint32_t i = 0; i < bt->n; i++) {
            inbox_item_t *it = &bt->items[i];
            if (it->kind != INBOX_FLUSH_SESSION)
                continue;
            conn_t *c = session_flush_target(it->session, to->index);
            if (c && c->state == CONN_ACTIVE)
                session_flush(it->session, c);
            session_release(it->session);
        }
        slab_free(bt);
        bt = next;
    }
}

/* A connection of worker w with no socket: session_flush encodes into c->out. */
static void conn_fake(conn_t *c, worker_t *w, uint8_t version) { fixture_conn(c, w, 77, version); }

/* The PUBLISHes in c's output, taken off it. */
typedef struct { uint16_t id; uint8_t qos, dup, type; char payload[32]; } seen_t;
static int take_output(conn_t *c, seen_t *out, int max)
{
    static uint8_t buf[4 << 20]; /* more than BP_OUT_HIGH: all of it, no packet cut */
    struct iovec iov[64];
    size_t n = 0;
    while (outq_pending(&c->out) > 0 && n < sizeof(buf)) {
        int k = outq_iov(&c->out, iov, 64, sizeof(buf) - n);
        size_t taken = 0;
        for (int i = 0; i < k; i++) {
            memcpy(buf + n + taken, iov[i].iov_base, iov[i].iov_len);
            taken += iov[i].iov_len;
        }
        outq_consume(&c->out, taken);
        n += taken;
    }
    CHECK_EQ(outq_pending(&c->out), 0);
    int got = 0;
    for (size_t off = 0; off < n;) {
        mqtt_header_t h;
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        if (got == max) {
            CHECK(!"more output than expected");
            break;
        }
        if (mqtt_header_parse(buf + off, n - off, &h) != 1 || off + h.header_len + h.remaining > n ||
            mqtt_decode(&h, buf + off + h.header_len, c->version, MQTT_FROM_SERVER, &p) != MQTT_RC_SUCCESS) {
            CHECK(!"undecodable output");
            break;
        }
        seen_t *s = &out[got++];
        memset(s, 0, sizeof(*s));
        s->type = p.type;
        s->id = p.id;
        if (p.type == MQTT_PUBLISH) {
            s->qos = p.publish.qos;
            s->dup = p.publish.dup;
            memcpy(s->payload, p.publish.payload.p, p.publish.payload.len < 31 ? p.publish.payload.len : 31);
        }
        off += h.header_len + h.remaining;
    }
    return got;
}

static int attach(session_t *s, conn_t *c, uint32_t inflight_max)
{
    session_login_t login = {.inflight_max = inflight_max};
    session_holder_t holder;
    return session_attach(s, c, &login, false, &holder);
}

/* ---- the tests ---- */

static void test_registry(void)
{
    broker_t *b = broker_up(1000, 0, false);
    CASE("registry_get creates a session, then finds the same one");
    bool existed = true;
    session_t *s = get(b, "alice", &existed);
    CHECK(!existed);
    CHECK(s != NULL);
    CHECK_STR(s->client_id, "alice");
    CHECK_EQ(s->client_id_len, 5);
    CHECK_EQ(atomic_load(&s->refs), 2); /* the registry's and ours */
    CHECK_EQ(atomic_load(&s->worker), -1);
    session_t *again = get(b, "alice", &existed);
    CHECK(existed);
    CHECK(again == s);
    CHECK_EQ(atomic_load(&s->refs), 3);
    session_release(again);
    session_t *other = get(b, "alicE", &existed); /* client ids are byte strings */
    CHECK(!existed);
    CHECK(other != s);
    CHECK_EQ(registry_count(b), 2);

    CASE("a client id with a NUL byte and an empty one are ids like any other");
    session_t *z = registry_get(b, "a\0b", 3, &existed);
    CHECK(!existed);
    session_t *z2 = registry_get(b, "a\0c", 3, &existed);
    CHECK(!existed && z2 != z);
    session_t *e = registry_get(b, "", 0, &existed);
    CHECK(!existed);
    CHECK_EQ(registry_count(b), 5);

    CASE("many ids: the table grows and finds them all; removal keeps the others reachable");
    session_t *many[3000];
    char id[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        many[i] = get(b, id, &existed);
        CHECK(!existed);
    }
    for (int i = 0; i < 3000; i += 2)
        session_end(many[i]);
    CHECK_EQ(registry_count(b), 5 + 1500);
    int found_ok = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        session_t *t = get(b, id, &existed);
        found_ok += (i % 2) ? (existed && t == many[i]) : (!existed && t != many[i]);
        session_release(t);
    }
    CHECK_EQ(found_ok, 3000);
    for (int i = 0; i < 3000; i++)
        session_release(many[i]);

    CASE("session_end takes it out of the registry; a new one comes in its place");
    session_end(s);
    CHECK_EQ(s->ended, 1);
    CHECK_EQ(atomic_load(&s->refs), 1); /* ours only */
    session_t *fresh = get(b, "alice", &existed);
    CHECK(!existed);
    CHECK(fresh != s);
    session_end(s); /* twice: nothing more */
    CHECK_EQ(atomic_load(&s->refs), 1);
    session_release(s);
    session_release(fresh);
    session_release(other);
    session_release(z);
    session_release(z2);
    session_release(e);
    fixture_broker_free(b); /* registry_free ends the rest (ASan: no leak) */
}

static void test_offline_queue(void)
{
    broker_t *b = broker_up(1000, 0, false);
    worker_t *w0 = &b->workers[0];
    bool existed;
    session_t *s = get(b, "off", &existed);
    msg_t *m0 = msg("t", "zero", 0), *m1 = msg("t", "one", 1), *m2 = msg("t", "two22", 2);

    CASE("offline: QoS 1 and 2 are queued, each with a reference, in the backlog");
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_deliver(w0, s, m2, 2, 1, NULL, 0);
    CHECK_EQ(s->queue.n, 2);
    CHECK_EQ(atomic_load(&m1->refs), 2);
    CHECK_EQ(atomic_load(&m2->refs), 2);
    CHECK_EQ(atomic_load(&s->backlog_n), 2);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 3 + 5);
    CHECK_EQ(s->queued_bytes, 3 + 5);
    CHECK(s->queue.v[s->queue.head].msg == m1);
    CHECK_EQ(s->queue.v[s->queue.head].state, OUT_QUEUED);
    CHECK_EQ(s->queue.v[(s->queue.head + 1) % s->queue.cap].retain, 1);
    CHECK(s->queue.v[s->queue.head].seq < s->queue.v[(s->queue.head + 1) % s->queue.cap].seq);
    int flushes;
    CHECK_EQ(outbox_items(w0, 0, s, &flushes) + outbox_items(w0, 1, s, &flushes), 0); /* nobody to flush */

    CASE("offline: QoS 0 is dropped (queue_qos0_messages false), not counted as a drop");
    session_deliver(w0, s, m0, 0, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 2);
    CHECK_EQ(atomic_load(&m0->refs), 1);
    CHECK_EQ(atomic_load(&s->backlog_n), 2);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 8);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 0);

    CASE("[MQTT-3.3.4-?] subscription identifiers travel with the queued message");
    uint32_t one[1] = {7}, three[3] = {1, 2, 3};
    session_deliver(w0, s, m1, 1, 0, one, 1);
    session_deliver(w0, s, m1, 1, 0, three, 3);
    outmsg_t *o3 = &s->queue.v[(s->queue.head + 2) % s->queue.cap];
    outmsg_t *o4 = &s->queue.v[(s->queue.head + 3) % s->queue.cap];
    CHECK_EQ(o3->n_ids, 1);
    CHECK_EQ(outmsg_ids(o3)[0], 7);
    CHECK_EQ(o4->n_ids, 3);
    CHECK(outmsg_ids(o4)[0] == 1 && outmsg_ids(o4)[1] == 2 && outmsg_ids(o4)[2] == 3);
    CHECK_EQ(atomic_load(&m1->refs), 4);

    CASE("the queue grows past its first ring size in order");
    for (int i = 0; i < 20; i++)
        session_deliver(w0, s, m1, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 24);
    bool ordered = true;
    for (uint32_t i = 1; i < s->queue.n; i++)
        ordered &= s->queue.v[(s->queue.head + i) % s->queue.cap].seq >
                   s->queue.v[(s->queue.head + i - 1) % s->queue.cap].seq;
    CHECK(ordered);
    CHECK_EQ(atomic_load(&s->backlog_n), 24);

    CASE("session_end empties the queue, gives every reference back, the backlog goes to 0");
    session_end(s);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(s->queued_bytes, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    CHECK_EQ(atomic_load(&m1->refs), 1);
    CHECK_EQ(atomic_load(&m2->refs), 1);

    CASE("an ended session takes nothing more");
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(atomic_load(&m1->refs), 1);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    session_release(s);
    msg_release(m0);
    msg_release(m1);
    msg_release(m2);
    fixture_broker_free(b);

    CASE("queue_qos0_messages: an offline session queues QoS 0 too");
    b = broker_up(1000, 0, true);
    s = get(b, "q0", &existed);
    m0 = msg("t", "zero", 0);
    session_deliver(&b->workers[0], s, m0, 0, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 1);
    CHECK_EQ(atomic_load(&m0->refs), 2);
    CHECK_EQ(atomic_load(&s->backlog_n), 1);
    session_release(s);
    msg_release(m0);
    fixture_broker_free(b); /* registry_free ends it with its queue (ASan: no leak) */
}

static void test_offline_limits(void)
{
    CASE("max_queued_messages bounds an offline session: the new message is dropped and counted");
    broker_t *b = broker_up(3, 0, false);
    bool existed;
    session_t *s = get(b, "lim", &existed);
    msg_t *m[5];
    char p[8];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "m%d", i);
        m[i] = msg("t", p, 1);
        session_deliver(&b->workers[0], s, m[i], 1, 0, NULL, 0);
    }
    CHECK_EQ(s->queue.n, 3);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 2);
    CHECK_EQ(atomic_load(&s->backlog_n), 3);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 6);
    for (int i = 0; i < 3; i++)
        CHECK(s->queue.v[(s->queue.head + i) % s->queue.cap].msg == m[i]); /* the oldest kept */
    CHECK_EQ(atomic_load(&m[3]->refs), 1);
    CHECK_EQ(atomic_load(&m[4]->refs), 1);
    CHECK_EQ(broker_settings(b)->bp.high_n, 3); /* the backpressure mark follows a smaller limit */
    session_end(s);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    session_release(s);
    for (int i = 0; i < 5; i++)
        msg_release(m[i]);
    fixture_broker_free(b);

    CASE("max_queued_bytes bounds it by payload bytes, but an empty queue takes any one message");
    b = broker_up(0, 10, false);
    s = get(b, "bytes", &existed);
    msg_t *big = msg("t", "0123456789ABCDEF", 1), *four = msg("t", "abcd", 1);
    session_deliver(&b->workers[0], s, big, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 1); /* 16 > 10, but alone */
    session_deliver(&b->workers[0], s, four, 1, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 1);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 1);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 16);
    session_end(s);
    session_release(s);
    s = get(b, "bytes2", &existed);
    session_deliver(&b->workers[0], s, four, 1, 0, NULL, 0);
    session_deliver(&b->workers[0], s, four, 1, 0, NULL, 0);
    session_deliver(&b->workers[0], s, four, 1, 0, NULL, 0); /* 12 > 10 */
    CHECK_EQ(s->queue.n, 2);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 2);
    CHECK_EQ(s->queued_bytes, 8);
    session_release(s);
    msg_release(big);
    msg_release(four);
    fixture_broker_free(b);
}

static void test_slow_consumer(void)
{
    CASE("a slow consumer: QoS 0 beyond the mark dropped on the way, QoS 1 bounded by max_queued_messages");
    broker_t *b = broker_up(100, 0, false);
    worker_t *w0 = &b->workers[0], *w1 = &b->workers[1];
    bool existed;
    session_t *s = get(b, "slow", &existed);
    conn_t c;
    conn_fake(&c, w1, MQTT_V311);
    CHECK_EQ(attach(s, &c, 1), SESSION_ATTACHED);
    CHECK_EQ(broker_settings(b)->bp.high_n, 100);
    atomic_store(&s->slow, 1); /* as bp_after_drain / bp_check_paused decide after BP_SLOW_MS */
    msg_t *m0 = msg("t", "q0", 0), *m1 = msg("t", "q1", 1);
    for (int i = 0; i < 150; i++)
        session_deliver(w0, s, m0, 0, 0, NULL, 0); /* the mark counts what w0 staged too */
    session_stage_flush(w0);
    CHECK_EQ(atomic_load(&s->backlog_n), 100);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 50);
    for (int i = 0; i < 150; i++)
        session_deliver(w0, s, m1, 1, 0, NULL, 0); /* not dropped on the way: decided when queued */
    session_stage_flush(w0);
    CHECK_EQ(atomic_load(&s->backlog_n), 250);
    run_outbox(w0, w1);
    CHECK_EQ(atomic_load(&b->msgs_dropped), 50 + 150); /* the queue was full of QoS 0 */
    static seen_t out[512];
    CHECK_EQ(take_output(&c, out, 512), 100);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    CHECK_EQ(atomic_load(&s->slow), 0); /* drained below the low mark: an ordinary receiver again */
    CHECK_EQ(atomic_load(&m0->refs), 1);
    CHECK_EQ(atomic_load(&m1->refs), 1);
    uint32_t expiry;
    CHECK(session_detach_conn(s, &c, &expiry));
    outq_free(&c.out);
    session_release(s);
    msg_release(m0);
    msg_release(m1);
    fixture_broker_free(b);
}

static void test_qos2_inbound(void)
{
    broker_t *b = broker_up(1000, 0, false);
    bool existed, dup;
    session_t *s = get(b, "q2", &existed);
    CASE("[MQTT-4.3.3-9] inbound QoS 2: a packet id is taken once until PUBREL");
    CHECK_EQ(session_qos2_pending(s, 5, &dup), 0);
    CHECK(!dup);
    CHECK(session_qos2_begin(s, 5));
    CHECK(!session_qos2_begin(s, 5)); /* a resent PUBLISH: not delivered again */
    CHECK(session_qos2_begin(s, 6));
    CHECK(session_qos2_begin(s, 65535));
    CHECK_EQ(session_qos2_pending(s, 5, &dup), 3);
    CHECK(dup);
    session_qos2_pending(s, 7, &dup);
    CHECK(!dup);
    CASE("PUBREL forgets it; a second PUBREL finds nothing; the id may be used again");
    CHECK(session_qos2_end(s, 5));
    CHECK(!session_qos2_end(s, 5));
    CHECK(!session_qos2_end(s, 9));
    CHECK_EQ(session_qos2_pending(s, 5, &dup), 2);
    CHECK(!dup);
    CHECK(session_qos2_begin(s, 5));
    CHECK(session_qos2_end(s, 65535));
    CASE("session_end forgets every id");
    session_end(s);
    CHECK_EQ(session_qos2_pending(s, 6, &dup), 0);
    CHECK(!dup);
    session_release(s);
    fixture_broker_free(b);
}

/* An in-flight entry as the store restores it. */
static void restore(session_t *s, msg_t *m, uint16_t id, uint8_t qos, uint8_t state, uint32_t seq)
{
    outmsg_t o = {.msg = m, .id = id, .qos = qos, .state = state, .seq = seq};
    session_restore_out(s, &o, NULL, 0);
}

static void test_acks(void)
{
    broker_t *b = broker_up(1000, 0, false);
    bool existed;
    session_t *s = get(b, "acks", &existed);
    msg_t *m1 = msg("t", "q1", 1), *m2 = msg("t", "q2", 2);

    CASE("restored in-flight entries: in flight with DUP, their ids taken, references held");
    restore(s, m1, 10, 1, OUT_WAIT_PUBACK, 1);
    restore(s, m2, 11, 2, OUT_WAIT_PUBREC, 2);
    restore(s, NULL, 12, 2, OUT_WAIT_PUBCOMP, 3); /* only the id is left of it */
    CHECK_EQ(s->inflight.n, 3);
    CHECK_EQ(s->inflight_live, 3);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(s->out_seq, 3);
    CHECK_EQ(s->inflight.v[s->inflight.head].dup, 1);
    CHECK_EQ(atomic_load(&m1->refs), 2);
    CHECK_EQ(atomic_load(&m2->refs), 2);
    CHECK_EQ(atomic_load(&s->backlog_n), 0); /* in flight is not backlog */

    CASE("an acknowledgement of the wrong kind or an unknown id changes nothing");
    CHECK(!session_puback(s, 11));     /* a QoS 2 message */
    CHECK(!session_pubcomp(s, 10));    /* a QoS 1 message */
    CHECK(!session_pubcomp(s, 11));    /* PUBCOMP before PUBREC */
    CHECK(!session_puback(s, 99));
    CHECK(!session_pubrec(s, 10, false));
    CHECK(!session_puback(s, 0));
    CHECK_EQ(s->inflight_live, 3);

    CASE("[MQTT-4.3.2] PUBACK ends a QoS 1 delivery: reference back, slot freed, once");
    CHECK(session_puback(s, 10));
    CHECK_EQ(atomic_load(&m1->refs), 1);
    CHECK_EQ(s->inflight_live, 2);
    CHECK_EQ(s->inflight.n, 2); /* the head went */
    CHECK(!session_puback(s, 10));

    CASE("[MQTT-4.3.3] PUBREC keeps only the id until PUBCOMP; a repeated PUBREC is accepted");
    CHECK(session_pubrec(s, 11, false));
    CHECK_EQ(atomic_load(&m2->refs), 1); /* the message is delivered */
    CHECK_EQ(s->inflight_live, 2);
    CHECK_EQ(s->inflight.v[s->inflight.head].state, OUT_WAIT_PUBCOMP);
    CHECK(s->inflight.v[s->inflight.head].msg == NULL);
    CHECK(session_pubrec(s, 11, false));
    CHECK(!session_puback(s, 11));
    CHECK(session_pubcomp(s, 11));
    CHECK(!session_pubcomp(s, 11));
    CHECK(session_pubcomp(s, 12));
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(s->inflight_live, 0);

    CASE("a PUBREC with a failure reason ends the flow at once");
    restore(s, m2, 20, 2, OUT_WAIT_PUBREC, 4);
    CHECK(session_pubrec(s, 20, true));
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(atomic_load(&m2->refs), 1);
    CHECK(!session_pubcomp(s, 20));

    CASE("out-of-order acknowledgements leave holes that go when the head is acknowledged");
    restore(s, m1, 30, 1, OUT_WAIT_PUBACK, 5);
    restore(s, m1, 31, 1, OUT_WAIT_PUBACK, 6);
    restore(s, m1, 32, 1, OUT_WAIT_PUBACK, 7);
    CHECK(session_puback(s, 31));
    CHECK_EQ(s->inflight.n, 3);
    CHECK_EQ(s->inflight_live, 2);
    CHECK(!session_puback(s, 31)); /* the hole is not found again */
    CHECK(session_puback(s, 30));
    CHECK_EQ(s->inflight.n, 1);
    CHECK(session_puback(s, 32));
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(atomic_load(&m1->refs), 1);

    CASE("restore: a second entry with an id in flight, and a queued one, go to the queue");
    restore(s, m1, 40, 1, OUT_WAIT_PUBACK, 8);
    restore(s, m1, 40, 1, OUT_WAIT_PUBACK, 9);
    restore(s, m1, 0, 1, OUT_QUEUED, 10);
    restore(s, NULL, 0, 1, OUT_QUEUED, 11); /* nothing to send: ignored */
    CHECK_EQ(s->inflight.n, 1);
    CHECK_EQ(s->queue.n, 2);
    CHECK_EQ(s->queue.v[s->queue.head].id, 0);
    CHECK_EQ(s->queue.v[s->queue.head].state, OUT_QUEUED);
    CHECK_EQ(atomic_load(&s->backlog_n), 2);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 4);
    CHECK_EQ(s->out_seq, 10);
    CHECK_EQ(atomic_load(&m1->refs), 4);

    CASE("session_end empties flight and queue; acknowledgements after it find nothing");
    session_end(s);
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(s->inflight_live, 0);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    CHECK_EQ(atomic_load(&m1->refs), 1);
    CHECK(!session_puback(s, 40));
    session_release(s);
    msg_release(m1);
    msg_release(m2);
    fixture_broker_free(b);
}

static void test_subscriptions(void)
{
    broker_t *b = broker_up(1000, 0, false);
    bool existed;
    session_t *s = get(b, "subs", &existed);
    CASE("session_sub_add remembers a filter, replaces it on the same filter; remove forgets it");
    CHECK(!session_sub_add(s, (const uint8_t *)"a/+", 3, 1, 0));
    CHECK(!session_sub_add(s, (const uint8_t *)"b/#", 3, 0, 9));
    CHECK(session_sub_add(s, (const uint8_t *)"a/+", 3, 2, 4));
    CHECK_EQ(s->n_subs, 2);
    CHECK_EQ(s->subs[0].options, 2);
    CHECK_EQ(s->subs[0].sub_id, 4);
    CHECK(session_sub_remove(s, (const uint8_t *)"b/#", 3));
    CHECK(!session_sub_remove(s, (const uint8_t *)"b/#", 3));
    CHECK(!session_sub_remove(s, (const uint8_t *)"a/", 2));
    CHECK_EQ(s->n_subs, 1);
    CASE("session_end takes its subscriptions out of the tree");
    CHECK_EQ(subtree_add(b->subs, (const uint8_t *)"a/+", 3, s, 2, 4) >= 0, 1);
    CHECK_EQ(subtree_count(b->subs), 1);
    session_end(s);
    CHECK_EQ(subtree_count(b->subs), 0);
    CHECK_EQ(s->n_subs, 0);
    session_release(s);
    fixture_broker_free(b);
}

static void test_connected(void)
{
    broker_t *b = broker_up(1000, 0, false);
    worker_t *w0 = &b->workers[0], *w1 = &b->workers[1];
    bool existed;
    session_t *s = get(b, "on", &existed);
    conn_t c;
    conn_fake(&c, w1, MQTT_V311);
    int flushes;

    CASE("session_attach: the session is carried by c on worker 1, deliveries go lock-free");
    CHECK_EQ(attach(s, &c, 2), SESSION_ATTACHED);
    CHECK_EQ(atomic_load(&s->worker), 1);
    CHECK_EQ(atomic_load(&s->fast), 1);
    conn_t c2;
    conn_fake(&c2, w0, MQTT_V311);
    session_holder_t holder;
    session_login_t login = {0};
    CHECK_EQ(session_attach(s, &c2, &login, false, &holder), SESSION_BUSY);
    CHECK_EQ(holder.worker, 1);
    CHECK_EQ(holder.conn_id, 77);

    CASE("deliveries from worker 0 wait in its staged batch, then on `incoming` at the turn's end, counted, with one FLUSH for worker 1");
    msg_t *m1 = msg("t", "a1", 1), *m0 = msg("t", "b0", 0);
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_deliver(w0, s, m0, 0, 0, NULL, 0); /* QoS 0 to a connected session is delivered */
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    CHECK(atomic_load(&s->incoming) == NULL);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(outbox_items(w0, 1, s, &flushes), 0);
    CHECK_EQ(w0->n_staged, 1);
    session_stage_flush(w0);
    CHECK_EQ(w0->n_staged, 0);
    CHECK(atomic_load(&s->incoming) != NULL);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 4);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 8);
    CHECK_EQ(atomic_load(&m1->refs), 4);
    CHECK_EQ(outbox_items(w0, 1, s, &flushes), 1); /* one per turn, not one per message */
    CHECK_EQ(flushes, 1);
    CHECK_EQ(outbox_items(w0, 0, s, &flushes), 0);
    CHECK_EQ(atomic_load(&s->flush_pending), 1);

    CASE("worker 1's flush: in order, QoS 0 sent, QoS 1 in flight up to the window, backlog 0");
    run_outbox(w0, w1);
    CHECK(atomic_load(&s->incoming) == NULL);
    CHECK_EQ(s->inflight.n, 2);
    CHECK_EQ(s->inflight_live, 2);
    CHECK_EQ(s->queue.n, 1); /* the window is 2 */
    CHECK_EQ(atomic_load(&s->backlog_n), 1);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 2);
    CHECK_EQ(atomic_load(&s->flush_pending), 0);
    CHECK(w1->flush_list == &c);
    CHECK_EQ(atomic_load(&w1->msgs_out[0]) + atomic_load(&w1->msgs_out[1]) + atomic_load(&w1->msgs_out[2]), 3);
    seen_t out[8];
    int n = take_output(&c, out, 8);
    CHECK_EQ(n, 3);
    CHECK(out[0].qos == 1 && out[0].id == 1 && !out[0].dup && !strcmp(out[0].payload, "a1"));
    CHECK(out[1].qos == 1 && out[1].id == 2);
    CHECK(out[2].qos == 0 && out[2].id == 0 && !strcmp(out[2].payload, "b0"));
    CHECK_EQ(atomic_load(&m0->refs), 1);

    CASE("a PUBACK frees a slot; the next flush sends the queued message with the next id");
    CHECK(session_puback(s, 1));
    session_flush(s, &c);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    n = take_output(&c, out, 8);
    CHECK_EQ(n, 1);
    CHECK(out[0].qos == 1 && out[0].id == 3);

    CASE("[MQTT-4.4.0-1] session_resend: what is in flight goes again with DUP, PUBREL for PUBCOMP waits");
    msg_t *m2 = msg("t", "c2", 2);
    CHECK(session_puback(s, 2));
    session_deliver(w0, s, m2, 2, 0, NULL, 0);
    run_outbox(w0, w1);
    n = take_output(&c, out, 8);
    CHECK(n == 1 && out[0].qos == 2 && out[0].id == 4);
    CHECK(session_pubrec(s, 4, false));
    session_resend(s, &c);
    n = take_output(&c, out, 8);
    CHECK_EQ(n, 2);
    CHECK(out[0].type == MQTT_PUBLISH && out[0].id == 3 && out[0].dup == 1);
    CHECK(out[1].type == MQTT_PUBREL && out[1].id == 4);
    CHECK(session_puback(s, 3));
    CHECK(session_pubcomp(s, 4));
    CHECK_EQ(s->inflight.n, 0);

    CASE("an expired message waiting in the queue is dropped at flush, not sent");
    mqtt_props_t pr = {0};
    pr.has = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    pr.message_expiry = 1;
    msg_t *mx = msg_new(B("t"), B("xx"), 1, 0, &pr, 0);
    session_deliver(w0, s, mx, 1, 0, NULL, 0);
    w1->now = 5000;
    run_outbox(w0, w1);
    CHECK_EQ(take_output(&c, out, 8), 0);
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&mx->refs), 1);
    CHECK_EQ(atomic_load(&s->progress) > 0, 1);

    CASE("session_detach_conn: offline again, deliveries take the lock and QoS 0 is dropped");
    uint32_t expiry = 99;
    CHECK(!session_detach_conn(s, &c2, &expiry)); /* not the carrier */
    CHECK(session_detach_conn(s, &c, &expiry));
    CHECK_EQ(expiry, 0);
    CHECK_EQ(atomic_load(&s->worker), -1);
    CHECK_EQ(atomic_load(&s->fast), 0);
    CHECK(session_flush_target(s, 1) == NULL);
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_deliver(w0, s, m0, 0, 0, NULL, 0);
    CHECK_EQ(s->queue.n, 1);
    CHECK_EQ(outbox_items(w0, 1, s, &flushes), 0);

    CASE("lock-free deliveries still waiting when the session ends are dropped, backlog 0");
    CHECK_EQ(attach(s, &c, 0), SESSION_ATTACHED);
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_deliver(w0, s, m1, 1, 0, NULL, 0);
    session_stage_flush(w0); /* w0's turn ends */
    CHECK_EQ(atomic_load(&s->backlog_n), 3);
    session_end(s);
    CHECK(atomic_load(&s->incoming) == NULL);
    CHECK_EQ(s->queue.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    CHECK_EQ(atomic_load(&m1->refs), 1);
    run_outbox(w0, w1); /* the FLUSH on its way finds an ended session: nothing sent */
    CHECK_EQ(take_output(&c, out, 8), 0);
    CHECK(session_detach_conn(s, &c, &expiry));
    session_release(s);
    outq_free(&c.out);
    outq_free(&c2.out);
    msg_release(m0);
    msg_release(m1);
    msg_release(m2);
    msg_release(mx);
    fixture_broker_free(b);
}

static void test_attach_will_timers(void)
{
    broker_t *b = broker_up(1000, 0, false);
    bool existed;
    session_t *s = get(b, "w", &existed);
    conn_t c;
    conn_fake(&c, &b->workers[1], MQTT_V5);
    session_holder_t holder;

    CASE("[MQTT-3.1.2-4] a clean start on an existing session nobody holds: STALE, nothing changed");
    msg_t *will = msg("will/t", "bye", 1);
    session_login_t login = {.will = will, .username = strdup("u"), .will_delay = 30, .expiry = 60};
    CHECK_EQ(session_attach(s, &c, &login, true, &holder), SESSION_STALE);
    CHECK(s->will == NULL && s->username == NULL);
    CHECK_EQ(atomic_load(&s->worker), -1);

    CASE("attach takes the will and the identity; the session's expiry is the login's");
    CHECK_EQ(session_attach(s, &c, &login, false, &holder), SESSION_ATTACHED); /* takes will, username */
    CHECK(s->will == will);
    CHECK_STR(s->username, "u");
    CHECK_EQ(s->expiry, 60);
    uint32_t delay = 0;
    CHECK(session_will_pending(s, false, &delay));
    CHECK_EQ(delay, 30);

    CASE("[MQTT-3.14.2-2] DISCONNECT may not turn an expiry of 0 into another; otherwise it sets it");
    CHECK(session_disconnect_expiry(s, 120));
    CHECK_EQ(s->expiry, 120);
    CHECK(session_disconnect_expiry(s, 0));
    CHECK(!session_disconnect_expiry(s, 5));
    CHECK_EQ(s->expiry, 0);

    CASE("offline: the expiry and will timers are current only for the time they were set for");
    uint32_t expiry;
    CHECK(session_detach_conn(s, &c, &expiry));
    session_start_expiry(s, 60, 1000);
    session_will_schedule(s, 2000);
    CHECK(session_timer_current(s, false, 1000));
    CHECK(!session_timer_current(s, false, 999));
    CHECK(session_timer_current(s, true, 2000));
    CHECK(!session_timer_current(s, true, 1000));
    session_start_expiry(s, UINT32_MAX, 5000); /* never: the earlier deadline stays (not rescheduled) */
    CHECK(!session_timer_current(s, false, 5000));

    CASE("[MQTT-3.1.3-9] a new connection cancels the delayed will: the timer is no longer current");
    msg_t *will2 = msg("will/t", "bye2", 0);
    session_login_t login2 = {.will = will2, .expiry = 60};
    CHECK_EQ(session_attach(s, &c, &login2, false, &holder), SESSION_ATTACHED);
    CHECK(s->will == will2);
    CHECK(!session_timer_current(s, true, 2000)); /* connected */
    /* the old will, whose only reference the session had, is freed (ASan: no leak) */
    CHECK(session_detach_conn(s, &c, &expiry));

    CASE("session_take_will hands the will over once; a normal DISCONNECT discards it");
    msg_t *taken = session_take_will(s);
    CHECK(taken == will2);
    CHECK(session_take_will(s) == NULL);
    msg_release(taken);
    CHECK(!session_will_pending(s, true, &delay));
    session_release(s);
    fixture_broker_free(b);
}

/* ---- deliveries from another thread while the owner flushes and acknowledges (run under TSan) ---- */

#define PRODUCED 20000

struct producer {
    broker_t *b;
    session_t *s;
};

/* Worker 0's side: build and deliver, hand the FLUSHes over every few messages (a loop turn). */
static void *produce(void *arg)
{
    struct producer *p = arg;
    worker_t *w0 = &p->b->workers[0];
    slab_thread_attach(w0->pool);
    char payload[16];
    for (int i = 0; i < PRODUCED; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        msg_t *m = msg("t", payload, (uint8_t)(i % 2));
        session_deliver(w0, p->s, m, (uint8_t)(i % 2), 0, NULL, 0);
        msg_release(m);
        if (i % 16 == 15) { /* a loop turn ends */
            session_stage_flush(w0);
            inbox_push(&p->b->workers[1].inbox, &w0->outbox[1]);
        }
    }
    session_stage_flush(w0);
    inbox_push(&p->b->workers[1].inbox, &w0->outbox[1]);
    slab_thread_attach(NULL);
    return NULL;
}

static void test_cross_thread(void)
{
    CASE("deliveries from another worker's thread arrive once each, in order, while the owner flushes and acks");
    broker_t *b = broker_up(1000, 0, false);
    worker_t *w1 = &b->workers[1];
    slab_thread_attach(w1->pool); /* this thread plays worker 1, the owner */
    bool existed;
    session_t *s = get(b, "x", &existed);
    conn_t c;
    conn_fake(&c, w1, MQTT_V311);
    CHECK_EQ(attach(s, &c, 0), SESSION_ATTACHED);
    struct producer p = {b, s};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    int got = 0, in_order = 1, spins = 0;
    static seen_t out[PRODUCED];
    while (got < PRODUCED && spins < 2000000) {
        spins++;
        inbox_batch_t *bt = inbox_take(&w1->inbox);
        while (bt) {
            inbox_batch_t *next = inbox_next(bt);
            for (uint32_t i = 0; i < bt->n; i++) {
                session_t *fs = bt->items[i].session;
                conn_t *fc = session_flush_target(fs, 1);
                if (fc)
                    session_flush(fs, fc);
                session_release(fs);
            }
            slab_free(bt);
            bt = next;
        }
        int n = take_output(&c, out, PRODUCED);
        for (int i = 0; i < n; i++) {
            in_order &= atoi(out[i].payload) == got;
            if (out[i].qos)
                in_order &= session_puback(s, out[i].id);
            got++;
        }
        slab_collect();
    }
    pthread_join(t, NULL);
    CHECK_EQ(got, PRODUCED);
    CHECK(in_order);
    CHECK_EQ(s->inflight.n, 0);
    CHECK_EQ(atomic_load(&s->backlog_n), 0);
    CHECK_EQ(atomic_load(&s->backlog_bytes), 0);
    uint32_t expiry;
    CHECK(session_detach_conn(s, &c, &expiry));
    outq_free(&c.out);
    session_release(s);
    fixture_broker_free(b);
}

int main(void)
{
    test_cross_thread();
    test_attach_will_timers();
    test_registry();
    test_offline_queue();
    test_offline_limits();
    test_slow_consumer();
    test_qos2_inbound();
    test_acks();
    test_subscriptions();
    test_connected();
    UNIT_DONE();
}
