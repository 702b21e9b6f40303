/* test_pwhash_scram.c -- SCRAM-SHA-256 (pwhash/scram.h): RFC 7677's example exchange byte for byte,
 * the client-first parser's refusals, the client-final checks, and the $SCRAM-SHA-256$ password
 * file entry (pwhash.h) both ways. */
#include <string.h>

#include "pwhash/pwhash.h"
#include "pwhash/scram.h"
#include "unit.h"

/* RFC 7677 section 3: user "user", password "pencil". */
#define CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define SFIRST "r=rOprNGfwEbeRWgbNEkqO" SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define CFINAL "c=biws,r=rOprNGfwEbeRWgbNEkqO" SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct scram_verifier rfc_verifier(const char *password)
{
    struct scram_verifier v;
    memset(&v, 0, sizeof(v));
    v.iterations = 4096;
    v.salt_len = (size_t)pwhash_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, v.salt, sizeof(v.salt));
    CHECK(scram_verifier_derive(&v, (const uint8_t *)password, strlen(password)) == 0);
    return v;
}

static int parse(scram_server_t *s, const char *msg, const char **why)
{
    return scram_server_parse_first(s, (const uint8_t *)msg, strlen(msg), why);
}

/* Parse CFIRST and answer with the RFC's nonce and v. */
static void start(scram_server_t *s, const struct scram_verifier *v, bool known)
{
    const char *why = NULL;
    CHECK(parse(s, CFIRST, &why) == 0);
    CHECK(scram_server_challenge(s, v, known, SNONCE, strlen(SNONCE)) == 0);
}

static void test_rfc7677_exchange(void)
{
    CASE("RFC 7677 example: keys, server-first, proof check, server-final");
    struct scram_verifier v = rfc_verifier("pencil");
    char b64[64];
    pwhash_b64_encode(v.stored_key, SCRAM_KEY_LEN, b64, sizeof(b64));
    CHECK_STR(b64, "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
    pwhash_b64_encode(v.server_key, SCRAM_KEY_LEN, b64, sizeof(b64));
    CHECK_STR(b64, "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
    CHECK(scram_verifier_check(&v, (const uint8_t *)"pencil", 6));
    CHECK(!scram_verifier_check(&v, (const uint8_t *)"pencil!", 7));

    scram_server_t s;
    start(&s, &v, true);
    CHECK_STR(s.user, "user");
    CHECK_EQ(s.first_len, strlen(SFIRST));
    CHECK(memcmp(s.first, SFIRST, s.first_len) == 0);
    char out[128];
    const char *why = NULL;
    int n = scram_server_finish(&s, (const uint8_t *)CFINAL, strlen(CFINAL), out, sizeof(out), &why);
    CHECK_EQ(n, strlen(SFINAL));
    CHECK_STR(out, SFINAL);
    scram_server_clear(&s);
}

static void test_wrong_proof(void)
{
    CASE("a wrong password, and a decoy verifier, fail at the proof");
    struct scram_verifier v = rfc_verifier("pencil!");
    scram_server_t s;
    char out[128];
    const char *why = NULL;
    start(&s, &v, true);
    CHECK(scram_server_finish(&s, (const uint8_t *)CFINAL, strlen(CFINAL), out, sizeof(out), &why) < 0);
    CHECK_STR(why, "invalid proof");

    /* The right keys but marked as a decoy: still refused. */
    v = rfc_verifier("pencil");
    start(&s, &v, false);
    CHECK(scram_server_finish(&s, (const uint8_t *)CFINAL, strlen(CFINAL), out, sizeof(out), &why) < 0);
    CHECK_STR(why, "invalid proof");
}

static void test_final_checks(void)
{
    CASE("client-final: channel-binding echo, nonce, proof attribute");
    struct scram_verifier v = rfc_verifier("pencil");
    static const char *bad[] = {
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO" SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* y,, */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",          /* nonce */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO" SNONCE,                                                   /* no p= */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO" SNONCE ",p=dHzbZapW",                                     /* short */
        "r=rOprNGfwEbeRWgbNEkqO" SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",       /* no c= */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        scram_server_t s;
        char out[128];
        const char *why = NULL;
        start(&s, &v, true);
        CHECK(scram_server_finish(&s, (const uint8_t *)bad[i], strlen(bad[i]), out, sizeof(out), &why) < 0);
        CHECK(why != NULL);
    }
}

static void test_first_parser(void)
{
    CASE("client-first: GS2 header, escapes, authzid, extensions");
    scram_server_t s;
    const char *why = NULL;
    CHECK(parse(&s, "y,,n=a=2Cb=3Dc,r=xyz", &why) == 0);
    CHECK_STR(s.user, "a,b=c");
    CHECK_EQ(s.gs2_len, 3);
    CHECK(parse(&s, "n,a=bob,n=bob,r=xyz,ext=1", &why) == 0);
    CHECK_STR(s.user, "bob");
    CHECK_EQ(s.gs2_len, 8);
    CHECK(parse(&s, "p=tls-unique,,n=bob,r=xyz", &why) < 0);
    CHECK(strstr(why, "channel binding") != NULL);
    static const char *bad[] = {"x,,n=bob,r=xyz", "n,n=bob,r=xyz", "n,a=eve,n=bob,r=xyz", "n,,m=x,n=bob,r=xyz",
                                "n,,n=bob", "n,,n=,r=xyz", "n,,n=b=2Xob,r=xyz", "n,,n=bob=,r=xyz",
                                "n,,r=xyz,n=bob", "n,,n=bob,r=", "n,,n=bob,r=a b", "n", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CASE(bad[i]);
        CHECK(parse(&s, bad[i], &why) < 0);
    }
    CASE("client-first: a user name longer than SCRAM_MAX_USER");
    char longmsg[SCRAM_MAX_USER + 32] = "n,,n=";
    memset(longmsg + 5, 'u', SCRAM_MAX_USER + 1);
    strcpy(longmsg + 5 + SCRAM_MAX_USER + 1, ",r=x");
    CHECK(parse(&s, longmsg, &why) < 0);
}

static void test_pwfile_entry(void)
{
    CASE("$SCRAM-SHA-256$ entries: make, format, decode, verify");
    struct pwhash h, d;
    CHECK(pwhash_make(&h, PWHASH_SCRAM_SHA256, (const uint8_t *)"pencil", 6) == 0);
    char text[PWHASH_TEXT_MAX];
    int n = pwhash_format(&h, text, sizeof(text));
    CHECK(n > 0 && strncmp(text, "$SCRAM-SHA-256$4096$", 20) == 0);
    const char *why = NULL;
    CHECK(pwhash_decode(&d, text, &why) == 0);
    CHECK_EQ(d.type, PWHASH_SCRAM_SHA256);
    CHECK(pwhash_verify(&d, (const uint8_t *)"pencil", 6));
    CHECK(!pwhash_verify(&d, (const uint8_t *)"pencik", 6));
    struct scram_verifier v;
    CHECK(pwhash_scram_verifier(&d, &v) == 0);
    CHECK(scram_verifier_check(&v, (const uint8_t *)"pencil", 6));

    /* The RFC's verifier written by hand decodes to the RFC's keys. */
    CHECK(pwhash_decode(&d,
                        "$SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
                        "$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
                        &why) == 0);
    CHECK(pwhash_verify(&d, (const uint8_t *)"pencil", 6));
    static const char *bad[] = {
        "$SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "$SCRAM-SHA-256$0$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$wfPL",
        "$SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "$SCRAM-SHA-1$4096$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d$wfPL",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CASE(bad[i]);
        CHECK(pwhash_decode(&d, bad[i], &why) < 0);
    }
    CASE("$7$ is not a SCRAM verifier");
    CHECK(pwhash_make(&h, PWHASH_SHA512_PBKDF2, (const uint8_t *)"x", 1) == 0);
    CHECK(pwhash_scram_verifier(&h, &v) < 0);
}

static void test_client_side(void)
{
    CASE("client side: RFC 7677's client-first and client-final, the server-final verified");
    scram_client_t cl;
    char out[256];
    CHECK_EQ(scram_client_first(&cl, "user", "rOprNGfwEbeRWgbNEkqO", out, sizeof(out)), strlen(CFIRST));
    CHECK_STR(out, CFIRST);
    const char *why = NULL;
    CHECK_EQ(scram_client_final(&cl, (const uint8_t *)SFIRST, strlen(SFIRST), (const uint8_t *)"pencil", 6, out,
                                sizeof(out), &why),
             strlen(CFINAL));
    CHECK_STR(out, CFINAL);
    CHECK(scram_client_verify(&cl, (const uint8_t *)SFINAL, strlen(SFINAL)));
    CHECK(!scram_client_verify(&cl, (const uint8_t *)"v=AAAA", 6));
    CHECK(scram_client_final(&cl, (const uint8_t *)"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 40,
                             (const uint8_t *)"pencil", 6, out, sizeof(out), &why) < 0);
    CHECK(scram_client_first(&cl, "a,b=c", NULL, out, sizeof(out)) > 0);
    CHECK(strncmp(out, "n,,n=a=2Cb=3Dc,r=", 17) == 0);

    CASE("client and server sides together, random nonces");
    struct scram_verifier v = rfc_verifier("pencil");
    scram_server_t sv;
    int n = scram_client_first(&cl, "user", NULL, out, sizeof(out));
    CHECK(scram_server_parse_first(&sv, (const uint8_t *)out, (size_t)n, &why) == 0);
    char nonce[40];
    int nl = scram_nonce(nonce, sizeof(nonce));
    CHECK(scram_server_challenge(&sv, &v, true, nonce, (size_t)nl) == 0);
    n = scram_client_final(&cl, (const uint8_t *)sv.first, sv.first_len, (const uint8_t *)"pencil", 6, out,
                           sizeof(out), &why);
    CHECK(n > 0);
    char fin[128];
    int fn = scram_server_finish(&sv, (const uint8_t *)out, (size_t)n, fin, sizeof(fin), &why);
    CHECK(fn > 0 && scram_client_verify(&cl, (const uint8_t *)fin, (size_t)fn));
    scram_client_clear(&cl);
}

int main(void)
{
    test_client_side();
    test_rfc7677_exchange();
    test_wrong_proof();
    test_final_checks();
    test_first_parser();
    test_pwfile_entry();
    UNIT_DONE();
}
