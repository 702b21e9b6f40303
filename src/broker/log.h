/* log.h -- the broker's log: the base log (base/log.h) set up from the broker's configuration.
 * Files of the broker include this one, so configuring the log stays next to the config. */
#ifndef TOMBO_BROKER_LOG_H
#define TOMBO_BROKER_LOG_H

#include "base/log.h"

struct tombo_config;

/* Set up types, destinations and timestamps from cfg (log_open: thread-safe), then log
 * cfg->warnings. Returns 0, or -1 when the log file cannot be opened (the error is written to
 * stderr and the log is left as it was). */
int log_init(const struct tombo_config *cfg);

/* The same without the warnings: SIGHUP's reload. */
int log_configure(const struct tombo_config *cfg);

#endif
