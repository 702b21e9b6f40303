/* reconnect.h -- losing a connection and getting it back (reconnect.c): closing and reporting
 * on_disconnect, automatic reconnect with backoff. */
#ifndef TOMBO_CLIENT_RECONNECT_H
#define TOMBO_CLIENT_RECONNECT_H

#include "client-int.h"

void conn_lost(tombo_client_t *c, tombo_err_t err, int reason, const tombo_props_t *props);
void reconnect_schedule(tombo_client_t *c);
void reconnect_reset(tombo_client_t *c);
void reconnect_try(tombo_client_t *c);

#endif
