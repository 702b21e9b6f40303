/* test_broker_auth.c -- password_file and acl_file (Mosquitto 2.0 formats and rules): base64, both
 * hash formats (incl. lines written by the real mosquitto_passwd), password file parsing and the
 * CONNECT decision, ACL parsing errors and matching with user sections, deny, %c / %u patterns,
 * wildcards and '$' topics. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/auth.h"
#include "mqtt/mqtt.h"
#include "pwhash/pwhash.h"
#include "unit.h"

static char tmpdir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[2][512];
    static int which;
    char *p = path[which ^= 1];
    snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

#define U(s) (const uint8_t *)(s), strlen(s)

static uint8_t login(const auth_t *a, bool anon, const char *user, const char *pw)
{
    return auth_connect(a, anon, (const uint8_t *)(user ? user : ""), user ? strlen(user) : 0, user != NULL,
                        (const uint8_t *)(pw ? pw : ""), pw ? strlen(pw) : 0, pw != NULL);
}

static bool acl(const auth_t *a, const char *cid, const char *user, const char *topic, int access)
{
    return auth_acl(a, cid, user, (const uint8_t *)topic, strlen(topic), access);
}

static void test_base64(void)
{
    CASE("base64");
    char out[64];
    uint8_t back[64];
    CHECK_EQ(pwhash_b64_encode(U("f"), out, sizeof(out)), 4);
    CHECK(!strcmp(out, "Zg=="));
    CHECK_EQ(pwhash_b64_encode(U("foobar"), out, sizeof(out)), 8);
    CHECK(!strcmp(out, "Zm9vYmFy"));
    CHECK_EQ(pwhash_b64_encode(U("fooba"), out, sizeof(out)), 8);
    CHECK(!strcmp(out, "Zm9vYmE="));
    CHECK_EQ(pwhash_b64_decode("Zm9vYmE=", 8, back, sizeof(back)), 5);
    CHECK_MEM(back, 5, "fooba", 5);
    CHECK_EQ(pwhash_b64_decode("Zm9vYmE", 7, back, sizeof(back)), 5); /* unpadded */
    CHECK_EQ(pwhash_b64_decode("Zg==", 4, back, sizeof(back)), 1);
    CHECK_EQ(pwhash_b64_decode("Zg=", 3, back, sizeof(back)), -1);   /* bad padding */
    CHECK_EQ(pwhash_b64_decode("Z", 1, back, sizeof(back)), -1);
    CHECK_EQ(pwhash_b64_decode("Zm9v!", 5, back, sizeof(back)), -1); /* bad character */
    CHECK_EQ(pwhash_b64_decode("Zm9vYmFy", 8, back, 5), -1);         /* does not fit */
    CHECK_EQ(pwhash_b64_encode(U("foo"), out, 4), -1);               /* no room for the NUL */
}

/* Lines written by Debian's mosquitto_passwd 2.0.11 (password "secret" for alice, "p w" for bob,
 * "c1" for carol with -H sha512). */
static const char *const MOSQ_ALICE =
    "$7$101$LgBAoZzaHQl8T5ot$FgzPZsoMtf6cHiEMPgWufDAtwOXdLOIIecXJUg/ApKMPoAl53G9yGOle3FFK/R+YsJxTdeYiDnqbEjBb28HJgA==";
static const char *const MOSQ_BOB =
    "$7$101$Jkn79TtugQBOysfj$QvjjV5HhmCRcbRrVuTWg7KJcQ20bjICOnEpoQrvwYSPnwniM6vWtPUiaDWDqjNyjAhBOhzUNRIA05O225Kg56w==";
static const char *const MOSQ_CAROL =
    "$6$wPSdtDEyKXstVs3c$hFCXIieUUcsAVgHTAJUDrTYk5Z6Q3yQUqo8860o3YlVAKph6UikEcXb/qOMod+/o4lW0CGNKI07j04i9gCvHOg==";

static void test_hash_formats(void)
{
    struct pwhash h;
    const char *why = NULL;
    char text[PWHASH_TEXT_MAX];

    CASE("mosquitto_passwd $7$ line decodes and verifies");
    CHECK_EQ(pwhash_decode(&h, MOSQ_ALICE, &why), 0);
    CHECK_EQ(h.type, PWHASH_SHA512_PBKDF2);
    CHECK_EQ(h.iterations, 101);
    CHECK_EQ(h.salt_len, 12);
    CHECK(pwhash_verify(&h, U("secret")));
    CHECK(!pwhash_verify(&h, U("secreT")));
    CHECK(!pwhash_verify(&h, U("")));
    CHECK_EQ(pwhash_format(&h, text, sizeof(text)), (int)strlen(MOSQ_ALICE));
    CHECK(!strcmp(text, MOSQ_ALICE)); /* formatting gives back the same line */
    CHECK_EQ(pwhash_decode(&h, MOSQ_BOB, &why), 0);
    CHECK(pwhash_verify(&h, U("p w")));

    CASE("mosquitto_passwd $6$ line decodes and verifies");
    CHECK_EQ(pwhash_decode(&h, MOSQ_CAROL, &why), 0);
    CHECK_EQ(h.type, PWHASH_SHA512);
    CHECK(pwhash_verify(&h, U("c1")));
    CHECK(!pwhash_verify(&h, U("c2")));
    CHECK_EQ(pwhash_format(&h, text, sizeof(text)), (int)strlen(MOSQ_CAROL));
    CHECK(!strcmp(text, MOSQ_CAROL));

    CASE("made hashes verify, with a fresh salt each time");
    struct pwhash h2;
    for (int type = PWHASH_SHA512; type <= PWHASH_SHA512_PBKDF2; type++) {
        CHECK_EQ(pwhash_make(&h, type, U("pässwörd")), 0);
        CHECK_EQ(pwhash_make(&h2, type, U("pässwörd")), 0);
        CHECK(memcmp(h.salt, h2.salt, PWHASH_SALT_LEN) != 0);
        CHECK(pwhash_verify(&h, U("pässwörd")));
        CHECK(!pwhash_verify(&h, U("passwörd")));
        CHECK(pwhash_format(&h, text, sizeof(text)) > 0);
        CHECK_EQ(pwhash_decode(&h2, text, &why), 0);
        CHECK(pwhash_verify(&h2, U("pässwörd")));
        CHECK(text[1] == '0' + type);
    }
    CHECK_EQ(pwhash_make(&h, PWHASH_SHA512_PBKDF2, U("")), 0); /* empty password */
    CHECK(pwhash_verify(&h, U("")));
    CHECK_EQ(pwhash_make(&h, 5, U("x")), -1);
    CHECK_EQ(pwhash_format(&h2, text, 20), -1);

    CASE("bad hash texts");
    const char *bad[] = {
        "plain",
        "$5$abc$def",
        "$7$0$LgBAoZzaHQl8T5ot$FgzPZsoMtf6cHiEMPgWufDAtwOXdLOIIecXJUg/ApKMPoAl53G9yGOle3FFK/R+YsJxTdeYiDnqbEjBb28HJgA==",
        "$7$x1$LgBAoZzaHQl8T5ot$FgzPZsoMtf6cHiEMPgWufDAtwOXdLOIIecXJUg/ApKMPoAl53G9yGOle3FFK/R+YsJxTdeYiDnqbEjBb28HJgA==",
        "$7$99999999999$LgBAoZzaHQl8T5ot$FgzPZsoMtf6cHiEMPgWufDAtwOXdLOIIecXJUg/ApKMPoAl53G9yGOle3FFK/R+YsJxTdeYiDnqbEjBb28HJ",
        "$7$101$LgBAoZzaHQl8T5ot$FgzPZsoMtf6cHiEMPgWufDAtwOXdLOIIecXJUg", /* short hash */
        "$7$101$LgBAoZzaHQl8T5ot",                                      /* no hash */
        "$7$101",
        "$6$xx$yy",
        "$6$$hFCXIieUUcsAVgHTAJUDrTYk5Z6Q3yQUqo8860o3YlVAKph6UikEcXb/qOMod+/o4lW0CGNKI07j04i9gCvHOg==", /* no salt */
        "$6$wPSdtDEyKXstVs3c$hFCXIieUUcsAVgHTAJUDrTYk5Z6Q3yQUqo8860o3YlVAKph6UikEcXb/qOMod+/o4lW0CGNKI07j04i9gCvHOg==$x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        CHECK_EQ(pwhash_decode(&h, bad[i], &why), -1);
        CHECK(why != NULL);
    }
}

static void test_password_file(void)
{
    char err[512], text[2048];
    CASE("password file: comments, blanks, bad entries, duplicates");
    snprintf(text, sizeof(text),
             "# users\n"
             "alice:%s\n"
             "  bob  :  %s  \r\n"
             "carol:%s\n"
             "dave:plain\n"
             "nocolon\n"
             "empty:\n"
             ":%s\n"
             "alice:%s\n" /* duplicate: the first valid entry counts */
             "\n",
             MOSQ_ALICE, MOSQ_BOB, MOSQ_CAROL, MOSQ_ALICE, MOSQ_CAROL);
    auth_t *a = auth_load(write_file("pw", text), NULL, err, sizeof(err));
    CHECK(a != NULL);
    CHECK(auth_has_password_file(a));
    CHECK(!auth_has_acl(a));
    CHECK_EQ(login(a, false, "alice", "secret"), MQTT_RC_SUCCESS);
    CHECK_EQ(login(a, false, "alice", "c1"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, false, "bob", "p w"), MQTT_RC_SUCCESS);
    CHECK_EQ(login(a, false, "carol", "c1"), MQTT_RC_SUCCESS);
    CHECK_EQ(login(a, true, "dave", "plain"), MQTT_RC_NOT_AUTHORIZED); /* plain text is not a hash */
    CHECK_EQ(login(a, true, "empty", ""), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, false, "", "secret"), MQTT_RC_NOT_AUTHORIZED); /* "" is no user name */
    CHECK_EQ(login(a, true, "", "secret"), MQTT_RC_SUCCESS);
    CHECK_EQ(login(a, true, "alice", ""), MQTT_RC_NOT_AUTHORIZED);
    int nw = 0;
    while (auth_warning(a, nw))
        nw++;
    CHECK_EQ(nw, 3); /* dave, empty, the empty user name */
    CHECK(auth_warning(a, 0) && strstr(auth_warning(a, 0), "pw:5: invalid password hash type for user dave"));
    CHECK(auth_warning(a, -1) == NULL);

    CASE("CONNECT with a password file [Mosquitto 2.0.11]");
    CHECK_EQ(login(a, true, NULL, NULL), MQTT_RC_SUCCESS);        /* anonymous allowed */
    CHECK_EQ(login(a, false, NULL, NULL), MQTT_RC_NOT_AUTHORIZED); /* anonymous refused */
    CHECK_EQ(login(a, false, NULL, "secret"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, true, NULL, "x"), MQTT_RC_SUCCESS);         /* v5 password alone: anonymous */
    CHECK_EQ(login(a, true, "alice", NULL), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, true, "zed", "x"), MQTT_RC_NOT_AUTHORIZED);  /* unknown user, even with anonymous */
    CHECK_EQ(login(a, true, "alic", "secret"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, true, "alicex", "secret"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(auth_connect(a, false, (const uint8_t *)"alice", 5, true, (const uint8_t *)"secret", 5, true),
             MQTT_RC_NOT_AUTHORIZED); /* the given length counts, not a NUL */
    auth_free(a);

    CASE("CONNECT without a password file");
    CHECK_EQ(login(NULL, true, "anyone", "x"), MQTT_RC_SUCCESS);
    CHECK_EQ(login(NULL, true, NULL, NULL), MQTT_RC_SUCCESS);
    CHECK_EQ(login(NULL, false, "anyone", "x"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(NULL, false, NULL, NULL), MQTT_RC_NOT_AUTHORIZED);
    a = auth_load(NULL, NULL, err, sizeof(err));
    CHECK(a != NULL);
    CHECK(!auth_has_password_file(a));
    CHECK_EQ(login(a, false, "anyone", "x"), MQTT_RC_NOT_AUTHORIZED);
    CHECK_EQ(login(a, true, "anyone", "x"), MQTT_RC_SUCCESS);
    CHECK(acl(a, "c", NULL, "any/thing", AUTH_WRITE));
    auth_free(a);

    CASE("missing password file is an error");
    err[0] = '\0';
    a = auth_load("/nonexistent/pw", NULL, err, sizeof(err));
    CHECK(a == NULL);
    CHECK(strstr(err, "/nonexistent/pw: unable to open password file") != NULL);
    auth_free(NULL);
}

/* Write `text` as the ACL file and load it; NULL on error (message in err). */
static auth_t *load_acl(const char *text, char *err, size_t errlen)
{
    return auth_load(NULL, write_file("acl", text), err, errlen);
}

static void test_acl_errors(void)
{
    char err[512];
    struct {
        const char *text, *msg;
    } cases[] = {
        {"foo\n", "acl:1: invalid line"},
        {"topic read a\nuser\n", "acl:2: missing user name"},
        {"user   \n", "acl:1: missing user name"},
        {"topic\n", "acl:1: empty topic"},
        {"pattern   \n", "acl:1: empty topic"},
        {"topic foo bar\n", "acl:1: invalid topic access type \"foo\""},
        {"# c\n\ntopic read a/#/b\n", "acl:3: invalid ACL topic \"a/#/b\""},
        {"topic read a+\n", "acl:1: invalid ACL topic \"a+\""},
        {"pattern write %c/+x\n", "acl:1: invalid ACL topic"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CASE(cases[i].text);
        err[0] = '\0';
        auth_t *a = load_acl(cases[i].text, err, sizeof(err));
        CHECK(a == NULL);
        CHECK(strstr(err, cases[i].msg) != NULL);
        if (!strstr(err, cases[i].msg))
            fprintf(stderr, "  got: %s\n", err);
        auth_free(a);
    }
    CASE("missing ACL file");
    auth_t *a = auth_load(NULL, "/nonexistent/acl", err, sizeof(err));
    CHECK(a == NULL);
    CHECK(strstr(err, "/nonexistent/acl: unable to open ACL file") != NULL);

    CASE("accepted oddities: single word, spaces in topics, blanks, empty file");
    a = load_acl("topic read\n"     /* the topic is "read", readwrite */
                 "topic read  a b \n" /* topic "a b" */
                 "  # indented comment\n"
                 "\ttopic\twrite\tw\n"
                 "user  bob  \n"
                 "topic x\n",
                 err, sizeof(err));
    CHECK(a != NULL);
    if (!a)
        fprintf(stderr, "  got: %s\n", err);
    CHECK(acl(a, "c", NULL, "read", AUTH_WRITE));
    CHECK(acl(a, "c", NULL, "read", AUTH_READ));
    CHECK(acl(a, "c", NULL, "a b", AUTH_READ));
    CHECK(!acl(a, "c", NULL, "a b", AUTH_WRITE));
    CHECK(acl(a, "c", NULL, "w", AUTH_WRITE));
    CHECK(acl(a, "c", "bob", "x", AUTH_WRITE));
    CHECK(!acl(a, "c", "bob", "read", AUTH_READ));
    auth_free(a);
    a = load_acl("", err, sizeof(err)); /* an empty ACL file: everything denied */
    CHECK(a != NULL && auth_has_acl(a));
    CHECK(!acl(a, "c", NULL, "a", AUTH_READ));
    CHECK(!acl(a, "c", "u", "a", AUTH_WRITE));
    auth_free(a);
}

static void test_acl_rules(void)
{
    char err[512];
    CASE("ACL sections, access kinds, deny first");
    auth_t *a = load_acl("# anonymous clients\n"
                         "topic read anon/#\n"
                         "topic write anon/in\n"
                         "\n"
                         "user alice\n"
                         "topic readwrite a/#\n"
                         "topic deny a/secret\n"
                         "topic read ro/+\n"
                         "topic write wo\n"
                         "topic deny ro/hidden\n"
                         "topic $SYS/#\n"
                         "topic read #\n"
                         "user bob\n"
                         "topic b/#\n"
                         "user alice\n" /* a second section for alice adds to the first */
                         "topic more\n",
                         err, sizeof(err));
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "  got: %s\n", err);
        return;
    }
    /* anonymous */
    CHECK(acl(a, "c", NULL, "anon/x", AUTH_READ));
    CHECK(!acl(a, "c", NULL, "anon/x", AUTH_WRITE));
    CHECK(acl(a, "c", NULL, "anon/in", AUTH_WRITE));
    CHECK(acl(a, "c", NULL, "anon", AUTH_READ)); /* '#' matches the parent level */
    CHECK(!acl(a, "c", NULL, "a/b", AUTH_READ));
    /* alice */
    CHECK(acl(a, "c", "alice", "a/b", AUTH_WRITE));
    CHECK(acl(a, "c", "alice", "a/b/c", AUTH_READ));
    CHECK(!acl(a, "c", "alice", "a/secret", AUTH_WRITE)); /* deny wins over readwrite a/# */
    CHECK(!acl(a, "c", "alice", "a/secret", AUTH_READ));
    CHECK(acl(a, "c", "alice", "a/secret/x", AUTH_READ)); /* deny is exact */
    CHECK(acl(a, "c", "alice", "ro/x", AUTH_READ));
    CHECK(!acl(a, "c", "alice", "ro/x", AUTH_WRITE));
    CHECK(!acl(a, "c", "alice", "ro/x/y", AUTH_WRITE));
    CHECK(acl(a, "c", "alice", "wo", AUTH_WRITE));
    CHECK(acl(a, "c", "alice", "wo", AUTH_READ)); /* via `topic read #` */
    CHECK(!acl(a, "c", "alice", "ro/hidden", AUTH_READ)); /* deny before the later `read #` */
    CHECK(acl(a, "c", "alice", "more", AUTH_WRITE));
    CHECK(acl(a, "c", "alice", "anything/else", AUTH_READ));
    CHECK(!acl(a, "c", "alice", "anything/else", AUTH_WRITE));
    /* '$' topics: only a '$' ACL topic matches them */
    CHECK(acl(a, "c", "alice", "$SYS/broker/uptime", AUTH_READ));
    CHECK(!acl(a, "c", "bob", "$SYS/broker/uptime", AUTH_READ));
    CHECK(!acl(a, "c", NULL, "$SYS/broker/uptime", AUTH_READ));
    /* bob, and users without a section */
    CHECK(acl(a, "c", "bob", "b", AUTH_WRITE));
    CHECK(!acl(a, "c", "bob", "a/b", AUTH_READ));
    CHECK(!acl(a, "c", "carol", "anon/x", AUTH_READ)); /* the anonymous rules are not for users */
    CHECK(!acl(a, "c", "alic", "a/b", AUTH_READ));
    CHECK(!acl(a, "c", "", "a/b", AUTH_READ));
    CHECK(acl(a, "c", "", "anon/x", AUTH_READ)); /* "" is no user name: the anonymous rules */
    /* a subscription needs some readable topic (Mosquitto 2.0.11 grants all: see auth.h) */
    CHECK(!acl(a, "c", "bob", "a/#", AUTH_SUBSCRIBE));
    CHECK(acl(a, "c", "bob", "b/+", AUTH_SUBSCRIBE));
    CHECK(acl(a, "c", NULL, "#", AUTH_SUBSCRIBE));
    auth_free(a);

    CASE("patterns with %c and %u");
    a = load_acl("pattern read sensors/%c/#\n"
                 "pattern readwrite users/%u/%c\n"
                 "pattern write out/%u/#\n"
                 "pattern deny users/%u/locked\n"
                 "pattern x%cx/y\n" /* substitution inside a level */
                 "user admin\n"
                 "topic readwrite #\n",
                 err, sizeof(err));
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "  got: %s\n", err);
        return;
    }
    CHECK(acl(a, "dev1", NULL, "sensors/dev1/t", AUTH_READ));
    CHECK(acl(a, "dev1", NULL, "sensors/dev1", AUTH_READ));
    CHECK(!acl(a, "dev1", NULL, "sensors/dev1/t", AUTH_WRITE));
    CHECK(!acl(a, "dev1", NULL, "sensors/dev2/t", AUTH_READ));
    CHECK(!acl(a, "dev1", NULL, "users/%u/dev1", AUTH_READ)); /* %u patterns skipped without user */
    CHECK(!acl(a, "dev1", NULL, "out/%u/x", AUTH_WRITE));
    CHECK(acl(a, "dev1", "ann", "users/ann/dev1", AUTH_WRITE));
    CHECK(!acl(a, "dev1", "ann", "users/ann/dev2", AUTH_WRITE));
    CHECK(!acl(a, "dev1", "ann", "users/bob/dev1", AUTH_WRITE));
    CHECK(acl(a, "dev1", "ann", "out/ann/1/2", AUTH_WRITE));
    CHECK(!acl(a, "dev1", "ann", "out/ann/1/2", AUTH_READ));
    CHECK(!acl(a, "locked", "ann", "users/ann/locked", AUTH_READ)); /* deny pattern first */
    CHECK(acl(a, "q", NULL, "xqx/y", AUTH_WRITE));
    CHECK(!acl(a, "q", NULL, "xqqx/y", AUTH_WRITE));
    CHECK(acl(a, "a/b", NULL, "sensors/a/b/c", AUTH_READ)); /* a '/' in the id is substituted as is */
    /* '+' or '#' in a name would widen the pattern: no pattern access at all */
    CHECK(!acl(a, "+", NULL, "sensors/x/t", AUTH_READ));
    CHECK(!acl(a, "#", NULL, "sensors/#", AUTH_READ));
    CHECK(!acl(a, "dev1", "a+", "sensors/dev1/t", AUTH_READ));
    CHECK(!acl(a, "dev1", "#", "out/x", AUTH_WRITE));
    /* a user's own section wins before patterns are looked at */
    CHECK(acl(a, "+", "admin", "anything", AUTH_WRITE));
    CHECK(acl(a, "dev1", "admin", "sensors/dev1/t", AUTH_READ));
    /* long names go through a heap buffer */
    char longid[600];
    memset(longid, 'i', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    char topic[700];
    snprintf(topic, sizeof(topic), "sensors/%s/t", longid);
    CHECK(acl(a, longid, NULL, topic, AUTH_READ));
    CHECK(!acl(a, longid, NULL, "sensors/i/t", AUTH_READ));
    auth_free(a);

    CASE("no ACL file: everything allowed");
    CHECK(acl(NULL, "c", NULL, "$SYS/x", AUTH_READ));
    CHECK(acl(NULL, "c", "u", "a", AUTH_WRITE));
}

static void test_acl_subscribe(void)
{
    char err[512];
    CASE("AUTH_SUBSCRIBE: granted when some readable topic matches the filter");
    auth_t *a = load_acl("user alice\n"
                         "topic read a/+/temp\n"
                         "topic write w/#\n"
                         "topic deny d/#\n"
                         "topic read $SYS/broker/load/#\n"
                         "topic read x\n"
                         "pattern read dev/%c/#\n",
                         err, sizeof(err));
    CHECK(a != NULL);
    if (!a)
        return;
    static const struct { const char *filter; bool ok; } cases[] = {
        {"a/1/temp", true},   {"a/+/temp", true},  {"a/#", true},        {"+/+/temp", true},
        {"+/+/+", true},      {"#", true},         {"a/1/temp/x", false}, {"a/1", false},
        {"+/+", true} /* dev/alice-1: '#' matches its parent */,       {"b/#", false},      {"w/#", false},       {"w/x", false},
        {"d/#", false},       {"x", true},         {"x/#", true},        {"+", true},
        {"$SYS/#", true},     {"$SYS/broker/+", true} /* $SYS/broker/load */, {"$SYS/broker/+/1", true}, {"$SYS/x/#", false}, {"+/broker/load/1", false},
        {"dev/alice-1/t", true}, {"dev/other/t", false}, {"dev/+/t", true}, {"$share", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CASE(cases[i].filter);
        CHECK_EQ(acl(a, "alice-1", "alice", cases[i].filter, AUTH_SUBSCRIBE), cases[i].ok);
    }
    CASE("AUTH_SUBSCRIBE: a user with no rules of its own gets only the patterns; no ACL file grants all");
    CHECK(!acl(a, "c", "bob", "q/#", AUTH_SUBSCRIBE));
    CHECK(acl(a, "c", "bob", "#", AUTH_SUBSCRIBE)); /* the pattern dev/%c/# is everyone's */
    auth_free(a);
    CHECK(acl(NULL, "c", "bob", "#", AUTH_SUBSCRIBE));
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tombo-unit-auth-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_base64();
    test_hash_formats();
    test_password_file();
    test_acl_errors();
    test_acl_rules();
    test_acl_subscribe();
    unlink(write_file("pw", ""));
    unlink(write_file("acl", ""));
    rmdir(tmpdir);
    UNIT_DONE();
}
