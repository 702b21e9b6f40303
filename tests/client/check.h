/* check.h -- assertions for the C test programs of tests/client: a failed check prints where and
 * what, and exits 1 (the Python side reports the program's stderr). */
#ifndef TOMBO_TESTS_CLIENT_CHECK_H
#define TOMBO_TESTS_CLIENT_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "tombo/client.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_OK(e)                                                                                \
    do {                                                                                           \
        tombo_err_t e_ = (e);                                                                      \
        if (e_ != TOMBO_OK) {                                                                      \
            fprintf(stderr, "%s:%d: %s -> %s\n", __FILE__, __LINE__, #e, tombo_strerror(e_));      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
