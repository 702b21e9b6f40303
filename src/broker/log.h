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

/* The same without the warnings: SIGHUP's reload. Turns log_dest dlt on once log_dlt_start has run. */
int log_configure(const struct tombo_config *cfg);

/* log_dest dlt: libdlt starts threads, so registering with the DLT daemon waits for -d's fork.
 * log_dlt_allow lets the next log_configure (log_init) register (no -d: before log_init, so the
 * config's warnings reach DLT too); log_dlt_start allows and registers (with -d, after the fork).
 * When no daemon reads its FIFO ($DLT_PIPE_DIR/dlt, else /tmp/dlt) a warning says so and the lines
 * go to the other destinations only, as Mosquitto skips DLT then. Main thread only. */
void log_dlt_allow(void);
void log_dlt_start(const struct tombo_config *cfg);

/* Unregister from the DLT daemon (at exit, once the threads that log have stopped). */
void log_dlt_stop(void);

#endif
