/* fuzz_topic.c -- libFuzzer target for the topic rules: input is FILTER NUL NAME. Checks that the
 * validators and the matcher never read out of bounds and keep their invariants: a valid topic name
 * (other than one starting with "$share") is a valid filter that matches itself, '#' matches every
 * name not starting with '$', and the filter part of a valid $share filter is a valid filter (unless it
 * itself starts with "$share", which is then an ordinary filter). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic.h"
#include "mqtt/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t fn = nul ? (size_t)(nul - data) : size;
    /* Separate allocations so ASan catches reads past either view. */
    uint8_t *f = malloc(fn ? fn : 1);
    size_t nn = nul ? size - fn - 1 : 0;
    uint8_t *n = malloc(nn ? nn : 1);
    if (!f || !n)
        abort();
    memcpy(f, data, fn);
    if (nn)
        memcpy(n, nul + 1, nn);

    bool fvalid = mqtt_topic_filter_valid(f, fn);
    bool nvalid = mqtt_topic_name_valid(n, nn);
    (void)mqtt_utf8_wellformed(f, fn);
    (void)mqtt_utf8_unicode_valid(f, fn);
    bool shared_name = nn >= 6 && memcmp(n, "$share", 6) == 0;
    if (nvalid && !shared_name) {
        if (!mqtt_topic_filter_valid(n, nn))
            abort(); /* every topic name is a filter (except names that read as $share filters) */
        if (!mqtt_topic_match(n, nn, n, nn))
            abort(); /* and matches itself */
        if (!mqtt_topic_match((const uint8_t *)"#", 1, n, nn) && n[0] != '$')
            abort(); /* '#' matches every name not starting with '$' */
    }
    const uint8_t *g, *sf;
    size_t gn, sfn;
    if (mqtt_share_split(f, fn, &g, &gn, &sf, &sfn)) {
        if (g != f + 7 || sf + sfn != f + fn)
            abort();
        bool inner_shared = sfn >= 6 && memcmp(sf, "$share", 6) == 0;
        if (fvalid && !inner_shared && !mqtt_topic_filter_valid(sf, sfn))
            abort();
    } else if (fvalid && nvalid) {
        (void)mqtt_topic_match(f, fn, n, nn);
    }
    free(f);
    free(n);
    return 0;
}
