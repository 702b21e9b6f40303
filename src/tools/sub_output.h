/* sub_output.h -- how tombo-sub prints a message: plain, -v, or a -F format string with
 * mosquitto_sub 2.0.11's specifiers, widths, precisions, escapes, @-time fields and %j/%J JSON. */
#ifndef TOMBO_TOOLS_SUB_OUTPUT_H
#define TOMBO_TOOLS_SUB_OUTPUT_H

#include <stdbool.h>

#include "tool_cfg.h"

typedef struct sub_output {
    const char *format; /* -F; NULL: the payload, or "topic payload" with -v */
    bool verbose;       /* -v */
    bool eol;           /* a newline after each message (no -N) */
    bool pretty;        /* --pretty: %j/%J indented as cJSON_Print does */
} sub_output_t;

/* NULL when `format` is valid, else mosquitto_sub's error text for it (without "Error: "). */
const char *sub_format_error(const char *format);
/* Print one message to stdout and flush. Errors (a %J payload that is not JSON) go to stderr
 * through tool_err, so --quiet silences them. */
void sub_print_message(const sub_output_t *o, const tool_cfg_t *cfg, const tombo_message_t *m);

#endif
