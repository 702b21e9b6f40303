/* json.c -- JSON output for tombo-sub's %j/%J, identical to what mosquitto_sub 2.0.11 prints with
 * cJSON 1.7 (see json.h). The parser follows cJSON's acceptance rules rather than RFC 8259's where
 * they differ (raw control bytes inside strings, "01", "-.5", a bad \u digit read as U+0000), and
 * prints while it parses: a value is appended as it is read, and dropped if the whole text turns
 * out invalid. Tested byte for byte against libcjson itself and against mosquitto_sub
 * (tests/tools/test_tools.py). */
#include "json.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NESTING_LIMIT 1000 /* cJSON's CJSON_NESTING_LIMIT */

void jb_init(jbuf_t *b, bool pretty)
{
    memset(b, 0, sizeof(*b));
    b->pretty = pretty;
}

void jb_free(jbuf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void jb_raw(jbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void jb_char(jbuf_t *b, char c)
{
    jb_raw(b, &c, 1);
}

static void jb_tabs(jbuf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        jb_char(b, '\t');
}

void jb_string(jbuf_t *b, const char *s, size_t n)
{
    const char *nul = memchr(s, 0, n);
    if (nul)
        n = (size_t)(nul - s);
    jb_char(b, '"');
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 32) {
                snprintf(u, sizeof(u), "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        jb_raw(b, s + i - run, run);
        run = 0;
        jb_raw(b, esc, strlen(esc));
    }
    jb_raw(b, s + n - run, run);
    jb_char(b, '"');
}

void jb_obj_open(jbuf_t *b)
{
    jb_char(b, '{');
    if (b->pretty)
        jb_char(b, '\n');
    b->depth++;
}

void jb_key(jbuf_t *b, const char *key, size_t n, bool first)
{
    if (!first) {
        jb_char(b, ',');
        if (b->pretty)
            jb_char(b, '\n');
    }
    if (b->pretty)
        jb_tabs(b, b->depth);
    jb_string(b, key, n);
    jb_raw(b, b->pretty ? ":\t" : ":", b->pretty ? 2 : 1);
}

void jb_obj_close(jbuf_t *b, size_t members)
{
    if (b->pretty) {
        if (members)
            jb_char(b, '\n');
        jb_tabs(b, b->depth - 1);
    }
    jb_char(b, '}');
    b->depth--;
}

/* ---- parsing (cJSON's rules) ---- */

/* The text is s[0..n) followed by a NUL (cJSON parses a C string: n stops at the first NUL). */
typedef struct jparse {
    const unsigned char *s;
    size_t n, pos;
    int depth;
    jbuf_t *out;
} jparse_t;

static unsigned char at(const jparse_t *p, size_t i)
{
    return i < p->n ? p->s[i] : 0;
}

/* cJSON treats every byte <= 32 as white space. */
static void skip_ws(jparse_t *p)
{
    while (p->pos < p->n && p->s[p->pos] <= 32)
        p->pos++;
}

static bool parse_value(jparse_t *p);

static unsigned hex4(const unsigned char *h)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = h[i];
        if (c >= '0' && c <= '9')
            v += c - '0';
        else if (c >= 'A' && c <= 'F')
            v += 10u + c - 'A';
        else if (c >= 'a' && c <= 'f')
            v += 10u + c - 'a';
        else
            return 0; /* as cJSON: an invalid digit makes the whole escape U+0000 */
        if (i < 3)
            v <<= 4;
    }
    return v;
}

/* A \u escape at in[0..) (in < end, end = the closing quote): appends UTF-8 to tmp; returns the
 * escape's length (6 or 12) or 0 when invalid. */
static size_t utf16_escape(const unsigned char *in, const unsigned char *end, unsigned char *tmp, size_t *tl)
{
    if (end - in < 6)
        return 0;
    unsigned long cp = hex4(in + 2);
    size_t len = 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        const unsigned char *lo = in + 6;
        if (end - lo < 6 || lo[0] != '\\' || lo[1] != 'u')
            return 0;
        unsigned second = hex4(lo + 2);
        if (second < 0xDC00 || second > 0xDFFF)
            return 0;
        cp = 0x10000 + (((cp & 0x3FF) << 10) | (second & 0x3FF));
        len = 12;
    }
    unsigned char *o = tmp + *tl;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        *tl += 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        *tl += 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        *tl += 3;
    } else {
        o[0] = (unsigned char)(0xF0 | (cp >> 18));
        o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (unsigned char)(0x80 | (cp & 0x3F));
        *tl += 4;
    }
    return len;
}

/* A string at p->pos (a '"'): decoded, then appended as jb_string prints it. */
static bool parse_string(jparse_t *p)
{
    if (at(p, p->pos) != '"')
        return false;
    size_t e = p->pos + 1;
    while (e < p->n && p->s[e] != '"') {
        if (p->s[e] == '\\') {
            if (e + 1 >= p->n)
                return false;
            e++;
        }
        e++;
    }
    if (e >= p->n)
        return false;
    const unsigned char *in = p->s + p->pos + 1, *end = p->s + e;
    unsigned char *tmp = malloc((size_t)(end - in) + 1);
    if (!tmp) {
        p->out->oom = true;
        return false;
    }
    size_t tl = 0;
    while (in < end) {
        if (*in != '\\') {
            tmp[tl++] = *in++;
            continue;
        }
        size_t step = 2;
        switch (in[1]) {
        case 'b': tmp[tl++] = '\b'; break;
        case 'f': tmp[tl++] = '\f'; break;
        case 'n': tmp[tl++] = '\n'; break;
        case 'r': tmp[tl++] = '\r'; break;
        case 't': tmp[tl++] = '\t'; break;
        case '"':
        case '\\':
        case '/': tmp[tl++] = in[1]; break;
        case 'u':
            step = utf16_escape(in, end, tmp, &tl);
            if (step)
                break;
            /* fall through */
        default:
            free(tmp);
            return false;
        }
        in += step;
    }
    jb_string(p->out, (const char *)tmp, tl);
    free(tmp);
    p->pos = e + 1;
    return true;
}

static bool same_double(double a, double b)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= m * DBL_EPSILON;
}

static bool parse_number(jparse_t *p)
{
    /* Every character that may belong to a number, then strtod on them (cJSON's way: "1-2"
     * reads as 1 followed by garbage). The run has no length limit, as in libcjson 1.7.15. */
    size_t i = 0;
    while (p->pos + i < p->n && strchr("0123456789+-eE.", p->s[p->pos + i]))
        i++;
    char small[64], *num = i < sizeof(small) ? small : malloc(i + 1);
    if (!num) {
        p->out->oom = true;
        return false;
    }
    memcpy(num, p->s + p->pos, i);
    num[i] = 0;
    char *after;
    double d = strtod(num, &after);
    size_t used = (size_t)(after - num);
    if (num != small)
        free(num);
    if (used == 0)
        return false;
    p->pos += used;
    char out[32];
    if (isnan(d) || isinf(d)) {
        snprintf(out, sizeof(out), "null");
    } else {
        snprintf(out, sizeof(out), "%1.15g", d);
        double back;
        if (sscanf(out, "%lg", &back) != 1 || !same_double(back, d))
            snprintf(out, sizeof(out), "%1.17g", d);
    }
    jb_raw(p->out, out, strlen(out));
    return true;
}

static bool parse_array(jparse_t *p)
{
    if (p->depth >= NESTING_LIMIT)
        return false;
    p->depth++;
    p->pos++; /* '[' */
    jb_char(p->out, '[');
    p->out->depth++;
    skip_ws(p);
    if (at(p, p->pos) != ']') {
        bool first = true;
        do {
            if (!first)
                jb_raw(p->out, p->out->pretty ? ", " : ",", p->out->pretty ? 2 : 1);
            if (!first)
                p->pos++; /* ',' */
            first = false;
            skip_ws(p);
            if (!parse_value(p))
                return false;
            skip_ws(p);
        } while (at(p, p->pos) == ',');
        if (at(p, p->pos) != ']')
            return false;
    }
    p->pos++;
    jb_char(p->out, ']');
    p->out->depth--;
    p->depth--;
    return true;
}

static bool parse_object(jparse_t *p)
{
    if (p->depth >= NESTING_LIMIT)
        return false;
    p->depth++;
    p->pos++; /* '{' */
    jb_obj_open(p->out);
    skip_ws(p);
    size_t members = 0;
    if (at(p, p->pos) != '}') {
        do {
            if (members)
                p->pos++; /* ',' */
            skip_ws(p);
            /* The key: printed by jb_key's rules, so parse it into place after the separator. */
            if (members) {
                jb_char(p->out, ',');
                if (p->out->pretty)
                    jb_char(p->out, '\n');
            }
            if (p->out->pretty)
                jb_tabs(p->out, p->out->depth);
            if (!parse_string(p))
                return false;
            jb_raw(p->out, p->out->pretty ? ":\t" : ":", p->out->pretty ? 2 : 1);
            skip_ws(p);
            if (at(p, p->pos) != ':')
                return false;
            p->pos++;
            skip_ws(p);
            if (!parse_value(p))
                return false;
            skip_ws(p);
            members++;
        } while (at(p, p->pos) == ',');
        if (at(p, p->pos) != '}')
            return false;
    }
    p->pos++;
    jb_obj_close(p->out, members);
    p->depth--;
    return true;
}

static bool literal(jparse_t *p, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++)
        if (at(p, p->pos + i) != (unsigned char)word[i])
            return false;
    p->pos += n;
    jb_raw(p->out, word, n);
    return true;
}

static bool parse_value(jparse_t *p)
{
    unsigned char c = at(p, p->pos);
    if (literal(p, "null") || literal(p, "false") || literal(p, "true"))
        return true;
    if (c == '"')
        return parse_string(p);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    if (c == '[')
        return parse_array(p);
    if (c == '{')
        return parse_object(p);
    return false;
}

bool jb_parse(jbuf_t *b, const char *text, size_t len)
{
    const char *nul = memchr(text, 0, len);
    jparse_t p = {.s = (const unsigned char *)text, .n = nul ? (size_t)(nul - text) : len, .out = b};
    size_t mark = b->len;
    int depth = b->depth;
    /* A UTF-8 byte order mark is skipped when at least one byte follows it (cJSON's bound). */
    if (p.n >= 4 && !memcmp(text, "\xEF\xBB\xBF", 3))
        p.pos = 3;
    skip_ws(&p);
    bool ok = parse_value(&p);
    if (ok) {
        skip_ws(&p);
        ok = p.pos == p.n && !nul; /* nothing after the value, and no NUL inside the payload */
    }
    if (!ok || b->oom) {
        b->len = mark;
        if (b->p)
            b->p[mark] = 0;
        b->depth = depth;
        return false;
    }
    return true;
}
