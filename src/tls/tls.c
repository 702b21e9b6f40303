/* tls.c -- building OpenSSL 3 contexts from tls_options_t for the broker's listeners and libtombo's
 * connections (tls.h), the peer-certificate names, and the PSK table of mosquitto's psk_file.
 *
 * Design note. Each file is first opened with fopen() so an unreadable one is reported with errno's
 * words and its name, before OpenSSL reads it; OpenSSL's own reason is added for content it
 * refuses (a corrupt key, a key that does not match). The PSK settings a callback needs (lookup for
 * servers, identity and key for clients) live in a small struct hung on the SSL_CTX's ex_data and
 * freed with it, so contexts stay independent and reloadable.
 *
 * OCSP stapling (require_ocsp, client side): the ClientHello asks for the server's certificate
 * status; OpenSSL calls ocsp_status_cb once the server's certificate is verified, and a 0 from it
 * fails the handshake with a bad_certificate_status_response alert. The callback checks the stapled
 * response as `openssl ocsp -verify` would: signed by the issuing CA or by a responder it delegated
 * (OCSP_basic_verify against the context's trust store), a single response for this very
 * certificate (its CertID under the response's own hash), within its validity (5 minutes of clock
 * skew), and "good". The reason of a refusal is kept on the SSL (ex_data) for the caller's log. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* PSK settings attached to a context (ex_data), freed with it. */
struct ctx_psk {
    tls_psk_lookup_fn lookup;
    void *arg;
    char identity[TLS_PSK_MAX_IDENTITY + 1];
    unsigned char key[TLS_PSK_MAX_KEY];
    size_t key_len;
};

static int psk_index = -1;     /* SSL_CTX ex_data: struct ctx_psk */
static int identity_index = -1; /* SSL ex_data: the PSK identity a client gave (malloc'ed) */
static int ocsp_index = -1;     /* SSL ex_data: why the stapled OCSP response was refused (malloc'ed) */
static pthread_once_t psk_once = PTHREAD_ONCE_INIT;

static void psk_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (ptr) {
        OPENSSL_cleanse(ptr, sizeof(struct ctx_psk));
        free(ptr);
    }
}

static void identity_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    free(ptr);
}

static void psk_index_init(void)
{
    psk_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, psk_ex_free);
    identity_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, identity_ex_free);
    ocsp_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, identity_ex_free);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void tls_error_string(char *buf, size_t len, const char *fallback)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (!last) {
        snprintf(buf, len, "%s", fallback);
        return;
    }
    const char *r = ERR_reason_error_string(last);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(last, buf, len);
}

/* fopen-check a file so the message says why it cannot be read. */
static bool readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static void ssl_err(char *err, size_t errlen, const char *what, const char *path, const char *doing)
{
    char reason[256];
    tls_error_string(reason, sizeof reason, "unknown error");
    set_err(err, errlen, "%s %s: %s: %s", what, path, doing, reason);
}

/* No passphrase prompt on a terminal: an encrypted key is an error, not a hang. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf; (void)size; (void)rwflag; (void)u;
    return 0;
}

static bool set_version(SSL_CTX *ctx, const char *v, char *err, size_t errlen)
{
    int min = TLS1_2_VERSION;
    if (v) {
        if (!strcmp(v, "tlsv1.2"))
            min = TLS1_2_VERSION;
        else if (!strcmp(v, "tlsv1.3"))
            min = TLS1_3_VERSION;
        else {
            set_err(err, errlen, "tls_version %s: not supported (tlsv1.2 or tlsv1.3)", v);
            return false;
        }
    }
    if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        set_err(err, errlen, "tls_version: OpenSSL refused the version range");
        return false;
    }
    return true;
}

/* Settings both roles share: versions, ciphers, CAs, own certificate and key. */
static bool common_setup(SSL_CTX *ctx, const tls_options_t *o, char *err, size_t errlen)
{
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    if (!set_version(ctx, o->tls_version, err, errlen))
        return false;
    if (o->ciphers && !SSL_CTX_set_cipher_list(ctx, o->ciphers)) {
        ssl_err(err, errlen, "ciphers", o->ciphers, "no usable cipher");
        return false;
    }
    if (o->ciphers_tls13 && !SSL_CTX_set_ciphersuites(ctx, o->ciphers_tls13)) {
        ssl_err(err, errlen, "ciphers_tls1.3", o->ciphers_tls13, "no usable ciphersuite");
        return false;
    }
    if (o->cafile) {
        if (!readable("cafile", o->cafile, err, errlen))
            return false;
        if (!SSL_CTX_load_verify_locations(ctx, o->cafile, NULL)) {
            ssl_err(err, errlen, "cafile", o->cafile, "cannot load CA certificates");
            return false;
        }
    }
    if (o->capath) {
        struct stat st;
        if (stat(o->capath, &st) != 0 || !S_ISDIR(st.st_mode)) {
            set_err(err, errlen, "capath %s: not a readable directory: %s", o->capath,
                    errno ? strerror(errno) : "not a directory");
            return false;
        }
        if (!SSL_CTX_load_verify_locations(ctx, NULL, o->capath)) {
            ssl_err(err, errlen, "capath", o->capath, "cannot use CA directory");
            return false;
        }
    }
    if (o->certfile && !o->keyfile) {
        set_err(err, errlen, "certfile %s given without keyfile", o->certfile);
        return false;
    }
    if (o->keyfile && !o->certfile) {
        set_err(err, errlen, "keyfile %s given without certfile", o->keyfile);
        return false;
    }
    if (o->certfile) {
        if (!readable("certfile", o->certfile, err, errlen) || !readable("keyfile", o->keyfile, err, errlen))
            return false;
        if (!SSL_CTX_use_certificate_chain_file(ctx, o->certfile)) {
            ssl_err(err, errlen, "certfile", o->certfile, "not a usable PEM certificate");
            return false;
        }
        /* Read the key first: a corrupt key and a key of another certificate get their own words. */
        BIO *bio = BIO_new_file(o->keyfile, "r");
        EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
        BIO_free(bio);
        if (!key) {
            ssl_err(err, errlen, "keyfile", o->keyfile, "not a usable PEM private key");
            return false;
        }
        int used = SSL_CTX_use_PrivateKey(ctx, key);
        EVP_PKEY_free(key);
        if (!used || !SSL_CTX_check_private_key(ctx)) {
            ERR_clear_error();
            set_err(err, errlen, "keyfile %s does not match certfile %s", o->keyfile, o->certfile);
            return false;
        }
    }
    return true;
}

static struct ctx_psk *attach_psk(SSL_CTX *ctx, char *err, size_t errlen)
{
    pthread_once(&psk_once, psk_index_init);
    struct ctx_psk *p = calloc(1, sizeof *p);
    if (!p || psk_index < 0 || !SSL_CTX_set_ex_data(ctx, psk_index, p)) {
        free(p);
        set_err(err, errlen, "PSK: out of memory");
        return NULL;
    }
    return p;
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max)
{
    const struct ctx_psk *p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index);
    if (!p || !p->lookup || !identity)
        return 0;
    size_t n = p->lookup(p->arg, identity, psk, max);
    if (n) {
        /* SSL_get_psk_identity() is not set for TLS 1.3 through this callback: keep our own copy. */
        char *copy = strdup(identity);
        free(SSL_get_ex_data(ssl, identity_index));
        if (!copy || !SSL_set_ex_data(ssl, identity_index, copy)) {
            free(copy);
            return 0;
        }
    }
    return (unsigned int)n;
}

const char *tls_psk_identity(SSL *ssl)
{
    pthread_once(&psk_once, psk_index_init);
    return identity_index < 0 ? NULL : SSL_get_ex_data(ssl, identity_index);
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_identity,
                                  unsigned char *psk, unsigned int max_psk)
{
    (void)hint;
    const struct ctx_psk *p = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index);
    size_t n = p ? strlen(p->identity) : 0;
    if (!p || n + 1 > max_identity || p->key_len > max_psk)
        return 0;
    memcpy(identity, p->identity, n + 1);
    memcpy(psk, p->key, p->key_len);
    return (unsigned int)p->key_len;
}

SSL_CTX *tls_server_ctx(const tls_options_t *o, char *err, size_t errlen)
{
    if (!o->certfile && !o->keyfile && !o->psk_hint) {
        set_err(err, errlen, "TLS needs certfile and keyfile (or psk_hint for PSK)");
        return NULL;
    }
    if (o->require_certificate && !o->cafile && !o->capath) {
        set_err(err, errlen, "require_certificate needs cafile or capath to verify client certificates");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errlen, "TLS", "server", "cannot make a context");
        return NULL;
    }
    if (!common_setup(ctx, o, err, errlen))
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* TLS 1.3 tickets: one per handshake, not OpenSSL's two. A reconnecting client resumes with one
     * and gets a new one each time (a resumed handshake issues one anyway); each ticket costs the
     * server about 50 us of CPU in OpenSSL 3.0 (about 10 % of a full handshake, measured with
     * tombo-bench storm --tls), spent on every full handshake for a second ticket hardly any MQTT
     * client uses. Tickets stay stateless (OpenSSL's random per-context key; SSL_OP_NO_TICKET is
     * not set) and resumption keeps its ECDHE (psk_dhe_ke) for forward secrecy. */
    SSL_CTX_set_num_tickets(ctx, 1);
    /* Sessions may be resumed; the id context is required once client certificates are verified. */
    static const unsigned char sid[] = "tombo";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    SSL_CTX_set_verify(ctx, o->require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                   : SSL_VERIFY_NONE, NULL);
    if (o->cafile && o->require_certificate) {
        /* Tell clients which CAs are accepted (their certificate choice may depend on it). */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->cafile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    if (o->crlfile) {
        if (!readable("crlfile", o->crlfile, err, errlen))
            goto fail;
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (!lu || X509_load_crl_file(lu, o->crlfile, X509_FILETYPE_PEM) <= 0) {
            ssl_err(err, errlen, "crlfile", o->crlfile, "not a usable PEM CRL");
            goto fail;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    if (o->dhparamfile) {
        if (!readable("dhparamfile", o->dhparamfile, err, errlen))
            goto fail;
        BIO *bio = BIO_new_file(o->dhparamfile, "r");
        EVP_PKEY *dh = bio ? PEM_read_bio_Parameters(bio, NULL) : NULL;
        BIO_free(bio);
        if (!dh || !SSL_CTX_set0_tmp_dh_pkey(ctx, dh)) {
            EVP_PKEY_free(dh);
            ssl_err(err, errlen, "dhparamfile", o->dhparamfile, "not usable PEM DH parameters");
            goto fail;
        }
    } else {
        SSL_CTX_set_dh_auto(ctx, 1);
    }
    if (o->psk_hint) {
        struct ctx_psk *p = attach_psk(ctx, err, errlen);
        if (!p)
            goto fail;
        p->lookup = o->psk_lookup;
        p->arg = o->psk_arg;
        if (!SSL_CTX_use_psk_identity_hint(ctx, o->psk_hint)) {
            ssl_err(err, errlen, "psk_hint", o->psk_hint, "refused");
            goto fail;
        }
        SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- OCSP stapling (client) ---- */

/* The issuer of the server's certificate: the next one of the verified chain, else one of the
 * chain the server sent. Not a new reference. */
static X509 *peer_issuer(SSL *ssl, X509 *peer)
{
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    if (chain && sk_X509_num(chain) > 1 && X509_check_issued(sk_X509_value(chain, 1), peer) == X509_V_OK)
        return sk_X509_value(chain, 1);
    if (chain && sk_X509_num(chain) == 1 && X509_check_issued(peer, peer) == X509_V_OK)
        return peer; /* a self-signed certificate the trust store holds */
    chain = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i), peer) == X509_V_OK)
            return sk_X509_value(chain, i);
    return NULL;
}

/* The single response of bs about `peer`, matched by CertID under each response's own hash
 * (responders copy the request's, SHA-1 by default); -1 if none. */
static int find_single(OCSP_BASICRESP *bs, X509 *peer, X509 *issuer)
{
    for (int i = 0; i < OCSP_resp_count(bs); i++) {
        const OCSP_CERTID *cid = OCSP_SINGLERESP_get0_id(OCSP_resp_get0(bs, i));
        ASN1_OBJECT *md_oid = NULL;
        if (!OCSP_id_get0_info(NULL, &md_oid, NULL, NULL, (OCSP_CERTID *)cid))
            continue;
        const EVP_MD *md = EVP_get_digestbyobj(md_oid);
        OCSP_CERTID *want = md ? OCSP_cert_to_id(md, peer, issuer) : NULL;
        bool same = want && OCSP_id_cmp(want, cid) == 0;
        OCSP_CERTID_free(want);
        if (same)
            return i;
    }
    return -1;
}

/* The verdict on the stapled response (DER, len bytes; len <= 0: none): NULL when the server's
 * certificate is good, else why not, in `buf`. */
static const char *ocsp_verdict(SSL *ssl, const unsigned char *der, long len, char *buf, size_t buflen)
{
    if (len <= 0 || !der)
        return "no OCSP response was stapled";
    const char *why = NULL;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &der, len);
    OCSP_BASICRESP *bs = NULL;
    X509 *peer = SSL_get0_peer_certificate(ssl), *issuer = peer ? peer_issuer(ssl, peer) : NULL;
    int st = resp ? OCSP_response_status(resp) : -1, i = -1;
    if (!resp) {
        why = "the stapled OCSP response cannot be parsed";
    } else if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(buf, buflen, "the OCSP responder answered %s", OCSP_response_status_str(st));
        why = buf;
    } else if (!(bs = OCSP_response_get1_basic(resp))) {
        why = "the stapled OCSP response is not a basic response";
    } else if (!peer || !issuer) {
        why = "the issuer of the server's certificate is not known, so its OCSP status cannot be checked";
    } else if (OCSP_basic_verify(bs, SSL_get_peer_cert_chain(ssl),
                                 SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), 0) <= 0) {
        char reason[160];
        tls_error_string(reason, sizeof reason, "signature not verified");
        snprintf(buf, buflen, "the OCSP response's signer is not trusted (%s)", reason);
        why = buf;
    } else if ((i = find_single(bs, peer, issuer)) < 0) {
        why = "the OCSP response is not about the server's certificate";
    } else {
        int reason = -1;
        ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
        int status = OCSP_single_get0_status(OCSP_resp_get0(bs, i), &reason, &rev, &thisupd, &nextupd);
        if (!OCSP_check_validity(thisupd, nextupd, 300, -1)) {
            why = "the OCSP response is out of date (or not yet valid)";
        } else if (status == V_OCSP_CERTSTATUS_REVOKED) {
            snprintf(buf, buflen, "the OCSP response says the certificate is revoked (%s)",
                     reason >= 0 ? OCSP_crl_reason_str(reason) : "no reason given");
            why = buf;
        } else if (status != V_OCSP_CERTSTATUS_GOOD) {
            why = "the OCSP responder does not know the certificate (status unknown)";
        }
    }
    ERR_clear_error();
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    return why;
}

/* SSL_CTX_set_tlsext_status_cb: 1 accepts the server's certificate status, 0 fails the handshake. */
static int ocsp_status_cb(SSL *ssl, void *arg)
{
    (void)arg;
    const unsigned char *der = NULL;
    long len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    char buf[256];
    const char *why = ocsp_verdict(ssl, der, len, buf, sizeof buf);
    if (!why)
        return 1;
    char *copy = strdup(why);
    free(SSL_get_ex_data(ssl, ocsp_index));
    if (!SSL_set_ex_data(ssl, ocsp_index, copy))
        free(copy);
    return 0;
}

const char *tls_ocsp_failure(SSL *ssl)
{
    pthread_once(&psk_once, psk_index_init);
    return ocsp_index < 0 ? NULL : SSL_get_ex_data(ssl, ocsp_index);
}

/* "mqtt,x-y" -> ALPN wire format (length-prefixed names). */
static bool set_alpn(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
    unsigned char wire[256];
    size_t n = 0;
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || len > 255 || n + 1 + len > sizeof wire) {
            set_err(err, errlen, "ALPN %s: each protocol 1..255 bytes, 255 in all", list);
            return false;
        }
        wire[n++] = (unsigned char)len;
        memcpy(wire + n, s, len);
        n += len;
        s += len + (e ? 1 : 0);
    }
    if (n == 0 || SSL_CTX_set_alpn_protos(ctx, wire, (unsigned int)n) != 0) {
        set_err(err, errlen, "ALPN %s: refused", list);
        return false;
    }
    return true;
}

SSL_CTX *tls_client_ctx(const tls_options_t *o, char *err, size_t errlen)
{
    if (!!o->psk_identity != !!o->psk_key) {
        set_err(err, errlen, "PSK needs both an identity and a key");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_err(err, errlen, "TLS", "client", "cannot make a context");
        return NULL;
    }
    if (!common_setup(ctx, o, err, errlen))
        goto fail;
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->cafile || o->capath) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else if (!o->insecure && !o->psk_identity) {
        SSL_CTX_set_default_verify_paths(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->alpn && !set_alpn(ctx, o->alpn, err, errlen))
        goto fail;
    if (o->psk_identity) {
        if (strlen(o->psk_identity) > TLS_PSK_MAX_IDENTITY) {
            set_err(err, errlen, "PSK identity longer than %d bytes", TLS_PSK_MAX_IDENTITY);
            goto fail;
        }
        struct ctx_psk *p = attach_psk(ctx, err, errlen);
        if (!p)
            goto fail;
        strcpy(p->identity, o->psk_identity);
        p->key_len = tls_hex_decode(o->psk_key, p->key, sizeof p->key);
        if (!p->key_len) {
            set_err(err, errlen, "PSK key: expected up to %d bytes as hex digits", TLS_PSK_MAX_KEY);
            goto fail;
        }
        SSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
    }
    if (o->require_ocsp) {
        if (o->psk_identity) {
            set_err(err, errlen, "OCSP stapling needs the server's certificate: not with PSK");
            goto fail;
        }
        pthread_once(&psk_once, psk_index_init);
        if (ocsp_index < 0 || !SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp) ||
            !SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status_cb)) {
            ssl_err(err, errlen, "OCSP", "stapling", "cannot be requested");
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

bool tls_client_set_host(SSL *ssl, const char *host, bool insecure, char *err, size_t errlen)
{
    bool ip = is_ip_literal(host);
    if (!ip && !SSL_set_tlsext_host_name(ssl, host)) {
        ssl_err(err, errlen, "host", host, "cannot be sent as SNI");
        return false;
    }
    if (insecure)
        return true;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : X509_VERIFY_PARAM_set1_host(vp, host, 0);
    if (!ok) {
        ssl_err(err, errlen, "host", host, "cannot be checked against the certificate");
        return false;
    }
    return true;
}

static X509 *verified_peer(SSL *ssl)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    if (x && SSL_get_verify_result(ssl) != X509_V_OK) {
        X509_free(x);
        return NULL;
    }
    return x;
}

char *tls_peer_cn(SSL *ssl)
{
    X509 *x = verified_peer(ssl);
    if (!x)
        return NULL;
    char *out = NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i >= 0) {
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n >= 0 && memchr(utf8, 0, (size_t)n) == NULL) {
            out = malloc((size_t)n + 1);
            if (out) {
                memcpy(out, utf8, (size_t)n);
                out[n] = 0;
            }
        }
        OPENSSL_free(utf8);
    }
    X509_free(x);
    return out;
}

char *tls_peer_subject(SSL *ssl)
{
    X509 *x = verified_peer(ssl);
    if (!x)
        return NULL;
    char *out = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = 0;
        }
    }
    BIO_free(bio);
    X509_free(x);
    return out;
}

size_t tls_hex_decode(const char *hex, unsigned char *out, size_t max)
{
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n / 2 > max)
        return 0;
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = hex[2 * i + (size_t)k];
            int d = isdigit((unsigned char)ch) ? ch - '0'
                  : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                  : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
            if (d < 0)
                return 0;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return n / 2;
}

/* ---- PSK table ---- */

struct psk_entry {
    char *identity;
    unsigned char key[TLS_PSK_MAX_KEY];
    size_t key_len;
};

struct tls_psk_table {
    struct psk_entry *e;
    size_t n;
};

void tls_psk_free(tls_psk_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].identity);
        OPENSSL_cleanse(t->e[i].key, sizeof t->e[i].key);
    }
    free(t->e);
    free(t);
}

tls_psk_table_t *tls_psk_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "psk_file %s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    tls_psk_table_t *t = calloc(1, sizeof *t);
    if (!t) {
        fclose(f);
        set_err(err, errlen, "psk_file %s: out of memory", path);
        return NULL;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            line[--len] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        char *colon = strchr(s, ':');
        if (!colon || colon == s) {
            set_err(err, errlen, "%s:%d: expected identity:hexkey", path, lineno);
            goto fail;
        }
        *colon = 0;
        if (strlen(s) > TLS_PSK_MAX_IDENTITY) {
            set_err(err, errlen, "%s:%d: identity longer than %d bytes", path, lineno, TLS_PSK_MAX_IDENTITY);
            goto fail;
        }
        struct psk_entry ent = {0};
        ent.key_len = tls_hex_decode(colon + 1, ent.key, sizeof ent.key);
        if (!ent.key_len) {
            set_err(err, errlen, "%s:%d: key of %s: expected up to %d bytes as hex digits", path, lineno, s,
                    TLS_PSK_MAX_KEY);
            goto fail;
        }
        struct psk_entry *ne = realloc(t->e, (t->n + 1) * sizeof *ne);
        ent.identity = strdup(s);
        if (!ne || !ent.identity) {
            if (ne)
                t->e = ne;
            free(ent.identity);
            set_err(err, errlen, "psk_file %s: out of memory", path);
            goto fail;
        }
        t->e = ne;
        t->e[t->n++] = ent;
    }
    fclose(f);
    return t;
fail:
    fclose(f);
    tls_psk_free(t);
    return NULL;
}

size_t tls_psk_table_lookup(void *arg, const char *identity, unsigned char *key, size_t max)
{
    const tls_psk_table_t *t = arg;
    for (size_t i = 0; t && i < t->n; i++) {
        if (!strcmp(t->e[i].identity, identity)) {
            if (t->e[i].key_len > max)
                return 0;
            memcpy(key, t->e[i].key, t->e[i].key_len);
            return t->e[i].key_len;
        }
    }
    return 0;
}
