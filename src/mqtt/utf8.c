/* utf8.c -- MQTT's UTF-8 string rules [MQTT-1.5.4-1..3]: a hand-written decoder (no locale, no
 * tables) that walks the bytes once. ASCII runs take a fast path since topics are mostly ASCII. */
#include "mqtt/utf8.h"

#include <string.h>

#include "mqtt/wire.h"

/* Decode one code point at s[i..n) that starts with a non-ASCII lead byte. Returns the code point and
 * advances *i, or returns -1 for ill-formed input (RFC 3629: bad lead byte, bad or missing
 * continuation, overlong form, surrogate, above U+10FFFF). */
static int32_t utf8_next(const uint8_t *s, size_t n, size_t *i)
{
    size_t k = *i;
    uint8_t c = s[k];
    uint32_t cp;
    size_t need;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return -1; /* continuation byte as lead, 0xC0/0xC1 (always overlong), 0xF5.. */
    }
    if (n - k - 1 < need)
        return -1;
    for (size_t j = 1; j <= need; j++) {
        uint8_t cc = s[k + j];
        if ((cc & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i = k + need + 1;
    return (int32_t)cp;
}

bool mqtt_utf8_unicode_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (utf8_next(s, n, &i) < 0)
            return false;
    }
    return true;
}

bool mqtt_utf8_wellformed(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        if (utf8_next(s, n, &i) < 0)
            return false;
    }
    return true;
}

/* Eight bytes at once: does the word hold a byte < 0x20, >= 0x7F, '+' or '#'? (Exact as to
 * whether one exists; the byte loop then finds which.) */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline bool word_special(uint64_t w)
{
    uint64_t lt20 = (w - 0x20 * ONES) & ~w & HIGHS;
    uint64_t ge7f = (w | (w + ONES)) & HIGHS;
    uint64_t plus = w ^ ('+' * ONES), hash = w ^ ('#' * ONES);
    uint64_t wild = ((plus - ONES) & ~plus & HIGHS) | ((hash - ONES) & ~hash & HIGHS);
    return (lt20 | ge7f | wild) != 0;
}

int mqtt_utf8_topic_scan(const uint8_t *s, size_t n)
{
    size_t i = 0;
    int wild = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!word_special(w)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F)
                return -1;
            if (c == '+' || c == '#')
                wild = 1;
            i++;
            continue;
        }
        int32_t cp = utf8_next(s, n, &i);
        if (cp < 0 || cp <= 0x9F)
            return -1; /* ill-formed, or C1 control U+0080..U+009F */
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
            return -1; /* non-characters */
    }
    return wild;
}

bool mqtt_utf8_valid(const uint8_t *s, size_t n)
{
    return mqtt_utf8_topic_scan(s, n) >= 0;
}
