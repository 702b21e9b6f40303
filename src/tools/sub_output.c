/* sub_output.c -- tombo-sub's message output, byte for byte as mosquitto_sub 2.0.11 prints it,
 * including its corners: a width truncates the payload (%5p prints at most 5 bytes), %-p pads
 * with as many spaces as the payload is long, absent properties print as padding (except %R),
 * %S prints the first subscription identifier, and %j reports a topic alias as 0. */
#include "sub_output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

/* ---- format check (before connecting) ---- */

const char *sub_format_error(const char *s)
{
    static char msg[64];
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i == len - 1)
                return "Incomplete format specifier.";
            if (s[i + 1] == '0' || s[i + 1] == '-') {
                if (++i == len - 1)
                    return "Incomplete format specifier.";
            }
            while (s[i + 1] >= '0' && s[i + 1] <= '9')
                if (++i == len - 1)
                    return "Incomplete format specifier.";
            if (s[i + 1] == '.') {
                if (++i == len - 1)
                    return "Incomplete format specifier.";
                while (s[i + 1] >= '0' && s[i + 1] <= '9')
                    if (++i == len - 1)
                        return "Incomplete format specifier.";
            }
            if (!strchr("%ACDEFIlmPpqRSrtjJUxX", s[i + 1])) {
                snprintf(msg, sizeof(msg), "Invalid format specifier '%c'.", s[i + 1]);
                return msg;
            }
            i++;
        } else if (s[i] == '@') {
            if (i == len - 1)
                return "Incomplete format specifier.";
            i++;
        } else if (s[i] == '\\') {
            if (i == len - 1)
                return "Incomplete escape specifier.";
            if (!strchr("\\0aenrtv", s[i + 1])) {
                snprintf(msg, sizeof(msg), "Invalid escape specifier '%c'.", s[i + 1]);
                return msg;
            }
            i++;
        }
    }
    return NULL;
}

/* ---- field printers (mosquitto's padding rules) ---- */

typedef struct spec {
    bool left;     /* '-' */
    char pad;      /* ' ' or '0' */
    int width;
    int precision; /* -1: none */
} spec_t;

static void put_n(char c, int n)
{
    for (int i = 0; i < n; i++)
        putchar(c);
}

static void print_int(int v, const spec_t *sp)
{
    if (sp->width == 0)
        printf("%d", v);
    else if (sp->left)
        printf("%-*d", sp->width, v);
    else if (sp->pad == '0')
        printf("%0*d", sp->width, v);
    else
        printf("%*d", sp->width, v);
}

/* A string field: precision cuts, width pads with spaces (never zeros). */
static void print_str(const char *s, size_t n, const spec_t *sp)
{
    if (sp->precision >= 0 && (size_t)sp->precision < n)
        n = (size_t)sp->precision;
    int pad = sp->width > (int)n ? sp->width - (int)n : 0;
    if (!sp->left)
        put_n(' ', pad);
    fwrite(s, 1, n, stdout);
    if (sp->left)
        put_n(' ', pad);
}

/* The payload raw (hex 0), in lower (1) or upper (2) case hex. A width limits the bytes printed;
 * with '-' the padding is |width - length| spaces, so "%-p" adds as many spaces as bytes. */
static void print_payload(const unsigned char *p, int len, int hex, const spec_t *sp)
{
    int pad;
    if (sp->width > 0) {
        if (len > sp->width)
            len = sp->width;
        if (hex) {
            len /= 2;
            pad = sp->width - len * 2;
        } else {
            pad = sp->width - len;
        }
    } else {
        pad = sp->width - len;
    }
    if (!sp->left)
        put_n(sp->pad, pad);
    if (hex == 0)
        fwrite(p, 1, (size_t)len, stdout);
    else
        for (int i = 0; i < len; i++)
            printf(hex == 1 ? "%02x" : "%02X", p[i]);
    if (sp->left)
        put_n(' ', pad < 0 ? -pad : pad);
}

/* ---- JSON (%j, %J) ---- */

static void json_number(jbuf_t *b, double v)
{
    char n[32];
    snprintf(n, sizeof(n), "%1.15g", v);
    jb_raw(b, n, strlen(n));
}

static void json_props(jbuf_t *b, const tombo_props_t *p, bool first)
{
    jb_key(b, "properties", 10, first);
    jb_obj_open(b);
    size_t n = tombo_props_count(p), members = 0, sub_ids = 0;
    bool users_done = false;
    for (size_t i = 0; i < n; i++) {
        int id = tombo_props_id_at(p, i);
        const char *s;
        size_t sl;
        uint32_t v;
        switch (id) {
        case TOMBO_PROP_PAYLOAD_FORMAT:
        case TOMBO_PROP_MESSAGE_EXPIRY:
            if (!tombo_props_get_int(p, id, &v))
                continue;
            jb_key(b, id == TOMBO_PROP_PAYLOAD_FORMAT ? "payload-format-indicator" : "message-expiry-interval",
                   id == TOMBO_PROP_PAYLOAD_FORMAT ? 24 : 23, members == 0);
            json_number(b, v);
            break;
        case TOMBO_PROP_CONTENT_TYPE:
        case TOMBO_PROP_RESPONSE_TOPIC:
        case TOMBO_PROP_CORRELATION_DATA: {
            if (!tombo_props_get_string(p, id, &s, &sl))
                continue;
            const char *name = id == TOMBO_PROP_CONTENT_TYPE     ? "content-type"
                               : id == TOMBO_PROP_RESPONSE_TOPIC ? "response-topic"
                                                                 : "correlation-data";
            jb_key(b, name, strlen(name), members == 0);
            jb_string(b, s, sl);
            break;
        }
        case TOMBO_PROP_SUBSCRIPTION_ID:
            if (!tombo_props_get_sub_id(p, sub_ids++, &v))
                continue;
            jb_key(b, "subscription-identifier", 23, members == 0);
            json_number(b, v);
            break;
        case TOMBO_PROP_TOPIC_ALIAS:
            /* mosquitto_sub 2.0.11 reads the alias under the wrong identifier and prints 0. */
            jb_key(b, "topic-alias", 11, members == 0);
            json_number(b, 0);
            break;
        case TOMBO_PROP_USER_PROPERTY: {
            if (users_done)
                continue;
            users_done = true;
            jb_key(b, "user-properties", 15, members == 0);
            jb_obj_open(b);
            size_t nu = tombo_props_user_count(p), k = 0;
            for (size_t u = 0; u < nu; u++) {
                const char *key, *val;
                size_t kl, vl;
                if (!tombo_props_get_user(p, u, &key, &kl, &val, &vl))
                    continue;
                jb_key(b, key, kl, k++ == 0);
                jb_string(b, val, vl);
            }
            jb_obj_close(b, k);
            break;
        }
        default:
            continue;
        }
        members++;
    }
    jb_obj_close(b, members);
}

/* %j (payload as a string) or %J (payload parsed as JSON). Prints nothing and returns false when
 * a %J payload is not JSON. */
static bool print_json(const sub_output_t *o, const tool_cfg_t *cfg, const tombo_message_t *m, bool parse,
                       const struct timespec *now, const struct tm *tm)
{
    jbuf_t b;
    jb_init(&b, o->pretty);
    char ts[80], zone[16];
    strftime(ts, 40, "%Y-%m-%dT%H:%M:%S", tm);
    strftime(zone, sizeof(zone), "%z", tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%06dZ%s", (int)(now->tv_nsec / 1000), zone);
    jb_obj_open(&b);
    jb_key(&b, "tst", 3, true);
    jb_string(&b, ts, strlen(ts));
    jb_key(&b, "topic", 5, false);
    jb_string(&b, m->topic, strlen(m->topic));
    jb_key(&b, "qos", 3, false);
    json_number(&b, m->qos);
    jb_key(&b, "retain", 6, false);
    json_number(&b, m->retain ? 1 : 0);
    jb_key(&b, "payloadlen", 10, false);
    json_number(&b, (double)m->payload_len);
    if (m->qos > 0) {
        jb_key(&b, "mid", 3, false);
        json_number(&b, m->mid);
    }
    if (cfg->version == TOMBO_MQTT_V5 && m->props && tombo_props_count(m->props))
        json_props(&b, m->props, false);
    jb_key(&b, "payload", 7, false);
    bool ok = true;
    if (!m->payload_len)
        jb_raw(&b, "null", 4);
    else if (!parse)
        jb_string(&b, m->payload, m->payload_len);
    else
        ok = jb_parse(&b, m->payload, m->payload_len);
    jb_obj_close(&b, 1 /* not empty */);
    if (b.oom) {
        tool_err(cfg, "Error: Out of memory.\n");
    } else if (!ok) {
        tool_err(cfg, "Error: Message payload is not valid JSON on topic %s.\n", m->topic);
    } else {
        fwrite(b.p, 1, b.len, stdout);
    }
    jb_free(&b);
    return ok;
}

/* ---- one % field ---- */

static void print_field(const sub_output_t *o, const tool_cfg_t *cfg, const tombo_message_t *m, char f,
                        const spec_t *sp, const struct timespec *now, const struct tm *tm)
{
    const tombo_props_t *p = m->props;
    const unsigned char *pl = m->payload;
    const char *s;
    size_t n;
    uint32_t v;
    char buf[100];
    switch (f) {
    case '%': putchar('%'); break;
    case 'A':
        if (tombo_props_get_int(p, TOMBO_PROP_TOPIC_ALIAS, &v))
            print_int((int)v, sp);
        else
            put_n(sp->pad, sp->width);
        break;
    case 'C':
        if (tombo_props_get_string(p, TOMBO_PROP_CONTENT_TYPE, &s, &n))
            print_str(s, n, sp);
        else
            put_n(' ', sp->width);
        break;
    case 'D':
        if (tombo_props_get_string(p, TOMBO_PROP_CORRELATION_DATA, &s, &n))
            fwrite(s, 1, n, stdout);
        break;
    case 'E':
    case 'F':
    case 'S': {
        int id = f == 'E' ? TOMBO_PROP_MESSAGE_EXPIRY : f == 'F' ? TOMBO_PROP_PAYLOAD_FORMAT : -1;
        bool have = id > 0 ? tombo_props_get_int(p, id, &v) : tombo_props_get_sub_id(p, 0, &v);
        if (have)
            print_int((int)v, sp);
        else
            put_n(sp->pad, sp->width);
        break;
    }
    case 'I':
        n = strftime(buf, sizeof(buf), "%FT%T%z", tm);
        if (n)
            print_str(buf, n, sp);
        else
            put_n(' ', sp->width);
        break;
    case 'j':
    case 'J': print_json(o, cfg, m, f == 'J', now, tm); break;
    case 'l': print_int((int)m->payload_len, sp); break;
    case 'm': print_int(m->mid, sp); break;
    case 'P': {
        size_t nu = tombo_props_user_count(p), k = 0;
        for (size_t i = 0; i < nu; i++) {
            const char *key, *val;
            size_t kl, vl;
            if (!tombo_props_get_user(p, i, &key, &kl, &val, &vl))
                continue;
            if (k++)
                putchar(' ');
            fwrite(key, 1, kl, stdout);
            putchar(':');
            fwrite(val, 1, vl, stdout);
        }
        break;
    }
    case 'p': print_payload(pl, (int)m->payload_len, 0, sp); break;
    case 'x': print_payload(pl, (int)m->payload_len, 1, sp); break;
    case 'X': print_payload(pl, (int)m->payload_len, 2, sp); break;
    case 'q': putchar('0' + m->qos); break;
    case 'R':
        if (tombo_props_get_string(p, TOMBO_PROP_RESPONSE_TOPIC, &s, &n))
            print_str(s, n, sp);
        break;
    case 'r': putchar(m->retain ? '1' : '0'); break;
    case 't': print_str(m->topic, strlen(m->topic), sp); break;
    case 'U': printf("%lld.%09ld", (long long)now->tv_sec, now->tv_nsec); break;
    }
}

static void print_formatted(const sub_output_t *o, const tool_cfg_t *cfg, const tombo_message_t *m)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    const char *f = o->format;
    size_t len = strlen(f);
    for (size_t i = 0; i < len; i++) {
        if (f[i] == '%') {
            spec_t sp = {.pad = ' ', .precision = -1};
            if (++i >= len)
                break;
            if (f[i] == '-') {
                sp.left = true;
                if (i < len - 1)
                    i++;
            }
            if (f[i] == '0') {
                sp.pad = '0';
                if (i < len - 1)
                    i++;
            }
            while (i < len - 1 && f[i] >= '0' && f[i] <= '9')
                sp.width = sp.width * 10 + (f[i++] - '0');
            if (f[i] == '.' && i < len - 1) {
                i++;
                sp.precision = 0;
                while (i < len - 1 && f[i] >= '0' && f[i] <= '9')
                    sp.precision = sp.precision * 10 + (f[i++] - '0');
            }
            print_field(o, cfg, m, f[i], &sp, &now, &tm);
        } else if (f[i] == '@') {
            if (++i >= len)
                break;
            if (f[i] == '@') {
                putchar('@');
            } else if (f[i] == 'N') {
                printf("%09ld", now.tv_nsec);
            } else {
                char spec[3] = {'%', f[i], 0}, out[100];
                size_t n = strftime(out, sizeof(out), spec, &tm);
                fwrite(out, 1, n, stdout);
            }
        } else if (f[i] == '\\') {
            if (++i >= len)
                break;
            static const char from[] = "\\0aenrtv", to[] = "\\\0\a\033\n\r\t\v";
            const char *k = strchr(from, f[i]);
            if (k && f[i])
                putchar(to[k - from]);
        } else {
            putchar(f[i]);
        }
    }
    if (o->eol)
        putchar('\n');
}

void sub_print_message(const sub_output_t *o, const tool_cfg_t *cfg, const tombo_message_t *m)
{
    if (o->format) {
        print_formatted(o, cfg, m);
    } else if (o->verbose) {
        if (m->payload_len) {
            printf("%s ", m->topic);
            fwrite(m->payload, 1, m->payload_len, stdout);
            if (o->eol)
                putchar('\n');
        } else if (o->eol) { /* as mosquitto_sub: -v -N prints nothing for an empty payload */
            printf("%s (null)\n", m->topic);
        }
    } else if (m->payload_len) { /* as mosquitto_sub: an empty payload prints nothing */
        fwrite(m->payload, 1, m->payload_len, stdout);
        if (o->eol)
            putchar('\n');
    }
    fflush(stdout);
}
