/* The process-wide log handler (the library never prints by itself), and
 * the clock and median that timing code shares. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/util.h"

static lc_log_fn log_fn;
static void *log_user;
static enum lc_log_level log_max = LC_LOG_WARN;

LC_API void lc_set_log_handler(lc_log_fn fn, void *user, enum lc_log_level max_level)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
}

int lc_log_enabled(enum lc_log_level level)
{
    return log_fn != NULL && level <= log_max;
}

void lc_log(enum lc_log_level level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    if (!lc_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

double lc_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double lc_median(double *v, int n)
{
    LC_ASSERT(n >= 1);
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
