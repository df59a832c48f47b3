/*
 * What the hybrid attention and feature-map entries share: kernel scratch
 * and the window factors' gradient.
 */
#include "config.h"

#include <math.h>
#include <omp.h>

#include "backend-cpu/cpu_hybrid_rows.h"
#include "core/util.h"

int lc_hy_work_get(struct lc_backend *be, struct lc_hy_work *w, size_t shared, size_t per_thread,
                   int nt)
{
    const size_t sh = lc_hy_round(shared), sl = lc_hy_round(per_thread);
    size_t total, bytes;
    float *p = NULL;

    if (!lc_mul_size(sl, (size_t)(nt > 0 ? nt : 1), &total) || !lc_add_size(total, sh, &total) ||
        !lc_mul_size(total, sizeof(float), &bytes)) {
        lc_cpu_fail(be, LC_ERR_NOMEM, "cpu backend: kernel scratch of %zu + %d x %zu floats "
                    "overflows", shared, nt, per_thread);
        return 0;
    }
    /* the backend's one scratch block, reused by every kernel call and only
     * ever grown; 0 bytes would give NULL before its first allocation */
    p = lc_cpu_scratch(be, bytes > 0 ? bytes : 64);
    if (p == NULL) {
        return 0;
    }
    w->shared = p;
    w->slices = p + sh;
    w->slice = sl;
    return 1;
}

/* Slices go by thread number, not by task: a task uses its slice as
 * scratch only, so the mapping never shows in the results. */
float *lc_hy_work_slice(const struct lc_hy_work *w)
{
    return w->slices + (size_t)omp_get_thread_num() * w->slice;
}

void lc_hy_dtheta_add(float *dtheta, const float *theta, const double *acc, int B, int H)
{
    for (int h = 0; h < H; h++) {
        const double gamma = 1.0 / (1.0 + exp(-(double)theta[h]));
        double sum = 0.0;
        /* in batch order, after the parallel loop: the same sum for any
         * thread count */
        for (int b = 0; b < B; b++) {
            sum += acc[b * H + h];
        }
        dtheta[h] += (float)(sum * (1.0 - gamma));
    }
}
