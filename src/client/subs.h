/* subs.h -- the subscriptions kept for subscribing again after a lost session (subs.c). */
#ifndef TOMBO_CLIENT_SUBS_H
#define TOMBO_CLIENT_SUBS_H

#include "client-int.h"

/* Remember filter with its options and (v5) a copy of props, replacing an earlier entry. */
tombo_err_t subs_remember(tombo_client_t *c, const char *filter, const tombo_sub_opts_t *o,
                          const tombo_props_t *props);
void subs_forget(tombo_client_t *c, const char *filter);
void subs_free(tombo_client_t *c);
/* Send one SUBSCRIBE per remembered filter (after a CONNACK without a session). */
void subs_resubscribe(tombo_client_t *c);

#endif
