/* store.c -- the SQLite journal behind `persistence true` (see store.h for the design).
 *
 * Tables (one database file, WAL mode):
 *   msgs(id, packet, expire_wall)   each stored message once, as an MQTT 5 PUBLISH (the shared codec
 *                                   writes and reads it); expire_wall: wall-clock ms, or NULL
 *   retained(topic, msg_id)
 *   sessions(client_id, expiry, username, listener, offline_since, will_msg_id, will_delay)
 *                                   offline_since: wall-clock ms of the disconnect, NULL while connected
 *   subs(client_id, filter, options, sub_id)
 *   outq(client_id, seq, msg_id, qos, retain, state, pid, ids)   queued and in-flight messages
 *   inq2(client_id, pid)            inbound QoS 2 ids awaiting PUBREL
 *
 * Durability: WAL with synchronous=NORMAL. A commit is in the operating system before the store
 * reports it, so a killed or crashed broker loses nothing it acknowledged; a power cut may lose the
 * last transactions (synchronous=FULL would fsync every group commit). */
#include "broker/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/log.h"

enum rec_kind {
    R_MSG_ADD, R_MSG_DEL, R_SESS_PUT, R_SESS_DEL, R_SUB_PUT, R_SUB_DEL,
    R_OUT_PUT, R_OUT_STATE, R_OUT_DEL, R_IN2_ADD, R_IN2_DEL, R_RET_SET, R_RET_DEL,
    R_NOP, /* cancelled within its batch (coalesce) */
};

/* One journal record. References (s, m) are held while the record waits. */
typedef struct rec {
    uint8_t kind;
    uint8_t qos, retain, state; /* OUT_* */
    uint16_t pid;               /* OUT_*, IN2_* */
    uint32_t seq;               /* OUT_*; SUB_PUT: options */
    uint32_t u32;               /* SESS_PUT: expiry; SUB_PUT: sub_id; OUT_PUT: number of ids */
    int32_t listener;           /* SESS_PUT */
    int64_t offline_since;      /* SESS_PUT: wall-clock ms, 0 while connected */
    uint64_t msg_id;            /* SESS_PUT: the will (0: none) */
    session_t *s;               /* the client id */
    msg_t *m;                   /* MSG_ADD */
    void *blob;                 /* SUB_*: filter; RET_*: topic; OUT_PUT: ids; SESS_PUT: username */
    uint32_t blob_len;
} rec_t;

enum stmt {
    S_MSG_ADD, S_MSG_DEL, S_SESS_PUT, S_SESS_DEL, S_SESS_DEL_SUBS, S_SESS_DEL_OUT, S_SESS_DEL_IN2,
    S_SUB_PUT, S_SUB_DEL, S_OUT_PUT, S_OUT_STATE, S_OUT_DEL, S_IN2_ADD, S_IN2_DEL, S_RET_SET, S_RET_DEL,
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_MSG_ADD] = "INSERT OR REPLACE INTO msgs(id, packet, expire_wall) VALUES (?1, ?2, ?3)",
    [S_MSG_DEL] = "DELETE FROM msgs WHERE id = ?1",
    [S_SESS_PUT] = "INSERT OR REPLACE INTO sessions(client_id, expiry, username, listener, offline_since, will_msg_id, "
                   "will_delay) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_SESS_DEL] = "DELETE FROM sessions WHERE client_id = ?1",
    [S_SESS_DEL_SUBS] = "DELETE FROM subs WHERE client_id = ?1",
    [S_SESS_DEL_OUT] = "DELETE FROM outq WHERE client_id = ?1",
    [S_SESS_DEL_IN2] = "DELETE FROM inq2 WHERE client_id = ?1",
    [S_SUB_PUT] = "INSERT OR REPLACE INTO subs(client_id, filter, options, sub_id) VALUES (?1, ?2, ?3, ?4)",
    [S_SUB_DEL] = "DELETE FROM subs WHERE client_id = ?1 AND filter = ?2",
    [S_OUT_PUT] = "INSERT OR REPLACE INTO outq(client_id, seq, msg_id, qos, retain, state, pid, ids) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_OUT_STATE] = "UPDATE outq SET state = ?3, pid = ?4, msg_id = ?5 WHERE client_id = ?1 AND seq = ?2",
    [S_OUT_DEL] = "DELETE FROM outq WHERE client_id = ?1 AND seq = ?2",
    [S_IN2_ADD] = "INSERT OR IGNORE INTO inq2(client_id, pid) VALUES (?1, ?2)",
    [S_IN2_DEL] = "DELETE FROM inq2 WHERE client_id = ?1 AND pid = ?2",
    [S_RET_SET] = "INSERT OR REPLACE INTO retained(topic, msg_id) VALUES (?1, ?2)",
    [S_RET_DEL] = "DELETE FROM retained WHERE topic = ?1",
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS msgs(id INTEGER PRIMARY KEY, packet BLOB NOT NULL, expire_wall INTEGER);"
    "CREATE TABLE IF NOT EXISTS retained(topic BLOB PRIMARY KEY, msg_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sessions(client_id BLOB PRIMARY KEY, expiry INTEGER NOT NULL, username BLOB,"
    " listener INTEGER NOT NULL, offline_since INTEGER, will_msg_id INTEGER, will_delay INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS subs(client_id BLOB, filter BLOB, options INTEGER NOT NULL, sub_id INTEGER NOT NULL,"
    " PRIMARY KEY(client_id, filter)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outq(client_id BLOB, seq INTEGER, msg_id INTEGER, qos INTEGER NOT NULL,"
    " retain INTEGER NOT NULL, state INTEGER NOT NULL, pid INTEGER NOT NULL, ids BLOB,"
    " PRIMARY KEY(client_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS inq2(client_id BLOB, pid INTEGER, PRIMARY KEY(client_id, pid)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

struct store {
    sqlite3 *db;
    int lock_fd;        /* flock'ed: one broker per database */
    sqlite3_stmt *stmt[S_COUNT];
    struct broker *b;
    pthread_t thread;
    bool running;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* --- guarded by lock --- */
    rec_t *q;
    size_t n, cap;
    uint64_t submitted;   /* sequence number of the last record queued */
    int open_groups;      /* threads inside store_group_begin/end */
    size_t cut;           /* q[0..cut) holds no part of an open group: it may be written */
    uint64_t next_msg_id;
    bool loading;         /* store_load: only message deletions are recorded */
    bool stopping;        /* store_stop: write what is queued, then end */
    bool stopped;         /* nothing more is recorded */

    _Atomic uint64_t committed;
};

/* The last record this thread queued: what its replies must wait for. */
static _Thread_local uint64_t tls_last;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t store_committed(store_t *st) { return atomic_load(&st->committed); }

uint64_t store_need(store_t *st)
{
    return tls_last > atomic_load(&st->committed) ? tls_last : 0;
}

/* ---- recording ---- */

/* Queue r (lock held). Takes the references r names. False when the store records nothing now; the
 * caller then frees r's blob. */
static bool push_locked(store_t *st, rec_t *r)
{
    if (st->stopped || (st->loading && r->kind != R_MSG_DEL))
        return false;
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 256;
        st->q = xrealloc(st->q, st->cap * sizeof(*st->q));
    }
    if (r->s)
        session_hold(r->s);
    if (r->m)
        msg_hold(r->m);
    st->q[st->n++] = *r;
    tls_last = ++st->submitted;
    if (st->open_groups == 0) {
        if (st->cut == 0)
            pthread_cond_signal(&st->cond);
        st->cut = st->n;
    }
    return true;
}

/* Records of one group are committed together: the store thread cuts its batches only where no
 * group is open. Groups nest per thread (only the outermost counts). */
static _Thread_local int tls_group_depth;

void store_group_begin(store_t *st)
{
    if (!st || tls_group_depth++ > 0)
        return;
    pthread_mutex_lock(&st->lock);
    st->open_groups++;
    pthread_mutex_unlock(&st->lock);
}

void store_group_end(store_t *st)
{
    if (!st || --tls_group_depth > 0)
        return;
    pthread_mutex_lock(&st->lock);
    if (--st->open_groups == 0 && st->cut < st->n) {
        if (st->cut == 0)
            pthread_cond_signal(&st->cond);
        st->cut = st->n;
    }
    pthread_mutex_unlock(&st->lock);
}

static void push(store_t *st, rec_t *r)
{
    pthread_mutex_lock(&st->lock);
    bool ok = push_locked(st, r);
    pthread_mutex_unlock(&st->lock);
    if (!ok)
        free(r->blob);
}

/* Make sure m has a row (lock held): the first durable reference writes it. */
static uint64_t msg_ref_locked(store_t *st, msg_t *m)
{
    if (m->store_id == 0 && !st->stopped && !st->loading) {
        rec_t r = {.kind = R_MSG_ADD, .m = m, .msg_id = st->next_msg_id};
        if (push_locked(st, &r)) {
            m->store_id = st->next_msg_id++;
            m->store = st;
        }
    }
    return m->store_id;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *d = xmalloc(n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

static int32_t listener_of(store_t *st, const session_t *s)
{
    struct broker *b = st->b;
    for (int i = 0; b && i < b->cfg.n_listeners; i++)
        if (b->auth[i] == s->auth)
            return i;
    return 0;
}

void store_out_put(store_t *st, session_t *s, const outmsg_t *o)
{
    rec_t r = {.kind = R_OUT_PUT, .s = s, .seq = o->seq, .qos = o->qos, .retain = o->retain, .state = o->state,
               .pid = o->id, .u32 = o->n_ids};
    if (o->n_ids)
        r.blob = dup_bytes(outmsg_ids(o), o->n_ids * sizeof(uint32_t));
    pthread_mutex_lock(&st->lock);
    if (o->msg)
        r.msg_id = msg_ref_locked(st, o->msg);
    bool ok = (o->msg == NULL || r.msg_id != 0) && push_locked(st, &r);
    pthread_mutex_unlock(&st->lock);
    if (!ok)
        free(r.blob);
}

void store_out_state(store_t *st, session_t *s, const outmsg_t *o)
{
    rec_t r = {.kind = R_OUT_STATE, .s = s, .seq = o->seq, .state = o->state, .pid = o->id,
               .msg_id = o->msg ? o->msg->store_id : 0};
    push(st, &r);
}

void store_out_del(store_t *st, session_t *s, uint32_t seq)
{
    rec_t r = {.kind = R_OUT_DEL, .s = s, .seq = seq};
    push(st, &r);
}

/* When s went offline, for its expiry across a restart: 0 while connected, and also for connections
 * the broker itself closes as it stops (those sessions count from the restart, not from the stop). */
static int64_t offline_since(store_t *st, const session_t *s)
{
    return s->conn || atomic_load(&st->b->stop) ? 0 : wall_ms();
}

void store_session_put(store_t *st, session_t *s, bool full)
{
    rec_t r = {.kind = R_SESS_PUT, .s = s, .u32 = s->expiry, .listener = listener_of(st, s),
               .offline_since = offline_since(st, s), .seq = s->will ? s->will_delay : 0};
    if (s->username) {
        r.blob_len = (uint32_t)strlen(s->username);
        r.blob = dup_bytes(s->username, r.blob_len);
    }
    pthread_mutex_lock(&st->lock);
    if (s->will)
        r.msg_id = msg_ref_locked(st, s->will);
    bool ok = push_locked(st, &r);
    pthread_mutex_unlock(&st->lock);
    if (!ok)
        free(r.blob);
    if (!full)
        return;
    for (uint32_t i = 0; i < s->n_subs; i++)
        store_sub_put(st, s, &s->subs[i]);
    outring_t *rings[2] = {&s->inflight, &s->queue};
    for (int k = 0; k < 2; k++) {
        outring_t *q = rings[k];
        for (uint32_t i = 0; i < q->n; i++) {
            const outmsg_t *o = &q->v[(q->head + i) % q->cap];
            if (o->qos > 0 && (o->msg || o->state == OUT_WAIT_PUBCOMP))
                store_out_put(st, s, o);
        }
    }
    for (uint32_t id = 1; s->in_qos2 && id <= 65535; id++)
        if ((s->in_qos2[id >> 3] >> (id & 7)) & 1)
            store_in2(st, s, (uint16_t)id, true);
}

void store_session_del(store_t *st, session_t *s)
{
    rec_t r = {.kind = R_SESS_DEL, .s = s};
    push(st, &r);
}

void store_sub_put(store_t *st, session_t *s, const sess_sub_t *sub)
{
    rec_t r = {.kind = R_SUB_PUT, .s = s, .seq = sub->options, .u32 = sub->sub_id,
               .blob = dup_bytes(sub->filter, sub->len), .blob_len = sub->len};
    push(st, &r);
}

void store_sub_del(store_t *st, session_t *s, const char *filter, size_t n)
{
    rec_t r = {.kind = R_SUB_DEL, .s = s, .blob = dup_bytes(filter, n), .blob_len = (uint32_t)n};
    push(st, &r);
}

void store_in2(store_t *st, session_t *s, uint16_t id, bool add)
{
    rec_t r = {.kind = add ? R_IN2_ADD : R_IN2_DEL, .s = s, .pid = id};
    push(st, &r);
}

void store_retain(store_t *st, const uint8_t *topic, size_t n, msg_t *m)
{
    rec_t r = {.kind = m ? R_RET_SET : R_RET_DEL, .blob = dup_bytes(topic, n), .blob_len = (uint32_t)n};
    pthread_mutex_lock(&st->lock);
    if (m)
        r.msg_id = msg_ref_locked(st, m);
    bool ok = (!m || r.msg_id != 0) && push_locked(st, &r);
    pthread_mutex_unlock(&st->lock);
    if (!ok)
        free(r.blob);
}

void store_msg_gone(store_t *st, uint64_t id)
{
    rec_t r = {.kind = R_MSG_DEL, .msg_id = id};
    push(st, &r);
}

/* ---- the store thread ---- */

static int run_stmt(store_t *st, enum stmt k)
{
    sqlite3_stmt *q = st->stmt[k];
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_client(sqlite3_stmt *q, const session_t *s)
{
    sqlite3_bind_blob(q, 1, s->client_id, (int)s->client_id_len, SQLITE_STATIC);
}

/* The message as an MQTT 5 PUBLISH: topic, payload, QoS, retain and the properties it forwards. */
static int write_msg(store_t *st, const rec_t *r)
{
    msg_t *m = r->m;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.publish.qos = m->qos;
    p.publish.retain = m->retain;
    p.publish.topic = m->topic;
    p.publish.payload = m->payload;
    p.id = m->qos ? 1 : 0;
    msg_props(m, &p.props);
    size_t n = mqtt_encoded_len(&p, MQTT_V5);
    uint8_t *bytes = xmalloc(n);
    mqtt_encode(&p, MQTT_V5, bytes);
    sqlite3_stmt *q = st->stmt[S_MSG_ADD];
    sqlite3_bind_int64(q, 1, (sqlite3_int64)r->msg_id);
    sqlite3_bind_blob(q, 2, bytes, (int)n, free);
    if (m->has_expiry)
        sqlite3_bind_int64(q, 3, wall_ms() + (m->expiry_at - now_ms()));
    return run_stmt(st, S_MSG_ADD);
}

static int apply(store_t *st, const rec_t *r)
{
    sqlite3_stmt **S = st->stmt;
    int rc = SQLITE_OK;
    switch (r->kind) {
    case R_MSG_ADD:
        return write_msg(st, r);
    case R_MSG_DEL:
        sqlite3_bind_int64(S[S_MSG_DEL], 1, (sqlite3_int64)r->msg_id);
        return run_stmt(st, S_MSG_DEL);
    case R_SESS_PUT:
        bind_client(S[S_SESS_PUT], r->s);
        sqlite3_bind_int64(S[S_SESS_PUT], 2, r->u32);
        if (r->blob)
            sqlite3_bind_blob(S[S_SESS_PUT], 3, r->blob, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int(S[S_SESS_PUT], 4, r->listener);
        if (r->offline_since)
            sqlite3_bind_int64(S[S_SESS_PUT], 5, r->offline_since);
        if (r->msg_id)
            sqlite3_bind_int64(S[S_SESS_PUT], 6, (sqlite3_int64)r->msg_id);
        sqlite3_bind_int64(S[S_SESS_PUT], 7, r->seq);
        return run_stmt(st, S_SESS_PUT);
    case R_SESS_DEL: {
        static const enum stmt dels[] = {S_SESS_DEL, S_SESS_DEL_SUBS, S_SESS_DEL_OUT, S_SESS_DEL_IN2};
        for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]) && rc == SQLITE_OK; i++) {
            bind_client(S[dels[i]], r->s);
            rc = run_stmt(st, dels[i]);
        }
        return rc;
    }
    case R_SUB_PUT:
        bind_client(S[S_SUB_PUT], r->s);
        sqlite3_bind_blob(S[S_SUB_PUT], 2, r->blob, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int(S[S_SUB_PUT], 3, (int)r->seq);
        sqlite3_bind_int64(S[S_SUB_PUT], 4, r->u32);
        return run_stmt(st, S_SUB_PUT);
    case R_SUB_DEL:
        bind_client(S[S_SUB_DEL], r->s);
        sqlite3_bind_blob(S[S_SUB_DEL], 2, r->blob, (int)r->blob_len, SQLITE_STATIC);
        return run_stmt(st, S_SUB_DEL);
    case R_OUT_PUT: {
        sqlite3_stmt *q = S[S_OUT_PUT];
        bind_client(q, r->s);
        sqlite3_bind_int64(q, 2, r->seq);
        if (r->msg_id)
            sqlite3_bind_int64(q, 3, (sqlite3_int64)r->msg_id);
        sqlite3_bind_int(q, 4, r->qos);
        sqlite3_bind_int(q, 5, r->retain);
        sqlite3_bind_int(q, 6, r->state);
        sqlite3_bind_int(q, 7, r->pid);
        if (r->u32)
            sqlite3_bind_blob(q, 8, r->blob, (int)(r->u32 * sizeof(uint32_t)), SQLITE_STATIC);
        return run_stmt(st, S_OUT_PUT);
    }
    case R_OUT_STATE: {
        sqlite3_stmt *q = S[S_OUT_STATE];
        bind_client(q, r->s);
        sqlite3_bind_int64(q, 2, r->seq);
        sqlite3_bind_int(q, 3, r->state);
        sqlite3_bind_int(q, 4, r->pid);
        if (r->msg_id)
            sqlite3_bind_int64(q, 5, (sqlite3_int64)r->msg_id);
        return run_stmt(st, S_OUT_STATE);
    }
    case R_OUT_DEL:
        bind_client(S[S_OUT_DEL], r->s);
        sqlite3_bind_int64(S[S_OUT_DEL], 2, r->seq);
        return run_stmt(st, S_OUT_DEL);
    case R_IN2_ADD:
    case R_IN2_DEL: {
        enum stmt k = r->kind == R_IN2_ADD ? S_IN2_ADD : S_IN2_DEL;
        bind_client(S[k], r->s);
        sqlite3_bind_int(S[k], 2, r->pid);
        return run_stmt(st, k);
    }
    case R_RET_SET:
        sqlite3_bind_blob(S[S_RET_SET], 1, r->blob, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int64(S[S_RET_SET], 2, (sqlite3_int64)r->msg_id);
        return run_stmt(st, S_RET_SET);
    case R_RET_DEL:
        sqlite3_bind_blob(S[S_RET_DEL], 1, r->blob, (int)r->blob_len, SQLITE_STATIC);
        return run_stmt(st, S_RET_DEL);
    case R_NOP:
        break;
    }
    return rc;
}

/* Within one batch, a row written and deleted again never needs to reach the disk: a message
 * queued, sent and acknowledged while the previous batch was being committed (the usual case under
 * load) costs nothing. Pairs cancelled: OUT_PUT ... OUT_DEL of one (session, seq), with the
 * OUT_STATEs between folded into the OUT_PUT; MSG_ADD ... MSG_DEL of one message (a MSG_DEL comes
 * only after every reference to the message was deleted). */
static uint64_t rec_key(const rec_t *r)
{
    if (r->kind == R_MSG_ADD || r->kind == R_MSG_DEL)
        return r->msg_id * 0x9E3779B97F4A7C15ull;
    return ((uint64_t)(uintptr_t)r->s * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r->seq * 0xC2B2AE3D27D4EB4Full);
}

static bool rec_same(const rec_t *a, const rec_t *b)
{
    if (a->kind == R_MSG_ADD)
        return a->msg_id == b->msg_id;
    return a->s == b->s && a->seq == b->seq;
}

static size_t coalesce(rec_t *v, size_t n, uint32_t **table, size_t *table_cap)
{
    size_t cap = 64;
    while (cap < 2 * n)
        cap *= 2;
    if (*table_cap < cap) {
        free(*table);
        *table = xmalloc(cap * sizeof(uint32_t));
        *table_cap = cap;
    }
    uint32_t *t = *table;
    memset(t, 0xff, cap * sizeof(uint32_t));
    size_t cancelled = 0;
    for (size_t i = 0; i < n; i++) {
        rec_t *r = &v[i];
        bool opens = r->kind == R_OUT_PUT || r->kind == R_MSG_ADD;
        bool closes = r->kind == R_OUT_DEL || r->kind == R_MSG_DEL || r->kind == R_OUT_STATE;
        if (!opens && !closes)
            continue;
        size_t h = (size_t)(rec_key(r) & (cap - 1));
        while (t[h] != UINT32_MAX) {
            rec_t *o = &v[t[h]];
            bool pair = (o->kind == R_OUT_PUT && r->kind != R_MSG_ADD && r->kind != R_MSG_DEL && r->kind != R_OUT_PUT) ||
                        (o->kind == R_MSG_ADD && r->kind == R_MSG_DEL);
            if (pair && rec_same(o, r))
                break;
            h = (h + 1) & (cap - 1);
        }
        if (opens) {
            if (t[h] == UINT32_MAX)
                t[h] = (uint32_t)i;
            continue;
        }
        if (t[h] == UINT32_MAX)
            continue; /* its row was written by an earlier batch */
        rec_t *o = &v[t[h]];
        if (r->kind == R_OUT_STATE) {
            o->state = r->state;
            o->pid = r->pid;
            o->msg_id = r->msg_id;
            r->kind = R_NOP;
            cancelled++;
            continue;
        }
        o->kind = R_NOP; /* the opening record stays in the table as a tombstone: probes go on */
        r->kind = R_NOP;
        cancelled += 2;
    }
    return cancelled;
}

/* One transaction for the whole batch. */
static int apply_batch(store_t *st, rec_t *v, size_t n)
{
    int rc = run_stmt(st, S_BEGIN);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = apply(st, &v[i]);
    if (rc == SQLITE_OK)
        rc = run_stmt(st, S_COMMIT);
    if (rc != SQLITE_OK) {
        log_printf(TLOG_ERR, "Error: persistence: %s (%s).", sqlite3_errmsg(st->db), sqlite3_errstr(rc));
        run_stmt(st, S_ROLLBACK);
    }
    return rc;
}

static void wake_waiters(store_t *st, uint64_t committed)
{
    struct broker *b = st->b;
    for (int i = 0; i < b->n_workers; i++) {
        uint64_t want = atomic_load(&b->workers[i].store_wait);
        if (want && want <= committed) {
            uint64_t one = 1;
            ssize_t wr = write(b->workers[i].inbox.evfd, &one, sizeof(one));
            (void)wr;
        }
    }
}

static void *store_main(void *arg)
{
    store_t *st = arg;
    rec_t *batch = NULL;
    size_t batch_cap = 0, table_cap = 0;
    uint32_t *table = NULL; /* coalesce's hash table, reused */
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (st->cut == 0 && !(st->stopping && st->open_groups == 0))
            pthread_cond_wait(&st->cond, &st->lock);
        if (st->n == 0)
            break; /* stopping, and everything is written */
        /* The batch: everything up to the last point outside every group; the rest (records of a
         * group still open) waits for the next one. */
        size_t n = st->stopping && st->open_groups == 0 ? st->n : st->cut;
        size_t rest = st->n - n, vcap = st->cap;
        rec_t *v = st->q;
        uint64_t upto = st->submitted - rest;
        if (batch_cap < rest + 256) {
            batch_cap = rest + 256;
            batch = xrealloc(batch, batch_cap * sizeof(*batch));
        }
        if (rest)
            memcpy(batch, v + n, rest * sizeof(*v));
        st->q = batch;
        st->cap = batch_cap;
        st->n = rest;
        st->cut = 0;
        pthread_mutex_unlock(&st->lock);

        coalesce(v, n, &table, &table_cap);
        /* A failed commit is retried: replies wait rather than claim durability we do not have. */
        int tries = 0;
        while (apply_batch(st, v, n) != SQLITE_OK) {
            if (++tries >= 5 && atomic_load(&st->b->stop)) {
                log_printf(TLOG_ERR, "Error: persistence: giving up on %zu records at shutdown.", n);
                break;
            }
            sleep(1);
        }
        for (size_t i = 0; i < n; i++) {
            free(v[i].blob);
            if (v[i].s)
                session_release(v[i].s);
            if (v[i].m)
                msg_release(v[i].m); /* may record a deletion: the lock is not held */
        }
        atomic_store(&st->committed, upto);
        wake_waiters(st, upto);

        pthread_mutex_lock(&st->lock);
        batch = v; /* the two vectors take turns */
        batch_cap = vcap;
    }
    st->stopped = true;
    pthread_mutex_unlock(&st->lock);
    free(batch);
    free(table);
    return NULL;
}

/* ---- lifetime ---- */

store_t *store_open(const char *path, char *err, size_t errlen)
{
    store_t *st = xcalloc(1, sizeof(*st));
    st->lock_fd = -1;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->next_msg_id = 1;
    /* One broker per database: an flock on the file (independent of SQLite's own POSIX locks, so
     * `sqlite3 tombo.db` can still read it while the broker runs). */
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "cannot open the persistence database %s: %s", path,
                 st->lock_fd >= 0 && errno == EWOULDBLOCK ? "it is in use by another broker" : strerror(errno));
        st->stopped = true;
        store_free(st);
        return NULL;
    }
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    char *emsg = NULL;
    if (rc == SQLITE_OK)
        sqlite3_busy_timeout(st->db, 1000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, schema_sql, NULL, NULL, &emsg);
    for (int k = 0; k < S_COUNT && rc == SQLITE_OK; k++)
        rc = sqlite3_prepare_v3(st->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[k], NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the persistence database %s: %s", path,
                 emsg ? emsg : st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        sqlite3_free(emsg);
        st->stopped = true;
        store_free(st);
        return NULL;
    }
    return st;
}

struct loaded_msg {
    uint64_t id;
    msg_t *m;
};

static msg_t *find_msg(struct loaded_msg *v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].id == id)
            return v[mid].m;
        if (v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A stored PUBLISH back into a message. */
static msg_t *read_msg(sqlite3_stmt *q, int64_t now, int64_t wall)
{
    const uint8_t *bytes = sqlite3_column_blob(q, 1);
    int n = sqlite3_column_bytes(q, 1);
    mqtt_header_t h;
    mqtt_packet_t p;
    if (!bytes || mqtt_header_parse(bytes, (size_t)n, &h) != 1 || h.type != MQTT_PUBLISH ||
        (size_t)n < h.header_len + h.remaining ||
        mqtt_decode(&h, bytes + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS)
        return NULL;
    msg_t *m = msg_new(p.publish.topic, p.publish.payload, p.publish.qos, p.publish.retain, &p.props, now);
    if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
        m->has_expiry = 1;
        m->expiry_at = now + (sqlite3_column_int64(q, 2) - wall);
    }
    return m;
}

static sqlite3_stmt *prep(store_t *st, const char *sql)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
        return NULL;
    return q;
}

/* Subscriptions, queued and in-flight messages and inbound QoS 2 ids of one restored session. */
static void load_session_state(store_t *st, broker_t *b, session_t *s, struct loaded_msg *msgs, size_t nm,
                               sqlite3_stmt *qs, sqlite3_stmt *qo, sqlite3_stmt *qi, size_t counts[3])
{
    bind_client(qs, s);
    while (sqlite3_step(qs) == SQLITE_ROW) {
        const uint8_t *f = sqlite3_column_blob(qs, 0);
        size_t fn = (size_t)sqlite3_column_bytes(qs, 0);
        uint8_t options = (uint8_t)sqlite3_column_int(qs, 1);
        uint32_t sub_id = (uint32_t)sqlite3_column_int64(qs, 2);
        if (f && subtree_add(b->subs, f, fn, s, options, sub_id) >= 0) {
            session_sub_add(s, f, fn, options, sub_id);
            counts[0]++;
        }
    }
    sqlite3_reset(qs);

    bind_client(qo, s);
    while (sqlite3_step(qo) == SQLITE_ROW) {
        outmsg_t o;
        memset(&o, 0, sizeof(o));
        o.seq = (uint32_t)sqlite3_column_int64(qo, 0);
        o.qos = (uint8_t)sqlite3_column_int(qo, 2);
        o.retain = (uint8_t)sqlite3_column_int(qo, 3);
        o.state = (uint8_t)sqlite3_column_int(qo, 4);
        o.id = (uint16_t)sqlite3_column_int(qo, 5);
        if (sqlite3_column_type(qo, 1) != SQLITE_NULL)
            o.msg = find_msg(msgs, nm, (uint64_t)sqlite3_column_int64(qo, 1));
        if (o.state > OUT_WAIT_PUBCOMP || (o.state != OUT_WAIT_PUBCOMP && !o.msg) || o.qos == 0 || o.qos > 2)
            continue; /* nothing to resume it with */
        const uint32_t *ids = sqlite3_column_blob(qo, 6);
        uint32_t n_ids = (uint32_t)((size_t)sqlite3_column_bytes(qo, 6) / sizeof(uint32_t));
        session_restore_out(s, &o, ids, n_ids);
        counts[1]++;
    }
    sqlite3_reset(qo);

    bind_client(qi, s);
    while (sqlite3_step(qi) == SQLITE_ROW) {
        session_qos2_begin(s, (uint16_t)sqlite3_column_int(qi, 0));
        counts[2]++;
    }
    sqlite3_reset(qi);
}

int store_load(store_t *st, broker_t *b, char *err, size_t errlen)
{
    st->b = b;
    pthread_mutex_lock(&st->lock);
    st->loading = true;
    pthread_mutex_unlock(&st->lock);
    int64_t now = now_ms(), wall = wall_ms();
    struct loaded_msg *msgs = NULL;
    size_t nm = 0, cap = 0, n_sessions = 0, n_retained = 0, counts[3] = {0, 0, 0};
    int ret = -1;
    sqlite3_stmt *qm = prep(st, "SELECT id, packet, expire_wall FROM msgs ORDER BY id");
    sqlite3_stmt *qr = prep(st, "SELECT topic, msg_id FROM retained");
    sqlite3_stmt *qss = prep(st, "SELECT client_id, expiry, username, listener, offline_since, will_msg_id, "
                                 "will_delay FROM sessions");
    sqlite3_stmt *qs = prep(st, "SELECT filter, options, sub_id FROM subs WHERE client_id = ?1");
    sqlite3_stmt *qo = prep(st, "SELECT seq, msg_id, qos, retain, state, pid, ids FROM outq WHERE client_id = ?1 "
                                "ORDER BY seq");
    sqlite3_stmt *qi = prep(st, "SELECT pid FROM inq2 WHERE client_id = ?1");
    if (!qm || !qr || !qss || !qs || !qo || !qi) {
        snprintf(err, errlen, "cannot read the persistence database: %s", sqlite3_errmsg(st->db));
        goto out;
    }

    while (sqlite3_step(qm) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(qm, 0);
        msg_t *m = read_msg(qm, now, wall);
        if (id >= st->next_msg_id)
            st->next_msg_id = id + 1;
        if (!m) {
            log_printf(TLOG_WARNING, "Warning: persistence: stored message %" PRIu64 " is unreadable; skipped.", id);
            continue;
        }
        m->store_id = id;
        m->store = st;
        if (nm == cap) {
            cap = cap ? cap * 2 : 256;
            msgs = xrealloc(msgs, cap * sizeof(*msgs));
        }
        msgs[nm++] = (struct loaded_msg){id, m};
    }

    while (sqlite3_step(qr) == SQLITE_ROW) {
        msg_t *m = find_msg(msgs, nm, (uint64_t)sqlite3_column_int64(qr, 1));
        const uint8_t *topic = sqlite3_column_blob(qr, 0);
        if (m && topic && retain_set(b->retained, topic, (size_t)sqlite3_column_bytes(qr, 0), m) == 0)
            n_retained++;
    }

    while (sqlite3_step(qss) == SQLITE_ROW) {
        const char *id = sqlite3_column_blob(qss, 0);
        size_t idlen = (size_t)sqlite3_column_bytes(qss, 0);
        if (!id || idlen == 0)
            continue;
        bool existed;
        session_t *s = registry_get(b, id, idlen, &existed);
        uint32_t expiry = (uint32_t)sqlite3_column_int64(qss, 1);
        int li = sqlite3_column_int(qss, 3);
        const char *user = sqlite3_column_blob(qss, 2);
        pthread_mutex_lock(&s->lock);
        s->expiry = expiry;
        free(s->username);
        s->username = user ? xstrndup(user, (size_t)sqlite3_column_bytes(qss, 2)) : NULL;
        s->auth = b->auth[li >= 0 && li < b->cfg.n_listeners ? li : 0];
        pthread_mutex_unlock(&s->lock);
        load_session_state(st, b, s, msgs, nm, qs, qo, qi, counts);
        /* A session that was offline goes on expiring from its disconnect; one that was
         * connected lost its connection with the restart, so it counts from now. Its will is
         * due will_delay after that moment (at once if the session has expired meanwhile). */
        int64_t gone = now;
        if (sqlite3_column_type(qss, 4) != SQLITE_NULL) {
            gone = now - (wall - sqlite3_column_int64(qss, 4));
            if (gone > now)
                gone = now; /* the clock went back */
        }
        msg_t *will = NULL;
        if (sqlite3_column_type(qss, 5) != SQLITE_NULL)
            will = find_msg(msgs, nm, (uint64_t)sqlite3_column_int64(qss, 5));
        uint32_t will_delay = (uint32_t)sqlite3_column_int64(qss, 6);
        int64_t at = expiry != UINT32_MAX ? gone + (int64_t)expiry * 1000 : 0;
        if (at && at < now)
            at = now;
        int64_t will_at = will ? gone + (int64_t)will_delay * 1000 : 0;
        if (will_at && will_at < now)
            will_at = now;
        pthread_mutex_lock(&s->lock);
        s->persist = 1;
        s->expire_at = at;
        if (will) {
            msg_hold(will);
            s->will = will;
            s->will_delay = will_delay;
            s->will_at = will_at;
        }
        pthread_mutex_unlock(&s->lock);
        if (at)
            broker_timer_add(b, at, BT_SESSION_EXPIRY, s);
        if (will_at)
            broker_timer_add(b, will_at, BT_WILL, s);
        session_release(s);
        n_sessions++;
    }
    ret = 0;
    log_printf(TLOG_NOTICE, "Restored %zu session%s (%zu subscriptions, %zu queued or in-flight messages), "
                            "%zu retained message%s from the persistence database.",
               n_sessions, n_sessions == 1 ? "" : "s", counts[0], counts[1], n_retained, n_retained == 1 ? "" : "s");
out:
    sqlite3_finalize(qm);
    sqlite3_finalize(qr);
    sqlite3_finalize(qss);
    sqlite3_finalize(qs);
    sqlite3_finalize(qo);
    sqlite3_finalize(qi);
    /* Messages nothing references any more are deleted (recorded now, written once the thread runs). */
    for (size_t i = 0; i < nm; i++)
        msg_release(msgs[i].m);
    free(msgs);
    pthread_mutex_lock(&st->lock);
    st->loading = false;
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_start(store_t *st, broker_t *b)
{
    st->b = b;
    if (pthread_create(&st->thread, NULL, store_main, st) != 0)
        return -1;
    st->running = true;
    return 0;
}

void store_stop(store_t *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->lock);
    st->stopping = true;
    pthread_cond_signal(&st->cond);
    if (!st->running)
        st->stopped = true;
    pthread_mutex_unlock(&st->lock);
    if (st->running) {
        pthread_join(st->thread, NULL);
        st->running = false;
    }
}

void store_free(store_t *st)
{
    if (!st)
        return;
    store_stop(st);
    /* Records left unwritten (only if the thread never ran) give their references back. */
    for (size_t i = 0; i < st->n; i++) {
        free(st->q[i].blob);
        if (st->q[i].s)
            session_release(st->q[i].s);
        if (st->q[i].m)
            msg_release(st->q[i].m);
    }
    free(st->q);
    for (int k = 0; k < S_COUNT; k++)
        sqlite3_finalize(st->stmt[k]);
    sqlite3_close(st->db);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}
