/* conn_trace.h -- the packet trace's hook on a connection's input and output (trace.h): one
 * relaxed load and one bit tested per packet while nobody is traced. */
#ifndef TOMBO_BROKER_CONN_TRACE_H
#define TOMBO_BROKER_CONN_TRACE_H

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/trace.h"
#include "broker/worker.h"

/* Connection c's worker: record packet p (out: sent to the client) if c's client is traced. Before
 * the session is attached, a CONNECT names the client. */
static inline void conn_trace(conn_t *c, bool out, const mqtt_packet_t *p)
{
    trace_t *t = c->w->b->trace;
    if (!(atomic_load_explicit(&t->gen, memory_order_relaxed) & 1))
        return;
    const char *id = NULL;
    size_t len = 0;
    if (c->session) {
        id = c->session->client_id;
        len = c->session->client_id_len;
    } else if (p->type == MQTT_CONNECT && p->connect.client_id.len) {
        id = (const char *)p->connect.client_id.p;
        len = p->connect.client_id.len;
    }
    if (trace_wanted(t, &c->trace_gen, &c->traced, id, len))
        trace_packet(t, out, p->type == MQTT_CONNECT ? p->connect.version : c->version, p);
}

#endif
