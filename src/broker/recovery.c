/* recovery.c -- start-up from the persistence database: rebuilds sessions (with their
 * subscriptions, queued and in-flight messages, inbound QoS 2 ids, wills and expiry timers), the
 * subscription tree and the retained store. Sits above all of them and the store; nothing calls
 * back into it. Runs once, before any worker or the journal's thread. */
#include "broker/recovery.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/registry.h"
#include "broker/timers.h"
#include "broker/journal.h"
#include "broker/log.h"
#include "broker/store.h"

static void bind_client(sqlite3_stmt *q, const session_t *s)
{
    sqlite3_bind_blob(q, 1, s->client_id, (int)s->client_id_len, SQLITE_STATIC);
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

/* A stored PUBLISH (column col, its expiry in col + 1) back into a message. */
static msg_t *read_msg(sqlite3_stmt *q, int col, int64_t now, int64_t wall)
{
    const uint8_t *bytes = sqlite3_column_blob(q, col);
    int n = sqlite3_column_bytes(q, col);
    mqtt_header_t h;
    mqtt_packet_t p;
    if (!bytes || mqtt_header_parse(bytes, (size_t)n, &h) != 1 || h.type != MQTT_PUBLISH ||
        (size_t)n < h.header_len + h.remaining ||
        mqtt_decode(&h, bytes + h.header_len, MQTT_V5, MQTT_FROM_CLIENT, &p) != MQTT_RC_SUCCESS)
        return NULL;
    msg_t *m = msg_new(p.publish.topic, p.publish.payload, p.publish.qos, p.publish.retain, &p.props, now);
    if (sqlite3_column_type(q, col + 1) != SQLITE_NULL) {
        m->has_expiry = 1;
        m->expiry_at = now + (sqlite3_column_int64(q, col + 1) - wall);
    }
    return m;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return NULL;
    return q;
}

/* Subscriptions, queued and in-flight messages and inbound QoS 2 ids of one restored session. */
static void load_session_state(broker_t *b, session_t *s, struct loaded_msg *msgs, size_t nm,
                               sqlite3_stmt *qs, sqlite3_stmt *qo, sqlite3_stmt *qi, size_t counts[3],
                               int64_t now, int64_t wall)
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
        msg_t *own = NULL; /* the message kept in the row itself (journal.c) */
        if (sqlite3_column_type(qo, 7) != SQLITE_NULL) {
            own = o.msg = read_msg(qo, 7, now, wall);
            if (own)
                own->store_inline = 1;
        } else if (sqlite3_column_type(qo, 1) != SQLITE_NULL) {
            o.msg = find_msg(msgs, nm, (uint64_t)sqlite3_column_int64(qo, 1));
        }
        if (o.state > OUT_WAIT_PUBCOMP || (o.state != OUT_WAIT_PUBCOMP && !o.msg) || o.qos == 0 || o.qos > 2) {
            msg_release(own);
            continue; /* nothing to resume it with */
        }
        const uint32_t *ids = sqlite3_column_blob(qo, 6);
        uint32_t n_ids = (uint32_t)((size_t)sqlite3_column_bytes(qo, 6) / sizeof(uint32_t));
        session_restore_out(s, &o, ids, n_ids);
        msg_release(own); /* the session holds its own reference */
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
    journal_t *j = store_journal(st);
    sqlite3 *db = journal_db(j);
    store_bind(st, b);
    journal_set_loading(j, true);
    int64_t now = now_ms(), wall = journal_wall_ms();
    struct loaded_msg *msgs = NULL;
    size_t nm = 0, cap = 0, n_sessions = 0, n_retained = 0, counts[3] = {0, 0, 0};
    int ret = -1;
    sqlite3_stmt *qm = prep(db, "SELECT id, packet, expire_wall FROM msgs ORDER BY id");
    sqlite3_stmt *qr = prep(db, "SELECT topic, msg_id, source_id, source_username, source_listener FROM retained");
    sqlite3_stmt *qss = prep(db, "SELECT client_id, expiry, username, listener, offline_since, will_msg_id, "
                                 "will_delay FROM sessions");
    sqlite3_stmt *qs = prep(db, "SELECT filter, options, sub_id FROM subs WHERE client_id = ?1");
    sqlite3_stmt *qo = prep(db, "SELECT seq, msg_id, qos, retain, state, pid, ids, packet, expire_wall FROM outq "
                                "WHERE client_id = ?1 "
                                "ORDER BY seq");
    sqlite3_stmt *qi = prep(db, "SELECT pid FROM inq2 WHERE client_id = ?1");
    if (!qm || !qr || !qss || !qs || !qo || !qi) {
        snprintf(err, errlen, "cannot read the persistence database: %s", sqlite3_errmsg(db));
        goto out;
    }

    while (sqlite3_step(qm) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(qm, 0);
        msg_t *m = read_msg(qm, 1, now, wall);
        journal_saw_msg_id(j, id);
        if (!m) {
            log_printf(TLOG_WARNING, "Warning: persistence: stored message %" PRIu64 " is unreadable; skipped.", id);
            continue;
        }
        store_msg_loaded(st, m, id);
        if (nm == cap) {
            cap = cap ? cap * 2 : 256;
            msgs = xrealloc(msgs, cap * sizeof(*msgs));
        }
        msgs[nm++] = (struct loaded_msg){id, m};
    }

    while (sqlite3_step(qr) == SQLITE_ROW) {
        msg_t *m = find_msg(msgs, nm, (uint64_t)sqlite3_column_int64(qr, 1));
        const uint8_t *topic = sqlite3_column_blob(qr, 0);
        size_t tn = (size_t)sqlite3_column_bytes(qr, 0);
        retain_src_t *src = NULL;
        if (sqlite3_column_type(qr, 2) != SQLITE_NULL) {
            const char *id = sqlite3_column_blob(qr, 2);
            size_t idn = (size_t)sqlite3_column_bytes(qr, 2);
            const char *user = sqlite3_column_type(qr, 3) != SQLITE_NULL ? sqlite3_column_blob(qr, 3) : NULL;
            size_t un = (size_t)sqlite3_column_bytes(qr, 3);
            int li = sqlite3_column_int(qr, 4);
            src = retain_src_new(id ? id : "", idn, user ? user : (un ? NULL : ""), un,
                                 b->auth[li >= 0 && li < b->cfg.n_listeners ? li : 0]);
        }
        if (m && topic && retain_set(b->retained, topic, tn, m, src) == 0)
            n_retained++;
        retain_src_release(src);
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
        session_restore_identity(s, expiry, user, (size_t)sqlite3_column_bytes(qss, 2),
                                 b->auth[li >= 0 && li < b->cfg.n_listeners ? li : 0]);
        load_session_state(b, s, msgs, nm, qs, qo, qi, counts, now, wall);
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
        session_restore_state(s, at, will, will_delay, will_at);
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
    journal_set_loading(j, false);
    return ret;
}
