/* log.c -- the log (base layer): lines to stdout, stderr, an append-only file, syslog and $SYS topics.
 * Each line is formatted into one buffer and written with a single write() per destination: the
 * kernel keeps such writes whole (O_APPEND file, pipe up to PIPE_BUF, terminal), so threads never
 * interleave inside a line and no lock is needed. */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

atomic_uint log_mask_ = TLOG_DEFAULT;

/* Set by log_open() before other threads log; read-only afterwards. */
static unsigned log_dest = TLOG_DEST_STDERR;
static bool log_timestamp = true;
static char log_ts_format[128]; /* empty: seconds since the epoch */
static char log_file_path[4096];
static atomic_int log_fd = -1;
static bool log_syslog_open;
static log_topic_fn topic_fn;
static void *topic_ud;
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
    log_close();
    int rc = 0;
    log_dest = o->dest;
    log_timestamp = o->timestamp;
    snprintf(log_ts_format, sizeof(log_ts_format), "%s", o->ts_format ? o->ts_format : "");
    if ((log_dest & TLOG_DEST_FILE) && o->file) {
        snprintf(log_file_path, sizeof(log_file_path), "%s", o->file);
        int fd = open_log_file(log_file_path);
        if (fd < 0) {
            char msg[4200];
            int n = snprintf(msg, sizeof(msg), "Error: Unable to open log file %s for writing: %s\n", log_file_path,
                             strerror(errno));
            write_all(2, msg, n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
            rc = -1;
        }
        atomic_store(&log_fd, fd);
    }
    if (log_dest & TLOG_DEST_SYSLOG) {
        openlog("tombo", LOG_PID | LOG_NDELAY, o->syslog_facility ? o->syslog_facility : LOG_DAEMON);
        log_syslog_open = true;
    }
    atomic_store(&log_mask_, o->types);
    return rc;
}

int log_reopen(void)
{
    int old = atomic_load(&log_fd);
    if (old < 0 || !log_file_path[0])
        return 0;
    int fd = open_log_file(log_file_path);
    if (fd < 0)
        return -1;
    /* dup2 swaps the file under the same descriptor number, so a concurrent writer never sees a
     * closed descriptor. */
    int rc = dup2(fd, old) < 0 ? -1 : 0;
    close(fd);
    return rc;
}

void log_set_topic_hook(log_topic_fn fn, void *ud)
{
    topic_fn = fn;
    topic_ud = ud;
}

void log_close(void)
{
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
}

void log_printf(unsigned level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    unsigned dest = log_dest;
    if (!dest)
        return;

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
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + tslen, cap - tslen - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= cap - tslen - 1) {
        cap = tslen + (size_t)n + 2;
        line = malloc(cap);
        if (!line)
            return;
        va_start(ap, fmt);
        vsnprintf(line + tslen, cap - tslen - 1, fmt, ap);
        va_end(ap);
    }
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
    if ((dest & TLOG_DEST_TOPIC) && topic_fn && level != TLOG_DEBUG && !in_topic_hook) {
        in_topic_hook = true;
        topic_fn(level, line, len, topic_ud); /* with its timestamp, as Mosquitto publishes it */
        in_topic_hook = false;
    }
    if (line != stackbuf)
        free(line);
}
