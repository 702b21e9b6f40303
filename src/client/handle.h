/* handle.h -- incoming packets (handle.c): decoded from the input buffer and dispatched. */
#ifndef TOMBO_CLIENT_HANDLE_H
#define TOMBO_CLIENT_HANDLE_H

#include "client-int.h"

void handle_packets(tombo_client_t *c);

#endif
