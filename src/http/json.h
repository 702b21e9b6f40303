/* json.h -- a growable output buffer and the JSON text the HTTP endpoint writes into it (RFC 8259):
 * strings escaped so that any bytes (client ids, topics, payloads: arbitrary UTF-8, or not UTF-8 at
 * all) give valid JSON. No MQTT, no I/O.
 *
 * Strings: '"', '\\' and control characters are escaped (\n \r \t \b \f, else \u00XX), U+2028 and
 * U+2029 too (so the text is also a valid JavaScript literal), valid UTF-8 is copied as is, and
 * each byte of an invalid sequence (overlong, surrogate, beyond U+10FFFF, truncated) becomes
 * U+FFFD. Ownership: p is malloc'd and freed by hb_free; on out-of-memory the process aborts
 * (the broker's policy). */
#ifndef TOMBO_HTTP_JSON_H
#define TOMBO_HTTP_JSON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hbuf {
    char *p;
    size_t len, cap;
} hbuf_t;

void hb_init(hbuf_t *b);
void hb_free(hbuf_t *b);
void hb_put(hbuf_t *b, const void *s, size_t n);
void hb_puts(hbuf_t *b, const char *s);
void hb_printf(hbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s[0..n) as a JSON string, quotes included. */
void hb_json_str(hbuf_t *b, const void *s, size_t n);
/* The NUL-terminated s as a JSON string; NULL gives null. */
void hb_json_cstr(hbuf_t *b, const char *s);

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if the bytes there are not one. */
size_t utf8_seq_len(const uint8_t *s, size_t n);

#endif
