/* json.c -- the HTTP endpoint's output buffer and JSON strings (json.h). */
#include "http/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hb_init(hbuf_t *b) { *b = (hbuf_t){0}; }

void hb_free(hbuf_t *b)
{
    free(b->p);
    *b = (hbuf_t){0};
}

static void reserve(hbuf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        abort();
    b->p = p;
    b->cap = cap;
}

void hb_put(hbuf_t *b, const void *s, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void hb_puts(hbuf_t *b, const char *s) { hb_put(b, s, strlen(s)); }

void hb_printf(hbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        hb_put(b, tmp, (size_t)n);
        return;
    }
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t utf8_seq_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void hb_json_str(hbuf_t *b, const void *src, size_t n)
{
    const uint8_t *s = src;
    reserve(b, n + 2);
    b->p[b->len++] = '"';
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
                j++;
            hb_put(b, s + i, j - i);
            i = j;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"': hb_put(b, "\\\"", 2); break;
            case '\\': hb_put(b, "\\\\", 2); break;
            case '\n': hb_put(b, "\\n", 2); break;
            case '\r': hb_put(b, "\\r", 2); break;
            case '\t': hb_put(b, "\\t", 2); break;
            case '\b': hb_put(b, "\\b", 2); break;
            case '\f': hb_put(b, "\\f", 2); break;
            default: hb_printf(b, "\\u%04x", c); break;
            }
            i++;
            continue;
        }
        size_t k = utf8_seq_len(s + i, n - i);
        if (k == 0) {
            hb_put(b, "\xef\xbf\xbd", 3); /* U+FFFD for each byte of an invalid sequence */
            i++;
        } else if (k == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            hb_puts(b, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
            i += 3;
        } else {
            hb_put(b, s + i, k);
            i += k;
        }
    }
    hb_put(b, "\"", 1);
}

void hb_json_cstr(hbuf_t *b, const char *s)
{
    if (!s)
        hb_puts(b, "null");
    else
        hb_json_str(b, s, strlen(s));
}
