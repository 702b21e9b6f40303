/* loop.c -- the network loop: one step (tombo_loop), the blocking loop (tombo_loop_forever), the
 * background thread (tombo_loop_start/stop), keepalive pings and timeouts. poll() runs without the
 * client's lock, on the socket and on the wake eventfd that other threads signal when they queue
 * output or change the connection. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "handle.h"
#include "log.h"
#include "net.h"
#include "reconnect.h"
#include "session.h"

/* Keepalive: returns the ms until the next keepalive event (-1: none), closing the connection or
 * sending PINGREQ when one is due. Lock held. */
static int keepalive_step(tombo_client_t *c, uint64_t now)
{
    if (c->fd < 0 || c->state == CS_CLOSING)
        return -1;
    if (c->state == CS_CONNECTING) {
        uint64_t limit = c->connect_sent_ms + (uint64_t)c->opts.connect_timeout_ms;
        if (now >= limit) {
            conn_lost(c, TOMBO_ERR_TIMEOUT, 0, NULL);
            return 0;
        }
        return (int)(limit - now);
    }
    int ka = c->server_keepalive >= 0 ? c->server_keepalive : c->keepalive;
    if (ka <= 0)
        return -1;
    uint64_t ka_ms = (uint64_t)ka * 1000u;
    if (c->ping_sent_ms) {
        if (now >= c->ping_sent_ms + ka_ms) {
            client_log(c, TOMBO_LOG_WARNING, "no PINGRESP within the keepalive");
            conn_lost(c, TOMBO_ERR_KEEPALIVE, 0, NULL);
            return 0;
        }
        return (int)(c->ping_sent_ms + ka_ms - now);
    }
    uint64_t last = c->last_out_ms < c->last_in_ms ? c->last_out_ms : c->last_in_ms;
    if (now >= last + ka_ms) {
        mqtt_packet_t p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_PINGREQ;
        if (net_send_packet(c, &p) == TOMBO_OK) {
            c->ping_sent_ms = now;
            c->last_out_ms = now;
            c->last_in_ms = now; /* the next check waits a whole keepalive for the answer */
        }
        return (int)ka_ms;
    }
    return (int)(last + ka_ms - now);
}

static int min_timeout(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static void drain_wake(tombo_client_t *c)
{
    uint64_t v;
    while (read(c->wake_fd, &v, sizeof(v)) > 0) {
    }
}

tombo_err_t tombo_loop(tombo_client_t *c, int timeout_ms)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    uint64_t now = (uint64_t)now_ms();
    int wait = timeout_ms;
    if (c->fd < 0) {
        if (!c->reconnect_pending) {
            pthread_mutex_unlock(&c->lock);
            return TOMBO_ERR_NO_CONN;
        }
        if (now >= c->reconnect_at_ms) {
            reconnect_try(c);
            now = (uint64_t)now_ms();
        }
        if (c->fd < 0) {
            int until = c->reconnect_pending ? (int)(c->reconnect_at_ms > now ? c->reconnect_at_ms - now : 0) : 0;
            wait = min_timeout(wait, until);
        }
    }
    wait = min_timeout(wait, keepalive_step(c, now));
    tombo_err_t fe = c->fd >= 0 ? net_flush(c) : TOMBO_OK;
    if (fe != TOMBO_OK && fe != TOMBO_ERR_AGAIN)
        conn_lost(c, fe, 0, NULL);
    session_report_done0(c);
    bool pending = net_pending(c);
    if (pending)
        wait = 0; /* input decrypted but not read yet: poll() would not say so */

    struct pollfd pfd[2];
    pfd[0].fd = c->wake_fd;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    int nfds = 1;
    unsigned gen = c->gen;
    if (c->fd >= 0) {
        pfd[1].fd = c->fd;
        pfd[1].events = net_events(c);
        pfd[1].revents = 0;
        nfds = 2;
    }
    c->polling++;
    pthread_mutex_unlock(&c->lock);

    int r = poll(pfd, (nfds_t)nfds, wait);
    int perr = errno;

    pthread_mutex_lock(&c->lock);
    c->polling--;
    tombo_err_t result = TOMBO_OK;
    if (r < 0 && perr != EINTR) {
        pthread_mutex_unlock(&c->lock);
        errno = perr;
        return TOMBO_ERR_ERRNO;
    }
    if (r > 0 && (pfd[0].revents & POLLIN))
        drain_wake(c);
    if (c->state == CS_CLOSING && c->polling == 0) {
        /* Another thread asked to close while we polled: we finish it. */
        c->state = CS_CONNECTED;
        tombo_err_t why = c->close_err;
        conn_lost(c, why, 0, NULL);
        result = why;
    } else if (nfds == 2 && c->fd >= 0 && gen == c->gen && (r > 0 || pending)) {
        /* POLLOUT too: a TLS handshake waiting to write goes on inside net_read. */
        if (pending || (pfd[1].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR))) {
            tombo_err_t e = net_read(c);
            handle_packets(c);
            if (e != TOMBO_OK && gen == c->gen && c->fd >= 0) {
                conn_lost(c, e, 0, NULL);
                result = e;
            }
        }
    }
    if (c->fd >= 0 && c->state != CS_CLOSING) {
        fe = net_flush(c);
        if (fe != TOMBO_OK && fe != TOMBO_ERR_AGAIN) {
            conn_lost(c, fe, 0, NULL);
            result = fe;
        }
        keepalive_step(c, (uint64_t)now_ms());
        session_report_done0(c);
    }
    pthread_mutex_unlock(&c->lock);
    return result;
}

/* Is there nothing more for a loop to do: no connection, and none coming back by itself? */
static bool loop_done(tombo_client_t *c, tombo_err_t *why)
{
    pthread_mutex_lock(&c->lock);
    bool done = c->fd < 0 && !c->reconnect_pending;
    if (done && why)
        *why = c->user_disconnect ? TOMBO_OK : c->last_err != TOMBO_OK ? c->last_err : *why;
    pthread_mutex_unlock(&c->lock);
    return done;
}

tombo_err_t tombo_loop_forever(tombo_client_t *c)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    tombo_err_t last = TOMBO_ERR_NO_CONN;
    while (!c->stop_thread) {
        tombo_err_t e = tombo_loop(c, 1000);
        if (e != TOMBO_OK && e != TOMBO_ERR_NO_CONN)
            last = e;
        if (loop_done(c, &last))
            return last;
    }
    return TOMBO_OK;
}

static void *loop_thread(void *arg)
{
    tombo_client_t *c = arg;
    while (!__atomic_load_n(&c->stop_thread, __ATOMIC_ACQUIRE)) {
        tombo_err_t e = tombo_loop(c, 1000);
        if (e == TOMBO_ERR_NO_CONN) {
            /* Nothing to do until someone connects (or stops us): sleep on the wake fd. */
            struct pollfd pfd = {.fd = c->wake_fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) > 0) {
                pthread_mutex_lock(&c->lock);
                drain_wake(c);
                pthread_mutex_unlock(&c->lock);
            }
        }
    }
    return NULL;
}

tombo_err_t tombo_loop_start(tombo_client_t *c)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    if (c->thread_running) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_BUSY;
    }
    __atomic_store_n(&c->stop_thread, 0, __ATOMIC_RELEASE);
    if (pthread_create(&c->thread, NULL, loop_thread, c) != 0) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_THREAD;
    }
    c->thread_running = true;
    pthread_mutex_unlock(&c->lock);
    return TOMBO_OK;
}

tombo_err_t tombo_loop_stop(tombo_client_t *c)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    if (!c->thread_running) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_OK;
    }
    if (pthread_equal(c->thread, pthread_self())) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_BUSY;
    }
    pthread_t t = c->thread;
    __atomic_store_n(&c->stop_thread, 1, __ATOMIC_RELEASE);
    loop_wake(c);
    pthread_mutex_unlock(&c->lock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&c->lock);
    c->thread_running = false;
    __atomic_store_n(&c->stop_thread, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
    return TOMBO_OK;
}

void loop_wake(tombo_client_t *c)
{
    uint64_t one = 1;
    if (c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, the loop will wake anyway. */
    }
}
