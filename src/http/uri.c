/* uri.c -- request target paths and query parameters (uri.h). */
#include "http/uri.h"

#include <string.h>

http_str_t uri_path(http_str_t t)
{
    size_t n = 0;
    while (n < t.n && t.p[n] != '?' && t.p[n] != '#')
        n++;
    return (http_str_t){t.p, n};
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long decode(http_str_t s, char *out, size_t cap, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%') {
            if (s.n - i < 3)
                return -1;
            int h = hexval(s.p[i + 1]), l = hexval(s.p[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

long uri_decode(http_str_t s, char *out, size_t cap) { return decode(s, out, cap, false); }

long uri_query(http_str_t t, const char *name, char *out, size_t cap)
{
    size_t i = 0;
    while (i < t.n && t.p[i] != '?')
        i++;
    if (i == t.n)
        return -1;
    i++;
    size_t nl = strlen(name);
    while (i < t.n && t.p[i] != '#') {
        size_t j = i;
        while (j < t.n && t.p[j] != '&' && t.p[j] != '#')
            j++;
        /* one parameter: t.p[i..j) */
        size_t eq = i;
        while (eq < j && t.p[eq] != '=')
            eq++;
        if (eq - i == nl && memcmp(t.p + i, name, nl) == 0) {
            http_str_t v = eq < j ? (http_str_t){t.p + eq + 1, j - eq - 1} : (http_str_t){t.p + j, 0};
            if (cap == 0)
                return -2;
            long n = decode(v, out, cap - 1, true);
            if (n < 0)
                return -2;
            out[n] = '\0';
            return n;
        }
        i = j < t.n && t.p[j] == '&' ? j + 1 : j;
    }
    return -1;
}
