/* subtree.c -- the subscription tree: a trie of topic levels, matched once per PUBLISH.
 *
 * Design note.
 * - A node is one filter level. Exact-name children live in an open-addressing hash table (levels.h,
 *   shared with the retained store: linear probing, backward-shift deletion); '+' and '#' children
 *   have their own slots, so a match does one hash lookup per level per live branch plus two pointer
 *   checks.
 * - Subscriptions ending at a node: `subs` (ordinary, one per owner) and `groups` (shared, one list
 *   of members per group name). A sublist keeps owners in a dense array for fast iteration, with an
 *   owner -> position index once it grows past a few entries, so add/remove stay O(1) for a topic
 *   with 100k subscribers.
 * - Matching is an explicit depth-first walk (no recursion: a 64 KB topic may have 32k levels) over
 *   the topic split once into levels with their hashes. Receivers are deduplicated per owner with a
 *   generation-stamped hash table in the result, so clearing it is O(1) and fan-out to N receivers
 *   costs O(N). Subscription ids are collected as (entry, id) pairs and laid out contiguously per
 *   entry at the end.
 * - Nodes left empty by a remove are freed at once, walking up through the parents.
 * - One big-reader lock (brlock.h), writer-preferring; the count is an atomic so $SYS reads it
 *   without locking. */
#include "broker/subtree.h"

#include "base/brlock.h"
#include "broker/levels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- owner lists ---- */

typedef struct sub {
    void *owner;
    uint32_t sub_id;
    uint8_t options;
} sub_t;

#define SL_INDEX_MIN 8 /* below this, a linear scan beats hashing */

/* A dense array of subscriptions, at most one per owner, with an optional owner index. */
typedef struct sublist {
    sub_t *v;
    uint32_t n, cap;
    uint32_t *idx; /* position + 1, 0 = empty; NULL while n is small */
    uint32_t idx_cap;
} sublist_t;

static inline uint32_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static int64_t sl_find(const sublist_t *sl, const void *owner)
{
    if (!sl->idx) {
        for (uint32_t i = 0; i < sl->n; i++)
            if (sl->v[i].owner == owner)
                return i;
        return -1;
    }
    uint32_t mask = sl->idx_cap - 1;
    for (uint32_t h = ptr_hash(owner) & mask;; h = (h + 1) & mask) {
        uint32_t e = sl->idx[h];
        if (!e)
            return -1;
        if (sl->v[e - 1].owner == owner)
            return e - 1;
    }
}

/* Slot of the index holding `owner` (which must be present). */
static uint32_t sl_slot(const sublist_t *sl, const void *owner)
{
    uint32_t mask = sl->idx_cap - 1;
    uint32_t h = ptr_hash(owner) & mask;
    while (sl->v[sl->idx[h] - 1].owner != owner)
        h = (h + 1) & mask;
    return h;
}

static void sl_index_put(sublist_t *sl, uint32_t pos)
{
    uint32_t mask = sl->idx_cap - 1;
    uint32_t h = ptr_hash(sl->v[pos].owner) & mask;
    while (sl->idx[h])
        h = (h + 1) & mask;
    sl->idx[h] = pos + 1;
}

static int sl_reindex(sublist_t *sl, uint32_t cap)
{
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    free(sl->idx);
    sl->idx = idx;
    sl->idx_cap = cap;
    for (uint32_t i = 0; i < sl->n; i++)
        sl_index_put(sl, i);
    return 0;
}

/* Append s (its owner must not be present). Returns -1 on OOM with the list unchanged. */
static int sl_add(sublist_t *sl, const sub_t *s)
{
    if (sl->n == sl->cap) {
        uint32_t cap = sl->cap ? sl->cap * 2 : 2;
        sub_t *v = realloc(sl->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        sl->v = v;
        sl->cap = cap;
    }
    if (sl->n + 1 >= SL_INDEX_MIN && (sl->n + 1) * 2 > sl->idx_cap) {
        if (sl_reindex(sl, sl->idx_cap ? sl->idx_cap * 2 : 32) < 0)
            return -1;
    }
    sl->v[sl->n] = *s;
    if (sl->idx)
        sl_index_put(sl, sl->n);
    sl->n++;
    return 0;
}

/* Delete index slot i (backward-shift deletion keeps probe chains intact without tombstones). */
static void sl_index_del(sublist_t *sl, uint32_t i)
{
    uint32_t mask = sl->idx_cap - 1;
    sl->idx[i] = 0;
    for (uint32_t j = (i + 1) & mask; sl->idx[j]; j = (j + 1) & mask) {
        uint32_t home = ptr_hash(sl->v[sl->idx[j] - 1].owner) & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            sl->idx[i] = sl->idx[j];
            sl->idx[j] = 0;
            i = j;
        }
    }
}

static void sl_del(sublist_t *sl, uint32_t pos)
{
    uint32_t last = sl->n - 1;
    if (sl->idx) {
        sl_index_del(sl, sl_slot(sl, sl->v[pos].owner));
        if (pos != last)
            sl->idx[sl_slot(sl, sl->v[last].owner)] = pos + 1;
    }
    sl->v[pos] = sl->v[last];
    sl->n--;
    if (sl->n == 0) {
        free(sl->v);
        free(sl->idx);
        memset(sl, 0, sizeof *sl);
    }
}

static void sl_free(sublist_t *sl)
{
    free(sl->v);
    free(sl->idx);
}

/* ---- nodes ---- */

typedef struct sgroup {
    atomic_uint rr; /* round-robin cursor, bumped by readers */
    sublist_t members;
    uint32_t len;       /* of the group's name, at share + 7 */
    uint32_t share_len;
    uint8_t share[];    /* "$share/GROUP/FILTER" as subscribed: the group's identity (sub_group_fn) */
} sgroup_t;

#define SG_NAME(g) ((g)->share + 7)

typedef struct snode {
    level_key_t key;           /* first: the children table points here (levels.h) */
    struct snode *parent;
    struct snode *plus, *hash; /* the '+' and '#' children */
    level_kids_t kids;         /* exact-name children */
    sublist_t subs;
    sgroup_t **groups;
    uint32_t n_groups, cap_groups;
    uint8_t name[];
} snode_t;

struct subtree {
    brlock_t lock; /* first: the struct is 64-byte aligned for it */
    snode_t *root;
    void (*hold)(void *owner);
    atomic_size_t count;
    atomic_size_t shared_count; /* of them, members of shared subscription groups */
    void (*changed)(void *ctx, const uint8_t *filter, size_t n, bool present); /* subtree_observe */
    void *changed_ctx;
};

#define SNAME_OFF offsetof(snode_t, name)
_Static_assert(offsetof(snode_t, key) == 0, "level_kids_t casts level_key_t * to snode_t *");

static snode_t *node_new(snode_t *parent, const uint8_t *name, size_t n, uint32_t hv)
{
    snode_t *nd = level_node_new(sizeof *nd, SNAME_OFF, name, n, hv);
    if (nd)
        nd->parent = parent;
    return nd;
}

static inline snode_t *kid_find(const snode_t *nd, const uint8_t *name, size_t n, uint32_t hv)
{
    return (snode_t *)level_kids_find(&nd->kids, name, n, hv, SNAME_OFF);
}

static bool node_empty(const snode_t *nd)
{
    return !nd->subs.n && !nd->n_groups && !nd->kids.n && !nd->plus && !nd->hash;
}

static void node_free(snode_t *nd)
{
    sl_free(&nd->subs);
    for (uint32_t i = 0; i < nd->n_groups; i++) {
        sl_free(&nd->groups[i]->members);
        free(nd->groups[i]);
    }
    free(nd->groups);
    level_kids_free(&nd->kids);
    free(nd);
}

/* Free nd and its ancestors while they are empty (never the root). */
static void node_purge(snode_t *root, snode_t *nd)
{
    while (nd != root && node_empty(nd)) {
        snode_t *p = nd->parent;
        if (p->plus == nd)
            p->plus = NULL;
        else if (p->hash == nd)
            p->hash = NULL;
        else
            level_kids_del(&p->kids, &nd->key);
        node_free(nd);
        nd = p;
    }
}

/* ---- filters ---- */

/* Split "$share/GROUP/FILTER"; otherwise leave group NULL. */
static void share_split(const uint8_t **f, size_t *n, const uint8_t **group, size_t *gn)
{
    *group = NULL;
    *gn = 0;
    if (*n < 7 || memcmp(*f, "$share/", 7) != 0)
        return;
    const uint8_t *g = *f + 7;
    const uint8_t *end = *f + *n;
    const uint8_t *slash = memchr(g, '/', (size_t)(end - g));
    if (!slash)
        return; /* not a valid shared filter; treated as an ordinary one */
    *group = g;
    *gn = (size_t)(slash - g);
    *f = slash + 1;
    *n = (size_t)(end - slash - 1);
}

/* Find the node of filter f; create the path if `create`. Returns NULL if absent or on OOM (then
 * *oom is set and any nodes created on the way have been purged). */
static snode_t *filter_node(snode_t *root, const uint8_t *f, size_t n, bool create, bool *oom)
{
    snode_t *nd = root;
    size_t i = 0;
    for (;;) {
        const uint8_t *lv = f + i;
        const uint8_t *slash = memchr(lv, '/', n - i);
        size_t ln = slash ? (size_t)(slash - lv) : n - i;
        snode_t **slot = NULL;
        snode_t *next;
        uint32_t hv = 0;
        if (ln == 1 && lv[0] == '+') {
            slot = &nd->plus;
            next = nd->plus;
        } else if (ln == 1 && lv[0] == '#') {
            slot = &nd->hash;
            next = nd->hash;
        } else {
            hv = level_hash(lv, ln);
            next = kid_find(nd, lv, ln, hv);
        }
        if (!next) {
            if (!create)
                return NULL;
            next = node_new(nd, lv, ln, hv);
            if (!next || (!slot && level_kids_add(&nd->kids, &next->key) < 0)) {
                free(next);
                node_purge(root, nd);
                *oom = true;
                return NULL;
            }
            if (slot)
                *slot = next;
        }
        nd = next;
        if (!slash)
            return nd;
        i += ln + 1;
    }
}

/* ---- public: lifecycle, add, remove ---- */

subtree_t *subtree_new(void (*hold)(void *owner))
{
    subtree_t *t = aligned_alloc(_Alignof(subtree_t), (sizeof *t + 63) & ~(size_t)63);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->root = node_new(NULL, NULL, 0, 0);
    if (!t->root) {
        free(t);
        return NULL;
    }
    brlock_init(&t->lock); /* writer-preferring: a PUBLISH stream cannot starve a SUBSCRIBE */
    t->hold = hold;
    atomic_init(&t->count, 0);
    atomic_init(&t->shared_count, 0);
    return t;
}

/* Detach and return one child of nd, or NULL when it has none. Only for tearing down the tree:
 * the kids table is consumed without keeping it consistent. */
static snode_t *take_child(snode_t *nd)
{
    snode_t *c;
    if ((c = nd->plus)) {
        nd->plus = NULL;
        return c;
    }
    if ((c = nd->hash)) {
        nd->hash = NULL;
        return c;
    }
    return (snode_t *)level_kids_take(&nd->kids);
}

void subtree_free(subtree_t *t)
{
    if (!t)
        return;
    snode_t *nd = t->root; /* iterative post-order: filters may be 32k levels deep */
    while (nd) {
        snode_t *c = take_child(nd);
        if (c) {
            nd = c;
            continue;
        }
        snode_t *p = nd->parent;
        node_free(nd);
        nd = p;
    }
    brlock_destroy(&t->lock);
    free(t);
}

/* The calling thread's batch (subtree_batch_begin): its tree, depth, and the read-lock slot while
 * it holds the lock. */
static _Thread_local struct {
    subtree_t *t;
    unsigned depth, slot;
    bool held;
} tls_batch;

void subtree_batch_begin(subtree_t *t)
{
    if (tls_batch.depth++ == 0)
        tls_batch.t = t;
}

static void batch_drop(subtree_t *t)
{
    if (tls_batch.held && tls_batch.t == t) {
        brlock_rdunlock(&t->lock, tls_batch.slot);
        tls_batch.held = false;
    }
}

void subtree_batch_end(subtree_t *t)
{
    if (tls_batch.depth == 0 || --tls_batch.depth > 0)
        return;
    batch_drop(t);
    tls_batch.t = NULL;
}

void subtree_observe(subtree_t *t, void (*changed)(void *ctx, const uint8_t *filter, size_t n, bool present),
                     void *ctx)
{
    t->changed = changed;
    t->changed_ctx = ctx;
}

int subtree_add(subtree_t *t, const uint8_t *filter, size_t n, void *owner, uint8_t options, uint32_t sub_id)
{
    const uint8_t *share = filter, *group;
    size_t share_n = n;
    size_t gn;
    share_split(&filter, &n, &group, &gn);
    sub_t s = {.owner = owner, .sub_id = sub_id, .options = options};
    int rc = -1;
    bool oom = false;

    batch_drop(t); /* our own batch's read lock would keep the writer waiting for itself */
    brlock_wrlock(&t->lock);
    snode_t *nd = filter_node(t->root, filter, n, true, &oom);
    if (!nd)
        goto out;
    sublist_t *sl = &nd->subs;
    if (group) {
        sgroup_t *g = NULL;
        for (uint32_t i = 0; i < nd->n_groups; i++)
            if (nd->groups[i]->len == gn && memcmp(SG_NAME(nd->groups[i]), group, gn) == 0)
                g = nd->groups[i];
        if (!g) {
            if (nd->n_groups == nd->cap_groups) {
                uint32_t cap = nd->cap_groups ? nd->cap_groups * 2 : 1;
                sgroup_t **v = realloc(nd->groups, cap * sizeof *v);
                if (!v)
                    goto fail;
                nd->groups = v;
                nd->cap_groups = cap;
            }
            g = calloc(1, sizeof *g + share_n);
            if (!g)
                goto fail;
            atomic_init(&g->rr, 0);
            g->len = (uint32_t)gn;
            g->share_len = (uint32_t)share_n;
            memcpy(g->share, share, share_n);
            if (sl_add(&g->members, &s) < 0) {
                free(g);
                goto fail;
            }
            nd->groups[nd->n_groups++] = g;
            rc = 0;
            if (t->changed) /* the group's first member */
                t->changed(t->changed_ctx, share, share_n, true);
            goto added;
        }
        sl = &g->members;
    }
    int64_t pos = sl_find(sl, owner);
    if (pos >= 0) {
        sl->v[pos] = s;
        rc = 1;
        goto out;
    }
    if (sl_add(sl, &s) < 0)
        goto fail;
    rc = 0;
    if (t->changed && !group && sl->n == 1) /* the filter's first ordinary subscription */
        t->changed(t->changed_ctx, filter, n, true);
added:
    atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
    if (group)
        atomic_fetch_add_explicit(&t->shared_count, 1, memory_order_relaxed);
out:
    brlock_wrunlock(&t->lock);
    return rc;
fail:
    node_purge(t->root, nd);
    brlock_wrunlock(&t->lock);
    return -1;
}

bool subtree_remove(subtree_t *t, const uint8_t *filter, size_t n, void *owner)
{
    const uint8_t *share = filter, *group;
    size_t share_n = n;
    size_t gn;
    share_split(&filter, &n, &group, &gn);
    bool found = false, oom = false;

    batch_drop(t);
    brlock_wrlock(&t->lock);
    snode_t *nd = filter_node(t->root, filter, n, false, &oom);
    if (!nd)
        goto out;
    if (group) {
        for (uint32_t i = 0; i < nd->n_groups; i++) {
            sgroup_t *g = nd->groups[i];
            if (g->len != gn || memcmp(SG_NAME(g), group, gn) != 0)
                continue;
            int64_t pos = sl_find(&g->members, owner);
            if (pos >= 0) {
                sl_del(&g->members, (uint32_t)pos);
                found = true;
                if (!g->members.n) {
                    if (t->changed) /* its last member */
                        t->changed(t->changed_ctx, share, share_n, false);
                    free(g);
                    nd->groups[i] = nd->groups[--nd->n_groups];
                    if (!nd->n_groups) {
                        free(nd->groups);
                        nd->groups = NULL;
                        nd->cap_groups = 0;
                    }
                }
            }
            break;
        }
    } else {
        int64_t pos = sl_find(&nd->subs, owner);
        if (pos >= 0) {
            sl_del(&nd->subs, (uint32_t)pos);
            found = true;
            if (t->changed && !nd->subs.n) /* its last ordinary subscription */
                t->changed(t->changed_ctx, filter, n, false);
        }
    }
    if (found)
        atomic_fetch_sub_explicit(&t->count, 1, memory_order_relaxed);
    if (found && group)
        atomic_fetch_sub_explicit(&t->shared_count, 1, memory_order_relaxed);
    node_purge(t->root, nd);
out:
    brlock_wrunlock(&t->lock);
    return found;
}

size_t subtree_count(subtree_t *t)
{
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

size_t subtree_shared_count(subtree_t *t)
{
    return atomic_load_explicit(&t->shared_count, memory_order_relaxed);
}

/* ---- results ---- */

struct sub_seen {
    const void *owner;
    uint32_t idx; /* in r->v */
    uint32_t gen; /* slot is live iff gen == r->gen */
};

struct sub_level {
    uint32_t off, len, hv;
};

struct sub_frame {
    const snode_t *nd;
    uint32_t lv; /* index of the next topic level to consume */
};

struct sub_idpair {
    uint32_t entry, id;
};

void sub_result_init(sub_result_t *r)
{
    memset(r, 0, sizeof *r);
}

void sub_result_free(sub_result_t *r)
{
    free(r->v);
    free(r->ids);
    free(r->seen);
    free(r->lv);
    free(r->stk);
    free(r->pairs);
    memset(r, 0, sizeof *r);
}

/* Grow *p (elements of size sz) to hold at least `need`; abort on OOM (broker policy). */
static void grow(void *pp, size_t *cap, size_t need, size_t sz)
{
    void **p = pp;
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * sz);
    if (!q)
        abort();
    *p = q;
    *cap = c;
}

static void seen_rebuild(sub_result_t *r, size_t cap)
{
    free(r->seen);
    r->seen = calloc(cap, sizeof *r->seen);
    if (!r->seen)
        abort();
    r->seen_cap = cap;
    r->gen = 1;
    size_t mask = cap - 1;
    for (size_t k = 0; k < r->n; k++) {
        if (r->v[k].shared)
            continue;
        size_t h = ptr_hash(r->v[k].owner) & mask;
        while (r->seen[h].gen == r->gen)
            h = (h + 1) & mask;
        r->seen[h] = (struct sub_seen){r->v[k].owner, (uint32_t)k, r->gen};
    }
}

static void add_id(sub_result_t *r, uint32_t entry, uint32_t id)
{
    if (!id)
        return;
    grow(&r->pairs, &r->cap_pairs, r->n_pairs + 1, sizeof *r->pairs);
    r->pairs[r->n_pairs++] = (struct sub_idpair){entry, id};
    r->v[entry].n_ids++;
}

static sub_match_t *push_entry(subtree_t *t, sub_result_t *r, void *owner, uint8_t shared)
{
    grow(&r->v, &r->cap, r->n + 1, sizeof *r->v);
    sub_match_t *m = &r->v[r->n++];
    *m = (sub_match_t){.owner = owner, .shared = shared};
    if (t->hold)
        t->hold(owner);
    return m;
}

static void emit_sub(subtree_t *t, sub_result_t *r, const sub_t *s)
{
    if (2 * (r->seen_n + 1) > r->seen_cap)
        seen_rebuild(r, r->seen_cap ? r->seen_cap * 2 : 64);
    size_t mask = r->seen_cap - 1;
    size_t h = ptr_hash(s->owner) & mask;
    sub_match_t *m;
    uint32_t entry;
    for (;; h = (h + 1) & mask) {
        struct sub_seen *e = &r->seen[h];
        if (e->gen != r->gen) {
            entry = (uint32_t)r->n;
            m = push_entry(t, r, s->owner, 0);
            *e = (struct sub_seen){s->owner, entry, r->gen};
            r->seen_n++;
            break;
        }
        if (e->owner == s->owner) {
            entry = e->idx;
            m = &r->v[entry];
            break;
        }
    }
    uint8_t q = SUB_OPT_QOS(s->options);
    if (q > m->qos)
        m->qos = q;
    if (s->options & SUB_OPT_RAP)
        m->retain_as_published = 1;
    add_id(r, entry, s->sub_id);
}

/* Emit every receiver of the subscriptions ending at nd; groups only when fn keeps them. */
static void emit_node(subtree_t *t, sub_result_t *r, const snode_t *nd, const void *publisher, sub_group_fn fn,
                      void *ctx)
{
    const sub_t *v = nd->subs.v;
    for (uint32_t i = 0, n = nd->subs.n; i < n; i++) {
        if (v[i].owner == publisher && (v[i].options & SUB_OPT_NO_LOCAL))
            continue;
        emit_sub(t, r, &v[i]);
    }
    for (uint32_t i = 0; i < nd->n_groups; i++) {
        sgroup_t *g = nd->groups[i];
        if (fn && !fn(ctx, g->share, g->share_len))
            continue; /* before the round robin moves: the members it serves keep their turns */
        /* No-local is a protocol error on a shared subscription [MQTT-3.8.3-4]: not consulted. */
        uint32_t k = atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed) % g->members.n;
        const sub_t *s = &g->members.v[k];
        uint32_t entry = (uint32_t)r->n;
        sub_match_t *m = push_entry(t, r, s->owner, 1);
        m->qos = SUB_OPT_QOS(s->options);
        m->retain_as_published = (s->options & SUB_OPT_RAP) ? 1 : 0;
        add_id(r, entry, s->sub_id);
    }
}

/* Lay the collected ids out contiguously per entry. */
static void layout_ids(sub_result_t *r)
{
    r->n_ids = r->n_pairs;
    if (!r->n_pairs)
        return;
    grow(&r->ids, &r->cap_ids, r->n_pairs, sizeof *r->ids);
    uint32_t off = 0;
    for (size_t k = 0; k < r->n; k++) {
        r->v[k].ids_off = off;
        off += r->v[k].n_ids;
        r->v[k].n_ids = 0; /* refilled below */
    }
    for (size_t k = 0; k < r->n_pairs; k++) {
        sub_match_t *m = &r->v[r->pairs[k].entry];
        r->ids[m->ids_off + m->n_ids++] = r->pairs[k].id;
    }
}

void subtree_match(subtree_t *t, const uint8_t *topic, size_t n, const void *publisher, sub_result_t *r)
{
    subtree_match_groups(t, topic, n, publisher, r, NULL, NULL);
}

void subtree_match_groups(subtree_t *t, const uint8_t *topic, size_t n, const void *publisher, sub_result_t *r,
                          sub_group_fn fn, void *ctx)
{
    r->n = 0;
    r->n_ids = 0;
    r->n_pairs = 0;
    r->seen_n = 0;
    if (++r->gen == 0) /* wrapped: stale stamps could look live */
        seen_rebuild(r, r->seen_cap ? r->seen_cap : 64);

    /* Split the topic once; each level's hash serves every branch that looks it up. */
    uint32_t nl = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || topic[i] == '/') {
            grow(&r->lv, &r->cap_lv, (size_t)nl + 1, sizeof *r->lv);
            r->lv[nl++] = (struct sub_level){(uint32_t)start, (uint32_t)(i - start),
                                              level_hash(topic + start, i - start)};
            start = i + 1;
        }
    }
    bool dollar = n > 0 && topic[0] == '$';

    bool batch = tls_batch.depth > 0 && tls_batch.t == t;
    unsigned rd;
    if (batch && tls_batch.held) {
        rd = tls_batch.slot;
    } else {
        rd = brlock_rdlock(&t->lock);
        if (batch) {
            tls_batch.slot = rd;
            tls_batch.held = true;
        }
    }
    size_t sp = 0;
    grow(&r->stk, &r->cap_stk, 1, sizeof *r->stk);
    r->stk[sp++] = (struct sub_frame){t->root, 0};
    while (sp) {
        struct sub_frame f = r->stk[--sp];
        const snode_t *nd = f.nd;
        bool first = f.lv == 0;
        /* '#' matches the remaining levels, and also the parent level itself ("a/#" matches "a"). */
        if (nd->hash && !(first && dollar))
            emit_node(t, r, nd->hash, publisher, fn, ctx);
        if (f.lv == nl) {
            emit_node(t, r, nd, publisher, fn, ctx);
            continue;
        }
        grow(&r->stk, &r->cap_stk, sp + 2, sizeof *r->stk);
        if (nd->plus && !(first && dollar))
            r->stk[sp++] = (struct sub_frame){nd->plus, f.lv + 1};
        const struct sub_level *l = &r->lv[f.lv];
        const snode_t *k = kid_find(nd, topic + l->off, l->len, l->hv);
        if (k)
            r->stk[sp++] = (struct sub_frame){k, f.lv + 1};
    }
    if (!batch)
        brlock_rdunlock(&t->lock, rd);
    layout_ids(r);
}
