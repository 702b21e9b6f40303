/* test_client_reconnect.c -- libtombo across a broker restart, driven by test_reconnect.py over
 * stdin/stdout: automatic reconnect with backoff, the offline queue flushed on reconnect, in-flight
 * QoS 1/2 completed after the restart (re-sent with DUP when the session was kept), re-subscribing
 * when it was not, and QoS 2 never delivered twice when the broker kept the sessions.
 * Usage: test_client_reconnect HOST PORT VERSION MODE(persist|clean)
 * Protocol: prints READY, BURST (broker may be stopped now), reads DOWN, prints QUEUED, reads UP,
 * prints DONE ... and exits 0. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tombo/client.h"

#include "check.h"

#define N 150

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int s_connects, s_subacks, p_connects, p_published, s_last_sp;
static int seen[N], received;

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    pthread_mutex_lock(&mu);
    if (rc == 0) {
        if (u) {
            s_connects++;
            s_last_sp = sp;
        } else {
            p_connects++;
        }
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void on_subscribe(tombo_client_t *c, void *u, int mid, int n, const uint8_t *codes, const tombo_props_t *p)
{
    pthread_mutex_lock(&mu);
    s_subacks++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void on_publish(tombo_client_t *c, void *u, int mid, int reason, const tombo_props_t *p)
{
    pthread_mutex_lock(&mu);
    p_published++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void on_message(tombo_client_t *c, void *u, const tombo_message_t *m)
{
    int n = atoi((const char *)m->payload);
    pthread_mutex_lock(&mu);
    if (n >= 0 && n < N) {
        seen[n]++;
        received++;
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

/* Wait up to `seconds` for cond_fn() to hold. */
static bool wait_until(bool (*fn)(void), int seconds)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += seconds;
    pthread_mutex_lock(&mu);
    bool ok;
    while (!(ok = fn()))
        if (pthread_cond_timedwait(&cond, &mu, &dl) != 0) {
            ok = fn();
            break;
        }
    pthread_mutex_unlock(&mu);
    return ok;
}

static int want_published, want_s_connects;
static bool published_enough(void) { return p_published >= want_published; }
static bool ready(void) { return s_connects >= 1 && p_connects >= 1 && s_subacks >= 1; }
static bool s_back(void) { return s_connects >= want_s_connects && (s_last_sp || s_subacks >= 2); }
static bool range_seen(int from, int to)
{
    for (int i = from; i < to; i++)
        if (!seen[i])
            return false;
    return true;
}
static bool first_half_seen(void) { return range_seen(0, 50); }
static bool persist_done(void) { return range_seen(0, N); }
static bool clean_done(void) { return range_seen(0, 50) && range_seen(100, N); }

static void expect_line(const char *want)
{
    char line[64];
    CHECK(fgets(line, sizeof(line), stdin));
    line[strcspn(line, "\n")] = 0;
    CHECK(!strcmp(line, want));
}

static tombo_client_t *make(const char *id, int version, bool is_sub)
{
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = version;
    o.clean_start = false;
    o.session_expiry = version == TOMBO_MQTT_V5 ? 600 : 0;
    o.auto_reconnect = true;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 400;
    o.offline_queue = is_sub ? 0 : 1000;
    tombo_client_t *c = tombo_client_new(id, &o);
    CHECK(c);
    tombo_set_user(c, is_sub ? (void *)1 : NULL);
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_publish(c, on_publish);
    tombo_set_on_message(c, on_message);
    return c;
}

static void publish_seq(tombo_client_t *p, int i)
{
    char payload[16];
    snprintf(payload, sizeof(payload), "%d", i);
    tombo_err_t e = tombo_publish(p, NULL, "rc/seq", payload, strlen(payload), 1 + (i & 1), false, NULL);
    if (e != TOMBO_OK) {
        fprintf(stderr, "publish %d: %s\n", i, tombo_strerror(e));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    const char *host = argv[1];
    int port = atoi(argv[2]), version = atoi(argv[3]);
    bool persist = !strcmp(argv[4], "persist");
    char ids[32], idp[32];
    snprintf(ids, sizeof(ids), "rc-sub-%d", (int)getpid());
    snprintf(idp, sizeof(idp), "rc-pub-%d", (int)getpid());
    setvbuf(stdout, NULL, _IOLBF, 0);

    tombo_client_t *s = make(ids, version, true), *p = make(idp, version, false);
    CHECK(tombo_connect(s, host, port, 5) == TOMBO_OK);
    CHECK(tombo_connect(p, host, port, 5) == TOMBO_OK);
    CHECK(tombo_loop_start(s) == TOMBO_OK);
    CHECK(tombo_loop_start(p) == TOMBO_OK);
    /* Subscribe once (not in on_connect): the library renews it if the session is lost. */
    while (!tombo_is_connected(s))
        usleep(10000);
    CHECK(tombo_subscribe(s, NULL, "rc/#", 2, NULL, NULL) == TOMBO_OK);
    CHECK(wait_until(ready, 10));
    printf("READY\n");

    for (int i = 0; i < 50; i++)
        publish_seq(p, i);
    want_published = 50;
    CHECK(wait_until(published_enough, 10));
    /* Acknowledged to the publisher is not yet delivered: a broker may PUBACK first and deliver
     * through the subscriber's in-flight window. Only delivered messages are expected to survive a
     * restart without persistence. */
    CHECK(wait_until(first_half_seen, 10));
    for (int i = 50; i < 100; i++) /* a burst still in flight when the broker goes down */
        publish_seq(p, i);
    printf("BURST\n");

    expect_line("DOWN");
    for (int i = 0; i < 500 && (tombo_is_connected(s) || tombo_is_connected(p)); i++)
        usleep(10000);
    CHECK(!tombo_is_connected(s) && !tombo_is_connected(p));
    /* Hold the publisher's loop so it reconnects only once the subscriber is back. */
    CHECK(tombo_loop_stop(p) == TOMBO_OK);
    for (int i = 100; i < N; i++) /* while disconnected: the offline queue */
        publish_seq(p, i);
    {
        /* The offline queue is bounded. */
        tombo_options_t o;
        tombo_options_init(&o);
        o.offline_queue = 2;
        tombo_client_t *q = tombo_client_new("q", &o);
        CHECK(q);
        CHECK(tombo_publish(q, NULL, "a", "1", 1, 1, false, NULL) == TOMBO_OK);
        CHECK(tombo_publish(q, NULL, "a", "2", 1, 0, false, NULL) == TOMBO_OK);
        CHECK(tombo_publish(q, NULL, "a", "3", 1, 1, false, NULL) == TOMBO_ERR_QUEUE_FULL);
        CHECK(tombo_pending(q) == 2);
        tombo_client_destroy(q);
    }
    printf("QUEUED\n");

    expect_line("UP");
    want_s_connects = 2;
    CHECK(wait_until(s_back, 20));
    CHECK(tombo_loop_start(p) == TOMBO_OK);
    bool ok = wait_until(persist ? persist_done : clean_done, 30);
    for (int i = 0; i < 300 && tombo_pending(p) > 0; i++)
        usleep(10000);
    usleep(300 * 1000); /* late duplicates, if any, would arrive now */
    pthread_mutex_lock(&mu);
    int dup2 = 0, dup1 = 0, missing = 0;
    for (int i = 0; i < N; i++) {
        if (seen[i] > 1)
            (i & 1) ? dup2++ : dup1++;
        if (!seen[i])
            missing++;
    }
    if (missing) {
        fprintf(stderr, "missing:");
        for (int i = 0; i < N; i++)
            if (!seen[i])
                fprintf(stderr, " %d", i);
        fprintf(stderr, "\n");
    }
    pthread_mutex_unlock(&mu);
    printf("DONE received=%d missing=%d dup_qos1=%d dup_qos2=%d session_present=%d pending=%zu\n", received, missing,
           dup1, dup2, s_last_sp, tombo_pending(p));
    CHECK(ok);
    CHECK(tombo_pending(p) == 0);
    if (persist)
        CHECK(dup2 == 0 && missing == 0);
    tombo_disconnect(s, 0, NULL);
    tombo_disconnect(p, 0, NULL);
    tombo_loop_stop(s);
    tombo_loop_stop(p);
    tombo_client_destroy(s);
    tombo_client_destroy(p);
    return 0;
}
