/* options_file.h -- the per-user options file of tombo-pub and tombo-sub, as mosquitto_pub/sub read
 * theirs (options_file.c). */
#ifndef TOMBO_TOOLS_OPTIONS_FILE_H
#define TOMBO_TOOLS_OPTIONS_FILE_H

#include "tool_cfg.h"

/* Read the options file mosquitto_pub/sub read before their arguments: $XDG_CONFIG_HOME/tombo_pub
 * (or ~/.config/tombo_pub; tombo_sub for tombo-sub), or when that does not exist mosquitto's own
 * (mosquitto_pub / mosquitto_sub), so existing setups carry over. Each line not starting with '#'
 * is a flag and, after the first space, its argument, given to parse(argc, argv) with argv[0] NULL.
 * The lines are kept in cfg->file_lines. Returns 0 (also when there is no file) or parse's
 * negative result. */
int tool_options_file(tool_cfg_t *cfg, int (*parse)(int argc, char **argv));

#endif
