/* payload.h -- the message a tool publishes (-m, -f, -n, -s, and -l for tombo-pub), parsed and
 * loaded the same way in tombo-pub and tombo-rr (payload.c). */
#ifndef TOMBO_TOOLS_PAYLOAD_H
#define TOMBO_TOOLS_PAYLOAD_H

#include <stddef.h>

#include "tool_cfg.h"

enum tool_payload_mode { PAYLOAD_NONE, PAYLOAD_MSG, PAYLOAD_FILE, PAYLOAD_NULL, PAYLOAD_STDIN, PAYLOAD_LINES };

typedef struct tool_payload {
    enum tool_payload_mode mode;
    const char *message, *file; /* -m, -f (point into argv or the options file lines) */
    char *data;                 /* after tool_payload_load: -m, -f or -s bytes (owned, free()) */
    size_t len;
} tool_payload_t;

/* Try the payload flag at argv[*i]: 1 when handled, 0 when not a payload flag (-l only for
 * tombo-pub), -1 after printing an error (a second payload flag). */
int tool_payload_parse(const tool_cfg_t *cfg, tool_payload_t *p, int argc, char **argv, int *i);
/* Read -f's file or -s's stdin into p->data, and copy -m's message there. 0, or -1 after an error. */
int tool_payload_load(const tool_cfg_t *cfg, tool_payload_t *p);

#endif
