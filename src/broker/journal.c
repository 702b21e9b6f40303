/* journal.c -- the persistence store's lower half (journal.h): the record queue with group commit,
 * and the thread that applies each batch to SQLite in one transaction. Rows only: sessions and
 * messages are opaque references, reached through the owner's hooks (store.c).
 *
 * Tables (one database file, WAL mode):
 *   msgs(id, packet, expire_wall)   each stored message once, as an MQTT 5 PUBLISH (the shared codec
 *                                   writes and reads it); expire_wall: wall-clock ms, or NULL
 *   retained(topic, msg_id, source_id, source_username, source_listener)
 *                                   source_*: who published it (check_retain_source), NULL: the
 *                                   broker itself or a database of format 2 or older
 *   sessions(client_id, expiry, username, listener, offline_since, will_msg_id, will_delay)
 *                                   offline_since: wall-clock ms of the disconnect, NULL while connected
 *   subs(client_id, filter, options, sub_id)
 *   outq(client_id, seq, msg_id, qos, retain, state, pid, ids, packet, expire_wall)
 *                                   queued and in-flight messages: the message's first durable
 *                                   reference keeps it in the row itself (packet, expire_wall as in
 *                                   msgs), the others point to a msgs row (msg_id)
 *   inq2(client_id, pid)            inbound QoS 2 ids awaiting PUBREL
 *   js_seen(origin, lo, hi)         cluster_durability jetstream: the cluster identities (origin,
 *                                   lo..hi) of stream messages routed here, so that JetStream's
 *                                   redelivery of one after a restart is not routed twice
 *                                   (cluster_js.c; integers are the uint64 bits)
 *
 * Format versions (PRAGMA user_version): 1 had no outq.packet/expire_wall, 2 no retained.source_*,
 * 3 no js_seen;
 * older ones are upgraded in place (ALTER TABLE) on open. A database of a later version is refused.
 *
 * Durability: WAL with synchronous=NORMAL. A commit is in the operating system before the store
 * reports it, so a killed or crashed broker loses nothing it acknowledged; a power cut may lose the
 * last transactions (synchronous=FULL would fsync every group commit).
 *
 * Checkpoints (copying the WAL back into the database, with an fsync of each file) run on this
 * thread, holding up the commit that triggers one: every 10,000 WAL pages (about 40 MB) rather
 * than SQLite's default 1,000. Under durable QoS 1 load the WAL grows by ~20 MB/s, mostly new
 * versions of the same few hundred outq pages, so a checkpoint writes about as much whatever its
 * interval, and at 1,000 pages the checkpoints (two fsyncs five times a second) took a third of
 * this thread's time. A crash leaves at most that much WAL to read back at the next start. */
#include "broker/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

enum stmt {
    S_MSG_ADD, S_MSG_DEL, S_SESS_PUT, S_SESS_DEL, S_SESS_DEL_SUBS, S_SESS_DEL_OUT, S_SESS_DEL_IN2,
    S_SUB_PUT, S_SUB_DEL, S_OUT_PUT, S_OUT_STATE, S_OUT_DEL, S_IN2_ADD, S_IN2_DEL, S_RET_SET, S_RET_DEL,
    S_JS_SEEN, S_JS_UNSEE, S_BEGIN, S_COMMIT, S_ROLLBACK, S_COUNT
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
    [S_OUT_PUT] = "INSERT OR REPLACE INTO outq(client_id, seq, msg_id, qos, retain, state, pid, ids, packet, "
                  "expire_wall) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_OUT_STATE] = "UPDATE outq SET state = ?3, pid = ?4, msg_id = ?5, packet = CASE WHEN ?6 THEN packet END, "
                    "expire_wall = CASE WHEN ?6 THEN expire_wall END WHERE client_id = ?1 AND seq = ?2",
    [S_OUT_DEL] = "DELETE FROM outq WHERE client_id = ?1 AND seq = ?2",
    [S_IN2_ADD] = "INSERT OR IGNORE INTO inq2(client_id, pid) VALUES (?1, ?2)",
    [S_IN2_DEL] = "DELETE FROM inq2 WHERE client_id = ?1 AND pid = ?2",
    [S_RET_SET] = "INSERT OR REPLACE INTO retained(topic, msg_id, source_id, source_username, source_listener) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_RET_DEL] = "DELETE FROM retained WHERE topic = ?1",
    [S_JS_SEEN] = "INSERT OR REPLACE INTO js_seen(origin, lo, hi) VALUES (?1, ?2, ?3)",
    [S_JS_UNSEE] = "DELETE FROM js_seen WHERE origin = ?1 AND lo = ?2",
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "PRAGMA wal_autocheckpoint = 10000;"
    "CREATE TABLE IF NOT EXISTS msgs(id INTEGER PRIMARY KEY, packet BLOB NOT NULL, expire_wall INTEGER);"
    "CREATE TABLE IF NOT EXISTS retained(topic BLOB PRIMARY KEY, msg_id INTEGER NOT NULL, source_id BLOB,"
    " source_username BLOB, source_listener INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sessions(client_id BLOB PRIMARY KEY, expiry INTEGER NOT NULL, username BLOB,"
    " listener INTEGER NOT NULL, offline_since INTEGER, will_msg_id INTEGER, will_delay INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS subs(client_id BLOB, filter BLOB, options INTEGER NOT NULL, sub_id INTEGER NOT NULL,"
    " PRIMARY KEY(client_id, filter)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outq(client_id BLOB, seq INTEGER, msg_id INTEGER, qos INTEGER NOT NULL,"
    " retain INTEGER NOT NULL, state INTEGER NOT NULL, pid INTEGER NOT NULL, ids BLOB, packet BLOB, expire_wall INTEGER,"
    " PRIMARY KEY(client_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS inq2(client_id BLOB, pid INTEGER, PRIMARY KEY(client_id, pid)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS js_seen(origin INTEGER, lo INTEGER, hi INTEGER NOT NULL, PRIMARY KEY(origin, lo))"
    " WITHOUT ROWID;";

#define SCHEMA_VERSION 4
/* Each upgrade is one transaction, so a crash leaves either version. From version 1: outq rows may
 * carry their message. */
static const char upgrade_v1_sql[] =
    "BEGIN;"
    "ALTER TABLE outq ADD COLUMN packet BLOB;"
    "ALTER TABLE outq ADD COLUMN expire_wall INTEGER;"
    "PRAGMA user_version = 2;"
    "COMMIT;";
/* From version 2: retained messages keep their source (rows of version 2 have none: never
 * re-checked, as Mosquitto treats a retained message without source_id). */
static const char upgrade_v2_sql[] =
    "BEGIN;"
    "ALTER TABLE retained ADD COLUMN source_id BLOB;"
    "ALTER TABLE retained ADD COLUMN source_username BLOB;"
    "ALTER TABLE retained ADD COLUMN source_listener INTEGER;"
    "PRAGMA user_version = 3;"
    "COMMIT;";
/* From version 3: js_seen, which schema_sql has just created (empty: nothing routed is known, as
 * before). */
static const char upgrade_v3_sql[] = "PRAGMA user_version = 4;";

struct journal {
    sqlite3 *db;
    int lock_fd;        /* flock'ed: one broker per database */
    sqlite3_stmt *stmt[S_COUNT];
    journal_hooks_t hooks;
    pthread_t thread;
    bool running;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* --- guarded by lock --- */
    jrec_t *q;
    size_t n, cap;
    uint64_t submitted;   /* sequence number of the last record queued */
    int open_groups;      /* threads inside journal_group_begin/end */
    size_t cut;           /* q[0..cut) holds no part of an open group: it may be written */
    uint64_t next_msg_id;
    bool loading;         /* journal_set_loading: only message deletions are recorded */
    bool stopping;        /* journal_stop: write what is queued, then end */
    bool stopped;         /* nothing more is recorded */

    _Atomic uint64_t committed;
    /* commit durations, written by the journal thread only (journal_commit_hist) */
    _Atomic uint64_t hist[JOURNAL_HIST_N + 1], hist_count, hist_sum_ns;
};

const double journal_hist_le[JOURNAL_HIST_N] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                                0.05,   0.1,   0.25,  0.5,   1.0,  2.5};

static void hist_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* The journal thread: one commit took ns nanoseconds. */
static void hist_record(journal_t *j, uint64_t ns)
{
    int i = 0;
    while (i < JOURNAL_HIST_N && (double)ns > journal_hist_le[i] * 1e9)
        i++;
    hist_add(&j->hist[i], 1);
    hist_add(&j->hist_count, 1);
    hist_add(&j->hist_sum_ns, ns);
}

void journal_commit_hist(journal_t *j, journal_hist_t *out)
{
    for (int i = 0; i <= JOURNAL_HIST_N; i++)
        out->bucket[i] = atomic_load_explicit(&j->hist[i], memory_order_relaxed);
    out->count = atomic_load_explicit(&j->hist_count, memory_order_relaxed);
    out->sum_ns = atomic_load_explicit(&j->hist_sum_ns, memory_order_relaxed);
}

/* The last record this thread queued: what its replies must wait for. */
static _Thread_local uint64_t tls_last;

int64_t journal_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t journal_committed(journal_t *j) { return atomic_load(&j->committed); }

uint64_t journal_need(journal_t *j)
{
    return tls_last > atomic_load(&j->committed) ? tls_last : 0;
}

uint64_t journal_last(void) { return tls_last; }

sqlite3 *journal_db(journal_t *j) { return j->db; }

int journal_js_seen_load(journal_t *j, void (*each)(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi),
                         void *ctx)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(j->db, "SELECT origin, lo, hi FROM js_seen", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        each(ctx, (uint64_t)sqlite3_column_int64(q, 0), (uint64_t)sqlite3_column_int64(q, 1),
             (uint64_t)sqlite3_column_int64(q, 2));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void journal_set_loading(journal_t *j, bool loading)
{
    pthread_mutex_lock(&j->lock);
    j->loading = loading;
    pthread_mutex_unlock(&j->lock);
}

void journal_saw_msg_id(journal_t *j, uint64_t id)
{
    if (id >= j->next_msg_id)
        j->next_msg_id = id + 1;
}

void journal_lock(journal_t *j) { pthread_mutex_lock(&j->lock); }
void journal_unlock(journal_t *j) { pthread_mutex_unlock(&j->lock); }

/* ---- queuing ---- */

bool journal_push_locked(journal_t *j, jrec_t *r)
{
    if (j->stopped || (j->loading && r->kind != R_MSG_DEL))
        return false;
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 256;
        j->q = xrealloc(j->q, j->cap * sizeof(*j->q));
    }
    j->hooks.hold(j->hooks.ctx, r);
    j->q[j->n++] = *r;
    tls_last = ++j->submitted;
    if (j->open_groups == 0) {
        if (j->cut == 0)
            pthread_cond_signal(&j->cond);
        j->cut = j->n;
    }
    return true;
}

/* Records of one group are committed together: the journal thread cuts its batches only where no
 * group is open. Groups nest per thread (only the outermost counts). */
static _Thread_local int tls_group_depth;

void journal_group_begin(journal_t *j)
{
    if (!j || tls_group_depth++ > 0)
        return;
    pthread_mutex_lock(&j->lock);
    j->open_groups++;
    pthread_mutex_unlock(&j->lock);
}

void journal_group_end(journal_t *j)
{
    if (!j || --tls_group_depth > 0)
        return;
    pthread_mutex_lock(&j->lock);
    if (--j->open_groups == 0 && j->cut < j->n) {
        if (j->cut == 0)
            pthread_cond_signal(&j->cond);
        j->cut = j->n;
    }
    pthread_mutex_unlock(&j->lock);
}

bool journal_push(journal_t *j, jrec_t *r)
{
    pthread_mutex_lock(&j->lock);
    bool ok = journal_push_locked(j, r);
    pthread_mutex_unlock(&j->lock);
    return ok;
}

uint64_t journal_msg_add_locked(journal_t *j, void *m)
{
    if (j->stopped || j->loading)
        return 0;
    jrec_t r = {.kind = R_MSG_ADD, .m = m, .msg_id = j->next_msg_id};
    return journal_push_locked(j, &r) ? j->next_msg_id++ : 0;
}

/* ---- the journal's thread ---- */

static int run_stmt(journal_t *j, enum stmt k)
{
    sqlite3_stmt *q = j->stmt[k];
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_client(sqlite3_stmt *q, const jrec_t *r)
{
    sqlite3_bind_blob(q, 1, r->cid, (int)r->cid_len, SQLITE_STATIC);
}

static int write_msg(journal_t *j, const jrec_t *r)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    int64_t expire_wall = 0;
    j->hooks.encode_msg(j->hooks.ctx, r->m, &bytes, &n, &expire_wall);
    sqlite3_stmt *q = j->stmt[S_MSG_ADD];
    sqlite3_bind_int64(q, 1, (sqlite3_int64)r->msg_id);
    sqlite3_bind_blob(q, 2, bytes, (int)n, free);
    if (expire_wall)
        sqlite3_bind_int64(q, 3, expire_wall);
    return run_stmt(j, S_MSG_ADD);
}

static int apply(journal_t *j, const jrec_t *r)
{
    sqlite3_stmt **S = j->stmt;
    int rc = SQLITE_OK;
    switch (r->kind) {
    case R_MSG_ADD:
        return write_msg(j, r);
    case R_MSG_DEL:
        sqlite3_bind_int64(S[S_MSG_DEL], 1, (sqlite3_int64)r->msg_id);
        return run_stmt(j, S_MSG_DEL);
    case R_SESS_PUT:
        bind_client(S[S_SESS_PUT], r);
        sqlite3_bind_int64(S[S_SESS_PUT], 2, r->u32);
        if (r->blob)
            sqlite3_bind_blob(S[S_SESS_PUT], 3, r->blob, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int(S[S_SESS_PUT], 4, r->listener);
        if (r->offline_since)
            sqlite3_bind_int64(S[S_SESS_PUT], 5, r->offline_since);
        if (r->msg_id)
            sqlite3_bind_int64(S[S_SESS_PUT], 6, (sqlite3_int64)r->msg_id);
        sqlite3_bind_int64(S[S_SESS_PUT], 7, r->seq);
        return run_stmt(j, S_SESS_PUT);
    case R_SESS_DEL: {
        static const enum stmt dels[] = {S_SESS_DEL, S_SESS_DEL_SUBS, S_SESS_DEL_OUT, S_SESS_DEL_IN2};
        for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]) && rc == SQLITE_OK; i++) {
            bind_client(S[dels[i]], r);
            rc = run_stmt(j, dels[i]);
        }
        return rc;
    }
    case R_SUB_PUT:
        bind_client(S[S_SUB_PUT], r);
        sqlite3_bind_blob(S[S_SUB_PUT], 2, r->blob, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int(S[S_SUB_PUT], 3, (int)r->seq);
        sqlite3_bind_int64(S[S_SUB_PUT], 4, r->u32);
        return run_stmt(j, S_SUB_PUT);
    case R_SUB_DEL:
        bind_client(S[S_SUB_DEL], r);
        sqlite3_bind_blob(S[S_SUB_DEL], 2, r->blob, (int)r->blob_len, SQLITE_STATIC);
        return run_stmt(j, S_SUB_DEL);
    case R_OUT_PUT: {
        sqlite3_stmt *q = S[S_OUT_PUT];
        bind_client(q, r);
        sqlite3_bind_int64(q, 2, r->seq);
        if (r->msg_id)
            sqlite3_bind_int64(q, 3, (sqlite3_int64)r->msg_id);
        sqlite3_bind_int(q, 4, r->qos);
        sqlite3_bind_int(q, 5, r->retain);
        sqlite3_bind_int(q, 6, r->state);
        sqlite3_bind_int(q, 7, r->pid);
        if (r->u32)
            sqlite3_bind_blob(q, 8, r->blob, (int)(r->u32 * sizeof(uint32_t)), SQLITE_STATIC);
        if (r->m && r->has_msg) {
            uint8_t *bytes = NULL;
            size_t n = 0;
            int64_t expire_wall = 0;
            j->hooks.encode_msg(j->hooks.ctx, r->m, &bytes, &n, &expire_wall);
            sqlite3_bind_blob(q, 9, bytes, (int)n, free);
            if (expire_wall)
                sqlite3_bind_int64(q, 10, expire_wall);
        }
        return run_stmt(j, S_OUT_PUT);
    }
    case R_OUT_STATE: {
        sqlite3_stmt *q = S[S_OUT_STATE];
        bind_client(q, r);
        sqlite3_bind_int64(q, 2, r->seq);
        sqlite3_bind_int(q, 3, r->state);
        sqlite3_bind_int(q, 4, r->pid);
        if (r->msg_id)
            sqlite3_bind_int64(q, 5, (sqlite3_int64)r->msg_id);
        sqlite3_bind_int(q, 6, r->has_msg);
        return run_stmt(j, S_OUT_STATE);
    }
    case R_OUT_DEL:
        bind_client(S[S_OUT_DEL], r);
        sqlite3_bind_int64(S[S_OUT_DEL], 2, r->seq);
        return run_stmt(j, S_OUT_DEL);
    case R_IN2_ADD:
    case R_IN2_DEL: {
        enum stmt k = r->kind == R_IN2_ADD ? S_IN2_ADD : S_IN2_DEL;
        bind_client(S[k], r);
        sqlite3_bind_int(S[k], 2, r->pid);
        return run_stmt(j, k);
    }
    case R_RET_SET: {
        sqlite3_stmt *q = S[S_RET_SET];
        const uint8_t *b = r->blob;
        sqlite3_bind_blob(q, 1, b, (int)r->blob_len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)r->msg_id);
        if (r->u32) { /* zero-length blobs bind as X'' (not NULL): a name may be empty */
            sqlite3_bind_blob(q, 3, b + r->blob_len, (int)(r->u32 - 1), SQLITE_STATIC);
            sqlite3_bind_int(q, 5, r->listener);
        } else {
            sqlite3_bind_null(q, 3);
            sqlite3_bind_null(q, 5);
        }
        if (r->u32 && r->seq)
            sqlite3_bind_blob(q, 4, b + r->blob_len + r->u32 - 1, (int)(r->seq - 1), SQLITE_STATIC);
        else
            sqlite3_bind_null(q, 4);
        return run_stmt(j, S_RET_SET);
    }
    case R_RET_DEL:
        sqlite3_bind_blob(S[S_RET_DEL], 1, r->blob, (int)r->blob_len, SQLITE_STATIC);
        return run_stmt(j, S_RET_DEL);
    case R_JS_SEEN:
    case R_JS_UNSEE: {
        enum stmt k = r->kind == R_JS_SEEN ? S_JS_SEEN : S_JS_UNSEE;
        sqlite3_bind_int64(S[k], 1, (sqlite3_int64)r->js.origin);
        sqlite3_bind_int64(S[k], 2, (sqlite3_int64)r->js.lo);
        if (k == S_JS_SEEN)
            sqlite3_bind_int64(S[k], 3, (sqlite3_int64)r->js.hi);
        return run_stmt(j, k);
    }
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
static uint64_t rec_key(const jrec_t *r)
{
    if (r->kind == R_MSG_ADD || r->kind == R_MSG_DEL)
        return r->msg_id * 0x9E3779B97F4A7C15ull;
    return ((uint64_t)(uintptr_t)r->owner * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r->seq * 0xC2B2AE3D27D4EB4Full);
}

static bool rec_same(const jrec_t *a, const jrec_t *b)
{
    if (a->kind == R_MSG_ADD)
        return a->msg_id == b->msg_id;
    return a->owner == b->owner && a->seq == b->seq;
}

static size_t coalesce(jrec_t *v, size_t n, uint32_t **table, size_t *table_cap)
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
        jrec_t *r = &v[i];
        if (r->kind == R_JS_SEEN) { /* a range grows with each message: only the batch's last value counts */
            uint64_t key = (r->js.origin ^ (r->js.lo * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
            size_t h = (size_t)(key >> 32) & (cap - 1);
            while (t[h] != UINT32_MAX && !(v[t[h]].kind == R_JS_SEEN && v[t[h]].js.origin == r->js.origin &&
                                           v[t[h]].js.lo == r->js.lo))
                h = (h + 1) & (cap - 1);
            if (t[h] != UINT32_MAX) {
                v[t[h]].kind = R_NOP;
                cancelled++;
            }
            t[h] = (uint32_t)i;
            continue;
        }
        bool opens = r->kind == R_OUT_PUT || r->kind == R_MSG_ADD;
        bool closes = r->kind == R_OUT_DEL || r->kind == R_MSG_DEL || r->kind == R_OUT_STATE;
        if (!opens && !closes)
            continue;
        size_t h = (size_t)(rec_key(r) & (cap - 1));
        while (t[h] != UINT32_MAX) {
            jrec_t *o = &v[t[h]];
            bool out_closer = r->kind == R_OUT_STATE || r->kind == R_OUT_DEL;
            bool pair = ((o->kind == R_OUT_PUT || o->kind == R_OUT_STATE) && out_closer) ||
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
        if (t[h] == UINT32_MAX) {
            /* Its row was written by an earlier batch. A state change waits in the table: a later
             * change or deletion of the same row in this batch makes it moot. */
            if (r->kind == R_OUT_STATE)
                t[h] = (uint32_t)i;
            continue;
        }
        jrec_t *o = &v[t[h]];
        if (o->kind == R_OUT_STATE) {
            /* o updates a row of an earlier batch: r supersedes it (an UPDATE sets every field
             * but the packet, which it can only clear) or deletes the row. */
            if (r->kind == R_OUT_STATE) {
                r->has_msg = r->has_msg && o->has_msg;
                t[h] = (uint32_t)i;
            }
            o->kind = R_NOP; /* after a deletion it stays in the table as a tombstone */
            cancelled++;
            continue;
        }
        if (r->kind == R_OUT_STATE) {
            o->state = r->state;
            o->pid = r->pid;
            o->msg_id = r->msg_id;
            if (!r->has_msg)
                o->has_msg = 0; /* delivered (QoS 2 PUBREC): the row keeps no packet */
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

/* A message's row that no record of the batch needs any more is not written either: the MSG_ADD
 * record itself holds a reference to the message until its batch is written, so the message's
 * MSG_DEL (recorded by its last release) always comes in a later batch and coalesce cannot pair
 * them. Here: a live MSG_ADD that no other live record names, whose message has no holder but this
 * record (hooks.msg_unused), is dropped. Returns how many were. */
static size_t drop_unused_msgs(journal_t *j, jrec_t *v, size_t n)
{
    size_t adds = 0;
    for (size_t i = 0; i < n; i++)
        adds += v[i].kind == R_MSG_ADD;
    if (adds == 0 || !j->hooks.msg_unused)
        return 0;
    size_t cap = 64;
    while (cap < 2 * n)
        cap *= 2;
    uint64_t *named = xcalloc(cap, sizeof(uint64_t)); /* msg ids other live records name; 0: empty */
    for (size_t i = 0; i < n; i++) {
        const jrec_t *r = &v[i];
        if (r->kind == R_NOP || r->kind == R_MSG_ADD || r->kind == R_MSG_DEL || r->msg_id == 0)
            continue;
        size_t h = (size_t)((r->msg_id * 0x9E3779B97F4A7C15ull) & (cap - 1));
        while (named[h] && named[h] != r->msg_id)
            h = (h + 1) & (cap - 1);
        named[h] = r->msg_id;
    }
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        jrec_t *r = &v[i];
        if (r->kind != R_MSG_ADD)
            continue;
        size_t h = (size_t)((r->msg_id * 0x9E3779B97F4A7C15ull) & (cap - 1));
        while (named[h] && named[h] != r->msg_id)
            h = (h + 1) & (cap - 1);
        if (named[h] == 0 && j->hooks.msg_unused(j->hooks.ctx, r->m)) {
            r->kind = R_NOP; /* r->m stays: its reference is released with the batch */
            dropped++;
        }
    }
    free(named);
    return dropped;
}

/* One transaction for the whole batch. */
static int apply_batch(journal_t *j, jrec_t *v, size_t n)
{
    int rc = run_stmt(j, S_BEGIN);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = apply(j, &v[i]);
    if (rc == SQLITE_OK)
        rc = run_stmt(j, S_COMMIT);
    if (rc != SQLITE_OK) {
        log_printf(TLOG_ERR, "Error: persistence: %s (%s).", sqlite3_errmsg(j->db), sqlite3_errstr(rc));
        run_stmt(j, S_ROLLBACK);
    }
    return rc;
}

static void *journal_main(void *arg)
{
    journal_t *j = arg;
    jrec_t *batch = NULL;
    size_t batch_cap = 0, table_cap = 0;
    uint32_t *table = NULL; /* coalesce's hash table, reused */
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (j->cut == 0 && !(j->stopping && j->open_groups == 0))
            pthread_cond_wait(&j->cond, &j->lock);
        if (j->n == 0)
            break; /* stopping, and everything is written */
        /* The batch: everything up to the last point outside every group; the rest (records of a
         * group still open) waits for the next one. */
        size_t n = j->stopping && j->open_groups == 0 ? j->n : j->cut;
        size_t rest = j->n - n, vcap = j->cap;
        jrec_t *v = j->q;
        uint64_t upto = j->submitted - rest;
        if (batch_cap < rest + 256) {
            batch_cap = rest + 256;
            batch = xrealloc(batch, batch_cap * sizeof(*batch));
        }
        if (rest)
            memcpy(batch, v + n, rest * sizeof(*v));
        j->q = batch;
        j->cap = batch_cap;
        j->n = rest;
        j->cut = 0;
        pthread_mutex_unlock(&j->lock);

        coalesce(v, n, &table, &table_cap);
        drop_unused_msgs(j, v, n);
        /* A failed commit is retried: replies wait rather than claim durability we do not have. */
        int tries = 0;
        uint64_t t0 = now_ns();
        while (apply_batch(j, v, n) != SQLITE_OK) {
            if (++tries >= 5 && j->hooks.stopping(j->hooks.ctx)) {
                log_printf(TLOG_ERR, "Error: persistence: giving up on %zu records at shutdown.", n);
                break;
            }
            sleep(1);
        }
        if (j->hooks.mirror)
            j->hooks.mirror(j->hooks.ctx, v, n);
        hist_record(j, now_ns() - t0);
        for (size_t i = 0; i < n; i++) {
            free(v[i].blob);
            j->hooks.release(j->hooks.ctx, &v[i]); /* may record a deletion: the lock is not held */
        }
        atomic_store(&j->committed, upto);
        j->hooks.committed(j->hooks.ctx, upto);

        pthread_mutex_lock(&j->lock);
        batch = v; /* the two vectors take turns */
        batch_cap = vcap;
    }
    j->stopped = true;
    pthread_mutex_unlock(&j->lock);
    free(batch);
    free(table);
    return NULL;
}

/* ---- lifetime ---- */

journal_t *journal_open(const char *path, const journal_hooks_t *hooks, char *err, size_t errlen)
{
    journal_t *j = xcalloc(1, sizeof(*j));
    j->hooks = *hooks;
    j->lock_fd = -1;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->next_msg_id = 1;
    /* One broker per database: an flock on the file (independent of SQLite's own POSIX locks, so
     * `sqlite3 tombo.db` can still read it while the broker runs). */
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "cannot open the persistence database %s: %s", path,
                 j->lock_fd >= 0 && errno == EWOULDBLOCK ? "it is in use by another broker" : strerror(errno));
        j->stopped = true;
        journal_free(j);
        return NULL;
    }
    /* No locking inside SQLite: the connection is used by one thread at a time (recovery.c on the
     * main thread before journal_start, then only the journal's thread, until journal_free has
     * joined it), so SQLite's per-call connection mutex and its allocator statistics (a global
     * mutex around every allocation) were pure cost: 10% of the broker's CPU in durable QoS 1
     * pairs went to pthread_mutex_lock/unlock. SQLITE_CONFIG_MEMSTATUS only takes effect before
     * SQLite initialises (the first open in the process); later it fails harmlessly. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char *emsg = NULL;
    if (rc == SQLITE_OK)
        sqlite3_busy_timeout(j->db, 1000);
    int version = 0;
    if (rc == SQLITE_OK) {
        sqlite3_stmt *q = NULL;
        rc = sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &q, NULL);
        if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            version = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
        snprintf(err, errlen, "cannot open the persistence database %s: its format (%d) is newer than this tombo's (%d)",
                 path, version, SCHEMA_VERSION);
        j->stopped = true;
        journal_free(j);
        return NULL;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(j->db, schema_sql, NULL, NULL, &emsg);
    /* schema_sql created what was missing at the current version: only older tables need upgrades. */
    if (rc == SQLITE_OK && version == 0)
        rc = sqlite3_exec(j->db, "PRAGMA user_version = 4", NULL, NULL, &emsg);
    if (rc == SQLITE_OK && version == 1)
        rc = sqlite3_exec(j->db, upgrade_v1_sql, NULL, NULL, &emsg);
    if (rc == SQLITE_OK && (version == 1 || version == 2))
        rc = sqlite3_exec(j->db, upgrade_v2_sql, NULL, NULL, &emsg);
    if (rc == SQLITE_OK && version >= 1 && version <= 3)
        rc = sqlite3_exec(j->db, upgrade_v3_sql, NULL, NULL, &emsg);
    for (int k = 0; k < S_COUNT && rc == SQLITE_OK; k++)
        rc = sqlite3_prepare_v3(j->db, stmt_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &j->stmt[k], NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the persistence database %s: %s", path,
                 emsg ? emsg : j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
        sqlite3_free(emsg);
        j->stopped = true;
        journal_free(j);
        return NULL;
    }
    return j;
}

int journal_start(journal_t *j)
{
    if (pthread_create(&j->thread, NULL, journal_main, j) != 0)
        return -1;
    j->running = true;
    return 0;
}

void journal_stop(journal_t *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_signal(&j->cond);
    if (!j->running)
        j->stopped = true;
    pthread_mutex_unlock(&j->lock);
    if (j->running) {
        pthread_join(j->thread, NULL);
        j->running = false;
    }
}

void journal_free(journal_t *j)
{
    if (!j)
        return;
    journal_stop(j);
    /* Records left unwritten (only if the thread never ran) give their references back. */
    for (size_t i = 0; i < j->n; i++) {
        free(j->q[i].blob);
        j->hooks.release(j->hooks.ctx, &j->q[i]);
    }
    free(j->q);
    for (int k = 0; k < S_COUNT; k++)
        sqlite3_finalize(j->stmt[k]);
    sqlite3_close(j->db);
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
