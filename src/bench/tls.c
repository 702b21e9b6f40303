/* tls.c -- tombo-bench over TLS (--tls, --tls-resume): one client context built by the shared TLS
 * library (src/tls, as libtombo and the broker build theirs), one SSL per connection, and send/recv
 * look-alikes the engine calls instead of send(2)/recv(2) when a connection has an SSL. The
 * handshake runs inside them, non-blocking, so the engine's states stay those of plain MQTT.
 *
 * Resumption (--tls-resume): when a connection closes after a finished handshake, its session
 * (with TLS 1.3, the ticket the broker sent after the handshake) is kept on the conn and offered by
 * the next connection of the same client: storm mode then measures resumed handshakes. Every
 * handshake is counted as full or resumed, as OpenSSL reports it, so a broker that declines to
 * resume shows up in the figures instead of being assumed. */
#include "bench/bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls.h"

static int errors_printed;

static void tls_report(conn_t *c, const char *what)
{
    char why[TLS_ERR_MAX];
    long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(why, sizeof(why), "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else
        tls_error_string(why, sizeof(why), "connection closed");
    if (__atomic_fetch_add(&errors_printed, 1, __ATOMIC_RELAXED) < 10)
        fprintf(stderr, "tombo-bench: client %u: TLS %s: %s\n", c->idx, what, why);
    ERR_clear_error();
}

int bench_tls_init(bench_run_t *r)
{
    const bench_cfg_t *cfg = &r->cfg;
    if (!cfg->tls)
        return 0;
    tls_options_t o;
    memset(&o, 0, sizeof(o));
    o.cafile = cfg->cafile;
    o.capath = cfg->capath;
    o.certfile = cfg->certfile;
    o.keyfile = cfg->keyfile;
    o.tls_version = cfg->tls_version;
    o.ciphers = cfg->ciphers;
    o.insecure = cfg->tls_insecure;
    char err[TLS_ERR_MAX];
    r->tls_ctx = tls_client_ctx(&o, err, sizeof(err));
    if (!r->tls_ctx) {
        fprintf(stderr, "tombo-bench: TLS: %s\n", err);
        return -1;
    }
    /* Let the client keep sessions it may resume (the tickets of TLS 1.3 come after the handshake). */
    SSL_CTX_set_session_cache_mode(r->tls_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    /* The broker closing without close_notify (storm: after our DISCONNECT) is an EOF, not an error. */
    SSL_CTX_set_options(r->tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return 0;
}

void bench_tls_free(bench_run_t *r)
{
    SSL_CTX_free(r->tls_ctx);
    r->tls_ctx = NULL;
}

int tls_attach(bench_thread_t *t, conn_t *c)
{
    const bench_cfg_t *cfg = &t->run->cfg;
    c->tls_done = false;
    SSL *ssl = SSL_new(t->run->tls_ctx);
    if (!ssl || !SSL_set_fd(ssl, c->fd)) {
        SSL_free(ssl);
        return -1;
    }
    char err[TLS_ERR_MAX];
    if (!tls_client_set_host(ssl, cfg->host, cfg->tls_insecure, err, sizeof(err))) {
        fprintf(stderr, "tombo-bench: TLS: %s\n", err);
        SSL_free(ssl);
        return -1;
    }
    if (cfg->tls_resume && c->session)
        SSL_set_session(ssl, c->session);
    /* One recv per batch of records instead of a header and a body per record (the broker's
     * reads are the same): tls_recv stops when OpenSSL holds nothing more, tls_pending says when
     * it still does. */
    SSL_set_read_ahead(ssl, 1);
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return 0;
}

/* errno for an SSL_get_error result; -1 always. */
static ssize_t tls_fail(conn_t *c, int ret, const char *what)
{
    int e = SSL_get_error(c->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        if (!errno) /* the socket's own error (ECONNRESET, EPIPE), or an EOF in the handshake */
            errno = ECONNRESET;
        return -1;
    }
    tls_report(c, what);
    errno = EPROTO;
    return -1;
}

/* 1 when the handshake is done, -1 with errno otherwise. */
static int handshake(bench_thread_t *t, conn_t *c)
{
    if (c->tls_done)
        return 1;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1)
        return (int)tls_fail(c, r, "handshake");
    c->tls_done = true;
    if (SSL_session_reused(c->ssl))
        t->t.tls_resumed++;
    else
        t->t.tls_full++;
    return 1;
}

ssize_t tls_send(bench_thread_t *t, conn_t *c, const uint8_t *buf, size_t len)
{
    if (handshake(t, c) < 0)
        return -1;
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, buf, len, &n);
    return r == 1 ? (ssize_t)n : tls_fail(c, r, "write");
}

ssize_t tls_recv(bench_thread_t *t, conn_t *c, uint8_t *buf, size_t len)
{
    if (handshake(t, c) < 0)
        return -1;
    /* One SSL_read returns one record (16 KB at most): fill the buffer while records are there, and
     * stop when OpenSSL holds no more (its last recv was short) rather than meet EAGAIN: a short
     * count tells the engine the socket is drained, as a short recv(2) does. */
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, buf + got, len - got, &n);
        if (r == 1) {
            got += n;
            if (!SSL_has_pending(c->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (got && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE))
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            return got ? (ssize_t)got : 0;
        if (got) /* hand over what came; the error shows again on the next call */
            break;
        return tls_fail(c, r, "read");
    }
    return (ssize_t)got;
}

bool tls_pending(const conn_t *c)
{
    return c->ssl && c->tls_done && SSL_has_pending(c->ssl);
}

bool tls_want_read(const conn_t *c)
{
    return c->ssl && !c->tls_done && SSL_want_read(c->ssl);
}

void tls_close(bench_thread_t *t, conn_t *c)
{
    if (!c->ssl)
        return;
    if (t->run->cfg.tls_resume && c->tls_done) {
        /* Closed as planned (storm: the broker closes after our DISCONNECT): without this,
         * SSL_free takes the session for a broken one and marks it not resumable. */
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(c->session);
            c->session = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->tls_done = false;
}
