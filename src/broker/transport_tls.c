/* transport_tls.c -- TLS connections (transport.h) and the TLS contexts of the listeners.
 *
 * Design note. A TLS connection is the plain non-blocking fd with an OpenSSL SSL on it (c->ssl).
 * The handshake is driven from read (EPOLLIN) and, while TP_HANDSHAKE is set, from EPOLLOUT as
 * well; WANT_READ/WANT_WRITE re-arm epoll instead of blocking. Read-ahead is on: OpenSSL reads the
 * socket in one recv of up to a record buffer instead of a 5-byte header and then the body (two
 * system calls per record), and read() fills the caller's buffer from as many records as are there,
 * stopping as soon as OpenSSL holds nothing more (no third call to meet EAGAIN), so one read batch
 * costs one indirect call and, usually, one recv -- as plain TCP. Bytes OpenSSL already took off
 * the socket (SSL_has_pending: decrypted or not) are reported by pending() so conn.c reads them
 * without waiting for an epoll event that will not come. writev() takes the output queue's iovecs: small ones are
 * coalesced into one record buffer of up to 16 KB (a TLS record each would cost 22+ bytes and a
 * MAC apiece), big ones and a lone last one (the usual case: small packets are the queue's own
 * bytes, one contiguous run) go to SSL_write directly, without that copy; partial writes are on, so OpenSSL returns after
 * each record and a retry after WANT_WRITE offers the same bytes again (the queue only grows).
 *
 * Contexts: one SSL_CTX per TLS listener, built at start-up from the listener's files (a bad one
 * stops start-up naming its config line) and rebuilt on SIGHUP. A new context is swapped in under
 * a mutex that accepts also take to make their SSL (which holds a reference to its context), so a
 * connection keeps the context it started with and the old context is freed with its last SSL. */
#include "broker/transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/mem.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/auth.h"
#include "broker/log.h"
#include "broker/plugin.h"
#include "broker/worker.h"
#include "tls/tls.h"

#define RECORD_MAX (16 * 1024) /* TLS's largest record payload: the coalescing buffer */

/* Ownership: the broker's (b->tls); ctx[i] is listener i's context (NULL: plain), psk[i] its PSK
 * table (shared between listeners reading the same global psk_file: psk_owner says who frees). */
struct tls_listeners {
    pthread_mutex_t lock; /* guards ctx[] against a swap while an accept makes its SSL */
    int n;
    SSL_CTX **ctx;
    tls_psk_table_t **psk;
    bool *psk_owner;
    /* psk_hint listeners without psk_file: their keys come from the plugins (plugin_psk_lookup);
     * set once at start-up, shared by the reloaded contexts. */
    struct plugin_psk_arg *pskp;
    /* PSK tables replaced by a reload: a handshake still running on an old context may look a key
     * up in them, so they are freed only with the broker (a few bytes per reload). */
    struct retired {
        struct retired *next;
        tls_psk_table_t **psk;
        bool *owner;
    } *retired;
};

/* ---- the connection ---- */

static _Thread_local unsigned char wbuf[RECORD_MAX]; /* each worker's coalescing buffer */

/* Log a failed handshake with OpenSSL's reason (and the certificate verdict when there is one),
 * once per connection. */
static void handshake_failed(conn_t *c, const char *fallback)
{
    char reason[256];
    int code = ERR_GET_REASON(ERR_peek_last_error());
    tls_error_string(reason, sizeof(reason), fallback);
    if (code == SSL_R_WRONG_VERSION_NUMBER || code == SSL_R_HTTP_REQUEST || code == SSL_R_PACKET_LENGTH_TOO_LONG)
        strncat(reason, " (not TLS: a plain MQTT client on a TLS port?)", sizeof(reason) - strlen(reason) - 1);
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK)
        log_printf(TLOG_NOTICE, "Client <unknown> [%s] disconnected: TLS handshake failed: %s (%s).", c->peer, reason,
                   X509_verify_cert_error_string(vr));
    else
        log_printf(TLOG_NOTICE, "Client <unknown> [%s] disconnected: TLS handshake failed: %s.", c->peer, reason);
}

/* An SSL call returned r <= 0: end of stream (0) or -1 with errno (EAGAIN: wait; EPROTO: failed). */
static ssize_t ssl_fail(conn_t *c, int r)
{
    int saved = errno;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN; /* EPOLLIN is always armed while a connection is read */
        return -1;
    case SSL_ERROR_WANT_WRITE:
        /* The socket is full in the middle of a handshake (or a TLS 1.3 key update a read must
         * answer): EPOLLOUT brings the connection back through read (worker.c). A plain full
         * write needs nothing here: conn_write arms EPOLLOUT on EAGAIN. */
        c->tp_flags |= TP_READ_WANTS_WRITE;
        if (!c->want_write) {
            c->want_write = 1;
            conn_update_events(c);
        }
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify */
    case SSL_ERROR_SYSCALL:
        c->tp_flags |= TP_DEAD;
        ERR_clear_error();
        if (saved == 0 || saved == EAGAIN)
            return 0; /* EOF without close_notify: as a plain close */
        errno = saved;
        return -1;
    default:
        c->tp_flags |= TP_DEAD;
        if (c->tp_flags & TP_HANDSHAKE)
            handshake_failed(c, "protocol error");
        else
            ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* Go on with the handshake: 1 once it is done, 0 when the client went away, -1 with errno (EAGAIN:
 * later). */
static int handshake(conn_t *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tp_flags &= (uint8_t)~(TP_HANDSHAKE | TP_READ_WANTS_WRITE);
        return 1;
    }
    return (int)ssl_fail(c, r);
}

static ssize_t tls_read(conn_t *c, void *buf, size_t len)
{
    if (!c->ssl) {
        errno = EPIPE;
        return -1;
    }
    c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE;
    if (c->tp_flags & TP_HANDSHAKE) {
        int h = handshake(c);
        if (h <= 0)
            return h;
    }
    /* Take every record that is there, up to len: one call per batch for conn.c. */
    size_t got = 0;
    while (got < len) {
        ERR_clear_error();
        errno = 0;
        size_t want = len - got > INT32_MAX ? INT32_MAX : len - got;
        int n = SSL_read(c->ssl, (unsigned char *)buf + got, (int)want);
        if (n > 0) {
            got += (size_t)n;
            if (!SSL_has_pending(c->ssl))
                break; /* the last recv was short, most likely: conn.c sees a short read and stops */
            continue;
        }
        ssize_t r = ssl_fail(c, n);
        if (got > 0)
            return (ssize_t)got; /* the end or the error shows again on the next call */
        return r;
    }
    return (ssize_t)got;
}

/* SSL_write all of p[0..n) or until the socket is full; adds what went to *done. False on EAGAIN or
 * an error (errno). */
static bool write_all(conn_t *c, const unsigned char *p, size_t n, size_t *done)
{
    size_t off = 0;
    while (off < n) {
        ERR_clear_error();
        errno = 0;
        size_t want = n - off > INT32_MAX ? INT32_MAX : n - off;
        int r = SSL_write(c->ssl, p + off, (int)want);
        if (r > 0) {
            off += (size_t)r;
            *done += (size_t)r;
            continue;
        }
        if (ssl_fail(c, r) == 0)
            errno = EPIPE; /* a write cannot see a clean end */
        if (errno == EAGAIN)
            c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE; /* a write's own: conn_write arms EPOLLOUT */
        return false;
    }
    return true;
}

/* What is offered to SSL_write is always a prefix of the output stream that only grows: a big first
 * iovec, or a last one, as it is, else the next bytes of the stream (whatever iovecs hold them)
 * copied into one record buffer. A last iovec grows or gains followers but keeps its start, so
 * either way a retry after WANT_WRITE offers the same bytes again, at least as many, as
 * OpenSSL requires (ACCEPT_MOVING_WRITE_BUFFER lets the address change). */
static ssize_t tls_writev(conn_t *c, const struct iovec *iov, int iovcnt)
{
    if (!c->ssl) {
        errno = EPIPE;
        return -1;
    }
    if (c->tp_flags & TP_HANDSHAKE) {
        errno = EAGAIN; /* nothing is queued before CONNECT, so this does not happen */
        return -1;
    }
    size_t done = 0, skip = 0; /* skip: bytes of iov[i] already taken into the record buffer */
    int i = 0;
    while (i < iovcnt) {
        bool ok;
        if (skip == 0 && (iov[i].iov_len >= RECORD_MAX || i == iovcnt - 1)) {
            /* Big, or the last (often the only one: small packets are the queue's own bytes, one
             * contiguous run): SSL_write straight from the queue, no copy. A lone last iovec is
             * what the copy would have offered anyway, the same bytes and length. */
            ok = write_all(c, iov[i].iov_base, iov[i].iov_len, &done);
            i++;
        } else {
            size_t n = 0;
            while (i < iovcnt && n < RECORD_MAX) {
                size_t take = iov[i].iov_len - skip;
                if (take > RECORD_MAX - n)
                    take = RECORD_MAX - n;
                memcpy(wbuf + n, (const unsigned char *)iov[i].iov_base + skip, take);
                n += take;
                skip += take;
                if (skip == iov[i].iov_len) {
                    skip = 0;
                    i++;
                }
            }
            ok = write_all(c, wbuf, n, &done);
        }
        if (!ok)
            return done > 0 ? (ssize_t)done : -1;
    }
    return (ssize_t)done;
}

static void tls_close(conn_t *c)
{
    if (!c->ssl)
        return;
    if (!(c->tp_flags & (TP_DEAD | TP_HANDSHAKE))) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* one try at close_notify: no waiting for the peer's */
        ERR_clear_error();
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
}

/* Bytes of decrypted records OpenSSL holds; or, when it holds only raw bytes read ahead (whole
 * records or the start of one), a record's worth: reading then costs at most one recv that finds
 * the socket empty. */
static size_t tls_pending(conn_t *c)
{
    if (!c->ssl)
        return 0;
    int n = SSL_pending(c->ssl);
    if (n > 0)
        return (size_t)n;
    return SSL_has_pending(c->ssl) ? RECORD_MAX : 0;
}

const transport_t transport_tls = {
    .name = "tls", .read = tls_read, .writev = tls_writev, .close = tls_close, .pending = tls_pending,
};

bool tls_conn_start_client(conn_t *c, SSL_CTX *ctx, const char *host, bool insecure, char *err, size_t errlen)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, c->fd)) {
        tls_error_string(err, errlen, "out of memory");
        SSL_free(ssl);
        return false;
    }
    if (!tls_client_set_host(ssl, host, insecure, err, errlen)) {
        SSL_free(ssl);
        return false;
    }
    SSL_set_read_ahead(ssl, 1); /* see the design note; pending() accounts for what it holds */
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    c->tr = &transport_tls;
    c->tp_flags = TP_HANDSHAKE;
    return true;
}

int tls_conn_handshake(conn_t *c)
{
    if (!c->ssl)
        return 0;
    c->tp_flags &= (uint8_t)~TP_READ_WANTS_WRITE;
    int r = handshake(c);
    if (r == 1 && c->want_write) {
        c->want_write = 0; /* armed for the handshake; conn_write arms it again if it must */
        conn_update_events(c);
    }
    return r;
}

char *conn_tls_identity(conn_t *c, bool subject)
{
    if (!c->ssl || (c->tp_flags & TP_HANDSHAKE))
        return NULL;
    char *id = subject ? tls_peer_subject(c->ssl) : tls_peer_cn(c->ssl);
    if (!id && !subject) {
        const char *psk = tls_psk_identity(c->ssl);
        if (psk)
            id = xstrdup(psk);
    }
    return id;
}

/* ---- listeners' contexts ---- */

/* Listener i's context from its settings; NULL after filling err ("FILE:LINE: ..."). */
static SSL_CTX *build_ctx(struct tls_listeners *t, const struct tombo_listener *l, int i, char *err, size_t errlen)
{
    tls_options_t o = {
        .cafile = l->cafile, .capath = l->capath, .certfile = l->certfile, .keyfile = l->keyfile,
        .tls_version = l->tls_version, .ciphers = l->ciphers, .ciphers_tls13 = l->ciphers_tls13,
        .require_certificate = l->require_certificate, .crlfile = l->crlfile, .dhparamfile = l->dhparamfile,
        .psk_hint = l->psk_hint, .psk_lookup = tls_psk_table_lookup, .psk_arg = t->psk[i],
    };
    if (l->psk_hint && !t->psk[i]) { /* no psk_file: the plugins give the keys, as in Mosquitto */
        if (!t->pskp || !t->pskp[i].ps) {
            snprintf(err, errlen, "%s: psk_hint needs psk_file (the identities and their keys) or a plugin that gives "
                     "keys (MOSQ_EVT_PSK_KEY, mosquitto_auth_psk_key_get)", config_tls_where(l, "psk_hint "));
            return NULL;
        }
        o.psk_lookup = plugin_psk_lookup;
        o.psk_arg = &t->pskp[i];
    }
    char msg[TLS_ERR_MAX];
    SSL_CTX *ctx = tls_server_ctx(&o, msg, sizeof(msg));
    if (!ctx) {
        snprintf(err, errlen, "%s: %s", config_tls_where(l, msg), msg);
        return NULL;
    }
    /* Clients that close without close_notify (most MQTT clients) end like a TCP close. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(ctx, 1); /* see the design note; pending() accounts for what it holds */
    return ctx;
}

/* Load the PSK tables: one per distinct psk_file setting (all listeners share the global one). */
static int load_psk(struct tls_listeners *t, const struct tombo_config *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < t->n; i++) {
        const struct tombo_listener *l = &cfg->listeners[i];
        if (!l->psk_hint || !l->psk_file) /* without psk_file: the plugins' keys (build_ctx) */
            continue;
        for (int k = 0; k < i; k++) {
            if (t->psk[k] && cfg->listeners[k].psk_file && !strcmp(cfg->listeners[k].psk_file, l->psk_file)) {
                t->psk[i] = t->psk[k];
                break;
            }
        }
        if (t->psk[i])
            continue;
        char msg[TLS_ERR_MAX];
        t->psk[i] = tls_psk_load(l->psk_file, msg, sizeof(msg));
        if (!t->psk[i]) {
            snprintf(err, errlen, "%s: %s", config_tls_where(l, "psk_file "), msg);
            return -1;
        }
        t->psk_owner[i] = true;
    }
    return 0;
}

static void free_psk(tls_psk_table_t **psk, bool *owner, int n)
{
    for (int i = 0; i < n; i++)
        if (owner[i])
            tls_psk_free(psk[i]);
}

int tls_listeners_init(broker_t *b)
{
    const struct tombo_config *cfg = &b->cfg;
    struct tls_listeners *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    t->n = cfg->n_listeners;
    t->ctx = xcalloc((size_t)t->n + 1, sizeof(*t->ctx));
    t->psk = xcalloc((size_t)t->n + 1, sizeof(*t->psk));
    t->psk_owner = xcalloc((size_t)t->n + 1, sizeof(*t->psk_owner));
    b->tls = t;
    char err[1024];
    if (load_psk(t, cfg, err, sizeof(err)) < 0) {
        log_printf(TLOG_ERR, "Error: %s", err);
        return -1;
    }
    t->pskp = xcalloc((size_t)t->n + 1, sizeof(*t->pskp));
    for (int i = 0; i < t->n; i++) {
        plugin_set_t *ps = auth_plugins(b->auth[i]);
        if (cfg->listeners[i].psk_hint && !t->psk[i] && plugin_set_has_psk(ps)) {
            t->pskp[i].ps = ps;
            t->pskp[i].hint = xstrdup(cfg->listeners[i].psk_hint);
        }
    }
    for (int i = 0; i < t->n; i++) {
        const struct tombo_listener *l = &cfg->listeners[i];
        if (!tombo_listener_tls(l))
            continue;
        t->ctx[i] = build_ctx(t, l, i, err, sizeof(err));
        if (!t->ctx[i]) {
            log_printf(TLOG_ERR, "Error: %s", err);
            return -1;
        }
    }
    return 0;
}

void tls_listeners_reload(broker_t *b)
{
    struct tls_listeners *t = b->tls;
    const struct tombo_config *cfg = &b->cfg;
    if (!t)
        return;
    bool any = false;
    for (int i = 0; i < t->n; i++)
        any |= t->ctx[i] != NULL;
    if (!any)
        return;
    char err[1024];
    /* New PSK tables first; the contexts built below use them. */
    struct tls_listeners fresh = {.n = t->n, .pskp = t->pskp};
    fresh.psk = xcalloc((size_t)t->n + 1, sizeof(*fresh.psk));
    fresh.psk_owner = xcalloc((size_t)t->n + 1, sizeof(*fresh.psk_owner));
    if (load_psk(&fresh, cfg, err, sizeof(err)) < 0) {
        log_printf(TLOG_ERR, "Error: reloading TLS: %s; the previous keys and certificates stay in force.", err);
        free_psk(fresh.psk, fresh.psk_owner, fresh.n);
        free(fresh.psk);
        free(fresh.psk_owner);
        return;
    }
    fresh.ctx = xcalloc((size_t)t->n + 1, sizeof(*fresh.ctx));
    for (int i = 0; i < t->n; i++) {
        if (!t->ctx[i])
            continue;
        fresh.ctx[i] = build_ctx(&fresh, &cfg->listeners[i], i, err, sizeof(err));
        if (!fresh.ctx[i]) {
            log_printf(TLOG_ERR, "Error: reloading TLS: %s; the previous keys and certificates stay in force.",
                       err);
            for (int k = 0; k < i; k++)
                SSL_CTX_free(fresh.ctx[k]);
            free(fresh.ctx);
            free_psk(fresh.psk, fresh.psk_owner, fresh.n);
            free(fresh.psk);
            free(fresh.psk_owner);
            return;
        }
    }
    /* Swap. Old contexts live on in the SSLs of current connections (reference-counted). */
    pthread_mutex_lock(&t->lock);
    SSL_CTX **old_ctx = t->ctx;
    t->ctx = fresh.ctx;
    tls_psk_table_t **old_psk = t->psk;
    bool *old_owner = t->psk_owner;
    t->psk = fresh.psk;
    t->psk_owner = fresh.psk_owner;
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < t->n; i++)
        SSL_CTX_free(old_ctx[i]);
    free(old_ctx);
    /* Retired tables: kept until the broker ends (see above). */
    struct retired *r = xcalloc(1, sizeof(*r));
    *r = (struct retired){.next = t->retired, .psk = old_psk, .owner = old_owner};
    t->retired = r;
    log_printf(TLOG_NOTICE, "Reloaded the TLS certificates, keys, CRLs and PSK file.");
}

void tls_listeners_free(broker_t *b)
{
    struct tls_listeners *t = b->tls;
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        SSL_CTX_free(t->ctx[i]);
    free(t->ctx);
    free_psk(t->psk, t->psk_owner, t->n);
    free(t->psk);
    free(t->psk_owner);
    for (int i = 0; t->pskp && i < t->n; i++)
        free(t->pskp[i].hint);
    free(t->pskp);
    while (t->retired) {
        struct retired *r = t->retired;
        t->retired = r->next;
        free_psk(r->psk, r->owner, t->n);
        free(r->psk);
        free(r->owner);
        free(r);
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
    b->tls = NULL;
}

bool tls_conn_start(conn_t *c, broker_t *b, int li)
{
    struct tls_listeners *t = b->tls;
    pthread_mutex_lock(&t->lock);
    SSL *ssl = SSL_new(t->ctx[li]); /* takes a reference to the context */
    pthread_mutex_unlock(&t->lock);
    if (!ssl || !SSL_set_fd(ssl, c->fd)) {
        char reason[256];
        tls_error_string(reason, sizeof(reason), "out of memory");
        log_printf(TLOG_ERR, "Error: TLS for a client of [%s]: %s.", c->peer, reason);
        SSL_free(ssl);
        return false;
    }
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    c->tr = &transport_tls;
    c->tp_flags = TP_HANDSHAKE;
    return true;
}
