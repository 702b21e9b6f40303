/* wire.h -- private to src/mqtt: bounds-checked byte readers and unchecked writers shared by the
 * decoder, the encoder and the property code. Not part of the codec's public contract. */
#ifndef TOMBO_MQTT_WIRE_H
#define TOMBO_MQTT_WIRE_H

#include <string.h>

#include "mqtt/packet.h"
#include "mqtt/varint.h"

/* A read cursor over [p, end). Every reader returns false, without moving, when the bytes run out. */
typedef struct rd {
    const uint8_t *p, *end;
} rd_t;

static inline size_t rd_left(const rd_t *r) { return (size_t)(r->end - r->p); }

static inline bool rd_u8(rd_t *r, uint8_t *v)
{
    if (r->p >= r->end)
        return false;
    *v = *r->p++;
    return true;
}

static inline bool rd_u16(rd_t *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return false;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return true;
}

static inline bool rd_u32(rd_t *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return false;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return true;
}

/* Two-byte length prefixed string or binary data. */
static inline bool rd_bin(rd_t *r, mqtt_bytes_t *b)
{
    if (rd_left(r) < 2)
        return false;
    uint32_t n = ((uint32_t)r->p[0] << 8) | r->p[1];
    if (rd_left(r) - 2 < n)
        return false;
    b->p = r->p + 2;
    b->len = n;
    r->p += 2 + n;
    return true;
}

/* Variable byte integer; *minimal tells whether it used the fewest bytes [MQTT-1.5.5-1]. */
static inline bool rd_varint(rd_t *r, uint32_t *v, bool *minimal)
{
    int n = mqtt_varint_decode(r->p, rd_left(r), v);
    if (n <= 0)
        return false;
    *minimal = n == mqtt_varint_len(*v);
    r->p += n;
    return true;
}

static inline uint8_t *wr_u8(uint8_t *o, uint8_t v)
{
    *o = v;
    return o + 1;
}

static inline uint8_t *wr_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static inline uint8_t *wr_u32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

static inline uint8_t *wr_bin(uint8_t *o, mqtt_bytes_t b)
{
    o = wr_u16(o, (uint16_t)b.len);
    if (b.len)
        memcpy(o, b.p, b.len);
    return o + b.len;
}

static inline uint8_t *wr_varint(uint8_t *o, uint32_t v) { return o + mqtt_varint_encode(v, o); }

/* Zero a struct of n bytes (n a multiple of 8) with 16-byte stores. GCC turns a plain memset of a
 * few hundred bytes into `rep stos`, whose start-up cost was a third of a PUBLISH decode. */
typedef struct {
    uint64_t a, b;
} __attribute__((may_alias)) wire_u128_t;
typedef uint64_t __attribute__((may_alias)) wire_u64_t;
static inline void wire_zero(void *p, size_t n)
{
    wire_u128_t *w = p;
    size_t i;
    for (i = 0; i < n / 16; i++)
        w[i] = (wire_u128_t){0, 0};
    if (n % 16)
        *(wire_u64_t *)((char *)p + n - 8) = 0;
}

/* One pass over a topic: -1 when it fails mqtt_utf8_valid, else 1 when it holds '+' or '#', else 0. */
int mqtt_utf8_topic_scan(const uint8_t *s, size_t n);

/* Property block context: the packet type, or MQTT_PROPS_WILL for the will properties of CONNECT. */
#define MQTT_PROPS_WILL 0

/* Decode a property block (length prefix included) at *r for context `ctx` (packet type or
 * MQTT_PROPS_WILL) sent by `side`. Validates identifiers, placement, duplicates and values.
 * *out must be zeroed by the caller (mqtt_decode zeroes each packet's properties once: clearing
 * 248 bytes twice was a measurable share of a PUBLISH decode). Returns MQTT_RC_SUCCESS or the
 * reason code. */
uint8_t mqtt_props_decode(rd_t *r, unsigned ctx, enum mqtt_side side, mqtt_props_t *out);
/* Write a property block (length prefix included) whose content is `len` = mqtt_props_len(p). */
uint8_t *mqtt_props_write(uint8_t *o, const mqtt_props_t *p, size_t len);

#endif
