/* publisher.c -- the tutorial's publisher: send the current time (%Y/%m/%d %H:%M:%S) to test/0 ...
 * test/9, one message per second, and say for each whether it was sent.
 * Usage: publisher [--interval SECONDS] [host [port]]  (default localhost 1883, 1 second) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tombo/client.h>

static void on_connect(tombo_client_t *c, void *user, int rc, bool session_present, const tombo_props_t *props)
{
    printf("Connected with result code %d\n", rc);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    double interval = 1.0;
    int arg = 1;
    if (argc > 2 && strcmp(argv[1], "--interval") == 0) {
        interval = atof(argv[2]);
        arg = 3;
    }
    const char *host = argc > arg ? argv[arg] : "localhost";
    int port = argc > arg + 1 ? atoi(argv[arg + 1]) : 1883;

    tombo_client_t *client = tombo_client_new(NULL, NULL);
    if (!client)
        return 1;
    tombo_set_on_connect(client, on_connect);
    if (tombo_connect(client, host, port, 60) != TOMBO_OK) {
        fprintf(stderr, "Failed to connect to %s:%d\n", host, port);
        tombo_client_destroy(client);
        return 1;
    }
    tombo_loop_start(client); /* the network runs on a background thread */

    for (int i = 0; i < 10; i++) {
        char topic[16], now[32];
        time_t t = time(NULL);
        strftime(now, sizeof(now), "%Y/%m/%d %H:%M:%S", localtime(&t));
        snprintf(topic, sizeof(topic), "test/%d", i);

        tombo_err_t err = tombo_publish(client, NULL, topic, now, strlen(now), 0, false, NULL);
        if (err == TOMBO_OK)
            printf("Send `%s` to topic `%s`\n", now, topic);
        else
            printf("Failed to send message to topic %s: %s\n", topic, tombo_strerror(err));
        fflush(stdout);

        struct timespec pause = {(time_t)interval, (long)((interval - (time_t)interval) * 1e9)};
        nanosleep(&pause, NULL);
    }
    tombo_disconnect(client, 0, NULL);
    tombo_loop_stop(client);
    tombo_client_destroy(client);
    return 0;
}
