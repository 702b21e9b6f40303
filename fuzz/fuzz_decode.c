/* fuzz_decode.c -- libFuzzer target for the codec: splits the input into packets with
 * mqtt_header_parse, decodes each as every protocol version from both sides, and re-encodes every
 * packet that decoded: the encoding must have exactly mqtt_encoded_len bytes, decode again, and
 * re-encode to the same bytes (encode is the inverse of decode). Sanitizers catch the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/packet.h"

#define FAIL(...)                                 \
    do {                                          \
        fprintf(stderr, "fuzz_decode: " __VA_ARGS__); \
        fputc('\n', stderr);                      \
        abort();                                  \
    } while (0)

static void roundtrip(const mqtt_packet_t *p, uint8_t version, enum mqtt_side side)
{
    /* A CONNECT carries its own level. */
    uint8_t v = p->type == MQTT_CONNECT ? p->connect.version : version;
    size_t n = mqtt_encoded_len(p, v);
    uint8_t *a = malloc(n), *b = malloc(n);
    if (!a || !b)
        abort();
    size_t w = mqtt_encode(p, v, a);
    if (w != n)
        FAIL("%s v%u: encoded %zu bytes, mqtt_encoded_len said %zu", mqtt_type_name(p->type), v, w, n);
    mqtt_header_t h;
    if (mqtt_header_parse(a, w, &h) != 1 || h.header_len + (size_t)h.remaining != w)
        FAIL("%s v%u: re-encoded header does not parse", mqtt_type_name(p->type), v);
    mqtt_packet_t d;
    uint8_t rc = mqtt_decode(&h, a + h.header_len, v, side, &d);
    if (rc != MQTT_RC_SUCCESS)
        FAIL("%s v%u side %d: re-encoded packet decodes to %s", mqtt_type_name(p->type), v, side,
             mqtt_rc_name(rc));
    if (mqtt_encoded_len(&d, v) != w)
        FAIL("%s v%u: second encoding has a different length", mqtt_type_name(p->type), v);
    if (mqtt_encode(&d, v, b) != w || memcmp(a, b, w) != 0)
        FAIL("%s v%u: second encoding differs", mqtt_type_name(p->type), v);
    if (p->type == MQTT_PUBLISH && p->publish.qos) {
        size_t off = mqtt_publish_id_offset(p, v);
        if (off + 2 > w || (uint16_t)(a[off] << 8 | a[off + 1]) != p->id)
            FAIL("PUBLISH v%u: mqtt_publish_id_offset is wrong", v);
    }
    free(a);
    free(b);
}

/* Walk what the iterators yield, so they are fuzzed too. */
static void iterate(const mqtt_packet_t *p, uint8_t version)
{
    mqtt_bytes_t c = p->props.raw;
    mqtt_strpair_t kv;
    uint32_t n = 0, id;
    while (mqtt_props_next_user(&c, &kv))
        n++;
    if (n != p->props.user_n)
        FAIL("user property count %u != %u", n, p->props.user_n);
    c = p->props.raw;
    n = 0;
    while (mqtt_props_next_sub_id(&c, &id))
        n++;
    if (n != p->props.sub_id_n)
        FAIL("subscription id count %u != %u", n, p->props.sub_id_n);
    if (p->type == MQTT_SUBSCRIBE) {
        mqtt_sub_t s;
        c = p->subscribe.entries;
        n = 0;
        while (mqtt_sub_next(version, &c, &s))
            n++;
        if (n != p->subscribe.count)
            FAIL("subscribe entry count %u != %u", n, p->subscribe.count);
    } else if (p->type == MQTT_UNSUBSCRIBE) {
        mqtt_bytes_t f;
        c = p->unsubscribe.entries;
        n = 0;
        while (mqtt_unsub_next(&c, &f))
            n++;
        if (n != p->unsubscribe.count)
            FAIL("unsubscribe filter count %u != %u", n, p->unsubscribe.count);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    size_t off = 0;
    while (off < size) {
        mqtt_header_t h;
        int r = mqtt_header_parse(data + off, size - off, &h);
        if (r <= 0)
            break;
        size_t avail = size - off - h.header_len;
        if (h.remaining > avail)
            break;
        /* Copy the body into its own allocation so ASan sees reads past its end. */
        uint8_t *body = malloc(h.remaining ? h.remaining : 1);
        if (!body)
            abort();
        memcpy(body, data + off + h.header_len, h.remaining);
        for (size_t vi = 0; vi < 3; vi++) {
            for (int side = 0; side < 2; side++) {
                mqtt_packet_t p;
                if (mqtt_decode(&h, body, versions[vi], (enum mqtt_side)side, &p) == MQTT_RC_SUCCESS) {
                    uint8_t v = p.type == MQTT_CONNECT ? p.connect.version : versions[vi];
                    iterate(&p, v);
                    roundtrip(&p, versions[vi], (enum mqtt_side)side);
                }
                if (h.type == MQTT_CONNECT)
                    break; /* version-independent: once per side is enough */
            }
        }
        free(body);
        off += h.header_len + h.remaining;
    }
    return 0;
}
