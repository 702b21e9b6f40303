/* payload.c -- the message flags of tombo-pub and tombo-rr (payload.h), with mosquitto_pub's errors. */
#include "payload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tool_payload_parse(const tool_cfg_t *cfg, tool_payload_t *p, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    enum tool_payload_mode m;
    if ((!strcmp(a, "-m") || !strcmp(a, "--message")) && *i + 1 < argc) {
        m = PAYLOAD_MSG;
        p->message = argv[++*i];
    } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && *i + 1 < argc) {
        m = PAYLOAD_FILE;
        p->file = argv[++*i];
    } else if (!strcmp(a, "-n") || !strcmp(a, "--null-message")) {
        m = PAYLOAD_NULL;
    } else if (!strcmp(a, "-s") || !strcmp(a, "--stdin-file")) {
        m = PAYLOAD_STDIN;
    } else if ((!strcmp(a, "-l") || !strcmp(a, "--stdin-line")) && cfg->kind == TOOL_PUB) {
        m = PAYLOAD_LINES;
    } else {
        return 0;
    }
    if (p->mode != PAYLOAD_NONE) {
        tool_usage_error(cfg, "Only one type of message can be sent at once.\n");
        return -1;
    }
    p->mode = m;
    return 1;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            if (cap > (size_t)268435455) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

int tool_payload_load(const tool_cfg_t *cfg, tool_payload_t *p)
{
    if (p->mode == PAYLOAD_FILE) {
        FILE *f = fopen(p->file, "rb");
        if (!f) {
            tool_err(cfg, "Error: Unable to open file \"%s\".\n", p->file);
            return -1;
        }
        p->data = read_all(f, &p->len);
        fclose(f);
        if (!p->data) {
            tool_err(cfg, "Error loading input file \"%s\".\n", p->file);
            return -1;
        }
    } else if (p->mode == PAYLOAD_STDIN) {
        if (!(p->data = read_all(stdin, &p->len))) {
            tool_err(cfg, "Error loading input from stdin.\n");
            return -1;
        }
    } else if (p->mode == PAYLOAD_MSG) {
        p->len = strlen(p->message);
        if (!(p->data = malloc(p->len + 1)))
            return -1;
        memcpy(p->data, p->message, p->len + 1);
    }
    return 0;
}
