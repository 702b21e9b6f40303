/* log.c -- the client's log lines: formatted and handed to the application's on_log callback
 * when its mask asks for the level (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void client_log(tombo_client_t *c, int level, const char *fmt, ...)
{
    if (!c->on_log || !(c->log_mask & level))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->on_log(c, c->user, level, line);
}
