/* log.c -- the broker's side of the log: the configuration's log_type, log_dest, log_file and
 * timestamp settings handed to the base log (base/log.c), and the config's warnings logged once it
 * is open. */
#include "broker/log.h"

#include <syslog.h>

#include "broker/config.h"

int log_init(const struct tombo_config *cfg)
{
    log_options_t o = {.types = cfg->log_type,
                       .dest = cfg->log_dest,
                       .file = cfg->log_file,
                       .timestamp = cfg->log_timestamp,
                       .ts_format = cfg->log_timestamp_format,
                       /* log_facility N: localN, as in Mosquitto (LOG_LOCAL0..7 are consecutive) */
                       .syslog_facility = cfg->log_facility < 0 ? LOG_DAEMON : LOG_LOCAL0 + (cfg->log_facility << 3)};
    int rc = log_open(&o);
    for (int i = 0; i < cfg->n_warnings; i++)
        log_printf(TLOG_WARNING, "%s", cfg->warnings[i]);
    return rc;
}
