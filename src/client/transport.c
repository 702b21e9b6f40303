/* transport.c -- the client's two transports (transport.h): plain TCP, and TLS on OpenSSL 3 with a
 * non-blocking handshake driven by the loop's reads and writes; plus the public TLS settings
 * (tombo_set_tls), whose context is built by the shared TLS library (src/tls), as the broker's are.
 *
 * TLS design: the SSL object talks to the socket through a small BIO of our own that writes with
 * send(MSG_NOSIGNAL), so a broker that goes away cannot kill the application with SIGPIPE (a
 * library may not ignore signals for its host). The handshake starts with the first write (the
 * CONNECT queued by tombo_connect) and is finished by whichever of recv/send runs next; until it
 * is done the socket is polled for what OpenSSL wants, not for our pending output. When a
 * connection closes after a good handshake its session is kept and offered to the next one. */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "log.h"
#include "tls/tls.h"

/* ---- plain TCP ------------------------------------------------------------------------------- */

static tombo_err_t plain_start(tombo_client_t *c)
{
    (void)c;
    return TOMBO_OK;
}

static tombo_err_t plain_recv(tombo_client_t *c, uint8_t *buf, size_t len, size_t *n)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (r > 0) {
            *n = (size_t)r;
            return TOMBO_OK;
        }
        if (r == 0)
            return TOMBO_ERR_CONN_LOST;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? TOMBO_ERR_AGAIN : TOMBO_ERR_CONN_LOST;
    }
}

static tombo_err_t plain_send(tombo_client_t *c, const uint8_t *buf, size_t len, size_t *n)
{
    for (;;) {
        ssize_t r = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0) {
            *n = (size_t)r;
            return r > 0 ? TOMBO_OK : TOMBO_ERR_AGAIN;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? TOMBO_ERR_AGAIN : TOMBO_ERR_CONN_LOST;
    }
}

static short plain_events(tombo_client_t *c, bool have_output)
{
    (void)c;
    return (short)(POLLIN | (have_output ? POLLOUT : 0));
}

static bool plain_pending(tombo_client_t *c)
{
    (void)c;
    return false;
}

static void plain_close(tombo_client_t *c)
{
    (void)c;
}

const transport_ops_t transport_plain = {"tcp", plain_start, plain_recv, plain_send, plain_events, plain_pending,
                                         plain_close};

/* ---- the socket BIO: recv/send on the client's fd, never SIGPIPE ------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = send(fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_read(BIO *b, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = recv(fd, buf, (size_t)len, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tombo socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl) &&
        BIO_meth_set_create(m, bio_create)) {
        bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ---- TLS ------------------------------------------------------------------------------------- */

/* Record why the TLS connection failed (tombo_tls_error) and log it. */
static void tls_fail(tombo_client_t *c, const char *fmt, const char *detail)
{
    snprintf(c->tls.err, sizeof(c->tls.err), fmt, detail);
    client_log(c, TOMBO_LOG_ERROR, "%s", c->tls.err);
}

static tombo_err_t tls_start(tombo_client_t *c)
{
    c->tls.handshake_done = false;
    c->tls.failed = TOMBO_OK;
    pthread_once(&bio_once, bio_method_make);
    ERR_clear_error();
    SSL *ssl = SSL_new(c->tls.ctx);
    BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
    if (!ssl || !bio) {
        SSL_free(ssl);
        BIO_free(bio);
        return TOMBO_ERR_NOMEM;
    }
    BIO_set_data(bio, (void *)(intptr_t)c->fd);
    SSL_set_bio(ssl, bio, bio);
    /* The name checked and sent as SNI: the settings' server_name, else the host we connect to
     * (not a Unix socket's path). */
    const char *name = c->tls.sni ? c->tls.sni : c->port != 0 ? c->host : NULL;
    char err[TLS_ERR_MAX];
    if (name && !tls_client_set_host(ssl, name, c->tls.insecure, err, sizeof(err))) {
        SSL_free(ssl);
        tls_fail(c, "TLS: %s", err);
        return TOMBO_ERR_TLS_CONFIG;
    }
    if (c->tls.session)
        SSL_set_session(ssl, c->tls.session);
    SSL_set_connect_state(ssl);
    c->tls.ssl = ssl;
    return TOMBO_OK;
}

/* Why SSL_do_handshake failed, as a tombo error with tombo_tls_error() set. */
static tombo_err_t tls_handshake_error(tombo_client_t *c, int ssl_error)
{
    long vr = SSL_get_verify_result(c->tls.ssl);
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        ERR_clear_error();
        tls_fail(c, "TLS: certificate verify failed: the certificate does not name %s",
                 c->tls.sni ? c->tls.sni : c->host);
        return TOMBO_ERR_TLS_HOSTNAME;
    }
    if (vr != X509_V_OK) {
        ERR_clear_error();
        tls_fail(c, "TLS: certificate verify failed: %s", X509_verify_cert_error_string(vr));
        return TOMBO_ERR_TLS_VERIFY;
    }
    char why[TLS_ERR_MAX];
    const char *fallback = ssl_error == SSL_ERROR_SYSCALL ? "the broker closed the connection" : "protocol error";
    tls_error_string(why, sizeof(why), fallback);
    tls_fail(c, "TLS: handshake failed: %s", why);
    return TOMBO_ERR_TLS_HANDSHAKE;
}

/* Drive the handshake: OK once done, AGAIN while it waits for the socket, else the failure. */
static tombo_err_t tls_handshake(tombo_client_t *c)
{
    if (c->tls.handshake_done)
        return TOMBO_OK;
    if (!c->tls.ssl)
        return TOMBO_ERR_NO_CONN;
    if (c->tls.failed != TOMBO_OK)
        return c->tls.failed;
    ERR_clear_error();
    int r = SSL_do_handshake(c->tls.ssl);
    if (r == 1) {
        c->tls.handshake_done = true;
        c->tls.err[0] = 0;
        client_log(c, TOMBO_LOG_DEBUG, "TLS handshake done: %s, %s%s", SSL_get_version(c->tls.ssl),
                   SSL_get_cipher_name(c->tls.ssl), SSL_session_reused(c->tls.ssl) ? ", session resumed" : "");
        return TOMBO_OK;
    }
    int e = SSL_get_error(c->tls.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TOMBO_ERR_AGAIN;
    c->tls.failed = tls_handshake_error(c, e);
    return c->tls.failed;
}

/* An SSL_read/SSL_write result other than success, as a tombo error. */
static tombo_err_t tls_io_error(tombo_client_t *c, int ret)
{
    int e = SSL_get_error(c->tls.ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TOMBO_ERR_AGAIN;
    if (e == SSL_ERROR_SSL) {
        char why[TLS_ERR_MAX];
        tls_error_string(why, sizeof(why), "protocol error");
        if (c->state == CS_CONNECTING) {
            /* TLS 1.3: the broker refuses our certificate after our side of the handshake is
             * done, with an alert that arrives here, before any CONNACK. */
            tls_fail(c, "TLS: handshake failed: %s", why);
            return TOMBO_ERR_TLS_HANDSHAKE;
        }
        client_log(c, TOMBO_LOG_WARNING, "TLS: %s", why);
    }
    ERR_clear_error();
    return TOMBO_ERR_CONN_LOST;
}

static tombo_err_t tls_recv(tombo_client_t *c, uint8_t *buf, size_t len, size_t *n)
{
    tombo_err_t e = tls_handshake(c);
    if (e != TOMBO_OK)
        return e;
    ERR_clear_error();
    int r = SSL_read_ex(c->tls.ssl, buf, len, n);
    return r == 1 ? TOMBO_OK : tls_io_error(c, r);
}

static tombo_err_t tls_send(tombo_client_t *c, const uint8_t *buf, size_t len, size_t *n)
{
    tombo_err_t e = tls_handshake(c);
    if (e != TOMBO_OK)
        return e;
    ERR_clear_error();
    int r = SSL_write_ex(c->tls.ssl, buf, len, n);
    if (r == 1)
        return TOMBO_OK;
    e = tls_io_error(c, r);
    if (e == TOMBO_ERR_CONN_LOST && c->state == CS_CONNECTING) {
        /* The broker closed before our CONNECT went out: its alert, if it sent one, is waiting
         * to be read and says why (TLS 1.3 refuses a client certificate this late). */
        uint8_t scratch[512];
        size_t got = 0;
        ERR_clear_error();
        r = SSL_read_ex(c->tls.ssl, scratch, sizeof(scratch), &got);
        if (r != 1 && tls_io_error(c, r) == TOMBO_ERR_TLS_HANDSHAKE)
            return TOMBO_ERR_TLS_HANDSHAKE;
    }
    return e;
}

static short tls_events(tombo_client_t *c, bool have_output)
{
    /* During the handshake our own output waits: poll for what OpenSSL needs. */
    bool out = c->tls.ssl && (SSL_want_write(c->tls.ssl) || (c->tls.handshake_done && have_output));
    return (short)(POLLIN | (out ? POLLOUT : 0));
}

static bool tls_pending(tombo_client_t *c)
{
    return c->tls.ssl && c->tls.handshake_done && SSL_pending(c->tls.ssl) > 0;
}

static void tls_close(tombo_client_t *c)
{
    SSL *ssl = c->tls.ssl;
    if (!ssl)
        return;
    if (c->tls.handshake_done) {
        SSL_SESSION *s = SSL_get1_session(ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(c->tls.session);
            c->tls.session = s;
        } else {
            SSL_SESSION_free(s);
        }
        ERR_clear_error();
        SSL_shutdown(ssl); /* close_notify, once, non-blocking: its answer is not waited for */
        ERR_clear_error();
    }
    SSL_free(ssl);
    c->tls.ssl = NULL;
    c->tls.handshake_done = false;
}

const transport_ops_t transport_tls = {"tls", tls_start, tls_recv, tls_send, tls_events, tls_pending, tls_close};

const transport_ops_t *transport_for(const tombo_client_t *c)
{
    return c->tls.ctx ? &transport_tls : &transport_plain;
}

void transport_tls_free(tombo_client_t *c)
{
    SSL_SESSION_free(c->tls.session);
    c->tls.session = NULL;
    SSL_CTX_free(c->tls.ctx);
    c->tls.ctx = NULL;
    free(c->tls.sni);
    c->tls.sni = NULL;
}

/* ---- public API ------------------------------------------------------------------------------ */

void tombo_tls_options_init(tombo_tls_options_t *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

tombo_err_t tombo_set_tls(tombo_client_t *c, const tombo_tls_options_t *opts)
{
    if (!c)
        return TOMBO_ERR_INVAL;
    if (opts && (!!opts->certfile != !!opts->keyfile || !!opts->psk != !!opts->psk_identity))
        return TOMBO_ERR_INVAL;
    pthread_mutex_lock(&c->lock);
    if (c->fd >= 0) {
        pthread_mutex_unlock(&c->lock);
        return TOMBO_ERR_BUSY;
    }
    SSL_CTX *ctx = NULL;
    char *sni = NULL;
    if (opts) {
        tls_options_t o;
        memset(&o, 0, sizeof(o));
        o.cafile = opts->cafile;
        o.capath = opts->capath;
        o.certfile = opts->certfile;
        o.keyfile = opts->keyfile;
        o.tls_version = opts->tls_version;
        o.ciphers = opts->ciphers;
        o.ciphers_tls13 = opts->ciphers_tls13;
        o.insecure = opts->insecure;
        o.alpn = opts->alpn;
        o.psk_identity = opts->psk_identity;
        o.psk_key = opts->psk;
        char err[TLS_ERR_MAX];
        ctx = tls_client_ctx(&o, err, sizeof(err));
        if (!ctx) {
            snprintf(c->tls.err, sizeof(c->tls.err), "TLS: %s", err);
            pthread_mutex_unlock(&c->lock);
            return TOMBO_ERR_TLS_CONFIG;
        }
        if (opts->server_name && !(sni = strdup(opts->server_name))) {
            SSL_CTX_free(ctx);
            pthread_mutex_unlock(&c->lock);
            return TOMBO_ERR_NOMEM;
        }
    }
    transport_tls_free(c);
    c->tls.ctx = ctx;
    c->tls.sni = sni;
    c->tls.insecure = opts && opts->insecure;
    c->tls.err[0] = 0;
    pthread_mutex_unlock(&c->lock);
    return TOMBO_OK;
}

const char *tombo_tls_error(tombo_client_t *c)
{
    return c ? c->tls.err : "";
}

bool tombo_tls_active(tombo_client_t *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->lock);
    bool r = c->fd >= 0 && c->tls.ssl && c->tls.handshake_done;
    pthread_mutex_unlock(&c->lock);
    return r;
}
