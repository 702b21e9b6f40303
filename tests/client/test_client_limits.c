/* test_client_limits.c -- the broker's CONNACK limits (MQTT 5): Maximum Packet Size makes an
 * oversize publish fail with TOMBO_ERR_PACKET_TOO_LARGE (nothing sent), Receive Maximum bounds the
 * in-flight window (the broker would disconnect us otherwise) and every message still completes.
 * The network is driven the third way: the application's own poll() on tombo_socket().
 * Usage: test_client_limits HOST PORT   (broker: max_packet_size 1000, max_inflight_messages 3) */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tombo/client.h"

static int connected, completed, disconnected;

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    uint32_t v;
    if (rc == 0 && tombo_props_get_int(p, TOMBO_PROP_MAX_PACKET_SIZE, &v) && v == 1000)
        connected = 1;
    else
        fprintf(stderr, "CONNACK %d without Maximum Packet Size 1000\n", rc);
}

static void on_publish(tombo_client_t *c, void *u, int mid, int reason, const tombo_props_t *p)
{
    completed++;
}

static void on_disconnect(tombo_client_t *c, void *u, tombo_err_t err, int reason, const tombo_props_t *p)
{
    disconnected++;
}

/* One turn of "the application's event loop". */
static void step(tombo_client_t *c)
{
    struct pollfd p = {.fd = tombo_socket(c), .events = POLLIN | (tombo_want_write(c) ? POLLOUT : 0)};
    if (p.fd >= 0)
        poll(&p, 1, 50);
    tombo_loop(c, 0);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = TOMBO_MQTT_V5;
    o.max_inflight = 100;
    tombo_client_t *c = tombo_client_new("limits", &o);
    if (!c)
        return 1;
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_publish(c, on_publish);
    tombo_set_on_disconnect(c, on_disconnect);
    if (tombo_connect(c, argv[1], atoi(argv[2]), 10) != TOMBO_OK)
        return 1;
    for (int i = 0; i < 200 && !connected; i++)
        step(c);
    if (!connected)
        return 1;
    static char big[2000];
    if (tombo_publish(c, NULL, "lim/big", big, sizeof(big), 1, false, NULL) != TOMBO_ERR_PACKET_TOO_LARGE) {
        fprintf(stderr, "oversize publish was not refused\n");
        return 1;
    }
    for (int i = 0; i < 50; i++)
        if (tombo_publish(c, NULL, "lim/ok", big, 500, 1 + (i & 1), false, NULL) != TOMBO_OK)
            return 1;
    for (int i = 0; i < 400 && completed < 50 && !disconnected; i++)
        step(c);
    if (completed != 50 || disconnected) {
        fprintf(stderr, "completed %d of 50, disconnected %d\n", completed, disconnected);
        return 1;
    }
    tombo_disconnect(c, 0, NULL);
    tombo_client_destroy(c);
    printf("OK\n");
    return 0;
}
