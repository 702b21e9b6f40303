/* httpd.c -- the HTTP endpoint's thread: accept, read request heads (http.h's parser), check Basic
 * credentials, hand each request to api.c and write its answer.
 *
 * Design: one thread, one epoll, at most HTTPD_MAX_CONNS connections of a few KB each; a request is
 * read whole (head up to HTTPD_MAX_HEAD, body up to HTTPD_MAX_BODY from Content-Length) before it
 * is answered, answers are written without blocking (EPOLLOUT for the rest), and a connection idle
 * for HTTPD_IDLE_MS is closed. What the handlers read comes from snapshots and locks held briefly
 * (stats.h, the registry, a session's lock), never from a worker's private state; the one write,
 * kicking a client, goes to the owning worker through its inbox. A malformed request gets 400 (a
 * head too large 431) and the connection is closed. */
#include "broker/httpd.h"

#include <errno.h>
#include <openssl/err.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "broker/api.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/listener.h"
#include "broker/log.h"
#include "broker/worker.h"
#include "http/basic.h"
#include "http/http.h"
#include "tls/tls.h"

#define HTTPD_MAX_CONNS 64
#define HTTPD_MAX_HEAD 8192
#define HTTPD_MAX_BODY 8192
#define HTTPD_IDLE_MS 30000
#define HTTPD_DRAIN_MS 2000 /* at most this long reading what follows an answer that closes */

typedef struct hconn {
    int fd;
    SSL *ssl;         /* https (http_certfile): the connection's TLS, owned; NULL: plain HTTP */
    bool read_wants_write; /* TLS: a read waits for the socket to take a handshake record */
    bool close_after; /* close once `out` is written */
    bool draining;    /* answered and write side shut: input read and dropped until EOF (or the
                       * idle limit), since closing with unread input would reset the connection
                       * and the client could lose the answer */
    int64_t last_ms;
    size_t in_len;
    hbuf_t out;
    size_t out_off;
    char in[HTTPD_MAX_HEAD + HTTPD_MAX_BODY];
} hconn_t;

struct httpd {
    broker_t *b;
    int lfd, epfd;
    pthread_t thread;
    bool started;
    auth_t *auth; /* http_password_file, or NULL: no authentication */
    SSL_CTX *ctx; /* http_certfile + http_keyfile, or NULL: plain HTTP */
    hconn_t *conns[HTTPD_MAX_CONNS];
};

int httpd_open(broker_t *b)
{
    const struct tombo_config *cfg = &b->cfg;
    if (!cfg->http_port)
        return 0;
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->b = b;
    h->lfd = h->epfd = -1;
    b->httpd = h;
    if (cfg->http_password_file) {
        char err[512];
        h->auth = auth_load(cfg->http_password_file, NULL, err, sizeof(err));
        if (!h->auth) {
            log_printf(TLOG_ERR, "Error: http_password_file: %s", err);
            return -1;
        }
        for (int k = 0; auth_warning(h->auth, k); k++)
            log_printf(TLOG_WARNING, "Warning: %s", auth_warning(h->auth, k));
    }
    if (cfg->http_certfile) {
        char terr[TLS_ERR_MAX];
        tls_options_t o = {.certfile = cfg->http_certfile, .keyfile = cfg->http_keyfile};
        h->ctx = tls_server_ctx(&o, terr, sizeof(terr));
        if (!h->ctx) {
            log_printf(TLOG_ERR, "Error: %s: %s", cfg->http_tls_where ? cfg->http_tls_where : "config", terr);
            return -1;
        }
    }
    char err[256];
    struct tombo_listener l = {.port = cfg->http_port, .address = cfg->http_address};
    h->lfd = listener_open(&l, err, sizeof(err));
    if (h->lfd < 0) {
        log_printf(TLOG_ERR, "Error: %s: http_listener: %s", cfg->http_where ? cfg->http_where : "config", err);
        return -1;
    }
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->lfd, &ev);
    log_printf(TLOG_NOTICE, "Opening HTTP endpoint (metrics, REST API, dashboard) on %s port %u%s%s.",
               cfg->http_address ? cfg->http_address : "*", cfg->http_port, h->ctx ? " (TLS)" : "",
               h->auth ? " with basic authentication" : "");
    return 0;
}

static void hconn_close(struct httpd *h, hconn_t *c)
{
    for (int i = 0; i < HTTPD_MAX_CONNS; i++)
        if (h->conns[i] == c)
            h->conns[i] = NULL;
    SSL_free(c->ssl);
    close(c->fd);
    hb_free(&c->out);
    free(c);
}

static void accept_all(struct httpd *h)
{
    for (;;) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int slot = -1;
        for (int i = 0; i < HTTPD_MAX_CONNS && slot < 0; i++)
            if (!h->conns[i])
                slot = i;
        if (slot < 0) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            if (write(fd, busy, sizeof(busy) - 1) < 0) {
                /* closing anyway */
            }
            close(fd);
            continue;
        }
        hconn_t *c = xcalloc(1, sizeof(*c));
        c->fd = fd;
        if (h->ctx) {
            c->ssl = SSL_new(h->ctx);
            if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
                SSL_free(c->ssl);
                close(fd);
                free(c);
                continue;
            }
            SSL_set_accept_state(c->ssl);
            SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        }
        c->last_ms = now_ms();
        h->conns[slot] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Queue a complete answer on c. */
static void respond(hconn_t *c, int status, const char *type, const char *extra, const void *body, size_t n,
                    bool head_only)
{
    const char *reason = http_reason(status);
    hb_printf(&c->out,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
              status, *reason ? reason : "Unknown", type, n, extra ? extra : "",
              c->close_after ? "Connection: close\r\n" : "");
    if (!head_only)
        hb_put(&c->out, body, n);
}

static void respond_text(hconn_t *c, int status, const char *msg)
{
    respond(c, status, "text/plain; charset=utf-8", NULL, msg, strlen(msg), false);
}

/* Basic credentials, when a password file is set: true when the request may go on. */
static bool authorised(struct httpd *h, const http_request_t *req)
{
    if (!h->auth)
        return true;
    char buf[1024];
    const char *user, *pass;
    if (http_basic_credentials(req, buf, sizeof(buf), &user, &pass) != 0 || !*user)
        return false;
    return auth_connect(h->auth, false, (const uint8_t *)user, strlen(user), true, (const uint8_t *)pass,
                        strlen(pass), true) == MQTT_RC_SUCCESS;
}

/* Handle the complete requests in c's input. Returns false when c must be closed now. */
static bool handle_input(struct httpd *h, hconn_t *c)
{
    while (c->in_len && !c->close_after) {
        http_request_t req;
        int n = http_parse_request(c->in, c->in_len, HTTPD_MAX_HEAD, &req);
        if (n == HTTP_INCOMPLETE)
            return true;
        if (n < 0) {
            c->close_after = true;
            respond_text(c, n == HTTP_TOO_LARGE ? 431 : 400,
                         n == HTTP_TOO_LARGE ? "request head too large\n" : "malformed request\n");
            return true;
        }
        /* A body: Content-Length only (the API takes no chunked uploads). */
        size_t body = 0;
        const http_str_t *cl = http_header(&req, "Content-Length");
        if (http_header(&req, "Transfer-Encoding")) {
            c->close_after = true;
            respond_text(c, 400, "chunked bodies are not accepted\n");
            return true;
        }
        if (cl) {
            char tmp[24];
            if (cl->n == 0 || cl->n >= sizeof(tmp)) {
                c->close_after = true;
                respond_text(c, 400, "bad Content-Length\n");
                return true;
            }
            memcpy(tmp, cl->p, cl->n);
            tmp[cl->n] = '\0';
            char *end;
            unsigned long long v = strtoull(tmp, &end, 10);
            if (*end || tmp[0] < '0' || tmp[0] > '9' || v > HTTPD_MAX_BODY) {
                c->close_after = true;
                respond_text(c, 400, v > HTTPD_MAX_BODY && !*end ? "body too large\n" : "bad Content-Length\n");
                return true;
            }
            body = (size_t)v;
        }
        if (c->in_len < (size_t)n + body)
            return true;
        bool keep = req.minor == 1 ? !http_header_has_token(&req, "Connection", "close")
                                   : http_header_has_token(&req, "Connection", "keep-alive");
        c->close_after = !keep;
        bool head_only = http_str_ieq(req.method, "HEAD");
        if (!authorised(h, &req)) {
            static const char msg[] = "authentication required\n";
            respond(c, 401, "text/plain; charset=utf-8", "WWW-Authenticate: Basic realm=\"tombo\", charset=\"UTF-8\"\r\n",
                    msg, sizeof(msg) - 1, head_only);
        } else {
            api_resp_t r;
            api_resp_init(&r);
            api_handle(h->b, &req, &r);
            respond(c, r.status, r.type, r.extra, r.body.p, r.body.len, head_only);
            api_resp_free(&r);
        }
        memmove(c->in, c->in + n + body, c->in_len - (size_t)n - body);
        c->in_len -= (size_t)n + body;
    }
    return true;
}

/* Bytes in and out, plain or TLS: > 0 bytes, 0 end of stream, IO_AGAIN (would block), IO_ERR. */
enum { IO_AGAIN = -1, IO_ERR = -2 };

static ssize_t tls_result(hconn_t *c, int r, bool reading)
{
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: return IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            c->read_wants_write = true;
        return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: return IO_ERR; /* a failed handshake, a broken record, a reset */
    }
}

static ssize_t io_read(hconn_t *c, void *buf, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        return tls_result(c, SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n), true);
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
    }
}

static ssize_t io_write(hconn_t *c, const void *buf, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        return tls_result(c, SSL_write(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n), false);
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
    }
}

/* Write what c has; false when it is done (closed by us) or broke. */
static bool flush_out(struct httpd *h, hconn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = io_write(c, c->out.p + c->out_off, c->out.len - c->out_off);
        if (w <= 0) {
            if (w == IO_AGAIN) {
                /* closing: only the rest of the answer matters (and EPOLLRDHUP would fire on) */
                struct epoll_event ev = {.events = c->close_after ? EPOLLOUT : EPOLLIN | EPOLLOUT | EPOLLRDHUP,
                                         .data.ptr = c};
                epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return true;
            }
            return false;
        }
        c->out_off += (size_t)w;
    }
    c->out.len = c->out_off = 0;
    if (c->close_after) {
        if (c->ssl)
            SSL_shutdown(c->ssl); /* close_notify, best effort: the socket's write side closes next */
        shutdown(c->fd, SHUT_WR);
        c->draining = true;
        c->last_ms = now_ms() - HTTPD_IDLE_MS + HTTPD_DRAIN_MS;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return true;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (c->read_wants_write ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return true;
}

static void on_event(struct httpd *h, hconn_t *c, uint32_t events)
{
    if (c->draining) {
        char sink[4096];
        ssize_t r;
        while ((r = recv(c->fd, sink, sizeof(sink), 0)) > 0)
            ;
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            hconn_close(h, c);
        return;
    }
    c->last_ms = now_ms();
    bool eof = false;
    if (!c->close_after && ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || c->read_wants_write)) {
        c->read_wants_write = false;
        for (;;) {
            size_t room = sizeof(c->in) - c->in_len;
            if (room == 0)
                break;
            ssize_t r = io_read(c, c->in + c->in_len, room);
            if (r > 0) {
                c->in_len += (size_t)r;
                continue;
            }
            if (r != IO_AGAIN)
                eof = true;
            break;
        }
        handle_input(h, c);
        if (!c->close_after && c->in_len == sizeof(c->in)) { /* a head and body over the limits */
            c->close_after = true;
            respond_text(c, 400, "request too large\n");
        }
    }
    if (eof)
        c->close_after = true; /* answer what came, then close */
    if (!flush_out(h, c) || (eof && c->draining)) {
        hconn_close(h, c);
        return;
    }
}

static void *httpd_main(void *arg)
{
    struct httpd *h = arg;
    struct epoll_event evs[64];
    while (!atomic_load(&h->b->stop)) {
        int n = epoll_wait(h->epfd, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr)
                accept_all(h);
            else
                on_event(h, evs[i].data.ptr, evs[i].events);
        }
        int64_t now = now_ms();
        for (int i = 0; i < HTTPD_MAX_CONNS; i++)
            if (h->conns[i] && now - h->conns[i]->last_ms > HTTPD_IDLE_MS)
                hconn_close(h, h->conns[i]);
    }
    return NULL;
}

int httpd_start(broker_t *b)
{
    struct httpd *h = b->httpd;
    if (!h)
        return 0;
    if (pthread_create(&h->thread, NULL, httpd_main, h) != 0)
        return -1;
    h->started = true;
    return 0;
}

void httpd_reload(broker_t *b)
{
    struct httpd *h = b->httpd;
    if (!h || !h->auth)
        return;
    char err[512];
    if (auth_reload(h->auth, err, sizeof(err)) != 0)
        log_printf(TLOG_ERR, "Error: reloading http_password_file: %s; the previous one stays in force.", err);
    else
        log_printf(TLOG_NOTICE, "Reloaded http_password_file.");
}

void httpd_stop(broker_t *b)
{
    struct httpd *h = b->httpd;
    if (!h)
        return;
    if (h->started) {
        atomic_store(&b->stop, 1); /* already set when the broker stops; set for early failures too */
        pthread_join(h->thread, NULL);
    }
    for (int i = 0; i < HTTPD_MAX_CONNS; i++)
        if (h->conns[i])
            hconn_close(h, h->conns[i]);
    if (h->lfd >= 0)
        close(h->lfd);
    if (h->epfd >= 0)
        close(h->epfd);
    auth_free(h->auth);
    SSL_CTX_free(h->ctx);
    free(h);
    b->httpd = NULL;
}
