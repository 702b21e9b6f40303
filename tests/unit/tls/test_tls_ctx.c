/* test_tls_ctx.c -- src/tls: contexts from options for both roles, the messages a bad file gets,
 * the PSK table, and real handshakes between a client and a server context over an in-memory BIO
 * pair (hostname check, client certificate CN/subject, PSK). Keys and certificates are made here
 * with OpenSSL in a temporary directory: a CA, a server certificate for localhost/127.0.0.1 and a
 * client certificate it signed, and a stray key that matches nothing. */
#include "unit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

static char dir[] = "/tmp/tombo-tls-unitXXXXXX";
static char path_buf[16][256];
static int npath;

static const char *path(const char *name)
{
    char *p = path_buf[npath++];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_key(EVP_PKEY *k, const char *file)
{
    FILE *f = fopen(file, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void write_cert(X509 *x, const char *file)
{
    FILE *f = fopen(file, "w");
    PEM_write_X509(f, x);
    fclose(f);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A certificate for `key` named CN=cn, signed by issuer/ikey (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, const char *san, long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"tombo test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints, issuer ? "CA:FALSE" : "critical,CA:TRUE");
    if (!issuer)
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (san)
        add_ext(x, issuer, NID_subject_alt_name, san);
    X509_sign(x, issuer ? ikey : key, EVP_sha256());
    return x;
}

static void make_files(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    EVP_PKEY *cak = EVP_EC_gen("P-256"), *sk = EVP_EC_gen("P-256"), *ck = EVP_EC_gen("P-256");
    EVP_PKEY *stray = EVP_EC_gen("P-256");
    X509 *ca = make_cert(cak, "tombo test CA", NULL, NULL, NULL, 1);
    X509 *srv = make_cert(sk, "localhost", ca, cak, "DNS:localhost,IP:127.0.0.1", 2);
    X509 *cli = make_cert(ck, "alice", ca, cak, NULL, 3);
    write_cert(ca, path("ca.crt"));
    write_cert(srv, path("server.crt"));
    write_key(sk, path("server.key"));
    write_cert(cli, path("client.crt"));
    write_key(ck, path("client.key"));
    write_key(stray, path("stray.key"));
    FILE *f = fopen(path("garbage.key"), "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    f = fopen(path("psk.txt"), "w");
    fputs("# identities\n\nbob:0a0B0c0d\n  carol:00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    f = fopen(path("psk_bad.txt"), "w");
    fputs("bob:0a0b\ncarol:xyz\n", f);
    fclose(f);
    X509_free(ca); X509_free(srv); X509_free(cli);
    EVP_PKEY_free(cak); EVP_PKEY_free(sk); EVP_PKEY_free(ck); EVP_PKEY_free(stray);
}

#define P(i) path_buf[i]
enum { CA, SRV, SRVKEY, CLI, CLIKEY, STRAY, GARBAGE, PSK, PSKBAD };

static bool contains(const char *s, const char *sub)
{
    return s && strstr(s, sub) != NULL;
}

/* Drive both ends of a handshake over a BIO pair; true when both completed. */
static bool handshake(SSL *c, SSL *s)
{
    BIO *cb, *sb;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    int cd = 0, sd = 0;
    for (int i = 0; i < 100 && !(cd == 1 && sd == 1); i++) {
        if (cd != 1) {
            cd = SSL_do_handshake(c);
            if (cd <= 0 && SSL_get_error(c, cd) != SSL_ERROR_WANT_READ)
                return false;
        }
        if (sd != 1) {
            sd = SSL_do_handshake(s);
            if (sd <= 0 && SSL_get_error(s, sd) != SSL_ERROR_WANT_READ)
                return false;
        }
    }
    /* TLS 1.3: the server sees a bad client certificate only after the client thinks it is done. */
    char byte;
    SSL_write(c, "x", 1);
    return SSL_read(s, &byte, 1) == 1;
}

int main(void)
{
    char err[TLS_ERR_MAX];
    make_files();

    CASE("server context from certificate and key");
    tls_options_t so = {.certfile = P(SRV), .keyfile = P(SRVKEY)};
    SSL_CTX *sctx = tls_server_ctx(&so, err, sizeof err);
    CHECK(sctx != NULL);
    CHECK_EQ(SSL_CTX_get_min_proto_version(sctx), TLS1_2_VERSION);
    SSL_CTX_free(sctx);

    CASE("an unreadable file is named with errno's reason");
    so.keyfile = "/nonexistent/server.key";
    CHECK(tls_server_ctx(&so, err, sizeof err) == NULL);
    CHECK(contains(err, "keyfile /nonexistent/server.key: cannot read: No such file"));

    CASE("a corrupt key is named with OpenSSL's reason");
    so.keyfile = P(GARBAGE);
    CHECK(tls_server_ctx(&so, err, sizeof err) == NULL);
    CHECK(contains(err, "garbage.key: not a usable PEM private key"));

    CASE("a key that does not match the certificate");
    so.keyfile = P(STRAY);
    CHECK(tls_server_ctx(&so, err, sizeof err) == NULL);
    CHECK(contains(err, "does not match certfile"));
    CHECK(contains(err, "stray.key"));

    CASE("certfile without keyfile");
    so.keyfile = NULL;
    CHECK(tls_server_ctx(&so, err, sizeof err) == NULL);
    CHECK(contains(err, "without keyfile"));

    CASE("require_certificate without a CA");
    tls_options_t rq = {.certfile = P(SRV), .keyfile = P(SRVKEY), .require_certificate = true};
    CHECK(tls_server_ctx(&rq, err, sizeof err) == NULL);
    CHECK(contains(err, "require_certificate needs cafile or capath"));

    CASE("tls_version");
    tls_options_t vo = {.certfile = P(SRV), .keyfile = P(SRVKEY), .tls_version = "tlsv1.1"};
    CHECK(tls_server_ctx(&vo, err, sizeof err) == NULL);
    CHECK(contains(err, "tls_version tlsv1.1"));
    vo.tls_version = "tlsv1.3";
    sctx = tls_server_ctx(&vo, err, sizeof err);
    CHECK(sctx && SSL_CTX_get_min_proto_version(sctx) == TLS1_3_VERSION);
    SSL_CTX_free(sctx);

    CASE("bad ciphers, bad crlfile");
    tls_options_t bo = {.certfile = P(SRV), .keyfile = P(SRVKEY), .ciphers = "NO-SUCH-CIPHER"};
    CHECK(tls_server_ctx(&bo, err, sizeof err) == NULL);
    CHECK(contains(err, "ciphers NO-SUCH-CIPHER"));
    bo.ciphers = NULL;
    bo.crlfile = P(CA); /* a certificate, not a CRL */
    CHECK(tls_server_ctx(&bo, err, sizeof err) == NULL);
    CHECK(contains(err, "crlfile"));

    CASE("PSK table");
    tls_psk_table_t *pt = tls_psk_load(P(PSK), err, sizeof err);
    CHECK(pt != NULL);
    unsigned char key[TLS_PSK_MAX_KEY];
    CHECK_EQ(tls_psk_table_lookup(pt, "bob", key, sizeof key), 4);
    CHECK(key[0] == 0x0a && key[1] == 0x0b && key[3] == 0x0d);
    CHECK_EQ(tls_psk_table_lookup(pt, "carol", key, sizeof key), 16);
    CHECK_EQ(tls_psk_table_lookup(pt, "mallory", key, sizeof key), 0);
    CHECK(tls_psk_load(P(PSKBAD), err, sizeof err) == NULL);
    CHECK(contains(err, "psk_bad.txt:2:"));
    CHECK(tls_psk_load("/nonexistent/psk", err, sizeof err) == NULL);
    CHECK(contains(err, "psk_file /nonexistent/psk: cannot read"));
    CHECK_EQ(tls_hex_decode("abc", key, sizeof key), 0);
    CHECK_EQ(tls_hex_decode("zz", key, sizeof key), 0);

    CASE("mutual TLS: hostname checked, client CN and subject seen by the server");
    tls_options_t ms = {.cafile = P(CA), .certfile = P(SRV), .keyfile = P(SRVKEY), .require_certificate = true};
    tls_options_t mc = {.cafile = P(CA), .certfile = P(CLI), .keyfile = P(CLIKEY), .alpn = "mqtt"};
    sctx = tls_server_ctx(&ms, err, sizeof err);
    SSL_CTX *cctx = tls_client_ctx(&mc, err, sizeof err);
    CHECK(sctx && cctx);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    CHECK(tls_client_set_host(c, "localhost", false, err, sizeof err));
    CHECK(handshake(c, s));
    char *cn = tls_peer_cn(s), *subj = tls_peer_subject(s);
    CHECK_STR(cn, "alice");
    CHECK_STR(subj, "CN=alice,O=tombo test");
    free(cn);
    free(subj);
    SSL_free(s);
    SSL_free(c);

    CASE("an IP literal is checked against the IP SAN");
    s = SSL_new(sctx), c = SSL_new(cctx);
    CHECK(tls_client_set_host(c, "127.0.0.1", false, err, sizeof err));
    CHECK(handshake(c, s));
    SSL_free(s);
    SSL_free(c);

    CASE("a wrong hostname fails the client, unless insecure");
    s = SSL_new(sctx), c = SSL_new(cctx);
    CHECK(tls_client_set_host(c, "other.example", false, err, sizeof err));
    CHECK(!handshake(c, s));
    CHECK_EQ(SSL_get_verify_result(c), X509_V_ERR_HOSTNAME_MISMATCH);
    SSL_free(s);
    SSL_free(c);
    ERR_clear_error();
    s = SSL_new(sctx), c = SSL_new(cctx);
    CHECK(tls_client_set_host(c, "other.example", true, err, sizeof err));
    CHECK(handshake(c, s));
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);

    CASE("require_certificate: a client without a certificate fails");
    tls_options_t nc = {.cafile = P(CA)};
    cctx = tls_client_ctx(&nc, err, sizeof err);
    s = SSL_new(sctx), c = SSL_new(cctx);
    tls_client_set_host(c, "localhost", false, err, sizeof err);
    CHECK(!handshake(c, s));
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    ERR_clear_error();

    CASE("PSK without certificates, TLS 1.2 and 1.3");
    const char *versions[] = {"tlsv1.2", "tlsv1.3"};
    for (int v = 0; v < 2; v++) {
        tls_options_t ps = {.psk_hint = "tombo", .psk_lookup = tls_psk_table_lookup, .psk_arg = pt};
        tls_options_t pc = {.psk_identity = "carol", .psk_key = "00112233445566778899aabbccddeeff",
                            .tls_version = versions[v]};
        sctx = tls_server_ctx(&ps, err, sizeof err);
        cctx = tls_client_ctx(&pc, err, sizeof err);
        CHECK(sctx && cctx);
        s = SSL_new(sctx), c = SSL_new(cctx);
        SSL_set_max_proto_version(c, v == 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
        CHECK(handshake(c, s));
        CHECK_EQ(SSL_version(s), v == 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
        CHECK_STR(tls_psk_identity(s), "carol");
        SSL_free(s);
        SSL_free(c);
        SSL_CTX_free(cctx);
        pc.psk_key = "ffff";  /* wrong key */
        cctx = tls_client_ctx(&pc, err, sizeof err);
        s = SSL_new(sctx), c = SSL_new(cctx);
        CHECK(!handshake(c, s));
        SSL_free(s);
        SSL_free(c);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        ERR_clear_error();
    }
    tls_psk_free(pt);

    CASE("client PSK needs identity and key");
    tls_options_t half = {.psk_identity = "x"};
    CHECK(tls_client_ctx(&half, err, sizeof err) == NULL);

    for (int i = 0; i < npath; i++)
        unlink(path_buf[i]);
    rmdir(dir);
    UNIT_DONE();
}
