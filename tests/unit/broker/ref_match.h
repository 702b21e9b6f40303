/* ref_match.h -- the test oracle for topic matching: does filter f match topic t (both
 * NUL-terminated)? Written straight from spec section 4.7, deliberately simple, so the tries in
 * subtree.c and retain.c can be checked against it on random filters and topics. */
#ifndef TOMBO_TEST_REF_MATCH_H
#define TOMBO_TEST_REF_MATCH_H

#include <stdbool.h>
#include <string.h>

static inline bool ref_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false; /* [MQTT-4.7.2-1] */
    for (;;) {
        if (f[0] == '#')
            return true;
        size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        f += fl;
        t += tl;
        if (!*f && !*t)
            return true;
        if (!*f)
            return false;
        if (!*t)
            return strcmp(f, "/#") == 0; /* "a/#" matches "a" */
        f++;
        t++;
    }
}

#endif
