/* args.h -- the command-line flags tombo-pub and tombo-sub share with mosquitto_pub/sub (args.c);
 * each tool parses its own flags and hands the rest here. */
#ifndef TOMBO_TOOLS_ARGS_H
#define TOMBO_TOOLS_ARGS_H

#include "tool_cfg.h"

/* Try the common flag at argv[*i] (advancing *i past its arguments). Returns 1 when handled,
 * 0 when the flag is not a common one, -1 after printing an error. */
int tool_parse_common(tool_cfg_t *cfg, int argc, char **argv, int *i);
/* Checks after parsing (version-dependent rules, client id). Returns 0 or -1 after an error. */
int tool_cfg_finish(tool_cfg_t *cfg);

#endif
