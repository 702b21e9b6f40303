/* worker.c -- a worker thread: its epoll loop, accepting connections, its inbox and the flush of
 * output at the end of each loop turn. A connection's own life (read, write, close) is in conn*.c.
 *
 * Each worker owns its connections for life (keepalive deadlines on its wheel, wheel.c). Each listening socket is opened once and watched by
 * every worker with EPOLLEXCLUSIVE, so one worker wakes per new connection and accepts it; no
 * SO_REUSEPORT, which would let a second broker started by mistake share the port silently. Output
 * is written once per loop turn for every connection that has any (flush list); closed
 * connections are freed there too, at a known point of the loop.
 *
 * Inbox: other threads reach a worker only through its inbox (inbox.h: a lock-free stack of
 * batches, eventfd wake-up only when the worker may be blocked in epoll_wait). A worker collects
 * what it sends to worker i during a loop turn in its outbox[i] (a chain of batches, no atomics)
 * and pushes the whole chain with one compare-and-swap at the end of the turn; it takes its own
 * inbox once per turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/bridge.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/broker.h"
#include "broker/auth.h"
#include "broker/authq.h"
#include "broker/plugin.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/listener.h"
#include "broker/log_topic.h"
#include "broker/store.h"
#include "broker/timers.h"
#include "broker/wheel.h"
#include "broker/worker.h"

/* epoll data: listeners and the eventfd are tagged by small integers below this; connections by
 * pointer. */
#define TAG_EVENTFD ((uint64_t)1)
#define TAG_LISTEN_BASE ((uint64_t)16)

void worker_post(worker_t *w, const inbox_item_t *it) { inbox_post(&w->inbox, it); }

void worker_defer(worker_t *from, int to, const inbox_item_t *it) { inbox_append(&from->outbox[to], it); }

/* Hand every deferred chain to its worker: one CAS and at most one wake-up per worker. Items for
 * ourselves are processed by process_own_outbox first; what it leaves goes through our own inbox,
 * handled next turn. */
static void worker_send_outbox(worker_t *w)
{
    broker_t *b = w->b;
    for (int i = 0; i < b->n_workers; i++) {
        inbox_push(&b->workers[i].inbox, &w->outbox[i]);
    }
}

/* ---- accept ---- */

/* accept() failed for want of a file descriptor: the pending connection would stay in the
 * backlog and wake us again at once. Give up the spare fd, accept the connection, close it (the
 * client sees a close rather than a hang) and take the spare back, so the loop does not spin. */
static void accept_emfile(worker_t *w, int lfd)
{
    if (w->now - w->emfile_logged >= 10000) {
        log_printf(TLOG_WARNING, "Unable to accept new connection, system socket count has been exceeded. Try "
                                 "increasing \"ulimit -n\" or equivalent.");
        w->emfile_logged = w->now;
    }
    if (w->spare_fd >= 0) {
        close(w->spare_fd);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

/* max_connections, exact across workers: the place is taken with an atomic add before anything
 * else is done with the socket, and given back by conn_close (worker_release_place). */
static bool take_place(worker_t *w, int li, const struct tombo_listener *l, const struct sockaddr_storage *ss,
                          socklen_t sl)
{
    if (l->max_connections <= 0)
        return true;
    atomic_int *n = &w->b->listen_clients[li];
    if (atomic_fetch_add_explicit(n, 1, memory_order_relaxed) < l->max_connections)
        return true;
    atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
    if (w->b->cfg.connection_messages) {
        char host[INET6_ADDRSTRLEN + 8] = "?"; /* the address without its port, as Mosquitto */
        if (ss->ss_family == AF_UNIX)
            listener_peer_name(l, ss, sl, host, sizeof(host));
        else
            getnameinfo((const struct sockaddr *)ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
        log_printf(TLOG_NOTICE, "Client connection from %s denied: max_connections exceeded.", host);
    }
    return false;
}

void worker_release_place(conn_t *c)
{
    if (c->counted) {
        c->counted = 0;
        atomic_fetch_sub_explicit(&c->w->b->listen_clients[c->l - c->w->b->cfg.listeners], 1, memory_order_relaxed);
    }
}

/* A new connection becomes this worker's: its state, its events, its keepalive. Its place in the
 * worker's client count was taken by the caller (balance_target). */
static void conn_adopt(worker_t *w, int fd, int li, const struct sockaddr_storage *ss, socklen_t sl)
{
    broker_t *b = w->b;
    const struct tombo_listener *l = &b->cfg.listeners[li];
    conn_t *c = mem_zalloc_counted(sizeof(*c)); /* counted in the heap (mem.h), as its buffers are */
    c->fd = fd;
    c->tr = &transport_tcp;
    c->id = ++w->next_conn_id;
    c->w = w;
    c->l = l;
    c->counted = l->max_connections > 0;
    c->state = CONN_NEW;
    c->last_rx = w->now;
    listener_peer_name(l, ss, sl, c->peer, sizeof(c->peer));
    if (tombo_listener_tls(l) && !tls_conn_start(c, b, li)) {
        worker_release_place(c);
        close(fd);
        mem_free_counted(c, sizeof(*c));
        atomic_fetch_sub_explicit(&w->clients, 1, memory_order_relaxed);
        return;
    }
    if (l->websockets)
        ws_conn_start(c, b); /* over TCP (ws) or the TLS just set up (wss) */
    conn_register(w, c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    stat_add(&w->sockets, 1);
    wheel_schedule(c);
}

/* The worker that takes a connection this one accepted: itself, unless another has at least two
 * clients fewer (then the one with the fewest), whose count it takes at once so the next accept
 * sees it. EPOLLEXCLUSIVE wakes whichever worker waits: a burst of connections could land mostly
 * on one (200 bench clients measured 189 / 11, and the run's rate followed the split). */
static int balance_target(worker_t *w)
{
    broker_t *b = w->b;
    int best = w->index;
    long min = atomic_load_explicit(&w->clients, memory_order_relaxed) - 1;
    for (int i = 0; i < b->n_workers; i++) {
        long n = atomic_load_explicit(&b->workers[i].clients, memory_order_relaxed);
        if (n < min) {
            min = n;
            best = i;
        }
    }
    atomic_fetch_add_explicit(&b->workers[best].clients, 1, memory_order_relaxed);
    return best;
}

static void accept_all(worker_t *w, int li)
{
    int lfd = w->listen_fds[li];
    const struct tombo_listener *l = &w->b->cfg.listeners[li];
    broker_t *b = w->b;
    /* A few at a time, so a burst of connections spreads over the workers. */
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                accept_emfile(w, lfd);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_printf(TLOG_ERR, "accept: %s", strerror(errno));
            return;
        }
        if (!take_place(w, li, l, &ss, sl)) {
            close(fd);
            continue;
        }
        if (broker_settings(b)->set_tcp_nodelay && ss.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        int to = balance_target(w);
        if (to == w->index) {
            conn_adopt(w, fd, li, &ss, sl);
        } else { /* nothing was read from it yet: it starts there as it would have here */
            inbox_item_t it = {.kind = INBOX_ADOPT, .fd = fd, .reply_fd = li};
            worker_post(&b->workers[to], &it);
        }
    }
}

/* An INBOX_ADOPT that will not be handled (shutdown): the connection is closed, its places given back. */
static void adopt_drop(worker_t *w, const inbox_item_t *it)
{
    if (w->b->cfg.listeners[it->reply_fd].max_connections > 0)
        atomic_fetch_sub_explicit(&w->b->listen_clients[it->reply_fd], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->clients, 1, memory_order_relaxed);
    close(it->fd);
}

/* ---- inbox ---- */

static void process_items(worker_t *w, inbox_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        inbox_item_t *it = &items[i];
        if (it->kind == INBOX_FLUSH_SESSION) {
            session_t *s = it->session;
            conn_t *c = session_flush_target(s, w->index);
            if (c && c->state == CONN_ACTIVE)
                session_flush(s, c);
            session_release(s);
        } else if (it->kind == INBOX_KICK_CONN) {
            conn_t *c = conn_lookup(w, it->fd, it->conn_id);
            if (c && c->state == CONN_ACTIVE) {
                /* What the old client sent before it reconnected (a PUBCOMP, a DISCONNECT) is
                 * handled first, so the new connection finds the session as the client left it. */
                conn_on_readable(c);
                if (c->state != CONN_CLOSED) {
                    c->taken_over = 1;
                    conn_fail(c, it->rc, "session taken over");
                }
            }
            if (it->reply_fd < 0) { /* the cluster moves the session to another node (cluster.c) */
                cluster_kicked(w, it);
            } else {
                inbox_item_t done = {.kind = INBOX_TAKEOVER_DONE, .fd = it->reply_fd, .conn_id = it->reply_id};
                worker_post(&w->b->workers[it->reply_worker], &done);
            }
        } else if (it->kind == INBOX_TAKEOVER_DONE) {
            conn_t *c = conn_lookup(w, it->fd, it->conn_id);
            if (c && c->waiting == WAIT_TAKEOVER && c->state == CONN_NEW)
                conn_connect_resumed(c);
        } else if (it->kind == INBOX_DISCONNECT) {
            conn_t *c = conn_lookup(w, it->fd, it->conn_id);
            if (c && c->state == CONN_ACTIVE && !c->waiting)
                conn_fail(c, it->rc, "disconnected through the HTTP API");
        } else if (it->kind == INBOX_ADOPT) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            if (getpeername(it->fd, (struct sockaddr *)&ss, &sl) != 0) { /* reset meanwhile: reading says so */
                memset(&ss, 0, sizeof(ss));
                sl = sizeof(ss);
            }
            conn_adopt(w, it->fd, it->reply_fd, &ss, sl);
        } else if (it->kind == INBOX_CLUSTER) {
            cluster_on_item(w, it);
        } else if (it->kind == INBOX_PLUGIN_KICK) {
            conn_t *c = conn_lookup(w, it->fd, it->conn_id);
            if (c && c->state == CONN_ACTIVE && !c->waiting)
                conn_fail(c, it->rc, "disconnected by a plugin");
        } else if (it->kind == INBOX_PLUGIN_PUBLISH) {
            plugin_publish_drain(w);
        } else if (it->kind == INBOX_RESUME) {
            w->resume_pending = 1; /* bp_check_paused, once this turn */
        } else if (it->kind == INBOX_AUTH_DONE) {
            conn_t *c = conn_lookup(w, it->fd, it->conn_id);
            char *renamed = it->reply_fd == 1 ? authq_take_username(atomic_load(&w->b->authq), it->conn_id) : NULL;
            if (c && c->waiting == WAIT_AUTH && c->state == CONN_NEW) {
                if (it->reply_fd == 1) {
                    connect_req_set_username(c->pending, renamed);
                    renamed = NULL;
                }
                if (it->rc == MQTT_RC_SUCCESS)
                    conn_connect_resumed(c);
                else
                    conn_fail(c, it->rc, "bad CONNECT");
            }
            free(renamed);
        }
    }
}

/* Run a chain of batches (oldest first) and give the batches back. */
static void process_chain(worker_t *w, inbox_batch_t *fifo)
{
    while (fifo) {
        inbox_batch_t *next = inbox_next(fifo);
        process_items(w, fifo->items, fifo->n);
        slab_free(fifo);
        fifo = next;
    }
}

/* Items this worker deferred for itself are handled right away, at the end of the turn, so a
 * delivery between two clients of one worker costs no wake-up. Handling them may defer more (a
 * will published on close); a few rounds, then the rest goes through the inbox. */
static void process_own_outbox(worker_t *w)
{
    inbox_chain_t *o = &w->outbox[w->index];
    for (int round = 0; round < 4 && o->newest; round++)
        process_chain(w, inbox_chain_fifo(o));
}

/* ---- output held for the persistence store ---- */

void worker_release_holds(worker_t *w)
{
    store_t *st = w->b->store;
    cluster_js_t *js = w->b->cluster_js; /* messages from the stream acknowledged after the commit */
    if (!st || (w->n_held == 0 && !(js && cluster_js_commit_pending(js, w))))
        return;
    for (;;) {
        uint64_t committed = store_committed(st), wait = js ? cluster_js_committed(js, w, committed) : 0;
        size_t k = 0;
        for (size_t i = 0; i < w->n_held; i++) {
            conn_t *c = conn_lookup(w, w->held[i].fd, w->held[i].id);
            uint64_t first;
            if (!c || !conn_release_holds(c, committed, &first))
                continue;
            if (!wait || first < wait)
                wait = first;
            w->held[k++] = w->held[i];
        }
        w->n_held = k;
        /* Publish what we wait for, then look again: a commit that raced with us either sees
         * store_wait and wakes us, or is seen here. */
        atomic_store(&w->store_wait, wait);
        if (!wait || store_committed(st) < wait)
            return;
    }
}

/* ---- the loop ---- */

static void flush_all(worker_t *w)
{
    conn_t *list = w->flush_list;
    w->flush_list = NULL;
    while (list) {
        conn_t *c = list;
        list = c->flush_next;
        c->in_flush_list = 0;
        c->flush_next = NULL;
        if (c->state == CONN_CLOSED) {
            if (!c->draining) /* a draining one is freed once its fd is closed */
                conn_free(c);
            continue;
        }
        if (!conn_write(c)) {
            conn_close(c, "write error");
            continue;
        }
        /* The socket took enough: what waits in the session's queue may follow. Once a turn; if
         * the socket takes that too, EPOLLOUT (writable at once) brings the connection back next
         * turn, since no delivery may come to do it (a retained burst, paused publishers). */
        if (c->out_full && outq_pending(&c->out) < BP_OUT_HIGH / 2 && c->session) {
            c->out_full = 0;
            session_flush(c->session, c);
            if (!conn_write(c))
                conn_close(c, "write error");
            else if (c->out_full && !c->want_write) {
                c->want_write = 1;
                conn_update_events(c);
            }
        }
    }
    /* conn_close above may have queued closed connections again */
    while (w->flush_list) {
        conn_t *c = w->flush_list;
        w->flush_list = c->flush_next;
        if (c->state == CONN_CLOSED && !c->draining)
            conn_free(c);
        else
            c->in_flush_list = 0;
    }
}


static void *worker_main(void *arg)
{
    worker_t *w = arg;
    broker_t *b = w->b;
    struct epoll_event evs[256];
    int64_t next_sys = 0, next_plugin_tick = 0;
    slab_thread_attach(w->pool);
    msg_stats_attach(&w->msg_stats);
    w->now = now_ms();
    w->wheel.now = w->now / WHEEL_TICK_MS;
    while (!atomic_load(&b->stop)) {
        atomic_fetch_add(&w->quiescent, 1); /* holds no settings snapshot here (settings.h) */
        int timeout = inbox_sleep_begin(&w->inbox) || w->resume_pending || w->n_staged ? 0 : WHEEL_TICK_MS;
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        inbox_sleep_end(&w->inbox);
        uint64_t turn_start = now_ns(); /* the turn's busy time, for /metrics (stats.h) */
        w->now = (int64_t)(turn_start / 1000000u);
        uint64_t mem_limit = broker_settings(b)->memory_limit; /* reloaded on SIGHUP, as in Mosquitto */
        if (mem_limit) /* once a turn, before the turn's packets: a sum over threads */
            w->mem_over = mem_used() > mem_limit;
        else
            w->mem_over = false;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_EVENTFD) {
                inbox_clear_wake(&w->inbox);
            } else if (tag >= TAG_LISTEN_BASE && tag < TAG_LISTEN_BASE + (uint64_t)w->n_listen) {
                accept_all(w, (int)(tag - TAG_LISTEN_BASE));
            } else {
                conn_t *c = evs[i].data.ptr;
                if (c->draining) {
                    conn_drain(c, false);
                    continue;
                }
                if (c->state == CONN_CLOSED)
                    continue;
                if (c->bridge == BRIDGE_CONN_CONNECTING || c->bridge == BRIDGE_CONN_TLS) {
                    bridge_on_event(c); /* our connection to another broker: TCP, then TLS */
                    continue;
                }
                if (c->waiting || c->bp_paused) {
                    if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                        conn_close(c, "closed by client");
                        continue;
                    }
                    if (c->waiting)
                        continue; /* its input waits until the CONNECT is answered */
                }
                if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) ||
                    (c->tp_flags & TP_READ_WANTS_WRITE)) /* a TLS handshake waited for EPOLLOUT */
                    conn_on_readable(c);
                if (c->state != CONN_CLOSED && (evs[i].events & EPOLLOUT))
                    conn_want_flush(c);
            }
        }
        process_chain(w, inbox_take(&w->inbox));
        bool ticked = wheel_tick(w);
        if (w->b->n_bridges)
            bridges_tick(w);
        if (w->resume_pending || (ticked && w->n_paused))
            bp_check_paused(w, ticked);
        if (w->index == 0) {
            settings_reclaim(b);
            uint32_t sys_before = broker_settings(b)->sys_interval;
            if (atomic_exchange(&b->reload, 0))
                broker_reload(b); /* SIGHUP (reload.c) */
            broker_timers_run(b, w->now);
            if (b->cluster)
                cluster_tick(w); /* sessions moved to another node: their grace period */
            if (w->now >= next_plugin_tick) { /* MOSQ_EVT_TICK for the plugins that want it (plugin.h) */
                for (int i = 0; i < b->cfg.n_listeners; i++)
                    if (i == 0 || b->cfg.per_listener_settings)
                        plugin_set_tick(auth_plugins(b->auth[i]));
                next_plugin_tick = w->now + 100;
            }
            log_topic_drain(w);
            uint32_t sys_interval = broker_settings(b)->sys_interval;
            if (sys_interval != sys_before) /* reloaded: the new period starts now, as in Mosquitto */
                next_sys = sys_interval ? w->now : 0;
            if (sys_interval > 0 && w->now >= next_sys) {
                sys_publish(b); /* at start too, as Mosquitto */
                next_sys = w->now + (int64_t)sys_interval * 1000;
            }
        }
        session_stage_flush(w); /* this turn's deliveries: their flush requests go out just below */
        process_own_outbox(w);
        worker_send_outbox(w);
        worker_release_holds(w);
        flush_all(w);
        slab_collect();
        w->turn++;
        stat_add(&w->loop_turns, 1);
        stat_add(&w->loop_busy_ns, (unsigned long)(now_ns() - turn_start));
    }
    /* Shutdown: close every connection (wills of clients that did not disconnect are published as
     * the session ends, as Mosquitto does on a clean stop). */
    for (int fd = 0; fd < w->conns_cap; fd++) {
        conn_t *c = w->conns[fd];
        /* What a client sent before the stop is handled first: its acknowledgements count (and,
         * with persistence, are written), its DISCONNECT discards its will. */
        if (c && c->bp_on) {
            bp_conn_closed(c); /* nothing is delivered any more: no reason to wait */
            conn_update_events(c);
        }
        if (c && c->state == CONN_ACTIVE && !c->waiting)
            conn_resume_input(c);
        if (w->conns[fd] && w->conns[fd]->draining)
            conn_drain(w->conns[fd], true);
        else if (w->conns[fd])
            conn_close(w->conns[fd], "broker shutting down");
    }
    session_stage_flush(w);
    process_own_outbox(w);
    worker_send_outbox(w);
    flush_all(w);
    session_stage_flush(w); /* wills of connections flush_all closed: queued, freed with their sessions */
    slab_thread_attach(NULL);
    msg_stats_attach(NULL);
    return NULL;
}

int worker_init(worker_t *w, broker_t *b, int index, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->spare_fd = -1;
    w->b = b;
    w->index = index;
    w->pool = slab_pool_new();
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (inbox_init(&w->inbox) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_EVENTFD};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, inbox_fd(&w->inbox), &ev);
    sub_result_init(&w->match);
    w->rbuf = xmalloc(64 * 1024);
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->outbox = xcalloc((size_t)b->n_workers, sizeof(*w->outbox));
    w->listen_fds = b->listen_fds; /* shared, owned by the broker */
    w->n_listen = b->cfg.n_listeners;
    for (int i = 0; i < w->n_listen; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTEN_BASE + (uint64_t)i};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listen_fds[i], &lev);
    }
    return 0;
}

int worker_start(worker_t *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w);
}

/* Release what a chain of batches for worker `to` still holds: items that will not be handled (shutdown). */
static void chain_free(worker_t *to, inbox_batch_t *list)
{
    while (list) {
        inbox_batch_t *next = inbox_next(list);
        for (uint32_t k = 0; k < list->n; k++)
            if (list->items[k].kind == INBOX_FLUSH_SESSION)
                session_release(list->items[k].session);
            else if (list->items[k].kind == INBOX_ADOPT)
                adopt_drop(to, &list->items[k]);
            else if (list->items[k].kind == INBOX_CLUSTER ||
                     (list->items[k].kind == INBOX_KICK_CONN && list->items[k].reply_fd < 0))
                cluster_item_free(&list->items[k]);
        slab_free(list);
        list = next;
    }
}

void worker_drop_inbox(worker_t *w)
{
    chain_free(w, inbox_take(&w->inbox));
    for (int i = 0; w->outbox && i < w->b->n_workers; i++)
        chain_free(&w->b->workers[i], inbox_chain_fifo(&w->outbox[i]));
}

void worker_free(worker_t *w)
{
    close(w->epfd);
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    chain_free(w, inbox_take(&w->inbox));
    inbox_destroy(&w->inbox);
    for (int i = 0; w->outbox && i < w->b->n_workers; i++)
        chain_free(&w->b->workers[i], inbox_chain_fifo(&w->outbox[i]));
    free(w->outbox);
    free(w->held);
    free(w->paused);
    free(w->paused_spare);
    free(w->conns);
    sub_result_free(&w->match);
    free(w->rbuf);
    /* w->pool outlives this: messages still held by sessions and the retained store go back to it
     * when broker_free releases them; broker_free frees the pools last. */
}
