/* log.c -- the broker's side of the log: the configuration's log_type, log_dest, log_file and
 * timestamp settings handed to the base log (base/log.c), the config's warnings logged once it
 * is open, and `log_dest dlt`: lines handed to the GENIVI/COVESA DLT daemon through libdlt, as
 * Mosquitto built WITH_DLT does (application and context "MQTT", levels mapped as in its
 * logging.c). */
#include "broker/log.h"

#include <dlt/dlt.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "broker/config.h"

/* ---- log_dest dlt ---- */

/* libdlt state: registered once (log_dlt_start, or a reload that turns log_dest dlt on), kept until
 * log_dlt_stop. dlt_lock orders registration against reloads; the hook only reads dlt_ctx once
 * registration is over (the hook is installed after it, under the log's lock). */
static pthread_mutex_t dlt_lock = PTHREAD_MUTEX_INITIALIZER;
static DltContext dlt_ctx;
static bool dlt_registered;
static bool dlt_may_start; /* false until log_dlt_start: libdlt starts threads, and -d forks */

/* Mosquitto's get_dlt_level (logging.c): error, warning, information and debug keep their level;
 * notice, subscribe and unsubscribe go out as verbose; websockets (and anything else) as the
 * context's default. A tombo line may carry two types (notice and websockets): the first of these
 * that it carries decides. */
static DltLogLevelType dlt_level(unsigned level)
{
    if (level & TLOG_ERR)
        return DLT_LOG_ERROR;
    if (level & TLOG_WARNING)
        return DLT_LOG_WARN;
    if (level & TLOG_INFO)
        return DLT_LOG_INFO;
    if (level & TLOG_DEBUG)
        return DLT_LOG_DEBUG;
    if (level & (TLOG_NOTICE | TLOG_SUBSCRIBE | TLOG_UNSUBSCRIBE))
        return DLT_LOG_VERBOSE;
    return DLT_LOG_DEFAULT;
}

static void dlt_sink(unsigned level, const char *line)
{
    dlt_log_string(&dlt_ctx, dlt_level(level), line);
}

/* The daemon's FIFO: $DLT_PIPE_DIR/dlt (libdlt's own rule; dlt-daemon -t DIR), else /tmp/dlt. */
static void dlt_fifo_path(char *out, size_t cap)
{
    const char *dir = getenv("DLT_PIPE_DIR");
    snprintf(out, cap, "%s/dlt", dir && *dir ? dir : "/tmp");
}

/* Is a DLT daemon reading its FIFO? As Mosquitto checks before registering: without a reader libdlt
 * would buffer every line and stall the broker's exit while it tries to flush them. */
static bool dlt_daemon_present(const char *fifo)
{
    struct stat st;
    if (stat(fifo, &st) != 0 || !S_ISFIFO(st.st_mode))
        return false;
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* ENXIO: no reader */
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Register with the DLT daemon if log_dest dlt asks for it and it has not been done. Returns the
 * FIFO path in `fifo` and false when the daemon is not there (the caller logs it). */
static bool dlt_configure(const struct tombo_config *cfg, char *fifo, size_t cap)
{
    bool ok = true;
    pthread_mutex_lock(&dlt_lock);
    if (dlt_may_start && (cfg->log_dest & TLOG_DEST_DLT) && !dlt_registered) {
        dlt_fifo_path(fifo, cap);
        if (dlt_daemon_present(fifo) && dlt_register_app("MQTT", "tombo log") == DLT_RETURN_OK) {
            if (dlt_register_context(&dlt_ctx, "MQTT", "tombo DLT context") == DLT_RETURN_OK) {
                dlt_registered = true;
                log_set_dlt_hook(dlt_sink);
            } else {
                dlt_unregister_app();
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    pthread_mutex_unlock(&dlt_lock);
    return ok;
}

static void dlt_warn(const struct tombo_config *cfg)
{
    char fifo[4200];
    if (!dlt_configure(cfg, fifo, sizeof(fifo)))
        log_printf(TLOG_WARNING, "Warning: log_dest dlt: no DLT daemon reads %s (set DLT_PIPE_DIR for a daemon "
                   "started with -t DIR); lines go to the other destinations only.", fifo);
}

void log_dlt_allow(void)
{
    pthread_mutex_lock(&dlt_lock);
    dlt_may_start = true;
    pthread_mutex_unlock(&dlt_lock);
}

void log_dlt_start(const struct tombo_config *cfg)
{
    log_dlt_allow();
    dlt_warn(cfg);
}

void log_dlt_stop(void)
{
    pthread_mutex_lock(&dlt_lock);
    if (dlt_registered) {
        log_set_dlt_hook(NULL);
        dlt_unregister_context(&dlt_ctx);
        dlt_unregister_app();
        dlt_free();
        dlt_registered = false;
    }
    dlt_may_start = false;
    pthread_mutex_unlock(&dlt_lock);
}

/* ---- the log ---- */

int log_configure(const struct tombo_config *cfg)
{
    log_options_t o = {.types = cfg->log_type,
                       .dest = cfg->log_dest,
                       .file = cfg->log_file,
                       .timestamp = cfg->log_timestamp,
                       .ts_format = cfg->log_timestamp_format,
                       /* log_facility N: localN, as in Mosquitto (LOG_LOCAL0..7 are consecutive) */
                       .syslog_facility = cfg->log_facility < 0 ? LOG_DAEMON : LOG_LOCAL0 + (cfg->log_facility << 3)};
    int rc = log_open(&o);
    if (rc == 0)
        dlt_warn(cfg); /* a reload that turns log_dest dlt on (before log_dlt_start: nothing) */
    return rc;
}

int log_init(const struct tombo_config *cfg)
{
    int rc = log_configure(cfg);
    for (int i = 0; i < cfg->n_warnings; i++)
        log_printf(TLOG_WARNING, "%s", cfg->warnings[i]);
    return rc;
}
