/* log.c -- the log (base layer): lines to stdout, stderr, an append-only file, syslog and $SYS topics.
 * Each line is formatted into one buffer and written with a single write() per destination: the
 * kernel keeps such writes whole (O_APPEND file, pipe up to PIPE_BUF, terminal), so threads never
 * interleave inside a line. The settings (destinations, file, timestamps) sit under a read-write
 * lock that log_printf takes for reading, so SIGHUP can change them while other threads log
 * (log_open); the file descriptor is closed only under the write lock, never under a writer. */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

atomic_uint log_mask_ = TLOG_DEFAULT;

/* The settings: written by log_open/log_close/log_set_topic_hook under the write lock, read by
 * log_printf under the read lock. */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_INITIALIZER;
static unsigned log_dest = TLOG_DEST_STDERR;
static bool log_timestamp = true;
static char log_ts_format[128]; /* empty: seconds since the epoch */
static char log_file_path[4096];
static atomic_int log_fd = -1;
static bool log_syslog_open;
static int log_syslog_facility; /* of the open syslog */
static log_topic_fn topic_fn;
static void *topic_ud;
static log_sink_fn dlt_fn;
static _Thread_local bool in_topic_hook;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

static int syslog_priority(unsigned level)
{
    switch (level) {
    case TLOG_ERR: return LOG_ERR;
    case TLOG_WARNING: return LOG_WARNING;
    case TLOG_NOTICE: return LOG_NOTICE;
    case TLOG_INFO: return LOG_INFO;
    case TLOG_DEBUG: return LOG_DEBUG;
    default: return LOG_NOTICE;
    }
}

const char *log_level_letter(unsigned level)
{
    switch (level) {
    case TLOG_ERR: return "E";
    case TLOG_WARNING: return "W";
    case TLOG_NOTICE: return "N";
    case TLOG_INFO: return "I";
    case TLOG_DEBUG: return "D";
    default: return "M";
    }
}

static int open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int log_open(const log_options_t *o)
{
    /* The new file first: when it cannot be opened, the log stays as it was. */
    int fd = -1;
    if ((o->dest & TLOG_DEST_FILE) && o->file) {
        fd = open_log_file(o->file);
        if (fd < 0) {
            char msg[4200];
            int n = snprintf(msg, sizeof(msg), "Error: Unable to open log file %s for writing: %s\n", o->file,
                             strerror(errno));
            write_all(2, msg, n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
            return -1;
        }
    }
    pthread_rwlock_wrlock(&log_lock);
    int old = atomic_exchange(&log_fd, fd);
    if (old >= 0)
        close(old);
    int facility = o->syslog_facility ? o->syslog_facility : LOG_DAEMON;
    if (log_syslog_open && (!(o->dest & TLOG_DEST_SYSLOG) || facility != log_syslog_facility)) {
        closelog();
        log_syslog_open = false;
    }
    if (!log_syslog_open && (o->dest & TLOG_DEST_SYSLOG)) {
        openlog("tombo", LOG_PID | LOG_NDELAY, facility);
        log_syslog_facility = facility;
        log_syslog_open = true;
    }
    log_dest = o->dest;
    log_timestamp = o->timestamp;
    snprintf(log_ts_format, sizeof(log_ts_format), "%s", o->ts_format ? o->ts_format : "");
    snprintf(log_file_path, sizeof(log_file_path), "%s", fd >= 0 ? o->file : "");
    atomic_store(&log_mask_, o->types);
    pthread_rwlock_unlock(&log_lock);
    return 0;
}

int log_reopen(void)
{
    pthread_rwlock_wrlock(&log_lock);
    int rc = 0;
    int old = atomic_load(&log_fd);
    if (old >= 0 && log_file_path[0]) {
        int fd = open_log_file(log_file_path);
        if (fd < 0)
            rc = -1;
        else {
            rc = dup2(fd, old) < 0 ? -1 : 0;
            close(fd);
        }
    }
    pthread_rwlock_unlock(&log_lock);
    return rc;
}

void log_set_topic_hook(log_topic_fn fn, void *ud)
{
    pthread_rwlock_wrlock(&log_lock);
    topic_fn = fn;
    topic_ud = ud;
    pthread_rwlock_unlock(&log_lock);
}

void log_set_dlt_hook(log_sink_fn fn)
{
    pthread_rwlock_wrlock(&log_lock);
    dlt_fn = fn;
    pthread_rwlock_unlock(&log_lock);
}

void log_close(void)
{
    pthread_rwlock_wrlock(&log_lock);
    int fd = atomic_exchange(&log_fd, -1);
    if (fd >= 0)
        close(fd);
    if (log_syslog_open) {
        closelog();
        log_syslog_open = false;
    }
    log_dest = TLOG_DEST_STDERR;
    log_timestamp = true;
    log_ts_format[0] = '\0';
    log_file_path[0] = '\0';
    atomic_store(&log_mask_, TLOG_DEFAULT);
    pthread_rwlock_unlock(&log_lock);
}

void log_printf(unsigned level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprintf(level, fmt, ap);
    va_end(ap);
}

void log_vprintf(unsigned level, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    pthread_rwlock_rdlock(&log_lock);
    unsigned dest = log_dest;
    if (!dest) {
        pthread_rwlock_unlock(&log_lock);
        return;
    }

    /* "<timestamp>: " */
    char ts[160];
    size_t tslen = 0;
    if (log_timestamp) {
        time_t now = time(NULL);
        if (log_ts_format[0]) {
            struct tm tm;
            localtime_r(&now, &tm);
            tslen = strftime(ts, sizeof(ts) - 2, log_ts_format, &tm);
        } else {
            tslen = (size_t)snprintf(ts, sizeof(ts) - 2, "%lld", (long long)now);
        }
        ts[tslen++] = ':';
        ts[tslen++] = ' ';
    }

    /* The line: timestamp, message, newline, in one buffer (the heap only for long lines). */
    char stackbuf[1024];
    char *line = stackbuf;
    size_t cap = sizeof(stackbuf);
    va_list again;
    va_copy(again, ap); /* for the heap buffer of a long line */
    int n = vsnprintf(line + tslen, cap - tslen - 1, fmt, ap);
    if (n < 0) {
        va_end(again);
        pthread_rwlock_unlock(&log_lock);
        return;
    }
    if ((size_t)n >= cap - tslen - 1) {
        cap = tslen + (size_t)n + 2;
        line = malloc(cap);
        if (!line) {
            va_end(again);
            pthread_rwlock_unlock(&log_lock);
            return;
        }
        vsnprintf(line + tslen, cap - tslen - 1, fmt, again);
    }
    va_end(again);
    memcpy(line, ts, tslen);
    char *msg = line + tslen;
    size_t len = tslen + (size_t)n;
    line[len] = '\n';

    if (dest & TLOG_DEST_STDOUT)
        write_all(1, line, len + 1);
    if (dest & TLOG_DEST_STDERR)
        write_all(2, line, len + 1);
    if (dest & TLOG_DEST_FILE) {
        int fd = atomic_load(&log_fd);
        if (fd >= 0)
            write_all(fd, line, len + 1);
    }
    line[len] = '\0';
    if (dest & TLOG_DEST_SYSLOG)
        syslog(syslog_priority(level), "%s", msg);
    if ((dest & TLOG_DEST_DLT) && dlt_fn)
        dlt_fn(level, line); /* with its timestamp, as Mosquitto hands it to DLT */
    log_topic_fn fn = topic_fn;
    void *ud = topic_ud;
    pthread_rwlock_unlock(&log_lock);
    if ((dest & TLOG_DEST_TOPIC) && fn && level != TLOG_DEBUG && !in_topic_hook) {
        in_topic_hook = true;
        fn(level, line, len, ud); /* with its timestamp, as Mosquitto publishes it */
        in_topic_hook = false;
    }
    if (line != stackbuf)
        free(line);
}
