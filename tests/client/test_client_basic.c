/* test_client_basic.c -- libtombo against a real broker: QoS 0/1/2 round trips, MQTT 5 properties
 * round trip, subscribe/unsubscribe (one and many), publish from several threads, and bad input
 * (invalid topics, QoS, payload size, unreachable broker) returning errors.
 * Usage: test_client_basic HOST PORT VERSION(4|5)    Run by tests/client/test_library.py. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tombo/client.h"

#include "check.h"

typedef struct state {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int connected, connack_rc, subacks, unsubacks, published, disconnected;
    int received;
    int per_qos[3];
    int props_ok;
    uint8_t sub_codes[8];
    int sub_count;
    char last[256];
    unsigned char seen[4096];
    int dups;
} state_t;

static int version;

static void st_init(state_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
}

/* *field, read under the lock: the loop threads write it. */
static int count_of(state_t *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int n = *field;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait (bounded) until *field >= want. */
static void wait_for(state_t *s, int *field, int want, int seconds, const char *what)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += seconds;
    pthread_mutex_lock(&s->mu);
    while (*field < want)
        if (pthread_cond_timedwait(&s->cond, &s->mu, &dl) != 0)
            break;
    int got = *field;
    pthread_mutex_unlock(&s->mu);
    if (got < want) {
        fprintf(stderr, "timeout waiting for %s: %d of %d\n", what, got, want);
        exit(1);
    }
}

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->connack_rc = rc;
    if (rc == 0)
        s->connected++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_disconnect(tombo_client_t *c, void *u, tombo_err_t err, int reason, const tombo_props_t *p)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->disconnected++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_subscribe(tombo_client_t *c, void *u, int mid, int n, const uint8_t *codes, const tombo_props_t *p)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->sub_count = n;
    memcpy(s->sub_codes, codes, n < 8 ? (size_t)n : 8);
    s->subacks++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_unsubscribe(tombo_client_t *c, void *u, int mid, int n, const uint8_t *codes, const tombo_props_t *p)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->unsubacks++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_publish(tombo_client_t *c, void *u, int mid, int reason, const tombo_props_t *p)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->published++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static bool prop_is(const tombo_props_t *p, int id, const char *want)
{
    const char *v;
    size_t n;
    return tombo_props_get_string(p, id, &v, &n) && n == strlen(want) && !memcmp(v, want, n);
}

static void on_message(tombo_client_t *c, void *u, const tombo_message_t *m)
{
    state_t *s = u;
    pthread_mutex_lock(&s->mu);
    s->received++;
    if (m->qos >= 0 && m->qos <= 2)
        s->per_qos[m->qos]++;
    snprintf(s->last, sizeof(s->last), "%s=%s", m->topic, (const char *)m->payload);
    /* "seq/N" payloads: count duplicates */
    if (!strncmp(m->topic, "lib/mt/", 7)) {
        int n = atoi((const char *)m->payload);
        if (n >= 0 && n < 4096) {
            if (s->seen[n])
                s->dups++;
            s->seen[n] = 1;
        }
    }
    if (!strcmp(m->topic, "lib/props")) {
        const char *k, *v;
        size_t kl, vl;
        uint32_t expiry = 0;
        bool ok = prop_is(m->props, TOMBO_PROP_CONTENT_TYPE, "text/plain") &&
                  prop_is(m->props, TOMBO_PROP_RESPONSE_TOPIC, "lib/reply") &&
                  prop_is(m->props, TOMBO_PROP_CORRELATION_DATA, "corr\x01") &&
                  tombo_props_get_int(m->props, TOMBO_PROP_MESSAGE_EXPIRY, &expiry) && expiry > 0 &&
                  expiry <= 300 && tombo_props_user_count(m->props) == 2 &&
                  tombo_props_get_user(m->props, 0, &k, &kl, &v, &vl) && kl == 2 && !memcmp(k, "k1", 2) &&
                  vl == 2 && !memcmp(v, "v1", 2) && tombo_props_get_user(m->props, 1, &k, &kl, &v, &vl) &&
                  kl == 2 && !memcmp(k, "k2", 2) && vl == 0;
        uint32_t sid;
        ok = ok && tombo_props_sub_id_count(m->props) == 1 && tombo_props_get_sub_id(m->props, 0, &sid) && sid == 42;
        /* In order: 7 properties (content type, response topic, correlation data, expiry, 2 user
         * properties, subscription id), each with a known id. */
        ok = ok && tombo_props_count(m->props) == 7 && tombo_props_id_at(m->props, 7) == 0;
        int users = 0;
        for (size_t i = 0; ok && i < 7; i++) {
            int id = tombo_props_id_at(m->props, i);
            users += id == TOMBO_PROP_USER_PROPERTY;
            ok = id == TOMBO_PROP_CONTENT_TYPE || id == TOMBO_PROP_RESPONSE_TOPIC || id == TOMBO_PROP_CORRELATION_DATA ||
                 id == TOMBO_PROP_MESSAGE_EXPIRY || id == TOMBO_PROP_USER_PROPERTY || id == TOMBO_PROP_SUBSCRIPTION_ID;
        }
        ok = ok && users == 2;
        if (ok)
            s->props_ok++;
        else
            fprintf(stderr, "properties did not round-trip\n");
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static tombo_client_t *make(const char *id, state_t *s, tombo_options_t *o)
{
    tombo_options_t def;
    if (!o) {
        tombo_options_init(&def);
        def.version = version;
        o = &def;
    }
    tombo_client_t *c = tombo_client_new(id, o);
    CHECK(c);
    tombo_set_user(c, s);
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_disconnect(c, on_disconnect);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_unsubscribe(c, on_unsubscribe);
    tombo_set_on_publish(c, on_publish);
    tombo_set_on_message(c, on_message);
    return c;
}

typedef struct thread_arg {
    tombo_client_t *c;
    int first, count;
} thread_arg_t;

static void *publisher_thread(void *arg)
{
    thread_arg_t *a = arg;
    for (int i = a->first; i < a->first + a->count; i++) {
        char topic[32], payload[16];
        snprintf(topic, sizeof(topic), "lib/mt/%d", i % 7);
        snprintf(payload, sizeof(payload), "%d", i);
        CHECK_OK(tombo_publish(a->c, NULL, topic, payload, strlen(payload), 1 + (i & 1), false, NULL));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT VERSION\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    version = atoi(argv[3]);
    char id_sub[32], id_pub[32];
    snprintf(id_sub, sizeof(id_sub), "lib-sub-%d", (int)getpid());
    snprintf(id_pub, sizeof(id_pub), "lib-pub-%d", (int)getpid());

    /* Error table and strerror. */
    CHECK(!strcmp(tombo_strerror(TOMBO_OK), "success"));
    CHECK(!strcmp(tombo_errname(TOMBO_ERR_NOMEM), "NOMEM"));
    CHECK(!strcmp(tombo_strerror(12345), "unknown error"));

    state_t ss, ps;
    st_init(&ss);
    st_init(&ps);
    tombo_client_t *sub = make(id_sub, &ss, NULL);
    tombo_client_t *pub = make(id_pub, &ps, NULL);

    /* Not connected yet: subscribe and publish fail cleanly. */
    CHECK(tombo_subscribe(sub, NULL, "a", 0, NULL, NULL) == TOMBO_ERR_NO_CONN);
    CHECK(tombo_publish(pub, NULL, "a", "x", 1, 0, false, NULL) == TOMBO_ERR_NO_CONN);
    CHECK(tombo_disconnect(pub, 0, NULL) == TOMBO_ERR_NO_CONN);

    CHECK_OK(tombo_connect(sub, host, port, 30));
    CHECK_OK(tombo_connect(pub, host, port, 30));
    CHECK(tombo_connect(pub, host, port, 30) == TOMBO_ERR_BUSY);
    CHECK_OK(tombo_loop_start(sub));
    CHECK(tombo_loop_start(sub) == TOMBO_ERR_BUSY);
    CHECK_OK(tombo_loop_start(pub));
    wait_for(&ss, &ss.connected, 1, 10, "sub CONNACK");
    wait_for(&ps, &ps.connected, 1, 10, "pub CONNACK");
    CHECK(tombo_is_connected(sub) && tombo_socket(sub) >= 0);

    /* Subscribe to several filters at once with v5 options, and props (subscription id). */
    tombo_props_t *sp = tombo_props_new();
    CHECK(sp);
    if (version == TOMBO_MQTT_V5)
        CHECK_OK(tombo_props_set_int(sp, TOMBO_PROP_SUBSCRIPTION_ID, 42));
    const char *filters[] = {"lib/q/#", "lib/props", "lib/mt/+"};
    tombo_sub_opts_t so[3] = {{.qos = 2}, {.qos = 1}, {.qos = 2}};
    int mid = 0;
    CHECK_OK(tombo_subscribe_many(sub, &mid, 3, filters, so, sp));
    CHECK(mid > 0);
    tombo_props_free(sp);
    wait_for(&ss, &ss.subacks, 1, 10, "SUBACK");
    CHECK(ss.sub_count == 3 && ss.sub_codes[0] == 2 && ss.sub_codes[1] == 1 && ss.sub_codes[2] == 2);

    /* QoS 0, 1, 2: 10 each, on_publish for every one. */
    for (int q = 0; q <= 2; q++)
        for (int i = 0; i < 10; i++) {
            char t[32], p[32];
            snprintf(t, sizeof(t), "lib/q/%d", q);
            snprintf(p, sizeof(p), "m%d", i);
            int m = -1;
            CHECK_OK(tombo_publish(pub, &m, t, p, strlen(p), q, false, NULL));
            CHECK(m > 0);
        }
    wait_for(&ss, &ss.received, 30, 10, "30 messages");
    wait_for(&ps, &ps.published, 30, 10, "30 on_publish");
    CHECK(ss.per_qos[0] == 10 && ss.per_qos[1] == 10 && ss.per_qos[2] == 10);

    /* Properties round trip (v5), including a subscription identifier set by the broker. */
    if (version == TOMBO_MQTT_V5) {
        tombo_props_t *pp = tombo_props_new();
        CHECK(pp);
        CHECK_OK(tombo_props_set_content_type(pp, "text/plain"));
        CHECK_OK(tombo_props_set_response_topic(pp, "lib/reply"));
        CHECK_OK(tombo_props_set_correlation_data(pp, "corr\x01", 5));
        CHECK_OK(tombo_props_set_message_expiry(pp, 300));
        CHECK_OK(tombo_props_add_user(pp, "k1", "v1"));
        CHECK_OK(tombo_props_add_user(pp, "k2", ""));
        CHECK(tombo_props_count(pp) == 6 && tombo_props_id_at(pp, 0) == TOMBO_PROP_MESSAGE_EXPIRY &&
              tombo_props_id_at(pp, 4) == TOMBO_PROP_USER_PROPERTY && tombo_props_id_at(pp, 6) == 0);
        CHECK(tombo_props_set_int(pp, TOMBO_PROP_CONTENT_TYPE, 1) == TOMBO_ERR_INVAL);
        CHECK(tombo_props_set_int(pp, TOMBO_PROP_PAYLOAD_FORMAT, 2) == TOMBO_ERR_INVAL);
        CHECK(tombo_props_set_string(pp, TOMBO_PROP_CONTENT_TYPE, "bad\xff") == TOMBO_ERR_UTF8_INVALID);
        CHECK_OK(tombo_publish(pub, NULL, "lib/props", "p", 1, 1, false, pp));
        tombo_props_free(pp);
        wait_for(&ss, &ss.props_ok, 1, 10, "properties message");
    }

    /* Publish from 4 threads at once, QoS 1 and 2: all arrive, QoS 2 never twice. */
    pthread_t th[4];
    thread_arg_t ta[4];
    int before = count_of(&ss, &ss.received);
    for (int i = 0; i < 4; i++) {
        ta[i] = (thread_arg_t){pub, i * 250, 250};
        CHECK(pthread_create(&th[i], NULL, publisher_thread, &ta[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    wait_for(&ss, &ss.received, before + 1000, 30, "1000 threaded messages");
    /* on_publish for each: the 30 above, the properties message (v5) and the 1000. */
    int pubs = 30 + (version == TOMBO_MQTT_V5) + 1000;
    wait_for(&ps, &ps.published, pubs, 30, "1000 threaded on_publish");
    CHECK(ss.dups == 0);
    for (int i = 0; i < 1000; i++)
        CHECK(ss.seen[i]);

    /* Bad input: errors, never a crash. */
    static const char big[16];
    CHECK(tombo_publish(pub, NULL, "a/#", "x", 1, 0, false, NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_publish(pub, NULL, "a/+/b", "x", 1, 0, false, NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_publish(pub, NULL, "", "x", 1, 0, false, NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_publish(pub, NULL, "bad\xc3", "x", 1, 0, false, NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_publish(pub, NULL, "a", "x", 1, 3, false, NULL) == TOMBO_ERR_QOS_INVALID);
    CHECK(tombo_publish(pub, NULL, "a", big, (size_t)268435456, 0, false, NULL) == TOMBO_ERR_PAYLOAD_SIZE);
    CHECK(tombo_publish(pub, NULL, NULL, "x", 1, 0, false, NULL) == TOMBO_ERR_INVAL);
    CHECK(tombo_subscribe(sub, NULL, "a/#/b", 0, NULL, NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_subscribe(sub, NULL, "a", 5, NULL, NULL) == TOMBO_ERR_QOS_INVALID);
    CHECK(tombo_unsubscribe(sub, NULL, "a+", NULL) == TOMBO_ERR_TOPIC_INVALID);
    CHECK(tombo_connect(NULL, host, port, 10) == TOMBO_ERR_INVAL);

    /* Unsubscribe: no more messages on those filters. */
    CHECK_OK(tombo_unsubscribe_many(sub, NULL, 3, filters, NULL));
    wait_for(&ss, &ss.unsubacks, 1, 10, "UNSUBACK");
    int now = count_of(&ss, &ss.received);
    /* The target is known before publishing: the loop thread may handle the PUBACK before
     * tombo_publish has even returned here. */
    CHECK_OK(tombo_publish(pub, NULL, "lib/q/0", "late", 4, 1, false, NULL));
    wait_for(&ps, &ps.published, pubs + 1, 10, "late publish");
    usleep(300 * 1000);
    CHECK(count_of(&ss, &ss.received) == now);
    CHECK(count_of(&ps, &ps.published) == pubs + 1); /* once per message, never twice */

    /* Clean disconnect: on_disconnect(TOMBO_OK), loop threads stop. */
    CHECK_OK(tombo_disconnect(pub, 0, NULL));
    CHECK_OK(tombo_disconnect(sub, 0, NULL));
    wait_for(&ps, &ps.disconnected, 1, 10, "pub on_disconnect");
    wait_for(&ss, &ss.disconnected, 1, 10, "sub on_disconnect");
    CHECK_OK(tombo_loop_stop(pub));
    CHECK_OK(tombo_loop_stop(sub));
    tombo_client_destroy(pub);
    tombo_client_destroy(sub);

    /* tombo_loop_forever returns after tombo_disconnect from a callback (the paho pattern). */
    {
        state_t s3;
        st_init(&s3);
        tombo_client_t *c = make(id_pub, &s3, NULL);
        CHECK_OK(tombo_connect(c, host, port, 10));
        CHECK_OK(tombo_publish(c, NULL, "lib/x", "1", 1, 1, false, NULL));
        tombo_set_on_publish(c, (tombo_on_publish_cb)(void *)NULL);
        /* on_connect publishes were queued before CONNACK; disconnect when it completes */
        while (tombo_pending(c) > 0) {
            tombo_err_t e = tombo_loop(c, 100);
            CHECK(e == TOMBO_OK);
        }
        CHECK_OK(tombo_disconnect(c, 0, NULL));
        CHECK(tombo_loop_forever(c) == TOMBO_OK);
        tombo_client_destroy(c);
    }

    /* Unreachable broker: a clear error. */
    {
        tombo_client_t *c = make("unreachable", &ss, NULL);
        CHECK(tombo_connect(c, "127.0.0.1", 1, 10) == TOMBO_ERR_ERRNO);
        CHECK(tombo_connect(c, "no-such-host.invalid", 1883, 10) == TOMBO_ERR_LOOKUP);
        CHECK(tombo_loop(c, 0) == TOMBO_ERR_NO_CONN);
        tombo_client_destroy(c);
    }
    /* Invalid options: NULL, never an abort. */
    {
        tombo_options_t o;
        tombo_options_init(&o);
        o.version = 9;
        CHECK(tombo_client_new("x", &o) == NULL);
        tombo_options_init(&o);
        o.will_topic = "w/#";
        CHECK(tombo_client_new("x", &o) == NULL);
        CHECK(tombo_client_new("bad\xff", NULL) == NULL);
    }
    printf("OK\n");
    return 0;
}
