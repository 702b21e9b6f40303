/* log.h -- the broker's log: Mosquitto's log types, destinations and line format
 * ("1700000000: message", or the time formatted with log_timestamp_format).
 *
 * The log is process-wide state (like stderr itself): log_init() sets it from the configuration
 * before the workers start; log_printf() is then safe from any thread. Each line goes out with one
 * write() per destination, so lines from different threads never interleave. Before log_init() the
 * log behaves as Mosquitto's default: error, warning, notice and information to stderr. */
#ifndef TOMBO_BROKER_LOG_H
#define TOMBO_BROKER_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker/config.h" /* TLOG_* levels and destinations */

/* private: the enabled TLOG_* bits, read by log_enabled(). */
extern atomic_uint log_mask_;

/* Is this level logged? A relaxed load: cheap enough to guard expensive formatting. */
static inline bool log_enabled(unsigned level)
{
    return (atomic_load_explicit(&log_mask_, memory_order_relaxed) & level) != 0;
}

/* Set up types, destinations and timestamps from cfg (not thread-safe: call before the workers
 * start, or again only while no other thread logs). Opens `log_dest file` in append mode and then
 * logs cfg->warnings. Returns 0, or -1 when the log file cannot be opened (the error is logged to
 * stderr; the other destinations are set up). */
int log_init(const struct tombo_config *cfg);

/* Log one line at `level` (one TLOG_* bit). Thread-safe. Does nothing when the level is off. */
void log_printf(unsigned level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, but the arguments are only evaluated when the level is enabled. */
#define TLOG(level, ...)                       \
    do {                                       \
        if (log_enabled(level))                \
            log_printf((level), __VA_ARGS__);  \
    } while (0)

/* Reopen the log file (SIGHUP, after log rotation). Thread-safe: the new file replaces the old
 * descriptor in place. Returns 0 or -1. */
int log_reopen(void);

/* log_dest topic: the broker registers how to publish a log line on $SYS/broker/log/<X>; until it
 * does, topic logging is off. `fn` is called with the level, the message (no timestamp, no
 * newline) and `ud`, from the logging thread; log lines it produces itself are not re-published.
 * Debug lines never go to the topic (as in Mosquitto). Call before the workers start. */
typedef void (*log_topic_fn)(unsigned level, const char *msg, size_t len, void *ud);
void log_set_topic_hook(log_topic_fn fn, void *ud);

/* Mosquitto's topic suffix for a level: "E", "W", "N", "I", "M" (subscribe/unsubscribe), "D". */
const char *log_level_letter(unsigned level);

/* Close the log file and syslog; the log falls back to stderr defaults. */
void log_close(void);

#endif
