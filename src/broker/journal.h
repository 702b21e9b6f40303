/* journal.h -- the persistence store's lower half: a queue of row changes and the thread that
 * commits them to SQLite in group commits. It knows tables and rows, not sessions or messages: the
 * references a record holds are opaque, and what it needs of them (keeping them alive, a message's
 * bytes, who to wake after a commit) it asks its owner through journal_hooks_t (store.c).
 *
 * Sequence numbers: every record queued gets the next one; after a commit the thread publishes the
 * highest it wrote (journal_committed). A thread remembers its own last record (journal_need), so
 * whatever depends on that record can wait for it; records made between journal_group_begin and
 * journal_group_end are never split across two transactions. See store.h for the whole design. */
#ifndef TOMBO_BROKER_JOURNAL_H
#define TOMBO_BROKER_JOURNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jrec_kind {
    R_MSG_ADD, R_MSG_DEL, R_SESS_PUT, R_SESS_DEL, R_SUB_PUT, R_SUB_DEL,
    R_OUT_PUT, R_OUT_STATE, R_OUT_DEL, R_IN2_ADD, R_IN2_DEL, R_RET_SET, R_RET_DEL,
    R_JS_SEEN, R_JS_UNSEE, /* js_seen rows (cluster_js.c) */
    R_NOP, /* cancelled within its batch (coalesce) */
};

/* One journal record: a row to write or delete.
 * Ownership: `owner` and `m` are references the record holds while it waits (taken by
 * hooks.hold when it is queued, given back by hooks.release once written); `cid` points into
 * `owner` (a client id, immutable while held); `blob` is the record's own malloc'ed copy. */
typedef struct jrec {
    uint8_t kind;               /* enum jrec_kind */
    uint8_t qos, retain, state; /* OUT_* */
    uint8_t has_msg;            /* OUT_PUT: write m's packet in the row itself; OUT_STATE: the entry
                                 * still holds its message (else an inline packet is cleared) */
    uint16_t pid;               /* OUT_*, IN2_* */
    uint32_t seq;               /* OUT_*; SUB_PUT: options; SESS_PUT: will delay; RET_SET: source
                                 * username length + 1 (0: none) */
    uint32_t u32;               /* SESS_PUT: expiry; SUB_PUT: sub_id; OUT_PUT: number of ids; RET_SET:
                                 * source client id length + 1 (0: no source) */
    int32_t listener;           /* SESS_PUT; RET_SET: the source's */
    int64_t offline_since;      /* SESS_PUT: wall-clock ms, 0 while connected */
    uint64_t msg_id;            /* MSG_*, RET_SET, OUT_*: the message's row; SESS_PUT: the will (0: none) */
    void *owner;                /* the session the row belongs to (SESS_*, SUB_*, OUT_*, IN2_*) */
    const void *cid;            /* owner's client id, the row's key */
    uint32_t cid_len;
    void *m;                    /* MSG_ADD, OUT_PUT with has_msg: the message to write */
    void *blob;                 /* SUB_*: filter; RET_*: topic (RET_SET: then the source's client id
                                 * and username); OUT_PUT: ids; SESS_PUT: username */
    uint32_t blob_len;
    struct { uint64_t origin, lo, hi; } js; /* JS_SEEN: the row (origin, lo) -> hi; JS_UNSEE: its key */
} jrec_t;

/* What the journal asks of its owner. Called on the journal's thread unless said otherwise. */
typedef struct journal_hooks {
    void *ctx;
    /* Take / give back the references r names (owner, m). hold runs under the journal's lock on
     * the queuing thread; release without it (it may queue a record itself). */
    void (*hold)(void *ctx, const jrec_t *r);
    void (*release)(void *ctx, const jrec_t *r);
    /* The row of message m: its bytes (malloc'ed, freed by the journal) and its expiry as
     * wall-clock ms (0: none). */
    void (*encode_msg)(void *ctx, void *m, uint8_t **bytes, size_t *n, int64_t *expire_wall);
    /* Optional (NULL: none): the batch v[0..n) is in the database and its references still held;
     * whatever must also be durable before `committed` is called is done here (cluster_sess.c:
     * the touched sessions copied to JetStream). */
    void (*mirror)(void *ctx, const jrec_t *v, size_t n);
    /* Every record up to sequence number `upto` is committed. */
    void (*committed)(void *ctx, uint64_t upto);
    /* True when the broker is shutting down: a commit that keeps failing is then given up. */
    bool (*stopping)(void *ctx);
    /* On the journal's thread, for a MSG_ADD no other record of its batch refers to: true when the
     * record's reference is the last one to m (every holder is gone, so no record can name it
     * again), in which case m forgets its row, so that releasing it records no deletion, and the
     * row is never written. */
    bool (*msg_unused)(void *ctx, void *m);
} journal_hooks_t;

typedef struct journal journal_t;

/* Open (creating if needed) the database at path, locked for this process. NULL with a message in
 * err on failure. */
journal_t *journal_open(const char *path, const journal_hooks_t *hooks, char *err, size_t errlen);
/* Start the thread. */
int journal_start(journal_t *j);
/* Write everything queued and stop the thread; records queued afterwards are dropped. */
void journal_stop(journal_t *j);
/* Stop, give back the references of records never written, close the database. */
void journal_free(journal_t *j);

/* The database, for reading it back before the thread starts (recovery.c). */
sqlite3 *journal_db(journal_t *j);
/* While loading, only message deletions are recorded (what recovery rebuilds is in the database
 * already). */
void journal_set_loading(journal_t *j, bool loading);
/* A message row read back: new message rows are numbered after it. */
void journal_saw_msg_id(journal_t *j, uint64_t id);
/* Before journal_start: each js_seen row (origin, lo, hi) to `each`. Returns 0, or an SQLite error. */
int journal_js_seen_load(journal_t *j, void (*each)(void *ctx, uint64_t origin, uint64_t lo, uint64_t hi),
                         void *ctx);

/* Queue r, taking the references it names. False when nothing is recorded now (stopped, or
 * loading); then the caller still owns r->blob. The _locked forms run between journal_lock and
 * journal_unlock, so several records and the owner's bookkeeping go in as one step. */
bool journal_push(journal_t *j, jrec_t *r);
void journal_lock(journal_t *j);
void journal_unlock(journal_t *j);
bool journal_push_locked(journal_t *j, jrec_t *r);
/* Queue the row of message m (a R_MSG_ADD) under a new id (lock held). Returns the id, or 0 when
 * nothing is recorded now. */
uint64_t journal_msg_add_locked(journal_t *j, void *m);

/* See store_group_begin/end in store.h. Nestable per thread; j may be NULL. */
void journal_group_begin(journal_t *j);
void journal_group_end(journal_t *j);
/* The sequence number of the last record committed. */
uint64_t journal_committed(journal_t *j);
/* 0 when every record the calling thread queued is committed, else the number to wait for. */
uint64_t journal_need(journal_t *j);
/* The sequence number of the last record the calling thread queued (0: none yet), committed or not:
 * two reads tell whether the thread recorded anything in between. */
uint64_t journal_last(void);

/* How long commits take: a histogram of the transactions the journal thread ran (one per batch),
 * for /metrics. Buckets are upper bounds in seconds, Prometheus-style (the last one +Inf). */
#define JOURNAL_HIST_N 12
extern const double journal_hist_le[JOURNAL_HIST_N]; /* the finite bounds, ascending */
typedef struct journal_hist {
    uint64_t bucket[JOURNAL_HIST_N + 1]; /* commits in (le[i-1], le[i]]; the last: above le[N-1] */
    uint64_t count, sum_ns;
} journal_hist_t;
/* Any thread: a copy of the histogram (each field exact when read). */
void journal_commit_hist(journal_t *j, journal_hist_t *out);

/* Wall-clock milliseconds: what rows store, since the monotonic clock starts again at boot. */
int64_t journal_wall_ms(void);

#endif
