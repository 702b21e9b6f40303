/* wheel.c -- the keepalive timer wheel of a worker: each connection's deadline (CONNECT in time,
 * 1.5 times its keep alive, the end of a linger) in a slot of WHEEL_TICK_MS, so a tick looks only
 * at the connections due in it, never at every client.
 *
 * Design: WHEEL_SLOTS slots of intrusive doubly linked lists (conn_t.tw_next/tw_prev); a deadline
 * past the wheel's horizon lands in a slot that comes round earlier and is simply re-slotted then.
 * A connection's deadline moves with every packet (last_rx) without touching the wheel: the tick
 * that finds it early re-slots it, so the hot read path costs nothing. */
#include "broker/wheel.h"

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"

#define WAITING_MS 60000

/* When c must have shown a sign of life (ms), or 0: never. */
static int64_t conn_deadline(const conn_t *c)
{
    if (c->draining)
        return c->last_rx + LINGER_MS; /* last_rx: when it started draining */
    if (c->state == CONN_NEW) {
        /* CONNECT in time (`connect_timeout`), TLS handshake included: last_rx is the accept until
         * a whole CONNECT has arrived. A CONNECT that came and waits for the broker (its password
         * check, its session's old connection) is the broker's delay, not the client's: it gets
         * WAITING_MS more, so a slow hash on a loaded machine does not cost the client its
         * connection, while a check that never ends still does not hold it for ever. */
        int64_t limit = (int64_t)c->w->b->cfg.connect_timeout * 1000;
        return c->last_rx + limit + (c->waiting ? WAITING_MS : 0);
    }
    if (c->keepalive == 0)
        return 0;
    return c->last_rx + (int64_t)c->keepalive * 1500; /* [MQTT-3.1.2-24]: 1.5 times the keep alive */
}

void wheel_unlink(conn_t *c)
{
    if (c->tw_prev) {
        *c->tw_prev = c->tw_next;
        if (c->tw_next)
            c->tw_next->tw_prev = c->tw_prev;
        c->tw_prev = NULL;
        c->tw_next = NULL;
    }
}

void wheel_schedule(conn_t *c)
{
    worker_t *w = c->w;
    wheel_unlink(c);
    int64_t d = conn_deadline(c);
    if (d == 0)
        return;
    int64_t tick = d / WHEEL_TICK_MS + 1;
    if (tick <= w->wheel.now)
        tick = w->wheel.now + 1;
    uint32_t slot = (uint32_t)(tick % WHEEL_SLOTS);
    c->tw_next = w->wheel.slot[slot];
    if (c->tw_next)
        c->tw_next->tw_prev = &c->tw_next;
    w->wheel.slot[slot] = c;
    c->tw_prev = &w->wheel.slot[slot];
}

/* Returns whether a tick went by. */
bool wheel_tick(worker_t *w)
{
    int64_t now_tick = w->now / WHEEL_TICK_MS;
    bool ticked = w->wheel.now < now_tick;
    while (w->wheel.now < now_tick) {
        w->wheel.now++;
        uint32_t slot = (uint32_t)(w->wheel.now % WHEEL_SLOTS);
        conn_t *list = w->wheel.slot[slot];
        w->wheel.slot[slot] = NULL;
        if (list)
            list->tw_prev = &list;
        while (list) {
            conn_t *c = list;
            wheel_unlink(c);
            int64_t d = conn_deadline(c);
            if (d == 0)
                continue;
            if (d <= w->now) {
                if (c->draining)
                    conn_drain(c, true);
                else if (c->state == CONN_NEW)
                    conn_close(c, "no CONNECT in time");
                else
                    conn_fail(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keepalive timeout");
            } else {
                wheel_schedule(c);
            }
        }
    }
    return ticked;
}
