/* authq.h -- password checks off the worker threads.
 *
 * A password check against a password_file entry runs PBKDF2-HMAC-SHA512 (about 75 us with
 * Mosquitto's 101 iterations, far more with a stronger hash): done on a worker, a burst of
 * reconnecting devices would stall every client of that worker. So a CONNECT that needs one parks
 * its connection (conn.waiting = WAIT_AUTH, nothing more is read from it), the check runs on the
 * auth thread, and the result comes back to the connection's worker through its inbox
 * (INBOX_AUTH_DONE), which then answers the CONNECT. Checks that need no hashing (anonymous
 * clients, no password file) stay inline, unless a Mosquitto plugin authenticates (plugin.h): a
 * plugin may block for as long as it likes (a database, an HTTP call), so every CONNECT it is asked
 * about goes to this thread. */
#ifndef TOMBO_BROKER_AUTHQ_H
#define TOMBO_BROKER_AUTHQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/auth.h"

struct broker;
typedef struct authq authq_t;

authq_t *authq_start(struct broker *b, int threads);
/* Stops the threads; checks still queued are dropped (their connections are closing anyway). */
void authq_stop(authq_t *q);

/* Whether auth_connect() for these credentials has to hash a password, or ask a plugin. */
bool authq_needed(const auth_t *a, bool has_user, size_t ulen);

/* Check the credentials on an auth thread and post INBOX_AUTH_DONE (rc: auth_connect_client's result)
 * to worker `worker` for connection (fd, conn_id). Copies user, password and what plugins may read
 * of client (may be NULL). With plugins, the auth thread is where they are asked: they may block. */
struct mosquitto;
void authq_submit(authq_t *q, int worker, int fd, uint64_t conn_id, const auth_t *a, bool allow_anonymous,
                  const struct mosquitto *client, const uint8_t *user, size_t ulen, bool has_user, const uint8_t *pw,
                  size_t pwlen, bool has_pw);

/* A PUBLISH to a plugin's $CONTROL/ topic (plugin_control_handles): its control callback runs on
 * the auth thread, after the CONNECTs submitted before it (one thread, in order), since it may be
 * slow (the dynamic-security plugin saves its file). Copies the client (id, username), topic and
 * payload. */
struct plugin_set;
/* INBOX_AUTH_DONE with reply_fd 1: a plugin set a new user name for connection conn_id
 * (mosquitto_set_username, NULL: none). Returns it (the caller's to free) and forgets it. */
char *authq_take_username(authq_t *q, uint64_t conn_id);

/* MOSQ_EVT_DISCONNECT for ps's plugins, on the auth thread (in order with logins). */
void authq_submit_disconnect(authq_t *q, struct plugin_set *ps, const struct mosquitto *client, int reason);
void authq_submit_control(authq_t *q, struct plugin_set *ps, const struct mosquitto *client, const uint8_t *topic,
                          size_t topic_len, const uint8_t *payload, size_t len, uint8_t qos, bool retain);

#endif
