/* options_file.c -- the options file mosquitto_pub/sub read before their command line
 * (options_file.h): found under $XDG_CONFIG_HOME or ~/.config, read line by line as flags. */
#include "options_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *open_options_file(const tool_cfg_t *cfg)
{
    const char *names[2] = {cfg->file_name, cfg->mosquitto_name};
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    for (int k = 0; k < 2; k++) {
        char path[4096];
        if (xdg)
            snprintf(path, sizeof(path), "%s/%s", xdg, names[k]);
        else if (home)
            snprintf(path, sizeof(path), "%s/.config/%s", home, names[k]);
        else
            return NULL;
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    return NULL;
}

int tool_options_file(tool_cfg_t *cfg, int (*parse)(int argc, char **argv))
{
    FILE *f = open_options_file(cfg);
    if (!f)
        return 0;
    char line[1024];
    int rc = 0;
    while (rc >= 0 && fgets(line, sizeof(line), f)) {
        if (line[0] == '#')
            continue;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        char **l = realloc(cfg->file_lines, (size_t)(cfg->nfile_lines + 1) * sizeof(*l));
        char *copy = strdup(line);
        if (l)
            cfg->file_lines = l;
        if (!l || !copy) {
            free(copy);
            tool_err(cfg, "Error: Out of memory.\n");
            rc = -1;
            break;
        }
        cfg->file_lines[cfg->nfile_lines++] = copy;
        /* As mosquitto: the flag is the first word, its argument all the rest of the line. */
        char *save = NULL, *args[3] = {NULL, NULL, NULL};
        args[1] = strtok_r(copy, " ", &save);
        if (!args[1])
            continue;
        args[2] = strtok_r(NULL, "", &save);
        rc = parse(args[2] ? 3 : 2, args);
    }
    fclose(f);
    return rc < 0 ? rc : 0;
}
