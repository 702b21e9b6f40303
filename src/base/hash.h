/* hash.h -- FNV-1a, the one string hash of tombo (base layer): topic levels, topic aliases, client
 * ids in the registry, the cluster's per-node ordering and the bench relay's table all hash short
 * byte strings into open-addressed tables, where FNV-1a is fast and spreads well enough.
 * Inline and nothing to link, so libtombo and tombo-bench take it as they take clock.h. */
#ifndef TOMBO_BASE_HASH_H
#define TOMBO_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fnv1a32(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

static inline uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

#endif
