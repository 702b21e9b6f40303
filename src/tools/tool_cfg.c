/* tool_cfg.c -- the settings tombo-pub and tombo-sub run with (tool_cfg.h): their defaults, what
 * the settings own, and the rules every parser of them shares (numbers, the topic list) with
 * mosquitto's error messages. */
#include "tool_cfg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tool_cfg_init(tool_cfg_t *cfg, enum tool_kind kind)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = kind;
    static const char *const names[][3] = {[TOOL_PUB] = {"tombo-pub", "tombo_pub", "mosquitto_pub"},
                                           [TOOL_SUB] = {"tombo-sub", "tombo_sub", "mosquitto_sub"},
                                           [TOOL_RR] = {"tombo-rr", "tombo_rr", "mosquitto_rr"}};
    cfg->name = names[kind][0];
    cfg->file_name = names[kind][1];
    cfg->mosquitto_name = names[kind][2];
    cfg->host = "localhost";
    cfg->port = 1883;
    cfg->keepalive = 60;
    cfg->version = kind == TOOL_RR ? TOMBO_MQTT_V5 : TOMBO_MQTT_V311; /* as mosquitto_rr */
    cfg->clean = true;
    cfg->session_expiry = -1;
    cfg->max_inflight = 20;
}

void tool_cfg_free(tool_cfg_t *cfg)
{
    for (int i = 0; i < cfg->nfile_lines; i++)
        free(cfg->file_lines[i]);
    free(cfg->file_lines);
    free(cfg->topics);
    tombo_props_free(cfg->p_connect);
    tombo_props_free(cfg->p_publish);
    tombo_props_free(cfg->p_subscribe);
    tombo_props_free(cfg->p_unsubscribe);
    tombo_props_free(cfg->p_disconnect);
    tombo_props_free(cfg->p_will);
}

void tool_err(const tool_cfg_t *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void tool_usage_error(const tool_cfg_t *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUse '%s --help' to see usage.\n", cfg->name);
}

bool tool_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool tool_add_topic(tool_cfg_t *cfg, const char *t)
{
    if (cfg->kind != TOOL_SUB && cfg->ntopics) {
        tool_usage_error(cfg, "Only one topic can be used.\n");
        return false;
    }
    const char **l = realloc(cfg->topics, (size_t)(cfg->ntopics + 1) * sizeof(*l));
    if (!l)
        return false;
    cfg->topics = l;
    cfg->topics[cfg->ntopics++] = t;
    return true;
}
