/* registry.c -- the session registry: client id -> session, for the whole broker.
 *
 * Design: open addressing with linear probing on an FNV-1a hash of the client id, at most half
 * full, deleted with backward shifts (no tombstones), under one mutex (b->reg_lock). It is taken
 * on CONNECT, session end and $SYS counts only, never per message, so one lock is enough. Lock
 * order: the registry lock before a session lock, never the other way round. */
#include "broker/registry.h"

#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"
#include "broker/broker.h"

struct registry {
    session_t **slots;
    size_t cap, n;
};

static size_t reg_find(struct registry *r, const char *id, size_t len, bool *found)
{
    size_t mask = r->cap - 1, i = fnv1a64(id, len) & mask;
    for (;;) {
        session_t *s = r->slots[i];
        if (!s) {
            *found = false;
            return i;
        }
        if (s->client_id_len == len && memcmp(s->client_id, id, len) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void reg_grow(struct registry *r)
{
    size_t oldcap = r->cap;
    session_t **old = r->slots;
    r->cap = oldcap ? oldcap * 2 : 1024;
    r->slots = xcalloc(r->cap, sizeof(*r->slots));
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i]) {
            bool f;
            r->slots[reg_find(r, old[i]->client_id, old[i]->client_id_len, &f)] = old[i];
        }
    }
    free(old);
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void reg_delete(struct registry *r, size_t i)
{
    size_t mask = r->cap - 1, j = i;
    r->slots[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        session_t *s = r->slots[j];
        if (!s)
            break;
        size_t k = fnv1a64(s->client_id, s->client_id_len) & mask;
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            r->slots[i] = s;
            r->slots[j] = NULL;
            i = j;
        }
    }
    r->n--;
}

session_t *registry_get(broker_t *b, const char *id, size_t len, bool *existed)
{
    pthread_mutex_lock(&b->reg_lock);
    struct registry *r = b->reg;
    if (r->n * 2 >= r->cap)
        reg_grow(r);
    bool found;
    size_t i = reg_find(r, id, len, &found);
    session_t *s;
    if (found) {
        s = r->slots[i];
    } else {
        s = session_new(b, id, len);
        r->slots[i] = s;
        r->n++;
    }
    session_hold(s);
    pthread_mutex_unlock(&b->reg_lock);
    *existed = found;
    return s;
}

size_t registry_count(broker_t *b)
{
    pthread_mutex_lock(&b->reg_lock);
    size_t n = b->reg->n;
    pthread_mutex_unlock(&b->reg_lock);
    return n;
}

session_t *registry_find(broker_t *b, const char *id, size_t len)
{
    pthread_mutex_lock(&b->reg_lock);
    bool found;
    size_t i = reg_find(b->reg, id, len, &found);
    session_t *s = found ? b->reg->slots[i] : NULL;
    if (s)
        session_hold(s);
    pthread_mutex_unlock(&b->reg_lock);
    return s;
}

session_t **registry_list(broker_t *b, size_t *n)
{
    pthread_mutex_lock(&b->reg_lock);
    struct registry *r = b->reg;
    session_t **v = xmalloc((r->n ? r->n : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i]) {
            session_hold(r->slots[i]);
            v[k++] = r->slots[i];
        }
    pthread_mutex_unlock(&b->reg_lock);
    *n = k;
    return v;
}

struct registry *registry_new(void)
{
    struct registry *r = xcalloc(1, sizeof(*r));
    reg_grow(r);
    return r;
}

void registry_free(broker_t *b)
{
    struct registry *r = b->reg;
    /* session_end deletes from the table, which may shift a later entry into slot i. */
    for (size_t i = 0; i < r->cap; i++) {
        while (r->slots[i]) {
            session_t *s = r->slots[i];
            session_hold(s);
            session_end(s);
            session_release(s);
        }
    }
    free(r->slots);
    free(r);
}

bool registry_remove(broker_t *b, session_t *s)
{
    pthread_mutex_lock(&b->reg_lock);
    bool found;
    size_t i = reg_find(b->reg, s->client_id, s->client_id_len, &found);
    if (found && b->reg->slots[i] == s)
        reg_delete(b->reg, i);
    else
        found = false;
    pthread_mutex_unlock(&b->reg_lock);
    return found;
}
