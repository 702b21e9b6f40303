/* unit.h -- the tiny assertion kit of tombo's unit tests: each test_*.c is one process (one ctest
 * case); CHECKs record failures with file, line and the current case name (a spec statement such as
 * "[MQTT-3.8.3-3]" where there is one) and UNIT_DONE() turns them into the exit status. */
#ifndef TOMBO_UNIT_H
#define TOMBO_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failures;
static int unit_checks;
static const char *unit_case = "";

#define CASE(name) (unit_case = (name))

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        unit_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, unit_case, #cond); \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        unit_checks++;                                                                             \
        if (unit_a_ != unit_b_) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,    \
                    unit_case, #a, unit_a_, #b, unit_b_);                                          \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* C strings equal (either may be NULL: both must be). */
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *unit_sa_ = (a), *unit_sb_ = (b);                                               \
        unit_checks++;                                                                             \
        if (!((!unit_sa_ && !unit_sb_) || (unit_sa_ && unit_sb_ && !strcmp(unit_sa_, unit_sb_)))) { \
            fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__,     \
                    unit_case, #a, unit_sa_ ? unit_sa_ : "(null)", unit_sb_ ? unit_sb_ : "(null)");  \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* Byte views equal (pointer/length pairs). */
#define CHECK_MEM(p1, n1, p2, n2)                                                                  \
    do {                                                                                           \
        unit_checks++;                                                                             \
        if ((size_t)(n1) != (size_t)(n2) || ((n1) && memcmp((p1), (p2), (n1)) != 0)) {             \
            fprintf(stderr, "%s:%d: %s: bytes %s differ from %s\n", __FILE__, __LINE__, unit_case, \
                    #p1, #p2);                                                                     \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define UNIT_DONE()                                                                                \
    do {                                                                                           \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, unit_checks, unit_failures);       \
        return unit_failures ? EXIT_FAILURE : EXIT_SUCCESS;                                        \
    } while (0)

#endif
