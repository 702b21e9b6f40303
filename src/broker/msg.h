/* msg.h -- an application message as the broker stores and forwards it.
 *
 * Ownership: a msg_t is reference counted (atomic) and immutable once built. Subscribers' queues,
 * in-flight tables, the retained store and wills each hold one reference. Topic, payload and the
 * raw MQTT 5 property block live in the same allocation as the header, a block of the building
 * thread's slab (slab.h); each encoding is another slab block, freed with the message. */
#ifndef TOMBO_BROKER_MSG_H
#define TOMBO_BROKER_MSG_H

#include <stdatomic.h>

#include "mqtt/packet.h"

/* The MQTT 5 properties a broker forwards unchanged [MQTT-3.3.2-4..20]. */
#define MSG_FORWARD_PROPS                                                                            \
    (MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) |                         \
     MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA) |                     \
     MQTT_HAS(MQTT_PROP_USER_PROPERTY))

/* One encoding of a message as a PUBLISH packet, with packet id 0 (patched per receiver). */
typedef struct msg_enc {
    uint32_t len;
    uint32_t id_off; /* offset of the 2-byte packet identifier (qos > 0) */
    uint8_t bytes[];
} msg_enc_t;

/* Encoding classes: protocol family (3.1/3.1.1 share a PUBLISH layout; 5.0 differs) x QoS x
 * retain flag. */
#define MSG_ENC_CLASSES (2 * 3 * 2)

typedef struct msg {
    atomic_uint refs;
    /* Encoded once per class on first use, shared by every receiver of that class; set with a
     * compare-and-swap, so any worker may fill a slot, and freed with the message. */
    _Atomic(msg_enc_t *) enc[MSG_ENC_CLASSES];
    uint8_t qos;       /* QoS it was published with */
    uint8_t retain;    /* retain flag it was published with */
    uint8_t has_expiry;
    uint8_t from_cluster; /* came from another cluster node: not forwarded again (cluster.h) */
    int64_t expiry_at; /* CLOCK_MONOTONIC ms after which it must not be delivered */
    /* The cluster nodes it was forwarded to as well (bit i: cluster.c's node index i): a session
     * moving to one of them does not take it along, that node delivers it itself. */
    uint64_t cluster_to;
    /* Its identity across the cluster, given once by the node where it was published (cluster.c)
     * and carried with it to other nodes, forwarded or in a session that moves: a moved session
     * queues one identity once (dedup.h). Both 0: none (never left this node). */
    uint64_t cluster_origin, cluster_seq;
    /* Persistence (store.h): its row in the store, set under the store's lock by the first durable
     * reference; when the last reference goes, the row is deleted. 0: not stored. */
    uint64_t store_id;
    struct store *store;
    /* Set under the store's lock when a persistent session's outq row took a copy of the message
     * itself (its first durable reference, store.c): the next durable reference gets a msgs row. */
    uint8_t store_inline;
    mqtt_bytes_t topic;
    mqtt_bytes_t payload;
    /* The forwarded MQTT 5 properties (MSG_FORWARD_PROPS), views into data[]; msg_props()
     * gives them as an mqtt_props_t. Kept this small rather than as an mqtt_props_t (250 bytes,
     * whose zeroing was three quarters of msg_new's time) since most messages have none. */
    uint64_t props_has;  /* 0: no properties */
    uint32_t user_n;     /* user properties, in user_src (the publisher's raw property block) */
    uint8_t payload_format;
    mqtt_bytes_t content_type, response_topic, correlation_data, user_src;
    uint8_t data[];
} msg_t;

/* m's forwardable properties as a full property set (to encode a PUBLISH): everything else zero. */
void msg_props(const msg_t *m, mqtt_props_t *out);

/* Build a message, copying topic, payload and the forwardable part of `props` (may be NULL, e.g.
 * v3 publishers). Message expiry in props becomes an absolute deadline from now_ms. */
msg_t *msg_new(mqtt_bytes_t topic, mqtt_bytes_t payload, uint8_t qos, uint8_t retain, const mqtt_props_t *props,
               int64_t now_ms);
static inline void msg_hold(msg_t *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }
void msg_release(msg_t *m);

/* Messages alive and their payload bytes, for $SYS (messages/stored, store/messages/count and
 * bytes). Each thread that attached a counter set counts what it creates and what it frees in its
 * own (plain adds: no shared cache line on the message path); other threads (the store's, start-up)
 * count in a shared set with atomic adds. Alive = the sum of made - freed over every set. */
typedef struct msg_stats {
    atomic_ulong made, freed, bytes_made, bytes_freed;
} msg_stats_t;
/* The calling thread counts in `s` from now on (NULL: in the shared set). */
void msg_stats_attach(msg_stats_t *s);
/* The shared set, for the sum. */
const msg_stats_t *msg_stats_shared(void);
/* Seconds of expiry left (>= 1 while not expired), or 0 when expired. Only meaningful if has_expiry. */
uint32_t msg_expiry_left(const msg_t *m, int64_t now_ms);
static inline int msg_expired(const msg_t *m, int64_t now_ms) { return m->has_expiry && now_ms >= m->expiry_at; }

/* The shared encoding of m for a receiver at protocol `version` with this QoS and retain flag, with
 * no per-receiver properties (subscription identifiers, topic alias, message expiry). */
const msg_enc_t *msg_encoded(msg_t *m, uint8_t version, uint8_t qos, uint8_t retain);

/* Transitional: now_ms() is the base layer's (base/clock.h); store.c (branch arch) still finds it
 * through this header. */
#include "base/clock.h"

#endif
