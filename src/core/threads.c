/*
 * Threads and the OpenBLAS kernel choice.
 *
 * OpenBLAS (dynamic-arch builds, as Debian ships) selects its kernel set
 * when the library is loaded, before main() runs: from OPENBLAS_CORETYPE if
 * set, else from its own CPU probe.  Version 0.3.21 misdetects some AVX-512
 * CPUs as "Prescott" and runs SGEMM about ten times slower than with its
 * SkylakeX kernels.  The only reliable cure is to set OPENBLAS_CORETYPE and
 * execute the program again, which lc_blas_use_fast_kernels() does.
 */
#include "config.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

#include "core/util.h"

#ifdef HAVE_OPENBLAS_GET_CORENAME
char *openblas_get_corename(void);
#endif
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int num_threads);
#endif

static int num_threads_set;

LC_API void lc_set_num_threads(int n)
{
    if (n <= 0) {
        n = omp_get_num_procs();
    }
    num_threads_set = n;
    omp_set_num_threads(n);
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(n);
#endif
}

LC_API int lc_get_num_threads(void)
{
    if (num_threads_set > 0) {
        return num_threads_set;
    }
    return omp_get_max_threads();
}

LC_API const char *lc_blas_kernel_name(void)
{
#ifdef HAVE_OPENBLAS_GET_CORENAME
    const char *name = openblas_get_corename();
    if (name != NULL && name[0] != '\0') {
        return name;
    }
#endif
    return "unknown";
}

/* The kernel set OpenBLAS should run on this CPU, or NULL when its own
 * choice cannot be improved on. */
static const char *best_openblas_core(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        return "SkylakeX";
    }
#endif
    return NULL;
}

static int is_avx512_core(const char *name)
{
    static const char *const fast[] = {"skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof(fast) / sizeof(fast[0]); i++) {
        if (strcasecmp(name, fast[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

LC_API void lc_blas_use_fast_kernels(int argc, char **argv)
{
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *best;

    (void)argc;
    if (set != NULL && set[0] != '\0') {
        return; /* chosen on purpose by whoever runs us: respect it */
    }
    if (getenv("LC_BLAS_REEXECUTED") != NULL) {
        return; /* already tried once: never loop */
    }
    best = best_openblas_core();
    if (best == NULL || is_avx512_core(lc_blas_kernel_name())) {
        return;
    }
    if (setenv("OPENBLAS_CORETYPE", best, 1) != 0 || setenv("LC_BLAS_REEXECUTED", "1", 1) != 0) {
        return;
    }
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): carry on with the slow kernels */
    unsetenv("OPENBLAS_CORETYPE");
    lc_log(LC_LOG_WARN, "could not re-execute to select the %s OpenBLAS kernels", best);
}
