/* trace.h -- the packet trace of one client for the dashboard: the packets a chosen client id
 * sends and receives, recorded by its connection's worker into a bounded ring that the HTTP
 * endpoint reads (/api/v1/trace).
 *
 * Design: costs nothing measurable when nobody is traced: a connection keeps (gen, traced) and
 * compares gen with the trace's atomic generation (one relaxed load per packet); only when they
 * differ does it look at the traced client id again, under the trace's mutex. The generation is
 * even while nothing is traced and odd while a client is, so the common test is one load and one
 * bit. Events of a traced connection are written under the mutex (a few per packet: cost only when
 * tracing). The ring keeps the last TRACE_CAP events; each has a sequence number so a reader asks
 * for what came after the last one it saw.
 *
 * Thread-safety: everything here may be called from any thread. Ownership: the broker owns the
 * trace (trace_new at init, trace_free at the end). */
#ifndef TOMBO_BROKER_TRACE_H
#define TOMBO_BROKER_TRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/packet.h"

#define TRACE_CAP 1024
#define TRACE_DETAIL 160

typedef struct trace_event {
    uint64_t seq;
    int64_t wall_ms;   /* wall clock, ms since the epoch */
    uint8_t out;       /* 0: client -> broker, 1: broker -> client */
    uint8_t type;      /* enum mqtt_type */
    uint8_t qos, retain, dup, reason;
    uint16_t id;       /* packet identifier (0: none) */
    char detail[TRACE_DETAIL]; /* topic, filters, payload start, client id...: bytes, maybe cut anywhere */
    uint16_t detail_len;
} trace_event_t;

typedef struct trace {
    atomic_uint gen; /* even: nobody traced; odd: `client` is */
    pthread_mutex_t lock;
    /* --- guarded by lock --- */
    char *client;    /* traced client id, or NULL */
    size_t client_len;
    uint64_t next_seq; /* seq of the next event (the first is 1) */
    trace_event_t *ring; /* TRACE_CAP entries, event seq s at ring[s % TRACE_CAP] */
} trace_t;

trace_t *trace_new(void);
void trace_free(trace_t *t);

/* Trace client id[0..len) from now on (the previous one's events are forgotten), or nobody when
 * id is NULL. */
void trace_set(trace_t *t, const char *id, size_t len);

/* The per-connection test: is the client behind (id, len) traced? gen/traced are the connection's
 * cache, updated here. id may be NULL (not known yet: not traced). */
bool trace_match_slow(trace_t *t, unsigned gen, const char *id, size_t len);
static inline bool trace_wanted(trace_t *t, uint8_t *gen, uint8_t *traced, const char *id, size_t len)
{
    unsigned g = atomic_load_explicit(&t->gen, memory_order_relaxed);
    if (!(g & 1))
        return false;
    if ((uint8_t)g != *gen || !id) {
        *traced = trace_match_slow(t, g, id, len);
        *gen = id ? (uint8_t)g : (uint8_t)(g - 1); /* unknown id: look again next time */
    }
    return *traced;
}

/* Record packet p (out: sent to the client) of a traced connection speaking `version`. */
void trace_packet(trace_t *t, bool out, uint8_t version, const mqtt_packet_t *p);

/* Copy the events with seq > after (at most max, oldest first) into ev; returns how many, and the
 * traced client id into id (cap bytes, NUL-terminated, "" for nobody; *id_len its length). */
size_t trace_read(trace_t *t, uint64_t after, trace_event_t *ev, size_t max, char *id, size_t cap, size_t *id_len);

#endif
