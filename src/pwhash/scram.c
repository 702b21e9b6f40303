/* scram.c -- SCRAM-SHA-256 keys and the server side of the exchange (RFC 5802, RFC 7677) on
 * OpenSSL 3. See scram.h. */
#include "pwhash/scram.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pwhash/pwhash.h"

static int hmac(const uint8_t *key, size_t klen, const void *data, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int len = 0;
    if (klen > INT_MAX || !HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len) || len != SCRAM_KEY_LEN)
        return -1;
    return 0;
}

static int sha256(const uint8_t *data, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int len = 0;
    return EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1 && len == SCRAM_KEY_LEN ? 0 : -1;
}

int scram_verifier_derive(struct scram_verifier *v, const uint8_t *pw, size_t n)
{
    uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
    int rc = -1;
    if (n <= INT_MAX && v->salt_len <= INT_MAX && v->iterations >= 1 &&
        PKCS5_PBKDF2_HMAC(n ? (const char *)pw : "", (int)n, v->salt, (int)v->salt_len, v->iterations, EVP_sha256(),
                          SCRAM_KEY_LEN, salted) == 1 &&
        hmac(salted, sizeof(salted), "Client Key", 10, client_key) == 0 &&
        sha256(client_key, sizeof(client_key), v->stored_key) == 0 &&
        hmac(salted, sizeof(salted), "Server Key", 10, v->server_key) == 0)
        rc = 0;
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

bool scram_verifier_check(const struct scram_verifier *v, const uint8_t *pw, size_t n)
{
    struct scram_verifier got = *v;
    bool ok = scram_verifier_derive(&got, pw, n) == 0 &&
              CRYPTO_memcmp(got.stored_key, v->stored_key, SCRAM_KEY_LEN) == 0;
    OPENSSL_cleanse(&got, sizeof(got));
    return ok;
}

/* ---------------------------------------------------------------- messages */

/* The attribute "X=" at msg[*i..n): its value's start and length, *i moved past the following ','
 * (or to n). -1 if the attribute is not there. */
static int attr(const char *msg, size_t n, size_t *i, char name, const char **val, size_t *len)
{
    if (*i + 2 > n || msg[*i] != name || msg[*i + 1] != '=')
        return -1;
    size_t start = *i + 2, end = start;
    while (end < n && msg[end] != ',')
        end++;
    *val = msg + start;
    *len = end - start;
    *i = end < n ? end + 1 : n;
    return 0;
}

/* saslname (RFC 5802 section 5.1): "=2C" is ',', "=3D" is '='; any other '=' is an error. Into
 * out (cap bytes with the NUL). Returns the length or -1. */
static int unescape_name(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '=') {
            if (i + 2 >= n)
                return -1;
            if (in[i + 1] == '2' && in[i + 2] == 'C')
                ch = ',';
            else if (in[i + 1] == '3' && in[i + 2] == 'D')
                ch = '=';
            else
                return -1;
            i += 2;
        } else if (ch == '\0') {
            return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return (int)o;
}

/* A nonce: printable ASCII but ','. */
static bool nonce_ok(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    return true;
}

int scram_server_parse_first(scram_server_t *s, const uint8_t *msg8, size_t n, const char **why)
{
    memset(s, 0, sizeof(*s));
    const char *msg = (const char *)msg8;
    *why = "malformed client-first-message";
    if (n == 0 || n >= SCRAM_MAX_MSG) {
        if (n)
            *why = "client-first-message too long";
        return -1;
    }
    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    size_t i = 0;
    if (msg[0] == 'p') {
        *why = "channel binding is not supported (SCRAM-SHA-256-PLUS is not offered)";
        return -1;
    }
    if ((msg[0] != 'n' && msg[0] != 'y') || n < 3 || msg[1] != ',') {
        *why = "bad GS2 header";
        return -1;
    }
    i = 2;
    const char *authz = NULL;
    size_t authz_len = 0;
    if (msg[i] == 'a') {
        if (attr(msg, n, &i, 'a', &authz, &authz_len) != 0 || authz_len == 0 || i >= n || msg[i - 1] != ',') {
            *why = "bad GS2 header";
            return -1;
        }
    } else if (msg[i] == ',') {
        i++;
    } else {
        *why = "bad GS2 header";
        return -1;
    }
    if (i > sizeof(s->gs2)) {
        *why = "bad GS2 header";
        return -1;
    }
    memcpy(s->gs2, msg, i);
    s->gs2_len = i;
    /* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
    memcpy(s->bare, msg + i, n - i);
    s->bare_len = n - i;
    if (i < n && msg[i] == 'm') {
        *why = "mandatory extension not supported";
        return -1;
    }
    const char *user, *nonce;
    size_t ulen, nlen;
    if (attr(msg, n, &i, 'n', &user, &ulen) != 0 || ulen == 0 || attr(msg, n, &i, 'r', &nonce, &nlen) != 0 ||
        !nonce_ok(nonce, nlen))
        return -1;
    int r = unescape_name(user, ulen, s->user, sizeof(s->user));
    if (r <= 0) {
        *why = r < 0 && ulen > SCRAM_MAX_USER ? "user name too long" : "bad user name";
        return -1;
    }
    s->user_len = (size_t)r;
    if (authz) {
        char az[SCRAM_MAX_USER + 1];
        int ar = unescape_name(authz, authz_len, az, sizeof(az));
        if (ar != r || memcmp(az, s->user, s->user_len) != 0) {
            *why = "authorization identity differs from the user name";
            return -1;
        }
    }
    memcpy(s->nonce, nonce, nlen);
    s->nonce_len = nlen;
    return 0;
}

int scram_server_challenge(scram_server_t *s, const struct scram_verifier *v, bool known, const char *snonce,
                           size_t snonce_len)
{
    if (!nonce_ok(snonce, snonce_len) || s->nonce_len + snonce_len >= sizeof(s->nonce))
        return -1;
    memcpy(s->nonce + s->nonce_len, snonce, snonce_len);
    s->nonce_len += snonce_len;
    s->v = *v;
    s->known = known;
    char salt[4 * ((SCRAM_MAX_SALT + 2) / 3) + 1];
    if (pwhash_b64_encode(v->salt, v->salt_len, salt, sizeof(salt)) < 0)
        return -1;
    int r = snprintf(s->first, sizeof(s->first), "r=%.*s,s=%s,i=%d", (int)s->nonce_len, s->nonce, salt,
                     v->iterations);
    if (r < 0 || (size_t)r >= sizeof(s->first))
        return -1;
    s->first_len = (size_t)r;
    return 0;
}

int scram_nonce(char *out, size_t outlen)
{
    uint8_t raw[SCRAM_NONCE_RAW];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    return pwhash_b64_encode(raw, sizeof(raw), out, outlen); /* 18 bytes: no '=' padding */
}

int scram_server_finish(scram_server_t *s, const uint8_t *msg8, size_t n, char *out, size_t outlen,
                        const char **why)
{
    const char *msg = (const char *)msg8;
    *why = "malformed client-final-message";
    if (n == 0 || n >= SCRAM_MAX_MSG || s->first_len == 0)
        return -1;
    /* client-final-message-without-proof "," proof: the proof is the last attribute. */
    size_t p = n;
    while (p > 0 && msg[p - 1] != ',')
        p--;
    if (p == 0 || n - p < 3 || msg[p] != 'p' || msg[p + 1] != '=')
        return -1;
    size_t without_proof = p - 1;
    size_t i = 0;
    const char *cb, *nonce;
    size_t cblen, nlen;
    if (attr(msg, without_proof, &i, 'c', &cb, &cblen) != 0 || attr(msg, without_proof, &i, 'r', &nonce, &nlen) != 0)
        return -1;
    uint8_t cbind[sizeof(s->gs2)];
    int cbn = pwhash_b64_decode(cb, cblen, cbind, sizeof(cbind));
    if (cbn < 0 || (size_t)cbn != s->gs2_len || memcmp(cbind, s->gs2, s->gs2_len) != 0) {
        *why = "channel binding data differs from the GS2 header";
        return -1;
    }
    if (nlen != s->nonce_len || memcmp(nonce, s->nonce, nlen) != 0) {
        *why = "nonce mismatch";
        return -1;
    }
    uint8_t proof[SCRAM_KEY_LEN + 3];
    if (pwhash_b64_decode(msg + p + 2, n - p - 2, proof, sizeof(proof)) != SCRAM_KEY_LEN)
        return -1;

    /* AuthMessage = client-first-message-bare "," server-first-message "," client-final-without-proof */
    char am[3 * SCRAM_MAX_MSG];
    size_t al = 0;
    memcpy(am + al, s->bare, s->bare_len), al += s->bare_len;
    am[al++] = ',';
    memcpy(am + al, s->first, s->first_len), al += s->first_len;
    am[al++] = ',';
    memcpy(am + al, msg, without_proof), al += without_proof;

    uint8_t sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
    int rc = -1;
    *why = "internal error";
    if (hmac(s->v.stored_key, SCRAM_KEY_LEN, am, al, sig) == 0) {
        for (int k = 0; k < SCRAM_KEY_LEN; k++)
            client_key[k] = proof[k] ^ sig[k];
        if (sha256(client_key, SCRAM_KEY_LEN, stored) == 0) {
            /* A decoy (unknown user) costs the same work and fails here like a wrong password. */
            bool ok = CRYPTO_memcmp(stored, s->v.stored_key, SCRAM_KEY_LEN) == 0 && s->known;
            *why = "invalid proof";
            char v64[4 * ((SCRAM_KEY_LEN + 2) / 3) + 1];
            if (ok && hmac(s->v.server_key, SCRAM_KEY_LEN, am, al, server_sig) == 0 &&
                pwhash_b64_encode(server_sig, SCRAM_KEY_LEN, v64, sizeof(v64)) > 0) {
                int r = snprintf(out, outlen, "v=%s", v64);
                if (r > 0 && (size_t)r < outlen)
                    rc = r;
                else
                    *why = "internal error";
            }
        }
    }
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(am, al);
    return rc;
}

void scram_server_clear(scram_server_t *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}

/* ---------------------------------------------------------------- the client side */

int scram_client_first(scram_client_t *s, const char *user, const char *cnonce, char *out, size_t outlen)
{
    memset(s, 0, sizeof(*s));
    char nonce[48];
    if (!cnonce) {
        if (scram_nonce(nonce, sizeof(nonce)) < 0)
            return -1;
        cnonce = nonce;
    }
    size_t o = 0, un = strlen(user);
    if (un == 0 || un > SCRAM_MAX_USER)
        return -1;
    char *b = s->bare;
    memcpy(b, "n=", 2), o = 2;
    for (size_t i = 0; i < un; i++) { /* saslname: ',' and '=' escaped */
        if (user[i] == ',')
            memcpy(b + o, "=2C", 3), o += 3;
        else if (user[i] == '=')
            memcpy(b + o, "=3D", 3), o += 3;
        else
            b[o++] = user[i];
    }
    s->cnonce_len = strlen(cnonce);
    if (!nonce_ok(cnonce, s->cnonce_len) || o + 3 + s->cnonce_len >= sizeof(s->bare))
        return -1;
    memcpy(b + o, ",r=", 3), o += 3;
    memcpy(b + o, cnonce, s->cnonce_len), o += s->cnonce_len;
    s->bare_len = o;
    if (o + 3 >= outlen)
        return -1;
    memcpy(out, "n,,", 3);
    memcpy(out + 3, b, o);
    out[o + 3] = '\0';
    return (int)(o + 3);
}

int scram_client_final(scram_client_t *s, const uint8_t *sf8, size_t n, const uint8_t *pw, size_t pwlen, char *out,
                       size_t outlen, const char **why)
{
    const char *sf = (const char *)sf8;
    *why = "malformed server-first-message";
    if (n == 0 || n >= SCRAM_MAX_MSG || s->bare_len == 0)
        return -1;
    size_t i = 0;
    const char *nonce, *salt, *iter;
    size_t nlen, slen, ilen;
    if (sf[0] == 'm' || attr(sf, n, &i, 'r', &nonce, &nlen) != 0 || attr(sf, n, &i, 's', &salt, &slen) != 0 ||
        attr(sf, n, &i, 'i', &iter, &ilen) != 0)
        return -1;
    const char *cnonce = s->bare + s->bare_len - s->cnonce_len;
    if (nlen <= s->cnonce_len || memcmp(nonce, cnonce, s->cnonce_len) != 0 || !nonce_ok(nonce, nlen)) {
        *why = "server nonce does not extend ours";
        return -1;
    }
    struct scram_verifier v;
    memset(&v, 0, sizeof(v));
    int sl = pwhash_b64_decode(salt, slen, v.salt, sizeof(v.salt));
    long it = 0;
    for (size_t k = 0; k < ilen && it <= PWHASH_MAX_ITERATIONS; k++)
        it = (iter[k] >= '0' && iter[k] <= '9') ? it * 10 + (iter[k] - '0') : PWHASH_MAX_ITERATIONS + 1L;
    if (sl < 1 || ilen == 0 || it < 1 || it > PWHASH_MAX_ITERATIONS) {
        *why = "bad salt or iteration count";
        return -1;
    }
    v.salt_len = (size_t)sl;
    v.iterations = (int)it;
    /* ClientKey is needed too: derive SaltedPassword once. */
    uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
    char am[3 * SCRAM_MAX_MSG];
    int rc = -1;
    *why = "internal error";
    int w = snprintf(out, outlen, "c=biws,r=%.*s", (int)nlen, nonce); /* biws: base64("n,,") */
    if (w < 0 || (size_t)w >= outlen)
        goto done;
    size_t al = 0;
    memcpy(am, s->bare, s->bare_len), al = s->bare_len;
    am[al++] = ',';
    memcpy(am + al, sf, n), al += n;
    am[al++] = ',';
    memcpy(am + al, out, (size_t)w), al += (size_t)w;
    if (PKCS5_PBKDF2_HMAC(pwlen ? (const char *)pw : "", (int)pwlen, v.salt, (int)v.salt_len, v.iterations,
                          EVP_sha256(), SCRAM_KEY_LEN, salted) != 1 ||
        hmac(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) != 0 ||
        sha256(client_key, SCRAM_KEY_LEN, stored) != 0 || hmac(stored, SCRAM_KEY_LEN, am, al, sig) != 0 ||
        hmac(salted, SCRAM_KEY_LEN, "Server Key", 10, s->server_key) != 0 ||
        hmac(s->server_key, SCRAM_KEY_LEN, am, al, s->server_sig) != 0)
        goto done;
    uint8_t proof[SCRAM_KEY_LEN];
    for (int k = 0; k < SCRAM_KEY_LEN; k++)
        proof[k] = client_key[k] ^ sig[k];
    char p64[4 * ((SCRAM_KEY_LEN + 2) / 3) + 1];
    pwhash_b64_encode(proof, SCRAM_KEY_LEN, p64, sizeof(p64));
    int w2 = snprintf(out + w, outlen - (size_t)w, ",p=%s", p64);
    if (w2 < 0 || (size_t)(w + w2) >= outlen)
        goto done;
    s->have_sig = true;
    rc = w + w2;
done:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(&v, sizeof(v));
    return rc;
}

bool scram_client_verify(const scram_client_t *s, const uint8_t *sf, size_t n)
{
    uint8_t got[SCRAM_KEY_LEN + 3];
    return s->have_sig && n > 2 && sf[0] == 'v' && sf[1] == '=' &&
           pwhash_b64_decode((const char *)sf + 2, n - 2, got, sizeof(got)) == SCRAM_KEY_LEN &&
           CRYPTO_memcmp(got, s->server_sig, SCRAM_KEY_LEN) == 0;
}

void scram_client_clear(scram_client_t *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}
