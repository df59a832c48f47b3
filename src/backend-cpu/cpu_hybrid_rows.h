/*
 * What the feature-map, hybrid attention and decoding entries share
 * (cpu_hybrid_rows.c): a serial SGEMM, the kernels' scratch, and the
 * window factors' gradient.
 */
#ifndef LC_BACKEND_CPU_CPU_HYBRID_ROWS_H
#define LC_BACKEND_CPU_CPU_HYBRID_ROWS_H

#include <stddef.h>

#include "backend-cpu/cpu.h"

/* Row-major SGEMM on the calling thread (the kernels call it inside their
 * parallel regions; see lc_cpu_sgemm_serial). */
static inline void lc_hy_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                               int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    lc_cpu_sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------- scratch */

/* The kernels' scratch, taken from the backend's (lc_cpu_scratch): a part
 * shared by all threads and one slice per thread of a team of at most nt
 * threads, each part 64-byte aligned.  Contents are not initialized.
 * Returns 0 when out of memory or when the sizes overflow (the failure is
 * recorded for sync, and the kernel returns without computing). */
struct lc_hy_work {
    float *shared;
    float *slices;
    size_t slice; /* floats per thread slice */
};

int lc_hy_work_get(struct lc_backend *be, struct lc_hy_work *w, size_t shared, size_t per_thread,
                   int nt);

/* The slice of the calling thread (thread numbers below nt). */
float *lc_hy_work_slice(const struct lc_hy_work *w);

/* Carves n floats (64-byte aligned) off *p. */
static inline float *lc_hy_take(float **p, size_t n)
{
    float *r = *p;
    *p += (n + 15) & ~(size_t)15;
    return r;
}

/* The floats lc_hy_take needs for n. */
static inline size_t lc_hy_round(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* dtheta[h] += (1 - sigmoid(theta[h])) * sum over b of acc[b * H + h]: the
 * window factors' gradient from the per-(batch, head) sums of the
 * backward and the cross-entropy. */
void lc_hy_dtheta_add(float *dtheta, const float *theta, const double *acc, int B, int H);

#endif /* LC_BACKEND_CPU_CPU_HYBRID_ROWS_H */
