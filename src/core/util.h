/*
 * Internal helpers shared by the core modules: error reporting, logging,
 * checked arithmetic on sizes.
 */
#ifndef LC_CORE_UTIL_H
#define LC_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

#if defined(__GNUC__)
#define LC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LC_PRINTF(a, b)
#endif

/* Fills err (when not NULL) and returns code, so that failures read
 * `return lc_err_set(err, LC_ERR_FORMAT, "%s: ...", path);`. */
lc_status lc_err_set(struct lc_error *err, lc_status code, const char *fmt, ...) LC_PRINTF(3, 4);

/* Prefixes an existing message, e.g. with the file name: "ctx: msg". */
void lc_err_prefix(struct lc_error *err, const char *fmt, ...) LC_PRINTF(2, 3);

/* seconds on a monotonic clock */
double lc_time_now(void);

/* the median of v[0..n) (n >= 1; the mean of the middle two for even n),
 * sorting v in place */
double lc_median(double *v, int n);

void lc_log(enum lc_log_level level, const char *fmt, ...) LC_PRINTF(2, 3);
int lc_log_enabled(enum lc_log_level level);

/* splitmix64 (Steele, Lea and Flood, 2014), the one source of seeded
 * randomness in the library: LC_GOLDEN_GAMMA is its Weyl increment,
 * lc_mix64 its output function (a bijection on 64-bit words that mixes
 * every input bit, also used alone as a hash), lc_splitmix64 the next
 * number of the stream whose state is *state. */
#define LC_GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

static inline uint64_t lc_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t lc_splitmix64(uint64_t *state)
{
    return lc_mix64(*state += LC_GOLDEN_GAMMA);
}

/* Aborts with file:line in every build: for broken invariants inside the
 * library (never for bad input, which gets an lc_status). */
#define LC_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond))                                                           \
            lc_assert_fail(#cond, __FILE__, __LINE__);                         \
    } while (0)
_Noreturn void lc_assert_fail(const char *what, const char *file, int line);

/* a*b and a+b for sizes; return 0 (and leave *out alone) on overflow */
static inline int lc_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

static inline int lc_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) {
        return 0;
    }
    *out = a + b;
    return 1;
}

#endif /* LC_CORE_UTIL_H */
