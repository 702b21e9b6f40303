/* test_broker_dedup.c -- unit tests of the window of cluster identities a moved session keeps
 * (src/broker/dedup.c): an identity is seen once, origins and sequences are told apart, the window
 * grows and then forgets its oldest identities first (checked against a plain array model), and it
 * expires after DEDUP_WINDOW_MS. */
#include <stdint.h>
#include <stdlib.h>

#include "broker/dedup.h"
#include "unit.h"

static void test_once(void)
{
    CASE("an identity is new once, then seen; another origin or sequence is another identity");
    dedup_t *d = dedup_new(1000);
    CHECK(!dedup_seen(d, 7, 1));
    CHECK(dedup_seen(d, 7, 1));
    CHECK(!dedup_seen(d, 8, 1));
    CHECK(!dedup_seen(d, 7, 2));
    CHECK(dedup_seen(d, 8, 1));
    CHECK(dedup_seen(d, 7, 2));

    CASE("the window expires DEDUP_WINDOW_MS after it opened");
    CHECK(!dedup_expired(d, 1000 + DEDUP_WINDOW_MS));
    CHECK(dedup_expired(d, 1000 + DEDUP_WINDOW_MS + 1));
    dedup_free(d);
    dedup_free(NULL);
}

static void test_bounded(void)
{
    CASE("grown to DEDUP_MAX, the window forgets the oldest first and keeps the newest DEDUP_MAX");
    dedup_t *d = dedup_new(0);
    const uint64_t total = 3 * DEDUP_MAX + 17;
    for (uint64_t i = 1; i <= total; i++)
        if (dedup_seen(d, 42, i)) {
            CHECK(!"a new identity was seen");
            break;
        }
    int bad = 0;
    for (uint64_t i = total - DEDUP_MAX + 1; i <= total; i++) /* the newest are kept */
        bad += !dedup_seen(d, 42, i);
    CHECK_EQ(bad, 0);
    CHECK(!dedup_seen(d, 42, total - DEDUP_MAX)); /* just forgotten, now new again */
    dedup_free(d);

    CASE("random identities against a model of the last DEDUP_MAX");
    d = dedup_new(0);
    srand(11);
    size_t n = 4 * DEDUP_MAX, kept = 0;
    uint64_t *model = malloc(n * 2 * sizeof(uint64_t)); /* (origin, seq) in arrival order */
    for (size_t i = 0; i < n && !bad; i++) {
        uint64_t o = (uint64_t)(rand() % 3) + 1, s = (uint64_t)(rand() % (2 * DEDUP_MAX));
        bool want = false;
        size_t from = kept > DEDUP_MAX ? kept - DEDUP_MAX : 0;
        for (size_t k = from; k < kept && !want; k++)
            want = model[2 * k] == o && model[2 * k + 1] == s;
        if (dedup_seen(d, o, s) != want)
            bad++;
        if (!want) {
            model[2 * kept] = o;
            model[2 * kept + 1] = s;
            kept++;
        }
    }
    CHECK_EQ(bad, 0);
    free(model);
    dedup_free(d);
}

int main(void)
{
    test_once();
    test_bounded();
    UNIT_DONE();
}
