/* test_client_refused.c -- a broker refusing the CONNECT: on_connect gets the reason code,
 * on_disconnect gets TOMBO_ERR_CONN_REFUSED, tombo_loop_forever returns; nothing leaks.
 * Usage: test_client_refused HOST PORT VERSION */
#include <stdio.h>
#include <stdlib.h>

#include "tombo/client.h"

static int connack = -1;
static int disc_err = 1;

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    connack = rc;
}

static void on_disconnect(tombo_client_t *c, void *u, tombo_err_t err, int reason, const tombo_props_t *p)
{
    disc_err = err;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = atoi(argv[3]);
    tombo_client_t *c = tombo_client_new("refused", &o);
    if (!c)
        return 1;
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_disconnect(c, on_disconnect);
    if (tombo_connect(c, argv[1], atoi(argv[2]), 10) != TOMBO_OK)
        return 1;
    tombo_err_t e = tombo_loop_forever(c);
    tombo_client_destroy(c);
    int want = o.version == TOMBO_MQTT_V5 ? 0x87 : 5;
    if (connack != want || disc_err != TOMBO_ERR_CONN_REFUSED || e != TOMBO_ERR_CONN_REFUSED) {
        fprintf(stderr, "connack %d (want %d), on_disconnect %d, loop %d\n", connack, want, disc_err, e);
        return 1;
    }
    printf("OK\n");
    return 0;
}
