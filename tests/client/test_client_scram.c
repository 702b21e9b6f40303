/* test_client_scram.c -- libtombo's SCRAM-SHA-256 enhanced authentication against tombo: the login
 * (the broker's proof checked), a message to itself, re-authentication twice on the open
 * connection, a client option check; then a wrong password is refused with 0x87.
 * Usage: test_client_scram HOST PORT USER PASSWORD */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tombo/client.h"

static int connack = -1, got = 0;

static void on_connect(tombo_client_t *c, void *u, int rc, bool sp, const tombo_props_t *p)
{
    connack = rc;
}

static void on_message(tombo_client_t *c, void *u, const tombo_message_t *m)
{
    if (!strcmp(m->topic, "scram/t") && m->payload_len == 2)
        got++;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        return 1;                                                                                  \
    } while (0)

/* Run the loop until cond or about 10 s. */
#define LOOP_UNTIL(c, cond)                                                                        \
    for (int i_ = 0; i_ < 100 && !(cond); i_++)                                                    \
        tombo_loop((c), 100)

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    tombo_options_t o;
    tombo_options_init(&o);
    o.version = TOMBO_MQTT_V5;
    o.username = argv[3];
    o.password = argv[4];
    o.auth_method = "SCRAM-SHA-1";
    if (tombo_client_new("scram", &o))
        FAIL("an unknown method was accepted\n");
    o.auth_method = "SCRAM-SHA-256";
    o.version = TOMBO_MQTT_V311;
    if (tombo_client_new("scram", &o))
        FAIL("SCRAM on MQTT 3.1.1 was accepted\n");
    o.version = TOMBO_MQTT_V5;

    tombo_client_t *c = tombo_client_new("scram", &o);
    if (!c)
        FAIL("tombo_client_new\n");
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_message(c, on_message);
    if (tombo_reauthenticate(c) != TOMBO_ERR_NO_CONN)
        FAIL("reauthenticate before connecting\n");
    if (tombo_connect(c, argv[1], atoi(argv[2]), 30) != TOMBO_OK)
        FAIL("tombo_connect\n");
    LOOP_UNTIL(c, connack >= 0);
    if (connack != 0 || !tombo_is_connected(c))
        FAIL("connack %d\n", connack);
    int mid;
    tombo_subscribe(c, &mid, "scram/t", 1, NULL, NULL);
    tombo_publish(c, &mid, "scram/t", "hi", 2, 1, false, NULL);
    LOOP_UNTIL(c, got == 1);

    /* Re-authenticate: BUSY while an exchange runs; OK again only once the previous one ended
     * with the broker's AUTH 0x00 verified, which starts the next one. Two complete exchanges,
     * with a message through each; the third is left to run while we disconnect. */
    tombo_err_t e = tombo_reauthenticate(c);
    if (e != TOMBO_OK)
        FAIL("reauthenticate: %s\n", tombo_strerror(e));
    if (tombo_reauthenticate(c) != TOMBO_ERR_BUSY)
        FAIL("second reauthenticate not BUSY\n");
    for (int round = 0; round < 2; round++) {
        tombo_publish(c, &mid, "scram/t", "hi", 2, 1, false, NULL); /* goes on meanwhile */
        LOOP_UNTIL(c, got == round + 2);
        for (int i = 0; i < 100; i++) {
            e = tombo_reauthenticate(c);
            if (e != TOMBO_ERR_BUSY)
                break;
            tombo_loop(c, 100);
        }
        if (e != TOMBO_OK || !tombo_is_connected(c))
            FAIL("re-authentication %d did not complete: %s\n", round, tombo_strerror(e));
    }
    if (got != 3 || !tombo_is_connected(c))
        FAIL("got %d, connected %d\n", got, tombo_is_connected(c));
    tombo_disconnect(c, 0, NULL);
    tombo_client_destroy(c);

    /* A wrong password. */
    o.password = "not the password";
    connack = -1;
    c = tombo_client_new("scram-wrong", &o);
    tombo_set_on_connect(c, on_connect);
    if (tombo_connect(c, argv[1], atoi(argv[2]), 30) != TOMBO_OK)
        FAIL("tombo_connect (wrong)\n");
    e = tombo_loop_forever(c);
    tombo_client_destroy(c);
    if (connack != 0x87 || e != TOMBO_ERR_CONN_REFUSED)
        FAIL("wrong password: connack %d, loop %s\n", connack, tombo_strerror(e));
    printf("OK\n");
    return 0;
}
