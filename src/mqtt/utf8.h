/* utf8.h -- MQTT's UTF-8 rules for strings [MQTT-1.5.4-1..3]. */
#ifndef TOMBO_MQTT_UTF8_H
#define TOMBO_MQTT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Well-formed UTF-8 (no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF) and
 * no U+0000 [MQTT-1.5.4-1], [MQTT-1.5.4-2]. Used for every UTF-8 string field. */
bool mqtt_utf8_wellformed(const uint8_t *s, size_t n);
/* mqtt_utf8_wellformed, and -- as Mosquitto does for topics, client ids and user names -- no
 * control characters U+0001..U+001F, U+007F..U+009F and no non-characters (U+FDD0..U+FDEF,
 * U+xxFFFE, U+xxFFFF) [MQTT-1.5.4-3 lets the receiver close on those]. */
bool mqtt_utf8_valid(const uint8_t *s, size_t n);
/* Well-formed UTF-8 as Unicode / RFC 3629 define it, U+0000 allowed: the rule for a PUBLISH or will
 * payload whose Payload Format Indicator is 1 [MQTT-3.3.2-4] (not an MQTT "UTF-8 string"). */
bool mqtt_utf8_unicode_valid(const uint8_t *s, size_t n);

#endif
