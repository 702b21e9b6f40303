/* httpd.h -- the HTTP endpoint (`http_listener PORT [ADDRESS]`, tombo only): Prometheus /metrics,
 * the REST API and the dashboard (api.c), served by one thread of its own with a small epoll loop,
 * so that no request ever runs on, or waits for, a worker. Optional Basic authentication against a
 * Mosquitto password file (`http_password_file`), checked with the broker's own code (auth.h).
 * HTTP/1.1 with keep-alive, over TLS when http_certfile and http_keyfile are set (src/tls builds
 * the context). Design note in httpd.c. */
#ifndef TOMBO_BROKER_HTTPD_H
#define TOMBO_BROKER_HTTPD_H

struct broker;

/* broker_init, after the workers exist: open the endpoint's socket and read its password file.
 * Returns 0 (also when no endpoint is configured), or -1 after logging why. */
int httpd_open(struct broker *b);
/* broker_run: start its thread. 0 or -1. */
int httpd_start(struct broker *b);
/* SIGHUP (worker 0): read http_password_file again; on error the previous users stay. */
void httpd_reload(struct broker *b);
/* broker_free, before the workers are freed: stop the thread (it sees b->stop within 200 ms),
 * close every connection, free it all. Safe when nothing was opened. */
void httpd_stop(struct broker *b);

#endif
