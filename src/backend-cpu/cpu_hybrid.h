/*
 * The cpu backend's feature maps, hybrid attention and decoding ops, and
 * what they share; their row kernels are in the ISA tables
 * (cpu_kernels.h).
 */
#ifndef LC_BACKEND_CPU_CPU_HYBRID_H
#define LC_BACKEND_CPU_CPU_HYBRID_H

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"

/* backend entries */
void lc_cpu_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W, int N,
                     int H, int Hx, int D, int f, float eps);
void lc_cpu_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps);
void lc_cpu_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s);
void lc_cpu_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s);
void lc_cpu_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s);
void lc_cpu_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F);
void lc_cpu_hybrid_add_state(struct lc_backend *be, float *y, const float *den,
                             const float *fq, const float *S, const float *z, int n, int H,
                             int D, int F);
void lc_cpu_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F);

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

#endif /* LC_BACKEND_CPU_CPU_HYBRID_H */
