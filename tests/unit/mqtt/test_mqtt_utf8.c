/* test_mqtt_utf8.c -- MQTT UTF-8 rules [MQTT-1.5.4-1..3]: well-formedness, U+0000, surrogates,
 * overlong forms, code points above U+10FFFF, truncation, and the stricter mqtt_utf8_valid. */
#include "mqtt/utf8.h"
#include "unit.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* Reference implementation, one code point at a time, straight from the rules: the library's
 * version checks eight ASCII bytes at once and must agree with this on every input. */
static bool ref_valid(const uint8_t *s, size_t n, bool strict)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t len;
        if (c < 0x80)
            cp = c, len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            cp = c & 0x1F, len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            cp = c & 0x0F, len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            cp = c & 0x07, len = 4;
        else
            return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
            return false;
        if (strict && (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
                       (cp & 0xFFFE) == 0xFFFE))
            return false;
        i += len;
    }
    return true;
}

/* xorshift: deterministic pseudo-random strings. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

int main(void)
{
    CASE("ascii and empty");
    CHECK(mqtt_utf8_wellformed(S("")));
    CHECK(mqtt_utf8_wellformed(S("hello/world")));
    CHECK(mqtt_utf8_valid(S("hello/world")));

    CASE("multi-byte: 2, 3 and 4 bytes");
    CHECK(mqtt_utf8_wellformed(S("\xC3\xA9")));          /* U+00E9 */
    CHECK(mqtt_utf8_wellformed(S("\xE6\x97\xA5")));      /* U+65E5 */
    CHECK(mqtt_utf8_wellformed(S("\xF0\x9F\x98\x80")));  /* U+1F600 */
    CHECK(mqtt_utf8_wellformed(S("\xF4\x8F\xBF\xBD")));  /* U+10FFFD */
    CHECK(mqtt_utf8_valid(S("\xF0\x9F\x98\x80")));
    CHECK(mqtt_utf8_valid(S("\xEF\xBB\xBF")));           /* U+FEFF BOM is allowed [MQTT-1.5.4-3] */

    CASE("[MQTT-1.5.4-2] U+0000");
    CHECK(!mqtt_utf8_wellformed(S("a\0b")));
    CHECK(!mqtt_utf8_valid(S("a\0b")));
    CHECK(mqtt_utf8_unicode_valid(S("a\0b")));           /* allowed in a UTF-8 payload */
    CHECK(!mqtt_utf8_wellformed(S("\xC0\x80")));         /* overlong NUL (modified UTF-8) */

    CASE("[MQTT-1.5.4-1] overlong forms");
    CHECK(!mqtt_utf8_wellformed(S("\xC1\xBF")));
    CHECK(!mqtt_utf8_wellformed(S("\xE0\x80\xAF")));
    CHECK(!mqtt_utf8_wellformed(S("\xE0\x9F\xBF")));
    CHECK(!mqtt_utf8_wellformed(S("\xF0\x80\x80\xAF")));
    CHECK(!mqtt_utf8_wellformed(S("\xF0\x8F\xBF\xBF")));
    CHECK(mqtt_utf8_wellformed(S("\xE0\xA0\x80")));      /* U+0800, smallest 3-byte */
    CHECK(mqtt_utf8_wellformed(S("\xF0\x90\x80\x80")));  /* U+10000, smallest 4-byte */

    CASE("[MQTT-1.5.4-1] surrogates U+D800..U+DFFF");
    CHECK(!mqtt_utf8_wellformed(S("\xED\xA0\x80")));
    CHECK(!mqtt_utf8_wellformed(S("\xED\xBF\xBF")));
    CHECK(mqtt_utf8_wellformed(S("\xED\x9F\xBF")));      /* U+D7FF */
    CHECK(mqtt_utf8_wellformed(S("\xEE\x80\x80")));      /* U+E000 */
    CHECK(!mqtt_utf8_unicode_valid(S("\xED\xA0\x80")));

    CASE("above U+10FFFF and invalid lead bytes");
    CHECK(!mqtt_utf8_wellformed(S("\xF4\x90\x80\x80")));
    CHECK(!mqtt_utf8_wellformed(S("\xF5\x80\x80\x80")));
    CHECK(!mqtt_utf8_wellformed(S("\xF8\x88\x80\x80\x80")));
    CHECK(!mqtt_utf8_wellformed(S("\xFF")));
    CHECK(!mqtt_utf8_wellformed(S("\x80")));             /* lone continuation */
    CHECK(!mqtt_utf8_wellformed(S("a\xBF")));

    CASE("truncated sequences");
    CHECK(!mqtt_utf8_wellformed(S("\xC3")));
    CHECK(!mqtt_utf8_wellformed(S("\xE6\x97")));
    CHECK(!mqtt_utf8_wellformed(S("\xF0\x9F\x98")));
    CHECK(!mqtt_utf8_wellformed(S("\xF0\x9F\x98" "a")));
    CHECK(!mqtt_utf8_wellformed(S("\xE6" "ab")));

    CASE("[MQTT-1.5.4-3] control characters and non-characters: valid() refuses, wellformed() accepts");
    CHECK(mqtt_utf8_wellformed(S("a\x01z")));
    CHECK(!mqtt_utf8_valid(S("a\x01z")));
    CHECK(!mqtt_utf8_valid(S("a\x1Fz")));
    CHECK(!mqtt_utf8_valid(S("a\nz")));
    CHECK(!mqtt_utf8_valid(S("a\x7Fz")));
    CHECK(mqtt_utf8_valid(S("a z~")));
    CHECK(!mqtt_utf8_valid(S("\xC2\x80")));              /* U+0080 */
    CHECK(!mqtt_utf8_valid(S("\xC2\x9F")));              /* U+009F */
    CHECK(mqtt_utf8_valid(S("\xC2\xA0")));               /* U+00A0 */
    CHECK(!mqtt_utf8_valid(S("\xEF\xB7\x90")));          /* U+FDD0 */
    CHECK(!mqtt_utf8_valid(S("\xEF\xB7\xAF")));          /* U+FDEF */
    CHECK(mqtt_utf8_valid(S("\xEF\xB7\xB0")));           /* U+FDF0 */
    CHECK(!mqtt_utf8_valid(S("\xEF\xBF\xBE")));          /* U+FFFE */
    CHECK(!mqtt_utf8_valid(S("\xEF\xBF\xBF")));          /* U+FFFF */
    CHECK(!mqtt_utf8_valid(S("\xF0\x9F\xBF\xBE")));      /* U+1FFFE */
    CHECK(!mqtt_utf8_valid(S("\xF4\x8F\xBF\xBF")));      /* U+10FFFF */
    CHECK(mqtt_utf8_wellformed(S("\xF4\x8F\xBF\xBF")));

    CASE("differential: 8-byte fast path agrees with the reference on random strings");
    static const uint8_t alphabet[] = {'a', '/', ' ', '~', 0x00, 0x01, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0x9F, 0xBF,
                                       0xC2, 0xC3, 0xA9, 0xE0, 0xED, 0xEF, 0xB7, 0xBE, 0xF0, 0xF4, 0x8F, 0xF5,
                                       '+', '#', 0x2A, 0x22, 0x24, 0xFF};
    uint8_t buf[40];
    int disagreements = 0;
    for (int iter = 0; iter < 300000; iter++) {
        size_t n = next_rand() % sizeof buf;
        /* Mostly ASCII so the fast path runs, with a rare special byte somewhere. */
        for (size_t i = 0; i < n; i++)
            buf[i] = next_rand() % 8 ? (uint8_t)('a' + next_rand() % 26) : alphabet[next_rand() % sizeof alphabet];
        bool v = mqtt_utf8_valid(buf, n), w = mqtt_utf8_wellformed(buf, n);
        if (v != ref_valid(buf, n, true) || w != ref_valid(buf, n, false))
            disagreements++;
    }
    CHECK_EQ(disagreements, 0);

    UNIT_DONE();
}
