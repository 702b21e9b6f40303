/* reconnect.c -- losing a connection and getting it back: closing and reporting on_disconnect,
 * and automatic reconnect with exponential backoff and jitter (re-subscribing, when the broker did
 * not keep the session, is subs.c's). */
#include "reconnect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alias.h"
#include "auth.h"
#include "base/clock.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "props.h"

/* The connection is over (err says why; TOMBO_OK after tombo_disconnect). If another thread is in
 * poll() on the socket, only shut it down: that thread closes it (no fd reuse under its feet). */
void conn_lost(tombo_client_t *c, tombo_err_t err, int reason, const tombo_props_t *props)
{
    if (c->fd < 0)
        return;
    if (c->polling > 0) {
        if (c->state != CS_CLOSING) {
            c->state = CS_CLOSING;
            c->close_err = err;
            shutdown(c->fd, SHUT_RDWR);
            loop_wake(c);
        }
        return;
    }
    bool was_connected = c->state == CS_CONNECTED;
    c->last_err = err;
    net_close(c);
    auth_clear(c);
    c->state = CS_IDLE;
    c->ping_sent_ms = 0;
    alias_out_reset(c);
    if (c->aliases)
        for (int i = 0; i < c->opts.topic_alias_max; i++) {
            free(c->aliases[i]);
            c->aliases[i] = NULL;
        }
    /* QoS 0 messages written but maybe not sent: report them anyway, they are gone. */
    c->done0_n = 0;
    if (err != TOMBO_OK)
        client_log(c, TOMBO_LOG_INFO, "connection lost: %s", tombo_strerror(err));
    if (!c->user_disconnect && c->opts.auto_reconnect && c->host)
        reconnect_schedule(c);
    (void)was_connected;
    if (c->on_disconnect)
        c->on_disconnect(c, c->user, err, reason, props ? props : &props_empty);
}

static uint64_t rng_next(tombo_client_t *c)
{
    /* xorshift64: per client, so no shared state between threads. */
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

void reconnect_schedule(tombo_client_t *c)
{
    uint64_t delay = (uint64_t)(c->opts.reconnect_min_ms > 0 ? c->opts.reconnect_min_ms : 1);
    uint64_t max = (uint64_t)(c->opts.reconnect_max_ms > 0 ? c->opts.reconnect_max_ms : 1);
    for (int i = 0; i < c->reconnect_tries && delay < max; i++)
        delay *= 2;
    if (delay > max)
        delay = max;
    /* Jitter: somewhere in [delay/2, delay], so clients cut off together do not return together. */
    uint64_t half = delay / 2;
    delay = half + (half ? rng_next(c) % (half + 1) : 0);
    c->reconnect_tries++;
    c->reconnect_pending = true;
    c->reconnect_at_ms = (uint64_t)now_ms() + delay;
    client_log(c, TOMBO_LOG_INFO, "reconnecting in %llu ms", (unsigned long long)delay);
}

void reconnect_reset(tombo_client_t *c)
{
    c->reconnect_tries = 0;
    c->reconnect_pending = false;
}

/* Called by the loop when reconnect_at_ms has passed. */
void reconnect_try(tombo_client_t *c)
{
    c->reconnect_pending = false;
    tombo_err_t e = tombo_reconnect(c);
    if (e != TOMBO_OK) {
        client_log(c, TOMBO_LOG_INFO, "reconnect failed: %s", e == TOMBO_ERR_ERRNO ? strerror(errno) : tombo_strerror(e));
        if (!c->user_disconnect && c->opts.auto_reconnect)
            reconnect_schedule(c);
    }
}

/* Subscribe again to every filter we hold (one SUBSCRIBE each: each may carry its own properties). */
