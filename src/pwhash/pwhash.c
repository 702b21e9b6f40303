/* pwhash.c -- mosquitto_passwd's password hashes ($6$ SHA-512, $7$ PBKDF2-HMAC-SHA512) on
 * OpenSSL 3's EVP API: parse, make, format, verify. See pwhash.h. */
#include "pwhash/pwhash.h"
#include "pwhash/scram.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int pwhash_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t need = 4 * ((n + 2) / 3);
    if (need + 1 > outlen || need > INT_MAX)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int pwhash_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    /* Padding: at most two '=' at the end, and then the length must be a multiple of 4. */
    size_t pad = 0;
    while (pad < 2 && n > 0 && in[n - 1] == '=')
        n--, pad++;
    if (pad && (n + pad) % 4 != 0)
        return -1;
    if (n % 4 == 1)
        return -1; /* one leftover character cannot carry a byte */
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o > INT_MAX ? -1 : (int)o;
}

/* The part of text up to the next '$' (or the end): its length, and *next after the '$'. */
static size_t field(const char *text, const char **next)
{
    const char *d = strchr(text, '$');
    if (!d) {
        *next = NULL;
        return strlen(text);
    }
    *next = d + 1;
    return (size_t)(d - text);
}

int pwhash_decode(struct pwhash *h, const char *text, const char **why)
{
    memset(h, 0, sizeof(*h));
    const char *p, *next;
    size_t len;
    if (strncmp(text, PWHASH_SCRAM_PREFIX, strlen(PWHASH_SCRAM_PREFIX)) == 0) {
        h->type = PWHASH_SCRAM_SHA256;
        p = text + strlen(PWHASH_SCRAM_PREFIX);
    } else if (text[0] != '$' || (text[1] != '6' && text[1] != '7') || text[2] != '$') {
        *why = "invalid password hash type";
        return -1;
    } else {
        h->type = text[1] - '0';
        p = text + 3;
    }
    if (h->type != PWHASH_SHA512) {
        len = field(p, &next);
        long it = 0;
        for (size_t i = 0; i < len; i++) {
            if (p[i] < '0' || p[i] > '9' || it > PWHASH_MAX_ITERATIONS) {
                it = -1;
                break;
            }
            it = it * 10 + (p[i] - '0');
        }
        if (len == 0 || it < 1 || it > PWHASH_MAX_ITERATIONS || !next) {
            *why = "invalid hash iterations";
            return -1;
        }
        h->iterations = (int)it;
        p = next;
    }
    len = field(p, &next);
    int r = pwhash_b64_decode(p, len, h->salt, sizeof(h->salt));
    if (r < 1 || !next) {
        *why = "unable to decode password salt";
        return -1;
    }
    h->salt_len = (size_t)r;
    p = next;
    len = field(p, &next);
    uint8_t hash[PWHASH_LEN + 3];
    r = pwhash_b64_decode(p, len, hash, sizeof(hash));
    if (h->type == PWHASH_SCRAM_SHA256) {
        /* StoredKey $ ServerKey, 32 bytes each */
        if (r != SCRAM_KEY_LEN || !next) {
            *why = "unable to decode SCRAM StoredKey";
            return -1;
        }
        memcpy(h->hash, hash, SCRAM_KEY_LEN);
        p = next;
        len = field(p, &next);
        r = pwhash_b64_decode(p, len, hash, sizeof(hash));
        if (next || r != SCRAM_KEY_LEN) {
            *why = "unable to decode SCRAM ServerKey";
            return -1;
        }
        memcpy(h->hash + SCRAM_KEY_LEN, hash, SCRAM_KEY_LEN);
        return 0;
    }
    if (next || r != PWHASH_LEN) {
        *why = "unable to decode password hash";
        return -1;
    }
    memcpy(h->hash, hash, PWHASH_LEN);
    return 0;
}

int pwhash_scram_verifier(const struct pwhash *h, struct scram_verifier *v)
{
    if (h->type != PWHASH_SCRAM_SHA256 || h->salt_len > SCRAM_MAX_SALT)
        return -1;
    v->iterations = h->iterations;
    v->salt_len = h->salt_len;
    memcpy(v->salt, h->salt, h->salt_len);
    memcpy(v->stored_key, h->hash, SCRAM_KEY_LEN);
    memcpy(v->server_key, h->hash + SCRAM_KEY_LEN, SCRAM_KEY_LEN);
    return 0;
}

/* The hash of pw under h's type, salt and iterations, into out[PWHASH_LEN]. */
static int compute(const struct pwhash *h, const uint8_t *pw, size_t n, uint8_t *out)
{
    if (h->type == PWHASH_SCRAM_SHA256) {
        struct scram_verifier v;
        if (pwhash_scram_verifier(h, &v) != 0 || scram_verifier_derive(&v, pw, n) != 0)
            return -1;
        memcpy(out, v.stored_key, SCRAM_KEY_LEN);
        memcpy(out + SCRAM_KEY_LEN, v.server_key, SCRAM_KEY_LEN);
        OPENSSL_cleanse(&v, sizeof(v));
        return 0;
    }
    if (h->type == PWHASH_SHA512_PBKDF2) {
        if (n > INT_MAX || h->salt_len > INT_MAX)
            return -1;
        /* An empty password is passed as "" rather than a NULL pointer OpenSSL may reject. */
        return PKCS5_PBKDF2_HMAC(n ? (const char *)pw : "", (int)n, h->salt, (int)h->salt_len, h->iterations,
                                 EVP_sha512(), PWHASH_LEN, out) == 1
                   ? 0
                   : -1;
    }
    if (h->type != PWHASH_SHA512)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    unsigned int outlen = 0;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 && EVP_DigestUpdate(ctx, pw, n) == 1 &&
             EVP_DigestUpdate(ctx, h->salt, h->salt_len) == 1 && EVP_DigestFinal_ex(ctx, out, &outlen) == 1 &&
             outlen == PWHASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int pwhash_make(struct pwhash *h, int type, const uint8_t *pw, size_t n)
{
    memset(h, 0, sizeof(*h));
    if (type != PWHASH_SHA512 && type != PWHASH_SHA512_PBKDF2 && type != PWHASH_SCRAM_SHA256)
        return -1;
    h->type = type;
    h->iterations = type == PWHASH_SHA512_PBKDF2 ? PWHASH_PBKDF2_ITERATIONS
                    : type == PWHASH_SCRAM_SHA256 ? SCRAM_ITERATIONS
                                                  : 0;
    h->salt_len = type == PWHASH_SCRAM_SHA256 ? SCRAM_SALT_LEN : PWHASH_SALT_LEN;
    if (RAND_bytes(h->salt, (int)h->salt_len) != 1)
        return -1;
    return compute(h, pw, n, h->hash);
}

int pwhash_format(const struct pwhash *h, char *out, size_t outlen)
{
    char salt[4 * ((PWHASH_MAX_SALT + 2) / 3) + 1], hash[4 * ((PWHASH_LEN + 2) / 3) + 1];
    if (h->type == PWHASH_SCRAM_SHA256) {
        char sk[4 * ((SCRAM_KEY_LEN + 2) / 3) + 1];
        if (pwhash_b64_encode(h->salt, h->salt_len, salt, sizeof(salt)) < 0 ||
            pwhash_b64_encode(h->hash, SCRAM_KEY_LEN, hash, sizeof(hash)) < 0 ||
            pwhash_b64_encode(h->hash + SCRAM_KEY_LEN, SCRAM_KEY_LEN, sk, sizeof(sk)) < 0)
            return -1;
        int r = snprintf(out, outlen, PWHASH_SCRAM_PREFIX "%d$%s$%s$%s", h->iterations, salt, hash, sk);
        return r < 0 || (size_t)r >= outlen ? -1 : r;
    }
    if (pwhash_b64_encode(h->salt, h->salt_len, salt, sizeof(salt)) < 0 ||
        pwhash_b64_encode(h->hash, PWHASH_LEN, hash, sizeof(hash)) < 0)
        return -1;
    int r;
    if (h->type == PWHASH_SHA512_PBKDF2)
        r = snprintf(out, outlen, "$7$%d$%s$%s", h->iterations, salt, hash);
    else if (h->type == PWHASH_SHA512)
        r = snprintf(out, outlen, "$6$%s$%s", salt, hash);
    else
        return -1;
    return r < 0 || (size_t)r >= outlen ? -1 : r;
}

bool pwhash_verify(const struct pwhash *h, const uint8_t *pw, size_t n)
{
    uint8_t got[PWHASH_LEN];
    if (compute(h, pw, n, got) != 0)
        return false;
    bool ok = CRYPTO_memcmp(got, h->hash, PWHASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}
