/* fuzz_scram.c -- libFuzzer target for the SCRAM-SHA-256 messages (pwhash/scram.h) that an MQTT 5
 * client sends before it is authenticated: input is CLIENT-FIRST NUL CLIENT-FINAL NUL SERVER-MSG.
 * The server side parses the client-first message and, when it is taken, checks the client-final
 * against the RFC 7677 verifier (a forged proof must never pass); the client side parses the third
 * part as a server-first message (the iteration count is capped low so PBKDF2 stays fast). */
#include <stdlib.h>
#include <string.h>

#include "pwhash/pwhash.h"
#include "pwhash/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Part i of the input, copied into its own allocation (ASan sees reads past it). */
static uint8_t *part(const uint8_t *data, size_t size, int i, size_t *n)
{
    const uint8_t *p = data, *end = data + size;
    for (; i > 0 && p < end; i--) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        p = z ? z + 1 : end;
    }
    const uint8_t *z = memchr(p, 0, (size_t)(end - p));
    *n = (size_t)((z ? z : end) - p);
    uint8_t *out = malloc(*n ? *n : 1);
    if (!out)
        abort();
    memcpy(out, p, *n);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2, n3;
    uint8_t *first = part(data, size, 0, &n1), *final = part(data, size, 1, &n2), *server = part(data, size, 2, &n3);
    static struct scram_verifier v;
    if (!v.iterations) {
        v.iterations = 4096;
        v.salt_len = (size_t)pwhash_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, v.salt, sizeof(v.salt));
        if (scram_verifier_derive(&v, (const uint8_t *)"pencil", 6) != 0)
            abort();
    }
    scram_server_t s;
    const char *why;
    if (scram_server_parse_first(&s, first, n1, &why) == 0) {
        if (s.user_len == 0 || strlen(s.user) != s.user_len)
            abort();
        if (scram_server_challenge(&s, &v, true, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", 30) == 0) {
            char out[128];
            int r = scram_server_finish(&s, final, n2, out, sizeof(out), &why);
            /* Passing needs the RFC's own proof (the nonce is fixed here; base64 padding may be
             * left out, and the last digit's two unused bits may be anything: "Q" to "T" decode to
             * the same 32 bytes): anything else must fail. */
            static const char proof[] = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV";
            const uint8_t *at = memmem(final, n2, proof, sizeof(proof) - 1);
            size_t after = at ? (size_t)(final + n2 - at) - (sizeof(proof) - 1) : 0;
            if (r >= 0 && (!at || !after || !strchr("QRST", at[sizeof(proof) - 1]) || !at[sizeof(proof) - 1]))
                abort();
        }
    }
    scram_client_t c;
    char out[SCRAM_MAX_MSG];
    if (scram_client_first(&c, "user", "rOprNGfwEbeRWgbNEkqO", out, sizeof(out)) > 0) {
        /* Only low counts: the fuzzer should explore the parser, not PBKDF2. */
        const uint8_t *i = n3 ? memchr(server, 'i', n3) : NULL;
        if (!i || (size_t)(server + n3 - i) <= 6)
            (void)scram_client_final(&c, server, n3, (const uint8_t *)"pencil", 6, out, sizeof(out), &why);
        (void)scram_client_verify(&c, server, n3);
    }
    free(first);
    free(final);
    free(server);
    return 0;
}
