/* test_client_alias.c -- libtombo's outgoing topic aliases (options.send_topic_alias_max).
 * Usage: test_client_alias HOST PORT broker   against a real broker (tombo or mosquitto): a
 *            publisher with aliases and a plain subscriber; every message must arrive on its own
 *            topic, the debug log must show aliases sent without topics, never above the broker's
 *            Topic Alias Maximum, and starting afresh after a reconnect.
 *        test_client_alias HOST PORT fake     against tests/client/test_alias.py's recording
 *            broker: publishes a script (offline queue, a burst, then more after the reconnect the
 *            fake broker forces) and exits when every message is acknowledged; the Python side
 *            checks the bytes.
 * Run by tests/client/test_alias.py. Both clients are driven by tombo_loop from this thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tombo/client.h"

#include "check.h"

static int connects, subacks, acked, received, bad_topic;
static int aliased_with_topic, aliased_without_topic, unaliased, max_alias_seen;
static int first_after_connect_ok = 1, first_after_connect_pending;

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    CHECK(rc == 0);
    connects++;
    first_after_connect_pending = 1;
}

static void on_suback(tombo_client_t *c, void *u, int mid, int n, const uint8_t *codes, const tombo_props_t *p)
{
    subacks++;
}

static void on_publish(tombo_client_t *c, void *u, int mid, int reason, const tombo_props_t *p)
{
    CHECK(reason < 0x80);
    acked++;
}

/* Payloads are "N topic": the topic the message was published to. */
static void on_message(tombo_client_t *c, void *u, const tombo_message_t *m)
{
    const char *sp = strchr(m->payload, ' ');
    if (!sp || strcmp(sp + 1, m->topic) != 0) {
        fprintf(stderr, "message '%s' arrived on topic '%s'\n", (const char *)m->payload, m->topic);
        bad_topic++;
    }
    received++;
}

/* The publisher's debug log says which PUBLISH carried an alias (and whether its topic too). */
static void on_log(tombo_client_t *c, void *u, int level, const char *line)
{
    if (!strstr(line, "sending PUBLISH"))
        return;
    const char *a = strstr(line, "alias ");
    if (!a) {
        unaliased++;
        return;
    }
    int n = atoi(a + 6);
    if (n > max_alias_seen)
        max_alias_seen = n;
    bool with_topic = strstr(line, "with topic") != NULL;
    if (with_topic)
        aliased_with_topic++;
    else
        aliased_without_topic++;
    if (first_after_connect_pending) {
        first_after_connect_pending = 0;
        if (!with_topic)
            first_after_connect_ok = 0; /* the first PUBLISH of a connection cannot use a bare alias */
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Run the loops until *counter >= want (bounded). */
static void run_until(tombo_client_t *a, tombo_client_t *b, int *counter, int want, const char *what)
{
    uint64_t deadline = now_ms() + 20000;
    while (*counter < want && now_ms() < deadline) {
        tombo_loop(a, 5);
        if (b)
            tombo_loop(b, 5);
    }
    if (*counter < want) {
        fprintf(stderr, "timeout waiting for %s: %d of %d\n", what, *counter, want);
        exit(1);
    }
}

static tombo_client_t *publisher(const char *id, uint16_t aliases, bool reconnect)
{
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = TOMBO_MQTT_V5;
    o.send_topic_alias_max = aliases;
    o.max_inflight = 100;
    o.offline_queue = 100;
    if (reconnect) {
        o.clean_start = false;
        o.session_expiry = 60;
        o.auto_reconnect = true;
        o.reconnect_min_ms = 50;
        o.reconnect_max_ms = 100;
    }
    tombo_client_t *c = tombo_client_new(id, &o);
    CHECK(c);
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_publish(c, on_publish);
    tombo_set_on_log(c, on_log);
    tombo_set_log_level(c, TOMBO_LOG_DEBUG);
    return c;
}

static void publish(tombo_client_t *c, int n, const char *topic, int qos)
{
    char payload[128];
    snprintf(payload, sizeof(payload), "%d %s", n, topic);
    CHECK_OK(tombo_publish(c, NULL, topic, payload, strlen(payload), qos, false, NULL));
}

/* Against a real broker. The sequence revisits topics so that aliases are reused, and uses more
 * topics than the three aliases allowed so that the least recently used one is rebound. */
static void run_broker(const char *host, int port)
{
    static const char *const topics[] = {"al/zero", "al/one", "al/two", "al/three/with/a/longer/name", "al/four"};
    static const int seq[] = {0, 1, 0, 1, 0, 2, 2, 3, 0, 3, 4, 1, 1, 0, 4, 4, 2, 0, 3, 3, 1, 0, 0, 2};
    const int nseq = (int)(sizeof(seq) / sizeof(seq[0]));

    tombo_options_t so;
    tombo_options_init(&so);
    so.version = TOMBO_MQTT_V5;
    tombo_client_t *sub = tombo_client_new("alias-sub", &so);
    CHECK(sub);
    tombo_set_on_message(sub, on_message);
    tombo_set_on_subscribe(sub, on_suback);
    CHECK_OK(tombo_connect(sub, host, port, 30));
    CHECK_OK(tombo_subscribe(sub, NULL, "al/#", 2, NULL, NULL));
    run_until(sub, NULL, &subacks, 1, "SUBACK");

    tombo_client_t *pub = publisher("alias-pub", 3, false);
    /* A TOPIC_ALIAS of the user's own is refused while the library manages them. */
    tombo_props_t *pr = tombo_props_new();
    CHECK(pr);
    CHECK_OK(tombo_props_set_int(pr, TOMBO_PROP_TOPIC_ALIAS, 1));
    CHECK(tombo_publish(pub, NULL, "al/x", "x", 1, 0, false, pr) == TOMBO_ERR_INVAL);
    tombo_props_free(pr);

    int sent = 0;
    for (int round = 0; round < 2; round++) {
        CHECK_OK(tombo_connect(pub, host, port, 30));
        run_until(pub, sub, &connects, round + 1, "CONNACK");
        for (int i = 0; i < nseq; i++)
            publish(pub, sent++, topics[seq[i]], i % 3);
        run_until(pub, sub, &acked, sent, "acknowledgements");
        run_until(sub, pub, &received, sent, "deliveries");
        if (round == 0)
            CHECK_OK(tombo_disconnect(pub, 0, NULL));
    }
    printf("sent %d: %d with topic and alias, %d alias only, %d plain; highest alias %d\n", sent,
           aliased_with_topic, aliased_without_topic, unaliased, max_alias_seen);
    CHECK(bad_topic == 0);
    CHECK(received == sent);
    CHECK(unaliased == 0);
    CHECK(aliased_without_topic > 0);
    CHECK(max_alias_seen == 3);
    CHECK(first_after_connect_ok);
    /* Per connection: each of the 5 topics needs its topic at least once; rebinding adds more. */
    CHECK(aliased_with_topic >= 2 * 5);
    CHECK(aliased_with_topic + aliased_without_topic == sent);
    tombo_disconnect(pub, 0, NULL);
    tombo_client_destroy(pub);

    /* More aliases asked for than the broker grants (tombo and mosquitto: 10): never above it. */
    max_alias_seen = 0;
    connects = acked = received = 0;
    pub = publisher("alias-pub2", 1000, false);
    CHECK_OK(tombo_connect(pub, host, port, 30));
    run_until(pub, sub, &connects, 1, "CONNACK");
    char t[32];
    for (int i = 0; i < 30; i++) {
        snprintf(t, sizeof(t), "al/many/%d", i % 15);
        publish(pub, i, t, 1);
    }
    run_until(pub, sub, &acked, 30, "acknowledgements");
    run_until(sub, pub, &received, 30, "deliveries");
    printf("many topics: highest alias %d\n", max_alias_seen);
    CHECK(max_alias_seen == 10);
    CHECK(bad_topic == 0);
    tombo_disconnect(pub, 0, NULL);
    tombo_client_destroy(pub);
    tombo_disconnect(sub, 0, NULL);
    tombo_client_destroy(sub);
}

/* Against the recording broker, which grants 2 aliases, acknowledges the first 3 of the 8
 * messages of its first connection, then drops it; the next connection resumes the session. */
static void run_fake(const char *host, int port)
{
    tombo_client_t *pub = publisher("alias-fake", 5, true);
    /* Offline queue: published before any connection exists. */
    publish(pub, 0, "f/a", 1);
    publish(pub, 1, "f/b", 1);
    CHECK_OK(tombo_connect(pub, host, port, 30));
    run_until(pub, NULL, &connects, 1, "CONNACK");
    static const char *const burst[] = {"f/a", "f/c", "f/a", "f/b", "f/a", "f/c"};
    for (int i = 0; i < 6; i++)
        publish(pub, 2 + i, burst[i], 1);
    run_until(pub, NULL, &connects, 2, "the reconnect");
    static const char *const after[] = {"f/c", "f/c", "f/a", "f/d"};
    for (int i = 0; i < 4; i++)
        publish(pub, 8 + i, after[i], 1);
    run_until(pub, NULL, &acked, 12, "acknowledgements");
    printf("fake: %d with topic and alias, %d alias only, %d plain\n", aliased_with_topic, aliased_without_topic,
           unaliased);
    tombo_disconnect(pub, 0, NULL);
    tombo_client_destroy(pub);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT broker|fake\n", argv[0]);
        return 2;
    }
    if (!strcmp(argv[3], "broker"))
        run_broker(argv[1], atoi(argv[2]));
    else
        run_fake(argv[1], atoi(argv[2]));
    printf("OK\n");
    return 0;
}
