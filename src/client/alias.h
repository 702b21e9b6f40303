/* alias.h -- the MQTT 5 topic aliases the client assigns to the topics it publishes (alias.c). */
#ifndef TOMBO_CLIENT_ALIAS_H
#define TOMBO_CLIENT_ALIAS_H

#include "client-int.h"

void alias_out_reset(tombo_client_t *c);
tombo_err_t alias_out_init(tombo_client_t *c, uint16_t broker_max);
tombo_err_t alias_send_publish(tombo_client_t *c, const uint8_t *data, size_t len, uint16_t *alias_used,
                               bool *topic_sent);

#endif
