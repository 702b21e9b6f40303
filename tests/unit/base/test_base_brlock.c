/* test_base_brlock.c -- unit tests of the big-reader lock (src/base/brlock.c): more reader threads
 * than cores read a pair of values a writer changes together under the write lock, and never see
 * them torn, while the writer gets in over and over under their stream (writers are preferred);
 * one thread may hold the read side twice. Run under ASan; TSan sees the same code through the
 * broker's subscription tree in tests/broker under `make tsan-test`. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/brlock.h"
#include "unit.h"

#define READERS 6
#define WRITES 2000

static brlock_t *lock;
static uint64_t pair_a, pair_b; /* written together under the write lock */
static atomic_int stop;
static atomic_long reads, torn;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        unsigned slot = brlock_rdlock(lock);
        uint64_t a = pair_a, b = pair_b;
        brlock_rdunlock(lock, slot);
        if (a != b)
            atomic_fetch_add(&torn, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static void readers_never_see_a_torn_write(void)
{
    CASE("readers never see a half-done write; the writer gets in under a stream of readers");
    lock = aligned_alloc(64, sizeof(*lock));
    brlock_init(lock);
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    while (atomic_load(&reads) < 1000)
        sched_yield();
    for (int i = 0; i < WRITES; i++) {
        brlock_wrlock(lock);
        pair_a++;
        sched_yield(); /* give a reader the chance to run inside the write, were it let in */
        pair_b++;
        brlock_wrunlock(lock);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&torn), 0);
    CHECK_EQ(pair_a, WRITES);
    CHECK_EQ(pair_b, WRITES);
    CHECK(atomic_load(&reads) >= 1000);
    brlock_destroy(lock);
    free(lock);
}

static void nested_readers(void)
{
    CASE("one thread may hold the read side twice (two slots' counts, released in any order)");
    lock = aligned_alloc(64, sizeof(*lock));
    brlock_init(lock);
    unsigned s1 = brlock_rdlock(lock), s2 = brlock_rdlock(lock);
    brlock_rdunlock(lock, s1);
    brlock_rdunlock(lock, s2);
    brlock_wrlock(lock); /* every slot empty again: the writer gets in at once */
    brlock_wrunlock(lock);
    brlock_destroy(lock);
    free(lock);
}

int main(void)
{
    readers_never_see_a_torn_write();
    nested_readers();
    UNIT_DONE();
}
