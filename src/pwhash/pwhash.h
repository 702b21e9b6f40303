/* pwhash.h -- password hashes in mosquitto_passwd's format, shared by the broker (auth.c) and
 * the tombo-passwd tool, so a file written by either tool works with either broker.
 *
 *   $7$ITERATIONS$SALT$HASH  PBKDF2-HMAC-SHA512 (Mosquitto 2's default: 101 iterations, 12-byte salt)
 *   $6$SALT$HASH             SHA-512 of password || salt (Mosquitto 1.6 and earlier)
 *   $SCRAM-SHA-256$ITERATIONS$SALT$STOREDKEY$SERVERKEY
 *                            a SCRAM-SHA-256 verifier (RFC 5802/7677, scram.h; tombo only, written
 *                            by `tombo-passwd -H scram-sha-256`): the user can log in with MQTT 5
 *                            enhanced authentication (AUTH, method SCRAM-SHA-256) and with a plain
 *                            CONNECT password, checked by PBKDF2-HMAC-SHA256 (4096 iterations).
 *                            Mosquitto cannot read such a line (it drops the user with a warning).
 *
 * SALT and HASH are standard base64 with '=' padding; HASH is always 64 bytes. Pure functions over
 * caller-owned memory (OpenSSL 3 EVP), no globals: safe to call from any thread. */
#ifndef TOMBO_PWHASH_H
#define TOMBO_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pwhash_type { PWHASH_SHA512 = 6, PWHASH_SHA512_PBKDF2 = 7, PWHASH_SCRAM_SHA256 = 256 };

#define PWHASH_PBKDF2_ITERATIONS 101 /* what mosquitto_passwd 2.0 writes */
#define PWHASH_SALT_LEN 12           /* what mosquitto_passwd 2.0 writes */
#define PWHASH_MAX_SALT 64           /* longest salt pwhash_decode() takes */
#define PWHASH_LEN 64                /* SHA-512 output; SCRAM: StoredKey then ServerKey */
#define PWHASH_SCRAM_PREFIX "$SCRAM-SHA-256$"
#define PWHASH_MAX_ITERATIONS 10000000 /* refuse absurd counts: one login would stall a worker */
/* Longest text pwhash_format() writes, with its NUL. */
#define PWHASH_TEXT_MAX (15 + 9 + 1 + 4 * ((PWHASH_MAX_SALT + 2) / 3) + 1 + 4 * ((PWHASH_LEN + 2) / 3) + 2)

struct pwhash {
    int type;       /* enum pwhash_type */
    int iterations; /* PBKDF2 only */
    size_t salt_len;
    uint8_t salt[PWHASH_MAX_SALT];
    uint8_t hash[PWHASH_LEN];
};

/* Parse "$7$...", "$6$..." or "$SCRAM-SHA-256$..." (no surrounding blanks). Returns 0, or -1 with a static message in
 * *why ("invalid password hash type", ...). */
int pwhash_decode(struct pwhash *h, const char *text, const char **why);

/* Hash a password with a fresh random salt of PWHASH_SALT_LEN bytes (and PWHASH_PBKDF2_ITERATIONS
 * for $7$; SCRAM: SCRAM_SALT_LEN and SCRAM_ITERATIONS). Returns 0, or -1 if OpenSSL fails. */
int pwhash_make(struct pwhash *h, int type, const uint8_t *pw, size_t n);

/* Write h as "$7$101$SALT$HASH" into out (PWHASH_TEXT_MAX bytes are always enough). Returns the
 * length, or -1 if it does not fit. */
int pwhash_format(const struct pwhash *h, char *out, size_t outlen);

/* Does pw hash to h? Compares in constant time (CRYPTO_memcmp). */
bool pwhash_verify(const struct pwhash *h, const uint8_t *pw, size_t n);

struct scram_verifier;
/* A PWHASH_SCRAM_SHA256 entry as a SCRAM verifier: 0, or -1 for another type. */
int pwhash_scram_verifier(const struct pwhash *h, struct scram_verifier *v);

/* Standard base64 with padding. encode returns the text length (out needs 4*ceil(n/3)+1 bytes) or
 * -1; decode takes padded or unpadded text and returns the byte count, or -1 on a bad character,
 * a bad length or more than outlen bytes. */
int pwhash_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
int pwhash_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

#endif
