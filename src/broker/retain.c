/* retain.c -- the retained-message store: a trie of topic levels with one message per node.
 *
 * Design note: each node is one topic level with its children in an open-addressing hash table
 * (levels.h, shared with the subscription tree: linear probing, backward-shift deletion). A lookup
 * walks the filter level by level: an exact level is one hash lookup, '+' visits every child, '#'
 * the node itself and its whole subtree; at the root, wildcards skip children whose name starts with
 * '$'. Walks use an explicit stack (a topic
 * may have 32k levels). Clearing a topic frees the nodes it leaves empty. Messages are held under
 * the read lock and handed to the callback after unlocking. */
#include "broker/retain.h"

#include "base/mem.h"
#include "broker/levels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct rnode {
    level_key_t key;     /* first: the children table points here (levels.h) */
    struct rnode *parent;
    level_kids_t kids;
    void *msg;           /* retained message of this topic, or NULL */
    retain_src_t *src;   /* who published msg (NULL: the broker) */
    uint8_t name[];
} rnode_t;

struct retain_store {
    pthread_rwlock_t lock;
    rnode_t *root;
    void (*hold)(void *msg);
    void (*release)(void *msg);
    void (*changed)(void *ctx, const uint8_t *topic, size_t n, void *msg, const retain_src_t *src);
    void *changed_ctx;
    atomic_size_t count;
};

#define RNAME_OFF offsetof(rnode_t, name)
_Static_assert(offsetof(rnode_t, key) == 0, "level_kids_t casts level_key_t * to rnode_t *");

retain_src_t *retain_src_new(const char *client_id, size_t idlen, const char *username, size_t ulen,
                             const struct auth *auth)
{
    retain_src_t *s = xmalloc(sizeof(*s) + idlen + 1 + (username ? ulen + 1 : 0));
    atomic_init(&s->refs, 1);
    s->auth = auth;
    s->client_id_len = (uint32_t)idlen;
    memcpy(s->client_id, client_id, idlen);
    s->client_id[idlen] = 0;
    s->username = NULL;
    s->username_len = 0;
    if (username) {
        s->username = s->client_id + idlen + 1;
        s->username_len = (uint32_t)ulen;
        memcpy(s->username, username, ulen);
        s->username[ulen] = 0;
    }
    return s;
}

void retain_src_release(retain_src_t *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

static rnode_t *rnode_new(rnode_t *parent, const uint8_t *name, size_t n, uint32_t hv)
{
    rnode_t *nd = level_node_new(sizeof *nd, RNAME_OFF, name, n, hv);
    if (nd)
        nd->parent = parent;
    return nd;
}

static inline rnode_t *kid_find(const rnode_t *nd, const uint8_t *name, size_t n, uint32_t hv)
{
    return (rnode_t *)level_kids_find(&nd->kids, name, n, hv, RNAME_OFF);
}

/* Child in slot i of nd's table (NULL = empty slot), for visiting every child. */
static inline const rnode_t *kid_at(const rnode_t *nd, uint32_t i)
{
    return (const rnode_t *)nd->kids.slot[i];
}

/* Free nd and its ancestors while they hold nothing (never the root). */
static void rnode_purge(rnode_t *root, rnode_t *nd)
{
    while (nd != root && !nd->msg && !nd->kids.n) {
        rnode_t *p = nd->parent;
        level_kids_del(&p->kids, &nd->key);
        free(nd);
        nd = p;
    }
}

retain_t *retain_new(void (*hold)(void *msg), void (*release)(void *msg))
{
    retain_t *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    rs->root = rnode_new(NULL, NULL, 0, 0);
    if (!rs->root) {
        free(rs);
        return NULL;
    }
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* glibc's default lets a steady stream of readers starve writers forever. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&rs->lock, &a);
    pthread_rwlockattr_destroy(&a);
    rs->hold = hold;
    rs->release = release;
    atomic_init(&rs->count, 0);
    return rs;
}

void retain_free(retain_t *rs)
{
    if (!rs)
        return;
    rnode_t *nd = rs->root; /* iterative post-order: no recursion on deep topics */
    while (nd) {
        rnode_t *c = (rnode_t *)level_kids_take(&nd->kids); /* consumes the table */
        if (c) {
            nd = c;
            continue;
        }
        rnode_t *p = nd->parent;
        if (nd->msg)
            rs->release(nd->msg);
        retain_src_release(nd->src);
        level_kids_free(&nd->kids);
        free(nd);
        nd = p;
    }
    pthread_rwlock_destroy(&rs->lock);
    free(rs);
}

void retain_observe(retain_t *rs,
                    void (*changed)(void *ctx, const uint8_t *topic, size_t n, void *msg, const retain_src_t *src),
                    void *ctx)
{
    rs->changed = changed;
    rs->changed_ctx = ctx;
}

int retain_set(retain_t *rs, const uint8_t *topic, size_t n, void *msg, retain_src_t *src)
{
    void *old = NULL;
    retain_src_t *old_src = NULL;
    if (!msg)
        src = NULL;
    int rc = 0;
    pthread_rwlock_wrlock(&rs->lock);
    rnode_t *nd = rs->root;
    size_t i = 0;
    for (;;) {
        const uint8_t *lv = topic + i;
        const uint8_t *slash = memchr(lv, '/', n - i);
        size_t ln = slash ? (size_t)(slash - lv) : n - i;
        uint32_t hv = level_hash(lv, ln);
        rnode_t *next = kid_find(nd, lv, ln, hv);
        if (!next) {
            if (!msg) /* clearing a topic that has nothing retained */
                goto out;
            next = rnode_new(nd, lv, ln, hv);
            if (!next || level_kids_add(&nd->kids, &next->key) < 0) {
                free(next);
                rnode_purge(rs->root, nd);
                rc = -1;
                goto out;
            }
        }
        nd = next;
        if (!slash)
            break;
        i += ln + 1;
    }
    old = nd->msg;
    old_src = nd->src;
    if (msg)
        rs->hold(msg);
    nd->msg = msg;
    nd->src = retain_src_hold(src);
    if (rs->changed && (old || msg))
        rs->changed(rs->changed_ctx, topic, n, msg, src);
    if (!old && msg)
        atomic_fetch_add_explicit(&rs->count, 1, memory_order_relaxed);
    else if (old && !msg)
        atomic_fetch_sub_explicit(&rs->count, 1, memory_order_relaxed);
    if (!msg)
        rnode_purge(rs->root, nd);
out:
    pthread_rwlock_unlock(&rs->lock);
    if (old)
        rs->release(old);
    retain_src_release(old_src);
    return rc;
}

typedef struct rframe {
    const rnode_t *nd;
    uint32_t lv;   /* index of the next filter level */
    uint32_t all;  /* inside a '#': take this node and every descendant */
} rframe_t;

typedef struct rlevel {
    uint32_t off, len, hv;
} rlevel_t;

/* Append x to a growable array; returns false on OOM. */
static bool push(void **v, size_t *n, size_t *cap, size_t sz, const void *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void *q = realloc(*v, c * sz);
        if (!q)
            return false;
        *v = q;
        *cap = c;
    }
    memcpy((char *)*v + *n * sz, x, sz);
    (*n)++;
    return true;
}

/* A match collected under the lock: both held. */
typedef struct rhit {
    void *msg;
    retain_src_t *src;
} rhit_t;

long retain_match(retain_t *rs, const uint8_t *filter, size_t n,
                  void (*cb)(void *msg, const retain_src_t *src, void *arg), void *arg)
{
    rlevel_t *lv = NULL;
    size_t nl = 0, cap_lv = 0;
    rframe_t *stk = NULL;
    size_t sp = 0, cap_stk = 0;
    rhit_t *out = NULL;
    size_t n_out = 0, cap_out = 0;
    bool ok = true;

    size_t start = 0;
    for (size_t i = 0; i <= n && ok; i++) {
        if (i == n || filter[i] == '/') {
            rlevel_t l = {(uint32_t)start, (uint32_t)(i - start), level_hash(filter + start, i - start)};
            ok = push((void **)&lv, &nl, &cap_lv, sizeof l, &l);
            start = i + 1;
        }
    }

    pthread_rwlock_rdlock(&rs->lock);
    rframe_t f0 = {rs->root, 0, 0};
    ok = ok && push((void **)&stk, &sp, &cap_stk, sizeof f0, &f0);
    while (ok && sp) {
        rframe_t f = stk[--sp];
        const rnode_t *nd = f.nd;
        bool root = nd == rs->root;
        if (!f.all && f.lv < nl) {
            const rlevel_t *l = &lv[f.lv];
            const uint8_t *s = filter + l->off;
            if (l->len == 1 && s[0] == '#') {
                f.all = 1; /* "a/#" matches "a" itself and everything below */
            } else if (l->len == 1 && s[0] == '+') {
                for (uint32_t i = 0; i < nd->kids.cap && ok; i++) {
                    const rnode_t *k = kid_at(nd, i);
                    if (k && !(root && k->key.len && k->name[0] == '$')) {
                        rframe_t g = {k, f.lv + 1, 0};
                        ok = push((void **)&stk, &sp, &cap_stk, sizeof g, &g);
                    }
                }
                continue;
            } else {
                const rnode_t *k = kid_find(nd, s, l->len, l->hv);
                if (k) {
                    rframe_t g = {k, f.lv + 1, 0};
                    ok = push((void **)&stk, &sp, &cap_stk, sizeof g, &g);
                }
                continue;
            }
        }
        /* Here: all levels consumed, or inside '#'. */
        if (nd->msg) {
            rhit_t h = {nd->msg, nd->src};
            ok = push((void **)&out, &n_out, &cap_out, sizeof h, &h);
            if (ok) {
                rs->hold(h.msg);
                retain_src_hold(h.src);
            }
        }
        if (f.all) {
            for (uint32_t i = 0; i < nd->kids.cap && ok; i++) {
                const rnode_t *k = kid_at(nd, i);
                if (k && !(root && k->key.len && k->name[0] == '$')) {
                    rframe_t g = {k, f.lv, 1};
                    ok = push((void **)&stk, &sp, &cap_stk, sizeof g, &g);
                }
            }
        }
    }
    pthread_rwlock_unlock(&rs->lock);

    long rc = ok ? (long)n_out : -1;
    for (size_t i = 0; i < n_out; i++) {
        if (ok)
            cb(out[i].msg, out[i].src, arg);
        else
            rs->release(out[i].msg);
        retain_src_release(out[i].src);
    }
    free(out);
    free(stk);
    free(lv);
    return rc;
}

size_t retain_count(retain_t *rs)
{
    return atomic_load_explicit(&rs->count, memory_order_relaxed);
}
