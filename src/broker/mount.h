/* mount.h -- `mount_point`: a listener whose clients live under a topic prefix. What a client of
 * such a listener publishes, subscribes to, unsubscribes from and leaves as its will gets the prefix
 * in front; what is delivered to it has the prefix taken off (conn_out.c), so it sees only its own
 * part of the tree, as in Mosquitto. A shared subscription keeps its form: $share/GROUP/ then the
 * prefixed filter (Mosquitto prefixes the whole string, making "PREFIX$share/..." a plain filter
 * that shares nothing). Listeners without a mount point pay one pointer test. */
#ifndef TOMBO_BROKER_MOUNT_H
#define TOMBO_BROKER_MOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"
#include "broker/config.h"
#include "mqtt/topic.h"

/* A topic name (filter false) or filter with the prefix in front, in `buf` when it fits (`cap`
 * bytes), else in a new allocation the caller frees when *owned is set. NULL when the result would
 * exceed the 65,535 bytes an MQTT string may hold. */
static inline uint8_t *mount_add(const struct tombo_listener *l, bool filter, const uint8_t *t, size_t n, uint8_t *buf,
                                 size_t cap, size_t *out_n, int *owned)
{
    size_t mn = strlen(l->mount_point);
    const uint8_t *group, *plain;
    size_t gn, pn;
    size_t head = 0; /* bytes of "$share/GROUP/" kept in front of the prefix */
    if (filter && mqtt_share_split(t, n, &group, &gn, &plain, &pn))
        head = (size_t)(plain - t);
    size_t total = n + mn;
    if (total > 65535)
        return NULL;
    uint8_t *out = buf;
    *owned = 0;
    if (total > cap) {
        out = xmalloc(total);
        *owned = 1;
    }
    memcpy(out, t, head);
    memcpy(out + head, l->mount_point, mn);
    memcpy(out + head + mn, t + head, n - head);
    *out_n = total;
    return out;
}

#endif
