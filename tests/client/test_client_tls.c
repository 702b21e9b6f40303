/* test_client_tls.c -- libtombo over TLS, driven by tests/client/test_tls.py:
 *
 *   test_client_tls HOST PORT [--cafile F] [--capath D] [--cert F] [--key F] [--insecure]
 *                   [--tls-version V] [--ciphers L] [--ciphers13 L] [--alpn L] [--psk HEX]
 *                   [--psk-identity ID] [--server-name N] [--mqtt-version 4|5] [--reconnect]
 *                   [--threads]
 *
 * Sets the TLS options, connects, subscribes, publishes QoS 1 to itself and waits for the message.
 * With --reconnect it then cuts the connection (shutdown of its socket) and waits for the automatic
 * reconnect to carry a second round trip. With --threads the loop runs on libtombo's thread
 * (tombo_loop_start) while this thread publishes 500 QoS 1 messages, all of which must come back:
 * TLS reads and writes from two threads, for ThreadSanitizer. Prints the libtombo debug log, then one last line:
 * "OK" or "ERR NAME: tombo_tls_error()" (NAME from tombo_errname; exit 0 either way: the test
 * compares the line), or "FAIL why" (exit 1) for anything unexpected. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tombo/client.h"

static int connected, got, disconnects;
static int bulk; /* --threads: messages of the bulk run received */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static tombo_err_t disconnect_err = TOMBO_OK;

static void on_log(tombo_client_t *c, void *u, int level, const char *line)
{
    printf("log: %s\n", line);
}

static void on_connect(tombo_client_t *c, void *u, int reason, bool sp, const tombo_props_t *p)
{
    if (reason == 0) {
        connected++;
        tombo_subscribe(c, NULL, "tls/roundtrip", 1, NULL, NULL);
    }
}

static void on_subscribe(tombo_client_t *c, void *u, int mid, int n, const uint8_t *codes, const tombo_props_t *p)
{
    tombo_publish(c, NULL, "tls/roundtrip", "over tls", 8, 1, false, NULL);
}

static void on_message(tombo_client_t *c, void *u, const tombo_message_t *m)
{
    pthread_mutex_lock(&mu);
    if (m->payload_len == 8 && !memcmp(m->payload, "over tls", 8))
        got++;
    else if (m->payload_len > 5 && !memcmp(m->payload, "bulk ", 5))
        bulk++;
    pthread_mutex_unlock(&mu);
}

static void on_disconnect(tombo_client_t *c, void *u, tombo_err_t err, int reason, const tombo_props_t *p)
{
    disconnects++;
    disconnect_err = err;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the loop until *counter reaches want, or an error without reconnect. */
static tombo_err_t run_until(tombo_client_t *c, int *counter, int want, bool reconnecting)
{
    double deadline = now_s() + 15;
    while (*counter < want && now_s() < deadline) {
        tombo_err_t e = tombo_loop(c, 100);
        if (e != TOMBO_OK && !reconnecting)
            return e;
        if (e != TOMBO_OK && disconnect_err != TOMBO_OK && disconnect_err != TOMBO_ERR_CONN_LOST &&
            disconnect_err != TOMBO_ERR_NO_CONN)
            return disconnect_err;
    }
    return *counter >= want ? TOMBO_OK : TOMBO_ERR_TIMEOUT;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [options]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    tombo_tls_options_t t;
    tombo_tls_options_init(&t);
    tombo_options_t o;
    tombo_options_init(&o);
    bool reconnect = false, threads = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(flag, field)            \
    if (!strcmp(a, flag) && v) {    \
        t.field = v;                \
        i++;                        \
        continue;                   \
    }
        OPT("--cafile", cafile)
        OPT("--capath", capath)
        OPT("--cert", certfile)
        OPT("--key", keyfile)
        OPT("--tls-version", tls_version)
        OPT("--ciphers", ciphers)
        OPT("--ciphers13", ciphers_tls13)
        OPT("--alpn", alpn)
        OPT("--psk", psk)
        OPT("--psk-identity", psk_identity)
        OPT("--server-name", server_name)
#undef OPT
        if (!strcmp(a, "--insecure")) {
            t.insecure = true;
        } else if (!strcmp(a, "--reconnect")) {
            reconnect = true;
        } else if (!strcmp(a, "--threads")) {
            threads = true;
        } else if (!strcmp(a, "--mqtt-version") && v) {
            o.version = atoi(v);
            i++;
        } else {
            printf("FAIL unknown argument %s\n", a);
            return 1;
        }
    }
    if (reconnect) {
        o.auto_reconnect = true;
        o.reconnect_min_ms = 100;
        o.reconnect_max_ms = 200;
    }
    o.connect_timeout_ms = 5000;
    tombo_client_t *c = tombo_client_new("tls-test", &o);
    if (!c) {
        printf("FAIL client_new\n");
        return 1;
    }
    tombo_set_on_log(c, on_log);
    tombo_set_log_level(c, TOMBO_LOG_DEBUG | TOMBO_LOG_INFO | TOMBO_LOG_WARNING | TOMBO_LOG_ERROR);
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_message(c, on_message);
    tombo_set_on_disconnect(c, on_disconnect);
    tombo_err_t e = tombo_set_tls(c, &t);
    if (e == TOMBO_OK)
        e = tombo_connect(c, host, port, 30);
    if (e == TOMBO_OK)
        e = run_until(c, &got, 1, false);
    if (e == TOMBO_OK && !tombo_tls_active(c)) {
        printf("FAIL connected, but not over TLS\n");
        return 1;
    }
    if (e == TOMBO_OK && reconnect) {
        shutdown(tombo_socket(c), SHUT_RDWR);
        e = run_until(c, &got, 2, true);
        if (e == TOMBO_OK && connected < 2) {
            printf("FAIL no second connection (%d)\n", connected);
            return 1;
        }
    }
    if (e == TOMBO_OK && threads) {
        tombo_set_log_level(c, TOMBO_LOG_ERROR | TOMBO_LOG_WARNING);
        if (tombo_loop_start(c) != TOMBO_OK) {
            printf("FAIL loop_start\n");
            return 1;
        }
        char msg[32];
        for (int i = 0; i < 500 && e == TOMBO_OK; i++) {
            int n = snprintf(msg, sizeof(msg), "bulk %d", i);
            e = tombo_publish(c, NULL, "tls/roundtrip", msg, (size_t)n, 1, false, NULL);
        }
        double deadline = now_s() + 30;
        int have = 0;
        while (e == TOMBO_OK && now_s() < deadline) {
            pthread_mutex_lock(&mu);
            have = bulk;
            pthread_mutex_unlock(&mu);
            if (have >= 500)
                break;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        tombo_loop_stop(c);
        if (e == TOMBO_OK && have < 500) {
            printf("FAIL threads: %d of 500 came back\n", have);
            return 1;
        }
    }
    if (e == TOMBO_OK) {
        tombo_disconnect(c, 0, NULL);
        printf("OK\n");
    } else if (e == TOMBO_ERR_TIMEOUT) {
        printf("FAIL timeout (connected %d, got %d, tls error '%s')\n", connected, got, tombo_tls_error(c));
        tombo_client_destroy(c);
        return 1;
    } else {
        printf("ERR %s: %s\n", tombo_errname(e), tombo_tls_error(c));
    }
    tombo_client_destroy(c);
    return 0;
}
