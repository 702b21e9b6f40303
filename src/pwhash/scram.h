/* scram.h -- SCRAM-SHA-256 (RFC 5802, RFC 7677): the keys, and the server side of the exchange
 * that MQTT 5 enhanced authentication carries in Authentication Data (method "SCRAM-SHA-256", as
 * EMQX offers it).
 *
 *   client-first  "n,," "n=USER,r=CNONCE"                       (CONNECT or AUTH 0x19)
 *   server-first  "r=CNONCE SNONCE,s=SALT,i=ITERATIONS"         (AUTH 0x18)
 *   client-final  "c=biws,r=CNONCE SNONCE,p=PROOF"              (AUTH 0x18)
 *   server-final  "v=SERVER-SIGNATURE"                          (CONNACK 0x00 or AUTH 0x00)
 *
 * The server keeps only StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
 * HMAC(SaltedPassword, "Server Key") (struct scram_verifier): it does no key stretching during the
 * exchange (the client runs PBKDF2), a few HMACs in all. Channel binding (SCRAM-SHA-256-PLUS) is
 * not offered: a "p=" GS2 flag is refused; "y" and "n" are taken. User names are compared byte
 * for byte after undoing the =2C / =3D escapes; SASLprep is not applied to names or passwords
 * (ASCII passwords behave as everywhere; others must be sent in the same normalisation as stored).
 *
 * Pure functions over caller-owned memory (OpenSSL 3), no globals: safe from any thread. Every
 * comparison of secret-derived bytes is constant-time (CRYPTO_memcmp). */
#ifndef TOMBO_PWHASH_SCRAM_H
#define TOMBO_PWHASH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_METHOD "SCRAM-SHA-256"
#define SCRAM_KEY_LEN 32          /* SHA-256 output */
#define SCRAM_ITERATIONS 4096     /* RFC 7677's minimum, what tombo-passwd writes */
#define SCRAM_SALT_LEN 16         /* what tombo-passwd writes */
#define SCRAM_MAX_SALT 64
#define SCRAM_MAX_USER 256        /* longest user name taken in a client-first message */
#define SCRAM_MAX_MSG 1024        /* longest SCRAM message taken or made */
#define SCRAM_NONCE_RAW 18        /* random bytes of the server's nonce (24 base64 characters) */

/* What the server stores for a user. */
struct scram_verifier {
    int iterations;
    size_t salt_len;
    uint8_t salt[SCRAM_MAX_SALT];
    uint8_t stored_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
};

/* SaltedPassword = PBKDF2-HMAC-SHA256(pw, salt, iterations), then StoredKey and ServerKey, into v
 * (whose salt, salt_len and iterations the caller has set). Slow by design: never on a worker.
 * Returns 0, or -1 if OpenSSL fails. */
int scram_verifier_derive(struct scram_verifier *v, const uint8_t *pw, size_t n);

/* Does pw derive to v's StoredKey? (A plain CONNECT password against a SCRAM entry.) */
bool scram_verifier_check(const struct scram_verifier *v, const uint8_t *pw, size_t n);

/* One server-side exchange in progress. Ownership: the caller's (the broker keeps one per
 * connection while an exchange runs, and clears it with scram_server_clear). */
typedef struct scram_server {
    char bare[SCRAM_MAX_MSG];   /* client-first-message-bare */
    size_t bare_len;
    char gs2[SCRAM_MAX_USER + 8]; /* the GS2 header, checked again in client-final's c= */
    size_t gs2_len;
    char nonce[SCRAM_MAX_MSG];  /* client nonce, then + server nonce */
    size_t nonce_len;
    char first[SCRAM_MAX_MSG];  /* server-first-message */
    size_t first_len;
    char user[SCRAM_MAX_USER + 1]; /* unescaped, NUL-terminated */
    size_t user_len;
    bool known;                 /* false: a decoy verifier, the exchange fails at the proof */
    struct scram_verifier v;
} scram_server_t;

/* Parse a client-first-message into s (zeroed first). On success s->user holds the user name and
 * 0 is returned; -1 with a static reason in *why for a malformed message, a bad GS2 header
 * (channel binding asked for, an authzid other than the user), a mandatory extension (m=), or a
 * name or message longer than this side takes. */
int scram_server_parse_first(scram_server_t *s, const uint8_t *msg, size_t n, const char **why);

/* Build the server-first-message with v (known: a real user; else a decoy whose salt and count
 * look like a user's) and a server nonce of snonce_len printable characters without ','.
 * Returns 0 with s->first / s->first_len set, or -1 (too long). */
int scram_server_challenge(scram_server_t *s, const struct scram_verifier *v, bool known, const char *snonce,
                           size_t snonce_len);

/* Fresh random server nonce (base64 of SCRAM_NONCE_RAW random bytes) into out (at least 33 bytes).
 * Returns its length, or -1 if RAND_bytes fails. */
int scram_nonce(char *out, size_t outlen);

/* Check a client-final-message: channel binding echo, nonce, proof. On success writes the
 * server-final-message ("v=...") into out and returns its length; -1 with *why otherwise
 * ("invalid proof" for a wrong password or an unknown user). */
int scram_server_finish(scram_server_t *s, const uint8_t *msg, size_t n, char *out, size_t outlen,
                        const char **why);

/* Forget everything (the keys, the messages). */
void scram_server_clear(scram_server_t *s);

/* The client side (libtombo). Ownership: the caller's; clear with scram_client_clear. */
typedef struct scram_client {
    char bare[SCRAM_MAX_MSG];   /* client-first-message-bare */
    size_t bare_len;
    size_t cnonce_len;          /* its nonce: bare + bare_len - cnonce_len */
    uint8_t server_key[SCRAM_KEY_LEN];
    uint8_t server_sig[SCRAM_KEY_LEN]; /* expected in the server-final message */
    bool have_sig;
} scram_client_t;

/* The client-first-message for user ("n,,n=USER,r=CNONCE", no authzid, no channel binding) into
 * out with a fresh random nonce (cnonce == NULL) or the given one (tests). Returns its length, or
 * -1 (a name too long, no random bytes, out too small). */
int scram_client_first(scram_client_t *s, const char *user, const char *cnonce, char *out, size_t outlen);

/* Answer a server-first-message: check it (our nonce extended, a salt, a count up to
 * PWHASH_MAX_ITERATIONS), derive the keys from the password (PBKDF2: slow by design) and write the
 * client-final-message into out. Returns its length, or -1 with *why. */
int scram_client_final(scram_client_t *s, const uint8_t *server_first, size_t n, const uint8_t *pw, size_t pwlen,
                       char *out, size_t outlen, const char **why);

/* Does the server-final-message ("v=...") prove the server knows our verifier? Constant-time. */
bool scram_client_verify(const scram_client_t *s, const uint8_t *server_final, size_t n);

void scram_client_clear(scram_client_t *s);

#endif
