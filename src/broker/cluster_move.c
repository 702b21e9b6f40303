/* cluster_move.c -- sessions that move between the nodes of a cluster (docs/cluster.md).
 *
 * New node B, a CONNECT without clean start whose client id has no session here: the worker parks
 * the connection (WAIT_CLUSTER) and a taker thread reads the client id's owner A in tombo_clients,
 * then asks A on tombo.take.A (a request with a timeout: TAKE_TIMEOUT_MS). A's worker 0 closes the
 * client's connection there if it has one (INBOX_KICK_CONN, 0x8E on MQTT 5), exports the session
 * under its lock (session_move_out: it stays on A, marked moving) and answers with it. B's worker
 * imports it (session_wire_import: its filters enter B's tree, so B's route keys are queued), the
 * connection attaches (the store journals it whole) and gets CONNACK session present 1, and the
 * writer thread, after those route writes and the store's commit, confirms on tombo.took.A. A then
 * ends its copy (its routes go after B's are written) and answers on tombo.r.B with what queued for
 * the session on A since the export (the tail), which B delivers to it: all of it, also what was
 * forwarded to B too (B may have had it before the import, for another subscriber only); the
 * session's window on B (dedup.c, by cluster identity) drops what it has already.
 *
 * An owner that is alive but stuck (SIGSTOP, a long stall) does not answer within the timeout: B
 * gives the client the session's JetStream copy or a fresh one and says so on tombo.take.A without
 * a reply subject (take_gone); A, running again, ends its copy (move_drop), passing what it has for
 * the session on to B when B imported the copy. A also ends a session whose client id another node
 * wrote later than A did (the watch of tombo_clients: cluster_lost), unless it is moving. */
#include "broker/cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/cluster_sess.h"
#include "broker/inbox.h"
#include "broker/registry.h"
#include "broker/session_wire.h"
#include "broker/store.h"
#include "broker/worker.h"
#include "mqtt/packet.h"


/* Any thread: give a taker's answer to the waiting connection's worker. */
static void take_answer(cluster_t *c, const takeop_t *op, natsMsg *blob, const char *owner)
{
    take_reply_t *tr = xcalloc(1, sizeof(*tr));
    tr->blob = blob;
    if (owner)
        snprintf(tr->owner, sizeof(tr->owner), "%s", owner);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_TAKE_REPLY, .fd = op->fd, .conn_id = op->conn_id, .data = tr};
    worker_post(&c->b->workers[op->worker], &it);
}

/* Taker thread: the owner is dead; the session is its copy in JetStream (cluster_sessions jetstream). */
static void take_answer_copy(cluster_t *c, const takeop_t *op, natsMsg *blob, const char *owner, uint64_t upto)
{
    take_reply_t *tr = xcalloc(1, sizeof(*tr));
    tr->blob = blob;
    tr->from_js = true;
    tr->upto = upto;
    snprintf(tr->owner, sizeof(tr->owner), "%s", owner);
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_TAKE_REPLY, .fd = op->fd, .conn_id = op->conn_id, .data = tr};
    worker_post(&c->b->workers[op->worker], &it);
}

/* Taker thread: a persistent session starts on this node. Write the client id's key before the
 * connection gets its CONNACK, so that a CONNECT on another node right after it asks this node
 * for the session instead of reading an older owner or none (T5: connected on A, SUBACK, connected
 * on B at once; the write queued by cluster_client_connected can come later than B's read). The
 * queued write still follows and gives the session its revision; a failure here only logs: that
 * write is retried in order. */
static void claim(cluster_t *c, const char *key, const takeop_t *op)
{
    uint64_t rev = 0;
    natsStatus s = key ? kvStore_Put(&rev, c->kv[B_CLIENTS], key, c->node, (int)c->node_len) : NATS_NO_MEMORY;
    if (s != NATS_OK)
        log_printf(TLOG_WARNING, "Warning: cluster: client id %.*s not claimed before CONNACK (%s): a CONNECT "
                   "on another node meanwhile may start a new session.", (int)op->idlen, op->id,
                   natsStatus_GetText(s));
}

/* Taker thread: the owner did not answer the take request in time but its NATS connection is up
 * (a dead node's is gone: nats-server answers "no responders" at once). It is alive and stuck
 * (SIGSTOP, a long stall): once it runs again it must not keep the session this node now gives the
 * client. Tell it on the take subject itself, after the request (one subscription there: it sees
 * the two in this order), without a reply subject: [client id] NUL [this node, when it wants the
 * messages the owner has for the session: it imported the session's copy] NUL [0]. The owner
 * learns it from tombo_clients too (cluster_lost), but only once it is not moving the session. */
static void take_gone(cluster_t *c, const char *subj, const takeop_t *op, const char *owner, bool pass_on)
{
    size_t n = op->idlen + 1 + (pass_on ? c->node_len : 0) + 2;
    char *d = xmalloc(n);
    memcpy(d, op->id, op->idlen);
    d[op->idlen] = 0;
    if (pass_on)
        memcpy(d + op->idlen + 1, c->node, c->node_len);
    d[n - 2] = 0;
    d[n - 1] = '0';
    natsConnection_Publish(c->nc, subj, d, (int)n);
    free(d);
    log_printf(TLOG_NOTICE, "Cluster: node %s is up but did not answer in %d ms: client %.*s's session there is "
               "to end when it runs again.", owner, TAKE_TIMEOUT_MS, (int)op->idlen, op->id);
}

/* A taker: who has the session, and ask it. Every op gets an answer, within a bounded time (the
 * bucket read's and the request's timeouts). */
static void take_one(cluster_t *c, takeop_t *op)
{
    char *key = cluster_key_of(NULL, (const uint8_t *)op->id, op->idlen);
    char owner[65] = "";
    kvEntry *e = NULL;
    if (key && kvStore_Get(&e, c->kv[B_CLIENTS], key) == NATS_OK) {
        if (kvEntry_Operation(e) == kvOp_Put)
            snprintf(owner, sizeof(owner), "%s", kvEntry_ValueString(e) ? kvEntry_ValueString(e) : "");
        kvEntry_Destroy(e);
    }
    if (!owner[0] || !strcmp(owner, c->node)) { /* nobody has it, or we had it and it ended */
        claim(c, key, op);
        free(key);
        take_answer(c, op, NULL, NULL);
        return;
    }
    free(key);
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.take.%s", owner);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, c->nc, subj, op->id, (int)op->idlen, TAKE_TIMEOUT_MS);
    if (s != NATS_OK && c->b->cluster_sess) {
        uint64_t upto = 0;
        natsMsg *copy = cluster_sess_fetch(c, op->id, op->idlen, owner, &upto);
        if (copy) {
            if (s == NATS_TIMEOUT) /* alive but stuck: what it still has for the client follows it */
                take_gone(c, subj, op, owner, true);
            take_answer_copy(c, op, copy, owner, upto);
            return;
        }
    }
    if (s == NATS_TIMEOUT)
        take_gone(c, subj, op, owner, false);
    if (s != NATS_OK) {
        log_printf(TLOG_WARNING, "Warning: cluster: node %s did not answer (%s): client %.*s starts a new session.",
                   owner, natsStatus_GetText(s), (int)op->idlen, op->id);
        take_answer(c, op, NULL, NULL);
        return;
    }
    if (natsMsg_GetDataLength(reply) == 0) { /* it has no session to give */
        natsMsg_Destroy(reply);
        reply = NULL;
        key = cluster_key_of(NULL, (const uint8_t *)op->id, op->idlen);
        claim(c, key, op);
        free(key);
    }
    take_answer(c, op, reply, owner);
}

static void *taker_main(void *arg)
{
    cluster_t *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->t_lock);
        while (!c->t_head && !c->t_stop)
            pthread_cond_wait(&c->t_cond, &c->t_lock);
        takeop_t *op = c->t_head;
        if (op) {
            c->t_head = op->next;
            if (!c->t_head)
                c->t_tail = NULL;
        }
        bool stop = c->t_stop;
        pthread_mutex_unlock(&c->t_lock);
        if (!op)
            break;
        if (stop)
            take_answer(c, op, NULL, NULL); /* shutting down: the workers free it */
        else
            take_one(c, op);
        free(op);
    }
    return NULL;
}

void cluster_take(cluster_t *c, int worker, int fd, uint64_t conn_id, const char *id, size_t idlen)
{
    takeop_t *op = xcalloc(1, sizeof(*op) + idlen + 1);
    op->worker = worker;
    op->fd = fd;
    op->conn_id = conn_id;
    op->idlen = idlen;
    memcpy(op->id, id, idlen);
    pthread_mutex_lock(&c->t_lock);
    if (c->t_tail)
        c->t_tail->next = op;
    else
        c->t_head = op;
    c->t_tail = op;
    pthread_cond_signal(&c->t_cond);
    pthread_mutex_unlock(&c->t_lock);
}

void cluster_take_confirm(cluster_t *c, session_t *s, const char *owner, uint64_t store_seq)
{
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.took.%s", owner);
    kvop_t *op = xcalloc(1, sizeof(*op));
    op->bucket = OP_CONFIRM;
    op->key = xstrdup(subj);
    op->val = xmalloc(s->client_id_len ? s->client_id_len : 1);
    memcpy(op->val, s->client_id, s->client_id_len);
    op->len = (int)s->client_id_len;
    op->need = store_seq;
    cluster_queue_push(c, op);
    log_printf(TLOG_NOTICE, "Cluster: client %s took its session over from node %s.", s->client_id, owner);
}

/* nats.c threads: a move's message for this node, to worker 0 (one order for all of them). */
static void post_move(cluster_t *c, natsMsg *m, int rc)
{
    inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = (uint8_t)rc, .data = m};
    worker_post(&c->b->workers[0], &it);
}
static void on_take(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TAKE);
}
static void on_took(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TOOK);
}
static void on_tail(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    post_move(closure, m, CL_TAIL);
}

/* Worker 0 of the owner: another node asks for the session of the client id in m (it->fd: how
 * often its connection here was closed for it already). */
static void move_drop(worker_t *w, natsMsg *m, int kicks);

/* The session's client is connected here (worker kw, fd, conn_id cid): its worker closes that
 * connection with 0x8E first and gives m back to worker w (cluster_kicked), which handles m again.
 * False once that was tried TAKE_KICKS times: m is still the caller's. */
static bool kick_first(worker_t *w, int kw, int fd, uint64_t cid, natsMsg *m, int kicks)
{
    if (kicks >= TAKE_KICKS)
        return false;
    inbox_item_t it = {.kind = INBOX_KICK_CONN, .rc = MQTT_RC_SESSION_TAKEN_OVER, .fd = fd, .conn_id = cid,
                       .data = m, .reply_worker = w->index, .reply_fd = -1, .reply_id = (uint64_t)kicks + 1};
    worker_post(&w->b->workers[kw], &it);
    return true;
}

static void move_out(worker_t *w, natsMsg *m, int kicks)
{
    cluster_t *c = w->b->cluster;
    broker_t *b = w->b;
    if (!natsMsg_GetReply(m)) { /* not a request: the client went elsewhere (take_gone, cluster_lost) */
        move_drop(w, m, kicks);
        return;
    }
    const char *id = natsMsg_GetData(m);
    int idlen = natsMsg_GetDataLength(m);
    uint8_t *blob = NULL;
    size_t len = 0;
    session_t *s = idlen > 0 ? registry_find(b, id, (size_t)idlen) : NULL;
    if (s) {
        int kw, fd;
        uint64_t cid;
        if (session_conn_target(s, b->n_workers, &kw, &fd, &cid)) {
            if (kick_first(w, kw, fd, cid, m, kicks)) {
                session_release(s);
                return;
            }
        } else {
            session_snap_t snap;
            if (session_move_out(s, &snap, w->now, SESSION_MOVE_TIMEOUT_MS)) {
                blob = session_wire_encode(&snap, w->now, 0, &len);
                log_printf(TLOG_NOTICE, "Cluster: client %s's session (%u subscriptions, %u messages) is moving "
                                        "to another node.", s->client_id, snap.n_subs, snap.n_out);
                session_snap_free(&snap);
            }
        }
        session_release(s);
    }
    const char *reply = natsMsg_GetReply(m);
    if (reply) /* an empty answer: no session here (or a clean one): a fresh start there */
        natsConnection_Publish(c->nc, reply, blob ? blob : (const uint8_t *)"", (int)len);
    free(blob);
    natsMsg_Destroy(m);
}

void cluster_kicked(worker_t *w, const inbox_item_t *it)
{
    inbox_item_t back = {.kind = INBOX_CLUSTER, .rc = CL_TAKE, .fd = (int)it->reply_id, .data = it->data};
    worker_post(&w->b->workers[it->reply_worker], &back);
}

/* Send snap's messages for s (then freed) to the new node's `reply` subject:
 * [2: client id length][client id][session_wire]. Not those whose msg_t.cluster_to has node_bit
 * (forwarded to the new node as well: delivered there by its own route; 0: send them too), nor a
 * QoS 2 message the client has already (past PUBREC: only its PUBREL is in flight). Returns how
 * many went. */
static long send_snap(cluster_t *c, session_t *s, const char *reply, uint64_t node_bit, session_snap_t *snap,
                      int64_t now)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < snap->n_out; i++) {
        outmsg_t *o = &snap->out[i];
        if (!o->msg || o->state == OUT_WAIT_PUBCOMP || (o->msg->cluster_to & node_bit)) {
            session_snap_t one = {.out = o, .n_out = 1};
            session_snap_free_out(&one);
        } else {
            snap->out[kept++] = *o;
        }
    }
    snap->n_out = kept;
    long k = snap->n_out;
    if (k) {
        size_t len, idlen = s->client_id_len;
        uint8_t *out = session_wire_encode(snap, now, 2 + idlen, &len);
        out[0] = (uint8_t)(idlen >> 8);
        out[1] = (uint8_t)idlen;
        memcpy(out + 2, s->client_id, idlen);
        natsConnection_Publish(c->nc, reply, out, (int)len);
        free(out);
    }
    session_snap_free(snap);
    return k;
}

/* Send what queued for s since the export or the last tail (send_snap). Returns how many
 * messages, -1 when s no longer moves. */
static long send_tail(cluster_t *c, session_t *s, const char *reply, uint64_t node_bit, int64_t now)
{
    session_snap_t tail;
    if (!session_move_tail(s, &tail))
        return -1;
    return send_snap(c, s, reply, node_bit, &tail, now);
}

/* The bit of msg_t.cluster_to of the node of a "tombo.r.NODE" subject, 0 when none. */
static uint64_t tail_node_bit(cluster_t *c, const char *reply)
{
    if (!reply || strncmp(reply, "tombo.r.", 8))
        return 0;
    cnode_t *to = cluster_node_get(c, reply + 8, strlen(reply + 8));
    return to && to->index >= 0 ? 1ull << to->index : 0;
}

/* Worker 0 of the owner: the client of the session went to another node, which did not get the
 * session from here (m, without a reply subject: [client id] NUL [node] NUL [revision]):
 *   - revision 0: that node asked for it and gave up waiting (take_gone): this node was stuck. Its
 *     answer, if it made one once it ran again, went nowhere; the session ends here whatever
 *     state it is in, and, when `node` is named (it imported the session's copy from JetStream),
 *     every QoS 1/2 message it has goes there, where the session's window drops what it has.
 *   - a revision: the watch of tombo_clients saw another node write the client id after this
 *     node's last write (a CONNECT there: with clean start, or whose take did not reach here).
 *     The session ends unless it is moving (the move ends it) or a later write of ours exists.
 * A connection of the client still here is closed first (DISCONNECT 0x8E on MQTT 5), as for a
 * take. The session's routes go, and with persistence its stored copy (and its JetStream copy
 * when still this node's): nothing more is delivered to it here, and a later take finds nothing. */
static void move_drop(worker_t *w, natsMsg *m, int kicks)
{
    cluster_t *c = w->b->cluster;
    broker_t *b = w->b;
    const char *d = natsMsg_GetData(m);
    size_t n = (size_t)natsMsg_GetDataLength(m);
    const char *z1 = d ? memchr(d, 0, n) : NULL;
    const char *z2 = z1 ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - d)) : NULL;
    size_t idlen = z1 ? (size_t)(z1 - d) : 0;
    size_t nl = z2 ? (size_t)(z2 - z1 - 1) : 0;
    session_t *s = z2 && idlen && nl < 65 ? registry_find(b, d, idlen) : NULL;
    if (!s) {
        natsMsg_Destroy(m);
        return;
    }
    char node[65] = "";
    memcpy(node, z1 + 1, nl);
    node[nl] = 0;
    uint64_t rev = 0;
    for (const char *p = z2 + 1; p < d + n && *p >= '0' && *p <= '9'; p++)
        rev = rev * 10 + (uint64_t)(*p - '0');
    if (rev && !session_cluster_lost(s, rev)) {
        session_release(s);
        natsMsg_Destroy(m);
        return;
    }
    int kw, fd;
    uint64_t cid;
    if (session_conn_target(s, b->n_workers, &kw, &fd, &cid)) {
        if (!kick_first(w, kw, fd, cid, m, kicks))
            natsMsg_Destroy(m);
        session_release(s);
        return;
    }
    long k = 0;
    session_snap_t all;
    if (node[0] && session_move_all(s, &all)) {
        char reply[80];
        snprintf(reply, sizeof(reply), "tombo.r.%s", node);
        k = send_snap(c, s, reply, tail_node_bit(c, reply), &all, w->now);
    }
    session_end(s);
    if (rev)
        log_printf(TLOG_NOTICE, "Cluster: client %s connected on another node since it was here: its session here "
                   "ended.", s->client_id);
    else
        log_printf(TLOG_NOTICE, "Cluster: client %s's session was taken by node %s while this node did not "
                   "answer: it ended here (%ld messages passed on).", s->client_id, node[0] ? node : "?", k);
    session_release(s);
    natsMsg_Destroy(m);
}

void cluster_lost(cluster_t *c, session_t *s, uint64_t rev)
{
    if (!session_cluster_lost(s, rev))
        return;
    char tail[24];
    int tl = snprintf(tail, sizeof(tail), "%llu", (unsigned long long)rev);
    size_t n = s->client_id_len + 2 + (size_t)tl;
    char *d = xmalloc(n);
    memcpy(d, s->client_id, s->client_id_len);
    d[s->client_id_len] = 0;
    d[s->client_id_len + 1] = 0;
    memcpy(d + s->client_id_len + 2, tail, (size_t)tl);
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, "tombo.lost", NULL, d, (int)n) == NATS_OK) {
        inbox_item_t it = {.kind = INBOX_CLUSTER, .rc = CL_TAKE, .fd = 0, .data = m};
        worker_post(&c->b->workers[0], &it);
    }
    free(d);
}

/* Worker 0 of the owner: the new node has the session (m: its client id). What queued here since
 * the export goes to it now; the session and its routes stay MOVE_GRACE_MS more, because a node
 * that has not seen the new node's routes yet still sends here: what comes meanwhile follows too
 * (cluster_tick), then the session ends (its routes go, after the new node's). */
static void move_done(worker_t *w, natsMsg *m)
{
    cluster_t *c = w->b->cluster;
    const char *id = natsMsg_GetData(m);
    int idlen = natsMsg_GetDataLength(m);
    const char *reply = natsMsg_GetReply(m);
    session_t *s = idlen > 0 && idlen <= 65535 && reply ? registry_find(w->b, id, (size_t)idlen) : NULL;
    /* Everything, also what was forwarded to the new node too: it may have reached that node
     * before the session's import there (for another subscriber), and the session's window there
     * (dedup.c) drops what the session has already. */
    long k = s ? send_tail(c, s, reply, 0, w->now) : -1;
    if (k >= 0) {
        moved_t *x = xcalloc(1, sizeof(*x));
        x->sent = k;
        x->s = s;
        x->reply = xstrdup(reply);
        x->due = w->now + MOVE_GRACE_MS;
        moved_t **p = &c->moved; /* in order of due time */
        while (*p)
            p = &(*p)->next;
        *p = x;
    } else if (s) {
        session_release(s);
    }
    natsMsg_Destroy(m);
}

void cluster_tick(worker_t *w)
{
    cluster_t *c = w->b->cluster;
    while (c->moved && c->moved->due <= w->now) {
        moved_t *x = c->moved;
        c->moved = x->next;
        long k = send_tail(c, x->s, x->reply, 0, w->now);
        if (k >= 0) {
            session_end(x->s);
            log_printf(TLOG_NOTICE, "Cluster: client %s's session moved to another node (%ld messages followed it).",
                       x->s->client_id, x->sent + k);
        }
        session_release(x->s);
        free(x->reply);
        free(x);
    }
}

/* Worker 0 of the new node: the tail of a session that moved here. */
static void move_tail(worker_t *w, natsMsg *m)
{
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
    size_t n = (size_t)natsMsg_GetDataLength(m);
    size_t idlen = n >= 2 ? (size_t)(d[0] << 8 | d[1]) : 0;
    session_t *s = n >= 2 + idlen && idlen ? registry_find(w->b, (const char *)d + 2, idlen) : NULL;
    if (s) {
        long k = session_wire_deliver(w, s, d + 2 + idlen, n - 2 - idlen, w->now);
        if (k < 0)
            log_printf(TLOG_WARNING, "Warning: cluster: the messages that followed client %s's session are "
                                     "malformed; dropped.", s->client_id);
        session_release(s);
    }
    natsMsg_Destroy(m);
}

/* Worker of a waiting connection: the answer of cluster_take. */
static void move_in(worker_t *w, inbox_item_t *it)
{
    take_reply_t *tr = it->data;
    conn_t *cn = conn_lookup(w, it->fd, it->conn_id);
    if (cn && cn->waiting == WAIT_CLUSTER && cn->state == CONN_NEW) {
        if (tr->blob) {
            const char *id = connect_req_id(cn->pending);
            bool existed;
            session_t *s = registry_get(w->b, id, strlen(id), &existed);
            if (existed) {
                /* A session of that client id was made here meanwhile: it stays, the other node's
                 * copy too (the move is not confirmed; it gives up after SESSION_MOVE_TIMEOUT_MS). */
            } else if (session_wire_import(s, (const uint8_t *)natsMsg_GetData(tr->blob),
                                           (size_t)natsMsg_GetDataLength(tr->blob), w->now) < 0) {
                log_printf(TLOG_WARNING, "Warning: cluster: the session of client %s from node %s is malformed; "
                                         "it starts a new one.", id, tr->owner);
                session_end(s);
            } else {
                connect_req_set_moved(cn->pending, tr->owner);
                if (tr->from_js) /* what waits for the dead node in the stream */
                    cluster_sess_drain(w->b, s, tr->owner, tr->upto);
            }
            session_release(s);
        }
        conn_connect_resumed(cn);
    }
    natsMsg_Destroy(tr->blob);
    free(tr);
}

void cluster_move_on_item(worker_t *w, inbox_item_t *it)
{
    if (it->rc == CL_TAKE)
        move_out(w, it->data, it->fd);
    else if (it->rc == CL_TAKE_REPLY)
        move_in(w, it);
    else if (it->rc == CL_TOOK)
        move_done(w, it->data);
    else if (it->rc == CL_TAIL)
        move_tail(w, it->data);
}

/* ---- lifetime ---- */

void cluster_move_init(cluster_t *c)
{
    pthread_mutex_init(&c->t_lock, NULL);
    pthread_cond_init(&c->t_cond, NULL);
    snprintf(c->tail_subject, sizeof(c->tail_subject), "tombo.r.%s", c->node);
}

natsStatus cluster_move_start(cluster_t *c, const char **what)
{
    char subj[80];
    snprintf(subj, sizeof(subj), "tombo.take.%s", c->node);
    natsStatus s = natsConnection_Subscribe(&c->sub_take, c->nc, subj, on_take, c);
    snprintf(subj, sizeof(subj), "tombo.took.%s", c->node);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&c->sub_took, c->nc, subj, on_took, c);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&c->sub_tail, c->nc, c->tail_subject, on_tail, c);
    if (s != NATS_OK) {
        *what = "cannot subscribe to this node's session subjects";
        return s;
    }
    for (int i = 0; i < TAKE_THREADS; i++) {
        if (pthread_create(&c->taker[i], NULL, taker_main, c) != 0) {
            *what = "cannot start a taker thread";
            return NATS_NO_MEMORY;
        }
        c->n_takers++;
    }
    return NATS_OK;
}

void cluster_move_stop(cluster_t *c)
{
    natsSubscription *subs[] = {c->sub_take, c->sub_took, c->sub_tail};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (subs[i]) {
            natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    pthread_mutex_lock(&c->t_lock); /* takers answer what is left with nothing, then end */
    c->t_stop = true;
    pthread_cond_broadcast(&c->t_cond);
    pthread_mutex_unlock(&c->t_lock);
    for (int i = 0; i < c->n_takers; i++)
        pthread_join(c->taker[i], NULL);
}

void cluster_move_free(cluster_t *c)
{
    while (c->t_head) {
        takeop_t *op = c->t_head;
        c->t_head = op->next;
        free(op);
    }
    pthread_mutex_destroy(&c->t_lock);
    pthread_cond_destroy(&c->t_cond);
    while (c->moved) { /* stopped within a grace period: the session stays here too */
        moved_t *x = c->moved;
        c->moved = x->next;
        session_release(x->s);
        free(x->reply);
        free(x);
    }
}
