/* props.h -- the library's side of tombo_props_t (props.c): views of received properties and
 * owned copies of the application's. */
#ifndef TOMBO_CLIENT_PROPS_H
#define TOMBO_CLIENT_PROPS_H

#include "client-int.h"

void props_view(tombo_props_t *view, const mqtt_props_t *mp);
tombo_props_t *props_dup(const tombo_props_t *p);
extern const tombo_props_t props_empty;

#endif
