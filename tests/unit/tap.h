/* tap.h - a tiny Test Anything Protocol harness for the unit tests */
#ifndef CT_TAP_H
#define CT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

static inline int __attribute__((format(printf, 4, 5)))
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    tap_count++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!pass)
        printf("#   Failed test at %s line %d\n", file, line);
    fflush(stdout);
    return pass;
}

/* ok(cond, "what it checks", ...) */
#define ok(cond, ...) tap_ok((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* is_int(got, want, "name", ...): prints both values on failure. */
#define is_int(got, want, ...)                                                 \
    do {                                                                       \
        long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);       \
        if (!ok(tap_g_ == tap_w_, __VA_ARGS__))                                \
            printf("#        got: %lld\n#   expected: %lld\n", tap_g_,         \
                   tap_w_);                                                    \
    } while (0)

/* is_str(got, want, "name", ...): NULL-safe string comparison. */
#define is_str(got, want, ...)                                                 \
    do {                                                                       \
        const char *tap_g_ = (got), *tap_w_ = (want);                          \
        int tap_p_ =                                                           \
            (tap_g_ == NULL && tap_w_ == NULL) ||                              \
            (tap_g_ != NULL && tap_w_ != NULL && strcmp(tap_g_, tap_w_) == 0); \
        if (!ok(tap_p_, __VA_ARGS__))                                          \
            printf("#        got: %s\n#   expected: %s\n",                     \
                   tap_g_ ? tap_g_ : "(null)", tap_w_ ? tap_w_ : "(null)");    \
    } while (0)

#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

/* Prints the plan; the exit status says whether every test passed. */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed == 0 ? 0 : 1;
}

#endif
