/* test_broker_retain.c -- unit tests of the retained-message store: set / replace / clear, lookup by
 * filter with wildcards and the '$' rule, reference counting, a randomized cross-check against a
 * reference matcher, and concurrent set/match. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/retain.h"
#include "ref_match.h"

#include "unit.h"

#define S(str) (const uint8_t *)(str), strlen(str)

/* A reference-counted fake message that knows its topic; freed on the last release. */
typedef struct fmsg {
    atomic_int refs;
    char topic[64];
} fmsg_t;

static atomic_int live; /* fake messages not yet freed */

static fmsg_t *fmsg_new(const char *topic)
{
    fmsg_t *m = calloc(1, sizeof *m);
    atomic_init(&m->refs, 1);
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    atomic_fetch_add(&live, 1);
    return m;
}
static void fhold(void *p) { atomic_fetch_add(&((fmsg_t *)p)->refs, 1); }
static void frelease(void *p)
{
    fmsg_t *m = p;
    if (atomic_fetch_sub(&m->refs, 1) == 1) {
        free(m);
        atomic_fetch_sub(&live, 1);
    }
}

/* Set topic to a new message and drop the creator's reference: the store keeps the only one. */
static void put(retain_t *rs, const char *topic)
{
    fmsg_t *m = fmsg_new(topic);
    CHECK_EQ(retain_set(rs, S(topic), m, NULL), 0);
    frelease(m);
}

/* Collects the topics a match returns, sorted and joined by spaces. */
struct got {
    char topics[64][64];
    int n;
};
static void collect(void *msg, const retain_src_t *src, void *arg)
{
    struct got *g = arg;
    (void)src;
    if (g->n < 64)
        snprintf(g->topics[g->n++], 64, "%s", ((fmsg_t *)msg)->topic);
    frelease(msg);
}
static int cmp(const void *a, const void *b) { return strcmp(a, b); }
static const char *lookup(retain_t *rs, const char *filter)
{
    static char out[2048];
    struct got g = {.n = 0};
    long rc = retain_match(rs, S(filter), collect, &g);
    CHECK_EQ(rc, g.n);
    qsort(g.topics, (size_t)g.n, sizeof g.topics[0], cmp);
    out[0] = 0;
    for (int i = 0; i < g.n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, g.topics[i][0] ? g.topics[i] : "<>");
    }
    return out;
}

#define CHECK_LOOKUP(rs, filter, want)                                                            \
    do {                                                                                          \
        const char *got_ = lookup(rs, filter);                                                    \
        if (strcmp(got_, want) != 0) {                                                            \
            fprintf(stderr, "%s:%d: lookup '%s': got '%s' want '%s'\n", __FILE__, __LINE__, filter, \
                    got_, want);                                                                  \
            unit_failures++;                                                                           \
        }                                                                                         \
    } while (0)

static void test_set_replace_clear(void)
{
    retain_t *rs = retain_new(fhold, frelease);
    CHECK_EQ(retain_count(rs), 0);
    put(rs, "a/b");
    put(rs, "a/c");
    CHECK_EQ(retain_count(rs), 2);
    CHECK_EQ(atomic_load(&live), 2);
    fmsg_t *first = fmsg_new("a/b"); /* keep our reference to watch the store's */
    CHECK_EQ(retain_set(rs, S("a/b"), first, NULL), 0);
    CHECK_EQ(atomic_load(&first->refs), 2);
    CHECK_EQ(atomic_load(&live), 2); /* the replaced "a/b" message was freed */
    put(rs, "a/b"); /* replace: the store releases `first` */
    CHECK_EQ(atomic_load(&first->refs), 1);
    CHECK_EQ(retain_count(rs), 2);
    CHECK_EQ(retain_set(rs, S("a/b"), first, NULL), 0); /* replace again with the same message */
    CHECK_EQ(atomic_load(&first->refs), 2);
    CHECK_EQ(retain_set(rs, S("a/b"), first, NULL), 0); /* setting the current message again is harmless */
    CHECK_EQ(atomic_load(&first->refs), 2);
    CHECK_EQ(retain_set(rs, S("a/b"), NULL, NULL), 0); /* clear */
    CHECK_EQ(atomic_load(&first->refs), 1);
    CHECK_EQ(retain_count(rs), 1);
    CHECK_LOOKUP(rs, "a/b", "");
    CHECK_LOOKUP(rs, "a/#", "a/c");
    CHECK_EQ(retain_set(rs, S("x/y/z"), NULL, NULL), 0); /* clearing nothing */
    CHECK_EQ(retain_set(rs, S("a"), NULL, NULL), 0);     /* an inner node with no message */
    CHECK_EQ(retain_count(rs), 1);
    CHECK_LOOKUP(rs, "a/c", "a/c");
    frelease(first);
    CHECK_EQ(retain_set(rs, S("a/c"), NULL, NULL), 0);
    CHECK_EQ(retain_count(rs), 0);
    CHECK_EQ(atomic_load(&live), 0);
    retain_free(rs);
}

static void test_match(void)
{
    retain_t *rs = retain_new(fhold, frelease);
    const char *topics[] = {"a", "a/b", "a/b/c", "a/c", "b", "/a", "a//b", "a/", "$SYS/x", "$SYS", "a/$x"};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        put(rs, topics[i]);
    CHECK_EQ(retain_count(rs), 11);
    CHECK_LOOKUP(rs, "a", "a");
    CHECK_LOOKUP(rs, "a/b", "a/b");
    CHECK_LOOKUP(rs, "a/+", "a/ a/$x a/b a/c");
    CHECK_LOOKUP(rs, "a/#", "a a/ a/$x a//b a/b a/b/c a/c"); /* parent "a" included */
    CHECK_LOOKUP(rs, "a/+/b", "a//b");
    CHECK_LOOKUP(rs, "a//b", "a//b");
    CHECK_LOOKUP(rs, "+", "a b");
    CHECK_LOOKUP(rs, "+/+", "/a a/ a/$x a/b a/c");
    CHECK_LOOKUP(rs, "#", "/a a a/ a/$x a//b a/b a/b/c a/c b");
    CHECK_LOOKUP(rs, "+/#", "/a a a/ a/$x a//b a/b a/b/c a/c b");
    CHECK_LOOKUP(rs, "$SYS/#", "$SYS $SYS/x");
    CHECK_LOOKUP(rs, "$SYS/+", "$SYS/x");
    CHECK_LOOKUP(rs, "+/x", "");
    CHECK_LOOKUP(rs, "/+", "/a");
    CHECK_LOOKUP(rs, "a/b/c/#", "a/b/c");
    CHECK_LOOKUP(rs, "a/b/c/d", "");
    CHECK_LOOKUP(rs, "z/#", "");
    retain_free(rs); /* releases everything */
    CHECK_EQ(atomic_load(&live), 0);
}

static void test_random(void)
{
    static const char *lv[] = {"a", "b", "", "$x", "ab"};
    retain_t *rs = retain_new(fhold, frelease);
    unsigned seed = 99;
    char set[200][64];
    int n_set = 0;
    for (int i = 0; i < 400; i++) {
        char topic[64] = "";
        int n = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < n; k++) {
            strcat(topic, lv[rand_r(&seed) % 5]);
            if (k != n - 1)
                strcat(topic, "/");
        }
        put(rs, topic);
        bool dup = false;
        for (int k = 0; k < n_set; k++)
            dup |= strcmp(set[k], topic) == 0;
        if (!dup && n_set < 200)
            snprintf(set[n_set++], 64, "%s", topic);
        else if (!dup)
            CHECK_EQ(retain_set(rs, S(topic), NULL, NULL), 0);
    }
    CHECK_EQ(retain_count(rs), n_set);
    for (int j = 0; j < 1000; j++) {
        char f[64] = "";
        int n = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < n; k++) {
            int x = rand_r(&seed) % 8;
            strcat(f, x < 5 ? lv[x] : (x < 7 || k != n - 1) ? "+" : "#");
            if (k != n - 1)
                strcat(f, "/");
        }
        struct got g = {.n = 0};
        retain_match(rs, S(f), collect, &g);
        int want = 0;
        for (int k = 0; k < n_set; k++)
            want += ref_match(f, set[k]);
        if (want > 64)
            want = 64;
        if (g.n != want)
            fprintf(stderr, "  random: filter '%s' got %d want %d\n", f, g.n, want);
        CHECK_EQ(g.n, want);
        for (int k = 0; k < g.n; k++)
            CHECK(ref_match(f, g.topics[k]));
    }
    retain_free(rs);
    CHECK_EQ(atomic_load(&live), 0);
}

/* A callback may call back into the store: it runs after the lock is released. */
static void reenter(void *msg, const retain_src_t *src, void *arg)
{
    retain_t *rs = arg;
    (void)src;
    retain_set(rs, S(((fmsg_t *)msg)->topic), NULL, NULL);
    frelease(msg);
}

static void test_reentrant(void)
{
    retain_t *rs = retain_new(fhold, frelease);
    put(rs, "r/1");
    put(rs, "r/2");
    CHECK_EQ(retain_match(rs, S("r/+"), reenter, rs), 2);
    CHECK_EQ(retain_count(rs), 0);
    CHECK_EQ(atomic_load(&live), 0);
    retain_free(rs);
}

static void test_deep(void)
{
    size_t n = 65535;
    uint8_t *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 2) ? '/' : 'a';
    retain_t *rs = retain_new(fhold, frelease);
    fmsg_t *m = fmsg_new("deep");
    CHECK_EQ(retain_set(rs, s, n, m, NULL), 0);
    struct got g = {.n = 0};
    CHECK_EQ(retain_match(rs, s, n, collect, &g), 1);
    CHECK_EQ(retain_match(rs, S("#"), collect, &g), 1);
    s[n - 1] = '+';
    CHECK_EQ(retain_match(rs, s, n, collect, &g), 1);
    retain_free(rs); /* deep teardown without recursion */
    CHECK_EQ(atomic_load(&m->refs), 1);
    frelease(m);
    free(s);
}

struct conc {
    retain_t *rs;
    atomic_int stop;
    atomic_long lookups;
    atomic_int errors;
};

static void count_cb(void *msg, const retain_src_t *src, void *arg)
{
    (void)arg;
    if (src && src->client_id[0] != 'w') /* read after the lock: the reference keeps it alive */
        abort();
    frelease(msg);
}

static void *reader(void *arg)
{
    struct conc *c = arg;
    while (!atomic_load(&c->stop)) {
        if (retain_match(c->rs, S("k/#"), count_cb, NULL) < 1) /* "k/fixed" is always there */
            atomic_fetch_add(&c->errors, 1);
        retain_match(c->rs, S("k/+/x"), count_cb, NULL);
        atomic_fetch_add(&c->lookups, 1);
    }
    return NULL;
}

static void test_threads(void)
{
    struct conc c = {.rs = retain_new(fhold, frelease)};
    put(c.rs, "k/fixed");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, reader, &c);
    unsigned seed = 3;
    char topic[32];
    for (int k = 0; k < 20000; k++) {
        snprintf(topic, sizeof topic, "k/%u/x", rand_r(&seed) % 100);
        unsigned r = rand_r(&seed) % 3;
        if (r == 0) {
            put(c.rs, topic);
        } else if (r == 1) { /* with a source, which readers read after the lock is dropped */
            fmsg_t *m = fmsg_new(topic);
            retain_src_t *src = retain_src_new("writer", 6, "u", 1, NULL);
            CHECK_EQ(retain_set(c.rs, S(topic), m, src), 0);
            retain_src_release(src);
            frelease(m);
        } else
            retain_set(c.rs, S(topic), NULL, NULL);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&c.errors), 0);
    printf("threads: %ld lookups by 4 readers during 20000 set/clear\n", atomic_load(&c.lookups));
    retain_free(c.rs);
    CHECK_EQ(atomic_load(&live), 0);
}

/* What a match reports as a message's source (check_retain_source): "id/user" or "-". */
static char src_seen[64];
static void source_of(void *msg, const retain_src_t *src, void *arg)
{
    (void)arg;
    if (src)
        snprintf(src_seen, sizeof(src_seen), "%s/%s", src->client_id, src->username ? src->username : "(none)");
    else
        snprintf(src_seen, sizeof(src_seen), "-");
    frelease(msg);
}

static void test_source(void)
{
    CASE("each retained message keeps the source it was set with; a replacement brings its own");
    retain_t *rs = retain_new(fhold, frelease);
    fmsg_t *m1 = fmsg_new("s/1"), *m2 = fmsg_new("s/1");
    retain_src_t *a = retain_src_new("pubA", 4, "alice", 5, NULL);
    retain_src_t *anon = retain_src_new("pubB", 4, NULL, 0, NULL);
    CHECK_EQ(retain_set(rs, S("s/1"), m1, a), 0);
    CHECK_EQ(atomic_load(&a->refs), 2); /* ours and the store's */
    retain_match(rs, S("s/#"), source_of, NULL);
    CHECK_STR(src_seen, "pubA/alice");
    CHECK_EQ(retain_set(rs, S("s/1"), m2, anon), 0);
    CHECK_EQ(atomic_load(&a->refs), 1); /* the store let go of the replaced one */
    retain_match(rs, S("s/1"), source_of, NULL);
    CHECK_STR(src_seen, "pubB/(none)");
    CASE("a message set without source (the broker's own) reports none; clearing drops the source");
    CHECK_EQ(retain_set(rs, S("s/1"), m1, NULL), 0);
    retain_match(rs, S("s/1"), source_of, NULL);
    CHECK_STR(src_seen, "-");
    CHECK_EQ(retain_set(rs, S("s/2"), m2, anon), 0);
    CHECK_EQ(retain_set(rs, S("s/2"), NULL, anon), 0);
    CHECK_EQ(atomic_load(&anon->refs), 1);
    retain_src_release(a);
    retain_src_release(anon);
    frelease(m1);
    frelease(m2);
    retain_free(rs);
    CHECK_EQ(atomic_load(&live), 0);
}

int main(void)
{
    test_set_replace_clear();
    test_match();
    test_random();
    test_reentrant();
    test_source();
    test_deep();
    test_threads();
    UNIT_DONE();
}
