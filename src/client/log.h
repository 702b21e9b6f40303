/* log.h -- the client's log lines, for the application's on_log callback (log.c). */
#ifndef TOMBO_CLIENT_LOG_H
#define TOMBO_CLIENT_LOG_H

#include "client-int.h"

/* Format a line and pass it to on_log when the client's log mask has `level` (TOMBO_LOG_*). The
 * caller holds the client's lock. Lines longer than 511 bytes are cut. */
void client_log(tombo_client_t *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
