/* tls.h -- TLS contexts on OpenSSL 3 for both ends of a connection, shared by the broker (listeners)
 * and libtombo (clients), so both read certificates, keys, CRLs and PSKs the same way and say the
 * same thing when a file is wrong. It knows no MQTT and no sockets: it builds SSL_CTX objects; the
 * caller makes the SSL objects and drives the I/O.
 *
 * Every builder returns NULL on failure with a message in `err` that names the file and OpenSSL's
 * reason ("keyfile /etc/k.pem: cannot read: No such file or directory", "keyfile k.pem does not
 * match certfile c.pem"). Contexts are reference-counted by OpenSSL (SSL_CTX_up_ref/SSL_CTX_free):
 * an SSL keeps its context alive, so a reloaded context can replace an old one while connections
 * made from the old one go on. Builders may run on any thread; nothing here keeps global state
 * beyond OpenSSL's own (one ex_data index, made once). */
#ifndef TOMBO_TLS_H
#define TOMBO_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#define TLS_ERR_MAX 512        /* a buffer this long holds any message of this library */
#define TLS_PSK_MAX_KEY 64     /* bytes of one pre-shared key (128 hex digits) */
#define TLS_PSK_MAX_IDENTITY 128

/* Server side: the key for a PSK identity. Writes at most `max` bytes to `key` and returns their
 * count, or 0 when the identity is unknown (the handshake then fails). Called on the thread that
 * runs the handshake; must be safe to call from several at once. */
typedef size_t (*tls_psk_lookup_fn)(void *arg, const char *identity, unsigned char *key, size_t max);

/* One set of options for both roles; fields a role does not use are ignored. Strings are the
 * caller's and need live only during the builder's call. NULL / false / 0 mean "not set". */
typedef struct tls_options {
    /* both roles */
    const char *cafile;        /* PEM file of CA certificates that verify the peer */
    const char *capath;        /* directory of hashed CA certificates (c_rehash) */
    const char *certfile;      /* PEM certificate (chain) presented to the peer */
    const char *keyfile;       /* its PEM private key, unencrypted */
    const char *tls_version;   /* minimum version, "tlsv1.2" or "tlsv1.3"; NULL: 1.2 (1.3 is the max) */
    const char *ciphers;       /* OpenSSL cipher list for TLS 1.2 */
    const char *ciphers_tls13; /* OpenSSL ciphersuites for TLS 1.3 */

    /* server */
    bool require_certificate;  /* the client must present a certificate the CAs verify */
    const char *crlfile;       /* PEM CRL(s): client certificates are checked against them */
    const char *dhparamfile;   /* PEM DH parameters for DHE suites (default: OpenSSL's automatic) */
    const char *psk_hint;      /* non-NULL: PSK on, this hint sent to clients */
    tls_psk_lookup_fn psk_lookup; /* with psk_hint: the keys (e.g. tls_psk_table_lookup) */
    void *psk_arg;             /* passed to psk_lookup; must outlive the context */

    /* client */
    bool insecure;             /* skip the server hostname check (mosquitto's --insecure); with no
                                * cafile/capath either, the certificate is not verified at all */
    const char *alpn;          /* comma-separated ALPN protocols, e.g. "mqtt" */
    const char *psk_identity;  /* with psk_key: PSK instead of certificates */
    const char *psk_key;       /* hex digits, as mosquitto_pub --psk */
    bool require_ocsp;         /* the server must staple an OCSP response (RFC 6066 status_request)
                                * that the CAs verify and that says its certificate is good */
} tls_options_t;

/* A context for accepting connections. A server needs certfile+keyfile, or psk_hint (PSK only),
 * or both. require_certificate needs cafile or capath. */
SSL_CTX *tls_server_ctx(const tls_options_t *o, char *err, size_t errlen);

/* A context for making connections. Without insecure, the server certificate is verified against
 * cafile/capath, or the system's CAs when neither is given. */
SSL_CTX *tls_client_ctx(const tls_options_t *o, char *err, size_t errlen);

/* Client side, after a handshake that failed with require_ocsp: why the server's OCSP response was
 * refused ("no OCSP response was stapled", "the OCSP response says the certificate is revoked
 * (keyCompromise)", ...), owned by ssl; NULL when the OCSP check did not fail it. */
const char *tls_ocsp_failure(SSL *ssl);

/* Per client connection, before the handshake: SNI (for a host name, not an IP literal) and, unless
 * `insecure`, the check that the server certificate names `host` (DNS SAN/CN or IP SAN). Returns
 * false with a message when OpenSSL refuses the name. */
bool tls_client_set_host(SSL *ssl, const char *host, bool insecure, char *err, size_t errlen);

/* The peer certificate's subject CN (use_identity_as_username) or its whole subject in RFC 2253
 * form (use_subject_as_username), malloc'ed; NULL when there is no verified certificate or no CN. */
char *tls_peer_cn(SSL *ssl);
char *tls_peer_subject(SSL *ssl);
/* Server side: the PSK identity the client authenticated with (owned by ssl), or NULL. */
const char *tls_psk_identity(SSL *ssl);

/* Drain OpenSSL's thread-local error queue into `buf` ("reason" of the most specific error, or
 * `fallback` when the queue is empty). For logging a failed handshake. */
void tls_error_string(char *buf, size_t len, const char *fallback);

/* ---- PSK table: mosquitto's psk_file, lines "identity:hexkey" ('#' comments, blank lines) ---- */
typedef struct tls_psk_table tls_psk_table_t;

/* Read a psk_file. NULL with a message ("FILE:LINE: ...") on an unreadable file or a bad line. */
tls_psk_table_t *tls_psk_load(const char *path, char *err, size_t errlen);
/* A tls_psk_lookup_fn: arg is a tls_psk_table_t. Read-only, safe from any thread. */
size_t tls_psk_table_lookup(void *arg, const char *identity, unsigned char *key, size_t max);
void tls_psk_free(tls_psk_table_t *t);

/* Hex digits to bytes ("0a1B" -> {0x0a, 0x1b}): the count, or 0 if not an even count of hex digits
 * that fits in max. */
size_t tls_hex_decode(const char *hex, unsigned char *out, size_t max);

#endif
