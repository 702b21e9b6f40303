/* test_mqtt_utf8.c -- MQTT UTF-8 rules [MQTT-1.5.4-1..3]: well-formedness, U+0000, surrogates,
 * overlong forms, code points above U+10FFFF, truncation, and the stricter mqtt_utf8_valid. */
#include "mqtt/utf8.h"
#include "unit.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

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

    UNIT_DONE();
}
