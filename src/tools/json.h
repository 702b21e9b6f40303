/* json.h -- the JSON tombo-sub prints for -F %j and %J, byte for byte as mosquitto_sub 2.0.11
 * prints it through cJSON: compact or --pretty (cJSON_Print's tabs), strings escaped as cJSON
 * escapes them, and for %J a payload parsed and re-printed with cJSON's rules (numbers through
 * "%1.15g"/"%1.17g", duplicate keys kept, strings ending at a NUL byte). */
#ifndef TOMBO_TOOLS_JSON_H
#define TOMBO_TOOLS_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Output buffer. Ownership: p is malloc'd, freed by jb_free. `oom` is set when an append failed. */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    bool pretty;   /* cJSON_Print layout instead of cJSON_PrintUnformatted */
    int depth;     /* objects and arrays open (for pretty indentation) */
    bool oom;
} jbuf_t;

void jb_init(jbuf_t *b, bool pretty);
void jb_free(jbuf_t *b);
void jb_raw(jbuf_t *b, const char *s, size_t n);
/* A string value or key: the bytes of s[0..n) up to the first NUL, quoted and escaped as cJSON does. */
void jb_string(jbuf_t *b, const char *s, size_t n);
/* Objects: open, then for each member jb_key (first: no separator before it), the value, and close
 * with the member count. */
void jb_obj_open(jbuf_t *b);
void jb_key(jbuf_t *b, const char *key, size_t n, bool first);
void jb_obj_close(jbuf_t *b, size_t members);
/* Parse text[0..len) as cJSON_ParseWithOpts(..., require_null_terminated) does and append the value
 * re-printed. False when it is not one valid JSON value (then b->len is restored). Whitespace
 * around it is allowed; a NUL byte before len makes it invalid, as in mosquitto_sub. */
bool jb_parse(jbuf_t *b, const char *text, size_t len);

#endif
