/* log.h -- the log (base layer): Mosquitto's log types, destinations and line format
 * ("1700000000: message", or the time formatted with a strftime format).
 *
 * The log is process-wide state (like stderr itself): log_open() sets it up (the broker's log_init()
 * does so from its configuration, at start and on SIGHUP); log_printf() is safe from any thread. Each line goes out with one write() per destination, so lines from different
 * threads never interleave. Before log_open() the log behaves as Mosquitto's default: error, warning, notice and information to stderr. */
#ifndef TOMBO_BASE_LOG_H
#define TOMBO_BASE_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Log levels: the same bits as Mosquitto's MOSQ_LOG_*; a log line carries one of them.
 * TLOG_ rather than LOG_ so that <syslog.h> can be included next to this header. */
#define TLOG_NONE 0x00u
#define TLOG_INFO 0x01u
#define TLOG_NOTICE 0x02u
#define TLOG_WARNING 0x04u
#define TLOG_ERR 0x08u
#define TLOG_DEBUG 0x10u
#define TLOG_SUBSCRIBE 0x20u
#define TLOG_UNSUBSCRIBE 0x40u
#define TLOG_WEBSOCKETS 0x80u
#define TLOG_ALL 0xffu
#define TLOG_DEFAULT (TLOG_ERR | TLOG_WARNING | TLOG_NOTICE | TLOG_INFO)

/* Log destinations. */
#define TLOG_DEST_NONE 0x00u
#define TLOG_DEST_STDOUT 0x01u
#define TLOG_DEST_STDERR 0x02u
#define TLOG_DEST_FILE 0x04u
#define TLOG_DEST_SYSLOG 0x08u
#define TLOG_DEST_TOPIC 0x10u /* through the hook of log_set_topic_hook (the broker: $SYS/broker/log/X) */
#define TLOG_DEST_DLT 0x20u   /* through the hook of log_set_dlt_hook (the broker: libdlt, broker/log.c) */

/* How the log writes (log_open). */
typedef struct log_options {
    unsigned types;          /* TLOG_* bits to log */
    unsigned dest;           /* TLOG_DEST_* bits */
    const char *file;        /* for TLOG_DEST_FILE (NULL: none) */
    bool timestamp;          /* prefix each line with the time */
    const char *ts_format;   /* strftime format; NULL or empty: seconds since the epoch */
    int syslog_facility;     /* for TLOG_DEST_SYSLOG: a LOG_* facility of syslog.h; 0 means LOG_DAEMON */
} log_options_t;

/* private: the enabled TLOG_* bits, read by log_enabled(). */
extern atomic_uint log_mask_;

/* Is this level logged? A relaxed load: cheap enough to guard expensive formatting. */
static inline bool log_enabled(unsigned level)
{
    return (atomic_load_explicit(&log_mask_, memory_order_relaxed) & level) != 0;
}

/* Set up types, destinations and timestamps, replacing the previous ones (SIGHUP's reload calls it
 * again). Thread-safe: lines logged meanwhile go out whole, with the old settings or the new.
 * Opens the file in append mode. Returns 0, or -1 when the log file cannot be opened: the error is
 * written to stderr and the log stays as it was. */
int log_open(const log_options_t *o);

/* Log one line at `level` (one TLOG_* bit). Thread-safe. Does nothing when the level is off. */
void log_printf(unsigned level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vprintf(unsigned level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Same, but the arguments are only evaluated when the level is enabled. */
#define TLOG(level, ...)                       \
    do {                                       \
        if (log_enabled(level))                \
            log_printf((level), __VA_ARGS__);  \
    } while (0)

/* Reopen the log file (SIGHUP, after log rotation). Thread-safe: the new file replaces the old
 * descriptor in place. Returns 0 or -1. */
int log_reopen(void);

/* TLOG_DEST_TOPIC: the broker registers how to publish a log line on $SYS/broker/log/<X>; until it
 * does, topic logging is off. `fn` is called with the level, the line as logged (timestamp
 * included, no newline) and `ud`, from the logging thread; log lines it produces itself are not re-published.
 * Debug lines never go to the topic (as in Mosquitto). Thread-safe; the hook may still be running on
 * another thread right after it is removed, so remove it only once the threads that log have stopped. */
typedef void (*log_topic_fn)(unsigned level, const char *msg, size_t len, void *ud);
void log_set_topic_hook(log_topic_fn fn, void *ud);

/* TLOG_DEST_DLT: the broker registers how to hand a line to the DLT daemon (libdlt); until it does,
 * DLT logging is off. `fn` gets the level and the line as logged (timestamp included, no newline,
 * NUL-terminated), every level included, from the logging thread, under the log's read lock: it must
 * not log. Thread-safe; as with the topic hook, remove it only once the threads that log have stopped. */
typedef void (*log_sink_fn)(unsigned level, const char *line);
void log_set_dlt_hook(log_sink_fn fn);

/* Mosquitto's topic suffix for a level: "E", "W", "N", "I", "M" (subscribe/unsubscribe), "D". */
const char *log_level_letter(unsigned level);

/* Close the log file and syslog; the log falls back to stderr defaults. */
void log_close(void);

#endif
