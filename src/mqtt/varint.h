/* varint.h -- MQTT's Variable Byte Integer (section 1.5.5): 7 bits a byte, low bits first, the top
 * bit set on every byte but the last, at most 4 bytes (values up to 268,435,455). Pure functions,
 * part of the codec's public face (packet.h includes it). */
#ifndef TOMBO_MQTT_VARINT_H
#define TOMBO_MQTT_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Decode from buf[0..len). Returns the bytes used (1..4) with the value in *out, 0 when more bytes
 * are needed, -1 when malformed (a fifth byte would be needed [MQTT-1.5.5]). */
int mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *out);
/* Encode v into out (4 bytes are always enough). Returns the bytes written (1..4). */
int mqtt_varint_encode(uint32_t v, uint8_t *out);
/* Bytes the encoding of v takes: the fewest that hold it (1..4). */
int mqtt_varint_len(uint32_t v);

#endif
