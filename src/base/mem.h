/* mem.h -- allocation that aborts on out-of-memory instead of returning NULL (base layer: no MQTT,
 * no broker). For servers only: the client library returns errors instead. */
#ifndef TOMBO_BASE_MEM_H
#define TOMBO_BASE_MEM_H

#include <stddef.h>

/* Each returns memory for free(); none returns NULL (it aborts, with the size, on stderr). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
/* A NUL-terminated copy of the first n bytes of s (which need not be terminated). */
char *xstrndup(const char *s, size_t n);
/* A copy of s, or NULL when s is NULL. */
char *xstrdup(const char *s);

#endif
