/* varint.c -- the Variable Byte Integer of MQTT (section 1.5.5): the remaining length of every
 * fixed header and some property values. The codec's lowest layer: wire.h's readers and writers,
 * the decoder, the encoder and the property code all build on it. See varint.h. */
#include "mqtt/varint.h"

int mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return 0;
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
        if (!(buf[i] & 0x80)) {
            *out = v;
            return (int)i + 1;
        }
    }
    return -1; /* a fifth byte would be needed [MQTT-1.5.5] */
}

int mqtt_varint_len(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

int mqtt_varint_encode(uint32_t v, uint8_t *out)
{
    int n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = (uint8_t)(v ? b | 0x80 : b);
    } while (v && n < 4);
    return n;
}
