/* A minimal test harness: CHECK records a failure with file:line and goes on; main returns the count. */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>

static int check_failures, check_count;
static const char *check_context = "";

#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        check_count++;                                                                                \
        if (!(cond)) {                                                                                \
            check_failures++;                                                                         \
            fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, check_context, #cond);      \
        }                                                                                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                                \
    do {                                                                                              \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                              \
        check_count++;                                                                                \
        if (check_a_ != check_b_) {                                                                   \
            check_failures++;                                                                         \
            fprintf(stderr, "FAIL %s:%d [%s]: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,         \
                    check_context, #a, #b, check_a_, check_b_);                                       \
        }                                                                                             \
    } while (0)

static int check_report(const char *suite)
{
    printf("%s: %d checks, %d failed\n", suite, check_count, check_failures);
    return check_failures ? 1 : 0;
}
#endif
