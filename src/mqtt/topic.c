/* topic.c -- topic name and filter rules, wildcard matching and $share parsing (MQTT 5.0 section
 * 4.7 and 4.8.2; the same rules hold for 3.1.1). Pure functions over byte views, no allocation. */
#include "mqtt/topic.h"

#include <string.h>

#include "mqtt/utf8.h"
#include "mqtt/wire.h"

bool mqtt_topic_name_valid(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 65535) /* [MQTT-4.7.3-1], [MQTT-4.7.3-3] */
        return false;
    return mqtt_utf8_topic_scan(s, n) == 0; /* valid UTF-8, no '+' or '#' [MQTT-3.3.2-2] */
}

/* Wildcard structure of a (non-shared) filter: '+' fills a whole level [MQTT-4.7.1-2], '#' is the
 * whole last level [MQTT-4.7.1-1]. */
static bool filter_structure_valid(const uint8_t *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            if ((i > 0 && s[i - 1] != '/') || (i + 1 < n && s[i + 1] != '/'))
                return false;
        } else if (s[i] == '#') {
            if ((i > 0 && s[i - 1] != '/') || i + 1 != n)
                return false;
        }
    }
    return true;
}

bool mqtt_share_split(const uint8_t *s, size_t n, const uint8_t **group, size_t *gn, const uint8_t **filter,
                      size_t *fn)
{
    if (n < 7 || memcmp(s, "$share/", 7) != 0)
        return false;
    const uint8_t *g = s + 7;
    const uint8_t *slash = memchr(g, '/', n - 7);
    if (!slash)
        return false;
    *group = g;
    *gn = (size_t)(slash - g);
    *filter = slash + 1;
    *fn = n - 7 - *gn - 1;
    return true;
}

bool mqtt_topic_filter_valid(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 65535 || !mqtt_utf8_valid(s, n))
        return false;
    if (n >= 6 && memcmp(s, "$share", 6) == 0 && (n == 6 || s[6] == '/')) {
        /* [MQTT-4.8.2-1]: ShareName at least one character, no '/', '+' or '#';
         * [MQTT-4.8.2-2]: followed by '/' and a Topic Filter. */
        const uint8_t *g, *f;
        size_t gn, fn;
        if (!mqtt_share_split(s, n, &g, &gn, &f, &fn) || gn == 0)
            return false;
        if (memchr(g, '+', gn) || memchr(g, '#', gn))
            return false;
        return filter_structure_valid(f, fn);
    }
    return filter_structure_valid(s, n);
}

bool mqtt_topic_match(const uint8_t *filter, size_t fn, const uint8_t *name, size_t nn)
{
    size_t fi = 0, ni = 0;
    /* [MQTT-4.7.2-1]: '#' or '+' as the first character does not match names starting with '$'. */
    if (nn > 0 && name[0] == '$' && fn > 0 && (filter[0] == '+' || filter[0] == '#'))
        return false;
    for (;;) {
        /* At the start of a level in both. */
        if (fi < fn && filter[fi] == '#')
            return true; /* matches this level and all below, incl. the parent ("a/#" vs "a") */
        if (fi < fn && filter[fi] == '+') {
            fi++;
            while (ni < nn && name[ni] != '/')
                ni++;
        } else {
            while (fi < fn && ni < nn && filter[fi] != '/' && name[ni] != '/') {
                if (filter[fi] != name[ni])
                    return false;
                fi++, ni++;
            }
            if ((fi < fn && filter[fi] != '/') || (ni < nn && name[ni] != '/'))
                return false; /* level lengths differ */
        }
        /* Both at the end of a level. */
        if (fi == fn && ni == nn)
            return true;
        if (ni == nn) {
            /* Name ended; filter has "/#" left: '#' also matches the parent level. */
            return fn - fi == 2 && filter[fi] == '/' && filter[fi + 1] == '#';
        }
        if (fi == fn)
            return false;
        fi++, ni++; /* skip the '/' in both */
    }
}
