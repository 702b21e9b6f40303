/* config_args.c -- the broker's command line (-c FILE, -p PORT, -v, -d, -h), as Mosquitto's: the
 * file is read with the same reader as config_load (config_parse.h), then the options on top. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config_parse.h"

static void print_usage(void)
{
    printf("tombo version %s\n\n"
           "tombo is an MQTT v5.0/v3.1.1/v3.1 broker, a drop-in for Mosquitto.\n\n"
           "Usage: tombo [-c config_file] [-d] [-h] [-p port] [-v] [--version]\n\n"
           " -c : specify the broker config file (mosquitto.conf syntax).\n"
           " -d : put the broker into the background once it has started (errors before that\n"
           "      are still printed, and the exit status says whether it started).\n"
           " -h : display this help.\n"
           " -p : start the broker listening on the specified port (may be repeated).\n"
           "      Replaces the default listener; ignored when the config file defines listeners.\n"
           " -v : verbose mode - enable all logging types. This overrides\n"
           "      any logging options given in the config file.\n"
           " --version : print the version and exit.\n\n"
           "See docs/config.md for the configuration directives.\n",
           TOMBO_VERSION);
}

int config_args(struct tombo_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const char *conf = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config-file")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "-c argument given, but no config file specified");
                return -1;
            }
            conf = argv[++i];
        } else if (!strcmp(a, "-p") || !strcmp(a, "--port")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "-p argument given, but no port specified");
                return -1;
            }
            const char *s = argv[++i];
            char *end;
            errno = 0;
            long port = strtol(s, &end, 10);
            if (end == s || *end || errno || port < 1 || port > 65535) {
                snprintf(err, errlen, "invalid port '%s' (expected 1 to 65535)", s);
                return -1;
            }
            if (cfg->n_cmd_ports == TOMBO_MAX_CMD_PORTS) {
                snprintf(err, errlen, "only %d ports can be given on the command line", TOMBO_MAX_CMD_PORTS);
                return -1;
            }
            cfg->cmd_ports[cfg->n_cmd_ports++] = (uint16_t)port;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cfg->verbose = true;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--daemon")) {
            cfg->daemon = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_usage();
            return 1;
        } else if (!strcmp(a, "--version")) {
            printf("tombo %s\n", TOMBO_VERSION);
            return 1;
        } else {
            snprintf(err, errlen, "unknown option '%s' (tombo -h for help)", a);
            return -1;
        }
    }
    if (conf && load_file(cfg, conf, err, errlen) < 0)
        return -1;
    return config_finish(cfg, err, errlen);
}
