/* test_broker_subtree.c -- unit tests of the subscription tree: matching rules, merging of
 * overlapping subscriptions [MQTT-3.3.5-1], no-local, shared round robin, remove/replace, counts,
 * a randomized cross-check against a reference matcher, concurrency, and a printed micro benchmark. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/subtree.h"
#include "ref_match.h"

#include "unit.h"

#define S(str) (const uint8_t *)(str), strlen(str)

static atomic_long holds;
static void hold(void *owner)
{
    (void)owner;
    atomic_fetch_add(&holds, 1);
}

static int owners[5000];
#define O(i) ((void *)&owners[i])

static const sub_match_t *find(const sub_result_t *r, void *owner, int shared)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].owner == owner && r->v[i].shared == shared)
            return &r->v[i];
    return NULL;
}

static bool has_id(const sub_result_t *r, const sub_match_t *m, uint32_t id)
{
    const uint32_t *ids = sub_match_ids(r, m);
    for (uint32_t i = 0; i < m->n_ids; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static size_t match(subtree_t *t, const char *topic, const void *pub, sub_result_t *r)
{
    subtree_match(t, S(topic), pub, r);
    return r->n;
}

static void test_table(void)
{
    static const struct {
        const char *f, *t;
        int m;
    } cases[] = {
        {"a/b/c", "a/b/c", 1},  {"a/b/c", "a/b", 0},      {"a/b", "a/b/c", 0},     {"a/+/c", "a/b/c", 1},
        {"a/+/c", "a/b/d", 0},  {"a/+", "a/b/c", 0},      {"+/+/+", "a/b/c", 1},   {"+", "a", 1},
        {"+", "a/b", 0},        {"+", "/a", 0},           {"+/+", "/a", 1},        {"/+", "/a", 1},
        {"#", "a", 1},          {"#", "a/b/c", 1},        {"#", "/", 1},           {"a/#", "a", 1},
        {"a/#", "a/b", 1},      {"a/#", "a/b/c/d", 1},    {"a/#", "ab", 0},        {"a/#", "b/a", 0},
        {"a/+/#", "a/b", 1},    {"a/+/#", "a", 0},        {"+/#", "a", 1},         {"a//b", "a//b", 1},
        {"a/+/b", "a//b", 1},   {"a//b", "a/b", 0},       {"a/#", "a//", 1},       {"+/+", "a/", 1},
        {"a/", "a", 0},         {"a", "a/", 0},           {"#", "$SYS/x", 0},      {"+/x", "$SYS/x", 0},
        {"+", "$SYS", 0},       {"$SYS/#", "$SYS/x", 1},  {"$SYS/#", "$SYS", 1},   {"$SYS/+", "$SYS/x", 1},
        {"$SYS/x", "$SYS/x", 1}, {"a/$x", "a/$x", 1},     {"a/+", "a/$x", 1},      {"a/#", "a/$x", 1},
        {"$share/g/#", "$SYS/x", 0}, {"$share/g/a/+", "a/b", 1}, {"$share/g/+/b", "$x/b", 0},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
        {"sport/tennis/player1/#", "sport/tennis/player1", 1}, {"sport/+", "sport", 0}, {"sport/+", "sport/", 1},
    };
    sub_result_t r;
    sub_result_init(&r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        subtree_t *t = subtree_new(hold);
        CHECK_EQ(subtree_add(t, S(cases[i].f), O(0), 1, 0), 0);
        if (match(t, cases[i].t, NULL, &r) != (size_t)cases[i].m)
            fprintf(stderr, "  case filter '%s' topic '%s' expected %d\n", cases[i].f, cases[i].t, cases[i].m);
        CHECK_EQ(r.n, cases[i].m);
        if (strncmp(cases[i].f, "$share/", 7) != 0)
            CHECK_EQ(ref_match(cases[i].f, cases[i].t), cases[i].m); /* the reference agrees */
        subtree_free(t);
    }
    sub_result_free(&r);
}

/* Many random filters in one tree against random topics, compared with the reference matcher. */
static void test_random(void)
{
    static const char *lv[] = {"a", "b", "", "$x", "ab"};
    enum { NF = 300, NT = 2000 };
    char filters[NF][64];
    unsigned seed = 12345;
    subtree_t *t = subtree_new(NULL);
    for (int i = 0; i < NF; i++) {
        char *p = filters[i];
        int n = 1 + rand_r(&seed) % 4;
        p[0] = 0;
        for (int k = 0; k < n; k++) {
            int x = rand_r(&seed) % 8;
            const char *l = x < 5 ? lv[x] : x < 7 ? "+" : "#";
            if (x == 7 && k != n - 1)
                l = "+";
            strcat(p, l);
            if (k != n - 1)
                strcat(p, "/");
        }
        /* owner i % 250 subscribes to filters i, i+250: overlapping ones merge; a repeat of the
         * same filter would replace, so it is swapped for one that matches nothing */
        for (int k = i - 250; k >= 0; k -= 250)
            if (strcmp(filters[k], p) == 0)
                snprintf(p, 64, "zzz/%d", i);
        subtree_add(t, S(p), O(i % 250), (uint8_t)(i % 3), (uint32_t)i + 1);
    }
    sub_result_t r;
    sub_result_init(&r);
    for (int j = 0; j < NT; j++) {
        char topic[64] = "";
        int n = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < n; k++) {
            strcat(topic, lv[rand_r(&seed) % 5]);
            if (k != n - 1)
                strcat(topic, "/");
        }
        subtree_match(t, S(topic), NULL, &r);
        /* expected per owner: max qos and the id set */
        for (int o = 0; o < 250; o++) {
            int want_qos = -1, n_ids = 0;
            for (int i = o; i < NF; i += 250) {
                if (ref_match(filters[i], topic)) {
                    if (i % 3 > want_qos)
                        want_qos = i % 3;
                    n_ids++;
                }
            }
            const sub_match_t *m = find(&r, O(o), 0);
            if ((want_qos >= 0) != (m != NULL)) {
                fprintf(stderr, "  random: topic '%s' owner %d want %d got %p\n", topic, o, want_qos, (void *)m);
                unit_failures++;
                continue;
            }
            if (m) {
                CHECK_EQ(m->qos, want_qos);
                CHECK_EQ(m->n_ids, n_ids);
                for (int i = o; i < NF; i += 250)
                    if (ref_match(filters[i], topic))
                        CHECK(has_id(&r, m, (uint32_t)i + 1));
            }
        }
        /* no duplicate owners */
        for (size_t a = 0; a < r.n; a++)
            for (size_t b = a + 1; b < r.n; b++)
                CHECK(r.v[a].owner != r.v[b].owner);
    }
    sub_result_free(&r);
    subtree_free(t);
}

static void test_merge(void)
{
    subtree_t *t = subtree_new(hold);
    sub_result_t r;
    sub_result_init(&r);
    CHECK_EQ(subtree_add(t, S("a/+"), O(0), 1, 5), 0);
    CHECK_EQ(subtree_add(t, S("a/#"), O(0), 2, 7), 0);
    CHECK_EQ(subtree_add(t, S("a/b"), O(0), 0 | SUB_OPT_RAP, 0), 0);
    CHECK_EQ(subtree_add(t, S("a/b"), O(1), 0, 9), 0);
    CHECK_EQ(subtree_add(t, S("#"), O(2), 1, 0), 0);
    long h0 = atomic_load(&holds);
    CHECK_EQ(match(t, "a/b", NULL, &r), 3);
    CHECK_EQ(atomic_load(&holds) - h0, 3); /* one hold per entry */
    const sub_match_t *m = find(&r, O(0), 0);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ(m->qos, 2);
        CHECK_EQ(m->retain_as_published, 1);
        CHECK_EQ(m->n_ids, 2);
        CHECK(has_id(&r, m, 5));
        CHECK(has_id(&r, m, 7));
    }
    m = find(&r, O(1), 0);
    CHECK(m && m->qos == 0 && m->n_ids == 1 && has_id(&r, m, 9) && !m->retain_as_published);
    m = find(&r, O(2), 0);
    CHECK(m && m->qos == 1 && m->n_ids == 0);
    CHECK_EQ(r.n_ids, 3);
    /* "a" is matched by "a/#" only (parent rule) and "#" */
    CHECK_EQ(match(t, "a", NULL, &r), 2);
    m = find(&r, O(0), 0);
    CHECK(m && m->qos == 2 && m->n_ids == 1 && has_id(&r, m, 7) && !m->retain_as_published);
    sub_result_free(&r);
    subtree_free(t);
}

static void test_no_local(void)
{
    subtree_t *t = subtree_new(hold);
    sub_result_t r;
    sub_result_init(&r);
    subtree_add(t, S("x/y"), O(0), 1 | SUB_OPT_NO_LOCAL, 0);
    subtree_add(t, S("x/y"), O(1), 1, 0);
    subtree_add(t, S("x/+"), O(2), 1 | SUB_OPT_NO_LOCAL, 0);
    subtree_add(t, S("x/#"), O(2), 2, 3); /* O(2) also has a local-allowed overlapping one */
    CHECK_EQ(match(t, "x/y", O(0), &r), 2);
    CHECK(!find(&r, O(0), 0) && find(&r, O(1), 0));
    CHECK_EQ(match(t, "x/y", O(1), &r), 3);
    CHECK_EQ(match(t, "x/y", O(2), &r), 3);
    const sub_match_t *m = find(&r, O(2), 0); /* only the "x/#" one applies */
    CHECK(m && m->qos == 2 && m->n_ids == 1 && has_id(&r, m, 3));
    CHECK_EQ(match(t, "x/y", NULL, &r), 3);
    sub_result_free(&r);
    subtree_free(t);
}

static void test_shared(void)
{
    subtree_t *t = subtree_new(hold);
    sub_result_t r;
    sub_result_init(&r);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(subtree_add(t, S("$share/g/s/+"), O(i), 1, (uint32_t)(10 + i)), 0);
    CHECK_EQ(subtree_add(t, S("$share/h/s/+"), O(3), 2, 0), 0);
    CHECK_EQ(subtree_add(t, S("s/#"), O(0), 0, 0), 0); /* not merged with O(0)'s shared one */
    CHECK_EQ(subtree_count(t), 5);
    int got[4] = {0};
    int last = -1, repeats = 0;
    for (int k = 0; k < 30; k++) {
        CHECK_EQ(match(t, "s/1", NULL, &r), 3); /* one of g, one of h, O(0)'s own */
        int in_g = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (!r.v[i].shared) {
                CHECK(r.v[i].owner == O(0));
                continue;
            }
            int who = (int)((int *)r.v[i].owner - owners);
            got[who]++;
            if (who < 3) {
                in_g++;
                CHECK_EQ(r.v[i].qos, 1);
                CHECK(r.v[i].n_ids == 1 && sub_match_ids(&r, &r.v[i])[0] == (uint32_t)(10 + who));
                if (who == last)
                    repeats++;
                last = who;
            } else {
                CHECK_EQ(r.v[i].qos, 2);
            }
        }
        CHECK_EQ(in_g, 1);
    }
    CHECK_EQ(got[0], 10);
    CHECK_EQ(got[1], 10);
    CHECK_EQ(got[2], 10);
    CHECK_EQ(got[3], 30);
    CHECK_EQ(repeats, 0);
    /* The same owner may appear twice: once shared, once on its own. */
    CHECK_EQ(subtree_add(t, S("$share/g/s/+"), O(1), 0, 0), 1); /* replace */
    CHECK_EQ(subtree_count(t), 5);
    CHECK(subtree_remove(t, S("$share/g/s/+"), O(0)));
    CHECK(!subtree_remove(t, S("$share/g/s/+"), O(0)));
    CHECK(!subtree_remove(t, S("$share/x/s/+"), O(1)));
    CHECK(!subtree_remove(t, S("s/+"), O(1))); /* the shared one is not an ordinary one */
    CHECK(subtree_remove(t, S("$share/g/s/+"), O(1)));
    CHECK(subtree_remove(t, S("$share/g/s/+"), O(2)));
    CHECK(subtree_remove(t, S("$share/h/s/+"), O(3)));
    CHECK_EQ(subtree_count(t), 1);
    CHECK_EQ(match(t, "s/1", NULL, &r), 1);
    CHECK(r.v[0].owner == O(0) && !r.v[0].shared);
    sub_result_free(&r);
    subtree_free(t);
}

/* subtree_observe (the cluster's route announcements): ordinary filters and each shared group
 * have their own first/last events, a group's with its "$share/GROUP/FILTER". */
static char events[512];
static void on_changed(void *ctx, const uint8_t *f, size_t n, bool present)
{
    (void)ctx;
    size_t l = strlen(events);
    snprintf(events + l, sizeof(events) - l, "%c%.*s ", present ? '+' : '-', (int)n, (const char *)f);
}

static void test_observe(void)
{
    subtree_t *t = subtree_new(NULL);
    subtree_observe(t, on_changed, NULL);
    events[0] = 0;
    subtree_add(t, S("a/b"), O(0), 0, 0);
    subtree_add(t, S("a/b"), O(1), 0, 0);
    subtree_add(t, S("a/b"), O(1), 1, 0); /* replaced: no event */
    subtree_add(t, S("$share/g/a/b"), O(2), 0, 0);
    subtree_add(t, S("$share/g/a/b"), O(3), 0, 0);
    subtree_add(t, S("$share/h/a/b"), O(2), 0, 0);
    CHECK_STR(events, "+a/b +$share/g/a/b +$share/h/a/b ");
    events[0] = 0;
    subtree_remove(t, S("a/b"), O(0));
    subtree_remove(t, S("a/b"), O(1));
    subtree_remove(t, S("$share/g/a/b"), O(2));
    subtree_remove(t, S("$share/g/a/b"), O(4)); /* not a member */
    subtree_remove(t, S("$share/g/a/b"), O(3));
    subtree_remove(t, S("$share/h/a/b"), O(2));
    CHECK_STR(events, "-a/b -$share/g/a/b -$share/h/a/b ");
    subtree_free(t);
}

/* subtree_match_groups: the function chooses the groups by their "$share/GROUP/FILTER"; a group
 * left out does not move its round robin. */
static bool only_g(void *ctx, const uint8_t *share, size_t n)
{
    int *calls = ctx;
    (*calls)++;
    return n == strlen("$share/g/s/+") && !memcmp(share, "$share/g/s/+", n);
}

static bool no_group(void *ctx, const uint8_t *share, size_t n)
{
    (void)ctx, (void)share, (void)n;
    return false;
}

static void test_group_fn(void)
{
    subtree_t *t = subtree_new(NULL);
    sub_result_t r;
    sub_result_init(&r);
    for (int i = 0; i < 3; i++)
        subtree_add(t, S("$share/g/s/+"), O(i), 0, 0);
    subtree_add(t, S("$share/h/s/+"), O(3), 0, 0);
    subtree_add(t, S("$share/g/s/#"), O(4), 0, 0); /* group g of another filter: another group */
    subtree_add(t, S("s/1"), O(5), 0, 0);
    int calls = 0;
    int order[6];
    for (int k = 0; k < 6; k++) {
        subtree_match_groups(t, S("s/1"), NULL, &r, only_g, &calls);
        CHECK_EQ(r.n, 2);
        CHECK(find(&r, O(5), 0));
        const sub_match_t *m = r.v[0].shared ? &r.v[0] : &r.v[1];
        order[k] = (int)((int *)m->owner - owners);
        CHECK(order[k] < 3);
        if (k % 2) { /* every group left out in between: g's turn stays where it was */
            subtree_match_groups(t, S("s/1"), NULL, &r, no_group, NULL);
            CHECK(r.n == 1 && r.v[0].owner == O(5));
        }
    }
    CHECK_EQ(calls, 18); /* three groups match each time */
    for (int k = 0; k < 3; k++) /* each member once in any three in a row */
        CHECK(order[k] != order[(k + 1) % 3] && order[k + 3] == order[k]);
    subtree_match_groups(t, S("s/1"), NULL, &r, NULL, NULL);
    CHECK_EQ(r.n, 4);
    sub_result_free(&r);
    subtree_free(t);
}

static void test_remove_replace(void)
{
    subtree_t *t = subtree_new(hold);
    sub_result_t r;
    sub_result_init(&r);
    CHECK_EQ(subtree_add(t, S("a/b"), O(0), 0, 0), 0);
    CHECK_EQ(subtree_add(t, S("a/b"), O(0), 2 | SUB_OPT_RAP, 4), 1);
    CHECK_EQ(subtree_count(t), 1);
    CHECK_EQ(match(t, "a/b", NULL, &r), 1);
    CHECK(r.v[0].qos == 2 && r.v[0].retain_as_published && r.v[0].n_ids == 1 && r.ids[r.v[0].ids_off] == 4);
    CHECK(!subtree_remove(t, S("a/b"), O(1)));
    CHECK(!subtree_remove(t, S("a"), O(0)));
    CHECK(!subtree_remove(t, S("a/b/c"), O(0)));
    CHECK(subtree_remove(t, S("a/b"), O(0)));
    CHECK(!subtree_remove(t, S("a/b"), O(0)));
    CHECK_EQ(subtree_count(t), 0);
    CHECK_EQ(match(t, "a/b", NULL, &r), 0);

    /* Many owners on one node (owner index, swap-remove): remove every odd one. */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(subtree_add(t, S("f/+"), O(i), 1, 0), 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(subtree_add(t, S("f/+"), O(i), 1, (uint32_t)i + 1), 1);
    CHECK_EQ(subtree_count(t), 1000);
    for (int i = 1; i < 1000; i += 2)
        CHECK(subtree_remove(t, S("f/+"), O(i)));
    for (int i = 1; i < 1000; i += 2)
        CHECK(!subtree_remove(t, S("f/+"), O(i)));
    CHECK_EQ(subtree_count(t), 500);
    CHECK_EQ(match(t, "f/x", NULL, &r), 500);
    for (int i = 0; i < 1000; i++) {
        const sub_match_t *m = find(&r, O(i), 0);
        CHECK((m != NULL) == (i % 2 == 0));
        if (m)
            CHECK(m->n_ids == 1 && sub_match_ids(&r, m)[0] == (uint32_t)i + 1);
    }
    for (int i = 0; i < 1000; i += 2)
        CHECK(subtree_remove(t, S("f/+"), O(i)));
    CHECK_EQ(subtree_count(t), 0);

    /* Many sibling nodes (child hash table growth and backward-shift deletion). */
    char f[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(f, sizeof f, "n/%d/x", i);
        CHECK_EQ(subtree_add(t, S(f), O(i % 7), 0, 0), 0);
    }
    for (int i = 0; i < 2000; i += 3) {
        snprintf(f, sizeof f, "n/%d/x", i);
        CHECK(subtree_remove(t, S(f), O(i % 7)));
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(f, sizeof f, "n/%d/x", i);
        CHECK_EQ(match(t, f, NULL, &r), i % 3 != 0);
    }
    sub_result_free(&r);
    subtree_free(t); /* frees what is left; ASan checks for leaks */
}

/* Fan-out to many owners, each matched by two filters: merged, deduplicated, linear time. */
static void test_fanout(void)
{
    subtree_t *t = subtree_new(hold);
    sub_result_t r;
    sub_result_init(&r);
    for (int i = 0; i < 5000; i++) {
        subtree_add(t, S("fan/+"), O(i), 0, 1);
        subtree_add(t, S("fan/#"), O(i), 1, 2);
    }
    CHECK_EQ(subtree_count(t), 10000);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ(match(t, "fan/out", NULL, &r), 5000);
        CHECK_EQ(r.n_ids, 10000);
        int bad = 0;
        for (size_t i = 0; i < r.n; i++) {
            const uint32_t *ids = sub_match_ids(&r, &r.v[i]);
            if (r.v[i].qos != 1 || r.v[i].n_ids != 2 || ids[0] + ids[1] != 3)
                bad++;
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(match(t, "fan", NULL, &r), 5000);
        CHECK_EQ(match(t, "other", NULL, &r), 0);
    }
    sub_result_free(&r);
    subtree_free(t);
}

/* The dedup table's generation counter wraps after 2^32 matches: stale slots must not look live. */
static void test_gen_wrap(void)
{
    subtree_t *t = subtree_new(NULL);
    sub_result_t r;
    sub_result_init(&r);
    for (int i = 0; i < 100; i++) {
        subtree_add(t, S("w/+"), O(i), 1, 0);
        subtree_add(t, S("w/#"), O(i), 2, 0);
    }
    CHECK_EQ(match(t, "w/x", NULL, &r), 100);
    r.gen = UINT32_MAX - 2; /* private field, poked to reach the wrap in a few matches */
    for (int k = 0; k < 5; k++) {
        CHECK_EQ(match(t, "w/x", NULL, &r), 100);
        int bad = 0;
        for (size_t i = 0; i < r.n; i++)
            bad += r.v[i].qos != 2;
        CHECK_EQ(bad, 0);
    }
    sub_result_free(&r);
    subtree_free(t);
}

/* A topic of 32k levels must not overflow any stack (no recursion). */
static void test_deep(void)
{
    size_t n = 65535;
    uint8_t *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 2) ? '/' : 'a';
    subtree_t *t = subtree_new(NULL);
    sub_result_t r;
    sub_result_init(&r);
    CHECK_EQ(subtree_add(t, s, n, O(0), 0, 0), 0);
    s[n - 1] = '+';
    CHECK_EQ(subtree_add(t, s, n, O(1), 0, 0), 0);
    s[n - 1] = '#';
    CHECK_EQ(subtree_add(t, s, n, O(2), 0, 0), 0);
    s[n - 1] = 'a';
    subtree_match(t, s, n, NULL, &r);
    CHECK_EQ(r.n, 3);
    subtree_match(t, s, n - 2, NULL, &r); /* one level short: only the '#' parent match */
    CHECK_EQ(r.n, 1);
    CHECK(subtree_remove(t, s, n, O(0)));
    sub_result_free(&r);
    subtree_free(t);
    free(s);
}

/* ---- concurrency: 4 threads match while 1 thread adds and removes ---- */

struct conc {
    subtree_t *t;
    atomic_int stop;
    atomic_long matches;
    atomic_int errors;
};

static void *reader(void *arg)
{
    struct conc *c = arg;
    sub_result_t r;
    sub_result_init(&r);
    char topic[32];
    unsigned seed = (unsigned)(uintptr_t)&r;
    while (!atomic_load(&c->stop)) {
        snprintf(topic, sizeof topic, "c/%u/v", rand_r(&seed) % 50);
        subtree_match(c->t, S(topic), NULL, &r);
        /* O(0) subscribes to "c/#" for the whole test: always present, exactly once. */
        int seen0 = 0;
        for (size_t i = 0; i < r.n; i++)
            if (r.v[i].owner == O(0))
                seen0++;
        if (seen0 != 1)
            atomic_fetch_add(&c->errors, 1);
        atomic_fetch_add(&c->matches, 1);
    }
    sub_result_free(&r);
    return NULL;
}

static void test_threads(void)
{
    struct conc c = {.t = subtree_new(hold)};
    subtree_add(c.t, S("c/#"), O(0), 1, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, reader, &c);
    /* The tree's lock prefers writers: a writer changing it back to back may keep readers out for
     * its whole loop on a loaded machine. Let them in once first, so the readers run alongside. */
    for (int spin = 0; spin < 5000 && atomic_load(&c.matches) < 4; spin++)
        sched_yield();
    char f[32];
    unsigned seed = 7;
    for (int k = 0; k < 20000; k++) {
        int i = 1 + rand_r(&seed) % 200;
        const char *shapes[] = {"c/%d/v", "c/+/v", "c/%d/#", "$share/g/c/%d/v"};
        snprintf(f, sizeof f, shapes[k % 4], i % 50);
        if (rand_r(&seed) % 2)
            subtree_add(c.t, S(f), O(i), 1, (uint32_t)k);
        else
            subtree_remove(c.t, S(f), O(i));
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&c.errors), 0);
    CHECK(atomic_load(&c.matches) > 0);
    printf("threads: %ld matches by 4 readers during 20000 add/remove\n", atomic_load(&c.matches));
    subtree_free(c.t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run matches over `topics` for about `secs` (bounded so sanitizer builds stay fast) and print. */
static void bench_run(const char *name, subtree_t *t, char (*topics)[64], int n_topics, double secs)
{
    sub_result_t r;
    sub_result_init(&r);
    size_t recv = 0;
    long iters = 0;
    double t0 = now_s(), dt;
    do {
        for (int k = 0; k < 1024; k++, iters++) {
            subtree_match(t, S(topics[iters % n_topics]), NULL, &r);
            recv += r.n;
        }
        dt = now_s() - t0;
    } while (dt < secs);
    printf("bench %-34s %8.3f M matches/s %8.2f M receivers/s (%.1f per match)\n", name, iters / dt / 1e6,
           recv / dt / 1e6, (double)recv / iters);
    sub_result_free(&r);
}

/* Micro benchmark (printed, not asserted), 10k subscriptions in each scenario. */
static void bench(void)
{
    static char topics[1024][64];
    char f[64];
    /* Mixed shapes: exact, '+' and '#' filters, many overlapping per topic. */
    subtree_t *t = subtree_new(hold);
    for (int i = 0; i < 10000; i++) {
        switch (i % 4) {
        case 0: snprintf(f, sizeof f, "site/%d/dev/%d/temp", i % 100, i); break;
        case 1: snprintf(f, sizeof f, "site/%d/dev/+/temp", i % 100); break;
        case 2: snprintf(f, sizeof f, "site/%d/dev/%d/#", i % 100, i); break;
        default: snprintf(f, sizeof f, "site/+/dev/%d/+", i); break;
        }
        subtree_add(t, S(f), O(i / 2), 1, 0);
    }
    for (int i = 0; i < 1024; i++)
        snprintf(topics[i], sizeof topics[i], "site/%d/dev/%d/temp", (i * 7) % 100, (i * 13) % 10000);
    bench_run("10k mixed filters:", t, topics, 1024, 0.3);
    subtree_free(t);

    /* One device, one subscriber: 10k exact filters, each topic matches one. */
    t = subtree_new(hold);
    for (int i = 0; i < 10000; i++) {
        snprintf(f, sizeof f, "home/%d/sensor/%d", i / 100, i % 100);
        subtree_add(t, S(f), O(i % 5000), 0, 0);
    }
    for (int i = 0; i < 1024; i++)
        snprintf(topics[i], sizeof topics[i], "home/%d/sensor/%d", (i * 37) % 100, (i * 11) % 100);
    bench_run("10k exact filters, 1 receiver:", t, topics, 1024, 0.3);
    subtree_free(t);

    /* Fan-out: 5000 owners x 2 overlapping filters on one topic. */
    t = subtree_new(hold);
    for (int i = 0; i < 5000; i++) {
        subtree_add(t, S("news/+"), O(i), 0, 1);
        subtree_add(t, S("news/#"), O(i), 1, 2);
    }
    snprintf(topics[0], sizeof topics[0], "news/today");
    bench_run("10k subs, fan-out to 5000 merged:", t, topics, 1, 0.3);
    subtree_free(t);
}

int main(void)
{
    test_table();
    test_random();
    test_merge();
    test_no_local();
    test_shared();
    test_observe();
    test_group_fn();
    test_remove_replace();
    test_fanout();
    test_gen_wrap();
    test_deep();
    test_threads();
    bench();
    UNIT_DONE();
}
