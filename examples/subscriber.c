/* subscriber.c -- the tutorial's subscriber: connect to the broker, subscribe to test/+ and print
 * every message as topic:payload.  Usage: subscriber [host [port]]  (default localhost 1883) */
#include <stdio.h>
#include <stdlib.h>

#include <tombo/client.h>

static void on_connect(tombo_client_t *c, void *user, int rc, bool session_present, const tombo_props_t *props)
{
    printf("Connected with result code %d\n", rc);
    fflush(stdout);
    if (rc == 0)
        tombo_subscribe(c, NULL, "test/+", 0, NULL, NULL); /* here, so a reconnect subscribes again */
}

static void on_disconnect(tombo_client_t *c, void *user, tombo_err_t err, int reason, const tombo_props_t *props)
{
    if (err != TOMBO_OK)
        printf("Unexpected disconnection.\n");
}

static void on_message(tombo_client_t *c, void *user, const tombo_message_t *msg)
{
    printf("%s:%s\n", msg->topic, (const char *)msg->payload);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    int port = argc > 2 ? atoi(argv[2]) : 1883;

    tombo_client_t *client = tombo_client_new(NULL, NULL);
    if (!client)
        return 1;
    tombo_set_on_connect(client, on_connect);
    tombo_set_on_disconnect(client, on_disconnect);
    tombo_set_on_message(client, on_message);

    tombo_err_t err = tombo_connect(client, host, port, 60);
    if (err != TOMBO_OK) {
        fprintf(stderr, "Failed to connect to %s:%d: %s\n", host, port, tombo_strerror(err));
        tombo_client_destroy(client);
        return 1;
    }
    tombo_loop_forever(client);
    tombo_client_destroy(client);
    return 0;
}
